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
    /// Flow control; `None`: a saturated pool sheds (or Envoy queues) instead of holding.
    pub flow_control: Option<crate::flow::FlowControl>,
    pub tokens: Tokens,
    /// Identity and limits; `None` admits every request unauthenticated.
    pub quotas: Option<super::quotas::Quotas>,
    /// Compiled guardrails; `None`: off.
    pub guardrails: Option<super::GuardrailsConfig>,
    /// Targets, chains and failover; `None`: every model goes to its pool.
    pub targets: Option<crate::targets::Targets>,
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
    /// Path prefixes forwarded unread (admitted against the caller's request limits), without
    /// a trailing `/`: `""` stands for `/`, every path.
    pub passthrough_paths: Vec<String>,
}

/// What happens to requests for paths the filter does not handle (neither an inference API nor
/// `/v1/models`) and `passthrough_paths` does not list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnhandledPaths {
    /// Forwarded unread, like a passthrough path (other APIs, the model server's own
    /// endpoints: `/metrics`, `/health`...).
    Pass,
    /// Answered with 404 in the API's error format: the default, so that nothing reaches a
    /// model server that the configuration did not name.
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
    fn validate(mut self) -> Result<Config, ConfigError> {
        let mut chains = std::collections::BTreeMap::new();
        for (name, model) in &mut self.models {
            if model.chains.is_empty() {
                if model.sticky.is_some() {
                    return Err(ConfigError::new(
                        format!("models.{name}.sticky"),
                        "applies to models with chains",
                    ));
                }
                continue;
            }
            if name.contains('*') {
                return Err(ConfigError::new(
                    format!("models.{name}.chains"),
                    "chains are for exact model names (alias patterns to one instead)",
                ));
            }
            if model.pool.is_some() {
                return Err(ConfigError::new(
                    format!("models.{name}.pool"),
                    "set pool or chains, not both",
                ));
            }
            // Listed (`/v1/models`) as owned by its first chain's cluster; the chain chosen
            // per request decides where it goes.
            model.pool = model.chains.first().map(|c| c.cluster.clone());
            chains.insert(
                name.clone(),
                super::targets::WireModelChains {
                    chains: std::mem::take(&mut model.chains),
                    sticky: model.sticky.take(),
                },
            );
        }
        let targets = super::targets::validate(
            std::mem::take(&mut self.targets),
            chains,
            std::mem::take(&mut self.failover),
            &|var| std::env::var(var).ok(),
        )?;
        Ok(Config {
            targets,
            routing: self.routing.validate()?,
            limits: self.limits.validate()?,
            catalog: ModelCatalog::build(self.models, self.aliases)?,
            flow_control: match (self.flow_control, &self.picking) {
                (Some(_), None) => {
                    return Err(ConfigError::new(
                        "flow_control",
                        "needs picking: saturation is judged from the picker's snapshot",
                    ));
                }
                (flow_control, _) => flow_control.map(|f| f.validate()).transpose()?,
            },
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
        let mut passthrough_paths = Vec::with_capacity(self.passthrough_paths.len());
        for (i, prefix) in self.passthrough_paths.iter().enumerate() {
            let field = format!("routing.passthrough_paths[{i}]");
            if !is_plain_path(prefix) || prefix.contains(['?', '#']) {
                return Err(ConfigError::new(
                    field,
                    "must be a path starting with `/`, without a query, dot segments, `//`, \
                     `\\` or percent-encoded `.`, `/` or `\\`",
                ));
            }
            let prefix = prefix.strip_suffix('/').unwrap_or(prefix).to_owned();
            if passthrough_paths.contains(&prefix) {
                return Err(ConfigError::new(field, "is listed twice"));
            }
            passthrough_paths.push(prefix);
        }
        Ok(Routing {
            model_header,
            base_model_header,
            unhandled_paths: match self.unhandled_paths {
                WireUnhandledPaths::Pass => UnhandledPaths::Pass,
                WireUnhandledPaths::Reject => UnhandledPaths::Reject,
            },
            passthrough_paths,
        })
    }
}

/// Whether `path` (its part before `?`) names one resource however a server reads it: no `.`
/// or `..` segment, no empty segment (`//`), no backslash and no percent-encoded `.`, `/` or
/// `\\`. A prefix check on anything else could be walked around (`/tokenize/../metrics`, which
/// some servers resolve to `/metrics`).
pub(crate) fn is_plain_path(path: &str) -> bool {
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    if path.contains('\\') {
        return false;
    }
    let lower = path.to_ascii_lowercase();
    if ["%2e", "%2f", "%5c"].iter().any(|e| lower.contains(e)) {
        return false;
    }
    // The last segment may be empty: a trailing `/` (or the path `/` itself).
    let mut segments = rest.split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        if segment == "." || segment == ".." || (segment.is_empty() && !last) {
            return false;
        }
    }
    true
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
    /// Whether a request for `path`, which the filter does not handle itself, goes upstream:
    /// `passthrough_paths` lists a prefix of it (whole segments: `/tokenize` passes
    /// `/tokenize`, `/tokenize/` and `/tokenize?x`, not `/tokenizer`), or `unhandled_paths` is
    /// `pass`. A path that is not plain never passes.
    pub fn passes_through(&self, path: &str) -> bool {
        if !is_plain_path(path) {
            return false;
        }
        if self.unhandled_paths == UnhandledPaths::Pass {
            return true;
        }
        let path = path.split(['?', '#']).next().unwrap_or(path);
        self.passthrough_paths.iter().any(|prefix| {
            path.strip_prefix(prefix.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
    }

    /// Request headers that steer routing inside the gateway. Only the filter may set them: any
    /// copy a client sends is removed before anything reads it.
    /// Request headers only the gateway may set: they steer routing (the model headers, the
    /// replica, the chain's cluster) or the upstream attempts (the plan).
    pub fn internal_headers(&self) -> [&str; 5] {
        [
            self.model_header.as_str(),
            self.base_model_header.as_str(),
            DESTINATION_ENDPOINT_HEADER,
            crate::targets::CLUSTER_HEADER,
            crate::targets::PLAN_HEADER,
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
                "x-gateway-destination-endpoint",
                "x-sluice-cluster",
                "x-sluice-plan",
            ]
        );
        assert_eq!(config.routing.unhandled_paths, UnhandledPaths::Reject);
        assert!(config.routing.passthrough_paths.is_empty());
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
                "unhandled_paths":"pass"}},"limits":{{"max_request_body_bytes":10}},{MODELS}}}"#
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(
            config.routing.internal_headers(),
            [
                "x-model",
                "x-base",
                "x-gateway-destination-endpoint",
                "x-sluice-cluster",
                "x-sluice-plan",
            ]
        );
        assert_eq!(config.routing.unhandled_paths, UnhandledPaths::Pass);
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
            (
                r#"{"models":{"m":{}},"quotas":{"tenancy":{"refresh_ms":50}}}"#,
                "quotas.tenancy.refresh_ms",
            ),
            (
                r#"{"models":{"m":{}},"quotas":{"tenancy":{"picker_cluster":" "}}}"#,
                "quotas.tenancy.picker_cluster",
            ),
            (
                r#"{"models":{"m":{}},"quotas":{"tenancy":{"picker_authority":""}}}"#,
                "quotas.tenancy.picker_authority",
            ),
            (
                r#"{"models":{"m":{}},"quotas":{"default_tenant":{"limits":{"budgets":[{"period":"day","usd":0}]}}}}"#,
                "quotas.default_tenant.limits.budgets[0].usd",
            ),
        ];
        for (json, field) in cases {
            let err = error_of(json);
            assert_eq!(err.field, field, "{json}: {err}");
            assert!(err.to_string().starts_with(&format!("{field}: ")));
        }
    }

    #[test]
    fn the_tenancy_has_defaults_and_syncs_alone_or_on_the_clusters_tick() {
        let quotas = |extra: &str| {
            Config::from_json(format!(r#"{{{MODELS},"quotas":{{{extra}}}}}"#).as_bytes())
                .unwrap()
                .quotas
                .unwrap()
        };
        assert_eq!(quotas("").sync_target(), None);
        let alone = quotas(r#""tenancy":{}"#);
        let tenancy = alone.tenancy.clone().unwrap();
        assert_eq!(
            (
                tenancy.picker_cluster.as_str(),
                tenancy.picker_authority.as_str(),
                tenancy.refresh_ms
            ),
            ("sluice_picker", "sluice-picker", 1000)
        );
        assert_eq!(alone.sync_target().unwrap().period_ms, 1000);
        let both = quotas(r#""tenancy":{"picker_cluster":"admin"},"cluster":{"sync_ms":100}"#);
        let target = both.sync_target().unwrap();
        assert_eq!(
            (target.picker_cluster, target.period_ms),
            ("sluice_picker", 100)
        );
    }

    #[test]
    fn passthrough_paths_match_whole_segments_of_plain_paths() {
        let config = Config::from_json(
            format!(
                r#"{{{MODELS},"routing":{{"passthrough_paths":["/tokenize","/v1/rerank/"]}}}}"#
            )
            .as_bytes(),
        )
        .unwrap();
        let routing = &config.routing;
        assert_eq!(routing.passthrough_paths, ["/tokenize", "/v1/rerank"]);
        for path in [
            "/tokenize",
            "/tokenize/",
            "/tokenize?model=m",
            "/tokenize/batch",
            "/v1/rerank",
        ] {
            assert!(routing.passes_through(path), "{path}");
        }
        for path in [
            "/tokenizer",
            "/metrics",
            "/health",
            "/",
            "",
            "tokenize",
            "/tokenize/../metrics",
            "/tokenize/..",
            "/tokenize/./x",
            "/tokenize//x",
            "//tokenize",
            "/tokenize/%2e%2e/metrics",
            "/tokenize%2F..%2Fmetrics",
            "/tokenize\\..\\metrics",
            "/v1/rerankx",
        ] {
            assert!(!routing.passes_through(path), "{path}");
        }
        // `/` lists every plain path; so does `unhandled_paths: pass`.
        for routing in [
            r#""passthrough_paths":["/"]"#,
            r#""unhandled_paths":"pass""#,
        ] {
            let config =
                Config::from_json(format!("{{{MODELS},\"routing\":{{{routing}}}}}").as_bytes())
                    .unwrap();
            assert!(config.routing.passes_through("/metrics"), "{routing}");
            assert!(config.routing.passes_through("/"), "{routing}");
            assert!(!config.routing.passes_through("/a/../metrics"), "{routing}");
        }
        for (paths, field) in [
            (r#"["tokenize"]"#, "routing.passthrough_paths[0]"),
            (r#"["/ok","/a/../b"]"#, "routing.passthrough_paths[1]"),
            (r#"["/a?x=1"]"#, "routing.passthrough_paths[0]"),
            (r#"["/a","/a/"]"#, "routing.passthrough_paths[1]"),
        ] {
            let err = error_of(&format!(
                r#"{{{MODELS},"routing":{{"passthrough_paths":{paths}}}}}"#
            ));
            assert_eq!(err.field, field, "{paths}: {err}");
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
