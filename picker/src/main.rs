//! The picker service: knows the model-server endpoints of every pool and (in the routing work)
//! scrapes them into the snapshot the filter picks replicas from.

mod config;
mod http;
mod shutdown;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Command line of `sluice-picker`.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Path of the picker's TOML configuration.
    #[arg(long, short)]
    config: PathBuf,
    /// Overrides `listen` from the configuration (port 0 picks a free port).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let cli = Cli::parse();
    let mut config = match config::Config::load(&cli.config) {
        Ok(config) => config,
        Err(err) => {
            tracing::error!("{}: {err}", cli.config.display());
            return ExitCode::FAILURE;
        }
    };
    if let Some(listen) = cli.listen {
        config.listen = listen;
    }
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!("cannot listen on {}: {err}", config.listen);
            return ExitCode::FAILURE;
        }
    };
    let local = listener.local_addr().unwrap_or(config.listen);
    // One line on stdout, for whoever started us with port 0.
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "listening on {local}").and_then(|()| stdout.flush());
    tracing::info!(
        pools = config.pools.len(),
        endpoints = config.endpoint_count(),
        "picker listening on {local}"
    );
    let app = http::router();
    if let Err(err) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown::signal())
        .await
    {
        tracing::error!("server error: {err}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
