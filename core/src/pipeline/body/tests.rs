#[cfg(target_family = "wasm")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::{RoutedRequest, check_body_size, route_request};
use crate::canonical::ApiKind;
use crate::config::Config;
use crate::error::GatewayError;
use crate::tokens::{Estimate, Family};

fn config() -> Config {
    Config::from_json(
        br#"{
          "limits": {"max_request_body_bytes": 64},
          "models": {
            "llama-70b": {"pool": "big", "context_window": 100, "adapters": ["sql-lora"]},
            "qwen-7b": {},
            "gpt-*": {"pool": "openai"}
          },
          "aliases": {"gpt-4o": "llama-70b", "claude-*": "qwen-7b"}
        }"#,
    )
    .unwrap()
}

fn route(api: ApiKind, body: &str) -> Result<RoutedRequest, GatewayError> {
    route_request(&config(), api, body.as_bytes())
}

#[test]
fn exact_models_keep_the_body() {
    let routed = route(
        ApiKind::ChatCompletions,
        r#"{"model":"qwen-7b","messages":[{"role":"user","content":"hi"}]}"#,
    )
    .unwrap();
    assert_eq!(
        routed,
        RoutedRequest {
            requested_model: "qwen-7b".into(),
            model: "qwen-7b".into(),
            base_model: "qwen-7b".into(),
            body: None,
            pool: "qwen-7b".into(),
            // XXH3-64 of "uhi" (the user tag, then the text), from the reference C
            // implementation: see canonical/prefix.rs.
            prefix_hash: 0x33d0_077f_f59b_8347,
            api: ApiKind::ChatCompletions,
            stream: false,
            family: Family::Qwen,
            // "hi": 1 token, 5 per message, 3 to prime the reply, 21 for Qwen's default system
            // message; no max_tokens, no context window: the default output budget. The high
            // estimate prices the text 5% higher, rounded up: one token more.
            estimate: Estimate {
                prompt_tokens: 30,
                prompt_tokens_high: 31,
                output_budget: 4096,
            },
            strip_usage: false,
            guardrails: None,
            user: None,
        }
    );
    assert_eq!(routed.adapter(), None);
}

#[test]
fn streams_without_usage_ask_the_upstream_for_it() {
    let body = r#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let routed = route(ApiKind::ChatCompletions, body).unwrap();
    assert!(routed.strip_usage);
    assert_eq!(
        String::from_utf8(routed.body.unwrap()).unwrap(),
        r#"{"model":"llama-70b","stream":true,"messages":[{"role":"user","content":"hi"}],"stream_options":{"include_usage":true}}"#
    );
    let kept = r#"{"model":"qwen-7b","stream":true,"stream_options":{"include_usage":false,"x":1},"prompt":"hi"}"#;
    let routed = route(ApiKind::Completions, kept).unwrap();
    assert!(routed.strip_usage);
    assert_eq!(
        String::from_utf8(routed.body.unwrap()).unwrap(),
        r#"{"model":"qwen-7b","stream":true,"stream_options":{"include_usage":true,"x":1},"prompt":"hi"}"#
    );
    let asked = r#"{"model":"qwen-7b","stream":true,"stream_options":{"include_usage":true},"prompt":"hi"}"#;
    let routed = route(ApiKind::Completions, asked).unwrap();
    assert!(!routed.strip_usage && routed.body.is_none());
    let anthropic = r#"{"model":"qwen-7b","stream":true,"max_tokens":3,"messages":[{"role":"user","content":"hi"}]}"#;
    let routed = route(ApiKind::Messages, anthropic).unwrap();
    assert!(!routed.strip_usage && routed.body.is_none());
}

#[test]
fn aliases_rewrite_only_the_model_field() {
    let body =
        r#"{"messages":[{"role":"user","content":"hi  there"}],  "model" : "gpt-4o","n":1.0}"#;
    let routed = route(ApiKind::ChatCompletions, body).unwrap();
    assert_eq!(routed.model, "llama-70b");
    assert_eq!(routed.base_model, "llama-70b");
    assert_eq!(
        String::from_utf8(routed.body.unwrap()).unwrap(),
        r#"{"messages":[{"role":"user","content":"hi  there"}],"model":"llama-70b","n":1.0}"#
    );

    let routed = route(
        ApiKind::Messages,
        r#"{"model":"claude-sonnet-4","max_tokens":5,"messages":[{"role":"user","content":"x"}]}"#,
    )
    .unwrap();
    assert_eq!(routed.model, "qwen-7b");
}

