//! Sluice's decisions, for every host: plain Rust over header values, bytes and strings, with no
//! host calls. The hosts (`hosts/wasm`, the proxy-wasm filter; `hosts/native`, the Envoy dynamic
//! module) read what Envoy gives them, drive one `exchange::Exchange` per request through its
//! phases and apply the effects it returns; shared state and host services reach it through
//! the ports in `exchange::ports`. Unit-tested natively and on wasm32 under Node.
//!
//! This code runs inside Envoy: a panic traps a worker's Wasm VM, or in the native module takes
//! down Envoy itself. So code outside tests may not unwrap, index unchecked or do arithmetic that
//! can overflow: the workspace's lints (Cargo.toml) make that a build error rather than a review
//! comment.
#![cfg_attr(
    test,
    allow(
        clippy::arithmetic_side_effects,
        clippy::string_slice,
        clippy::cast_possible_truncation,
        clippy::unreachable,
        reason = "test code: a panic fails the test (the no-panic policy is in the workspace Cargo.toml)"
    )
)]

pub mod api;
pub mod attempt;
pub mod canonical;
pub mod config;
pub mod error;
pub mod exchange;
pub mod flow;
pub mod guardrails;
pub mod json;
pub mod picking;
pub mod pipeline;
pub mod quota;
pub mod response_read;
pub mod response_text;
pub mod routing;
pub mod spend;
pub mod targets;
pub mod telemetry;
pub mod tenancy;
pub mod tokens;
pub mod translate;
pub mod usage;
