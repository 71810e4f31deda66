//! Whole JSON responses, each direction, and what accounting reads from them.

#[cfg(target_family = "wasm")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use serde_json::json;

use super::json;
use crate::error::GatewayError;
use crate::translate::{REFUSAL_MESSAGE, Shape, response, response_at};
use crate::usage::usage_from_json;

const ANTHROPIC_TOOL_USE: &str = include_str!("fixtures/anthropic_response_tool_use_thinking.json");
const ANTHROPIC_REFUSAL: &str = include_str!("fixtures/anthropic_response_refusal.json");
const ANTHROPIC_CACHE_WRITE: &str =
    include_str!("fixtures/anthropic_response_cache_write_stop_sequence.json");
const OPENAI_TOOL_CALLS: &str = include_str!("fixtures/openai_response_tool_calls.json");
const OPENAI_REFUSAL: &str = include_str!("fixtures/openai_response_refusal.json");
const OPENAI_LENGTH: &str = include_str!("fixtures/openai_response_length.json");
const VLLM_REASONING: &str = include_str!("fixtures/vllm_response_reasoning.json");

const NOW: u64 = 1_767_225_600;

fn for_openai(body: &str) -> serde_json::Value {
    json(
        &response_at(
            Shape::AnthropicMessages,
            Shape::OpenAiChat,
            body.as_bytes(),
            NOW,
        )
        .unwrap(),
    )
}

fn for_anthropic(body: &str) -> serde_json::Value {
    json(&response(Shape::OpenAiChat, Shape::AnthropicMessages, body.as_bytes()).unwrap())
}

/// Accounting reads the same usage (input with cached tokens, output, cache reads) and the same
/// model from the translated body as from the target's.
fn same_accounting(original: &str, translated: &serde_json::Value) {
    let (before, model_before) = usage_from_json(original.as_bytes()).unwrap();
    let (after, model_after) = usage_from_json(translated.to_string().as_bytes()).unwrap();
    assert_eq!(
        (before.input, before.output, before.cached),
        (after.input, after.output, after.cached)
    );
    assert_eq!(model_before, model_after);
}

#[test]
fn anthropic_tool_use_with_thinking_for_an_openai_client() {
    let out = for_openai(ANTHROPIC_TOOL_USE);
    assert_eq!(
        out,
        json!({
            "id": "msg_01Aq9w938a90dw8q",
            "object": "chat.completion",
            "created": NOW,
            "model": "claude-sonnet-4-5-20250929",
            "choices": [{
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "I'll check the current weather in Paris for you.",
                    "refusal": null,
                    "reasoning_content": "The user asks for the weather in Paris. I should call get_weather.",
                    "tool_calls": [{
                        "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\", \"unit\": \"celsius\"}"}
                    }]
                },
                "logprobs": null,
                "finish_reason": "tool_calls"
            }],
            "usage": {
                "prompt_tokens": 2315,
                "completion_tokens": 89,
                "total_tokens": 2404,
                "prompt_tokens_details": {"cached_tokens": 1843}
            }
        })
    );
    same_accounting(ANTHROPIC_TOOL_USE, &out);
}

#[test]
fn anthropic_refusal_for_an_openai_client() {
    let out = for_openai(ANTHROPIC_REFUSAL);
    let choice = &out["choices"][0];
    assert_eq!(choice["finish_reason"], json!("content_filter"));
    assert_eq!(choice["message"]["refusal"], json!(REFUSAL_MESSAGE));
    assert_eq!(
        choice["message"]["content"],
        json!("I can explain general lab safety, but")
    );
    assert_eq!(out["created"], json!(NOW));
    same_accounting(ANTHROPIC_REFUSAL, &out);
}

#[test]
fn anthropic_text_blocks_join_and_cache_writes_count_as_prompt() {
    let out = for_openai(ANTHROPIC_CACHE_WRITE);
    let choice = &out["choices"][0];
    assert_eq!(
        choice["message"],
        json!({
            "role": "assistant",
            "content": "Here are the three steps:\n1. Preheat the oven.\n2. Mix.\n3. Bake.",
            "refusal": null
        })
    );
    assert_eq!(choice["finish_reason"], json!("stop"));
    assert_eq!(
        out["usage"],
        json!({"prompt_tokens": 2063, "completion_tokens": 21, "total_tokens": 2084, "prompt_tokens_details": {"cached_tokens": 0}})
    );
    same_accounting(ANTHROPIC_CACHE_WRITE, &out);
    // Without a clock, `created` is 0.
    let plain = response(
        Shape::AnthropicMessages,
        Shape::OpenAiChat,
        ANTHROPIC_CACHE_WRITE.as_bytes(),
    )
    .unwrap();
    assert_eq!(json(&plain)["created"], json!(0));
}

