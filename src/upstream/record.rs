//! What an upstream call leaves in OpenHIM: the request and response as orchestration records,
//! without credentials (OpenHIM stores and shows them) and with bodies cut at
//! [`RECORDED_BODY_LIMIT`].

use std::collections::BTreeMap;

use chrono::Utc;
use reqwest::header::HeaderMap;

use super::UpstreamResponse;
use crate::openhim::envelope::{OrchestrationRequest, ResponseRecord, timestamp};

/// Headers never copied into orchestrations (OpenHIM stores them).
const REDACTED_HEADERS: &[&str] =
    &["authorization", "proxy-authorization", "cookie", "set-cookie", "auth-token", "auth-salt"];

fn header_map(headers: &HeaderMap) -> BTreeMap<String, String> {
    headers
        .iter()
        .filter(|(name, _)| !REDACTED_HEADERS.contains(&name.as_str()))
        .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
        .collect()
}

pub(super) fn record_request(request: &reqwest::Request) -> OrchestrationRequest {
    let url = request.url();
    let body = request.body().and_then(|b| b.as_bytes()).map(recorded_body);
    OrchestrationRequest {
        method: request.method().as_str().to_owned(),
        host: url.host_str().unwrap_or_default().to_owned(),
        port: url.port_or_known_default().map(|p| p.to_string()).unwrap_or_default(),
        path: url.path().to_owned(),
        querystring: url.query().unwrap_or_default().to_owned(),
        headers: header_map(request.headers()),
        body: body.unwrap_or_default(),
        timestamp: timestamp(Utc::now()),
    }
}

pub(super) fn record_response(response: &UpstreamResponse) -> ResponseRecord {
    ResponseRecord {
        status: response.status.as_u16(),
        headers: header_map(&response.headers),
        body: recorded_body(&response.body),
        timestamp: timestamp(Utc::now()),
    }
}

/// The most of a body an orchestration records. OpenHIM stores every orchestration in the
/// transaction's MongoDB document (16 MB at most): a FHIR server's CapabilityStatement (HFS: 2.5 MB)
/// recorded whole, twice (its orchestration, then inside the mediator's own response), made each
/// transaction that read it 5.7 MB. What an admin needs to see fits well within this.
pub const RECORDED_BODY_LIMIT: usize = 64 * 1024;

/// `body` as an orchestration records it: text, cut at [`RECORDED_BODY_LIMIT`] (on a character
/// boundary) with a note of what was left out.
fn recorded_body(body: &[u8]) -> String {
    let Some(head) = body.get(..RECORDED_BODY_LIMIT).filter(|_| body.len() > RECORDED_BODY_LIMIT) else {
        return String::from_utf8_lossy(body).into_owned();
    };
    let mut text = String::from_utf8_lossy(head).into_owned();
    // A multi-byte character cut in two decodes as U+FFFD at the end: drop it.
    while text.ends_with('\u{FFFD}') {
        text.pop();
    }
    text.push_str(&format!("… [{} bytes in all; the mediator records the first {RECORDED_BODY_LIMIT}]", body.len()));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_recorded_without_credentials() {
        let client = reqwest::Client::new();
        let req = client
            .put("https://fhir.example.org:8443/r4/Patient/p1?_format=json")
            .basic_auth("user", Some("pw"))
            .header("content-type", "application/fhir+json")
            .body("{\"resourceType\":\"Patient\"}")
            .build()
            .unwrap();
        let rec = record_request(&req);
        assert_eq!((rec.method.as_str(), rec.host.as_str(), rec.port.as_str()), ("PUT", "fhir.example.org", "8443"));
        assert_eq!((rec.path.as_str(), rec.querystring.as_str()), ("/r4/Patient/p1", "_format=json"));
        assert_eq!(rec.body, "{\"resourceType\":\"Patient\"}");
        assert!(!rec.headers.contains_key("authorization"));
        assert_eq!(rec.headers["content-type"], "application/fhir+json");
    }

    #[test]
    fn big_bodies_are_recorded_cut_with_a_note() {
        assert_eq!(recorded_body(b"{}"), "{}");
        let big = "é".repeat(RECORDED_BODY_LIMIT); // two bytes each: the cut falls inside one
        let rec = recorded_body(big.as_bytes());
        assert!(rec.starts_with("éé"));
        assert!(!rec.contains('\u{FFFD}'), "no half character");
        assert!(rec.ends_with(&format!("… [{} bytes in all; the mediator records the first 65536]", big.len())));
        assert!(rec.len() < RECORDED_BODY_LIMIT + 100);
    }
}
