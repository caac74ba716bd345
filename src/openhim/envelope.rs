//! The OpenHIM mediator response (`Content-Type: application/json+openhim`) and its orchestrations.
//!
//! OpenHIM drops a whole stored response when an orchestration lacks `name` or
//! `request.timestamp`, and bodies must be strings: the types here make both impossible to forget.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

/// Content type of a mediator response.
pub const CONTENT_TYPE: &str = "application/json+openhim";

/// Transaction status as shown in the OpenHIM console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TransactionStatus {
    Successful,
    Completed,
    #[serde(rename = "Completed with error(s)")]
    CompletedWithErrors,
    Failed,
    Processing,
}

impl TransactionStatus {
    /// The status a response implies when the handler says nothing more specific:
    /// 2xx succeeded, 4xx was a request the mediator could not act on (OpenHIM's "Completed"),
    /// anything else failed.
    pub fn from_http(status: u16) -> Self {
        match status {
            200..=299 => Self::Successful,
            400..=499 => Self::Completed,
            _ => Self::Failed,
        }
    }
}

/// ISO-8601 UTC timestamp with milliseconds, as OpenHIM stores them.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The request side of an orchestration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrchestrationRequest {
    pub method: String,
    pub host: String,
    pub port: String,
    pub path: String,
    pub querystring: String,
    pub headers: BTreeMap<String, String>,
    pub body: String,
    pub timestamp: String,
}

/// A response (of an orchestration, or of the mediator itself).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResponseRecord {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
    pub timestamp: String,
}

/// An orchestration error (no response was received).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrchestrationError {
    pub message: String,
}

/// One upstream call made while handling a request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Orchestration {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub request: OrchestrationRequest,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<ResponseRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<OrchestrationError>,
}

/// The whole mediator response.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Envelope {
    #[serde(rename = "x-mediator-urn")]
    pub urn: String,
    pub status: TransactionStatus,
    pub response: ResponseRecord,
    pub orchestrations: Vec<Orchestration>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
    /// Set on transient failures: OpenHIM queues a channel's auto-retry only for a mediator
    /// response with a top-level `error` (not for its status).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<OrchestrationError>,
}

impl Envelope {
    /// Wraps the mediator's own response. `status` defaults to what the HTTP status implies.
    pub fn new(urn: &str, response: ResponseRecord, status: Option<TransactionStatus>) -> Self {
        let status = status.unwrap_or_else(|| TransactionStatus::from_http(response.status));
        Self {
            urn: urn.to_owned(),
            status,
            response,
            orchestrations: Vec::new(),
            properties: BTreeMap::new(),
            error: None,
        }
    }

    pub fn with_orchestrations(mut self, orchestrations: Vec<Orchestration>) -> Self {
        self.orchestrations = orchestrations;
        self
    }

    pub fn with_error(mut self, message: impl Into<String>) -> Self {
        self.error = Some(OrchestrationError { message: message.into() });
        self
    }

    pub fn with_property(mut self, key: &str, value: impl Into<String>) -> Self {
        self.properties.insert(key.to_owned(), value.into());
        self
    }

    /// The JSON OpenHIM reads. Serialising these plain types cannot fail; invalid JSON here would
    /// make OpenHIM answer 500 and retry, so a fallback is kept anyway.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| {
            tracing::error!(error = %e, "could not serialise the OpenHIM envelope");
            format!(r#"{{"x-mediator-urn":{:?},"status":"Failed","response":{{"status":500,"headers":{{}},"body":"","timestamp":{:?}}}}}"#, self.urn, timestamp(Utc::now()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(status: u16, body: &str) -> ResponseRecord {
        ResponseRecord {
            status,
            headers: BTreeMap::from([("content-type".into(), "application/fhir+json".into())]),
            body: body.into(),
            timestamp: "2026-11-21T06:00:00.000Z".into(),
        }
    }

    #[test]
    fn envelope_serialises_with_the_field_names_openhim_requires() {
        let orch = Orchestration {
            name: "FHIR PUT Patient".into(),
            group: None,
            request: OrchestrationRequest {
                method: "PUT".into(),
                host: "fhir".into(),
                port: "8090".into(),
                path: "/Patient/p1".into(),
                querystring: "a=1".into(),
                headers: BTreeMap::new(),
                body: "{}".into(),
                timestamp: "2026-11-21T06:00:00.000Z".into(),
            },
            response: Some(record(201, "{\"id\":\"p1\"}")),
            error: None,
        };
        let env = Envelope::new("urn:mediator:x", record(201, "{\"id\":\"p1\"}"), None)
            .with_orchestrations(vec![orch])
            .with_property("patient", "p1");
        let v: serde_json::Value = serde_json::from_str(&env.to_json()).unwrap();
        assert_eq!(v["x-mediator-urn"], "urn:mediator:x");
        assert_eq!(v["status"], "Successful");
        assert_eq!(v["response"]["status"], 201);
        assert_eq!(v["response"]["body"], "{\"id\":\"p1\"}", "bodies are strings");
        assert_eq!(v["orchestrations"][0]["name"], "FHIR PUT Patient");
        assert_eq!(v["orchestrations"][0]["request"]["querystring"], "a=1");
        assert_eq!(v["orchestrations"][0]["request"]["timestamp"], "2026-11-21T06:00:00.000Z");
        assert_eq!(v["orchestrations"][0]["response"]["status"], 201);
        assert!(v["orchestrations"][0].get("error").is_none());
        assert_eq!(v["properties"], json!({"patient": "p1"}));
    }

    #[test]
    fn status_is_truthful_by_default_and_can_be_overridden() {
        assert_eq!(Envelope::new("u", record(502, ""), None).status, TransactionStatus::Failed);
        assert_eq!(Envelope::new("u", record(422, ""), None).status, TransactionStatus::Completed);
        let dead_letter = Envelope::new("u", record(202, ""), Some(TransactionStatus::Failed));
        assert_eq!(serde_json::to_value(&dead_letter).unwrap()["status"], "Failed");
        let retry = serde_json::to_value(Envelope::new("u", record(503, ""), None).with_error("FHIR down")).unwrap();
        assert_eq!(retry["error"]["message"], "FHIR down");
        assert!(serde_json::to_value(Envelope::new("u", record(201, ""), None)).unwrap().get("error").is_none());
        let partial = Envelope::new("u", record(200, ""), Some(TransactionStatus::CompletedWithErrors));
        assert_eq!(serde_json::to_value(&partial).unwrap()["status"], "Completed with error(s)");
    }
}
