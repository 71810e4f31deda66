//! Harness for the end-to-end tests: starts real processes (the simulator, the picker, Envoy with
//! the built module of either host) on free loopback ports and stops every one of them when its
//! guard is dropped, which also happens when a test panics. Tests written with
//! `#[both_hosts]` run once per host (`host::Host`): the `.wasm` in V8 and the native `.so`.
//!
//! The binaries must be built first (`make test` does it: the simulator and picker in the dev
//! profile, both modules in their release profiles); paths can be overridden with
//! `SLUICE_SIMULATOR_BIN`, `SLUICE_PICKER_BIN`, `SLUICE_ADMIN_BIN`, `SLUICE_FILTER_WASM`,
//! `SLUICE_NATIVE_MODULE`, `ENVOY_BIN`, `SLUICE_REDIS_BIN` and `SLUICE_PROMETHEUS_BIN`.

pub use sluice_e2e_macros::both_hosts;

pub mod admin;
pub mod api_error;
pub mod dashboard;
pub mod envoy;
pub mod gateway;
pub mod host;
pub mod minute;
pub mod otlp;
pub mod paths;
pub mod picker;
pub mod process;
pub mod prometheus;
pub mod prometheus_server;
pub mod raw_http;
pub mod redis;
pub mod sdk;
pub mod simulator;
pub mod sse;
pub mod traffic_mix;
