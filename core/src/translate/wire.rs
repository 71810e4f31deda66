//! Wire shapes more than one translation writes or reads: an OpenAI tool call as a whole
//! message carries it (requests and JSON responses), and an Anthropic response's content block
//! (a whole message's, and a stream's `content_block_start`).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// An OpenAI assistant message's tool call.
#[derive(Debug, Serialize)]
pub(super) struct OpenAiToolCall<'a> {
    pub id: Cow<'a, str>,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: OpenAiFunctionCall<'a>,
}

#[derive(Debug, Serialize)]
pub(super) struct OpenAiFunctionCall<'a> {
    pub name: Cow<'a, str>,
    /// The call's arguments: an `input` object's JSON text, as it was written.
    pub arguments: &'a str,
}

/// A content block of an Anthropic response (text, thinking, tool use...).
#[derive(Debug, Deserialize)]
pub(super) struct AnthropicBlock<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    #[serde(borrow, default)]
    pub text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub thinking: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub input: Option<&'a RawValue>,
}
