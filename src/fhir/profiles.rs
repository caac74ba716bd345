//! The profiles in `fhir-profiles/`, compiled into the binary and read once into the small model
//! [`super::validate`] checks resources against. Only the rules the validator understands are
//! kept: cardinality, fixed/pattern values, required bindings, primitive types.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use crate::json::JsonExt;
use serde_json::Value;

/// Canonical base of this project's profiles and extensions.
pub const CANONICAL_BASE: &str = "http://cht-fhir-mediator.org/fhir/StructureDefinition/";

/// Profile URLs the mediator declares in `meta.profile`.
pub const PATIENT: &str = "http://cht-fhir-mediator.org/fhir/StructureDefinition/cht-patient";
pub const ENCOUNTER: &str = "http://cht-fhir-mediator.org/fhir/StructureDefinition/cht-visit-encounter";
pub const OBSERVATION: &str = "http://cht-fhir-mediator.org/fhir/StructureDefinition/cht-observation";
pub const TASK: &str = "http://cht-fhir-mediator.org/fhir/StructureDefinition/cht-task";
/// Extensions.
pub const BIRTH_DATE_APPROXIMATE: &str = "http://cht-fhir-mediator.org/fhir/StructureDefinition/birth-date-approximate";
pub const LINEAGE: &str = "http://cht-fhir-mediator.org/fhir/StructureDefinition/cht-lineage";

const FILES: &[(&str, &str)] = &[
    ("StructureDefinition-cht-patient.json", include_str!("../../fhir-profiles/StructureDefinition-cht-patient.json")),
    (
        "StructureDefinition-cht-visit-encounter.json",
        include_str!("../../fhir-profiles/StructureDefinition-cht-visit-encounter.json"),
    ),
    (
        "StructureDefinition-cht-observation.json",
        include_str!("../../fhir-profiles/StructureDefinition-cht-observation.json"),
    ),
    ("StructureDefinition-cht-task.json", include_str!("../../fhir-profiles/StructureDefinition-cht-task.json")),
    (
        "StructureDefinition-birth-date-approximate.json",
        include_str!("../../fhir-profiles/StructureDefinition-birth-date-approximate.json"),
    ),
    ("StructureDefinition-cht-lineage.json", include_str!("../../fhir-profiles/StructureDefinition-cht-lineage.json")),
    ("ValueSet-administrative-gender.json", include_str!("../../fhir-profiles/ValueSet-administrative-gender.json")),
    ("ValueSet-task-status.json", include_str!("../../fhir-profiles/ValueSet-task-status.json")),
    ("ValueSet-request-priority.json", include_str!("../../fhir-profiles/ValueSet-request-priority.json")),
];

/// One constrained element.
#[derive(Debug, Clone)]
pub struct ElementRule {
    /// e.g. `Patient.identifier.system`, `Observation.value[x]`.
    pub path: String,
    pub min: usize,
    /// `None` = unbounded (`*`).
    pub max: Option<usize>,
    /// `fixed[x]`: the value must equal it.
    pub fixed: Option<Value>,
    /// `pattern[x]`: the value must contain it.
    pub pattern: Option<Value>,
    /// Codes of a `required` binding.
    pub required_codes: Option<BTreeSet<String>>,
    /// The first `type.code` (for primitive format checks).
    pub primitive: Option<String>,
}

/// A resource profile.
#[derive(Debug, Clone)]
pub struct Profile {
    pub url: String,
    pub resource_type: String,
    pub rules: Vec<ElementRule>,
}

/// All profiles by canonical URL.
pub struct Profiles {
    pub by_url: BTreeMap<String, Profile>,
    /// The mediator's extensions: URL → the types its `value[x]` may take (`Identifier`, `boolean`).
    pub extensions: BTreeMap<String, BTreeSet<String>>,
}

/// The embedded profiles, parsed once. The files are part of the build and a test parses them,
/// so a broken file is a build defect, caught before release.
pub fn profiles() -> &'static Profiles {
    static PROFILES: OnceLock<Profiles> = OnceLock::new();
    #[allow(clippy::panic)] // see above: compiled-in data, parsed by every test run before a release
    PROFILES.get_or_init(|| parse(FILES).unwrap_or_else(|e| panic!("fhir-profiles: {e}")))
}

