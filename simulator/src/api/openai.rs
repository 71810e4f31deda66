//! OpenAI-compatible routes: chat completions, completions and the model list.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response, Sse};
use serde::Deserialize;
use serde_json::{Value, json};

use super::content::TextContent;
use super::error::{ApiError, OpenAiError};
use super::sse::{json_event, token_events};
use super::{SharedState, json_response, parse_json, response_id, run_to_completion, unix_seconds};
use crate::engine::{FinishReason, Generation, Token};
use crate::tokens::Prompt;
use crate::words::{completion_text, token_text};

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

/// Marker that makes the simulator echo: a chat whose last user message contains it is
/// answered with that message's text (marker removed), streamed a few characters per token, so
/// that tests can put chosen text into a completion (response guardrails).
pub const ECHO_MARKER: &str = "[[echo]]";

/// Characters per streamed token when echoing: small, so a word spans several events.
const ECHO_CHARS_PER_TOKEN: usize = 3;

fn echo_pieces(messages: &[ChatMessage]) -> Option<std::sync::Arc<Vec<String>>> {
    let last = messages.iter().rev().find(|m| m.role == "user")?;
    let mut text = String::new();
    last.content.as_ref()?.append_to(&mut text);
    if !text.contains(ECHO_MARKER) {
        return None;
    }
    let text = text.replace(ECHO_MARKER, "");
    let chars: Vec<char> = text.chars().collect();
    let pieces = chars
        .chunks(ECHO_CHARS_PER_TOKEN)
        .map(|c| c.iter().collect())
        .collect();
    Some(std::sync::Arc::new(pieces))
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
    let echo = echo_pieces(&request.messages);
    let max_tokens = match &echo {
        Some(pieces) => Some(u32::try_from(pieces.len()).unwrap_or(u32::MAX).max(1)),
        None => request.max_completion_tokens.or(request.max_tokens),
    };
    let generation =
        state.start_generation(&request.model, chat_prompt(&request.messages), max_tokens)?;
    let envelope = Envelope {
        id: response_id("chatcmpl-"),
        created: unix_seconds(),
        model: request.model,
        kind: Kind::Chat,
        echo,
        choices,
    };
    if request.stream.unwrap_or(false) {
        Ok(envelope.stream(
            generation,
            include_usage(request.stream_options.as_ref()),
            state.config.cut_streams_after,
        ))
    } else {
        envelope.complete(generation).await
    }
}

pub(super) async fn completions(
    State(state): State<SharedState>,
    body: Bytes,
) -> Result<Response, OpenAiError> {
    let request: CompletionRequest = parse_json(&body)?;
    let generation = state.start_generation(
        &request.model,
        request.prompt.into_prompt(),
        request.max_tokens,
    )?;
    let envelope = Envelope {
        id: response_id("cmpl-"),
        created: unix_seconds(),
        model: request.model,
        kind: Kind::Text,
        echo: None,
        choices: 1,
    };
    if request.stream.unwrap_or(false) {
        Ok(envelope.stream(
            generation,
            include_usage(request.stream_options.as_ref()),
            state.config.cut_streams_after,
        ))
    } else {
        envelope.complete(generation).await
    }
}

pub(super) async fn list_models(State(state): State<SharedState>) -> Response {
    let config = &state.config;
    let model = |id: &str, parent: Option<&str>| {
        json!({
            "id": id,
            "object": "model",
            "created": state.started_unix,
            "owned_by": "sluice-simulator",
            "root": id,
            "parent": parent,
            "max_model_len": config.engine().scheduler.max_model_len(),
        })
    };
    let data: Vec<Value> = std::iter::once(model(&config.model, None))
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

fn finish_reason(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
    }
}

fn usage(prompt_tokens: u32, completion_tokens: u32) -> Value {
    json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    })
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
    /// Echo mode: the text of each output token.
    echo: Option<std::sync::Arc<Vec<String>>>,
    /// Chat choices (`n`): the same text under each index; streamed events interleave.
    choices: u32,
}

impl Envelope {
    async fn complete(self, generation: Generation) -> Result<Response, OpenAiError> {
        let done = run_to_completion(generation).await?;
        let text = match &self.echo {
            Some(pieces) => pieces.concat(),
            None => completion_text(done.completion_tokens),
        };
        let (object, choices) = match self.kind {
            Kind::Chat => (
                "chat.completion",
                (0..self.choices)
                    .map(|index| {
                        json!({
                            "index": index,
                            "message": { "role": "assistant", "content": text },
                            "logprobs": null,
                            "finish_reason": finish_reason(done.reason),
                        })
                    })
                    .collect::<Vec<_>>(),
            ),
            Kind::Text => (
                "text_completion",
                vec![json!({
                    "index": 0,
                    "text": text,
                    "logprobs": null,
                    "finish_reason": finish_reason(done.reason),
                })],
            ),
        };
        let body = json!({
            "id": self.id,
            "object": object,
            "created": self.created,
            "model": self.model,
            "choices": choices,
            "usage": usage(done.prompt_tokens, done.completion_tokens),
        });
        Ok(json_response(StatusCode::OK, &body))
    }

    /// Streams one chunk per token (chat opens with a role-only chunk; the last token's chunk
    /// carries the finish reason), then a usage chunk if asked for, then `[DONE]`.
    fn stream(
        self,
        generation: Generation,
        include_usage: bool,
        cut_after: Option<u32>,
    ) -> Response {
        let prompt_tokens = generation.prompt_tokens();
        let render = move |token: Token| {
            let mut events = Vec::new();
            let reason = token.finish.map(finish_reason);
            match self.kind {
                Kind::Chat => {
                    for index in 0..self.choices {
                        if token.index == 0 {
                            events.push(self.chunk(
                                json!([{
                                    "index": index,
                                    "delta": { "role": "assistant", "content": "" },
                                    "logprobs": null,
                                    "finish_reason": null,
                                }]),
                                include_usage,
                            ));
                        }
                        events.push(self.chunk(
                            json!([{
                                "index": index,
                                "delta": { "content": self.token_text(token.index) },
                                "logprobs": null,
                                "finish_reason": reason,
                            }]),
                            include_usage,
                        ));
                    }
                }
                Kind::Text => events.push(self.chunk(
                    json!([{
                        "index": 0,
                        "text": token_text(token.index),
                        "logprobs": null,
                        "finish_reason": reason,
                    }]),
                    include_usage,
                )),
            }
            if token.finish.is_some() {
                if include_usage {
                    let mut last = self.chunk_body(json!([]));
                    last["usage"] = usage(prompt_tokens, token.index + 1);
                    events.push(json_event(&last));
                }
                events.push(Event::default().data("[DONE]"));
            }
            events
        };
        Sse::new(token_events(generation, render, cut_after)).into_response()
    }

    fn token_text(&self, index: u32) -> &str {
        match &self.echo {
            Some(pieces) => pieces.get(index as usize).map_or("", String::as_str),
            None => token_text(index),
        }
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
