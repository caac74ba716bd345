//! Property tests of the converters and parsers (cargo fuzz needs a nightly toolchain, which
//! cannot be installed here; proptest covers the same ground on stable): random documents built
//! from the keys the converters read, with every JSON type in every place, never make them
//! panic, and whatever they accept comes out conforming to the mediator's own profiles.

use cht_fhir_mediator::conversions::follow_up::{new_task, parse_request, record_fields};
use cht_fhir_mediator::conversions::mapping::{DEFAULT_FORMS_JSON, FormMappings};
use cht_fhir_mediator::conversions::patient::person_to_patient;
use cht_fhir_mediator::conversions::report::{build, parse_report};
use cht_fhir_mediator::conversions::to_cht::{DEFAULT_OUTBOUND_JSON, OutboundMappings, encounter_record, new_person};
use cht_fhir_mediator::fhir::{model, validate::validate};
use cht_fhir_mediator::settings::IdentifierSystems;
use proptest::prelude::*;
use serde_json::{Map, Value};

/// Keys the converters look for, so random documents reach deep into them.
const KEYS: &[&str] = &[
    "doc",
    "_id",
    "id",
    "name",
    "type",
    "contact_type",
    "role",
    "sex",
    "phone",
    "phone_alternate",
    "date_of_birth",
    "date_of_birth_method",
    "date_of_death",
    "patient_id",
    "patient_uuid",
    "parent",
    "form",
    "fields",
    "reported_date",
    "observations",
    "code",
    "valueCode",
    "valueString",
    "valueInteger",
    "valueQuantity",
    "value",
    "vitals",
    "weight",
    "inputs",
    "source_id",
    "task_id",
    "follow_up",
    "outcome",
    "referral",
    "reason",
    "urgency",
    "members",
    "age_years",
    "resourceType",
    "subject",
    "reference",
    "identifier",
    "system",
    "intent",
    "for",
    "gender",
    "birthDate",
    "telecom",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("JSON has no NaN/inf", |f| f.is_finite()).prop_map(Value::from),
        prop_oneof![
            "[a-z_]{0,12}",
            "\\PC{0,20}",
            Just("1990-05-12".to_owned()),
            Just("Patient/p1".to_owned()),
            Just("pregnancy_home_visit".to_owned()),
            Just("person".to_owned()),
            Just("data_record".to_owned()),
            Just("ServiceRequest".to_owned()),
            Just("order".to_owned()),
            Just("yes".to_owned()),
            Just("1732000000000".to_owned()),
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..8).prop_map(|pairs| Value::Object(
                pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<Map<_, _>>()
            )),
        ]
    })
}

/// A field: usually plausible, sometimes any JSON at all, sometimes absent.
fn field(plausible: impl Strategy<Value = Value> + 'static) -> BoxedStrategy<Option<Value>> {
    prop_oneof![8 => plausible.prop_map(Some), 1 => json_value().prop_map(Some), 1 => Just(None)].boxed()
}

fn text(options: &'static [&'static str]) -> BoxedStrategy<Value> {
    prop::sample::select(options).prop_map(|s| Value::String(s.to_owned())).boxed()
}

