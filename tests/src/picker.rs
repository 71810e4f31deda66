//! The picker service (`sluice-picker`) on a free port.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::paths;
use crate::process::Process;

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
        let addr = process
            .wait_for_line("listening on ", Duration::from_secs(20))
            .await
            .parse()
            .expect("picker address");
        Self { process, addr }
    }
}
