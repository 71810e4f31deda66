//! OpenAI Chat Completions requests for Anthropic targets.

#[cfg(target_family = "wasm")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use serde_json::json;

use super::{CLAUDE, OPENAI_REQUEST, json, to_anthropic};
use crate::error::GatewayError;
use crate::translate::{Shape, TargetRequest, request};

const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

#[test]
fn system_images_tools_calls_and_results() {
    let expected = json!({
        "model": "claude-sonnet-4-5-20250929",
        "max_tokens": 512,
        "system": [
            {"type": "text", "text": "You are a travel assistant. Answer briefly."},
            {"type": "text", "text": "Prefer metric units."}
        ],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "What's the weather where this photo was taken, and in Paris?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                {"type": "image", "source": {"type": "url", "url": "https://upload.wikimedia.org/wikipedia/commons/8/85/Tour_Eiffel_Wikimedia_Commons_(cropped).jpg"}}
            ]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "call_Vq5lHfmpR0Gq2Zt4TgV1XbN9", "name": "get_weather", "input": {"city": "Lyon", "unit": "celsius"}},
                {"type": "tool_use", "id": "call_8aPz0bXrQm2S7dWcJkL4yHfE", "name": "get_weather", "input": {"city": "Paris", "unit": "celsius"}}
            ]},
            // Both tool messages and the user's next words: one user turn, results first.
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_Vq5lHfmpR0Gq2Zt4TgV1XbN9", "content": "{\"temperature\":18,\"conditions\":\"cloudy\"}"},
                {"type": "tool_result", "tool_use_id": "call_8aPz0bXrQm2S7dWcJkL4yHfE", "content": [{"type": "text", "text": "{\"temperature\":21,\"conditions\":\"sunny\"}"}]},
                {"type": "text", "text": "Thanks! Keep it short."}
            ]}
        ],
        "temperature": 0.2,
        "top_p": 0.9,
        "stop_sequences": ["\n\nUser:"],
        "stream": false,
        "tools": [
            {
                "name": "get_weather",
                "description": "Current weather for a city",
                "input_schema": {
                    "type": "object",
                    "properties": {
                        "city": {"type": "string", "description": "City name, e.g. Paris"},
                        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}
                    },
                    "required": ["city"],
                    "additionalProperties": false
                }
            },
            {"name": "list_cities", "description": "Cities with weather data", "input_schema": {"type": "object", "properties": {}}}
        ],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": true},
        "metadata": {"user_id": "user-1234"}
    });
    assert_eq!(to_anthropic(OPENAI_REQUEST), expected);
}

#[test]
fn the_same_shape_only_gets_its_model_replaced() {
    let body =
        br#"{ "model" : "alias",  "messages": [ {"role":"user","content":"hi"} ], "top_k": 5 }"#;
    let target = TargetRequest {
        shape: Shape::OpenAiChat,
        model: "gpt-\"4\"",
        default_max_tokens: 1,
    };
    let out = request(Shape::OpenAiChat, body, &target).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"{ "model" : "gpt-\"4\"",  "messages": [ {"role":"user","content":"hi"} ], "top_k": 5 }"#
    );
}

