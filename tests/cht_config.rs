//! The CHT side an app builder pastes in (mediator-config/cht/) must agree with the mediator:
//! every report form CHT pushes has a form mapping and every mapping is pushed, pushes go to
//! paths the default channels route, and the JSON forms define every field the mediator writes.

use cht_fhir_mediator::conversions::follow_up::{new_task, parse_request, record_fields};
use cht_fhir_mediator::conversions::mapping::{DEFAULT_FORMS_JSON, FormMappings};
use cht_fhir_mediator::openhim::registration::MEDIATOR_JSON;
use serde_json::{Value, json};

fn app_settings() -> Value {
    serde_json::from_str(&std::fs::read_to_string("mediator-config/cht/app_settings.json").unwrap()).unwrap()
}

/// The form codes listed in a relevant_to expression's `[...]`.
fn pushed_forms(relevant_to: &str) -> Vec<String> {
    let list =
        regex::Regex::new(r"\[([^\]]*)\]").unwrap().captures(relevant_to).expect("a list of forms")[1].to_owned();
    regex::Regex::new(r"'([^']+)'").unwrap().captures_iter(&list).map(|c| c[1].to_owned()).collect()
}

#[test]
fn every_pushed_report_form_is_mapped_and_every_mapping_is_pushed() {
    let settings = app_settings();
    let mappings = FormMappings::parse(DEFAULT_FORMS_JSON).unwrap();
    let pushed = pushed_forms(settings["outbound"]["cht_fhir_reports"]["relevant_to"].as_str().unwrap());
    for form in &pushed {
        assert!(mappings.form(form).is_some(), "CHT pushes {form} but forms.json has no mapping for it");
    }
    for form in mappings.forms.keys() {
        assert!(pushed.contains(form), "forms.json maps {form} but CHT never pushes it");
    }
    assert_eq!(settings["transitions"]["mark_for_outbound"], true, "outbound needs the transition");
}

#[test]
fn pushes_go_to_paths_the_default_channels_route_to_existing_endpoints() {
    let settings = app_settings();
    let registration: Value = serde_json::from_str(MEDIATOR_JSON).unwrap();
    let channels = registration["defaultChannelConfig"].as_array().unwrap();
    for (name, push) in settings["outbound"].as_object().unwrap() {
        let path = push["destination"]["path"].as_str().unwrap();
        let channel = channels
            .iter()
            .find(|c| regex::Regex::new(c["urlPattern"].as_str().unwrap()).unwrap().is_match(path))
            .unwrap_or_else(|| panic!("outbound {name} pushes to {path}, which no default channel routes"));
        assert!(
            channel["allow"].as_array().unwrap().contains(&json!("cht")),
            "{name}: channel {} does not allow role cht",
            channel["name"]
        );
        let mediator_path = path.trim_start_matches("/mediator");
        assert!(
            ["/cht/patient", "/cht/encounter"].contains(&mediator_path),
            "{name}: {mediator_path} is not an inbound endpoint"
        );
        assert_eq!(push["mapping"], json!({"doc": "doc"}), "{name}: the mediator converts whole documents");
        assert!(push["destination"]["auth"]["password_key"].is_string());
    }
}

#[test]
fn the_follow_up_form_defines_every_field_the_mediator_writes() {
    let settings = app_settings();
    let form = &settings["forms"]["INTEROP_FOLLOW_UP"]["fields"];
    let request = parse_request(&json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
        "subject": {"reference": "Patient/p"}, "requester": {"display": "Clinic"}, "reasonCode": [{"text": "r"}], "note": [{"text": "n"}]}))
    .unwrap();
    let fields = record_fields(&new_task(&request, "p", "2026-11-21T00:00:00Z"), "uuid", Some("12345"));
    for key in fields.keys() {
        assert!(form.get(key).is_some(), "INTEROP_FOLLOW_UP does not define {key}: CHT would drop it");
        assert_eq!(key, &key.to_lowercase());
    }
    for (key, def) in form.as_object().unwrap() {
        if def["required"] == true {
            assert!(fields.contains_key(key), "INTEROP_FOLLOW_UP requires {key}, which the mediator does not send");
        }
    }
    let default_form = std::fs::read_to_string("mediator-config/settings.toml").unwrap();
    assert!(default_form.contains("CHT_FOLLOW_UP_FORM = \"INTEROP_FOLLOW_UP\""));
}

