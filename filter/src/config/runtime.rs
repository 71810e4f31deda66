//! The validated configuration the request path reads. Built once per `on_configure`; nothing on
//! the request path re-checks what is guaranteed here.

use super::error::ConfigError;
use super::header_name::HeaderName;
use super::wire::{WireConfig, WireLimits, WireRouting, WireTokens, WireUnhandledPaths};
use crate::picking::Picking;
use crate::routing::ModelCatalog;

pub(crate) const DEFAULT_MODEL_HEADER: &str = "x-sluice-model";
pub(crate) const DEFAULT_BASE_MODEL_HEADER: &str = "x-sluice-base-model";
/// Large enough for prompts with a few inline images; see README on Envoy's buffer limit.
pub(crate) const DEFAULT_MAX_REQUEST_BODY_BYTES: u64 = 8 * 1024 * 1024;

/// The header through which an endpoint picker tells Envoy's `override_host` load balancer which
/// replica to use. Same name as the Gateway API Inference Extension, so Sluice can stand where an
/// InferencePool expects a picker.
pub const DESTINATION_ENDPOINT_HEADER: &str = "x-gateway-destination-endpoint";

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub routing: Routing,
    pub limits: Limits,
    pub catalog: ModelCatalog,
    /// Replica picking; `None` leaves the choice to Envoy's load balancer.
    pub picking: Option<Picking>,
    pub tokens: Tokens,
    /// Identity and limits; `None` admits every request unauthenticated.
    pub quotas: Option<super::quotas::Quotas>,
    /// Compiled guardrails; `None`: off.
    pub guardrails: Option<super::GuardrailsConfig>,
}

/// Token accounting settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tokens {
    pub default_max_output_tokens: u64,
    pub stream_usage: bool,
    pub usage_header: bool,
    pub max_response_bytes: u64,
}

/// The response header carrying the counts when `tokens.usage_header` is on.
pub const USAGE_HEADER: &str = "x-sluice-usage";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routing {
    pub model_header: HeaderName,
    pub base_model_header: HeaderName,
    pub unhandled_paths: UnhandledPaths,
}

/// What happens to requests for paths the filter does not handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnhandledPaths {
    /// Forwarded untouched (other APIs, health checks...).
    Pass,
    /// Answered with 404.
    Reject,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_request_body_bytes: u64,
}

impl Config {
    /// Parses and validates the plugin configuration. Empty (or all-whitespace) input means "all
    /// defaults", which is what Envoy passes when the `configuration` field is absent; it is
    /// still rejected, because at least one model must be configured.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        match first {
            None => return WireConfig::default().validate(),
            // serde's derive would also accept a struct written as a JSON array; nobody means that.
            Some(b'{') => {}
            Some(_) => {
                return Err(ConfigError::new(
                    "(document)",
                    "the configuration must be a JSON object",
                ));
            }
        }
        let wire: WireConfig = serde_json::from_slice(bytes).map_err(|err| {
            let field = if err.is_syntax() || err.is_eof() {
                "(document)".to_owned()
            } else {
                match crate::json::path_at(bytes, err.line(), err.column()) {
                    path if path == "." => "(document)".to_owned(),
                    path => path,
                }
            };
            ConfigError::new(field, err.to_string())
        })?;
        wire.validate()
    }
}

impl WireConfig {
    fn validate(self) -> Result<Config, ConfigError> {
        Ok(Config {
            routing: self.routing.validate()?,
            limits: self.limits.validate()?,
            catalog: ModelCatalog::build(self.models, self.aliases)?,
            picking: self.picking.map(validate_picking).transpose()?,
            tokens: self.tokens.validate()?,
            quotas: self.quotas.map(|q| q.validate()).transpose()?,
            guardrails: self.guardrails.map(|g| g.validate()).transpose()?,
        })
    }
}

impl WireRouting {
    fn validate(self) -> Result<Routing, ConfigError> {
        let header = |field: &str, raw: &str| {
            HeaderName::parse(raw).map_err(|msg| ConfigError::new(field, msg))
        };
        let model_header = header("routing.model_header", &self.model_header)?;
        let base_model_header = header("routing.base_model_header", &self.base_model_header)?;
        if model_header.as_str() == DESTINATION_ENDPOINT_HEADER {
            return Err(ConfigError::new(
                "routing.model_header",
                format!("must differ from {DESTINATION_ENDPOINT_HEADER}"),
            ));
        }
        if base_model_header == model_header
            || base_model_header.as_str() == DESTINATION_ENDPOINT_HEADER
        {
            return Err(ConfigError::new(
                "routing.base_model_header",
                "must differ from the model header and the destination endpoint header",
            ));
        }
        Ok(Routing {
            model_header,
            base_model_header,
            unhandled_paths: match self.unhandled_paths {
                WireUnhandledPaths::Pass => UnhandledPaths::Pass,
                WireUnhandledPaths::Reject => UnhandledPaths::Reject,
            },
        })
    }
}

