//! The model catalog, built once from the `models` and `aliases` configuration.
//!
//! Resolution order for a requested name: an exact model, adapter or alias; then the longest
//! matching `prefix*` pattern (a model family served under its own names, or an alias that
//! rewrites); then the catch-all `*`. Anything else is unknown.

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::config::ConfigError;
use crate::config::wire::WireModel;
use crate::tokens::Family;

/// What the gateway knows about a served model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    /// The backend or replica pool that serves the model.
    pub pool: String,
    /// Prompt plus output tokens the model accepts, when known.
    pub context_window: Option<u64>,
    /// Tokenizer family; `None`: guessed from the requested model's name.
    pub tokenizer: Option<Family>,
    /// Output budget when a request sets none; `None`: the global default.
    pub default_max_output_tokens: Option<u64>,
}

/// A requested model name, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution<'a> {
    /// The name the upstream serves; differs from the requested one when an alias rewrote it.
    pub model: Cow<'a, str>,
    /// The base model whose pool serves `model` (equal to it unless it is a LoRA adapter).
    pub base_model: Cow<'a, str>,
    pub spec: &'a ModelSpec,
    /// Whether the body's `model` must be rewritten to `model`.
    pub rewritten: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Exact {
    /// Index into `specs`.
    Model(usize),
    Adapter {
        base: String,
        spec: usize,
    },
    Alias(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    /// A model family: requests keep their own model name.
    Family(usize),
    /// Rewrites to an exact model or adapter.
    Alias(String),
}

/// A model id listed by `GET /v1/models`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedModel {
    pub id: String,
    pub owned_by: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModelCatalog {
    specs: Vec<ModelSpec>,
    exact: BTreeMap<String, Exact>,
    /// Longest prefix first.
    prefixes: Vec<(String, Pattern)>,
    catch_all: Option<Pattern>,
}

/// A configured name: `*`, `prefix*` or exact.
enum Key<'a> {
    CatchAll,
    Prefix(&'a str),
    Exact(&'a str),
}

fn parse_key<'a>(key: &'a str, field: &str) -> Result<Key<'a>, ConfigError> {
    if key.trim().is_empty() {
        return Err(ConfigError::new(field, "a model name must not be empty"));
    }
    match key.find('*') {
        None => Ok(Key::Exact(key)),
        Some(_) if key == "*" => Ok(Key::CatchAll),
        Some(at) if at.saturating_add(1) == key.len() => Ok(Key::Prefix(key.trim_end_matches('*'))),
        Some(_) => Err(ConfigError::new(
            field,
            format!("{key:?}: `*` is only allowed at the end of a name"),
        )),
    }
}