#[test]
fn the_observation_form_defines_every_field_the_outbound_mapping_writes() {
    use cht_fhir_mediator::conversions::to_cht::{DEFAULT_OUTBOUND_JSON, OutboundMappings, encounter_record};
    let settings = app_settings();
    let mappings = OutboundMappings::parse(DEFAULT_OUTBOUND_JSON).unwrap();
    let observations: Vec<Value> = mappings
        .observation_fields
        .keys()
        .map(|token| {
            let (system, code) = token.split_once('|').unwrap();
            json!({"code": {"coding": [{"system": system, "code": code}]}, "valueString": "x"})
        })
        .collect();
    let records = [encounter_record(&json!({"id": "e"}), &observations, "uuid", &mappings).unwrap()];
    for (form, fields) in records {
        let defined = settings["forms"][&form]["fields"]
            .as_object()
            .unwrap_or_else(|| panic!("app_settings has no JSON form {form}"));
        for key in fields.keys() {
            assert!(defined.contains_key(key), "{form} does not define {key}: CHT would drop it");
        }
        for (key, def) in defined {
            assert!(
                def["required"] != true || fields.contains_key(key),
                "{form} requires {key}, which the mediator does not send"
            );
        }
    }
}

/// The text of the first element `<name>...</name>` or `<name attrs>...</name>`.
fn block<'a>(xml: &'a str, name: &str) -> &'a str {
    element(xml, &format!("<{name}>"), name)
        .or_else(|| element(xml, &format!("<{name} "), name))
        .unwrap_or_else(|| panic!("no <{name}> in the XForm"))
}

/// The text from `open` to the next `</name>`.
fn element<'a>(xml: &'a str, open: &str, name: &str) -> Option<&'a str> {
    let start = xml.find(open)?;
    let end = xml[start..].find(&format!("</{name}>"))?;
    Some(&xml[start..start + end])
}

#[test]
fn the_follow_up_xform_and_task_agree_with_the_mapping() {
    use cht_fhir_mediator::conversions::mapping::TaskKind;
    let xform = std::fs::read_to_string("mediator-config/cht/forms/app/interop_follow_up.xml").unwrap();
    let mappings = FormMappings::parse(DEFAULT_FORMS_JSON).unwrap();
    let mapping = mappings.form("interop_follow_up").unwrap();
    let task = mapping.task.as_ref().unwrap();
    assert_eq!(task.kind, TaskKind::FollowUpOutcome);
    let instance = block(&xform, "instance");
    // Every field the mapping reads exists in the form's instance, at that path.
    let mut paths: Vec<&str> = mapping.observations.iter().map(|o| o.field.as_str()).collect();
    paths.extend(
        [&task.source_field, &task.task_id_field, &task.outcome_field].into_iter().flatten().map(String::as_str),
    );
    for path in paths {
        let segments: Vec<&str> = path.strip_prefix("fields.").expect("form fields").split('.').collect();
        let (leaf, groups) = segments.split_last().unwrap();
        let scope = groups.iter().fold(instance, |scope, group| block(scope, group));
        assert!(scope.contains(&format!("<{leaf}")), "the XForm has no {path}");
    }
    // The outcome choices are exactly the answers the mapping knows.
    let outcome = element(&xform, "<select1 ref=\"/interop_follow_up/follow_up/outcome\"", "select1")
        .expect("the outcome question");
    let mut choices: Vec<String> =
        regex::Regex::new(r"<value>([^<]+)</value>").unwrap().captures_iter(outcome).map(|c| c[1].to_owned()).collect();
    let mut known: Vec<String> = task.completed_values.iter().chain(&task.failed_values).cloned().collect();
    choices.sort();
    known.sort();
    assert_eq!(choices, known);

    // The CHT task applies to the mediator's follow-up records and opens this form.
    let tasks = std::fs::read_to_string("mediator-config/cht/tasks.js").unwrap();
    assert!(tasks.contains("appliesToType: ['INTEROP_FOLLOW_UP']"));
    assert!(tasks.contains("form: 'interop_follow_up'"));
    assert!(
        pushed_forms(app_settings()["outbound"]["cht_fhir_reports"]["relevant_to"].as_str().unwrap())
            .contains(&"interop_follow_up".to_owned())
    );
}

