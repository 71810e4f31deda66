//! Translation between the OpenAI and Anthropic shapes (`translate`): requests, whole
//! responses and error bodies, on generated requests of both shapes, generated responses and
//! arbitrary bytes. Nothing panics; a translated request is one the gateway's own reader takes
//! in the target's shape; a generated response keeps its text, tool calls and usage.

use proptest::prelude::*;
use serde_json::Value;
use sluice_core::api;
use sluice_core::canonical::ApiKind;
use sluice_core::error::GatewayError;
use sluice_core::json::TopLevel;
use sluice_core::translate::{self, Shape, TargetRequest};
use sluice_core::usage::usage_from_json;

use crate::requests::request as generated_request;
use crate::shapes::{self, generation};
use crate::support::{check, json, prose};

fn shape() -> impl Strategy<Value = Shape> {
    prop::sample::select(vec![Shape::OpenAiChat, Shape::AnthropicMessages])
}

fn api_of(shape: Shape) -> ApiKind {
    match shape {
        Shape::OpenAiChat => ApiKind::ChatCompletions,
        Shape::AnthropicMessages => ApiKind::Messages,
    }
}

/// A client shape, a request body (of that shape, sometimes of the other, sometimes any bytes)
/// and a target shape.
fn client_body_target() -> impl Strategy<Value = (Shape, Vec<u8>, Shape)> {
    (shape(), shape(), shape(), 0..12u8, any::<bool>()).prop_flat_map(
        |(client, written_as, target, kind, hostile)| {
            let body = match kind {
                0 => prop::collection::vec(any::<u8>(), 0..128).boxed(),
                1 => json().prop_map(|j| j.render()).boxed(),
                _ => generated_request(api_of(if kind == 2 { written_as } else { client }))
                    .prop_map(move |j| if hostile { j } else { j.sanitized() }.render_spaced())
                    .boxed(),
            };
            body.prop_map(move |body| (client, body, target))
        },
    )
}

#[test]
fn translated_requests_read_as_the_target_shape() {
    check(
        "translate::request",
        1.0,
        client_body_target(),
        |(client, body, target_shape)| {
            let target = TargetRequest {
                shape: target_shape,
                model: "upstream-model",
                default_max_tokens: 4096,
            };
            match translate::request(client, &body, &target) {
                Ok(out) => {
                    // Valid JSON (numbers pass as the client wrote them, even past f64's range).
                    let top = TopLevel::parse(&out).map_err(|e| {
                        TestCaseError::fail(format!("translated body is not JSON: {e:?}"))
                    })?;
                    let model = top.get::<String>("model").ok().flatten();
                    prop_assert_eq!(model.as_deref(), Some("upstream-model"));
                    // A request the gateway reads in the client's shape reads in the target's
                    // once translated (but for an OpenAI conversation of system messages only,
                    // which leaves Anthropic no message: the target says so).
                    if client != target_shape && api::parse(api_of(client), &body).is_ok() {
                        match api::parse(api_of(target_shape), &out) {
                            Ok(parsed) => prop_assert_eq!(parsed.request.model, "upstream-model"),
                            Err(GatewayError::InvalidField { param, .. }) => {
                                prop_assert_eq!(param, "messages");
                            }
                            Err(other) => {
                                return Err(TestCaseError::fail(format!(
                                    "{other:?} for {}",
                                    String::from_utf8_lossy(&out)
                                )));
                            }
                        }
                    }
                }
                Err(error) => {
                    prop_assert_eq!(error.status(), 400, "{:?}", error);
                    // (An untranslatable top-level key may be "" itself.)
                    if let GatewayError::InvalidField { param, .. } = &error {
                        prop_assert!(!param.is_empty());
                    }
                }
            }
            Ok(())
        },
    );
}

/// What a response says: its text, its tool calls (name, arguments) and its usage (input,
/// output).
type Reading = (String, Vec<(String, Value)>, Option<(u64, u64)>);

