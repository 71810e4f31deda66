//! Generated upstream responses of every API shape: a whole JSON body and the same generation
//! as a server-sent-events stream (as OpenAI, vLLM, Anthropic and the Responses API write
//! them), with the texts and the usage the reader should find.

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::support::prose;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Chat,
    Completions,
    Anthropic,
    Responses,
}

/// What a model generated and what the upstream reports about it.
#[derive(Debug, Clone)]
pub struct Generation {
    pub shape: Shape,
    pub reasoning: String,
    pub content: String,
    /// Tool name and arguments (JSON text).
    pub tools: Vec<(String, String)>,
    /// Input and output tokens, when the upstream reports them.
    pub usage: Option<(u64, u64)>,
    /// Characters per streamed piece.
    pub piece: usize,
}

pub fn shape() -> impl Strategy<Value = Shape> {
    prop::sample::select(vec![
        Shape::Chat,
        Shape::Completions,
        Shape::Anthropic,
        Shape::Responses,
    ])
}

/// Tool-call arguments: a JSON object whose values may hold sensitive text.
fn arguments() -> impl Strategy<Value = String> {
    prop::collection::vec(("[a-z]{1,6}", prose(), any::<bool>()), 0..3).prop_map(|members| {
        let map: serde_json::Map<String, Value> = members
            .into_iter()
            .map(|(k, v, n)| (k, if n { json!(v.len()) } else { json!(v) }))
            .collect();
        Value::Object(map).to_string()
    })
}

pub fn generation() -> impl Strategy<Value = Generation> {
    (
        shape(),
        prop_oneof![2 => Just(String::new()), 1 => prose()],
        prose(),
        prop::collection::vec(("[a-z_]{1,10}", arguments()), 0..3),
        prop::option::of((0u64..100_000, 0u64..100_000)),
        1usize..12,
    )
        .prop_map(
            |(shape, reasoning, content, tools, usage, piece)| Generation {
                shape,
                // Completions have only text.
                reasoning: if shape == Shape::Completions {
                    String::new()
                } else {
                    reasoning
                },
                tools: if shape == Shape::Completions {
                    Vec::new()
                } else {
                    tools
                },
                content,
                usage,
                piece,
            },
        )
}

