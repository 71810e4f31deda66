//! The picker service (`sluice-picker`) on a free port, helpers to read its snapshot and
//! metrics, and a scripted metrics server that plays a model server the simulator cannot (other
//! metric dialects, errors, hangs).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::paths;
use crate::process::Process;

/// The snapshot's binary media type and format number (see `sluice_wire`; this crate does
/// not link it, so the values are repeated here and checked against the picker's answers).
pub const SNAPSHOT_CONTENT_TYPE: &str = "application/x-sluice-snapshot";
pub const SNAPSHOT_FORMAT: u8 = 1;

pub struct Picker {
    pub process: Process,
    pub addr: SocketAddr,
}

impl Picker {
    /// Writes `config` (TOML) into `dir` and starts the picker from it on a free port.
    pub fn spawn(dir: &Path, config: &str) -> Process {
        let path = dir.join("picker.toml");
        std::fs::write(&path, config).expect("write picker config");
        let mut command = Command::new(paths::picker_bin());
        command
            .arg("--config")
            .arg(&path)
            .args(["--listen", "127.0.0.1:0"]);
        Process::spawn("picker", command, &dir.join("picker.log"))
    }

    pub async fn start(dir: &Path, config: &str) -> Self {
        let mut process = Self::spawn(dir, config);
        let addr = process.listening_addr().await;
        Self { process, addr }
    }

