//! What the HTTP tests share: a fast simulator on a loopback port in the test's process, a plain
//! HTTP client and SSE parsing.

// Each test crate uses part of this module.
#![allow(dead_code)]

use std::net::SocketAddr;

use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
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
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
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
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = Request::builder()
        .method(method)
        .uri(format!("http://{address}{path}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    client.request(request).await.unwrap()
}

pub async fn call(address: SocketAddr, method: Method, path: &str, body: &str) -> Reply {
    let response = send(address, method, path, body).await;
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
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        content_type,
        simulator_id,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

pub async fn post(address: SocketAddr, path: &str, body: Value) -> Reply {
    call(address, Method::POST, path, &body.to_string()).await
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