impl WireLimits {
    fn validate(self) -> Result<Limits, ConfigError> {
        if self.max_request_body_bytes == 0 {
            return Err(ConfigError::new(
                "limits.max_request_body_bytes",
                "must be greater than 0",
            ));
        }
        Ok(Limits {
            max_request_body_bytes: self.max_request_body_bytes,
        })
    }
}

impl WireTokens {
    fn validate(self) -> Result<Tokens, ConfigError> {
        if self.default_max_output_tokens == 0 {
            return Err(ConfigError::new(
                "tokens.default_max_output_tokens",
                "must be greater than 0",
            ));
        }
        Ok(Tokens {
            default_max_output_tokens: self.default_max_output_tokens,
            stream_usage: self.stream_usage,
            usage_header: self.usage_header,
            max_response_bytes: self.max_response_bytes,
        })
    }
}

/// Checks the values serde cannot: ranges and relations between fields.
fn validate_picking(picking: Picking) -> Result<Picking, ConfigError> {
    let field = |name: &str| format!("picking.{name}");
    if picking.picker_cluster.trim().is_empty() {
        return Err(ConfigError::new(
            field("picker_cluster"),
            "must not be empty",
        ));
    }
    if picking.picker_authority.trim().is_empty() {
        return Err(ConfigError::new(
            field("picker_authority"),
            "must not be empty",
        ));
    }
    if !(10..=60_000).contains(&picking.refresh_ms) {
        return Err(ConfigError::new(field("refresh_ms"), "must be 10 to 60000"));
    }
    if picking.stale_after_ms < picking.refresh_ms {
        return Err(ConfigError::new(
            field("stale_after_ms"),
            "must be at least refresh_ms",
        ));
    }
    if picking.fallbacks > 8 {
        return Err(ConfigError::new(field("fallbacks"), "must be at most 8"));
    }
    if picking.prefix_ttl_ms == 0 {
        return Err(ConfigError::new(
            field("prefix_ttl_ms"),
            "must be greater than 0",
        ));
    }
    let w = &picking.weights;
    for (name, value) in [
        ("queue", w.queue),
        ("kv_cache", w.kv_cache),
        ("running", w.running),
        ("in_flight", w.in_flight),
        ("prefix", w.prefix),
        ("lora", w.lora),
    ] {
        if !value.is_finite() || value < 0.0 {
            return Err(ConfigError::new(
                format!("picking.weights.{name}"),
                "must be a finite number, 0 or more",
            ));
        }
    }
    Ok(picking)
}

impl Routing {
    /// Request headers that steer routing inside the gateway. Only the filter may set them: any
    /// copy a client sends is removed before anything reads it.
    pub fn internal_headers(&self) -> [&str; 3] {
        [
            self.model_header.as_str(),
            self.base_model_header.as_str(),
            DESTINATION_ENDPOINT_HEADER,
        ]
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_family = "wasm")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::{Config, ConfigError, UnhandledPaths};

    const MODELS: &str = r#""models": {"m": {}}"#;

    fn error_of(json: &str) -> ConfigError {
        Config::from_json(json.as_bytes()).unwrap_err()
    }

    #[test]
    fn defaults_apply_to_every_optional_field() {
        let config = Config::from_json(format!("{{{MODELS}}}").as_bytes()).unwrap();
        assert_eq!(
            config.routing.internal_headers(),
            [
                "x-sluice-model",
                "x-sluice-base-model",
                "x-gateway-destination-endpoint"
            ]
        );
        assert_eq!(config.routing.unhandled_paths, UnhandledPaths::Pass);
        assert_eq!(config.limits.max_request_body_bytes, 8 * 1024 * 1024);
        assert_eq!(config.picking, None);
        let with_picking =
            Config::from_json(format!("{{{MODELS},\"picking\":{{}}}}").as_bytes()).unwrap();
        let picking = with_picking.picking.unwrap();
        assert_eq!(picking.picker_cluster, "sluice_picker");
        assert_eq!((picking.refresh_ms, picking.fallbacks), (100, 2));
    }

