//! Scripted answers: markers in the last user message choose the reasoning, content and tool-call
//! arguments of the answer, the same way in chat completions, Messages and Responses, JSON and
//! streamed.

mod common;

use std::net::SocketAddr;

use common::{MODEL, openai_chunks, post, sse_events, start};
use hyper::StatusCode;
use serde_json::{Value, json};

const REASONING: &str = "Let me think: jane.doe@example.com?";
const CONTENT: &str = "Sure, here it is.";
const OBJECT_ARGUMENTS: &str = r#"{"to": "jane.doe@example.com", "n": 2}"#;
const TEXT_ARGUMENTS: &str = "call 555-0100 \"now\"";

/// Reasoning, then content, then two tool calls; written out of order on purpose.
fn script() -> String {
    format!(
        "[[tool]]{OBJECT_ARGUMENTS}[[echo]]{CONTENT}[[reasoning]]{REASONING}[[tool]]{TEXT_ARGUMENTS}"
    )
}

fn expected_arguments() -> Vec<String> {
    vec![
        OBJECT_ARGUMENTS.to_owned(),
        json!({ "text": TEXT_ARGUMENTS }).to_string(),
    ]
}

/// Output tokens of the script: three characters each, per part.
fn expected_tokens() -> (u32, u32) {
    let tokens = |text: &str| text.chars().count().div_ceil(3) as u32;
    let reasoning = tokens(REASONING);
    let all =
        reasoning + tokens(CONTENT) + expected_arguments().iter().map(|a| tokens(a)).sum::<u32>();
    (all, reasoning)
}

/// What an answer said, by part, whichever API and form it came in.
#[derive(Debug, Default, PartialEq)]
struct Said {
    reasoning: String,
    content: String,
    /// Each tool call's name and arguments as sent (for Anthropic's JSON form, `input`
    /// serialized: compare those parsed).
    tools: Vec<(String, String)>,
}

impl Said {
    fn tool_mut(&mut self, index: usize) -> &mut (String, String) {
        if self.tools.len() <= index {
            self.tools.resize(index + 1, Default::default());
        }
        &mut self.tools[index]
    }

    fn assert_is_the_script(&self, tool_name: &str) {
        assert_eq!(self.reasoning, REASONING);
        assert_eq!(self.content, CONTENT);
        let names: Vec<&str> = self.tools.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, [tool_name, tool_name]);
        let parsed: Vec<Value> = self
            .tools
            .iter()
            .map(|(_, arguments)| serde_json::from_str(arguments).unwrap())
            .collect();
        let expected: Vec<Value> = expected_arguments()
            .iter()
            .map(|arguments| serde_json::from_str(arguments).unwrap())
            .collect();
        assert_eq!(parsed, expected);
    }
}

/// Every delta of one part must be short, and a part must come in several.
fn assert_split(deltas: &[String]) {
    assert!(deltas.len() >= 3, "split over several deltas: {deltas:?}");
    assert!(deltas.iter().all(|d| d.chars().count() <= 3), "{deltas:?}");
}

async fn chat(address: SocketAddr, stream: bool) -> common::Reply {
    let request = json!({
        "model": MODEL,
        "messages": [
            { "role": "system", "content": "Answer with tools." },
            { "role": "user", "content": [{ "type": "text", "text": script() }] },
        ],
        "tools": [
            { "type": "function", "function": { "name": "lookup", "parameters": {} } },
            { "type": "function", "function": { "name": "other", "parameters": {} } },
        ],
        "max_tokens": 2,
        "stream": stream,
        "stream_options": { "include_usage": true },
    });
    post(address, "/v1/chat/completions", request).await
}

