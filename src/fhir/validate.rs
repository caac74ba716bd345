//! Checks a resource (as JSON) against its profile in `fhir-profiles/`; every problem names the
//! element with array indices, e.g. `Patient.identifier[1].system`.
//!
//! Semantics follow FHIR: a rule on `A.b.c` applies to each `A.b` that is present; cardinality
//! counts array items; `x[x]` matches any `xType` key; `pattern` values must be contained in the
//! value, `fixed` values must equal it.

use serde_json::Value;

use super::profiles::{ElementRule, Profile, profiles};
use crate::json::JsonExt;

/// One validation problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// FHIRPath-like location, with indices.
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Validates `resource` against the profile it declares in `meta.profile` (one of ours).
pub fn validate(resource: &Value) -> Result<(), Vec<Violation>> {
    let kind = resource["resourceType"].as_str().unwrap_or_default();
    let declared = resource.at("meta").at("profile").as_array().into_iter().flatten().filter_map(Value::as_str);
    let profile = declared.filter_map(|url| profiles().by_url.get(url)).next();
    let Some(profile) = profile else {
        return Err(vec![Violation {
            path: format!("{kind}.meta.profile"),
            message: "declares none of the mediator's profiles".into(),
        }]);
    };
    validate_against(resource, profile)
}

/// Validates `resource` against `profile`.
pub fn validate_against(resource: &Value, profile: &Profile) -> Result<(), Vec<Violation>> {
    let mut violations = Vec::new();
    if resource["resourceType"] != profile.resource_type.as_str() {
        violations
            .push(Violation { path: "resourceType".into(), message: format!("must be {}", profile.resource_type) });
        return Err(violations);
    }
    for rule in &profile.rules {
        check_rule(resource, rule, &mut violations);
    }
    check_extensions(resource, &mut profile.resource_type.clone(), &mut violations);
    if violations.is_empty() { Ok(()) } else { Err(violations) }
}

/// Every use of one of the mediator's extensions, wherever it is (a primitive's `_birthDate`
/// included, named by its element: `Patient.birthDate.extension[0]`), carries exactly one value
/// of a type its definition allows. `path` is one buffer for the walk (a segment appended going
/// down, cut going back up): no string is built per element.
fn check_extensions(value: &Value, path: &mut String, out: &mut Vec<Violation>) {
    use std::fmt::Write;
    match value {
        Value::Object(object) => {
            for (key, child) in object {
                let name = key.strip_prefix('_').unwrap_or(key);
                let up = path.len();
                path.push('.');
                path.push_str(name);
                if matches!(name, "extension" | "modifierExtension") {
                    for (i, extension) in child.as_array().into_iter().flatten().enumerate() {
                        let at = path.len();
                        let _ = write!(path, "[{i}]");
                        check_extension(extension, path, out);
                        path.truncate(at);
                    }
                }
                check_extensions(child, path, out);
                path.truncate(up);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let up = path.len();
                let _ = write!(path, "[{i}]");
                check_extensions(item, path, out);
                path.truncate(up);
            }
        }
        _ => {}
    }
}

fn check_extension(extension: &Value, path: &str, out: &mut Vec<Violation>) {
    let url = extension.at("url").as_str().unwrap_or_default();
    let Some(allowed) = profiles().extensions.get(url) else { return };
    let values: Vec<&str> = extension
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, _)| k.strip_prefix("value").filter(|t| t.starts_with(|c: char| c.is_ascii_uppercase())))
        .collect();
    let allowed_here = |t: &str| allowed.iter().any(|a| a.eq_ignore_ascii_case(t));
    match values.as_slice() {
        [one] if allowed_here(one) => {}
        _ => out.push(Violation {
            path: path.to_owned(),
            message: format!(
                "extension {url} takes one value of type {}",
                allowed.iter().cloned().collect::<Vec<_>>().join(" or ")
            ),
        }),
    }
}

