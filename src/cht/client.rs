//! Client for a CHT instance: fetch a person when a report arrives before its patient
//! (`GET /api/v1/hydrate`, falling back to `GET /medic/{id}` on a CHT without it), find a
//! person by `patient_id` short code and records by their fields (through the stock views of
//! `medic-client`, never an unindexed `_find`), and create
//! records (`POST /api/v2/records`). Basic auth and the timeout from the live config; every call
//! recorded as an orchestration.

use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::json::JsonExt;
use crate::settings::Upstream;
use crate::upstream::{CallContext, Recorder, UpstreamResponse};

/// Client for one CHT instance; cheap to clone.
#[derive(Clone)]
pub struct ChtClient {
    recorder: Recorder,
}

impl ChtClient {
    pub fn new(recorder: Recorder) -> Self {
        Self { recorder }
    }

    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    async fn call(
        &self,
        ctx: &CallContext,
        upstream: &Upstream,
        name: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<UpstreamResponse, ApiError> {
        Ok(self.recorder.call(ctx, upstream, name, method, path, "application/json", body).await?)
    }

    /// The contact doc `id` with its lineage hydrated, or `None` if CHT has no such doc.
    pub async fn person(&self, ctx: &CallContext, upstream: &Upstream, id: &str) -> Result<Option<Value>, ApiError> {
        let ids = serde_json::to_string(&[id]).unwrap_or_default();
        let query = url::form_urlencoded::Serializer::new(String::new()).append_pair("doc_ids", &ids).finish();
        let response = self
            .call(ctx, upstream, "CHT hydrate contact", Method::GET, &format!("api/v1/hydrate?{query}"), None)
            .await?;
        if response.status.as_u16() == 404 && response.json().is_none_or(|v| v.get("error").is_none()) {
            // No hydrate endpoint (older CHT): the plain document.
            let path = format!("medic/{}", url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>());
            let response = self.call(ctx, upstream, "CHT get contact", Method::GET, &path, None).await?;
            return match response.status.as_u16() {
                404 => Ok(None),
                200..=299 => Ok(response.json()),
                status => Err(ApiError::BadGateway { target: "CHT", status }),
            };
        }
        let rows = success_json(&response)?;
        let row = rows.as_array().and_then(|rows| rows.iter().find(|r| r["id"] == id)).cloned();
        Ok(row.and_then(|r| r.get("doc").filter(|d| d.is_object()).cloned()))
    }

    /// Docs `ids` hydrated (one `POST /api/v1/hydrate`), by id; ids CHT does not have are absent.
    pub async fn hydrate(
        &self,
        ctx: &CallContext,
        upstream: &Upstream,
        ids: &[&str],
    ) -> Result<std::collections::HashMap<String, Value>, ApiError> {
        if ids.is_empty() {
            return Ok(Default::default());
        }
        let body = json!({ "doc_ids": ids });
        let response =
            self.call(ctx, upstream, "CHT hydrate contacts", Method::POST, "api/v1/hydrate", Some(&body)).await?;
        let rows = success_json(&response)?;
        Ok(rows
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| Some((r.at("id").as_str()?.to_owned(), r.get("doc").filter(|d| d.is_object())?.clone())))
            .collect())
    }

    /// Creates person `person` (`POST /api/v1/people`, its `_id` given). A 409 is success: that
    /// contact exists, made by a racing copy of the same request.
    pub async fn create_person(&self, ctx: &CallContext, upstream: &Upstream, person: &Value) -> Result<(), ApiError> {
        let response =
            self.call(ctx, upstream, "CHT create person", Method::POST, "api/v1/people", Some(person)).await?;
        let answer = response.json().unwrap_or(Value::Null);
        match response.status.as_u16() {
            200..=299 | 409 => Ok(()),
            401 | 403 => Err(ApiError::Refused {
                target: "CHT",
                detail: format!("the mediator's CHT user may not create people ({})", response.status.as_u16()),
            }),
            status @ 400..=499 => Err(ApiError::Refused {
                target: "CHT",
                detail: format!(
                    "HTTP {status} creating the contact: {}",
                    ["message", "error", "reason"].iter().find_map(|k| answer.at(k).as_str()).unwrap_or("no reason")
                ),
            }),
            status => Err(ApiError::BadGateway { target: "CHT", status }),
        }
    }