#[test]
fn openai_tool_calls_for_an_anthropic_client() {
    let out = for_anthropic(OPENAI_TOOL_CALLS);
    assert_eq!(
        out,
        json!({
            "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
            "type": "message",
            "role": "assistant",
            "model": "gpt-4o-2024-08-06",
            "content": [
                {"type": "tool_use", "id": "call_PBTDlOz5A0hQ8bHp5d8RlGsm", "name": "get_weather", "input": {"city": "Paris", "unit": "celsius"}},
                {"type": "tool_use", "id": "call_wcq6vX9CHkZOSHsN2d0q0GQ7", "name": "get_time", "input": {}}
            ],
            "stop_reason": "tool_use",
            "stop_sequence": null,
            "usage": {
                "input_tokens": 93,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 1024,
                "output_tokens": 46
            }
        })
    );
    same_accounting(OPENAI_TOOL_CALLS, &out);
}

#[test]
fn openai_refusal_for_an_anthropic_client() {
    let out = for_anthropic(OPENAI_REFUSAL);
    assert_eq!(
        out["content"],
        json!([{"type": "text", "text": "I'm sorry, I can't assist with that request."}])
    );
    assert_eq!(out["stop_reason"], json!("refusal"));
    same_accounting(OPENAI_REFUSAL, &out);
}

#[test]
fn openai_length_stop_for_an_anthropic_client() {
    let out = for_anthropic(OPENAI_LENGTH);
    assert_eq!(
        out["content"],
        json!([{"type": "text", "text": "The Treaty of Westphalia, signed in 1648, ended"}])
    );
    assert_eq!(out["stop_reason"], json!("max_tokens"));
    same_accounting(OPENAI_LENGTH, &out);
}

#[test]
fn vllm_reasoning_becomes_a_thinking_block() {
    let out = for_anthropic(VLLM_REASONING);
    assert_eq!(
        out["content"],
        json!([
            {"type": "thinking", "thinking": "Compare 9.11 and 9.8: the tenths digit 8 beats 1, so 9.8 is larger.", "signature": ""},
            {"type": "text", "text": "9.8 is greater than 9.11."}
        ])
    );
    assert_eq!(out["stop_reason"], json!("end_turn"));
    assert_eq!(
        out["usage"],
        json!({"input_tokens": 18, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 102})
    );
    same_accounting(VLLM_REASONING, &out);
    // Newer vLLM names the field `reasoning`.
    let renamed = VLLM_REASONING.replace("reasoning_content", "reasoning");
    assert_eq!(for_anthropic(&renamed)["content"], out["content"]);
}

#[test]
fn the_same_shape_passes_as_it_is() {
    for (shape, body) in [
        (Shape::OpenAiChat, OPENAI_TOOL_CALLS),
        (Shape::AnthropicMessages, ANTHROPIC_TOOL_USE),
    ] {
        assert_eq!(
            response(shape, shape, body.as_bytes()).unwrap(),
            body.as_bytes()
        );
    }
}

#[test]
fn a_response_without_usage_reports_none() {
    let out = for_anthropic(
        r#"{"id":"x","object":"chat.completion","created":1,"model":"m",
            "choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}"#,
    );
    assert_eq!(out.get("usage"), None);
    let out = for_openai(
        r#"{"id":"x","type":"message","role":"assistant","model":"m","content":[],"stop_reason":"end_turn"}"#,
    );
    assert_eq!(out.get("usage"), None);
    assert_eq!(out["choices"][0]["message"]["content"], json!(null));
}

#[test]
fn unreadable_responses_are_502s_that_do_not_repeat_the_body() {
    let to_anthropic = |body: &str| {
        response(Shape::OpenAiChat, Shape::AnthropicMessages, body.as_bytes()).unwrap_err()
    };
    let to_openai = |body: &str| {
        response(Shape::AnthropicMessages, Shape::OpenAiChat, body.as_bytes()).unwrap_err()
    };
    let cases = [
        to_anthropic("<html>502 Bad Gateway</html>"),
        to_anthropic(r#"{"id":"x","choices":[]}"#),
        to_anthropic(r#"{"choices":"secret-text"}"#),
        to_anthropic(
            r#"{"choices":[{"message":{"tool_calls":[{"id":"c","function":{"name":"f","arguments":"{broken"}}]},"finish_reason":"tool_calls"}]}"#,
        ),
        to_anthropic(
            r#"{"choices":[{"message":{"tool_calls":[{"function":{"name":"f","arguments":"{}"}}]}}]}"#,
        ),
        to_openai(""),
        to_openai(r#"{"content":"secret-text"}"#),
        to_openai(r#"{"content":[{"type":"tool_use","name":"f"}]}"#),
        to_openai(r#"{"content":[{"type":"web_search_tool_result","content":[]}]}"#),
    ];
    for err in cases {
        assert!(
            matches!(err, GatewayError::BadUpstreamResponse(_)),
            "{err:?}"
        );
        assert_eq!(err.status(), 502);
        let body = err.body(crate::error::ApiFlavor::OpenAi);
        assert!(!body.contains("secret-text"), "{body}");
    }
}
