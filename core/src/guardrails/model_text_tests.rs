//! Every text a model produces is guarded, JSON and streamed alike: tool-call arguments,
//! reasoning and the answer, in the shapes of OpenAI chat, Anthropic messages and the Responses
//! API (fixtures in `response_text::fixtures`), at every SSE split point.

#[cfg(target_family = "wasm")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use std::collections::BTreeMap;

use super::*;
use crate::error::ApiFlavor;
use crate::response_text::fixtures::{self, Generation, Texts};

/// Guardrails whose policy applies `response_rules` to responses (`None`: the default rule
/// set, where cards, addresses and phones are redacted and keys and private keys block).
fn build(response_rules: Option<&[&str]>) -> Guardrails {
    let policies = response_rules
        .map(|rules| {
            vec![PolicySpec {
                response_rules: Some(
                    rules
                        .iter()
                        .map(|r| ((*r).to_owned(), Action::Redact))
                        .collect(),
                ),
                ..PolicySpec::default_named("default")
            }]
        })
        .unwrap_or_default();
    Guardrails::build(GuardrailsSpec {
        policies,
        models: BTreeMap::new(),
        tenants: BTreeMap::new(),
        routes: BTreeMap::new(),
        deny: Vec::new(),
        injection_phrases: BTreeMap::new(),
        injection_threshold: 1.0,
        stream_holdback_bytes: 64,
    })
    .unwrap()
}

fn guardrails() -> Guardrails {
    build(None)
}

fn policy(g: &Guardrails) -> &Policy {
    g.response_policy(g.default_policy).unwrap()
}

/// Runs a stream through a guard in two chunks cut at `split`.
fn guard_stream(
    g: &Guardrails,
    stream: &str,
    split: usize,
    flavor: ApiFlavor,
) -> (String, StreamGuard) {
    let mut guard = StreamGuard::new(g.default_policy, g.stream_holdback_bytes, flavor);
    let bytes = stream.as_bytes();
    let mut out = guard.chunk(g, &bytes[..split], false);
    out.extend(guard.chunk(g, &bytes[split..], true));
    (String::from_utf8(out).unwrap(), guard)
}

/// What each text of `g` must become: each whole text guarded on its own.
fn expected(g: &Guardrails, generation: &Generation, compact_arguments: bool) -> Texts {
    let mut texts = generation.texts();
    for (key, text) in texts.iter_mut() {
        let reading = if key.ends_with(".arguments") {
            Reading::Json(json_text::Lexer::default())
        } else {
            Reading::Plain
        };
        match g.guard_text(policy(g), text, reading, &mut Hits::default()) {
            TextVerdict::Clean => {}
            TextVerdict::Redacted(redacted) => *text = redacted,
            TextVerdict::Blocked(rule) => panic!("blocked by {}", g.rule_id(rule)),
        }
        if compact_arguments && key.ends_with(".arguments") {
            let value: serde_json::Value = serde_json::from_str(text)
                .unwrap_or_else(|e| panic!("redacted arguments are not JSON: {e}: {text}"));
            *text = value.to_string();
        }
    }
    texts
}

