//! CHT report → Encounter + Observations, and the Task changes a report makes.
//!
//! Two inputs: the cht-docs format `{id, patient_uuid, reported_date, observations: [...]}`, and a
//! whole report doc `{"doc": <data_record>}` converted by its form mapping. [`parse_report`] turns
//! either into a [`ReportInput`]; [`build`] makes the resources once the pipeline knows the
//! patient's FHIR id. Ids are deterministic, so a redelivery rewrites the same resources.

use serde_json::{Value, json};

use super::ids::{derived_id, resource_id};
use super::json_path::{first_string, get, get_all};
use super::mapping::{DEFAULT_SUBJECT_PATHS, FormMappings, TaskKind};
use super::values::{docs_value, mapped_value};
use super::{ConversionError, instant_from_millis, lookup_key};
use crate::fhir::profiles::{ENCOUNTER, OBSERVATION, TASK};
use crate::fhir::store::KEY_SYSTEM;
use crate::json::JsonExt;
use crate::settings::IdentifierSystems;

const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
const TASK_CODE: &str = "http://hl7.org/fhir/CodeSystem/task-code";

/// A report, parsed and mapped, before the patient is resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportInput {
    /// The CHT report `_id`.
    pub id: String,
    pub form: Option<String>,
    pub title: String,
    /// `reported_date` as a FHIR instant.
    pub reported: String,
    /// The patient as the report names it: a CHT `_id` or a `patient_id` short code.
    pub subject: String,
    /// The subject's contact as CHT's hydration pushed it (`doc.patient`, lineage included), when
    /// it is the subject: the Patient to write should FHIR not have it yet.
    pub subject_doc: Option<Value>,
    /// The CHW (CHT contact `_id`) who submitted it.
    pub author: Option<String>,
    pub observations: Vec<ObservationSpec>,
    pub task: Option<TaskSpec>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObservationSpec {
    /// Stable key within the report (the field path, with repeat indices), for the id.
    pub key: String,
    pub code: Value,
    pub value_key: &'static str,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TaskSpec {
    Referral { reason: Option<String>, priority: Option<String> },
    FollowUpOutcome { task_id: Option<String>, source_id: Option<String>, status: &'static str, outcome: String },
}

/// The resources a report becomes.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportResources {
    pub encounter: Value,
    pub observations: Vec<Value>,
    /// A referral's Task, as first written (the pipeline keeps the status of an existing one).
    pub referral: Option<Value>,
}

/// Parses a report payload in either format.
pub fn parse_report(payload: &Value, mappings: &FormMappings) -> Result<ReportInput, ConversionError> {
    match payload.get("doc") {
        Some(doc @ Value::Object(_)) => parse_doc(doc, mappings),
        Some(_) => Err(ConversionError::at("doc", "must be a CHT report document (an object)")),
        None if payload.get("observations").is_some() => parse_docs_format(payload, mappings),
        None if payload.get("type").and_then(Value::as_str) == Some("data_record") => parse_doc(payload, mappings),
        None => Err(ConversionError::at(
            "doc",
            "is required: {\"doc\": <report>} or {id, patient_uuid, reported_date, observations}",
        )),
    }
}

fn required_str<'a>(value: &'a Value, key: &str, at: &str) -> Result<&'a str, ConversionError> {
    value
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ConversionError::at(at, "is required"))
}

