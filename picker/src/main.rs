//! The picker service: scrapes every model-server endpoint of every pool on a short interval,
//! tracks their health, and serves the snapshot the filter picks replicas from.
//!
//! With a `[quota]` section it also serves the cluster quota sync, backed by Redis.
//!
//! Tasks: discovery (static endpoints, DNS re-resolved periodically) keeps the registry's
//! endpoint lists; the scrape rounds fill in each endpoint's load and health and publish a
//! snapshot per round; the HTTP server answers `/snapshot`, `/metrics` and `/healthz`.
//!
//! A production service: outside tests, errors are handled, never unwrapped.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod config;
mod discovery;
mod health;
mod http;
mod metrics;
mod quota;
mod registry;
mod scrape;
mod shutdown;
mod snapshot;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

use crate::discovery::Discovery;
use crate::health::HealthPolicy;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::scrape::client::ScrapeClient;
use crate::scrape::rounds::Rounds;
use crate::snapshot::Publisher;

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
        // Colours only on a terminal: `make run` and the tests write the log to files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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
    let client = match ScrapeClient::new(config.scrape_timeout) {
        Ok(client) => client,
        Err(err) => {
            tracing::error!("{err}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!("cannot listen on {}: {err}", config.listen);
            return ExitCode::FAILURE;
        }
    };
    let local = listener.local_addr().unwrap_or(config.listen);

    let registry = Arc::new(Registry::new(&config));
    let metrics = Arc::new(Metrics::new(
        config.pools.iter().map(|pool| pool.name.as_str()),
    ));
    let publisher = Arc::new(Publisher::new());
    let mut discovery = Discovery::new(&config, Arc::clone(&registry), Arc::clone(&metrics));
    // Endpoints first, so the first round already scrapes them.
    discovery.refresh_all().await;
    let discovery_task = discovery.has_dns().then(|| tokio::spawn(discovery.run()));
    let rounds = Rounds::new(
        Arc::clone(&registry),
        Arc::clone(&metrics),
        Arc::clone(&publisher),
        client,
        HealthPolicy {
            unhealthy_after: config.unhealthy_after,
            healthy_after: config.healthy_after,
        },
        config.scrape_interval,
        config.max_concurrent_scrapes,
    );
    let rounds_task = tokio::spawn(rounds.run());

    // One line on stdout, for whoever started us with port 0.
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "listening on {local}").and_then(|()| stdout.flush());
    tracing::info!(
        pools = config.pools.len(),
        static_endpoints = config.static_endpoint_count(),
        scrape_interval_ms = config.scrape_interval.as_millis(),
        "picker listening on {local}"
    );
    let quota = match config
        .quota
        .as_ref()
        .map(quota::store::Store::new)
        .transpose()
    {
        Ok(store) => store.map(Arc::new),
        Err(err) => {
            tracing::error!("{err}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(quota) = &config.quota {
        tracing::info!(key_prefix = %quota.key_prefix, "quota sync on {}", quota_sync_target(&quota.redis_url));
    }
    let app = http::router(http::AppState {
        publisher,
        metrics,
        quota,
    });
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown::signal())
        .await;
    rounds_task.abort();
    if let Some(task) = discovery_task {
        task.abort();
    }
    if let Err(err) = served {
        tracing::error!("server error: {err}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// The Redis URL without its password, for the log.
fn quota_sync_target(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}