fn secrets() -> Generation {
    Generation {
        reasoning: "The card is 4111 1111 1111 1111, mail bob@example.com.".into(),
        content: "Done: charged, receipt to bob@example.com.".into(),
        tools: vec![
            (
                "charge_card".into(),
                r#"{"card": "4111 1111 1111 1111", "email": "bob\u0040example.com", "note": "call +44 20 7946 0958\nthanks"}"#
                    .into(),
            ),
            ("notify".into(), r#"{"to":"alice@example.org","amount":12}"#.into()),
        ],
    }
}

type Shape = (
    fn(&Generation) -> String,
    fn(&Generation, usize) -> String,
    ApiFlavor,
    bool,
);

const SHAPES: [Shape; 3] = [
    (
        fixtures::openai_json,
        fixtures::openai_stream,
        ApiFlavor::OpenAi,
        false,
    ),
    (
        fixtures::anthropic_json,
        fixtures::anthropic_stream,
        ApiFlavor::Anthropic,
        true,
    ),
    (
        fixtures::responses_json,
        fixtures::responses_stream,
        ApiFlavor::OpenAi,
        false,
    ),
];

/// Short texts for the every-split-point runs: a card in reasoning, an address in arguments.
fn short_secrets() -> Generation {
    Generation {
        reasoning: "card 4111 1111 1111 1111 ok".into(),
        content: String::new(),
        tools: vec![("f".into(), r#"{"to": "bob@example.com"}"#.into())],
    }
}

#[test]
fn tool_arguments_and_reasoning_are_redacted_in_json_and_in_streams_alike() {
    let g = guardrails();
    for (json, stream, flavor, compact) in SHAPES {
        for (generation, sizes, every_split) in [
            (short_secrets(), &[6][..], true),
            // Size 1: every match is split across many deltas of its channel.
            (secrets(), &[1, 2, 3, 5, 8, 1000][..], false),
        ] {
            let want = expected(&g, &generation, compact);
            for secret in ["4111 1111", "bob@", "bob\\u0040", "alice@", "7946"] {
                assert!(!want.values().any(|t| t.contains(secret)), "{want:?}");
            }
            let body = json(&generation);
            let JsonVerdict::Redacted(out) =
                g.guard_json_response(policy(&g), body.as_bytes(), &mut Hits::default())
            else {
                panic!("not redacted: {body}");
            };
            let out = String::from_utf8(out).unwrap();
            assert_eq!(fixtures::texts_of_json(&out), want, "{out}");
            for &size in sizes {
                let stream = stream(&generation, size);
                let step = if every_split { 1 } else { stream.len() / 3 };
                for split in (0..=stream.len()).step_by(step) {
                    let (out, guard) = guard_stream(&g, &stream, split, flavor);
                    assert!(!guard.is_blocked());
                    assert_eq!(
                        fixtures::texts_of_stream(&out),
                        want,
                        "size {size} split {split}"
                    );
                    assert_eq!(guard.held(), 0);
                }
            }
        }
    }
}

#[test]
fn completions_are_guarded_in_json_and_in_streams_alike() {
    let g = guardrails();
    let generation = Generation {
        content: "mail bob@example.com, card 4111 1111 1111 1111.".into(),
        ..Generation::default()
    };
    let want = expected(&g, &generation, false);
    let body = fixtures::completions_json(&generation);
    let JsonVerdict::Redacted(out) =
        g.guard_json_response(policy(&g), body.as_bytes(), &mut Hits::default())
    else {
        panic!("not redacted");
    };
    assert_eq!(
        fixtures::texts_of_json(&String::from_utf8(out).unwrap()),
        want
    );
    let stream = fixtures::completions_stream(&generation, 3);
    for split in 0..=stream.len() {
        let (out, _) = guard_stream(&g, &stream, split, ApiFlavor::OpenAi);
        assert_eq!(fixtures::texts_of_stream(&out), want, "split {split}");
    }
}

#[test]
fn a_key_in_tool_arguments_or_reasoning_blocks_json_and_ends_streams() {
    let g = guardrails();
    let key = "AKIAIOSFODNN7EXAMPLE";
    let in_arguments = Generation {
        content: "Up.".into(),
        tools: vec![("upload".into(), format!(r#"{{"k": "{key}", "more": 1}}"#))],
        ..Generation::default()
    };
    let in_reasoning = Generation {
        reasoning: format!("use {key} then more"),
        content: "Up.".into(),
        ..Generation::default()
    };
    for generation in [in_arguments, in_reasoning] {
        for (json, stream, flavor, _) in SHAPES {
            let body = json(&generation);
            let mut hits = Hits::default();
            assert_eq!(
                g.guard_json_response(policy(&g), body.as_bytes(), &mut hits),
                JsonVerdict::Blocked("aws_access_key".into())
            );
            let stream = stream(&generation, 4);
            let step = if flavor == ApiFlavor::Anthropic {
                1
            } else {
                13
            };
            for split in (0..=stream.len()).step_by(step) {
                let (out, guard) = guard_stream(&g, &stream, split, flavor);
                assert!(guard.is_blocked(), "split {split}");
                assert!(!out.contains("AKIA") && !out.contains("more"), "{out}");
                let events = fixtures::events(&out);
                let (_, last) = events.last().unwrap();
                let message = last
                    .pointer("/error/message")
                    .and_then(|m| m.as_str())
                    .unwrap();
                assert!(message.contains("aws_access_key"), "{last}");
                assert_eq!(
                    guard
                        .hits
                        .0
                        .get(&(g.rule_index("aws_access_key").unwrap(), Action::Block)),
                    Some(&1)
                );
            }
        }
    }
}

#[test]
fn escaped_and_bare_secrets_in_arguments_are_found_and_the_arguments_stay_json() {
    // Every rule redacts here (a private key too), to see the redacted arguments.
    let g = build(Some(&["private_key", "email", "credit_card", "phone"]));
    let pem = "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\\nBKcwggSjAgEAAoIBAQC7\\n-----END PRIVATE KEY-----";
    let arguments = format!(
        r#"{{"key": "{pem}", "mail": "bob\u0040example.com", "card": 4111111111111111, "list": ["+44 20 7946 0958", 1]}}"#
    );
    let generation = Generation {
        content: "ok".into(),
        tools: vec![("store".into(), arguments)],
        ..Generation::default()
    };
    for (json, stream, flavor, _) in SHAPES {
        let check = |arguments: &str, at: &str| {
            let value: serde_json::Value = serde_json::from_str(arguments)
                .unwrap_or_else(|e| panic!("{at}: arguments not JSON: {e}: {arguments}"));
            for secret in ["MIIE", "bob", "example", "4111", "7946"] {
                assert!(!arguments.contains(secret), "{at}: {arguments}");
            }
            assert_eq!(value["card"], "[CREDIT_CARD]", "{at}");
            assert_eq!(value["key"], "[PRIVATE_KEY]", "{at}");
            assert_eq!(value["list"][1], 1, "{at}");
        };
        let body = json(&generation);
        let JsonVerdict::Redacted(out) =
            g.guard_json_response(policy(&g), body.as_bytes(), &mut Hits::default())
        else {
            panic!("not redacted: {body}");
        };
        let texts = fixtures::texts_of_json(&String::from_utf8(out).unwrap());
        check(&texts["tool.0.arguments"], "json");
        for size in [1, 3, 7] {
            let stream = stream(&generation, size);
            for split in (0..=stream.len()).step_by(stream.len() / 5) {
                let (out, _) = guard_stream(&g, &stream, split, flavor);
                let texts = fixtures::texts_of_stream(&out);
                check(
                    &texts["tool.0.arguments"],
                    &format!("size {size} split {split}"),
                );
            }
        }
    }
}

#[test]
fn texts_of_different_channels_are_never_read_as_one() {
    let g = guardrails();
    // `bob` ends the answer; `@example.com` opens the reasoning and a tool's arguments: no
    // address anywhere, so nothing is redacted.
    let generation = Generation {
        reasoning: "@example.com is the domain".into(),
        content: "write to bob".into(),
        tools: vec![("f".into(), r#"{"d": "@example.com"}"#.into())],
    };
    for (_, stream, flavor, compact) in SHAPES {
        let want = expected(&g, &generation, compact);
        assert_eq!(want, {
            let mut t = generation.texts();
            if compact {
                for (k, v) in t.iter_mut() {
                    if k.ends_with(".arguments") {
                        *v = serde_json::from_str::<serde_json::Value>(v)
                            .unwrap()
                            .to_string();
                    }
                }
            }
            t
        });
        let stream = stream(&generation, 2);
        let (out, _) = guard_stream(&g, &stream, stream.len() / 2, flavor);
        assert_eq!(fixtures::texts_of_stream(&out), want);
    }
}

/// Two tool calls streamed at once, their chunks alternating (OpenAI `parallel_tool_calls`),
/// each with a card split across its chunks: each call has its own hold-back.
#[test]
fn interleaved_tool_calls_have_their_own_hold_back() {
    let g = guardrails();
    let calls = [
        r#"{"card": "4111 1111 1111 1111"}"#,
        r#"{"card": "5500 0000 0000 0004", "x": 1}"#,
    ];
    let mut stream = String::new();
    let pieces: Vec<Vec<String>> = calls.iter().map(|c| fixtures::pieces(c, 5)).collect();
    for (i, name) in ["a", "b"].iter().enumerate() {
        stream.push_str(&format!(
            "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"tool_calls\":[{{\"index\":{i},\"id\":\"call_{i}\",\"type\":\"function\",\"function\":{{\"name\":\"{name}\",\"arguments\":\"\"}}}}]}},\"finish_reason\":null}}]}}\n\n"
        ));
    }
    for round in 0..pieces.iter().map(Vec::len).max().unwrap() {
        for (i, call) in pieces.iter().enumerate() {
            if let Some(piece) = call.get(round) {
                let call = serde_json::json!({"index": i, "function": {"arguments": piece}});
                stream.push_str(&format!(
                    "data: {}\n\n",
                    serde_json::json!({"choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": null}]})
                ));
            }
        }
    }
    stream.push_str("data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n");
    for split in 0..=stream.len() {
        let (out, _) = guard_stream(&g, &stream, split, ApiFlavor::OpenAi);
        let texts = fixtures::texts_of_stream(&out);
        assert_eq!(
            texts["tool.0.arguments"], r#"{"card": "[CREDIT_CARD]"}"#,
            "split {split}"
        );
        assert_eq!(
            texts["tool.1.arguments"], r#"{"card": "[CREDIT_CARD]", "x": 1}"#,
            "split {split}"
        );
    }
}

#[test]
fn events_that_are_not_plain_json_lines_are_guarded_too() {
    let g = guardrails();
    // Data that is not JSON, and JSON split over two data lines.
    let stream = "data: mail bob@example.com now\n\ndata: {\"choices\":[{\"index\":0,\n\
                  data: \"delta\":{\"content\":\"card 4111 1111 1111 1111 ok\"},\"finish_reason\":\"stop\"}]}\n\n\
                  data: [DONE]\n\n";
    for split in 0..=stream.len() {
        let (out, _) = guard_stream(&g, stream, split, ApiFlavor::OpenAi);
        assert!(
            !out.contains("bob@") && !out.contains("4111"),
            "split {split}: {out}"
        );
        assert!(
            out.contains("[EMAIL]") && out.contains("card [CREDIT_CARD] ok"),
            "{out}"
        );
    }
    // A string that does not decode (a bad escape): the event is read as one text.
    let stream = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"mail bob@example.com \\x\"}}]}\n\n";
    let (out, _) = guard_stream(&g, stream, 0, ApiFlavor::OpenAi);
    assert!(!out.contains("bob@") && out.contains("[EMAIL]"), "{out}");
    // A JSON body that is not JSON at all is guarded as one text.
    let mut hits = Hits::default();
    assert_eq!(
        g.guard_json_response(policy(&g), b"mail bob@example.com", &mut hits),
        JsonVerdict::Redacted(b"mail [EMAIL]".to_vec())
    );
}