fn object(fields: Vec<(&'static str, Option<Value>)>) -> Value {
    Value::Object(fields.into_iter().filter_map(|(k, v)| v.map(|v| (k.to_owned(), v))).collect())
}

/// Person docs shaped like CHT's, with every field varied.
fn person_doc() -> impl Strategy<Value = Value> {
    (
        (
            field(text(&["p-1", "8f1a6b2e-0c4d-4f7a-9b1e-3c5d7e9f1a2b", "org.couchdb.user:x", "12345", " "])),
            field(text(&["Amina Njeri", "Nguyễn Thị Ánh", "  Lena  ", "A", "", "O'Brien-Smith Jr."])),
            field(text(&["person", "contact", "clinic"])),
            field(text(&["c_patient", ""])),
            field(text(&["female", "male", "F", "M", "other", "unknown?", ""])),
        ),
        (
            field(text(&["1990-05-12", "2019-06-15T00:00:00.000Z", "1990-02-30", "12/05/1990", "1990", ""])),
            field(text(&["approx", "exact"])),
            field(text(&["+254700000001", "", "0"])),
            field(text(&["45821", ""])),
            field(json_value().prop_map(|v| serde_json::json!({"_id": "hh-1", "parent": v}))),
        ),
    )
        .prop_map(|((id, name, kind, contact_type, sex), (dob, method, phone, short, parent))| {
            object(vec![
                ("_id", id),
                ("name", name),
                ("type", kind),
                ("contact_type", contact_type),
                ("sex", sex),
                ("date_of_birth", dob),
                ("date_of_birth_method", method),
                ("phone", phone),
                ("patient_id", short),
                ("parent", parent),
            ])
        })
}

/// Report docs of the mapped forms, with every field varied.
fn report_doc() -> impl Strategy<Value = Value> {
    (
        (
            field(text(&["r-1", "3c9e5a10-77b2-4a61-bb3e-9f0d1e2a3b4c", ""])),
            field(text(&["pregnancy_home_visit", "assessment", "referral", "interop_follow_up", "unknown_form"])),
            field(prop_oneof![(0i64..4_000_000_000_000).prop_map(Value::from), text(&["1732000000000", "yesterday"])]),
            field(text(&["p-1", "45821", ""])),
        ),
        (
            field(prop_oneof![
                text(&["61.25", "3.50", "abc", "", "1e3"]),
                any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from)
            ]),
            field(prop_oneof![text(&["24", "x", ""]), any::<i64>().prop_map(Value::from)]),
            field(text(&["yes", "no", "maybe", "true", "1"])),
            field(text(&["fever convulsions", "", "a"])),
            field(text(&["returned_to_care", "not_found", "later", ""])),
            field(text(&["routine", "emergency", "soon"])),
        ),
        field(
            prop::collection::vec(field(prop_oneof![text(&["7", "", "n"]), any::<i64>().prop_map(Value::from)]), 0..4)
                .prop_map(|ages| Value::Array(ages.into_iter().map(|a| object(vec![("age_years", a)])).collect())),
        ),
    )
        .prop_map(|((id, form, reported, patient), (weight, weeks, yes_no, signs, outcome, urgency), members)| {
            let fields = object(vec![
                ("patient_uuid", patient),
                (
                    "vitals",
                    Some(object(vec![
                        ("weight", weight.clone()),
                        ("temperature", weight),
                        ("breaths_per_minute", weeks.clone()),
                    ])),
                ),
                ("pregnancy", Some(object(vec![("weeks_pregnant", weeks)]))),
                ("danger_signs", Some(object(vec![("has_danger_sign", yes_no.clone()), ("signs", signs)]))),
                ("fever", Some(object(vec![("has_fever", yes_no)]))),
                ("follow_up", Some(object(vec![("outcome", outcome)]))),
                ("inputs", Some(serde_json::json!({"source_id": "rec-1"}))),
                ("referral", Some(object(vec![("urgency", urgency), ("reason", Some(Value::String("r".into())))]))),
                ("household", members.map(|m| serde_json::json!({"members": m}))),
            ]);
            object(vec![
                ("_id", id),
                ("type", Some(Value::String("data_record".into()))),
                ("form", form),
                ("reported_date", reported),
                ("fields", Some(fields)),
            ])
        })
}

fn systems() -> IdentifierSystems {
    IdentifierSystems {
        document_id: "https://cht.example.org/id/doc".into(),
        patient_id: "https://cht.example.org/id/patient".into(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn person_conversion_never_panics_and_what_it_accepts_conforms(doc in prop_oneof![person_doc(), json_value()]) {
        for payload in [doc.clone(), serde_json::json!({"doc": doc})] {
            if let Ok(patient) = person_to_patient(&payload, &systems()) {
                prop_assert_eq!(validate(&patient), Ok(()), "{}", patient);
                prop_assert_eq!(model::check_structure(&patient), Ok(()));
            }
        }
    }

    #[test]
    fn report_conversion_never_panics_and_what_it_accepts_conforms(doc in prop_oneof![report_doc(), json_value()]) {
        let mappings = FormMappings::parse(DEFAULT_FORMS_JSON).unwrap();
        for payload in [doc.clone(), serde_json::json!({"doc": doc})] {
            if let Ok(input) = parse_report(&payload, &mappings) {
                let resources = build(&input, "p1", &systems(), &mappings);
                prop_assert_eq!(validate(&resources.encounter), Ok(()));
                for obs in &resources.observations {
                    prop_assert_eq!(validate(obs), Ok(()), "{}", obs);
                }
            }
        }
    }

    #[test]
    fn outbound_parsers_never_panic(resource in json_value()) {
        if let Ok(request) = parse_request(&resource) {
            let task = new_task(&request, "p1", "2026-11-21T00:00:00Z");
            let _ = record_fields(&task, "uuid", None);
        }
        let mappings = OutboundMappings::parse(DEFAULT_OUTBOUND_JSON).unwrap();
        let _ = new_person(&resource, "c1", "person", &mappings);
        let _ = encounter_record(&resource, std::slice::from_ref(&resource), "uuid", &mappings);
        let _ = validate(&resource);
        let _ = model::check_structure(&resource);
    }

    #[test]
    fn the_xml_parser_never_panics(text in "\\PC{0,200}") {
        let _ = model::xml_to_json(&text);
        let _ = model::xml_to_json(&format!("<Patient xmlns=\"http://hl7.org/fhir\">{text}</Patient>"));
    }
}
