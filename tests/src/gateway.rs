//! A whole gateway for one test: simulator replicas per pool and Envoy with one host's build of
//! the filter, in a temporary directory that holds their configs and logs. The default layout is
//! the shipped configs': two Llama replicas (serving the `sql-lora` adapter too) and one Qwen
//! replica. Tests that only send requests and read answers share one default gateway per host
//! and test binary (`Gateway::shared_default`); tests that count, change configuration or kill
//! processes start their own.

use std::path::PathBuf;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::sync::OnceCell;

use crate::envoy::{Envoy, EnvoyOptions};
use crate::host::Host;
use crate::picker::Picker;
use crate::simulator::Simulator;

pub const LLAMA: &str = "meta-llama/Llama-3.1-8B-Instruct";
pub const QWEN: &str = "Qwen/Qwen2.5-7B-Instruct";

/// A loopback address nothing listens on (port 1 needs root to bind, and nothing here does).
const CLOSED_PORT: &str = "127.0.0.1:1";

/// An HTTP client for talking to local processes.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("HTTP client")
}

/// The replicas of one Envoy cluster.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub cluster: &'static str,
    /// The base model the pool serves (also in `args`).
    pub model: &'static str,
    pub replicas: usize,
    /// Simulator flags for this pool's replicas (the model it serves...).
    pub args: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct GatewayOptions {
    pub pools: Vec<PoolOptions>,
    /// Extra simulator flags, given to every replica.
    pub simulator_args: Vec<String>,
    pub filter_configuration: Option<String>,
    /// Envoy routes matched before the shipped ones (YAML list items, unindented).
    pub routes_first: Option<String>,
    /// Start the picker, scraping every replica, for the filter to pick replicas with.
    pub picker: bool,
    /// TOML appended to the picker's configuration (`{dir}` becomes the gateway's directory).
    pub picker_extra: String,
    /// Text replaced in the shipped Envoy config (see `EnvoyOptions::replacements`).
    pub envoy_replacements: Vec<(String, String)>,
    /// The OTLP receiver Envoy's OpenTelemetry access logger and tracer send to.
    pub otel_collector: Option<std::net::SocketAddr>,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        Self {
            pools: vec![
                PoolOptions {
                    cluster: "llama_8b",
                    model: LLAMA,
                    replicas: 2,
                    args: ["--model", LLAMA, "--lora", "sql-lora"]
                        .map(String::from)
                        .to_vec(),
                },
                PoolOptions {
                    cluster: "qwen_7b",
                    model: QWEN,
                    replicas: 1,
                    args: ["--model", QWEN].map(String::from).to_vec(),
                },
            ],
            simulator_args: Vec::new(),
            filter_configuration: None,
            routes_first: None,
            picker: false,
            picker_extra: String::new(),
            envoy_replacements: Vec::new(),
            otel_collector: None,
        }
    }
}

impl GatewayOptions {
    /// Sets the number of replicas of the pool behind `cluster`.
    pub fn with_replicas(mut self, cluster: &str, replicas: usize) -> Self {
        for pool in &mut self.pools {
            if pool.cluster == cluster {
                pool.replicas = replicas;
            }
        }
        self
    }

    pub fn with_simulator_args(mut self, args: &[&str]) -> Self {
        self.simulator_args
            .extend(args.iter().map(|a| a.to_string()));
        self
    }

    pub fn with_picker(mut self) -> Self {
        self.picker = true;
        self
    }

    /// Starts the picker with `toml` appended to its configuration (`[tenancy]`, say); `{dir}`
    /// in it becomes the gateway's directory.
    pub fn with_picker_config(mut self, toml: &str) -> Self {
        self.picker = true;
        self.picker_extra.push_str(toml);
        self
    }

    pub fn with_routes_first(mut self, yaml: &str) -> Self {
        self.routes_first = Some(yaml.to_owned());
        self
    }

    pub fn with_filter_configuration(mut self, json: &str) -> Self {
        self.filter_configuration = Some(json.to_owned());
        self
    }

    /// Sends Envoy's OpenTelemetry logs and spans to `addr` (an `otlp::OtlpReceiver`).
    pub fn with_otel_collector(mut self, addr: std::net::SocketAddr) -> Self {
        self.otel_collector = Some(addr);
        self
    }

    /// Replaces `from` (which must occur exactly once) by `to` in the shipped Envoy config.
    pub fn with_envoy_replacement(mut self, from: &str, to: &str) -> Self {
        self.envoy_replacements
            .push((from.to_owned(), to.to_owned()));
        self
    }
}