#[test]
fn max_tokens_come_from_the_client_or_the_target_default() {
    let max = |extra: &str| {
        let body =
            format!(r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}]{extra}}}"#);
        to_anthropic(&body)["max_tokens"].clone()
    };
    assert_eq!(max(""), json!(CLAUDE.default_max_tokens));
    assert_eq!(max(r#","max_tokens":100"#), json!(100));
    assert_eq!(
        max(r#","max_tokens":100,"max_completion_tokens":200"#),
        json!(200)
    );
    assert_eq!(
        max(r#","max_tokens":null"#),
        json!(CLAUDE.default_max_tokens)
    );
}

#[test]
fn tool_choice_and_parallel_calls() {
    let choice = |extra: &str| {
        let body = format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}],
               "tools":[{{"type":"function","function":{{"name":"f","parameters":{{"type":"object"}}}}}}]{extra}}}"#
        );
        to_anthropic(&body).get("tool_choice").cloned()
    };
    assert_eq!(choice(""), None);
    assert_eq!(
        choice(r#","tool_choice":"auto""#),
        Some(json!({"type": "auto"}))
    );
    assert_eq!(
        choice(r#","tool_choice":"required""#),
        Some(json!({"type": "any"}))
    );
    assert_eq!(
        choice(r#","tool_choice":"none""#),
        Some(json!({"type": "none"}))
    );
    assert_eq!(
        choice(r#","tool_choice":"none","parallel_tool_calls":false"#),
        Some(json!({"type": "none"}))
    );
    assert_eq!(
        choice(r#","tool_choice":{"type":"function","function":{"name":"f"}}"#),
        Some(json!({"type": "tool", "name": "f"}))
    );
    assert_eq!(
        choice(r#","tool_choice":"required","parallel_tool_calls":false"#),
        Some(json!({"type": "any", "disable_parallel_tool_use": true}))
    );
    assert_eq!(choice(r#","parallel_tool_calls":true"#), None);
    assert_eq!(
        choice(r#","parallel_tool_calls":false"#),
        Some(json!({"type": "auto", "disable_parallel_tool_use": true}))
    );
}

#[test]
fn reasoning_effort_becomes_a_thinking_budget() {
    let thinking = |extra: &str| {
        let body =
            format!(r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}]{extra}}}"#);
        to_anthropic(&body).get("thinking").cloned()
    };
    let enabled = |budget: u64| Some(json!({"type": "enabled", "budget_tokens": budget}));
    assert_eq!(thinking(r#","reasoning_effort":"low""#), enabled(1024));
    assert_eq!(thinking(r#","reasoning_effort":"medium""#), enabled(2048));
    assert_eq!(
        thinking(r#","reasoning_effort":"medium","max_completion_tokens":10000"#),
        enabled(4096)
    );
    assert_eq!(
        thinking(r#","reasoning_effort":"high","max_completion_tokens":64000"#),
        enabled(16384)
    );
    // At most half of the output budget.
    assert_eq!(
        thinking(r#","reasoning_effort":"high","max_completion_tokens":3000"#),
        enabled(1500)
    );
    assert_eq!(thinking(r#","reasoning_effort":"minimal""#), None);
    assert_eq!(thinking(r#","reasoning_effort":"none""#), None);
    assert_eq!(thinking(""), None);
}

#[test]
fn stop_user_stream_and_dropped_bookkeeping() {
    let out = to_anthropic(
        r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stop":"END",
            "safety_identifier":"hash-42","stream":true,"stream_options":{"include_usage":true},
            "store":true,"metadata":{"team":"search"},"prompt_cache_key":"k1",
            "n":1,"logprobs":false,"presence_penalty":0,"frequency_penalty":0.0,"logit_bias":{},
            "response_format":{"type":"text"},"modalities":["text"],"service_tier":"auto",
            "audio":null,"top_logprobs":null}"#,
    );
    assert_eq!(
        out,
        json!({
            "model": "claude-sonnet-4-5-20250929",
            "max_tokens": 4096,
            "messages": [{"role": "user", "content": "hi"}],
            "stop_sequences": ["END"],
            "stream": true,
            "metadata": {"user_id": "hash-42"}
        })
    );
}

#[test]
fn one_system_string_stays_a_string_and_later_ones_join_it() {
    let out = to_anthropic(
        r#"{"model":"m","messages":[{"role":"system","content":"Be terse."},{"role":"user","content":"hi"}]}"#,
    );
    assert_eq!(out["system"], json!("Be terse."));
    let out = to_anthropic(
        r#"{"model":"m","messages":[{"role":"system","content":"Be terse."},{"role":"user","content":"hi"},
            {"role":"assistant","content":"Hello."},{"role":"developer","content":"Now answer in French."},
            {"role":"user","content":"bye"}]}"#,
    );
    assert_eq!(
        out["system"],
        json!([{"type": "text", "text": "Be terse."}, {"type": "text", "text": "Now answer in French."}])
    );
    assert_eq!(
        out["messages"],
        json!([
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "bye"}
        ])
    );
}

#[test]
fn assistant_turns_keep_text_refusals_and_calls_in_order() {
    let out = to_anthropic(
        r#"{"model":"m","messages":[{"role":"user","content":"hi"},
            {"role":"assistant","content":"Checking.","tool_calls":[{"id":"call_1","type":"function","function":{"name":"now","arguments":""}}]},
            {"role":"tool","tool_call_id":"call_1","content":"12:00"},
            {"role":"assistant","content":[{"type":"text","text":"It is noon. "},{"type":"refusal","refusal":"I won't say more."}]},
            {"role":"user","content":"ok"},
            {"role":"assistant","content":"","tool_calls":[{"id":"call_2","type":"function","function":{"name":"now","arguments":" {} "}}]},
            {"role":"tool","tool_call_id":"call_2","content":"12:01"},
            {"role":"assistant","content":null,"refusal":"No."}]}"#,
    );
    assert_eq!(
        out["messages"],
        json!([
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "call_1", "name": "now", "input": {}}
            ]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "12:00"}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "It is noon. "},
                {"type": "text", "text": "I won't say more."}
            ]},
            {"role": "user", "content": "ok"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "call_2", "name": "now", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_2", "content": "12:01"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "No."}]}
        ])
    );
}

#[test]
fn images_by_data_url_or_by_reference() {
    let image = |url: &str| {
        let body = format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":[{{"type":"image_url","image_url":{{"url":"{url}","detail":"low"}}}}]}}]}}"#
        );
        request(Shape::OpenAiChat, body.as_bytes(), &CLAUDE)
            .map(|out| json(&out)["messages"][0]["content"][0]["source"].clone())
    };
    assert_eq!(
        image("data:image/jpeg;base64,/9j/4AAQSkZJRg==").unwrap(),
        json!({"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQSkZJRg=="})
    );
    // An escaped slash: the URL is decoded, not borrowed.
    assert_eq!(
        image(r"data:image\/webp;base64,UklGRg==").unwrap(),
        json!({"type": "base64", "media_type": "image/webp", "data": "UklGRg=="})
    );
    assert_eq!(
        image("https://example.com/a.png?x=1").unwrap(),
        json!({"type": "url", "url": "https://example.com/a.png?x=1"})
    );
    for bad in [
        "data:image/png,rawbytes",
        "data:;base64,AAAA",
        "data:image/png;base64",
    ] {
        match image(bad) {
            Err(GatewayError::InvalidField { param, .. }) => {
                assert_eq!(param, "messages[0].content[0].image_url.url", "{bad}");
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
}

#[test]
fn broken_tool_calls_and_results_are_named() {
    let err = |messages: &str| {
        let body =
            format!(r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}},{messages}]}}"#);
        request(Shape::OpenAiChat, body.as_bytes(), &CLAUDE).unwrap_err()
    };
    let param = |error: GatewayError| match error {
        GatewayError::InvalidField { param, .. } => param,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        param(err(
            r#"{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{\"a\":"}}]}"#
        )),
        "messages[1].tool_calls[0].function.arguments"
    );
    assert_eq!(
        param(err(
            r#"{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"[1,2]"}}]}"#
        )),
        "messages[1].tool_calls[0].function.arguments"
    );
    assert_eq!(
        param(err(
            r#"{"role":"assistant","tool_calls":[{"type":"function","function":{"name":"f"}}]}"#
        )),
        "messages[1].tool_calls[0]"
    );
    assert_eq!(
        param(err(r#"{"role":"tool","content":"x"}"#)),
        "messages[1].tool_call_id"
    );
    assert_eq!(
        param(err(r#"{"role":"robot","content":"x"}"#)),
        "messages[1].role"
    );
}

#[test]
fn null_is_as_good_as_absent() {
    let out = to_anthropic(
        r#"{"model":"m","messages":[{"role":"user","content":"hi","name":null}],"seed":null,
            "functions":null,"top_k":null,"web_search_options":null,"temperature":null,"stop":null,
            "tools":null,"tool_choice":null,"user":null}"#,
    );
    assert_eq!(
        out,
        json!({"model": "claude-sonnet-4-5-20250929", "max_tokens": 4096,
               "messages": [{"role": "user", "content": "hi"}]})
    );
}

#[test]
fn malformed_parts_and_values_are_named() {
    let param = |body: &str| match request(Shape::OpenAiChat, body.as_bytes(), &CLAUDE) {
        Err(GatewayError::InvalidField { param, .. }) => param,
        other => panic!("{body}: {other:?}"),
    };
    assert_eq!(
        param(r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text"}]}]}"#),
        "messages[0].content[0].text"
    );
    assert_eq!(
        param(r#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}]}"#),
        "messages[0].content[0].image_url"
    );
    assert_eq!(
        param(r#"{"model":"m","messages":[{"role":"assistant","content":[{"type":"refusal"}]}]}"#),
        "messages[0].content[0].refusal"
    );
    assert_eq!(
        param(r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":"0.5"}"#),
        "temperature"
    );
}
