//! The translation micro figure: core's translation of one typical request and its answer,
//! natively, in a plain timed loop (no criterion, no gateway). `benches/translate.rs` runs
//! `run` in the bench profile (optimized, as the native module is built) and prints one
//! `SLUICE_TRANSLATE {json}` line per case; `bench` reads them back with `parse`.
//!
//! The request is the gateway runs' (the 1 KB chat body); the answers are what the Anthropic
//! stand-in sends for it, a 16-token text answer, whole and streamed (one event per chunk, as
//! the upstream filter gets them). Translation only: the upstream filter's other work per
//! attempt (reading the plan, headers, the health record) is in the gateway runs.

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use sluice_core::translate::{self, Shape, StreamTranslator, TargetRequest};

use super::{ANTHROPIC_MODEL, OPENAI_MODEL, VIA_ANTHROPIC_MODEL, client_body};

/// One case's figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    pub id: String,
    /// Median time per call over the batches, in nanoseconds.
    pub median_ns: f64,
    /// The bytes translated (the input) and produced.
    pub bytes_in: usize,
    pub bytes_out: usize,
}

/// Case ids, in the order they run and are reported.
pub const REQUEST_SAME_SHAPE: &str = "request/openai_to_openai (model only)";
pub const REQUEST_TO_ANTHROPIC: &str = "request/openai_to_anthropic";
pub const RESPONSE_TO_OPENAI: &str = "response/anthropic_to_openai (JSON)";
pub const STREAM_TO_OPENAI: &str = "stream/anthropic_to_openai (SSE, 16 tokens)";

/// The words of the typical answer, one token each.
const ANSWER: [&str; 16] = [
    "Latency",
    " is",
    " flat",
    ",",
    " throughput",
    " grew",
    " in",
    " Europe",
    ",",
    " and",
    " costs",
    " stayed",
    " the",
    " same",
    " this",
    " quarter",
];

/// A typical Anthropic Messages answer to the request, whole.
pub fn anthropic_response() -> String {
    serde_json::json!({
        "id": "msg_01bench0000000000000000",
        "type": "message",
        "role": "assistant",
        "model": ANTHROPIC_MODEL,
        "content": [{ "type": "text", "text": ANSWER.concat() }],
        "stop_reason": "max_tokens",
        "stop_sequence": null,
        "usage": {
            "input_tokens": 231,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": ANSWER.len()
        }
    })
    .to_string()
}

/// The same answer streamed: Anthropic's events, one per chunk.
pub fn anthropic_stream() -> Vec<String> {
    let event = |name: &str, data: serde_json::Value| format!("event: {name}\ndata: {data}\n\n");
    let mut chunks = vec![
        event(
            "message_start",
            serde_json::json!({"type": "message_start", "message": {
                "id": "msg_01bench0000000000000000", "type": "message", "role": "assistant",
                "model": ANTHROPIC_MODEL, "content": [], "stop_reason": null,
                "stop_sequence": null,
                "usage": {"input_tokens": 231, "cache_creation_input_tokens": 0,
                          "cache_read_input_tokens": 0, "output_tokens": 1}
            }}),
        ),
        event(
            "content_block_start",
            serde_json::json!({"type": "content_block_start", "index": 0,
                               "content_block": {"type": "text", "text": ""}}),
        ),
        event("ping", serde_json::json!({"type": "ping"})),
    ];
    for word in ANSWER {
        chunks.push(event(
            "content_block_delta",
            serde_json::json!({"type": "content_block_delta", "index": 0,
                               "delta": {"type": "text_delta", "text": word}}),
        ));
    }
    chunks.push(event(
        "content_block_stop",
        serde_json::json!({"type": "content_block_stop", "index": 0}),
    ));
    chunks.push(event(
        "message_delta",
        serde_json::json!({"type": "message_delta",
                           "delta": {"stop_reason": "max_tokens", "stop_sequence": null},
                           "usage": {"output_tokens": ANSWER.len()}}),
    ));
    chunks.push(event(
        "message_stop",
        serde_json::json!({"type": "message_stop"}),
    ));
    chunks
}

/// One case: its name, its input's size and one call (returning the bytes produced).
pub type Case = (&'static str, usize, Box<dyn Fn() -> usize>);

/// The cases, in the order they run.
pub fn cases() -> Vec<Case> {
    let request = client_body(VIA_ANTHROPIC_MODEL, false).into_bytes();
    let openai = TargetRequest {
        shape: Shape::OpenAiChat,
        model: OPENAI_MODEL,
        default_max_tokens: 4096,
    };
    let anthropic = TargetRequest {
        shape: Shape::AnthropicMessages,
        model: ANTHROPIC_MODEL,
        default_max_tokens: 4096,
    };
    let response = anthropic_response().into_bytes();
    let stream = anthropic_stream();
    let stream_bytes = stream.iter().map(String::len).sum();
    let translate_request = |target: TargetRequest<'static>| {
        let body = request.clone();
        move || {
            translate::request(Shape::OpenAiChat, black_box(&body), &target)
                .map_or(0, |out| out.len())
        }
    };
    vec![
        (
            REQUEST_SAME_SHAPE,
            request.len(),
            Box::new(translate_request(openai)),
        ),
        (
            REQUEST_TO_ANTHROPIC,
            request.len(),
            Box::new(translate_request(anthropic)),
        ),
        (
            RESPONSE_TO_OPENAI,
            response.len(),
            Box::new(move || {
                translate::response_at(
                    Shape::AnthropicMessages,
                    Shape::OpenAiChat,
                    black_box(&response),
                    1_765_000_000,
                )
                .map_or(0, |out| out.len())
            }),
        ),
        (
            STREAM_TO_OPENAI,
            stream_bytes,
            Box::new(move || {
                let mut translator =
                    StreamTranslator::new(Shape::AnthropicMessages, Shape::OpenAiChat)
                        .with_created(1_765_000_000);
                let last = stream.len().saturating_sub(1);
                stream
                    .iter()
                    .enumerate()
                    .map(|(i, chunk)| {
                        translator
                            .chunk(black_box(chunk.as_bytes()), i == last)
                            .len()
                    })
                    .sum()
            }),
        ),
    ]
}

