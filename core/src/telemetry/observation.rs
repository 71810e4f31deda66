//! What one request reports when it ends, handed to the host's telemetry sink
//! (`exchange::TelemetrySink::observe`), which turns it into the metrics of `table`.

use super::table::LabelValues;
use super::{ErrorType, Latencies, Metric, Operation, Provider, TokenType};
use crate::canonical::ApiKind;
use crate::usage::Counts;

/// What one request that went upstream reports when it ends.
#[derive(Debug)]
pub struct Observation<'a> {
    pub api: ApiKind,
    /// The model it was routed to.
    pub model: &'a str,
    /// Its counts; `None` when the upstream answered with an error.
    pub counts: Option<&'a Counts>,
    pub latencies: Latencies,
    pub error: Option<ErrorType>,
    /// What it cost at its model's price (`quotas.prices`), in nano-USD, when priced.
    pub cost_nano_usd: Option<u64>,
}

/// One value of one metric of `table`, with its labels.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    pub metric: Metric,
    pub labels: LabelValues<'a>,
    /// A histogram's observation, or a counter's increment.
    pub value: u64,
}

impl<'a> Observation<'a> {
    /// The metric values this observation yields, for every host alike: the request's
    /// duration, time to first token and time per output token (when known), its token usage
    /// per type, and the exact token counters. `request_model` and `response_model` are the
    /// model labels as the host bounds them (`labels::model_label`, then the host's cap on
    /// distinct models).
    pub fn samples(
        &self,
        request_model: &'a str,
        response_model: Option<&'a str>,
    ) -> Vec<Sample<'a>> {
        let labels = LabelValues {
            operation: Some(Operation::of(self.api)),
            provider: Some(Provider::of(self.api)),
            error: self.error,
            response_model,
            request_model: Some(request_model),
            ..LabelValues::default()
        };
        let latencies = &self.latencies;
        let mut samples: Vec<Sample<'a>> = [
            (Metric::RequestDuration, Some(latencies.duration_us)),
            (Metric::TimeToFirstToken, latencies.time_to_first_token_us),
            (
                Metric::TimePerOutputToken,
                latencies.time_per_output_token_us,
            ),
        ]
        .into_iter()
        .filter_map(|(metric, value)| {
            Some(Sample {
                metric,
                labels,
                value: value?,
            })
        })
        .collect();
        let Some(counts) = self.counts else {
            return samples;
        };
        for (token_type, value) in [
            (TokenType::Input, counts.input),
            (TokenType::Output, counts.output),
        ] {
            let labels = LabelValues {
                token_type: Some(token_type),
                error: None,
                ..labels
            };
            samples.push(Sample {
                metric: Metric::TokenUsage,
                labels,
                value,
            });
        }
        let model_only = LabelValues {
            request_model: Some(request_model),
            ..LabelValues::default()
        };
        for (token_type, value) in [
            (TokenType::Input, counts.input),
            (TokenType::Output, counts.output),
            (TokenType::Cached, counts.cached),
        ] {
            let labels = LabelValues {
                token_type: Some(token_type),
                ..model_only
            };
            samples.push(Sample {
                metric: Metric::Tokens,
                labels,
                value,
            });
        }
        samples.push(Sample {
            metric: Metric::EstimatedCounts,
            labels: model_only,
            value: u64::from(counts.estimated),
        });
        if let Some(cost) = self.cost_nano_usd {
            samples.push(Sample {
                metric: Metric::Cost,
                labels: model_only,
                value: cost,
            });
        }
        samples
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_family = "wasm")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::telemetry::stat_name;

    fn names(samples: &[Sample<'_>]) -> Vec<(String, u64)> {
        samples
            .iter()
            .map(|s| (stat_name(s.metric.spec(), &s.labels), s.value))
            .collect()
    }

    #[test]
    fn a_finished_stream_yields_its_latencies_usage_and_counters() {
        let counts = Counts {
            input: 12,
            output: 30,
            cached: 4,
            reasoning: 0,
            estimated: false,
            response_model: None,
        };
        let observation = Observation {
            api: ApiKind::ChatCompletions,
            model: "m",
            counts: Some(&counts),
            latencies: Latencies {
                duration_us: 900,
                time_to_first_token_us: Some(100),
                time_per_output_token_us: Some(20),
            },
            error: None,
            cost_nano_usd: Some(1_500),
        };
        let samples = observation.samples("m", Some("m"));
        let metrics: Vec<Metric> = samples.iter().map(|s| s.metric).collect();
        assert_eq!(
            metrics,
            [
                Metric::RequestDuration,
                Metric::TimeToFirstToken,
                Metric::TimePerOutputToken,
                Metric::TokenUsage,
                Metric::TokenUsage,
                Metric::Tokens,
                Metric::Tokens,
                Metric::Tokens,
                Metric::EstimatedCounts,
                Metric::Cost,
            ]
        );
        let values: Vec<u64> = samples.iter().map(|s| s.value).collect();
        assert_eq!(values, [900, 100, 20, 12, 30, 12, 30, 4, 0, 1_500]);
        // The exact counters carry the model alone; the histograms the GenAI attributes.
        let names = names(&samples);
        assert!(names[5].0.contains("token_type.input"), "{names:?}");
        assert!(!names[5].0.contains("operation"), "{names:?}");
        assert!(names[3].0.contains("chat"), "{names:?}");
    }

    #[test]
    fn an_upstream_error_yields_only_its_duration() {
        let observation = Observation {
            api: ApiKind::Messages,
            model: "m",
            counts: None,
            latencies: Latencies {
                duration_us: 50,
                time_to_first_token_us: None,
                time_per_output_token_us: None,
            },
            error: Some(ErrorType::Status(503)),
            cost_nano_usd: None,
        };
        let samples = observation.samples("m", None);
        assert_eq!(samples.len(), 1);
        assert_eq!(samples[0].metric, Metric::RequestDuration);
        assert!(stat_name(samples[0].metric.spec(), &samples[0].labels).contains("503"));
    }
}