fn reading(shape: Shape, body: &[u8]) -> Reading {
    let doc: Value = serde_json::from_slice(body).unwrap();
    let mut text = String::new();
    let mut calls = Vec::new();
    match shape {
        Shape::OpenAiChat => {
            let message = &doc["choices"][0]["message"];
            text.push_str(message["content"].as_str().unwrap_or_default());
            for call in message["tool_calls"].as_array().into_iter().flatten() {
                let arguments = call["function"]["arguments"].as_str().unwrap();
                calls.push((
                    call["function"]["name"].as_str().unwrap().to_owned(),
                    serde_json::from_str(arguments).unwrap(),
                ));
            }
        }
        Shape::AnthropicMessages => {
            for block in doc["content"].as_array().unwrap() {
                match block["type"].as_str() {
                    Some("text") => text.push_str(block["text"].as_str().unwrap()),
                    Some("tool_use") => calls.push((
                        block["name"].as_str().unwrap().to_owned(),
                        block["input"].clone(),
                    )),
                    _ => {}
                }
            }
        }
    }
    let usage = usage_from_json(body).and_then(|(u, _)| Some((u.input?, u.output?)));
    (text, calls, usage)
}

#[test]
fn generated_responses_keep_text_tool_calls_and_usage() {
    let strategy = generation().prop_filter("chat or messages", |g| {
        matches!(g.shape, shapes::Shape::Chat | shapes::Shape::Anthropic)
    });
    check("translate::response, generated", 1.0, strategy, |g| {
        let (target, client) = match g.shape {
            shapes::Shape::Chat => (Shape::OpenAiChat, Shape::AnthropicMessages),
            _ => (Shape::AnthropicMessages, Shape::OpenAiChat),
        };
        let body = g.body();
        let out = translate::response(target, client, body.as_bytes())
            .map_err(|e| TestCaseError::fail(format!("{e:?} for {body}")))?;
        prop_assert_eq!(reading(client, &out), reading(target, body.as_bytes()));
        Ok(())
    });
}

#[test]
fn responses_and_errors_never_panic_on_arbitrary_bytes() {
    let bytes = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        json().prop_map(|j| j.render_spaced()),
        generation().prop_map(|g| g.body().into_bytes()),
    ];
    check(
        "translate::response and error, arbitrary bytes",
        1.0,
        (bytes, shape(), shape(), 100..700u16),
        |(body, target, client, status)| {
            match translate::response(target, client, &body) {
                Ok(out) if target == client => prop_assert_eq!(&out, &body),
                Ok(out) => prop_assert!(serde_json::from_slice::<Value>(&out).is_ok()),
                Err(error) => {
                    prop_assert!(matches!(error, GatewayError::BadUpstreamResponse(_)));
                    prop_assert_eq!(error.status(), 502);
                }
            }
            let out = translate::error(target, client, status, &body);
            let doc: Value = serde_json::from_slice(&out)
                .map_err(|e| TestCaseError::fail(format!("error body is not JSON: {e}")))?;
            prop_assert!(doc["error"]["message"].is_string(), "{}", doc);
            if client == Shape::AnthropicMessages {
                prop_assert_eq!(&doc["type"], "error");
                prop_assert!(doc["error"]["type"].is_string(), "{}", doc);
            }
            Ok(())
        },
    );
}

/// Tool-call arguments or input: a small JSON object.
fn arguments() -> impl Strategy<Value = Value> {
    prop::collection::btree_map("[a-z]{1,6}", prose(), 0..3)
        .prop_map(|map| serde_json::to_value(map).unwrap())
}

const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

/// One turn of a conversation: the user speaking, the assistant answering, or the assistant
/// calling tools (names, arguments) and getting their results (texts).
#[derive(Debug, Clone)]
enum Turn {
    User(Vec<UserPart>),
    UserText(String),
    Assistant(String),
    Calls(Vec<(String, Value, String)>, Option<String>),
}

#[derive(Debug, Clone)]
enum UserPart {
    Text(String),
    InlineImage,
    LinkedImage,
}

fn turn() -> impl Strategy<Value = Turn> {
    let part = prop_oneof![
        3 => prose().prop_map(UserPart::Text),
        1 => Just(UserPart::InlineImage),
        1 => Just(UserPart::LinkedImage),
    ];
    prop_oneof![
        2 => prop::collection::vec(part, 1..4).prop_map(Turn::User),
        2 => prose().prop_map(Turn::UserText),
        2 => prose().prop_map(Turn::Assistant),
        1 => (
            prop::collection::vec(("[a-z_]{1,10}", arguments(), prose()), 1..3),
            prop::option::of(prose()),
        )
            .prop_map(|(calls, text)| Turn::Calls(calls, text)),
    ]
}

