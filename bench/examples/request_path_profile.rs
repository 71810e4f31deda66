//! A driver for profilers (`valgrind --tool=callgrind`, `perf record`): runs one stage of the
//! request path on the benchmark's chat body of the given size, `iterations` times. Criterion's
//! timings (benches/hot_path.rs) move with the load of a shared machine; instruction counts do
//! not, so before/after comparisons of the request path use this:
//!
//! ```text
//! cargo build --profile profiling -p sluice-bench --no-default-features --example request_path_profile
//! valgrind --tool=callgrind target/profiling/examples/request_path_profile route 16384 101
//! ```
//!
//! Instructions per call are the difference between two runs (say 101 and 1 iterations) divided
//! by 100, which takes the setup (configuration, body generation) out. A stage name ending in
//! `-numbers` (`route-numbers`) runs on the body with numbers, times and a date in its prose.
//!
//! The response stages read an answer of about the given size with the benchmark's guardrails
//! on and the upstream's usage reported, as the exchange's response phase does: `response-json`
//! one JSON body, `response-stream` an OpenAI stream of one word per event (each event its own
//! chunk, with the usage chunk the gateway asked for removed). `-one` reads it once for the
//! guard and the accounting (`response_read`); `-two` runs the guard and the usage reader each
//! on its own, as the exchange did before (the reader splitting the guard's output again).

use std::hint::black_box;

use sluice_bench::bodies::{MODEL, STREAM_WORDS, chat_body};
use sluice_bench::sluice_config::FILTER_CONFIGURATION;
use sluice_core::api;
use sluice_core::canonical::ApiKind;
use sluice_core::config::Config;
use sluice_core::error::ApiFlavor;
use sluice_core::guardrails::StreamGuard;
use sluice_core::pipeline;
use sluice_core::response_read::StreamRead;
use sluice_core::tokens::{self, Family};
use sluice_core::usage::{self, StreamReader};

