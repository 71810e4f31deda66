#[cfg(target_family = "wasm")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use std::borrow::Cow;

use super::{Endpoint, parse};
use crate::canonical::{ApiKind, CanonicalRequest, Image, Part, Role, SegmentRole};
use crate::error::GatewayError;

fn normalize(api: ApiKind, body: &str) -> CanonicalRequest<'_> {
    parse(api, body.as_bytes()).unwrap().request
}

fn error(api: ApiKind, body: &str) -> GatewayError {
    parse(api, body.as_bytes()).unwrap_err()
}

fn text(t: &str) -> Part<'_> {
    Part::Text(Cow::Borrowed(t))
}

fn segments<'r>(request: &'r CanonicalRequest<'_>) -> Vec<(SegmentRole, &'r str)> {
    request.segments().map(|s| (s.role, s.text)).collect()
}

#[test]
fn endpoints() {
    assert_eq!(
        Endpoint::classify("/v1/chat/completions"),
        Endpoint::Inference(ApiKind::ChatCompletions)
    );
    assert_eq!(
        Endpoint::classify("/v1/models?limit=5"),
        Endpoint::ListModels
    );
    assert_eq!(
        Endpoint::classify("/v1/chat/completions/x"),
        Endpoint::Unhandled
    );
    assert_eq!(Endpoint::classify("/health"), Endpoint::Unhandled);
}

#[test]
fn chat_with_string_content() {
    let r = normalize(
        ApiKind::ChatCompletions,
        r#"{"model":"m","messages":[{"role":"system","content":"be brief"},
            {"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true},
            "max_tokens":50,"user":"u-1","temperature":0.2}"#,
    );
    assert_eq!(r.api, ApiKind::ChatCompletions);
    assert_eq!(r.model, "m");
    assert!(r.stream && r.include_usage);
    assert_eq!(r.max_output_tokens, Some(50));
    assert_eq!(r.user.as_deref(), Some("u-1"));
    assert_eq!(r.messages[0].role, Role::System);
    assert_eq!(
        segments(&r),
        [(SegmentRole::System, "be brief"), (SegmentRole::User, "hi")]
    );
    assert_ne!(r.prefix_hash, 0);
}

