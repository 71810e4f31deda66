//! An OpenAI Chat Completions stream re-told as Anthropic Messages events.
//!
//! - The first chunk with a choice (or the usage) becomes `message_start` with its `id` and
//!   `model`. OpenAI reports usage only in its last chunk, so `message_start.usage` carries 0
//!   input and output tokens (or the figures, when a server reports usage on every chunk), and
//!   the full figures come in `message_delta.usage` (`input_tokens` uncached,
//!   `cache_read_input_tokens`, `output_tokens`): Anthropic's SDKs and the gateway's own
//!   accounting take the `message_delta` figures over `message_start`'s.
//! - Content becomes blocks, numbered from 0 in the order they begin, each opened
//!   (`content_block_start`), filled (`content_block_delta`) and closed
//!   (`content_block_stop`) before the next opens: `reasoning_content` (or `reasoning`, as some
//!   OpenAI-compatible servers name it) a `thinking` block, `content` a `text` block, each
//!   `tool_calls` index its own `tool_use` block whose `arguments` fragments stream as
//!   `input_json_delta`.
//! - A `refusal` (OpenAI's structured-output refusal text) streams as text, and the stop
//!   reason becomes `refusal`.
//! - `finish_reason` gives `message_delta.delta.stop_reason` (`StopReason`); `message_delta`
//!   and `message_stop` are sent at `[DONE]`, once the usage chunk (which request translation
//!   asks for with `stream_options.include_usage`) has come.
//! - An error chunk (`{"error":{...}}`, or vLLM's flat `{"object":"error",...}`) becomes an
//!   Anthropic `error` event.
//! - Only choice 0 is translated: Anthropic has one answer per request (request translation
//!   refuses `n` > 1). Log probabilities have no Anthropic counterpart and are dropped.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::{Failure, Step, write};
use crate::translate::{StopReason, UsageFigures};

/// The state of one OpenAI stream being translated.
#[derive(Debug, Default)]
pub(super) struct ToAnthropic {
    id: String,
    model: String,
    /// `message_start` was sent.
    started: bool,
    /// The content block open now.
    block: Option<Open>,
    /// The index of the next content block.
    next_index: u64,
    /// The highest OpenAI tool call index begun so far, and the id of the call begun last.
    last_tool: Option<u64>,
    tool_id: String,
    /// The finish reason came.
    finished: bool,
    stop: Option<StopReason>,
    /// The model refused (`delta.refusal`).
    refused: bool,
    /// The last usage the target reported.
    usage: Option<UsageFigures>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Open {
    index: u64,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Thinking,
    /// A tool call: its OpenAI index.
    Tool(u64),
}

impl ToAnthropic {
    pub(super) fn new() -> Self {
        Self::default()
    }

    /// Translates one event's data.
    pub(super) fn event(&mut self, data: &str, out: &mut Vec<u8>) -> Result<Step, Failure> {
        let data = data.trim();
        if data.is_empty() {
            return Ok(Step::Continue);
        }
        if data == "[DONE]" {
            self.complete(out);
            return Ok(Step::Ended);
        }
        let chunk: Chunk<'_> = serde_json::from_str(data).map_err(|_| Failure::Malformed)?;
        if chunk.error.is_some() || chunk.object.as_deref() == Some("error") {
            self.upstream_error(data, out);
            return Ok(Step::Ended);
        }
        if let Some(usage) = &chunk.usage {
            self.usage = Some(usage.figures());
        }
        let choices = chunk.choices.unwrap_or_default();
        let choice = choices.iter().find(|c| c.index.unwrap_or_default() == 0);
        // A chunk with neither (Azure's prompt-filter results before the answer) says nothing
        // the client reads.
        if choice.is_none() && chunk.usage.is_none() {
            return Ok(Step::Continue);
        }
        self.start(
            chunk.id.as_deref().unwrap_or_default(),
            chunk.model.as_deref().unwrap_or_default(),
            out,
        );
        if let Some(choice) = choice {
            if let Some(delta) = &choice.delta {
                self.delta(delta, out)?;
            }
            if let Some(reason) = choice.finish_reason.as_deref() {
                self.close(out);
                self.finished = true;
                self.stop = Some(StopReason::from_openai(reason).unwrap_or(StopReason::EndTurn));
            }
        }
        Ok(Step::Continue)
    }

