//! A FHIR XML body (`application/fhir+xml`) on the `/fhir/*` endpoints: the nesting bound, then
//! fhirbolt's XML parser (under catch_unwind), then every check the JSON goes through.
#![no_main]
mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    common::on_production_stack(data, |data| {
        let Ok(text) = std::str::from_utf8(data) else { return };
        if let Ok(body) = cht_fhir_mediator::fhir::model::xml_to_json(text) {
            common::fhir_body_checks(&body);
        }
    })
});
