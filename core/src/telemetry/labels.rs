//! Label values. Every label takes a bounded set of values: fixed words here, and model names,
//! which the host caps per VM (the first `MAX_MODEL_LABELS` models it sees, then `other`).

use std::borrow::Cow;

use crate::api::Endpoint;
use crate::canonical::ApiKind;

/// `gen_ai.operation.name`: the conventions' well-known values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Chat Completions, Responses and Anthropic Messages.
    Chat,
    /// The legacy Completions API.
    TextCompletion,
    Embeddings,
}

impl Operation {
    pub fn of(api: ApiKind) -> Self {
        match api {
            ApiKind::ChatCompletions | ApiKind::Responses | ApiKind::Messages => Self::Chat,
            ApiKind::Completions => Self::TextCompletion,
            ApiKind::Embeddings => Self::Embeddings,
        }
    }

    pub fn value(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::TextCompletion => "text_completion",
            Self::Embeddings => "embeddings",
        }
    }
}

/// `gen_ai.provider.name`: the conventions use it to say which provider's telemetry flavor a
/// signal follows. Behind Sluice the serving model server may be anyone's, so this names the API
/// format the request was made in: `anthropic` for the Messages API, `openai` for the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    OpenAi,
    Anthropic,
}

impl Provider {
    pub fn of(api: ApiKind) -> Self {
        match api {
            ApiKind::Messages => Self::Anthropic,
            _ => Self::OpenAi,
        }
    }

    pub fn value(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
        }
    }
}

/// `gen_ai.token.type`. `cached` (prompt tokens served from the cache) is Sluice's own value,
/// used only on its exact counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenType {
    Input,
    Output,
    Cached,
}

impl TokenType {
    pub fn value(self) -> &'static str {
        match self {
            Self::Input => "input",
            Self::Output => "output",
            Self::Cached => "cached",
        }
    }
}

/// `error.type` of a request that reached a model server and failed. The list, as the
/// conventions ask instrumentations to document it: the upstream's HTTP status for an error
/// response (`429`, `500`...), `incomplete` for a response that ended before its end (a stream
/// the upstream cut, a client that went away), `_OTHER` for anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorType {
    /// An HTTP error status from the upstream (400 to 599).
    Status(u16),
    Incomplete,
    Other,
}

impl ErrorType {
    /// The error a response with this status is, if any.
    pub fn of_status(status: u16) -> Option<Self> {
        match status {
            200..=299 => None,
            400..=599 => Some(Self::Status(status)),
            _ => Some(Self::Other),
        }
    }

    pub fn value(self) -> Cow<'static, str> {
        match self {
            Self::Status(status) => Cow::Owned(status.to_string()),
            Self::Incomplete => Cow::Borrowed("incomplete"),
            Self::Other => Cow::Borrowed("_OTHER"),
        }
    }
}

/// Which API a request called (the request counter's `sluice_api` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ApiLabel {
    Chat,
    Completions,
    Embeddings,
    Responses,
    Messages,
    /// `GET /v1/models`, answered by the filter.
    Models,
    /// Any other path (passed through, or refused with `routing.unhandled_paths: reject`).
    #[default]
    Other,
}

impl ApiLabel {
    pub fn of(endpoint: Endpoint) -> Self {
        match endpoint {
            Endpoint::Inference(ApiKind::ChatCompletions) => Self::Chat,
            Endpoint::Inference(ApiKind::Completions) => Self::Completions,
            Endpoint::Inference(ApiKind::Embeddings) => Self::Embeddings,
            Endpoint::Inference(ApiKind::Responses) => Self::Responses,
            Endpoint::Inference(ApiKind::Messages) => Self::Messages,
            Endpoint::ListModels => Self::Models,
            Endpoint::Unhandled => Self::Other,
        }
    }

    pub fn value(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Completions => "completions",
            Self::Embeddings => "embeddings",
            Self::Responses => "responses",
            Self::Messages => "messages",
            Self::Models => "models",
            Self::Other => "other",
        }
    }
}