fn check_rule(resource: &Value, rule: &ElementRule, out: &mut Vec<Violation>) {
    let segments: Vec<&str> = rule.path.split('.').collect();
    // A rule on the resource itself (`Patient`) has no element to check here.
    let Some((root, elements)) = segments.split_first() else { return };
    let Some((last, parents)) = elements.split_last() else { return };
    for (parent_path, parent) in instances(resource, (*root).to_owned(), parents) {
        let children = children(parent, last);
        let count = children.len();
        if count < rule.min {
            out.push(Violation {
                path: format!("{parent_path}.{last}"),
                message: format!("minimum cardinality {} not met", rule.min),
            });
        }
        if rule.max.is_some_and(|max| count > max) {
            out.push(Violation {
                path: format!("{parent_path}.{last}"),
                message: format!("more than {} allowed", rule.max.unwrap_or(0)),
            });
        }
        for (path, value) in children.iter().map(|(name, v)| (format!("{parent_path}.{name}"), *v)) {
            check_value(&path, value, rule, out);
        }
    }
}

/// Every instance of the element at `segments` below `value`, with its indexed path.
fn instances<'a>(value: &'a Value, path: String, segments: &[&str]) -> Vec<(String, &'a Value)> {
    let Some((first, rest)) = segments.split_first() else {
        return vec![(path, value)];
    };
    children(value, first)
        .into_iter()
        .flat_map(|(name, child)| instances(child, format!("{path}.{name}"), rest))
        .collect()
}

/// The values of child `name` (arrays expanded with indices; `x[x]` matching any `xType`).
fn children<'a>(value: &'a Value, name: &str) -> Vec<(String, &'a Value)> {
    let Some(object) = value.as_object() else { return Vec::new() };
    let matching: Vec<(&String, &Value)> = match name.strip_suffix("[x]") {
        Some(stem) => object
            .iter()
            .filter(|(k, _)| k.strip_prefix(stem).is_some_and(|t| t.starts_with(|c: char| c.is_ascii_uppercase())))
            .collect(),
        None => object.get_key_value(name).into_iter().collect(),
    };
    let mut out = Vec::new();
    for (key, v) in matching {
        match v {
            Value::Array(items) => out.extend(items.iter().enumerate().map(|(i, item)| (format!("{key}[{i}]"), item))),
            Value::Null => {}
            other => out.push((key.clone(), other)),
        }
    }
    out
}

fn check_value(path: &str, value: &Value, rule: &ElementRule, out: &mut Vec<Violation>) {
    let mut push = |message: String| out.push(Violation { path: path.to_owned(), message });
    if let Some(fixed) = &rule.fixed
        && value != fixed
    {
        push(format!("must be {fixed}"));
    }
    if let Some(pattern) = &rule.pattern
        && !contains(value, pattern)
    {
        push(format!("must match the pattern {pattern}"));
    }
    if let Some(codes) = &rule.required_codes {
        match value.as_str() {
            Some(code) if codes.contains(code) => {}
            _ => push(format!("{value} is not in the required value set")),
        }
    }
    if let Some(kind) = &rule.primitive
        && let Err(message) = check_primitive(kind, value)
    {
        push(message);
    }
    // Identifier.system and Coding.system SHALL be absolute (ContactPoint.system is a code).
    let uri_system = rule.primitive.as_deref() == Some("uri") && path.ends_with(".system");
    if uri_system && value.as_str().is_some_and(|s| !is_absolute_uri(s)) {
        push(format!("{value} is not an absolute URI"));
    }
}

/// `pattern[x]` semantics: objects match when every pattern property matches; arrays when every
/// pattern item matches some value item; primitives when equal.
fn contains(value: &Value, pattern: &Value) -> bool {
    match (value, pattern) {
        (Value::Object(v), Value::Object(p)) => p.iter().all(|(k, pv)| v.get(k).is_some_and(|vv| contains(vv, pv))),
        (Value::Array(v), Value::Array(p)) => p.iter().all(|pv| v.iter().any(|vv| contains(vv, pv))),
        _ => value == pattern,
    }
}

pub fn is_absolute_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else { return false };
    !rest.is_empty()
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
}