#[test]
fn adapters_route_to_their_base_model() {
    let routed = route(
        ApiKind::Completions,
        r#"{"model":"sql-lora","prompt":"select"}"#,
    )
    .unwrap();
    assert_eq!(
        (routed.model.as_str(), routed.base_model.as_str()),
        ("sql-lora", "llama-70b")
    );
    assert_eq!(routed.body, None);
}

#[test]
fn families_pass_the_requested_name() {
    let routed = route(
        ApiKind::Embeddings,
        r#"{"model":"gpt-embed-3","input":"x"}"#,
    )
    .unwrap();
    assert_eq!((routed.model.as_str(), routed.body), ("gpt-embed-3", None));
}

#[test]
fn unknown_models_are_not_found() {
    let err = route(
        ApiKind::ChatCompletions,
        r#"{"model":"mistral","messages":[{"role":"user","content":"x"}]}"#,
    )
    .unwrap_err();
    assert_eq!(err, GatewayError::ModelNotFound("mistral".into()));
}

#[test]
fn requests_that_cannot_fit_the_context_window_are_rejected() {
    // A 100-token window: the check compares the estimate that errs high, plus max_tokens.
    let prompt = "x".repeat(240);
    let body = |max_tokens: u64| {
        format!(
            r#"{{"model":"llama-70b","max_tokens":{max_tokens},"messages":[{{"role":"user","content":"{prompt}"}}]}}"#
        )
    };
    let probe = route(ApiKind::ChatCompletions, &body(1)).unwrap();
    let high = probe.estimate.prompt_tokens_high;
    assert!(high >= probe.estimate.prompt_tokens);
    assert!(high < 100, "{high}");
    assert!(route(ApiKind::ChatCompletions, &body(100 - high)).is_ok());
    let too_big = body(100 - high + 1);
    assert_eq!(
        route(ApiKind::ChatCompletions, &too_big).unwrap_err(),
        GatewayError::ContextLengthExceeded {
            limit: 100,
            prompt: high,
            output: 100 - high + 1
        }
    );
    // Through an alias, the target's window applies.
    let alias = too_big.replace("llama-70b", "gpt-4o");
    assert!(matches!(
        route(ApiKind::ChatCompletions, &alias),
        Err(GatewayError::ContextLengthExceeded { .. })
    ));
}

#[test]
fn a_fifty_thousand_message_prompt_is_refused_before_the_model_server() {
    // 50,000 messages "ok": Llama 3.1's template makes 300,030 tokens of them (see
    // tokens::request's tests), far past a 131,072-token window, though their text is only
    // 100 KB (a quarter of the text bytes, what the check used to count, is 25,000).
    let config = Config::from_json(
        br#"{"models": {"meta-llama/Llama-3.1-8B-Instruct": {"context_window": 131072}}}"#,
    )
    .unwrap();
    let messages: Vec<&str> = (0..50_000)
        .map(|i| {
            if i % 2 == 0 {
                r#"{"role":"user","content":"ok"}"#
            } else {
                r#"{"role":"assistant","content":"ok"}"#
            }
        })
        .collect();
    let body = format!(
        r#"{{"model":"meta-llama/Llama-3.1-8B-Instruct","messages":[{}]}}"#,
        messages.join(",")
    );
    let err = route_request(&config, ApiKind::ChatCompletions, body.as_bytes()).unwrap_err();
    let GatewayError::ContextLengthExceeded { limit, prompt, .. } = err else {
        panic!("{err:?}")
    };
    assert_eq!(limit, 131_072);
    assert!(prompt >= 300_030, "{prompt}");
}