    /// The target's stream ended without `[DONE]`: complete when the finish reason and the
    /// usage came (some OpenAI-compatible servers end so), cut otherwise.
    pub(super) fn finish(&mut self, out: &mut Vec<u8>) -> bool {
        let complete = self.finished && self.usage.is_some();
        if complete {
            self.complete(out);
        }
        complete
    }

    /// Ends the client's stream with the gateway's error.
    pub(super) fn fail(&mut self, failure: Failure, out: &mut Vec<u8>) {
        write_error(out, "api_error", &failure.message());
    }

    /// `message_start`, once.
    fn start(&mut self, id: &str, model: &str, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        id.clone_into(&mut self.id);
        model.clone_into(&mut self.model);
        let figures = self.usage.unwrap_or_default();
        let message = OutMessage {
            id: &self.id,
            kind: "message",
            role: "assistant",
            model: &self.model,
            content: [],
            stop_reason: None,
            stop_sequence: None,
            usage: OutUsage::of(&figures),
        };
        emit(out, &Out::MessageStart { message });
    }

    fn delta(&mut self, delta: &Delta<'_>, out: &mut Vec<u8>) -> Result<(), Failure> {
        let reasoning = delta
            .reasoning_content
            .as_deref()
            .or(delta.reasoning.as_deref());
        if let Some(text) = reasoning.filter(|t| !t.is_empty()) {
            let index = self.open(Kind::Thinking, None, out);
            let delta = OutDelta::Thinking { thinking: text };
            emit(out, &Out::ContentBlockDelta { index, delta });
        }
        if let Some(text) = delta.content.as_deref().filter(|t| !t.is_empty()) {
            self.text(text, out);
        }
        if let Some(text) = delta.refusal.as_deref().filter(|t| !t.is_empty()) {
            self.refused = true;
            self.text(text, out);
        }
        for call in delta.tool_calls.iter().flatten() {
            self.tool_call(call, out)?;
        }
        Ok(())
    }

    fn text(&mut self, text: &str, out: &mut Vec<u8>) {
        let index = self.open(Kind::Text, None, out);
        let delta = OutDelta::Text { text };
        emit(out, &Out::ContentBlockDelta { index, delta });
    }

    fn tool_call(&mut self, call: &ToolCallDelta<'_>, out: &mut Vec<u8>) -> Result<(), Failure> {
        let tool = call.index.unwrap_or_default();
        let function = call.function.as_ref();
        let id = call.id.as_deref();
        // Some servers repeat the id on every fragment of a call.
        let same_id = id.is_none_or(|id| id == self.tool_id);
        let is_open = matches!(self.block, Some(Open { kind: Kind::Tool(t), .. }) if t == tool);
        if !(is_open && same_id) {
            // A call begins with a higher index than any before, or with a new id under the
            // same index (servers that number every call 0). A fragment of a call begun
            // earlier comes after its block was closed for the next one.
            let begins = match self.last_tool {
                None => true,
                Some(last) => tool > last || (tool == last && !same_id),
            };
            if !begins {
                return Err(Failure::Interleaved);
            }
            self.last_tool = Some(tool);
            self.tool_id = match id {
                Some(id) => id.to_owned(),
                None => format!("call_{tool}"),
            };
            let name = function.and_then(|f| f.name.as_deref()).unwrap_or_default();
            self.close(out);
            let tool_id = std::mem::take(&mut self.tool_id);
            self.open(Kind::Tool(tool), Some((&tool_id, name)), out);
            self.tool_id = tool_id;
        }
        let fragment = function
            .and_then(|f| f.arguments.as_deref())
            .unwrap_or_default();
        if let Some(open) = self.block.filter(|_| !fragment.is_empty()) {
            let delta = OutDelta::InputJson {
                partial_json: fragment,
            };
            emit(
                out,
                &Out::ContentBlockDelta {
                    index: open.index,
                    delta,
                },
            );
        }
        Ok(())
    }

