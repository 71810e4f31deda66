//! A model-server simulator that behaves like one vLLM GPU server: the same HTTP APIs and metric
//! names, and a scheduler whose queueing, KV-cache use and latencies respond to load the way a real
//! server's do. The binary (`main.rs`) wraps `serve` with a command line.
//!
//! ## Provider mode
//!
//! With `--provider openai` or `--provider anthropic` it plays a hosted provider instead: only
//! that provider's API, API keys (`--api-key`), per-minute rate limits with the provider's
//! headers (`--rpm`, `--tpm`), usage in the provider's fields with cached input tokens, and
//! errors in the provider's format. `api/provider/` says exactly what it does.
//!
//! ## Faults, in both modes
//!
//! On the same port, untouched by faults themselves:
//! - `PUT /admin/faults` with `{"status": 429|500|503|529, "retry_after_s": n, "count": n,
//!   "reset": true, "first_byte_delay_ms": n, "cut_after_tokens": n, "dead": true}` (one of
//!   status, reset, cut_after_tokens or dead, optionally with a first-byte delay; or the delay
//!   alone) switches a fault on for the next `count` API requests, or until `DELETE
//!   /admin/faults`; `GET /admin/faults` shows it (see `faults`).
//! - `GET /admin/stats` counts the API requests received and how they ended (answered, by
//!   status; reset; cut mid-stream; connections refused while dead); `DELETE` zeroes it.
//!
//! API requests are all but /admin, /health and /metrics. A reset closes the connection with a
//! TCP reset before any byte; `dead` closes every open connection and refuses new ones (a
//! connection whose first request is for /admin, /health or /metrics is let through, so the
//! fault can be cleared).

mod api;
pub mod config;
mod connection;
pub mod engine;
mod faults;
mod metrics;
pub mod tokens;
mod traffic;
mod words;

use std::future::Future;
use std::io;
use std::sync::Arc;
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
    let plumbing = api::Plumbing::default();
    let listener = connection::FaultListener::new(
        listener,
        Arc::clone(&plumbing.faults),
        Arc::clone(&plumbing.traffic),
        Arc::clone(&plumbing.connections),
    );
    let app = api::router(config, engine, address, plumbing)
        .into_make_service_with_connect_info::<connection::ConnectionHandle>();

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
