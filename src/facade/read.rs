//! The lookups behind the FHIR reads: CHT contacts by id (`/api/v1/hydrate`), by short code
//! (`contacts_by_reference`), by phone (`/api/v1/contacts-by-phone`, which normalises numbers as
//! CHT does), converted by [`crate::conversions::directory`]. Every call is an orchestration.
//!
//! A FHIR id is the inbound side's id of a CHT document ([`resource_id`]): the CHT id itself
//! when it is a valid FHIR id, else a UUID v5 of it, which cannot be turned back — such a
//! contact is found by `identifier=<document-id system>|<CHT id>` instead.

use std::collections::BTreeMap;

use serde_json::Value;

use super::search::{Criterion, PatientSearch};
use crate::conversions::ConversionError;
use crate::conversions::directory::{self, Kind};
use crate::conversions::ids::resource_id;
use crate::error::ApiError;
use crate::fhir::client::is_valid_id;
use crate::json::JsonExt;
use crate::settings::LiveConfig;
use crate::state::AppState;
use crate::upstream::CallContext;

/// The resource types the facade reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadType {
    Patient,
    Practitioner,
    Organization,
    Location,
}

impl ReadType {
    pub fn name(self) -> &'static str {
        match self {
            Self::Patient => "Patient",
            Self::Practitioner => "Practitioner",
            Self::Organization => "Organization",
            Self::Location => "Location",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Patient, Self::Practitioner, Self::Organization, Self::Location].into_iter().find(|t| t.name() == name)
    }

    fn serves(self, kind: Kind) -> bool {
        matches!(
            (self, kind),
            (Self::Patient, Kind::Patient)
                | (Self::Practitioner, Kind::Staff)
                | (Self::Organization | Self::Location, Kind::Place)
        )
    }
}

/// `GET /fhir/{type}/{id}`: the CHT document behind FHIR id `id`, as `read_type`.
pub async fn read(state: &AppState, ctx: &CallContext, read_type: ReadType, id: &str) -> Result<Value, ApiError> {
    let live = state.live.current();
    let not_found = || ApiError::NotFound(format!("CHT has no {} with FHIR id {id}", read_type.name()));
    if !is_valid_id(id) {
        return Err(not_found());
    }
    let doc = state.cht.person(ctx, &live.cht, id).await.map_err(cht_refusal)?;
    // The id must be the one the mediator gives this document (a numeric CHT id maps to a UUID).
    let doc = doc.filter(|d| d.at("_id").as_str().is_some_and(|cht_id| resource_id(cht_id) == id));
    let doc = doc.filter(|d| read_type.serves(directory::kind(d, &state.settings.patients))).ok_or_else(not_found)?;
    let resource = convert(state, &live, read_type, &doc).map_err(|e| unreadable(read_type, id, &e))?;
    tracing::info!(resource = read_type.name(), id, "FHIR read answered from CHT");
    Ok(resource)
}

/// `GET /fhir/Patient?…`: the patients matching every criterion, sorted by id, and how many
/// there are (before paging).
pub async fn search_patients(
    state: &AppState,
    ctx: &CallContext,
    search: &PatientSearch,
) -> Result<(Vec<Value>, usize), ApiError> {
    let live = state.live.current();
    let mut matches: Option<BTreeMap<String, Value>> = None;
    for criterion in &search.criteria {
        let found = find(state, ctx, &live, criterion).await?;
        matches = Some(match matches {
            None => found,
            Some(mut so_far) => {
                so_far.retain(|id, _| found.contains_key(id));
                so_far
            }
        });
    }
    let mut patients = Vec::new();
    for (cht_id, doc) in matches.unwrap_or_default() {
        if directory::kind(&doc, &state.settings.patients) != Kind::Patient {
            continue;
        }
        match directory::patient(&doc, &live.identifiers, &state.settings.patients) {
            Ok(patient) => patients.push(patient),
            // One malformed contact must not hide the others; it is named in the log by id only.
            Err(e) => tracing::warn!(contact = %cht_id, element = e.element.as_deref().unwrap_or("-"),
                "a CHT contact matching a search cannot be read as a Patient; left out"),
        }
    }
    let total = patients.len();
    tracing::info!(matches = total, "FHIR Patient search answered from CHT");
    let page = patients.into_iter().skip(search.offset).take(search.count).collect();
    Ok((page, total))
}

