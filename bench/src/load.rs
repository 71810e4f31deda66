//! Driving existing load generators: wrk (closed loop: concurrency 1 and saturation), oha (open
//! loop at a fixed rate, latency-corrected) and curl (streaming time to first byte).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;

use crate::procs::API_KEY;
use crate::stats::percentile;

/// The load generators found on this machine.
#[derive(Debug, Clone)]
pub struct Tools {
    pub wrk: PathBuf,
    pub wrk_script: PathBuf,
    /// Absent when oha could not be installed: fixed-rate runs are then skipped and reported so.
    pub oha: Option<PathBuf>,
    pub curl: PathBuf,
}

/// Latency percentiles (µs) and throughput of one run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Run {
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub rps: f64,
    pub requests: u64,
    /// Failed requests: socket errors, timeouts and non-2xx answers.
    pub errors: u64,
}

/// Finds `name` on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

async fn output(mut command: Command, what: &str) -> Result<String, String> {
    command
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null());
    let out = command
        .output()
        .await
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "{what} failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(stdout)
}

/// wrk, one thread, `connections` connections, for `seconds`: closed loop, with the bench's
/// client key.
pub async fn wrk(
    tools: &Tools,
    url: &str,
    body: &Path,
    connections: u32,
    seconds: u64,
) -> Result<Run, String> {
    let authorization = format!("authorization: Bearer {API_KEY}");
    wrk_with_headers(tools, url, body, connections, seconds, &[&authorization]).await
}

/// `wrk` with these request headers (`name: value`) instead of the bench's client key: a
/// provider stand-in called directly wants its own key (and Anthropic's, its version header).
pub async fn wrk_with_headers(
    tools: &Tools,
    url: &str,
    body: &Path,
    connections: u32,
    seconds: u64,
    headers: &[&str],
) -> Result<Run, String> {
    let mut command = Command::new(&tools.wrk);
    command
        .env("SLUICE_BENCH_BODY", body)
        .args(["-t1", &format!("-c{connections}"), &format!("-d{seconds}s")])
        .args(["--timeout", "10s", "-s"])
        .arg(&tools.wrk_script);
    for header in headers {
        command.args(["-H", header]);
    }
    command.arg(url);
    let stdout = output(command, "wrk").await?;
    parse_wrk(&stdout)
}

/// Reads the `SLUICE_BENCH {json}` line `bench/wrk.lua` prints.
pub fn parse_wrk(stdout: &str) -> Result<Run, String> {
    let json = stdout
        .lines()
        .find_map(|l| l.strip_prefix("SLUICE_BENCH "))
        .ok_or_else(|| format!("no SLUICE_BENCH line in wrk output:\n{stdout}"))?;
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("wrk JSON: {e}: {json}"))?;
    let num = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let requests = v["requests"].as_u64().unwrap_or(0);
    let errors = [
        "errors_connect",
        "errors_read",
        "errors_write",
        "errors_status",
        "errors_timeout",
    ]
    .iter()
    .map(|k| v[*k].as_u64().unwrap_or(0))
    .sum();
    let seconds = num("duration_us") / 1e6;
    Ok(Run {
        p50_us: num("p50_us"),
        p90_us: num("p90_us"),
        p99_us: num("p99_us"),
        rps: requests as f64 / seconds,
        requests,
        errors,
    })
}

/// oha at a fixed `rate` for `seconds`, open loop: latency is measured from each request's
/// scheduled start (`--latency-correction`), so a stall shows up in the percentiles.
pub async fn oha(
    oha: &Path,
    url: &str,
    body: &Path,
    rate: u32,
    seconds: u64,
) -> Result<Run, String> {
    let mut command = Command::new(oha);
    command
        .args(["-z", &format!("{seconds}s"), "-q", &rate.to_string()])
        // -w: requests still in flight at the deadline finish and count, rather than failing.
        .args(["--latency-correction", "-w", "-c", "8", "--no-tui"])
        .args(["--output-format", "json", "-m", "POST", "-D"])
        .arg(body)
        .args(["-H", "content-type: application/json"])
        .args(["-H", &format!("authorization: Bearer {API_KEY}")])
        .arg(url);
    let stdout = output(command, "oha").await?;
    parse_oha(&stdout)
}

