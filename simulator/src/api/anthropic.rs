//! The Anthropic Messages API, served natively as recent vLLM does.

use std::hash::{DefaultHasher, Hasher};

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response, Sse};
use serde::Deserialize;
use serde_json::{Value, json};

use super::content::TextContent;
use super::error::{AnthropicError, ApiError};
use super::gate::CutAfterTokens;
use super::script::{Output, Part, Transcript, tool_name};
use super::sse::token_events;
use super::{SharedState, json_response, parse_json, response_id, run_to_completion};
use crate::engine::{FinishReason, Generation, Token};
use crate::tokens::Prompt;

#[derive(Debug, Deserialize)]
struct MessagesRequest {
    model: String,
    /// Required by the Anthropic API, unlike OpenAI's.
    max_tokens: u32,
    messages: Vec<Message>,
    system: Option<TextContent>,
    stream: Option<bool>,
    /// Tools the model may call; a scripted tool call is named after the first.
    tools: Option<Vec<Value>>,
}

#[derive(Debug, Deserialize)]
struct Message {
    role: String,
    content: TextContent,
}

/// The prompt text: the system prompt, then each message's role followed by its text.
fn messages_prompt(request: &MessagesRequest) -> Prompt {
    let mut text = String::new();
    if let Some(system) = &request.system {
        system.append_to(&mut text);
    }
    for message in &request.messages {
        text.push_str(&message.role);
        message.content.append_to(&mut text);
    }
    Prompt::from_text(text)
}

/// The text of the last user message, where a script may be.
fn last_user_text(request: &MessagesRequest) -> Option<String> {
    let last = request.messages.iter().rev().find(|m| m.role == "user")?;
    let mut text = String::new();
    last.content.append_to(&mut text);
    Some(text)
}

pub(super) async fn messages(
    State(state): State<SharedState>,
    cut: Option<Extension<CutAfterTokens>>,
    body: Bytes,
) -> Result<Response, AnthropicError> {
    let request: MessagesRequest = parse_json(&body)?;
    let cache = state.provider.as_ref().map(|_| CacheAccounting {
        writes_cache: parse_json::<Value>(&body).is_ok_and(|value| marks_cache_control(&value)),
        block_size: if state.config.prefix_cache {
            state.config.block_size
        } else {
            0
        },
    });
    if request.messages.is_empty() {
        return Err(ApiError::bad_request("messages: at least one message is required").into());
    }
    let output = Output::from_last_user_text(last_user_text(&request).as_deref());
    let generation = state.start_generation(
        &request.model,
        messages_prompt(&request),
        Some(request.max_tokens),
        &output,
    )?;
    let answer = Answer {
        id: response_id("msg_"),
        model: request.model,
        tool_name: tool_name(request.tools.as_deref(), "/name"),
        tool_ids: (0..output.tool_calls())
            .map(|_| response_id("toolu_"))
            .collect(),
        output,
        cache,
    };
    if request.stream.unwrap_or(false) {
        Ok(answer.stream(generation, state.cut_streams_after(cut)))
    } else {
        answer.complete(generation).await
    }
}

/// One Messages response, JSON or streamed.
#[derive(Debug)]
struct Answer {
    id: String,
    /// The model name as requested, echoed back.
    model: String,
    output: Output,
    /// The name of scripted tool calls.
    tool_name: String,
    /// One id per scripted tool call.
    tool_ids: Vec<String>,
    /// Set in provider mode: usage reports cache reads and writes.
    cache: Option<CacheAccounting>,
}

/// How a provider's usage splits the prompt between cache reads, cache writes and the rest.
#[derive(Debug, Clone, Copy)]
struct CacheAccounting {
    /// The request marks something `cache_control`, which asks Anthropic to write the cache.
    writes_cache: bool,
    /// Tokens per prefix-cache block; 0 when the prefix cache is off.
    block_size: u32,
}

/// Whether any object in the request has a `cache_control` field.
fn marks_cache_control(value: &Value) -> bool {
    match value {
        Value::Object(fields) => fields
            .iter()
            .any(|(name, field)| name == "cache_control" || marks_cache_control(field)),
        Value::Array(items) => items.iter().any(marks_cache_control),
        _ => false,
    }
}

impl Answer {
    /// Usage. vLLM reports only `input_tokens` and `output_tokens`. A provider reports the
    /// prefix-cache hits as `cache_read_input_tokens`, and, when the request asks for caching,
    /// the prompt's other whole blocks (which this request writes to the cache) as
    /// `cache_creation_input_tokens`; `input_tokens` is what remains.
    fn usage(&self, prompt_tokens: u32, cached_tokens: u32, output_tokens: u32) -> Value {
        let Some(cache) = self.cache else {
            return json!({ "input_tokens": prompt_tokens, "output_tokens": output_tokens });
        };
        let written = if cache.writes_cache {
            let whole_blocks = prompt_tokens
                .checked_div(cache.block_size)
                .unwrap_or(0)
                .saturating_mul(cache.block_size);
            whole_blocks.saturating_sub(cached_tokens)
        } else {
            0
        };
        json!({
            "input_tokens": prompt_tokens.saturating_sub(cached_tokens).saturating_sub(written),
            "cache_creation_input_tokens": written,
            "cache_read_input_tokens": cached_tokens,
            "output_tokens": output_tokens,
        })
    }

