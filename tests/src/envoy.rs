//! A real Envoy running the shipped config of one host (`envoy.yaml`: the native module;
//! `envoy.wasm.yaml`: the `.wasm` in V8), rendered for the test: every port becomes a free one
//! (0, read back from the admin API) and the replica list and module are the test's. Each
//! substitution must find its anchor, so a change to the configs that these tests no longer
//! understand fails loudly instead of testing something else.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::host::Host;
use crate::paths;
use crate::process::Process;

/// What a test may change in the shipped configuration.
#[derive(Debug, Clone, Default)]
pub struct EnvoyOptions {
    /// The endpoints of each cluster named here replace the shipped ones.
    pub clusters: Vec<(String, Vec<SocketAddr>)>,
    /// Replaces the filter's JSON configuration.
    pub filter_configuration: Option<String>,
    /// Routes (YAML list items, unindented) matched before the shipped ones.
    pub routes_first: Option<String>,
    /// Text replaced in the shipped file (`from`, `to`), each `from` found exactly once: a
    /// shorter timeout or buffer limit for a test that has to reach it.
    pub replacements: Vec<(String, String)>,
    /// Where the JSON access log goes (`None`: `envoy-access.json` in the test's directory when
    /// started by `Envoy::spawn`, else `/dev/null`).
    pub access_json: Option<PathBuf>,
    /// The OTLP receiver the OpenTelemetry access logger and tracer send to (`None`: a closed
    /// port, so that no test depends on what listens on the machine's OTLP port).
    pub otel_collector: Option<SocketAddr>,
}

/// The JSON access log's path in the shipped configs.
pub const SHIPPED_ACCESS_JSON: &str = "path: /tmp/sluice-access.json";
/// A loopback address nothing listens on (port 1 needs root to bind, and nothing here does).
const CLOSED_PORT: &str = "127.0.0.1:1";

pub struct Envoy {
    /// Which build of the filter this Envoy runs.
    pub host: Host,
    pub process: Process,
    pub admin: SocketAddr,
    pub listener: SocketAddr,
}

impl Envoy {
    /// Starts Envoy with `host`'s config in `dir` and waits until it is ready to serve.
    pub async fn start(host: Host, dir: &Path, options: &EnvoyOptions) -> Self {
        let mut process = Self::spawn(host, dir, options);
        let admin_file = dir.join("envoy-admin-address");
        let admin = wait_for_admin_address(&mut process, &admin_file).await;
        let client = crate::gateway::client();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = client.get(format!("http://{admin}/ready")).send().await;
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
        let listeners: serde_json::Value = client
            .get(format!("http://{admin}/listeners?format=json"))
            .send()
            .await
            .expect("GET /listeners")
            .json()
            .await
            .expect("listeners JSON");
        let socket = &listeners["listener_statuses"][0]["local_address"]["socket_address"];
        let listener = format!(
            "{}:{}",
            socket["address"].as_str().expect("listener address"),
            socket["port_value"].as_u64().expect("listener port")
        )
        .parse()
        .expect("listener socket address");
        Self {
            host,
            process,
            admin,
            listener,
        }
    }

