//! Sluice's Envoy filter.
//!
//! Layout: `host/` is the only code that talks to Envoy (proxy-wasm phase callbacks and host
//! calls) and is compiled only for the `.wasm`; every other module is plain Rust over bytes and
//! strings, unit-tested natively and on wasm32 under Node.
//!
//! A panic traps the worker's Wasm VM and fails its requests, so filter code outside tests may not
//! unwrap, index unchecked or do arithmetic that can overflow: the lints below make that a build
//! error rather than a review comment.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented,
        clippy::indexing_slicing,
        clippy::string_slice,
        clippy::arithmetic_side_effects,
        clippy::cast_possible_truncation,
        clippy::exit,
    )
)]

pub mod api;
pub mod canonical;
pub mod config;
pub mod error;
pub mod guardrails;
pub mod json;
pub mod picking;
pub mod pipeline;
pub mod quota;
pub mod response_text;
pub mod routing;
pub mod telemetry;
pub mod tokens;
pub mod usage;

#[cfg(target_os = "wasi")]
mod host;