    /// Starts the picker from `config` (TOML with an `[admin]` section whose `token_env` is
    /// `SLUICE_ADMIN_TOKEN`) with the admin token `token` and its admin API on a free port.
    /// Returns it and the admin listener's address.
    pub async fn start_with_admin(dir: &Path, config: &str, token: &str) -> (Self, SocketAddr) {
        let path = dir.join("picker.toml");
        std::fs::write(&path, config).expect("write picker config");
        let mut command = Command::new(paths::picker_bin());
        command
            .arg("--config")
            .arg(&path)
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .env("SLUICE_ADMIN_TOKEN", token);
        let mut process = Process::spawn("picker", command, &dir.join("picker.log"));
        let addr = process.listening_addr().await;
        let line = process
            .wait_for_line("admin listening on ", Duration::from_secs(20))
            .await;
        let admin = line
            .parse()
            .unwrap_or_else(|_| panic!("picker: bad admin address {line:?}"));
        (Self { process, addr }, admin)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The snapshot as JSON (`/snapshot?format=json`); `None` before the first round.
    pub async fn snapshot(&self) -> Option<serde_json::Value> {
        let response = crate::gateway::client()
            .get(self.url("/snapshot?format=json"))
            .send()
            .await
            .expect("GET /snapshot?format=json");
        if response.status() == 503 {
            return None;
        }
        assert_eq!(response.status(), 200, "GET /snapshot?format=json");
        Some(response.json().await.expect("snapshot JSON"))
    }

    /// The encoded snapshot and its content type.
    pub async fn snapshot_bytes(&self) -> (String, Vec<u8>) {
        let response = crate::gateway::client()
            .get(self.url("/snapshot"))
            .send()
            .await
            .expect("GET /snapshot");
        assert_eq!(response.status(), 200, "GET /snapshot");
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response.bytes().await.expect("snapshot body").to_vec();
        (content_type, body)
    }

    /// Polls the snapshot until `ready` holds for it, and returns that snapshot. Fails with the
    /// last snapshot and the picker's log after `timeout`.
    pub async fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        ready: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let snapshot = self.snapshot().await;
            if let Some(snapshot) = &snapshot {
                if ready(snapshot) {
                    return snapshot.clone();
                }
            }
            assert!(
                self.process.is_running(),
                "picker exited:\n{}",
                self.process.log()
            );
            assert!(
                Instant::now() < deadline,
                "{what}: not within {timeout:?}; last snapshot: {snapshot:#?}\npicker log:\n{}",
                self.process.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls the picker's metrics until the sample of `series` (name and labels, as printed)
    /// satisfies `ready` (0 while absent), and returns the whole page. Fails with the page and
    /// the picker's log after `timeout`.
    pub async fn wait_for_metric(
        &mut self,
        series: &str,
        timeout: Duration,
        ready: impl Fn(f64) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let metrics = self.metrics().await;
            let value = metrics
                .lines()
                .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
                .and_then(|value| value.trim().parse::<f64>().ok())
                .unwrap_or(0.0);
            if ready(value) {
                return metrics;
            }
            assert!(
                self.process.is_running(),
                "picker exited:\n{}",
                self.process.log()
            );
            assert!(
                Instant::now() < deadline,
                "{series} is {value}, not as expected within {timeout:?}:\n{metrics}\npicker log:\n{}",
                self.process.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The picker's own Prometheus metrics, as text.
    pub async fn metrics(&self) -> String {
        crate::gateway::client()
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text")
    }
}

/// A pool for `config`: its name, model, static endpoints, and extra TOML lines (`dns = ...`).
pub struct PoolConfig<'a> {
    pub name: &'a str,
    pub model: &'a str,
    pub endpoints: Vec<SocketAddr>,
    pub extra: &'a str,
}

/// A picker configuration: `settings` (top-level TOML lines) and the pools.
pub fn config(settings: &str, pools: &[PoolConfig<'_>]) -> String {
    let mut text = format!("{settings}\n");
    for pool in pools {
        let endpoints: Vec<String> = pool
            .endpoints
            .iter()
            .map(|addr| format!("\"{addr}\""))
            .collect();
        text.push_str(&format!(
            "\n[[pool]]\nname = \"{}\"\nmodel = \"{}\"\n",
            pool.name, pool.model
        ));
        if !endpoints.is_empty() {
            text.push_str(&format!("endpoints = [{}]\n", endpoints.join(", ")));
        }
        if !pool.extra.is_empty() {
            text.push_str(pool.extra);
            text.push('\n');
        }
    }
    text
}

/// Pool `name` of a snapshot (JSON), if present.
pub fn pool<'a>(snapshot: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    snapshot["pools"]
        .as_array()?
        .iter()
        .find(|pool| pool["name"] == name)
}

/// Endpoint `addr` of pool `name` in a snapshot (JSON), if present.
pub fn endpoint<'a>(
    snapshot: &'a serde_json::Value,
    name: &str,
    addr: SocketAddr,
) -> Option<&'a serde_json::Value> {
    pool(snapshot, name)?["endpoints"]
        .as_array()?
        .iter()
        .find(|endpoint| endpoint["address"] == addr.to_string())
}

/// Whether endpoint `addr` of pool `name` is in the snapshot and healthy.
pub fn is_healthy(snapshot: &serde_json::Value, name: &str, addr: SocketAddr) -> bool {
    endpoint(snapshot, name, addr).is_some_and(|e| e["healthy"] == true)
}

/// How the scripted server answers.
#[derive(Debug, Clone)]
pub enum Script {
    /// This status and body.
    Respond(u16, String),
    /// Read the request and answer nothing for this long, then close.
    Hang(Duration),
}

/// A metrics server on a free loopback port that answers every request per its current script,
/// one connection at a time (`Connection: close`). Stops when dropped.
pub struct ScriptedServer {
    pub addr: SocketAddr,
    script: Arc<Mutex<Script>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ScriptedServer {
    pub fn start(script: Script) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind scripted server");
        let addr = listener.local_addr().expect("scripted server address");
        let script = Arc::new(Mutex::new(script));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let script = Arc::clone(&script);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        let current = script.lock().expect("script lock").clone();
                        answer(stream, &current, &stop);
                    }
                }
            })
        };
        Self {
            addr,
            script,
            stop,
            thread: Some(thread),
        }
    }

    pub fn set(&self, script: Script) {
        *self.script.lock().expect("script lock") = script;
    }
}

fn answer(mut stream: TcpStream, script: &Script, stop: &AtomicBool) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    match script {
        Script::Respond(status, body) => {
            let head = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: text/plain; version=0.0.4\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(body.as_bytes());
        }
        Script::Hang(duration) => {
            let until = Instant::now() + *duration;
            while Instant::now() < until && !stop.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
