//! Throughput of the hot paths, one core: CHT document → FHIR JSON including JSON parse and
//! serialise, profile validation, fhirbolt's structure check, and the OpenHIM envelope.
//! `cargo bench --bench conversions`; the figures are in bench/README.md.

use std::collections::BTreeMap;
use std::hint::black_box;

use cht_fhir_mediator::conversions::mapping::{DEFAULT_FORMS_JSON, FormMappings};
use cht_fhir_mediator::conversions::patient::person_to_patient;
use cht_fhir_mediator::conversions::report::{build, parse_report};
use cht_fhir_mediator::fhir::{model, validate::validate};
use cht_fhir_mediator::openhim::envelope::{Envelope, Orchestration, OrchestrationRequest, ResponseRecord};
use cht_fhir_mediator::settings::IdentifierSystems;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::Value;

/// The binary's allocator (src/main.rs), so the figures are the service's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn systems() -> IdentifierSystems {
    IdentifierSystems {
        document_id: "https://cht.example.org/id/doc".into(),
        patient_id: "https://cht.example.org/id/patient".into(),
    }
}

fn conversions(c: &mut Criterion) {
    let person = std::fs::read_to_string("tests/fixtures/cht/persons/hydrated_lineage.json").unwrap();
    let short_form = std::fs::read_to_string("tests/fixtures/cht/persons/short_form.json").unwrap();
    let report = std::fs::read_to_string("tests/fixtures/cht/reports/pregnancy_home_visit.json").unwrap();
    let mappings = FormMappings::parse(DEFAULT_FORMS_JSON).unwrap();
    let systems = systems();
    let mut group = c.benchmark_group("conversion");
    group.throughput(Throughput::Elements(1));
    group.bench_function("person_to_patient_parse_convert_serialise", |b| {
        b.iter(|| {
            let doc: Value = serde_json::from_str(black_box(&person)).unwrap();
            let patient = person_to_patient(&doc, &systems).unwrap();
            serde_json::to_string(&patient).unwrap()
        })
    });
    group.bench_function("person_short_form_to_patient_parse_convert_serialise", |b| {
        b.iter(|| {
            let doc: Value = serde_json::from_str(black_box(&short_form)).unwrap();
            let patient = person_to_patient(&doc, &systems).unwrap();
            serde_json::to_string(&patient).unwrap()
        })
    });
    group.bench_function("report_to_encounter_observations_parse_convert_serialise", |b| {
        b.iter(|| {
            let doc: Value = serde_json::from_str(black_box(&report)).unwrap();
            let input = parse_report(&doc, &mappings).unwrap();
            let resources = build(&input, "p1", &systems, &mappings);
            (
                serde_json::to_string(&resources.encounter).unwrap(),
                serde_json::to_string(&resources.observations).unwrap(),
            )
        })
    });
    group.finish();

    let patient = person_to_patient(&serde_json::from_str(&person).unwrap(), &systems).unwrap();
    let mut group = c.benchmark_group("checks");
    group.throughput(Throughput::Elements(1));
    group.bench_function("profile_validation_patient", |b| b.iter(|| validate(black_box(&patient)).unwrap()));
    group.bench_function("fhirbolt_structure_check_patient", |b| {
        b.iter(|| model::check_structure(black_box(&patient)).unwrap())
    });
    group.finish();

    let record = |body: &str| ResponseRecord {
        status: 201,
        headers: BTreeMap::from([("content-type".into(), "application/fhir+json".into())]),
        body: body.into(),
        timestamp: "2026-11-21T06:00:00.000Z".into(),
    };
    let body = serde_json::to_string(&patient).unwrap();
    let orchestration = Orchestration {
        name: "FHIR PUT Patient/p1".into(),
        group: None,
        request: OrchestrationRequest {
            method: "PUT".into(),
            host: "fhir".into(),
            port: "8080".into(),
            path: "/Patient/p1".into(),
            querystring: String::new(),
            headers: BTreeMap::new(),
            body: body.clone(),
            timestamp: "2026-11-21T06:00:00.000Z".into(),
        },
        response: Some(record(&body)),
        error: None,
    };
    let mut group = c.benchmark_group("openhim");
    group.throughput(Throughput::Elements(1));
    group.bench_function("envelope_with_one_orchestration", |b| {
        b.iter(|| {
            Envelope::new("urn:mediator:cht-fhir-mediator", record(&body), None)
                .with_orchestrations(vec![orchestration.clone()])
                .to_json()
        })
    });
    group.finish();
}

criterion_group!(benches, conversions);
criterion_main!(benches);
