//! CHT answers → Observation `value[x]`. XForm answers arrive as strings ("3.5", "yes", "a b"),
//! JSON forms and the cht-docs format as typed JSON; both are accepted. Numbers keep their exact
//! decimal text (serde_json runs with `arbitrary_precision`). An empty answer is "not answered"
//! (no Observation); an answer that does not fit its type is a conversion error naming it.

use serde_json::{Number, Value, json};

use super::ConversionError;
use super::mapping::{ObservationMapping, ValueKind};
use crate::json::JsonExt;

const TRUE_WORDS: &[&str] = &["yes", "true", "1", "y"];
const FALSE_WORDS: &[&str] = &["no", "false", "0", "n"];

/// The `value[x]` of a mapped answer, or `None` when it was not answered.
pub fn mapped_value(
    at: &str,
    raw: &Value,
    m: &ObservationMapping,
    default_system: &str,
) -> Result<Option<(&'static str, Value)>, ConversionError> {
    if raw.is_null() || raw.as_str().is_some_and(|s| s.trim().is_empty()) {
        return Ok(None);
    }
    let bad = |what: &str| ConversionError::at(at, format!("{raw} is not {what}"));
    let value = match m.kind {
        ValueKind::String => ("valueString", Value::String(scalar_text(raw).ok_or_else(|| bad("a text answer"))?)),
        ValueKind::Integer => ("valueInteger", json!(integer(raw).ok_or_else(|| bad("an integer"))?)),
        ValueKind::Decimal => ("valueQuantity", json!({ "value": number(raw).ok_or_else(|| bad("a number"))? })),
        ValueKind::Quantity => {
            let mut q = json!({ "value": number(raw).ok_or_else(|| bad("a number"))? });
            if let Some(unit) = &m.unit {
                q.set("unit", json!(unit));
            }
            if let Some(code) = &m.ucum {
                q.set("system", json!("http://unitsofmeasure.org"));
                q.set("code", json!(code));
            }
            ("valueQuantity", q)
        }
        ValueKind::Boolean => ("valueBoolean", json!(boolean(raw, m).ok_or_else(|| bad("a yes/no answer"))?)),
        ValueKind::DateTime => ("valueDateTime", json!(date_time(raw).ok_or_else(|| bad("a date or date-time"))?)),
        ValueKind::Time => ("valueTime", json!(time(raw).ok_or_else(|| bad("a time (hh:mm[:ss])"))?)),
        ValueKind::Code => {
            let text = scalar_text(raw).ok_or_else(|| bad("a code"))?;
            let system = m.value_system.as_deref().unwrap_or(default_system);
            let codes: Vec<&str> = if m.multiple { text.split_whitespace().collect() } else { vec![text.trim()] };
            if codes.iter().any(|c| code(c).is_none()) {
                return Err(bad("a code (no tabs, line breaks or double spaces)"));
            }
            let coding: Vec<Value> = codes.iter().map(|c| json!({ "system": system, "code": c })).collect();
            ("valueCodeableConcept", json!({ "coding": coding, "text": text.trim() }))
        }
    };
    Ok(Some(value))
}

/// The `value[x]` of one cht-docs observation (`valueCode`, `valueString`, ...), or `None` for
/// `valueCode: false` (documented as "omit this observation") and for a blank `valueString` (an
/// unanswered text field: FHIR has no empty string; found by the fuzzer).
pub fn docs_value(
    at: &str,
    observation: &Value,
    code_system: &str,
) -> Result<Option<(&'static str, Value)>, ConversionError> {
    const KEYS: &[&str] =
        &["valueCode", "valueString", "valueDateTime", "valueBoolean", "valueInteger", "valueQuantity", "valueTime"];
    let present: Vec<&str> =
        KEYS.iter().copied().filter(|k| observation.get(*k).is_some_and(|v| !v.is_null())).collect();
    let [key] = present.as_slice() else {
        return Err(ConversionError::at(at, format!("needs exactly one of {KEYS:?}, found {present:?}")));
    };
    let raw = &observation[*key];
    let at = format!("{at}.{key}");
    let bad = |what: &str| ConversionError::at(&at, format!("{raw} is not {what}"));
    Ok(Some(match *key {
        "valueCode" if raw == &Value::Bool(false) => return Ok(None),
        "valueCode" => {
            let text = scalar_text(raw).ok_or_else(|| bad("a code"))?;
            let code = code(text.trim()).ok_or_else(|| bad("a code (no tabs, line breaks or double spaces)"))?;
            ("valueCodeableConcept", json!({ "coding": [{ "system": code_system, "code": code }], "text": code }))
        }
        "valueString" => match scalar_text(raw).ok_or_else(|| bad("text"))? {
            blank if blank.trim().is_empty() => return Ok(None),
            text => ("valueString", Value::String(text)),
        },
        "valueDateTime" => ("valueDateTime", json!(date_time(raw).ok_or_else(|| bad("a date or date-time"))?)),
        "valueBoolean" => ("valueBoolean", json!(raw.as_bool().ok_or_else(|| bad("true or false"))?)),
        "valueInteger" => ("valueInteger", json!(integer(raw).ok_or_else(|| bad("an integer"))?)),
        "valueTime" => ("valueTime", json!(time(raw).ok_or_else(|| bad("a time"))?)),
        _ => ("valueQuantity", docs_quantity(&at, raw)?),
    }))
}

