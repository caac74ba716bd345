//! A CHT person push (`/cht/patient`): short form or whole doc → Patient. Whatever converts must
//! be valid R4 and conform to the cht-patient profile.
#![no_main]
mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    common::on_production_stack(data, |data| {
        let Some(payload) = common::json_body(data) else { return };
        if let Ok(patient) = cht_fhir_mediator::conversions::patient::person_to_patient(&payload, &common::systems()) {
            common::assert_conforms(&patient);
        }
        let patients = cht_fhir_mediator::conversions::selection::PatientSelection::default();
        let _ = cht_fhir_mediator::conversions::selection::select(&payload, &common::forms(), &patients);
        let _ = cht_fhir_mediator::inbound::document_id(&payload);
    })
});