    #[test]
    fn guardrail_routes_and_response_rules_are_validated_by_field() {
        let config = Config::from_json(
            format!(
                r#"{{{MODELS},"guardrails":{{"routes":{{"partner":"strict"}},
                "policies":{{"strict":{{"response_rules":{{"email":"block"}}}}}}}}}}"#
            )
            .as_bytes(),
        )
        .unwrap();
        let guardrails = config.guardrails.unwrap().0;
        assert!(guardrails.has_route_policies());
        let strict = guardrails.policy_for(Some("partner"), None, "m");
        assert_eq!(guardrails.policies[strict].name, "strict");
        // Response scanning is on unless a policy turns it off.
        assert!(guardrails.policies[strict].responses);
        let cases = [
            (
                r#"{"routes":{"partner":"nope"}}"#,
                "guardrails.routes.partner",
            ),
            (
                r#"{"policies":{"p":{"response_rules":{"emial":"block"}}}}"#,
                "guardrails.policies.p.response_rules.emial",
            ),
            (
                r#"{"policies":{"p":{"response_rule":{}}}}"#,
                "guardrails.policies.p.response_rule",
            ),
        ];
        for (guardrails, field) in cases {
            let err = error_of(&format!("{{{MODELS},\"guardrails\":{guardrails}}}"));
            assert!(err.field.starts_with(field), "{guardrails}: {err:?}");
        }
    }

    #[test]
    fn an_empty_configuration_asks_for_models() {
        for input in ["", "  \n", "{}"] {
            let err = error_of(input);
            assert_eq!(err.field, "models", "{input:?}");
        }
    }

    #[test]
    fn custom_values_are_applied() {
        let config = Config::from_json(
            format!(
                r#"{{"routing":{{"model_header":"X-Model","base_model_header":"x-base",
                "unhandled_paths":"reject"}},"limits":{{"max_request_body_bytes":10}},{MODELS}}}"#
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(
            config.routing.internal_headers(),
            ["x-model", "x-base", "x-gateway-destination-endpoint"]
        );
        assert_eq!(config.routing.unhandled_paths, UnhandledPaths::Reject);
        assert_eq!(config.limits.max_request_body_bytes, 10);
    }

    #[test]
    fn unknown_fields_are_named() {
        let err = error_of(r#"{"routing":{"modle_header":"x"}}"#);
        assert_eq!(err.field, "routing.modle_header");
        assert!(
            err.message.contains("unknown field `modle_header`"),
            "{err}"
        );

        let err = error_of(r#"{"routng":{}}"#);
        assert_eq!(err.field, "routng");

        let err = error_of(r#"{"models":{"m":{"context":1}}}"#);
        assert_eq!(err.field, "models.m.context");
        let err = error_of(r#"{"models":{"m":{}},"tokens":{"header":true}}"#);
        assert_eq!(err.field, "tokens.header");
    }

    #[test]
    fn wrong_types_are_named() {
        let err = error_of(r#"{"routing":{"model_header":42}}"#);
        assert_eq!(err.field, "routing.model_header");
        assert!(err.message.contains("expected a string"), "{err}");
        let err = error_of(r#"{"routing":{"unhandled_paths":"drop"}}"#);
        assert_eq!(err.field, "routing.unhandled_paths");
        let err = error_of(r#"{"models":{"m":{"context_window":-1}}}"#);
        assert_eq!(err.field, "models.m.context_window");
    }

    #[test]
    fn invalid_values_are_named() {
        let cases = [
            (
                r#"{"routing":{"model_header":"bad header"}}"#,
                "routing.model_header",
            ),
            (
                r#"{"routing":{"model_header":"X-Gateway-Destination-Endpoint"}}"#,
                "routing.model_header",
            ),
            (
                r#"{"routing":{"base_model_header":"x-sluice-model"}}"#,
                "routing.base_model_header",
            ),
            (
                r#"{"limits":{"max_request_body_bytes":0}}"#,
                "limits.max_request_body_bytes",
            ),
            (r#"{"models":{"m":{}},"aliases":{"a":"nope"}}"#, "aliases.a"),
            (
                r#"{"models":{"m":{}},"picking":{"refresh_ms":5}}"#,
                "picking.refresh_ms",
            ),
            (
                r#"{"models":{"m":{}},"picking":{"refresh_ms":500,"stale_after_ms":100}}"#,
                "picking.stale_after_ms",
            ),
            (
                r#"{"models":{"m":{}},"picking":{"weights":{"queue":-1}}}"#,
                "picking.weights.queue",
            ),
            (
                r#"{"models":{"m":{}},"picking":{"picker_cluster":""}}"#,
                "picking.picker_cluster",
            ),
            (
                r#"{"models":{"m":{"tokenizer":"gpt2"}}}"#,
                "models.m.tokenizer",
            ),
            (
                r#"{"models":{"m":{"default_max_output_tokens":0}}}"#,
                "models.m.default_max_output_tokens",
            ),
            (
                r#"{"models":{"m":{}},"tokens":{"default_max_output_tokens":0}}"#,
                "tokens.default_max_output_tokens",
            ),
        ];
        for (json, field) in cases {
            let err = error_of(json);
            assert_eq!(err.field, field, "{json}: {err}");
            assert!(err.to_string().starts_with(&format!("{field}: ")));
        }
    }

    #[test]
    fn malformed_json_is_a_document_error() {
        for input in ["{", "[]", "{} {}", "\u{feff}{}", "null"] {
            let err = error_of(input);
            assert_eq!(err.field, "(document)", "{input:?}: {err}");
        }
    }
}
