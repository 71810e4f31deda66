//! The plugin configuration: JSON as users write it (`wire`), validated once at configure time
//! into the runtime form the request path reads (`runtime`). Every error names the offending
//! field.

mod error;
mod flow_control;
mod guardrails;
mod header_name;
pub mod quotas;
mod runtime;
mod targets;
pub(crate) mod wire;

pub use error::ConfigError;
pub use guardrails::GuardrailsConfig;
pub use header_name::HeaderName;
pub use runtime::{
    Config, DESTINATION_ENDPOINT_HEADER, Limits, Routing, Tokens, USAGE_HEADER, UnhandledPaths,
};
