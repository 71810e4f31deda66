//! Error responses, in the OpenAI shape (as vLLM renders it) or the Anthropic shape.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::json_response;

/// A failed request, independent of the API flavour it is reported in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    pub fn engine_stopped() -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "the engine stopped before the request finished".into(),
        }
    }
}

/// `{"error":{"message","type","param","code"}}` with vLLM's values: `type` is the Python
/// exception name for the status and `code` the status number.
#[derive(Debug)]
pub struct OpenAiError(pub ApiError);

impl From<ApiError> for OpenAiError {
    fn from(error: ApiError) -> Self {
        Self(error)
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let ApiError { status, message } = self.0;
        let kind = match status {
            StatusCode::BAD_REQUEST => "BadRequestError",
            StatusCode::NOT_FOUND => "NotFoundError",
            _ => "InternalServerError",
        };
        let body = json!({
            "error": {
                "message": message,
                "type": kind,
                "param": null,
                "code": status.as_u16(),
            }
        });
        json_response(status, &body)
    }
}

/// `{"type":"error","error":{"type","message"}}` with Anthropic's error types.
#[derive(Debug)]
pub struct AnthropicError(pub ApiError);

impl From<ApiError> for AnthropicError {
    fn from(error: ApiError) -> Self {
        Self(error)
    }
}

impl IntoResponse for AnthropicError {
    fn into_response(self) -> Response {
        let ApiError { status, message } = self.0;
        let kind = match status {
            StatusCode::BAD_REQUEST => "invalid_request_error",
            StatusCode::NOT_FOUND => "not_found_error",
            _ => "api_error",
        };
        let body = json!({
            "type": "error",
            "error": { "type": kind, "message": message },
        });
        json_response(status, &body)
    }
}
