//! `config::Config::from_json` on arbitrary bytes and on generated configurations of its schema:
//! valid ones (every section, values in range), which it must accept, and the same with up to
//! three values replaced by near misses, wrong types or hostile strings, or unknown members
//! added. Never a panic, and every error names a field.

use proptest::prelude::*;
use serde_json::{Value, json};
use sluice_core::config::Config;

use crate::support::{Edit, Json, Text, check, json, text};

/// Picks one of `values`.
fn one<T: Clone + std::fmt::Debug + 'static>(values: &[T]) -> BoxedStrategy<T> {
    prop::sample::select(values.to_vec()).boxed()
}

/// Limits of one scope, every field valid.
fn limits() -> BoxedStrategy<Value> {
    (
        prop::option::of(1u64..10_000),
        prop::option::of(1u64..10_000_000),
        one(&["total", "input", "output"]),
        prop::option::of(1u32..1000),
        prop::option::of((one(&["hour", "day", "month"]), 1u64..1000, 0.01f64..1e6)),
    )
        .prop_map(|(rpm, tpm, counts, concurrent, budget)| {
            let mut limits = json!({"tokens_per_minute_counts": counts});
            if let Some(rpm) = rpm {
                limits["requests_per_minute"] = json!(rpm);
            }
            if let Some(tpm) = tpm {
                limits["tokens_per_minute"] = json!(tpm);
            }
            if let Some(concurrent) = concurrent {
                limits["max_concurrent"] = json!(concurrent);
            }
            if let Some((period, requests, usd)) = budget {
                limits["budgets"] = json!([{"period": period, "requests": requests, "usd": usd}]);
            }
            limits
        })
        .boxed()
}

