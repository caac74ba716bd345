//! Which CHT documents go to FHIR: the same rules as the outbound pushes in
//! `mediator-config/cht/app_settings.json` (`cht-config` prints them with this deployment's lists;
//! a test evaluates both on the same documents), for the backfill, which reads documents from
//! CHT's changes feed instead of receiving pushes.
//!
//! Who is a patient: in real apps persons made by CHT's forms carry no `role`, and apps with
//! configurable hierarchies store `type: contact` with their own `contact_type`. So every person
//! is a patient except staff: a person with a staff `role`, or one placed directly under a staff
//! place (the CHW under their CHW area's health centre, the supervisor under the district).

use serde_json::Value;

use super::mapping::FormMappings;

/// What a document is for the inbound side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selected {
    Person,
    Report,
}

/// The patient rule: `CHT_PERSON_CONTACT_TYPES`, `CHT_STAFF_ROLES`, `CHT_STAFF_PLACE_TYPES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientSelection {
    /// `contact_type`s of `type: contact` documents that are persons who can be patients.
    pub person_contact_types: Vec<String>,
    /// `role`s of staff persons (never pushed).
    pub staff_roles: Vec<String>,
    /// Place types (`type`, or `contact_type` of a `type: contact` place) whose direct persons are
    /// staff.
    pub staff_place_types: Vec<String>,
}

impl Default for PatientSelection {
    fn default() -> Self {
        let list = |items: &[&str]| items.iter().map(|s| s.to_string()).collect();
        Self {
            person_contact_types: list(&["person", "patient", "c_patient", "household_member", "c_household_member"]),
            staff_roles: list(&[
                "chw",
                "chw_supervisor",
                "supervisor",
                "nurse",
                "manager",
                "data_entry",
                "national_admin",
            ]),
            staff_place_types: list(&[
                "health_center",
                "district_hospital",
                "national_office",
                "c_chw_area",
                "c_chw_site",
                "c_health_facility",
            ]),
        }
    }
}

impl PatientSelection {
    /// Parses the three comma-separated lists (blank items dropped).
    pub fn from_lists(person_contact_types: &str, staff_roles: &str, staff_place_types: &str) -> Self {
        let list = |s: &str| s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
        Self {
            person_contact_types: list(person_contact_types),
            staff_roles: list(staff_roles),
            staff_place_types: list(staff_place_types),
        }
    }

    /// The outbound `relevant_to` (a JavaScript expression over the hydrated `doc`, run by CHT
    /// with `vm.runInNewContext`) that selects exactly what [`PatientSelection::is_patient`] does.
    pub fn relevant_to(&self) -> String {
        let js = |items: &[String]| {
            let quoted: Vec<String> = items.iter().map(|s| serde_json::to_string(s).unwrap_or_default()).collect();
            format!("[{}]", quoted.join(", "))
        };
        format!(
            "(doc.type === 'person' || doc.type === 'contact' && {types}.indexOf(doc.contact_type) !== -1) \
             && {roles}.indexOf(doc.role) === -1 \
             && (!!doc.fhir_identifiers || !(doc.parent && {places}.indexOf(doc.parent.type === 'contact' ? doc.parent.contact_type : doc.parent.type) !== -1))",
            types = js(&self.person_contact_types),
            roles = js(&self.staff_roles),
            places = js(&self.staff_place_types),
        )
    }

    /// Whether CHT document `doc` is a person (`type: person`, or a person `contact_type`) who is
    /// not staff by `role` — wherever it is placed.
    pub fn is_non_staff_person(&self, doc: &Value) -> bool {
        self.is_person(doc) && !listed(&self.staff_roles, &doc["role"])
    }

    /// Whether CHT document `doc` is a person: `type: person`, or a person `contact_type`.
    pub fn is_person(&self, doc: &Value) -> bool {
        doc["type"] == "person"
            || (doc["type"] == "contact" && listed(&self.person_contact_types, &doc["contact_type"]))
    }

