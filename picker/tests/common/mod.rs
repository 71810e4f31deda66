//! What the picker's integration tests share: a real `sluice-picker` started from a config
//! written to a temporary directory (its log in a file there), a real `redis-server` on a free
//! port, and a client for the admin API.

#![allow(dead_code, reason = "each test file uses its own part")]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The admin token the tests configure (through `ADMIN_TOKEN_ENV`).
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
pub const ADMIN_TOKEN_ENV: &str = "SLUICE_TEST_ADMIN_TOKEN";

/// A child process killed when dropped.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `redis-server` (Debian's, installed by `scripts/setup.sh`) on `port`, without persistence.
pub fn redis(port: u16) -> Guard {
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

/// A running picker: its main and admin addresses and its log.
pub struct Picker {
    pub process: Guard,
    pub addr: SocketAddr,
    pub admin: Option<SocketAddr>,
    pub log: PathBuf,
}

impl Picker {
    /// Starts the picker from `config` (written to `dir/<name>.toml`) on free ports, with the
    /// admin token in its environment; waits for its `listening on` lines.
    pub fn start(dir: &Path, name: &str, config: &str) -> Self {
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, config).unwrap();
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let has_admin = config.contains("[admin]");
        let mut command = Command::new(env!("CARGO_BIN_EXE_sluice-picker"));
        command
            .arg("--config")
            .arg(&path)
            .args(["--listen", "127.0.0.1:0"])
            .env(ADMIN_TOKEN_ENV, ADMIN_TOKEN)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        if has_admin {
            command.args(["--admin-listen", "127.0.0.1:0"]);
        }
        let mut process = Guard(command.spawn().unwrap());
        let addr = wait_for_line(&mut process, &log, "listening on ")
            .parse()
            .unwrap();
        let admin = has_admin.then(|| {
            wait_for_line(&mut process, &log, "admin listening on ")
                .parse()
                .unwrap()
        });
        Self {
            process,
            addr,
            admin,
            log,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!(
            "http://{}/admin/v1{path}",
            self.admin.expect("this picker has an [admin] section")
        )
    }

    /// An admin call with the token: status and body.
    pub async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let (status, _, text) = self
            .admin_raw(method, path, body, Some(ADMIN_TOKEN), &[])
            .await;
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: {e}: {text}"))
        };
        (status, value)
    }

    /// An admin call as given: status, headers and body text.
    pub async fn admin_raw(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = reqwest::Client::new().request(method, self.admin_url(path));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, headers, response.text().await.unwrap())
    }

    /// `GET /tenancy/snapshot` on the main listener: status, ETag and body.
    pub async fn snapshot(&self, if_none_match: Option<&str>) -> (u16, String, String) {
        let mut request = reqwest::Client::new().get(self.url("/tenancy/snapshot"));
        if let Some(tag) = if_none_match {
            request = request.header("if-none-match", tag);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let etag = response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (status, etag, response.text().await.unwrap())
    }

    /// `POST /quota/sync`: status and body.
    pub async fn sync(&self, body: &Value) -> (u16, String) {
        let response = reqwest::Client::new()
            .post(self.url("/quota/sync"))
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(self.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// Waits for a line starting with `prefix` in the log; the rest of it.
fn wait_for_line(process: &mut Guard, log: &Path, prefix: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(rest) = text.lines().find_map(|l| l.strip_prefix(prefix)) {
            return rest.trim().to_owned();
        }
        if let Ok(Some(status)) = process.0.try_wait() {
            panic!("the picker exited ({status}) before printing {prefix:?}:\n{text}");
        }
        assert!(
            Instant::now() < deadline,
            "the picker did not print {prefix:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The current Unix hour.
pub fn now_hour() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 3600
}

/// SHA-256 of `text`, 64 lowercase hex digits (with the system's `sha256sum`, so the test does
/// not share the picker's code).
pub fn sha256_hex(text: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}

/// The configuration of a picker with the embedded store at `path` and the admin API.
pub fn embedded_config(path: &Path, extra: &str) -> String {
    format!(
        "[tenancy]\nstore = \"embedded\"\npath = \"{}\"\n{extra}\n[admin]\ntoken_env = \"{ADMIN_TOKEN_ENV}\"\n",
        path.display()
    )
}

/// The configuration of a picker with the Redis store (and the quota sync) on `port`.
pub fn redis_config(port: u16, prefix: &str, extra: &str) -> String {
    format!(
        "[quota]\nredis_url = \"redis://127.0.0.1:{port}\"\nkey_prefix = \"{prefix}\"\n[tenancy]\nstore = \"redis\"\n{extra}\n[admin]\ntoken_env = \"{ADMIN_TOKEN_ENV}\"\n"
    )
}
