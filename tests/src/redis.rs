//! A real `redis-server` (Debian's, installed by `scripts/setup.sh`) on a free loopback port, with
//! no persistence, for the cluster quota tests. It can be killed and started again on the same
//! port, the way an outage and a recovery look to the picker.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::paths;
use crate::process::Process;

pub struct Redis {
    pub port: u16,
    process: Option<Process>,
    log: PathBuf,
    /// Starts so far, to give each run its own log file.
    runs: u32,
}

impl Redis {
    /// Starts Redis on a free port, its log in `dir`.
    pub async fn start(dir: &Path) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut redis = Self {
            port,
            process: None,
            log: dir.join("redis"),
            runs: 0,
        };
        redis.restart().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills Redis (SIGKILL: no goodbye to its clients) and waits until the port is closed.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Starts Redis again on the same port (empty: nothing was persisted) and waits until it
    /// accepts connections.
    pub async fn restart(&mut self) {
        self.kill();
        self.runs += 1;
        let mut command = Command::new(paths::redis_bin());
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"]);
        let log = self.log.with_extension(format!("{}.log", self.runs));
        let mut process = Process::spawn("redis-server", command, &log);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                process.is_running(),
                "redis-server exited:\n{}",
                process.log()
            );
            assert!(
                Instant::now() < deadline,
                "redis-server does not listen on {}:\n{}",
                self.port,
                process.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.process = Some(process);
    }
}
