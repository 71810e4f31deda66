//! An Anthropic Messages stream re-told as OpenAI Chat Completions chunks.
//!
//! - `message_start` gives the chunks' `id` and `model` and the input usage, and becomes the
//!   first chunk (`delta.role: assistant`).
//! - Text blocks stream as `delta.content`; `thinking` blocks as `delta.reasoning_content`, the
//!   field OpenAI-compatible servers (vLLM, DeepSeek) stream reasoning in, since OpenAI's own
//!   chat API streams none.
//! - Each `tool_use` block is one entry of `delta.tool_calls` (its own `index`, from 0): the
//!   block's start gives `id`, `type: function` and `function.name`, and every
//!   `input_json_delta.partial_json` is passed on as an `arguments` fragment.
//! - `message_delta` becomes a chunk with `finish_reason` (`StopReason`), then the usage chunk
//!   (`choices: []`, `usage` with `prompt_tokens_details.cached_tokens`); `message_stop` becomes
//!   `data: [DONE]`.
//! - An `error` event becomes an OpenAI error chunk (`{"error":{...}}`, how OpenAI reports an
//!   error mid-stream), then `[DONE]`.
//! - Dropped, having no place in a chat chunk: `ping`, thinking signatures (`signature_delta`),
//!   `redacted_thinking` blocks, citations (`citations_delta`) and server-tool blocks (which a
//!   translated request cannot ask for).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{Failure, Step, write};
use crate::translate::wire::AnthropicBlock;
use crate::translate::{StopReason, UsageFigures};

/// The state of one Anthropic stream being translated.
#[derive(Debug, Default)]
pub(super) struct ToOpenAi {
    id: String,
    model: String,
    created: u64,
    usage: UsageFigures,
    /// The first chunk (`role: assistant`) was sent.
    begun: bool,
    /// The content block open now: its Anthropic index and what it holds.
    block: Option<(u64, Block)>,
    /// Tool calls begun so far: the OpenAI `index` of the next one.
    tools: u64,
    /// `message_delta` came: the finish and usage chunks were sent.
    finished: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Text,
    Thinking,
    /// A `tool_use` block: its OpenAI tool call index.
    Tool(u64),
    /// A block with no OpenAI counterpart; its deltas are dropped.
    Other,
}

impl ToOpenAi {
    pub(super) fn new() -> Self {
        Self::default()
    }

    pub(super) fn set_created(&mut self, unix_seconds: u64) {
        self.created = unix_seconds;
    }

    /// Translates one event (`name` from its `event:` line, `data` its JSON).
    pub(super) fn event(
        &mut self,
        name: Option<&str>,
        data: &str,
        out: &mut Vec<u8>,
    ) -> Result<Step, Failure> {
        if data.trim().is_empty() {
            return Ok(Step::Continue);
        }
        let event: Incoming<'_> = serde_json::from_str(data).map_err(|_| Failure::Malformed)?;
        let kind = event.kind.as_deref().or(name).unwrap_or_default();
        match kind {
            "message_start" => {
                let message = event.message.ok_or(Failure::Malformed)?;
                self.id = message.id.into_owned();
                self.model = message.model.into_owned();
                if let Some(usage) = &message.usage {
                    self.merge_usage(usage);
                }
                self.begin(out);
            }
            "content_block_start" => {
                let block = event.content_block.ok_or(Failure::Malformed)?;
                self.block_start(event.index.unwrap_or_default(), &block, out);
            }
            "content_block_delta" => {
                let delta = event.delta.ok_or(Failure::Malformed)?;
                self.block_delta(event.index.unwrap_or_default(), &delta, out)?;
            }
            "content_block_stop" => self.block = None,
            "message_delta" => {
                if let Some(usage) = &event.usage {
                    self.merge_usage(usage);
                }
                let stop = event
                    .delta
                    .as_ref()
                    .and_then(|delta| delta.stop_reason.as_deref())
                    .and_then(StopReason::from_anthropic);
                self.finish_chunks(stop, out);
            }
            "message_stop" => {
                // Without a `message_delta` before it the stop reason is unknown: `stop`.
                self.finish_chunks(None, out);
                write::done(out);
                return Ok(Step::Ended);
            }
            "error" => {
                let error = event.error.unwrap_or_default();
                let anthropic_type = error.kind.as_deref().unwrap_or("api_error");
                let (kind, code) = openai_error_kind(anthropic_type);
                let message = error
                    .message
                    .as_deref()
                    .unwrap_or("The upstream reported an error.");
                write_error(out, message, kind, code);
                return Ok(Step::Ended);
            }
            // `ping`, and event types added after this was written (Anthropic's versioning
            // policy: clients ignore unknown events).
            _ => {}
        }
        Ok(Step::Continue)
    }

