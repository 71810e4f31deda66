//! The official OpenAI and Anthropic Python SDKs work through the gateway with nothing changed
//! but their base URL: JSON and streaming, listing models, and errors surfacing as the SDKs'
//! own exception types.

use sluice_e2e::both_hosts;
use sluice_e2e::gateway::{Gateway, GatewayOptions};
use sluice_e2e::host::Host;
use sluice_e2e::sdk;

#[both_hosts]
async fn openai_and_anthropic_sdks_complete_requests(host: Host) {
    let gateway = Gateway::start(host, GatewayOptions::default()).await;
    let stdout = sdk::run(&gateway, "check_sdks.py", &[]).await;
    for check in [
        "openai chat ok Qwen/Qwen2.5-7B-Instruct",
        "openai chat stream ok",
        "openai models ok",
        "openai error ok",
        "anthropic message ok meta-llama/Llama-3.1-8B-Instruct",
        "anthropic stream ok",
        "anthropic error ok",
    ] {
        assert!(stdout.contains(check), "missing {check:?} in:\n{stdout}");
    }
}