/// A translatable conversation with its system prompt, tools and options.
#[derive(Debug, Clone)]
struct Conversation {
    system: Option<String>,
    turns: Vec<Turn>,
    tools: Vec<(String, String)>,
    stream: Option<bool>,
    max_tokens: Option<u64>,
    user: Option<String>,
    stop: Vec<String>,
}

fn conversation() -> impl Strategy<Value = Conversation> {
    (
        prop::option::of(prose()),
        prop::collection::vec(turn(), 1..6),
        prop::collection::vec(("[a-z_]{1,10}", prose()), 0..3),
        prop::option::of(any::<bool>()),
        prop::option::of(2048u64..100_000),
        prop::option::of("[a-z0-9-]{1,20}"),
        prop::collection::vec(prose(), 0..3),
    )
        .prop_map(
            |(system, turns, tools, stream, max_tokens, user, stop)| Conversation {
                system,
                turns,
                tools,
                stream,
                max_tokens,
                user,
                stop,
            },
        )
}

const SCHEMA: &str = r#"{"type":"object","properties":{"q":{"type":"string"}}}"#;

impl Conversation {
    fn openai(&self) -> Value {
        let mut messages = Vec::new();
        if let Some(system) = &self.system {
            messages.push(serde_json::json!({"role": "system", "content": system}));
        }
        let mut call_id = 0;
        for turn in &self.turns {
            match turn {
                Turn::UserText(text) => {
                    messages.push(serde_json::json!({"role": "user", "content": text}));
                }
                Turn::User(parts) => {
                    let parts: Vec<Value> = parts
                        .iter()
                        .map(|part| match part {
                            UserPart::Text(text) => {
                                serde_json::json!({"type": "text", "text": text})
                            }
                            UserPart::InlineImage => serde_json::json!({"type": "image_url",
                                "image_url": {"url": format!("data:image/png;base64,{PNG}")}}),
                            UserPart::LinkedImage => serde_json::json!({"type": "image_url",
                                "image_url": {"url": "https://example.com/cat.png"}}),
                        })
                        .collect();
                    messages.push(serde_json::json!({"role": "user", "content": parts}));
                }
                Turn::Assistant(text) => {
                    messages.push(serde_json::json!({"role": "assistant", "content": text}));
                }
                Turn::Calls(calls, text) => {
                    let first = call_id;
                    let tool_calls: Vec<Value> = calls
                        .iter()
                        .map(|(name, arguments, _)| {
                            call_id += 1;
                            serde_json::json!({"id": format!("call_{call_id}"), "type": "function",
                                "function": {"name": name, "arguments": arguments.to_string()}})
                        })
                        .collect();
                    messages.push(serde_json::json!({"role": "assistant", "content": text,
                        "tool_calls": tool_calls}));
                    for (i, (_, _, result)) in calls.iter().enumerate() {
                        messages.push(serde_json::json!({"role": "tool",
                            "tool_call_id": format!("call_{}", first + i + 1), "content": result}));
                    }
                }
            }
        }
        let mut body = serde_json::json!({"model": "client-model", "messages": messages});
        if !self.tools.is_empty() {
            body["tools"] = self
                .tools
                .iter()
                .map(|(name, description)| {
                    serde_json::json!({"type": "function", "function": {"name": name,
                        "description": description,
                        "parameters": serde_json::from_str::<Value>(SCHEMA).unwrap()}})
                })
                .collect();
        }
        if let Some(stream) = self.stream {
            body["stream"] = stream.into();
        }
        if let Some(max) = self.max_tokens {
            body["max_completion_tokens"] = max.into();
        }
        if let Some(user) = &self.user {
            body["user"] = user.clone().into();
        }
        if !self.stop.is_empty() {
            body["stop"] = self.stop.clone().into();
        }
        body
    }

