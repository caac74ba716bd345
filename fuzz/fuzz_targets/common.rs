//! What every fuzz target shares: it runs on a thread with the stack the service gives its
//! request threads (`limits::WORKER_STACK_BYTES`), takes bytes the way the HTTP edge does
//! (serde_json, then the nesting bound), and checks that whatever a converter accepts is valid
//! base R4 and conforms to the mediator's own profiles.
#![allow(dead_code)] // each target uses a part

use cht_fhir_mediator::conversions::mapping::{DEFAULT_FORMS_JSON, FormMappings};
use cht_fhir_mediator::conversions::to_cht::{DEFAULT_OUTBOUND_JSON, OutboundMappings};
use cht_fhir_mediator::settings::IdentifierSystems;
use serde_json::Value;

/// Runs `check` on a copy of `data` on a thread with the production stack; a panic there is
/// re-raised here, where libFuzzer sees it as a crash.
pub fn on_production_stack(data: &[u8], check: fn(&[u8])) {
    // libFuzzer's panic hook aborts at ANY panic, even one the mediator catches on purpose
    // (fhirbolt's, under `catch_unwind` in `fhir::model`). A quiet hook instead: a panic that
    // escapes still reaches libFuzzer, re-raised below, and aborts there as a crash.
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    let owned = data.to_vec();
    let thread = std::thread::Builder::new()
        .stack_size(cht_fhir_mediator::limits::WORKER_STACK_BYTES)
        .spawn(move || check(&owned))
        .expect("spawn");
    if let Err(panic) = thread.join() {
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("(no message)");
        eprintln!("panic in the target: {message}");
        std::process::abort();
    }
}

/// The body as the JSON extractors take it: parsed by serde_json, nesting bounded.
pub fn json_body(data: &[u8]) -> Option<Value> {
    let value: Value = serde_json::from_slice(data).ok()?;
    cht_fhir_mediator::limits::check_json_depth(&value).ok()?;
    Some(value)
}

pub fn systems() -> IdentifierSystems {
    IdentifierSystems {
        document_id: "https://cht.example.org/fhir/identifier/document-id".into(),
        patient_id: "https://cht.example.org/fhir/identifier/patient-id".into(),
    }
}

pub fn forms() -> FormMappings {
    FormMappings::parse(DEFAULT_FORMS_JSON).expect("shipped form mappings")
}

pub fn outbound() -> OutboundMappings {
    OutboundMappings::parse(DEFAULT_OUTBOUND_JSON).expect("shipped outbound mapping")
}

/// A resource the mediator built must be valid base R4 and conform to its profile.
pub fn assert_conforms(resource: &Value) {
    if let Err(violations) = cht_fhir_mediator::fhir::base::validate(resource) {
        panic!("emitted invalid R4: {violations:?}\n{resource}");
    }
    if let Err(violations) = cht_fhir_mediator::fhir::validate::validate(resource) {
        panic!("emitted a resource outside its profile: {violations:?}\n{resource}");
    }
}

/// A resource the mediator built without a profile of its own (the facade's Practitioner,
/// Organization, Location, searchset) must be valid base R4.
pub fn assert_base_r4(resource: &Value) {
    if let Err(violations) = cht_fhir_mediator::fhir::base::validate(resource) {
        panic!("emitted invalid R4: {violations:?}\n{resource}");
    }
}

/// The checks every FHIR body goes through at the edge; none may panic, whatever the input.
pub fn fhir_body_checks(body: &Value) {
    let _ = cht_fhir_mediator::fhir::base::validate(body);
    let _ = cht_fhir_mediator::fhir::model::check_structure(body);
    let _ = cht_fhir_mediator::fhir::validate::validate(body);
    let _ = cht_fhir_mediator::conversions::follow_up::parse_request(body);
    let _ = cht_fhir_mediator::conversions::to_cht::new_person(body, "c1", "person", &outbound());
    let _ = cht_fhir_mediator::outbound::records::split_bundle(body);
    let _ =
        cht_fhir_mediator::conversions::to_cht::encounter_record(body, std::slice::from_ref(body), "p1", &outbound());
    if let Ok(patient) = cht_fhir_mediator::conversions::reference::patient(body, &systems()) {
        let _ = cht_fhir_mediator::fhir::base::validate(&patient);
    }
    if let Ok((encounter, _)) = cht_fhir_mediator::conversions::reference::encounter(body, &systems()) {
        let _ = cht_fhir_mediator::fhir::base::validate(&encounter);
    }
    if let Ok(request) = cht_fhir_mediator::conversions::follow_up::parse_request(body) {
        let task = cht_fhir_mediator::conversions::follow_up::new_task(&request, "p1", "2026-11-21T00:00:00Z");
        let _ = cht_fhir_mediator::conversions::follow_up::record_fields(&task, "p1", Some("45821"));
        let _ =
            cht_fhir_mediator::conversions::follow_up::received(&task, "rec-1", "https://x/id", "2026-11-21T00:00:00Z");
    }
}
