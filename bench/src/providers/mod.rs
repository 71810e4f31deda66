//! The providers section of `make bench` (issue 16): what per-attempt translation costs a
//! request, and how a chain of hosted providers fails over under steady load.
//!
//! - **Translation cost.** Two provider stand-ins (`sluice-simulator --provider openai` and
//!   `--provider anthropic`, answering at once) behind Envoy + Sluice, the native module and
//!   the Wasm build side by side, the shipped configs with this section's filter
//!   configuration. One OpenAI-shaped client at a fixed concurrency asks a model served by a
//!   chain of one OpenAI target (only the model and key are rewritten) and a model served by a
//!   chain of one Anthropic target (the request translated, the answer translated back), JSON
//!   and streamed; each stand-in is also measured without a gateway, with the bytes the gateway
//!   would send it, so what the two stand-ins themselves cost differently drops out.
//! - **Failover.** A steady open-loop rate of short requests on `gpt-4.1`, whose weighted chain
//!   is [`openai`, `anthropic`] and whose standby chain starts at `anthropic`; after a warm-up
//!   and a quiet stretch, a fault on the primary stand-in for a while (500s, 429 with
//!   `retry-after`, a dead host). What the clients saw (errors, latency), when the primary
//!   stopped getting attempts (its own counts, polled) and when it served again.
//! - **Micro figure.** One typical request and response translated natively in a loop, with no
//!   gateway around it (`benches/translate.rs`, run by `cargo bench`).
//!
//! Settings, bodies, results and the report are plain code; the processes and the load need
//! the `orchestrator` feature.

pub mod failover;
pub mod micro;
pub mod report;
#[cfg(feature = "orchestrator")]
pub mod run;
pub mod translation;

use crate::bodies;

/// The upstream model names the two targets ask their providers for (the stand-ins serve them).
pub const OPENAI_MODEL: &str = "gpt-4.1";
pub const ANTHROPIC_MODEL: &str = "claude-sonnet-4-5";
/// The keys the stand-ins accept, one each; the targets carry them, so a request that reached a
/// stand-in had its credential rewritten for it.
pub const OPENAI_KEY: &str = "sk-bench-standin-openai";
pub const ANTHROPIC_KEY: &str = "sk-bench-standin-anthropic";
/// `anthropic-version` the Anthropic stand-in requires (the targets' default).
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// The model the failover load asks for: its chain is [`openai`, `anthropic`].
pub const FAILOVER_MODEL: &str = "gpt-4.1";
/// Models of the translation runs: a chain of one target each (that target's own cluster).
pub const VIA_OPENAI_MODEL: &str = "bench-via-openai";
pub const VIA_ANTHROPIC_MODEL: &str = "bench-via-anthropic";

/// Tokens every benchmark request asks for (`max_tokens`): short answers, so the stand-in's
/// generation is not what is measured.
pub const OUTPUT_TOKENS: u32 = 16;

/// Requests the stand-ins admit per minute and tokens per minute: far above what the runs
/// send, so their rate limits never answer (the faults do).
pub const STANDIN_RPM: u32 = 100_000_000;
pub const STANDIN_TPM: u32 = 2_000_000_000;

/// The section's failover settings, written out in the filter configuration (Sluice's
/// defaults).
pub const EJECT_AFTER_FAILURES: u32 = 5;
pub const EJECTION_MS: u64 = 10_000;

/// The filter configuration of every Envoy in the section: the shipped configs' two provider
/// targets and chains, the two single-target models of the translation runs, and `gpt-4.1` on
/// the chain [`openai`, `anthropic`] with the chain [`anthropic`, `openai`] as its standby
/// (weight 0: taken only while `openai` is out of rotation).
pub fn filter_configuration() -> String {
    let config = serde_json::json!({
        "routing": {
            "model_header": "x-sluice-model",
            "base_model_header": "x-sluice-base-model",
            "unhandled_paths": "reject"
        },
        "models": {
            FAILOVER_MODEL: {
                "chains": [
                    { "cluster": "gpt41_openai_first", "targets": ["openai", "anthropic"], "weight": 1 },
                    { "cluster": "gpt41_anthropic_first", "targets": ["anthropic", "openai"], "weight": 0 }
                ]
            },
            VIA_OPENAI_MODEL: { "chains": [{ "cluster": "openai_api", "targets": ["openai"] }] },
            VIA_ANTHROPIC_MODEL: {
                "chains": [{ "cluster": "anthropic_api", "targets": ["anthropic"] }]
            }
        },
        "targets": {
            "openai": { "provider": "openai", "model": OPENAI_MODEL, "api_key": OPENAI_KEY },
            "anthropic": {
                "provider": "anthropic", "model": ANTHROPIC_MODEL, "api_key": ANTHROPIC_KEY
            }
        },
        "failover": { "eject_after_failures": EJECT_AFTER_FAILURES, "ejection_ms": EJECTION_MS }
    });
    serde_json::to_string_pretty(&config).unwrap_or_default()
}

/// The client's request: the overhead section's 1 KB chat body (a system prompt and a few turns),
/// asking `model` for `OUTPUT_TOKENS` tokens, streamed (with usage) or not.
pub fn client_body(model: &str, stream: bool) -> String {
    bodies::chat_body(1024, stream)
        .replacen(
            &format!(r#""model":"{}""#, bodies::MODEL),
            &format!(r#""model":"{model}""#),
            1,
        )
        .replacen(
            r#""max_tokens":256"#,
            &format!(r#""max_tokens":{OUTPUT_TOKENS}"#),
            1,
        )
}

/// The failover load's request: one short question, a short answer.
pub fn failover_body() -> String {
    serde_json::json!({
        "model": FAILOVER_MODEL,
        "messages": [{ "role": "user", "content": "Say hello in five words." }],
        "max_tokens": 8
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_is_one_the_filter_takes() {
        let text = filter_configuration();
        let config = sluice_core::config::Config::from_json(text.as_bytes()).expect("valid");
        let targets = config.targets.as_ref().expect("targets");
        let chains = targets.chains_of(FAILOVER_MODEL).expect("gpt-4.1 chains");
        assert_eq!(chains.chains.len(), 2);
        assert_eq!(chains.chains[1].weight, 0, "the standby");
        assert!(targets.chains_of(VIA_OPENAI_MODEL).is_some());
        assert!(targets.chains_of(VIA_ANTHROPIC_MODEL).is_some());
        assert_eq!(targets.failover.eject_after_failures, EJECT_AFTER_FAILURES);
    }

    #[test]
    fn client_bodies_ask_for_the_model_and_short_answers() {
        for stream in [false, true] {
            let body: serde_json::Value =
                serde_json::from_str(&client_body(VIA_ANTHROPIC_MODEL, stream)).expect("JSON");
            assert_eq!(body["model"], VIA_ANTHROPIC_MODEL);
            assert_eq!(body["max_tokens"], OUTPUT_TOKENS);
            assert_eq!(body["stream"].as_bool().unwrap_or(false), stream);
        }
        let body: serde_json::Value = serde_json::from_str(&failover_body()).expect("JSON");
        assert_eq!(body["model"], FAILOVER_MODEL);
    }
}
