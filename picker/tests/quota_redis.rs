//! The quota sync against a real `redis-server` (Debian's, installed by `scripts/setup.sh`) on a
//! free port: two instances' reports add up, a dead Redis gets a quick 503, a restarted one is
//! used again without restarting the picker.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A child process killed when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn redis(port: u16) -> Guard {
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server (scripts/setup.sh installs it)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    Guard(child)
}

fn picker(dir: &std::path::Path, redis_port: u16) -> (Guard, SocketAddr) {
    let config = dir.join("picker.toml");
    std::fs::write(
        &config,
        format!(
            "[quota]\nredis_url = \"redis://127.0.0.1:{redis_port}\"\nkey_prefix = \"test:\"\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice-picker"))
        .arg("--config")
        .arg(&config)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("picker said {line:?}"))
        .parse()
        .unwrap();
    (Guard(child), addr)
}

fn entry(delta: i64) -> Value {
    json!({"key": "t|acme|0|0", "window": 500, "delta": delta, "prev_delta": 0,
           "sliding": true, "ttl_ms": 120000})
}

async fn sync(addr: SocketAddr, body: &Value) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/quota/sync"))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// A successful sync's totals and epoch.
async fn totals(addr: SocketAddr, body: &Value) -> (Value, u64) {
    let (status, text) = sync(addr, body).await;
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    (answer["totals"].clone(), answer["epoch"].as_u64().unwrap())
}

/// Polls `sync` until it answers `status`.
/// The picker's Prometheus page.
async fn metrics_page(addr: SocketAddr) -> String {
    reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn until_status(addr: SocketAddr, status: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (got, body) = sync(addr, &json!({"entries": [entry(0)]})).await;
        if got == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "wanted {status}, still {got}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn syncs_add_up_in_redis_and_survive_a_restart() {
    let dir = tempfile_dir();
    let port = free_port();
    let mut server = Some(redis(port));
    let (_picker, addr) = picker(&dir, port);

    // Instance A reports 3, instance B 4: B learns the total 7 (A's share is 7 - 4).
    let (first, epoch) = totals(addr, &json!({"entries": [entry(3)]})).await;
    assert_eq!(first, json!([[3, 0]]));
    assert!(epoch > 0);
    assert_eq!(
        totals(addr, &json!({"entries": [entry(4)]})).await,
        (json!([[7, 0]]), epoch)
    );
    // A settle gives tokens back: negative deltas.
    let (after_settle, _) = totals(addr, &json!({"entries": [entry(-2)]})).await;
    assert_eq!(after_settle, json!([[5, 0]]));
    // A late report to the previous bucket, and a read of it.
    let late = json!({"entries": [{"key": "t|acme|0|0", "window": 501, "delta": 1,
        "prev_delta": 2, "sliding": true, "ttl_ms": 120000}]});
    assert_eq!(totals(addr, &late).await.0, json!([[1, 7]]));

    // Requests the filter never sends are refused and not half applied.
    let (status, _) = sync(addr, &json!({"entries": [{"key": ""}]})).await;
    assert_eq!(status, 400);
    let too_many: Vec<Value> = (0..5000).map(|_| entry(1)).collect();
    let (status, body) = sync(addr, &json!({ "entries": too_many })).await;
    assert_eq!(status, 400, "{body}");

    // Nothing to report still checks that Redis is there: the answer means "your view is fresh".
    assert_eq!(
        totals(addr, &json!({"entries": []})).await,
        (json!([]), epoch)
    );

    // Redis goes away: 503 (the filter keeps its local view).
    drop(server.take());
    until_status(addr, 503).await;
    let (status, _) = sync(addr, &json!({"entries": []})).await;
    assert_eq!(status, 503);
    let metrics = metrics_page(addr).await;
    assert!(
        metrics.contains("sluice_picker_quota_redis_up 0"),
        "{metrics}"
    );
    assert!(metrics.contains("sluice_picker_quota_syncs_total{result=\"unavailable\"}"));

    // Back on the same port (empty: no persistence): the picker reconnects by itself, and the
    // new epoch tells the filters to report their counts again.
    server = Some(redis(port));
    until_status(addr, 200).await;
    let (fresh, new_epoch) = totals(addr, &json!({"entries": [entry(2)]})).await;
    assert_eq!(fresh, json!([[2, 0]]));
    assert_ne!(new_epoch, epoch);
    let metrics = metrics_page(addr).await;
    assert!(
        metrics.contains("sluice_picker_quota_redis_up 1"),
        "{metrics}"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-picker-quota-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
