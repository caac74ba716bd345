//! The mediator's writes as one transaction Bundle, for the write mode of each resource type, and
//! an honest reading of the server's answer: a transaction is done only when the server answered
//! a `transaction-response` whose every entry is 2xx. A `batch-response` (a server running the
//! transaction as a non-atomic batch), a missing or failing entry: the whole request failed, with
//! that entry's reason.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::capabilities::WriteMode;
use super::client::FhirError;
use crate::error::ApiError;
use crate::json::JsonExt;
use crate::upstream::join_url;

/// The identifier a resource is known by (what conditional writes search for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub system: String,
    pub value: String,
}

impl Key {
    pub fn new(system: &str, value: &str) -> Self {
        Self { system: system.to_owned(), value: value.to_owned() }
    }

    /// `system|value`, as a search token.
    pub fn token(&self) -> String {
        format!("{}|{}", self.system, self.value)
    }
}

/// One write of a transaction.
#[derive(Debug, Clone)]
pub enum Write {
    /// Create or update `resource` (carrying its deterministic `id`), known by `key`.
    Upsert { resource: Value, key: Key },
    /// Update a resource the server has (its server id in `resource.id`), only if it is still at
    /// `version` when given (`If-Match`).
    Update { resource: Value, version: Option<String> },
    /// Delete `kind/id` (a server id); one already gone is fine.
    Delete { kind: String, id: String },
}

impl Write {
    fn kind(&self) -> &str {
        match self {
            Self::Upsert { resource, .. } | Self::Update { resource, .. } => {
                resource.at("resourceType").as_str().unwrap_or_default()
            }
            Self::Delete { kind, .. } => kind,
        }
    }
}

/// The transaction Bundle for `writes`, each type written as `mode` says. In conditional mode
/// a new resource has no id yet: its `fullUrl` is a `urn:uuid:` placeholder, and every reference
/// to it from the other entries points at that placeholder (the server resolves them).
pub fn bundle(base: &url::Url, writes: &[Write], mode: impl Fn(&str) -> WriteMode) -> Value {
    let mut placeholders: HashMap<String, String> = HashMap::new();
    for write in writes {
        if let Write::Upsert { resource, .. } = write
            && mode(write.kind()) == WriteMode::Conditional
        {
            let local = format!("{}/{}", write.kind(), resource.at("id").as_str().unwrap_or_default());
            let urn = format!("urn:uuid:{}", crate::conversions::ids::derived_id(&["placeholder", &local]));
            placeholders.insert(local, urn);
        }
    }
    let entries: Vec<Value> = writes
        .iter()
        .map(|write| {
            let kind = write.kind().to_owned();
            match write {
                Write::Upsert { resource, key } if mode(&kind) == WriteMode::Conditional => {
                    let local = format!("{kind}/{}", resource.at("id").as_str().unwrap_or_default());
                    let mut resource = repointed(resource, &placeholders);
                    if let Some(object) = resource.as_object_mut() {
                        object.remove("id");
                    }
                    let query = url::form_urlencoded::Serializer::new(String::new())
                        .append_pair("identifier", &key.token())
                        .finish();
                    json!({"fullUrl": placeholders.get(&local), "resource": resource,
                        "request": {"method": "PUT", "url": format!("{kind}?{query}")}})
                }
                Write::Upsert { resource, .. } | Write::Update { resource, version: None } => {
                    put(base, &kind, &repointed(resource, &placeholders), None)
                }
                Write::Update { resource, version: Some(version) } => {
                    put(base, &kind, &repointed(resource, &placeholders), Some(version))
                }
                // A conditional delete on `_id`: deleting what is already gone succeeds instead
                // of failing the whole transaction (HFS answers 400 to a plain DELETE of it).
                Write::Delete { kind, id } => {
                    json!({"request": {"method": "DELETE", "url": format!("{kind}?_id={id}")}})
                }
            }
        })
        .collect();
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

fn put(base: &url::Url, kind: &str, resource: &Value, version: Option<&str>) -> Value {
    let id = resource.at("id").as_str().unwrap_or_default();
    let full_url = join_url(base, &format!("{kind}/{id}")).map(|u| u.to_string()).unwrap_or_default();
    let mut request = json!({"method": "PUT", "url": format!("{kind}/{id}")});
    if let Some(version) = version {
        request.set("ifMatch", json!(format!("W/\"{version}\"")));
    }
    json!({"fullUrl": full_url, "resource": resource, "request": request})
}

/// `resource` with every `reference` that names a placeholder'd resource pointing at it.
fn repointed(resource: &Value, placeholders: &HashMap<String, String>) -> Value {
    // With client ids there is nothing to repoint: a plain clone keeps the maps' hashes instead
    // of hashing every key again (a report's bundle cost more than its conversion, bench/README.md).
    if placeholders.is_empty() {
        return resource.clone();
    }
    match resource {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let swapped = (k == "reference").then(|| v.as_str().and_then(|r| placeholders.get(r))).flatten();
                    (k.clone(), swapped.map_or_else(|| repointed(v, placeholders), |urn| json!(urn)))
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|i| repointed(i, placeholders)).collect()),
        other => other.clone(),
    }
}

