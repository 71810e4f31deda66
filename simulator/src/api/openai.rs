//! OpenAI-compatible routes: chat completions, completions and the model list.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response, Sse};
use serde::Deserialize;
use serde_json::{Value, json};

use super::content::TextContent;
use super::error::{ApiError, OpenAiError};
use super::gate::CutAfterTokens;
use super::script::{Output, Part, Transcript, tool_name};
use super::sse::{json_event, token_events};
use super::{SharedState, json_response, parse_json, response_id, run_to_completion, unix_seconds};
use crate::engine::{FinishReason, Generation, Token};
use crate::tokens::Prompt;

#[derive(Debug, Deserialize)]
struct ChatCompletionRequest {
    model: String,
    messages: Vec<ChatMessage>,
    max_tokens: Option<u32>,
    /// Supersedes `max_tokens` in current OpenAI clients.
    max_completion_tokens: Option<u32>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    /// Choices to generate; each gets the same text (the simulator models load, not sampling).
    n: Option<u32>,
    /// Tools the model may call; a scripted tool call is named after the first.
    tools: Option<Vec<Value>>,
}

/// Most choices a chat request may ask for.
const MAX_CHOICES: u32 = 16;

#[derive(Debug, Deserialize)]
struct ChatMessage {
    role: String,
    /// Null for assistant messages that only carry tool calls.
    content: Option<TextContent>,
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct CompletionRequest {
    model: String,
    prompt: PromptInput,
    max_tokens: Option<u32>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
}

/// The forms `prompt` can take. A batch (several strings or token arrays) is served as one
/// concatenated prompt with a single choice: the simulator models load, not batch semantics.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum PromptInput {
    Text(String),
    Texts(Vec<String>),
    TokenIds(Vec<u32>),
    TokenIdBatches(Vec<Vec<u32>>),
}

impl PromptInput {
    fn into_prompt(self) -> Prompt {
        match self {
            Self::Text(text) => Prompt::from_text(text),
            Self::Texts(texts) => Prompt::from_text(texts.concat()),
            Self::TokenIds(ids) => Prompt::from_token_ids(&ids),
            Self::TokenIdBatches(batches) => Prompt::from_token_ids(&batches.concat()),
        }
    }
}

/// The text of the conversation's last user message, where a script may be.
fn last_user_text(messages: &[ChatMessage]) -> Option<String> {
    let last = messages.iter().rev().find(|m| m.role == "user")?;
    let mut text = String::new();
    last.content.as_ref()?.append_to(&mut text);
    Some(text)
}

/// The prompt text of a conversation: each message's role followed by its text.
fn chat_prompt(messages: &[ChatMessage]) -> Prompt {
    let mut text = String::new();
    for message in messages {
        text.push_str(&message.role);
        if let Some(content) = &message.content {
            content.append_to(&mut text);
        }
    }
    Prompt::from_text(text)
}

pub(super) async fn chat_completions(
    State(state): State<SharedState>,
    cut: Option<Extension<CutAfterTokens>>,
    body: Bytes,
) -> Result<Response, OpenAiError> {
    let request: ChatCompletionRequest = parse_json(&body)?;
    if request.messages.is_empty() {
        return Err(ApiError::bad_request("messages must not be empty").into());
    }
    let choices = request.n.unwrap_or(1);
    if !(1..=MAX_CHOICES).contains(&choices) {
        return Err(ApiError::bad_request("n must be 1 to 16").into());
    }
    let output = Output::from_last_user_text(last_user_text(&request.messages).as_deref());
    let generation = state.start_generation(
        &request.model,
        chat_prompt(&request.messages),
        request.max_completion_tokens.or(request.max_tokens),
        &output,
    )?;
    let tool_ids = (0..output.tool_calls())
        .map(|_| response_id("chatcmpl-tool-"))
        .collect();
    let envelope = Envelope {
        id: response_id("chatcmpl-"),
        created: unix_seconds(),
        model: request.model,
        kind: Kind::Chat,
        output,
        choices,
        tool_name: tool_name(request.tools.as_deref(), "/function/name"),
        tool_ids,
        provider_usage: state.provider.is_some(),
    };
    if request.stream.unwrap_or(false) {
        Ok(envelope.stream(
            generation,
            include_usage(request.stream_options.as_ref()),
            state.cut_streams_after(cut),
        ))
    } else {
        envelope.complete(generation).await
    }
}