    /// The block of `kind` open (closing another one first); its index. `tool` is the id and
    /// name of a `tool_use` block.
    fn open(&mut self, kind: Kind, tool: Option<(&str, &str)>, out: &mut Vec<u8>) -> u64 {
        if let Some(open) = self.block {
            if open.kind == kind {
                return open.index;
            }
            self.close(out);
        }
        let index = self.next_index;
        self.next_index = self.next_index.saturating_add(1);
        let content_block = match (kind, tool) {
            (Kind::Text, _) => OutBlock::Text { text: "" },
            (Kind::Thinking, _) => OutBlock::Thinking {
                thinking: "",
                signature: "",
            },
            (Kind::Tool(_), tool) => {
                let (id, name) = tool.unwrap_or_default();
                OutBlock::ToolUse {
                    id,
                    name,
                    input: Empty {},
                }
            }
        };
        emit(
            out,
            &Out::ContentBlockStart {
                index,
                content_block,
            },
        );
        self.block = Some(Open { index, kind });
        index
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if let Some(open) = self.block.take() {
            emit(out, &Out::ContentBlockStop { index: open.index });
        }
    }

    /// The end of a complete answer: the open block closed, `message_delta` with the stop
    /// reason and usage, `message_stop`.
    fn complete(&mut self, out: &mut Vec<u8>) {
        self.start("", "", out);
        self.close(out);
        let mut stop = self.stop.unwrap_or(StopReason::EndTurn);
        if self.refused && stop == StopReason::EndTurn {
            stop = StopReason::Refusal;
        }
        let figures = self.usage.unwrap_or_default();
        emit(
            out,
            &Out::MessageDelta {
                delta: OutStop {
                    stop_reason: stop.anthropic(),
                    stop_sequence: None,
                },
                usage: OutUsage::of(&figures),
            },
        );
        emit(out, &Out::MessageStop);
    }

    /// The target's error chunk as an Anthropic `error` event.
    fn upstream_error(&mut self, data: &str, out: &mut Vec<u8>) {
        let value: Value = serde_json::from_str(data).unwrap_or_default();
        let error = value.get("error").unwrap_or(&value);
        let field = |name: &str| error.get(name).and_then(Value::as_str);
        let message = error
            .as_str()
            .or_else(|| field("message"))
            .unwrap_or("The upstream reported an error.");
        let code = error.get("code");
        let kind = anthropic_error_type(
            field("type"),
            code.and_then(Value::as_str),
            code.and_then(Value::as_u64),
        );
        write_error(out, kind, message);
    }
}

/// Anthropic's error type for an OpenAI error `type` and `code` (a string, or the HTTP status
/// vLLM puts there).
fn anthropic_error_type(
    kind: Option<&str>,
    code: Option<&str>,
    status: Option<u64>,
) -> &'static str {
    match (kind, code) {
        (Some("requests" | "tokens" | "insufficient_quota" | "rate_limit_exceeded"), _)
        | (_, Some("rate_limit_exceeded")) => "rate_limit_error",
        (Some("authentication_error"), _) | (_, Some("invalid_api_key")) => "authentication_error",
        (Some("overloaded_error"), _) | (_, Some("overloaded")) => "overloaded_error",
        (Some("invalid_request_error" | "BadRequestError"), _) => "invalid_request_error",
        _ => match status {
            Some(400 | 422) => "invalid_request_error",
            Some(401) => "authentication_error",
            Some(403) => "permission_error",
            Some(404) => "not_found_error",
            Some(413) => "request_too_large",
            Some(429) => "rate_limit_error",
            Some(503 | 529) => "overloaded_error",
            _ => "api_error",
        },
    }
}

fn write_error(out: &mut Vec<u8>, kind: &str, message: &str) {
    let error = OutError { kind, message };
    emit(out, &Out::Error { error });
}