pub struct Gateway {
    // Field order is drop order: Envoy stops before the picker and the replicas, the directory
    // goes last.
    pub envoy: Envoy,
    pub picker: Option<Picker>,
    /// Replicas by cluster, in the order of `GatewayOptions::pools`.
    pub pools: Vec<(&'static str, Vec<Simulator>)>,
    pub dir: tempfile::TempDir,
}

impl Gateway {
    /// Starts the gateway of `options` with `host`'s build of the filter.
    pub async fn start(host: Host, options: GatewayOptions) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("sluice-e2e-{host}-"))
            .tempdir()
            .expect("temp dir");
        Self::start_in(host, dir, options).await
    }

    /// The gateway of `GatewayOptions::default()` with `host`'s build, started by the first
    /// test of this binary that asks for that host and shared by every test after it. Its
    /// processes run until the test binary exits (they die with the thread that started them,
    /// which lives as long as the binary). Tests that share it must not change it or assert on
    /// its counters (the other tests' requests count too). Its logs stay after the run in the
    /// temporary directory `sluice-e2e-shared-<host>-<test file>-<pid>-*`; the next run of that
    /// test file removes it.
    pub async fn shared_default(host: Host) -> &'static Gateway {
        static WASM: OnceCell<Gateway> = OnceCell::const_new();
        static NATIVE: OnceCell<Gateway> = OnceCell::const_new();
        let cell = match host {
            Host::Wasm => &WASM,
            Host::Native => &NATIVE,
        };
        cell.get_or_init(|| start_shared(host)).await
    }

    /// Which build of the filter this gateway runs.
    pub fn host(&self) -> Host {
        self.envoy.host
    }

    async fn start_in(host: Host, dir: tempfile::TempDir, options: GatewayOptions) -> Self {
        // Every replica of every pool starts at once; Envoy and the picker need their
        // addresses, so they come after.
        let starts = options.pools.iter().flat_map(|pool| {
            let args: Vec<String> = pool
                .args
                .iter()
                .chain(&options.simulator_args)
                .cloned()
                .collect();
            let dir = dir.path();
            (0..pool.replicas).map(move |i| {
                let name = format!("{}-{i}", pool.cluster);
                let args = args.clone();
                async move { Simulator::start(dir, &name, &args).await }
            })
        });
        let mut started = join_all(starts).await.into_iter();
        let pools: Vec<(&'static str, Vec<Simulator>)> = options
            .pools
            .iter()
            .map(|pool| (pool.cluster, started.by_ref().take(pool.replicas).collect()))
            .collect();
        let mut clusters: Vec<(String, Vec<std::net::SocketAddr>)> = pools
            .iter()
            .map(|(cluster, replicas)| {
                (
                    cluster.to_string(),
                    replicas.iter().map(|r| r.addr).collect(),
                )
            })
            .collect();
        let picker = if options.picker {
            let mut config = picker_config(&options.pools, &pools);
            let dir_name = dir.path().display().to_string();
            config.push_str(&options.picker_extra.replace("{dir}", &dir_name));
            Some(Picker::start(dir.path(), &config).await)
        } else {
            None
        };
        // Without a picker its cluster points at a closed port, so snapshot fetches fail fast
        // and the filter leaves the choice of replica to Envoy.
        let picker_addr = picker
            .as_ref()
            .map_or_else(|| CLOSED_PORT.parse().expect("address"), |p| p.addr);
        clusters.push(("sluice_picker".into(), vec![picker_addr]));
        let envoy_options = EnvoyOptions {
            clusters,
            filter_configuration: options.filter_configuration,
            routes_first: options.routes_first,
            replacements: options.envoy_replacements,
            access_json: None,
            otel_collector: options.otel_collector,
        };
        let envoy = Envoy::start(host, dir.path(), &envoy_options).await;
        Self {
            envoy,
            picker,
            pools,
            dir,
        }
    }

    /// POSTs `body` as JSON to `path` through Envoy.
    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        client()
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("POST through Envoy")
    }

    pub fn url(&self, path: &str) -> String {
        self.envoy.url(path)
    }

    /// The JSON access log's lines so far, each parsed (Envoy writes them within 50 ms:
    /// `--file-flush-interval-msec`; poll for the one a test expects).
    pub fn access_json(&self) -> Vec<serde_json::Value> {
        let text =
            std::fs::read_to_string(self.dir.path().join("envoy-access.json")).unwrap_or_default();
        text.lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| {
                    panic!("a JSON access log line that does not parse ({e}): {line}")
                })
            })
            .collect()
    }

    /// Sends short chat requests to the Llama pool until the filter has picked a replica for one
    /// (it has a fresh snapshot from the picker). Returns how many it sent.
    pub async fn wait_for_picking(&self) -> u64 {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        let mut sent = 0;
        let picks = self.host().stat("sluice_picks_total");
        while self.envoy.stat_now(&picks).await == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the filter never picked a replica"
            );
            let response = client()
                .post(self.url("/v1/chat/completions"))
                .json(&serde_json::json!({
                    "model": LLAMA,
                    "messages": [{"role": "user", "content": "warm up"}],
                    "max_tokens": 1,
                }))
                .send()
                .await
                .expect("POST through Envoy");
            assert_eq!(response.status(), 200, "warming up");
            sent += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        sent
    }

    /// Every replica, all pools.
    pub fn replicas(&self) -> impl Iterator<Item = &Simulator> {
        self.pools.iter().flat_map(|(_, replicas)| replicas)
    }

    /// The replicas behind `cluster`.
    pub fn pool(&self, cluster: &str) -> &[Simulator] {
        self.pools
            .iter()
            .find(|(name, _)| *name == cluster)
            .map(|(_, replicas)| replicas.as_slice())
            .unwrap_or_else(|| panic!("no pool {cluster}"))
    }

    /// Which cluster served a response, from its `x-simulator-id` header.
    pub fn cluster_of(&self, response: &reqwest::Response) -> &'static str {
        let id = response
            .headers()
            .get("x-simulator-id")
            .and_then(|v| v.to_str().ok())
            .expect("x-simulator-id header");
        self.pools
            .iter()
            .find(|(_, replicas)| replicas.iter().any(|r| r.addr.to_string() == id))
            .map(|(cluster, _)| *cluster)
            .unwrap_or_else(|| panic!("no replica {id}"))
    }
}

