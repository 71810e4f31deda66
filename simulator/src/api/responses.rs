//! OpenAI's Responses API (`POST /v1/responses`), as vLLM serves it: output items of reasoning
//! (`reasoning_text` content), a message (`output_text`) and function calls, JSON or streamed as
//! named events with sequence numbers. Nothing is stored: `previous_response_id` is not followed.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response, Sse};
use serde::Deserialize;
use serde_json::{Value, json};

use super::content::TextContent;
use super::error::{ApiError, OpenAiError};
use super::gate::CutAfterTokens;
use super::script::{Output, Part, Transcript, tool_name};
use super::sse::token_events;
use super::{SharedState, json_response, parse_json, response_id, run_to_completion, unix_seconds};
use crate::engine::{FinishReason, Generation, Token};
use crate::tokens::Prompt;

#[derive(Debug, Deserialize)]
struct ResponsesRequest {
    model: String,
    input: Input,
    /// A system message put before the input.
    instructions: Option<String>,
    max_output_tokens: Option<u32>,
    stream: Option<bool>,
    /// Tools the model may call; a scripted function call is named after the first with a name.
    tools: Option<Vec<Value>>,
}

/// `input`: one user message as a string, or a list of items.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Input {
    Text(String),
    Items(Vec<InputItem>),
}

/// Any input item: messages (`role`, `content`), function calls the client sends back
/// (`arguments`) and their results (`output`). Other fields do not matter to the simulator.
#[derive(Debug, Deserialize)]
struct InputItem {
    role: Option<String>,
    content: Option<TextContent>,
    arguments: Option<String>,
    output: Option<TextContent>,
}

impl ResponsesRequest {
    /// The prompt text: the instructions, then each item's role followed by its text.
    fn prompt(&self) -> Prompt {
        let mut text = String::new();
        if let Some(instructions) = &self.instructions {
            text.push_str("system");
            text.push_str(instructions);
        }
        match &self.input {
            Input::Text(input) => {
                text.push_str("user");
                text.push_str(input);
            }
            Input::Items(items) => {
                for item in items {
                    if let Some(role) = &item.role {
                        text.push_str(role);
                    }
                    for content in [&item.content, &item.output].into_iter().flatten() {
                        content.append_to(&mut text);
                    }
                    if let Some(arguments) = &item.arguments {
                        text.push_str(arguments);
                    }
                }
            }
        }
        Prompt::from_text(text)
    }

    /// The text of the last user message, where a script may be.
    fn last_user_text(&self) -> Option<String> {
        match &self.input {
            Input::Text(input) => Some(input.clone()),
            Input::Items(items) => {
                let last = items
                    .iter()
                    .rev()
                    .find(|item| item.role.as_deref() == Some("user"))?;
                let mut text = String::new();
                last.content.as_ref()?.append_to(&mut text);
                Some(text)
            }
        }
    }
}

pub(super) async fn responses(
    State(state): State<SharedState>,
    cut: Option<Extension<CutAfterTokens>>,
    body: Bytes,
) -> Result<Response, OpenAiError> {
    let request: ResponsesRequest = parse_json(&body)?;
    if request.max_output_tokens == Some(0) {
        return Err(ApiError::bad_request("max_output_tokens must be at least 1").into());
    }
    let output = Output::from_last_user_text(request.last_user_text().as_deref());
    let generation = state.start_generation(
        &request.model,
        request.prompt(),
        request.max_output_tokens,
        &output,
    )?;
    let calls = output.tool_calls();
    let answer = Answer {
        id: response_id("resp_"),
        created_at: unix_seconds(),
        reasoning_id: response_id("rs_"),
        message_id: response_id("msg_"),
        call_item_ids: (0..calls).map(|_| response_id("fc_")).collect(),
        call_ids: (0..calls).map(|_| response_id("call_")).collect(),
        tool_name: tool_name(request.tools.as_deref(), "/name"),
        output,
        model: request.model,
        instructions: request.instructions,
        max_output_tokens: request.max_output_tokens,
        tools: request.tools.unwrap_or_default(),
    };
    if request.stream.unwrap_or(false) {
        Ok(answer.stream(generation, state.cut_streams_after(cut)))
    } else {
        let done = run_to_completion(generation).await?;
        let transcript = answer.output.transcript(done.completion_tokens);
        let body = answer.response(Some(&Ending {
            reason: done.reason,
            prompt_tokens: done.prompt_tokens,
            output_tokens: done.completion_tokens,
            transcript,
        }));
        Ok(json_response(axum::http::StatusCode::OK, &body))
    }
}

