//! The plan: what the downstream filter tells each upstream attempt through a request header
//! (`targets::PLAN_HEADER`), `api=<client api>;targets=<t1>,<t2>,...`. The client's API is
//! there because an attempt may have rewritten `:path` for its target, and Envoy hands every
//! attempt the same request headers; the targets are there for an attempt whose host carries
//! no `sluice.target` metadata (the attempt number then says which one it is).

use crate::canonical::ApiKind;
use crate::targets::MAX_CHAIN_LENGTH;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub client: ApiKind,
    pub targets: Vec<String>,
}

fn api_label(api: ApiKind) -> &'static str {
    match api {
        ApiKind::ChatCompletions => "chat",
        ApiKind::Completions => "completions",
        ApiKind::Embeddings => "embeddings",
        ApiKind::Responses => "responses",
        ApiKind::Messages => "messages",
    }
}

fn api_of(label: &str) -> Option<ApiKind> {
    Some(match label {
        "chat" => ApiKind::ChatCompletions,
        "completions" => ApiKind::Completions,
        "embeddings" => ApiKind::Embeddings,
        "responses" => ApiKind::Responses,
        "messages" => ApiKind::Messages,
        _ => return None,
    })
}

impl Plan {
    /// The header's value for a request in `client`'s API on a chain of `targets`.
    pub fn header_value<'a>(client: ApiKind, targets: impl IntoIterator<Item = &'a str>) -> String {
        let targets: Vec<&str> = targets.into_iter().collect();
        format!("api={};targets={}", api_label(client), targets.join(","))
    }

    /// Reads the header; `None` when it is not a plan.
    pub fn parse(value: &str) -> Option<Self> {
        let mut client = None;
        let mut targets = Vec::new();
        for field in value.split(';') {
            let (key, value) = field.trim().split_once('=')?;
            match key {
                "api" => client = api_of(value),
                "targets" => {
                    targets = value
                        .split(',')
                        .filter(|t| !t.is_empty())
                        .take(MAX_CHAIN_LENGTH)
                        .map(str::to_owned)
                        .collect();
                }
                _ => {}
            }
        }
        Some(Self {
            client: client?,
            targets,
        })
    }

    /// The target of attempt number `attempt` (1 for the first try); the last one for any
    /// attempt past the end (a composite cluster's `USE_LAST_CLUSTER`).
    pub fn target_of_attempt(&self, attempt: usize) -> Option<&str> {
        let index = attempt
            .saturating_sub(1)
            .min(self.targets.len().saturating_sub(1));
        self.targets.get(index).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_reads_back_as_written() {
        let value = Plan::header_value(ApiKind::Messages, ["a", "b"]);
        assert_eq!(value, "api=messages;targets=a,b");
        let plan = Plan::parse(&value).unwrap();
        assert_eq!(plan.client, ApiKind::Messages);
        assert_eq!(plan.target_of_attempt(1), Some("a"));
        assert_eq!(plan.target_of_attempt(2), Some("b"));
        assert_eq!(plan.target_of_attempt(7), Some("b"));
        assert_eq!(plan.target_of_attempt(0), Some("a"));
    }

    #[test]
    fn what_is_not_a_plan_reads_as_none() {
        assert_eq!(Plan::parse(""), None);
        assert_eq!(Plan::parse("targets=a"), None);
        assert_eq!(Plan::parse("api=fax;targets=a"), None);
        assert_eq!(Plan::parse("nonsense"), None);
    }
}