#[test]
fn model_names_that_cannot_be_header_values_are_rejected() {
    for model in [r"gpt-4\r\nx-injected: 1", r"gpt-\u0000", "gpt-é"] {
        let body = format!(r#"{{"model":"{model}","input":"x"}}"#);
        let err = route(ApiKind::Embeddings, &body).unwrap_err();
        assert!(
            matches!(&err, GatewayError::InvalidField { param, .. } if param == "model"),
            "{model}: {err:?}"
        );
    }
}

#[test]
fn body_size_limit() {
    let config = config();
    assert!(check_body_size(&config, 64).is_ok());
    assert_eq!(
        check_body_size(&config, 65),
        Err(GatewayError::PayloadTooLarge { limit: 64 })
    );
}

/// The test configuration with the default guardrail rule set.
fn guarded() -> Config {
    Config::from_json(
        br#"{
          "models": {"llama-70b": {"pool": "big"}, "qwen-7b": {}},
          "aliases": {"gpt-4o": "llama-70b"},
          "guardrails": {}
        }"#,
    )
    .unwrap()
}

fn routed_body(api: ApiKind, body: &str) -> Option<String> {
    let routed = route_request(&guarded(), api, body.as_bytes()).unwrap();
    routed.body.map(|b| String::from_utf8(b).unwrap())
}

#[test]
fn an_alias_a_redaction_and_stream_usage_are_applied_together() {
    // The model rewritten, the address redacted in both messages, `stream_options` appended:
    // members joined as before (no whitespace between them), every value's own bytes kept.
    let body = r#"{ "model" : "gpt-4o", "stream": true,
        "messages": [ {"role": "user", "content": "mail bob@example.com now"},
                      {"role":"assistant","content":"ok"},
                      {"role": "user", "content": "mail bob@example.com now"} ], "n": 1 }"#;
    assert_eq!(
        routed_body(ApiKind::ChatCompletions, body).unwrap(),
        r#"{"model":"llama-70b","stream":true,"messages":[ {"role": "user", "content": "mail [EMAIL] now"},
                      {"role":"assistant","content":"ok"},
                      {"role": "user", "content": "mail [EMAIL] now"} ],"n":1,"stream_options":{"include_usage":true}}"#
    );
    // The client's own stream options are kept beside `include_usage`.
    let body = r#"{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":false,"x":1},
        "messages":[{"role":"user","content":"call +44 20 7946 0958"}]}"#;
    assert_eq!(
        routed_body(ApiKind::ChatCompletions, body).unwrap(),
        r#"{"model":"llama-70b","stream":true,"stream_options":{"include_usage":true,"x":1},"messages":[{"role":"user","content":"call [PHONE]"}]}"#
    );
}

#[test]
fn a_redaction_alone_changes_only_the_redacted_string() {
    let body = "{ \"model\" : \"qwen-7b\",\n  \"messages\": [ {\"role\":\"user\",\"content\":\"mail bob@example.com\\n\"} ] }";
    assert_eq!(
        routed_body(ApiKind::ChatCompletions, body).unwrap(),
        "{ \"model\" : \"qwen-7b\",\n  \"messages\": [ {\"role\":\"user\",\"content\":\"mail [EMAIL]\\n\"} ] }"
    );
    let clean = r#"{"model":"qwen-7b","messages":[{"role":"user","content":"hello"}]}"#;
    assert_eq!(routed_body(ApiKind::ChatCompletions, clean), None);
    // An alias alone: the model only (members joined as before).
    let alias = r#"{"model": "gpt-4o", "messages":[{"role":"user","content":"hello"}]}"#;
    assert_eq!(
        routed_body(ApiKind::ChatCompletions, alias).unwrap(),
        r#"{"model":"llama-70b","messages":[{"role":"user","content":"hello"}]}"#
    );
}

#[test]
fn text_that_is_not_a_string_value_cannot_be_redacted_and_is_refused() {
    // An Anthropic tool result's text is a string; a tool_use input is an object: its text
    // (scanned as the call's arguments when assistant text is scanned) has no string to
    // replace, so the request is refused rather than sent unredacted.
    let config = Config::from_json(
        br#"{"models": {"qwen-7b": {}},
             "guardrails": {"policies": {"default": {"roles": ["user", "assistant"]}}}}"#,
    )
    .unwrap();
    let body = r#"{"model":"qwen-7b","max_tokens":5,"messages":[
        {"role":"user","content":"hi"},
        {"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"send",
          "input":{"to": "bob@example.com"}}]}]}"#;
    let err = route_request(&config, ApiKind::Messages, body.as_bytes()).unwrap_err();
    assert_eq!(
        err,
        GatewayError::ContentPolicy {
            rule: "unredactable".into()
        }
    );
}
