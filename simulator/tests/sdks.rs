//! The official OpenAI and Anthropic Python SDKs (in the repository's `.venv`, installed by
//! `scripts/setup.sh`; `SLUICE_PYTHON` names another interpreter) against provider-mode
//! simulators: the script `tests/sdk/provider_sdks.py` checks what they parse and raise.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{MODEL, start_with};

fn python() -> PathBuf {
    std::env::var_os("SLUICE_PYTHON").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python"),
        PathBuf::from,
    )
}

#[tokio::test]
async fn official_sdks_parse_what_provider_mode_sends() {
    let (openai_key, anthropic_key) = ("sk-sdk-openai", "sk-ant-sdk");
    let openai = start_with(&["--provider", "openai", "--api-key", openai_key]).await;
    let anthropic = start_with(&["--provider", "anthropic", "--api-key", anthropic_key]).await;

    let python = python();
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup.sh (or set SLUICE_PYTHON)",
        python.display()
    );
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/provider_sdks.py");
    let args = [
        format!("http://{openai}"),
        openai_key.to_owned(),
        format!("http://{anthropic}"),
        anthropic_key.to_owned(),
        MODEL.to_owned(),
    ];
    // The servers run on this test's runtime; the script blocks another thread.
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    for line in [
        "openai usage with cached tokens ok",
        "openai tool calls ok",
        "openai errors ok",
        "anthropic stream with thinking and tool use ok",
        "anthropic errors ok",
    ] {
        assert!(stdout.contains(line), "{stdout}");
    }
}
