//! Sluice as a proxy-wasm filter (the `.wasm` Envoy runs in V8): everything that talks to Envoy
//! through the proxy-wasm ABI. A thin adapter: each phase callback (`http.rs`) reads what Envoy
//! gives, calls the request's `sluice_core::exchange::Exchange` and applies the effects it
//! returns (`effects.rs`); the exchange reaches shared data, the snapshot, the clock, metrics and
//! the log through the ports in `ports.rs`. The root context (`root.rs`) owns the configuration
//! and the per-worker periodic work (the picker fetch, the tenancy fetch, the quota sync).
//! Loaded as an upstream HTTP filter with root id `sluice.upstream`, the same module drives one
//! `sluice_core::attempt::Attempt` per upstream attempt instead (`attempt.rs`). Built only for
//! `wasm32-wasip1`; natively the crate is empty.
//!
//! Host calls go through `proxy_wasm::hostcalls`, which return `Result`, rather than the SDK's
//! context helpers, several of which panic on an unexpected host status (a panic traps the VM).
//! `hostcalls` too panics on a status it does not expect (SDK 0.2.5: any but `Ok` for header
//! writes and removals, local replies and shared-data reads; any but `Ok`/`CasMismatch` for
//! shared-data writes): such a failure traps the VM and Envoy answers 503, which fails the
//! request closed. Every `Err` these calls do return is reported to the exchange; where going
//! on could skip a policy, the request fails closed in its API's format. The response guard's
//! writes call the ABI through `ffi` instead, which hands every status back: a failed redaction
//! or block must be logged and counted, not only stop the VM (`guardrails::fail_closed`).
//!
//! A panic traps the worker's Wasm VM and fails its requests, so code here may not unwrap, index
//! unchecked or do arithmetic that can overflow, as in `sluice_core`.
#![cfg(target_os = "wasi")]
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

mod attempt;
mod clock;
mod effects;
mod ffi;
mod flow;
mod flow_metrics;
mod guardrails;
mod headers;
mod http;
mod log;
mod metrics;
mod picker_sync;
mod ports;
mod quota;
mod root;
mod shared;
mod target_metrics;
mod telemetry;
mod tenancy_sync;
mod views;

// The SDK's entry-point macro expands to an exported `#[no_mangle]` function, which the
// workspace's `unsafe_code` lint flags.
#[allow(unsafe_code)]
mod entry {
    proxy_wasm::main! {{
        super::log::install_panic_hook();
        proxy_wasm::set_root_context(|_context_id| Box::new(super::root::Root::default()));
    }}
}
