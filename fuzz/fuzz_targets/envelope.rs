//! What the mediator writes for OpenHIM and takes from it: the `application/json+openhim`
//! envelope around any body must be JSON that carries the body unchanged, and a console config
//! object (a heartbeat's answer) is parsed over the settings without panicking.
#![no_main]
mod common;

use cht_fhir_mediator::openhim::envelope::{Envelope, ResponseRecord};
use cht_fhir_mediator::settings::{LiveConfig, Source};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    common::on_production_stack(data, |data| {
        let body = String::from_utf8_lossy(data).into_owned();
        let headers = [("content-type".to_owned(), body.clone())].into_iter().collect();
        let record =
            ResponseRecord { status: 200, headers, body: body.clone(), timestamp: "2026-11-21T00:00:00.000Z".into() };
        let text = Envelope::new("urn:mediator:fuzz", record, None).with_error(body.clone()).to_json();
        let parsed: serde_json::Value = serde_json::from_str(&text).expect("the envelope is JSON");
        assert_eq!(parsed["response"]["body"].as_str(), Some(body.as_str()), "the body is carried unchanged");
        if let Some(config) = common::json_body(data).as_ref().and_then(|v| v.as_object()) {
            let base = Source::load_with_env(None, std::iter::empty()).expect("defaults");
            let _ = LiveConfig::from_console(&base, config);
        }
    })
});
