//! Responses of every API, as the real services and vLLM shape them (fields, order, escapes),
//! built from one generation so a JSON body and its stream carry the same texts; and the
//! client's side: the texts an SDK would assemble from a body or a stream.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// What a model generated: reasoning, an answer and tool calls (name, arguments JSON text).
#[derive(Debug, Clone, Default)]
pub struct Generation {
    pub reasoning: String,
    pub content: String,
    pub tools: Vec<(String, String)>,
}

/// The texts a client ends up with, keyed like `content`, `reasoning`, `tool.0.name`,
/// `tool.0.arguments`.
pub type Texts = BTreeMap<String, String>;

impl Generation {
    pub fn texts(&self) -> Texts {
        let mut texts = Texts::new();
        if !self.reasoning.is_empty() {
            texts.insert("reasoning".into(), self.reasoning.clone());
        }
        if !self.content.is_empty() {
            texts.insert("content".into(), self.content.clone());
        }
        for (i, (name, arguments)) in self.tools.iter().enumerate() {
            texts.insert(format!("tool.{i}.name"), name.clone());
            texts.insert(format!("tool.{i}.arguments"), arguments.clone());
        }
        texts
    }
}

/// `text` in pieces of `size` characters (one piece per event, as tokens come).
pub fn pieces(text: &str, size: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars
        .chunks(size.max(1))
        .map(|c| c.iter().collect())
        .collect()
}

fn sse(out: &mut String, event: Option<&str>, data: &Value) {
    if let Some(event) = event {
        out.push_str(&format!("event: {event}\n"));
    }
    out.push_str(&format!("data: {data}\n\n"));
}

/// An OpenAI chat completion (vLLM's `reasoning_content`).
pub fn openai_json(g: &Generation) -> String {
    let mut message =
        json!({"role": "assistant", "content": null, "refusal": null, "annotations": []});
    if !g.reasoning.is_empty() {
        message["reasoning_content"] = json!(g.reasoning);
    }
    if !g.content.is_empty() {
        message["content"] = json!(g.content);
    }
    if !g.tools.is_empty() {
        message["tool_calls"] = g
            .tools
            .iter()
            .enumerate()
            .map(|(i, (name, arguments))| {
                json!({"id": format!("call_{i}abc"), "type": "function",
                       "function": {"name": name, "arguments": arguments}})
            })
            .collect();
    }
    json!({
        "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG", "object": "chat.completion",
        "created": 1_741_570_283, "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "message": message, "logprobs": null,
                     "finish_reason": if g.tools.is_empty() { "stop" } else { "tool_calls" }}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42},
        "service_tier": "default", "system_fingerprint": "fp_fc9f1d7035"
    })
    .to_string()
}

fn openai_chunk(choice: Value) -> Value {
    json!({"id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG", "object": "chat.completion.chunk",
           "created": 1_741_570_283, "model": "gpt-4o-2024-08-06",
           "system_fingerprint": "fp_fc9f1d7035", "choices": [choice]})
}

/// The same as an OpenAI chat stream, `size` characters per delta.
pub fn openai_stream(g: &Generation, size: usize) -> String {
    let mut out = String::new();
    let delta = |d: Value| json!({"index": 0, "delta": d, "logprobs": null, "finish_reason": null});
    sse(
        &mut out,
        None,
        &openai_chunk(delta(
            json!({"role": "assistant", "content": "", "refusal": null}),
        )),
    );
    for piece in pieces(&g.reasoning, size) {
        sse(
            &mut out,
            None,
            &openai_chunk(delta(json!({"reasoning_content": piece}))),
        );
    }
    for piece in pieces(&g.content, size) {
        sse(
            &mut out,
            None,
            &openai_chunk(delta(json!({"content": piece}))),
        );
    }
    for (i, (name, arguments)) in g.tools.iter().enumerate() {
        let call = json!({"index": i, "id": format!("call_{i}abc"), "type": "function",
                          "function": {"name": name, "arguments": ""}});
        sse(
            &mut out,
            None,
            &openai_chunk(delta(json!({"tool_calls": [call]}))),
        );
        for piece in pieces(arguments, size) {
            let call = json!({"index": i, "function": {"arguments": piece}});
            sse(
                &mut out,
                None,
                &openai_chunk(delta(json!({"tool_calls": [call]}))),
            );
        }
    }
    let finish = if g.tools.is_empty() {
        "stop"
    } else {
        "tool_calls"
    };
    sse(
        &mut out,
        None,
        &openai_chunk(json!({"index": 0, "delta": {}, "logprobs": null, "finish_reason": finish})),
    );
    out.push_str("data: [DONE]\n\n");
    out
}

