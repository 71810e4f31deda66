//! The gate every API request passes (every path but /admin, /health and /metrics): it counts
//! the request, applies the injected fault, checks the provider's key, and on the way out
//! renders errors in the provider's format, adds rate-limit headers and counts the outcome.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt, TryStreamExt, stream};

use super::SharedState;
use super::error::{ApiError, ErrorFormat};
use crate::connection::ConnectionHandle;
use crate::faults::Effect;
use crate::traffic::Traffic;

/// Set on a request by a `cut_after_tokens` fault: streams fail after this many tokens.
#[derive(Debug, Clone, Copy)]
pub struct CutAfterTokens(pub u32);

pub(super) async fn gate(
    State(state): State<SharedState>,
    mut request: Request,
    next: Next,
) -> Response {
    state.traffic.received();
    let format = ErrorFormat::for_path(&state.config, request.uri().path());
    let connection = request
        .extensions()
        .get::<ConnectInfo<ConnectionHandle>>()
        .map(|ConnectInfo(handle)| handle.clone());

    let mut cut = false;
    if let Some(fault) = state.faults.next_request() {
        if let Some(delay) = fault.first_byte_delay {
            tokio::time::sleep(delay).await;
        }
        match fault.effect {
            Effect::None => {}
            Effect::Reset | Effect::Dead => return reset(connection.as_ref(), &state.traffic),
            Effect::Status {
                status,
                retry_after,
            } => {
                let error = ApiError::new(status, format!("injected fault: status {status}"))
                    .with_retry_after(retry_after);
                return finish(&state, format.render(&error));
            }
            Effect::CutAfterTokens(tokens) => {
                request.extensions_mut().insert(CutAfterTokens(tokens));
                cut = true;
            }
        }
    }
    if let Some(provider) = &state.provider {
        if let Err(error) = provider.authenticate(request.headers()) {
            return finish(&state, format.render(&error));
        }
    }

    let mut response = next.run(request).await;
    if state.provider.is_some() {
        if let Some(error) = response.extensions().get::<ApiError>() {
            response = format.render(&error.clone());
        }
    }
    let streamed = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"text/event-stream"));
    if cut && !streamed && response.status().is_success() {
        response = cut_in_half(response, &state.traffic).await;
    } else if streamed {
        response = count_cuts(response, &state.traffic);
    }
    finish(&state, response)
}

/// Closes the request's connection without a response. The response returned is never sent:
/// the killed connection fails its first write.
fn reset(connection: Option<&ConnectionHandle>, traffic: &Traffic) -> Response {
    traffic.reset();
    match connection {
        Some(connection) => connection.kill(),
        // Only a server not started by `serve` lacks connection handles.
        None => tracing::error!("no connection handle: cannot reset the connection"),
    }
    ().into_response()
}

/// Rate-limit headers and the outcome count, on every answer.
fn finish(state: &SharedState, mut response: Response) -> Response {
    if let Some(provider) = &state.provider {
        provider.add_rate_limit_headers(response.headers_mut());
    }
    state.traffic.answered(response.status().as_u16());
    response
}

/// Counts a stream that fails midway (a cut fault or `--cut-streams-after`).
fn count_cuts(response: Response, traffic: &Arc<Traffic>) -> Response {
    let traffic = Arc::clone(traffic);
    let (parts, body) = response.into_parts();
    let body = body.into_data_stream().inspect_err(move |_| traffic.cut());
    Response::from_parts(parts, Body::from_stream(body))
}

/// Sends the first half of a JSON body, then fails: the connection closes mid-response.
async fn cut_in_half(response: Response, traffic: &Arc<Traffic>) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::warn!("cannot read the response to cut it: {error}");
            Bytes::new()
        }
    };
    let half = bytes.slice(..bytes.len() / 2);
    parts.headers.remove(CONTENT_LENGTH);
    let failure = async {
        // Lets hyper flush the head and the half before the failure aborts the connection.
        tokio::task::yield_now().await;
        Err(std::io::Error::other(
            "response cut (cut_after_tokens fault)",
        ))
    };
    let chunks = stream::iter([Ok(half)]).chain(stream::once(failure));
    let response = Response::from_parts(parts, Body::from_stream(chunks));
    count_cuts(response, traffic)
}
