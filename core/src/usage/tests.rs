#[cfg(target_family = "wasm")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::sse::{Piece, SseSplitter, parse_event};
use super::{ChunkAction, Counts, StreamReader, Usage, usage_from_json};
use crate::tokens::Family;

/// An OpenAI chat stream as a server sends it with `stream_options.include_usage`.
const OPENAI_WITH_USAGE: &str = concat!(
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}],\"usage\":null}\n\n",
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Héllo 世界\"}}],\"usage\":null}\n\n",
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" 😀 there\"},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3,\"total_tokens\":15,\"prompt_tokens_details\":{\"cached_tokens\":8},\"completion_tokens_details\":{\"reasoning_tokens\":1}}}\n\n",
    "data: [DONE]\n\n",
);

/// The same stream as the client would have had without `include_usage`.
const OPENAI_WITHOUT_USAGE: &str = concat!(
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Héllo 世界\"}}]}\n\n",
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" 😀 there\"},\"finish_reason\":\"stop\"}]}\n\n",
    "data: [DONE]\n\n",
);

/// An Anthropic Messages stream, CRLF line ends.
const ANTHROPIC: &str = concat!(
    "event: message_start\r\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude-x\",\"usage\":{\"input_tokens\":20,\"cache_read_input_tokens\":5,\"output_tokens\":1}}}\r\n\r\n",
    "event: content_block_start\r\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\r\n\r\n",
    "event: ping\r\ndata: {\"type\": \"ping\"}\r\n\r\n",
    "event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi ✨\"}}\r\n\r\n",
    "event: message_delta\r\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":4}}\r\n\r\n",
    "event: message_stop\r\ndata: {\"type\":\"message_stop\"}\r\n\r\n",
);

/// Feeds `stream` cut at `cuts` (sorted byte offsets); returns what the client receives.
fn run(reader: &mut StreamReader, stream: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut start = 0;
    let bounds: Vec<usize> = cuts.iter().copied().chain([stream.len()]).collect();
    for (i, &end) in bounds.iter().enumerate() {
        let chunk = &stream[start..end];
        let last = i + 1 == bounds.len();
        match reader.chunk(chunk, last) {
            ChunkAction::Pass => out.extend_from_slice(chunk),
            ChunkAction::Replace(bytes) => out.extend_from_slice(&bytes),
        }
        start = end;
    }
    out
}

#[test]
fn splitter_gives_the_same_events_at_every_split_point() {
    for stream in [OPENAI_WITH_USAGE, ANTHROPIC] {
        let bytes = stream.as_bytes();
        let whole = {
            let mut s = SseSplitter::default();
            let mut events = Vec::new();
            s.feed(bytes, |p| events.push(p));
            events
        };
        assert!(whole.len() >= 5);
        for cut in 0..=bytes.len() {
            let mut s = SseSplitter::default();
            let mut events = Vec::new();
            s.feed(&bytes[..cut], |p| events.push(p));
            s.feed(&bytes[cut..], |p| events.push(p));
            assert_eq!(events, whole, "cut at {cut}");
            assert_eq!(s.finish(), b"");
        }
    }
}

#[test]
fn lone_cr_and_mixed_line_ends_end_events() {
    let mut s = SseSplitter::default();
    let mut events = Vec::new();
    s.feed(b"data: a\r\rdata: b\n\r\ndata: c\r", |p| events.push(p));
    s.feed(b"\n\r", |p| events.push(p));
    assert_eq!(
        events,
        [
            Piece::Event(b"data: a\r\r".to_vec()),
            Piece::Event(b"data: b\n\r\n".to_vec()),
        ]
    );
    // The `\r` at the end may be followed by `\n`: not decided until more comes.
    s.feed(b"x", |p| events.push(p));
    assert_eq!(events.len(), 3);
    assert_eq!(parse_event(b"event: e\ndata: 1\ndata:2\n\n").data, "1\n2");
}

#[test]
fn openai_usage_is_read_at_every_split_point_and_passes_untouched() {
    let bytes = OPENAI_WITH_USAGE.as_bytes();
    for cut in 0..=bytes.len() {
        let mut reader = StreamReader::new(Family::O200k, false);
        let out = run(&mut reader, bytes, &[cut]);
        assert_eq!(out, bytes, "cut at {cut}");
        let counts = reader.finish(99);
        assert_eq!(
            (counts.input, counts.output, counts.cached, counts.reasoning),
            (12, 3, 8, 1)
        );
        assert!(!counts.estimated);
        assert_eq!(counts.response_model.as_deref(), Some("m"));
    }
}

#[test]
fn injected_usage_is_removed_at_every_split_point() {
    let bytes = OPENAI_WITH_USAGE.as_bytes();
    for cut in 0..=bytes.len() {
        for second in [cut, (cut + 7).min(bytes.len())] {
            let mut reader = StreamReader::new(Family::O200k, true);
            let out = run(&mut reader, bytes, &[cut, second]);
            assert_eq!(
                String::from_utf8_lossy(&out),
                OPENAI_WITHOUT_USAGE,
                "cuts at {cut}, {second}"
            );
            assert_eq!(reader.finish(0).output, 3);
        }
    }
}

#[test]
fn anthropic_usage_at_every_split_point() {
    let bytes = ANTHROPIC.as_bytes();
    for cut in 0..=bytes.len() {
        let mut reader = StreamReader::new(Family::Claude, false);
        assert_eq!(run(&mut reader, bytes, &[cut]), bytes);
        let counts = reader.finish(0);
        assert_eq!((counts.input, counts.output, counts.cached), (25, 4, 5));
        assert!(!counts.estimated);
        assert_eq!(counts.response_model.as_deref(), Some("claude-x"));
    }
}