fn emit(out: &mut Vec<u8>, event: &Out<'_>) {
    let name = match event {
        Out::MessageStart { .. } => "message_start",
        Out::ContentBlockStart { .. } => "content_block_start",
        Out::ContentBlockDelta { .. } => "content_block_delta",
        Out::ContentBlockStop { .. } => "content_block_stop",
        Out::MessageDelta { .. } => "message_delta",
        Out::MessageStop => "message_stop",
        Out::Error { .. } => "error",
    };
    write::event(out, Some(name), event);
}

// What is read of OpenAI's chunks (unknown fields ignored).

#[derive(Debug, Deserialize)]
struct Chunk<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    object: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    choices: Option<Vec<Choice<'a>>>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct Choice<'a> {
    #[serde(default)]
    index: Option<u64>,
    #[serde(borrow, default)]
    delta: Option<Delta<'a>>,
    #[serde(borrow, default)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
struct Delta<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasoning_content: Option<Cow<'a, str>>,
    /// Read only when it is a string: the name is generic enough for a server to use it for
    /// something else.
    #[serde(borrow, default, deserialize_with = "string_or_nothing")]
    reasoning: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    refusal: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<ToolCallDelta<'a>>>,
}

#[derive(Debug, Deserialize)]
struct ToolCallDelta<'a> {
    #[serde(default)]
    index: Option<u64>,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    function: Option<FunctionDelta<'a>>,
}

#[derive(Debug, Deserialize)]
struct FunctionDelta<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    arguments: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<Details>,
}

#[derive(Debug, Deserialize)]
struct Details {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

impl Usage {
    fn figures(&self) -> UsageFigures {
        let cached = self
            .prompt_tokens_details
            .as_ref()
            .and_then(|d| d.cached_tokens)
            .unwrap_or_default();
        UsageFigures::from_openai(
            self.prompt_tokens.unwrap_or_default(),
            cached,
            self.completion_tokens.unwrap_or_default(),
        )
    }
}

fn string_or_nothing<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Cow<'de, str>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Maybe<'a> {
        Text(#[serde(borrow)] Cow<'a, str>),
        Other(serde::de::IgnoredAny),
    }
    Ok(match Maybe::deserialize(deserializer)? {
        Maybe::Text(text) => Some(text),
        Maybe::Other(_) => None,
    })
}

// What is written: Anthropic's events.

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Out<'a> {
    MessageStart {
        message: OutMessage<'a>,
    },
    ContentBlockStart {
        index: u64,
        content_block: OutBlock<'a>,
    },
    ContentBlockDelta {
        index: u64,
        delta: OutDelta<'a>,
    },
    ContentBlockStop {
        index: u64,
    },
    MessageDelta {
        delta: OutStop,
        usage: OutUsage,
    },
    MessageStop,
    Error {
        error: OutError<'a>,
    },
}

#[derive(Serialize)]
struct OutMessage<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: [(); 0],
    stop_reason: Option<&'static str>,
    stop_sequence: Option<&'static str>,
    usage: OutUsage,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum OutBlock<'a> {
    Text {
        text: &'static str,
    },
    /// Anthropic signs its thinking blocks; an OpenAI target's reasoning has no signature.
    Thinking {
        thinking: &'static str,
        signature: &'static str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: Empty,
    },
}

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
#[serde(tag = "type")]
enum OutDelta<'a> {
    #[serde(rename = "text_delta")]
    Text { text: &'a str },
    #[serde(rename = "thinking_delta")]
    Thinking { thinking: &'a str },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: &'a str },
}

#[derive(Serialize)]
struct OutStop {
    stop_reason: &'static str,
    stop_sequence: Option<&'static str>,
}

#[derive(Serialize)]
struct OutUsage {
    input_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    output_tokens: u64,
}

impl OutUsage {
    fn of(figures: &UsageFigures) -> Self {
        Self {
            input_tokens: figures.uncached_input,
            cache_creation_input_tokens: figures.cache_write,
            cache_read_input_tokens: figures.cache_read,
            output_tokens: figures.output,
        }
    }
}

#[derive(Serialize)]
struct OutError<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    message: &'a str,
}
