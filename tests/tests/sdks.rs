//! The official OpenAI and Anthropic Python SDKs work through the gateway with nothing changed
//! but their base URL: JSON and streaming, listing models, and errors surfacing as the SDKs'
//! own exception types.

use std::process::Command;

use sluice_e2e::gateway::{Gateway, GatewayOptions};
use sluice_e2e::paths;

#[tokio::test]
async fn openai_and_anthropic_sdks_complete_requests() {
    let gateway = Gateway::start(GatewayOptions::default()).await;
    let script = paths::repo_root().join("tests/sdk/check_sdks.py");
    let base = format!("http://{}", gateway.envoy.listener);
    let output = tokio::task::spawn_blocking(move || {
        Command::new(paths::python_bin())
            .arg(script)
            .arg(base)
            .output()
            .expect("run python")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    for check in [
        "openai chat ok Qwen/Qwen2.5-7B-Instruct",
        "openai chat stream ok",
        "openai models ok",
        "openai error ok",
        "anthropic message ok meta-llama/Llama-3.1-8B-Instruct",
        "anthropic stream ok",
        "anthropic error ok",
    ] {
        assert!(
            stdout.contains(check),
            "missing {check:?} in:\n{stdout}\n{stderr}"
        );
    }
}
