//! Everything that talks to Envoy. Phase callbacks stay thin: they move bytes between the host and
//! the plain modules of this crate and decide what Envoy does next.
//!
//! Host calls go through `proxy_wasm::hostcalls`, which return `Result`, rather than the SDK's
//! context helpers, several of which panic on an unexpected host status (a panic traps the VM).

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