fn parse_docs_format(payload: &Value, mappings: &FormMappings) -> Result<ReportInput, ConversionError> {
    let id = required_str(payload, "id", "id")?;
    let subject = lookup_key("patient_uuid", required_str(payload, "patient_uuid", "patient_uuid")?)?;
    let reported = instant_from_millis("reported_date", payload.get("reported_date").unwrap_or(&Value::Null))?;
    let items =
        payload["observations"].as_array().ok_or_else(|| ConversionError::at("observations", "must be an array"))?;
    let mut observations = Vec::new();
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("observations[{i}]");
        let code = required_str(item, "code", &format!("{at}.code"))?;
        if crate::fhir::base::primitive::check("code", &Value::String(code.to_owned())).is_err() {
            return Err(ConversionError::at(
                &format!("{at}.code"),
                "is not a code (no tabs, line breaks or double spaces)",
            ));
        }
        let Some((value_key, value)) = docs_value(&at, item, &mappings.observation_code_system)? else { continue };
        let n = seen.entry(code.to_owned()).or_default();
        *n += 1;
        observations.push(ObservationSpec {
            key: format!("{code}#{n}"),
            code: json!({"coding": [{"system": mappings.observation_code_system, "code": code}], "text": code}),
            value_key,
            value,
        });
    }
    Ok(ReportInput {
        id: id.to_owned(),
        form: None,
        title: "CHT report".into(),
        reported,
        subject: subject.to_owned(),
        subject_doc: None,
        author: None,
        observations,
        task: None,
    })
}

fn parse_doc(doc: &Value, mappings: &FormMappings) -> Result<ReportInput, ConversionError> {
    let id = required_str(doc, "_id", "doc._id")?;
    let form = required_str(doc, "form", "doc.form")?;
    let mapping = mappings
        .form(form)
        .ok_or_else(|| ConversionError::at("doc.form", format!("no mapping for form {form:?} in the form mappings")))?;
    let reported = instant_from_millis("doc.reported_date", doc.get("reported_date").unwrap_or(&Value::Null))?;
    let defaults: Vec<String> = DEFAULT_SUBJECT_PATHS.iter().map(|s| s.to_string()).collect();
    let paths = if mapping.subject.is_empty() { &defaults } else { &mapping.subject };
    let (subject_path, subject) = first_string(doc, paths).ok_or_else(|| {
        ConversionError::at("doc.fields.patient_uuid", format!("no patient found at any of {paths:?}"))
    })?;
    lookup_key(&format!("doc.{subject_path}"), subject)?;

    let mut observations = Vec::new();
    for m in &mapping.observations {
        let system = m.code.system.as_deref().unwrap_or(&mappings.observation_code_system);
        let mut coding = json!({"system": system, "code": m.code.code});
        if let Some(display) = &m.code.display {
            coding.set("display", json!(display));
        }
        let code = json!({"coding": [coding], "text": m.code.display.as_deref().unwrap_or(&m.code.code)});
        for (path, raw) in get_all(doc, &m.field) {
            let at = format!("doc.{path}");
            if let Some((value_key, value)) = mapped_value(&at, raw, m, &mappings.observation_code_system)? {
                observations.push(ObservationSpec { key: path, code: code.clone(), value_key, value });
            }
        }
    }
    Ok(ReportInput {
        id: id.to_owned(),
        form: Some(form.to_owned()),
        title: mapping.title.clone().unwrap_or_else(|| form.to_owned()),
        reported,
        subject: subject.trim().to_owned(),
        subject_doc: ["patient", "place"]
            .iter()
            .map(|k| &doc[*k])
            .find(|c| c.is_object() && c["_id"].as_str() == Some(subject.trim()))
            .cloned(),
        author: get(doc, "contact._id").and_then(Value::as_str).map(str::to_owned),
        observations,
        task: mapping.task.as_ref().map(|t| task_spec(doc, t)).transpose()?,
    })
}

