//! A CHT report push (`/cht/encounter`): cht-docs format or a whole report doc mapped by the
//! shipped form mappings → Encounter + Observations (+ Task). Whatever converts must be valid R4
//! and conform to the mediator's profiles.
#![no_main]
mod common;

use cht_fhir_mediator::conversions::report::{TaskSpec, build, close_task, parse_report};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    common::on_production_stack(data, |data| {
        let Some(payload) = common::json_body(data) else { return };
        let forms = common::forms();
        let Ok(input) = parse_report(&payload, &forms) else { return };
        let resources = build(&input, "p1", &common::systems(), &forms);
        common::assert_conforms(&resources.encounter);
        resources.observations.iter().for_each(common::assert_conforms);
        if let Some(task) = &resources.referral {
            common::assert_conforms(task);
        }
        if let Some(TaskSpec::FollowUpOutcome { status, outcome, .. }) = &input.task {
            let open = serde_json::json!({"resourceType": "Task", "id": "t1", "status": "received", "intent": "order"});
            let closed = close_task(&open, status, outcome, "e1", &input.reported);
            if let Err(v) = cht_fhir_mediator::fhir::base::validate(&closed) {
                panic!("closed Task is invalid R4: {v:?}");
            }
        }
    })
});
