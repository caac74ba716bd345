//! Pure conversions between CHT documents and FHIR resources: no I/O, no clock, no randomness,
//! so the same document always gives the same resources (and a redelivery rewrites them).
//!
//! A [`ConversionError`] is permanent: the document can never convert as it is (it goes to the
//! dead-letter store and is replayed after the mapping or the document is fixed).

pub mod directory;
pub mod follow_up;
pub mod ids;
pub mod json_path;
pub mod mapping;
pub mod patient;
pub mod reference;
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

/// Longest id or identifier value the mediator looks things up by (a CHT `_id` is 36 characters,
/// a short code 5–6): a longer one could not go into a search URL, and is refused naming its element.
pub const MAX_KEY_LEN: usize = 1024;

/// `value` when it is short enough to look up by ([`MAX_KEY_LEN`]).
pub fn lookup_key<'a>(element: &str, value: &'a str) -> Result<&'a str, ConversionError> {
    if value.len() <= MAX_KEY_LEN {
        Ok(value)
    } else {
        Err(ConversionError::at(element, format!("is longer than {MAX_KEY_LEN} bytes")))
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
    // FHIR's instant and dateTime have four-digit years (0001–9999); chrono would render a later
    // one as `+56855-…`, which no FHIR server takes.
    let at = chrono::DateTime::from_timestamp_millis(millis)
        .filter(|at| (1..=9999).contains(&chrono::Datelike::year(at)))
        .ok_or_else(|| ConversionError::at(element, "is not a time between the years 0001 and 9999"))?;
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
        // Found by the fuzzer: year 56855 rendered as `+56855-02-21T…`, invalid FHIR.
        let far = instant_from_millis("reported_date", &json!(1732007770000000_i64)).unwrap_err();
        assert_eq!(far.element.as_deref(), Some("reported_date"));
        assert!(instant_from_millis("r", &json!(-62198755200000_i64)).is_err(), "year 0 is not a FHIR year");
        assert_eq!(instant_from_millis("r", &json!(253402300799999_i64)).unwrap(), "9999-12-31T23:59:59.999Z");
        assert_eq!(instant_from_millis("r", &json!(1700000000000.0)).unwrap(), "2023-11-14T22:13:20.000Z");
        let err = instant_from_millis("doc.reported_date", &json!("yesterday")).unwrap_err();
        assert_eq!(err.element.as_deref(), Some("doc.reported_date"));
    }
}