/// How a response ended, for its final form.
struct Ending {
    reason: FinishReason,
    prompt_tokens: u32,
    output_tokens: u32,
    transcript: Transcript,
}

/// One response, JSON or streamed; the request fields it repeats and the ids of its items.
#[derive(Debug)]
struct Answer {
    id: String,
    created_at: u64,
    reasoning_id: String,
    message_id: String,
    /// Per function call: the output item's id and the call id tools answer to.
    call_item_ids: Vec<String>,
    call_ids: Vec<String>,
    tool_name: String,
    output: Output,
    /// The model name as requested, echoed back.
    model: String,
    instructions: Option<String>,
    max_output_tokens: Option<u32>,
    tools: Vec<Value>,
}

impl Answer {
    /// The response object; without an ending it is the in-progress one that opens a stream.
    fn response(&self, ending: Option<&Ending>) -> Value {
        let (status, incomplete_details, output, usage) = match ending {
            None => ("in_progress", Value::Null, Vec::new(), Value::Null),
            Some(ending) => {
                let (status, details) = match ending.reason {
                    FinishReason::Stop => ("completed", Value::Null),
                    FinishReason::Length => {
                        ("incomplete", json!({ "reason": "max_output_tokens" }))
                    }
                };
                let parts = parts(&ending.transcript);
                let output = parts
                    .iter()
                    .enumerate()
                    .map(|(index, part)| {
                        let last = index + 1 == parts.len();
                        self.item(
                            *part,
                            Some(&ending.transcript),
                            last.then_some(ending.reason),
                        )
                    })
                    .collect();
                let usage = json!({
                    "input_tokens": ending.prompt_tokens,
                    "input_tokens_details": { "cached_tokens": 0 },
                    "output_tokens": ending.output_tokens,
                    "output_tokens_details": {
                        "reasoning_tokens": ending.transcript.reasoning_tokens,
                    },
                    "total_tokens": ending.prompt_tokens + ending.output_tokens,
                });
                (status, details, output, usage)
            }
        };
        json!({
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "error": null,
            "incomplete_details": incomplete_details,
            "instructions": self.instructions,
            "max_output_tokens": self.max_output_tokens,
            "model": self.model,
            "output": output,
            "parallel_tool_calls": true,
            "previous_response_id": null,
            "tool_choice": "auto",
            "tools": self.tools,
            "usage": usage,
        })
    }

    fn item_id(&self, part: Part) -> &str {
        match part {
            Part::Reasoning => &self.reasoning_id,
            Part::Content => &self.message_id,
            Part::Tool(call) => self.call_item_ids.get(call).map_or("", String::as_str),
        }
    }

    /// The output item of `part`: finished with the transcript's text (`incomplete` when the
    /// response ended in it at the token limit), else the empty, in-progress item that
    /// `response.output_item.added` announces.
    fn item(
        &self,
        part: Part,
        transcript: Option<&Transcript>,
        ended: Option<FinishReason>,
    ) -> Value {
        let status = match (transcript, ended) {
            (None, _) => "in_progress",
            (Some(_), Some(FinishReason::Length)) => "incomplete",
            (Some(_), _) => "completed",
        };
        let id = self.item_id(part);
        match part {
            Part::Reasoning => {
                let content: Vec<Value> = transcript
                    .map(|t| reasoning_part(&t.reasoning))
                    .into_iter()
                    .collect();
                json!({
                    "type": "reasoning",
                    "id": id,
                    "summary": [],
                    "content": content,
                    "status": status,
                })
            }
            Part::Content => {
                let content: Vec<Value> = transcript
                    .map(|t| text_part(&t.content))
                    .into_iter()
                    .collect();
                json!({
                    "type": "message",
                    "id": id,
                    "status": status,
                    "role": "assistant",
                    "content": content,
                })
            }
            Part::Tool(call) => {
                let arguments = transcript
                    .and_then(|t| t.tool_arguments.get(call))
                    .map_or("", String::as_str);
                json!({
                    "type": "function_call",
                    "id": id,
                    "call_id": self.call_ids.get(call).map_or("", String::as_str),
                    "name": self.tool_name,
                    "arguments": arguments,
                    "status": status,
                })
            }
        }
    }