pub(super) async fn completions(
    State(state): State<SharedState>,
    cut: Option<Extension<CutAfterTokens>>,
    body: Bytes,
) -> Result<Response, OpenAiError> {
    let request: CompletionRequest = parse_json(&body)?;
    let generation = state.start_generation(
        &request.model,
        request.prompt.into_prompt(),
        request.max_tokens,
        &Output::Generated,
    )?;
    let envelope = Envelope {
        id: response_id("cmpl-"),
        created: unix_seconds(),
        model: request.model,
        kind: Kind::Text,
        output: Output::Generated,
        choices: 1,
        tool_name: String::new(),
        tool_ids: Vec::new(),
        provider_usage: state.provider.is_some(),
    };
    if request.stream.unwrap_or(false) {
        Ok(envelope.stream(
            generation,
            include_usage(request.stream_options.as_ref()),
            state.cut_streams_after(cut),
        ))
    } else {
        envelope.complete(generation).await
    }
}

/// The served names, then the adapters (vLLM adds `root`, `parent` and `max_model_len`; a
/// provider does not).
pub(super) async fn list_models(State(state): State<SharedState>) -> Response {
    let config = &state.config;
    let model = |id: &str, parent: Option<&str>| {
        let mut entry = json!({
            "id": id,
            "object": "model",
            "created": state.started_unix,
            "owned_by": "sluice-simulator",
        });
        if state.provider.is_none() {
            entry["root"] = json!(id);
            entry["parent"] = json!(parent);
            entry["max_model_len"] = json!(config.engine().scheduler.max_model_len());
        }
        entry
    };
    let data: Vec<Value> = std::iter::once(&config.model)
        .chain(&config.aliases)
        .map(|name| model(name, None))
        .chain(
            config
                .loras
                .iter()
                .map(|lora| model(lora, Some(&config.model))),
        )
        .collect();
    json_response(StatusCode::OK, &json!({ "object": "list", "data": data }))
}

fn include_usage(options: Option<&StreamOptions>) -> bool {
    options.and_then(|options| options.include_usage) == Some(true)
}

/// Token counts for a usage object.
#[derive(Debug, Clone, Copy)]
struct Counts {
    prompt: u32,
    /// Of the prompt, the tokens the prefix cache held.
    cached: u32,
    completion: u32,
    /// Of the completion, the reasoning tokens.
    reasoning: u32,
}

impl Envelope {
    /// Usage as vLLM reports it: reasoning tokens are part of the completion tokens and, when
    /// there are any, also counted on their own. A provider always sends both detail objects,
    /// with the cached prompt tokens.
    fn usage(&self, counts: Counts) -> Value {
        let mut usage = json!({
            "prompt_tokens": counts.prompt,
            "completion_tokens": counts.completion,
            "total_tokens": counts.prompt.saturating_add(counts.completion),
        });
        if self.provider_usage {
            usage["prompt_tokens_details"] =
                json!({ "cached_tokens": counts.cached, "audio_tokens": 0 });
            usage["completion_tokens_details"] = json!({
                "reasoning_tokens": counts.reasoning,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            });
        } else if counts.reasoning > 0 {
            usage["completion_tokens_details"] = json!({ "reasoning_tokens": counts.reasoning });
        }
        usage
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Chat,
    Text,
}

/// Everything a response (or each chunk of a streamed one) repeats.
#[derive(Debug)]
struct Envelope {
    id: String,
    created: u64,
    /// The model name as requested, echoed back.
    model: String,
    kind: Kind,
    /// What each output token says.
    output: Output,
    /// Chat choices (`n`): the same text under each index; streamed events interleave.
    choices: u32,
    /// The name of scripted tool calls.
    tool_name: String,
    /// One id per scripted tool call, the same in every choice.
    tool_ids: Vec<String>,
    /// Usage as a provider reports it (with cached tokens), not as vLLM does.
    provider_usage: bool,
}

impl Envelope {
    fn finish_reason(&self, reason: FinishReason) -> &'static str {
        match reason {
            FinishReason::Stop if self.output.tool_calls() > 0 => "tool_calls",
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }

    fn tool_id(&self, call: usize) -> &str {
        self.tool_ids.get(call).map_or("", String::as_str)
    }

    /// The assistant message of a chat choice: content (null when the answer has none), and
    /// `reasoning_content` and `tool_calls` only when the answer has them.
    fn message(&self, transcript: &Transcript) -> Value {
        let mut message = json!({
            "role": "assistant",
            "content": transcript.has_content.then_some(transcript.content.as_str()),
        });
        if transcript.has_reasoning() {
            message["reasoning_content"] = json!(transcript.reasoning);
        }
        if !transcript.tool_arguments.is_empty() {
            let calls: Vec<Value> = transcript
                .tool_arguments
                .iter()
                .enumerate()
                .map(|(call, arguments)| {
                    json!({
                        "id": self.tool_id(call),
                        "type": "function",
                        "function": { "name": self.tool_name, "arguments": arguments },
                    })
                })
                .collect();
            message["tool_calls"] = json!(calls);
        }
        message
    }

