//! Every field that does not translate is a 400 naming it, in the client's error format.

#[cfg(target_family = "wasm")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::{CLAUDE, GPT};
use crate::error::{ApiFlavor, GatewayError};
use crate::translate::{Shape, request};

/// The OpenAI request `{"model", "messages": [<messages>], <extra>}` for an Anthropic target
/// fails naming `param`.
fn openai_refused(messages: &str, extra: &str, param: &str) {
    let body = format!(r#"{{"model":"m","messages":[{messages}]{extra}}}"#);
    let err = request(Shape::OpenAiChat, body.as_bytes(), &CLAUDE).unwrap_err();
    check(err, param, ApiFlavor::OpenAi, &body);
}

fn anthropic_refused(messages: &str, extra: &str, param: &str) {
    let body = format!(r#"{{"model":"m","max_tokens":1024,"messages":[{messages}]{extra}}}"#);
    let err = request(Shape::AnthropicMessages, body.as_bytes(), &GPT).unwrap_err();
    check(err, param, ApiFlavor::Anthropic, &body);
}

fn check(err: GatewayError, param: &str, flavor: ApiFlavor, body: &str) {
    match &err {
        GatewayError::Untranslatable { param: named, .. } => assert_eq!(named, param, "{body}"),
        other => panic!("{body}: {other:?}"),
    }
    assert_eq!(err.status(), 400);
    let rendered = err.body(flavor);
    assert!(rendered.contains(&format!("'{param}'")), "{rendered}");
    if flavor == ApiFlavor::OpenAi {
        assert!(
            rendered.contains(&format!(r#""param":"{param}""#)),
            "{rendered}"
        );
        assert!(
            rendered.contains(r#""code":"unsupported_parameter""#),
            "{rendered}"
        );
    }
}

const USER: &str = r#"{"role":"user","content":"hi"}"#;

#[test]
fn openai_fields_anthropic_lacks() {
    for (extra, param) in [
        (r#","n":2"#, "n"),
        (r#","n":1e400"#, "n"),
        (r#","logprobs":true"#, "logprobs"),
        (r#","top_logprobs":3"#, "top_logprobs"),
        (r#","presence_penalty":0.5"#, "presence_penalty"),
        (r#","frequency_penalty":-1"#, "frequency_penalty"),
        (r#","logit_bias":{"50256":-100}"#, "logit_bias"),
        (r#","seed":42"#, "seed"),
        (
            r#","prediction":{"type":"content","content":"x"}"#,
            "prediction",
        ),
        (r#","verbosity":"low""#, "verbosity"),
        (
            r#","response_format":{"type":"json_object"}"#,
            "response_format",
        ),
        (
            r#","response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{}}}"#,
            "response_format",
        ),
        (r#","modalities":["text","audio"]"#, "modalities"),
        (r#","audio":{"voice":"alloy","format":"wav"}"#, "audio"),
        (r#","temperature":1.5"#, "temperature"),
        (r#","service_tier":"flex""#, "service_tier"),
        (r#","web_search_options":{}"#, "web_search_options"),
        (
            r#","functions":[{"name":"f","parameters":{}}]"#,
            "functions",
        ),
        (r#","function_call":"auto""#, "function_call"),
        (r#","top_k":40"#, "top_k"),
        (r#","min_p":0.05"#, "min_p"),
        (
            r#","reasoning_effort":"high","max_completion_tokens":1500"#,
            "reasoning_effort",
        ),
        (r#","reasoning_effort":"extreme""#, "reasoning_effort"),
        (
            r#","tools":[{"type":"custom","custom":{"name":"grammar"}}]"#,
            "tools[0].type",
        ),
        (
            r#","tools":[{"type":"function","function":{"name":"f","strict":true,"parameters":{"type":"object"}}}]"#,
            "tools[0].function.strict",
        ),
        (
            r#","tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"allowed_tools","allowed_tools":{"mode":"auto","tools":[]}}"#,
            "tool_choice",
        ),
    ] {
        openai_refused(USER, extra, param);
    }
}

#[test]
fn openai_messages_anthropic_cannot_hold() {
    for (messages, param) in [
        (
            r#"{"role":"user","name":"alice","content":"hi"}"#,
            "messages[0].name",
        ),
        (
            r#"{"role":"user","content":[{"type":"text","text":"listen"},{"type":"input_audio","input_audio":{"data":"UklGR","format":"wav"}}]}"#,
            "messages[0].content[1]",
        ),
        (
            r#"{"role":"user","content":[{"type":"file","file":{"filename":"a.pdf","file_data":"data:application/pdf;base64,JVBERi0x"}}]}"#,
            "messages[0].content[0]",
        ),
        (
            r#"{"role":"system","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]},{"role":"user","content":"hi"}"#,
            "messages[0].content[0]",
        ),
        (
            r#"{"role":"user","content":"hi"},{"role":"assistant","content":null,"audio":{"id":"audio_abc"}}"#,
            "messages[1].audio",
        ),
        (
            r#"{"role":"user","content":"hi"},{"role":"assistant","function_call":{"name":"f","arguments":"{}"}}"#,
            "messages[1].function_call",
        ),
        (
            r#"{"role":"user","content":"hi"},{"role":"function","name":"f","content":"x"}"#,
            "messages[1].name",
        ),
        (
            r#"{"role":"user","content":"hi"},{"role":"function","content":"x"}"#,
            "messages[1].role",
        ),
        (
            r#"{"role":"user","content":"hi"},{"role":"assistant","tool_calls":[{"id":"c","type":"custom","custom":{"name":"g","input":"x"}}]}"#,
            "messages[1].tool_calls[0].type",
        ),
    ] {
        openai_refused(messages, "", param);
    }
}

#[test]
fn anthropic_fields_openai_lacks() {
    for (extra, param) in [
        (r#","top_k":40"#, "top_k"),
        (
            r#","container":"container_011CPR5CNjB747bTd36fQLFk""#,
            "container",
        ),
        (
            r#","mcp_servers":[{"type":"url","url":"https://mcp.example.com/sse","name":"x"}]"#,
            "mcp_servers",
        ),
        (
            r#","context_management":{"edits":[]}"#,
            "context_management",
        ),
        (r#","service_tier":"priority""#, "service_tier"),
        (r#","unknown_option":true"#, "unknown_option"),
        (r#","thinking":{"type":"adaptive"}"#, "thinking.type"),
        (
            r#","tools":[{"type":"web_search_20250305","name":"web_search","max_uses":5}]"#,
            "tools[0]",
        ),
        (
            r#","tools":[{"type":"bash_20250124","name":"bash"}]"#,
            "tools[0]",
        ),
    ] {
        anthropic_refused(USER, extra, param);
    }
}

#[test]
fn anthropic_blocks_openai_cannot_hold() {
    for (messages, param) in [
        (
            r#"{"role":"user","content":[{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBERi0x"}},{"type":"text","text":"Summarize."}]}"#,
            "messages[0].content[0]",
        ),
        (
            r#"{"role":"user","content":[{"type":"text","text":"see"},{"type":"image","source":{"type":"file","file_id":"file_011CNha8iCJcU1wXNR6q4V8w"}}]}"#,
            "messages[0].content[1].source",
        ),
        (
            r#"{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"shot","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":[{"type":"text","text":"here"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0K"}}]}]}"#,
            "messages[2].content[0].content[1]",
        ),
        (
            r#"{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"server_tool_use","id":"srvtoolu_1","name":"web_search","input":{"query":"x"}}]}"#,
            "messages[1].content[0]",
        ),
        (
            r#"{"role":"user","content":[{"type":"search_result","source":"https://x","title":"x","content":[{"type":"text","text":"x"}]}]}"#,
            "messages[0].content[0]",
        ),
    ] {
        anthropic_refused(messages, "", param);
    }
}
