//! The Anthropic Messages API, served natively as recent vLLM does.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response, Sse};
use serde::Deserialize;
use serde_json::{Value, json};

use super::content::TextContent;
use super::error::{AnthropicError, ApiError};
use super::sse::token_events;
use super::{SharedState, json_response, parse_json, response_id, run_to_completion};
use crate::engine::{FinishReason, Generation, Token};
use crate::tokens::Prompt;
use crate::words::{completion_text, token_text};

#[derive(Debug, Deserialize)]
struct MessagesRequest {
    model: String,
    /// Required by the Anthropic API, unlike OpenAI's.
    max_tokens: u32,
    messages: Vec<Message>,
    system: Option<TextContent>,
    stream: Option<bool>,
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

pub(super) async fn messages(
    State(state): State<SharedState>,
    body: Bytes,
) -> Result<Response, AnthropicError> {
    let request: MessagesRequest = parse_json(&body)?;
    if request.messages.is_empty() {
        return Err(ApiError::bad_request("messages: at least one message is required").into());
    }
    let generation = state.start_generation(
        &request.model,
        messages_prompt(&request),
        Some(request.max_tokens),
    )?;
    let id = response_id("msg_");
    if request.stream.unwrap_or(false) {
        Ok(stream(
            id,
            request.model,
            generation,
            state.config.cut_streams_after,
        ))
    } else {
        complete(id, request.model, generation).await
    }
}

fn stop_reason(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop => "end_turn",
        FinishReason::Length => "max_tokens",
    }
}

async fn complete(
    id: String,
    model: String,
    generation: Generation,
) -> Result<Response, AnthropicError> {
    let done = run_to_completion(generation).await?;
    let body = json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "content": [{ "type": "text", "text": completion_text(done.completion_tokens) }],
        "model": model,
        "stop_reason": stop_reason(done.reason),
        "stop_sequence": null,
        "usage": {
            "input_tokens": done.prompt_tokens,
            "output_tokens": done.completion_tokens,
        },
    });
    Ok(json_response(StatusCode::OK, &body))
}

/// Anthropic's named-event stream: message_start, content_block_start and ping open it with the
/// first token, one content_block_delta per token, then content_block_stop, message_delta and
/// message_stop after the last.
fn stream(id: String, model: String, generation: Generation, cut_after: Option<u32>) -> Response {
    let input_tokens = generation.prompt_tokens();
    let render = move |token: Token| {
        let mut events = Vec::new();
        if token.index == 0 {
            events.push(named(
                "message_start",
                json!({
                    "type": "message_start",
                    "message": {
                        "id": id,
                        "type": "message",
                        "role": "assistant",
                        "content": [],
                        "model": model,
                        "stop_reason": null,
                        "stop_sequence": null,
                        "usage": { "input_tokens": input_tokens, "output_tokens": 0 },
                    },
                }),
            ));
            events.push(named(
                "content_block_start",
                json!({
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": { "type": "text", "text": "" },
                }),
            ));
            events.push(named("ping", json!({ "type": "ping" })));
        }
        events.push(named(
            "content_block_delta",
            json!({
                "type": "content_block_delta",
                "index": 0,
                "delta": { "type": "text_delta", "text": token_text(token.index) },
            }),
        ));
        if let Some(reason) = token.finish {
            events.push(named(
                "content_block_stop",
                json!({ "type": "content_block_stop", "index": 0 }),
            ));
            events.push(named(
                "message_delta",
                json!({
                    "type": "message_delta",
                    "delta": { "stop_reason": stop_reason(reason), "stop_sequence": null },
                    "usage": { "output_tokens": token.index + 1 },
                }),
            ));
            events.push(named("message_stop", json!({ "type": "message_stop" })));
        }
        events
    };
    Sse::new(token_events(generation, render, cut_after)).into_response()
}

fn named(name: &'static str, data: Value) -> Event {
    Event::default().event(name).data(data.to_string())
}
