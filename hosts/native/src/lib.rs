//! Sluice as a native Envoy dynamic module: a `.so` that Envoy 1.40's
//! `envoy.filters.http.dynamic_modules` HTTP filter loads, beside the proxy-wasm filter in
//! `hosts/wasm/`. Both are adapters over `sluice_core::exchange`.
//!
//! Layout:
//! - `abi/`: the project's own bindings to Envoy's dynamic-module C ABI, and the only module
//!   allowed `unsafe`. It exports the hooks Envoy calls and implements `host_api` over the
//!   callbacks Envoy exports.
//! - `host_api/`: the seam between a host and filter logic (traits and plain types).
//! - `gateway/`: Sluice's gateway, the filter this module serves (filter name `sluice`, or any
//!   name but the preview's and the upstream role's), driving one `Exchange` per stream.
//! - `upstream/`: the same gateway configuration as an upstream HTTP filter of a chain's
//!   cluster (filter name `sluice.upstream`), driving one `Attempt` per upstream attempt.
//! - `state/`: the exchange's shared-state ports in process memory, shared by every worker.
//! - `preview/`: the minimal filter that proved the bindings in Envoy, served under the filter
//!   name `sluice_native_preview` for the bindings' own end-to-end tests
//!   (`tests/tests/native_module.rs`: injected panics, schedulers, a probe callout).
//! - `ticker.rs`: a timer thread for a configuration's periodic work.
//!
//! A panic here runs inside Envoy's process: unwinding out of a hook would abort the proxy, and
//! `panic = "abort"` would make every panic do so. So the crate must be built to unwind
//! (`cargo build --profile native-release -p sluice-native`; the workspace's `release` profile
//! aborts, for the Wasm build, and is refused below), every hook catches panics, and the same
//! no-panic lints as the Wasm filter keep panics out of the code in the first place.
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]
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

#[cfg(panic = "abort")]
compile_error!(
    "sluice-native must unwind on panic (a panic that aborts takes the whole Envoy down): build it \
     with `cargo build --profile native-release -p sluice-native`, not `--release`"
);

// The bindings: raw pointers, `extern "C"` declarations and exported hooks. Every `unsafe`
// block in it states why it is sound.
#[allow(unsafe_code)]
mod abi;
pub mod gateway;
pub mod host_api;
pub mod preview;
pub mod state;
mod ticker;
pub mod upstream;

pub use abi::version::{ABI_VERSION, PINNED_ENVOY};

/// The filter name that selects the preview filter instead of the gateway (a name that starts
/// with it does too: the tests tell instances apart by name).
pub const PREVIEW_FILTER_NAME: &str = "sluice_native_preview";

/// The filter this module serves: `abi` calls it for every filter configuration Envoy loads.
#[cfg(not(test))]
pub(crate) const NEW_FACTORY: host_api::NewFactory = serve;

/// The gateway, unless the configuration names the preview filter or the upstream role.
pub fn serve(
    init: &mut dyn host_api::ConfigInit,
    name: &str,
    config: &[u8],
) -> Result<Box<dyn host_api::HttpFilterFactory>, String> {
    if name.starts_with(PREVIEW_FILTER_NAME) {
        preview::new_factory(init, name, config)
    } else if name == upstream::UPSTREAM_FILTER_NAME {
        upstream::new_factory(init, name, config)
    } else {
        gateway::new_factory(init, name, config)
    }
}

/// Writes to Envoy's log (component `dynamic_modules`): the `Log` port of the gateway.
pub(crate) fn process_log(level: host_api::LogLevel, message: &str) {
    abi::process_log(level, message);
}
/// In tests, the filter name can also pick filters that misbehave on purpose (`abi/tests.rs`).
#[cfg(test)]
pub(crate) const NEW_FACTORY: host_api::NewFactory = abi::tests::new_factory;
