//! The admin routes, on the API's own port and untouched by faults: `/admin/faults` switches
//! faults at run time, `/admin/stats` counts the API requests and their outcomes.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::{SharedState, json_response};
use crate::connection::ConnectionHandle;
use crate::faults::FaultSpec;

/// `PUT /admin/faults`: replaces the fault (the body is a `FaultSpec`); answers with it, or 400
/// naming what is wrong. Switching to `dead` closes every open connection but this one.
pub(super) async fn set_fault(
    State(state): State<SharedState>,
    connection: Option<Extension<ConnectInfo<ConnectionHandle>>>,
    body: Bytes,
) -> Response {
    let spec = match serde_json::from_slice::<FaultSpec>(&body) {
        Ok(spec) => spec,
        Err(error) => return admin_error(format!("invalid fault: {error}")),
    };
    match state.faults.set(spec) {
        Ok(spec) => {
            if spec.dead {
                let asker = connection.map(|Extension(ConnectInfo(handle))| handle);
                state.connections.kill_all_except(asker.as_ref());
            }
            tracing::info!(fault = ?spec, "fault set");
            json_response(StatusCode::OK, &json!({ "fault": spec }))
        }
        Err(error) => admin_error(format!("invalid fault: {error}")),
    }
}

/// `GET /admin/faults`: the current fault (`count`: the requests it still applies to), or null.
pub(super) async fn get_fault(State(state): State<SharedState>) -> Response {
    json_response(StatusCode::OK, &json!({ "fault": state.faults.current() }))
}

/// `DELETE /admin/faults`: back to normal service.
pub(super) async fn clear_fault(State(state): State<SharedState>) -> Response {
    state.faults.clear();
    tracing::info!("fault cleared");
    json_response(StatusCode::OK, &json!({ "fault": null }))
}

/// `GET /admin/stats`: `{"received", "answered": {"<status>": n}, "reset", "cut", "refused"}`.
pub(super) async fn stats(State(state): State<SharedState>) -> Response {
    json_response(StatusCode::OK, &state.traffic.to_json())
}

/// `DELETE /admin/stats`: zeroes the counts.
pub(super) async fn clear_stats(State(state): State<SharedState>) -> Response {
    state.traffic.clear();
    json_response(StatusCode::OK, &state.traffic.to_json())
}

fn admin_error(message: String) -> Response {
    json_response(StatusCode::BAD_REQUEST, &json!({ "error": message }))
}
