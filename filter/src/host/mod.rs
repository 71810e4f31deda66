//! Everything that talks to Envoy. Phase callbacks stay thin: they move bytes between the host and
//! the plain modules of this crate and decide what Envoy does next.
//!
//! Host calls go through `proxy_wasm::hostcalls`, which return `Result`, rather than the SDK's
//! context helpers, several of which panic on an unexpected host status (a panic traps the VM).
//! `hostcalls` too panics on a status it does not expect (SDK 0.2.5: any but `Ok` for header
//! writes and removals, local replies and shared-data reads; any but `Ok`/`CasMismatch` for
//! shared-data writes): such a failure traps the VM and Envoy answers 503, which fails the
//! request closed. Every `Err` these calls do return is handled where it occurs; where going
//! on could skip a policy, the request fails closed in its API's format (`http.rs`). The response
//! guard's writes call the ABI through `ffi` instead, which hands every status back: a failed
//! redaction or block must be logged and counted, not only stop the VM
//! (`guardrails::fail_closed`).

mod clock;
mod ffi;
mod guardrails;
mod headers;
mod http;
mod log;
mod metrics;
mod pick;
mod picker_sync;
mod quota;
mod root;
mod shared;
mod telemetry;
mod tokens;

// The SDK's entry-point macro expands to an exported `#[no_mangle]` function, which the
// workspace's `unsafe_code` lint flags.
#[allow(unsafe_code)]
mod entry {
    proxy_wasm::main! {{
        super::log::install_panic_hook();
        proxy_wasm::set_root_context(|_context_id| Box::new(super::root::Root::default()));
    }}
}