/// The class of the status the client got (`2xx`...), `none` when it got no response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusClass {
    Informational,
    Success,
    Redirection,
    ClientError,
    ServerError,
    None,
}

impl StatusClass {
    pub fn of(status: Option<u16>) -> Self {
        match status {
            Some(100..=199) => Self::Informational,
            Some(200..=299) => Self::Success,
            Some(300..=399) => Self::Redirection,
            Some(400..=499) => Self::ClientError,
            Some(500..=599) => Self::ServerError,
            _ => Self::None,
        }
    }

    pub fn value(self) -> &'static str {
        match self {
            Self::Informational => "1xx",
            Self::Success => "2xx",
            Self::Redirection => "3xx",
            Self::ClientError => "4xx",
            Self::ServerError => "5xx",
            Self::None => "none",
        }
    }
}

/// Longest model label kept, in bytes.
const MAX_MODEL_LABEL_BYTES: usize = 128;

/// A model name as a label value: characters Envoy stat names and Prometheus labels take
/// (others become `_`), at most 128 bytes.
pub fn model_label(model: &str) -> String {
    let mut out = String::with_capacity(model.len().min(MAX_MODEL_LABEL_BYTES));
    for c in model.chars() {
        if out.len() >= MAX_MODEL_LABEL_BYTES {
            break;
        }
        let keep = c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '/' | ':' | '.');
        out.push(if keep { c } else { '_' });
    }
    if out.is_empty() {
        out.push('_');
    }
    out
}

#[cfg(test)]
mod tests {
    #[cfg(target_family = "wasm")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn operations_and_providers_follow_the_api() {
        assert_eq!(Operation::of(ApiKind::Messages).value(), "chat");
        assert_eq!(Operation::of(ApiKind::Responses).value(), "chat");
        assert_eq!(
            Operation::of(ApiKind::Completions).value(),
            "text_completion"
        );
        assert_eq!(Operation::of(ApiKind::Embeddings).value(), "embeddings");
        assert_eq!(Provider::of(ApiKind::Messages).value(), "anthropic");
        assert_eq!(Provider::of(ApiKind::ChatCompletions).value(), "openai");
    }

    #[test]
    fn statuses_fall_into_bounded_classes_and_error_types() {
        assert_eq!(StatusClass::of(Some(200)).value(), "2xx");
        assert_eq!(StatusClass::of(Some(429)).value(), "4xx");
        assert_eq!(StatusClass::of(Some(503)).value(), "5xx");
        assert_eq!(StatusClass::of(Some(0)).value(), "none");
        assert_eq!(StatusClass::of(Some(999)).value(), "none");
        assert_eq!(StatusClass::of(None).value(), "none");
        assert_eq!(ErrorType::of_status(204), None);
        assert_eq!(
            ErrorType::of_status(503).map(|e| e.value()),
            Some("503".into())
        );
        assert_eq!(
            ErrorType::of_status(302).map(|e| e.value()),
            Some("_OTHER".into())
        );
        assert_eq!(ErrorType::Incomplete.value(), "incomplete");
    }

    #[test]
    fn api_labels_follow_the_endpoint() {
        let label = |path| ApiLabel::of(Endpoint::classify(path)).value();
        assert_eq!(label("/v1/chat/completions"), "chat");
        assert_eq!(label("/v1/completions"), "completions");
        assert_eq!(label("/v1/embeddings"), "embeddings");
        assert_eq!(label("/v1/responses"), "responses");
        assert_eq!(label("/v1/messages?beta=true"), "messages");
        assert_eq!(label("/v1/models"), "models");
        assert_eq!(label("/healthz"), "other");
    }

    #[test]
    fn model_labels_keep_safe_characters_and_a_bounded_length() {
        assert_eq!(
            model_label("meta-llama/Llama-3.1-8B-Instruct"),
            "meta-llama/Llama-3.1-8B-Instruct"
        );
        assert_eq!(model_label("gpt 4o\"x\u{e9}"), "gpt_4o_x_");
        assert_eq!(model_label(""), "_");
        assert_eq!(model_label(&"m".repeat(1000)).len(), 128);
    }
}
