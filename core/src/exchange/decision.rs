//! Every decision the gateway made about one request, as flat filter-state values (one value
//! per field) that Envoy's access logs and its OpenTelemetry logger and tracer read
//! (`%FILTER_STATE(sluice.tenant:PLAIN)%`; the proxy-wasm host writes `wasm.<key>`). Flat, so
//! that each formatter places each value where it belongs (a JSON member, an OTLP attribute, a
//! span tag) without parsing a document.
//!
//! The exchange fills a `Decision` as it goes and writes its fields once, when the stream ends
//! (`Exchange::on_log`): one host write per field the request has, nothing for the fields it
//! does not. What Envoy knows itself (the replica, the attempts, the status, the duration) is
//! not repeated here. The upstream filter writes `sluice.fallback` (`attempt`), and the
//! downstream filter writes it when the chain was rerouted before any attempt.
//!
//! Never in any of them: prompt or response text, a key or a secret. Guardrails leave rule ids
//! and actions only; the key is its admin id.

use std::collections::BTreeSet;

use super::effects::{Record, RecordKey};
use crate::canonical::ApiKind;
use crate::guardrails::{Action, Guardrails, Hits};
use crate::telemetry::{ApiLabel, Operation, Provider};
use crate::usage::Counts;

/// Longest value written from a client's input (the requested model): a longer one is cut.
const MAX_CLIENT_VALUE_BYTES: usize = 256;

/// One field of the decision record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// `gen_ai.operation.name`: `chat`, `text_completion`, `embeddings`.
    Operation,
    /// `gen_ai.provider.name`: the API format the request was made in (`openai`, `anthropic`).
    Provider,
    /// The API called (`chat`, `messages`, `responses`...).
    Api,
    Tenant,
    Project,
    /// The admin id of the caller's key (never the key).
    KeyId,
    /// `gen_ai.request.model`: the model as the client asked for it.
    RequestModel,
    /// `gen_ai.response.model`: the model that answered (as the response says, else the
    /// target's or the routed model).
    ResponseModel,
    /// The target (pool, or provider target of a chain) that answered.
    Target,
    /// Why the request did not go to its first choice: the chain rerouted, or earlier attempts
    /// failed (`<target>:<outcome>`, comma-separated).
    Fallback,
    /// How long flow control held the request (0: admitted at once).
    QueueWaitMs,
    /// Guardrail hits: `<rule id>:<action>`, comma-separated, sorted.
    Guardrails,
    /// `admitted`, `rejected:<reason>`, `unauthenticated` or `none` (no quotas).
    Quota,
    InputTokens,
    OutputTokens,
    CachedTokens,
    /// The request's cost in USD at its model's price (`quotas.prices`), when it has one.
    CostUsd,
    /// Time to the first generated token of a stream, in milliseconds.
    TtftMs,
}

impl Field {
    pub const ALL: [Field; 18] = [
        Field::Operation,
        Field::Provider,
        Field::Api,
        Field::Tenant,
        Field::Project,
        Field::KeyId,
        Field::RequestModel,
        Field::ResponseModel,
        Field::Target,
        Field::Fallback,
        Field::QueueWaitMs,
        Field::Guardrails,
        Field::Quota,
        Field::InputTokens,
        Field::OutputTokens,
        Field::CachedTokens,
        Field::CostUsd,
        Field::TtftMs,
    ];

    /// The filter-state key.
    pub fn key(self) -> &'static str {
        match self {
            Self::Operation => "sluice.operation",
            Self::Provider => "sluice.provider",
            Self::Api => "sluice.api",
            Self::Tenant => "sluice.tenant",
            Self::Project => "sluice.project",
            Self::KeyId => "sluice.key_id",
            Self::RequestModel => "sluice.request_model",
            Self::ResponseModel => "sluice.response_model",
            Self::Target => "sluice.target",
            Self::Fallback => "sluice.fallback",
            Self::QueueWaitMs => "sluice.queue_wait_ms",
            Self::Guardrails => "sluice.guardrail_actions",
            Self::Quota => "sluice.quota",
            Self::InputTokens => "sluice.input_tokens",
            Self::OutputTokens => "sluice.output_tokens",
            Self::CachedTokens => "sluice.cached_tokens",
            Self::CostUsd => "sluice.cost_usd",
            Self::TtftMs => "sluice.ttft_ms",
        }
    }

    /// The OpenTelemetry attribute the shipped configs give it: the GenAI conventions' name
    /// where they have one, `sluice.*` for the rest.
    pub fn otel(self) -> &'static str {
        match self {
            Self::Operation => "gen_ai.operation.name",
            Self::Provider => "gen_ai.provider.name",
            Self::RequestModel => "gen_ai.request.model",
            Self::ResponseModel => "gen_ai.response.model",
            Self::InputTokens => "gen_ai.usage.input_tokens",
            Self::OutputTokens => "gen_ai.usage.output_tokens",
            Self::CachedTokens => "gen_ai.usage.cached_tokens",
            other => other.key(),
        }
    }

    /// The member of the shipped JSON access log that holds it.
    pub fn json(self) -> &'static str {
        self.key().trim_start_matches("sluice.")
    }
}