/// The CHT docs matching one criterion (any of its values), by CHT id.
async fn find(
    state: &AppState,
    ctx: &CallContext,
    live: &LiveConfig,
    criterion: &Criterion,
) -> Result<BTreeMap<String, Value>, ApiError> {
    let cht = &state.cht;
    let docs: Vec<Value> = match criterion {
        Criterion::FhirIds(ids) => {
            let valid: Vec<&str> = ids.iter().map(String::as_str).filter(|id| is_valid_id(id)).collect();
            let docs = by_cht_ids(state, ctx, live, &valid).await?;
            docs.into_iter()
                .filter(|doc| {
                    doc.at("_id").as_str().is_some_and(|cht_id| valid.contains(&resource_id(cht_id).as_str()))
                })
                .collect()
        }
        Criterion::Ids(ids) => {
            by_cht_ids(state, ctx, live, &ids.iter().map(String::as_str).collect::<Vec<_>>()).await?
        }
        Criterion::ShortCodes(codes) => by_short_codes(state, ctx, live, codes).await?,
        Criterion::AnyIdentifier(values) => {
            let mut docs = by_cht_ids(state, ctx, live, &values.iter().map(String::as_str).collect::<Vec<_>>()).await?;
            docs.extend(by_short_codes(state, ctx, live, values).await?);
            docs
        }
        Criterion::Phones(phones) => {
            let (mut docs, mut unhydrated) = (Vec::new(), Vec::new());
            for phone in phones {
                for doc in cht.contacts_by_phone(ctx, &live.cht, phone).await.map_err(cht_refusal)? {
                    // Hydrated by CHT; a parent without its type would hide the CHW and the rule.
                    if doc.at("parent").is_object() && doc.at("parent").at("type").is_null() {
                        unhydrated.extend(doc.at("_id").as_str().map(str::to_owned));
                    } else {
                        docs.push(doc);
                    }
                }
            }
            docs.extend(
                by_cht_ids(state, ctx, live, &unhydrated.iter().map(String::as_str).collect::<Vec<_>>()).await?,
            );
            docs
        }
    };
    let mut found = BTreeMap::new();
    for doc in docs {
        if let Some(id) = doc.at("_id").as_str().map(str::to_owned) {
            found.insert(id, doc);
        }
    }
    Ok(found)
}

/// CHT docs `ids`, hydrated (one call); ids CHT does not have are left out.
async fn by_cht_ids(
    state: &AppState,
    ctx: &CallContext,
    live: &LiveConfig,
    ids: &[&str],
) -> Result<Vec<Value>, ApiError> {
    Ok(state.cht.hydrate(ctx, &live.cht, ids).await.map_err(cht_refusal)?.into_values().collect())
}

/// The persons whose `patient_id` short code is one of `codes`, hydrated.
async fn by_short_codes(
    state: &AppState,
    ctx: &CallContext,
    live: &LiveConfig,
    codes: &[String],
) -> Result<Vec<Value>, ApiError> {
    let mut docs = Vec::new();
    for code in codes {
        docs.extend(state.cht.person_by_patient_id(ctx, &live.cht, code).await.map_err(cht_refusal)?);
    }
    Ok(docs)
}

fn convert(state: &AppState, live: &LiveConfig, read_type: ReadType, doc: &Value) -> Result<Value, ConversionError> {
    let systems = &live.identifiers;
    match read_type {
        ReadType::Patient => directory::patient(doc, systems, &state.settings.patients),
        ReadType::Practitioner => directory::practitioner(doc, systems),
        ReadType::Organization => directory::organization(doc, systems),
        ReadType::Location => directory::location(doc, systems),
    }
}

/// A CHT document that cannot be expressed as the resource: 422 naming the CHT element (its
/// value stays out of the answer: it may be patient data).
fn unreadable(read_type: ReadType, id: &str, e: &ConversionError) -> ApiError {
    ApiError::Unprocessable {
        message: format!("the CHT document behind {}/{id} cannot be read as FHIR: {e}", read_type.name()),
        expression: None,
    }
}

/// CHT's 403 (the mediator's user is offline, or lacks the permission) is the caller's answer
/// too: a permission for the CHT admin to grant, not a gateway fault to retry.
fn cht_refusal(e: ApiError) -> ApiError {
    match e {
        ApiError::BadGateway { target: "CHT", status: 403 } => ApiError::Forbidden(
            "CHT refused (403): the mediator's CHT user may not read contacts; it needs an online role \
             (app_settings.roles.<role>.offline: false) with can_view_contacts"
                .into(),
        ),
        other => other,
    }
}