/// A cht-docs `valueQuantity`, rebuilt from the elements a Quantity has (not copied: anything
/// else in it would go into the FHIR server as it came). Errors name the element.
fn docs_quantity(at: &str, raw: &Value) -> Result<Value, ConversionError> {
    let Some(object) = raw.as_object() else {
        return Err(ConversionError::at(at, "must be a Quantity object {value, unit?, system?, code?}"));
    };
    let value = object
        .get("value")
        .and_then(number)
        .ok_or_else(|| ConversionError::at(&format!("{at}.value"), "a Quantity needs a numeric value"))?;
    let mut quantity = serde_json::Map::new();
    quantity.insert("value".into(), Value::Number(value));
    for (key, v) in object.iter().filter(|(k, _)| k.as_str() != "value") {
        let element = format!("{at}.{key}");
        let text = v.as_str().map(str::trim).filter(|s| !s.is_empty());
        let checked = match (key.as_str(), text) {
            ("unit", Some(t)) => t.to_owned(),
            ("code", Some(t)) if !t.contains(char::is_whitespace) => t.to_owned(),
            // An absolute URI, and a FHIR uri has no whitespace (found by the fuzzer: "ht tp:…").
            ("system", Some(t))
                if t.split_once(':').is_some_and(|(s, r)| !s.is_empty() && !r.is_empty())
                    && !t.contains(char::is_whitespace) =>
            {
                t.to_owned()
            }
            ("comparator", Some(t @ ("<" | "<=" | ">=" | ">"))) => t.to_owned(),
            ("unit" | "code" | "system" | "comparator", _) => {
                return Err(ConversionError::at(&element, "is not a valid value for this Quantity element"));
            }
            _ => {
                return Err(ConversionError::at(
                    &element,
                    "is not an element of a Quantity (value, unit, system, code, comparator)",
                ));
            }
        };
        quantity.insert(key.clone(), Value::String(checked));
    }
    Ok(Value::Object(quantity))
}

