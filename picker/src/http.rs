//! The picker's main (filter-facing) HTTP surface: `/healthz`, the snapshot (encoded for the
//! filter, JSON for people), the tenancy snapshot, the cluster quota sync (with spend rows) and
//! its own Prometheus metrics. The admin API is not here: it has its own listeners (`admin`).

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use sluice_wire::quota_sync::{self, SyncRequest, SyncResponse};
use sluice_wire::tenancy::{self, MAX_NAME_BYTES};

use crate::metrics::{self, Metrics};
use crate::quota::store::Store;
use crate::snapshot::Publisher;
use crate::tenancy::service::{SnapshotError, Tenancy};

#[derive(Clone)]
pub struct AppState {
    pub publisher: Arc<Publisher>,
    pub metrics: Arc<Metrics>,
    /// Present when `[quota]` is configured.
    pub quota: Option<Arc<Store>>,
    /// Present when `[tenancy]` is configured.
    pub tenancy: Option<Arc<Tenancy>>,
}

/// Largest sync body read: `MAX_ENTRIES` entries with the longest keys and `MAX_SPEND_ENTRIES`
/// spend rows with the longest names, in JSON.
const MAX_SYNC_BODY_BYTES: usize = quota_sync::MAX_ENTRIES * (quota_sync::MAX_KEY_BYTES + 160)
    + quota_sync::MAX_SPEND_ENTRIES * (4 * MAX_NAME_BYTES + 320);

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route(sluice_wire::PATH, get(snapshot))
        .route(
            quota_sync::PATH,
            post(quota_sync).layer(DefaultBodyLimit::max(MAX_SYNC_BODY_BYTES)),
        )
        .route(tenancy::PATH, get(tenancy_snapshot))
        .route("/metrics", get(prometheus))
        .with_state(state)
}

/// Adds one Envoy's unreported consumption to the cluster's totals in Redis and answers every
/// instance's totals, then stores its spend rows. 400 for a request the filter should never send
/// (nothing applied; a spend row that cannot be stored is only dropped, see `store_spend`), 503 when Redis cannot be reached in time for the quota entries (nothing
/// applied: the filter keeps its local view and reports again on its next tick), 200 with
/// `spend_stored: false` when only the spend rows could not be stored (the filter reports them
/// again). Served when `[quota]` or `[tenancy]` is configured; quota entries need `[quota]`
/// (404 otherwise).
async fn quota_sync(State(state): State<AppState>, body: Bytes) -> Response {
    if state.quota.is_none() && state.tenancy.is_none() {
        return (
            StatusCode::NOT_FOUND,
            "quota sync is not configured: add a [quota] section\n",
        )
            .into_response();
    }
    let started = Instant::now();
    let request = match serde_json::from_slice::<SyncRequest>(&body)
        .map_err(|err| err.to_string())
        .and_then(|request| crate::quota::check(&request).map(|()| request))
        .and_then(|request| crate::spend::row::check_count(&request.spend).map(|()| request))
    {
        Ok(request) => request,
        Err(why) => {
            state.metrics.quota_sync("invalid", 0, started.elapsed());
            return (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response();
        }
    };
    let mut response = match &state.quota {
        Some(store) => match store.sync(&request).await {
            Ok(response) => {
                state
                    .metrics
                    .quota_sync("ok", request.entries.len(), started.elapsed());
                response
            }
            Err(why) => {
                state
                    .metrics
                    .quota_sync("unavailable", request.entries.len(), started.elapsed());
                return (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response();
            }
        },
        None if request.entries.is_empty() => SyncResponse::default(),
        None => {
            return (
                StatusCode::NOT_FOUND,
                "quota entries need a [quota] section (this picker only stores spend)\n",
            )
                .into_response();
        }
    };
    response.spend_stored = store_spend(&state, &request).await;
    match serde_json::to_vec(&response) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(err) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the totals: {err}\n"),
        )
            .into_response(),
    }
}

/// Stores a sync's spend rows; whether they were (true when there are none). Rows that can
/// never be stored (a name the admin API refuses, an hour in the future) are dropped, logged and
/// counted (`result="invalid"`): the filter would only send them again.
async fn store_spend(state: &AppState, request: &SyncRequest) -> bool {
    if request.spend.is_empty() {
        return true;
    }
    let Some(tenancy) = &state.tenancy else {
        // Kept by the filter until a picker with a [tenancy] store takes them.
        state.metrics.spend_rows("unstored", request.spend.len());
        return false;
    };
    let (rows, refused) = Tenancy::storable_spend(&request.spend);
    if let Some(first) = refused.first() {
        tracing::warn!(rows = refused.len(), "spend rows dropped: {first}");
        state.metrics.spend_rows("invalid", refused.len());
    }
    if rows.is_empty() {
        return true;
    }
    match tenancy.add_spend(&rows).await {
        Ok(()) => true,
        Err(why) => {
            tracing::warn!(rows = request.spend.len(), "spend rows not stored: {why}");
            state.metrics.spend_rows("unstored", request.spend.len());
            false
        }
    }
}

/// The tenancy snapshot (JSON) with `ETag: "<version>"`; `304` when the caller's
/// `If-None-Match` names the current version. 404 without a `[tenancy]` section; 503 when the
/// store cannot be read and was never read (the filters keep their last snapshot).
async fn tenancy_snapshot(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(tenancy) = &state.tenancy else {
        return (
            StatusCode::NOT_FOUND,
            "tenancy is not configured: add a [tenancy] section\n",
        )
            .into_response();
    };
    let body = match tenancy.snapshot().await {
        Ok(body) => body,
        Err(SnapshotError::Unavailable(why)) => {
            return (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response();
        }
        Err(SnapshotError::OverBounds(why)) => {
            tracing::error!("tenancy snapshot: {why}");
            return (StatusCode::INTERNAL_SERVER_ERROR, format!("{why}\n")).into_response();
        }
    };
    let etag = format!("\"{}\"", body.version);
    let etag_value = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"0\""));
    let no_cache = (header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if if_none_match(&headers, &etag) {
        return (
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag_value), no_cache],
        )
            .into_response();
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::ETAG, etag_value),
            no_cache,
        ],
        body.json.clone(),
    )
        .into_response()
}

/// Whether `If-None-Match` names `etag` (weak or strong) or is `*`.
fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
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
    use axum::http::{HeaderMap, HeaderValue, header};

    use super::{if_none_match, requested_format};

    #[test]
    fn if_none_match_names_the_version() {
        let mut headers = HeaderMap::new();
        assert!(!if_none_match(&headers, "\"7\""));
        for (value, matches) in [
            ("\"7\"", true),
            ("W/\"7\"", true),
            ("\"6\", \"7\"", true),
            ("*", true),
            ("\"8\"", false),
            ("7", false),
            ("\"70\"", false),
        ] {
            headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static(value));
            assert_eq!(if_none_match(&headers, "\"7\""), matches, "{value}");
        }
    }

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
