//! What the routing benchmark runs, and why these numbers.
//!
//! The replicas model one GPU each serving an 8B model, a few times smaller in memory than a real
//! one so that four of them on a 2-core machine reach the regime that matters: **prefill
//! dominates and the KV cache cannot hold every tenant's prompt**.
//!
//! - Timings: 10 ms per decode step and 50 µs per uncached prompt token (20,000 tokens/s of
//!   prefill), about what vLLM gets from an 8B model on one H100 at these batch sizes. A 1.9k-token
//!   prompt costs 95 ms of prefill when nothing is cached, ~10 ms when its prefix is; the
//!   simulator has no chunked prefill, so that time also stalls the running decodes, as vLLM's
//!   default scheduler did for years.
//! - KV cache: 1,024 blocks of 16 tokens (16,384 tokens; a real 80 GB GPU holds ~30× more, with
//!   ~30× more traffic). The 16 tenants' system prompts alone need ~1,600 blocks: one replica
//!   cannot keep them all, so round robin, which sends every tenant everywhere, keeps evicting
//!   them, while affinity gives each replica a quarter of the tenants, which fit next to a full
//!   batch. Without sharing, a batch of 1.9k-token prompts fills the cache at ~8 sequences: KV
//!   pressure, not `max-num-seqs`, bounds the batch, as on real GPUs with long prompts.
//! - `max-num-seqs` 16: the batch a shared prefix makes possible.
//!
//! Rates are multiples of the pool's estimated capacity when nothing is cached
//! (`pool::settings::capacity`), so they follow the timings if those change. The estimate is
//! optimistic (it assumes a full batch at all times). Measured: on the prefix-heavy workload round robin keeps up at 0.8×,
//! falls behind at 1.4× and is far behind at 2×, where only prefix reuse keeps up; the
//! independent workload is comfortable at 0.5×, near saturation at 0.8× and past it at 1.1×
//! for every setup.

use sluice_core::picking::Weights;

use super::workload::Shape;
use crate::pool::settings::ReplicaSettings;

pub const REPLICAS: ReplicaSettings = ReplicaSettings {
    replicas: 4,
    max_num_seqs: 16,
    kv_blocks: 1024,
    block_size: 16,
    prefill_us_per_token: 50,
    decode_ms_per_step: 10,
};

/// Tenants with 1–2k-token system prompts, four conversations each of up to four turns, short new
/// user turns, and outputs of 32–96 tokens.
pub const SHAPE: Shape = Shape {
    tenants: 16,
    conversations_per_tenant: 4,
    max_turns: 4,
    system_tokens: (1024, 2048),
    user_tokens: (32, 96),
    assistant_tokens: (64, 160),
    output_tokens: (32, 96),
};

/// Rates per workload, as multiples of the pool's capacity (`pool::settings::capacity`).
pub const PREFIX_HEAVY_LOADS: [f64; 3] = [0.8, 1.4, 2.0];
pub const INDEPENDENT_LOADS: [f64; 3] = [0.5, 0.8, 1.1];

/// Seconds of arrivals per rate step, and the most a step waits for its last requests after
/// that (whatever still runs is cancelled and reported). 18 steps of 8 s plus their tails keep
/// the section near 3 minutes; the drain lets even the most overloaded baseline finish.
pub const STEP_SECONDS: f64 = 8.0;
pub const DRAIN_SECONDS: f64 = 8.0;
pub const QUICK_STEP_SECONDS: f64 = 2.0;
pub const QUICK_DRAIN_SECONDS: f64 = 3.0;

/// Seed of every arrival time and prompt.
pub const SEED: u64 = 0x51_u64 << 56 | 0x0c_e5;

/// How often the picker scrapes the replicas and the filter re-reads its snapshot, as the
/// Gateway API Inference Extension's endpoint picker scrapes.
pub const REFRESH_MS: u64 = 50;

/// The filter configuration of the Sluice setup: the overhead benchmark's configuration (the
/// shipped one, `bench/src/sluice_config.rs`) with replica picking on, as both shipped configs
/// turn it on, with `weights`.
pub fn filter_configuration(weights: &Weights) -> Result<String, String> {
    let mut config: serde_json::Value =
        serde_json::from_str(crate::sluice_config::FILTER_CONFIGURATION)
            .map_err(|e| format!("bench/src/sluice_config.rs: {e}"))?;
    config["picking"] = serde_json::json!({
        "picker_cluster": "sluice_picker",
        "refresh_ms": REFRESH_MS,
        "stale_after_ms": 2000,
        "fallbacks": 2,
        "weights": {
            "queue": weights.queue,
            "kv_cache": weights.kv_cache,
            "running": weights.running,
            "in_flight": weights.in_flight,
            "prefix": weights.prefix,
            "lora": weights.lora,
        },
    });
    let text = serde_json::to_string_pretty(&config).map_err(|e| e.to_string())?;
    sluice_core::config::Config::from_json(text.as_bytes())
        .map_err(|e| format!("the filter rejects the routing benchmark's configuration: {e}"))?;
    Ok(text)
}

/// `weights` as `queue=2,kv_cache=2,...`, the form `--weights` takes.
pub fn format_weights(weights: &Weights) -> String {
    format!(
        "queue={},kv_cache={},running={},in_flight={},prefix={},lora={}",
        weights.queue,
        weights.kv_cache,
        weights.running,
        weights.in_flight,
        weights.prefix,
        weights.lora
    )
}

/// Parses `name=value` pairs over the defaults: `prefix=4,queue=1`.
pub fn parse_weights(text: &str) -> Result<Weights, String> {
    let mut weights = Weights::default();
    for pair in text.split(',').filter(|p| !p.trim().is_empty()) {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("--weights: expected name=value, got {pair:?}"))?;
        let value: f64 = value
            .trim()
            .parse()
            .map_err(|_| format!("--weights: {name} needs a number, got {value:?}"))?;
        let slot = match name.trim() {
            "queue" => &mut weights.queue,
            "kv_cache" => &mut weights.kv_cache,
            "running" => &mut weights.running,
            "in_flight" => &mut weights.in_flight,
            "prefix" => &mut weights.prefix,
            "lora" => &mut weights.lora,
            other => return Err(format!("--weights: unknown weight {other:?}")),
        };
        *slot = value;
    }
    Ok(weights)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_accepts_the_configuration_with_picking() {
        let weights = parse_weights("prefix=5, queue=1").expect("weights");
        assert_eq!(weights.prefix, 5.0);
        assert_eq!(weights.kv_cache, Weights::default().kv_cache);
        let text = filter_configuration(&weights).expect("valid");
        let config = sluice_core::config::Config::from_json(text.as_bytes()).expect("valid");
        let picking = config.picking.expect("picking on");
        assert_eq!(picking.weights, weights);
        assert_eq!(picking.refresh_ms, REFRESH_MS);
        assert_eq!(parse_weights(&format_weights(&weights)), Ok(weights));
        assert!(parse_weights("prefx=1").is_err());
        assert!(parse_weights("prefix").is_err());
    }

    #[test]
    fn the_prompts_cannot_all_stay_cached_on_one_replica() {
        let prompts =
            SHAPE.tenants as f64 * f64::from(SHAPE.system_tokens.0 + SHAPE.system_tokens.1) / 2.0;
        assert!(prompts > f64::from(REPLICAS.kv_tokens()));
        // ...but a quarter of them fit beside a full batch.
        let share = prompts / REPLICAS.replicas as f64;
        assert!(share < f64::from(REPLICAS.kv_tokens()) / 2.0);
    }
}
