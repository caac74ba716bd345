//! Form mappings (`mediator-config/forms.json`, or the file in `FORM_MAPPINGS_FILE`): for each CHT
//! form code, where the report's subject is, which fields become which Observations (code and
//! value type), the Encounter type, and whether the form is a referral or the LTFU follow-up
//! outcome. Checked completely at start, so a bad mapping fails the deploy, not a patient's report.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The mapping shipped with the binary.
pub const DEFAULT_FORMS_JSON: &str = include_str!("../../mediator-config/forms.json");

/// Where a report's subject (the patient) is found when a mapping does not say: as CHT finds it
/// (cht-core's lineage hydration: `fields.patient_id`, then `fields.patient_uuid`, then the
/// top-level `patient_id`; places the same), first the contact CHT's hydration resolved and
/// pushed as `doc.patient` / `doc.place`. Then the task inputs and the cht-docs top-level
/// `patient_uuid`, which CHT does not read.
pub const DEFAULT_SUBJECT_PATHS: &[&str] = &[
    "patient._id",
    "fields.patient_id",
    "fields.patient_uuid",
    "patient_id",
    "fields.inputs.contact._id",
    "patient_uuid",
    "place._id",
    "fields.place_id",
    "place_id",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormMappings {
    /// Code system of Observation codes that name no system themselves (CHT field names).
    pub observation_code_system: String,
    /// Code system of Encounter types (CHT form codes).
    pub form_code_system: String,
    pub forms: BTreeMap<String, FormMapping>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormMapping {
    /// Human title, used as `Encounter.type.text`.
    pub title: Option<String>,
    /// Paths tried in order for the patient's CHT `_id` (or `patient_id` short code).
    #[serde(default)]
    pub subject: Vec<String>,
    #[serde(default)]
    pub observations: Vec<ObservationMapping>,
    pub task: Option<TaskMapping>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservationMapping {
    /// Path in the report doc; `[]` expands repeats (one Observation per item).
    pub field: String,
    pub code: CodingSpec,
    #[serde(rename = "type")]
    pub kind: ValueKind,
    /// Unit text for `quantity` (e.g. "kg").
    pub unit: Option<String>,
    /// UCUM code for `quantity` (e.g. "kg", "Cel", "/min").
    pub ucum: Option<String>,
    /// Code system of `code` answers (default: `observation_code_system`).
    pub value_system: Option<String>,
    /// `code` answers of a select-multiple question: space-separated codes.
    #[serde(default)]
    pub multiple: bool,
    /// For `boolean`: the answers that mean true / false (default yes/true/1 and no/false/0).
    #[serde(default)]
    pub true_values: Vec<String>,
    #[serde(default)]
    pub false_values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodingSpec {
    pub system: Option<String>,
    pub code: String,
    pub display: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ValueKind {
    String,
    Integer,
    Decimal,
    Quantity,
    Boolean,
    DateTime,
    Time,
    Code,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// The form refers the patient: a Task `requested` is created.
    Referral,
    /// The form records the outcome of an LTFU follow-up: the Task it answers is closed.
    FollowUpOutcome,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskMapping {
    pub kind: TaskKind,
    /// Referral: the reason (text).
    pub reason_field: Option<String>,
    /// Referral: the urgency answer, mapped through `priority_values` to a FHIR request priority.
    pub priority_field: Option<String>,
    #[serde(default)]
    pub priority_values: BTreeMap<String, String>,
    /// Follow-up: the id of the follow-up record the CHT task came from (`fields.inputs.source_id`).
    pub source_field: Option<String>,
    /// Follow-up: a field holding the FHIR Task id directly, tried first.
    pub task_id_field: Option<String>,
    /// Follow-up: the outcome answer and which answers complete or fail the Task.
    pub outcome_field: Option<String>,
    #[serde(default)]
    pub completed_values: Vec<String>,
    #[serde(default)]
    pub failed_values: Vec<String>,
}

const PRIORITIES: &[&str] = &["routine", "urgent", "asap", "stat"];

impl FormMappings {
    /// Parses and checks a mapping document; errors name the form and the entry.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mappings: Self = serde_json::from_str(text).map_err(|e| e.to_string())?;
        mappings.check()?;
        Ok(mappings)
    }

    /// The mapping of CHT form `code` (CHT form codes are case-sensitive for XForms; JSON forms
    /// are upper case, so an exact match is tried first, then a case-insensitive one).
    pub fn form(&self, code: &str) -> Option<&FormMapping> {
        self.forms.get(code).or_else(|| self.forms.iter().find(|(k, _)| k.eq_ignore_ascii_case(code)).map(|(_, v)| v))
    }

    fn check(&self) -> Result<(), String> {
        let absolute = |what: &str, s: &str| {
            if s.split_once(':').is_some_and(|(scheme, rest)| !scheme.is_empty() && !rest.is_empty()) {
                Ok(())
            } else {
                Err(format!("{what}: {s:?} is not an absolute URI"))
            }
        };
        absolute("observation_code_system", &self.observation_code_system)?;
        absolute("form_code_system", &self.form_code_system)?;
        for (form, mapping) in &self.forms {
            for (i, obs) in mapping.observations.iter().enumerate() {
                let at = format!("forms.{form}.observations[{i}]");
                if obs.field.trim().is_empty() || obs.code.code.trim().is_empty() {
                    return Err(format!("{at}: field and code.code are required"));
                }
                if let Some(system) = obs.code.system.as_deref().or(obs.value_system.as_deref()) {
                    absolute(&at, system)?;
                }
                if obs.kind != ValueKind::Quantity && (obs.unit.is_some() || obs.ucum.is_some()) {
                    return Err(format!("{at}: unit/ucum only apply to type quantity"));
                }
            }
            if let Some(task) = &mapping.task {
                let at = format!("forms.{form}.task");
                if let Some(bad) = task.priority_values.values().find(|p| !PRIORITIES.contains(&p.as_str())) {
                    return Err(format!("{at}.priority_values: {bad:?} is not one of {PRIORITIES:?}"));
                }
                if task.kind == TaskKind::FollowUpOutcome {
                    if task.source_field.is_none() && task.task_id_field.is_none() {
                        return Err(format!("{at}: a follow_up_outcome needs source_field or task_id_field"));
                    }
                    if task.outcome_field.is_none() || task.completed_values.is_empty() || task.failed_values.is_empty()
                    {
                        return Err(format!(
                            "{at}: a follow_up_outcome needs outcome_field, completed_values and failed_values"
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_mappings_are_valid() {
        let m = FormMappings::parse(DEFAULT_FORMS_JSON).unwrap();
        assert!(
            m.form("interop_follow_up").unwrap().task.as_ref().is_some_and(|t| t.kind == TaskKind::FollowUpOutcome)
        );
        assert!(m.form("REFERRAL").is_some(), "case-insensitive fallback");
    }

    #[test]
    fn errors_name_the_form_and_entry() {
        let bad = r#"{"observation_code_system": "https://x/cs", "form_code_system": "https://x/forms",
            "forms": {"visit": {"observations": [{"field": "fields.w", "code": {"code": "w"}, "type": "string", "unit": "kg"}]}}}"#;
        assert_eq!(
            FormMappings::parse(bad).unwrap_err(),
            "forms.visit.observations[0]: unit/ucum only apply to type quantity"
        );
        let bad = r#"{"observation_code_system": "x", "form_code_system": "https://x/forms", "forms": {}}"#;
        assert!(FormMappings::parse(bad).unwrap_err().starts_with("observation_code_system"));
        let bad = r#"{"observation_code_system": "https://x", "form_code_system": "https://x/forms",
            "forms": {"f": {"task": {"kind": "follow_up_outcome", "outcome_field": "o"}}}}"#;
        assert!(FormMappings::parse(bad).unwrap_err().contains("source_field or task_id_field"));
        let typo = r#"{"observation_code_system": "https://x", "form_code_system": "https://x/forms", "forms": {"f": {"observation": []}}}"#;
        assert!(FormMappings::parse(typo).unwrap_err().contains("unknown field"));
    }
}
