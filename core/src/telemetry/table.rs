//! The one mapping table: every metric the filter exports per request, with its OpenTelemetry
//! name, unit and attributes, and the Envoy stat it becomes. The GenAI conventions are still in
//! development (checked against semantic-conventions 1.41), so a change to them is an edit here;
//! `envoy.yaml`'s `stats_config` (`stats_tags`, `histogram_bucket_settings`) must match this
//! table, which a unit test checks.
//!
//! Envoy stat names carry no labels: label values are written into the name after the metric
//! (`<metric>.<tag>.<value>...`, in the order of `attributes`) and `stats_tags` regexes take
//! them out again as Prometheus labels. Model names may contain dots, so the request model is
//! always last (its regex takes the rest of the name) and the response model just before it.
//!
//! Envoy histograms hold integers (`record_metric` takes a `u64`; Envoy's Wasm host defines
//! custom histograms with unit `Unspecified`, and on Envoy 1.40 `/stats/prometheus` prints the
//! recorded values and bucket bounds as they are, with no unit scaling: docs/envoy-notes.md).
//! A time in seconds would round to 0, so times are recorded in microseconds and their stat
//! names end in `_microseconds`: divide by 1e6 (the table's `to_otel_unit`) for the
//! conventions' seconds. Bucket bounds are the conventions' advice, scaled the same way.

use super::labels::{ApiLabel, ErrorType, Operation, Provider, StatusClass, TokenType};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instrument {
    Counter,
    Histogram,
}

/// An attribute (label) of an exported metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Attribute {
    /// `gen_ai.operation.name`, see [`Operation`].
    Operation,
    /// `gen_ai.provider.name`, see [`Provider`].
    Provider,
    /// `gen_ai.token.type`, see [`TokenType`].
    TokenType,
    /// `error.type`, only on failures, see [`ErrorType`].
    ErrorType,
    /// Sluice's own: the API called, see [`ApiLabel`].
    Api,
    /// Sluice's own: the class of the status the client got, see [`StatusClass`].
    StatusClass,
    /// `gen_ai.response.model`: the model the upstream says answered, when it said.
    ResponseModel,
    /// `gen_ai.request.model`: the model the request was routed to (after aliases).
    RequestModel,
}

impl Attribute {
    pub const ALL: [Attribute; 8] = [
        Attribute::Operation,
        Attribute::Provider,
        Attribute::TokenType,
        Attribute::ErrorType,
        Attribute::Api,
        Attribute::StatusClass,
        Attribute::ResponseModel,
        Attribute::RequestModel,
    ];

    /// The OpenTelemetry attribute name (`sluice.*` where the conventions have none).
    pub fn otel(self) -> &'static str {
        match self {
            Self::Operation => "gen_ai.operation.name",
            Self::Provider => "gen_ai.provider.name",
            Self::TokenType => "gen_ai.token.type",
            Self::ErrorType => "error.type",
            Self::Api => "sluice.api",
            Self::StatusClass => "sluice.http.status_class",
            Self::ResponseModel => "gen_ai.response.model",
            Self::RequestModel => "gen_ai.request.model",
        }
    }

    /// The Envoy tag name, which is the Prometheus label name: the OTel name with `_` for `.`.
    pub fn tag(self) -> &'static str {
        match self {
            Self::Operation => "gen_ai_operation_name",
            Self::Provider => "gen_ai_provider_name",
            Self::TokenType => "gen_ai_token_type",
            Self::ErrorType => "error_type",
            Self::Api => "sluice_api",
            Self::StatusClass => "sluice_http_status_class",
            Self::ResponseModel => "gen_ai_response_model",
            Self::RequestModel => "gen_ai_request_model",
        }
    }

    /// The `stats_tags` regex that takes the label out of a stat name: Envoy removes the
    /// first group from the name and uses the second as the value.
    pub fn regex(self) -> &'static str {
        match self {
            Self::Operation => r"(\.gen_ai_operation_name\.([a-z_]+))",
            Self::Provider => r"(\.gen_ai_provider_name\.([a-z_]+))",
            Self::TokenType => r"(\.gen_ai_token_type\.([a-z]+))",
            Self::ErrorType => r"(\.error_type\.([A-Za-z0-9_]+))",
            Self::Api => r"(\.sluice_api\.([a-z]+))",
            Self::StatusClass => r"(\.sluice_http_status_class\.([0-9]xx|none))",
            Self::ResponseModel => r"(\.gen_ai_response_model\.(.+?))\.gen_ai_request_model\.",
            Self::RequestModel => r"(\.gen_ai_request_model\.(.+))$",
        }
    }
}

