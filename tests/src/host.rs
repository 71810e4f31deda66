//! The two ways Sluice runs inside Envoy, and what differs between them as a test sees it: the
//! shipped config each starts from, how Envoy loads the module, and the names Envoy gives the
//! filter's metrics and filter state. Everything else (routes, clusters, access log, the
//! filter's JSON configuration, its answers) is the same, so every end-to-end test is written
//! once and run against both (`#[sluice_e2e::both_hosts]`).

use std::fmt;
use std::path::PathBuf;

use crate::paths;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    /// `sluice_wasm.wasm` in V8, through the proxy-wasm HTTP filter (`envoy.wasm.yaml`).
    Wasm,
    /// `libsluice_native.so`, an Envoy dynamic module (`envoy.yaml`).
    Native,
}

impl Host {
    pub const ALL: [Host; 2] = [Host::Wasm, Host::Native];

    pub fn name(self) -> &'static str {
        match self {
            Host::Wasm => "wasm",
            Host::Native => "native",
        }
    }

    /// The shipped Envoy config that loads this host.
    pub fn envoy_yaml(self) -> PathBuf {
        paths::repo_root().join(match self {
            Host::Wasm => "envoy.wasm.yaml",
            Host::Native => "envoy.yaml",
        })
    }

    /// The built module this host loads (it must be built by now).
    pub fn module(self) -> PathBuf {
        match self {
            Host::Wasm => paths::filter_wasm(),
            Host::Native => paths::native_module(),
        }
    }

    /// Where the module this host loads is, built or not: for rendering a config ahead of the
    /// build (the benchmark's unit tests run before `make test` builds the modules).
    pub fn module_path(self) -> PathBuf {
        match self {
            Host::Wasm => paths::filter_wasm_path(),
            Host::Native => paths::native_module_path(),
        }
    }

    /// How the shipped config names the module (replaced by the built one's path for a test),
    /// or `None` when Envoy finds it through `ENVOY_DYNAMIC_MODULES_SEARCH_PATH`.
    pub(crate) fn shipped_module_line(self) -> Option<&'static str> {
        match self {
            Host::Wasm => Some("filename: target/wasm32-wasip1/wasm-release/sluice_wasm.wasm"),
            Host::Native => None,
        }
    }

    /// The namespace Envoy puts the filter's own metrics in.
    pub fn stats_namespace(self) -> &'static str {
        match self {
            Host::Wasm => "wasmcustom",
            Host::Native => "dynamicmodulescustom",
        }
    }

    /// The admin `/stats` name of the filter's metric `name`, labels included as Envoy writes
    /// them there (`<metric>.<label>.<value>...`): `wasmcustom.sluice_picks_total` or
    /// `dynamicmodulescustom.sluice_picks_total`. Labels are spelled the same on both hosts but
    /// for the remaining-budget gauges' tenant (`sluice_tenant` in the Wasm build's names, which
    /// its stats_tags rule turns into `tenant`; `tenant` natively): read those from Prometheus.
    pub fn stat(self, name: &str) -> String {
        format!("{}.{name}", self.stats_namespace())
    }

    /// The `/stats/prometheus` name of the filter's metric `name`. Envoy treats `wasmcustom` as
    /// a custom namespace (no `envoy_` prefix, the namespace dropped); the dynamic modules'
    /// namespace is an ordinary one (docs/envoy-notes.md, "metrics with labels").
    pub fn prometheus(self, name: &str) -> String {
        match self {
            Host::Wasm => name.to_owned(),
            Host::Native => format!("envoy_dynamicmodulescustom_{name}"),
        }
    }

    /// How far the filter's clock may lag behind the real time, in milliseconds: the Wasm build
    /// reads it once per root tick (at most 100 ms apart), the native module live
    /// (`sluice_core::exchange::Clock::lag_ms`). Quota waits include it.
    pub fn clock_lag_ms(self) -> u64 {
        match self {
            Host::Wasm => 100,
            Host::Native => 0,
        }
    }

    /// The filter-state key under which the filter leaves `name` (`sluice.tokens`...) for the
    /// access log: proxy-wasm prefixes every key the filter sets with `wasm.`.
    pub fn filter_state(self, name: &str) -> String {
        match self {
            Host::Wasm => format!("wasm.{name}"),
            Host::Native => name.to_owned(),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