/// Whether a status may succeed if tried again (server trouble, conflicts, rate limits, and
/// the server refusing the mediator's credentials: an admin fixes those, not the sender).
pub fn transient_status(status: u16) -> bool {
    matches!(status, 401 | 403 | 408 | 409 | 412 | 423 | 429) || status >= 500
}

/// Checks a transaction's answer: `transaction-response`, one 2xx entry per write.
pub fn check_response(response: &Value, writes: &[Write]) -> Result<(), FhirError> {
    let refused = |detail: String| FhirError::Transient(ApiError::Refused { target: "FHIR server", detail });
    match response.at("type").as_str() {
        Some("transaction-response") => {}
        Some("batch-response") => {
            return Err(refused(
                "it answered the transaction with a batch-response: it ran the entries one by one, not atomically \
                 (enable transactions on the server, e.g. Medplum's transaction-bundles project feature)"
                    .into(),
            ));
        }
        _ => return Err(refused("its answer to the transaction is not a transaction-response Bundle".into())),
    }
    let entries = response.at("entry").as_array().map(Vec::as_slice).unwrap_or_default();
    if entries.len() != writes.len() {
        return Err(refused(format!("it answered {} entries for {} written", entries.len(), writes.len())));
    }
    for (i, (entry, write)) in entries.iter().zip(writes).enumerate() {
        let status_text = entry.at("response").at("status").as_str().unwrap_or_default();
        let status: u16 = status_text.split_whitespace().next().and_then(|s| s.parse().ok()).unwrap_or(0);
        if (200..300).contains(&status) {
            continue;
        }
        let outcome = entry.at("response").at("outcome").clone();
        let reason = format!("entry {i} ({}): {status_text}: {}", write.kind(), outcome_reason(&outcome));
        return Err(if status == 0 || transient_status(status) {
            refused(reason)
        } else {
            FhirError::Rejected {
                status,
                outcome: json!({"resourceType": "OperationOutcome", "issue": [
                {"severity": "error", "code": "processing", "diagnostics": reason}]}),
            }
        });
    }
    Ok(())
}

