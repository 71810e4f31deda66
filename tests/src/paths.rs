//! Where the artifacts under test live.

use std::path::PathBuf;

pub fn repo_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// Where an artifact is (`env_var`, else `default` under the repository), built or not.
fn artifact_path(env_var: &str, default: &str) -> PathBuf {
    std::env::var_os(env_var)
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(default))
}

/// An artifact that must be built by now.
fn artifact(env_var: &str, default: &str) -> PathBuf {
    built(artifact_path(env_var, default), env_var)
}

/// `path`, which must exist (`env_var` names where to point at another build).
fn built(path: PathBuf, env_var: &str) -> PathBuf {
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

/// The admin API's command-line client (`admin-cli/`).
pub fn admin_cli_bin() -> PathBuf {
    artifact("SLUICE_ADMIN_BIN", "target/debug/sluice-admin")
}

pub fn filter_wasm() -> PathBuf {
    built(filter_wasm_path(), "SLUICE_FILTER_WASM")
}

/// Where `filter_wasm` is, built or not (for rendering a config before the build).
pub fn filter_wasm_path() -> PathBuf {
    artifact_path(
        "SLUICE_FILTER_WASM",
        "target/wasm32-wasip1/wasm-release/sluice_wasm.wasm",
    )
}

/// The native Envoy module (`cargo build --profile native-release -p sluice-native`).
pub fn native_module() -> PathBuf {
    built(native_module_path(), "SLUICE_NATIVE_MODULE")
}

/// Where `native_module` is, built or not.
pub fn native_module_path() -> PathBuf {
    artifact_path(
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
