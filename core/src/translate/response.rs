//! A whole (non-streamed) successful JSON response of the target, in the client's shape.

mod to_anthropic;
mod to_openai;

use std::borrow::Cow;

use super::Shape;
use crate::error::GatewayError;

/// A whole (non-streamed) successful JSON response of the target, in the client's shape. Same
/// shape: the body as it is. Err: the target's body is unreadable
/// (`GatewayError::BadUpstreamResponse`, a 502).
///
/// An Anthropic response has no creation time: translated for an OpenAI client, its `created`
/// is 0 here; hosts with a clock call `response_at`.
pub fn response(target: Shape, client: Shape, body: &[u8]) -> Result<Vec<u8>, GatewayError> {
    response_at(target, client, body, 0)
}

/// `response`, with `created` (seconds since the Unix epoch) for the `created` field an OpenAI
/// client expects when the target (Anthropic) gives none.
pub fn response_at(
    target: Shape,
    client: Shape,
    body: &[u8],
    created: u64,
) -> Result<Vec<u8>, GatewayError> {
    match (target, client) {
        (Shape::OpenAiChat, Shape::OpenAiChat)
        | (Shape::AnthropicMessages, Shape::AnthropicMessages) => Ok(body.to_vec()),
        (Shape::AnthropicMessages, Shape::OpenAiChat) => to_openai::translate(body, created),
        (Shape::OpenAiChat, Shape::AnthropicMessages) => to_anthropic::translate(body),
    }
}

/// The error for a body that is not the response it should be: what was wrong (serde's
/// words, naming a field or the type expected), never the body's content.
fn unreadable(what: &str, err: &serde_json::Error) -> GatewayError {
    let reason = err.to_string();
    // serde quotes an unexpected string value (`invalid type: string "...", expected ...`):
    // everything between the first and the last double quote is the body's, and left out.
    let reason = match (reason.find('"'), reason.rfind('"')) {
        (Some(first), Some(last)) if first < last => format!(
            "{}\"…\"{}",
            reason.get(..first).unwrap_or_default(),
            reason.get(last.saturating_add(1)..).unwrap_or_default()
        ),
        _ => reason,
    };
    GatewayError::BadUpstreamResponse(format!("{what}: {reason}"))
}

/// Texts joined in order; one text is kept as it is.
fn joined<'a>(mut texts: Vec<Cow<'a, str>>) -> Option<Cow<'a, str>> {
    match texts.len() {
        0 => None,
        1 => texts.pop(),
        _ => Some(Cow::Owned(texts.concat())),
    }
}
