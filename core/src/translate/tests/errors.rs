//! Error bodies of each target in each client's format.

#[cfg(target_family = "wasm")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use serde_json::json;

use super::json;
use crate::translate::{Shape, error};

const OPENAI_RATE_LIMIT: &str = r#"{
    "error": {
        "message": "Rate limit reached for gpt-4o in organization org-Zx9 on tokens per min (TPM): Limit 30000, Used 29820, Requested 1245. Please try again in 2.13s.",
        "type": "tokens",
        "param": null,
        "code": "rate_limit_exceeded"
    }
}"#;
const OPENAI_CONTEXT: &str = r#"{"error":{"message":"This model's maximum context length is 128000 tokens. However, your messages resulted in 130211 tokens. Please reduce the length of the messages.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#;
const ANTHROPIC_OVERLOADED: &str = r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"}"#;
const ANTHROPIC_INVALID: &str = r#"{"type":"error","error":{"type":"invalid_request_error","message":"messages.1.content.0.tool_use.input: Input should be a valid dictionary"},"request_id":"req_011CSHq4kbVFQ4qc1yx3Zk9d"}"#;
const ANTHROPIC_AUTH: &str = r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"},"request_id":"req_011CSHrBb7iQ6wJ5x8Dh2bYq"}"#;
const VLLM_FLAT: &str = r#"{"object":"error","message":"This model's maximum context length is 4096 tokens. However, you requested 5000 tokens (4000 in the messages, 1000 in the completion). Please reduce the length of the messages or completion.","type":"BadRequestError","param":null,"code":400}"#;

fn translated(target: Shape, client: Shape, status: u16, body: &str) -> serde_json::Value {
    json(&error(target, client, status, body.as_bytes()))
}

#[test]
fn openai_errors_for_an_anthropic_client() {
    assert_eq!(
        translated(
            Shape::OpenAiChat,
            Shape::AnthropicMessages,
            429,
            OPENAI_RATE_LIMIT
        ),
        json!({"type": "error", "error": {
            "type": "rate_limit_error",
            "message": "Rate limit reached for gpt-4o in organization org-Zx9 on tokens per min (TPM): Limit 30000, Used 29820, Requested 1245. Please try again in 2.13s."
        }})
    );
    assert_eq!(
        translated(
            Shape::OpenAiChat,
            Shape::AnthropicMessages,
            400,
            OPENAI_CONTEXT
        )["error"]["type"],
        json!("invalid_request_error")
    );
    assert_eq!(
        translated(Shape::OpenAiChat, Shape::AnthropicMessages, 400, VLLM_FLAT),
        json!({"type": "error", "error": {
            "type": "invalid_request_error",
            "message": "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens (4000 in the messages, 1000 in the completion). Please reduce the length of the messages or completion."
        }})
    );
}

