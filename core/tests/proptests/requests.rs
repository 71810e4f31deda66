//! Request readers: `api::parse` for every API shape, `pipeline::route_request` (with and
//! without guardrails), `json::TopLevel` and the inline-image header reader, on arbitrary bytes
//! and on generated requests of every shape with wrong types, hostile strings, huge numbers,
//! duplicate keys and deep nesting.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use proptest::prelude::*;
use serde::de::IgnoredAny;
use serde_json::Value;
use sluice_core::api;
use sluice_core::canonical::ApiKind;
use sluice_core::config::Config;
use sluice_core::error::{ApiFlavor, GatewayError};
use sluice_core::json::{TopLevel, path_at};
use sluice_core::pipeline::route_request;
use sluice_core::tokens::image_size_from_data_url;

use crate::support::{Json, Text, check, json, nested, number, object, or_any, prose, text};

const APIS: [ApiKind; 5] = [
    ApiKind::ChatCompletions,
    ApiKind::Completions,
    ApiKind::Embeddings,
    ApiKind::Responses,
    ApiKind::Messages,
];

/// Models, a family, an adapter, aliases (exact and by prefix) and a context window small
/// enough that some requests exceed it.
const CATALOG: &str = r#""models": {
        "m": {"context_window": 2000},
        "llama*": {"tokenizer": "llama3"},
        "base": {"adapters": ["lora-a"], "default_max_output_tokens": 64}
    },
    "aliases": {"alias": "m", "gpt-*": "lora-a"}"#;

fn plain() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| Config::from_json(format!("{{{CATALOG}}}").as_bytes()).unwrap())
}

/// The default guardrail rule set (redacting emails, cards, phone numbers...; blocking keys
/// and injections), scanning every role.
pub fn guarded() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let json = format!(
            r#"{{{CATALOG}, "guardrails": {{"policies": {{"default": {{
                "roles": ["system", "user", "assistant", "tool", "tool_definitions"]}}}}}}}}"#
        );
        Config::from_json(json.as_bytes()).unwrap()
    })
}

fn api() -> impl Strategy<Value = ApiKind> {
    prop::sample::select(APIS.to_vec())
}

fn s(strategy: impl Strategy<Value = String> + 'static) -> BoxedStrategy<Json> {
    strategy.prop_map(|t| Json::str(&t)).boxed()
}