fn quotas() -> BoxedStrategy<Value> {
    (
        limits(),
        limits(),
        limits(),
        1u32..=65_536,
        one(&["open", "closed"]),
        prop::option::of(10u64..60_000),
        any::<bool>(),
    )
        .prop_map(|(tenant, default, model, slots, fail, sync, by_header)| {
            let mut quotas = json!({
                "identity": {"source": "api_key"},
                "keys": [{"sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                          "tenant": "acme", "project": "web"}],
                "tenants": {"acme": {"limits": tenant, "models": {"m": model.clone()}}},
                "default_tenant": {"limits": default},
                "models": {"m": model},
                "prices": {"m": {"input": 1.5, "output": 6.0, "cached_input": 0.5}},
                "max_reserved_output_tokens": 4096,
                "slots": slots,
                "fail_policy": fail,
                "upstream_credentials": {"m": {"header": "authorization", "prefix": "Bearer ",
                                                "value": "sk-upstream"}},
            });
            if by_header {
                quotas["identity"] = json!({"source": "header", "tenant_header": "x-tenant"});
                quotas.as_object_mut().unwrap().remove("keys");
            }
            if let Some(sync) = sync {
                quotas["cluster"] = json!({"picker_cluster": "sluice_picker",
                    "picker_authority": "sluice-picker", "sync_ms": sync, "stale_after_ms": sync * 3});
            }
            quotas
        })
        .boxed()
}

fn guardrails() -> BoxedStrategy<Value> {
    let action = || one(&["block", "redact", "log"]);
    (
        (action(), action(), action()),
        prop::sample::subsequence(
            vec!["system", "user", "assistant", "tool", "tool_definitions"],
            0..5,
        ),
        any::<bool>(),
        prop::option::of(1u64..100_000),
        16usize..=65_536,
        0.1f32..10.0,
    )
        .prop_map(
            |((email, card, injection), roles, responses, max, holdback, threshold)| {
                json!({
                    "policies": {
                        "default": {},
                        "strict": {"rules": {"email": email, "credit_card": card,
                                             "prompt_injection": injection},
                                   "response_rules": {"email": email},
                                   "roles": roles, "responses": responses,
                                   "models": ["m", "llama*"], "max_prompt_tokens": max,
                                   "max_output_tokens": max},
                    },
                    "models": {"llama*": "strict"},
                    "tenants": {"acme": "default"},
                    "routes": {"r1": "strict"},
                    "deny": [{"id": "weapons", "words": ["pipe bomb"],
                              "patterns": ["build (?:a|an) bomb"]}],
                    "injection": {"threshold": threshold, "phrases": {"ignore the rules": 0.5}},
                    "stream_holdback_bytes": holdback,
                })
            },
        )
        .boxed()
}

fn picking() -> BoxedStrategy<Value> {
    (
        10u64..=60_000,
        0u64..10_000,
        0u32..=8,
        1u64..1_000_000,
        prop::collection::vec(0.0f64..10.0, 6),
    )
        .prop_map(|(refresh, extra, fallbacks, ttl, w)| {
            json!({
                "picker_cluster": "sluice_picker", "picker_authority": "sluice-picker",
                "refresh_ms": refresh, "stale_after_ms": refresh + extra, "fallbacks": fallbacks,
                "prefix_ttl_ms": ttl, "max_waiting_per_endpoint": 16,
                "weights": {"queue": w[0], "kv_cache": w[1], "running": w[2],
                            "in_flight": w[3], "prefix": w[4], "lora": w[5]},
            })
        })
        .boxed()
}

/// A valid configuration: every section (each present or not) with values in range.
fn valid_document() -> BoxedStrategy<Value> {
    let section = |s: BoxedStrategy<Value>| prop::option::weighted(0.7, s);
    (
        (
            one(&["pass", "reject"]),
            prop::sample::subsequence(vec!["/tokenize", "/health/", "/v1/rerank"], 0..3),
        ),
        (
            1u64..1_000_000_000,
            100u64..200_000,
            one(&["o200k", "cl100k", "llama3", "qwen", "claude"]),
        ),
        section(picking()),
        (1u64..100_000, any::<bool>(), any::<bool>()),
        section(quotas()),
        section(guardrails()),
    )
        .prop_map(
            |(
                (unhandled, paths),
                (body, window, tokenizer),
                picking,
                tokens,
                quotas,
                guardrails,
            )| {
                let mut doc = json!({
                    "routing": {"model_header": "x-model", "base_model_header": "x-base-model",
                                "unhandled_paths": unhandled, "passthrough_paths": paths},
                    "limits": {"max_request_body_bytes": body},
                    "models": {"m": {"context_window": window, "tokenizer": tokenizer,
                                     "adapters": ["lora-a"], "default_max_output_tokens": 512},
                               "llama*": {"pool": "llama"}, "base": {}},
                    "aliases": {"alias": "m", "gpt-*": "lora-a"},
                    "tokens": {"default_max_output_tokens": tokens.0, "stream_usage": tokens.1,
                               "usage_header": tokens.2, "max_response_bytes": 1_000_000},
                });
                for (name, section) in [
                    ("picking", picking),
                    ("quotas", quotas),
                    ("guardrails", guardrails),
                ] {
                    if let Some(section) = section {
                        doc[name] = section;
                    }
                }
                doc
            },
        )
        .boxed()
}

/// A value that is out of range or of the wrong type almost anywhere.
fn near_miss() -> BoxedStrategy<Json> {
    prop_oneof![
        prop::sample::select(vec![
            "0",
            "-1",
            "1e400",
            "18446744073709551616",
            "0.5",
            "\"\"",
            "\" \"",
            "\"*x*\"",
            "[]",
            "{}",
            "null",
            "true",
            "\"X Y\"",
            "\"(\""
        ])
        .prop_map(|n| Json::Num(n.to_owned())),
        json(),
    ]
    .boxed()
}

/// `value` as a generated document.
fn tree(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Number(n) => Json::Num(n.to_string()),
        Value::String(s) => Json::str(s),
        Value::Array(items) => Json::Arr(items.iter().map(tree).collect()),
        Value::Object(map) => {
            Json::Obj(map.iter().map(|(k, v)| (Text::plain(k), tree(v))).collect())
        }
    }
}

/// A valid configuration with up to three of its values (or keys' values) replaced by near
/// misses and arbitrary JSON, or an extra member of any name added somewhere.
fn document() -> BoxedStrategy<(Json, usize)> {
    (
        valid_document(),
        prop::collection::vec(
            (
                any::<prop::sample::Index>(),
                near_miss(),
                any::<bool>(),
                text(),
            ),
            0..=3,
        ),
    )
        .prop_map(|(doc, edits)| {
            let mut doc = tree(&doc);
            let count = edits.len();
            for (at, value, add, key) in edits {
                let edit = if add {
                    Edit::Add(key, value)
                } else {
                    Edit::Replace(value)
                };
                let _ = doc.edit(at.index(doc.count()), edit);
            }
            (doc, count)
        })
        .boxed()
}

/// Top-level sections an error's field can start with.
const SECTIONS: &[&str] = &[
    "routing",
    "limits",
    "models",
    "aliases",
    "picking",
    "tokens",
    "quotas",
    "guardrails",
];

fn assert_names_a_field(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Err(error) = Config::from_json(bytes) {
        let field = error.field.as_str();
        prop_assert!(!field.is_empty(), "no field: {}", error);
        prop_assert!(!error.message.is_empty(), "no message: {}", error);
        let section = field.split(['.', '[']).next().unwrap_or_default();
        // The path of a known field, or the unknown field itself.
        prop_assert!(
            field == "(document)"
                || SECTIONS.contains(&section)
                || error.message.starts_with("unknown field"),
            "error names no field of the schema: {}",
            error
        );
    }
    Ok(())
}

#[test]
fn config_from_arbitrary_bytes() {
    let strategy = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..128),
        json().prop_map(|j| j.render_spaced()),
    ];
    check(
        "config::Config::from_json, arbitrary bytes",
        1.0,
        strategy,
        |bytes| assert_names_a_field(&bytes),
    );
}

#[test]
fn config_from_generated_documents() {
    check(
        "config::Config::from_json, generated documents",
        0.5,
        document(),
        |(doc, edits)| {
            let rendered = doc.render_spaced();
            if edits == 0 {
                // Every valid configuration is accepted.
                if let Err(error) = Config::from_json(&rendered) {
                    return Err(TestCaseError::fail(format!(
                        "a valid configuration refused: {error}"
                    )));
                }
            }
            assert_names_a_field(&rendered)
        },
    );
}
