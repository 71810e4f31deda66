#[cfg(target_family = "wasm")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::{ApiFlavor, GatewayError};

fn bodies(error: &GatewayError) -> (u16, String, String) {
    (
        error.status(),
        error.body(ApiFlavor::OpenAi),
        error.body(ApiFlavor::Anthropic),
    )
}

#[test]
fn flavor_follows_the_path() {
    assert_eq!(ApiFlavor::from_path("/v1/messages"), ApiFlavor::Anthropic);
    assert_eq!(
        ApiFlavor::from_path("/v1/messages?beta=true"),
        ApiFlavor::Anthropic
    );
    assert_eq!(
        ApiFlavor::from_path("/v1/messages/count_tokens"),
        ApiFlavor::Anthropic
    );
    assert_eq!(ApiFlavor::from_path("/v1/messagesx"), ApiFlavor::OpenAi);
    assert_eq!(
        ApiFlavor::from_path("/v1/chat/completions"),
        ApiFlavor::OpenAi
    );
    assert_eq!(ApiFlavor::from_path(""), ApiFlavor::OpenAi);
}

#[test]
fn server_side_errors() {
    assert_eq!(
        bodies(&GatewayError::NotConfigured),
        (
            503,
            r#"{"error":{"message":"The gateway is not configured to serve this request.","type":"server_error","param":null,"code":null}}"#.into(),
            r#"{"type":"error","error":{"type":"api_error","message":"The gateway is not configured to serve this request."}}"#.into(),
        )
    );
    assert_eq!(
        bodies(&GatewayError::Internal("header update failed")).2,
        r#"{"type":"error","error":{"type":"api_error","message":"The gateway failed to process the request: header update failed."}}"#
    );
}

#[test]
fn invalid_json_and_fields() {
    assert_eq!(
        bodies(&GatewayError::InvalidJson("expected value".into())),
        (
            400,
            r#"{"error":{"message":"The request body is not valid JSON: expected value.","type":"invalid_request_error","param":null,"code":"invalid_json"}}"#.into(),
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"The request body is not valid JSON: expected value."}}"#.into(),
        )
    );
    let field = GatewayError::InvalidField {
        param: "messages[1].role".into(),
        message: "unknown role \"robot\"".into(),
    };
    assert_eq!(
        bodies(&field).1,
        r#"{"error":{"message":"Invalid value for 'messages[1].role': unknown role \"robot\".","type":"invalid_request_error","param":"messages[1].role","code":"invalid_value"}}"#
    );
    assert_eq!(
        bodies(&GatewayError::MissingField("messages")),
        (
            400,
            r#"{"error":{"message":"Missing required parameter: 'messages'.","type":"invalid_request_error","param":"messages","code":"missing_required_parameter"}}"#.into(),
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"Missing required parameter: 'messages'."}}"#.into(),
        )
    );
}

#[test]
fn model_not_found() {
    assert_eq!(
        bodies(&GatewayError::ModelNotFound("gpt-9".into())),
        (
            404,
            r#"{"error":{"message":"The model 'gpt-9' does not exist or you do not have access to it.","type":"invalid_request_error","param":"model","code":"model_not_found"}}"#.into(),
            r#"{"type":"error","error":{"type":"not_found_error","message":"The model 'gpt-9' does not exist or you do not have access to it."}}"#.into(),
        )
    );
}

#[test]
fn context_length_exceeded() {
    let error = GatewayError::ContextLengthExceeded {
        limit: 8192,
        prompt: 8000,
        output: 500,
    };
    assert_eq!(
        bodies(&error).1,
        r#"{"error":{"message":"This model's maximum context length is 8192 tokens, but the request needs about 8500 tokens (8000 in the prompt, 500 for the output). Shorten the prompt or lower the output limit.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#
    );
}

#[test]
fn transport_level_errors() {
    assert_eq!(
        bodies(&GatewayError::PayloadTooLarge { limit: 1024 }),
        (
            413,
            r#"{"error":{"message":"The request body is larger than the gateway's limit of 1024 bytes.","type":"invalid_request_error","param":null,"code":"request_too_large"}}"#.into(),
            r#"{"type":"error","error":{"type":"request_too_large","message":"The request body is larger than the gateway's limit of 1024 bytes."}}"#.into(),
        )
    );
    assert_eq!(
        bodies(&GatewayError::UnsupportedContentType("text/plain".into())).1,
        r#"{"error":{"message":"Unsupported content type 'text/plain'; send 'application/json'.","type":"invalid_request_error","param":null,"code":"unsupported_content_type"}}"#
    );
    let method = GatewayError::MethodNotAllowed {
        method: "GET".into(),
        allow: "POST",
    };
    assert_eq!(method.status(), 405);
    assert_eq!(method.headers(), vec![("allow", "POST")]);
    assert_eq!(
        bodies(&method).2,
        r#"{"type":"error","error":{"type":"invalid_request_error","message":"Method GET is not allowed here; use POST."}}"#
    );
    let unknown = GatewayError::UnknownPath {
        method: "POST".into(),
        path: "/v1/nope".into(),
    };
    assert_eq!(
        bodies(&unknown),
        (
            404,
            r#"{"error":{"message":"Invalid URL (POST /v1/nope).","type":"invalid_request_error","param":null,"code":"unknown_url"}}"#.into(),
            r#"{"type":"error","error":{"type":"not_found_error","message":"Invalid URL (POST /v1/nope)."}}"#.into(),
        )
    );
    assert_eq!(GatewayError::MissingBody.status(), 400);
}

