//! Prometheus text exposition (format 0.0.4) of the engine's state, with vLLM's metric names and
//! a `model_name` label on every series, so that anything scraping vLLM can scrape the simulator.

use std::fmt::{Display, Write as _};

use crate::config::Config;
use crate::engine::{EngineStats, TTFT_BUCKETS_SECONDS};

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders every metric. `now_unix` is the value of the LoRA info gauge, which vLLM sets to the
/// time of the last update.
pub fn render(config: &Config, stats: &EngineStats, now_unix: f64) -> String {
    let mut out = Exposition::new(&config.model);

    out.family(
        "vllm:num_requests_running",
        "gauge",
        "Number of requests in model execution batches.",
    );
    out.sample("vllm:num_requests_running", &[], stats.running);
    out.family(
        "vllm:num_requests_waiting",
        "gauge",
        "Number of requests waiting to be processed.",
    );
    out.sample("vllm:num_requests_waiting", &[], stats.waiting);
    // Not a vLLM metric: the simulator's own, for tests of the gateway's concurrency limits.
    out.family(
        "simulator:peak_requests",
        "gauge",
        "Most requests in the engine at once (running and waiting) since it started.",
    );
    out.sample("simulator:peak_requests", &[], stats.peak_requests);
    for name in ["vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"] {
        out.family(name, "gauge", "KV-cache usage. 1 means 100 percent usage.");
        out.sample(name, &[], stats.kv_usage);
    }

    out.family(
        "vllm:cache_config_info",
        "gauge",
        "Information of the LLMEngine CacheConfig.",
    );
    let block_size = config.block_size.to_string();
    let num_blocks = config.kv_blocks.to_string();
    // Python spelling, as vLLM renders the config value.
    let prefix_caching = if config.prefix_cache { "True" } else { "False" };
    out.sample(
        "vllm:cache_config_info",
        &[
            ("block_size", &block_size),
            ("enable_prefix_caching", prefix_caching),
            ("num_gpu_blocks", &num_blocks),
        ],
        1,
    );

    out.family(
        "vllm:lora_requests_info",
        "gauge",
        "Running stats on lora requests.",
    );
    let max_lora = config.max_loras.to_string();
    let running = stats.running_adapters.join(",");
    let waiting = stats.waiting_adapters.join(",");
    out.sample(
        "vllm:lora_requests_info",
        &[
            ("max_lora", &max_lora),
            ("running_lora_adapters", &running),
            ("waiting_lora_adapters", &waiting),
        ],
        now_unix,
    );

    out.family(
        "vllm:request_success_total",
        "counter",
        "Count of successfully processed requests.",
    );
    let finished = stats.finished;
    for (reason, count) in [
        ("stop", finished.stop),
        ("length", finished.length),
        ("abort", finished.abort),
    ] {
        out.sample(
            "vllm:request_success_total",
            &[("finished_reason", reason)],
            count,
        );
    }

    let counters = stats.counters;
    for (name, help, value) in [
        (
            "vllm:prompt_tokens_total",
            "Number of prefill tokens processed.",
            counters.prompt_tokens,
        ),
        (
            "vllm:generation_tokens_total",
            "Number of generation tokens processed.",
            counters.generation_tokens,
        ),
        (
            "vllm:num_preemptions_total",
            "Cumulative number of preemption from the engine.",
            counters.preemptions,
        ),
        (
            "vllm:prefix_cache_queries_total",
            "Prefix cache queries, in terms of number of queried tokens.",
            counters.prefix_cache_queries,
        ),
        (
            "vllm:prefix_cache_hits_total",
            "Prefix cache hits, in terms of number of cached tokens.",
            counters.prefix_cache_hits,
        ),
    ] {
        out.family(name, "counter", help);
        out.sample(name, &[], value);
    }

    let ttft = &stats.time_to_first_token;
    out.family(
        "vllm:time_to_first_token_seconds",
        "histogram",
        "Histogram of time to first token in seconds.",
    );
    for (bound, count) in TTFT_BUCKETS_SECONDS.iter().zip(ttft.cumulative) {
        // Debug keeps the ".0" on whole numbers ("1.0"), as Python's client prints them.
        let le = format!("{bound:?}");
        out.sample(
            "vllm:time_to_first_token_seconds_bucket",
            &[("le", &le)],
            count,
        );
    }
    out.sample(
        "vllm:time_to_first_token_seconds_bucket",
        &[("le", "+Inf")],
        ttft.count,
    );
    out.sample("vllm:time_to_first_token_seconds_count", &[], ttft.count);
    out.sample("vllm:time_to_first_token_seconds_sum", &[], ttft.sum);

    out.text
}

struct Exposition {
    text: String,
    model_label: String,
}

impl Exposition {
    fn new(model: &str) -> Self {
        Self {
            text: String::new(),
            model_label: escape_label_value(model),
        }
    }

    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        let _ = write!(self.text, "{name}{{model_name=\"{}\"", self.model_label);
        for (label, label_value) in labels {
            let _ = write!(
                self.text,
                ",{label}=\"{}\"",
                escape_label_value(label_value)
            );
        }
        let _ = writeln!(self.text, "}} {value}");
    }
}

fn escape_label_value(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Cli;
    use clap::Parser;

    #[test]
    fn renders_vllm_series_with_model_label() {
        let config = Cli::parse_from(["sim", "--model", "m\"x", "--lora", "a"]).resolve();
        let mut stats = EngineStats {
            waiting: 3,
            running: 2,
            kv_usage: 0.25,
            running_adapters: vec!["a".into(), "b".into()],
            ..EngineStats::default()
        };
        stats.time_to_first_token.observe(0.3);
        let text = render(&config, &stats, 1700000000.5);

        for line in [
            r#"vllm:num_requests_waiting{model_name="m\"x"} 3"#,
            r#"vllm:num_requests_running{model_name="m\"x"} 2"#,
            r#"vllm:kv_cache_usage_perc{model_name="m\"x"} 0.25"#,
            r#"vllm:gpu_cache_usage_perc{model_name="m\"x"} 0.25"#,
            r#"vllm:cache_config_info{model_name="m\"x",block_size="16",enable_prefix_caching="True",num_gpu_blocks="2048"} 1"#,
            r#"vllm:lora_requests_info{model_name="m\"x",max_lora="2",running_lora_adapters="a,b",waiting_lora_adapters=""} 1700000000.5"#,
            r#"vllm:request_success_total{model_name="m\"x",finished_reason="length"} 0"#,
            r#"vllm:time_to_first_token_seconds_bucket{model_name="m\"x",le="0.25"} 0"#,
            r#"vllm:time_to_first_token_seconds_bucket{model_name="m\"x",le="0.5"} 1"#,
            r#"vllm:time_to_first_token_seconds_bucket{model_name="m\"x",le="1.0"} 1"#,
            r#"vllm:time_to_first_token_seconds_bucket{model_name="m\"x",le="+Inf"} 1"#,
            r#"vllm:time_to_first_token_seconds_count{model_name="m\"x"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
        assert!(text.contains("# TYPE vllm:prefix_cache_hits_total counter\n"));
    }
}
