//! Every rejection, through a real Envoy, has the exact body of the API the client called.

use serde_json::json;
use sluice_e2e::both_hosts;
use sluice_e2e::gateway::{Gateway, GatewayOptions, LLAMA, QWEN, client};
use sluice_e2e::host::Host;

/// Status, content type and body of a response.
async fn outcome(response: reqwest::Response) -> (u16, String, String) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, response.text().await.unwrap())
}

async fn post_raw(
    gateway: &Gateway,
    path: &str,
    content_type: &str,
    body: &str,
) -> (u16, String, String) {
    let response = client()
        .post(gateway.url(path))
        .header("content-type", content_type)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    outcome(response).await
}

const JSON: &str = "application/json";

#[both_hosts]
async fn bad_requests_in_openai_format(host: Host) {
    // Its own gateway: it counts the rejections.
    let gateway = Gateway::start(host, GatewayOptions::default()).await;
    let chat = "/v1/chat/completions";

    assert_eq!(
        post_raw(&gateway, chat, JSON, r#"{"model": "x", "messages": [}"#).await,
        (
            400,
            JSON.into(),
            r#"{"error":{"message":"The request body is not valid JSON: expected value.","type":"invalid_request_error","param":null,"code":"invalid_json"}}"#.into()
        )
    );
    assert_eq!(
        post_raw(&gateway, chat, JSON, &format!(r#"{{"model": "{LLAMA}"}}"#))
            .await
            .2,
        r#"{"error":{"message":"Missing required parameter: 'messages'.","type":"invalid_request_error","param":"messages","code":"missing_required_parameter"}}"#
    );
    assert_eq!(
        post_raw(
            &gateway,
            chat,
            JSON,
            &format!(r#"{{"model": "{LLAMA}", "messages": []}}"#)
        )
        .await
        .2,
        r#"{"error":{"message":"Invalid value for 'messages': must contain at least one message.","type":"invalid_request_error","param":"messages","code":"invalid_value"}}"#
    );
    assert_eq!(
        post_raw(&gateway, chat, JSON, r#"{"model": 4, "messages": []}"#)
            .await
            .2,
        r#"{"error":{"message":"Invalid value for 'model': invalid type: integer `4`, expected a string.","type":"invalid_request_error","param":"model","code":"invalid_value"}}"#
    );
    assert_eq!(
        post_raw(&gateway, chat, JSON, r#"{"model":"gpt-9","messages":[{"role":"user","content":"x"}]}"#).await,
        (
            404,
            JSON.into(),
            r#"{"error":{"message":"The model 'gpt-9' does not exist or you do not have access to it.","type":"invalid_request_error","param":"model","code":"model_not_found"}}"#.into()
        )
    );
    let too_long = format!(
        r#"{{"model":"{QWEN}","max_tokens":40000,"messages":[{{"role":"user","content":"hi"}}]}}"#
    );
    assert_eq!(
        post_raw(&gateway, chat, JSON, &too_long).await,
        (
            400,
            JSON.into(),
            r#"{"error":{"message":"This model's maximum context length is 32768 tokens, but the request needs about 40031 tokens (31 in the prompt, 40000 for the output). Shorten the prompt or lower the output limit.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#.into()
        )
    );
    assert_eq!(
        post_raw(&gateway, chat, "text/plain", "hello").await,
        (
            415,
            JSON.into(),
            r#"{"error":{"message":"Unsupported content type 'text/plain'; send 'application/json'.","type":"invalid_request_error","param":null,"code":"unsupported_content_type"}}"#.into()
        )
    );
    let get = client().get(gateway.url(chat)).send().await.unwrap();
    assert_eq!(get.headers()["allow"], "POST");
    assert_eq!(
        outcome(get).await,
        (
            405,
            JSON.into(),
            r#"{"error":{"message":"Method GET is not allowed here; use POST.","type":"invalid_request_error","param":null,"code":"method_not_allowed"}}"#.into()
        )
    );
    let rejected = gateway
        .envoy
        .stat_at_least(&host.stat("sluice_requests_rejected_total"), 8)
        .await;
    assert_eq!(rejected, 8);
}

#[both_hosts]
async fn bad_requests_in_anthropic_format(host: Host) {
    let gateway = Gateway::shared_default(host).await;
    let messages = "/v1/messages";
    assert_eq!(
        post_raw(gateway, messages, JSON, r#"{"model":"claude-x","max_tokens":5,"messages":[{"role":"user","content":"x"}],"model":"y"}"#).await,
        (
            400,
            JSON.into(),
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"The request body is not valid JSON: duplicate key `model`."}}"#.into()
        )
    );
    assert_eq!(
        post_raw(gateway, messages, JSON, r#"{"model":"mistral","max_tokens":5,"messages":[{"role":"user","content":"x"}]}"#).await,
        (
            404,
            JSON.into(),
            r#"{"type":"error","error":{"type":"not_found_error","message":"The model 'mistral' does not exist or you do not have access to it."}}"#.into()
        )
    );
    assert_eq!(
        post_raw(
            gateway,
            messages,
            JSON,
            r#"{"model":"claude-x","messages":[{"role":"system","content":"x"}]}"#
        )
        .await
        .2,
        r#"{"type":"error","error":{"type":"invalid_request_error","message":"Invalid value for 'messages[0].role': unknown role \"system\"; expected user or assistant."}}"#
    );
    assert_eq!(
        post_raw(
            gateway,
            messages,
            "application/x-www-form-urlencoded",
            "a=b"
        )
        .await
        .0,
        415
    );
}

#[both_hosts]
async fn oversized_bodies_get_413_whether_or_not_their_length_is_declared(host: Host) {
    let gateway = Gateway::start(
        host,
        GatewayOptions::default().with_filter_configuration(&format!(
            r#"{{"limits": {{"max_request_body_bytes": 2048}}, "models": {{"{LLAMA}": {{}}}}}}"#
        )),
    )
    .await;
    let body = json!({
        "model": LLAMA,
        "messages": [{"role": "user", "content": "x".repeat(4096)}]
    })
    .to_string();
    let expected = (
        413,
        JSON.to_owned(),
        r#"{"error":{"message":"The request body is larger than the gateway's limit of 2048 bytes.","type":"invalid_request_error","param":null,"code":"request_too_large"}}"#.to_owned(),
    );
    assert_eq!(
        post_raw(&gateway, "/v1/chat/completions", JSON, &body).await,
        expected
    );

    // Chunked, no content-length: the limit is enforced while the body streams in.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = body
        .as_bytes()
        .chunks(1000)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let response = client()
        .post(gateway.url("/v1/chat/completions"))
        .header("content-type", JSON)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(outcome(response).await, expected);

    // A body under the limit still goes through.
    let small =
        json!({"model": LLAMA, "messages": [{"role": "user", "content": "hi"}]}).to_string();
    assert_eq!(
        post_raw(&gateway, "/v1/chat/completions", JSON, &small)
            .await
            .0,
        200
    );
}

#[both_hosts]
async fn unknown_paths_can_be_rejected(host: Host) {
    let gateway = Gateway::start(
        host,
        GatewayOptions::default().with_filter_configuration(&format!(
            r#"{{"routing": {{"unhandled_paths": "reject"}}, "models": {{"{LLAMA}": {{}}}}}}"#
        )),
    )
    .await;
    let response = client().get(gateway.url("/v1/files")).send().await.unwrap();
    assert_eq!(
        outcome(response).await,
        (
            404,
            JSON.into(),
            r#"{"error":{"message":"Invalid URL (GET /v1/files).","type":"invalid_request_error","param":null,"code":"unknown_url"}}"#.into()
        )
    );
}

/// Header values may carry bytes that are not UTF-8 (HTTP allows obs-text, Envoy passes it
/// on). Reading such a header must not trap the filter's VM (the proxy-wasm SDK's string
/// getters panic on them), on the request or on the response.
#[both_hosts]
async fn header_values_that_are_not_utf8_pass(host: Host) {
    let gateway = Gateway::shared_default(host).await;
    let latin1 = reqwest::header::HeaderValue::from_bytes(b"caf\xe9 cr\xe8me").unwrap();
    let body = json!({"model": LLAMA, "messages": [{"role": "user", "content": "hi"}]});
    for _ in 0..3 {
        let response = client()
            .post(gateway.url("/v1/chat/completions"))
            .header("x-note", latin1.clone())
            .header("authorization", latin1.clone())
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }
}
