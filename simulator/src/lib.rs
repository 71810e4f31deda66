//! A model-server simulator that behaves like one vLLM GPU server: the same HTTP APIs and metric
//! names, and a scheduler whose queueing, KV-cache use and latencies respond to load the way a real
//! server's do. The binary (`main.rs`) wraps `serve` with a command line.

mod api;
pub mod config;
pub mod engine;
mod metrics;
pub mod tokens;
mod words;

use std::future::Future;
use std::io;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub use api::SIMULATOR_ID_HEADER;
pub use config::{Cli, Config};

/// How long in-flight requests may keep the server up after `shutdown`. Long streams would
/// otherwise hold a stopping test harness for as long as their generation takes.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Serves on `listener` until `shutdown` resolves, then lets in-flight requests finish for up to
/// `SHUTDOWN_GRACE` and returns. `config.listen` is not used: the listener's own address
/// identifies the replica.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let address = listener.local_addr()?;
    let engine = engine::Engine::start(config.engine());
    let app = api::router(config, engine, address);

    let (stopping, stopped) = oneshot::channel();
    let shutdown = async move {
        shutdown.await;
        let _ = stopping.send(());
    };
    let server = axum::serve(listener, app).with_graceful_shutdown(shutdown);
    let grace_expired = async move {
        // An error means the server ended on its own, dropping the sender: the server branch wins.
        if stopped.await.is_ok() {
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        result = server => result,
        () = grace_expired => {
            tracing::warn!("in-flight requests still running after {SHUTDOWN_GRACE:?}; stopping anyway");
            Ok(())
        }
    }
}