/// `text` in pieces of `size` characters.
pub fn pieces(text: &str, size: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

fn event(out: &mut String, name: Option<&str>, data: &Value) {
    if let Some(name) = name {
        out.push_str(&format!("event: {name}\n"));
    }
    out.push_str(&format!("data: {data}\n\n"));
}

impl Generation {
    /// The whole JSON response body.
    pub fn body(&self) -> String {
        let (input, output) = self.usage.unwrap_or((0, 0));
        let mut body = match self.shape {
            Shape::Chat => {
                let mut message = json!({"role": "assistant", "content": self.content});
                if !self.reasoning.is_empty() {
                    message["reasoning_content"] = json!(self.reasoning);
                }
                if !self.tools.is_empty() {
                    message["tool_calls"] = self
                        .tools
                        .iter()
                        .enumerate()
                        .map(|(i, (name, arguments))| {
                            json!({"id": format!("call_{i}"), "type": "function",
                                   "function": {"name": name, "arguments": arguments}})
                        })
                        .collect();
                }
                json!({"id": "chatcmpl-1", "object": "chat.completion", "model": "m",
                       "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": input, "completion_tokens": output,
                                 "total_tokens": input + output}})
            }
            Shape::Completions => json!({
                "id": "cmpl-1", "object": "text_completion", "model": "m",
                "choices": [{"index": 0, "text": self.content, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": input, "completion_tokens": output}
            }),
            Shape::Anthropic => {
                let mut content = Vec::new();
                if !self.reasoning.is_empty() {
                    content.push(json!({"type": "thinking", "thinking": self.reasoning,
                                        "signature": "c2ln"}));
                }
                content.push(json!({"type": "text", "text": self.content}));
                for (i, (name, arguments)) in self.tools.iter().enumerate() {
                    let input: Value = serde_json::from_str(arguments).unwrap();
                    content.push(json!({"type": "tool_use", "id": format!("toolu_{i}"),
                                        "name": name, "input": input}));
                }
                json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
                       "content": content, "stop_reason": "end_turn",
                       "usage": {"input_tokens": input, "output_tokens": output}})
            }
            Shape::Responses => {
                let mut output_items = Vec::new();
                if !self.reasoning.is_empty() {
                    output_items.push(json!({"type": "reasoning", "id": "rs_1",
                        "summary": [{"type": "summary_text", "text": self.reasoning}]}));
                }
                output_items.push(
                    json!({"type": "message", "id": "msg_1", "role": "assistant",
                    "content": [{"type": "output_text", "text": self.content}]}),
                );
                for (i, (name, arguments)) in self.tools.iter().enumerate() {
                    output_items.push(json!({"type": "function_call", "id": format!("fc_{i}"),
                        "call_id": format!("call_{i}"), "name": name, "arguments": arguments}));
                }
                json!({"id": "resp_1", "object": "response", "model": "m",
                       "output": output_items,
                       "usage": {"input_tokens": input, "output_tokens": output,
                                 "total_tokens": input + output}})
            }
        };
        if self.usage.is_none() {
            body.as_object_mut().unwrap().remove("usage");
        }
        body.to_string()
    }

    /// The same generation as a stream.
    pub fn stream(&self) -> String {
        let mut out = String::new();
        let size = self.piece;
        match self.shape {
            Shape::Chat => {
                let chunk = |choice: Value| {
                    json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "m",
                           "choices": [choice]})
                };
                let delta = |d: Value| json!({"index": 0, "delta": d, "finish_reason": null});
                event(
                    &mut out,
                    None,
                    &chunk(delta(json!({"role": "assistant", "content": ""}))),
                );
                for piece in pieces(&self.reasoning, size) {
                    event(
                        &mut out,
                        None,
                        &chunk(delta(json!({"reasoning_content": piece}))),
                    );
                }
                for piece in pieces(&self.content, size) {
                    event(&mut out, None, &chunk(delta(json!({"content": piece}))));
                }
                for (i, (name, arguments)) in self.tools.iter().enumerate() {
                    let call = json!({"index": i, "id": format!("call_{i}"), "type": "function",
                                      "function": {"name": name, "arguments": ""}});
                    event(&mut out, None, &chunk(delta(json!({"tool_calls": [call]}))));
                    for piece in pieces(arguments, size) {
                        let call = json!({"index": i, "function": {"arguments": piece}});
                        event(&mut out, None, &chunk(delta(json!({"tool_calls": [call]}))));
                    }
                }
                event(
                    &mut out,
                    None,
                    &chunk(json!({"index": 0, "delta": {}, "finish_reason": "stop"})),
                );
                if let Some((input, output)) = self.usage {
                    event(
                        &mut out,
                        None,
                        &json!({"id": "chatcmpl-1", "model": "m", "choices": [],
                        "usage": {"prompt_tokens": input, "completion_tokens": output}}),
                    );
                }
                out.push_str("data: [DONE]\n\n");
            }
            Shape::Completions => {
                let chunk = |text: &str, finish: Value| {
                    json!({"id": "cmpl-1", "object": "text_completion", "model": "m",
                           "choices": [{"index": 0, "text": text, "finish_reason": finish}]})
                };
                for piece in pieces(&self.content, size) {
                    event(&mut out, None, &chunk(&piece, Value::Null));
                }
                event(&mut out, None, &chunk("", json!("stop")));
                if let Some((input, output)) = self.usage {
                    event(
                        &mut out,
                        None,
                        &json!({"id": "cmpl-1", "choices": [],
                        "usage": {"prompt_tokens": input, "completion_tokens": output}}),
                    );
                }
                out.push_str("data: [DONE]\n\n");
            }
            Shape::Anthropic => {
                let (input, output) = self.usage.unwrap_or((0, 0));
                let mut start = json!({"type": "message_start", "message": {"id": "msg_1",
                    "type": "message", "role": "assistant", "model": "m", "content": [],
                    "usage": {"input_tokens": input, "output_tokens": 1}}});
                if self.usage.is_none() {
                    start["message"].as_object_mut().unwrap().remove("usage");
                }
                event(&mut out, Some("message_start"), &start);
                let mut index = 0;
                let mut block = |out: &mut String, opening: Value, deltas: Vec<Value>| {
                    event(
                        out,
                        Some("content_block_start"),
                        &json!({
                        "type": "content_block_start", "index": index, "content_block": opening}),
                    );
                    for delta in deltas {
                        event(
                            out,
                            Some("content_block_delta"),
                            &json!({
                            "type": "content_block_delta", "index": index, "delta": delta}),
                        );
                    }
                    event(
                        out,
                        Some("content_block_stop"),
                        &json!({"type": "content_block_stop", "index": index}),
                    );
                    index += 1;
                };
                if !self.reasoning.is_empty() {
                    let deltas = pieces(&self.reasoning, size)
                        .into_iter()
                        .map(|p| json!({"type": "thinking_delta", "thinking": p}))
                        .collect();
                    block(
                        &mut out,
                        json!({"type": "thinking", "thinking": ""}),
                        deltas,
                    );
                }
                let deltas = pieces(&self.content, size)
                    .into_iter()
                    .map(|p| json!({"type": "text_delta", "text": p}))
                    .collect();
                block(&mut out, json!({"type": "text", "text": ""}), deltas);
                for (i, (name, arguments)) in self.tools.iter().enumerate() {
                    let deltas = pieces(arguments, size)
                        .into_iter()
                        .map(|p| json!({"type": "input_json_delta", "partial_json": p}))
                        .collect();
                    block(
                        &mut out,
                        json!({"type": "tool_use", "id": format!("toolu_{i}"), "name": name,
                               "input": {}}),
                        deltas,
                    );
                }
                let mut delta = json!({"type": "message_delta",
                    "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": output}});
                if self.usage.is_none() {
                    delta.as_object_mut().unwrap().remove("usage");
                }
                event(&mut out, Some("message_delta"), &delta);
                event(
                    &mut out,
                    Some("message_stop"),
                    &json!({"type": "message_stop"}),
                );
            }
            Shape::Responses => {
                event(
                    &mut out,
                    Some("response.created"),
                    &json!({"type": "response.created",
                    "response": {"id": "resp_1", "model": "m", "output": []}}),
                );
                let mut item = 0;
                let mut text_item = |out: &mut String, kind: &str, text: &str| {
                    for piece in pieces(text, size) {
                        event(
                            out,
                            Some(kind),
                            &json!({"type": kind, "output_index": item,
                            "content_index": 0, "delta": piece}),
                        );
                    }
                    item += 1;
                };
                if !self.reasoning.is_empty() {
                    text_item(
                        &mut out,
                        "response.reasoning_summary_text.delta",
                        &self.reasoning,
                    );
                }
                text_item(&mut out, "response.output_text.delta", &self.content);
                for (_, arguments) in &self.tools {
                    text_item(
                        &mut out,
                        "response.function_call_arguments.delta",
                        arguments,
                    );
                }
                let body: Value = serde_json::from_str(&self.body()).unwrap();
                event(
                    &mut out,
                    Some("response.completed"),
                    &json!({"type": "response.completed", "response": body}),
                );
            }
        }
        out
    }
}

/// `text` with CRLF or CR line ends instead of LF (the SSE specification allows all three).
pub fn line_ends(text: &str, style: u8) -> String {
    match style % 3 {
        0 => text.to_owned(),
        1 => text.replace('\n', "\r\n"),
        _ => text.replace('\n', "\r"),
    }
}