    /// Starts Envoy without waiting for it: for tests that expect it to refuse its config.
    pub fn spawn(host: Host, dir: &Path, options: &EnvoyOptions) -> Process {
        let shipped = host.envoy_yaml();
        let template = std::fs::read_to_string(&shipped)
            .unwrap_or_else(|e| panic!("read {}: {e}", shipped.display()));
        let module = host.module();
        let mut options = options.clone();
        options
            .access_json
            .get_or_insert_with(|| dir.join("envoy-access.json"));
        let config = render(host, &template, &module, &options);
        // Histograms reach the admin pages when Envoy flushes its stats, every 5 s by default;
        // the tests that read them poll.
        let config = replace_once(
            &config,
            "\nstatic_resources:\n",
            "\nstats_flush_interval: 0.1s\nstatic_resources:\n",
        );
        let config_path = dir.join("envoy.yaml");
        std::fs::write(&config_path, config).expect("write envoy config");
        let mut command = Command::new(paths::envoy_bin());
        if host == Host::Native {
            // The shipped config names the module (`dynamic_module_config: { name: sluice_native
            // }`); Envoy loads `lib<name>.so` from this directory.
            assert_eq!(
                module.file_name().and_then(|n| n.to_str()),
                Some("libsluice_native.so"),
                "Envoy looks the native module up by its name: {}",
                module.display()
            );
            command.env(
                "ENVOY_DYNAMIC_MODULES_SEARCH_PATH",
                module.parent().expect("the native module's directory"),
            );
        }
        command
            .arg("-c")
            .arg(&config_path)
            .arg("--admin-address-path")
            .arg(dir.join("envoy-admin-address"))
            // No shared-memory base id: any number of test Envoys can run side by side.
            .arg("--disable-hot-restart")
            .args(["--concurrency", "2", "--log-level", "warn"])
            // The access log reaches the log file within 50 ms (Envoy's default is 10 s): the
            // tests that read it poll for their lines.
            .args(["--file-flush-interval-msec", "50"])
            // The filter's own log lines (configuration, failures), from either host.
            .args(["--component-log-level", "wasm:info,dynamic_modules:info"]);
        Process::spawn("envoy", command, &dir.join("envoy.log"))
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.listener)
    }

    /// The value of one counter or gauge from the admin `/stats` as Envoy has it now, 0 when
    /// absent. The filter hands its counts to Envoy on each worker's root tick (at most 100 ms
    /// later), so a count made just before may not show yet: wait for the value a test
    /// expects with `stat_at_least` or `wait_for_stat`. To check that something was not
    /// counted, first wait for a count that the same requests made later (a worker hands over
    /// everything it counted at once, in order).
    pub async fn stat_now(&self, name: &str) -> u64 {
        let text = crate::gateway::client()
            .get(format!("http://{}/stats?filter=^{name}$", self.admin))
            .send()
            .await
            .expect("GET /stats")
            .text()
            .await
            .expect("stats text");
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name}: ")))
            .map(|value| value.trim().parse().expect("numeric stat"))
            .unwrap_or(0)
    }

    /// Polls `name` until its value satisfies `ready`, and returns that value. Fails with the
    /// last value after `STAT_TIMEOUT` (a timeout for waiting, not a claim about speed).
    pub async fn wait_for_stat(&self, name: &str, ready: impl Fn(u64) -> bool) -> u64 {
        let deadline = Instant::now() + STAT_TIMEOUT;
        loop {
            let value = self.stat_now(name).await;
            if ready(value) {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "{name} is still {value} after {STAT_TIMEOUT:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls `name` until it reaches `at_least`, and returns its value then (which a test can
    /// compare with the exact count it expects).
    pub async fn stat_at_least(&self, name: &str, at_least: u64) -> u64 {
        self.wait_for_stat(name, |value| value >= at_least).await
    }
}

/// How long `wait_for_stat` waits: far longer than the filter's tick, for a loaded machine.
const STAT_TIMEOUT: Duration = Duration::from_secs(20);

async fn wait_for_admin_address(process: &mut Process, file: &Path) -> SocketAddr {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(file) {
            if let Ok(addr) = text.trim().parse() {
                return addr;
            }
        }
        assert!(process.is_running(), "envoy exited:\n{}", process.log());
        assert!(
            Instant::now() < deadline,
            "envoy has no admin address:\n{}",
            process.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Renders `host`'s shipped config (`template`) for one test, loading `module`. The native
/// config names its module, which Envoy finds through `ENVOY_DYNAMIC_MODULES_SEARCH_PATH` (set
/// by whoever starts it); the Wasm config's `.wasm` path becomes `module`.
pub fn render(host: Host, template: &str, module: &Path, options: &EnvoyOptions) -> String {
    let mut config = replace_once(template, "port_value: 9901", "port_value: 0");
    config = replace_once(&config, "port_value: 10000", "port_value: 0");
    if let Some(shipped) = host.shipped_module_line() {
        config = replace_once(&config, shipped, &format!("filename: {}", module.display()));
    }
    for (cluster, replicas) in &options.clusters {
        config = replace_endpoints(&config, cluster, replicas);
    }
    if let Some(json) = &options.filter_configuration {
        config = replace_filter_configuration(&config, json);
    }
    let access_json = options
        .access_json
        .as_deref()
        .unwrap_or(Path::new("/dev/null"));
    config = replace_once(
        &config,
        SHIPPED_ACCESS_JSON,
        &format!("path: {}", access_json.display()),
    );
    let collector = options
        .otel_collector
        .unwrap_or_else(|| CLOSED_PORT.parse().expect("address"));
    config = replace_endpoints(&config, "otel_collector", &[collector]);
    for (from, to) in &options.replacements {
        config = replace_once(&config, from, to);
    }
    if let Some(routes) = &options.routes_first {
        let indented: String = routes
            .lines()
            .map(|line| format!("              {line}\n"))
            .collect();
        config = replace_once(
            &config,
            "              routes:\n",
            &format!("              routes:\n{indented}"),
        );
    }
    config
}

fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "the shipped Envoy config must contain {from:?} exactly once"
    );
    text.replacen(from, to, 1)
}

/// Swaps the endpoint lines of `cluster` for the test's replicas.
fn replace_endpoints(text: &str, cluster: &str, replicas: &[SocketAddr]) -> String {
    assert!(
        !replicas.is_empty(),
        "cluster {cluster} needs at least one replica"
    );
    let lines: Vec<&str> = text.lines().collect();
    let anchor = format!("cluster_name: {cluster}");
    let start = lines
        .iter()
        .position(|l| l.trim() == anchor)
        .unwrap_or_else(|| panic!("{anchor:?} in the shipped Envoy config"));
    let first = start
        + lines[start..]
            .iter()
            .position(|l| l.trim_start().starts_with("- endpoint:"))
            .unwrap_or_else(|| panic!("endpoints of {cluster} in the shipped Envoy config"));
    let count = lines[first..]
        .iter()
        .take_while(|l| l.trim_start().starts_with("- endpoint:"))
        .count();
    let indent = &lines[first][..lines[first].len() - lines[first].trim_start().len()];
    let mut out: Vec<String> = lines[..first].iter().map(|l| l.to_string()).collect();
    for addr in replicas {
        out.push(format!(
            "{indent}- endpoint: {{ address: {{ socket_address: {{ address: {}, port_value: {} }} }} }}",
            addr.ip(),
            addr.port()
        ));
    }
    out.extend(lines[first + count..].iter().map(|l| l.to_string()));
    out.join("\n") + "\n"
}

/// Swaps the filter's JSON configuration (the block under `value: &sluice_config |`).
fn replace_filter_configuration(text: &str, json: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    // `value: &sluice_config |`: the upstream filter's configuration is the same block (a YAML
    // alias), so it changes with it.
    let start = lines
        .iter()
        .position(|l| l.trim() == "value: &sluice_config |")
        .expect("filter configuration block in the shipped Envoy config");
    let indent_of = |l: &str| l.len() - l.trim_start().len();
    let block_indent = indent_of(lines[start]);
    let end = lines[start + 1..]
        .iter()
        .position(|l| !l.trim().is_empty() && indent_of(l) <= block_indent)
        .map_or(lines.len(), |i| start + 1 + i);
    let pad = " ".repeat(block_indent + 2);
    let mut out: Vec<String> = lines[..=start].iter().map(|l| l.to_string()).collect();
    out.extend(json.lines().map(|l| format!("{pad}{l}")));
    out.extend(lines[end..].iter().map(|l| l.to_string()));
    out.join("\n") + "\n"
}
