//! The inbound side (CHT → FHIR): what `/cht/patient` and `/cht/encounter` do, shared with the
//! dead-letter replay command. Failure policy (DESIGN.md):
//! - transient (FHIR or CHT down, 5xx, timeouts, a patient neither side knows yet) → an error the
//!   caller answers 502/503/504, so CHT delivers again; nothing is half-written (one transaction);
//! - permanent (the document can never convert as it is, or the FHIR server refuses it) → stored
//!   in the dead-letter store and answered 2xx with OpenHIM status `Failed`, so CHT stops retrying.

pub mod encounter;
pub mod patient;
pub mod reference;

use serde_json::Value;

use crate::conversions::ConversionError;
use crate::error::ApiError;
use crate::fhir::client::FhirError;
use crate::fhir::operation_outcome::{Issue, OperationOutcome, Severity};
use crate::json::JsonExt;
use crate::state::AppState;
use crate::upstream::CallContext;

/// The inbound endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Patient,
    Encounter,
    /// `/patient`: the reference mediator's ready-made Patient.
    ReferencePatient,
    /// `/encounter`: the reference mediator's ready-made Encounter.
    ReferenceEncounter,
}

impl Endpoint {
    const ALL: [Self; 4] = [Self::Patient, Self::Encounter, Self::ReferencePatient, Self::ReferenceEncounter];

    pub fn path(self) -> &'static str {
        match self {
            Self::Patient => "/cht/patient",
            Self::Encounter => "/cht/encounter",
            Self::ReferencePatient => "/patient",
            Self::ReferenceEncounter => "/encounter",
        }
    }

    pub fn from_path(path: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.path() == path)
    }

    /// The `kind` label of `conversions_total`.
    fn kind(self) -> &'static str {
        match self {
            Self::Patient | Self::ReferencePatient => "patient",
            Self::Encounter | Self::ReferenceEncounter => "encounter",
        }
    }
}

/// What happened to a document.
#[derive(Debug)]
pub enum Outcome {
    /// Written to FHIR; `body` is the FHIR server's answer.
    Written { status: u16, body: Value },
    /// Stored as a dead letter.
    DeadLettered { id: String, outcome: OperationOutcome },
}

/// Why a document can never be written as it is.
#[derive(Debug, Clone)]
pub struct Permanent {
    pub issues: Vec<Issue>,
}

impl Permanent {
    pub(crate) fn one(message: String, element: Option<String>) -> Self {
        Self {
            issues: vec![Issue {
                severity: Severity::Error,
                code: "invalid",
                diagnostics: message,
                expression: element.into_iter().collect(),
            }],
        }
    }

    /// The first element at fault.
    pub fn element(&self) -> Option<&str> {
        self.issues.iter().find_map(|i| i.expression.first()).map(String::as_str)
    }

    pub fn message(&self) -> String {
        self.issues.iter().map(|i| i.diagnostics.as_str()).collect::<Vec<_>>().join("; ")
    }
}

/// A failed attempt.
#[derive(Debug)]
pub enum Failure {
    Permanent(Permanent),
    Transient(ApiError),
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Self::Transient(e)
    }
}

impl From<ConversionError> for Failure {
    fn from(e: ConversionError) -> Self {
        Self::Permanent(Permanent::one(e.message, e.element))
    }
}

impl From<FhirError> for Failure {
    fn from(e: FhirError) -> Self {
        match e {
            FhirError::Transient(e) => Self::Transient(e),
            FhirError::Rejected { status, outcome } => {
                let said = crate::fhir::transaction::outcome_reason(&outcome);
                Self::Permanent(Permanent::one(
                    format!("the FHIR server refused the resources ({status}): {said}"),
                    None,
                ))
            }
            FhirError::Invalid(why) => Self::Permanent(Permanent::one(why, None)),
            FhirError::VersionConflict => Self::Transient(ApiError::BadGateway { target: "FHIR server", status: 412 }),
        }
    }
}

/// Checks a resource against base R4 and, when it declares one of the mediator's profiles
/// (everything the mediator builds does), against that profile. A resource it only updates (e.g.
/// a Task another system created) is held to base R4 only.
pub fn conforms(resource: &Value) -> Result<(), Failure> {
    let ours = resource.at("meta").at("profile").as_array().is_some_and(|p| {
        p.iter().filter_map(Value::as_str).any(|url| url.starts_with(crate::fhir::profiles::CANONICAL_BASE))
    });
    let mut violations = crate::fhir::base::validate(resource).err().unwrap_or_default();
    if ours && let Err(found) = crate::fhir::validate::validate(resource) {
        let new: Vec<_> = found.into_iter().filter(|v| !violations.contains(v)).collect();
        violations.extend(new);
    }
    if violations.is_empty() {
        return Ok(());
    }
    let issues = violations
        .into_iter()
        .map(|v| Issue {
            severity: Severity::Error,
            code: "invariant",
            diagnostics: v.to_string(),
            expression: vec![v.path],
        })
        .collect();
    Err(Failure::Permanent(Permanent { issues }))
}

