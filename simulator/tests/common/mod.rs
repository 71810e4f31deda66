//! What the HTTP tests share: a fast simulator on a loopback port in the test's process, a plain
//! HTTP client and SSE parsing.

// Each test crate uses part of this module.
#![allow(dead_code)]

use std::net::SocketAddr;

use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::HeaderMap;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use sluice_simulator::{Cli, SIMULATOR_ID_HEADER, serve};
use tokio::net::TcpListener;

pub const MODEL: &str = "test/base-model";
pub const ADAPTER: &str = "test-adapter";

pub struct Reply {
    pub status: StatusCode,
    pub content_type: String,
    pub simulator_id: String,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }

    /// A header's value; empty if absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map_or("", |value| value.to_str().unwrap())
    }
}

/// Starts a fast simulator on a free port; it lives as long as the test's runtime.
pub async fn start() -> SocketAddr {
    start_with(&[]).await
}

pub async fn start_with(flags: &[&str]) -> SocketAddr {
    let base = ["sim", "--fast", "--model", MODEL, "--lora", ADAPTER];
    let config = Cli::parse_from(base.iter().chain(flags)).resolve();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(serve(config, listener, std::future::pending()));
    address
}

pub async fn send(
    address: SocketAddr,
    method: Method,
    path: &str,
    body: &str,
) -> Response<Incoming> {
    send_with(address, method, path, body, &[]).await
}

/// Sends a request with extra headers, on a connection of its own.
pub async fn send_with(
    address: SocketAddr,
    method: Method,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> Response<Incoming> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = Request::builder()
        .method(method)
        .uri(format!("http://{address}{path}"))
        .header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    client.request(request).await.unwrap()
}

pub async fn call(address: SocketAddr, method: Method, path: &str, body: &str) -> Reply {
    call_with(address, method, path, body, &[]).await
}

pub async fn call_with(
    address: SocketAddr,
    method: Method,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let response = send_with(address, method, path, body, headers).await;
    let header = |name| {
        response
            .headers()
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let content_type = header(hyper::header::CONTENT_TYPE);
    let simulator_id = header(SIMULATOR_ID_HEADER);
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        content_type,
        simulator_id,
        headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

pub async fn post(address: SocketAddr, path: &str, body: Value) -> Reply {
    call(address, Method::POST, path, &body.to_string()).await
}

pub async fn post_with(
    address: SocketAddr,
    path: &str,
    body: Value,
    headers: &[(&str, &str)],
) -> Reply {
    call_with(address, Method::POST, path, &body.to_string(), headers).await
}

/// Switches a fault on (`PUT /admin/faults`); panics if the server refuses it.
pub async fn set_fault(address: SocketAddr, fault: Value) {
    let reply = call(address, Method::PUT, "/admin/faults", &fault.to_string()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

pub async fn clear_fault(address: SocketAddr) {
    let reply = call(address, Method::DELETE, "/admin/faults", "").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

/// `GET /admin/stats`.
pub async fn stats(address: SocketAddr) -> Value {
    call(address, Method::GET, "/admin/stats", "").await.json()
}

/// An SSE body as (event name, data) pairs; the name is empty for unnamed events.
pub fn sse_events(body: &str) -> Vec<(String, String)> {
    assert!(
        body.ends_with("\n\n"),
        "events end with a blank line: {body:?}"
    );
    body.split_terminator("\n\n")
        .map(|event| {
            let mut name = String::new();
            let mut data = String::new();
            for line in event.lines() {
                if let Some(value) = line.strip_prefix("event: ") {
                    name = value.to_owned();
                } else if let Some(value) = line.strip_prefix("data: ") {
                    data = value.to_owned();
                } else {
                    panic!("unexpected SSE line {line:?}");
                }
            }
            (name, data)
        })
        .collect()
}

/// The JSON chunks of an OpenAI stream, checking that it ends with exactly one `[DONE]`.
pub fn openai_chunks(reply: &Reply) -> Vec<Value> {
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.content_type, "text/event-stream");
    let events = sse_events(&reply.body);
    let (last, chunks) = events.split_last().unwrap();
    assert_eq!(last, &(String::new(), "[DONE]".to_owned()));
    chunks
        .iter()
        .map(|(name, data)| {
            assert!(name.is_empty());
            serde_json::from_str(data).unwrap()
        })
        .collect()
}
