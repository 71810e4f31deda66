//! Round trips, and what every later stage reads: a translated request parses to the same
//! canonical request (texts by role, tool definitions, images, budget, user) as the client's.

#[cfg(target_family = "wasm")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use serde_json::json;

use super::{ANTHROPIC_REQUEST, CLAUDE, GPT, OPENAI_REQUEST, json, to_anthropic, to_openai};
use crate::api::parse;
use crate::canonical::{ApiKind, CanonicalRequest, SegmentRole};
use crate::translate::{Shape, TargetRequest, request, response_at};

fn segments<'r>(request: &'r CanonicalRequest<'_>) -> Vec<(SegmentRole, &'r str)> {
    request.segments().map(|s| (s.role, s.text)).collect()
}

#[test]
fn openai_request_reads_the_same_after_translation() {
    let translated = request(Shape::OpenAiChat, OPENAI_REQUEST.as_bytes(), &CLAUDE).unwrap();
    let before = parse(ApiKind::ChatCompletions, OPENAI_REQUEST.as_bytes())
        .unwrap()
        .request;
    let after = parse(ApiKind::Messages, &translated).unwrap().request;
    // `list_cities` takes no parameters: Anthropic gets an empty object schema for it.
    let mut expected = segments(&before);
    expected.insert(
        5,
        (
            SegmentRole::ToolDefinition,
            r#"{"type":"object","properties":{}}"#,
        ),
    );
    assert_eq!(segments(&after), expected);
    assert_eq!(after.non_text_parts(), before.non_text_parts());
    assert_eq!(after.max_output_tokens, before.max_output_tokens);
    assert_eq!(after.user, before.user);
    assert_eq!(after.stream, before.stream);
    assert_eq!(after.tools.len(), before.tools.len());
}

#[test]
fn anthropic_request_reads_the_same_after_translation() {
    let translated = request(Shape::AnthropicMessages, ANTHROPIC_REQUEST.as_bytes(), &GPT).unwrap();
    let before = parse(ApiKind::Messages, ANTHROPIC_REQUEST.as_bytes())
        .unwrap()
        .request;
    let after = parse(ApiKind::ChatCompletions, &translated)
        .unwrap()
        .request;
    assert_eq!(segments(&after), segments(&before));
    // The earlier turn's thinking block is the one part not sent.
    assert_eq!(after.non_text_parts(), before.non_text_parts() - 1);
    assert_eq!(after.max_output_tokens, before.max_output_tokens);
    assert_eq!(after.user, before.user);
    assert_eq!(after.stream, before.stream);
    // The client did not ask for usage in the stream; the gateway did, for the target.
    assert!(!before.include_usage && after.include_usage);
}

#[test]
fn openai_request_there_and_back() {
    let anthropic = to_anthropic(OPENAI_REQUEST).to_string();
    let openai_again = TargetRequest {
        model: "assistant-large",
        ..GPT
    };
    let back = json(
        &request(
            Shape::AnthropicMessages,
            anthropic.as_bytes(),
            &openai_again,
        )
        .unwrap(),
    );
    let mut expected = json(OPENAI_REQUEST.as_bytes());
    // What changes on the way: both system messages become one (in parts); the tool results and
    // the next user words came back as tool messages and a user message of parts; a function
    // without parameters got an empty schema; the assistant's `refusal: null`, `strict: false`
    // and `n: 1` (no-ops) are gone.
    expected["messages"] = json!([
        {"role": "system", "content": [
            {"type": "text", "text": "You are a travel assistant. Answer briefly."},
            {"type": "text", "text": "Prefer metric units."}
        ]},
        expected["messages"][2].clone(),
        {"role": "assistant", "content": null, "tool_calls": expected["messages"][3]["tool_calls"].clone()},
        expected["messages"][4].clone(),
        expected["messages"][5].clone(),
        {"role": "user", "content": [{"type": "text", "text": "Thanks! Keep it short."}]}
    ]);
    // An image's `detail` does not travel.
    expected["messages"][1]["content"][1]["image_url"]
        .as_object_mut()
        .unwrap()
        .remove("detail");
    expected["tools"][0]["function"]
        .as_object_mut()
        .unwrap()
        .remove("strict");
    expected["tools"][1]["function"]["parameters"] = json!({"type": "object", "properties": {}});
    let object = expected.as_object_mut().unwrap();
    object.remove("n");
    object.remove("stream");
    object.insert("stream".into(), json!(false));
    assert_eq!(back, expected);
}

#[test]
fn anthropic_request_there_and_back() {
    let openai = to_openai(ANTHROPIC_REQUEST).to_string();
    let anthropic_again = TargetRequest {
        model: "assistant-large",
        ..CLAUDE
    };
    let back = json(&request(Shape::OpenAiChat, openai.as_bytes(), &anthropic_again).unwrap());
    let mut expected = json(ANTHROPIC_REQUEST.as_bytes());
    // What changes on the way: cache_control marks, the earlier turn's thinking block, and
    // the tool result's place: a user turn of its own on the OpenAI side, merged again here.
    expected["system"][1]
        .as_object_mut()
        .unwrap()
        .remove("cache_control");
    expected["tools"][0]
        .as_object_mut()
        .unwrap()
        .remove("cache_control");
    expected["messages"][2]["content"][1]
        .as_object_mut()
        .unwrap()
        .remove("cache_control");
    expected["messages"][1]["content"]
        .as_array_mut()
        .unwrap()
        .remove(0);
    assert_eq!(back, expected);
}

#[test]
fn responses_there_and_back() {
    let anthropic = include_str!("fixtures/anthropic_response_tool_use_thinking.json");
    let openai = response_at(
        Shape::AnthropicMessages,
        Shape::OpenAiChat,
        anthropic.as_bytes(),
        1,
    )
    .unwrap();
    let back = json(&response_at(Shape::OpenAiChat, Shape::AnthropicMessages, &openai, 1).unwrap());
    let mut expected = json(anthropic.as_bytes());
    // Redacted thinking does not travel, nor signatures, nor the service tier.
    let content = expected["content"].as_array_mut().unwrap();
    content.remove(1);
    content[0]["signature"] = json!("");
    expected["usage"]
        .as_object_mut()
        .unwrap()
        .remove("service_tier");
    assert_eq!(back, expected);

    let openai = include_str!("fixtures/openai_response_length.json");
    let anthropic = response_at(
        Shape::OpenAiChat,
        Shape::AnthropicMessages,
        openai.as_bytes(),
        0,
    )
    .unwrap();
    let back = json(
        &response_at(
            Shape::AnthropicMessages,
            Shape::OpenAiChat,
            &anthropic,
            1_733_124_460,
        )
        .unwrap(),
    );
    let mut expected = json(openai.as_bytes());
    // What an Anthropic response has no field for: annotations, the fingerprint, the tier,
    // the details of completion tokens.
    expected["choices"][0]["message"]
        .as_object_mut()
        .unwrap()
        .remove("annotations");
    let object = expected.as_object_mut().unwrap();
    object.remove("system_fingerprint");
    object.remove("service_tier");
    expected["usage"]
        .as_object_mut()
        .unwrap()
        .remove("completion_tokens_details");
    expected["usage"]["prompt_tokens_details"] = json!({"cached_tokens": 0});
    assert_eq!(back, expected);
}
