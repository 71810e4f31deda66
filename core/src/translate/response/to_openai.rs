//! An Anthropic Messages response as an OpenAI chat completion.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{joined, unreadable};
use crate::error::GatewayError;
use crate::translate::mapping::{REFUSAL_MESSAGE, StopReason, UsageFigures};
use crate::translate::wire::{AnthropicBlock, OpenAiFunctionCall, OpenAiToolCall};

pub(super) fn translate(body: &[u8], created: u64) -> Result<Vec<u8>, GatewayError> {
    let message: WireMessage<'_> = serde_json::from_slice(body)
        .map_err(|err| unreadable("an Anthropic message was expected", &err))?;
    let mut texts = Vec::new();
    let mut thinking = Vec::new();
    let mut tool_calls = Vec::new();
    for (i, block) in message.content.into_iter().enumerate() {
        let AnthropicBlock {
            kind,
            text,
            thinking: thought,
            id,
            name,
            input,
        } = block;
        let kind_shown = || kind.chars().take(40).collect::<String>();
        let missing = |field: &str| {
            GatewayError::BadUpstreamResponse(format!(
                "content[{i}] (a `{}` block) has no `{field}`",
                kind_shown()
            ))
        };
        match kind.as_ref() {
            "text" => texts.push(text.ok_or_else(|| missing("text"))?),
            "thinking" => thinking.push(thought.ok_or_else(|| missing("thinking"))?),
            // Encrypted reasoning: nothing a client of the OpenAI API could read or send back.
            "redacted_thinking" => {}
            "tool_use" => tool_calls.push(OpenAiToolCall {
                id: id.ok_or_else(|| missing("id"))?,
                kind: "function",
                function: OpenAiFunctionCall {
                    name: name.ok_or_else(|| missing("name"))?,
                    arguments: input.map_or("{}", RawValue::get),
                },
            }),
            _ => {
                return Err(GatewayError::BadUpstreamResponse(format!(
                    "content[{i}] is a `{}` block, which has no counterpart in the OpenAI \
                     Chat Completions API",
                    kind_shown()
                )));
            }
        }
    }
    let stop = message
        .stop_reason
        .as_deref()
        .and_then(StopReason::from_anthropic)
        .unwrap_or(StopReason::EndTurn);
    let completion = Completion {
        id: message.id,
        object: "chat.completion",
        created,
        model: message.model,
        choices: [Choice {
            index: 0,
            message: Message {
                role: "assistant",
                content: joined(texts),
                refusal: (stop == StopReason::Refusal).then_some(REFUSAL_MESSAGE),
                reasoning_content: joined(thinking),
                tool_calls,
            },
            logprobs: None,
            finish_reason: stop.openai(),
        }],
        usage: message.usage.map(|usage| {
            let figures = UsageFigures::from_anthropic(
                usage.input_tokens,
                usage.cache_read_input_tokens.unwrap_or(0),
                usage.cache_creation_input_tokens.unwrap_or(0),
                usage.output_tokens,
            );
            Usage {
                prompt_tokens: figures.openai_prompt(),
                completion_tokens: figures.output,
                total_tokens: figures.openai_total(),
                prompt_tokens_details: PromptDetails {
                    cached_tokens: figures.cache_read,
                },
            }
        }),
    };
    serde_json::to_vec(&completion)
        .map_err(|_| GatewayError::Internal("writing the translated response"))
}

#[derive(Debug, Deserialize)]
struct WireMessage<'a> {
    #[serde(borrow, default)]
    id: Cow<'a, str>,
    #[serde(borrow, default)]
    model: Cow<'a, str>,
    #[serde(borrow)]
    content: Vec<AnthropicBlock<'a>>,
    #[serde(borrow, default)]
    stop_reason: Option<Cow<'a, str>>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
struct WireUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
}

#[derive(Debug, Serialize)]
struct Completion<'a> {
    id: Cow<'a, str>,
    object: &'static str,
    created: u64,
    model: Cow<'a, str>,
    choices: [Choice<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
}

#[derive(Debug, Serialize)]
struct Choice<'a> {
    index: u32,
    message: Message<'a>,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Debug, Serialize)]
struct Message<'a> {
    role: &'static str,
    content: Option<Cow<'a, str>>,
    refusal: Option<&'static str>,
    /// The model's thinking, in the field OpenAI-compatible servers (vLLM, DeepSeek) use.
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<OpenAiToolCall<'a>>,
}

#[derive(Debug, Serialize)]
struct Usage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: PromptDetails,
}

#[derive(Debug, Serialize)]
struct PromptDetails {
    cached_tokens: u64,
}
