//! The companion service's admin API through its command-line client (`sluice-admin`, built by
//! `make test`), run the way an operator's script runs it: the URL and token in the
//! environment, `--output json` to read the answers.

use std::net::SocketAddr;
use std::process::Command;

use crate::paths;

/// `sluice-admin` against one admin listener.
pub struct AdminCli {
    url: String,
    token: String,
}

/// What one run printed and how it exited.
#[derive(Debug)]
pub struct CliRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl AdminCli {
    pub fn new(admin: SocketAddr, token: &str) -> Self {
        Self {
            url: format!("http://{admin}"),
            token: token.to_owned(),
        }
    }

    /// Runs `sluice-admin ARGS` to its end.
    pub fn run(&self, args: &[&str]) -> CliRun {
        let output = Command::new(paths::admin_cli_bin())
            .args(args)
            .env("SLUICE_ADMIN_URL", &self.url)
            .env("SLUICE_ADMIN_TOKEN", &self.token)
            .output()
            .expect("run sluice-admin");
        CliRun {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs `sluice-admin --output json ARGS`, which must succeed, and returns what it printed
    /// (JSON; `null` for a command that prints nothing).
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--output", "json"];
        all.extend_from_slice(args);
        let run = self.run(&all);
        assert_eq!(
            run.code, 0,
            "sluice-admin {args:?} failed: {}{}",
            run.stdout, run.stderr
        );
        if run.stdout.trim().is_empty() {
            return serde_json::Value::Null;
        }
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| {
            panic!(
                "sluice-admin {args:?} printed no JSON ({e}): {}",
                run.stdout
            )
        })
    }
}
