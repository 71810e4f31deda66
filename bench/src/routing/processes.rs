//! Starting the project's own services (simulator, picker) from their release builds and
//! learning the address they bound.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::procs::{self, Service};

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
            return Err(format!("{name} did not start:\n{}", procs::tail(&log, 20)));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn start_service(
    name: &str,
    dir: &Path,
    program: &Path,
    args: &[String],
) -> Result<Service, String> {
    let (process, pid) = procs::spawn(name, dir, program, args, &[("RUST_LOG", "warn")])?;
    let mut service = Service {
        process,
        pid,
        addr: "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?,
        admin: None,
    };
    service.addr = listening_addr(&mut service, name).await?;
    Ok(service)
}
