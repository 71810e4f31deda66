//! The preview filter: the minimum that proves the bindings in a real Envoy, served under the
//! filter name `sluice_native_preview` (`crate::PREVIEW_FILTER_NAME`). Per request it:
//! - counts the request (`sluice_native_requests`, label `api`) and removes every client-sent
//!   `x-sluice-*` header (those are the gateway's to set);
//! - holds the headers while it reads the whole body, then sets `x-sluice-native: <body bytes>`
//!   on the request and clears the route cache so routes can match on it;
//! - records the size as filter state (`sluice.native.body_bytes`), dynamic metadata
//!   (`sluice.native`: `body_bytes`, and `route`, the matched route's name), in a histogram
//!   (`sluice_native_request_body_bytes`, label `api`) and in a gauge of the largest body seen
//!   by any worker (`sluice_native_largest_request_body_bytes`);
//! - counts the response body as it passes (filter state `sluice.native.response_bytes`).
//!
//! Its other settings exist only for the end-to-end tests (`tests/tests/native_module.rs`):
//! a path that panics, a header that picks the upstream host, a detour through the stream
//! scheduler, a text replaced in request bodies, a periodic callout from the configuration, and
//! the attempt probe (`probe.rs`, which replaces the whole filter: what an upstream filter sees
//! per attempt). None belongs in a real deployment.

mod config;
mod filter;
mod probe;

pub use filter::new_factory;
