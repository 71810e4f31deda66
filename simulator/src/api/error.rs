//! Error responses in every format the simulator speaks: the OpenAI shape as vLLM renders it,
//! the OpenAI shape as api.openai.com renders it, and the Anthropic shape.

use std::time::Duration;

use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::json_response;
use crate::config::{Config, Provider};

/// OpenAI's client honours it before `retry-after`.
pub const RETRY_AFTER_MS: HeaderName = HeaderName::from_static("retry-after-ms");

/// A failed request, independent of the API format it is reported in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// What went wrong, where a format tells cases of one status apart.
    pub reason: Reason,
    /// Sent as `retry-after` in seconds (OpenAI-shaped also `retry-after-ms`).
    pub retry_after: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Nothing more than the status says.
    Other,
    UnknownModel,
    BadApiKey,
    /// Past the requests-per-minute limit.
    RequestLimit,
    /// Past the tokens-per-minute limit.
    TokenLimit,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            reason: Reason::Other,
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn unknown_model(model: &str) -> Self {
        Self {
            reason: Reason::UnknownModel,
            ..Self::not_found(format!("The model `{model}` does not exist."))
        }
    }

    pub fn engine_stopped() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the engine stopped before the request finished",
        )
    }

    pub fn with_reason(self, reason: Reason) -> Self {
        Self { reason, ..self }
    }

    pub fn with_retry_after(self, retry_after: Option<Duration>) -> Self {
        Self {
            retry_after,
            ..self
        }
    }
}

/// The error formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorFormat {
    /// `{"error":{"message","type","param","code"}}` with vLLM's values: `type` the Python
    /// exception name for the status, `code` the status number.
    Vllm,
    /// The same envelope with OpenAI's values: `type` such as `invalid_request_error`, `code` a
    /// string such as `model_not_found` or null.
    OpenAi,
    /// `{"type":"error","error":{"type","message"}}` with Anthropic's error types.
    Anthropic,
}

impl ErrorFormat {
    /// The format of errors on `path`: a provider's own everywhere; vLLM's OpenAI shape but on
    /// its Anthropic route.
    pub fn for_path(config: &Config, path: &str) -> Self {
        match config.provider.as_ref().map(|provider| provider.api) {
            Some(Provider::Openai) => Self::OpenAi,
            Some(Provider::Anthropic) => Self::Anthropic,
            None if path == "/v1/messages" => Self::Anthropic,
            None => Self::Vllm,
        }
    }

    pub fn render(self, error: &ApiError) -> Response {
        let body = match self {
            Self::Vllm => vllm_body(error),
            Self::OpenAi => openai_body(error),
            Self::Anthropic => anthropic_body(error),
        };
        let mut response = json_response(error.status, &body);
        if let Some(wait) = error.retry_after {
            let headers = response.headers_mut();
            // Whole seconds, rounded up, so that a client waiting that long is never early.
            let seconds = u64::try_from(wait.as_millis().div_ceil(1000)).unwrap_or(u64::MAX);
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
            if self == Self::OpenAi {
                let millis = u64::try_from(wait.as_micros().div_ceil(1000)).unwrap_or(u64::MAX);
                headers.insert(RETRY_AFTER_MS, HeaderValue::from(millis));
            }
        }
        // Kept so that the API gate can render the error again in a provider's format.
        response.extensions_mut().insert(error.clone());
        response
    }
}

fn vllm_body(error: &ApiError) -> Value {
    let kind = match error.status {
        StatusCode::BAD_REQUEST => "BadRequestError",
        StatusCode::NOT_FOUND => "NotFoundError",
        StatusCode::TOO_MANY_REQUESTS => "RateLimitError",
        status if status.is_client_error() => "BadRequestError",
        _ => "InternalServerError",
    };
    json!({
        "error": {
            "message": error.message,
            "type": kind,
            "param": null,
            "code": error.status.as_u16(),
        }
    })
}

