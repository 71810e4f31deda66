//! `StreamRead` against what the guard and the usage reader did when each split the stream on
//! its own (the guard's output read again by the reader): the same bytes for the client and the
//! same counts, at every split point, with each event read once.

#[cfg(target_family = "wasm")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use std::sync::Arc;

use crate::config::Config;
use crate::error::ApiFlavor;
use crate::guardrails::{Guardrails, StreamGuard};
use crate::response_text::reads;
use crate::tokens::Family;
use crate::usage::{ChunkAction, Counts, StreamReader};

use super::StreamRead;

/// The default rules (`guardrails: {}`): e-mail addresses redacted, AWS keys blocked.
fn guardrails() -> Arc<Guardrails> {
    let config = Config::from_json(br#"{"models":{"m":{"pool":"p"}},"guardrails":{}}"#).unwrap();
    Arc::clone(&config.guardrails.unwrap().0)
}

/// An OpenAI stream whose e-mail address spans three events, with the usage chunk the
/// gateway asked for when `usage`.
fn openai(usage: bool) -> String {
    let mut stream = String::new();
    for text in ["Write to ja", "ne@exam", "ple.com today", " or call."] {
        stream.push_str(&format!(
            "data: {}\n\n",
            serde_json::json!({"model":"m","choices":[{"index":0,"delta":{"content":text}}],"usage":null})
        ));
    }
    if usage {
        stream.push_str(&format!(
            "data: {}\n\n",
            serde_json::json!({"model":"m","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":11}})
        ));
    }
    stream.push_str("data: [DONE]\n\n");
    stream
}

/// An Anthropic stream with an AWS key split across two events: the guard ends it.
fn anthropic_blocked() -> String {
    let events = [
        (
            "message_start",
            serde_json::json!({"type":"message_start","message":{"model":"m","content":[],"usage":{"input_tokens":5,"output_tokens":1}}}),
        ),
        (
            "content_block_delta",
            serde_json::json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"the key AKIAIOSFODNN7"}}),
        ),
        (
            "content_block_delta",
            serde_json::json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"EXAMPLE is here"}}),
        ),
        (
            "message_delta",
            serde_json::json!({"type":"message_delta","usage":{"output_tokens":7}}),
        ),
        ("message_stop", serde_json::json!({"type":"message_stop"})),
    ];
    events
        .iter()
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect()
}

/// The client's bytes and the counts as the exchange read them before `StreamRead`: the guard
/// split the stream, the reader split the guard's output (the upstream's once it blocked).
fn two_readers(
    g: &Guardrails,
    guarded: bool,
    flavor: ApiFlavor,
    strip: bool,
    chunks: &[&[u8]],
) -> (Vec<u8>, Counts) {
    let policy = g.policy_for(None, None, "m");
    let mut guard = StreamGuard::new(policy, g.stream_holdback_bytes, flavor);
    let mut reader = StreamReader::new(Family::O200k, strip);
    let mut out = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let end = i + 1 == chunks.len();
        let input = if guarded {
            guard.chunk(g, chunk, end)
        } else {
            chunk.to_vec()
        };
        let blocked = guard.is_blocked();
        let read = reader.chunk(if blocked { chunk } else { &input }, end);
        match read {
            _ if blocked => out.extend_from_slice(&input),
            ChunkAction::Replace(bytes) => out.extend_from_slice(&bytes),
            ChunkAction::Pass => out.extend_from_slice(&input),
        }
    }
    (out, reader.finish(3))
}

/// The same through one `StreamRead`.
fn one_read(
    g: &Guardrails,
    guarded: bool,
    flavor: ApiFlavor,
    strip: bool,
    chunks: &[&[u8]],
) -> (Vec<u8>, Counts) {
    let policy = g.policy_for(None, None, "m");
    let mut guard = StreamGuard::new(policy, g.stream_holdback_bytes, flavor);
    let mut read = StreamRead::new(StreamReader::new(Family::O200k, strip));
    read.guard_with(&mut guard);
    let mut out = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let end = i + 1 == chunks.len();
        let rules = guarded.then_some((&mut guard, g));
        match read.chunk(rules, chunk, end) {
            Some(bytes) => out.extend_from_slice(&bytes),
            None => out.extend_from_slice(chunk),
        }
    }
    (out, read.finish(3))
}

