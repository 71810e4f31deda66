//! The official Python SDKs (installed in `.venv` by `scripts/setup.sh`), driven by the scripts in
//! `tests/sdk/` against a gateway.

use std::process::Command;

use crate::gateway::Gateway;
use crate::paths;

/// Runs `tests/sdk/<script>` with the gateway's base URL and then `args`, off the async runtime.
/// Fails the test with both outputs if the script fails; returns what it printed.
pub async fn run(gateway: &Gateway, script: &str, args: &[&str]) -> String {
    let script = paths::repo_root().join("tests/sdk").join(script);
    let base = format!("http://{}", gateway.envoy.listener);
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(paths::python_bin())
            .arg(&script)
            .arg(base)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", script.display()))
    })
    .await
    .expect("the script's thread");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    stdout
}
