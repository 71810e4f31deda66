//! Where a benchmark ran: the machine, the date, the repository's revision, Envoy and rustc.
//! Both sections of the report state it.

use std::path::Path;

use crate::load;
use crate::report::Machine;

/// The machine, date, revision and load now; `tools` holds Envoy and rustc (callers add theirs).
pub async fn describe() -> Machine {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpu_model = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map_or("unknown CPU".into(), |(_, v)| v.trim().to_owned());
    let memory = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or("unknown".into(), |kib| {
            format!("{:.0} GiB", kib / 1024.0 / 1024.0)
        });
    let date = load::version(Path::new("date"), &["-u", "+%Y-%m-%d %H:%M UTC"]).await;
    let root = sluice_e2e::paths::repo_root();
    let revision = load::version(
        Path::new("git"),
        &[
            "-C",
            &root.display().to_string(),
            "describe",
            "--always",
            "--dirty",
        ],
    )
    .await;
    let revision = if revision.is_empty() || revision.contains(' ') {
        "unknown revision".to_owned()
    } else {
        revision
    };
    let envoy = load::version(&sluice_e2e::paths::envoy_bin(), &["--version"]).await;
    // `envoy  version: <sha>/1.40.0/Clean/RELEASE/BoringSSL`
    let envoy = word(envoy, 2).split('/').nth(1).unwrap_or("?").to_owned();
    let rustc = word(load::version(Path::new("rustc"), &["--version"]).await, 1);
    Machine {
        date,
        cpu_model,
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        memory,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        revision,
        load_before: load_average(),
        load_after: String::new(),
        tools: vec![("Envoy".to_owned(), envoy), ("rustc".to_owned(), rustc)],
    }
}

/// The `n`-th whitespace-separated word of a version line.
pub fn word(line: String, n: usize) -> String {
    line.split_whitespace().nth(n).unwrap_or("?").to_owned()
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