fn task_spec(doc: &Value, task: &super::mapping::TaskMapping) -> Result<TaskSpec, ConversionError> {
    let text = |field: &Option<String>| {
        field
            .as_deref()
            .and_then(|f| get(doc, f))
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    match task.kind {
        TaskKind::Referral => {
            let priority = match text(&task.priority_field) {
                None => None,
                Some(answer) => Some(task.priority_values.get(&answer).cloned().ok_or_else(|| {
                    let field = task.priority_field.as_deref().unwrap_or_default();
                    ConversionError::at(
                        &format!("doc.{field}"),
                        format!("{answer:?} has no priority in priority_values"),
                    )
                })?),
            };
            Ok(TaskSpec::Referral { reason: text(&task.reason_field), priority })
        }
        TaskKind::FollowUpOutcome => {
            let field = task.outcome_field.as_deref().unwrap_or_default();
            let at = format!("doc.{field}");
            let outcome = text(&task.outcome_field)
                .ok_or_else(|| ConversionError::at(&at, "is required to close the follow-up Task"))?;
            let status = if task.completed_values.contains(&outcome) {
                "completed"
            } else if task.failed_values.contains(&outcome) {
                "failed"
            } else {
                return Err(ConversionError::at(
                    &at,
                    format!("{outcome:?} is in neither completed_values nor failed_values"),
                ));
            };
            let (task_id, source_id) = (text(&task.task_id_field), text(&task.source_field));
            let at = |field: &Option<String>| format!("doc.{}", field.as_deref().unwrap_or_default());
            if task_id.as_deref().is_some_and(|id| !crate::fhir::client::is_valid_id(id)) {
                return Err(ConversionError::at(
                    &at(&task.task_id_field),
                    "is not a FHIR Task id ([A-Za-z0-9-.]{1,64})",
                ));
            }
            if let Some(source) = &source_id {
                lookup_key(&at(&task.source_field), source)?;
            }
            if task_id.is_none() && source_id.is_none() {
                let fields = format!("{:?} / {:?}", task.task_id_field, task.source_field);
                return Err(ConversionError::at(
                    "doc.fields.inputs.source_id",
                    format!("the follow-up names no Task ({fields})"),
                ));
            }
            Ok(TaskSpec::FollowUpOutcome { task_id, source_id, status, outcome })
        }
    }
}

/// Builds the resources for `input` about FHIR Patient `patient_id`.
pub fn build(
    input: &ReportInput,
    patient_id: &str,
    systems: &IdentifierSystems,
    mappings: &FormMappings,
) -> ReportResources {
    let encounter_id = resource_id(&input.id);
    let patient = format!("Patient/{patient_id}");
    let encounter_ref = format!("Encounter/{encounter_id}");
    let mut encounter_type = json!({"text": input.title});
    if let Some(form) = &input.form {
        encounter_type.set("coding", json!([{"system": mappings.form_code_system, "code": form}]));
    }
    let mut encounter = json!({
        "resourceType": "Encounter",
        "id": encounter_id,
        "meta": {"profile": [ENCOUNTER]},
        "identifier": [{"use": "official", "type": {"text": "CHT Document ID"}, "system": systems.document_id, "value": input.id}],
        "status": "finished",
        "class": {"system": ACT_CODE, "code": "HH", "display": "home health"},
        "type": [encounter_type],
        "subject": {"reference": patient},
        "period": {"start": input.reported},
    });
    if let Some(chw) = &input.author {
        encounter.set("participant", json!([{"individual": {"type": "Practitioner", "identifier": {"system": systems.document_id, "value": chw}}}]));
    }
    let observations = input
        .observations
        .iter()
        .map(|o| {
            let id = derived_id(&[&input.id, "observation", &o.key]);
            let mut obs = json!({
                "resourceType": "Observation",
                "id": id,
                "meta": {"profile": [OBSERVATION]},
                // The key it is written by where the server assigns ids (`crate::fhir::store`).
                "identifier": [{"system": KEY_SYSTEM, "value": id}],
                "status": "final",
                "code": o.code,
                "subject": {"reference": patient},
                "encounter": {"reference": encounter_ref},
                "effectiveDateTime": input.reported,
            });
            obs.set(o.value_key, o.value.clone());
            obs
        })
        .collect();
    let referral = match &input.task {
        Some(TaskSpec::Referral { reason, priority }) => {
            let mut task = json!({
                "resourceType": "Task",
                "id": derived_id(&[&input.id, "referral"]),
                "meta": {"profile": [TASK]},
                "identifier": [{"type": {"text": "CHT Document ID"}, "system": systems.document_id, "value": input.id}],
                "status": "requested",
                "intent": "order",
                "code": {"coding": [{"system": TASK_CODE, "code": "fulfill"}]},
                "for": {"reference": patient},
                "encounter": {"reference": encounter_ref},
                "authoredOn": input.reported,
                "lastModified": input.reported,
            });
            if let Some(reason) = reason {
                task.set("reasonCode", json!({"text": reason}));
            }
            if let Some(priority) = priority {
                task.set("priority", json!(priority));
            }
            if let Some(chw) = &input.author {
                task.set(
                    "requester",
                    json!({"type": "Practitioner", "identifier": {"system": systems.document_id, "value": chw}}),
                );
            }
            Some(task)
        }
        _ => None,
    };
    ReportResources { encounter, observations, referral }
}

/// The follow-up Task closed by an outcome report: `status`, the outcome as `businessStatus`,
/// `output` → the Encounter, `lastModified` = when the CHW reported — but never before the Task's
/// `authoredOn`: Task's invariant inv-1 demands it, and a phone's clock may lag the EMR's (a
/// validating server such as HAPI refuses the Task otherwise).
pub fn close_task(task: &Value, status: &str, outcome: &str, encounter_id: &str, reported: &str) -> Value {
    let mut closed = task.clone();
    closed.set("status", json!(status));
    closed.set("businessStatus", json!({"text": outcome}));
    let authored = task.at("authoredOn").as_str();
    closed.set("lastModified", json!(later_of(reported, authored)));
    closed.set(
        "output",
        json!([{"type": {"text": "Encounter"}, "valueReference": {"reference": format!("Encounter/{encounter_id}")}}]),
    );
    closed
}

/// `reported`, or `authored` when that is later (both FHIR dateTimes; an unparsable one loses).
fn later_of<'a>(reported: &'a str, authored: Option<&'a str>) -> &'a str {
    let parse = |t: &str| chrono::DateTime::parse_from_rfc3339(t).ok();
    match (parse(reported), authored.and_then(|a| parse(a).map(|t| (a, t)))) {
        (Some(r), Some((a, t))) if t > r => a,
        (None, Some((a, _))) => a,
        _ => reported,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subject_is_found_as_cht_finds_it() {
        let mappings = FormMappings::parse(crate::conversions::mapping::DEFAULT_FORMS_JSON).unwrap();
        let report = |extra: Value| {
            let mut doc = json!({"_id": "r1", "type": "data_record", "form": "pregnancy_home_visit",
                "reported_date": 1732000000000_i64, "fields": {"patient_uuid": "uuid-1", "patient_id": "12345"}});
            for (k, v) in extra.as_object().unwrap() {
                doc[k] = v.clone();
            }
            parse_doc(&doc, &mappings).unwrap()
        };
        // cht-core's hydration reads fields.patient_id before fields.patient_uuid.
        let plain = report(json!({}));
        assert_eq!((plain.subject.as_str(), plain.subject_doc.is_none()), ("12345", true));
        // And the contact it resolved, pushed as doc.patient, comes first, kept for the Patient.
        let hydrated = report(json!({"patient": {"_id": "uuid-9", "type": "person", "name": "A"}}));
        assert_eq!(hydrated.subject, "uuid-9");
        assert_eq!(hydrated.subject_doc.unwrap()["name"], "A");
    }

    #[test]
    fn a_closed_task_is_never_modified_before_it_was_authored() {
        let task = json!({"resourceType": "Task", "status": "received", "authoredOn": "2026-11-20T08:00:00Z"});
        let late_clock = close_task(&task, "completed", "returned_to_care", "e1", "2026-11-19T10:00:00.000Z");
        assert_eq!(late_clock["lastModified"], "2026-11-20T08:00:00Z", "inv-1: lastModified >= authoredOn");
        let normal = close_task(&task, "completed", "returned_to_care", "e1", "2026-11-21T10:00:00.000Z");
        assert_eq!(normal["lastModified"], "2026-11-21T10:00:00.000Z");
        assert_eq!(normal["output"][0]["valueReference"]["reference"], "Encounter/e1");
        let unauthored = close_task(&json!({"resourceType": "Task"}), "failed", "moved", "e1", "2026-11-21T10:00:00Z");
        assert_eq!(unauthored["lastModified"], "2026-11-21T10:00:00Z");
    }
}