fn scalar_text(raw: &Value) -> Option<String> {
    match raw {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A number, keeping its decimal text exactly ("3.50" stays 3.50).
fn number(raw: &Value) -> Option<Number> {
    match raw {
        Value::Number(n) => Some(n.clone()),
        Value::String(s) => s.trim().parse::<Number>().ok().filter(|_| !s.trim().is_empty()),
        _ => None,
    }
}

/// A FHIR integer: 32 bits (a bigger number is not an `integer`, whatever JSON allows).
fn integer(raw: &Value) -> Option<i32> {
    match raw {
        Value::Number(n) => n.as_i64().and_then(|i| i32::try_from(i).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `text` when it is a valid FHIR code (no whitespace but single spaces between words).
fn code(text: &str) -> Option<&str> {
    crate::fhir::base::primitive::check("code", &Value::String(text.to_owned())).ok().map(|()| text)
}

fn boolean(raw: &Value, m: &ObservationMapping) -> Option<bool> {
    match raw {
        Value::Bool(b) => Some(*b),
        Value::String(_) | Value::Number(_) => {
            let text = scalar_text(raw)?.trim().to_ascii_lowercase();
            let is = |configured: &[String], default: &[&str]| {
                if configured.is_empty() {
                    default.contains(&text.as_str())
                } else {
                    configured.iter().any(|c| c.eq_ignore_ascii_case(&text))
                }
            };
            if is(&m.true_values, TRUE_WORDS) {
                Some(true)
            } else if is(&m.false_values, FALSE_WORDS) {
                Some(false)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// A FHIR dateTime from a date, an RFC 3339 date-time, or milliseconds since the epoch.
fn date_time(raw: &Value) -> Option<String> {
    match raw {
        Value::Number(_) => super::instant_from_millis("", raw).ok(),
        Value::String(s) => {
            let s = s.trim();
            // Only what FHIR writes: chrono also reads `26-02-01` (year 26) and year 0, which,
            // copied through, are no FHIR dates (found by the fuzzer).
            // And chrono reads a `+23:00` offset, which FHIR's dateTime (up to ±14:00) is not. So
            // FHIR's own rule decides, as the output check does.
            let fhir_year = |year: i32| (1..=9999).contains(&year);
            if let Ok(date) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                (fhir_year(chrono::Datelike::year(&date)) && date.format("%Y-%m-%d").to_string() == s)
                    .then(|| s.to_owned())
            } else {
                chrono::DateTime::parse_from_rfc3339(s)
                    .ok()
                    .filter(|t| fhir_year(chrono::Datelike::year(t)) && crate::fhir::base::primitive::is_date_time(s))
                    .map(|_| s.to_owned())
            }
        }
        _ => None,
    }
}

/// `hh:mm[:ss[.fff]]` → FHIR time `hh:mm:ss[.fff]` (XForms send `10:30:00.000+03:00`: the
/// offset is dropped, FHIR time has none).
fn time(raw: &Value) -> Option<String> {
    let s = raw.as_str()?.trim();
    let s = s.split(['+', 'Z']).next()?;
    // `10:30:00-05:00`: a negative offset after the seconds. `get`, never slicing: the text may
    // hold multi-byte characters (`10:30:0é`).
    let s = match (s.get(..8), s.get(8..)) {
        (Some(head), Some(tail)) if tail.starts_with('-') => head,
        _ => s,
    };
    let parsed = chrono::NaiveTime::parse_from_str(s, "%H:%M:%S%.f")
        .or_else(|_| chrono::NaiveTime::parse_from_str(s, "%H:%M"))
        .ok()?;
    // Always as FHIR writes it (two-digit fields): chrono also reads `5:1:0`, which, copied
    // through, was no FHIR time (found by the fuzzer).
    Some(parsed.format("%H:%M:%S%.f").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversions::mapping::CodingSpec;

    fn mapping(kind: ValueKind) -> ObservationMapping {
        ObservationMapping {
            field: "f".into(),
            code: CodingSpec { system: None, code: "c".into(), display: None },
            kind,
            unit: Some("kg".into()).filter(|_| kind == ValueKind::Quantity),
            ucum: Some("kg".into()).filter(|_| kind == ValueKind::Quantity),
            value_system: None,
            multiple: true,
            true_values: vec![],
            false_values: vec![],
        }
    }

    fn v(kind: ValueKind, raw: Value) -> Result<Option<(&'static str, Value)>, ConversionError> {
        mapped_value("fields.x", &raw, &mapping(kind), "https://cs")
    }

    #[test]
    fn xform_strings_and_typed_json_both_convert() {
        assert_eq!(v(ValueKind::Quantity, json!("3.50")).unwrap().unwrap().1["value"].to_string(), "3.50");
        assert_eq!(
            v(ValueKind::Quantity, json!(61.25)).unwrap().unwrap().1,
            json!({"value": 61.25, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"})
        );
        assert_eq!(v(ValueKind::Integer, json!("12")).unwrap(), Some(("valueInteger", json!(12))));
        assert_eq!(v(ValueKind::Boolean, json!("Yes")).unwrap(), Some(("valueBoolean", json!(true))));
        assert_eq!(v(ValueKind::Boolean, json!(false)).unwrap(), Some(("valueBoolean", json!(false))));
        assert_eq!(v(ValueKind::DateTime, json!("2026-02-01")).unwrap(), Some(("valueDateTime", json!("2026-02-01"))));
        assert_eq!(v(ValueKind::Time, json!("10:30:00.000+03:00")).unwrap(), Some(("valueTime", json!("10:30:00"))));
        assert_eq!(v(ValueKind::Time, json!("07:05")).unwrap(), Some(("valueTime", json!("07:05:00"))));
        // Found by the fuzzer: a two-digit year was copied through as a date.
        assert!(v(ValueKind::DateTime, json!("26-02-01")).is_err());
        assert!(v(ValueKind::DateTime, json!("0000-02-01")).is_err());
        assert_eq!(v(ValueKind::DateTime, json!("2026-2-1")).ok().flatten(), None);
        // Found by the fuzzer: an offset past ±14:00 was copied through.
        assert!(v(ValueKind::DateTime, json!("2026-10-30T09:15:00+23:00")).is_err());
        assert!(v(ValueKind::DateTime, json!("2026-10-30T09:15:00+14:30")).is_err());
        let ok = v(ValueKind::DateTime, json!("2026-10-30T09:15:00-14:00")).unwrap().unwrap().1;
        assert_eq!(ok, json!("2026-10-30T09:15:00-14:00"));
        // Found by the fuzzer: one-digit fields were copied through as `5:1:0:00`.
        assert_eq!(v(ValueKind::Time, json!("5:1:0+310")).unwrap(), Some(("valueTime", json!("05:01:00"))));
        let codes = v(ValueKind::Code, json!("fever convulsions")).unwrap().unwrap().1;
        assert_eq!(codes["coding"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn unanswered_is_none_and_misfits_name_the_field() {
        assert_eq!(v(ValueKind::Integer, json!("")).unwrap(), None);
        assert_eq!(v(ValueKind::Integer, Value::Null).unwrap(), None);
        let err = v(ValueKind::Integer, json!("twelve")).unwrap_err();
        assert_eq!(err.element.as_deref(), Some("fields.x"));
        assert!(v(ValueKind::Boolean, json!("maybe")).is_err());
        assert!(v(ValueKind::DateTime, json!("21/07/1994")).is_err());
        assert!(v(ValueKind::Quantity, json!({"nested": 1})).is_err());
        // Found by the fuzzer: FHIR integers are 32 bits, codes have no double spaces.
        assert!(v(ValueKind::Integer, json!(20206666664_i64)).is_err());
        assert!(v(ValueKind::Integer, json!("3000000000")).is_err());
        let mut single = mapping(ValueKind::Code);
        single.multiple = false;
        assert!(mapped_value("fields.x", &json!("a  b"), &single, "https://cs").is_err());
        assert!(docs_value("o", &json!({"code": "c", "valueCode": "a\tb"}), "https://cs").is_err());
        for bad in ["10:30:0é", "é", "10:30:00é-", "1é:30"] {
            assert!(v(ValueKind::Time, json!(bad)).is_err(), "{bad}");
        }
        assert_eq!(v(ValueKind::Time, json!("10:30:00-05:00")).unwrap(), Some(("valueTime", json!("10:30:00"))));
    }

    #[test]
    fn docs_format_values() {
        let sys = "https://cs";
        assert_eq!(docs_value("o", &json!({"code": "a", "valueCode": false}), sys).unwrap(), None);
        assert_eq!(
            docs_value("o", &json!({"code": "a", "valueInteger": 3}), sys).unwrap(),
            Some(("valueInteger", json!(3)))
        );
        assert!(docs_value("o", &json!({"code": "a"}), sys).is_err());
        assert!(docs_value("o", &json!({"code": "a", "valueString": "x", "valueInteger": 1}), sys).is_err());
        // Found by the fuzzer: an empty text answer became an empty (invalid) FHIR string.
        assert_eq!(docs_value("o", &json!({"code": "a", "valueString": ""}), sys).unwrap(), None);
        assert_eq!(docs_value("o", &json!({"code": "a", "valueString": " \n"}), sys).unwrap(), None);
        // Found by the fuzzer: a system with whitespace was copied into an invalid FHIR uri.
        let spaced = json!({"code": "w", "valueQuantity": {"value": 1, "system": "http://unitsof measure.org"}});
        assert_eq!(docs_value("o", &spaced, sys).unwrap_err().element.as_deref(), Some("o.valueQuantity.system"));
        let q = docs_value("o", &json!({"code": "w", "valueQuantity": {"value": 61.255, "unit": "kg"}}), sys)
            .unwrap()
            .unwrap();
        assert_eq!(q.1["value"].to_string(), "61.255");
        for bad in [
            json!({"value": 1, "extension": []}),
            json!({"value": 1, "%nit": "kg"}),
            json!({"value": 1, "system": "kg"}),
            json!({"unit": "kg"}),
        ] {
            let err = docs_value("observations[0]", &json!({"code": "w", "valueQuantity": bad}), sys).unwrap_err();
            assert!(err.element.unwrap().starts_with("observations[0].valueQuantity"), "{bad}");
        }
    }
}
