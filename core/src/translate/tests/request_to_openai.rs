//! Anthropic Messages requests for OpenAI targets.

#[cfg(target_family = "wasm")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use serde_json::json;

use super::{ANTHROPIC_REQUEST, GPT, to_openai};
use crate::error::GatewayError;
use crate::translate::{Shape, TargetRequest, request};

const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

#[test]
fn system_images_tools_thinking_and_results() {
    let out = to_openai(ANTHROPIC_REQUEST);
    let expected = json!({
        "model": "gpt-4.1-2025-04-14",
        "messages": [
            {"role": "system", "content": [
                {"type": "text", "text": "You are a meticulous research assistant."},
                {"type": "text", "text": "<reference>Exchange rates are quoted as units of the quote currency per unit of base.</reference>"}
            ]},
            {"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{PNG}")}},
                {"type": "image_url", "image_url": {"url": "https://example.com/charts/eurusd-2025.png"}},
                {"type": "text", "text": "Compare these two charts and look up today's EUR/USD rate."}
            ]},
            // The earlier turn's thinking is not sent.
            {"role": "assistant", "content": "Let me look up the rate.", "tool_calls": [
                {"id": "toolu_01A09q90qw90lq917835lq9", "type": "function", "function": {
                    "name": "get_exchange_rate", "arguments": "{\"base\": \"EUR\", \"quote\": \"USD\"}"
                }}
            ]},
            {"role": "tool", "tool_call_id": "toolu_01A09q90qw90lq917835lq9", "content": [{"type": "text", "text": "1.0842"}]},
            {"role": "user", "content": [{"type": "text", "text": "Also mention the trend."}]}
        ],
        "max_completion_tokens": 2048,
        "temperature": 1,
        "stop": ["END"],
        "stream": true,
        "stream_options": {"include_usage": true},
        "tools": [{"type": "function", "function": {
            "name": "get_exchange_rate",
            "description": "Latest exchange rate between two currencies",
            "parameters": {
                "type": "object",
                "properties": {"base": {"type": "string"}, "quote": {"type": "string"}},
                "required": ["base", "quote"]
            }
        }}],
        "tool_choice": "required",
        "parallel_tool_calls": false,
        "user": "13803d75-b4b5-4c3e-b2a2-6f21399b021b",
        "reasoning_effort": "low"
    });
    assert_eq!(out, expected);
}

#[test]
fn the_same_shape_only_gets_its_model_replaced() {
    let body = br#"{"max_tokens": 10, "top_k": 3,
        "messages": [{"role": "user", "content": "hi"}], "model": "alias"}"#;
    let target = TargetRequest {
        shape: Shape::AnthropicMessages,
        model: "claude-haiku-4-5",
        default_max_tokens: 1,
    };
    let out = request(Shape::AnthropicMessages, body, &target).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"{"max_tokens": 10, "top_k": 3,
        "messages": [{"role": "user", "content": "hi"}], "model": "claude-haiku-4-5"}"#
    );
}

#[test]
fn plain_conversation_without_stream() {
    let out = to_openai(
        r#"{"model":"m","max_tokens":64,"system":"Be terse.","stream":false,
            "messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"Hello."},
            {"role":"user","content":"bye"}],"service_tier":"standard_only"}"#,
    );
    assert_eq!(
        out,
        json!({
            "model": "gpt-4.1-2025-04-14",
            "messages": [
                {"role": "system", "content": "Be terse."},
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "Hello."},
                {"role": "user", "content": "bye"}
            ],
            "max_completion_tokens": 64,
            "stream": false
        })
    );
}

