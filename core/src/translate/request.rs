//! A client's request body as its target should receive it: the same shape with only `model`
//! replaced, or translated into the target's shape (`to_anthropic`, `to_openai`).
//!
//! Translation reads the client's raw top-level members (`TopLevel`, the same parse
//! `api::parse` makes) and typed views of the members it rewrites; every top-level member is
//! accounted for: translated, a no-op value of a field the target lacks (`n: 1`), or a 400
//! naming it. Nothing is dropped without the module documentation saying so.

mod to_anthropic;
mod to_openai;

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use super::Shape;
use crate::error::GatewayError;
use crate::json::{Edit, TopLevel, splice};

/// Where a request goes: what `request` needs to know of the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetRequest<'a> {
    /// The target's API shape.
    pub shape: Shape,
    /// The upstream model name to put in the body.
    pub model: &'a str,
    /// Anthropic requires `max_tokens`: used when the client gave none.
    pub default_max_tokens: u64,
}

/// The client's request body (in `client` shape) as the target should receive it. Same shape:
/// only `model` is replaced (the rest byte for byte). Errors: a 400 naming the field that has
/// no counterpart in the target's API (`GatewayError::Untranslatable`), or the field that
/// cannot be read.
pub fn request(
    client: Shape,
    body: &[u8],
    target: &TargetRequest<'_>,
) -> Result<Vec<u8>, GatewayError> {
    let top = TopLevel::parse(body)?;
    request_with(client, body, &top, target)
}

/// `request` for a body already parsed (`api::parse`'s `ParsedRequest::top`, parsed from
/// `body`), so it is not parsed again.
pub fn request_with(
    client: Shape,
    body: &[u8],
    top: &TopLevel<'_>,
    target: &TargetRequest<'_>,
) -> Result<Vec<u8>, GatewayError> {
    match (client, target.shape) {
        (Shape::OpenAiChat, Shape::OpenAiChat)
        | (Shape::AnthropicMessages, Shape::AnthropicMessages) => {
            Ok(with_model(body, top, target.model))
        }
        (Shape::OpenAiChat, Shape::AnthropicMessages) => to_anthropic::translate(top, target),
        (Shape::AnthropicMessages, Shape::OpenAiChat) => to_openai::translate(top, target),
    }
}

/// `body` with its `model` value replaced and every other byte kept.
fn with_model(body: &[u8], top: &TopLevel<'_>, model: &str) -> Vec<u8> {
    let value = json_string(model);
    match top.value_range("model", body) {
        Some(range) => splice(
            body,
            &[Edit {
                range,
                bytes: value.into_bytes(),
            }],
        ),
        // No `model` member (or a body other than the one parsed): the object written again.
        None => top.with_fields(&[("model", &value)]),
    }
}

/// `text` as a JSON string literal.
fn json_string(text: &str) -> String {
    // Serializing a string cannot fail.
    serde_json::to_string(text).unwrap_or_default()
}

/// A 400 for a field of the client's request that the target's API has no counterpart for.
fn untranslatable(param: impl Into<String>, reason: impl Into<String>) -> GatewayError {
    GatewayError::Untranslatable {
        param: param.into(),
        reason: reason.into(),
    }
}

/// A field the target's API lacks, accepted only with a value that asks for nothing (`n: 1`,
/// `logprobs: false`): `null` and the values `no_op` accepts pass, any other (or one that does
/// not read as JSON, like a number past f64's range) is a 400.
fn only_no_op(
    top: &TopLevel<'_>,
    key: &str,
    no_op: impl Fn(&Value) -> bool,
    reason: &str,
) -> Result<(), GatewayError> {
    let Some(raw) = top.raw(key) else {
        return Ok(());
    };
    match serde_json::from_str::<Value>(raw.get()) {
        Ok(value) if value.is_null() || no_op(&value) => Ok(()),
        _ => Err(untranslatable(key, reason)),
    }
}

fn is_zero(value: &Value) -> bool {
    value.as_f64().is_some_and(|v| v == 0.0)
}

/// A string or an array of strings (OpenAI `stop`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany<'a> {
    One(#[serde(borrow)] Cow<'a, str>),
    Many(#[serde(borrow)] Vec<Cow<'a, str>>),
}

impl<'a> OneOrMany<'a> {
    fn into_vec(self) -> Vec<Cow<'a, str>> {
        match self {
            Self::One(one) => vec![one],
            Self::Many(many) => many,
        }
    }
}

/// Anthropic's thinking budget (`budget_tokens`) for each OpenAI `reasoning_effort`; going
/// back, a budget reads as the level whose budget is nearest (`effort_for_budget`).
const EFFORT_BUDGETS: [(&str, u64); 3] = [("low", 1024), ("medium", 4096), ("high", 16384)];

/// Anthropic's smallest thinking budget.
const MIN_THINKING_BUDGET: u64 = 1024;

fn budget_for_effort(effort: &str) -> Option<u64> {
    EFFORT_BUDGETS
        .iter()
        .find(|(name, _)| *name == effort)
        .map(|(_, budget)| *budget)
}

fn effort_for_budget(budget: u64) -> &'static str {
    // The geometric midpoints between the levels' budgets (1024, 4096, 16384) separate them.
    if budget < 2048 {
        "low"
    } else if budget < 8192 {
        "medium"
    } else {
        "high"
    }
}
