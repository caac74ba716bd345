//! The answer's format: FHIR JSON, or FHIR XML when the caller asks for it with `_format`
//! (`xml`, `application/fhir+xml`, …) or `Accept`. `_format` wins over `Accept` (FHIR's rule for
//! clients that cannot set headers); a format the facade cannot give is a 406.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::error::{ApiError, FHIR_JSON};

pub const FHIR_XML: &str = "application/fhir+xml";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Xml,
}

/// A media type or `_format` value as a format; `None` when it is neither.
fn named(value: &str) -> Option<Format> {
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    match essence.as_str() {
        "json" | "application/json" | "application/fhir+json" | "application/json+fhir" | "*/*" | "application/*" => {
            Some(Format::Json)
        }
        "xml" | "text/xml" | "application/xml" | "application/fhir+xml" | "application/xml+fhir" => Some(Format::Xml),
        _ => None,
    }
}

/// The format for a request with raw query `query` and `headers`.
pub fn negotiate(query: Option<&str>, headers: &HeaderMap) -> Result<Format, ApiError> {
    let asked = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(name, _)| name == "_format")
        .map(|(_, value)| value.into_owned());
    if let Some(asked) = asked {
        return named(&asked).ok_or_else(|| {
            ApiError::NotAcceptable(format!("_format={asked}: the facade answers FHIR JSON or FHIR XML"))
        });
    }
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else { return Ok(Format::Json) };
    // The first acceptable type of the highest quality; `q=0` means "not this one".
    let mut offered: Vec<(f32, Format)> = accept
        .split(',')
        .filter_map(|item| {
            let q = item
                .split(';')
                .skip(1)
                .find_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()))
                .unwrap_or(1.0);
            named(item).filter(|_| q > 0.0).map(|f| (q, f))
        })
        .collect();
    offered.sort_by(|a, b| b.0.total_cmp(&a.0));
    offered.first().map(|(_, f)| *f).ok_or_else(|| {
        ApiError::NotAcceptable(format!("Accept: {accept}: the facade answers {FHIR_JSON} or {FHIR_XML}"))
    })
}

/// `200` with `resource` in `format`.
pub fn respond(format: Format, resource: &Value) -> Result<Response, ApiError> {
    Ok(match format {
        Format::Json => (StatusCode::OK, [(header::CONTENT_TYPE, FHIR_JSON)], resource.to_string()).into_response(),
        Format::Xml => {
            let xml = crate::fhir::model::json_to_xml(resource)
                .map_err(|e| ApiError::Internal(format!("a facade answer did not serialise as XML: {e}")))?;
            (StatusCode::OK, [(header::CONTENT_TYPE, FHIR_XML)], xml).into_response()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, value.parse().unwrap());
        headers
    }

    #[test]
    fn format_and_accept_choose_json_or_xml() {
        assert_eq!(negotiate(None, &HeaderMap::new()).unwrap(), Format::Json);
        assert_eq!(negotiate(Some("phone=1&_format=xml"), &HeaderMap::new()).unwrap(), Format::Xml);
        assert_eq!(negotiate(Some("_format=application%2Ffhir%2Bjson"), &accept(FHIR_XML)).unwrap(), Format::Json);
        assert_eq!(
            negotiate(None, &accept("application/fhir+xml;q=0.9, application/fhir+json;q=0.5")).unwrap(),
            Format::Xml
        );
        assert_eq!(negotiate(None, &accept("text/html, */*;q=0.1")).unwrap(), Format::Json);
        assert_eq!(negotiate(None, &accept("application/fhir+json; fhirVersion=4.0")).unwrap(), Format::Json);
        for refused in [negotiate(Some("_format=turtle"), &HeaderMap::new()), negotiate(None, &accept("text/html"))] {
            assert!(matches!(refused, Err(ApiError::NotAcceptable(_))), "{refused:?}");
        }
        assert!(negotiate(None, &accept("application/fhir+xml;q=0")).is_err(), "q=0 refuses it");
    }
}
