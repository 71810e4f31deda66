#[cfg(target_family = "wasm")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use serde_json::Value;

use super::StreamTranslator;
use super::fixtures::*;
use crate::tokens::Family;
use crate::translate::Shape;
use crate::usage::StreamReader;
use crate::usage::sse::MAX_EVENT_BYTES;

const ANTHROPIC: Shape = Shape::AnthropicMessages;
const OPENAI: Shape = Shape::OpenAiChat;
const CREATED: u64 = 1_750_000_000;

fn translator(target: Shape, client: Shape) -> StreamTranslator {
    StreamTranslator::new(target, client).with_created(CREATED)
}

fn whole(target: Shape, client: Shape, input: &[u8]) -> Vec<u8> {
    translator(target, client).chunk(input, true)
}

fn split_at(target: Shape, client: Shape, input: &[u8], at: usize) -> Vec<u8> {
    let mut t = translator(target, client);
    let mut out = t.chunk(&input[..at], false);
    out.extend(t.chunk(&input[at..], true));
    out
}

/// Byte by byte, `end` given with the last byte (`end_apart`: in a last empty chunk); the
/// most bytes held at any time.
fn bytewise(target: Shape, client: Shape, input: &[u8], end_apart: bool) -> (Vec<u8>, usize) {
    let mut t = translator(target, client);
    let mut out = Vec::new();
    let mut most_held = 0;
    for (i, byte) in input.iter().enumerate() {
        let last = !end_apart && i + 1 == input.len();
        out.extend(t.chunk(std::slice::from_ref(byte), last));
        most_held = most_held.max(t.held());
    }
    if end_apart || input.is_empty() {
        out.extend(t.chunk(&[], true));
    }
    assert_eq!(t.held(), 0, "nothing held once the stream ended");
    (out, most_held)
}

/// What a client ends up with, in its own API's words, read by a strict reader of that API's
/// stream (it panics on anything a client would choke on).
#[derive(Debug, Default, PartialEq, Eq)]
struct Answer {
    id: String,
    model: String,
    text: String,
    reasoning: String,
    /// (id, name, arguments).
    tools: Vec<(String, String, String)>,
    stop: Option<String>,
    /// (every input token, the cached ones, output tokens).
    usage: Option<(u64, u64, u64)>,
    /// The error type, when the stream ended in an error.
    error: Option<String>,
}

fn read(client: Shape, bytes: &[u8]) -> Answer {
    match client {
        OPENAI => read_openai(bytes),
        ANTHROPIC => read_anthropic(bytes),
    }
}

/// An OpenAI chat stream as the SDK reads it: `data:` lines of chunks that share `id`,
/// `created` and `model`, the role first, at most one finish reason, then the usage chunk,
/// `[DONE]` last; or an error chunk then `[DONE]`.
fn read_openai(bytes: &[u8]) -> Answer {
    let text = std::str::from_utf8(bytes).expect("UTF-8");
    assert!(
        text.ends_with("data: [DONE]\n\n"),
        "an OpenAI stream ends with [DONE]: {text}"
    );
    let events: Vec<&str> = text.split_terminator("\n\n").collect();
    let mut answer = Answer::default();
    let mut meta: Option<(String, u64, String)> = None;
    let mut role_seen = false;
    for (i, event) in events.iter().enumerate() {
        let data = event
            .strip_prefix("data: ")
            .unwrap_or_else(|| panic!("not one data line: {event:?}"));
        assert!(!data.contains('\n'), "one line per event: {event:?}");
        if data == "[DONE]" {
            assert_eq!(i + 1, events.len(), "[DONE] is last");
            continue;
        }
        let v: Value = serde_json::from_str(data).unwrap_or_else(|e| panic!("{e}: {data}"));
        if let Some(error) = v.get("error") {
            assert_eq!(i + 2, events.len(), "only [DONE] follows an error");
            assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
            assert!(error.get("param").is_some() && error.get("code").is_some());
            answer.error = Some(error["type"].as_str().unwrap().to_owned());
            continue;
        }
        assert_eq!(v["object"], "chat.completion.chunk");
        let this = (
            v["id"].as_str().unwrap().to_owned(),
            v["created"].as_u64().unwrap(),
            v["model"].as_str().unwrap().to_owned(),
        );
        assert_eq!(this.1, CREATED);
        match &meta {
            None => meta = Some(this),
            Some(first) => assert_eq!(first, &this, "every chunk has the same id and model"),
        }
        let choices = v["choices"].as_array().expect("choices");
        if choices.is_empty() {
            assert!(answer.usage.is_none(), "one usage chunk");
            assert!(answer.stop.is_some(), "the usage chunk follows the finish");
            let u = &v["usage"];
            let prompt = u["prompt_tokens"].as_u64().unwrap();
            let completion = u["completion_tokens"].as_u64().unwrap();
            assert_eq!(u["total_tokens"].as_u64().unwrap(), prompt + completion);
            let cached = u["prompt_tokens_details"]["cached_tokens"]
                .as_u64()
                .unwrap();
            answer.usage = Some((prompt, cached, completion));
            continue;
        }
        assert!(answer.usage.is_none(), "the usage chunk is the last chunk");
        assert!(v.get("usage").is_none_or(Value::is_null));
        assert_eq!(choices.len(), 1);
        let choice = &choices[0];
        assert_eq!(choice["index"], 0);
        assert!(answer.stop.is_none(), "no choice after the finish reason");
        let delta = &choice["delta"];
        if role_seen {
            assert!(delta.get("role").is_none(), "the role comes once");
        } else {
            assert_eq!(delta["role"], "assistant", "the first chunk gives the role");
            role_seen = true;
        }
        if let Some(content) = delta.get("content").and_then(Value::as_str) {
            answer.text.push_str(content);
        }
        if let Some(reasoning) = delta.get("reasoning_content").and_then(Value::as_str) {
            answer.reasoning.push_str(reasoning);
        }
        for call in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let index = call["index"].as_u64().unwrap() as usize;
            let arguments = call["function"]["arguments"].as_str().unwrap();
            if let Some(id) = call.get("id") {
                assert_eq!(index, answer.tools.len(), "tool calls numbered from 0");
                assert_eq!(call["type"], "function");
                let name = call["function"]["name"].as_str().unwrap();
                answer.tools.push((
                    id.as_str().unwrap().to_owned(),
                    name.to_owned(),
                    arguments.to_owned(),
                ));
            } else {
                assert!(call["function"].get("name").is_none());
                answer.tools[index].2.push_str(arguments);
            }
        }
        if let Some(reason) = choice["finish_reason"].as_str() {
            answer.stop = Some(reason.to_owned());
        } else {
            assert!(choice["finish_reason"].is_null());
        }
    }
    if let Some((id, _, model)) = meta {
        answer.id = id;
        answer.model = model;
    }
    answer
}