/// Why an OperationOutcome refused: each error (or fatal) issue's `diagnostics`, else
/// `details.text`, with its `expression` (servers put the reason in different places: Medplum in
/// `details.text`). Warnings and information are left out when there is an error, since a
/// validating server (HAPI) lists dozens of them beside the one error that matters.
pub fn outcome_reason(outcome: &Value) -> String {
    let all = outcome.at("issue").as_array().map(Vec::as_slice).unwrap_or_default();
    let is_error = |issue: &&Value| matches!(issue.at("severity").as_str(), Some("error" | "fatal"));
    let errors: Vec<&Value> = all.iter().filter(is_error).collect();
    let chosen: Vec<&Value> = if errors.is_empty() { all.iter().collect() } else { errors };
    let issues: Vec<String> = chosen
        .into_iter()
        .map(|issue| {
            let text = issue
                .at("diagnostics")
                .as_str()
                .or_else(|| issue.at("details").at("text").as_str())
                .unwrap_or("no reason given");
            let at: Vec<&str> =
                issue.at("expression").as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            if at.is_empty() { text.to_owned() } else { format!("{text} (at {})", at.join(", ")) }
        })
        .collect();
    if issues.is_empty() { "no OperationOutcome".into() } else { issues.join("; ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> url::Url {
        "http://fhir:8080/r4".parse().unwrap()
    }

    fn writes() -> Vec<Write> {
        vec![
            Write::Upsert {
                resource: json!({"resourceType": "Encounter", "id": "e1", "subject": {"reference": "Patient/srv-9"}}),
                key: Key::new("https://x/doc", "r1"),
            },
            Write::Upsert {
                resource: json!({"resourceType": "Observation", "id": "o1", "encounter": {"reference": "Encounter/e1"}}),
                key: Key::new("https://x/key", "o1"),
            },
            Write::Update {
                resource: json!({"resourceType": "Task", "id": "t-srv", "output": [{"valueReference": {"reference": "Encounter/e1"}}]}),
                version: Some("3".into()),
            },
            Write::Delete { kind: "Observation".into(), id: "old".into() },
        ]
    }

    #[test]
    fn client_ids_mode_puts_by_id() {
        let b = bundle(&base(), &writes(), |_| WriteMode::ClientIds);
        assert_eq!(b["entry"][0]["request"], json!({"method": "PUT", "url": "Encounter/e1"}));
        assert_eq!(b["entry"][1]["resource"]["encounter"]["reference"], "Encounter/e1");
        assert_eq!(b["entry"][2]["request"]["ifMatch"], "W/\"3\"");
        assert_eq!(b["entry"][3]["request"]["url"], "Observation?_id=old");
    }

    #[test]
    fn conditional_mode_writes_by_identifier_with_placeholders() {
        let b = bundle(&base(), &writes(), |_| WriteMode::Conditional);
        let encounter = &b["entry"][0];
        assert_eq!(encounter["request"]["url"], "Encounter?identifier=https%3A%2F%2Fx%2Fdoc%7Cr1");
        assert!(encounter["resource"].get("id").is_none(), "the server assigns the id");
        let urn = encounter["fullUrl"].as_str().unwrap();
        assert!(urn.starts_with("urn:uuid:"));
        assert_eq!(b["entry"][1]["resource"]["encounter"]["reference"], urn, "references follow the placeholder");
        assert_eq!(b["entry"][2]["resource"]["output"][0]["valueReference"]["reference"], urn);
        assert_eq!(b["entry"][0]["resource"]["subject"]["reference"], "Patient/srv-9", "outside references stay");
        assert_eq!(b["entry"][2]["request"]["url"], "Task/t-srv", "an update of a known resource is by id");
    }

    #[test]
    fn only_a_transaction_response_of_2xx_entries_is_success() {
        let w = writes();
        let ok = |statuses: &[&str]| {
            json!({"resourceType": "Bundle", "type": "transaction-response",
            "entry": statuses.iter().map(|s| json!({"response": {"status": s}})).collect::<Vec<_>>()})
        };
        assert!(check_response(&ok(&["201 Created", "200 OK", "200", "204 No Content"]), &w).is_ok());
        let mut batch = ok(&["201", "201", "201", "204"]);
        batch["type"] = json!("batch-response");
        assert!(matches!(check_response(&batch, &w), Err(FhirError::Transient(_))));
        let failing = json!({"resourceType": "Bundle", "type": "transaction-response", "entry": [
            {"response": {"status": "201"}}, {"response": {"status": "404 Not Found", "outcome": {"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "not-found", "details": {"text": "Not found"}, "expression": ["Observation.encounter"]}]}}},
            {"response": {"status": "200"}}, {"response": {"status": "204"}}]});
        match check_response(&failing, &w) {
            Err(FhirError::Rejected { status: 404, outcome }) => {
                let said = outcome["issue"][0]["diagnostics"].as_str().unwrap();
                assert!(
                    said.contains("entry 1 (Observation)") && said.contains("Not found (at Observation.encounter)"),
                    "{said}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(check_response(&ok(&["201"]), &w).is_err(), "entries missing");
    }

    #[test]
    fn a_reason_names_the_errors_not_the_warnings_beside_them() {
        let outcome = json!({"resourceType": "OperationOutcome", "issue": [
            {"severity": "information", "code": "informational", "diagnostics": "profile loaded"},
            {"severity": "error", "code": "invariant", "diagnostics": "Task.for is required", "expression": ["Task.for"]},
            {"severity": "warning", "code": "business-rule", "diagnostics": "no narrative"}]});
        assert_eq!(outcome_reason(&outcome), "Task.for is required (at Task.for)");
        let only_warnings = json!({"issue": [{"severity": "warning", "diagnostics": "no narrative"}]});
        assert_eq!(outcome_reason(&only_warnings), "no narrative");
        assert_eq!(outcome_reason(&json!({})), "no OperationOutcome");
    }
}
