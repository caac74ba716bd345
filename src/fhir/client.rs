//! Client for the FHIR R4 server: read, search (entries counted, `total` not trusted), `PUT`
//! upsert and transaction Bundles, `application/fhir+json`, the credentials (`FHIR_AUTH`) and
//! the timeout from the live config; every call recorded as an orchestration. Failures are
//! sorted once, here: transient ones (5xx, 408/409/412/423/429, refused credentials 401/403,
//! timeouts, unreachable) are for a retry; any other 4xx is the server refusing what was sent,
//! kept with its status and `OperationOutcome`.

use reqwest::Method;
use serde_json::{Value, json};

use crate::error::{ApiError, FHIR_JSON};
use crate::json::JsonExt;
use crate::settings::Upstream;
use crate::upstream::{CallContext, Recorder, UpstreamResponse, join_url};

/// Largest page read in one search (the mediator's searches are by identifier or by one
/// Encounter's Observations: a handful of entries).
const SEARCH_COUNT: &str = "1000";

/// Most pages of one search followed (`link[next]`): servers cap the page size below
/// [`SEARCH_COUNT`] (HAPI: by configuration), and the mediator's searches are small.
const MAX_SEARCH_PAGES: usize = 20;

/// Longest search query sent (servers commonly refuse URLs past 8 KiB, and reqwest cannot build
/// some past 64 KiB): a longer one is refused here, before it is sent.
const MAX_QUERY_BYTES: usize = 4096;

/// A failed FHIR call.
#[derive(Debug, thiserror::Error)]
pub enum FhirError {
    /// Worth retrying later.
    #[error(transparent)]
    Transient(#[from] ApiError),
    /// The server refused the request as sent.
    #[error("the FHIR server refused the request ({status})")]
    Rejected { status: u16, outcome: Value },
    /// The request cannot be made as asked (an id that is not a FHIR id, a search value too long
    /// for a URL): nothing was sent. Callers validate their input first; this is the backstop.
    #[error("{0}")]
    Invalid(String),
    /// An update with `If-Match` found the resource at another version: re-read and re-apply.
    #[error("the resource changed since it was read (412)")]
    VersionConflict,
}

impl FhirError {
    /// As the API error of a request the caller answers itself (outbound side): a refusal is
    /// the FHIR server's reason, 502.
    pub fn into_api(self) -> ApiError {
        match self {
            Self::Transient(e) => e,
            Self::Rejected { status, outcome } => ApiError::Refused {
                target: "FHIR server",
                detail: format!("{status}: {}", super::transaction::outcome_reason(&outcome)),
            },
            Self::Invalid(why) => ApiError::bad_request(why, None),
            Self::VersionConflict => ApiError::BadGateway { target: "FHIR server", status: 412 },
        }
    }
}

/// One read of a [`FhirClient::batch`].
#[derive(Debug, Clone)]
pub enum Read<'a> {
    /// `GET [type]/[id]`.
    ById { kind: &'a str, id: &'a str },
    /// `GET [type]?params` (every page).
    Search { kind: &'a str, params: Vec<(&'a str, String)> },
}

/// The answer to one [`Read`], in its shape.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// The resource, or `None` when the server has no such one (404/410).
    Found(Option<Value>),
    /// Every match of the search.
    Matches(Vec<Value>),
}

/// Client for one FHIR server; cheap to clone.
#[derive(Clone)]
pub struct FhirClient {
    recorder: Recorder,
}

/// A FHIR id: `[A-Za-z0-9\-\.]{1,64}`, and not only dots (`.`/`..` are URL path segments).
pub fn is_valid_id(id: &str) -> bool {
    super::base::primitive::is_id(id)
}

impl FhirClient {
    pub fn new(recorder: Recorder) -> Self {
        Self { recorder }
    }

