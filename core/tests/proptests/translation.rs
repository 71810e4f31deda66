//! Stream translation (`translate::StreamTranslator`) between OpenAI chat chunks and Anthropic
//! Messages events: generated streams give the same client stream however they are cut, with
//! every text and tool call intact; and whatever bytes come, the client gets a stream of its
//! own API that ends properly.

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::Value;
use sluice_core::translate::{Shape as Api, StreamTranslator};

use crate::shapes::{Generation, Shape, generation, line_ends};
use crate::support::{cuts, split};

/// What a client reads from a translated stream.
#[derive(Debug, Default, PartialEq, Eq)]
struct Read {
    content: String,
    reasoning: String,
    /// Name and arguments of each tool call.
    tools: Vec<(String, String)>,
    error: bool,
}

fn translate(target: Api, client: Api, pieces: &[&[u8]]) -> Vec<u8> {
    let mut translator = StreamTranslator::new(target, client);
    let mut out = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        out.extend(translator.chunk(piece, i + 1 == pieces.len()));
    }
    out
}

/// Reads an OpenAI chat stream, failing on anything its SDK would not take: a line that is
/// not `data:`, data that is not JSON, a tool call fragment before its call, no `[DONE]` last.
fn read_openai(bytes: &[u8]) -> Result<Read, TestCaseError> {
    let text = std::str::from_utf8(bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let events: Vec<&str> = text.split_terminator("\n\n").collect();
    prop_assert_eq!(events.last().copied(), Some("data: [DONE]"), "{}", text);
    let mut read = Read::default();
    for (i, event) in events.iter().enumerate() {
        let data = event.strip_prefix("data: ");
        prop_assert!(data.is_some_and(|d| !d.contains('\n')), "{:?}", event);
        let data = data.unwrap_or_default();
        if data == "[DONE]" {
            prop_assert_eq!(i + 1, events.len());
            continue;
        }
        let v: Value =
            serde_json::from_str(data).map_err(|e| TestCaseError::fail(e.to_string()))?;
        if v.get("error").is_some() {
            prop_assert_eq!(i + 2, events.len(), "only [DONE] follows an error");
            read.error = true;
            continue;
        }
        prop_assert_eq!(&v["object"], "chat.completion.chunk");
        for choice in v["choices"].as_array().into_iter().flatten() {
            let delta = &choice["delta"];
            read.content
                .push_str(delta["content"].as_str().unwrap_or_default());
            read.reasoning
                .push_str(delta["reasoning_content"].as_str().unwrap_or_default());
            for call in delta["tool_calls"].as_array().into_iter().flatten() {
                let index = call["index"].as_u64().unwrap_or(u64::MAX) as usize;
                let arguments = call["function"]["arguments"].as_str();
                prop_assert!(arguments.is_some());
                let arguments = arguments.unwrap_or_default();
                if call.get("id").is_some() {
                    prop_assert_eq!(index, read.tools.len(), "tool calls in order from 0");
                    let name = call["function"]["name"].as_str().unwrap_or_default();
                    read.tools.push((name.to_owned(), arguments.to_owned()));
                } else {
                    prop_assert!(index + 1 == read.tools.len(), "a fragment of the last call");
                    read.tools[index].1.push_str(arguments);
                }
            }
        }
    }
    Ok(read)
}

/// Reads an Anthropic Messages stream, failing on anything its SDK would not take: an event
/// whose name is not its data's type, blocks out of order or overlapping, a delta of another
/// block's kind, no `message_stop` (or `error`) last.
fn read_anthropic(bytes: &[u8]) -> Result<Read, TestCaseError> {
    let text = std::str::from_utf8(bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut read = Read::default();
    let mut open: Option<(u64, String)> = None;
    let mut next = 0;
    let events: Vec<&str> = text.split_terminator("\n\n").collect();
    for (i, event) in events.iter().enumerate() {
        let Some((name, data)) = event.split_once('\n') else {
            return Err(TestCaseError::fail(format!("not two lines: {event:?}")));
        };
        let name = name.strip_prefix("event: ").unwrap_or("?");
        let data = data.strip_prefix("data: ").unwrap_or("?");
        let v: Value =
            serde_json::from_str(data).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&v["type"], name);
        let last = i + 1 == events.len();
        match name {
            "message_start" => prop_assert_eq!(i, 0),
            "content_block_start" => {
                prop_assert!(open.is_none(), "a block closes before the next opens");
                prop_assert_eq!(v["index"].as_u64(), Some(next));
                let block = &v["content_block"];
                let kind = block["type"].as_str().unwrap_or_default().to_owned();
                if kind == "tool_use" {
                    let name = block["name"].as_str().unwrap_or_default();
                    prop_assert!(block["id"].is_string());
                    read.tools.push((name.to_owned(), String::new()));
                }
                open = Some((next, kind));
                next += 1;
            }
            "content_block_delta" => {
                let Some((index, kind)) = &open else {
                    return Err(TestCaseError::fail("a delta outside a block"));
                };
                prop_assert_eq!(v["index"].as_u64(), Some(*index));
                let delta = &v["delta"];
                match (kind.as_str(), delta["type"].as_str().unwrap_or_default()) {
                    ("text", "text_delta") => read
                        .content
                        .push_str(delta["text"].as_str().unwrap_or_default()),
                    ("thinking", "thinking_delta") => read
                        .reasoning
                        .push_str(delta["thinking"].as_str().unwrap_or_default()),
                    ("tool_use", "input_json_delta") => {
                        let fragment = delta["partial_json"].as_str().unwrap_or_default();
                        if let Some(tool) = read.tools.last_mut() {
                            tool.1.push_str(fragment);
                        }
                    }
                    other => return Err(TestCaseError::fail(format!("delta {other:?}"))),
                }
            }
            "content_block_stop" => {
                prop_assert_eq!(open.take().map(|o| o.0), v["index"].as_u64());
            }
            "message_delta" => {
                prop_assert!(open.is_none());
                prop_assert!(v["delta"]["stop_reason"].is_string());
                prop_assert!(v["usage"]["output_tokens"].is_u64());
            }
            "message_stop" => prop_assert!(last),
            "error" => {
                prop_assert!(last);
                read.error = true;
            }
            other => return Err(TestCaseError::fail(format!("event {other}"))),
        }
        if last {
            prop_assert!(matches!(name, "message_stop" | "error"), "{}", text);
        }
    }
    prop_assert!(!events.is_empty());
    Ok(read)
}

fn read(client: Api, bytes: &[u8]) -> Result<Read, TestCaseError> {
    match client {
        Api::OpenAiChat => read_openai(bytes),
        Api::AnthropicMessages => read_anthropic(bytes),
    }
}

/// A generated OpenAI chat or Anthropic stream.
fn translatable() -> impl Strategy<Value = Generation> {
    generation().prop_filter("a translatable shape", |g| {
        matches!(g.shape, Shape::Chat | Shape::Anthropic)
    })
}

fn directions(shape: Shape) -> (Api, Api) {
    if shape == Shape::Chat {
        (Api::OpenAiChat, Api::AnthropicMessages)
    } else {
        (Api::AnthropicMessages, Api::OpenAiChat)
    }
}

#[test]
fn translated_streams_are_the_same_however_the_stream_is_cut() {
    let strategy = (
        translatable(),
        0u8..3,
        prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    );
    crate::support::check(
        "translate::StreamTranslator, split streams",
        0.5,
        strategy,
        |(g, style, picks)| {
            let (target, client) = directions(g.shape);
            let bytes = line_ends(&g.stream(), style).into_bytes();
            let whole = translate(target, client, &[&bytes]);
            let cut = translate(target, client, &split(&bytes, &cuts(bytes.len(), &picks)));
            prop_assert_eq!(&cut, &whole, "the client gets other bytes");
            let got = read(client, &whole)?;
            let expected = Read {
                content: g.content.clone(),
                reasoning: g.reasoning.clone(),
                tools: g.tools.clone(),
                error: false,
            };
            prop_assert_eq!(got, expected);
            Ok(())
        },
    );
}

/// Arbitrary bytes, or a generated stream with a few bytes changed or cut short.
fn hostile() -> impl Strategy<Value = Vec<u8>> {
    let mutated = (
        translatable(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    )
        .prop_map(|(g, edits)| {
            let mut bytes = g.stream().into_bytes();
            for (at, byte) in edits {
                let at = at.index(bytes.len());
                bytes[at] = byte;
            }
            bytes
        });
    let truncated = (translatable(), any::<prop::sample::Index>()).prop_map(|(g, at)| {
        let mut bytes = g.stream().into_bytes();
        bytes.truncate(at.index(bytes.len()));
        bytes
    });
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        mutated,
        truncated,
    ]
}

#[test]
fn a_translated_stream_always_ends_in_the_clients_api() {
    let strategy = (
        hostile(),
        prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    );
    crate::support::check(
        "translate::StreamTranslator, hostile streams",
        1.0,
        strategy,
        |(bytes, picks)| {
            let pieces = split(&bytes, &cuts(bytes.len(), &picks));
            for (target, client) in [
                (Api::OpenAiChat, Api::AnthropicMessages),
                (Api::AnthropicMessages, Api::OpenAiChat),
            ] {
                let out = translate(target, client, &pieces);
                read(client, &out)?;
                prop_assert_eq!(&out, &translate(target, client, &[&bytes]));
            }
            Ok(())
        },
    );
}