    fn anthropic(&self) -> Value {
        let mut messages: Vec<Value> = Vec::new();
        let mut call_id = 0;
        for turn in &self.turns {
            match turn {
                Turn::UserText(text) => {
                    messages.push(serde_json::json!({"role": "user", "content": text}));
                }
                Turn::User(parts) => {
                    let blocks: Vec<Value> = parts
                        .iter()
                        .map(|part| match part {
                            UserPart::Text(text) => {
                                serde_json::json!({"type": "text", "text": text})
                            }
                            UserPart::InlineImage => serde_json::json!({"type": "image", "source":
                                {"type": "base64", "media_type": "image/png", "data": PNG}}),
                            UserPart::LinkedImage => serde_json::json!({"type": "image", "source":
                                {"type": "url", "url": "https://example.com/cat.png"}}),
                        })
                        .collect();
                    messages.push(serde_json::json!({"role": "user", "content": blocks}));
                }
                Turn::Assistant(text) => {
                    messages.push(serde_json::json!({"role": "assistant", "content": text}));
                }
                Turn::Calls(calls, text) => {
                    let mut blocks = vec![serde_json::json!({"type": "thinking",
                        "thinking": "planning", "signature": "c2ln"})];
                    if let Some(text) = text.as_ref().filter(|t| !t.is_empty()) {
                        blocks.push(serde_json::json!({"type": "text", "text": text}));
                    }
                    let mut results = Vec::new();
                    for (name, input, result) in calls {
                        call_id += 1;
                        let id = format!("toolu_{call_id}");
                        blocks.push(serde_json::json!({"type": "tool_use", "id": id,
                            "name": name, "input": input}));
                        results.push(serde_json::json!({"type": "tool_result",
                            "tool_use_id": id, "content": result}));
                    }
                    messages.push(serde_json::json!({"role": "assistant", "content": blocks}));
                    messages.push(serde_json::json!({"role": "user", "content": results}));
                }
            }
        }
        let mut body = serde_json::json!({"model": "client-model", "messages": messages,
            "max_tokens": self.max_tokens.unwrap_or(1024)});
        if let Some(system) = &self.system {
            body["system"] = system.clone().into();
        }
        if !self.tools.is_empty() {
            body["tools"] = self
                .tools
                .iter()
                .map(|(name, description)| {
                    serde_json::json!({"name": name, "description": description,
                        "input_schema": serde_json::from_str::<Value>(SCHEMA).unwrap()})
                })
                .collect();
        }
        if let Some(stream) = self.stream {
            body["stream"] = stream.into();
        }
        if let Some(user) = &self.user {
            body["metadata"] = serde_json::json!({"user_id": user});
        }
        if !self.stop.is_empty() {
            body["stop_sequences"] = self.stop.clone().into();
        }
        body
    }
}

/// Text segments by role, as every later stage reads them (but empty ones: an assistant's empty
/// text beside its tool calls is not sent to Anthropic, which refuses empty text blocks).
fn segments(shape: Shape, body: &[u8]) -> Result<Vec<(String, String)>, TestCaseError> {
    let parsed = api::parse(api_of(shape), body)
        .map_err(|e| TestCaseError::fail(format!("{e:?} for {}", String::from_utf8_lossy(body))))?;
    Ok(parsed
        .request
        .segments()
        .filter(|s| !s.text.is_empty())
        .map(|s| (format!("{:?}", s.role), s.text.to_owned()))
        .collect())
}

#[test]
fn conversations_read_the_same_in_both_shapes_and_back() {
    check(
        "translate::request, generated conversations",
        0.5,
        (conversation(), shape()),
        |(conversation, client)| {
            let body = match client {
                Shape::OpenAiChat => conversation.openai(),
                Shape::AnthropicMessages => conversation.anthropic(),
            }
            .to_string();
            let other = match client {
                Shape::OpenAiChat => Shape::AnthropicMessages,
                Shape::AnthropicMessages => Shape::OpenAiChat,
            };
            let there = TargetRequest {
                shape: other,
                model: "upstream-model",
                default_max_tokens: 1024,
            };
            let back = TargetRequest {
                shape: client,
                ..there
            };
            let out = translate::request(client, body.as_bytes(), &there)
                .map_err(|e| TestCaseError::fail(format!("{e:?} for {body}")))?;
            let again = translate::request(other, &out, &back)
                .map_err(|e| TestCaseError::fail(format!("{e:?} for {body}")))?;
            let original = segments(client, body.as_bytes())?;
            prop_assert_eq!(&segments(other, &out)?, &original);
            prop_assert_eq!(&segments(client, &again)?, &original);
            Ok(())
        },
    );
}