    /// The target's stream ended without `message_stop`: complete when `message_delta` came
    /// (all the content and the usage are in), cut otherwise.
    pub(super) fn finish(&mut self, out: &mut Vec<u8>) -> bool {
        if self.finished {
            write::done(out);
        }
        self.finished
    }

    /// Ends the client's stream with the gateway's error.
    pub(super) fn fail(&mut self, failure: Failure, out: &mut Vec<u8>) {
        write_error(out, &failure.message(), "server_error", None);
    }

    fn merge_usage(&mut self, usage: &Usage) {
        if let Some(n) = usage.input_tokens {
            self.usage.uncached_input = n;
        }
        if let Some(n) = usage.cache_read_input_tokens {
            self.usage.cache_read = n;
        }
        if let Some(n) = usage.cache_creation_input_tokens {
            self.usage.cache_write = n;
        }
        if let Some(n) = usage.output_tokens {
            self.usage.output = n;
        }
    }

    /// The first chunk, once: `role: assistant`.
    fn begin(&mut self, out: &mut Vec<u8>) {
        if self.begun {
            return;
        }
        self.begun = true;
        let delta = Delta {
            role: Some("assistant"),
            content: Some(""),
            ..Delta::default()
        };
        self.write_chunk(out, delta, None);
    }

    fn block_start(&mut self, index: u64, block: &AnthropicBlock<'_>, out: &mut Vec<u8>) {
        let kind = match block.kind.as_ref() {
            "text" => Block::Text,
            "thinking" => Block::Thinking,
            "tool_use" => {
                let tool = self.tools;
                self.tools = self.tools.saturating_add(1);
                Block::Tool(tool)
            }
            _ => Block::Other,
        };
        self.block = Some((index, kind));
        match kind {
            Block::Text => self.text(out, block.text.as_deref().unwrap_or_default()),
            Block::Thinking => self.reasoning(out, block.thinking.as_deref().unwrap_or_default()),
            Block::Tool(tool) => {
                // Anthropic starts a streamed tool call with `input: {}` and sends the input as
                // deltas; an input given whole at the start is passed on as it is.
                let arguments = block
                    .input
                    .map(RawValue::get)
                    .filter(|input| !is_empty_object(input))
                    .unwrap_or_default();
                let call = ToolCall {
                    index: tool,
                    id: Some(block.id.as_deref().unwrap_or_default()),
                    kind: Some("function"),
                    function: Function {
                        name: Some(block.name.as_deref().unwrap_or_default()),
                        arguments,
                    },
                };
                self.tool_call(out, call);
            }
            Block::Other => {}
        }
    }

    fn block_delta(
        &mut self,
        index: u64,
        delta: &BlockDelta<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), Failure> {
        match delta.kind.as_deref().unwrap_or_default() {
            "text_delta" => self.text(out, delta.text.as_deref().unwrap_or_default()),
            "thinking_delta" => self.reasoning(out, delta.thinking.as_deref().unwrap_or_default()),
            "input_json_delta" => {
                // Arguments belong to the tool call of the block they name, which is the open
                // one (Anthropic streams its blocks one after another).
                let Some((open, Block::Tool(tool))) = self.block else {
                    return Err(Failure::Malformed);
                };
                if open != index {
                    return Err(Failure::Malformed);
                }
                let fragment = delta.partial_json.as_deref().unwrap_or_default();
                if !fragment.is_empty() {
                    let call = ToolCall {
                        index: tool,
                        id: None,
                        kind: None,
                        function: Function {
                            name: None,
                            arguments: fragment,
                        },
                    };
                    self.tool_call(out, call);
                }
            }
            // `signature_delta`, `citations_delta` and later additions.
            _ => {}
        }
        Ok(())
    }

    fn text(&mut self, out: &mut Vec<u8>, text: &str) {
        if text.is_empty() {
            return;
        }
        let delta = Delta {
            content: Some(text),
            ..Delta::default()
        };
        self.begin(out);
        self.write_chunk(out, delta, None);
    }

    fn reasoning(&mut self, out: &mut Vec<u8>, text: &str) {
        if text.is_empty() {
            return;
        }
        let delta = Delta {
            reasoning_content: Some(text),
            ..Delta::default()
        };
        self.begin(out);
        self.write_chunk(out, delta, None);
    }