    async fn complete(self, generation: Generation) -> Result<Response, OpenAiError> {
        let done = run_to_completion(generation).await?;
        let transcript = self.output.transcript(done.completion_tokens);
        let reason = self.finish_reason(done.reason);
        let (object, choices) = match self.kind {
            Kind::Chat => (
                "chat.completion",
                (0..self.choices)
                    .map(|index| {
                        json!({
                            "index": index,
                            "message": self.message(&transcript),
                            "logprobs": null,
                            "finish_reason": reason,
                        })
                    })
                    .collect::<Vec<_>>(),
            ),
            Kind::Text => (
                "text_completion",
                vec![json!({
                    "index": 0,
                    "text": transcript.content,
                    "logprobs": null,
                    "finish_reason": reason,
                })],
            ),
        };
        let body = json!({
            "id": self.id,
            "object": object,
            "created": self.created,
            "model": self.model,
            "choices": choices,
            "usage": self.usage(Counts {
                prompt: done.prompt_tokens,
                cached: done.cached_prompt_tokens,
                completion: done.completion_tokens,
                reasoning: transcript.reasoning_tokens,
            }),
        });
        Ok(json_response(StatusCode::OK, &body))
    }

    /// Streams one chunk per token (chat opens with a role-only chunk, and each tool call with a
    /// chunk naming it; the last token's chunk carries the finish reason), then a usage chunk if
    /// asked for, then `[DONE]`.
    fn stream(
        self,
        generation: Generation,
        include_usage: bool,
        cut_after: Option<u32>,
    ) -> Response {
        let prompt_tokens = generation.prompt_tokens();
        let render = move |token: Token| {
            let mut events = Vec::new();
            let reason = token.finish.map(|reason| self.finish_reason(reason));
            let (part, text) = self.output.piece(token.index);
            match self.kind {
                Kind::Chat => {
                    for index in 0..self.choices {
                        let choice = |delta: Value, reason: Option<&str>| {
                            json!([{
                                "index": index,
                                "delta": delta,
                                "logprobs": null,
                                "finish_reason": reason,
                            }])
                        };
                        if token.index == 0 {
                            let delta = json!({ "role": "assistant", "content": "" });
                            events.push(self.chunk(choice(delta, None), include_usage));
                        }
                        if let Some(Part::Tool(call)) = self.output.opens(token.index) {
                            let delta = json!({ "tool_calls": [{
                                "index": call,
                                "id": self.tool_id(call),
                                "type": "function",
                                "function": { "name": self.tool_name, "arguments": "" },
                            }] });
                            events.push(self.chunk(choice(delta, None), include_usage));
                        }
                        let delta = match part {
                            Part::Reasoning => json!({ "reasoning_content": text }),
                            Part::Content => json!({ "content": text }),
                            Part::Tool(call) => json!({ "tool_calls": [{
                                "index": call,
                                "function": { "arguments": text },
                            }] }),
                        };
                        events.push(self.chunk(choice(delta, reason), include_usage));
                    }
                }
                Kind::Text => events.push(self.chunk(
                    json!([{
                        "index": 0,
                        "text": text,
                        "logprobs": null,
                        "finish_reason": reason,
                    }]),
                    include_usage,
                )),
            }
            if token.finish.is_some() {
                if include_usage {
                    let tokens = token.index + 1;
                    let reasoning = self.output.transcript(tokens).reasoning_tokens;
                    let mut last = self.chunk_body(json!([]));
                    last["usage"] = self.usage(Counts {
                        prompt: prompt_tokens,
                        cached: token.cached_prompt_tokens,
                        completion: tokens,
                        reasoning,
                    });
                    events.push(json_event(&last));
                }
                events.push(Event::default().data("[DONE]"));
            }
            events
        };
        Sse::new(token_events(generation, render, cut_after)).into_response()
    }

    fn chunk(&self, choices: Value, include_usage: bool) -> Event {
        let mut body = self.chunk_body(choices);
        if include_usage {
            body["usage"] = Value::Null;
        }
        json_event(&body)
    }

    fn chunk_body(&self, choices: Value) -> Value {
        let object = match self.kind {
            Kind::Chat => "chat.completion.chunk",
            Kind::Text => "text_completion",
        };
        json!({
            "id": self.id,
            "object": object,
            "created": self.created,
            "model": self.model,
            "choices": choices,
        })
    }
}
