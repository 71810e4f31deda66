//! `GET /v1/models`, answered from the configuration in the caller's format. Rendered once at
//! configure time; serving it is a copy.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::error::ApiFlavor;
use crate::routing::ModelCatalog;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelsList {
    openai: String,
    anthropic: String,
}

#[derive(Serialize)]
struct OpenAiList<'a> {
    object: &'static str,
    data: Vec<OpenAiModel<'a>>,
}

#[derive(Serialize)]
struct OpenAiModel<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    owned_by: &'a str,
}

#[derive(Serialize)]
struct AnthropicList<'a> {
    data: Vec<AnthropicModel<'a>>,
    has_more: bool,
    first_id: Option<&'a str>,
    last_id: Option<&'a str>,
}

#[derive(Serialize)]
struct AnthropicModel<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    display_name: &'a str,
    created_at: &'a str,
}

impl ModelsList {
    /// `created_unix`: when the configuration was loaded, shown as the models' creation time.
    pub fn new(catalog: &ModelCatalog, created_unix: u64) -> Self {
        let models = catalog.listed_models();
        let openai = OpenAiList {
            object: "list",
            data: models
                .iter()
                .map(|m| OpenAiModel {
                    id: &m.id,
                    object: "model",
                    created: created_unix,
                    owned_by: &m.owned_by,
                })
                .collect(),
        };
        let created_at = humantime::format_rfc3339_seconds(
            SystemTime::UNIX_EPOCH
                .checked_add(Duration::from_secs(created_unix))
                .unwrap_or(SystemTime::UNIX_EPOCH),
        )
        .to_string();
        let anthropic = AnthropicList {
            data: models
                .iter()
                .map(|m| AnthropicModel {
                    kind: "model",
                    id: &m.id,
                    display_name: &m.id,
                    created_at: &created_at,
                })
                .collect(),
            has_more: false,
            first_id: models.first().map(|m| m.id.as_str()),
            last_id: models.last().map(|m| m.id.as_str()),
        };
        Self {
            openai: serde_json::to_string(&openai).unwrap_or_default(),
            anthropic: serde_json::to_string(&anthropic).unwrap_or_default(),
        }
    }

    pub fn body(&self, flavor: ApiFlavor) -> &str {
        match flavor {
            ApiFlavor::OpenAi => &self.openai,
            ApiFlavor::Anthropic => &self.anthropic,
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_family = "wasm")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::ModelsList;
    use crate::config::Config;
    use crate::error::ApiFlavor;

    #[test]
    fn both_formats_list_models_adapters_and_aliases() {
        let config = Config::from_json(
            br#"{"models":{"llama":{"pool":"gpu","adapters":["sql"]},"gpt-*":{}},
                "aliases":{"fast":"llama"}}"#,
        )
        .unwrap();
        let list = ModelsList::new(&config.catalog, 1_700_000_000);
        assert_eq!(
            list.body(ApiFlavor::OpenAi),
            r#"{"object":"list","data":[{"id":"fast","object":"model","created":1700000000,"owned_by":"gpu"},{"id":"llama","object":"model","created":1700000000,"owned_by":"gpu"},{"id":"sql","object":"model","created":1700000000,"owned_by":"gpu"}]}"#
        );
        assert_eq!(
            list.body(ApiFlavor::Anthropic),
            r#"{"data":[{"type":"model","id":"fast","display_name":"fast","created_at":"2023-11-14T22:13:20Z"},{"type":"model","id":"llama","display_name":"llama","created_at":"2023-11-14T22:13:20Z"},{"type":"model","id":"sql","display_name":"sql","created_at":"2023-11-14T22:13:20Z"}],"has_more":false,"first_id":"fast","last_id":"sql"}"#
        );
    }
}
