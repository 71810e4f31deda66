//! Translation tests on hand-written copies of the providers' documented shapes (fixtures/):
//! each direction, round trips, the canonical request and usage every later stage reads, and
//! every field that does not translate.

mod errors;
mod request_to_anthropic;
mod request_to_openai;
mod responses;
mod round_trips;
mod untranslatable;

use serde_json::Value;

use super::{Shape, TargetRequest};

const OPENAI_REQUEST: &str = include_str!("fixtures/openai_request_tools_images.json");
const ANTHROPIC_REQUEST: &str = include_str!("fixtures/anthropic_request_tools_thinking.json");

const CLAUDE: TargetRequest<'static> = TargetRequest {
    shape: Shape::AnthropicMessages,
    model: "claude-sonnet-4-5-20250929",
    default_max_tokens: 4096,
};

const GPT: TargetRequest<'static> = TargetRequest {
    shape: Shape::OpenAiChat,
    model: "gpt-4.1-2025-04-14",
    default_max_tokens: 4096,
};

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|err| {
        panic!("{err}: {}", String::from_utf8_lossy(bytes));
    })
}

/// `body` (an OpenAI request) translated for an Anthropic target.
fn to_anthropic(body: &str) -> Value {
    json(&super::request(Shape::OpenAiChat, body.as_bytes(), &CLAUDE).unwrap())
}

/// `body` (an Anthropic request) translated for an OpenAI target.
fn to_openai(body: &str) -> Value {
    json(&super::request(Shape::AnthropicMessages, body.as_bytes(), &GPT).unwrap())
}