    /// Events in OpenAI's order: `response.created` and `response.in_progress` with the first
    /// token; per output item `response.output_item.added` (and `response.content_part.added`
    /// for text), one delta per token (`response.reasoning_text.delta`,
    /// `response.output_text.delta` or `response.function_call_arguments.delta`), the matching
    /// `.done` events and `response.output_item.done`; finally `response.completed` (or
    /// `response.incomplete` at `max_output_tokens`) with the whole response and its usage.
    fn stream(self, generation: Generation, cut_after: Option<u32>) -> Response {
        let prompt_tokens = generation.prompt_tokens();
        let mut sequence: u64 = 0;
        // The output index of the item being streamed.
        let mut output_index: u32 = 0;
        let render = move |token: Token| {
            let mut events = Vec::new();
            let mut emit = |name: &'static str, mut data: Value| {
                data["type"] = json!(name);
                data["sequence_number"] = json!(sequence);
                sequence += 1;
                events.push(Event::default().event(name).data(data.to_string()));
            };
            if token.index == 0 {
                let response = self.response(None);
                emit("response.created", json!({ "response": response }));
                emit("response.in_progress", json!({ "response": response }));
            }
            let (part, text) = self.output.piece(token.index);
            let item_id = self.item_id(part);
            let at = |extra: Value| {
                let mut data = json!({ "item_id": item_id, "output_index": output_index });
                if let (Some(data), Value::Object(extra)) = (data.as_object_mut(), extra) {
                    data.extend(extra);
                }
                data
            };
            if self.output.opens(token.index).is_some() {
                let item = self.item(part, None, None);
                emit(
                    "response.output_item.added",
                    json!({ "output_index": output_index, "item": item }),
                );
                let empty_part = match part {
                    Part::Reasoning => Some(reasoning_part("")),
                    Part::Content => Some(text_part("")),
                    Part::Tool(_) => None,
                };
                if let Some(empty_part) = empty_part {
                    emit(
                        "response.content_part.added",
                        at(json!({ "content_index": 0, "part": empty_part })),
                    );
                }
            }
            match part {
                Part::Reasoning => emit(
                    "response.reasoning_text.delta",
                    at(json!({ "content_index": 0, "delta": text })),
                ),
                Part::Content => emit(
                    "response.output_text.delta",
                    at(json!({ "content_index": 0, "delta": text, "logprobs": [] })),
                ),
                Part::Tool(_) => emit(
                    "response.function_call_arguments.delta",
                    at(json!({ "delta": text })),
                ),
            }
            let tokens = token.index + 1;
            if self
                .output
                .closes(token.index, token.finish.is_some())
                .is_some()
            {
                let transcript = self.output.transcript(tokens);
                match part {
                    Part::Reasoning => {
                        emit(
                            "response.reasoning_text.done",
                            at(json!({ "content_index": 0, "text": transcript.reasoning })),
                        );
                        emit(
                            "response.content_part.done",
                            at(json!({
                                "content_index": 0,
                                "part": reasoning_part(&transcript.reasoning),
                            })),
                        );
                    }
                    Part::Content => {
                        emit(
                            "response.output_text.done",
                            at(json!({
                                "content_index": 0,
                                "text": transcript.content,
                                "logprobs": [],
                            })),
                        );
                        emit(
                            "response.content_part.done",
                            at(
                                json!({ "content_index": 0, "part": text_part(&transcript.content) }),
                            ),
                        );
                    }
                    Part::Tool(call) => emit(
                        "response.function_call_arguments.done",
                        at(json!({
                            "name": self.tool_name,
                            "arguments": transcript.tool_arguments.get(call).map_or("", String::as_str),
                        })),
                    ),
                }
                emit(
                    "response.output_item.done",
                    json!({
                        "output_index": output_index,
                        "item": self.item(part, Some(&transcript), token.finish),
                    }),
                );
                output_index += 1;
            }
            if let Some(reason) = token.finish {
                let ending = Ending {
                    reason,
                    prompt_tokens,
                    output_tokens: tokens,
                    transcript: self.output.transcript(tokens),
                };
                let name = match reason {
                    FinishReason::Stop => "response.completed",
                    FinishReason::Length => "response.incomplete",
                };
                emit(name, json!({ "response": self.response(Some(&ending)) }));
            }
            events
        };
        Sse::new(token_events(generation, render, cut_after)).into_response()
    }
}

/// The output items a transcript has, in order: reasoning if any, the message if it has content
/// (or nothing else was said), then the function calls.
fn parts(transcript: &Transcript) -> Vec<Part> {
    let mut parts = Vec::new();
    if transcript.has_reasoning() {
        parts.push(Part::Reasoning);
    }
    if transcript.has_content {
        parts.push(Part::Content);
    }
    parts.extend((0..transcript.tool_arguments.len()).map(Part::Tool));
    parts
}

fn reasoning_part(text: &str) -> Value {
    json!({ "type": "reasoning_text", "text": text })
}

fn text_part(text: &str) -> Value {
    json!({ "type": "output_text", "text": text, "annotations": [] })
}
