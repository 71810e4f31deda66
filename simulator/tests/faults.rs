//! Faults switched at run time over `/admin/faults`, and the counts of `/admin/stats`: each fault
//! kind as a client sees it, on real connections.

mod common;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use common::{
    MODEL, call, clear_fault, openai_chunks, post, post_with, send, set_fault, start, start_with,
    stats,
};
use http_body_util::BodyExt;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A guard against a hung test, not a timing assertion.
const DEADLINE: Duration = Duration::from_secs(20);

fn chat(stream: bool, max_tokens: u32) -> Value {
    json!({
        "model": MODEL,
        "messages": [{ "role": "user", "content": "Hello there!" }],
        "max_tokens": max_tokens,
        "stream": stream,
    })
}

fn raw_chat() -> String {
    let body = chat(false, 2).to_string();
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: sim\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

const RAW_GET_FAULTS: &str = "GET /admin/faults HTTP/1.1\r\nHost: sim\r\n\r\n";

/// Reads until the server closes the connection: what it sent, or the error that ended it.
async fn read_to_close(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut received = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut received))
        .await
        .expect("the server closes the connection")?;
    Ok(received)
}

/// Asserts the connection ended with a reset and not a single byte.
async fn assert_reset_without_a_byte(stream: &mut TcpStream) {
    match read_to_close(stream).await {
        Err(error) => assert_eq!(error.kind(), io::ErrorKind::ConnectionReset, "{error}"),
        Ok(bytes) => panic!(
            "expected a reset, got {:?}",
            String::from_utf8_lossy(&bytes)
        ),
    }
}

/// Reads one HTTP/1.1 response with a content-length from a kept-alive connection.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut chunk = [0_u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length: "))
                .expect("a content-length")
                .parse()
                .unwrap();
            if body.len() >= length {
                return text;
            }
        }
        let read = tokio::time::timeout(DEADLINE, stream.read(&mut chunk))
            .await
            .expect("a response")
            .unwrap();
        assert!(read > 0, "closed before a whole response");
        received.extend_from_slice(&chunk[..read]);
    }
}

async fn fault_now(address: SocketAddr) -> Value {
    call(address, Method::GET, "/admin/faults", "").await.json()["fault"].clone()
}