/// An Anthropic Messages stream as the SDK reads it: `message_start` first, blocks numbered
/// from 0, each opened, filled with deltas of its kind and closed before the next opens,
/// `message_delta` then `message_stop` last; or an `error` event last.
fn read_anthropic(bytes: &[u8]) -> Answer {
    let text = std::str::from_utf8(bytes).expect("UTF-8");
    let events: Vec<(&str, Value)> = text
        .split_terminator("\n\n")
        .map(|event| {
            let (name, data) = event
                .split_once('\n')
                .unwrap_or_else(|| panic!("an event line and a data line: {event:?}"));
            let name = name.strip_prefix("event: ").expect("event line");
            let data = data.strip_prefix("data: ").expect("data line");
            assert!(!data.contains('\n'), "one data line: {event:?}");
            let v: Value = serde_json::from_str(data).unwrap_or_else(|e| panic!("{e}: {data}"));
            assert_eq!(v["type"], name, "the event name is the data's type");
            (name, v)
        })
        .collect();
    let last = events.last().map(|(name, _)| *name);
    assert!(
        matches!(last, Some("message_stop" | "error")),
        "an Anthropic stream ends with message_stop or error: {text}"
    );
    let mut answer = Answer::default();
    let mut started = false;
    let mut open: Option<(u64, String)> = None;
    let mut next = 0;
    let mut start_usage = (0, 0, 0, 0);
    for (i, (name, v)) in events.iter().enumerate() {
        match *name {
            "message_start" => {
                assert_eq!(i, 0, "message_start is first");
                started = true;
                let message = &v["message"];
                assert_eq!(message["type"], "message");
                assert_eq!(message["role"], "assistant");
                assert_eq!(message["content"], serde_json::json!([]));
                assert!(message["stop_reason"].is_null());
                answer.id = message["id"].as_str().unwrap().to_owned();
                answer.model = message["model"].as_str().unwrap().to_owned();
                let u = &message["usage"];
                // (Every field is there in translated streams; the recorded ones may leave
                // the cache figures out.)
                let cache = |name: &str| u.get(name).map_or(0, |n| n.as_u64().unwrap());
                start_usage = (
                    u["input_tokens"].as_u64().unwrap(),
                    cache("cache_read_input_tokens"),
                    cache("cache_creation_input_tokens"),
                    u["output_tokens"].as_u64().unwrap(),
                );
            }
            "content_block_start" => {
                assert!(started, "message_start comes first");
                assert!(open.is_none(), "a block closes before the next opens");
                assert!(answer.stop.is_none());
                assert_eq!(v["index"], next, "blocks are numbered in order from 0");
                next += 1;
                let block = &v["content_block"];
                let kind = block["type"].as_str().unwrap().to_owned();
                match kind.as_str() {
                    "text" => assert_eq!(block["text"], ""),
                    "thinking" => assert_eq!(block["thinking"], ""),
                    // Only in the recorded streams: what has no OpenAI counterpart.
                    "redacted_thinking" => {}
                    "tool_use" => {
                        assert_eq!(block["input"], serde_json::json!({}));
                        answer.tools.push((
                            block["id"].as_str().unwrap().to_owned(),
                            block["name"].as_str().unwrap().to_owned(),
                            String::new(),
                        ));
                    }
                    other => panic!("unexpected block {other}"),
                }
                open = Some((v["index"].as_u64().unwrap(), kind));
            }
            "content_block_delta" => {
                let (index, kind) = open.as_ref().expect("deltas go to an open block");
                assert_eq!(v["index"], *index);
                let delta = &v["delta"];
                match (kind.as_str(), delta["type"].as_str().unwrap()) {
                    ("text", "text_delta") => answer.text.push_str(delta["text"].as_str().unwrap()),
                    ("thinking", "thinking_delta") => answer
                        .reasoning
                        .push_str(delta["thinking"].as_str().unwrap()),
                    ("tool_use", "input_json_delta") => answer
                        .tools
                        .last_mut()
                        .unwrap()
                        .2
                        .push_str(delta["partial_json"].as_str().unwrap()),
                    ("thinking", "signature_delta") => {}
                    other => panic!("a delta of the wrong kind: {other:?}"),
                }
            }
            "content_block_stop" => {
                let (index, _) = open.take().expect("only an open block stops");
                assert_eq!(v["index"], index);
            }
            "message_delta" => {
                assert!(started);
                assert!(open.is_none(), "every block closed before message_delta");
                assert!(answer.stop.is_none(), "one message_delta");
                answer.stop = Some(v["delta"]["stop_reason"].as_str().unwrap().to_owned());
                let u = &v["usage"];
                let field =
                    |name: &str, start: u64| u.get(name).and_then(Value::as_u64).unwrap_or(start);
                let uncached = field("input_tokens", start_usage.0);
                let read = field("cache_read_input_tokens", start_usage.1);
                let write = field("cache_creation_input_tokens", start_usage.2);
                let output = field("output_tokens", start_usage.3);
                answer.usage = Some((uncached + read + write, read, output));
            }
            "message_stop" => {
                assert!(answer.stop.is_some(), "message_delta before message_stop");
                assert_eq!(i + 1, events.len());
            }
            "error" => {
                assert_eq!(i + 1, events.len());
                assert!(
                    v["error"]["message"]
                        .as_str()
                        .is_some_and(|m| !m.is_empty())
                );
                answer.error = Some(v["error"]["type"].as_str().unwrap().to_owned());
            }
            "ping" => {}
            other => panic!("unexpected event {other}"),
        }
    }
    answer
}