fn parse(files: &[(&str, &str)]) -> Result<Profiles, String> {
    let docs: Vec<(&str, Value)> = files
        .iter()
        .map(|(name, text)| serde_json::from_str(text).map(|v| (*name, v)).map_err(|e| format!("{name}: {e}")))
        .collect::<Result<_, _>>()?;
    let mut value_sets = BTreeMap::new();
    for (_, doc) in docs.iter().filter(|(_, d)| d["resourceType"] == "ValueSet") {
        let codes: BTreeSet<String> = doc
            .at("compose")
            .at("include")
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|inc| inc["concept"].as_array().into_iter().flatten())
            .filter_map(|c| c["code"].as_str().map(str::to_owned))
            .collect();
        value_sets.insert(doc["url"].as_str().unwrap_or_default().to_owned(), codes);
    }
    let mut by_url = BTreeMap::new();
    let mut extensions = BTreeMap::new();
    for (name, doc) in docs.iter().filter(|(_, d)| d["resourceType"] == "StructureDefinition") {
        if doc["type"] == "Extension" {
            let url = doc["url"].as_str().ok_or(format!("{name}: no url"))?.to_owned();
            let elements = doc.at("differential").at("element").as_array().cloned().unwrap_or_default();
            let value = elements.iter().find(|e| e["path"] == "Extension.value[x]");
            let types: BTreeSet<String> = value
                .map(|e| {
                    e.at("type")
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|t| t["code"].as_str())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            if types.is_empty() {
                return Err(format!("{name}: Extension.value[x] names no type"));
            }
            extensions.insert(url, types);
            continue;
        }
        let mut rules = Vec::new();
        for element in doc.at("differential").at("element").as_array().into_iter().flatten() {
            rules.push(rule(name, element, &value_sets)?);
        }
        let url = doc["url"].as_str().ok_or(format!("{name}: no url"))?.to_owned();
        let resource_type = doc["type"].as_str().ok_or(format!("{name}: no type"))?.to_owned();
        by_url.insert(url.clone(), Profile { url, resource_type, rules });
    }
    Ok(Profiles { by_url, extensions })
}

fn rule(file: &str, element: &Value, value_sets: &BTreeMap<String, BTreeSet<String>>) -> Result<ElementRule, String> {
    let path = element["path"].as_str().ok_or(format!("{file}: element without path"))?.to_owned();
    let object = element.as_object().ok_or(format!("{file}: {path} is not an object"))?;
    let prefixed = |prefix: &str| object.iter().find(|(k, _)| k.starts_with(prefix)).map(|(_, v)| v.clone());
    let max = match element["max"].as_str() {
        None | Some("*") => None,
        Some(n) => Some(n.parse().map_err(|_| format!("{file}: {path}: max {n:?}"))?),
    };
    let required_codes = match &element["binding"] {
        Value::Object(b) if b.get("strength").and_then(Value::as_str) == Some("required") => {
            let url = b.get("valueSet").and_then(Value::as_str).unwrap_or_default();
            let url = url.split('|').next().unwrap_or_default();
            Some(
                value_sets
                    .get(url)
                    .cloned()
                    .ok_or(format!("{file}: {path}: value set {url} is not in fhir-profiles"))?,
            )
        }
        _ => None,
    };
    Ok(ElementRule {
        min: element["min"].as_u64().unwrap_or(0) as usize,
        max,
        fixed: prefixed("fixed"),
        pattern: prefixed("pattern"),
        required_codes,
        primitive: element.at("type").nth(0).at("code").as_str().map(str::to_owned),
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_profiles_parse_and_declare_the_known_urls() {
        let p = profiles();
        for url in [PATIENT, ENCOUNTER, OBSERVATION, TASK] {
            assert!(p.by_url.contains_key(url), "{url}");
        }
        let task = &p.by_url[TASK];
        let status = task.rules.iter().find(|r| r.path == "Task.status").unwrap();
        assert!(status.required_codes.as_ref().unwrap().contains("completed"));
        assert!(url_base_matches_files());
        assert_eq!(p.extensions[LINEAGE].iter().collect::<Vec<_>>(), ["Identifier"]);
        assert_eq!(p.extensions[BIRTH_DATE_APPROXIMATE].iter().collect::<Vec<_>>(), ["boolean"]);
    }

    fn url_base_matches_files() -> bool {
        profiles().by_url.keys().all(|u| u.starts_with(CANONICAL_BASE))
    }

    #[test]
    fn a_binding_to_a_missing_value_set_is_reported() {
        let sd = r#"{"resourceType":"StructureDefinition","url":"u","type":"Patient","differential":{"element":[
            {"path":"Patient.gender","binding":{"strength":"required","valueSet":"http://nowhere"}}]}}"#;
        let err = parse(&[("x.json", sd)]).err().unwrap();
        assert!(err.contains("http://nowhere"), "{err}");
    }
}
