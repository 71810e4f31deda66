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

use std::hint::black_box;

use sluice_bench::bodies::{MODEL, chat_body};
use sluice_bench::sluice_config::FILTER_CONFIGURATION;
use sluice_core::api;
use sluice_core::canonical::ApiKind;
use sluice_core::config::Config;
use sluice_core::pipeline;
use sluice_core::tokens::{self, Family};

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
    for _ in 0..iterations {
        match stage.as_str() {
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
            other => panic!("unknown stage {other:?}: route, alias, parse, estimate, scan or fold"),
        }
    }
}