fn main() {
    let mut args = std::env::args().skip(1);
    let stage = args.next().unwrap_or_else(|| "route".to_owned());
    let size: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(16 * 1024);
    let iterations: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let config = match Config::from_json(FILTER_CONFIGURATION.as_bytes()) {
        Ok(config) => config,
        Err(error) => panic!("bench/src/sluice_config.rs is rejected: {error}"),
    };
    let mut body = chat_body(size, false);
    if stage.ends_with("-numbers") {
        // As benches/hot_path.rs's numbers_body: digits and colons in the prose.
        body = body
            .replace(" three ", " 3 ")
            .replace(" quarterly ", " Q3 2024: ")
            .replace(" latency ", " latency at 10:30 was 42.7 ms ");
    }
    let stage = stage.trim_end_matches("-numbers").to_owned();
    let alias = body.replacen(MODEL, "gpt-4o", 1);
    let parsed = api::parse(ApiKind::ChatCompletions, body.as_bytes()).expect("valid body");
    let guardrails = config
        .guardrails
        .as_ref()
        .map(|g| g.0.clone())
        .expect("guardrails");
    let budget = tokens::Budget {
        default_max_output_tokens: 4096,
        context_window: Some(131_072),
    };
    let policy_index = guardrails.policy_for(None, None, MODEL);
    let policy = guardrails.policy(policy_index).expect("a policy");
    let (answer_json, answer_stream) = answer(size);
    for _ in 0..iterations {
        match stage.as_str() {
            "response-json-two" => {
                let body = black_box(answer_json.as_bytes());
                let mut hits = Default::default();
                let _ = black_box(guardrails.guard_json_response(policy, body, &mut hits));
                let reported = usage::usage_from_json(body);
                if reported.as_ref().is_none_or(|(u, _)| u.output.is_none()) {
                    black_box(usage::output_estimate_json(Family::O200k, body));
                }
                black_box(reported);
            }
            "response-json-one" => {
                let body = black_box(answer_json.as_bytes());
                let read = sluice_core::response_text::BodyRead::new(body);
                let mut hits = Default::default();
                let guarded = guardrails.guard_json_read(policy, body, &read, &mut hits);
                black_box(usage::body_counts(
                    Family::O200k,
                    body,
                    &read,
                    &guarded.replaced,
                    0,
                ));
                black_box(guarded);
            }
            "response-stream-two" => {
                let mut guard = StreamGuard::new(
                    policy_index,
                    guardrails.stream_holdback_bytes,
                    ApiFlavor::OpenAi,
                );
                let mut reader = StreamReader::new(Family::O200k, true);
                for (i, chunk) in answer_stream.iter().enumerate() {
                    let end = i + 1 == answer_stream.len();
                    let out = guard.chunk(&guardrails, black_box(chunk.as_bytes()), end);
                    black_box(reader.chunk(&out, end));
                }
                black_box(reader.finish(0));
            }
            "response-stream-one" => {
                let mut guard = StreamGuard::new(
                    policy_index,
                    guardrails.stream_holdback_bytes,
                    ApiFlavor::OpenAi,
                );
                let mut read = StreamRead::new(StreamReader::new(Family::O200k, true));
                read.guard_with(&mut guard);
                for (i, chunk) in answer_stream.iter().enumerate() {
                    let end = i + 1 == answer_stream.len();
                    let rules = Some((&mut guard, &*guardrails));
                    black_box(read.chunk(rules, black_box(chunk.as_bytes()), end));
                }
                black_box(read.finish(0));
            }
            "route" => {
                let _ = black_box(pipeline::route_request(
                    &config,
                    ApiKind::ChatCompletions,
                    black_box(body.as_bytes()),
                ));
            }
            "alias" => {
                let _ = black_box(pipeline::route_request(
                    &config,
                    ApiKind::ChatCompletions,
                    black_box(alias.as_bytes()),
                ));
            }
            "parse" => {
                let _ = black_box(api::parse(
                    ApiKind::ChatCompletions,
                    black_box(body.as_bytes()),
                ));
            }
            "estimate" => {
                black_box(tokens::estimate_request(
                    black_box(&parsed.request),
                    Family::Llama3,
                    budget,
                ));
            }
            "scan" => {
                let _ = black_box(guardrails.check_request(
                    None,
                    None,
                    "m",
                    black_box(&parsed.request),
                    0,
                ));
            }
            "fold" => {
                for segment in parsed.request.segments() {
                    black_box(sluice_core::guardrails::normalize::Normalized::new(
                        black_box(segment.text),
                    ));
                }
            }
            "dump" => {
                println!("{body}");
                return;
            }
            other => panic!(
                "unknown stage {other:?}: route, alias, parse, estimate, scan, fold, \
                 response-json-one/-two or response-stream-one/-two"
            ),
        }
    }
}

/// An answer of about `size` bytes of prose: as one chat completion body with usage, and as the
/// events of its stream (one word each, with `"usage":null`, then the usage chunk and `[DONE]`).
fn answer(size: usize) -> (String, Vec<String>) {
    let words = STREAM_WORDS;
    let mut text = String::new();
    let mut events = Vec::new();
    for word in words.iter().cycle() {
        if text.len() >= size {
            break;
        }
        text.push_str(word);
        events.push(format!(
            "data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{word}\"}},\"finish_reason\":null}}],\"usage\":null}}\n\n"
        ));
    }
    events.push(
        "data: {\"id\":\"chatcmpl-1\",\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":64}}\n\n".to_owned(),
    );
    events.push("data: [DONE]\n\n".to_owned());
    let json = format!(
        "{{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"model\":\"m\",\"choices\":[{{\"index\":0,\"message\":{{\"role\":\"assistant\",\"content\":\"{text}\"}},\"finish_reason\":\"stop\"}}],\"usage\":{{\"prompt_tokens\":9,\"completion_tokens\":64}}}}"
    );
    (json, events)
}