#[test]
fn client_text_is_truncated() {
    let long = "é".repeat(500);
    let body = GatewayError::UnsupportedContentType(long).body(ApiFlavor::OpenAi);
    assert!(body.len() < 400, "{body}");
    assert!(body.contains("…"));
}

#[test]
fn load_shedding_and_no_healthy_replica() {
    let shed = GatewayError::Overloaded;
    assert_eq!(
        bodies(&shed),
        (
            429,
            r#"{"error":{"message":"Every replica serving this model is at capacity; retry shortly.","type":"server_error","param":null,"code":"overloaded"}}"#.into(),
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Every replica serving this model is at capacity; retry shortly."}}"#.into(),
        )
    );
    assert_eq!(
        shed.headers(),
        vec![("retry-after", "1"), ("retry-after-ms", "1000")]
    );
    assert_eq!(
        bodies(&GatewayError::NoHealthyEndpoint),
        (
            503,
            r#"{"error":{"message":"No healthy replica serves this model right now.","type":"server_error","param":null,"code":"no_healthy_upstream"}}"#.into(),
            r#"{"type":"error","error":{"type":"api_error","message":"No healthy replica serves this model right now."}}"#.into(),
        )
    );
}

#[test]
fn authentication_and_quotas() {
    use crate::quota::Reason;
    assert_eq!(
        bodies(&GatewayError::Unauthenticated { missing: false }),
        (
            401,
            r#"{"error":{"message":"Incorrect API key provided.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#.into(),
            r#"{"type":"error","error":{"type":"authentication_error","message":"Incorrect API key provided."}}"#.into(),
        )
    );
    assert_eq!(
        bodies(&GatewayError::QuotaExceeded(Reason::Tokens)),
        (
            429,
            r#"{"error":{"message":"Rate limit reached for tokens per minute. Retry after the time in retry-after.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#.into(),
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"Rate limit reached for tokens per minute. Retry after the time in retry-after."}}"#.into(),
        )
    );
    assert_eq!(
        bodies(&GatewayError::QuotaExceeded(Reason::Requests)).1,
        r#"{"error":{"message":"Rate limit reached for requests per minute. Retry after the time in retry-after.","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#
    );
    assert_eq!(
        bodies(&GatewayError::QuotaExceeded(Reason::Budget)).1,
        r#"{"error":{"message":"You exceeded your current quota: the budget for this period is spent.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#
    );
    assert_eq!(bodies(&GatewayError::QuotaExceeded(Reason::Unknown)).0, 503);
}

#[test]
fn a_model_outside_the_callers_allowed_models_is_forbidden() {
    let message = "You are not allowed to use the model 'gpt-4o': the API key, its project or \
                   its tenant does not include it in its allowed models.";
    assert_eq!(
        bodies(&GatewayError::ModelNotPermitted("gpt-4o".into())),
        (
            403,
            format!(
                r#"{{"error":{{"message":"{message}","type":"permission_error","param":"model","code":"model_not_allowed"}}}}"#
            ),
            format!(
                r#"{{"type":"error","error":{{"type":"permission_error","message":"{message}"}}}}"#
            ),
        )
    );
}

#[test]
fn guardrail_rejections_name_the_rule_only() {
    assert_eq!(
        bodies(&GatewayError::ContentPolicy { rule: "credit_card".into() }),
        (
            400,
            r#"{"error":{"message":"The request was blocked by the gateway's content policy (rule 'credit_card').","type":"invalid_request_error","param":null,"code":"content_policy_violation"}}"#.into(),
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"The request was blocked by the gateway's content policy (rule 'credit_card')."}}"#.into(),
        )
    );
    assert_eq!(
        bodies(&GatewayError::ModelNotAllowed("gpt-4o".into())),
        (
            403,
            r#"{"error":{"message":"The gateway's policy does not allow the model 'gpt-4o' for this request.","type":"invalid_request_error","param":"model","code":"model_not_allowed"}}"#.into(),
            r#"{"type":"error","error":{"type":"permission_error","message":"The gateway's policy does not allow the model 'gpt-4o' for this request."}}"#.into(),
        )
    );
    assert_eq!(
        bodies(&GatewayError::PolicyLimit {
            field: "max_output_tokens",
            limit: 100,
            requested: 500
        })
        .1,
        r#"{"error":{"message":"The request exceeds the gateway's policy limit max_output_tokens of 100 tokens (about 500 requested).","type":"invalid_request_error","param":null,"code":"policy_limit_exceeded"}}"#
    );
}

#[test]
fn translation_errors() {
    let field = GatewayError::Untranslatable {
        param: "messages[0].content[1]".into(),
        reason: "the Anthropic Messages API takes no audio input".into(),
    };
    assert_eq!(
        bodies(&field),
        (
            400,
            r#"{"error":{"message":"'messages[0].content[1]' cannot be sent to the provider serving this model: the Anthropic Messages API takes no audio input.","type":"invalid_request_error","param":"messages[0].content[1]","code":"unsupported_parameter"}}"#.into(),
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"'messages[0].content[1]' cannot be sent to the provider serving this model: the Anthropic Messages API takes no audio input."}}"#.into(),
        )
    );
    assert_eq!(
        bodies(&GatewayError::BadUpstreamResponse("the chat completion has no choices".into())),
        (
            502,
            r#"{"error":{"message":"The model provider's response could not be translated: the chat completion has no choices.","type":"server_error","param":null,"code":"bad_upstream_response"}}"#.into(),
            r#"{"type":"error","error":{"type":"api_error","message":"The model provider's response could not be translated: the chat completion has no choices."}}"#.into(),
        )
    );
}