/// What quotas decided.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum QuotaDecision {
    /// No quotas configured.
    #[default]
    None,
    Admitted,
    /// Refused; the reason as `quota::Reason::label` gives it.
    Rejected(&'static str),
    /// No key, or a key no one was given.
    Unauthenticated,
}

impl QuotaDecision {
    pub fn value(self) -> String {
        match self {
            Self::None => "none".to_owned(),
            Self::Admitted => "admitted".to_owned(),
            Self::Rejected(reason) => format!("rejected:{reason}"),
            Self::Unauthenticated => "unauthenticated".to_owned(),
        }
    }
}

/// Identified called, as quotas identified them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Identified<'a> {
    pub tenant: Option<&'a str>,
    pub project: Option<&'a str>,
    pub key_id: Option<&'a str>,
}

/// The decision fields gathered so far.
#[derive(Debug, Default)]
pub(super) struct Decision {
    api: Option<ApiKind>,
    api_label: Option<ApiLabel>,
    request_model: Option<String>,
    /// The model the request was routed to (after aliases and rewrites).
    routed_model: Option<String>,
    /// The model the target that answered serves.
    target_model: Option<String>,
    response_model: Option<String>,
    target: Option<String>,
    queue_wait_ms: Option<u64>,
    guardrails: BTreeSet<(String, Action)>,
    counts: Option<(u64, u64, u64)>,
    cost_nano_usd: Option<u64>,
    ttft_ms: Option<u64>,
    written: bool,
}

impl Decision {
    pub(super) fn api_label(&mut self, label: ApiLabel) {
        self.api_label = Some(label);
    }

    /// The request was routed: its API, the model the client asked for, the model it goes to.
    pub(super) fn routed(&mut self, api: ApiKind, requested: &str, model: &str) {
        self.api = Some(api);
        self.request_model = Some(bounded(requested));
        self.routed_model = Some(model.to_owned());
    }

    /// The target the request goes to (or, from the response, went to) and the model it
    /// serves there, when it names one.
    pub(super) fn target(&mut self, target: &str, model: Option<&str>) {
        self.target = Some(target.to_owned());
        if let Some(model) = model {
            self.target_model = Some(model.to_owned());
        }
    }

    /// Flow control held the request this long (0: admitted at once).
    pub(super) fn queued(&mut self, waited_ms: u64) {
        self.queue_wait_ms = Some(waited_ms);
    }

    /// Guardrail hits (rule ids and actions; the counts and texts are not kept).
    pub(super) fn guardrail_hits(&mut self, guardrails: &Guardrails, hits: &Hits) {
        for (rule, action) in hits.0.keys() {
            self.guardrail(guardrails.rule_id(*rule), *action);
        }
    }

    pub(super) fn guardrail(&mut self, rule: &str, action: Action) {
        self.guardrails.insert((rule.to_owned(), action));
    }

    /// The response's counts, what they cost and when its first token came.
    pub(super) fn usage(
        &mut self,
        counts: &Counts,
        cost_nano_usd: Option<u64>,
        ttft_ms: Option<u64>,
    ) {
        self.counts = Some((counts.input, counts.output, counts.cached));
        if let Some(model) = &counts.response_model {
            self.response_model = Some(bounded(model));
        }
        self.cost_nano_usd = cost_nano_usd;
        self.ttft_ms = ttft_ms;
    }

