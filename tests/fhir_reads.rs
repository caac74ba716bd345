//! Other systems look up CHT data through FHIR reads (issue 16), on the real stack: through
//! OpenHIM's router as the EMR client, against the CHT stand-in (its hydrate, contacts-by-phone
//! with CHT's phone normalisation, and the `contacts_by_reference` view), with the mediator's
//! online, non-admin CHT user. Each answer is checked by the project's validators and, when the
//! stack runs HAPI with the profiles (`hapistrict`), by HAPI's `$validate` (HL7's validation
//! engine). Faults CHT will not produce on demand (403, 500, down) come from wiremock.

mod common;

use std::time::Duration;

use common::openhim::{mediator_orchestrations, transaction_for};
use common::world::{DOC_SYSTEM, EMR_CLIENT, World, cht, setup};
use common::{eventually, stack, unique};
use reqwest::Method;
use serde_json::{Value, json};

/// The stack's OpenHIM and CHT stand-in are shared, and mediators started here must not
/// overlap the one registered with OpenHIM: one test at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
const SHORT_CODE_SYSTEM: &str = "https://cht.example.org/fhir/identifier/patient-id";

/// `GET` through OpenHIM's router as the EMR: status, content type, body.
async fn get(world: &World, path: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    let mut request = world
        .http
        .get(format!("{}/mediator/fhir/{path}", world.stack.openhim_router_url))
        .basic_auth(EMR_CLIENT.0, Some(EMR_CLIENT.1));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    let content_type = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    (status, content_type, r.text().await.unwrap())
}

async fn get_json(world: &World, path: &str) -> (u16, Value) {
    let (status, content_type, body) = get(world, path, &[]).await;
    if status == 200 {
        assert!(content_type.starts_with("application/fhir+json"), "{path}: {content_type}");
    }
    (status, serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}")))
}

/// Valid R4 by the project's checks and, where the stack has it, by HAPI's `$validate`.
async fn assert_valid(world: &World, resource: &Value) {
    assert_eq!(cht_fhir_mediator::fhir::base::validate(resource), Ok(()), "{resource}");
    if resource["meta"]["profile"].is_array() {
        assert_eq!(cht_fhir_mediator::fhir::validate::validate(resource), Ok(()), "{resource}");
    }
    assert_eq!(cht_fhir_mediator::fhir::model::check_structure(resource), Ok(()), "{resource}");
    let Some(hapi) = std::env::var("STACK_HAPISTRICT_URL").ok().filter(|u| !u.is_empty()) else { return };
    let kind = resource["resourceType"].as_str().unwrap();
    let r = world.http.post(format!("{hapi}/{kind}/$validate")).json(resource).send().await.unwrap();
    let outcome: Value = r.json().await.unwrap();
    let errors: Vec<&Value> = outcome["issue"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| matches!(i["severity"].as_str(), Some("error" | "fatal")))
        .collect();
    assert!(errors.is_empty(), "HAPI's $validate of {kind}: {errors:?}");
}

/// A CHW (the contact of the stack's CHW area), a household in that area and `n` members of it
/// sharing one phone number; returns the CHW's id, the household's, the members' and the phone.
async fn community(world: &World, n: usize) -> (String, String, Vec<String>, String) {
    let (status, chw) = cht(
        world,
        Method::POST,
        "api/v1/people",
        Some(&json!({"name": "Grace Akinyi",
        "type": "person", "role": "chw", "place": "e2e-chw-area", "phone": "+254711000999"})),
    )
    .await;
    assert_eq!(status, 200, "{chw}");
    let chw = chw["id"].as_str().unwrap().to_owned();
    let (_, mut area) = cht(world, Method::GET, "medic/e2e-chw-area", None).await;
    area["contact"] = json!({"_id": chw, "parent": {"_id": "e2e-chw-area", "parent": {"_id": "e2e-district"}}});
    let (status, _) = cht(world, Method::PUT, "medic/e2e-chw-area", Some(&area)).await;
    assert_eq!(status, 201, "the CHW is the area's contact");
    let household = json!({"name": "Otieno household", "type": "clinic", "parent": "e2e-chw-area"});
    let (status, place) = cht(world, Method::POST, "api/v1/places", Some(&household)).await;
    assert_eq!(status, 200, "{place}");
    let household = place["id"].as_str().unwrap().to_owned();
    let digits: String = uuid::Uuid::new_v4().as_u128().to_string().chars().take(6).collect();
    let phone = format!("+254733{digits}");
    let mut members = Vec::new();
    for i in 0..n {
        let person = json!({"name": format!("Otieno Member{i}"), "type": "person", "place": household,
            "phone": phone, "sex": "male", "date_of_birth": "2001-03-04", "patient_id": unique("SC")});
        let (status, created) = cht(world, Method::POST, "api/v1/people", Some(&person)).await;
        assert_eq!(status, 200, "{created}");
        members.push(created["id"].as_str().unwrap().to_owned());
    }
    members.sort();
    (chw, household, members, phone)
}