const WEATHER: &str = r#"{"location": "San Francisco, CA", "unit": "fahrenheit"}"#;
const TEXT: &str = "Bonjour ! Café ☕ — 東京 🗼\n\"quoted\" \\ é";

/// Every recorded stream, each translated into the other API, with what its client gets.
fn cases() -> Vec<(&'static str, Shape, Shape, &'static str, Answer)> {
    let s = |text: &str| text.to_owned();
    vec![
        (
            "anthropic text",
            ANTHROPIC,
            OPENAI,
            ANTHROPIC_TEXT,
            Answer {
                id: s("msg_01XFDUDYJgAACzvnptvVoYEL"),
                model: s("claude-sonnet-4-5-20250929"),
                text: s(TEXT),
                stop: Some(s("stop")),
                // Anthropic's uncached 12 + cache writes 20 + cache reads 1000.
                usage: Some((1032, 1000, 15)),
                ..Answer::default()
            },
        ),
        (
            "anthropic tools",
            ANTHROPIC,
            OPENAI,
            ANTHROPIC_TOOLS,
            Answer {
                id: s("msg_014p7gG3wDgGV9EUtLvnow3U"),
                model: s("claude-opus-4-1-20250805"),
                text: s("Okay, let's check the weather for San Francisco, CA:"),
                tools: vec![
                    (
                        s("toolu_01T1x1fJ34qAmk2tNTrN7Up6"),
                        s("get_weather"),
                        s(WEATHER),
                    ),
                    (
                        s("toolu_01WdK2p7KLNSyBbqDcz5hYZn"),
                        s("get_time"),
                        s(r#"{"timezone": "America/Los_Angeles"}"#),
                    ),
                ],
                stop: Some(s("tool_calls")),
                usage: Some((472, 0, 89)),
                ..Answer::default()
            },
        ),
        (
            "anthropic thinking",
            ANTHROPIC,
            OPENAI,
            ANTHROPIC_THINKING,
            Answer {
                id: s("msg_01KpJ3rZ6i7vZVK5u8t1kxWX"),
                model: s("claude-sonnet-4-5-20250929"),
                reasoning: s(
                    "I need to find the GCD of 1071 and 462 using the Euclidean algorithm.\n\n\
                     1071 = 2 × 462 + 147\n462 = 3 × 147 + 21\n147 = 7 × 21 + 0",
                ),
                text: s("The greatest common divisor of 1071 and 462 is **21**."),
                stop: Some(s("stop")),
                usage: Some((64, 0, 180)),
                ..Answer::default()
            },
        ),
        (
            "anthropic refusal",
            ANTHROPIC,
            OPENAI,
            ANTHROPIC_REFUSAL,
            Answer {
                id: s("msg_01Ruq5Rk1bHc5VRdCpXPZkDf"),
                model: s("claude-sonnet-4-5-20250929"),
                text: s("I can't help with"),
                stop: Some(s("content_filter")),
                usage: Some((31, 0, 6)),
                ..Answer::default()
            },
        ),
        (
            "anthropic error",
            ANTHROPIC,
            OPENAI,
            ANTHROPIC_ERROR,
            Answer {
                id: s("msg_01Bf8hWnKq3EN6sAjY2vQx1t"),
                model: s("claude-sonnet-4-5-20250929"),
                text: s("Once upon"),
                error: Some(s("server_error")),
                ..Answer::default()
            },
        ),
        (
            "anthropic cut",
            ANTHROPIC,
            OPENAI,
            ANTHROPIC_CUT,
            Answer {
                id: s("msg_01Gx8N1kT9bq2Vd3ePz7Lmc4"),
                model: s("claude-sonnet-4-5-20250929"),
                text: s("Once upon"),
                error: Some(s("server_error")),
                ..Answer::default()
            },
        ),
        (
            "openai text",
            OPENAI,
            ANTHROPIC,
            OPENAI_TEXT,
            Answer {
                id: s("chatcmpl-BfLmX2sQhKXe1x9u1mQ7nJ4W"),
                model: s("gpt-4o-2024-08-06"),
                text: s(TEXT),
                stop: Some(s("end_turn")),
                usage: Some((1200, 1024, 15)),
                ..Answer::default()
            },
        ),
        (
            "openai tools",
            OPENAI,
            ANTHROPIC,
            OPENAI_TOOLS,
            Answer {
                id: s("chatcmpl-BfLnC8mMfZqR0bYwM9kZ3Tn2"),
                model: s("gpt-4.1-2025-04-14"),
                tools: vec![
                    (
                        s("call_DdmO9pD3xa9XTPNJ32zg2hcA"),
                        s("get_weather"),
                        s(r#"{"location": "Paris, France"}"#),
                    ),
                    (
                        s("call_0Ph3bXkgvq0ihl6jRq5tkiaE"),
                        s("get_time"),
                        s(r#"{"timezone": "Europe/Paris"}"#),
                    ),
                ],
                stop: Some(s("tool_use")),
                usage: Some((310, 0, 52)),
                ..Answer::default()
            },
        ),
        (
            "openai thinking",
            OPENAI,
            ANTHROPIC,
            OPENAI_THINKING,
            Answer {
                id: s("chatcmpl-9c2f6a0e1b8d4c7fa3e5b2d1c0f9e8a7"),
                model: s("Qwen/Qwen3-8B"),
                reasoning: s("The user asks for 2+2: that is 4."),
                text: s("2 + 2 = 4."),
                stop: Some(s("max_tokens")),
                usage: Some((14, 0, 46)),
                ..Answer::default()
            },
        ),
        (
            "openai refusal",
            OPENAI,
            ANTHROPIC,
            OPENAI_REFUSAL,
            Answer {
                id: s("chatcmpl-BfLoR4yJ1Qe9tN0sVb8Xk2Lm"),
                model: s("gpt-4o-2024-08-06"),
                text: s("I'm sorry, I can't help with that."),
                stop: Some(s("refusal")),
                usage: Some((95, 0, 10)),
                ..Answer::default()
            },
        ),
        (
            "openai content filter",
            OPENAI,
            ANTHROPIC,
            OPENAI_CONTENT_FILTER,
            Answer {
                id: s("chatcmpl-BfLpA1b2C3d4E5f6G7h8I9j0"),
                model: s("gpt-4o-2024-11-20"),
                text: s("Here is"),
                stop: Some(s("refusal")),
                usage: Some((40, 0, 3)),
                ..Answer::default()
            },
        ),
        (
            "openai error",
            OPENAI,
            ANTHROPIC,
            OPENAI_ERROR,
            Answer {
                id: s("chatcmpl-BfLqE7tYh2Ws1Xc0Vb9Nm8Kj"),
                model: s("gpt-4o-2024-08-06"),
                text: s("Once upon"),
                error: Some(s("api_error")),
                ..Answer::default()
            },
        ),
        (
            "openai cut",
            OPENAI,
            ANTHROPIC,
            OPENAI_CUT,
            Answer {
                id: s("chatcmpl-BfLrT5gH3jK9lZ0xCv2Bn4Mq"),
                model: s("gpt-4o-2024-08-06"),
                text: s("Once upon"),
                error: Some(s("api_error")),
                ..Answer::default()
            },
        ),
    ]
}

#[test]
fn each_recorded_stream_translates_into_a_valid_stream_of_the_clients_api() {
    for (name, target, client, input, expected) in cases() {
        let out = whole(target, client, input.as_bytes());
        assert_eq!(read(client, &out), expected, "{name}");
    }
}

#[test]
fn the_same_stream_at_every_split_point_and_byte_by_byte() {
    for (name, target, client, input, _) in cases() {
        let crlf = input.replace('\n', "\r\n");
        let expected = whole(target, client, input.as_bytes());
        // Line ends are the transport's: `\r\n` reads as `\n`.
        assert_eq!(
            whole(target, client, crlf.as_bytes()),
            expected,
            "{name} CRLF"
        );
        let bytes = input.as_bytes();
        for at in 0..=bytes.len() {
            assert_eq!(
                split_at(target, client, bytes, at),
                expected,
                "{name} split at {at}"
            );
        }
        // Byte by byte splits at every point at once, `\r\n` included.
        for input in [input, crlf.as_str()] {
            let bytes = input.as_bytes();
            let longest_event = input
                .split_inclusive(if input.contains('\r') {
                    "\r\n\r\n"
                } else {
                    "\n\n"
                })
                .map(str::len)
                .max()
                .unwrap_or(0);
            for end_apart in [false, true] {
                let (out, most_held) = bytewise(target, client, bytes, end_apart);
                assert_eq!(out, expected, "{name} byte by byte");
                assert!(
                    most_held <= longest_event,
                    "{name}: held {most_held} bytes, more than one unfinished event"
                );
            }
        }
    }
}

#[test]
fn a_stream_cut_anywhere_never_reads_as_a_finished_answer() {
    for (name, target, client, input, expected) in cases() {
        let bytes = input.as_bytes();
        for len in 0..=bytes.len() {
            let got = read(client, &whole(target, client, &bytes[..len]));
            if got.error.is_none() {
                assert_eq!(got, expected, "{name} cut at {len} reads as a success");
            } else if expected.error.is_none() {
                let gateway_error = if client == OPENAI {
                    "server_error"
                } else {
                    "api_error"
                };
                assert_eq!(
                    got.error.as_deref(),
                    Some(gateway_error),
                    "{name} cut at {len}"
                );
            }
        }
    }
}

#[test]
fn a_last_event_without_its_blank_line_still_counts() {
    let trimmed = OPENAI_TEXT.trim_end();
    assert!(trimmed.ends_with("data: [DONE]"));
    let got = read_anthropic(&whole(OPENAI, ANTHROPIC, trimmed.as_bytes()));
    assert_eq!(got.error, None);
    assert_eq!(got.stop.as_deref(), Some("end_turn"));

    let trimmed = ANTHROPIC_TEXT.trim_end();
    let got = read_openai(&whole(ANTHROPIC, OPENAI, trimmed.as_bytes()));
    assert_eq!(got.error, None);
    assert_eq!(got.stop.as_deref(), Some("stop"));
}

#[test]
fn anthropic_to_openai_chunks_are_exactly_openais() {
    let input = concat!(
        "event: message_start\n",
        r#"data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-haiku-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":5,"cache_read_input_tokens":100,"output_tokens":1}}}"#,
        "\n\nevent: content_block_start\n",
        r#"data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}"#,
        "\n\nevent: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Hm."}}"#,
        "\n\nevent: content_block_stop\n",
        r#"data: {"type":"content_block_stop","index":0}"#,
        "\n\nevent: content_block_start\n",
        r#"data: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}"#,
        "\n\nevent: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Hi"}}"#,
        "\n\nevent: content_block_stop\n",
        r#"data: {"type":"content_block_stop","index":1}"#,
        "\n\nevent: content_block_start\n",
        r#"data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_1","name":"f","input":{}}}"#,
        "\n\nevent: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"a\":1}"}}"#,
        "\n\nevent: content_block_stop\n",
        r#"data: {"type":"content_block_stop","index":2}"#,
        "\n\nevent: message_delta\n",
        r#"data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":7}}"#,
        "\n\nevent: message_stop\n",
        r#"data: {"type":"message_stop"}"#,
        "\n\n",
    );
    let head = r#"{"id":"msg_1","object":"chat.completion.chunk","created":1750000000,"model":"claude-haiku-4-5","choices":"#;
    let chunk = |choice: &str| {
        format!(
            "data: {head}[{{\"index\":0,{choice},\"logprobs\":null,\"finish_reason\":null}}]}}\n\n"
        )
    };
    let expected = [
        chunk(r#""delta":{"role":"assistant","content":""}"#),
        chunk(r#""delta":{"reasoning_content":"Hm."}"#),
        chunk(r#""delta":{"content":"Hi"}"#),
        chunk(
            r#""delta":{"tool_calls":[{"index":0,"id":"toolu_1","type":"function","function":{"name":"f","arguments":""}}]}"#,
        ),
        chunk(r#""delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\":1}"}}]}"#),
        format!(
            "data: {head}[{{\"index\":0,\"delta\":{{}},\"logprobs\":null,\"finish_reason\":\"tool_calls\"}}]}}\n\n"
        ),
        format!(
            "data: {head}[],\"usage\":{{\"prompt_tokens\":105,\"completion_tokens\":7,\"total_tokens\":112,\"prompt_tokens_details\":{{\"cached_tokens\":100}}}}}}\n\n"
        ),
        "data: [DONE]\n\n".to_owned(),
    ]
    .concat();
    let out = whole(ANTHROPIC, OPENAI, input.as_bytes());
    assert_eq!(String::from_utf8(out).unwrap(), expected);
}

#[test]
fn openai_to_anthropic_events_are_exactly_anthropics() {
    let chunk = |rest: &str| {
        format!(
            "data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",{rest}}}\n\n"
        )
    };
    let input = [
        chunk(r#""choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]"#),
        chunk(r#""choices":[{"index":0,"delta":{"reasoning_content":"Hm."},"finish_reason":null}]"#),
        chunk(r#""choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]"#),
        chunk(
            r#""choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\":"}}]},"finish_reason":null}]"#,
        ),
        chunk(
            r#""choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"1}"}}]},"finish_reason":null}]"#,
        ),
        chunk(r#""choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]"#),
        chunk(
            r#""choices":[],"usage":{"prompt_tokens":105,"completion_tokens":7,"total_tokens":112,"prompt_tokens_details":{"cached_tokens":100}}"#,
        ),
        "data: [DONE]\n\n".to_owned(),
    ]
    .concat();
    let event = |name: &str, data: &str| format!("event: {name}\ndata: {data}\n\n");
    let expected = [
        event(
            "message_start",
            r#"{"type":"message_start","message":{"id":"chatcmpl-1","type":"message","role":"assistant","model":"gpt-4o","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}}"#,
        ),
        event(
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}"#,
        ),
        event(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Hm."}}"#,
        ),
        event("content_block_stop", r#"{"type":"content_block_stop","index":0}"#),
        event(
            "content_block_start",
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}"#,
        ),
        event(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Hi"}}"#,
        ),
        event("content_block_stop", r#"{"type":"content_block_stop","index":1}"#),
        event(
            "content_block_start",
            r#"{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"call_1","name":"f","input":{}}}"#,
        ),
        event(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}}"#,
        ),
        event(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"1}"}}"#,
        ),
        event("content_block_stop", r#"{"type":"content_block_stop","index":2}"#),
        event(
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"input_tokens":5,"cache_creation_input_tokens":0,"cache_read_input_tokens":100,"output_tokens":7}}"#,
        ),
        event("message_stop", r#"{"type":"message_stop"}"#),
    ]
    .concat();
    let out = whole(OPENAI, ANTHROPIC, input.as_bytes());
    assert_eq!(String::from_utf8(out).unwrap(), expected);
}

#[test]
fn accounting_reads_the_same_usage_from_the_translated_stream() {
    for (name, target, client, input, expected) in cases() {
        let Some((input_tokens, cached, output)) = expected.usage else {
            continue;
        };
        let out = whole(target, client, input.as_bytes());
        let mut reader = StreamReader::new(Family::O200k, false);
        let _action = reader.chunk(&out, true);
        let counts = reader.finish(0);
        assert_eq!(
            (counts.input, counts.cached, counts.output),
            (input_tokens, cached, output),
            "{name}"
        );
        assert!(!counts.estimated, "{name}");
        assert_eq!(
            counts.response_model.as_deref(),
            Some(expected.model.as_str())
        );
    }
}

#[test]
fn a_round_trip_through_the_other_api_keeps_the_answer() {
    for input in [
        ANTHROPIC_TEXT,
        ANTHROPIC_TOOLS,
        ANTHROPIC_THINKING,
        ANTHROPIC_REFUSAL,
        ANTHROPIC_ERROR,
    ] {
        let there = whole(ANTHROPIC, OPENAI, input.as_bytes());
        let back = whole(OPENAI, ANTHROPIC, &there);
        assert_eq!(read_anthropic(&back), read_anthropic(input.as_bytes()));
    }
    for input in [
        OPENAI_TEXT,
        OPENAI_TOOLS,
        OPENAI_THINKING,
        OPENAI_CONTENT_FILTER,
    ] {
        let there = whole(OPENAI, ANTHROPIC, input.as_bytes());
        let back = whole(ANTHROPIC, OPENAI, &there);
        let got = read_openai(&back);
        let expected = read(ANTHROPIC, &there);
        assert_eq!(got.text, expected.text);
        assert_eq!(got.tools, expected.tools);
        assert_eq!(got.reasoning, expected.reasoning);
        assert_eq!(got.usage, expected.usage);
    }
}

#[test]
fn upstream_errors_keep_their_kind_and_message() {
    let out = String::from_utf8(whole(ANTHROPIC, OPENAI, ANTHROPIC_ERROR.as_bytes())).unwrap();
    assert!(out.ends_with(concat!(
        r#"data: {"error":{"message":"Overloaded","type":"server_error","param":null,"code":"overloaded"}}"#,
        "\n\ndata: [DONE]\n\n"
    )));

    let out = String::from_utf8(whole(OPENAI, ANTHROPIC, OPENAI_ERROR.as_bytes())).unwrap();
    assert!(out.ends_with(concat!(
        "event: error\n",
        r#"data: {"type":"error","error":{"type":"api_error","message":"The server had an error while processing your request. Sorry about that!"}}"#,
        "\n\n"
    )));

    // vLLM's error, not wrapped in `error`, with an HTTP status as its code.
    let vllm = concat!(
        r#"data: {"object":"error","message":"This model's maximum context length is 8192 tokens.","type":"BadRequestError","param":null,"code":400}"#,
        "\n\n"
    );
    let got = read_anthropic(&whole(OPENAI, ANTHROPIC, vllm.as_bytes()));
    assert_eq!(got.error.as_deref(), Some("invalid_request_error"));

    let rate_limited = concat!(
        r#"data: {"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#,
        "\n\n"
    );
    let got = read_anthropic(&whole(OPENAI, ANTHROPIC, rate_limited.as_bytes()));
    assert_eq!(got.error.as_deref(), Some("rate_limit_error"));

    let anthropic_rate_limited = concat!(
        "event: error\n",
        r#"data: {"type":"error","error":{"type":"rate_limit_error","message":"Rate limited"}}"#,
        "\n\n"
    );
    let got = read_openai(&whole(ANTHROPIC, OPENAI, anthropic_rate_limited.as_bytes()));
    assert_eq!(got.error.as_deref(), Some("requests"));
}

#[test]
fn an_empty_stream_ends_in_an_error() {
    let got = read_openai(&whole(ANTHROPIC, OPENAI, b""));
    assert_eq!(got.error.as_deref(), Some("server_error"));
    let got = read_anthropic(&whole(OPENAI, ANTHROPIC, b""));
    assert_eq!(got.error.as_deref(), Some("api_error"));
}

#[test]
fn an_event_over_the_cap_ends_the_stream_in_an_error_with_memory_bounded() {
    let huge = "x".repeat(MAX_EVENT_BYTES + 100);
    let anthropic = format!(
        "{}event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{huge}\"}}}}\n\n{}",
        &ANTHROPIC_TEXT[..ANTHROPIC_TEXT.find("event: content_block_delta").unwrap()],
        &ANTHROPIC_TEXT[ANTHROPIC_TEXT.find("event: content_block_delta").unwrap()..],
    );
    let openai = format!(
        "{}data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{huge}\"}},\"finish_reason\":null}}]}}\n\n{}",
        &OPENAI_TEXT[..OPENAI_TEXT.find("data:").unwrap()],
        &OPENAI_TEXT[OPENAI_TEXT.find("data:").unwrap()..],
    );
    for (target, client, input) in [(ANTHROPIC, OPENAI, anthropic), (OPENAI, ANTHROPIC, openai)] {
        let mut t = translator(target, client);
        let mut out = Vec::new();
        for piece in input.as_bytes().chunks(64 * 1024) {
            out.extend(t.chunk(piece, false));
            assert!(t.held() <= MAX_EVENT_BYTES + 64 * 1024, "held {}", t.held());
        }
        out.extend(t.chunk(&[], true));
        let got = read(client, &out);
        let expected = if client == OPENAI {
            "server_error"
        } else {
            "api_error"
        };
        assert_eq!(got.error.as_deref(), Some(expected));
        assert!(got.text.len() < 100, "the oversized text is not passed on");
        assert!(
            String::from_utf8(out)
                .unwrap()
                .contains("larger than the gateway's limit")
        );
    }
}

#[test]
fn a_malformed_event_ends_the_stream_in_an_error() {
    let broken = OPENAI_TEXT.replacen("{\"content\":\"Bonjour ! \"}", "{\"content\":", 1);
    let got = read_anthropic(&whole(OPENAI, ANTHROPIC, broken.as_bytes()));
    assert_eq!(got.error.as_deref(), Some("api_error"));
    assert_eq!(got.text, "", "nothing after the broken event");

    let broken = ANTHROPIC_TEXT.replacen("\"text\":\"Bonjour ! \"", "\"text\":", 1);
    let got = read_openai(&whole(ANTHROPIC, OPENAI, broken.as_bytes()));
    assert_eq!(got.error.as_deref(), Some("server_error"));
}

#[test]
fn bytes_after_the_end_are_dropped() {
    let extra = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"late\"}}]}\n\n";
    let with_extra = format!("{OPENAI_TEXT}{extra}");
    assert_eq!(
        whole(OPENAI, ANTHROPIC, with_extra.as_bytes()),
        whole(OPENAI, ANTHROPIC, OPENAI_TEXT.as_bytes())
    );
    let mut t = translator(OPENAI, ANTHROPIC);
    t.chunk(OPENAI_TEXT.as_bytes(), false);
    assert!(t.chunk(extra.as_bytes(), false).is_empty());
    assert!(t.chunk(extra.as_bytes(), true).is_empty());
    assert_eq!(t.held(), 0);

    let extra = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"late\"}}\n\n";
    let with_extra = format!("{ANTHROPIC_TEXT}{extra}");
    assert_eq!(
        whole(ANTHROPIC, OPENAI, with_extra.as_bytes()),
        whole(ANTHROPIC, OPENAI, ANTHROPIC_TEXT.as_bytes())
    );
}

#[test]
fn interleaved_tool_call_arguments_end_in_an_error_not_a_wrong_call() {
    let chunk = |delta: &str| {
        format!(
            "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":null}}]}}\n\n"
        )
    };
    let input = [
        chunk(r#"{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"a","arguments":"{"}}]}"#),
        chunk(r#"{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"b","arguments":"{"}}]}"#),
        chunk(r#"{"tool_calls":[{"index":0,"function":{"arguments":"}"}}]}"#),
    ]
    .concat();
    let out = whole(OPENAI, ANTHROPIC, input.as_bytes());
    assert_eq!(read_anthropic(&out).error.as_deref(), Some("api_error"));
    assert!(String::from_utf8(out).unwrap().contains("interleaved"));
}

#[test]
fn a_tool_call_without_an_id_gets_one() {
    let input = concat!(
        r#"data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"name":"f","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}"#,
        "\n\ndata: [DONE]\n\n"
    );
    let got = read_anthropic(&whole(OPENAI, ANTHROPIC, input.as_bytes()));
    assert_eq!(got.tools, vec![("call_0".into(), "f".into(), "{}".into())]);
    assert_eq!(got.stop.as_deref(), Some("tool_use"));
    // No usage chunk came: the figures are 0 rather than missing fields.
    assert_eq!(got.usage, Some((0, 0, 0)));
}

#[test]
fn unknown_anthropic_events_and_deltas_are_skipped() {
    let extra = concat!(
        "event: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"citations_delta","citation":{"type":"char_location","cited_text":"x"}}}"#,
        "\n\nevent: future_event\n",
        r#"data: {"type":"future_event","anything":[1,2]}"#,
        "\n\n",
    );
    let at = ANTHROPIC_TEXT.find("event: content_block_stop").unwrap();
    let input = format!("{}{extra}{}", &ANTHROPIC_TEXT[..at], &ANTHROPIC_TEXT[at..]);
    assert_eq!(
        whole(ANTHROPIC, OPENAI, input.as_bytes()),
        whole(ANTHROPIC, OPENAI, ANTHROPIC_TEXT.as_bytes())
    );
}

#[test]
fn the_same_shape_passes_through() {
    for (shape, input) in [(OPENAI, OPENAI_TEXT), (ANTHROPIC, ANTHROPIC_CUT)] {
        let mut t = StreamTranslator::new(shape, shape);
        let bytes = input.as_bytes();
        let (a, b) = bytes.split_at(bytes.len() / 2);
        let mut out = t.chunk(a, false);
        out.extend(t.chunk(b, true));
        assert_eq!(out, bytes);
        assert_eq!(t.held(), 0);
    }
}

#[test]
fn created_is_zero_unless_given() {
    let out = StreamTranslator::new(ANTHROPIC, OPENAI).chunk(ANTHROPIC_TEXT.as_bytes(), true);
    assert!(String::from_utf8(out).unwrap().contains("\"created\":0,"));
}

#[test]
fn tool_calls_numbered_all_zero_or_repeating_their_id_stay_apart() {
    let chunk = |delta: &str| {
        format!(
            "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":null}}]}}\n\n"
        )
    };
    let input = [
        chunk(r#"{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"a","arguments":"{\"x\":"}}]}"#),
        chunk(r#"{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"arguments":"1}"}}]}"#),
        chunk(r#"{"tool_calls":[{"index":0,"id":"call_b","type":"function","function":{"name":"b","arguments":"{}"}}]}"#),
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n".to_owned(),
    ]
    .concat();
    let got = read_anthropic(&whole(OPENAI, ANTHROPIC, input.as_bytes()));
    assert_eq!(
        got.tools,
        vec![
            ("call_a".into(), "a".into(), "{\"x\":1}".into()),
            ("call_b".into(), "b".into(), "{}".into()),
        ]
    );
}
