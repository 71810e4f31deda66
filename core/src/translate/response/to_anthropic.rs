//! An OpenAI chat completion as an Anthropic Messages response.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::unreadable;
use crate::error::GatewayError;
use crate::translate::mapping::{StopReason, UsageFigures, arguments_object};

pub(super) fn translate(body: &[u8]) -> Result<Vec<u8>, GatewayError> {
    let completion: WireCompletion<'_> = serde_json::from_slice(body)
        .map_err(|err| unreadable("an OpenAI chat completion was expected", &err))?;
    // The request asked for one choice (`n` > 1 does not translate).
    let Some(choice) = completion.choices.into_iter().next() else {
        return Err(GatewayError::BadUpstreamResponse(
            "the chat completion has no choices".into(),
        ));
    };
    let message = choice.message;
    let mut content = Vec::new();
    // Thinking first, as Anthropic orders a turn. OpenAI-compatible servers name it
    // `reasoning_content` (vLLM before 0.10, DeepSeek) or `reasoning` (vLLM since).
    if let Some(thinking) = message
        .reasoning_content
        .or(message.reasoning)
        .filter(|t| !t.is_empty())
    {
        content.push(Block::Thinking {
            thinking,
            // OpenAI signs nothing; the field is required of a thinking block.
            signature: "",
        });
    }
    // Anthropic refuses empty text blocks (a client sending this turn back would get a 400).
    if let Some(text) = message.content.filter(|t| !t.is_empty()) {
        content.push(Block::Text { text });
    }
    let refusal = message.refusal.filter(|t| !t.is_empty());
    let refused = refusal.is_some();
    if let Some(text) = refusal {
        content.push(Block::Text { text });
    }
    for (i, call) in message
        .tool_calls
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let path = format!("choices[0].message.tool_calls[{i}]");
        let Some(id) = call.id else {
            return Err(GatewayError::BadUpstreamResponse(format!(
                "{path} has no id"
            )));
        };
        let input = arguments_object(call.function.arguments.as_deref()).ok_or_else(|| {
            GatewayError::BadUpstreamResponse(format!(
                "{path}.function.arguments is not a JSON object"
            ))
        })?;
        content.push(Block::ToolUse {
            id,
            name: call.function.name,
            input,
        });
    }
    let stop = if refused {
        StopReason::Refusal
    } else {
        choice
            .finish_reason
            .as_deref()
            .and_then(StopReason::from_openai)
            .unwrap_or(StopReason::EndTurn)
    };
    let out = Message {
        id: completion.id,
        kind: "message",
        role: "assistant",
        model: completion.model,
        content,
        stop_reason: stop.anthropic(),
        // OpenAI does not say which stop sequence matched (its `stop` covers both).
        stop_sequence: None,
        usage: completion.usage.map(|usage| {
            let figures = UsageFigures::from_openai(
                usage.prompt_tokens,
                usage
                    .prompt_tokens_details
                    .and_then(|details| details.cached_tokens)
                    .unwrap_or(0),
                usage.completion_tokens,
            );
            Usage {
                input_tokens: figures.uncached_input,
                cache_creation_input_tokens: figures.cache_write,
                cache_read_input_tokens: figures.cache_read,
                output_tokens: figures.output,
            }
        }),
    };
    serde_json::to_vec(&out).map_err(|_| GatewayError::Internal("writing the translated response"))
}

#[derive(Debug, Deserialize)]
struct WireCompletion<'a> {
    #[serde(borrow, default)]
    id: Cow<'a, str>,
    #[serde(borrow, default)]
    model: Cow<'a, str>,
    #[serde(borrow)]
    choices: Vec<WireChoice<'a>>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
struct WireChoice<'a> {
    #[serde(borrow)]
    message: WireMessage<'a>,
    #[serde(borrow, default)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
struct WireMessage<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    refusal: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasoning: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<WireToolCall<'a>>>,
}

#[derive(Debug, Deserialize)]
struct WireToolCall<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    function: WireFunctionCall<'a>,
}

#[derive(Debug, Deserialize)]
struct WireFunctionCall<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow, default)]
    arguments: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<WireDetails>,
}

#[derive(Debug, Deserialize)]
struct WireDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Debug, Serialize)]
struct Message<'a> {
    id: Cow<'a, str>,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: Cow<'a, str>,
    content: Vec<Block<'a>>,
    stop_reason: &'static str,
    stop_sequence: Option<()>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block<'a> {
    Thinking {
        thinking: Cow<'a, str>,
        signature: &'static str,
    },
    Text {
        text: Cow<'a, str>,
    },
    ToolUse {
        id: Cow<'a, str>,
        name: Cow<'a, str>,
        input: Box<RawValue>,
    },
}

#[derive(Debug, Serialize)]
struct Usage {
    input_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    output_tokens: u64,
}