fn ids(bundle: &Value) -> Vec<String> {
    common::bundle_resources(bundle).iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn an_emr_reads_cht_patients_chws_and_places_through_openhim() {
    let Some(stack) = stack() else { return };
    let _serial = SERIAL.lock().await;
    let logs = common::logs::capture();
    let world = setup(stack).await;
    let (chw, household, members, phone) = community(&world, 3).await;
    let patient = &members[0];

    // A patient, with lineage and their CHW.
    let (status, p) = get_json(&world, &format!("Patient/{patient}")).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!((p["resourceType"].as_str(), p["id"].as_str()), (Some("Patient"), Some(patient.as_str())));
    assert!(p["name"][0]["text"].as_str().unwrap().starts_with("Otieno Member"), "{p}");
    assert_eq!(p["birthDate"], "2001-03-04");
    assert_eq!(p["generalPractitioner"], json!([{"reference": format!("Practitioner/{chw}")}]));
    let lineage: Vec<&str> =
        p["extension"].as_array().unwrap().iter().map(|e| e["valueIdentifier"]["value"].as_str().unwrap()).collect();
    assert_eq!(lineage, [household.as_str(), "e2e-chw-area", "e2e-district"]);
    assert_valid(&world, &p).await;

    // Who serves them, up the hierarchy.
    let (status, practitioner) = get_json(&world, &format!("Practitioner/{chw}")).await;
    assert_eq!(status, 200, "{practitioner}");
    assert_eq!(practitioner["name"][0]["text"], "Grace Akinyi");
    assert_eq!(practitioner["telecom"][0]["value"], "+254711000999");
    assert_valid(&world, &practitioner).await;
    let (status, home) = get_json(&world, &format!("Location/{household}")).await;
    assert_eq!(status, 200, "{home}");
    assert_eq!(home["partOf"]["reference"], "Location/e2e-chw-area");
    assert_valid(&world, &home).await;
    let (status, area) = get_json(&world, "Organization/e2e-chw-area").await;
    assert_eq!(status, 200, "{area}");
    assert_eq!(
        (area["name"].as_str(), area["partOf"]["reference"].as_str()),
        (Some("Kondele CHW area"), Some("Organization/e2e-district"))
    );
    assert_valid(&world, &area).await;

    // Each read answers only for its kind of document; an unknown id is a 404 OperationOutcome.
    for path in [
        format!("Practitioner/{patient}"),
        format!("Patient/{chw}"),
        format!("Organization/{patient}"),
        format!("Patient/{household}"),
        "Patient/no-such-contact".into(),
    ] {
        let (status, outcome) = get_json(&world, &path).await;
        assert_eq!((status, outcome["resourceType"].as_str()), (404, Some("OperationOutcome")), "{path}: {outcome}");
        assert_eq!(outcome["issue"][0]["code"], "not-found");
    }

    // Searches: by phone as a person types it (CHT normalises it), by identifier, by _id; ANDed.
    let spaced = format!("{} {} {}", &phone[..4], &phone[4..7], &phone[7..]);
    let by_phone = url::form_urlencoded::Serializer::new(String::new()).append_pair("phone", &spaced).finish();
    let (status, bundle) = get_json(&world, &format!("Patient?{by_phone}")).await;
    assert_eq!(status, 200, "{bundle}");
    assert_eq!((bundle["type"].as_str(), bundle["total"].as_u64()), (Some("searchset"), Some(3)));
    assert_eq!(ids(&bundle), members, "every household member, by id, and not the CHW");
    assert_valid(&world, &bundle).await;
    let telecom = url::form_urlencoded::byte_serialize(format!("phone|{phone}").as_bytes()).collect::<String>();
    let (_, bundle) = get_json(&world, &format!("Patient?telecom={telecom}&_id={patient}")).await;
    assert_eq!(ids(&bundle), vec![patient.clone()], "telecom AND _id");
    let (_, bundle) = get_json(&world, &format!("Patient?identifier={DOC_SYSTEM}|{}", members[1])).await;
    assert_eq!(ids(&bundle), [members[1].clone()]);
    let (_, doc) = cht(&world, Method::GET, &format!("medic/{}", members[2]), None).await;
    let code = doc["patient_id"].as_str().unwrap();
    let (_, bundle) = get_json(&world, &format!("Patient?identifier={SHORT_CODE_SYSTEM}|{code}")).await;
    assert_eq!(ids(&bundle), [members[2].clone()], "by short code");
    let (_, bundle) = get_json(&world, &format!("Patient?identifier={code}")).await;
    assert_eq!(ids(&bundle), [members[2].clone()], "a bare value: id or short code");
    let (_, bundle) = get_json(&world, "Patient?identifier=no-such-code").await;
    assert_eq!((bundle["total"].as_u64(), bundle.get("entry")), (Some(0), None));

    // Paging: _count, a next link a client follows from the URL it called.
    let (_, first) = get_json(&world, &format!("Patient?{by_phone}&_count=2")).await;
    assert_eq!((ids(&first), first["total"].as_u64()), (members[..2].to_vec(), Some(3)));
    let next = first["link"].as_array().unwrap().iter().find(|l| l["relation"] == "next").expect("a next link");
    let base =
        url::Url::parse(&format!("{}/mediator/fhir/Patient?{by_phone}", world.stack.openhim_router_url)).unwrap();
    let next = base.join(next["url"].as_str().unwrap()).unwrap();
    assert_eq!(next.path(), "/mediator/fhir/Patient", "relative links resolve to the facade");
    let (_, second) = get_json(&world, &format!("Patient?{}", next.query().unwrap())).await;
    assert_eq!(ids(&second), members[2..].to_vec());
    assert!(second["link"].as_array().unwrap().iter().all(|l| l["relation"] != "next"), "the last page");

    // FHIR's strict handling: an unsupported parameter is a 400 naming it, unless lenient.
    let (status, outcome) = get_json(&world, &format!("Patient?name=Otieno&{by_phone}")).await;
    assert_eq!(status, 400, "{outcome}");
    assert!(outcome["issue"][0]["diagnostics"].as_str().unwrap().contains("name"), "{outcome}");
    let (status, _, body) =
        get(&world, &format!("Patient?name=Otieno&{by_phone}"), &[("Prefer", "handling=lenient")]).await;
    assert_eq!(status, 200, "{body}");
    let lenient: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(lenient["total"], 3);
    assert!(!lenient["link"][0]["url"].as_str().unwrap().contains("name="), "the self link shows what was used");

    // XML on request, the same resource.
    let (status, content_type, xml) = get(&world, &format!("Patient/{patient}?_format=xml"), &[]).await;
    assert_eq!(status, 200, "{xml}");
    assert!(content_type.starts_with("application/fhir+xml"), "{content_type}");
    assert_eq!(cht_fhir_mediator::fhir::model::xml_to_json(&xml).unwrap(), p);
    let (status, _, _) = get(&world, &format!("Patient/{patient}"), &[("Accept", "text/html")]).await;
    assert_eq!(status, 406);

    // The CapabilityStatement says what is served.
    let (status, metadata) = get_json(&world, "metadata").await;
    assert_eq!(status, 200);
    let served: Vec<&str> =
        metadata["rest"][0]["resource"].as_array().unwrap().iter().map(|r| r["type"].as_str().unwrap()).collect();
    assert!(["Patient", "Practitioner", "Organization", "Location"].iter().all(|t| served.contains(t)), "{served:?}");
    assert_valid(&world, &metadata).await;

    // OpenHIM recorded the reads with the mediator's calls to CHT.
    let read_path = format!("/mediator/fhir/Practitioner/{chw}");
    let read = eventually(Duration::from_secs(10), "the read's transaction", || {
        transaction_for(&world.admin, &read_path, &chw)
    })
    .await;
    assert_eq!(read["status"], "Successful", "{read}");
    let calls: Vec<String> =
        mediator_orchestrations(&read).iter().filter_map(|o| o["name"].as_str().map(str::to_owned)).collect();
    assert!(calls.iter().any(|c| c.starts_with("CHT hydrate")), "{calls:?}");
    let missing = eventually(Duration::from_secs(10), "the 404's transaction", || {
        transaction_for(&world.admin, "/mediator/fhir/Patient/no-such-contact", "no-such-contact")
    })
    .await;
    assert_eq!(missing["status"], "Completed", "a 404 is OpenHIM's Completed, not Failed");
    world.app.shutdown().await;

    // Ids in the logs; no names, phones or birth dates.
    let text = common::logs::text(&logs);
    assert!(text.contains(patient.as_str()), "the capture works and logs ids");
    for secret in ["Otieno Member", "Grace Akinyi", phone.as_str(), "+254711000999", "2001-03-04"] {
        assert!(!text.contains(secret), "the logs hold {secret:?}");
    }
}

/// Faults a real CHT gives only by misconfiguration or outage: each is an honest FHIR status.
#[tokio::test]
async fn cht_refusals_and_outages_are_honest_fhir_statuses() {
    use wiremock::matchers::path;
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let _serial = SERIAL.lock().await;
    let _logs = common::logs::capture(); // the binary's one subscriber, whichever test runs first
    let cht = MockServer::start().await;
    Mock::given(path("/api/v1/hydrate"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({"code": 403, "error": "forbidden"})))
        .mount(&cht)
        .await;
    Mock::given(path("/api/v1/contacts-by-phone")).respond_with(ResponseTemplate::new(500)).mount(&cht).await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port())
    };
    let refusing = common::spawn_app(&[("CHT_URL", &cht.uri())]).await;
    let down = common::spawn_app(&[("CHT_URL", &closed)]).await;
    let outcome = |app: &common::TestApp, path: &str| {
        let (http, url) = (app.http.clone(), app.url(path));
        async move {
            let r = http.get(url).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = outcome(&refusing, "/fhir/Patient/p-1").await;
    assert_eq!((status, body["issue"][0]["code"].as_str()), (403, Some("forbidden")), "{body}");
    let said = body["issue"][0]["diagnostics"].as_str().unwrap();
    assert!(said.contains("can_view_contacts") && said.contains("online"), "names what to grant: {said}");
    let (status, body) = outcome(&refusing, "/fhir/Patient?phone=%2B254700000001").await;
    assert_eq!(status, 502, "CHT's 500 is a gateway failure: {body}");
    let (status, body) = outcome(&down, "/fhir/Organization/area-1").await;
    assert_eq!((status, body["issue"][0]["code"].as_str()), (503, Some("transient")), "{body}");
    // Requests the facade refuses before calling CHT.
    let (status, body) = outcome(&down, "/fhir/Patient").await;
    assert_eq!(status, 400, "no criterion: {body}");
    let (status, body) = outcome(&down, "/fhir/Patient?identifier=https://emr.example.org/mrn|M-1").await;
    assert_eq!(status, 400, "an identifier system CHT cannot search: {body}");
    let (status, _) = outcome(&down, "/fhir/Patient/not%20an%20id").await;
    assert_eq!(status, 404, "not a FHIR id, never put into a CHT URL");
    let (status, body) = outcome(&down, "/fhir/Task/t-1").await;
    assert_eq!((status, body["issue"][0]["code"].as_str()), (404, Some("not-found")), "no reads of Task: {body}");
}