#[tokio::test]
async fn chat_completion_json_carries_reasoning_content_and_tool_calls() {
    let address = start().await;
    let body = chat(address, false).await.json();
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    let message = &choice["message"];
    assert_eq!(message["role"], "assistant");
    let mut said = Said {
        reasoning: message["reasoning_content"].as_str().unwrap().to_owned(),
        content: message["content"].as_str().unwrap().to_owned(),
        tools: Vec::new(),
    };
    for call in message["tool_calls"].as_array().unwrap() {
        assert!(call["id"].as_str().unwrap().starts_with("chatcmpl-tool-"));
        assert_eq!(call["type"], "function");
        said.tools.push((
            call["function"]["name"].as_str().unwrap().to_owned(),
            call["function"]["arguments"].as_str().unwrap().to_owned(),
        ));
    }
    said.assert_is_the_script("lookup");
    let arguments: Vec<String> = said.tools.into_iter().map(|(_, a)| a).collect();
    assert_eq!(arguments, expected_arguments(), "sent exactly as scripted");

    // The client's max_tokens does not cut a script; reasoning counts within completion tokens.
    let (tokens, reasoning) = expected_tokens();
    // "system" "Answer with tools." "user" + the script.
    let prompt = (6 + 18 + 4 + script().len()).div_ceil(4) as u32;
    assert_eq!(
        body["usage"],
        json!({
            "prompt_tokens": prompt,
            "completion_tokens": tokens,
            "total_tokens": prompt + tokens,
            "completion_tokens_details": { "reasoning_tokens": reasoning },
        })
    );
}

#[tokio::test]
async fn chat_stream_splits_every_part_and_adds_up_to_the_json_form() {
    let address = start().await;
    let json_form = chat(address, false).await.json();
    let chunks = openai_chunks(&chat(address, true).await);
    let (usage_chunk, chunks) = chunks.split_last().unwrap();

    let mut said = Said::default();
    let mut reasoning_deltas = Vec::new();
    let mut argument_deltas: Vec<Vec<String>> = vec![Vec::new(), Vec::new()];
    let mut ids = Vec::new();
    for (position, chunk) in chunks.iter().enumerate() {
        let choice = &chunk["choices"][0];
        let delta = &choice["delta"];
        let last = position + 1 == chunks.len();
        assert_eq!(
            choice["finish_reason"],
            if last {
                json!("tool_calls")
            } else {
                Value::Null
            }
        );
        if let Some(text) = delta["reasoning_content"].as_str() {
            said.reasoning.push_str(text);
            reasoning_deltas.push(text.to_owned());
        }
        if let Some(text) = delta["content"].as_str() {
            said.content.push_str(text);
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let index = call["index"].as_u64().unwrap() as usize;
            let function = &call["function"];
            if let Some(name) = function["name"].as_str() {
                // The first delta of a call names it, with empty arguments, as OpenAI does.
                assert_eq!(call["type"], "function");
                assert_eq!(function["arguments"], "");
                ids.push(call["id"].as_str().unwrap().to_owned());
                said.tool_mut(index).0 = name.to_owned();
            } else {
                assert!(call.get("id").is_none());
                let text = function["arguments"].as_str().unwrap();
                said.tool_mut(index).1.push_str(text);
                argument_deltas[index].push(text.to_owned());
            }
        }
    }
    said.assert_is_the_script("lookup");
    assert_split(&reasoning_deltas);
    for deltas in &argument_deltas {
        assert_split(deltas);
    }

    let message = &json_form["choices"][0]["message"];
    assert_eq!(
        said.reasoning,
        message["reasoning_content"].as_str().unwrap()
    );
    assert_eq!(said.content, message["content"].as_str().unwrap());
    for (index, call) in message["tool_calls"].as_array().unwrap().iter().enumerate() {
        assert_eq!(
            said.tools[index].1,
            call["function"]["arguments"].as_str().unwrap()
        );
    }
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1]);

    assert_eq!(usage_chunk["usage"], json_form["usage"]);
}