/// Times every case: a warm-up, then `batches` batches of about `batch` each; the figure is the
/// median of the batches' time per call.
pub fn run(batches: usize, batch: Duration) -> Vec<Figure> {
    cases()
        .into_iter()
        .map(|(id, bytes_in, call)| {
            let bytes_out = call();
            // How many calls fill a batch, from a short warm-up.
            let warm = Instant::now();
            let mut calls = 0u64;
            while warm.elapsed() < batch.saturating_mul(20) {
                black_box(call());
                calls += 1;
            }
            let per_call = warm.elapsed().as_secs_f64() / calls.max(1) as f64;
            let per_batch = ((batch.as_secs_f64() / per_call.max(1e-9)) as u64).max(1);
            let mut samples = Vec::with_capacity(batches);
            for _ in 0..batches {
                let start = Instant::now();
                for _ in 0..per_batch {
                    black_box(call());
                }
                samples.push(start.elapsed().as_secs_f64() * 1e9 / per_batch as f64);
            }
            Figure {
                id: id.to_owned(),
                median_ns: crate::stats::median(&samples).unwrap_or(f64::NAN),
                bytes_in,
                bytes_out,
            }
        })
        .collect()
}

/// The line `benches/translate.rs` prints for a figure.
pub fn line(figure: &Figure) -> String {
    let mut out = String::from("SLUICE_TRANSLATE ");
    let _ = write!(
        out,
        "{}",
        serde_json::json!({
            "id": figure.id,
            "median_ns": figure.median_ns,
            "bytes_in": figure.bytes_in,
            "bytes_out": figure.bytes_out,
        })
    );
    out
}

/// The figures in the bench's output.
pub fn parse(stdout: &str) -> Vec<Figure> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("SLUICE_TRANSLATE "))
        .filter_map(|json| serde_json::from_str::<serde_json::Value>(json).ok())
        .filter_map(|v| {
            Some(Figure {
                id: v["id"].as_str()?.to_owned(),
                median_ns: v["median_ns"].as_f64()?,
                bytes_in: usize::try_from(v["bytes_in"].as_u64()?).ok()?,
                bytes_out: usize::try_from(v["bytes_out"].as_u64()?).ok()?,
            })
        })
        .collect()
}

/// The figure of `id`, if measured.
pub fn find<'a>(figures: &'a [Figure], id: &str) -> Option<&'a Figure> {
    figures.iter().find(|f| f.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_translates_its_input() {
        let cases = cases();
        assert_eq!(cases.len(), 4);
        for (id, bytes_in, call) in &cases {
            assert!(*bytes_in > 0, "{id}");
            assert!(call() > 0, "{id} produced nothing");
        }
    }

    #[test]
    fn the_answers_translate_into_the_clients_shape() {
        let openai = translate::response(
            Shape::AnthropicMessages,
            Shape::OpenAiChat,
            anthropic_response().as_bytes(),
        )
        .expect("translates");
        let openai: serde_json::Value = serde_json::from_slice(&openai).expect("JSON");
        assert_eq!(openai["model"], ANTHROPIC_MODEL);
        assert_eq!(openai["choices"][0]["message"]["content"], ANSWER.concat());
        assert_eq!(openai["usage"]["completion_tokens"], 16);

        let mut translator = StreamTranslator::new(Shape::AnthropicMessages, Shape::OpenAiChat);
        let chunks = anthropic_stream();
        let mut out = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            out.extend(translator.chunk(chunk.as_bytes(), i + 1 == chunks.len()));
        }
        let text = String::from_utf8(out).expect("UTF-8");
        assert!(text.contains("\" quarter\""), "{text}");
        assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    }

    #[test]
    fn figures_survive_their_line() {
        let figure = Figure {
            id: REQUEST_TO_ANTHROPIC.into(),
            median_ns: 1234.5,
            bytes_in: 1000,
            bytes_out: 900,
        };
        let out = format!("noise\n{}\nmore\n", line(&figure));
        assert_eq!(parse(&out), vec![figure]);
    }

    #[test]
    fn a_short_run_gives_every_case_a_figure() {
        let figures = run(3, Duration::from_micros(200));
        assert_eq!(figures.len(), 4);
        assert!(figures.iter().all(|f| f.median_ns > 0.0), "{figures:?}");
    }
}