    /// The records of every field known, once (an empty list after the first call).
    pub(super) fn records(&mut self, who: Identified<'_>, quota: QuotaDecision) -> Vec<Record> {
        if std::mem::replace(&mut self.written, true) {
            return Vec::new();
        }
        let mut records = Vec::with_capacity(Field::ALL.len());
        let mut put = |field: Field, value: Option<String>| {
            if let Some(value) = value {
                records.push(Record {
                    key: RecordKey::Decision(field),
                    value,
                });
            }
        };
        put(
            Field::Operation,
            self.api.map(|a| Operation::of(a).value().to_owned()),
        );
        put(
            Field::Provider,
            self.api.map(|a| Provider::of(a).value().to_owned()),
        );
        put(Field::Api, self.api_label.map(|a| a.value().to_owned()));
        put(Field::Tenant, who.tenant.map(str::to_owned));
        put(Field::Project, who.project.map(str::to_owned));
        put(Field::KeyId, who.key_id.map(str::to_owned));
        put(Field::RequestModel, self.request_model.take());
        let served = self
            .response_model
            .take()
            .or_else(|| self.target_model.take())
            .or_else(|| self.routed_model.take());
        put(
            Field::ResponseModel,
            served.filter(|_| self.counts.is_some()),
        );
        put(Field::Target, self.target.take());
        put(
            Field::QueueWaitMs,
            self.queue_wait_ms.map(|ms| ms.to_string()),
        );
        let guardrails: Vec<String> = self
            .guardrails
            .iter()
            .map(|(rule, action)| format!("{rule}:{}", action.as_str()))
            .collect();
        put(
            Field::Guardrails,
            (!guardrails.is_empty()).then(|| guardrails.join(",")),
        );
        put(Field::Quota, Some(quota.value()));
        if let Some((input, output, cached)) = self.counts {
            put(Field::InputTokens, Some(input.to_string()));
            put(Field::OutputTokens, Some(output.to_string()));
            put(Field::CachedTokens, Some(cached.to_string()));
        }
        put(Field::CostUsd, self.cost_nano_usd.map(usd));
        put(Field::TtftMs, self.ttft_ms.map(|ms| ms.to_string()));
        records
    }
}

/// The fallback record: why the request did not go where it would have (`reasons`, in order).
pub fn fallback_record(reasons: &[String]) -> Option<Record> {
    (!reasons.is_empty()).then(|| Record {
        key: RecordKey::Decision(Field::Fallback),
        value: reasons.join(","),
    })
}