    fn tool_call(&mut self, out: &mut Vec<u8>, call: ToolCall<'_>) {
        self.begin(out);
        let calls = [call];
        let delta = Delta {
            tool_calls: &calls,
            ..Delta::default()
        };
        self.write_chunk(out, delta, None);
    }

    /// The chunk with `finish_reason`, then the usage chunk; once.
    fn finish_chunks(&mut self, stop: Option<StopReason>, out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.begin(out);
        let reason = stop.unwrap_or(StopReason::EndTurn).openai();
        self.write_chunk(out, Delta::default(), Some(reason));
        let usage = OutUsage {
            prompt_tokens: self.usage.openai_prompt(),
            completion_tokens: self.usage.output,
            total_tokens: self.usage.openai_total(),
            prompt_tokens_details: OutDetails {
                cached_tokens: self.usage.cache_read,
            },
        };
        let chunk = Chunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices: &[],
            usage: Some(usage),
        };
        write::event(out, None, &chunk);
    }

    /// One chunk with one choice.
    fn write_chunk(&self, out: &mut Vec<u8>, delta: Delta<'_>, finish_reason: Option<&str>) {
        let choices = [Choice {
            index: 0,
            delta,
            logprobs: (),
            finish_reason,
        }];
        let chunk = Chunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices: &choices,
            usage: None,
        };
        write::event(out, None, &chunk);
    }
}

/// OpenAI's error `type` and `code` for an Anthropic error type.
fn openai_error_kind(anthropic_type: &str) -> (&'static str, Option<&'static str>) {
    match anthropic_type {
        "invalid_request_error" | "request_too_large" | "not_found_error" => {
            ("invalid_request_error", None)
        }
        "authentication_error" => ("invalid_request_error", Some("invalid_api_key")),
        "permission_error" => ("invalid_request_error", Some("permission_denied")),
        "rate_limit_error" => ("requests", Some("rate_limit_exceeded")),
        "overloaded_error" => ("server_error", Some("overloaded")),
        _ => ("server_error", None),
    }
}

/// An OpenAI error chunk, then `[DONE]`.
fn write_error(out: &mut Vec<u8>, message: &str, kind: &str, code: Option<&str>) {
    let body = ErrorChunk {
        error: OutError {
            message,
            kind,
            param: (),
            code,
        },
    };
    write::event(out, None, &body);
    write::done(out);
}

/// `{}`, whitespace aside.
fn is_empty_object(json: &str) -> bool {
    json.bytes().filter(|b| !b.is_ascii_whitespace()).eq(*b"{}")
}

// What is read of Anthropic's events: one struct for every event type, each field optional
// (unknown fields ignored, as Anthropic's versioning asks of clients).

#[derive(Debug, Deserialize)]
struct Incoming<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    message: Option<MessageStart<'a>>,
    #[serde(default)]
    index: Option<u64>,
    #[serde(borrow, default)]
    content_block: Option<AnthropicBlock<'a>>,
    #[serde(borrow, default)]
    delta: Option<BlockDelta<'a>>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(borrow, default)]
    error: Option<ErrorBody<'a>>,
}

#[derive(Debug, Deserialize)]
struct MessageStart<'a> {
    #[serde(borrow, default)]
    id: Cow<'a, str>,
    #[serde(borrow, default)]
    model: Cow<'a, str>,
    #[serde(default)]
    usage: Option<Usage>,
}

/// A `content_block_delta`'s or a `message_delta`'s `delta`.
#[derive(Debug, Deserialize)]
struct BlockDelta<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    thinking: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    partial_json: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    stop_reason: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
struct Usage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorBody<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    message: Option<Cow<'a, str>>,
}

// What is written: OpenAI's chunks.

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: &'a [Choice<'a>],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<OutUsage>,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    delta: Delta<'a>,
    /// Always `null`: Anthropic streams no log probabilities.
    logprobs: (),
    finish_reason: Option<&'a str>,
}

#[derive(Default, Serialize)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    tool_calls: &'a [ToolCall<'a>],
}

#[derive(Serialize)]
struct ToolCall<'a> {
    index: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: Function<'a>,
}

#[derive(Serialize)]
struct Function<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

#[derive(Serialize)]
struct OutUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: OutDetails,
}

#[derive(Serialize)]
struct OutDetails {
    cached_tokens: u64,
}

#[derive(Serialize)]
struct ErrorChunk<'a> {
    error: OutError<'a>,
}

#[derive(Serialize)]
struct OutError<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: (),
    code: Option<&'a str>,
}
