//! A FHIR JSON body on any `/fhir/*`, `/patient`, `/encounter`, `/service-request` endpoint:
//! every check and converter the extractor and handlers run, none may panic.
#![no_main]
mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    common::on_production_stack(data, |data| {
        let Some(body) = common::json_body(data) else { return };
        common::fhir_body_checks(&body);
    })
});
