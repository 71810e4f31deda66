//! The picker starts from its configuration file and answers its health check.

use std::time::Duration;

use sluice_e2e::gateway::client;
use sluice_e2e::picker::Picker;

#[tokio::test]
async fn picker_serves_healthz() {
    let dir = tempfile::tempdir().unwrap();
    let picker = Picker::start(
        dir.path(),
        "[[pool]]\nmodel = \"llama\"\nendpoints = [\"127.0.0.1:8001\", \"127.0.0.1:8002\"]\n",
    )
    .await;
    let response = client()
        .get(format!("http://{}/healthz", picker.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "ok\n");
}

#[tokio::test]
async fn picker_refuses_a_bad_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let mut picker = Picker::spawn(
        dir.path(),
        "[[pool]]\nmodel = \"llama\"\nendpoints = [\"not-an-address\"]\n",
    );
    let status = picker.wait_exit(Duration::from_secs(20)).await;
    assert!(matches!(status, Some(s) if !s.success()), "{status:?}");
    assert!(
        picker.log().contains("pool[0].endpoints[0]"),
        "{}",
        picker.log()
    );
}
