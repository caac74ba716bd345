//! A CHT person push (`/cht/patient`): short form or whole doc → Patient. Whatever converts must
//! be valid R4 and conform to the cht-patient profile. The same doc read through the FHIR facade
//! (a hydrated CHT doc → Patient, Practitioner, Organization, Location), and the same bytes as a
//! facade search's query string (parse, then the searchset Bundle), likewise.
#![no_main]
mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    common::on_production_stack(data, |data| {
        facade_search(data);
        let Some(payload) = common::json_body(data) else { return };
        facade_reads(&payload);
        if let Ok(patient) = cht_fhir_mediator::conversions::patient::person_to_patient(&payload, &common::systems()) {
            common::assert_conforms(&patient);
        }
        let patients = cht_fhir_mediator::conversions::selection::PatientSelection::default();
        let _ = cht_fhir_mediator::conversions::selection::select(&payload, &common::forms(), &patients);
        let _ = cht_fhir_mediator::inbound::document_id(&payload);
    })
});

fn facade_reads(doc: &serde_json::Value) {
    use cht_fhir_mediator::conversions::directory;
    let selection = cht_fhir_mediator::conversions::selection::PatientSelection::default();
    let _ = directory::kind(doc, &selection);
    if let Ok(patient) = directory::patient(doc, &common::systems(), &selection) {
        common::assert_conforms(&patient);
    }
    for read in [directory::practitioner, directory::organization, directory::location] {
        if let Ok(resource) = read(doc, &common::systems()) {
            common::assert_base_r4(&resource);
        }
    }
}

fn facade_search(data: &[u8]) {
    use cht_fhir_mediator::facade::search;
    let Ok(query) = std::str::from_utf8(data) else { return };
    for lenient in [false, true] {
        if let Ok(parsed) = search::parse(query, &common::systems(), lenient) {
            let page = vec![serde_json::json!({"resourceType": "Patient", "id": "p1"})];
            common::assert_base_r4(&search::bundle(&parsed, page, 1, None, "http://127.0.0.1:6000/fhir"));
        }
    }
}