/// Formats of the primitive types the profiles use (the base R4 rules); other type codes (data
/// types such as `Identifier`) have no format of their own here.
pub fn check_primitive(kind: &str, value: &Value) -> Result<(), String> {
    const PRIMITIVES: &[&str] = &[
        "boolean",
        "integer",
        "unsignedInt",
        "positiveInt",
        "decimal",
        "string",
        "markdown",
        "code",
        "id",
        "uri",
        "url",
        "canonical",
        "oid",
        "uuid",
        "date",
        "dateTime",
        "instant",
        "time",
        "base64Binary",
    ];
    if PRIMITIVES.contains(&kind) { super::base::primitive::check(kind, value) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fhir::profiles::{ENCOUNTER, OBSERVATION, PATIENT};
    use serde_json::json;

    fn paths(result: Result<(), Vec<Violation>>) -> Vec<String> {
        result.err().unwrap_or_default().into_iter().map(|v| v.path).collect()
    }

    fn patient() -> Value {
        json!({"resourceType": "Patient", "id": "p1", "meta": {"profile": [PATIENT]},
            "identifier": [{"type": {"text": "CHT Document ID"}, "system": "https://cht.example.org/id", "value": "p1"}],
            "name": [{"text": "Amina Njeri"}], "gender": "female", "birthDate": "1990-02-28"})
    }

    #[test]
    fn a_conforming_patient_passes() {
        assert_eq!(validate(&patient()), Ok(()));
    }

    #[test]
    fn violations_name_the_element_with_its_index() {
        let mut p = patient();
        p["identifier"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": {"text": "CHT Patient ID"}, "system": "patient-id", "value": "123"}));
        p["gender"] = json!("woman");
        p["birthDate"] = json!("21/07/1994");
        p["telecom"] = json!([{"value": "+254700000000"}]);
        let found = paths(validate(&p));
        assert_eq!(
            found,
            ["Patient.identifier[1].system", "Patient.telecom[0].system", "Patient.gender", "Patient.birthDate"]
        );
    }

    #[test]
    fn missing_required_elements_and_impossible_dates_are_caught() {
        let mut p = patient();
        p.as_object_mut().unwrap().remove("name");
        p["birthDate"] = json!("2023-02-30");
        assert_eq!(paths(validate(&p)), ["Patient.name", "Patient.birthDate"]);
    }

    #[test]
    fn patterns_fixed_values_and_choice_types() {
        let encounter = json!({"resourceType": "Encounter", "meta": {"profile": [ENCOUNTER]},
            "identifier": [{"system": "https://x/id", "value": "r1"}], "status": "in-progress",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "type": [{"text": "visit"}], "subject": {"reference": "Patient/p1"}, "period": {"start": "2026-11-21T06:00:00Z"}});
        assert_eq!(paths(validate(&encounter)), ["Encounter.status", "Encounter.class"]);
        let observation = json!({"resourceType": "Observation", "meta": {"profile": [OBSERVATION]}, "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
            "subject": {"reference": "Patient/p1"}, "encounter": {"reference": "Encounter/r1"},
            "effectiveDateTime": "2026-11-21", "valueQuantity": {"value": 3.5}, "valueString": "also"});
        assert_eq!(paths(validate(&observation)), ["Observation.value[x]"]);
    }

    #[test]
    fn undeclared_profile_is_refused() {
        let mut p = patient();
        p["meta"]["profile"] = json!(["http://example.org/other"]);
        assert_eq!(paths(validate(&p)), ["Patient.meta.profile"]);
    }

    #[test]
    fn primitive_formats() {
        assert!(check_primitive("dateTime", &json!("2026-11-21T06:00:00.123Z")).is_ok());
        assert!(check_primitive("dateTime", &json!("2026-11-21T06:00:00")).is_err(), "time zone required");
        assert!(check_primitive("instant", &json!("2026-11-21")).is_err());
        assert!(check_primitive("date", &json!("1990")).is_ok());
        assert!(check_primitive("date", &json!("1990-13")).is_err());
        assert!(check_primitive("code", &json!(" male")).is_err());
    }
}
