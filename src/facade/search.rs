//! `GET /fhir/Patient?…`: the search parameters the facade supports, parsed strictly (an
//! unsupported one is a 400 naming it, unless the caller sent `Prefer: handling=lenient`), and
//! the `searchset` Bundle of one page.
//!
//! Supported: `_id`, `identifier` (`system|value` for the CHT document id or patient short code;
//! a bare value tries both), `telecom` (`phone|number` or a bare number) and `phone` (a number),
//! each a comma-separated OR list, different parameters ANDed; `_count` (page size, ≤ 100) and
//! `_getpagesoffset` (HAPI's paging parameter, which the `next` links carry); `_format`.

use serde_json::{Value, json};

use crate::json::JsonExt;

use crate::error::ApiError;
use crate::settings::IdentifierSystems;

/// Page size when the caller gives no `_count` (HAPI's default), and the most a page holds.
pub const DEFAULT_COUNT: usize = 20;
pub const MAX_COUNT: usize = 100;

/// One way of finding CHT contacts; a parameter's values are alternatives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Criterion {
    /// FHIR ids (`_id`): the ids the mediator gives CHT documents.
    FhirIds(Vec<String>),
    /// CHT document ids (an identifier of the document-id system).
    Ids(Vec<String>),
    /// `patient_id` short codes.
    ShortCodes(Vec<String>),
    /// Bare identifier values: a document id or a short code.
    AnyIdentifier(Vec<String>),
    Phones(Vec<String>),
}

/// A parsed search: every criterion must match (AND), then one page of the matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientSearch {
    pub criteria: Vec<Criterion>,
    pub count: usize,
    pub offset: usize,
    /// The parameters used, in order, for the `self` link (ignored ones left out).
    pub used: Vec<(String, String)>,
}

/// The parameter names of [`PatientSearch`].
const SUPPORTED: &[&str] = &["_id", "identifier", "telecom", "phone", "_count", "_getpagesoffset", "_format"];

/// Parses `query` (the raw query string). `lenient`: unknown parameters are ignored instead of
/// refused (FHIR's `Prefer: handling=lenient`); a supported parameter with a value the facade
/// cannot search is refused either way, since ignoring it would widen the search.
pub fn parse(query: &str, systems: &IdentifierSystems, lenient: bool) -> Result<PatientSearch, ApiError> {
    let mut search = PatientSearch { criteria: Vec::new(), count: DEFAULT_COUNT, offset: 0, used: Vec::new() };
    let mut unknown = Vec::new();
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let (name, value) = (name.into_owned(), value.into_owned());
        if !SUPPORTED.contains(&name.as_str()) {
            unknown.push(name);
            continue;
        }
        let values: Vec<String> =
            value.split(',').map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned).collect();
        match name.as_str() {
            "_id" => search.criteria.push(Criterion::FhirIds(values)),
            "identifier" => search.criteria.extend(identifiers(&values, systems)?),
            "telecom" => search.criteria.push(Criterion::Phones(telecoms(&values)?)),
            "phone" => search.criteria.push(Criterion::Phones(values)),
            "_count" => search.count = number(&name, &value)?.min(MAX_COUNT),
            "_getpagesoffset" => search.offset = number(&name, &value)?,
            // `_format`: the answer's format, chosen by the handler (see `super::format`).
            _ => {}
        }
        search.used.push((name, value));
    }
    if !unknown.is_empty() && !lenient {
        return Err(ApiError::bad_request(
            format!(
                "unknown or unsupported search parameter(s): {}; supported: {} (or send Prefer: handling=lenient)",
                unknown.join(", "),
                SUPPORTED.join(", ")
            ),
            None,
        ));
    }
    if search.criteria.is_empty() {
        // Every patient of the CHT instance in pages is no lookup, and would read the whole database.
        return Err(ApiError::bad_request(
            "a Patient search needs _id, identifier, telecom or phone: listing every CHT patient is not offered",
            None,
        ));
    }
    if let Some(empty) = search.criteria.iter().find(|c| criterion_values(c).is_empty()) {
        return Err(ApiError::bad_request(format!("search parameter without a value ({empty:?})"), None));
    }
    Ok(search)
}

fn criterion_values(c: &Criterion) -> &[String] {
    match c {
        Criterion::FhirIds(v)
        | Criterion::Ids(v)
        | Criterion::ShortCodes(v)
        | Criterion::AnyIdentifier(v)
        | Criterion::Phones(v) => v,
    }
}