#[test]
fn thinking_budget_becomes_the_nearest_effort() {
    let effort = |thinking: &str| {
        let body = format!(
            r#"{{"model":"m","max_tokens":64000,"messages":[{{"role":"user","content":"hi"}}],"thinking":{thinking}}}"#
        );
        to_openai(&body).get("reasoning_effort").cloned()
    };
    assert_eq!(
        effort(r#"{"type":"enabled","budget_tokens":1024}"#),
        Some(json!("low"))
    );
    assert_eq!(
        effort(r#"{"type":"enabled","budget_tokens":2048}"#),
        Some(json!("medium"))
    );
    assert_eq!(
        effort(r#"{"type":"enabled","budget_tokens":5000}"#),
        Some(json!("medium"))
    );
    assert_eq!(
        effort(r#"{"type":"enabled","budget_tokens":8192}"#),
        Some(json!("high"))
    );
    assert_eq!(
        effort(r#"{"type":"enabled","budget_tokens":32000}"#),
        Some(json!("high"))
    );
    assert_eq!(effort(r#"{"type":"disabled"}"#), None);
    assert_eq!(effort("null"), None);
}

#[test]
fn tool_choice_modes() {
    let choice = |tool_choice: &str| {
        let body = format!(
            r#"{{"model":"m","max_tokens":8,"messages":[{{"role":"user","content":"hi"}}],
               "tools":[{{"name":"f","input_schema":{{"type":"object"}}}},{{"type":"custom","name":"g","input_schema":{{"type":"object"}}}}],
               "tool_choice":{tool_choice}}}"#
        );
        let out = to_openai(&body);
        assert_eq!(out["tools"][1]["function"]["name"], json!("g"));
        (
            out["tool_choice"].clone(),
            out.get("parallel_tool_calls").cloned(),
        )
    };
    assert_eq!(choice(r#"{"type":"auto"}"#), (json!("auto"), None));
    assert_eq!(choice(r#"{"type":"none"}"#), (json!("none"), None));
    assert_eq!(
        choice(r#"{"type":"any","disable_parallel_tool_use":false}"#),
        (json!("required"), None)
    );
    assert_eq!(
        choice(r#"{"type":"tool","name":"f","disable_parallel_tool_use":true}"#),
        (
            json!({"type": "function", "function": {"name": "f"}}),
            Some(json!(false))
        )
    );
}

#[test]
fn tool_results_come_first_as_tool_messages() {
    let out = to_openai(
        r#"{"model":"m","max_tokens":8,"messages":[
            {"role":"user","content":"What time is it in Paris and Tokyo?"},
            {"role":"assistant","content":[
                {"type":"tool_use","id":"toolu_1","name":"now","input":{"tz":"Europe/Paris"}},
                {"type":"tool_use","id":"toolu_2","name":"now","input":{"tz":"Asia/Tokyo"}}]},
            {"role":"user","content":[
                {"type":"tool_result","tool_use_id":"toolu_1","content":"12:00"},
                {"type":"tool_result","tool_use_id":"toolu_2","is_error":true,"content":"unknown time zone"}]},
            {"role":"assistant","content":[{"type":"text","text":"Paris: noon."},{"type":"text","text":" Tokyo: unknown."}]},
            {"role":"user","content":[{"type":"text","text":"ok"},{"type":"tool_result","tool_use_id":"toolu_3"}]}]}"#,
    );
    assert_eq!(
        out["messages"],
        json!([
            {"role": "user", "content": "What time is it in Paris and Tokyo?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "now", "arguments": "{\"tz\":\"Europe/Paris\"}"}},
                {"id": "toolu_2", "type": "function", "function": {"name": "now", "arguments": "{\"tz\":\"Asia/Tokyo\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "12:00"},
            {"role": "tool", "tool_call_id": "toolu_2", "content": "unknown time zone"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Paris: noon."},
                {"type": "text", "text": " Tokyo: unknown."}
            ]},
            {"role": "tool", "tool_call_id": "toolu_3", "content": ""},
            {"role": "user", "content": [{"type": "text", "text": "ok"}]}
        ])
    );
}

#[test]
fn broken_blocks_are_named() {
    let err = |content: &str| {
        let body = format!(
            r#"{{"model":"m","max_tokens":8,"messages":[{{"role":"user","content":[{content}]}}]}}"#
        );
        match request(Shape::AnthropicMessages, body.as_bytes(), &GPT).unwrap_err() {
            GatewayError::InvalidField { param, .. } => param,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        err(r#"{"type":"image","source":{"type":"base64","data":"AAAA"}}"#),
        "messages[0].content[0].source"
    );
    assert_eq!(err(r#"{"type":"text"}"#), "messages[0].content[0].text");
    assert_eq!(
        err(r#"{"type":"tool_result","content":"x"}"#),
        "messages[0].content[0].tool_use_id"
    );
}
