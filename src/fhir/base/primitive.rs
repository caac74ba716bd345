//! The FHIR R4 primitive types in JSON: which JSON type each takes and the format its value must
//! have (the regular expressions of the R4 specification, written out as code). Messages name the
//! kind of problem, never the value: they end up in logs and in OpenHIM's transaction list.

use serde_json::Value;

/// Longest string the mediator accepts in any element (FHIR says strings SHOULD stay under 1 MB).
const MAX_STRING: usize = 1024 * 1024;

/// Checks `value` as FHIR primitive `kind`; `Err` says what is wrong.
pub fn check(kind: &str, value: &Value) -> Result<(), String> {
    match kind {
        "boolean" => value.is_boolean().then_some(()).ok_or_else(|| "must be true or false".into()),
        "integer" => integer(value, i64::from(i32::MIN)),
        "unsignedInt" => integer(value, 0),
        "positiveInt" => integer(value, 1),
        "decimal" => value.is_number().then_some(()).ok_or_else(|| "must be a JSON number".into()),
        _ => {
            let Some(text) = value.as_str() else { return Err(format!("must be a JSON string ({kind})")) };
            string(kind, text)
        }
    }
}

fn integer(value: &Value, min: i64) -> Result<(), String> {
    match value.as_i64() {
        Some(n) if n >= min && n <= i64::from(i32::MAX) => Ok(()),
        Some(_) => Err(format!("must be an integer from {min} to {}", i32::MAX)),
        None => Err("must be a JSON integer".into()),
    }
}

fn string(kind: &str, s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty (leave the element out instead)".into());
    }
    if s.len() > MAX_STRING {
        return Err(format!("is longer than {MAX_STRING} bytes"));
    }
    let ok = match kind {
        "code" => is_code(s),
        "id" => is_id(s),
        "uri" | "url" | "canonical" => !s.contains(char::is_whitespace),
        "oid" => is_oid(s),
        "uuid" => is_uuid(s),
        "date" => is_date(s),
        "dateTime" => is_date_time(s),
        "instant" => is_instant(s),
        "time" => is_time(s),
        "base64Binary" => is_base64(s),
        // string, markdown, xhtml: any non-empty text.
        _ => !s.trim().is_empty(),
    };
    if ok { Ok(()) } else { Err(format!("is not a valid FHIR {kind}{}", format_hint(kind))) }
}

fn format_hint(kind: &str) -> &'static str {
    match kind {
        "date" => " (YYYY, YYYY-MM or YYYY-MM-DD)",
        "dateTime" => " (a date, or YYYY-MM-DDThh:mm:ss with a time zone)",
        "instant" => " (YYYY-MM-DDThh:mm:ss with a time zone)",
        "time" => " (hh:mm:ss)",
        "id" => " ([A-Za-z0-9-.]{1,64}, not only dots)",
        "code" => " (no leading, trailing or double spaces)",
        "uri" | "url" | "canonical" => " (no whitespace)",
        _ => "",
    }
}

/// `[^\s]+( [^\s]+)*`
fn is_code(s: &str) -> bool {
    !s.starts_with(' ') && !s.ends_with(' ') && !s.contains("  ") && !s.chars().any(|c| c.is_whitespace() && c != ' ')
}

/// `[A-Za-z0-9\-\.]{1,64}`; ids made only of dots are refused too: `.` and `..` are path segments
/// in a URL (`Patient/..` would address the server's root).
pub fn is_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !s.bytes().all(|b| b == b'.')
}

fn digits(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_digit())
}

fn number_in(s: &str, n: usize, min: u32, max: u32) -> bool {
    digits(s, n) && s.parse::<u32>().is_ok_and(|v| (min..=max).contains(&v))
}

/// `YYYY`, `YYYY-MM` or `YYYY-MM-DD`, a real calendar date.
pub fn is_date(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    match parts.as_slice() {
        [y] => number_in(y, 4, 1, 9999),
        [y, m] => number_in(y, 4, 1, 9999) && number_in(m, 2, 1, 12),
        [y, m, d] => {
            number_in(y, 4, 1, 9999)
                && digits(m, 2)
                && digits(d, 2)
                && chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
        }
        _ => false,
    }
}

/// `hh:mm:ss(.f+)?` (seconds required, leap second 60 allowed as FHIR does).
pub fn is_time(s: &str) -> bool {
    let (main, fraction) = match s.split_once('.') {
        Some((main, f)) => (main, Some(f)),
        None => (s, None),
    };
    let parts: Vec<&str> = main.split(':').collect();
    let fraction_ok = fraction.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()));
    matches!(parts.as_slice(), [h, m, sec] if number_in(h, 2, 0, 23) && number_in(m, 2, 0, 59) && number_in(sec, 2, 0, 60))
        && fraction_ok
}

