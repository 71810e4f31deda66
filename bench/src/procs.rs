//! The processes one `make bench` starts: the mock upstream, plain Envoy, Envoy + Sluice (the
//! native module and the Wasm build) with its picker, LiteLLM, and the project's own services
//! (simulator replicas, picker) from their release builds. Each is a `sluice_e2e` process guard,
//! which kills it when dropped (on success, on an error and on Ctrl-C alike); the pid is kept for
//! reading its memory from /proc.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sluice_e2e::host::Host;
use sluice_e2e::process::Process;

/// Workers of each Envoy under test, as `make run` starts it.
pub const ENVOY_WORKERS: u32 = 2;

/// The master key LiteLLM is configured with. Every setup gets the same `authorization` header,
/// so all four see identical requests.
pub const API_KEY: &str = "sk-sluice-bench-0f3c9a7e5d2b4186a9e07c1d";

/// The LiteLLM release measured; `bench/setup.sh` installs this one.
pub const LITELLM_VERSION: &str = "1.106.2";

pub struct Service {
    pub process: Process,
    pub pid: u32,
    /// Where clients send requests.
    pub addr: SocketAddr,
    /// Envoy's admin address.
    pub admin: Option<SocketAddr>,
}

impl Service {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// VmRSS and VmHWM (peak) in KiB.
    pub fn memory_kib(&self) -> (Option<u64>, Option<u64>) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid));
        let field = |name: &str| {
            status.as_ref().ok().and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|v| v.parse().ok())
            })
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// CPU time used so far (user + system), in clock ticks.
    pub fn cpu_ticks(&self) -> Option<u64> {
        cpu_ticks(&std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).ok()?)
    }

    /// One counter from Envoy's admin `/stats` (`None` if absent or not an Envoy).
    pub async fn envoy_stat(&self, name: &str) -> Option<u64> {
        let admin = self.admin?;
        let text = sluice_e2e::gateway::client()
            .get(format!("http://{admin}/stats?filter=^{name}$"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .and_then(|v| v.trim().parse().ok())
    }

    pub fn check_running(&mut self, name: &str) -> Result<(), String> {
        if self.process.is_running() {
            Ok(())
        } else {
            Err(format!("{name} exited:\n{}", tail(&self.process.log(), 30)))
        }
    }
}

/// utime + stime from a `/proc/<pid>/stat` line. The command name is in parentheses and may hold
/// spaces, so fields are counted after its closing one: state is field 3, utime 14, stime 15.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The last `lines` lines of a log, without Envoy's access-log lines.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().filter(|l| !l.contains(" upstream=")).collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Starts `program args` with its output in `dir/<name>.log`, learning its pid through a shell
/// that `exec`s it (so the pid is the program's own).
pub fn spawn(
    name: &str,
    dir: &Path,
    program: &Path,
    args: &[String],
    env: &[(&str, &str)],
) -> Result<(Process, u32), String> {
    let pid_file = dir.join(format!("{name}.pid"));
    let _ = std::fs::remove_file(&pid_file);
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(r#"echo $$ > "$0" && exec "$@""#)
        .arg(&pid_file)
        .arg(program)
        .args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    let mut process = Process::spawn(name, command, &dir.join(format!("{name}.log")));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            return Ok((process, pid));
        }
        if !process.is_running() || Instant::now() > deadline {
            return Err(format!("{name} did not start:\n{}", process.log()));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Polls `url` until it answers 200, the process dies or `timeout` passes.
pub async fn wait_ok(
    process: &mut Process,
    name: &str,
    url: &str,
    timeout: Duration,
) -> Result<(), String> {
    let client = sluice_e2e::gateway::client();
    let deadline = Instant::now() + timeout;
    loop {
        let response = client.get(url).timeout(Duration::from_secs(2)).send().await;
        if matches!(&response, Ok(r) if r.status() == 200) {
            return Ok(());
        }
        if !process.is_running() {
            return Err(format!("{name} exited:\n{}", tail(&process.log(), 30)));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{name} not ready at {url} after {timeout:?}:\n{}",
                tail(&process.log(), 30)
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts an Envoy from `config` (admin and listener on port 0) and waits until it serves. A
/// config that loads the native module names it (`dynamic_module_config: { name: sluice_native
/// }`, as the shipped `envoy.yaml` does), and Envoy finds `libsluice_native.so` in the directory
/// of `ENVOY_DYNAMIC_MODULES_SEARCH_PATH`, set here for every Envoy (the others never read it).
pub async fn start_envoy(
    name: &str,
    dir: &Path,
    config: &str,
    workers: u32,
) -> Result<Service, String> {
    let config_path = dir.join(format!("{name}.yaml"));
    std::fs::write(&config_path, config).map_err(|e| format!("write {name} config: {e}"))?;
    let admin_file = dir.join(format!("{name}-admin-address"));
    let _ = std::fs::remove_file(&admin_file);
    let args: Vec<String> = [
        "-c",
        &config_path.display().to_string(),
        "--admin-address-path",
        &admin_file.display().to_string(),
        // No shared-memory base id, so several Envoys run side by side.
        "--disable-hot-restart",
        "--concurrency",
        &workers.to_string(),
        // The log levels `make run` uses.
        "--log-level",
        "warn",
        "--component-log-level",
        "wasm:info,dynamic_modules:info",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let native = Host::Native.module();
    let search_path = native
        .parent()
        .map(|dir| dir.display().to_string())
        .unwrap_or_default();
    let env = [("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", search_path.as_str())];
    let (mut process, pid) = spawn(name, dir, &sluice_e2e::paths::envoy_bin(), &args, &env)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let admin: SocketAddr = loop {
        if let Some(addr) = std::fs::read_to_string(&admin_file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            break addr;
        }
        if !process.is_running() || Instant::now() > deadline {
            return Err(format!(
                "{name} did not start:\n{}",
                tail(&process.log(), 30)
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    wait_ok(
        &mut process,
        name,
        &format!("http://{admin}/ready"),
        Duration::from_secs(30),
    )
    .await?;
    let listeners: serde_json::Value = sluice_e2e::gateway::client()
        .get(format!("http://{admin}/listeners?format=json"))
        .send()
        .await
        .map_err(|e| format!("{name} /listeners: {e}"))?
        .json()
        .await
        .map_err(|e| format!("{name} /listeners JSON: {e}"))?;
    let socket = &listeners["listener_statuses"][0]["local_address"]["socket_address"];
    let addr = format!(
        "{}:{}",
        socket["address"].as_str().unwrap_or("127.0.0.1"),
        socket["port_value"].as_u64().unwrap_or(0)
    )
    .parse()
    .map_err(|e| format!("{name} listener address: {e}"))?;
    Ok(Service {
        process,
        pid,
        addr,
        admin: Some(admin),
    })
}

/// The mock upstream's Envoy config (`bench/upstream.yaml`).
pub fn upstream_config() -> Result<String, String> {
    let path = bench_dir().join("upstream.yaml");
    std::fs::read_to_string(&path).map_err(|e| format!("read {}: {e}", path.display()))
}

/// `host`'s shipped config (`envoy.yaml` for the native module, `envoy.wasm.yaml` for the
/// Wasm build) with `filter_configuration`, the endpoints of every model pool (the clusters the
/// configuration's `models` name) replaced by `upstream`, and the picker cluster pointed at
/// `picker` when there is one.
pub fn sluice_config(
    host: Host,
    upstream: SocketAddr,
    picker: Option<SocketAddr>,
    filter_configuration: &str,
) -> Result<String, String> {
    let mut clusters: Vec<(String, Vec<SocketAddr>)> = model_pools(filter_configuration)?
        .into_iter()
        .map(|(pool, _model)| (pool, vec![upstream]))
        .collect();
    if let Some(picker) = picker {
        clusters.push((PICKER_CLUSTER.to_owned(), vec![picker]));
    }
    render_envoy(host, clusters, filter_configuration)
}

/// `host`'s shipped config loading the built module (`Host::module`) with
/// `filter_configuration`, and the endpoints of the named `clusters` replaced. Clusters the file
/// does not have are skipped; at least one must be there.
pub fn render_envoy(
    host: Host,
    clusters: Vec<(String, Vec<SocketAddr>)>,
    filter_configuration: &str,
) -> Result<String, String> {
    let path = host.envoy_yaml();
    let template =
        std::fs::read_to_string(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let names: Vec<String> = clusters.iter().map(|(name, _)| name.clone()).collect();
    let clusters: Vec<(String, Vec<SocketAddr>)> = clusters
        .into_iter()
        .filter(|(name, _)| {
            template
                .lines()
                .any(|l| l.trim().strip_prefix("cluster_name: ") == Some(name.as_str()))
        })
        .collect();
    if clusters.iter().all(|(name, _)| name == PICKER_CLUSTER) {
        return Err(format!(
            "none of the clusters {names:?} (the model pools of the filter configuration) is in {}",
            path.display()
        ));
    }
    // `..Default::default()` keeps this building when the harness gains options.
    #[allow(clippy::needless_update)]
    let options = sluice_e2e::envoy::EnvoyOptions {
        clusters,
        filter_configuration: Some(filter_configuration.to_owned()),
        ..Default::default()
    };
    Ok(sluice_e2e::envoy::render(
        host,
        &template,
        &host.module_path(),
        &options,
    ))
}

/// The pools (Envoy clusters) the filter configuration routes models to, each with the model it
/// serves: each model's `pool`, or its name when it has none.
pub fn model_pools(filter_configuration: &str) -> Result<Vec<(String, String)>, String> {
    let config: serde_json::Value = serde_json::from_str(filter_configuration)
        .map_err(|e| format!("bench/src/sluice_config.rs: {e}"))?;
    let mut pools: Vec<(String, String)> = config["models"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, spec)| {
            let pool = spec["pool"].as_str().unwrap_or(name);
            (pool.to_owned(), name.clone())
        })
        .collect();
    pools.sort();
    pools.dedup_by(|a, b| a.0 == b.0);
    Ok(pools)
}

/// The Envoy cluster of the shipped configs the filter fetches snapshots from.
const PICKER_CLUSTER: &str = "sluice_picker";

/// The picker (release build) with the pool that serves `model` in `filter_configuration`
/// scraping `upstream`, whose canned `/metrics` page is an idle vLLM replica: the filter then
/// picks a replica per request from a live snapshot, as in production. (An endpoint may belong
/// to one pool only, and every benchmark request is for `model`.) Waits for the first snapshot.
pub async fn start_picker(
    dir: &Path,
    upstream: SocketAddr,
    filter_configuration: &str,
    model: &str,
) -> Result<Service, String> {
    let pools = model_pools(filter_configuration)?;
    let Some((pool, _)) = pools.iter().find(|(_, m)| m == model) else {
        return Err(format!(
            "bench/src/sluice_config.rs: no pool serves {model}"
        ));
    };
    let config = format!(
        "scrape_interval_ms = 50\nscrape_timeout_ms = 500\nunhealthy_after = 3\n\
         healthy_after = 2\n\n[[pool]]\nname = {pool:?}\nmodel = {model:?}\n\
         endpoints = [\"{upstream}\"]\n"
    );
    let config_path = dir.join("picker.toml");
    std::fs::write(&config_path, config).map_err(|e| format!("write picker config: {e}"))?;
    let port = free_port()?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let args = [
        "--config".to_owned(),
        config_path.display().to_string(),
        "--listen".to_owned(),
        addr.to_string(),
    ];
    let program = sluice_e2e::paths::repo_root().join("target/release/sluice-picker");
    let (mut process, pid) = spawn("picker", dir, &program, &args, &[])?;
    let url = format!("http://{addr}/snapshot");
    wait_ok(&mut process, "picker", &url, Duration::from_secs(30)).await?;
    Ok(Service {
        process,
        pid,
        addr,
        admin: None,
    })
}

/// `config` with the HTTP filter named `name` removed, everything else byte for byte the same:
/// plain Envoy as the physical limit for Sluice.
pub fn without_filter(config: &str, name: &str) -> Result<String, String> {
    // The gateway's filter, then its upstream role in the provider clusters (`<name>.upstream`,
    // written once under a YAML anchor the other clusters refer to).
    let out = without_block(config, name)?;
    let upstream = format!("{name}.upstream");
    let out = if out
        .lines()
        .any(|l| l.trim() == format!("- name: {upstream}"))
    {
        without_block(&out, &upstream)?
    } else {
        out
    };
    if out.contains("extensions.filters.http.wasm.")
        || out.contains("extensions.filters.http.dynamic_modules.")
        || out.contains("*sluice_config")
        || !out.contains("envoy.filters.http.router")
    {
        return Err("removing the Sluice filter left an unexpected Envoy config".into());
    }
    Ok(out)
}

/// `config` without the list item `- name: {name}` (which must occur once) and what it holds.
fn without_block(config: &str, name: &str) -> Result<String, String> {
    let lines: Vec<&str> = config.lines().collect();
    let start_line = format!("- name: {name}");
    let starts: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].trim() == start_line)
        .collect();
    let [start] = starts[..] else {
        return Err(format!(
            "expected exactly one `{start_line}` in the Envoy config, found {}",
            starts.len()
        ));
    };
    let indent = |l: &str| l.len() - l.trim_start().len();
    let depth = indent(lines[start]);
    let end = (start + 1..lines.len())
        .find(|&i| {
            let l = lines[i];
            !l.trim().is_empty()
                && (indent(l) < depth || (indent(l) == depth && l.trim_start().starts_with("- ")))
        })
        .unwrap_or(lines.len());
    let mut out: Vec<&str> = lines[..start].to_vec();
    out.extend(&lines[end..]);
    Ok(out.join("\n") + "\n")
}

/// `bench/` in the repository.
pub fn bench_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `.bench/` in the repository: LiteLLM's venv, run directories, results. Git-ignored by the
/// `.gitignore` inside it.
pub fn work_dir() -> PathBuf {
    sluice_e2e::paths::repo_root().join(".bench")
}

pub fn litellm_bin() -> PathBuf {
    work_dir().join("litellm-venv/bin/litellm")
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// Starts the LiteLLM proxy, one worker, with `upstream` as its only (OpenAI-compatible) model.
pub async fn start_litellm(
    dir: &Path,
    upstream: SocketAddr,
    model: &str,
) -> Result<Service, String> {
    let config = format!(
        "# LiteLLM as its docs deploy it: one model, a master key, no database.\n\
         model_list:\n\
         \x20 - model_name: {model}\n\
         \x20   litellm_params:\n\
         \x20     model: openai/{model}\n\
         \x20     api_base: http://{upstream}/v1\n\
         \x20     api_key: sk-upstream-unused\n\
         litellm_settings:\n\
         \x20 # The upstream is a Llama model name; without this LiteLLM would download a\n\
         \x20 # tokenizer from the Hugging Face hub (no network here) and use tiktoken anyway.\n\
         \x20 disable_hf_tokenizer_download: true\n\
         general_settings:\n\
         \x20 master_key: {API_KEY}\n"
    );
    let config_path = dir.join("litellm.yaml");
    std::fs::write(&config_path, config).map_err(|e| format!("write LiteLLM config: {e}"))?;
    let port = free_port()?;
    let args: Vec<String> = [
        "--config",
        &config_path.display().to_string(),
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--num_workers",
        "1",
        "--telemetry",
        "False",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let env = [
        ("LITELLM_LOG", "ERROR"),
        // Use the bundled model cost map instead of fetching it from the internet.
        ("LITELLM_LOCAL_MODEL_COST_MAP", "True"),
        ("LITELLM_TELEMETRY", "False"),
        ("HF_HUB_OFFLINE", "1"),
        ("NO_PROXY", "127.0.0.1,localhost"),
    ];
    let (mut process, pid) = spawn("litellm", dir, &litellm_bin(), &args, &env)?;
    let addr: SocketAddr = format!("127.0.0.1:{port}")
        .parse()
        .map_err(|e| format!("LiteLLM address: {e}"))?;
    wait_ok(
        &mut process,
        "LiteLLM",
        &format!("http://{addr}/health/liveliness"),
        Duration::from_secs(180),
    )
    .await?;
    Ok(Service {
        process,
        pid,
        addr,
        admin: None,
    })
}

/// A release binary of this workspace (`cargo build --release`, which `make bench` runs).
pub fn release_bin(name: &str) -> Result<PathBuf, String> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| sluice_e2e::paths::repo_root().join("target"));
    let path = target.join("release").join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} not found: run `cargo build --locked --release -p sluice-simulator -p \
             sluice-picker` (make bench does)",
            path.display()
        ))
    }
}

/// Waits for the `listening on ADDR` line the project's services print once bound.
async fn listening_addr(service: &mut Service, name: &str) -> Result<SocketAddr, String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = service.process.log();
        if let Some(addr) = log
            .lines()
            .find_map(|l| l.strip_prefix("listening on "))
            .and_then(|a| a.trim().parse().ok())
        {
            return Ok(addr);
        }
        service.check_running(name)?;
        if Instant::now() > deadline {
            return Err(format!("{name} did not start:\n{}", tail(&log, 20)));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts one of the project's own services (simulator, picker) and learns the address it bound.
pub async fn start_service(
    name: &str,
    dir: &Path,
    program: &Path,
    args: &[String],
) -> Result<Service, String> {
    let (process, pid) = spawn(name, dir, program, args, &[("RUST_LOG", "warn")])?;
    let mut service = Service {
        process,
        pid,
        addr: "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?,
        admin: None,
    };
    service.addr = listening_addr(&mut service, name).await?;
    Ok(service)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream() -> SocketAddr {
        "127.0.0.1:1234".parse().expect("address")
    }

    /// Rendering only writes the module's path; the module need not be built.
    #[test]
    fn plain_envoy_is_the_shipped_config_without_the_filter() {
        for (host, filter) in [
            (Host::Wasm, "extensions.filters.http.wasm."),
            (Host::Native, "extensions.filters.http.dynamic_modules."),
        ] {
            plain_envoy_from(host, filter);
        }
    }

    fn plain_envoy_from(host: Host, filter: &str) {
        let sluice = sluice_config(
            host,
            upstream(),
            None,
            crate::sluice_config::FILTER_CONFIGURATION,
        )
        .expect("render");
        let plain = without_filter(&sluice, "sluice").expect("strip");
        assert!(sluice.contains(filter), "{host}");
        assert!(!plain.contains(filter), "{host}");
        // (The shipped comments before the block stay.)
        let config_lines = plain.lines().filter(|l| !l.trim_start().starts_with('#'));
        for line in config_lines {
            assert!(
                !line.contains("sluice_wasm.wasm") && !line.contains("sluice_native"),
                "{host}: {line}"
            );
        }
        assert!(
            sluice.contains("\"unhandled_paths\": \"reject\""),
            "{host}: the benchmark's configuration"
        );
        // Nothing else changed: what is gone is the two filter blocks (the gateway's, then its
        // upstream role's), and the rest is the shipped config line for line.
        let sluice_lines: Vec<&str> = sluice.lines().collect();
        let mut kept = plain.lines();
        let mut next = kept.next();
        let mut removed = Vec::new();
        for line in &sluice_lines {
            if next == Some(*line) {
                next = kept.next();
            } else {
                removed.push(*line);
            }
        }
        assert_eq!(
            next, None,
            "{host}: plain is the shipped config with lines removed"
        );
        let starts: Vec<&str> = removed
            .iter()
            .map(|l| l.trim())
            .filter(|l| l.starts_with("- name: "))
            .collect();
        assert_eq!(
            starts,
            ["- name: sluice", "- name: sluice.upstream"],
            "{host}"
        );
    }

    #[test]
    fn every_model_pool_goes_to_the_upstream() {
        let pools = model_pools(crate::sluice_config::FILTER_CONFIGURATION).expect("pools");
        assert!(!pools.is_empty());
        let rendered = sluice_config(Host::Native, upstream(), None, "{}");
        assert!(rendered.is_err(), "no models, no pools");
        let picker: SocketAddr = "127.0.0.1:4321".parse().expect("address");
        for host in Host::ALL {
            let rendered = sluice_config(
                host,
                upstream(),
                Some(picker),
                crate::sluice_config::FILTER_CONFIGURATION,
            )
            .expect("render");
            every_pool_in(&rendered, &pools);
        }
    }

    fn every_pool_in(rendered: &str, pools: &[(String, String)]) {
        for (pool, _model) in pools {
            assert!(
                rendered.contains(&format!("cluster_name: {pool}")),
                "{pool}"
            );
        }
        assert!(rendered.contains("port_value: 1234"));
        assert!(rendered.contains("cluster_name: sluice_picker"));
        assert!(rendered.contains("port_value: 4321"), "the picker cluster");
    }

    #[test]
    fn cpu_ticks_are_utime_plus_stime() {
        let stat = "4242 (wrk worker (2)) S 1 4242 4242 0 -1 4194304 120 0 0 0 250 31 0 0 20 0 3";
        assert_eq!(cpu_ticks(stat), Some(281));
        assert_eq!(cpu_ticks("garbage"), None);
        let own = std::fs::read_to_string("/proc/self/stat").expect("own stat");
        assert!(cpu_ticks(&own).is_some());
    }

    #[test]
    fn a_missing_filter_is_an_error() {
        assert!(without_filter("a: 1\n", "sluice").is_err());
    }
}
