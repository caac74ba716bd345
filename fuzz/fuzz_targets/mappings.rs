//! The mapping files an admin writes (`FORM_MAPPINGS_FILE`, `OUTBOUND_MAPPINGS_FILE`) and the
//! settings file (TOML): parsed and checked at start, never a panic.
#![no_main]
mod common;

use cht_fhir_mediator::conversions::mapping::FormMappings;
use cht_fhir_mediator::conversions::to_cht::OutboundMappings;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    common::on_production_stack(data, |data| {
        let Ok(text) = std::str::from_utf8(data) else { return };
        if let Ok(forms) = FormMappings::parse(text) {
            // A mapping that passed its checks converts the shipped example report without panicking.
            let report = serde_json::json!({"doc": {"_id": "r1", "type": "data_record", "form": "referral",
                "reported_date": 1700000000000_i64, "fields": {"patient_uuid": "p1"}}});
            let _ = cht_fhir_mediator::conversions::report::parse_report(&report, &forms);
        }
        let _ = OutboundMappings::parse(text);
        let _ = cht_fhir_mediator::settings::Source::parse_toml(text);
    })
});
