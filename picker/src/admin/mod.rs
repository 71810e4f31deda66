//! The admin API (`/admin/v1/...`), served only on the `[admin]` listeners and only with the
//! admin token: tenants, projects, virtual keys and the spend report. docs/admin-api.md lists
//! every route.

pub mod auth;
pub mod error;
pub mod routes;
pub mod spend;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Serialize;
use sluice_wire::admin::PREFIX;

use self::error::ApiError;
use crate::metrics::Metrics;
use crate::tenancy::service::Tenancy;

/// Largest admin request body: a tenant with 256 models' limits is far below.
const MAX_BODY_BYTES: usize = 1 << 20;

#[derive(Clone)]
pub struct AdminState {
    pub tenancy: Arc<Tenancy>,
    pub metrics: Arc<Metrics>,
    /// SHA-256 of the admin token.
    pub token_sha256: [u8; 32],
}

pub fn router(state: AdminState) -> Router {
    let routes = Router::new()
        .route("/tenants", get(routes::list_tenants))
        .route(
            "/tenants/{tenant}",
            get(routes::get_tenant)
                .put(routes::put_tenant)
                .delete(routes::delete_tenant),
        )
        .route(
            "/tenants/{tenant}/projects/{project}",
            put(routes::put_project).delete(routes::delete_project),
        )
        .route("/keys", get(routes::list_keys).post(routes::create_key))
        .route(
            "/keys/{id}",
            get(routes::get_key)
                .patch(routes::update_key)
                .delete(routes::revoke_key),
        )
        .route("/keys/{id}/rotate", post(routes::rotate_key))
        .route("/spend", get(spend::spend));
    Router::new()
        .nest(PREFIX, routes)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // Last, so it runs first, on every route and the fallbacks.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such admin route: see docs/admin-api.md")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid",
        "this method is not allowed on this route",
    )
}

/// A JSON answer.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
        Err(err) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the answer: {err}\n"),
        )
            .into_response(),
    }
}