    /// Creates a record on JSON form `form` (`POST /api/v2/records`) and returns its id. Only
    /// `success: true` is success: CHT answers 200 with `errors` for field problems, and 500 for an
    /// unknown form. Keys must be the form's lower-case field names (CHT drops any other key).
    pub async fn create_record(
        &self,
        ctx: &CallContext,
        upstream: &Upstream,
        form: &str,
        fields: &Map<String, Value>,
    ) -> Result<String, ApiError> {
        let mut body = fields.clone();
        body.insert("_meta".into(), json!({"form": form}));
        let response = self
            .call(ctx, upstream, "CHT create record", Method::POST, "api/v2/records", Some(&Value::Object(body)))
            .await?;
        let answer = response.json().unwrap_or(Value::Null);
        let id = answer.at("id").as_str().filter(|_| answer.at("success") == true);
        match (response.status.as_u16(), id) {
            (200..=299, Some(id)) => Ok(id.to_owned()),
            (500..=599, _) if answer.get("details").is_none() => {
                Err(ApiError::BadGateway { target: "CHT", status: response.status.as_u16() })
            }
            (401 | 403, _) => Err(ApiError::Refused {
                target: "CHT",
                detail: format!("the mediator's CHT user was refused ({})", response.status.as_u16()),
            }),
            (status, _) => {
                let detail = ["details", "error", "errors"].iter().find_map(|k| answer.get(*k)).map(Value::to_string);
                Err(ApiError::Refused {
                    target: "CHT",
                    detail: format!("HTTP {status}: {}", detail.unwrap_or_else(|| "no success".into())),
                })
            }
        }
    }

    /// Reports of `form` whose `fields.<name>` is `value` for each `(name, value)` of `key`,
    /// oldest id first (look before write: the records API has no idempotency key). Through
    /// views every CHT database has (`medic-client`): a stock medic database has no index on
    /// `fields.*`, and a `_find` there scans every document. By patient (`reports_by_subject`)
    /// when the key names one, else every report of the form (`reports_by_form`).
    pub async fn find_records(
        &self,
        ctx: &CallContext,
        upstream: &Upstream,
        form: &str,
        key: &[(String, String)],
    ) -> Result<Vec<Value>, ApiError> {
        let subject = key.iter().find(|(name, _)| name == "patient_uuid").map(|(_, v)| v.as_str());
        let (view, view_key) = match subject {
            Some(uuid) => ("reports_by_subject", json!(uuid)),
            None => ("reports_by_form", json!([form])),
        };
        let rows = self.view(ctx, upstream, "CHT find records", view, &view_key).await?;
        let mut docs: Vec<Value> = rows
            .into_iter()
            .filter(|doc| doc.at("type") == "data_record" && doc.at("form") == form)
            .filter(|doc| key.iter().all(|(name, value)| doc.at("fields").at(name).as_str() == Some(value)))
            .collect();
        docs.sort_by(|a, b| a["_id"].as_str().cmp(&b["_id"].as_str()));
        docs.dedup_by(|a, b| a["_id"] == b["_id"]);
        Ok(docs)
    }

    /// The docs of view `medic-client/<view>` at `key` (`include_docs`, no reduce).
    async fn view(
        &self,
        ctx: &CallContext,
        upstream: &Upstream,
        name: &str,
        view: &str,
        key: &Value,
    ) -> Result<Vec<Value>, ApiError> {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("key", &key.to_string())
            .append_pair("include_docs", "true")
            .append_pair("reduce", "false")
            .finish();
        let path = format!("medic/_design/medic-client/_view/{view}?{query}");
        let response = self.call(ctx, upstream, name, Method::GET, &path, None).await?;
        let rows = success_json(&response)?.at("rows").as_array().cloned().unwrap_or_default();
        Ok(rows.into_iter().filter_map(|r| r.get("doc").filter(|d| d.is_object()).cloned()).collect())
    }

    /// Doc `id` of the medic database as stored, or `None`.
    pub async fn doc(&self, ctx: &CallContext, upstream: &Upstream, id: &str) -> Result<Option<Value>, ApiError> {
        let path = format!("medic/{}", url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>());
        let response = self.call(ctx, upstream, "CHT get record", Method::GET, &path, None).await?;
        match response.status.as_u16() {
            404 => Ok(None),
            _ => success_json(&response).map(Some),
        }
    }