#[test]
fn chat_with_parts_images_tools_and_tool_results() {
    let r = normalize(
        ApiKind::ChatCompletions,
        r#"{"model":"m","max_completion_tokens":7,"max_tokens":99,
            "tools":[{"type":"function","function":{"name":"weather","description":"Get weather",
                "parameters":{"type":"object"}}}],
            "messages":[
              {"role":"developer","content":[{"type":"text","text":"rules"}]},
              {"role":"user","content":[{"type":"text","text":"what is this?"},
                 {"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}},
                 {"type":"input_audio","input_audio":{"data":"x","format":"wav"}}]},
              {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function",
                 "function":{"name":"weather","arguments":"{\"city\":\"Oslo\"}"}}]},
              {"role":"tool","tool_call_id":"c1","content":"sunny"}]}"#,
    );
    assert_eq!(r.max_output_tokens, Some(7), "max_completion_tokens wins");
    assert_eq!(r.tools[0].name, "weather");
    assert_eq!(r.tools[0].schema, Some(r#"{"type":"object"}"#));
    assert_eq!(r.messages[1].parts[1], Part::Image(Image::default()));
    assert_eq!(
        r.messages[1].parts[2],
        Part::Other {
            kind: Cow::Borrowed("input_audio")
        }
    );
    assert_eq!(r.non_text_parts(), 2);
    assert_eq!(r.messages[3].role, Role::Tool);
    assert_eq!(r.messages[3].tool_call_id.as_deref(), Some("c1"));
    assert_eq!(
        segments(&r),
        [
            (SegmentRole::ToolDefinition, "weather"),
            (SegmentRole::ToolDefinition, "Get weather"),
            (SegmentRole::ToolDefinition, r#"{"type":"object"}"#),
            (SegmentRole::System, "rules"),
            (SegmentRole::User, "what is this?"),
            (SegmentRole::Assistant, "weather"),
            (SegmentRole::Assistant, r#"{"city":"Oslo"}"#),
            (SegmentRole::ToolResult, "sunny"),
        ]
    );
}

#[test]
fn escaped_strings_are_decoded() {
    let r = normalize(
        ApiKind::ChatCompletions,
        r#"{"model":"m","messages":[{"role":"user","content":"line\nnext \u00e9 \ud83d\ude00"}]}"#,
    );
    assert_eq!(r.messages[0].parts[0], text("line\nnext é 😀"));
}

#[test]
fn completions_and_embeddings_accept_text_and_token_ids() {
    let r = normalize(
        ApiKind::Completions,
        r#"{"model":"m","prompt":"once","max_tokens":3}"#,
    );
    assert_eq!(r.messages[0].parts, [text("once")]);
    assert_eq!(r.max_output_tokens, Some(3));

    let r = normalize(ApiKind::Completions, r#"{"model":"m","prompt":["a","b"]}"#);
    assert_eq!(r.messages[0].parts, [text("a"), text("b")]);

    let r = normalize(
        ApiKind::Embeddings,
        r#"{"model":"m","input":[1,2,3],"max_tokens":5}"#,
    );
    assert_eq!(r.messages[0].parts, [Part::TokenIds(3)]);
    assert_eq!(r.max_output_tokens, None, "embeddings produce no tokens");

    let r = normalize(ApiKind::Embeddings, r#"{"model":"m","input":[[1,2],[3]]}"#);
    assert_eq!(r.messages[0].parts, [Part::TokenIds(2), Part::TokenIds(1)]);
    assert_eq!(r.non_text_parts(), 2);
}

#[test]
fn responses_with_instructions_items_and_function_calls() {
    let r = normalize(
        ApiKind::Responses,
        r#"{"model":"m","instructions":"be kind","max_output_tokens":64,
            "tools":[{"type":"function","name":"lookup","parameters":{}},{"type":"web_search"}],
            "input":[{"role":"user","content":[{"type":"input_text","text":"find"},
                       {"type":"input_image","image_url":"https://x/y.png"}]},
                     {"type":"function_call","call_id":"f1","name":"lookup","arguments":"{}"},
                     {"type":"function_call_output","call_id":"f1","output":"found it"},
                     {"type":"reasoning","summary":[]}]}"#,
    );
    assert_eq!(r.max_output_tokens, Some(64));
    assert_eq!(r.tools[1].name, "web_search");
    assert_eq!(r.messages[0].parts, [text("be kind")]);
    assert_eq!(
        r.messages[1].parts,
        [text("find"), Part::Image(Image::default())]
    );
    assert_eq!(r.messages[3].role, Role::Tool);
    assert_eq!(r.messages[3].tool_call_id.as_deref(), Some("f1"));
    assert_eq!(
        r.messages[4].parts,
        [Part::Other {
            kind: Cow::Borrowed("reasoning")
        }]
    );

    let r = normalize(ApiKind::Responses, r#"{"model":"m","input":"hello"}"#);
    assert_eq!(segments(&r), [(SegmentRole::User, "hello")]);
}

#[test]
fn anthropic_messages_with_system_blocks_tools_and_results() {
    let r = normalize(
        ApiKind::Messages,
        r#"{"model":"claude","max_tokens":1024,"stream":true,
            "system":[{"type":"text","text":"You are terse.","cache_control":{"type":"ephemeral"}}],
            "metadata":{"user_id":"user-7"},
            "tools":[{"name":"calc","description":"math","input_schema":{"type":"object"}}],
            "messages":[
              {"role":"user","content":"2+2?"},
              {"role":"assistant","content":[{"type":"thinking","thinking":"hmm","signature":"s"},
                 {"type":"tool_use","id":"t1","name":"calc","input":{"expr":"2+2"}}]},
              {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1",
                 "content":[{"type":"text","text":"4"}]},
                 {"type":"image","source":{"type":"base64","media_type":"image/png","data":"AA"}}]}]}"#,
    );
    assert_eq!(r.api, ApiKind::Messages);
    assert!(r.stream);
    assert_eq!(r.max_output_tokens, Some(1024));
    assert_eq!(r.user.as_deref(), Some("user-7"));
    assert_eq!(r.tools[0].schema, Some(r#"{"type":"object"}"#));
    assert_eq!(
        segments(&r),
        [
            (SegmentRole::ToolDefinition, "calc"),
            (SegmentRole::ToolDefinition, "math"),
            (SegmentRole::ToolDefinition, r#"{"type":"object"}"#),
            (SegmentRole::System, "You are terse."),
            (SegmentRole::User, "2+2?"),
            (SegmentRole::Assistant, "calc"),
            (SegmentRole::Assistant, r#"{"expr":"2+2"}"#),
            (SegmentRole::ToolResult, "4"),
        ]
    );
    assert_eq!(r.non_text_parts(), 2, "thinking and image are kept");

    let r = normalize(
        ApiKind::Messages,
        r#"{"model":"c","system":"plain","messages":[{"role":"user","content":"x"}]}"#,
    );
    assert_eq!(r.messages[0].parts, [text("plain")]);
}

#[test]
fn missing_and_invalid_fields_are_named() {
    let chat = ApiKind::ChatCompletions;
    assert_eq!(
        error(chat, r#"{"messages":[]}"#),
        GatewayError::MissingField("model")
    );
    assert_eq!(
        error(chat, r#"{"model":null,"messages":[]}"#),
        GatewayError::MissingField("model")
    );
    assert_eq!(
        error(chat, r#"{"model":"m"}"#),
        GatewayError::MissingField("messages")
    );
    let param = |e: GatewayError| match e {
        GatewayError::InvalidField { param, .. } => param,
        other => format!("{other:?}"),
    };
    assert_eq!(
        param(error(
            chat,
            r#"{"model":" ","messages":[{"role":"user","content":"x"}]}"#
        )),
        "model"
    );
    assert_eq!(
        param(error(chat, r#"{"model":"m","messages":[]}"#)),
        "messages"
    );
    assert_eq!(param(error(chat, r#"{"model":5,"messages":[]}"#)), "model");
    assert_eq!(
        param(error(chat, r#"{"model":"m","messages":{}}"#)),
        "messages"
    );
    assert_eq!(
        param(error(
            chat,
            r#"{"model":"m","messages":[{"role":"user","content":"x"},{"role":"robot","content":"x"}]}"#
        )),
        "messages[1].role"
    );
    // serde names the object that lacks the field; the message names the field.
    let missing_role = error(chat, r#"{"model":"m","messages":[{"content":"x"}]}"#);
    assert_eq!(
        missing_role,
        GatewayError::InvalidField {
            param: "messages[0]".into(),
            message: "missing field `role`".into()
        }
    );
    assert_eq!(
        param(error(
            chat,
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text"}]}]}"#
        )),
        "messages[0].content[0].text"
    );
    assert_eq!(
        param(error(
            chat,
            r#"{"model":"m","messages":[{"role":"user","content":5}]}"#
        )),
        "messages[0].content"
    );
    assert_eq!(
        param(error(
            chat,
            r#"{"model":"m","stream":"yes","messages":[{"role":"user","content":"x"}]}"#
        )),
        "stream"
    );
    assert_eq!(
        param(error(
            chat,
            r#"{"model":"m","max_tokens":-1,"messages":[{"role":"user","content":"x"}]}"#
        )),
        "max_tokens"
    );
    assert_eq!(
        param(error(
            chat,
            r#"{"model":"m","max_tokens":1e30,"messages":[{"role":"user","content":"x"}]}"#
        )),
        "max_tokens"
    );
    assert_eq!(
        param(error(
            chat,
            r#"{"model":"m","tools":[{"type":"function"}],"messages":[{"role":"user","content":"x"}]}"#
        )),
        "tools[0].name"
    );
    assert_eq!(
        param(error(
            ApiKind::Messages,
            r#"{"model":"m","messages":[{"role":"system","content":"x"}]}"#
        )),
        "messages[0].role"
    );
    assert_eq!(
        error(ApiKind::Completions, r#"{"model":"m"}"#),
        GatewayError::MissingField("prompt")
    );
    assert_eq!(
        param(error(
            ApiKind::Embeddings,
            r#"{"model":"m","input":[true]}"#
        )),
        "input[0]"
    );
}

#[test]
fn pathological_bodies_are_errors_not_panics() {
    let chat = ApiKind::ChatCompletions;
    let deep_content = format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":{}"x"{}}}]}}"#,
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let deep_extra = format!(
        r#"{{"model":"m","x":{}1{},"messages":[{{"role":"user","content":"x"}}]}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    for body in [
        "".to_owned(),
        "nul".to_owned(),
        "[]".to_owned(),
        r#"{"model":"a","model":"b","messages":[]}"#.to_owned(),
        deep_content,
        deep_extra,
    ] {
        let err = parse(chat, body.as_bytes()).unwrap_err();
        assert!(
            matches!(
                err,
                GatewayError::InvalidJson(_) | GatewayError::InvalidField { .. }
            ),
            "{err:?}"
        );
    }
    let invalid_utf8 =
        b"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"\xc3\x28\"}]}";
    assert!(matches!(
        parse(chat, invalid_utf8),
        Err(GatewayError::InvalidJson(_))
    ));
    let duplicate_nested =
        r#"{"model":"m","messages":[{"role":"user","role":"system","content":"x"}]}"#;
    assert!(matches!(
        parse(chat, duplicate_nested.as_bytes()),
        Err(GatewayError::InvalidField { .. })
    ));
}

#[test]
fn a_one_megabyte_string_is_read_without_copying() {
    let big = "a".repeat(1 << 20);
    let body = format!(r#"{{"model":"m","messages":[{{"role":"user","content":"{big}"}}]}}"#);
    let r = normalize(ApiKind::ChatCompletions, &body);
    let Part::Text(content) = &r.messages[0].parts[0] else {
        panic!()
    };
    assert!(matches!(content, Cow::Borrowed(_)));
    assert_eq!(content.len(), 1 << 20);
}