/// Starts the shared default gateway on a thread of its own that never ends: the processes die
/// with the thread that started them, and no test's runtime or thread lives as long as the
/// test binary.
async fn start_shared(host: Host) -> Gateway {
    // The test file's name: cargo names its binary `<file>-<hash>`.
    let binary = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let file = binary
        .rsplit_once('-')
        .map_or(binary.as_str(), |(file, _)| file);
    let prefix = format!("sluice-e2e-shared-{host}-{file}-");
    remove_stale_shared_dirs(&prefix);
    let dir = tempfile::Builder::new()
        .prefix(&format!("{prefix}{}-", std::process::id()))
        .tempdir()
        .expect("temp dir");
    let (sender, receiver) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(format!("shared-gateway-{host}"))
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime of the shared gateway");
            // Never dropped, so its directory stays too, with the logs, for after a failure.
            let gateway = runtime.block_on(Gateway::start_in(host, dir, GatewayOptions::default()));
            eprintln!(
                "shared {host} gateway: logs in {}",
                gateway.dir.path().display()
            );
            if sender.send(gateway).is_ok() {
                loop {
                    std::thread::park();
                }
            }
        })
        .expect("thread of the shared gateway");
    receiver
        .await
        .expect("the shared gateway did not start (its panic is above)")
}

/// Removes the directories of shared gateways whose test binary is no longer running (its pid
/// follows `prefix` in the name).
fn remove_stale_shared_dirs(prefix: &str) {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if !PathBuf::from(format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A picker configuration scraping every replica of `pools` every 50 ms, quick to mark a dead
/// replica unhealthy.
fn picker_config(options: &[PoolOptions], pools: &[(&'static str, Vec<Simulator>)]) -> String {
    let mut toml = String::from(
        "scrape_interval_ms = 50\nscrape_timeout_ms = 200\nunhealthy_after = 2\nhealthy_after = 1\n",
    );
    for (pool, (cluster, replicas)) in options.iter().zip(pools) {
        let endpoints: Vec<String> = replicas.iter().map(|r| format!("\"{}\"", r.addr)).collect();
        toml.push_str(&format!(
            "\n[[pool]]\nname = \"{cluster}\"\nmodel = \"{}\"\nendpoints = [{}]\n",
            pool.model,
            endpoints.join(", ")
        ));
    }
    toml
}