pub fn parse_oha(stdout: &str) -> Result<Run, String> {
    let v: serde_json::Value =
        serde_json::from_str(stdout).map_err(|e| format!("oha JSON: {e}: {stdout}"))?;
    let pct = |k: &str| v["latencyPercentiles"][k].as_f64().unwrap_or(f64::NAN) * 1e6;
    let statuses = v["statusCodeDistribution"].as_object();
    let ok: u64 = statuses
        .into_iter()
        .flatten()
        .filter(|(code, _)| code.starts_with('2'))
        .map(|(_, n)| n.as_u64().unwrap_or(0))
        .sum();
    let not_ok: u64 = statuses
        .into_iter()
        .flatten()
        .filter(|(code, _)| !code.starts_with('2'))
        .map(|(_, n)| n.as_u64().unwrap_or(0))
        .sum();
    let failed: u64 = v["errorDistribution"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(_, n)| n.as_u64().unwrap_or(0))
        .sum();
    Ok(Run {
        p50_us: pct("p50"),
        p90_us: pct("p90"),
        p99_us: pct("p99"),
        rps: v["summary"]["requestsPerSec"].as_f64().unwrap_or(f64::NAN),
        requests: ok + not_ok,
        errors: not_ok + failed,
    })
}

/// Time to first byte (µs) of `n` streaming requests, one after another on one kept-alive
/// connection; the first (which also pays the connect) is dropped. Percentiles of the rest.
pub async fn ttfb(tools: &Tools, url: &str, body: &Path, n: usize) -> Result<Run, String> {
    let mut command = Command::new(&tools.curl);
    command
        .args(["-s", "-S", "--fail", "-o", "/dev/null", "--max-time", "30"])
        .args(["-w", "%{time_starttransfer}\\n"])
        .args(["-H", "content-type: application/json"])
        .args(["-H", &format!("authorization: Bearer {API_KEY}")])
        .arg("--data-binary")
        .arg(format!("@{}", body.display()));
    for _ in 0..=n {
        command.arg(url);
    }
    let stdout = tokio::time::timeout(Duration::from_secs(120), output(command, "curl"))
        .await
        .map_err(|_| "curl took over 120 s".to_owned())??;
    let samples: Vec<f64> = stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.trim().parse::<f64>().ok())
        .map(|s| s * 1e6)
        .collect();
    if samples.len() != n {
        return Err(format!(
            "curl gave {} timings for {n} requests:\n{stdout}",
            samples.len()
        ));
    }
    let p = |q| percentile(&samples, q).unwrap_or(f64::NAN);
    Ok(Run {
        p50_us: p(50.0),
        p90_us: p(90.0),
        p99_us: p(99.0),
        rps: f64::NAN,
        requests: n as u64,
        errors: 0,
    })
}

/// One tool's version line, for the report.
pub async fn version(program: &Path, args: &[&str]) -> String {
    let mut command = Command::new(program);
    command.args(args).kill_on_drop(true);
    match command.output().await {
        Ok(out) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            text.lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("")
                .to_owned()
        }
        Err(_) => "unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_wrk_line() {
        let out = "Running 3s test\nSLUICE_BENCH {\"requests\":300,\"duration_us\":3000000,\
                   \"bytes\":1,\"p50_us\":103.0,\"p90_us\":150.0,\"p99_us\":400.0,\"max_us\":9.0,\
                   \"mean_us\":1.0,\"errors_connect\":0,\"errors_read\":1,\"errors_write\":0,\
                   \"errors_status\":2,\"errors_timeout\":0}\n";
        let run = parse_wrk(out).expect("parse");
        assert_eq!(run.p50_us, 103.0);
        assert_eq!(run.p99_us, 400.0);
        assert_eq!(run.rps, 100.0);
        assert_eq!(run.errors, 3);
        assert!(parse_wrk("nothing").is_err());
    }

    #[test]
    fn reads_oha_json() {
        let out = r#"{"summary":{"requestsPerSec":49.9},
            "latencyPercentiles":{"p50":0.000465,"p90":0.000614,"p99":0.0048},
            "statusCodeDistribution":{"200":99,"503":1},"errorDistribution":{"timeout":2}}"#;
        let run = parse_oha(out).expect("parse");
        assert!((run.p50_us - 465.0).abs() < 1e-6);
        assert!((run.p99_us - 4800.0).abs() < 1e-6);
        assert_eq!(run.requests, 100);
        assert_eq!(run.errors, 3);
    }
}
