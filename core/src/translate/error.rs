//! A target's error response in the client's error format, so each SDK raises the error it
//! would raise for its own provider (the SDKs pick the exception by status; the body gives the
//! message and type).

use serde_json::Value;

use super::Shape;
use crate::error::{anthropic_error_body, openai_error_body};

/// Longest upstream error message passed on (a provider may repeat a large part of the request).
const MAX_MESSAGE_CHARS: usize = 2000;

/// An error response body of the target (any status >= 400) in the client's error format
/// (OpenAI `{"error":{message,type,param,code}}`, Anthropic
/// `{"type":"error","error":{type,message}}`), keeping the message and mapping the type by
/// status (429 rate limit, 503 and 529 overloaded, ...). A body already in the client's format
/// is passed on as it is. Never fails: an unreadable body gets a generic message for the status.
pub fn error(target: Shape, client: Shape, status: u16, body: &[u8]) -> Vec<u8> {
    let read = serde_json::from_slice::<Value>(body).ok();
    let read = read.as_ref();
    if target == client && read.is_some_and(|doc| is_native(client, doc)) {
        return body.to_vec();
    }
    let message = read.and_then(message_of).map_or_else(
        || format!("The model provider answered HTTP {status} without a readable error message."),
        |message| message.chars().take(MAX_MESSAGE_CHARS).collect(),
    );
    let rendered = match client {
        Shape::OpenAiChat => {
            let (kind, status_code) = openai_kind(status);
            // An OpenAI-shaped body's own `param` and `code` are kept (a vLLM error's numeric
            // `code` is its status, not a code).
            let detail = read
                .filter(|_| target == Shape::OpenAiChat)
                .map(|doc| doc.get("error").filter(|e| e.is_object()).unwrap_or(doc));
            let string = |key| detail.and_then(|d| d.get(key)).and_then(Value::as_str);
            openai_error_body(
                &message,
                kind,
                string("param"),
                string("code").or(status_code),
            )
        }
        Shape::AnthropicMessages => anthropic_error_body(anthropic_kind(status), &message),
    };
    rendered.into_bytes()
}

/// Whether `doc` is already an error body of `shape`'s own format.
fn is_native(shape: Shape, doc: &Value) -> bool {
    let error = doc.get("error");
    let message = error
        .and_then(|e| e.get("message"))
        .is_some_and(Value::is_string);
    match shape {
        Shape::OpenAiChat => message,
        Shape::AnthropicMessages => {
            message
                && doc.get("type").and_then(Value::as_str) == Some("error")
                && error
                    .and_then(|e| e.get("type"))
                    .is_some_and(Value::is_string)
        }
    }
}

/// The message of an error body of any common shape: OpenAI's and Anthropic's
/// `error.message`, `error` as a bare string, a flat `message` (vLLM's older errors), or a
/// `detail` string (FastAPI servers).
fn message_of(doc: &Value) -> Option<&str> {
    let error = doc.get("error");
    error
        .and_then(|e| e.get("message"))
        .or(error)
        .or_else(|| doc.get("message"))
        .or_else(|| doc.get("detail"))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|m| !m.is_empty())
}

/// OpenAI's error `type` and `code` for a status.
fn openai_kind(status: u16) -> (&'static str, Option<&'static str>) {
    match status {
        401 => ("invalid_request_error", Some("invalid_api_key")),
        403 => ("invalid_request_error", Some("permission_denied")),
        404 => ("invalid_request_error", Some("not_found")),
        413 => ("invalid_request_error", Some("request_too_large")),
        429 => ("requests", Some("rate_limit_exceeded")),
        503 | 529 => ("server_error", Some("overloaded")),
        400..=499 => ("invalid_request_error", None),
        _ => ("server_error", None),
    }
}

/// Anthropic's error `type` for a status (the types its API documents per status).
fn anthropic_kind(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}