#[test]
fn a_cut_off_stream_is_estimated_from_its_text() {
    let bytes = OPENAI_WITHOUT_USAGE.as_bytes();
    // Cut after the second event: the usage chunk never comes.
    let cut = OPENAI_WITHOUT_USAGE.match_indices("\n\n").nth(1).unwrap().0 + 2;
    let mut reader = StreamReader::new(Family::O200k, true);
    let out = run(&mut reader, &bytes[..cut], &[]);
    assert_eq!(out, &bytes[..cut]);
    assert!(reader.saw_output);
    let counts = reader.finish(40);
    assert!(counts.estimated);
    assert_eq!(counts.input, 40);
    assert!(
        (2..=6).contains(&counts.output),
        "\"Héllo 世界\": {}",
        counts.output
    );
    // Anthropic cut after message_start: input reported, output estimated.
    let cut = ANTHROPIC.find("event: message_delta").unwrap();
    let mut reader = StreamReader::new(Family::Claude, false);
    run(&mut reader, &ANTHROPIC.as_bytes()[..cut], &[]);
    let counts = reader.finish(7);
    assert_eq!(counts.input, 25);
    assert!(counts.estimated && counts.output >= 2, "{counts:?}");
}

#[test]
fn json_bodies_of_every_api() {
    let chat = br#"{"id":"x","model":"gpt-4o","choices":[{"message":{"content":"usage"}}],
        "usage":{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13,
                 "prompt_tokens_details":{"cached_tokens":2}}}"#;
    let (usage, model) = usage_from_json(chat).unwrap();
    assert_eq!(
        usage,
        Usage {
            input: Some(9),
            output: Some(4),
            cached: 2,
            ..Usage::default()
        }
    );
    assert_eq!(model.as_deref(), Some("gpt-4o"));
    let embeddings = br#"{"object":"list","data":[],"usage":{"prompt_tokens":5,"total_tokens":5}}"#;
    let (usage, _) = usage_from_json(embeddings).unwrap();
    assert_eq!((usage.input, usage.output), (Some(5), None));
    let counts = Counts::from_parts(Some(usage), 0, 0);
    assert_eq!((counts.output, counts.estimated), (0, true));
    let responses = br#"{"object":"response","usage":{"input_tokens":30,"output_tokens":7,
        "input_tokens_details":{"cached_tokens":10},"output_tokens_details":{"reasoning_tokens":5}}}"#;
    let (usage, _) = usage_from_json(responses).unwrap();
    assert_eq!(
        (usage.input, usage.output, usage.cached, usage.reasoning),
        (Some(30), Some(7), 10, 5)
    );
    let anthropic = br#"{"type":"message","model":"claude","usage":{"input_tokens":3,
        "cache_creation_input_tokens":100,"cache_read_input_tokens":50,"output_tokens":6}}"#;
    let (usage, _) = usage_from_json(anthropic).unwrap();
    assert_eq!(
        (
            usage.input,
            usage.output,
            usage.cached,
            usage.cache_creation
        ),
        (Some(153), Some(6), 50, 100)
    );
    assert_eq!(usage_from_json(b"{\"no\":1}"), None);
    assert_eq!(usage_from_json(b"not json"), None);
}

#[test]
fn responses_stream_usage_is_nested_in_the_response() {
    let stream = concat!(
        "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hello\"}\n\n",
        "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"model\":\"gpt-5\",\"usage\":{\"input_tokens\":4,\"output_tokens\":1}}}\n\n",
    );
    let mut reader = StreamReader::new(Family::O200k, false);
    run(&mut reader, stream.as_bytes(), &[]);
    assert!(reader.saw_output);
    let counts = reader.finish(0);
    assert_eq!(
        (counts.input, counts.output, counts.estimated),
        (4, 1, false)
    );
}

/// Output the upstream did not count is estimated from every text the model produced (tool
/// calls and reasoning too), from the same table the guardrails scan, and a body and its
/// stream give the same estimate.
#[test]
fn output_is_estimated_from_every_model_text_alike_in_json_and_streams() {
    use crate::response_text::fixtures::{self, Generation};
    let full = Generation {
        reasoning: "The user asks for the weather in Paris; call the tool.".into(),
        content: "Let me check the weather.".into(),
        tools: vec![(
            "get_weather".into(),
            r#"{"city": "Paris", "unit": "celsius"}"#.into(),
        )],
    };
    let content_only = Generation {
        content: full.content.clone(),
        ..Generation::default()
    };
    type Shape = (fn(&Generation) -> String, fn(&Generation, usize) -> String);
    let shapes: [Shape; 3] = [
        (fixtures::openai_json, fixtures::openai_stream),
        (fixtures::anthropic_json, fixtures::anthropic_stream),
        (fixtures::responses_json, fixtures::responses_stream),
    ];
    for (json, stream) in shapes {
        let estimate = |g: &Generation| {
            let from_json = super::output_estimate_json(Family::O200k, json(g).as_bytes());
            let mut reader = StreamReader::new(Family::O200k, false);
            // One delta per text: estimates of pieces add up to more than the whole's.
            run(&mut reader, stream(g, 1000).as_bytes(), &[]);
            let from_stream = super::to_tokens(reader.output_units);
            (from_json, from_stream)
        };
        let (json_full, stream_full) = estimate(&full);
        let (json_content, _) = estimate(&content_only);
        // Tool calls and reasoning count: several times the answer alone.
        assert!(
            json_full > 2 * json_content,
            "{json_full} vs {json_content}"
        );
        // Anthropic's body holds `input` as an object (spaces may differ from the stream's
        // JSON text, which opens with `{}` in `content_block_start`): within 3 tokens.
        assert!(
            json_full.abs_diff(stream_full) <= 3,
            "json {json_full}, stream {stream_full}"
        );
    }
}
