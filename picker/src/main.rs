//! The picker service: scrapes every model-server endpoint of every pool on a short interval,
//! tracks their health, and serves the snapshot the filter picks replicas from.
//!
//! With a `[quota]` section it also serves the cluster quota sync, backed by Redis. With a
//! `[tenancy]` section it serves the tenancy snapshot and stores the spend rows of the sync; with
//! an `[admin]` section, the admin API on listeners of its own.
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

mod admin;
mod clock;
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
mod spend;
mod tenancy;

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
    /// Overrides `[admin] listen` (repeat for several addresses; port 0 picks a free port).
    #[arg(long = "admin-listen", value_name = "ADDR")]
    admin_listen: Vec<std::net::SocketAddr>,
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
    if !cli.admin_listen.is_empty() {
        match &mut config.admin {
            Some(admin) => admin.listen = cli.admin_listen.clone(),
            None => {
                tracing::error!("--admin-listen: the configuration has no [admin] section");
                return ExitCode::FAILURE;
            }
        }
    }
    let admin_token = match config
        .admin
        .as_ref()
        .map(|admin| admin.token.digest(|name| std::env::var(name).ok()))
        .transpose()
    {
        Ok(digest) => digest,
        Err(err) => {
            tracing::error!("{}: {err}", cli.config.display());
            return ExitCode::FAILURE;
        }
    };
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
    let mut admin_listeners = Vec::new();
    for addr in config.admin.iter().flat_map(|admin| admin.listen.iter()) {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => admin_listeners.push(listener),
            Err(err) => {
                tracing::error!("admin API: cannot listen on {addr}: {err}");
                return ExitCode::FAILURE;
            }
        }
    }

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

    let tenancy = match &config.tenancy {
        Some(tenancy_config) => match tenancy::open_store(tenancy_config) {
            Ok(store) => Some(Arc::new(tenancy::service::Tenancy::new(
                store,
                tenancy::ops::Bounds::new(tenancy_config.max_tenants, tenancy_config.max_keys),
                tenancy_config.spend_retention_days,
                Arc::clone(&metrics),
            ))),
            Err(err) => {
                tracing::error!("{}: {err}", cli.config.display());
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    if let Some(tenancy) = &tenancy {
        // Read now, so a store that cannot be read is in the log at start (not fatal: Redis
        // may come up after the picker).
        match tenancy.state(std::time::Duration::ZERO).await {
            Ok(state) => tracing::info!(
                store = tenancy.store_kind(),
                version = state.version,
                tenants = state.tenants.len(),
                keys = state.live_keys(),
                "tenancy store ready"
            ),
            Err(err) => tracing::warn!(store = tenancy.store_kind(), "tenancy store: {err}"),
        }
    }

    // One line on stdout per listener, for whoever started us with port 0.
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "listening on {local}").and_then(|()| stdout.flush());
    tracing::info!(
        pools = config.pools.len(),
        static_endpoints = config.static_endpoint_count(),
        scrape_interval_ms = config.scrape_interval.as_millis(),
        "picker listening on {local}"
    );
    let mut admin_tasks = Vec::new();
    if let (Some(tenancy), Some(token_sha256)) = (&tenancy, admin_token) {
        let app = admin::router(admin::AdminState {
            tenancy: Arc::clone(tenancy),
            metrics: Arc::clone(&metrics),
            token_sha256,
        });
        for listener in admin_listeners {
            let addr = match listener.local_addr() {
                Ok(addr) => addr,
                Err(err) => {
                    tracing::error!("admin API: {err}");
                    return ExitCode::FAILURE;
                }
            };
            let _ = writeln!(stdout, "admin listening on {addr}").and_then(|()| stdout.flush());
            tracing::info!("admin listening on {addr}");
            let served =
                axum::serve(listener, app.clone()).with_graceful_shutdown(shutdown::signal());
            admin_tasks.push(tokio::spawn(async move {
                if let Err(err) = served.await {
                    tracing::error!("admin API on {addr}: {err}");
                }
            }));
        }
    }
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
        tenancy,
    });
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown::signal())
        .await;
    rounds_task.abort();
    if let Some(task) = discovery_task {
        task.abort();
    }
    for task in admin_tasks {
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
