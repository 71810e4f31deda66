//! `config::Config::from_json` on arbitrary bytes and on generated configurations of its schema
//! (every section, values of the right and wrong types, out of range, unknown fields, hostile
//! strings): never a panic, and every error names a field.

use proptest::prelude::*;
use sluice_core::config::Config;

use crate::support::{Json, check, json, number, object, or_any, text};

fn b() -> BoxedStrategy<Json> {
    or_any(any::<bool>().prop_map(Json::Bool))
}

fn n() -> BoxedStrategy<Json> {
    or_any(prop_oneof![
        (0u64..100_000).prop_map(|n| Json::Num(n.to_string())),
        number().prop_map(Json::Num),
    ])
}

fn s(values: &[&'static str]) -> BoxedStrategy<Json> {
    or_any(prop_oneof![
        3 => prop::sample::select(values.to_vec()).prop_map(Json::str),
        1 => text().prop_map(Json::Str),
    ])
}

fn list(item: BoxedStrategy<Json>) -> BoxedStrategy<Json> {
    or_any(prop::collection::vec(item, 0..3).prop_map(Json::Arr))
}

/// A map with keys drawn from `keys` (and arbitrary ones) to `value`.
fn map(keys: &[&'static str], value: BoxedStrategy<Json>) -> BoxedStrategy<Json> {
    let key = prop_oneof![
        3 => prop::sample::select(keys.to_vec()).prop_map(crate::support::Text::plain),
        1 => text(),
    ];
    or_any(prop::collection::vec((key, value), 0..3).prop_map(Json::Obj))
}

const MODELS: &[&str] = &["m", "llama*", "*", "base", "a*b", "", " "];
const RULES: &[&str] = &[
    "email",
    "credit_card",
    "openai_key",
    "prompt_injection",
    "nope",
];

fn models() -> BoxedStrategy<Json> {
    let model = object(vec![
        ("pool", s(&["p", "", " "])),
        ("context_window", n()),
        ("adapters", list(s(&["lora", "x*", "m"]))),
        (
            "tokenizer",
            s(&["o200k", "cl100k", "llama3", "qwen", "claude", "gpt2"]),
        ),
        ("default_max_output_tokens", n()),
    ]);
    map(MODELS, model)
}

fn limits() -> BoxedStrategy<Json> {
    let budget = object(vec![
        ("period", s(&["hour", "day", "month", "year"])),
        ("requests", n()),
        ("tokens", n()),
        ("usd", n()),
    ]);
    object(vec![
        ("requests_per_minute", n()),
        ("tokens_per_minute", n()),
        (
            "tokens_per_minute_counts",
            s(&["total", "input", "output", "all"]),
        ),
        ("max_concurrent", n()),
        ("budgets", list(budget)),
    ])
}

fn quotas() -> BoxedStrategy<Json> {
    let tenant = object(vec![
        ("limits", limits()),
        ("models", map(MODELS, limits())),
    ]);
    object(vec![
        (
            "identity",
            object(vec![
                ("source", s(&["api_key", "header", "jwt"])),
                (
                    "tenant_header",
                    s(&["x-tenant", "authorization", "bad header", ""]),
                ),
            ]),
        ),
        (
            "keys",
            list(object(vec![
                (
                    "sha256",
                    s(&[
                        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                        "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD",
                        "abc",
                        "zz7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                    ]),
                ),
                ("tenant", s(&["acme", ""])),
                ("project", s(&["web"])),
            ])),
        ),
        ("tenants", map(&["acme", ""], tenant.clone())),
        ("default_tenant", tenant),
        ("models", map(MODELS, limits())),
        (
            "prices",
            map(
                MODELS,
                object(vec![("input", n()), ("output", n()), ("cached_input", n())]),
            ),
        ),
        ("max_reserved_output_tokens", n()),
        ("slots", n()),
        ("fail_policy", s(&["open", "closed", "ajar"])),
        (
            "cluster",
            object(vec![
                ("picker_cluster", s(&["sluice_picker", ""])),
                ("picker_authority", s(&["sluice-picker"])),
                ("sync_ms", n()),
                ("stale_after_ms", n()),
            ]),
        ),
        (
            "upstream_credentials",
            map(
                &["p", "m"],
                object(vec![
                    ("header", s(&["authorization", "x-api-key", "host", "x y"])),
                    ("prefix", s(&["Bearer "])),
                    ("value", s(&["sk-upstream"])),
                    ("env", s(&["KEY", "", "A=B"])),
                ]),
            ),
        ),
    ])
}

fn guardrails() -> BoxedStrategy<Json> {
    let action = || s(&["block", "redact", "log", "allow"]);
    let policy = object(vec![
        ("rules", map(RULES, action())),
        ("response_rules", map(RULES, action())),
        (
            "roles",
            list(s(&[
                "system",
                "user",
                "assistant",
                "tool",
                "tool_definitions",
                "x",
            ])),
        ),
        ("responses", b()),
        ("models", list(s(&["m", "llama*"]))),
        ("max_prompt_tokens", n()),
        ("max_output_tokens", n()),
    ]);
    let deny = object(vec![
        ("id", s(&["weapons", "email", "Bad Id", ""])),
        ("words", list(s(&["pipe bomb", "", "é"]))),
        (
            "patterns",
            list(s(&[
                r"build (?:a|an) bomb",
                "(",
                r"\p{Greek}+",
                "a{1000}{1000}",
                "",
            ])),
        ),
    ]);
    object(vec![
        ("policies", map(&["default", "strict"], policy)),
        ("models", map(MODELS, s(&["default", "strict", "missing"]))),
        (
            "tenants",
            map(&["acme"], s(&["default", "strict", "missing"])),
        ),
        ("routes", map(&["r1"], s(&["default", "missing"]))),
        ("deny", list(deny)),
        (
            "injection",
            object(vec![
                ("threshold", n()),
                ("phrases", map(&["ignore previous", ""], n())),
            ]),
        ),
        ("stream_holdback_bytes", n()),
    ])
}

fn picking() -> BoxedStrategy<Json> {
    let weight = || n();
    object(vec![
        ("picker_cluster", s(&["sluice_picker", " "])),
        ("picker_authority", s(&["sluice-picker", ""])),
        ("refresh_ms", n()),
        ("stale_after_ms", n()),
        ("fallbacks", n()),
        ("prefix_ttl_ms", n()),
        ("max_waiting_per_endpoint", n()),
        (
            "weights",
            object(vec![
                ("queue", weight()),
                ("kv_cache", weight()),
                ("running", weight()),
                ("in_flight", weight()),
                ("prefix", weight()),
                ("lora", weight()),
            ]),
        ),
    ])
}

/// A configuration document of the plugin's schema.
fn document() -> BoxedStrategy<Json> {
    object(vec![
        (
            "routing",
            object(vec![
                (
                    "model_header",
                    s(&["x-model", "x-gateway-destination-endpoint", "Bad Name"]),
                ),
                ("base_model_header", s(&["x-base", "x-model"])),
                ("unhandled_paths", s(&["pass", "reject", "drop"])),
                (
                    "passthrough_paths",
                    list(s(&["/tokenize", "/a/../b", "x", "/", "/a?b"])),
                ),
            ]),
        ),
        ("limits", object(vec![("max_request_body_bytes", n())])),
        ("models", models()),
        (
            "aliases",
            map(
                &["alias", "gpt-*", "*"],
                s(&["m", "base", "lora", "missing"]),
            ),
        ),
        ("picking", picking()),
        (
            "tokens",
            object(vec![
                ("default_max_output_tokens", n()),
                ("stream_usage", b()),
                ("usage_header", b()),
                ("max_response_bytes", n()),
            ]),
        ),
        ("quotas", quotas()),
        ("guardrails", guardrails()),
    ])
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
        |doc| {
            assert_names_a_field(&doc.render())?;
            assert_names_a_field(&doc.render_spaced())
        },
    );
}