#[test]
fn one_read_gives_what_two_readers_gave_at_every_split_point() {
    let g = guardrails();
    let cases = [
        (openai(true), ApiFlavor::OpenAi, true),
        (openai(false), ApiFlavor::OpenAi, false),
        (anthropic_blocked(), ApiFlavor::Anthropic, false),
    ];
    for (stream, flavor, strip) in &cases {
        let bytes = stream.as_bytes();
        // Every event but `[DONE]` is JSON to read.
        let events = stream.matches("\n\n").count() - usize::from(stream.contains("[DONE]"));
        for guarded in [false, true] {
            for at in 0..=bytes.len() {
                let chunks = [&bytes[..at], &bytes[at..]];
                let expected = two_readers(&g, guarded, *flavor, *strip, &chunks);
                let before = reads::so_far();
                let got = one_read(&g, guarded, *flavor, *strip, &chunks);
                let read = reads::so_far() - before;
                let case = format!("guarded {guarded}, split at {at}: {stream}");
                assert_eq!(
                    String::from_utf8_lossy(&got.0),
                    String::from_utf8_lossy(&expected.0),
                    "{case}"
                );
                if *flavor == ApiFlavor::Anthropic && guarded {
                    assert!(got.0.starts_with(b"event: message_start"), "{case}");
                    let out = String::from_utf8_lossy(&got.0);
                    assert!(out.contains("event: error\n"), "{case}");
                    assert!(!out.contains("AKIA"), "{case}");
                    // Once the guard blocked, the reader read the upstream's chunk, but its
                    // own splitter had only seen the guard's output: an event split by that
                    // chunk was lost (here the input count, at splits before the block). One
                    // splitter reads every upstream event whole.
                    assert_eq!((got.1.input, got.1.output), (5, 7), "{case}");
                    assert!(!got.1.estimated, "{case}");
                } else {
                    assert_eq!(got.1, expected.1, "{case}");
                }
                assert_eq!(read, events, "each event read once; {case}");
            }
        }
    }
}

#[test]
fn a_redacted_stream_is_counted_as_the_client_got_it() {
    let g = guardrails();
    let stream = openai(false);
    let bytes = stream.as_bytes();
    let (out, counts) = one_read(&g, true, ApiFlavor::OpenAi, false, &[bytes]);
    let out = String::from_utf8(out).unwrap();
    assert!(!out.contains("jane@"), "{out}");
    let (_, unguarded) = one_read(&g, false, ApiFlavor::OpenAi, false, &[bytes]);
    assert!(counts.estimated);
    assert_ne!(
        counts.output, unguarded.output,
        "the redacted text is counted"
    );
}

/// A whole JSON body: one read for the guard and the counts, which are those of the redacted
/// body the client gets (read again, as before).
#[test]
fn a_json_body_is_read_once_for_the_guard_and_the_counts() {
    use crate::guardrails::JsonVerdict;
    use crate::response_text::BodyRead;
    use crate::usage::{body_counts, output_estimate_json, usage_from_json};

    let g = guardrails();
    let policy = g.policy(g.policy_for(None, None, "m")).unwrap();
    let text = "Write to jane@example.com or call.";
    for usage in [true, false] {
        let mut body = serde_json::json!({
            "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
        });
        if usage {
            body["usage"] = serde_json::json!({"prompt_tokens": 9, "completion_tokens": 11});
        }
        let body = body.to_string();
        let before = reads::so_far();
        let read = BodyRead::new(body.as_bytes());
        let guarded = g.guard_json_read(policy, body.as_bytes(), &read, &mut Default::default());
        let counts = body_counts(Family::O200k, body.as_bytes(), &read, &guarded.replaced, 3);
        assert_eq!(reads::so_far() - before, 1);

        let JsonVerdict::Redacted(redacted) = guarded.verdict else {
            panic!("not redacted: {:?}", guarded.verdict)
        };
        let reported = usage_from_json(&redacted);
        let (usage, model) = reported.map_or((None, None), |(u, m)| (Some(u), m));
        let estimate = if usage.is_some() {
            0
        } else {
            output_estimate_json(Family::O200k, &redacted)
        };
        let mut expected = Counts::from_parts(usage, 3, estimate);
        expected.response_model = model;
        assert_eq!(counts, expected, "usage reported: {usage:?}");
        assert_eq!(counts.estimated, usage.is_none());
    }
}
