//! The picker's HTTP surface.

use axum::Router;
use axum::routing::get;

pub fn router() -> Router {
    Router::new().route("/healthz", get(healthz))
}

/// Liveness: the process is up and its configuration loaded.
async fn healthz() -> &'static str {
    "ok\n"
}