    /// Whether CHT document `doc` (its `parent` hydrated, as pushed) is a patient.
    pub fn is_patient(&self, doc: &Value) -> bool {
        let parent = &doc["parent"];
        let parent_type = if parent["type"] == "contact" { &parent["contact_type"] } else { &parent["type"] };
        // A person the mediator registered from the EMR (`fhir_identifiers`) is a patient wherever
        // the mapping placed it (often directly in the CHW's area).
        // JavaScript's truthiness, as `!!doc.fhir_identifiers` in the relevant_to.
        let registered = match doc.get("fhir_identifiers") {
            None | Some(Value::Null | Value::Bool(false)) => false,
            Some(Value::String(s)) => !s.is_empty(),
            Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
            Some(_) => true,
        };
        self.is_non_staff_person(doc)
            && (registered || !(parent.is_object() && listed(&self.staff_place_types, parent_type)))
    }
}

fn listed(list: &[String], v: &Value) -> bool {
    v.as_str().is_some_and(|s| list.iter().any(|x| x == s))
}

/// `cht_fhir_patients`: a patient by [`PatientSelection::is_patient`];
/// `cht_fhir_reports`: a `data_record` of a form the mappings know.
pub fn select(doc: &Value, forms: &FormMappings, patients: &PatientSelection) -> Option<Selected> {
    if doc["_deleted"] == true {
        return None;
    }
    if patients.is_patient(doc) {
        return Some(Selected::Person);
    }
    let mapped = doc["type"] == "data_record" && doc["form"].as_str().is_some_and(|f| forms.forms.contains_key(f));
    mapped.then_some(Selected::Report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversions::mapping::DEFAULT_FORMS_JSON;
    use serde_json::json;

    #[test]
    fn patients_and_mapped_reports_only() {
        let forms = FormMappings::parse(DEFAULT_FORMS_JSON).unwrap();
        let p = PatientSelection::default();
        let s = |doc: Value| select(&doc, &forms, &p);
        assert_eq!(s(json!({"type": "person", "role": "patient"})), Some(Selected::Person));
        assert_eq!(s(json!({"type": "person", "parent": {"_id": "hh", "type": "clinic"}})), Some(Selected::Person));
        assert_eq!(s(json!({"type": "contact", "contact_type": "c_patient"})), Some(Selected::Person));
        assert_eq!(s(json!({"type": "contact", "contact_type": "household_member"})), Some(Selected::Person));
        assert_eq!(s(json!({"type": "contact", "contact_type": "c_household"})), None, "a place");
        assert_eq!(s(json!({"type": "person", "role": "chw"})), None);
        assert_eq!(s(json!({"type": "person", "parent": {"_id": "a", "type": "health_center"}})), None, "a CHW");
        let registered = json!({"type": "person", "fhir_identifiers": [{"system": "https://emr", "value": "1"}],
            "parent": {"_id": "a", "type": "health_center"}});
        assert_eq!(s(registered), Some(Selected::Person), "a patient the EMR registered, placed in the CHW area");
        assert_eq!(
            s(
                json!({"type": "contact", "contact_type": "person", "parent": {"type": "contact", "contact_type": "c_chw_area"}})
            ),
            None
        );
        assert_eq!(s(json!({"type": "data_record", "form": "referral"})), Some(Selected::Report));
        assert_eq!(s(json!({"type": "data_record", "form": "INTEROP_FOLLOW_UP"})), None, "the mediator's own records");
        assert_eq!(s(json!({"type": "clinic"})), None);
        assert_eq!(s(json!({"type": "person", "role": "patient", "_deleted": true})), None);
    }

    #[test]
    fn lists_come_from_comma_separated_settings() {
        let p = PatientSelection::from_lists("patient, member,", "chw", "");
        assert_eq!(p.person_contact_types, ["patient", "member"]);
        assert!(
            p.is_patient(&json!({"type": "contact", "contact_type": "member", "parent": {"type": "health_center"}}))
        );
        assert!(p.relevant_to().contains(r#"["patient", "member"]"#));
    }
}
