//! Pure conversions between CHT documents and FHIR resources: no I/O, no clock, no randomness,
//! so the same document always gives the same resources (and a redelivery rewrites them).
//!
//! A [`ConversionError`] is permanent: the document can never convert as it is (it goes to the
//! dead-letter store and is replayed after the mapping or the document is fixed).

pub mod follow_up;
pub mod ids;
pub mod json_path;
pub mod mapping;
pub mod patient;
pub mod report;
pub mod selection;
pub mod to_cht;
pub mod values;

/// Why a document cannot be converted; `element` names the input element at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConversionError {
    pub message: String,
    pub element: Option<String>,
}

impl ConversionError {
    pub fn at(element: &str, message: impl Into<String>) -> Self {
        Self { message: format!("{element}: {}", message.into()), element: Some(element.to_owned()) }
    }
}

/// `reported_date` (ms since the epoch, as CHT stores it; numbers or numeric strings) as a FHIR
/// instant.
pub fn instant_from_millis(element: &str, value: &serde_json::Value) -> Result<String, ConversionError> {
    let millis = match value {
        serde_json::Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        serde_json::Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
    .ok_or_else(|| ConversionError::at(element, format!("{value} is not a time in milliseconds")))?;
    let at = chrono::DateTime::from_timestamp_millis(millis)
        .ok_or_else(|| ConversionError::at(element, format!("{millis} is out of range")))?;
    Ok(crate::openhim::envelope::timestamp(at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reported_dates_become_instants() {
        assert_eq!(instant_from_millis("r", &json!(1700000000000_i64)).unwrap(), "2023-11-14T22:13:20.000Z");
        assert_eq!(instant_from_millis("r", &json!("1700000000000")).unwrap(), "2023-11-14T22:13:20.000Z");
        assert_eq!(instant_from_millis("r", &json!(1700000000000.0)).unwrap(), "2023-11-14T22:13:20.000Z");
        let err = instant_from_millis("doc.reported_date", &json!("yesterday")).unwrap_err();
        assert_eq!(err.element.as_deref(), Some("doc.reported_date"));
    }
}