/// An Anthropic message: thinking, text, tool_use blocks (`input` is a JSON object).
pub fn anthropic_json(g: &Generation) -> String {
    let mut content = Vec::new();
    if !g.reasoning.is_empty() {
        content.push(json!({"type": "thinking", "thinking": g.reasoning, "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"}));
    }
    if !g.content.is_empty() {
        content.push(json!({"type": "text", "text": g.content}));
    }
    for (i, (name, arguments)) in g.tools.iter().enumerate() {
        let input: Value = serde_json::from_str(arguments).unwrap_or(json!({}));
        content.push(json!({"type": "tool_use", "id": format!("toolu_0{i}A09q90qw90lq917835lq9"), "name": name, "input": input}));
    }
    json!({
        "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF", "type": "message", "role": "assistant",
        "model": "claude-sonnet-4-5-20250929", "content": content,
        "stop_reason": if g.tools.is_empty() { "end_turn" } else { "tool_use" },
        "stop_sequence": null,
        "usage": {"input_tokens": 472, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 0, "output_tokens": 89}
    })
    .to_string()
}

/// The same as an Anthropic stream, `size` characters per delta.
pub fn anthropic_stream(g: &Generation, size: usize) -> String {
    let mut out = String::new();
    sse(
        &mut out,
        Some("message_start"),
        &json!({"type": "message_start", "message": {"id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
            "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 472, "output_tokens": 2}}}),
    );
    let mut index = 0;
    let mut block = |out: &mut String, start: Value, deltas: Vec<Value>| {
        sse(
            out,
            Some("content_block_start"),
            &json!({"type": "content_block_start", "index": index, "content_block": start}),
        );
        if index == 0 {
            sse(out, Some("ping"), &json!({"type": "ping"}));
        }
        for delta in deltas {
            sse(
                out,
                Some("content_block_delta"),
                &json!({"type": "content_block_delta", "index": index, "delta": delta}),
            );
        }
        sse(
            out,
            Some("content_block_stop"),
            &json!({"type": "content_block_stop", "index": index}),
        );
        index += 1;
    };
    if !g.reasoning.is_empty() {
        let mut deltas: Vec<Value> = pieces(&g.reasoning, size)
            .into_iter()
            .map(|p| json!({"type": "thinking_delta", "thinking": p}))
            .collect();
        deltas.push(json!({"type": "signature_delta", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"}));
        block(
            &mut out,
            json!({"type": "thinking", "thinking": "", "signature": ""}),
            deltas,
        );
    }
    if !g.content.is_empty() {
        let deltas = pieces(&g.content, size)
            .into_iter()
            .map(|p| json!({"type": "text_delta", "text": p}))
            .collect();
        block(&mut out, json!({"type": "text", "text": ""}), deltas);
    }
    for (i, (name, arguments)) in g.tools.iter().enumerate() {
        let mut deltas = vec![json!({"type": "input_json_delta", "partial_json": ""})];
        deltas.extend(
            pieces(arguments, size)
                .into_iter()
                .map(|p| json!({"type": "input_json_delta", "partial_json": p})),
        );
        block(
            &mut out,
            json!({"type": "tool_use", "id": format!("toolu_0{i}A09q90qw90lq917835lq9"), "name": name, "input": {}}),
            deltas,
        );
    }
    sse(
        &mut out,
        Some("message_delta"),
        &json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 89}}),
    );
    sse(
        &mut out,
        Some("message_stop"),
        &json!({"type": "message_stop"}),
    );
    out
}

fn responses_items(g: &Generation) -> Vec<Value> {
    let mut items = Vec::new();
    if !g.reasoning.is_empty() {
        items.push(
            json!({"id": "rs_6876cf02e0bc8192b74af0fb64b715ff", "type": "reasoning",
                          "summary": [{"type": "summary_text", "text": g.reasoning}]}),
        );
    }
    for (i, (name, arguments)) in g.tools.iter().enumerate() {
        items.push(
            json!({"id": format!("fc_{i}2a6f"), "type": "function_call", "status": "completed",
                          "arguments": arguments, "call_id": format!("call_{i}abc"), "name": name}),
        );
    }
    if !g.content.is_empty() {
        items.push(
            json!({"id": "msg_67ccd3acc8d48190a77525dc6de64b4104becb25c45c1d41",
            "type": "message", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": g.content, "annotations": []}]}),
        );
    }
    items
}

fn response_object(status: &str, output: Vec<Value>) -> Value {
    json!({"id": "resp_67ccd3a9da748190baa7f1570fe91ac604becb25c45c1d41", "object": "response",
           "created_at": 1_741_476_777, "status": status, "model": "gpt-4.1-2025-04-14",
           "output": output, "parallel_tool_calls": true, "text": {"format": {"type": "text"}},
           "instructions": null,
           "usage": {"input_tokens": 36, "output_tokens": 87, "total_tokens": 123}})
}

/// A Responses API response: reasoning summary, function calls, a message.
pub fn responses_json(g: &Generation) -> String {
    response_object("completed", responses_items(g)).to_string()
}

/// The same as a Responses API stream, `size` characters per delta.
pub fn responses_stream(g: &Generation, size: usize) -> String {
    let mut out = String::new();
    let mut seq = 0;
    let mut emit = |out: &mut String, kind: &str, mut data: Value| {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(seq);
        seq += 1;
        sse(out, Some(kind), &data);
    };
    emit(
        &mut out,
        "response.created",
        json!({"response": response_object("in_progress", vec![])}),
    );
    let items = responses_items(g);
    for (index, item) in items.iter().enumerate() {
        let mut added = item.clone();
        let kind = item["type"].as_str().unwrap().to_owned();
        let item_id = item["id"].clone();
        match kind.as_str() {
            "reasoning" => added["summary"] = json!([]),
            "function_call" => added["arguments"] = json!(""),
            _ => added["content"] = json!([]),
        }
        emit(
            &mut out,
            "response.output_item.added",
            json!({"output_index": index, "item": added}),
        );
        match kind.as_str() {
            "reasoning" => {
                let text = item["summary"][0]["text"].as_str().unwrap();
                emit(
                    &mut out,
                    "response.reasoning_summary_part.added",
                    json!({"item_id": item_id, "output_index": index, "summary_index": 0, "part": {"type": "summary_text", "text": ""}}),
                );
                for piece in pieces(text, size) {
                    emit(
                        &mut out,
                        "response.reasoning_summary_text.delta",
                        json!({"item_id": item_id, "output_index": index, "summary_index": 0, "delta": piece}),
                    );
                }
                emit(
                    &mut out,
                    "response.reasoning_summary_text.done",
                    json!({"item_id": item_id, "output_index": index, "summary_index": 0, "text": text}),
                );
                emit(
                    &mut out,
                    "response.reasoning_summary_part.done",
                    json!({"item_id": item_id, "output_index": index, "summary_index": 0, "part": {"type": "summary_text", "text": text}}),
                );
            }
            "function_call" => {
                let arguments = item["arguments"].as_str().unwrap();
                for piece in pieces(arguments, size) {
                    emit(
                        &mut out,
                        "response.function_call_arguments.delta",
                        json!({"item_id": item_id, "output_index": index, "delta": piece}),
                    );
                }
                emit(
                    &mut out,
                    "response.function_call_arguments.done",
                    json!({"item_id": item_id, "output_index": index, "arguments": arguments}),
                );
            }
            _ => {
                let text = item["content"][0]["text"].as_str().unwrap();
                emit(
                    &mut out,
                    "response.content_part.added",
                    json!({"item_id": item_id, "output_index": index, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}),
                );
                for piece in pieces(text, size) {
                    emit(
                        &mut out,
                        "response.output_text.delta",
                        json!({"item_id": item_id, "output_index": index, "content_index": 0, "delta": piece, "logprobs": []}),
                    );
                }
                emit(
                    &mut out,
                    "response.output_text.done",
                    json!({"item_id": item_id, "output_index": index, "content_index": 0, "text": text, "logprobs": []}),
                );
                emit(
                    &mut out,
                    "response.content_part.done",
                    json!({"item_id": item_id, "output_index": index, "content_index": 0, "part": {"type": "output_text", "text": text, "annotations": []}}),
                );
            }
        }
        emit(
            &mut out,
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
        );
    }
    emit(
        &mut out,
        "response.completed",
        json!({"response": response_object("completed", items)}),
    );
    out
}

/// An OpenAI completions response and stream (content only).
pub fn completions_json(g: &Generation) -> String {
    json!({"id": "cmpl-uqkvlQyYK7bGYrRHQ0eXlWi7", "object": "text_completion", "created": 1_589_478_378,
           "model": "gpt-3.5-turbo-instruct",
           "choices": [{"text": g.content, "index": 0, "logprobs": null, "finish_reason": "stop"}],
           "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}})
    .to_string()
}

pub fn completions_stream(g: &Generation, size: usize) -> String {
    let mut out = String::new();
    let all = pieces(&g.content, size);
    for (i, piece) in all.iter().enumerate() {
        let finish = if i + 1 == all.len() {
            json!("stop")
        } else {
            Value::Null
        };
        sse(
            &mut out,
            None,
            &json!({"id": "cmpl-uqkvlQyYK7bGYrRHQ0eXlWi7", "object": "text_completion",
                    "created": 1_589_478_378, "model": "gpt-3.5-turbo-instruct",
                    "choices": [{"text": piece, "index": 0, "logprobs": null, "finish_reason": finish}]}),
        );
    }
    out.push_str("data: [DONE]\n\n");
    out
}

fn add(texts: &mut Texts, key: String, value: Option<&str>) {
    if let Some(value) = value {
        texts.entry(key).or_default().push_str(value);
    }
}

/// The texts of a JSON body (any API), as its client reads them. Tool arguments are given as
/// JSON text: Anthropic's `input` object re-serialized compactly.
pub fn texts_of_json(body: &str) -> Texts {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    let mut texts = Texts::new();
    if let Some(choice) = v.pointer("/choices/0") {
        let m = &choice["message"];
        add(&mut texts, "content".into(), m["content"].as_str());
        add(&mut texts, "content".into(), choice["text"].as_str());
        add(
            &mut texts,
            "reasoning".into(),
            m["reasoning_content"].as_str(),
        );
        for (i, call) in m["tool_calls"].as_array().into_iter().flatten().enumerate() {
            add(
                &mut texts,
                format!("tool.{i}.name"),
                call["function"]["name"].as_str(),
            );
            add(
                &mut texts,
                format!("tool.{i}.arguments"),
                call["function"]["arguments"].as_str(),
            );
        }
    }
    let mut tool = 0;
    for block in v["content"].as_array().into_iter().flatten() {
        add(&mut texts, "content".into(), block["text"].as_str());
        add(&mut texts, "reasoning".into(), block["thinking"].as_str());
        if block["type"] == "tool_use" {
            add(
                &mut texts,
                format!("tool.{tool}.name"),
                block["name"].as_str(),
            );
            let input = block["input"].to_string();
            add(&mut texts, format!("tool.{tool}.arguments"), Some(&input));
            tool += 1;
        }
    }
    for item in v["output"].as_array().into_iter().flatten() {
        for part in item["content"].as_array().into_iter().flatten() {
            add(&mut texts, "content".into(), part["text"].as_str());
        }
        for part in item["summary"].as_array().into_iter().flatten() {
            add(&mut texts, "reasoning".into(), part["text"].as_str());
        }
        if item["type"] == "function_call" {
            add(
                &mut texts,
                format!("tool.{tool}.name"),
                item["name"].as_str(),
            );
            add(
                &mut texts,
                format!("tool.{tool}.arguments"),
                item["arguments"].as_str(),
            );
            tool += 1;
        }
    }
    texts
}

/// The data of every event of a stream, each checked to be JSON (or `[DONE]`).
pub fn events(stream: &str) -> Vec<(Option<String>, Value)> {
    let mut out = Vec::new();
    for event in stream.split("\n\n").filter(|e| !e.is_empty()) {
        let name = event
            .lines()
            .find_map(|l| l.strip_prefix("event: "))
            .map(str::to_owned);
        let data: Vec<&str> = event
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .collect();
        assert_eq!(data.len(), 1, "one data line in {event:?}");
        if data[0] == "[DONE]" {
            continue;
        }
        let value: Value =
            serde_json::from_str(data[0]).unwrap_or_else(|e| panic!("{e}: {event:?}"));
        out.push((name, value));
    }
    out
}

/// The texts a client assembles from a stream (any API), as the SDKs do: deltas concatenated
/// per choice / tool call / block. Events that repeat a text whole (Responses `.done`) must
/// agree with the deltas.
pub fn texts_of_stream(stream: &str) -> Texts {
    let mut texts = Texts::new();
    // Anthropic block index and Responses output index to the key their text goes to.
    let mut blocks: BTreeMap<u64, String> = BTreeMap::new();
    let mut tools = 0;
    for (name, v) in events(stream) {
        if let Some(choice) = v.pointer("/choices/0") {
            let d = &choice["delta"];
            assert!(
                d.get("role").is_none() || texts.is_empty(),
                "role once: {v}"
            );
            add(&mut texts, "content".into(), d["content"].as_str());
            add(&mut texts, "content".into(), choice["text"].as_str());
            add(
                &mut texts,
                "reasoning".into(),
                d["reasoning_content"].as_str(),
            );
            for call in d["tool_calls"].as_array().into_iter().flatten() {
                let i = call["index"].as_u64().unwrap();
                assert!(
                    call.get("id").is_none() || !texts.contains_key(&format!("tool.{i}.name")),
                    "a tool call's id comes once: {v}"
                );
                add(
                    &mut texts,
                    format!("tool.{i}.name"),
                    call["function"]["name"].as_str(),
                );
                add(
                    &mut texts,
                    format!("tool.{i}.arguments"),
                    call["function"]["arguments"].as_str(),
                );
            }
        }
        let index = v["index"].as_u64().or(v["output_index"].as_u64());
        match name.as_deref() {
            Some("content_block_start") => {
                let block = &v["content_block"];
                let key = match block["type"].as_str() {
                    Some("thinking") => "reasoning".to_owned(),
                    Some("tool_use") => {
                        let key = format!("tool.{tools}.arguments");
                        add(
                            &mut texts,
                            format!("tool.{tools}.name"),
                            block["name"].as_str(),
                        );
                        tools += 1;
                        key
                    }
                    _ => "content".to_owned(),
                };
                blocks.insert(index.unwrap(), key);
            }
            Some("content_block_delta") => {
                let key = blocks[&index.unwrap()].clone();
                let d = &v["delta"];
                for field in ["text", "thinking", "partial_json"] {
                    add(&mut texts, key.clone(), d[field].as_str());
                }
            }
            Some("response.output_item.added") => {
                let item = &v["item"];
                let key = match item["type"].as_str() {
                    Some("reasoning") => "reasoning".to_owned(),
                    Some("function_call") => {
                        let key = format!("tool.{tools}.arguments");
                        add(
                            &mut texts,
                            format!("tool.{tools}.name"),
                            item["name"].as_str(),
                        );
                        tools += 1;
                        key
                    }
                    _ => "content".to_owned(),
                };
                blocks.insert(index.unwrap(), key);
            }
            Some(
                "response.output_text.delta"
                | "response.reasoning_summary_text.delta"
                | "response.function_call_arguments.delta",
            ) => {
                let key = blocks[&index.unwrap()].clone();
                add(&mut texts, key, v["delta"].as_str());
            }
            Some(
                "response.output_text.done"
                | "response.reasoning_summary_text.done"
                | "response.function_call_arguments.done",
            ) => {
                let key = &blocks[&index.unwrap()];
                let whole = v["text"].as_str().or(v["arguments"].as_str()).unwrap();
                assert_eq!(
                    texts.get(key).map(String::as_str).unwrap_or(""),
                    whole,
                    "{name:?} repeats the deltas"
                );
            }
            _ => {}
        }
    }
    texts.retain(|_, text| !text.is_empty());
    // Anthropic streams a tool's input as JSON text: compare it as the body gives it.
    for (key, text) in texts.iter_mut() {
        if key.ends_with(".arguments") && stream.contains("input_json_delta") {
            if let Ok(value) = serde_json::from_str::<Value>(text) {
                *text = value.to_string();
            }
        }
    }
    texts
}
