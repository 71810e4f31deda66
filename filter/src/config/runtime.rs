//! The validated configuration the request path reads. Built once per `on_configure`; nothing on
//! the request path re-checks what is guaranteed here.

use super::error::ConfigError;
use super::header_name::HeaderName;
use super::wire::{WireConfig, WireRouting};

pub(crate) const DEFAULT_MODEL_HEADER: &str = "x-sluice-model";

/// The header through which an endpoint picker tells Envoy's `override_host` load balancer which
/// replica to use. Same name as the Gateway API Inference Extension, so Sluice can stand where an
/// InferencePool expects a picker.
pub const DESTINATION_ENDPOINT_HEADER: &str = "x-gateway-destination-endpoint";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub routing: Routing,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routing {
    pub model_header: HeaderName,
}

impl Config {
    /// Parses and validates the plugin configuration. Empty (or all-whitespace) input means "all
    /// defaults", which is what Envoy passes when the `configuration` field is absent.
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
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let wire: WireConfig = serde_path_to_error::deserialize(&mut de).map_err(|err| {
            let path = err.path().to_string();
            let inner = err.into_inner();
            let field = if inner.is_syntax() || inner.is_eof() || path == "." {
                "(document)".to_owned()
            } else {
                path
            };
            ConfigError::new(field, inner.to_string())
        })?;
        de.end()
            .map_err(|err| ConfigError::new("(document)", err.to_string()))?;
        wire.validate()
    }
}

impl WireConfig {
    fn validate(self) -> Result<Config, ConfigError> {
        Ok(Config {
            routing: self.routing.validate()?,
        })
    }
}

impl WireRouting {
    fn validate(self) -> Result<Routing, ConfigError> {
        let model_header = HeaderName::parse(&self.model_header)
            .map_err(|msg| ConfigError::new("routing.model_header", msg))?;
        if model_header.as_str() == DESTINATION_ENDPOINT_HEADER {
            return Err(ConfigError::new(
                "routing.model_header",
                format!("must differ from {DESTINATION_ENDPOINT_HEADER}"),
            ));
        }
        Ok(Routing { model_header })
    }
}

impl Routing {
    /// Request headers that steer routing inside the gateway. Only the filter may set them: any
    /// copy a client sends is removed before anything reads it.
    pub fn internal_headers(&self) -> [&str; 2] {
        [self.model_header.as_str(), DESTINATION_ENDPOINT_HEADER]
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_family = "wasm")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::{Config, ConfigError};

    fn error_of(json: &str) -> ConfigError {
        Config::from_json(json.as_bytes()).unwrap_err()
    }

    #[test]
    fn empty_configuration_means_defaults() {
        for input in ["", "  \n", "{}", r#"{"routing":{}}"#] {
            let config = Config::from_json(input.as_bytes()).unwrap();
            assert_eq!(config.routing.model_header.as_str(), "x-sluice-model");
        }
    }

    #[test]
    fn custom_model_header_is_lowercased() {
        let config = Config::from_json(br#"{"routing":{"model_header":"X-Model"}}"#).unwrap();
        assert_eq!(
            config.routing.internal_headers(),
            ["x-model", "x-gateway-destination-endpoint"]
        );
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
    }

    #[test]
    fn wrong_types_are_named() {
        let err = error_of(r#"{"routing":{"model_header":42}}"#);
        assert_eq!(err.field, "routing.model_header");
        assert!(err.message.contains("expected a string"), "{err}");
    }

    #[test]
    fn invalid_values_are_named() {
        let err = error_of(r#"{"routing":{"model_header":"bad header"}}"#);
        assert_eq!(err.field, "routing.model_header");
        let err = error_of(r#"{"routing":{"model_header":"X-Gateway-Destination-Endpoint"}}"#);
        assert_eq!(err.field, "routing.model_header");
        assert!(err.to_string().starts_with("routing.model_header: "));
    }

    #[test]
    fn malformed_json_is_a_document_error() {
        for input in ["{", "[]", "{} {}", "\u{feff}{}", "null"] {
            let err = error_of(input);
            assert_eq!(err.field, "(document)", "{input:?}: {err}");
        }
    }
}
