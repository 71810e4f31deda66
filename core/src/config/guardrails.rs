//! The `guardrails` section: wire form and its compilation into `crate::guardrails::Guardrails`
//! (regular expressions and automatons built once per configuration). Errors name the field,
//! e.g. `guardrails.deny[0].patterns[1]: unclosed group`.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use super::error::ConfigError;
use crate::guardrails::{
    Action, DenySpec, Guardrails, GuardrailsSpec, PolicySpec, Roles, injection,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct WireGuardrails {
    /// Named policies; `default` applies when no tenant or model policy does (and is the
    /// default rule set when not given).
    pub policies: BTreeMap<String, WirePolicy>,
    /// Model (exact, `prefix*` or `*`) to policy name.
    pub models: BTreeMap<String, String>,
    /// Tenant id to policy name (used once requests carry a tenant).
    pub tenants: BTreeMap<String, String>,
    /// Envoy route name (`xds.route_name`) to policy name.
    pub routes: BTreeMap<String, String>,
    pub deny: Vec<WireDeny>,
    pub injection: WireInjection,
    /// Bytes of streamed text held back so detectors see matches that span events.
    pub stream_holdback_bytes: usize,
}

impl Default for WireGuardrails {
    fn default() -> Self {
        Self {
            policies: BTreeMap::new(),
            models: BTreeMap::new(),
            tenants: BTreeMap::new(),
            routes: BTreeMap::new(),
            deny: Vec::new(),
            injection: WireInjection::default(),
            stream_holdback_bytes: 256,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct WirePolicy {
    /// Rule id to action; absent: the default rule set.
    pub rules: Option<BTreeMap<String, WireAction>>,
    /// Rule id to action on responses; absent: `rules` without `prompt_injection`.
    pub response_rules: Option<BTreeMap<String, WireAction>>,
    /// Roles scanned in requests: system, user, assistant, tool, tool_definitions.
    pub roles: Vec<String>,
    /// Scan responses (JSON and streamed) too. On by default: a stream's text is held back
    /// only while a match could still be unfinished (about a word; at most
    /// `stream_holdback_bytes`).
    pub responses: bool,
    /// Models this policy allows (exact, `prefix*`); absent: any.
    pub models: Option<Vec<String>>,
    pub max_prompt_tokens: Option<u64>,
    pub max_output_tokens: Option<u64>,
}

impl Default for WirePolicy {
    fn default() -> Self {
        Self {
            rules: None,
            response_rules: None,
            roles: vec!["user".into(), "tool".into()],
            responses: true,
            models: None,
            max_prompt_tokens: None,
            max_output_tokens: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WireAction {
    Block,
    Redact,
    Log,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct WireDeny {
    pub id: String,
    pub words: Vec<String>,
    pub patterns: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct WireInjection {
    pub threshold: f32,
    /// Extra phrases and their weights, on top of the built-in list.
    pub phrases: BTreeMap<String, f32>,
}

impl Default for WireInjection {
    fn default() -> Self {
        Self {
            threshold: injection::DEFAULT_THRESHOLD,
            phrases: BTreeMap::new(),
        }
    }
}

/// The compiled guardrails, shared by every request of the VM. Compared by identity: two
/// configurations compile to different instances.
#[derive(Debug, Clone)]
pub struct GuardrailsConfig(pub Arc<Guardrails>);

impl PartialEq for GuardrailsConfig {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

fn actions(rules: BTreeMap<String, WireAction>) -> BTreeMap<String, Action> {
    rules
        .into_iter()
        .map(|(id, action)| {
            let action = match action {
                WireAction::Block => Action::Block,
                WireAction::Redact => Action::Redact,
                WireAction::Log => Action::Log,
            };
            (id, action)
        })
        .collect()
}

impl WireGuardrails {
    pub(crate) fn validate(self) -> Result<GuardrailsConfig, ConfigError> {
        let field = |f: &str| format!("guardrails.{f}");
        let mut policies = Vec::new();
        for (name, wire) in self.policies {
            let mut roles = Roles {
                system: false,
                user: false,
                assistant: false,
                tool_results: false,
                tool_definitions: false,
            };
            for (i, role) in wire.roles.iter().enumerate() {
                match role.as_str() {
                    "system" => roles.system = true,
                    "user" => roles.user = true,
                    "assistant" => roles.assistant = true,
                    "tool" => roles.tool_results = true,
                    "tool_definitions" => roles.tool_definitions = true,
                    other => {
                        return Err(ConfigError::new(
                            field(&format!("policies.{name}.roles[{i}]")),
                            format!(
                                "unknown role {other:?}; expected system, user, assistant, tool or tool_definitions"
                            ),
                        ));
                    }
                }
            }
            policies.push(PolicySpec {
                name,
                rules: wire.rules.map(actions),
                response_rules: wire.response_rules.map(actions),
                roles,
                responses: wire.responses,
                models: wire.models,
                max_prompt_tokens: wire.max_prompt_tokens,
                max_output_tokens: wire.max_output_tokens,
            });
        }
        let spec = GuardrailsSpec {
            policies,
            models: self.models,
            tenants: self.tenants,
            routes: self.routes,
            deny: self
                .deny
                .into_iter()
                .map(|d| DenySpec {
                    id: d.id,
                    words: d.words,
                    patterns: d.patterns,
                })
                .collect(),
            injection_phrases: self.injection.phrases,
            injection_threshold: self.injection.threshold,
            stream_holdback_bytes: self.stream_holdback_bytes,
        };
        Guardrails::build(spec)
            .map(|g| GuardrailsConfig(Arc::new(g)))
            .map_err(|e| ConfigError::new(field(&e.field), e.message))
    }
}
