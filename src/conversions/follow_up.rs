//! An LTFU follow-up request from another system (a ServiceRequest, or a Task it wrote itself)
//! → the FHIR Task the mediator tracks it with, and the fields of the CHT follow-up record.
//! Pure: the pipeline (`crate::outbound::follow_up`) does the reads and writes.

use serde_json::{Map, Value, json};

use super::ConversionError;
use super::ids::derived_id;
use crate::fhir::client::is_valid_id;
use crate::fhir::profiles::TASK;
use crate::fhir::store::KEY_SYSTEM;
use crate::json::JsonExt;

const TASK_CODE: &str = "http://hl7.org/fhir/CodeSystem/task-code";

/// How the request names its patient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectRef {
    Id(String),
    Identifier { system: Option<String>, value: String },
}

/// A parsed follow-up request.
#[derive(Debug, Clone, PartialEq)]
pub struct FollowUpRequest {
    /// The ServiceRequest to store (None when the requester sent a Task).
    pub service_request: Option<Value>,
    /// The Task id (deterministic: the same request always maps to the same Task).
    pub task_id: String,
    pub subject: SubjectRef,
    /// `"ServiceRequest.subject"` or `"Task.for"`, for error messages.
    pub subject_element: &'static str,
    /// The request as sent (a Task from the requester is kept and completed).
    pub original: Value,
}

/// Parses a ServiceRequest or Task sent to the follow-up endpoints.
pub fn parse_request(request: &Value) -> Result<FollowUpRequest, ConversionError> {
    let kind = request["resourceType"].as_str().unwrap_or_default();
    let (subject_key, subject_element) = match kind {
        "ServiceRequest" => ("subject", "ServiceRequest.subject"),
        "Task" => ("for", "Task.for"),
        _ => return Err(ConversionError::at("resourceType", "must be ServiceRequest or Task")),
    };
    if kind == "Task" && request["intent"] != "order" {
        return Err(ConversionError::at("Task.intent", "a follow-up request is a Task with intent order"));
    }
    let subject = subject_ref(&request[subject_key]).ok_or_else(|| {
        ConversionError::at(subject_element, "must reference the Patient (reference Patient/{id}, or an identifier)")
    })?;
    if let SubjectRef::Identifier { system, value } = &subject {
        super::lookup_key(&format!("{subject_element}.identifier.value"), value)?;
        super::lookup_key(&format!("{subject_element}.identifier.system"), system.as_deref().unwrap_or_default())?;
    }
    let request_id = stable_id(kind, request);
    let (service_request, task_id) = match kind {
        "ServiceRequest" => {
            let mut sr = request.clone();
            sr.set("id", json!(request_id));
            with_key(&mut sr, &request_id);
            (Some(sr), derived_id(&["follow-up-task", &request_id]))
        }
        _ => (None, request_id),
    };
    Ok(FollowUpRequest { service_request, task_id, subject, subject_element, original: request.clone() })
}

/// The request's own id when valid, else one derived from its first identifier, else from its
/// content: a resend of the same request maps to the same resources.
fn stable_id(kind: &str, request: &Value) -> String {
    if let Some(id) = request["id"].as_str().filter(|id| is_valid_id(id)) {
        return id.to_owned();
    }
    let identifier = &request.at("identifier").nth(0);
    if let Some(value) = identifier["value"].as_str() {
        return derived_id(&[kind, identifier["system"].as_str().unwrap_or_default(), value]);
    }
    derived_id(&[kind, &request.to_string()])
}

fn subject_ref(subject: &Value) -> Option<SubjectRef> {
    if let Some(reference) = subject["reference"].as_str() {
        let mut parts = reference.rsplit('/');
        let (id, kind) = (parts.next()?, parts.next()?);
        return (kind == "Patient" && is_valid_id(id)).then(|| SubjectRef::Id(id.to_owned()));
    }
    let value = subject.at("identifier").at("value").as_str()?;
    Some(SubjectRef::Identifier {
        system: subject.at("identifier").at("system").as_str().map(str::to_owned),
        value: value.to_owned(),
    })
}

/// The Task tracking the request, `requested`, for FHIR Patient `patient_id`.
pub fn new_task(request: &FollowUpRequest, patient_id: &str, authored_on: &str) -> Value {
    let mut task = match &request.service_request {
        None => request.original.clone(),
        Some(sr) => {
            let sr_ref = json!({"reference": format!("ServiceRequest/{}", sr["id"].as_str().unwrap_or_default())});
            let mut task = json!({
                "resourceType": "Task",
                "basedOn": [sr_ref],
                "focus": sr_ref,
                "authoredOn": sr["authoredOn"].as_str().unwrap_or(authored_on),
            });
            for (from, to) in [("requester", "requester"), ("note", "note"), ("priority", "priority")] {
                if let Some(v) = sr.get(from) {
                    task.set(to, v.clone());
                }
            }
            if let Some(reason) = sr["reasonCode"].get(0) {
                task.set("reasonCode", reason.clone());
            }
            task
        }
    };
    task.set("id", json!(request.task_id));
    task.set("meta", json!({"profile": [TASK]}));
    task.set("status", json!("requested"));
    task.set("intent", json!("order"));
    task.set("code", json!({"coding": [{"system": TASK_CODE, "code": "fulfill"}]}));
    task.set("for", json!({"reference": format!("Patient/{patient_id}")}));
    if task.get("authoredOn").is_none() {
        task.set("authoredOn", json!(authored_on));
    }
    with_key(&mut task, &request.task_id);
    task
}

