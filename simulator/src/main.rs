//! `sluice-simulator`: parses flags, binds, announces the address on stdout, serves until
//! SIGTERM or SIGINT.

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser;
use sluice_simulator::Cli;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Cli::parse().resolve();
    init_logging();

    let listener = match TcpListener::bind(config.listen).await {
        Ok(listener) => listener,
        Err(err) => {
            error!(listen = %config.listen, "cannot bind: {err}");
            return ExitCode::FAILURE;
        }
    };
    let address = match listener.local_addr() {
        Ok(address) => address,
        Err(err) => {
            error!("cannot read the bound address: {err}");
            return ExitCode::FAILURE;
        }
    };
    // The one line on stdout: a harness that asked for port 0 reads the real port from it.
    let mut stdout = std::io::stdout();
    if writeln!(stdout, "listening on {address}")
        .and_then(|()| stdout.flush())
        .is_err()
    {
        error!("cannot write the listening address to stdout");
    }
    info!(
        %address,
        model = %config.model,
        aliases = ?config.aliases,
        loras = ?config.loras,
        provider = ?config.provider.as_ref().map(|provider| provider.api),
        max_num_seqs = config.max_num_seqs,
        kv_blocks = config.kv_blocks,
        block_size = config.block_size,
        "serving"
    );

    match sluice_simulator::serve(config, listener, shutdown_signal()).await {
        Ok(()) => {
            info!("stopped");
            ExitCode::SUCCESS
        }
        Err(err) => {
            error!("server failed: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr, filtered by RUST_LOG (e.g. `info,sluice_simulator=debug`); info by default.
fn init_logging() {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|spec| spec.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(false),
        )
        .with(filter)
        .init();
}

async fn shutdown_signal() {
    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                terminate.recv().await;
            }
            Err(err) => {
                error!("cannot listen for SIGTERM: {err}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => info!("SIGINT received, shutting down"),
        () = terminate => info!("SIGTERM received, shutting down"),
    }
}
