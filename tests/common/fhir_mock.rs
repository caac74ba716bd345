//! wiremock as a FHIR server that accepts everything, answering transactions as a real server
//! does: a `transaction-response` with one `201 Created` entry per entry sent (the mediator
//! checks every entry's status, so an empty answer is a failure now).

use serde_json::{Value, json};
use wiremock::{Request, Respond, ResponseTemplate};

/// Answers a transaction Bundle with one created entry per request entry.
pub struct TransactionEcho;

impl Respond for TransactionEcho {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let sent: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let entries: Vec<Value> = sent["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                let mut resource = e["resource"].clone();
                if resource.is_object() && resource.get("id").is_none() {
                    resource["id"] = json!(uuid::Uuid::new_v4().to_string());
                }
                json!({"resource": resource, "response": {"status": "201 Created"}})
            })
            .collect();
        ResponseTemplate::new(200)
            .set_body_json(json!({"resourceType": "Bundle", "type": "transaction-response", "entry": entries}))
    }
}