/// Adds the identifier a resource is written by where the server assigns ids
/// (`crate::fhir::store::KEY_SYSTEM` and its deterministic id), once.
fn with_key(resource: &mut Value, id: &str) {
    let key = json!({"system": KEY_SYSTEM, "value": id});
    let mut identifiers: Vec<Value> = resource.at("identifier").as_array().cloned().unwrap_or_default();
    if !identifiers.contains(&key) {
        identifiers.push(key);
    }
    resource.set("identifier", Value::Array(identifiers));
}

/// The fields of the CHT follow-up record (lower-case keys: CHT keeps only those its JSON form
/// defines). `patient_uuid` attaches the record, and so the CHW's task, to the patient.
pub fn record_fields(task: &Value, patient_uuid: &str, patient_short_code: Option<&str>) -> Map<String, Value> {
    let text = |v: &Value| {
        v["text"]
            .as_str()
            .or_else(|| v.at("coding").nth(0).at("display").as_str())
            .or_else(|| v.at("coding").nth(0).at("code").as_str())
            .map(str::to_owned)
    };
    let mut fields = Map::new();
    fields.insert("patient_uuid".into(), json!(patient_uuid));
    if let Some(code) = patient_short_code {
        fields.insert("patient_id".into(), json!(code));
    }
    fields.insert("task_id".into(), json!(task["id"]));
    if let Some(sr) = task.at("focus").at("reference").as_str() {
        fields.insert("service_request_id".into(), json!(sr.trim_start_matches("ServiceRequest/")));
    }
    if let Some(reason) = text(&task["reasonCode"]) {
        fields.insert("reason".into(), json!(reason));
    }
    let notes: Vec<&str> = task["note"].as_array().into_iter().flatten().filter_map(|n| n["text"].as_str()).collect();
    if !notes.is_empty() {
        fields.insert("note".into(), json!(notes.join("\n")));
    }
    if let Some(requester) = task.at("requester").at("display").as_str() {
        fields.insert("requester".into(), json!(requester));
    }
    fields
}

/// The Task once CHT has the follow-up record: `received`, identified by the record id (the
/// inbound side finds it by that when the CHW reports the outcome).
pub fn received(task: &Value, record_id: &str, document_system: &str, now: &str) -> Value {
    let mut task = task.clone();
    task.set("status", json!("received"));
    task.set("lastModified", json!(now));
    let identifier =
        json!({"use": "secondary", "type": {"text": "CHT Document ID"}, "system": document_system, "value": record_id});
    let mut identifiers: Vec<Value> = task.at("identifier").as_array().cloned().unwrap_or_default();
    if !identifiers.iter().any(|i| i["system"] == document_system && i["value"] == record_id) {
        identifiers.push(identifier);
    }
    task.set("identifier", json!(identifiers));
    task
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sr() -> Value {
        json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
            "identifier": [{"system": "https://emr.example.org/orders", "value": "ORD-1"}],
            "subject": {"reference": "Patient/p-1"}, "requester": {"reference": "Organization/clinic-1", "display": "Kondele clinic"},
            "reasonCode": [{"text": "Missed ART refill"}], "note": [{"text": "Call first"}], "authoredOn": "2026-11-20T08:00:00Z"})
    }

    #[test]
    fn the_same_request_maps_to_the_same_task() {
        let a = parse_request(&sr()).unwrap();
        assert_eq!(a.task_id, parse_request(&sr()).unwrap().task_id);
        assert_eq!(a.subject, SubjectRef::Id("p-1".into()));
        let mut other = sr();
        other["identifier"][0]["value"] = json!("ORD-2");
        assert_ne!(parse_request(&other).unwrap().task_id, a.task_id);
    }

    #[test]
    fn task_and_record_fields() {
        let request = parse_request(&sr()).unwrap();
        let task = new_task(&request, "p-1", "2026-11-21T00:00:00Z");
        assert_eq!(crate::fhir::validate::validate(&task), Ok(()));
        assert_eq!(task["authoredOn"], "2026-11-20T08:00:00Z");
        assert_eq!(task["basedOn"][0], task["focus"]);
        let fields = record_fields(&task, "cht-uuid-1", Some("45821"));
        assert_eq!(fields["patient_uuid"], "cht-uuid-1");
        assert_eq!(fields["task_id"], json!(request.task_id));
        assert_eq!(fields["reason"], "Missed ART refill");
        assert_eq!(fields["requester"], "Kondele clinic");
        assert!(fields.keys().all(|k| k == &k.to_lowercase()));
        let got = received(&task, "rec-1", "https://cht/doc", "2026-11-21T01:00:00Z");
        assert_eq!(got["status"], "received");
        assert!(
            got["identifier"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["value"] == "rec-1" && i["system"] == "https://cht/doc")
        );
        assert!(got["identifier"].as_array().unwrap().iter().any(|i| i["system"] == KEY_SYSTEM), "its key");
        assert_eq!(received(&got, "rec-1", "https://cht/doc", "x")["identifier"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn bad_requests_name_the_element() {
        let mut no_subject = sr();
        no_subject.as_object_mut().unwrap().remove("subject");
        assert_eq!(parse_request(&no_subject).unwrap_err().element.as_deref(), Some("ServiceRequest.subject"));
        let mut group = sr();
        group["subject"] = json!({"reference": "Group/g1"});
        assert!(parse_request(&group).is_err());
        let plan = json!({"resourceType": "Task", "intent": "plan", "for": {"reference": "Patient/p"}});
        assert_eq!(parse_request(&plan).unwrap_err().element.as_deref(), Some("Task.intent"));
        assert_eq!(
            parse_request(&json!({"resourceType": "Patient"})).unwrap_err().element.as_deref(),
            Some("resourceType")
        );
    }
}
