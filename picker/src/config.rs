//! The picker's configuration file (TOML): where to listen and which model-server endpoints
//! serve which model. Parsed strictly (unknown keys are errors) and validated once; errors name
//! the offending key.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireConfig {
    listen: Option<String>,
    #[serde(default)]
    pool: Vec<WirePool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WirePool {
    model: String,
    endpoints: Vec<String>,
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub listen: SocketAddr,
    pub pools: Vec<Pool>,
}

/// The replicas that serve one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub model: String,
    pub endpoints: Vec<SocketAddr>,
}

const DEFAULT_LISTEN: &str = "127.0.0.1:9100";

impl Config {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|err| err.to_string())?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let wire: WireConfig = toml::from_str(text).map_err(|err| err.to_string())?;
        let listen_text = wire.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen = listen_text
            .parse()
            .map_err(|_| format!("listen: {listen_text:?} is not an ip:port address"))?;
        if wire.pool.is_empty() {
            return Err("pool: at least one [[pool]] is required".to_owned());
        }
        let mut models = HashSet::new();
        let mut pools = Vec::with_capacity(wire.pool.len());
        for (i, pool) in wire.pool.into_iter().enumerate() {
            if pool.model.trim().is_empty() {
                return Err(format!("pool[{i}].model: must not be empty"));
            }
            if !models.insert(pool.model.clone()) {
                return Err(format!(
                    "pool[{i}].model: {:?} is already served by an earlier pool",
                    pool.model
                ));
            }
            if pool.endpoints.is_empty() {
                return Err(format!(
                    "pool[{i}].endpoints: at least one endpoint is required"
                ));
            }
            let mut endpoints = Vec::with_capacity(pool.endpoints.len());
            for (j, raw) in pool.endpoints.iter().enumerate() {
                let addr: SocketAddr = raw.parse().map_err(|_| {
                    format!("pool[{i}].endpoints[{j}]: {raw:?} is not an ip:port address")
                })?;
                if endpoints.contains(&addr) {
                    return Err(format!("pool[{i}].endpoints[{j}]: {raw:?} is listed twice"));
                }
                endpoints.push(addr);
            }
            pools.push(Pool {
                model: pool.model,
                endpoints,
            });
        }
        Ok(Self { listen, pools })
    }

    pub fn endpoint_count(&self) -> usize {
        self.pools.iter().map(|pool| pool.endpoints.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::Config;

    #[test]
    fn parses_pools_and_defaults_listen() {
        let config = Config::parse(
            r#"
            [[pool]]
            model = "llama"
            endpoints = ["127.0.0.1:8001", "[::1]:8002"]
            "#,
        )
        .unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:9100");
        assert_eq!(config.pools[0].model, "llama");
        assert_eq!(config.endpoint_count(), 2);
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::parse("[[pool]]\nmodel = \"m\"\nendpoint = []\n").unwrap_err();
        assert!(err.contains("unknown field `endpoint`"), "{err}");
    }

    #[test]
    fn invalid_values_are_named() {
        let cases = [
            (
                "listen = \"nowhere\"\n[[pool]]\nmodel=\"m\"\nendpoints=[\"127.0.0.1:1\"]",
                "listen:",
            ),
            ("", "pool: at least one"),
            (
                "[[pool]]\nmodel=\"m\"\nendpoints=[]",
                "pool[0].endpoints: at least one",
            ),
            (
                "[[pool]]\nmodel=\"m\"\nendpoints=[\"host:80\"]",
                "pool[0].endpoints[0]:",
            ),
            (
                "[[pool]]\nmodel=\"m\"\nendpoints=[\"127.0.0.1:1\",\"127.0.0.1:1\"]",
                "pool[0].endpoints[1]: \"127.0.0.1:1\" is listed twice",
            ),
            (
                "[[pool]]\nmodel=\"m\"\nendpoints=[\"127.0.0.1:1\"]\n[[pool]]\nmodel=\"m\"\nendpoints=[\"127.0.0.1:2\"]",
                "pool[1].model:",
            ),
        ];
        for (text, expected) in cases {
            let err = Config::parse(text).unwrap_err();
            assert!(err.starts_with(expected), "{text:?}: {err}");
        }
    }
}
