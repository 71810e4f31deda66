//! The picker's HTTP surface: `/healthz`, the snapshot (encoded for the filter, JSON for
//! people), the cluster quota sync and its own Prometheus metrics.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use sluice_wire::quota_sync::{self, SyncRequest};

use crate::metrics::{self, Metrics};
use crate::quota::store::Store;
use crate::snapshot::Publisher;

#[derive(Clone)]
pub struct AppState {
    pub publisher: Arc<Publisher>,
    pub metrics: Arc<Metrics>,
    /// Present when `[quota]` is configured.
    pub quota: Option<Arc<Store>>,
}

/// Largest sync body read: `MAX_ENTRIES` entries with the longest keys, in JSON.
const MAX_SYNC_BODY_BYTES: usize = quota_sync::MAX_ENTRIES * (quota_sync::MAX_KEY_BYTES + 160);

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route(sluice_wire::PATH, get(snapshot))
        .route(
            quota_sync::PATH,
            post(quota_sync).layer(DefaultBodyLimit::max(MAX_SYNC_BODY_BYTES)),
        )
        .route("/metrics", get(prometheus))
        .with_state(state)
}

/// Adds one Envoy's unreported consumption to the cluster's totals in Redis and answers every
/// instance's totals. 400 for a request the filter should never send, 503 when Redis cannot be
/// reached in time (the filter then keeps its local view and reports again on its next tick),
/// 404 when this picker has no `[quota]` section.
async fn quota_sync(State(state): State<AppState>, body: Bytes) -> Response {
    let Some(store) = &state.quota else {
        return (
            StatusCode::NOT_FOUND,
            "quota sync is not configured: add a [quota] section\n",
        )
            .into_response();
    };
    let started = Instant::now();
    let request = match serde_json::from_slice::<SyncRequest>(&body)
        .map_err(|err| err.to_string())
        .and_then(|request| crate::quota::check(&request).map(|()| request))
    {
        Ok(request) => request,
        Err(why) => {
            state.metrics.quota_sync("invalid", 0, started.elapsed());
            return (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response();
        }
    };
    match store.sync(&request).await {
        Ok(response) => {
            state
                .metrics
                .quota_sync("ok", request.entries.len(), started.elapsed());
            match serde_json::to_vec(&response) {
                Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
                Err(err) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("cannot encode the totals: {err}\n"),
                )
                    .into_response(),
            }
        }
        Err(why) => {
            state
                .metrics
                .quota_sync("unavailable", request.entries.len(), started.elapsed());
            (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response()
        }
    }
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
            [(header::CONTENT_TYPE, sluice_wire::CONTENT_TYPE), no_cache],
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