fn pick(values: &[&'static str]) -> BoxedStrategy<Json> {
    prop::sample::select(values.to_vec())
        .prop_map(Json::str)
        .boxed()
}

fn string_json() -> BoxedStrategy<Json> {
    text().prop_map(Json::Str).boxed()
}

fn num() -> BoxedStrategy<Json> {
    number().prop_map(Json::Num).boxed()
}

fn model() -> BoxedStrategy<Json> {
    or_any(prop_oneof![
        8 => pick(&["m", "alias", "llama-3.1-8b", "lora-a", "base", "gpt-4o"]),
        1 => pick(&["unknown-model", "", " ", "m\n", "é"]),
    ])
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// Image headers of every format the estimate reads (with random sizes), and noise.
fn image_bytes() -> impl Strategy<Value = Vec<u8>> {
    let header = prop::sample::select(vec![
        &b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"[..],
        b"GIF89a",
        b"\xff\xd8\xff\xe0\0\x10JFIF\0",
        b"\xff\xd8\xff\xc0\0\x11\x08",
        b"RIFF\0\0\0\0WEBPVP8 ",
        b"RIFF\0\0\0\0WEBPVP8L",
        b"RIFF\0\0\0\0WEBPVP8X",
        b"",
    ]);
    (header, prop::collection::vec(any::<u8>(), 0..40)).prop_map(|(h, tail)| [h, &tail].concat())
}

fn image_url_text() -> BoxedStrategy<String> {
    prop_oneof![
        image_bytes().prop_map(|b| format!("data:image/png;base64,{}", base64(&b))),
        image_bytes().prop_map(|b| base64(&b)),
        Just("https://example.com/cat.png".to_owned()),
        "data:[ -~]{0,20}",
    ]
    .boxed()
}

/// One content part, of any kind the readers know and some they do not.
fn part() -> BoxedStrategy<Json> {
    let image_url = prop_oneof![
        image_url_text().prop_map(|u| Json::str(&u)),
        (image_url_text(), pick(&["low", "high", "auto"]))
            .prop_map(|(u, d)| Json::obj(vec![("url", Json::str(&u)), ("detail", d)])),
    ]
    .boxed();
    object(vec![
        (
            "type",
            or_any(pick(&[
                "text",
                "input_text",
                "output_text",
                "refusal",
                "image_url",
                "image",
                "input_image",
                "tool_use",
                "server_tool_use",
                "tool_result",
                "document",
            ])),
        ),
        ("text", or_any(string_json())),
        ("refusal", string_json()),
        ("image_url", or_any(image_url)),
        (
            "source",
            image_bytes()
                .prop_map(|b| {
                    Json::obj(vec![
                        ("type", Json::str("base64")),
                        ("data", Json::str(&base64(&b))),
                    ])
                })
                .boxed(),
        ),
        ("name", or_any(string_json())),
        ("id", string_json()),
        ("input", json().boxed()),
        ("tool_use_id", string_json()),
        ("content", or_any(string_json())),
    ])
}

fn content() -> BoxedStrategy<Json> {
    or_any(prop_oneof![
        2 => string_json(),
        1 => prop::collection::vec(part(), 0..4).prop_map(Json::Arr),
    ])
}

fn tools() -> BoxedStrategy<Json> {
    let function = object(vec![
        ("name", or_any(string_json())),
        ("description", s(prose())),
        ("parameters", json().boxed()),
    ]);
    let tool = object(vec![
        ("type", or_any(pick(&["function", "web_search", "custom"]))),
        ("function", or_any(function)),
        ("name", string_json()),
        ("description", s(prose())),
        ("input_schema", json().boxed()),
    ]);
    or_any(prop::collection::vec(tool, 0..3).prop_map(Json::Arr))
}

fn stream_options() -> BoxedStrategy<Json> {
    or_any(object(vec![(
        "include_usage",
        or_any(any::<bool>().prop_map(Json::Bool)),
    )]))
}

fn boolean() -> BoxedStrategy<Json> {
    or_any(any::<bool>().prop_map(Json::Bool))
}

fn common() -> Vec<(&'static str, BoxedStrategy<Json>)> {
    vec![
        ("model", model()),
        ("stream", boolean()),
        ("stream_options", stream_options()),
        ("user", or_any(string_json())),
        ("metadata", or_any(object(vec![("user_id", string_json())]))),
        ("max_tokens", or_any(num())),
    ]
}

fn chat_message() -> BoxedStrategy<Json> {
    let call = object(vec![
        ("id", string_json()),
        (
            "function",
            or_any(object(vec![
                ("name", or_any(string_json())),
                ("arguments", string_json()),
            ])),
        ),
    ]);
    object(vec![
        (
            "role",
            or_any(pick(&[
                "system",
                "developer",
                "user",
                "assistant",
                "tool",
                "function",
                "moderator",
            ])),
        ),
        ("content", content()),
        (
            "tool_calls",
            or_any(prop::collection::vec(call, 0..3).prop_map(Json::Arr)),
        ),
        ("tool_call_id", string_json()),
    ])
}

fn messages(message: BoxedStrategy<Json>) -> BoxedStrategy<Json> {
    or_any(prop_oneof![
        12 => prop::collection::vec(message, 1..4).prop_map(Json::Arr),
        1 => Just(Json::Arr(Vec::new())),
    ])
}

fn prompt() -> BoxedStrategy<Json> {
    or_any(prop_oneof![
        string_json(),
        prop::collection::vec(string_json(), 0..3).prop_map(Json::Arr),
        prop::collection::vec(num(), 0..6).prop_map(Json::Arr),
        prop::collection::vec(prop::collection::vec(num(), 0..4).prop_map(Json::Arr), 0..3)
            .prop_map(Json::Arr),
    ])
}

fn responses_item() -> BoxedStrategy<Json> {
    object(vec![
        (
            "type",
            or_any(pick(&[
                "message",
                "function_call",
                "function_call_output",
                "reasoning",
            ])),
        ),
        (
            "role",
            or_any(pick(&["user", "assistant", "system", "developer", "x"])),
        ),
        ("content", content()),
        ("call_id", string_json()),
        ("name", string_json()),
        ("arguments", string_json()),
        ("output", content()),
    ])
}

fn anthropic_message() -> BoxedStrategy<Json> {
    object(vec![
        ("role", or_any(pick(&["user", "assistant", "system"]))),
        ("content", content()),
    ])
}

/// A request body in `api`'s shape, with any of its fields missing, mistyped or hostile.
pub fn request(api: ApiKind) -> BoxedStrategy<Json> {
    let mut fields = common();
    match api {
        ApiKind::ChatCompletions => {
            fields.push(("messages", messages(chat_message())));
            fields.push(("tools", tools()));
            fields.push(("max_completion_tokens", or_any(num())));
        }
        ApiKind::Completions => fields.push(("prompt", prompt())),
        ApiKind::Embeddings => fields.push(("input", prompt())),
        ApiKind::Responses => {
            fields.push(("instructions", or_any(string_json())));
            fields.push((
                "input",
                or_any(prop_oneof![
                    string_json(),
                    prop::collection::vec(responses_item(), 0..4).prop_map(Json::Arr),
                ]),
            ));
            fields.push(("tools", tools()));
            fields.push(("max_output_tokens", or_any(num())));
        }
        ApiKind::Messages => {
            fields.push(("system", content()));
            fields.push(("messages", messages(anthropic_message())));
            fields.push(("tools", tools()));
        }
    }
    object(fields)
}

/// An API and a generated body of its shape (sometimes another API's shape, sometimes nested
/// deep, sometimes spaced out, with hostile strings in one body in four), rendered.
fn api_and_body() -> impl Strategy<Value = (ApiKind, Json, Vec<u8>)> {
    let odd = |one_in: u8| (0..one_in).prop_map(|n| n == 0);
    (
        api(),
        api(),
        odd(10),
        odd(4),
        odd(10),
        0..100usize,
        any::<bool>(),
    )
        .prop_flat_map(|(api, other, swap, hostile, deep, depth, spaced)| {
            let shape = if swap { other } else { api };
            request(shape).prop_map(move |body| {
                let body = if hostile { body } else { body.sanitized() };
                let body = match body {
                    // Around the nesting limit (64) and past serde_json's (128).
                    Json::Obj(mut members) if deep => {
                        let nested = nested(Json::Null, depth + 40, depth % 2 == 0);
                        members.push((Text::plain("extra"), nested));
                        Json::Obj(members)
                    }
                    body => body,
                };
                let bytes = if spaced {
                    body.render_spaced()
                } else {
                    body.render()
                };
                (api, body, bytes)
            })
        })
}

/// A client error always has a 4xx status and a body in the API's error format.
fn assert_client_error(api: ApiKind, error: &GatewayError) -> Result<(), TestCaseError> {
    let status = error.status();
    prop_assert!(
        (400..500).contains(&status),
        "status {status} for {error:?}"
    );
    prop_assert!(
        !matches!(
            error,
            GatewayError::Internal(_) | GatewayError::NotConfigured
        ),
        "{error:?}"
    );
    let body: Value = serde_json::from_str(&error.body(api.flavor()))
        .map_err(|e| TestCaseError::fail(format!("error body is not JSON: {e}")))?;
    match api.flavor() {
        ApiFlavor::OpenAi => prop_assert!(body["error"]["message"].is_string(), "{body}"),
        ApiFlavor::Anthropic => {
            prop_assert_eq!(&body["type"], "error");
            prop_assert!(body["error"]["type"].is_string(), "{}", body);
        }
    }
    Ok(())
}

/// The same check for a parse error: an API-format error naming the problem.
fn assert_parse_error(api: ApiKind, error: &GatewayError) -> Result<(), TestCaseError> {
    prop_assert!(
        matches!(
            error,
            GatewayError::InvalidJson(_)
                | GatewayError::InvalidField { .. }
                | GatewayError::MissingField(_)
        ),
        "{error:?}"
    );
    prop_assert_eq!(error.status(), 400);
    if let GatewayError::InvalidField { param, .. } = error {
        prop_assert!(!param.is_empty());
    }
    assert_client_error(api, error)
}

#[test]
fn parse_never_panics_on_arbitrary_bytes() {
    let bytes = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        json().prop_map(|j| j.render()),
    ];
    check(
        "api::parse, arbitrary bytes",
        1.0,
        (api(), bytes),
        |(api, body)| {
            if let Err(error) = api::parse(api, &body) {
                assert_parse_error(api, &error)?;
            }
            Ok(())
        },
    );
}

#[test]
fn parse_reads_generated_requests_of_every_shape() {
    check(
        "api::parse, generated requests",
        1.0,
        api_and_body(),
        |(api, _, body)| {
            match api::parse(api, &body) {
                Ok(parsed) => {
                    prop_assert_eq!(parsed.request.api, api);
                    prop_assert!(!parsed.request.model.trim().is_empty());
                }
                Err(error) => assert_parse_error(api, &error)?,
            }
            Ok(())
        },
    );
}

/// The top-level keys of a generated object, each once (those written as plain text).
fn plain_keys(doc: &Json) -> Vec<String> {
    let Json::Obj(members) = doc else {
        return Vec::new();
    };
    let mut keys: Vec<String> = Vec::new();
    for (key, _) in members {
        if let Text::Plain(key) = key {
            if !keys.contains(key) {
                keys.push(key.clone());
            }
        }
    }
    keys
}

#[test]
fn top_level_keeps_every_other_byte() {
    let doc = prop_oneof![
        3 => prop::collection::vec((crate::support::key(), json()), 0..6).prop_map(Json::Obj),
        1 => json(),
    ];
    let strategy = (
        doc,
        prop::collection::vec(any::<u8>(), 0..64),
        any::<bool>(),
    );
    check(
        "json::TopLevel",
        1.0,
        strategy,
        |(doc, noise, use_noise)| {
            let body = if use_noise {
                noise
            } else {
                doc.render_spaced()
            };
            let Ok(top) = TopLevel::parse(&body) else {
                return Ok(());
            };
            // Replacing one member and adding another keeps the rest, in order, byte for byte.
            let replaced = top.with_fields(&[("model", "\"x\""), ("zz_added", "[1]")]);
            let again = TopLevel::parse(&replaced)
                .map_err(|e| TestCaseError::fail(format!("re-assembled body unreadable: {e:?}")))?;
            for key in plain_keys(&doc).iter().filter(|_| !use_noise) {
                let before = top.raw(key).map(|r| r.get());
                let after = again.raw(key).map(|r| r.get());
                prop_assert!(before.is_some(), "member {:?} lost", key);
                if key == "model" {
                    prop_assert_eq!(after, Some("\"x\""));
                } else if key != "zz_added" {
                    prop_assert_eq!(before, after, "member {:?}", key);
                }
            }
            prop_assert_eq!(again.raw("model").map(|r| r.get()), Some("\"x\""));
            // Typed reads of any member, whatever it holds, are values or field errors.
            for key in ["model", "messages", "stream", "max_tokens", "zz_added", "a"] {
                let _ = top.get::<u64>(key);
                let _ = top.get::<String>(key);
                let _ = top.get::<Vec<Value>>(key);
            }
            Ok(())
        },
    );
}

#[test]
fn error_paths_are_found_at_any_position() {
    let strategy = (
        prop_oneof![
            json().prop_map(|j| j.render_spaced()),
            prop::collection::vec(any::<u8>(), 0..64),
        ],
        0usize..12,
        0usize..200,
    );
    check("json::path_at", 1.0, strategy, |(body, line, column)| {
        // Where serde_json stops, and anywhere else.
        if let Err(error) = serde_json::from_slice::<Vec<(u64, String)>>(&body) {
            prop_assert!(!path_at(&body, error.line(), error.column()).is_empty());
        }
        prop_assert!(!path_at(&body, line, column).is_empty());
        Ok(())
    });
}

/// Every string value of a JSON value, in document order.
fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// `after` is `before` with only string values changed, each to its redaction in
/// `replacements`; keys, numbers and structure are the same.
fn same_but_redacted(
    before: &Value,
    after: &Value,
    replacements: &[(String, String)],
) -> Result<(), TestCaseError> {
    match (before, after) {
        (Value::String(b), Value::String(a)) if a != b => {
            prop_assert!(
                replacements.iter().any(|(o, r)| o == b && r == a),
                "string changed without a redaction: {:?} -> {:?}",
                b,
                a
            );
        }
        (Value::Array(b), Value::Array(a)) => {
            prop_assert_eq!(b.len(), a.len());
            for (b, a) in b.iter().zip(a) {
                same_but_redacted(b, a, replacements)?;
            }
        }
        (Value::Object(b), Value::Object(a)) => {
            prop_assert_eq!(b.keys().collect::<Vec<_>>(), a.keys().collect::<Vec<_>>());
            for (key, b) in b {
                same_but_redacted(b, &a[key], replacements)?;
            }
        }
        (b, a) => prop_assert_eq!(b, a),
    }
    Ok(())
}

#[test]
fn routing_keeps_the_body_but_for_its_edits() {
    let strategy = (api_and_body(), any::<bool>());
    check(
        "pipeline::route_request",
        1.0,
        strategy,
        |((api, doc, body), guard)| {
            let config = if guard { guarded() } else { plain() };
            let routed = match route_request(config, api, &body) {
                Ok(routed) => routed,
                Err(error) => return assert_client_error(api, &error),
            };
            let Some(sent) = &routed.body else {
                return Ok(());
            };
            // The body sent upstream: the client's top-level members in order, byte for byte,
            // except `model` (rewritten), `stream_options` (usage asked for) and redacted strings.
            let top = TopLevel::parse(&body)
                .map_err(|e| TestCaseError::fail(format!("routed, yet unreadable: {e:?}")))?;
            let new = TopLevel::parse(sent)
                .map_err(|e| TestCaseError::fail(format!("rewritten body unreadable: {e:?}")))?;
            let replacements = routed
                .guardrails
                .as_ref()
                .map(|v| v.replacements.clone())
                .unwrap_or_default();
            // Strings with lone surrogates or numbers past f64 pass through unread: compare those
            // bodies member by member only.
            let values = (
                serde_json::from_slice::<Value>(&body),
                serde_json::from_slice::<Value>(sent),
            );
            for key in plain_keys(&doc) {
                let (before, after) = (
                    top.raw(&key).map(|r| r.get()),
                    new.raw(&key).map(|r| r.get()),
                );
                match key.as_str() {
                    "model" => {
                        let model: Value =
                            serde_json::from_str(after.unwrap_or("null")).unwrap_or_default();
                        prop_assert_eq!(model, Value::from(routed.model.clone()));
                    }
                    "stream_options" if routed.strip_usage => {
                        let options: Value =
                            serde_json::from_str(after.unwrap_or("null")).unwrap_or_default();
                        prop_assert_eq!(&options["include_usage"], &Value::Bool(true));
                    }
                    _ if replacements.is_empty() => {
                        prop_assert_eq!(before, after, "member {:?}", key)
                    }
                    _ => {
                        if let (Ok(b), Ok(a)) = (&values.0, &values.1) {
                            same_but_redacted(&b[&key], &a[&key], &replacements)?;
                        }
                    }
                }
            }
            // Nothing is added but `stream_options`, nothing removed.
            let keys = |body: &[u8]| {
                serde_json::from_slice::<BTreeMap<String, IgnoredAny>>(body)
                    .map(|map| map.into_keys().collect::<Vec<_>>())
            };
            if let (Ok(before), Ok(after)) = (keys(&body), keys(sent)) {
                for key in &before {
                    prop_assert!(after.contains(key), "{:?} removed", key);
                }
                for key in &after {
                    prop_assert!(
                        before.contains(key) || key == "stream_options",
                        "{:?} added",
                        key
                    );
                }
            }
            if !replacements.is_empty() {
                if let Ok(after) = &values.1 {
                    // No redacted original is left in any string value.
                    let mut left = Vec::new();
                    strings(after, &mut left);
                    for (original, _) in &replacements {
                        prop_assert!(!left.contains(original), "unredacted text left");
                    }
                }
                // Routing the body sent upstream again finds nothing more to redact.
                let again = route_request(config, api, sent)
                    .map_err(|e| TestCaseError::fail(format!("redacted body refused: {e:?}")))?;
                let more = again.guardrails.map(|v| v.replacements).unwrap_or_default();
                prop_assert!(more.is_empty(), "a second pass redacts again: {:?}", more);
            }
            Ok(())
        },
    );
}

/// Personal data the default rules redact (never block), in prose.
fn prose_with_pii() -> impl Strategy<Value = String> {
    let pii = prop_oneof![
        "[a-z]{1,8}".prop_map(|user| format!("{user}@example.com")),
        Just("4111 1111 1111 1111".to_owned()),
        Just("4111 1111 1111 1111 12/27".to_owned()),
        Just("123-45-6789".to_owned()),
        Just("+44 20 7946 0958".to_owned()),
        Just("DE89 3704 0044 0532 0130 00".to_owned()),
    ];
    // Words only: a key or an injection phrase would block the request instead.
    let words = || {
        prop::collection::vec(
            prop::sample::select(vec![
                "the", "card", "is", "é", "日本", "😀", "call", "{", ",",
            ]),
            0..8,
        )
        .prop_map(|w| w.join(" "))
    };
    (words(), pii, words(), any::<bool>()).prop_map(|(before, pii, after, escaped)| {
        // Sometimes with characters JSON escapes around it.
        let glue = if escaped { "\"\n\t\\ " } else { " " };
        format!("{before}{glue}{pii}{glue}{after}")
    })
}

/// A valid request of `api`'s shape whose texts carry personal data.
fn request_with_pii(api: ApiKind) -> BoxedStrategy<Value> {
    let texts = prop::collection::vec(prose_with_pii(), 3);
    (texts, any::<bool>())
        .prop_map(move |(t, stream)| match api {
            ApiKind::ChatCompletions => serde_json::json!({
                "model": "m", "stream": stream,
                "messages": [
                    {"role": "system", "content": t[0]},
                    {"role": "user", "content": [{"type": "text", "text": t[1]}]},
                    {"role": "tool", "tool_call_id": "c1", "content": t[2]},
                ],
                "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
            }),
            ApiKind::Completions => {
                serde_json::json!({"model": "alias", "stream": stream, "prompt": [t[0], t[1]]})
            }
            ApiKind::Embeddings => serde_json::json!({"model": "m", "input": t[0]}),
            ApiKind::Responses => serde_json::json!({
                "model": "llama-3", "stream": stream, "instructions": t[0],
                "input": [{"role": "user", "content": t[1]},
                          {"type": "function_call_output", "call_id": "c", "output": t[2]}],
            }),
            ApiKind::Messages => serde_json::json!({
                "model": "gpt-4o", "max_tokens": 100, "system": t[0], "stream": stream,
                "messages": [{"role": "user", "content": [
                    {"type": "text", "text": t[1]},
                    {"type": "tool_result", "tool_use_id": "t", "content": t[2]},
                ]}],
            }),
        })
        .boxed()
}

#[test]
fn redaction_changes_only_the_redacted_strings() {
    let strategy = api().prop_flat_map(|api| (Just(api), request_with_pii(api)));
    check(
        "route_request, redactions",
        0.5,
        strategy,
        |(api, request)| {
            let body = serde_json::to_vec(&request).unwrap();
            let routed = match route_request(guarded(), api, &body) {
                Ok(routed) => routed,
                // A context window exceeded, or an injection phrase or key in the prose.
                Err(error) => return assert_client_error(api, &error),
            };
            let replacements = routed.guardrails.clone().unwrap_or_default().replacements;
            prop_assert!(!replacements.is_empty(), "nothing redacted in {}", request);
            let sent = routed.body.as_deref().unwrap_or_default();
            let after: Value = serde_json::from_slice(sent)
                .map_err(|e| TestCaseError::fail(format!("redacted body not JSON: {e}")))?;
            let mut expected = request.clone();
            if let Some(model) = expected.get_mut("model") {
                *model = after["model"].clone();
            }
            if routed.strip_usage {
                expected["stream_options"] = after["stream_options"].clone();
            }
            same_but_redacted(&expected, &after, &replacements)?;
            let mut left = Vec::new();
            strings(&after, &mut left);
            for (original, _) in &replacements {
                prop_assert!(!left.contains(original), "unredacted text left");
            }
            let again = route_request(guarded(), api, sent)
                .map_err(|e| TestCaseError::fail(format!("redacted body refused: {e:?}")))?;
            let more = again.guardrails.map(|v| v.replacements).unwrap_or_default();
            prop_assert!(more.is_empty(), "a second pass redacts again: {:?}", more);
            Ok(())
        },
    );
}

#[test]
fn image_headers_never_panic() {
    let strategy = prop_oneof![
        image_bytes().prop_map(|b| format!("data:image/png;base64,{}", base64(&b))),
        image_bytes().prop_map(|b| base64(&b)),
        "\\PC{0,40}",
        prop::collection::vec(any::<u8>(), 0..64).prop_map(|b| format!("data:,{}", base64(&b))),
    ];
    check("tokens::image_size_from_data_url", 1.0, strategy, |url| {
        let _ = image_size_from_data_url(&url);
        Ok(())
    });
}
