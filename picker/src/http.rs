//! The picker's HTTP surface: `/healthz`, the snapshot (encoded for the filter, JSON for
//! people) and its own Prometheus metrics.

use std::sync::Arc;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::metrics::{self, Metrics};
use crate::snapshot::Publisher;

#[derive(Clone)]
pub struct AppState {
    pub publisher: Arc<Publisher>,
    pub metrics: Arc<Metrics>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route(sluice_snapshot::PATH, get(snapshot))
        .route("/metrics", get(prometheus))
        .with_state(state)
}

/// Liveness: the process is up and its configuration loaded.
async fn healthz() -> &'static str {
    "ok\n"
}

/// The latest snapshot: the encoding the filter reads, or with `?format=json` the same for
/// people. 503 until the first round has been published (a fraction of a second after start).
async fn snapshot(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let json = match requested_format(query.as_deref()) {
        Ok(json) => json,
        Err(why) => return (StatusCode::BAD_REQUEST, why).into_response(),
    };
    let Some(published) = state.publisher.latest() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no snapshot yet\n").into_response();
    };
    let no_cache = (header::CACHE_CONTROL, "no-store");
    if json {
        match serde_json::to_vec_pretty(&published.snapshot) {
            Ok(body) => {
                ([(header::CONTENT_TYPE, "application/json"), no_cache], body).into_response()
            }
            Err(err) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot render the snapshot as JSON: {err}\n"),
            )
                .into_response(),
        }
    } else {
        (
            [
                (header::CONTENT_TYPE, sluice_snapshot::CONTENT_TYPE),
                no_cache,
            ],
            published.encoded.clone(),
        )
            .into_response()
    }
}

/// `format=json` asks for JSON; no query or `format=binary` for the encoding. Anything else is
/// a mistake worth telling about rather than guessing.
fn requested_format(query: Option<&str>) -> Result<bool, String> {
    let mut json = false;
    for pair in query
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
    {
        match pair.split_once('=') {
            Some(("format", "json")) => json = true,
            Some(("format", "binary")) => json = false,
            _ => {
                return Err(format!(
                    "unknown query {pair:?}: use format=json or format=binary\n"
                ));
            }
        }
    }
    Ok(json)
}

async fn prometheus(State(state): State<AppState>) -> Response {
    match state.metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
        Err(err) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode metrics: {err}\n"),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::requested_format;

    #[test]
    fn query_formats() {
        assert_eq!(requested_format(None), Ok(false));
        assert_eq!(requested_format(Some("")), Ok(false));
        assert_eq!(requested_format(Some("format=json")), Ok(true));
        assert_eq!(requested_format(Some("format=binary")), Ok(false));
        assert!(requested_format(Some("format=yaml")).is_err());
        assert!(requested_format(Some("pretty")).is_err());
    }
}