/// Runs `endpoint` on `payload`; a permanent failure becomes a dead letter.
pub async fn handle(
    state: &AppState,
    ctx: &CallContext,
    endpoint: Endpoint,
    payload: &Value,
) -> Result<Outcome, ApiError> {
    let kind = endpoint.kind();
    let result = match attempt(state, ctx, endpoint, payload).await {
        Ok(outcome) => Ok(outcome),
        Err(Failure::Transient(e)) => Err(e),
        Err(Failure::Permanent(p)) => dead_letter(state, ctx, endpoint, payload, p).await,
    };
    let outcome = match &result {
        Ok(Outcome::Written { .. }) => "written",
        Ok(Outcome::DeadLettered { .. }) => "dead_lettered",
        Err(_) => "transient_failure",
    };
    state.metrics.conversion(kind, outcome);
    result
}

/// One attempt, without dead-lettering (the replay command decides itself).
pub async fn attempt(
    state: &AppState,
    ctx: &CallContext,
    endpoint: Endpoint,
    payload: &Value,
) -> Result<Outcome, Failure> {
    match endpoint {
        Endpoint::Patient => patient::write(state, ctx, payload).await,
        Endpoint::Encounter => encounter::write(state, ctx, payload).await,
        Endpoint::ReferencePatient => reference::write_patient(state, ctx, payload).await,
        Endpoint::ReferenceEncounter => reference::write_encounter(state, ctx, payload).await,
    }
}

/// Stores `payload` as a dead letter and says so in an OperationOutcome.
pub async fn dead_letter(
    state: &AppState,
    ctx: &CallContext,
    endpoint: Endpoint,
    payload: &Value,
    why: Permanent,
) -> Result<Outcome, ApiError> {
    let store = state.dead_letters.clone();
    let text = serde_json::to_string(payload).map_err(|e| ApiError::Internal(e.to_string()))?;
    let document_id = document_id(payload);
    let (message, element, tx) = (why.message(), why.element().map(str::to_owned), ctx.transaction_id.clone());
    let doc = document_id.clone();
    let id = tokio::task::spawn_blocking(move || {
        store.record(endpoint.path(), &text, &message, element.as_deref(), doc.as_deref(), tx.as_deref())
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
    .map_err(|e| match e {
        full @ crate::deadletter::StoreError::Full { .. } => {
            state.metrics.dead_letter_refused();
            tracing::error!(
                document_id = document_id.as_deref().unwrap_or("-"),
                element = why.element().unwrap_or("-"),
                "dead-letter store full: document refused (507), its sender keeps it"
            );
            ApiError::InsufficientStorage(full.to_string())
        }
        other => ApiError::Internal(other.to_string()),
    })?;
    // The reason can quote form answers: log where, not what.
    tracing::warn!(dead_letter = %id, document_id = document_id.as_deref().unwrap_or("-"), element = why.element().unwrap_or("-"), "document stored as a dead letter");
    let mut issues = why.issues;
    issues.push(Issue {
        severity: Severity::Information,
        code: "informational",
        diagnostics: format!(
            "stored as dead letter {id}; replay with `cht-fhir-mediator dead-letters replay {id}` once fixed"
        ),
        expression: Vec::new(),
    });
    Ok(Outcome::DeadLettered { id, outcome: OperationOutcome::from_issues(issues) })
}

/// The CHT document id in a payload, for finding its dead letter.
pub fn document_id(payload: &Value) -> Option<String> {
    [payload.at("doc").at("_id"), payload.at("id"), payload.at("_id")]
        .into_iter()
        .find_map(|v| v.as_str())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn own_profiles_are_enforced_and_foreign_resources_only_structurally() {
        let foreign_task = json!({"resourceType": "Task", "status": "completed", "intent": "plan"});
        assert!(conforms(&foreign_task).is_ok(), "intent plan breaks our profile, not R4");
        let mut ours = foreign_task.clone();
        ours["meta"] = json!({"profile": [crate::fhir::profiles::TASK]});
        let Err(Failure::Permanent(p)) = conforms(&ours) else { panic!("our profile must apply") };
        assert!(p.issues.iter().any(|i| i.expression == ["Task.intent"]), "{p:?}");
        let Err(Failure::Permanent(p)) = conforms(&json!({"resourceType": "Task", "status": 3})) else { panic!() };
        assert_eq!(p.issues[0].expression, ["Task.status"]);
    }
}