#[tokio::test]
async fn chat_with_n_choices_scripts_every_choice() {
    let address = start().await;
    let request = json!({
        "model": MODEL,
        "n": 2,
        "messages": [{ "role": "user", "content": "[[reasoning]]Hmm.[[tool]]x" }],
        "stream": true,
    });
    let chunks = openai_chunks(&post(address, "/v1/chat/completions", request).await);
    for index in 0..2 {
        let arguments: String = chunks
            .iter()
            .map(|chunk| &chunk["choices"][0])
            .filter(|choice| choice["index"] == index)
            .filter_map(|choice| choice["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
            .collect();
        assert_eq!(arguments, r#"{"text":"x"}"#);
    }
}

#[tokio::test]
async fn plain_echo_is_content_that_stops_naturally() {
    let address = start().await;
    let request = json!({
        "model": MODEL,
        "messages": [{ "role": "user", "content": "Say [[echo]]hello there" }],
        "max_tokens": 1,
    });
    let body = post(address, "/v1/chat/completions", request).await.json();
    let choice = &body["choices"][0];
    assert_eq!(
        choice["message"],
        json!({ "role": "assistant", "content": "Say hello there" })
    );
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(body["usage"]["completion_tokens"], 5);
    assert!(body["usage"].get("completion_tokens_details").is_none());
}

async fn messages(address: SocketAddr, stream: bool) -> common::Reply {
    let request = json!({
        "model": MODEL,
        "max_tokens": 2,
        "system": "Answer with tools.",
        "messages": [
            { "role": "user", "content": "Earlier question" },
            { "role": "assistant", "content": "Earlier answer" },
            { "role": "user", "content": [{ "type": "text", "text": script() }] },
        ],
        "tools": [{ "name": "lookup", "input_schema": { "type": "object" } }],
        "stream": stream,
    });
    post(address, "/v1/messages", request).await
}

#[tokio::test]
async fn anthropic_json_has_thinking_text_and_tool_use_blocks() {
    let address = start().await;
    let reply = messages(address, false).await;
    assert_eq!(reply.status, StatusCode::OK);
    let body = reply.json();
    assert_eq!(body["stop_reason"], "tool_use");
    let blocks = body["content"].as_array().unwrap();
    let kinds: Vec<&str> = blocks.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["thinking", "text", "tool_use", "tool_use"]);
    assert!(!blocks[0]["signature"].as_str().unwrap().is_empty());
    let mut said = Said {
        reasoning: blocks[0]["thinking"].as_str().unwrap().to_owned(),
        content: blocks[1]["text"].as_str().unwrap().to_owned(),
        tools: Vec::new(),
    };
    for block in &blocks[2..] {
        assert!(block["id"].as_str().unwrap().starts_with("toolu_"));
        assert!(block["input"].is_object());
        said.tools.push((
            block["name"].as_str().unwrap().to_owned(),
            block["input"].to_string(),
        ));
    }
    said.assert_is_the_script("lookup");
    let (tokens, _) = expected_tokens();
    assert_eq!(body["usage"]["output_tokens"], tokens);
}

#[tokio::test]
async fn anthropic_stream_has_a_block_per_part_and_adds_up_to_the_json_form() {
    let address = start().await;
    let json_form = messages(address, false).await.json();
    let reply = messages(address, true).await;
    let events: Vec<(String, Value)> = sse_events(&reply.body)
        .into_iter()
        .map(|(name, data)| {
            let data: Value = serde_json::from_str(&data).unwrap();
            assert_eq!(data["type"], name.as_str());
            (name, data)
        })
        .collect();

    let mut said = Said::default();
    let mut blocks: Vec<Value> = Vec::new();
    let mut open: Option<u64> = None;
    let mut signature = None;
    let mut deltas_per_block: Vec<Vec<String>> = Vec::new();
    for (name, data) in &events {
        match name.as_str() {
            "content_block_start" => {
                assert_eq!(open, None, "one block at a time");
                let index = data["index"].as_u64().unwrap();
                assert_eq!(index as usize, blocks.len(), "blocks count up from 0");
                open = Some(index);
                blocks.push(data["content_block"].clone());
                deltas_per_block.push(Vec::new());
                if data["content_block"]["type"] == "tool_use" {
                    assert_eq!(data["content_block"]["input"], json!({}));
                    said.tools.push((
                        data["content_block"]["name"].as_str().unwrap().to_owned(),
                        String::new(),
                    ));
                }
            }
            "content_block_delta" => {
                assert_eq!(Some(data["index"].as_u64().unwrap()), open);
                let delta = &data["delta"];
                let text = match delta["type"].as_str().unwrap() {
                    "thinking_delta" => {
                        let text = delta["thinking"].as_str().unwrap();
                        said.reasoning.push_str(text);
                        text
                    }
                    "signature_delta" => {
                        signature = delta["signature"].as_str().map(str::to_owned);
                        continue;
                    }
                    "text_delta" => {
                        let text = delta["text"].as_str().unwrap();
                        said.content.push_str(text);
                        text
                    }
                    "input_json_delta" => {
                        let text = delta["partial_json"].as_str().unwrap();
                        said.tools.last_mut().unwrap().1.push_str(text);
                        text
                    }
                    other => panic!("unexpected delta {other}"),
                };
                deltas_per_block.last_mut().unwrap().push(text.to_owned());
            }
            "content_block_stop" => {
                assert_eq!(Some(data["index"].as_u64().unwrap()), open);
                open = None;
            }
            _ => {}
        }
    }
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        &names[..3],
        ["message_start", "content_block_start", "ping"]
    );
    assert_eq!(&names[names.len() - 2..], ["message_delta", "message_stop"]);
    let kinds: Vec<&Value> = blocks.iter().map(|b| &b["type"]).collect();
    assert_eq!(kinds, ["thinking", "text", "tool_use", "tool_use"]);
    said.assert_is_the_script("lookup");
    deltas_per_block
        .iter()
        .for_each(|deltas| assert_split(deltas));

    let content = json_form["content"].as_array().unwrap();
    assert_eq!(said.reasoning, content[0]["thinking"].as_str().unwrap());
    assert_eq!(signature.as_deref(), content[0]["signature"].as_str());
    assert_eq!(said.content, content[1]["text"].as_str().unwrap());
    for (index, (_, partial_json)) in said.tools.iter().enumerate() {
        let input: Value = serde_json::from_str(partial_json).unwrap();
        assert_eq!(input, content[2 + index]["input"]);
    }
    let message_delta = &events[events.len() - 2].1;
    assert_eq!(message_delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(
        message_delta["usage"],
        json!({ "output_tokens": json_form["usage"]["output_tokens"] })
    );
}

async fn responses(address: SocketAddr, stream: bool) -> common::Reply {
    let request = json!({
        "model": MODEL,
        "instructions": "Answer with tools.",
        "input": [{ "role": "user", "content": [{ "type": "input_text", "text": script() }] }],
        "tools": [
            { "type": "web_search" },
            { "type": "function", "name": "lookup", "parameters": {} },
        ],
        "max_output_tokens": 2,
        "stream": stream,
    });
    post(address, "/v1/responses", request).await
}

#[tokio::test]
async fn responses_json_has_reasoning_message_and_function_call_items() {
    let address = start().await;
    let body = responses(address, false).await.json();
    assert_eq!(body["status"], "completed");
    let items = body["output"].as_array().unwrap();
    let kinds: Vec<&str> = items.iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["reasoning", "message", "function_call", "function_call"]
    );
    assert!(items[0]["id"].as_str().unwrap().starts_with("rs_"));
    assert_eq!(items[0]["summary"], json!([]));
    assert_eq!(items[0]["content"][0]["type"], "reasoning_text");
    assert_eq!(items[1]["content"][0]["type"], "output_text");
    let mut said = Said {
        reasoning: items[0]["content"][0]["text"].as_str().unwrap().to_owned(),
        content: items[1]["content"][0]["text"].as_str().unwrap().to_owned(),
        tools: Vec::new(),
    };
    for item in &items[2..] {
        assert!(item["id"].as_str().unwrap().starts_with("fc_"));
        assert!(item["call_id"].as_str().unwrap().starts_with("call_"));
        assert_eq!(item["status"], "completed");
        said.tools.push((
            item["name"].as_str().unwrap().to_owned(),
            item["arguments"].as_str().unwrap().to_owned(),
        ));
    }
    said.assert_is_the_script("lookup");
    let (tokens, reasoning) = expected_tokens();
    assert_eq!(body["usage"]["output_tokens"], tokens);
    assert_eq!(
        body["usage"]["output_tokens_details"]["reasoning_tokens"],
        reasoning
    );
}

#[tokio::test]
async fn responses_stream_has_events_per_item_and_adds_up_to_the_json_form() {
    let address = start().await;
    let json_form = responses(address, false).await.json();
    let reply = responses(address, true).await;
    let events: Vec<(String, Value)> = sse_events(&reply.body)
        .into_iter()
        .map(|(name, data)| (name, serde_json::from_str(&data).unwrap()))
        .collect();
    for (sequence, (name, data)) in events.iter().enumerate() {
        assert_eq!(data["type"], name.as_str());
        assert_eq!(data["sequence_number"], sequence);
    }

    // The events without their deltas, which come in runs.
    let mut outline: Vec<&str> = Vec::new();
    for (name, _) in &events {
        if outline.last() != Some(&name.as_str()) || !name.ends_with(".delta") {
            outline.push(name);
        }
    }
    assert_eq!(
        outline,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.reasoning_text.delta",
            "response.reasoning_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );

    let mut said = Said::default();
    let mut deltas: Vec<Vec<String>> = Vec::new();
    let mut items_done = Vec::new();
    for (name, data) in &events {
        let delta = data["delta"].as_str().map(str::to_owned);
        match name.as_str() {
            "response.output_item.added" => {
                let item = &data["item"];
                assert_eq!(item["status"], "in_progress");
                assert_eq!(data["output_index"], deltas.len());
                deltas.push(Vec::new());
                if item["type"] == "function_call" {
                    assert_eq!(item["arguments"], "");
                    said.tools
                        .push((item["name"].as_str().unwrap().to_owned(), String::new()));
                }
            }
            "response.reasoning_text.delta" => said.reasoning.push_str(delta.as_deref().unwrap()),
            "response.output_text.delta" => said.content.push_str(delta.as_deref().unwrap()),
            "response.function_call_arguments.delta" => {
                said.tools
                    .last_mut()
                    .unwrap()
                    .1
                    .push_str(delta.as_deref().unwrap());
            }
            "response.reasoning_text.done" => assert_eq!(data["text"], said.reasoning.as_str()),
            "response.output_text.done" => assert_eq!(data["text"], said.content.as_str()),
            "response.function_call_arguments.done" => {
                let (name, arguments) = said.tools.last().unwrap();
                assert_eq!(data["arguments"], arguments.as_str());
                assert_eq!(data["name"], name.as_str());
            }
            "response.output_item.done" => items_done.push(data["item"].clone()),
            _ => {}
        }
        if let Some(delta) = delta {
            assert_eq!(data["output_index"], deltas.len() - 1);
            deltas.last_mut().unwrap().push(delta);
        }
    }
    said.assert_is_the_script("lookup");
    deltas
        .iter()
        .for_each(|item_deltas| assert_split(item_deltas));

    let (_, completed) = events.last().unwrap();
    let response = &completed["response"];
    assert_eq!(response["status"], "completed");
    assert_eq!(response["output"], json!(items_done));
    assert_eq!(response["usage"], json_form["usage"]);
    // The JSON form says the same, item for item (ids aside).
    let strip_ids = |items: &Value| -> Vec<Value> {
        items
            .as_array()
            .unwrap()
            .iter()
            .map(|item| {
                let mut item = item.clone();
                item.as_object_mut().unwrap().remove("id");
                item.as_object_mut().unwrap().remove("call_id");
                item
            })
            .collect()
    };
    assert_eq!(
        strip_ids(&response["output"]),
        strip_ids(&json_form["output"])
    );
}

#[tokio::test]
async fn responses_string_input_can_script_too() {
    let address = start().await;
    let request = json!({ "model": MODEL, "input": "[[tool]]{\"q\":\"x\"}" });
    let body = post(address, "/v1/responses", request).await.json();
    let items = body["output"].as_array().unwrap();
    assert_eq!(items.len(), 1, "no message when the script has no content");
    assert_eq!(items[0]["type"], "function_call");
    assert_eq!(
        items[0]["name"], "echo",
        "no tools offered: the default name"
    );
    assert_eq!(items[0]["arguments"], r#"{"q":"x"}"#);
}