#[tokio::test]
async fn status_fault_answers_in_each_routes_format_with_retry_after() {
    let address = start().await;
    set_fault(address, json!({ "status": 503, "retry_after_s": 2 })).await;
    assert_eq!(
        fault_now(address).await,
        json!({ "status": 503, "retry_after_s": 2 })
    );

    let chat_reply = post(address, "/v1/chat/completions", chat(false, 2)).await;
    assert_eq!(chat_reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(chat_reply.header("retry-after"), "2");
    assert_eq!(chat_reply.header("retry-after-ms"), "", "vLLM sends none");
    assert_eq!(chat_reply.json()["error"]["code"], 503);

    let anthropic = post(
        address,
        "/v1/messages",
        json!({ "model": MODEL, "max_tokens": 2, "messages": [] }),
    )
    .await;
    assert_eq!(anthropic.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(anthropic.json()["type"], "error");
    assert_eq!(anthropic.json()["error"]["type"], "api_error");

    // Faults never touch health, metrics or the admin routes.
    for path in ["/health", "/metrics", "/admin/stats"] {
        assert_eq!(
            call(address, Method::GET, path, "").await.status,
            StatusCode::OK
        );
    }
    assert_eq!(
        stats(address).await,
        json!({ "received": 2, "answered": { "503": 2 }, "reset": 0, "cut": 0, "refused": 0 })
    );

    clear_fault(address).await;
    assert_eq!(fault_now(address).await, Value::Null);
    let served = post(address, "/v1/chat/completions", chat(false, 2)).await;
    assert_eq!(served.status, StatusCode::OK);
}

#[tokio::test]
async fn provider_status_faults_use_the_providers_format_and_headers() {
    let openai = start_with(&["--provider", "openai"]).await;
    set_fault(openai, json!({ "status": 429, "retry_after_s": 3 })).await;
    let reply = post(openai, "/v1/chat/completions", chat(false, 2)).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply.header("retry-after"), "3");
    assert_eq!(reply.header("retry-after-ms"), "3000");
    let error = &reply.json()["error"];
    assert_eq!(error["code"], "rate_limit_exceeded");
    assert_eq!(reply.header("x-ratelimit-limit-requests"), "10000");

    let anthropic = start_with(&["--provider", "anthropic"]).await;
    set_fault(anthropic, json!({ "status": 529 })).await;
    let reply = post_with(
        anthropic,
        "/v1/messages",
        json!({ "model": MODEL, "max_tokens": 2, "messages": [] }),
        &[("anthropic-version", "2023-06-01")],
    )
    .await;
    assert_eq!(reply.status.as_u16(), 529);
    assert_eq!(reply.json()["error"]["type"], "overloaded_error");
    assert_eq!(reply.header("retry-after"), "");
    assert!(
        !reply
            .header("anthropic-ratelimit-requests-limit")
            .is_empty()
    );
}

#[tokio::test]
async fn a_counted_fault_applies_to_the_next_requests_only() {
    let address = start().await;
    set_fault(address, json!({ "status": 500, "count": 2 })).await;
    let first = post(address, "/v1/chat/completions", chat(false, 2)).await;
    assert_eq!(first.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(fault_now(address).await["count"], 1);
    let second = post(address, "/v1/chat/completions", chat(false, 2)).await;
    assert_eq!(second.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(fault_now(address).await, Value::Null, "used up");
    let third = post(address, "/v1/chat/completions", chat(false, 2)).await;
    assert_eq!(third.status, StatusCode::OK);
    assert_eq!(
        stats(address).await["answered"],
        json!({ "500": 2, "200": 1 })
    );
}

#[tokio::test]
async fn reset_closes_the_connection_before_any_byte() {
    let address = start().await;
    set_fault(address, json!({ "reset": true, "count": 1 })).await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(raw_chat().as_bytes()).await.unwrap();
    assert_reset_without_a_byte(&mut stream).await;
    assert_eq!(
        stats(address).await,
        json!({ "received": 1, "answered": {}, "reset": 1, "cut": 0, "refused": 0 })
    );
    let next = post(address, "/v1/chat/completions", chat(false, 2)).await;
    assert_eq!(next.status, StatusCode::OK, "the fault applied once");
}

#[tokio::test]
async fn slow_first_byte_holds_the_whole_response() {
    let address = start().await;
    set_fault(
        address,
        json!({ "first_byte_delay_ms": 3_600_000, "count": 1 }),
    )
    .await;
    let held = tokio::spawn(async move {
        send(
            address,
            Method::POST,
            "/v1/chat/completions",
            &chat(true, 2).to_string(),
        )
        .await
    });
    let received = async {
        while stats(address).await["received"] != 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(DEADLINE, received)
        .await
        .expect("the request arrives");
    // Received but not answered: not even the status line has been sent.
    assert_eq!(stats(address).await["answered"], json!({}));
    assert!(!held.is_finished());
    held.abort();

    let next = post(address, "/v1/chat/completions", chat(false, 2)).await;
    assert_eq!(
        next.status,
        StatusCode::OK,
        "count 1: only the first is slow"
    );
}

#[tokio::test(start_paused = true)]
async fn slow_first_byte_answers_after_the_delay() {
    let address = start().await;
    set_fault(
        address,
        json!({ "first_byte_delay_ms": 5_000, "status": 503 }),
    )
    .await;
    let asked = tokio::time::Instant::now();
    let reply = post(address, "/v1/chat/completions", chat(false, 2)).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        asked.elapsed() >= Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
}

#[tokio::test]
async fn cut_fails_a_stream_after_its_first_tokens_and_a_json_body_midway() {
    let address = start().await;
    set_fault(address, json!({ "cut_after_tokens": 2 })).await;

    let mut response = send(
        address,
        Method::POST,
        "/v1/chat/completions",
        &chat(true, 6).to_string(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut received = Vec::new();
    let failure = loop {
        match response.body_mut().frame().await {
            Some(Ok(frame)) => received.extend_from_slice(frame.data_ref().unwrap()),
            Some(Err(error)) => break error,
            None => panic!("the stream ended cleanly"),
        }
    };
    let text = String::from_utf8(received).unwrap();
    assert!(text.contains("chat.completion.chunk"), "{text}");
    assert!(!text.contains("[DONE]"), "{text}");
    drop(failure);

    let response = send(
        address,
        Method::POST,
        "/v1/chat/completions",
        &chat(false, 6).to_string(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.into_body().collect().await.is_err(), "cut midway");

    // Cut after no token: the head still goes out first.
    set_fault(address, json!({ "cut_after_tokens": 0 })).await;
    let response = send(
        address,
        Method::POST,
        "/v1/chat/completions",
        &chat(true, 6).to_string(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.into_body().collect().await.is_err());

    let counts = stats(address).await;
    assert_eq!(counts["received"], 3, "each request was sent once");
    assert_eq!(counts["answered"], json!({ "200": 3 }));
    assert_eq!(counts["cut"], 3);

    clear_fault(address).await;
    let whole = post(address, "/v1/chat/completions", chat(true, 6)).await;
    assert_eq!(openai_chunks(&whole).len(), 7);
}

/// `PUT /admin/faults` with `{"dead": true}`, raw.
fn raw_put_dead() -> String {
    let body = r#"{"dead":true}"#;
    format!(
        "PUT /admin/faults HTTP/1.1\r\nHost: sim\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn dead_closes_open_connections_refuses_new_ones_and_spares_admin() {
    let address = start_with(&["--decode-ms-per-step", "50"]).await;
    let mut open_stream = send(
        address,
        Method::POST,
        "/v1/chat/completions",
        &chat(true, 2000).to_string(),
    )
    .await;
    open_stream.body_mut().frame().await.unwrap().unwrap();
    let mut idle = TcpStream::connect(address).await.unwrap();
    idle.write_all(RAW_GET_FAULTS.as_bytes()).await.unwrap();
    assert!(read_response(&mut idle).await.starts_with("HTTP/1.1 200"));

    // The host dies, asked on a connection of its own.
    let mut asker = TcpStream::connect(address).await.unwrap();
    asker.write_all(raw_put_dead().as_bytes()).await.unwrap();
    assert!(read_response(&mut asker).await.starts_with("HTTP/1.1 200"));

    // The open stream dies, and so does the idle kept-alive connection.
    let ended = async {
        loop {
            match open_stream.body_mut().frame().await {
                Some(Ok(_)) => continue,
                Some(Err(_)) => return,
                None => panic!("the stream ended cleanly"),
            }
        }
    };
    tokio::time::timeout(DEADLINE, ended)
        .await
        .expect("the stream is cut");
    assert_reset_without_a_byte(&mut idle).await;
    // A new connection is closed without an answer.
    let mut refused = TcpStream::connect(address).await.unwrap();
    refused.write_all(raw_chat().as_bytes()).await.unwrap();
    assert_reset_without_a_byte(&mut refused).await;
    // So is an API request on the connection that asked.
    asker.write_all(raw_chat().as_bytes()).await.unwrap();
    assert_reset_without_a_byte(&mut asker).await;
    // Health, metrics and admin still answer, on new connections.
    assert_eq!(
        call(address, Method::GET, "/health", "").await.status,
        StatusCode::OK
    );
    assert_eq!(
        call(address, Method::GET, "/metrics", "").await.status,
        StatusCode::OK
    );
    assert_eq!(fault_now(address).await, json!({ "dead": true }));
    let counts = stats(address).await;
    assert_eq!(counts["refused"], 1);
    assert_eq!(counts["reset"], 1);
    assert_eq!(
        counts["received"], 2,
        "the stream and the request after the PUT"
    );

    // A connection made while the host is dead, used once it is back, is served.
    let mut early = TcpStream::connect(address).await.unwrap();
    clear_fault(address).await;
    early.write_all(raw_chat().as_bytes()).await.unwrap();
    assert!(read_response(&mut early).await.starts_with("HTTP/1.1 200"));
    let served = post(address, "/v1/chat/completions", chat(false, 2)).await;
    assert_eq!(served.status, StatusCode::OK);
}

#[tokio::test]
async fn admin_rejects_incoherent_faults_and_stats_can_be_zeroed() {
    let address = start().await;
    for fault in [
        json!({ "status": 429, "reset": true }),
        json!({ "retry_after_s": 1 }),
        json!({ "status": 200 }),
        json!({ "stauts": 500 }),
        json!({}),
    ] {
        let reply = call(address, Method::PUT, "/admin/faults", &fault.to_string()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{fault}");
        assert!(
            reply.json()["error"]
                .as_str()
                .unwrap()
                .starts_with("invalid fault"),
            "{}",
            reply.body
        );
    }
    assert_eq!(fault_now(address).await, Value::Null);

    post(address, "/v1/chat/completions", chat(false, 2)).await;
    assert_eq!(stats(address).await["received"], 1);
    let zeroed = call(address, Method::DELETE, "/admin/stats", "")
        .await
        .json();
    assert_eq!(zeroed["received"], 0);
    assert_eq!(zeroed["answered"], json!({}));
}
