//! `GET /fhir/metadata`: what the mediator's FHIR endpoints do, exactly — the reads this facade
//! answers from CHT, the writes that become CHT records and contacts, the formats and profiles.

use serde_json::{Value, json};

use crate::json::JsonExt;

use crate::fhir::profiles::{ENCOUNTER, PATIENT, TASK};

/// The CapabilityStatement; `base` is the public FHIR base (`FHIR_FACADE_BASE_URL`), if set.
pub fn statement(base: Option<&str>, date: &str) -> Value {
    let read = json!({"code": "read"});
    let create = |doc: &str| json!({"code": "create", "documentation": doc});
    let search_param = |name: &str, definition: &str, doc: &str| {
        json!({"name": name, "definition": format!("http://hl7.org/fhir/SearchParameter/{definition}"),
            "type": "token", "documentation": doc})
    };
    let mut implementation = json!({"description": "cht-fhir-mediator: FHIR R4 facade of a Community Health Toolkit \
        instance (reads of its contacts and places; writes that become CHT records and contacts)"});
    if let Some(base) = base {
        implementation.set("url", json!(base));
    }
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "publisher": "cht-fhir-mediator",
        "kind": "instance",
        "software": {"name": "cht-fhir-mediator", "version": env!("CARGO_PKG_VERSION")},
        "implementation": implementation,
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "application/fhir+xml"],
        "rest": [{
            "mode": "server",
            "documentation": "Reads answer from CHT through its API (the mediator's CHT user needs an online role \
                with can_view_contacts). Writes take FHIR JSON or XML and answer JSON.",
            "resource": [
                {
                    "type": "Patient",
                    "profile": PATIENT,
                    "interaction": [read, {"code": "search-type",
                        "documentation": "AND of the parameters, OR of comma-separated values; _count (at most 100) \
                            and _getpagesoffset page; other parameters are refused (400) unless Prefer: handling=lenient"},
                        create("The EMR registers a patient for community follow-up: stored on the FHIR server and \
                            made one CHT contact")],
                    "searchParam": [
                        search_param("_id", "Resource-id", "the FHIR id the mediator gives the CHT contact"),
                        search_param("identifier", "Patient-identifier",
                            "the CHT document id or patient short code (system|value; a bare value tries both)"),
                        search_param("telecom", "Patient-telecom", "a phone number, normalised as CHT does"),
                        search_param("phone", "individual-phone", "a phone number, normalised as CHT does"),
                    ],
                },
                {"type": "Practitioner", "interaction": [read], "documentation": "a CHW or other staff contact"},
                {"type": "Organization", "interaction": [read], "documentation": "a CHT place, partOf its parent"},
                {"type": "Location", "interaction": [read], "documentation": "a CHT place, partOf its parent"},
                {"type": "ServiceRequest", "interaction": [create("A lost-to-follow-up request: a Task and a CHT \
                    follow-up record for the patient's CHW")]},
                {"type": "Task", "supportedProfile": [TASK], "interaction": [create("A follow-up request as a Task")]},
                {"type": "Encounter", "supportedProfile": [ENCOUNTER],
                    "interaction": [create("An Encounter (with its Observations) as one CHT record")]},
            ],
            "interaction": [{"code": "transaction",
                "documentation": "POST [base] with a transaction or collection Bundle of Encounters and their \
                    Observations: one CHT record per Encounter"}],
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statement_is_valid_r4_and_lists_the_reads() {
        let s = statement(Some("https://him.example.org/mediator/fhir"), "2026-12-03");
        assert_eq!(crate::fhir::base::validate(&s), Ok(()));
        assert_eq!(crate::fhir::model::check_structure(&s), Ok(()));
        let resources = s["rest"][0]["resource"].as_array().unwrap();
        let patient = resources.iter().find(|r| r["type"] == "Patient").unwrap();
        let codes: Vec<&str> =
            patient["interaction"].as_array().unwrap().iter().map(|i| i["code"].as_str().unwrap()).collect();
        assert_eq!(codes, ["read", "search-type", "create"]);
        assert_eq!(s["implementation"]["url"], "https://him.example.org/mediator/fhir");
        assert!(statement(None, "2026-12-03")["implementation"].get("url").is_none());
    }
}
