//! `targets`, `failover` and each model's `chains`, as users write them, validated into
//! `crate::targets::Targets`.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::error::ConfigError;
use super::header_name::HeaderName;
use crate::targets::{
    Chain, Failover, MAX_CHAIN_LENGTH, MAX_TARGETS, ModelChains, Provider, Sticky, Target,
    TargetKind, Targets,
};
use crate::translate::Shape;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WireTarget {
    /// A self-hosted pool (the Envoy cluster of its replicas).
    pub pool: Option<String>,
    /// A hosted provider's API shape: `openai` or `anthropic`.
    pub provider: Option<WireShape>,
    /// The model name the target serves the request under (required for a provider; for a
    /// pool, an adapter or another model of the pool, default the requested model).
    pub model: Option<String>,
    /// The provider's key, written here (prefer `api_key_env`).
    pub api_key: Option<String>,
    /// The environment variable holding the provider's key, read when the configuration loads
    /// (Wasm: list it in the VM's `environment_variables`).
    pub api_key_env: Option<String>,
    /// `anthropic-version` sent to an Anthropic provider.
    pub anthropic_version: Option<String>,
    /// `max_tokens` for an Anthropic provider when the client set none.
    pub default_max_tokens: Option<u64>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WireShape {
    Openai,
    Anthropic,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WireChain {
    /// The Envoy cluster requests on this chain are routed to (a composite cluster whose
    /// sub-clusters are the targets' clusters in order, or one target's own cluster).
    pub cluster: String,
    /// Target names in attempt order.
    pub targets: Vec<String>,
    /// Share of the model's traffic (default 1); 0 makes the chain a standby.
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum WireSticky {
    /// `"user"`.
    Keyword(String),
    /// `{"header": "x-session-id"}`.
    Header { header: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct WireFailover {
    pub eject_after_failures: u32,
    pub ejection_ms: u64,
    pub max_ejection_ms: u64,
    pub max_retry_after_ms: u64,
}

impl Default for WireFailover {
    fn default() -> Self {
        let d = Failover::default();
        Self {
            eject_after_failures: d.eject_after_failures,
            ejection_ms: d.ejection_ms,
            max_ejection_ms: d.max_ejection_ms,
            max_retry_after_ms: d.max_retry_after_ms,
        }
    }
}

/// A model's `chains` and `sticky`, taken out of its wire entry.
pub(crate) struct WireModelChains {
    pub chains: Vec<WireChain>,
    pub sticky: Option<WireSticky>,
}

pub(crate) fn validate(
    targets: BTreeMap<String, WireTarget>,
    models: BTreeMap<String, WireModelChains>,
    failover: WireFailover,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Targets>, ConfigError> {
    if targets.is_empty() {
        if let Some(model) = models.keys().next() {
            return Err(ConfigError::new(
                format!("models.{model}.chains"),
                "names targets, but `targets` is empty",
            ));
        }
        return Ok(None);
    }
    if targets.len() > MAX_TARGETS {
        return Err(ConfigError::new(
            "targets",
            format!("at most {MAX_TARGETS} targets"),
        ));
    }
    let mut list = Vec::with_capacity(targets.len());
    for (name, target) in targets {
        let field = format!("targets.{name}");
        list.push(target.validate(name, &field, env)?);
    }
    let mut chains_by_model = BTreeMap::new();
    for (model, wire) in models {
        let field = format!("models.{model}");
        if wire.chains.is_empty() {
            return Err(ConfigError::new(
                format!("{field}.chains"),
                "must list at least one chain",
            ));
        }
        let mut chains = Vec::with_capacity(wire.chains.len());
        for (i, chain) in wire.chains.into_iter().enumerate() {
            let field = format!("{field}.chains[{i}]");
            if chain.cluster.trim().is_empty() {
                return Err(ConfigError::new(
                    format!("{field}.cluster"),
                    "must not be empty",
                ));
            }
            if chain.targets.is_empty() || chain.targets.len() > MAX_CHAIN_LENGTH {
                return Err(ConfigError::new(
                    format!("{field}.targets"),
                    format!("must list 1 to {MAX_CHAIN_LENGTH} targets"),
                ));
            }
            let mut indexes = Vec::with_capacity(chain.targets.len());
            for (j, name) in chain.targets.iter().enumerate() {
                let index = list
                    .iter()
                    .position(|t: &Target| &t.name == name)
                    .ok_or_else(|| {
                        ConfigError::new(
                            format!("{field}.targets[{j}]"),
                            format!("{name:?} is not in `targets`"),
                        )
                    })?;
                indexes.push(index);
            }
            chains.push(Chain {
                cluster: chain.cluster,
                targets: indexes,
                weight: chain.weight,
            });
        }
        let sticky = match wire.sticky {
            None => None,
            Some(WireSticky::Keyword(word)) if word == "user" => Some(Sticky::User),
            Some(WireSticky::Keyword(word)) => {
                return Err(ConfigError::new(
                    format!("{field}.sticky"),
                    format!("{word:?}: expected \"user\" or {{\"header\": \"<name>\"}}"),
                ));
            }
            Some(WireSticky::Header { header }) => Some(Sticky::Header(
                HeaderName::parse(&header)
                    .map_err(|msg| ConfigError::new(format!("{field}.sticky.header"), msg))?
                    .as_str()
                    .to_owned(),
            )),
        };
        chains_by_model.insert(model, ModelChains { chains, sticky });
    }
    let failover = failover.validate()?;
    let fingerprint = fingerprint(&list);
    let mut sticky_headers: Vec<String> = chains_by_model
        .values()
        .filter_map(|m: &ModelChains| match &m.sticky {
            Some(Sticky::Header(name)) => Some(name.clone()),
            _ => None,
        })
        .collect();
    sticky_headers.sort();
    sticky_headers.dedup();
    Ok(Some(Targets {
        targets: list,
        models: chains_by_model,
        failover,
        sticky_headers,
        fingerprint,
    }))
}

impl WireTarget {
    fn validate(
        self,
        name: String,
        field: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Target, ConfigError> {
        if name.trim().is_empty() || name.contains([',', ' ']) {
            return Err(ConfigError::new(
                field,
                "a target name must not be empty or contain commas or spaces",
            ));
        }
        let nonempty = |value: Option<String>, what: &str| match value {
            Some(v) if v.trim().is_empty() => Err(ConfigError::new(
                format!("{field}.{what}"),
                "must not be empty",
            )),
            other => Ok(other),
        };
        let model = nonempty(self.model, "model")?;
        let kind = match (self.pool, self.provider) {
            (Some(pool), None) => {
                for (set, what) in [
                    (self.api_key.is_some(), "api_key"),
                    (self.api_key_env.is_some(), "api_key_env"),
                    (self.anthropic_version.is_some(), "anthropic_version"),
                    (self.default_max_tokens.is_some(), "default_max_tokens"),
                ] {
                    if set {
                        return Err(ConfigError::new(
                            format!("{field}.{what}"),
                            "applies to providers only (pool targets use the pool's credential)",
                        ));
                    }
                }
                TargetKind::Pool {
                    pool: nonempty(Some(pool), "pool")?.unwrap_or_default(),
                    model,
                }
            }
            (None, Some(shape)) => {
                let model = model.ok_or_else(|| {
                    ConfigError::new(
                        format!("{field}.model"),
                        "a provider target needs its model name",
                    )
                })?;
                let api_key = match (self.api_key, self.api_key_env) {
                    (Some(_), Some(_)) => {
                        return Err(ConfigError::new(
                            format!("{field}.api_key_env"),
                            "set api_key or api_key_env, not both",
                        ));
                    }
                    (Some(key), None) => Some(key),
                    (None, Some(var)) => {
                        Some(env(&var).filter(|v| !v.is_empty()).ok_or_else(|| {
                            ConfigError::new(
                                format!("{field}.api_key_env"),
                                format!("the environment variable {var:?} is not set"),
                            )
                        })?)
                    }
                    (None, None) => None,
                };
                if api_key
                    .as_deref()
                    .is_some_and(|k| k.bytes().any(|b| b < 0x20 || b == 0x7f))
                {
                    return Err(ConfigError::new(
                        format!("{field}.api_key"),
                        "must be a valid header value",
                    ));
                }
                if self.default_max_tokens == Some(0) {
                    return Err(ConfigError::new(
                        format!("{field}.default_max_tokens"),
                        "must be greater than 0",
                    ));
                }
                TargetKind::Provider(Provider {
                    shape: match shape {
                        WireShape::Openai => Shape::OpenAiChat,
                        WireShape::Anthropic => Shape::AnthropicMessages,
                    },
                    model,
                    api_key,
                    anthropic_version: self
                        .anthropic_version
                        .unwrap_or_else(|| "2023-06-01".to_owned()),
                    default_max_tokens: self.default_max_tokens.unwrap_or(4096),
                })
            }
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(field, "set pool or provider, not both"));
            }
            (None, None) => {
                return Err(ConfigError::new(field, "set pool or provider"));
            }
        };
        Ok(Target { name, kind })
    }
}

impl WireFailover {
    fn validate(self) -> Result<Failover, ConfigError> {
        if self.eject_after_failures == 0 {
            return Err(ConfigError::new(
                "failover.eject_after_failures",
                "must be greater than 0",
            ));
        }
        if self.ejection_ms == 0 || self.max_ejection_ms < self.ejection_ms {
            return Err(ConfigError::new(
                "failover.max_ejection_ms",
                "ejection_ms must be greater than 0 and at most max_ejection_ms",
            ));
        }
        Ok(Failover {
            eject_after_failures: self.eject_after_failures,
            ejection_ms: self.ejection_ms,
            max_ejection_ms: self.max_ejection_ms,
            max_retry_after_ms: self.max_retry_after_ms,
        })
    }
}

/// A hash of the target names in order: the health table's entries are by index.
fn fingerprint(targets: &[Target]) -> u64 {
    let mut bytes = Vec::new();
    for target in targets {
        bytes.extend_from_slice(target.name.as_bytes());
        bytes.push(0);
    }
    xxhash_rust::xxh3::xxh3_64(&bytes)
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError};
    use crate::targets::{Sticky, TargetKind};
    use crate::translate::Shape;

    fn load(targets: &str, chains: &str) -> Result<Config, ConfigError> {
        let json = format!(
            r#"{{"models": {{"m": {{"pool": "p"}}, "gpt": {{{chains}}}}}, "targets": {{{targets}}}}}"#
        );
        Config::from_json(json.as_bytes())
    }

    fn field(targets: &str, chains: &str) -> String {
        load(targets, chains).unwrap_err().field
    }

    const TARGETS: &str = r#""oai": {"provider": "openai", "model": "gpt-4o", "api_key": "k"},
                             "local": {"pool": "p", "model": "m-lora"}"#;

    #[test]
    fn targets_and_chains_load() {
        let config = load(
            TARGETS,
            r#""chains": [{"cluster": "c1", "targets": ["oai", "local"], "weight": 9},
                          {"cluster": "c2", "targets": ["local"]}],
                "sticky": {"header": "X-Session-Id"}"#,
        )
        .unwrap();
        let targets = config.targets.unwrap();
        let oai = targets.get(targets.index_of("oai").unwrap()).unwrap();
        let TargetKind::Provider(provider) = &oai.kind else {
            panic!("a provider")
        };
        assert_eq!(provider.shape, Shape::OpenAiChat);
        assert_eq!(provider.api_key.as_deref(), Some("k"));
        assert!(
            !format!("{provider:?}").contains("\"k\""),
            "the key is never printed"
        );
        let model = targets.chains_of("gpt").unwrap();
        assert_eq!(model.chains[1].weight, 1, "weight defaults to 1");
        assert_eq!(model.sticky, Some(Sticky::Header("x-session-id".into())));
        assert_eq!(targets.sticky_headers, ["x-session-id"]);
    }

    #[test]
    fn errors_name_the_field() {
        let chain = r#""chains": [{"cluster": "c", "targets": ["oai"]}]"#;
        assert_eq!(
            field(
                TARGETS,
                r#""chains": [{"cluster": "c", "targets": ["nope"]}]"#
            ),
            "models.gpt.chains[0].targets[0]"
        );
        assert_eq!(
            field(TARGETS, r#""chains": [{"cluster": "c", "targets": []}]"#),
            "models.gpt.chains[0].targets"
        );
        assert_eq!(
            field(r#""x": {"provider": "openai"}"#, chain),
            "targets.x.model"
        );
        assert_eq!(
            field(
                r#""x": {"pool": "p", "provider": "openai", "model": "y"}"#,
                chain
            ),
            "targets.x"
        );
        assert_eq!(
            field(r#""x": {"pool": "p", "api_key": "k"}"#, chain),
            "targets.x.api_key"
        );
        assert_eq!(
            field(
                r#""x": {"provider": "anthropic", "model": "c", "api_key_env": "SLUICE_TEST_UNSET_VAR"}"#,
                chain
            ),
            "targets.x.api_key_env"
        );
        assert_eq!(
            field(TARGETS, &format!(r#"{chain}, "sticky": "moon""#)),
            "models.gpt.sticky"
        );
        assert_eq!(
            field(TARGETS, &format!(r#"{chain}, "pool": "p""#)),
            "models.gpt.pool"
        );
        assert_eq!(
            Config::from_json(br#"{"models": {"m": {"sticky": "user"}}}"#)
                .unwrap_err()
                .field,
            "models.m.sticky"
        );
    }
}
