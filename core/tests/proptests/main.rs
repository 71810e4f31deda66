//! Property tests of everything in core that reads bytes a client or an upstream sent (or
//! another process wrote): request bodies, response bodies and streams, header values, the
//! configuration, the picker's snapshot and the quota sync. Each property runs a fixed number
//! of generated inputs (`support::cases`) and prints how many ran; none may panic.
//!
//! Native only: proptest is a native dev-dependency, and the wasm32 run under Node covers the
//! unit tests.
#![cfg(not(target_family = "wasm"))]
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation,
    reason = "test code: a panic fails the test (the no-panic policy is in the workspace Cargo.toml)"
)]

mod config;
mod flow;
mod guardrails;
mod headers;
mod requests;
mod responses;
mod shapes;
mod support;
mod translate;
mod translation;
mod wire;