/// `identifier` values, grouped by system, as one criterion (their OR) — or several when the
/// values name different systems, which is then an OR the facade cannot express as an AND.
fn identifiers(values: &[String], systems: &IdentifierSystems) -> Result<Vec<Criterion>, ApiError> {
    let (mut ids, mut codes, mut any) = (Vec::new(), Vec::new(), Vec::new());
    for v in values {
        match v.split_once('|') {
            Some((system, value)) if system == systems.document_id => ids.push(value.to_owned()),
            Some((system, value)) if system == systems.patient_id => codes.push(value.to_owned()),
            Some(("", value)) => any.push(value.to_owned()),
            None => any.push(v.clone()),
            Some((system, _)) => {
                return Err(ApiError::bad_request(
                    format!(
                        "identifier system {system} cannot be searched here: CHT indexes only its document ids \
                         ({}) and patient short codes ({})",
                        systems.document_id, systems.patient_id
                    ),
                    None,
                ));
            }
        }
    }
    let groups = [(!ids.is_empty()) as u8, (!codes.is_empty()) as u8, (!any.is_empty()) as u8];
    if groups.iter().sum::<u8>() > 1 {
        // `identifier=a|1,b|2` is "either"; an id or a short code is "either" as a bare value.
        let mut all = ids;
        all.extend(codes);
        all.extend(any);
        return Ok(vec![Criterion::AnyIdentifier(all)]);
    }
    Ok(match (ids.is_empty(), codes.is_empty()) {
        (false, _) => vec![Criterion::Ids(ids)],
        (_, false) => vec![Criterion::ShortCodes(codes)],
        _ => vec![Criterion::AnyIdentifier(any)],
    })
}

/// `telecom` values: `phone|number` or a bare number; other ContactPoint systems are not kept
/// by CHT.
fn telecoms(values: &[String]) -> Result<Vec<String>, ApiError> {
    values
        .iter()
        .map(|v| match v.split_once('|') {
            None => Ok(v.clone()),
            Some(("phone" | "sms" | "", number)) => Ok(number.to_owned()),
            Some((system, _)) => Err(ApiError::bad_request(
                format!("telecom system {system} cannot be searched here: CHT keeps phone numbers only"),
                None,
            )),
        })
        .collect()
}

fn number(name: &str, value: &str) -> Result<usize, ApiError> {
    value.trim().parse().map_err(|_| ApiError::bad_request(format!("{name}={value}: not a non-negative integer"), None))
}

/// The `searchset` Bundle of `page` (resources) out of `total` matches. Entries' `fullUrl`s
/// (which FHIR requires, and which resolve the relative references inside them) are under
/// `entry_base`. Links are under `link_base` when the public base is configured, else relative
/// to the search's own URL (`Patient?…`: a client resolves them against the URL it called,
/// through OpenHIM or not).
pub fn bundle(
    search: &PatientSearch,
    page: Vec<Value>,
    total: usize,
    link_base: Option<&str>,
    entry_base: &str,
) -> Value {
    let link = |offset: usize| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in search.used.iter().filter(|(n, _)| n != "_getpagesoffset" && n != "_count") {
            query.append_pair(name, value);
        }
        query.append_pair("_count", &search.count.to_string());
        if offset > 0 {
            query.append_pair("_getpagesoffset", &offset.to_string());
        }
        let path = format!("Patient?{}", query.finish());
        link_base.map_or(path.clone(), |b| format!("{}/{path}", b.trim_end_matches('/')))
    };
    let mut links = vec![json!({"relation": "self", "url": link(search.offset)})];
    if search.offset.saturating_add(search.count) < total && search.count > 0 {
        links.push(json!({"relation": "next", "url": link(search.offset.saturating_add(search.count))}));
    }
    if search.offset > 0 {
        links.push(json!({"relation": "previous", "url": link(search.offset.saturating_sub(search.count))}));
    }
    let entries: Vec<Value> = page
        .into_iter()
        .map(|resource| {
            let id = resource.at("id").as_str().unwrap_or_default();
            let full_url = format!("{}/Patient/{id}", entry_base.trim_end_matches('/'));
            json!({"fullUrl": full_url, "resource": resource, "search": {"mode": "match"}})
        })
        .collect();
    let mut bundle = json!({"resourceType": "Bundle", "type": "searchset", "total": total, "link": links});
    if !entries.is_empty() {
        bundle.set("entry", json!(entries));
    }
    bundle
}

#[cfg(test)]
mod tests {
    use super::*;

    fn systems() -> IdentifierSystems {
        IdentifierSystems::example()
    }