    fn stop_reason(&self, reason: FinishReason) -> &'static str {
        match reason {
            FinishReason::Stop if self.output.tool_calls() > 0 => "tool_use",
            FinishReason::Stop => "end_turn",
            FinishReason::Length => "max_tokens",
        }
    }

    fn tool_id(&self, call: usize) -> &str {
        self.tool_ids.get(call).map_or("", String::as_str)
    }

    /// The content blocks: thinking, text, then one tool_use per call, each only when the answer
    /// has it.
    fn content(&self, transcript: &Transcript) -> Vec<Value> {
        let mut blocks = Vec::new();
        if transcript.has_reasoning() {
            blocks.push(json!({
                "type": "thinking",
                "thinking": transcript.reasoning,
                "signature": signature(&transcript.reasoning),
            }));
        }
        if transcript.has_content {
            blocks.push(json!({ "type": "text", "text": transcript.content }));
        }
        for (call, arguments) in transcript.tool_arguments.iter().enumerate() {
            // Scripted arguments are always a JSON object.
            let input: Value = serde_json::from_str(arguments).unwrap_or_else(|_| json!({}));
            blocks.push(json!({
                "type": "tool_use",
                "id": self.tool_id(call),
                "name": self.tool_name,
                "input": input,
            }));
        }
        blocks
    }

    async fn complete(self, generation: Generation) -> Result<Response, AnthropicError> {
        let done = run_to_completion(generation).await?;
        let transcript = self.output.transcript(done.completion_tokens);
        let body = json!({
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "content": self.content(&transcript),
            "model": self.model,
            "stop_reason": self.stop_reason(done.reason),
            "stop_sequence": null,
            "usage": self.usage(done.prompt_tokens, done.cached_prompt_tokens, done.completion_tokens),
        });
        Ok(json_response(StatusCode::OK, &body))
    }

    /// Anthropic's named-event stream: message_start opens it with the first token; each content
    /// block gets content_block_start (followed by a ping for the first), one content_block_delta
    /// per token (a thinking block also a signature_delta before it ends) and
    /// content_block_stop; message_delta and message_stop follow the last token.
    fn stream(self, generation: Generation, cut_after: Option<u32>) -> Response {
        let input_tokens = generation.prompt_tokens();
        // The index of the content block being streamed.
        let mut block: u32 = 0;
        let render = move |token: Token| {
            let mut events = Vec::new();
            if token.index == 0 {
                events.push(named(
                    "message_start",
                    json!({
                        "type": "message_start",
                        "message": {
                            "id": self.id,
                            "type": "message",
                            "role": "assistant",
                            "content": [],
                            "model": self.model,
                            "stop_reason": null,
                            "stop_sequence": null,
                            "usage": self.usage(input_tokens, token.cached_prompt_tokens, 0),
                        },
                    }),
                ));
            }
            let (part, text) = self.output.piece(token.index);
            if self.output.opens(token.index).is_some() {
                let content_block = match part {
                    Part::Reasoning => {
                        json!({ "type": "thinking", "thinking": "", "signature": "" })
                    }
                    Part::Content => json!({ "type": "text", "text": "" }),
                    Part::Tool(call) => json!({
                        "type": "tool_use",
                        "id": self.tool_id(call),
                        "name": self.tool_name,
                        "input": {},
                    }),
                };
                events.push(named(
                    "content_block_start",
                    json!({
                        "type": "content_block_start",
                        "index": block,
                        "content_block": content_block,
                    }),
                ));
                if token.index == 0 {
                    events.push(named("ping", json!({ "type": "ping" })));
                }
            }
            let delta = match part {
                Part::Reasoning => json!({ "type": "thinking_delta", "thinking": text }),
                Part::Content => json!({ "type": "text_delta", "text": text }),
                Part::Tool(_) => json!({ "type": "input_json_delta", "partial_json": text }),
            };
            events.push(named(
                "content_block_delta",
                json!({ "type": "content_block_delta", "index": block, "delta": delta }),
            ));
            if let Some(closed) = self.output.closes(token.index, token.finish.is_some()) {
                if closed == Part::Reasoning {
                    let reasoning = self.output.transcript(token.index + 1).reasoning;
                    events.push(named(
                        "content_block_delta",
                        json!({
                            "type": "content_block_delta",
                            "index": block,
                            "delta": { "type": "signature_delta", "signature": signature(&reasoning) },
                        }),
                    ));
                }
                events.push(named(
                    "content_block_stop",
                    json!({ "type": "content_block_stop", "index": block }),
                ));
                block += 1;
            }
            if let Some(reason) = token.finish {
                events.push(named(
                    "message_delta",
                    json!({
                        "type": "message_delta",
                        "delta": { "stop_reason": self.stop_reason(reason), "stop_sequence": null },
                        "usage": { "output_tokens": token.index + 1 },
                    }),
                ));
                events.push(named("message_stop", json!({ "type": "message_stop" })));
            }
            events
        };
        Sse::new(token_events(generation, render, cut_after)).into_response()
    }
}

/// A stand-in for the opaque signature Anthropic puts on thinking blocks: a digest of the
/// thinking text, so that it differs between texts and never repeats them.
fn signature(thinking: &str) -> String {
    let mut hasher = DefaultHasher::new();
    hasher.write(thinking.as_bytes());
    format!("sim-signature-{:016x}", hasher.finish())
}

fn named(name: &'static str, data: Value) -> Event {
    Event::default().event(name).data(data.to_string())
}
