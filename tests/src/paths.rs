//! Where the artifacts under test live.

use std::path::PathBuf;

pub fn repo_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

fn artifact(env_var: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(env_var)
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(default));
    assert!(
        path.exists(),
        "{} not found (set {env_var} or run `make test`, which builds it)",
        path.display()
    );
    path
}

pub fn simulator_bin() -> PathBuf {
    artifact("SLUICE_SIMULATOR_BIN", "target/debug/sluice-simulator")
}

pub fn picker_bin() -> PathBuf {
    artifact("SLUICE_PICKER_BIN", "target/debug/sluice-picker")
}

pub fn filter_wasm() -> PathBuf {
    artifact(
        "SLUICE_FILTER_WASM",
        "target/wasm32-wasip1/wasm-release/sluice_wasm.wasm",
    )
}

/// The native Envoy module (`cargo build --profile native-release -p sluice-native`).
pub fn native_module() -> PathBuf {
    artifact(
        "SLUICE_NATIVE_MODULE",
        "target/native-release/libsluice_native.so",
    )
}

pub fn envoy_bin() -> PathBuf {
    artifact("ENVOY_BIN", ".venv/bin/envoy")
}

/// The project venv's Python, which has the official OpenAI and Anthropic SDKs.
pub fn python_bin() -> PathBuf {
    artifact("SLUICE_PYTHON", ".venv/bin/python")
}

/// `redis-server`: `SLUICE_REDIS_BIN`, else the first on `PATH`.
pub fn redis_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("SLUICE_REDIS_BIN") {
        return PathBuf::from(path);
    }
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("redis-server"))
                .find(|candidate| candidate.is_file())
        })
        .expect("redis-server not found (scripts/setup.sh installs it; or set SLUICE_REDIS_BIN)")
}