/// The metrics of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    TokenUsage,
    RequestDuration,
    TimeToFirstToken,
    TimePerOutputToken,
    Tokens,
    EstimatedCounts,
    Requests,
    Cost,
}

/// One exported metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricSpec {
    pub metric: Metric,
    /// The OpenTelemetry metric name (`sluice.*` for Sluice's own).
    pub otel_name: &'static str,
    pub instrument: Instrument,
    /// The conventions' unit (UCUM).
    pub otel_unit: &'static str,
    /// The Envoy stat name (shown as `wasmcustom.<name>` in `/stats`, `<name>` in
    /// `/stats/prometheus`).
    pub envoy_name: &'static str,
    /// The unit of the integers recorded.
    pub recorded_unit: &'static str,
    /// A recorded value times this is the value in `otel_unit`.
    pub to_otel_unit: f64,
    /// Labels, in the order they are written into the stat name.
    pub attributes: &'static [Attribute],
    /// Histogram bucket bounds the conventions advise, in `otel_unit`.
    pub buckets: &'static [f64],
    pub description: &'static str,
}

use Attribute as A;

const MODEL_SCOPED: &[Attribute] = &[A::Operation, A::Provider, A::ResponseModel, A::RequestModel];

const TOKEN_USAGE: MetricSpec = MetricSpec {
    metric: Metric::TokenUsage,
    otel_name: "gen_ai.client.token.usage",
    instrument: Instrument::Histogram,
    otel_unit: "{token}",
    envoy_name: "gen_ai_client_token_usage",
    recorded_unit: "{token}",
    to_otel_unit: 1.0,
    attributes: &[
        A::Operation,
        A::Provider,
        A::TokenType,
        A::ResponseModel,
        A::RequestModel,
    ],
    buckets: &[
        1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0,
        4194304.0, 16777216.0, 67108864.0,
    ],
    description: "input and output tokens per request (reported by the upstream, else estimated)",
};

const REQUEST_DURATION: MetricSpec = MetricSpec {
    metric: Metric::RequestDuration,
    otel_name: "gen_ai.server.request.duration",
    instrument: Instrument::Histogram,
    otel_unit: "s",
    envoy_name: "gen_ai_server_request_duration_microseconds",
    recorded_unit: "us",
    to_otel_unit: 1e-6,
    attributes: &[
        A::Operation,
        A::Provider,
        A::ErrorType,
        A::ResponseModel,
        A::RequestModel,
    ],
    buckets: &[
        0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
    ],
    description: "from the request's headers to the end of its response, for requests sent \
                  upstream; error.type on failures",
};

const TIME_TO_FIRST_TOKEN: MetricSpec = MetricSpec {
    metric: Metric::TimeToFirstToken,
    otel_name: "gen_ai.server.time_to_first_token",
    instrument: Instrument::Histogram,
    otel_unit: "s",
    envoy_name: "gen_ai_server_time_to_first_token_microseconds",
    recorded_unit: "us",
    to_otel_unit: 1e-6,
    attributes: MODEL_SCOPED,
    buckets: &[
        0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    ],
    description: "from the request's headers to the first generated text of a streamed \
                  response that completed",
};

const TIME_PER_OUTPUT_TOKEN: MetricSpec = MetricSpec {
    metric: Metric::TimePerOutputToken,
    otel_name: "gen_ai.server.time_per_output_token",
    instrument: Instrument::Histogram,
    otel_unit: "s",
    envoy_name: "gen_ai_server_time_per_output_token_microseconds",
    recorded_unit: "us",
    to_otel_unit: 1e-6,
    attributes: MODEL_SCOPED,
    buckets: &[
        0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
    ],
    description: "(end - first token) / (output tokens - 1) of a streamed response that \
                  completed with 2 or more output tokens",
};

const TOKENS: MetricSpec = MetricSpec {
    metric: Metric::Tokens,
    otel_name: "sluice.tokens",
    instrument: Instrument::Counter,
    otel_unit: "{token}",
    envoy_name: "sluice_tokens_total",
    recorded_unit: "{token}",
    to_otel_unit: 1.0,
    attributes: &[A::TokenType, A::RequestModel],
    buckets: &[],
    description: "exact token totals: input, output and cached (input served from the \
                  prompt cache)",
};

