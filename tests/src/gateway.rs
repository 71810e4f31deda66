//! A whole gateway for one test: simulator replicas and Envoy with the filter, in a temporary
//! directory that holds their configs and logs.

use std::time::Duration;

use crate::envoy::{Envoy, EnvoyOptions};
use crate::simulator::Simulator;

/// An HTTP client for talking to local processes.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("HTTP client")
}

#[derive(Debug, Clone)]
pub struct GatewayOptions {
    pub replicas: usize,
    /// Extra simulator flags, given to every replica.
    pub simulator_args: Vec<String>,
    pub filter_configuration: Option<String>,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        Self {
            replicas: 3,
            simulator_args: Vec::new(),
            filter_configuration: None,
        }
    }
}

pub struct Gateway {
    // Field order is drop order: Envoy stops before the replicas, the directory goes last.
    pub envoy: Envoy,
    pub replicas: Vec<Simulator>,
    pub dir: tempfile::TempDir,
}

impl Gateway {
    pub async fn start(options: GatewayOptions) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("sluice-e2e-")
            .tempdir()
            .expect("temp dir");
        let mut replicas = Vec::with_capacity(options.replicas);
        for i in 0..options.replicas {
            let name = format!("replica-{i}");
            replicas.push(Simulator::start(dir.path(), &name, &options.simulator_args).await);
        }
        let envoy_options = EnvoyOptions {
            replicas: replicas.iter().map(|r| r.addr).collect(),
            filter_configuration: options.filter_configuration,
        };
        let envoy = Envoy::start(dir.path(), &envoy_options).await;
        Self {
            envoy,
            replicas,
            dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        self.envoy.url(path)
    }
}