/// `Z`, or `+hh:mm` / `-hh:mm` up to 14:00.
fn is_zone(s: &str) -> bool {
    if s == "Z" {
        return true;
    }
    let Some(rest) = s.strip_prefix('+').or_else(|| s.strip_prefix('-')) else { return false };
    match rest.split_once(':') {
        Some((h, m)) => number_in(h, 2, 0, 14) && number_in(m, 2, 0, 59) && (h != "14" || m == "00"),
        None => false,
    }
}

/// A date with a time and a zone: `YYYY-MM-DDThh:mm:ss(.f+)?(Z|±hh:mm)`.
fn is_full_date_time(s: &str) -> bool {
    let Some((date, rest)) = s.split_once('T') else { return false };
    let zone_at = rest.find(['Z', '+', '-']);
    let Some(at) = zone_at else { return false };
    let (time, zone) = rest.split_at(at);
    date.len() == 10 && is_date(date) && is_time(time) && is_zone(zone)
}

/// A date (any precision), or a full date-time with a zone.
pub fn is_date_time(s: &str) -> bool {
    if s.contains('T') { is_full_date_time(s) } else { is_date(s) }
}

/// A full date-time with a zone (seconds required).
pub fn is_instant(s: &str) -> bool {
    is_full_date_time(s)
}

/// `urn:oid:[0-2](\.(0|[1-9][0-9]*))+`
fn is_oid(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("urn:oid:") else { return false };
    let arcs: Vec<&str> = rest.split('.').collect();
    let arc_ok =
        |a: &&str| !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()) && (a.len() == 1 || !a.starts_with('0'));
    arcs.len() >= 2 && matches!(arcs.first(), Some(&("0" | "1" | "2"))) && arcs.iter().all(arc_ok)
}

/// `urn:uuid:` and a lower-case UUID.
fn is_uuid(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("urn:uuid:") else { return false };
    let groups: Vec<&str> = rest.split('-').collect();
    let hex = |g: &str, n: usize| g.len() == n && g.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    matches!(groups.as_slice(), [a, b, c, d, e] if hex(a, 8) && hex(b, 4) && hex(c, 4) && hex(d, 4) && hex(e, 12))
}

/// Base64 text (whitespace between groups allowed).
fn is_base64(s: &str) -> bool {
    let chars: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    chars.len() % 4 == 0 && chars.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dates_times_and_instants_follow_the_r4_formats() {
        for ok in ["1990", "1990-05", "1990-05-12", "2024-02-29"] {
            assert!(is_date(ok), "{ok}");
        }
        for bad in ["1990-5-12", "199-05-12", "12/05/1990", "2023-02-30", "1990-13", "0000", "1990-05-12T"] {
            assert!(!is_date(bad), "{bad}");
        }
        assert!(is_date_time("2026-11-21T06:00:00.123Z") && is_date_time("2026-11-21T06:00:00+03:00"));
        assert!(!is_date_time("2026-11-21T06:00:00") && !is_date_time("2026-11-21T06:00Z"));
        assert!(!is_instant("2026-11-21") && is_instant("2026-11-21T06:00:00-05:00"));
        assert!(is_time("10:30:00") && is_time("10:30:00.5") && !is_time("10:30") && !is_time("10:30:0é"));
        assert!(!is_time("24:00:00") && !is_date_time("2026-11-21T06:00:00+15:00"));
    }

    #[test]
    fn codes_ids_and_json_types() {
        assert!(check("code", &json!("female")).is_ok());
        assert!(check("code", &json!(" male")).is_err() && check("code", &json!("a\tb")).is_err());
        assert!(is_id("a.b-C9") && !is_id(".") && !is_id("..") && !is_id("under_score") && !is_id(&"x".repeat(65)));
        assert!(check("boolean", &json!("true")).is_err());
        assert!(check("integer", &json!(3)).is_ok() && check("integer", &json!(3.5)).is_err());
        assert!(check("positiveInt", &json!(0)).is_err() && check("unsignedInt", &json!(0)).is_ok());
        assert!(check("integer", &json!(5_000_000_000_i64)).is_err());
        assert!(check("string", &json!("")).is_err() && check("string", &json!(["a"])).is_err());
        assert!(check("uuid", &json!("urn:uuid:3f2a1c9e-1b2c-4d5e-8f90-123456789abc")).is_ok());
        assert!(check("oid", &json!("urn:oid:2.16.840.1")).is_ok() && check("oid", &json!("urn:oid:3.1")).is_err());
        assert!(check("base64Binary", &json!("aGVsbG8=")).is_ok() && check("base64Binary", &json!("a%b")).is_err());
    }

    #[test]
    fn messages_never_quote_the_value() {
        let err = check("date", &json!("Amina-secret")).unwrap_err();
        assert!(!err.contains("Amina"), "{err}");
    }
}
