//! FHIR `OperationOutcome`: the body of every error the mediator answers.
//! Hand-written (not the typed model) because it is built on every error path and must never fail.

use serde::Serialize;

/// `OperationOutcome.issue.severity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Fatal,
    Error,
    Warning,
    Information,
}

/// An `OperationOutcome.issue`; `code` is from the FHIR `issue-type` value set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Issue {
    pub severity: Severity,
    pub code: &'static str,
    pub diagnostics: String,
    /// FHIRPath of the element at fault, e.g. `Patient.birthDate`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expression: Vec<String>,
}

/// A FHIR R4 `OperationOutcome` resource.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperationOutcome {
    #[serde(rename = "resourceType")]
    resource_type: &'static str,
    pub issue: Vec<Issue>,
}

impl OperationOutcome {
    /// One error issue.
    pub fn error(code: &'static str, diagnostics: impl Into<String>, expression: Option<String>) -> Self {
        Self::from_issues(vec![Issue {
            severity: Severity::Error,
            code,
            diagnostics: diagnostics.into(),
            expression: expression.into_iter().collect(),
        }])
    }

    pub fn from_issues(issue: Vec<Issue>) -> Self {
        Self { resource_type: "OperationOutcome", issue }
    }

    /// Serialised JSON; cannot fail for this shape.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|_| String::from(r#"{"resourceType":"OperationOutcome","issue":[]}"#))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_as_fhir_json() {
        let oo = OperationOutcome::error("invalid", "birthDate is not a date", Some("Patient.birthDate".into()));
        let v: serde_json::Value = serde_json::from_str(&oo.to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"resourceType": "OperationOutcome", "issue": [{
                "severity": "error", "code": "invalid",
                "diagnostics": "birthDate is not a date", "expression": ["Patient.birthDate"]}]})
        );
    }
}