#[test]
fn backfill_selects_exactly_what_the_outbound_pushes_would() {
    use cht_fhir_mediator::conversions::selection::{Selected, select};
    let settings = app_settings();
    let mappings = FormMappings::parse(DEFAULT_FORMS_JSON).unwrap();
    let patients = cht_fhir_mediator::settings::Settings::without_registration(
        cht_fhir_mediator::settings::Source::load_with_env(None, std::iter::empty()).unwrap(),
    )
    .unwrap()
    .patients;
    assert_eq!(
        settings["outbound"]["cht_fhir_patients"]["relevant_to"],
        patients.relevant_to(),
        "the shipped relevant_to is the one the default lists make"
    );
    // Realistic contacts, hydrated as outbound sees them: persons made by CHT's forms carry no
    // role; configurable hierarchies name their own contact types; CHWs and supervisors are
    // persons too.
    let household = json!({"_id": "hh", "type": "clinic", "parent": {"_id": "area", "type": "health_center"}});
    let area = json!({"_id": "area", "type": "health_center", "parent": {"_id": "dh", "type": "district_hospital"}});
    let c_household = json!({"_id": "hh2", "type": "contact", "contact_type": "c_household"});
    let c_area = json!({"_id": "a2", "type": "contact", "contact_type": "c_chw_area"});
    let samples = json!([
        {"type": "person", "role": "patient"}, {"type": "person", "role": "chw"}, {"type": "person"},
        {"type": "person", "parent": household}, {"type": "person", "parent": area},
        {"type": "person", "role": "chw_supervisor", "parent": {"_id": "dh", "type": "district_hospital"}},
        {"type": "contact", "contact_type": "c_patient"}, {"type": "contact", "contact_type": "c_household"},
        {"type": "contact", "contact_type": "household_member", "parent": c_household},
        {"type": "contact", "contact_type": "patient", "parent": c_household},
        {"type": "contact", "contact_type": "person", "parent": c_area},
        {"type": "contact", "contact_type": "c_chw_area"},
        {"type": "person", "parent": area, "fhir_identifiers": [{"system": "https://emr.example.org/mrn", "value": "9"}]},
        {"type": "person", "parent": area, "fhir_identifiers": ""}, {"type": "person", "parent": area, "fhir_identifiers": 0},
        {"type": "person", "parent": area, "fhir_identifiers": []},
        {"type": "clinic"}, {"type": "data_record", "form": "referral"}, {"type": "data_record", "form": "interop_follow_up"},
        {"type": "data_record", "form": "INTEROP_FOLLOW_UP"}, {"type": "data_record", "form": "unmapped"},
        {"type": "data_record", "form": "pregnancy_home_visit"}, {"type": "data_record"}
    ]);
    // CHT evaluates relevant_to with vm.runInNewContext(expr, {doc}); so does this check.
    let script = r#"
        const vm = require('vm');
        const [patients, reports, docs] = JSON.parse(process.argv[1]);
        console.log(JSON.stringify(docs.map(doc => [!!vm.runInNewContext(patients, {doc}), !!vm.runInNewContext(reports, {doc})])));
    "#;
    let input = json!([
        settings["outbound"]["cht_fhir_patients"]["relevant_to"],
        settings["outbound"]["cht_fhir_reports"]["relevant_to"],
        samples
    ]);
    let out = std::process::Command::new("node").args(["-e", script, &input.to_string()]).output().expect("node runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pushed: Vec<(bool, bool)> = serde_json::from_slice(&out.stdout).unwrap();
    for (doc, (patient, report)) in samples.as_array().unwrap().iter().zip(pushed) {
        let expected = if patient {
            Some(Selected::Person)
        } else if report {
            Some(Selected::Report)
        } else {
            None
        };
        assert_eq!(select(doc, &mappings, &patients), expected, "{doc}");
    }
}