/// Nano-USD as USD, without trailing zeros: `1500` is `0.0000015`.
pub fn usd(nano: u64) -> String {
    let whole = nano / 1_000_000_000;
    let fraction = nano % 1_000_000_000;
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = format!("{fraction:09}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// `value` cut to `MAX_CLIENT_VALUE_BYTES` at a character boundary.
fn bounded(value: &str) -> String {
    let mut end = value.len().min(MAX_CLIENT_VALUE_BYTES);
    while !value.is_char_boundary(end) {
        end = end.saturating_sub(1);
    }
    value.get(..end).unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    #[cfg(target_family = "wasm")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn values(records: &[Record]) -> Vec<(&'static str, &str)> {
        records
            .iter()
            .map(|r| (r.key.name(), r.value.as_str()))
            .collect()
    }

    #[test]
    fn usd_is_written_without_trailing_zeros() {
        assert_eq!(usd(0), "0");
        assert_eq!(usd(1_500), "0.0000015");
        assert_eq!(usd(2_000_000_000), "2");
        assert_eq!(usd(2_250_000_000), "2.25");
        assert_eq!(usd(u64::MAX), "18446744073.709551615");
    }

    #[test]
    fn a_served_request_writes_every_field_it_has_once() {
        let mut decision = Decision::default();
        decision.api_label(ApiLabel::Chat);
        decision.routed(
            ApiKind::ChatCompletions,
            "gpt-4o",
            "meta-llama/Llama-3.1-8B-Instruct",
        );
        decision.target("llama_8b", None);
        decision.queued(12);
        decision.guardrail("email", Action::Redact);
        decision.guardrail("aws_access_key", Action::Block);
        decision.guardrail("email", Action::Redact);
        let counts = Counts {
            input: 12,
            output: 40,
            cached: 4,
            reasoning: 0,
            estimated: false,
            response_model: Some("llama-3.1".into()),
        };
        decision.usage(&counts, Some(1_500), Some(87));
        let who = Identified {
            tenant: Some("acme"),
            project: Some("search"),
            key_id: Some("key_0123456789abcdef"),
        };
        let records = decision.records(who, QuotaDecision::Admitted);
        assert_eq!(
            values(&records),
            [
                ("sluice.operation", "chat"),
                ("sluice.provider", "openai"),
                ("sluice.api", "chat"),
                ("sluice.tenant", "acme"),
                ("sluice.project", "search"),
                ("sluice.key_id", "key_0123456789abcdef"),
                ("sluice.request_model", "gpt-4o"),
                ("sluice.response_model", "llama-3.1"),
                ("sluice.target", "llama_8b"),
                ("sluice.queue_wait_ms", "12"),
                (
                    "sluice.guardrail_actions",
                    "aws_access_key:block,email:redact"
                ),
                ("sluice.quota", "admitted"),
                ("sluice.input_tokens", "12"),
                ("sluice.output_tokens", "40"),
                ("sluice.cached_tokens", "4"),
                ("sluice.cost_usd", "0.0000015"),
                ("sluice.ttft_ms", "87"),
            ]
        );
        assert!(decision.records(who, QuotaDecision::Admitted).is_empty());
    }

    #[test]
    fn a_refused_request_writes_only_what_was_decided() {
        let mut decision = Decision::default();
        decision.api_label(ApiLabel::Messages);
        decision.routed(ApiKind::Messages, "claude-x", "m");
        let records = decision.records(
            Identified {
                tenant: Some("trial"),
                ..Identified::default()
            },
            QuotaDecision::Rejected("requests"),
        );
        assert_eq!(
            values(&records),
            [
                ("sluice.operation", "chat"),
                ("sluice.provider", "anthropic"),
                ("sluice.api", "messages"),
                ("sluice.tenant", "trial"),
                ("sluice.request_model", "claude-x"),
                ("sluice.quota", "rejected:requests"),
            ]
        );
        let mut unknown = Decision::default();
        assert_eq!(
            values(&unknown.records(Identified::default(), QuotaDecision::Unauthenticated)),
            [("sluice.quota", "unauthenticated")]
        );
    }

    #[test]
    fn the_served_model_falls_back_to_the_targets_then_the_routed_one() {
        let counts = Counts::default();
        let mut decision = Decision::default();
        decision.routed(ApiKind::ChatCompletions, "gpt-4.1", "gpt-4.1");
        decision.target("anthropic", Some("claude-sonnet-4-5"));
        decision.usage(&counts, None, None);
        let records = decision.records(Identified::default(), QuotaDecision::None);
        assert!(values(&records).contains(&("sluice.response_model", "claude-sonnet-4-5")));
        let mut decision = Decision::default();
        decision.routed(ApiKind::ChatCompletions, "gpt-4o", "llama");
        decision.usage(&counts, None, None);
        let records = decision.records(Identified::default(), QuotaDecision::None);
        assert!(values(&records).contains(&("sluice.response_model", "llama")));
    }

    #[test]
    fn a_client_value_is_cut_at_a_character_boundary() {
        let long = "é".repeat(200);
        let cut = bounded(&long);
        assert!(cut.len() <= MAX_CLIENT_VALUE_BYTES);
        assert!(long.starts_with(&cut));
    }

    /// The shipped bootstraps: their JSON access log, OpenTelemetry access logger and tracer
    /// must carry every field, under the names `Field` gives (the Wasm build's filter state is
    /// `wasm.<key>`).
    const SHIPPED: [(&str, &str, &str); 2] = [
        ("envoy.yaml", include_str!("../../../envoy.yaml"), ""),
        (
            "envoy.wasm.yaml",
            include_str!("../../../envoy.wasm.yaml"),
            "wasm.",
        ),
    ];

    #[test]
    fn both_shipped_configs_log_and_trace_every_field() {
        for (file, yaml, prefix) in SHIPPED {
            for field in Field::ALL {
                let state = format!("%FILTER_STATE({prefix}{}:PLAIN)%", field.key());
                let json = format!("{}: \"{state}\"", field.json());
                let attribute = format!(
                    "- key: {}\n                  value: {{ string_value: \"{state}\" }}",
                    field.otel()
                );
                let tag = format!("- tag: {}\n              value: \"{state}\"", field.otel());
                for (what, needle) in [
                    ("the JSON access log", json),
                    ("the OpenTelemetry access logger", attribute),
                    ("the tracer's custom_tags", tag),
                ] {
                    assert_eq!(
                        yaml.matches(&needle).count(),
                        1,
                        "{file}: {what} needs {field:?} once, as:\n{needle}"
                    );
                }
            }
        }
    }

    #[test]
    fn every_field_has_its_own_key_and_attribute() {
        for field in Field::ALL {
            assert!(field.key().starts_with("sluice."));
            let same = Field::ALL
                .iter()
                .filter(|f| f.key() == field.key() || f.otel() == field.otel())
                .count();
            assert_eq!(same, 1, "{field:?}");
        }
    }
}
