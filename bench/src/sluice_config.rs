//! THE SLUICE CONFIGURATION `make bench` MEASURES: the one place to change it.
//!
//! Both "Envoy + Sluice" setups (the native module and the Wasm build) run it, and must run every
//! feature the filter has, configured as a real deployment would, so that the overhead reported is
//! the overhead users get. When a feature lands (normalization, model header and mapping, token
//! accounting, quotas, guardrails, replica picking), turn it on here, in the same change. The
//! benchmark validates this JSON with the filter's own parser
//! (`sluice_core::config::Config::from_json`) before it starts anything, and prints it in the
//! report, so a stale or mistyped field fails loudly.
//!
//! Today this is the shipped configuration, the same in `envoy.yaml` and `envoy.wasm.yaml`
//! (request normalization with the body-size limit, the model catalog with pools, context windows
//! and a LoRA adapter, aliases, the routing headers Envoy's routes match on, token accounting)
//! plus replica picking (the benchmark starts the picker, which scrapes the mock upstream's canned
//! vLLM metrics), the default guardrail rule set, and quotas for the API key every setup sends,
//! with limits high enough never to refuse. Every request the benchmark sends names a model of the
//! catalog in its body, as clients do; every Envoy cluster points at the benchmark's upstream,
//! which answers any model.

/// The filter's configuration (JSON), given to both builds in place of the one in their shipped
/// config (`envoy.yaml`, `envoy.wasm.yaml`).
pub const FILTER_CONFIGURATION: &str = r#"{
  "routing": {
    "model_header": "x-sluice-model",
    "base_model_header": "x-sluice-base-model",
    "unhandled_paths": "reject"
  },
  "limits": { "max_request_body_bytes": 8388608 },
  "models": {
    "meta-llama/Llama-3.1-8B-Instruct": {
      "pool": "llama_8b", "context_window": 131072, "adapters": ["sql-lora"]
    },
    "Qwen/Qwen2.5-7B-Instruct": { "pool": "qwen_7b", "context_window": 32768 }
  },
  "aliases": {
    "gpt-4o": "meta-llama/Llama-3.1-8B-Instruct",
    "gpt-4o-mini": "Qwen/Qwen2.5-7B-Instruct",
    "claude-*": "meta-llama/Llama-3.1-8B-Instruct"
  },
  "picking": {
    "picker_cluster": "sluice_picker",
    "refresh_ms": 50,
    "stale_after_ms": 2000,
    "fallbacks": 2
  },
  "guardrails": {},
  "quotas": {
    "keys": [
      {
        "sha256": "dad245df3ba7a15098978da264f95adb21d9a07298894c99d76c17ae364c005a",
        "tenant": "bench"
      }
    ],
    "tenants": {
      "bench": {
        "limits": {
          "requests_per_minute": 1000000000,
          "tokens_per_minute": 1000000000000,
          "max_concurrent": 100000,
          "budgets": [{ "period": "day", "tokens": 1000000000000000, "usd": 1000000000 }]
        }
      }
    },
    "models": {
      "meta-llama/Llama-3.1-8B-Instruct": { "requests_per_minute": 1000000000 }
    },
    "prices": {
      "meta-llama/Llama-3.1-8B-Instruct": { "input": 0.05, "output": 0.08 }
    }
  }
}"#;

/// Features enabled above, for the report. Keep in step with `FILTER_CONFIGURATION`.
pub const FEATURES: &[&str] = &[
    "request parsing and normalization (body limit 8 MiB)",
    "model catalog and aliases",
    "routing on the model and base-model headers set from the body",
    "routing-header hygiene",
    "replica picking: per-request scoring from the picker's snapshot (refreshed every 50 ms), \
     in-flight counts and prefix table in shared data, destination and 2 fallbacks for Envoy's \
     override_host load balancing",
    "token accounting: prompt estimate per request, usage read from every JSON and SSE response \
     (include_usage added to streams and its chunk removed again), token and latency metrics",
    "quotas: the benchmark's API key (stored as its SHA-256) identifies a tenant with a \
     requests-per-minute, tokens-per-minute, concurrency and daily token and USD budget limit \
     (never reached), plus a per-model limit: two scopes reserved per request (the tenant's and the model's), the tenant's settled at the end (the model's counts only requests)",
    "guardrails: the default rule set (PII and secret detectors, prompt-injection signals) on \
     user and tool text of requests and on responses (JSON held and scanned; streams through \
     the hold-back, which keeps only a possibly unfinished match back)",
];

#[cfg(test)]
mod tests {
    #[test]
    fn the_filter_accepts_the_configuration() {
        if let Err(error) =
            sluice_core::config::Config::from_json(super::FILTER_CONFIGURATION.as_bytes())
        {
            panic!("invalid Sluice configuration for the benchmark: {error}");
        }
    }

    /// The micro-benchmarks must measure the success path, not an early rejection.
    #[test]
    fn the_benchmark_bodies_route() {
        use crate::bodies::{GATEWAY_SIZES, MICRO_SIZES, MODEL, chat_body};
        use sluice_core::canonical::ApiKind;
        let config = sluice_core::config::Config::from_json(super::FILTER_CONFIGURATION.as_bytes())
            .expect("valid configuration");
        for &(size, _) in MICRO_SIZES.iter().chain(GATEWAY_SIZES) {
            for stream in [false, true] {
                let body = chat_body(size, stream);
                let routed = sluice_core::pipeline::route_request(
                    &config,
                    ApiKind::ChatCompletions,
                    body.as_bytes(),
                )
                .unwrap_or_else(|e| panic!("{size} bytes: {e:?}"));
                assert_eq!(routed.model, MODEL);
                assert_eq!(routed.body, None);
                let alias = body.replacen(MODEL, "gpt-4o", 1);
                let routed = sluice_core::pipeline::route_request(
                    &config,
                    ApiKind::ChatCompletions,
                    alias.as_bytes(),
                )
                .unwrap_or_else(|e| panic!("{size} bytes, alias: {e:?}"));
                assert_eq!(routed.model, MODEL);
                assert!(routed.body.is_some());
            }
        }
    }
}
