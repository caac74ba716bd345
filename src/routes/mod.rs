//! The router: every endpoint, behind the shared middleware (see [`crate::http::middleware`]).

pub mod cht;
pub mod compat;
pub mod fhir;
pub mod fhir_read;
pub mod status;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;

use crate::error::ApiError;
use crate::http::middleware::{deadline, openhim_envelope, panic_response, request_context, route_credentials};
use crate::state::AppState;

/// Builds the application router.
pub fn router(state: AppState) -> Router {
    let endpoints = Router::new()
        .route("/", get(status::index))
        .route("/health/live", get(status::live))
        .route("/health/ready", get(status::ready))
        .route("/metrics", get(status::metrics))
        .route("/cht/patient", post(cht::patient))
        .route("/cht/encounter", post(cht::encounter))
        .route("/fhir/ServiceRequest", post(fhir::follow_up))
        .route("/service-request", post(fhir::follow_up))
        .route("/fhir/Task", post(fhir::follow_up))
        .route("/fhir/Patient", post(fhir::patient).get(fhir_read::search_patient))
        .route("/fhir/{type}/{id}", get(fhir_read::resource))
        .route("/fhir/metadata", get(fhir_read::metadata))
        .route("/fhir/Encounter", post(fhir::encounter))
        // FHIR's `POST [base]`; the channel pattern `^/mediator/fhir/.*$` routes `/fhir/`.
        .route("/fhir", post(fhir::encounter))
        .route("/fhir/", post(fhir::encounter))
        .route("/patient", post(compat::patient))
        .route("/encounter", post(compat::encounter))
        .route("/organization", post(compat::organization))
        .route("/endpoint", post(compat::endpoint));
    with_middleware(endpoints, state)
}

/// Puts `endpoints` behind the shared middleware and the OperationOutcome fallbacks.
pub fn with_middleware(endpoints: Router<AppState>, state: AppState) -> Router {
    let body_limit = state.settings.server.body_limit_bytes;
    endpoints
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(
            ServiceBuilder::new()
                .layer(from_fn_with_state(state.clone(), request_context))
                // Before the envelope: an unauthenticated caller gets a plain 401, not the envelope.
                .layer(from_fn_with_state(state.clone(), route_credentials))
                .layer(from_fn_with_state(state.clone(), openhim_envelope))
                .layer(CatchPanicLayer::custom(panic_response))
                .layer(from_fn_with_state(state.clone(), deadline))
                .layer(DefaultBodyLimit::max(body_limit)),
        )
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;
    use crate::settings::{Settings, Source};

    fn state() -> AppState {
        let db = std::env::temp_dir().join(format!("routes-test-{}.sqlite3", uuid::Uuid::new_v4()));
        let env =
            [("OPENHIM_REGISTER", "false"), ("REQUEST_TIMEOUT_MS", "100"), ("DEAD_LETTER_DB", db.to_str().unwrap())]
                .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let settings = Settings::from_source(Source::load_with_env(None, env).unwrap()).unwrap();
        AppState::new(Arc::new(settings), "urn:mediator:test").unwrap()
    }

    async fn call(app: Router, path: &str, transaction: Option<&str>) -> (StatusCode, String, Value) {
        let mut request = Request::get(path);
        if let Some(tx) = transaction {
            request = request.header("x-openhim-transactionid", tx);
        }
        let response = app.oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
        let status = response.status();
        let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, content_type, serde_json::from_slice(&bytes).unwrap())
    }

    fn test_app() -> Router {
        let endpoints = Router::new()
            .route(
                "/panic",
                get(|| async {
                    if true {
                        panic!("secret panic detail")
                    }
                }),
            )
            .route("/slow", get(|| async { tokio::time::sleep(std::time::Duration::from_secs(5)).await }));
        with_middleware(endpoints, state())
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_with_an_operation_outcome() {
        let (status, content_type, body) = call(test_app(), "/panic", None).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(content_type, "application/fhir+json");
        assert_eq!(body["resourceType"], "OperationOutcome");
        assert!(!body.to_string().contains("secret panic detail"));
    }

    #[tokio::test]
    async fn a_handler_over_the_time_budget_answers_504() {
        let (status, _, body) = call(test_app(), "/slow", None).await;
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(body["issue"][0]["code"], "timeout");
    }

    #[tokio::test]
    async fn errors_are_enveloped_for_openhim_with_a_truthful_status() {
        let (status, content_type, body) = call(test_app(), "/slow", Some("tx-123")).await;
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(content_type, "application/json+openhim");
        assert_eq!(body["x-mediator-urn"], "urn:mediator:test");
        assert_eq!(body["status"], "Failed");
        assert_eq!(body["response"]["status"], 504);
        let inner: Value = serde_json::from_str(body["response"]["body"].as_str().unwrap()).unwrap();
        assert_eq!(inner["resourceType"], "OperationOutcome");

        let (status, _, body) = call(test_app(), "/nowhere", Some("tx-124")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["status"], "Completed");
    }
}