    /// The underlying recorder (readiness probes use its HTTP client).
    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    async fn call(
        &self,
        ctx: &CallContext,
        upstream: &Upstream,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<UpstreamResponse, ApiError> {
        let name = match path {
            "" => format!("FHIR {method} transaction"),
            _ => format!("FHIR {method} {}", path.split('?').next().unwrap_or(path)),
        };
        Ok(self.recorder.call(ctx, upstream, &name, method, path, FHIR_JSON, body).await?)
    }

    /// `PUT [path]` (`[type]/[id]`, or a conditional `[type]?identifier=…`) with `resource`, only
    /// if it is still at `version` when given (`If-Match`). The server's answer, refusals too.
    pub async fn put_at(
        &self,
        ctx: &CallContext,
        upstream: &Upstream,
        path: &str,
        resource: &Value,
        version: Option<&str>,
    ) -> Result<UpstreamResponse, ApiError> {
        let name = format!("FHIR PUT {}", path.split('?').next().unwrap_or(path));
        let mut headers = Vec::new();
        if let Some(version) = version {
            headers.push(("if-match", format!("W/\"{version}\"")));
        }
        // Every answer goes back, conflicts (409, 412) included: the caller retries, repairs or
        // re-reads by the status; only a call that got no answer is an error here.
        Ok(self
            .recorder
            .call_with(ctx, upstream, &name, Method::PUT, path, FHIR_JSON, Some(resource), &headers)
            .await?)
    }

    /// `DELETE [type]/[id]`; one already gone is fine.
    pub async fn delete(&self, ctx: &CallContext, upstream: &Upstream, kind: &str, id: &str) -> Result<(), FhirError> {
        if !is_valid_id(id) {
            return Err(FhirError::Invalid(format!("a {kind} id must be a FHIR id")));
        }
        let response = self.call(ctx, upstream, Method::DELETE, &format!("{kind}/{id}"), None).await?;
        if matches!(response.status.as_u16(), 404 | 410) {
            return Ok(());
        }
        classify(&response)
    }

    /// The server's CapabilityStatement (`GET /metadata`).
    pub async fn metadata(&self, ctx: &CallContext, upstream: &Upstream) -> Result<Value, FhirError> {
        let response = self.call(ctx, upstream, Method::GET, "metadata", None).await?;
        classify(&response)?;
        json_body(&response)
    }

    /// `GET [type]/[id]`; `None` when the server has no such resource (404/410).
    pub async fn read(
        &self,
        ctx: &CallContext,
        upstream: &Upstream,
        kind: &str,
        id: &str,
    ) -> Result<Option<Value>, FhirError> {
        if !is_valid_id(id) {
            return Err(FhirError::Invalid(format!("a {kind} id must be a FHIR id ([A-Za-z0-9-.]{{1,64}})")));
        }
        let response = self.call(ctx, upstream, Method::GET, &format!("{kind}/{id}"), None).await?;
        if matches!(response.status.as_u16(), 404 | 410) {
            return Ok(None);
        }
        classify(&response)?;
        let resource = json_body(&response)?;
        // Only a resource of the type asked for is one: anything else (an array, another type) is
        // a broken answer, never data to act on or to pass back as if it were the resource.
        if resource.get("resourceType").and_then(Value::as_str) != Some(kind) {
            return Err(FhirError::Transient(ApiError::Upstream(crate::upstream::UpstreamError::InvalidResponse {
                target: "fhir",
                reason: format!("GET {kind}/{{id}} answered with something that is not a {kind}"),
            })));
        }
        Ok(Some(resource))
    }

    /// `GET [type]?params`: the matching resources (entries with `search.mode` match or none).
    pub async fn search(
        &self,
        ctx: &CallContext,
        upstream: &Upstream,
        kind: &str,
        params: &[(&str, &str)],
    ) -> Result<Vec<Value>, FhirError> {
        let path = search_path(kind, params)?;
        let mut found = Vec::new();
        self.follow_pages(ctx, upstream, kind, Some(path), &mut found).await?;
        Ok(found)
    }

    /// Reads the search pages from `path` on (`link[next]`), adding their matches to `found`.
    async fn follow_pages(
        &self,
        ctx: &CallContext,
        upstream: &Upstream,
        kind: &str,
        mut path: Option<String>,
        found: &mut Vec<Value>,
    ) -> Result<(), FhirError> {
        for _ in 0..MAX_SEARCH_PAGES {
            let Some(page) = path else { return Ok(()) };
            // no-cache: a search must see the writes just made. HAPI answers a search repeated
            // within a minute from its cache of results unless told not to.
            let headers = [("cache-control", "no-cache".to_owned())];
            let name = format!("FHIR GET {kind}");
            let response = self
                .recorder
                .call_with(ctx, upstream, &name, Method::GET, &page, FHIR_JSON, None, &headers)
                .await
                .map_err(ApiError::from)?;
            classify(&response)?;
            let bundle = json_body(&response)?;
            found.extend(matches(&bundle, kind));
            path = next_page(&upstream.url, &bundle);
        }
        if path.is_some() {
            tracing::warn!(%kind, pages = MAX_SEARCH_PAGES, "search has more pages than are followed");
        }
        Ok(())
    }

    /// Several reads in ONE round trip: a `batch` Bundle of GETs (FHIR R4 §3.1.0.11; the entries
    /// are independent, so a batch, not a transaction, is the right interaction). Answers in
    /// order; a search's further pages are read after it. Only for servers that declare `batch`
    /// (the store checks); an answer that is not a `batch-response` with one entry per read is
    /// a broken answer, never a partial result.
    pub async fn batch(
        &self,
        ctx: &CallContext,
        upstream: &Upstream,
        reads: &[Read<'_>],
    ) -> Result<Vec<Answer>, FhirError> {
        let mut urls = Vec::with_capacity(reads.len());
        for read in reads {
            urls.push(match read {
                Read::ById { kind, id } => {
                    if !is_valid_id(id) {
                        return Err(FhirError::Invalid(format!(
                            "a {kind} id must be a FHIR id ([A-Za-z0-9-.]{{1,64}})"
                        )));
                    }
                    format!("{kind}/{id}")
                }
                Read::Search { kind, params } => search_path(kind, params)?,
            });
        }
        let entries: Vec<Value> = urls.iter().map(|url| json!({"request": {"method": "GET", "url": url}})).collect();
        let bundle = json!({"resourceType": "Bundle", "type": "batch", "entry": entries});
        let name = format!("FHIR POST batch of {} reads", reads.len());
        let response = self
            .recorder
            .call(ctx, upstream, &name, Method::POST, "", FHIR_JSON, Some(&bundle))
            .await
            .map_err(ApiError::from)?;
        classify(&response)?;
        let answer = json_body(&response)?;
        let entries = answer.at("entry").as_array().map(Vec::as_slice).unwrap_or_default();
        if answer.at("type") != "batch-response" || entries.len() != reads.len() {
            return Err(broken(format!(
                "a batch of {} reads was answered with {} entries of a {}",
                reads.len(),
                entries.len(),
                answer.at("type").as_str().unwrap_or("non-Bundle")
            )));
        }
        let mut answers = Vec::with_capacity(reads.len());
        for (read, entry) in reads.iter().zip(entries) {
            let status_text = entry.at("response").at("status").as_str().unwrap_or_default();
            let status: u16 = status_text.split_whitespace().next().and_then(|s| s.parse().ok()).unwrap_or(0);
            let resource = entry.at("resource");
            answers.push(match read {
                Read::ById { .. } if matches!(status, 404 | 410) => Answer::Found(None),
                Read::ById { kind, .. } if (200..300).contains(&status) => {
                    if resource.at("resourceType") != *kind {
                        return Err(broken(format!(
                            "a batch GET {kind}/{{id}} answered something that is not a {kind}"
                        )));
                    }
                    Answer::Found(Some(resource.clone()))
                }
                Read::Search { kind, .. } if (200..300).contains(&status) => {
                    if resource.at("resourceType") != "Bundle" {
                        return Err(broken(format!("a batch search of {kind} answered no searchset")));
                    }
                    let mut found: Vec<Value> = matches(resource, kind).collect();
                    self.follow_pages(ctx, upstream, kind, next_page(&upstream.url, resource), &mut found).await?;
                    Answer::Matches(found)
                }
                _ => return Err(by_status(status, entry.at("response").at("outcome").clone())),
            });
        }
        Ok(answers)
    }

    /// `POST [base]` with a transaction Bundle: all entries or none. Returns the response Bundle.
    pub async fn transaction(
        &self,
        ctx: &CallContext,
        upstream: &Upstream,
        bundle: &Value,
    ) -> Result<Value, FhirError> {
        let response = self.call(ctx, upstream, Method::POST, "", Some(bundle)).await?;
        classify(&response)?;
        json_body(&response)
    }
}

/// A transaction Bundle entry writing `resource` with `PUT [type]/[id]`.
pub fn put_entry(base: &url::Url, resource: &Value) -> Value {
    let kind = resource["resourceType"].as_str().unwrap_or_default();
    let id = resource["id"].as_str().unwrap_or_default();
    let full_url = join_url(base, &format!("{kind}/{id}")).map(|u| u.to_string()).unwrap_or_default();
    json!({"fullUrl": full_url, "resource": resource, "request": {"method": "PUT", "url": format!("{kind}/{id}")}})
}

/// A transaction Bundle entry deleting `[type]/[id]`, as a conditional delete on `_id`: deleting
/// a resource that is already gone then succeeds (204) instead of failing the whole transaction
/// (HFS answers 400 to a plain DELETE of a deleted resource), so two concurrent redeliveries of
/// one report cannot fail each other.
pub fn delete_entry(kind: &str, id: &str) -> Value {
    json!({"request": {"method": "DELETE", "url": format!("{kind}?_id={id}")}})
}

/// The `next` link of a search page, as a path under `base` — only a link on the same server
/// is followed (never send the credentials elsewhere).
fn next_page(base: &url::Url, bundle: &Value) -> Option<String> {
    let links = bundle.at("link").as_array()?;
    let next = links.iter().find(|l| l.at("relation") == "next")?.at("url").as_str()?;
    let base = base.as_str().trim_end_matches('/');
    let rest = next.strip_prefix(base)?;
    // `[base]/…` or `[base]?…` (HAPI's paging links), nothing that would leave the base path.
    match rest.chars().next() {
        Some('/') => Some(rest.trim_start_matches('/').to_owned()),
        Some('?') => Some(rest.to_owned()),
        _ => None,
    }
}

fn classify(response: &UpstreamResponse) -> Result<(), FhirError> {
    match response.status.as_u16() {
        200..=299 => Ok(()),
        status => Err(by_status(status, response.json().unwrap_or(Value::Null))),
    }
}

/// The error of a non-2xx `status` (of a response, or of a batch entry) with its outcome.
fn by_status(status: u16, outcome: Value) -> FhirError {
    match status {
        // 401/403: the mediator's credentials, not what was sent — never a dead letter.
        401 | 403 | 408 | 409 | 412 | 423 | 429 => {
            FhirError::Transient(ApiError::BadGateway { target: "FHIR server", status })
        }
        400..=499 => FhirError::Rejected { status, outcome },
        _ => FhirError::Transient(ApiError::BadGateway { target: "FHIR server", status }),
    }
}

fn broken(reason: String) -> FhirError {
    FhirError::Transient(ApiError::Upstream(crate::upstream::UpstreamError::InvalidResponse { target: "fhir", reason }))
}

/// `[type]?params&_count=…`, refused before it is sent when too long for a URL.
fn search_path<P: AsRef<str>>(kind: &str, params: &[(&str, P)]) -> Result<String, FhirError> {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        query.append_pair(name, value.as_ref());
    }
    let query = query.append_pair("_count", SEARCH_COUNT).finish();
    if query.len() > MAX_QUERY_BYTES {
        return Err(FhirError::Invalid(format!("a {kind} search value is too long (at most {MAX_QUERY_BYTES} bytes)")));
    }
    Ok(format!("{kind}?{query}"))
}

/// The resources a search page matched (entries with `search.mode` match or none) of `kind`.
fn matches<'b>(bundle: &'b Value, kind: &'b str) -> impl Iterator<Item = Value> + 'b {
    bundle
        .at("entry")
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e.at("search").at("mode").as_str().is_none_or(|m| m == "match"))
        .filter(move |e| e.at("resource").at("resourceType") == kind)
        .map(|e| e.at("resource").clone())
}