#[test]
fn anthropic_errors_for_an_openai_client() {
    assert_eq!(
        translated(
            Shape::AnthropicMessages,
            Shape::OpenAiChat,
            529,
            ANTHROPIC_OVERLOADED
        ),
        json!({"error": {"message": "Overloaded", "type": "server_error", "param": null, "code": "overloaded"}})
    );
    assert_eq!(
        translated(
            Shape::AnthropicMessages,
            Shape::OpenAiChat,
            400,
            ANTHROPIC_INVALID
        ),
        json!({"error": {
            "message": "messages.1.content.0.tool_use.input: Input should be a valid dictionary",
            "type": "invalid_request_error", "param": null, "code": null
        }})
    );
    assert_eq!(
        translated(
            Shape::AnthropicMessages,
            Shape::OpenAiChat,
            401,
            ANTHROPIC_AUTH
        ),
        json!({"error": {"message": "invalid x-api-key", "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}})
    );
}

#[test]
fn types_follow_the_status() {
    let anthropic = |status| {
        translated(
            Shape::OpenAiChat,
            Shape::AnthropicMessages,
            status,
            OPENAI_CONTEXT,
        )["error"]["type"]
            .clone()
    };
    let openai = |status| {
        let out = translated(
            Shape::AnthropicMessages,
            Shape::OpenAiChat,
            status,
            ANTHROPIC_INVALID,
        );
        (out["error"]["type"].clone(), out["error"]["code"].clone())
    };
    for (status, kind) in [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (402, "billing_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (409, "invalid_request_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "overloaded_error"),
        (504, "timeout_error"),
        (529, "overloaded_error"),
    ] {
        assert_eq!(anthropic(status), json!(kind), "{status}");
    }
    for (status, kind, code) in [
        (400, "invalid_request_error", json!(null)),
        (404, "invalid_request_error", json!("not_found")),
        (413, "invalid_request_error", json!("request_too_large")),
        (429, "requests", json!("rate_limit_exceeded")),
        (500, "server_error", json!(null)),
        (503, "server_error", json!("overloaded")),
        (529, "server_error", json!("overloaded")),
    ] {
        assert_eq!(openai(status), (json!(kind), code), "{status}");
    }
}

#[test]
fn the_clients_own_format_passes_as_it_is() {
    for (shape, body) in [
        (Shape::OpenAiChat, OPENAI_RATE_LIMIT),
        (Shape::AnthropicMessages, ANTHROPIC_OVERLOADED),
    ] {
        assert_eq!(error(shape, shape, 429, body.as_bytes()), body.as_bytes());
    }
    // vLLM's flat error is not OpenAI's format: rewritten, its message kept, its numeric code not.
    assert_eq!(
        translated(Shape::OpenAiChat, Shape::OpenAiChat, 400, VLLM_FLAT)["error"],
        json!({
            "message": "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens (4000 in the messages, 1000 in the completion). Please reduce the length of the messages or completion.",
            "type": "invalid_request_error", "param": null, "code": null
        })
    );
    // An OpenAI-compatible body's own param and (string) code are kept when rewritten.
    assert_eq!(
        translated(
            Shape::OpenAiChat,
            Shape::OpenAiChat,
            400,
            r#"{"object":"error","message":"bad","type":"BadRequestError","param":"messages","code":"context_length_exceeded"}"#
        ),
        json!({"error": {"message": "bad", "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}})
    );
}

#[test]
fn unreadable_bodies_get_a_generic_message() {
    for body in [
        "",
        "<html><body><h1>502 Bad Gateway</h1></body></html>",
        "{}",
        r#"{"error":{}}"#,
        r#"{"error":{"message":"  "}}"#,
    ] {
        assert_eq!(
            translated(Shape::AnthropicMessages, Shape::OpenAiChat, 502, body),
            json!({"error": {
                "message": "The model provider answered HTTP 502 without a readable error message.",
                "type": "server_error", "param": null, "code": null
            }}),
            "{body}"
        );
        assert_eq!(
            translated(
                Shape::AnthropicMessages,
                Shape::AnthropicMessages,
                503,
                body
            ),
            json!({"type": "error", "error": {
                "type": "overloaded_error",
                "message": "The model provider answered HTTP 503 without a readable error message."
            }}),
            "{body}"
        );
    }
    // Other common shapes: a bare string `error`, FastAPI's `detail`.
    assert_eq!(
        translated(
            Shape::OpenAiChat,
            Shape::AnthropicMessages,
            404,
            r#"{"error":"model 'x' not found"}"#
        )["error"]["message"],
        json!("model 'x' not found")
    );
    assert_eq!(
        translated(
            Shape::OpenAiChat,
            Shape::AnthropicMessages,
            422,
            r#"{"detail":"Unprocessable"}"#
        )["error"]["message"],
        json!("Unprocessable")
    );
}

#[test]
fn long_messages_are_cut() {
    let body = format!(r#"{{"error":{{"message":"{}"}}}}"#, "é".repeat(5000));
    let out = translated(Shape::OpenAiChat, Shape::AnthropicMessages, 400, &body);
    assert_eq!(
        out["error"]["message"].as_str().unwrap().chars().count(),
        2000
    );
}