impl ModelCatalog {
    pub(crate) fn build(
        models: BTreeMap<String, WireModel>,
        aliases: BTreeMap<String, String>,
    ) -> Result<Self, ConfigError> {
        if models.is_empty() {
            return Err(ConfigError::new(
                "models",
                "at least one model is required (a \"*\" entry accepts any model)",
            ));
        }
        let mut catalog = Self::default();
        for (name, model) in models {
            let field = format!("models.{name}");
            let spec_index = catalog.specs.len();
            if model.context_window == Some(0) {
                return Err(ConfigError::new(
                    format!("{field}.context_window"),
                    "must be greater than 0",
                ));
            }
            let pool = model.pool.unwrap_or_else(|| name.clone());
            if pool.trim().is_empty() {
                return Err(ConfigError::new(
                    format!("{field}.pool"),
                    "must not be empty",
                ));
            }
            let tokenizer = match &model.tokenizer {
                None => None,
                Some(name) => Some(Family::from_name(name).ok_or_else(|| {
                    ConfigError::new(
                        format!("{field}.tokenizer"),
                        format!("unknown tokenizer {name:?}; expected o200k, cl100k, llama3, qwen or claude"),
                    )
                })?),
            };
            if model.default_max_output_tokens == Some(0) {
                return Err(ConfigError::new(
                    format!("{field}.default_max_output_tokens"),
                    "must be greater than 0",
                ));
            }
            catalog.specs.push(ModelSpec {
                pool,
                context_window: model.context_window,
                tokenizer,
                default_max_output_tokens: model.default_max_output_tokens,
            });
            match parse_key(&name, &field)? {
                Key::Exact(exact) => {
                    catalog.insert_exact(exact, Exact::Model(spec_index), &field)?;
                }
                Key::Prefix(prefix) => catalog
                    .prefixes
                    .push((prefix.to_owned(), Pattern::Family(spec_index))),
                Key::CatchAll => catalog.catch_all = Some(Pattern::Family(spec_index)),
            }
            if !model.adapters.is_empty() && !matches!(parse_key(&name, &field)?, Key::Exact(_)) {
                return Err(ConfigError::new(
                    format!("{field}.adapters"),
                    "adapters need an exact base model name",
                ));
            }
            for (i, adapter) in model.adapters.iter().enumerate() {
                let adapter_field = format!("{field}.adapters[{i}]");
                let Key::Exact(adapter_name) = parse_key(adapter, &adapter_field)? else {
                    return Err(ConfigError::new(adapter_field, "must be an exact name"));
                };
                let entry = Exact::Adapter {
                    base: name.clone(),
                    spec: spec_index,
                };
                catalog.insert_exact(adapter_name, entry, &adapter_field)?;
            }
        }
        for (name, target) in aliases {
            let field = format!("aliases.{name}");
            if !matches!(
                catalog.exact.get(&target),
                Some(Exact::Model(_) | Exact::Adapter { .. })
            ) {
                return Err(ConfigError::new(
                    field,
                    format!("target {target:?} is not an exact model or adapter in `models`"),
                ));
            }
            match parse_key(&name, &field)? {
                Key::Exact(exact) => catalog.insert_exact(exact, Exact::Alias(target), &field)?,
                Key::Prefix(prefix) => {
                    if catalog.prefixes.iter().any(|(p, _)| p == prefix) {
                        return Err(ConfigError::new(
                            field,
                            format!("{name:?} is also a model family in `models`"),
                        ));
                    }
                    catalog
                        .prefixes
                        .push((prefix.to_owned(), Pattern::Alias(target)));
                }
                Key::CatchAll => {
                    if catalog.catch_all.is_some() {
                        return Err(ConfigError::new(
                            field,
                            "\"*\" is also a model in `models`; keep one of them",
                        ));
                    }
                    catalog.catch_all = Some(Pattern::Alias(target));
                }
            }
        }
        catalog
            .prefixes
            .sort_by(|(a, _), (b, _)| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        Ok(catalog)
    }

    fn insert_exact(&mut self, name: &str, entry: Exact, field: &str) -> Result<(), ConfigError> {
        if self.exact.contains_key(name) {
            return Err(ConfigError::new(
                field,
                format!("{name:?} is already defined as a model, adapter or alias"),
            ));
        }
        self.exact.insert(name.to_owned(), entry);
        Ok(())
    }

    /// Resolves the model a client asked for; `None` when the gateway does not serve it.
    pub fn resolve<'a>(&'a self, requested: &'a str) -> Option<Resolution<'a>> {
        if let Some(entry) = self.exact.get(requested) {
            return self.resolve_exact(requested, entry, false);
        }
        let pattern = self
            .prefixes
            .iter()
            .find(|(prefix, _)| requested.starts_with(prefix.as_str()))
            .map(|(_, pattern)| pattern)
            .or(self.catch_all.as_ref())?;
        match pattern {
            Pattern::Family(spec) => Some(Resolution {
                model: Cow::Borrowed(requested),
                base_model: Cow::Borrowed(requested),
                spec: self.specs.get(*spec)?,
                rewritten: false,
            }),
            Pattern::Alias(target) => {
                let entry = self.exact.get(target)?;
                self.resolve_exact(target, entry, true)
            }
        }
    }

    fn resolve_exact<'a>(
        &'a self,
        name: &'a str,
        entry: &'a Exact,
        rewritten: bool,
    ) -> Option<Resolution<'a>> {
        match entry {
            Exact::Model(spec) => Some(Resolution {
                model: Cow::Borrowed(name),
                base_model: Cow::Borrowed(name),
                spec: self.specs.get(*spec)?,
                rewritten,
            }),
            Exact::Adapter { base, spec } => Some(Resolution {
                model: Cow::Borrowed(name),
                base_model: Cow::Borrowed(base),
                spec: self.specs.get(*spec)?,
                rewritten,
            }),
            // Validation guarantees alias targets are models or adapters: no chains, no loops.
            Exact::Alias(target) => match self.exact.get(target)? {
                Exact::Alias(_) => None,
                target_entry => self.resolve_exact(target, target_entry, true),
            },
        }
    }

    /// Every pool a model is served by, each once.
    pub fn pools(&self) -> Vec<&str> {
        let mut pools: Vec<&str> = self.specs.iter().map(|spec| spec.pool.as_str()).collect();
        pools.sort_unstable();
        pools.dedup();
        pools
    }

    /// The names `GET /v1/models` lists: exact models, their adapters and exact aliases.
    pub fn listed_models(&self) -> Vec<ListedModel> {
        self.exact
            .iter()
            .filter_map(|(id, entry)| {
                let resolved = self.resolve_exact(id, entry, false)?;
                Some(ListedModel {
                    id: id.clone(),
                    owned_by: resolved.spec.pool.clone(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_family = "wasm")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use std::collections::BTreeMap;

    use super::ModelCatalog;
    use crate::config::wire::WireModel;

    fn model(pool: Option<&str>, adapters: &[&str]) -> WireModel {
        WireModel {
            pool: pool.map(str::to_owned),
            context_window: Some(8192),
            adapters: adapters.iter().map(|a| a.to_string()).collect(),
            ..WireModel::default()
        }
    }

    fn catalog(aliases: &[(&str, &str)]) -> ModelCatalog {
        let models = BTreeMap::from([
            ("llama-70b".to_owned(), model(Some("big"), &["sql-lora"])),
            ("qwen-7b".to_owned(), model(None, &[])),
            ("gpt-*".to_owned(), model(Some("openai"), &[])),
        ]);
        let aliases = aliases
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ModelCatalog::build(models, aliases).unwrap()
    }

    fn resolve(catalog: &ModelCatalog, name: &str) -> Option<(String, String, String, bool)> {
        catalog.resolve(name).map(|r| {
            (
                r.model.into_owned(),
                r.base_model.into_owned(),
                r.spec.pool.clone(),
                r.rewritten,
            )
        })
    }

    fn owned(
        model: &str,
        base: &str,
        pool: &str,
        rewritten: bool,
    ) -> Option<(String, String, String, bool)> {
        Some((model.into(), base.into(), pool.into(), rewritten))
    }

    #[test]
    fn exact_models_adapters_and_families() {
        let c = catalog(&[]);
        assert_eq!(
            resolve(&c, "llama-70b"),
            owned("llama-70b", "llama-70b", "big", false)
        );
        assert_eq!(
            resolve(&c, "qwen-7b"),
            owned("qwen-7b", "qwen-7b", "qwen-7b", false)
        );
        assert_eq!(
            resolve(&c, "sql-lora"),
            owned("sql-lora", "llama-70b", "big", false)
        );
        assert_eq!(
            resolve(&c, "gpt-4.1-mini"),
            owned("gpt-4.1-mini", "gpt-4.1-mini", "openai", false)
        );
        assert_eq!(resolve(&c, "claude-3"), None);
        assert_eq!(resolve(&c, ""), None);
    }

    #[test]
    fn aliases_rewrite_exact_then_longest_prefix_then_catch_all() {
        let c = catalog(&[
            ("gpt-4o", "llama-70b"),
            ("gpt-4o-mini*", "qwen-7b"),
            ("claude-*", "sql-lora"),
            ("*", "qwen-7b"),
        ]);
        assert_eq!(
            resolve(&c, "gpt-4o"),
            owned("llama-70b", "llama-70b", "big", true)
        );
        assert_eq!(
            resolve(&c, "gpt-4o-mini-2024"),
            owned("qwen-7b", "qwen-7b", "qwen-7b", true)
        );
        // The family `gpt-*` is shorter than the alias prefix above, so it only takes the rest.
        assert_eq!(
            resolve(&c, "gpt-5"),
            owned("gpt-5", "gpt-5", "openai", false)
        );
        assert_eq!(
            resolve(&c, "claude-opus"),
            owned("sql-lora", "llama-70b", "big", true)
        );
        assert_eq!(
            resolve(&c, "anything"),
            owned("qwen-7b", "qwen-7b", "qwen-7b", true)
        );
    }

    #[test]
    fn listed_models_are_the_exact_names() {
        let c = catalog(&[("gpt-4o", "llama-70b"), ("claude-*", "qwen-7b")]);
        let ids: Vec<(String, String)> = c
            .listed_models()
            .into_iter()
            .map(|m| (m.id, m.owned_by))
            .collect();
        assert_eq!(
            ids,
            [
                ("gpt-4o".to_owned(), "big".to_owned()),
                ("llama-70b".to_owned(), "big".to_owned()),
                ("qwen-7b".to_owned(), "qwen-7b".to_owned()),
                ("sql-lora".to_owned(), "big".to_owned()),
            ]
        );
    }

    #[test]
    fn invalid_catalogs_name_the_field() {
        let build = |models: Vec<(&str, WireModel)>, aliases: Vec<(&str, &str)>| {
            ModelCatalog::build(
                models.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
                aliases
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            )
            .unwrap_err()
            .to_string()
        };
        assert!(build(vec![], vec![]).starts_with("models: at least one"));
        assert!(build(vec![("a*b", model(None, &[]))], vec![]).starts_with("models.a*b: "));
        assert!(
            build(vec![("a*", model(None, &["x"]))], vec![]).starts_with("models.a*.adapters: ")
        );
        assert!(
            build(vec![("a", model(None, &["a"]))], vec![])
                .starts_with("models.a.adapters[0]: \"a\" is already defined")
        );
        assert!(
            build(vec![("a", model(None, &[]))], vec![("b", "c")])
                .starts_with("aliases.b: target \"c\" is not")
        );
        assert!(build(vec![("a", model(None, &[]))], vec![("a", "a")]).starts_with("aliases.a: "));
        assert!(
            build(
                vec![("*", model(None, &[])), ("a", model(None, &[]))],
                vec![("*", "a")]
            )
            .starts_with("aliases.*: ")
        );
        let zero = WireModel {
            context_window: Some(0),
            ..WireModel::default()
        };
        assert!(build(vec![("a", zero)], vec![]).starts_with("models.a.context_window: "));
    }
}
