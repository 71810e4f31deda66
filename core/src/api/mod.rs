//! The client-facing APIs: which endpoint a request is for, and one normalizer per API shape
//! that turns its body into the canonical request.

mod anthropic_messages;
mod common;
pub(crate) mod content;
mod openai_chat;
mod openai_completions;
mod openai_responses;

use crate::canonical::{ApiKind, CanonicalRequest};
use crate::error::{ApiFlavor, GatewayError};
use crate::json::TopLevel;

/// What a request path is, for the filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// An inference API: the body is read and normalized (POST).
    Inference(ApiKind),
    /// `GET /v1/models`, answered by the gateway from its configuration.
    ListModels,
    /// Anything else.
    Unhandled,
}

impl Endpoint {
    pub fn classify(path: &str) -> Self {
        let path = path.split(['?', '#']).next().unwrap_or(path);
        let path = path.strip_suffix('/').unwrap_or(path);
        match path {
            "/v1/chat/completions" => Self::Inference(ApiKind::ChatCompletions),
            "/v1/completions" => Self::Inference(ApiKind::Completions),
            "/v1/embeddings" => Self::Inference(ApiKind::Embeddings),
            "/v1/responses" => Self::Inference(ApiKind::Responses),
            "/v1/messages" => Self::Inference(ApiKind::Messages),
            "/v1/models" => Self::ListModels,
            _ => Self::Unhandled,
        }
    }

    /// The one method this endpoint accepts.
    pub fn method(self) -> &'static str {
        match self {
            Self::Inference(_) => "POST",
            Self::ListModels | Self::Unhandled => "GET",
        }
    }
}

impl ApiKind {
    pub fn flavor(self) -> ApiFlavor {
        match self {
            Self::Messages => ApiFlavor::Anthropic,
            _ => ApiFlavor::OpenAi,
        }
    }
}

/// A request body, parsed once: its raw top-level fields (to rewrite some and pass the rest on
/// byte for byte) and the canonical request every stage reads.
#[derive(Debug)]
pub struct ParsedRequest<'a> {
    pub top: TopLevel<'a>,
    pub request: CanonicalRequest<'a>,
}

/// Parses and normalizes `body` for `api`. Errors name the offending field.
pub fn parse(api: ApiKind, body: &[u8]) -> Result<ParsedRequest<'_>, GatewayError> {
    let top = TopLevel::parse(body)?;
    let mut request = match api {
        ApiKind::ChatCompletions => openai_chat::normalize(&top),
        ApiKind::Completions => openai_completions::normalize_completions(&top),
        ApiKind::Embeddings => openai_completions::normalize_embeddings(&top),
        ApiKind::Responses => openai_responses::normalize(&top),
        ApiKind::Messages => anthropic_messages::normalize(&top),
    }?;
    request.prefix_hash = request.compute_prefix_hash();
    Ok(ParsedRequest { top, request })
}

#[cfg(test)]
mod tests;