fn json_body(response: &UpstreamResponse) -> Result<Value, FhirError> {
    response.json().ok_or_else(|| {
        FhirError::Transient(ApiError::Upstream(crate::upstream::UpstreamError::InvalidResponse {
            target: "fhir",
            reason: format!("HTTP {} with a body that is not JSON", response.status.as_u16()),
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_next_links_on_the_same_server_are_followed() {
        let base: url::Url = "http://hapi:8080/fhir".parse().unwrap();
        let page = |url: &str| json!({"link": [{"relation": "self", "url": "x"}, {"relation": "next", "url": url}]});
        assert_eq!(
            next_page(&base, &page("http://hapi:8080/fhir?_getpages=abc&_getpagesoffset=200")).as_deref(),
            Some("?_getpages=abc&_getpagesoffset=200")
        );
        assert_eq!(
            next_page(&base, &page("http://hapi:8080/fhir/Patient?_page=2")).as_deref(),
            Some("Patient?_page=2")
        );
        assert_eq!(next_page(&base, &page("http://evil.example/fhir?_getpages=abc")), None);
        assert_eq!(next_page(&base, &page("http://hapi:8080/fhirx/Patient")), None);
        assert_eq!(next_page(&base, &json!({"link": [{"relation": "self", "url": "x"}]})), None);
    }

    #[test]
    fn fhir_ids_follow_the_spec() {
        assert!(is_valid_id("3f2a1c9e-1b2c-4d5e-8f90-123456789abc"));
        assert!(is_valid_id("a.b-C9"));
        assert!(!is_valid_id(""));
        assert!(!is_valid_id("has space"));
        assert!(!is_valid_id("under_score"));
        assert!(!is_valid_id(&"x".repeat(65)));
        assert!(!is_valid_id(".") && !is_valid_id("..") && !is_valid_id("..."));
    }

    #[test]
    fn bundle_entries() {
        let base: url::Url = "http://fhir:8080/r4".parse().unwrap();
        let e = put_entry(&base, &json!({"resourceType": "Patient", "id": "p1"}));
        assert_eq!(e["fullUrl"], "http://fhir:8080/r4/Patient/p1");
        assert_eq!(e["request"], json!({"method": "PUT", "url": "Patient/p1"}));
        assert_eq!(delete_entry("Observation", "o1")["request"]["url"], "Observation?_id=o1");
    }
}