    fn refused(query: &str, lenient: bool) -> String {
        match parse(query, &systems(), lenient) {
            Err(e @ ApiError::BadRequest { .. }) => e.to_string(),
            other => panic!("{query}: {other:?}"),
        }
    }

    #[test]
    fn each_parameter_becomes_its_criterion() {
        let s = parse(
            "identifier=https://cht.example.org/id/patient|45821&telecom=phone|%2B254722000333,0722000333&_count=5",
            &systems(),
            false,
        )
        .unwrap();
        assert_eq!(
            s.criteria,
            vec![
                Criterion::ShortCodes(vec!["45821".into()]),
                Criterion::Phones(vec!["+254722000333".into(), "0722000333".into()])
            ]
        );
        assert_eq!((s.count, s.offset), (5, 0));
        let s = parse("_id=a,b&identifier=xyz&_getpagesoffset=40&_count=1000", &systems(), false).unwrap();
        assert_eq!(
            s.criteria,
            vec![Criterion::FhirIds(vec!["a".into(), "b".into()]), Criterion::AnyIdentifier(vec!["xyz".into()])]
        );
        assert_eq!((s.count, s.offset), (MAX_COUNT, 40));
        let s = parse("identifier=https://cht.example.org/id/doc|d1,|c2", &systems(), false).unwrap();
        assert_eq!(s.criteria, vec![Criterion::AnyIdentifier(vec!["d1".into(), "c2".into()])]);
        let s = parse("phone=0722000333", &systems(), false).unwrap();
        assert_eq!(s.criteria, vec![Criterion::Phones(vec!["0722000333".into()])]);
    }

    #[test]
    fn unsupported_parameters_are_refused_by_name_unless_lenient() {
        let message = refused("name=Achieng&birthdate=1994-07-21&phone=1", false);
        assert!(message.contains("name, birthdate"), "{message}");
        let s = parse("name=Achieng&phone=0722000333", &systems(), true).unwrap();
        assert_eq!(s.used, vec![("phone".to_owned(), "0722000333".to_owned())], "ignored ones not in self");
        assert!(refused("identifier=https://emr.example.org/mrn|M1", true).contains("https://emr.example.org/mrn"));
        assert!(refused("telecom=email|a@b.c", false).contains("email"));
        assert!(refused("_count=many&phone=1", false).contains("_count"));
        assert!(refused("", false).contains("needs _id, identifier"));
        assert!(refused("name=x", true).contains("needs _id"), "lenient still needs a criterion");
        assert!(refused("phone=", false).contains("without a value"));
    }

    #[test]
    fn pages_link_to_their_neighbours_and_count_the_total() {
        let s = parse("phone=0722&_count=2&_getpagesoffset=2", &systems(), false).unwrap();
        let page = vec![json!({"resourceType": "Patient", "id": "c"}), json!({"resourceType": "Patient", "id": "d"})];
        let b = bundle(&s, page, 5, None, "http://127.0.0.1:6000/fhir");
        assert_eq!(b["total"], 5);
        let links: Vec<(&str, &str)> = b["link"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| (l["relation"].as_str().unwrap(), l["url"].as_str().unwrap()))
            .collect();
        assert_eq!(
            links,
            vec![
                ("self", "Patient?phone=0722&_count=2&_getpagesoffset=2"),
                ("next", "Patient?phone=0722&_count=2&_getpagesoffset=4"),
                ("previous", "Patient?phone=0722&_count=2"),
            ]
        );
        assert_eq!(b["entry"][0]["fullUrl"], "http://127.0.0.1:6000/fhir/Patient/c");
        let base = "https://him.example.org/fhir/";
        let b = bundle(&s, vec![json!({"resourceType": "Patient", "id": "c"})], 3, Some(base), base);
        assert_eq!(b["entry"][0]["fullUrl"], "https://him.example.org/fhir/Patient/c");
        assert_eq!(b["link"][0]["url"], "https://him.example.org/fhir/Patient?phone=0722&_count=2&_getpagesoffset=2");
        assert_eq!(b["link"].as_array().unwrap().len(), 2, "last page: no next");
        let far = parse(&format!("phone=1&_getpagesoffset={}", usize::MAX), &systems(), false).unwrap();
        let b = bundle(&far, Vec::new(), 3, None, "http://127.0.0.1:6000/fhir");
        assert!(b["link"].as_array().unwrap().iter().all(|l| l["relation"] != "next"), "no overflow, no next");
        let empty = bundle(&s, Vec::new(), 0, None, "http://127.0.0.1:6000/fhir");
        assert!(empty.get("entry").is_none());
        assert_eq!(crate::fhir::model::check_structure(&empty), Ok(()));
    }
}