const ESTIMATED_COUNTS: MetricSpec = MetricSpec {
    metric: Metric::EstimatedCounts,
    otel_name: "sluice.token_counts.estimated",
    instrument: Instrument::Counter,
    otel_unit: "{request}",
    envoy_name: "sluice_token_counts_estimated_total",
    recorded_unit: "{request}",
    to_otel_unit: 1.0,
    attributes: &[A::RequestModel],
    buckets: &[],
    description: "requests whose counts the gateway estimated (the upstream reported none, \
                  or not all)",
};

const REQUESTS: MetricSpec = MetricSpec {
    metric: Metric::Requests,
    otel_name: "sluice.requests",
    instrument: Instrument::Counter,
    otel_unit: "{request}",
    envoy_name: "sluice_requests_total",
    recorded_unit: "{request}",
    to_otel_unit: 1.0,
    attributes: &[A::Api, A::StatusClass, A::RequestModel],
    buckets: &[],
    description: "every request the filter saw, when it ended: API, status class, and the \
                  model it was routed to (absent when it was not)",
};

const COST: MetricSpec = MetricSpec {
    metric: Metric::Cost,
    otel_name: "sluice.cost",
    instrument: Instrument::Counter,
    otel_unit: "[USD]",
    envoy_name: "sluice_cost_nano_usd_total",
    recorded_unit: "n[USD]",
    to_otel_unit: 1e-9,
    attributes: &[A::RequestModel],
    buckets: &[],
    description: "what requests cost at their model's price (quotas.prices: the price of the \
                  target that answered), in nano-USD; requests without a price add nothing",
};

/// Every row of the table.
pub const METRICS: [&MetricSpec; 8] = [
    &TOKEN_USAGE,
    &REQUEST_DURATION,
    &TIME_TO_FIRST_TOKEN,
    &TIME_PER_OUTPUT_TOKEN,
    &TOKENS,
    &ESTIMATED_COUNTS,
    &REQUESTS,
    &COST,
];

impl Metric {
    pub fn spec(self) -> &'static MetricSpec {
        match self {
            Self::TokenUsage => &TOKEN_USAGE,
            Self::RequestDuration => &REQUEST_DURATION,
            Self::TimeToFirstToken => &TIME_TO_FIRST_TOKEN,
            Self::TimePerOutputToken => &TIME_PER_OUTPUT_TOKEN,
            Self::Tokens => &TOKENS,
            Self::EstimatedCounts => &ESTIMATED_COUNTS,
            Self::Requests => &REQUESTS,
            Self::Cost => &COST,
        }
    }
}

/// The label values of one observation; `None` leaves the attribute out of the name.
#[derive(Debug, Clone, Copy, Default)]
pub struct LabelValues<'a> {
    pub operation: Option<Operation>,
    pub provider: Option<Provider>,
    pub token_type: Option<TokenType>,
    pub error: Option<ErrorType>,
    pub api: Option<ApiLabel>,
    pub status_class: Option<StatusClass>,
    /// Label-safe (see `labels::model_label`).
    pub response_model: Option<&'a str>,
    /// Label-safe (see `labels::model_label`).
    pub request_model: Option<&'a str>,
}

/// The Envoy stat name of `spec` with `values` written in: `<metric>.<tag>.<value>...`.
pub fn stat_name(spec: &MetricSpec, values: &LabelValues<'_>) -> String {
    let mut name = String::from(spec.envoy_name);
    for attribute in spec.attributes {
        if let Some(value) = label_value(*attribute, values) {
            name.push('.');
            name.push_str(attribute.tag());
            name.push('.');
            name.push_str(&value);
        }
    }
    name
}

/// The value of `attribute` in `values`, if it has one: what `stat_name` puts in the name, and
/// what a host with real metric labels (the native module) gives as the label's value. The
/// response model only comes with a request model.
pub fn label_value<'a>(
    attribute: Attribute,
    values: &LabelValues<'a>,
) -> Option<std::borrow::Cow<'a, str>> {
    match attribute {
        A::Operation => values.operation.map(|v| v.value().into()),
        A::Provider => values.provider.map(|v| v.value().into()),
        A::TokenType => values.token_type.map(|v| v.value().into()),
        A::ErrorType => values.error.map(ErrorType::value),
        A::Api => values.api.map(|v| v.value().into()),
        A::StatusClass => values.status_class.map(|v| v.value().into()),
        A::ResponseModel => values
            .response_model
            .filter(|_| values.request_model.is_some())
            .map(Into::into),
        A::RequestModel => values.request_model.map(Into::into),
    }
}

#[cfg(test)]
mod tests;