    /// Deletes doc `id` at revision `rev` (removing a duplicate record).
    pub async fn delete_doc(
        &self,
        ctx: &CallContext,
        upstream: &Upstream,
        id: &str,
        rev: &str,
    ) -> Result<(), ApiError> {
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let path = format!("medic/{}?rev={}", enc(id), enc(rev));
        let response = self.call(ctx, upstream, "CHT delete duplicate record", Method::DELETE, &path, None).await?;
        match response.status.as_u16() {
            200..=299 | 404 | 409 => Ok(()),
            status => Err(ApiError::BadGateway { target: "CHT", status }),
        }
    }

    /// One page of the medic changes feed with documents: `(seq, doc)` pairs and the page's last
    /// seq (opaque: numbers in some servers, strings in CouchDB 2+).
    pub async fn changes(
        &self,
        ctx: &CallContext,
        upstream: &Upstream,
        since: &str,
        limit: usize,
    ) -> Result<(Vec<(Value, Value)>, Value), ApiError> {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("since", since)
            .append_pair("include_docs", "true")
            .append_pair("limit", &limit.to_string())
            .finish();
        let response =
            self.call(ctx, upstream, "CHT changes", Method::GET, &format!("medic/_changes?{query}"), None).await?;
        let page = success_json(&response)?;
        let rows = page.at("results").as_array().cloned().unwrap_or_default();
        let changes = rows
            .into_iter()
            .filter(|r| r.at("doc").is_object())
            .map(|r| (r.at("seq").clone(), r.at("doc").clone()))
            .collect();
        Ok((changes, page.at("last_seq").clone()))
    }

    /// The medic database's current `update_seq` (for "since now" and progress estimates).
    pub async fn update_seq(&self, ctx: &CallContext, upstream: &Upstream) -> Result<Value, ApiError> {
        let response = self.call(ctx, upstream, "CHT database info", Method::GET, "medic", None).await?;
        Ok(success_json(&response)?.at("update_seq").clone())
    }

    /// The contacts CHT finds by `phone` (`/api/v1/contacts-by-phone`, which normalises it as
    /// CHT does), hydrated; none when it finds none (404) or cannot read the number as a phone
    /// (400: the Patient's telecom is then no use for finding a CHT person, and no failure).
    pub async fn contacts_by_phone(
        &self,
        ctx: &CallContext,
        upstream: &Upstream,
        phone: &str,
    ) -> Result<Vec<Value>, ApiError> {
        let query = url::form_urlencoded::Serializer::new(String::new()).append_pair("phone", phone).finish();
        let path = format!("api/v1/contacts-by-phone?{query}");
        let response = self.call(ctx, upstream, "CHT contacts by phone", Method::GET, &path, None).await?;
        if matches!(response.status.as_u16(), 400 | 404) {
            return Ok(Vec::new());
        }
        Ok(success_json(&response)?.at("docs").as_array().cloned().unwrap_or_default())
    }

    /// The person whose `patient_id` short code is `code`, or `None`.
    pub async fn person_by_patient_id(
        &self,
        ctx: &CallContext,
        upstream: &Upstream,
        code: &str,
    ) -> Result<Option<Value>, ApiError> {
        // contacts_by_reference: the short codes (`patient_id`, `place_id`) CHT itself resolves.
        let docs: Vec<Value> = self
            .view(ctx, upstream, "CHT find contact by patient_id", "contacts_by_reference", &json!(["shortcode", code]))
            .await?
            .into_iter()
            .filter(|d| matches!(d.at("type").as_str(), Some("person" | "contact")) && d.at("patient_id") == code)
            .collect();
        match docs.as_slice() {
            [] => Ok(None),
            [only] => self.person(ctx, upstream, only["_id"].as_str().unwrap_or_default()).await,
            _ => {
                tracing::warn!(patient_id_matches = docs.len(), "several CHT contacts share a patient_id; using none");
                Ok(None)
            }
        }
    }
}

fn success_json(response: &UpstreamResponse) -> Result<Value, ApiError> {
    if !response.status.is_success() {
        return Err(ApiError::BadGateway { target: "CHT", status: response.status.as_u16() });
    }
    response.json().ok_or_else(|| {
        ApiError::Upstream(crate::upstream::UpstreamError::InvalidResponse {
            target: "cht",
            reason: "answer is not JSON".into(),
        })
    })
}