fn openai_body(error: &ApiError) -> Value {
    let (kind, code) = match (error.reason, error.status.as_u16()) {
        (Reason::UnknownModel, _) => ("invalid_request_error", Some("model_not_found")),
        (Reason::BadApiKey, _) => ("invalid_request_error", Some("invalid_api_key")),
        (Reason::RequestLimit, _) => ("requests", Some("rate_limit_exceeded")),
        (Reason::TokenLimit, _) => ("tokens", Some("rate_limit_exceeded")),
        (Reason::Other, 429) => ("requests", Some("rate_limit_exceeded")),
        (Reason::Other, 400..=499) => ("invalid_request_error", None),
        (Reason::Other, _) => ("server_error", None),
    };
    json!({
        "error": {
            "message": error.message,
            "type": kind,
            "param": null,
            "code": code,
        }
    })
}

fn anthropic_body(error: &ApiError) -> Value {
    let kind = match error.status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    };
    json!({
        "type": "error",
        "error": { "type": kind, "message": error.message },
    })
}

/// A handler error on an OpenAI-compatible route, rendered as vLLM renders it.
#[derive(Debug)]
pub struct OpenAiError(pub ApiError);

impl From<ApiError> for OpenAiError {
    fn from(error: ApiError) -> Self {
        Self(error)
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        ErrorFormat::Vllm.render(&self.0)
    }
}

/// A handler error on the Anthropic route.
#[derive(Debug)]
pub struct AnthropicError(pub ApiError);

impl From<ApiError> for AnthropicError {
    fn from(error: ApiError) -> Self {
        Self(error)
    }
}

impl IntoResponse for AnthropicError {
    fn into_response(self) -> Response {
        ErrorFormat::Anthropic.render(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(format: ErrorFormat, error: &ApiError) -> Value {
        match format {
            ErrorFormat::Vllm => vllm_body(error),
            ErrorFormat::OpenAi => openai_body(error),
            ErrorFormat::Anthropic => anthropic_body(error),
        }
    }

    #[test]
    fn each_format_names_the_error_its_own_way() {
        let unknown = ApiError::unknown_model("x");
        assert_eq!(
            body(ErrorFormat::Vllm, &unknown)["error"]["type"],
            "NotFoundError"
        );
        assert_eq!(
            body(ErrorFormat::OpenAi, &unknown)["error"],
            json!({
                "message": "The model `x` does not exist.",
                "type": "invalid_request_error",
                "param": null,
                "code": "model_not_found",
            })
        );
        assert_eq!(
            body(ErrorFormat::Anthropic, &unknown)["error"]["type"],
            "not_found_error"
        );
        let key = ApiError::new(StatusCode::UNAUTHORIZED, "no").with_reason(Reason::BadApiKey);
        assert_eq!(
            body(ErrorFormat::OpenAi, &key)["error"]["code"],
            "invalid_api_key"
        );
        assert_eq!(
            body(ErrorFormat::Anthropic, &key)["error"]["type"],
            "authentication_error"
        );
        let tokens =
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, "slow").with_reason(Reason::TokenLimit);
        assert_eq!(
            body(ErrorFormat::OpenAi, &tokens)["error"]["type"],
            "tokens"
        );
        let overloaded = ApiError::new(StatusCode::from_u16(529).unwrap(), "busy");
        assert_eq!(
            body(ErrorFormat::Anthropic, &overloaded)["error"]["type"],
            "overloaded_error"
        );
        assert_eq!(
            body(ErrorFormat::OpenAi, &overloaded)["error"],
            json!({ "message": "busy", "type": "server_error", "param": null, "code": null })
        );
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up_and_openai_adds_milliseconds() {
        let error = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "wait")
            .with_retry_after(Some(Duration::from_millis(1500)));
        let openai = ErrorFormat::OpenAi.render(&error);
        assert_eq!(openai.headers()["retry-after"], "2");
        assert_eq!(openai.headers()["retry-after-ms"], "1500");
        let anthropic = ErrorFormat::Anthropic.render(&error);
        assert_eq!(anthropic.headers()["retry-after"], "2");
        assert!(anthropic.headers().get("retry-after-ms").is_none());
        assert_eq!(
            anthropic.extensions().get::<ApiError>(),
            Some(&error),
            "kept for the gate"
        );
    }
}
