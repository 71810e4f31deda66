#[cfg(target_family = "wasm")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;
use crate::telemetry::labels::model_label;

/// The shipped bootstraps: their `stats_config` must match the table. The Wasm build's names
/// carry their labels, which `stats_tags` rules take back out; the native module's metrics have
/// real labels, so its config only needs the histogram buckets.
const ENVOY_WASM_YAML: &str = include_str!("../../../../envoy.wasm.yaml");
const ENVOY_NATIVE_YAML: &str = include_str!("../../../../envoy.yaml");

/// `stats_config.stats_tags` of envoy.wasm.yaml: `(tag_name, regex)`.
fn stats_tags() -> Vec<(String, String)> {
    let mut tags = Vec::new();
    let mut name: Option<String> = None;
    for line in ENVOY_WASM_YAML.lines() {
        let line = line.trim();
        if let Some(tag) = line.strip_prefix("- tag_name: ") {
            name = Some(tag.trim().to_owned());
        } else if let (Some(regex), Some(tag)) = (line.strip_prefix("regex: "), name.take()) {
            let regex = regex.trim().trim_matches('\'');
            tags.push((tag, regex.to_owned()));
        }
    }
    tags
}

/// `stats_config.histogram_bucket_settings` of a bootstrap: `(prefix, buckets)`.
fn bucket_settings(envoy_yaml: &str) -> Vec<(String, Vec<f64>)> {
    let mut settings = Vec::new();
    let mut prefix: Option<String> = None;
    for line in envoy_yaml.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("- match: { prefix: ") {
            prefix = Some(rest.trim_end_matches('}').trim().to_owned());
        } else if let (Some(list), Some(p)) = (line.strip_prefix("buckets: "), prefix.take()) {
            let list = list.trim().trim_start_matches('[').trim_end_matches(']');
            let buckets = list.split(',').map(|b| b.trim().parse().unwrap()).collect();
            settings.push((p, buckets));
        }
    }
    settings
}

/// What Envoy makes of a stat name with these tag rules: every rule is matched against the
/// whole name; the first group of each match is cut out, the second is the tag's value.
fn extract(name: &str, rules: &[(String, String)]) -> (String, Vec<(String, String)>) {
    let mut cut = vec![false; name.len()];
    let mut tags = Vec::new();
    for (tag, pattern) in rules {
        let regex = regex::Regex::new(pattern).unwrap();
        if let Some(captures) = regex.captures(name) {
            let (Some(remove), Some(value)) = (captures.get(1), captures.get(2)) else {
                panic!("{tag}: the regex needs two groups");
            };
            cut[remove.range()].iter_mut().for_each(|c| *c = true);
            tags.push((tag.clone(), value.as_str().to_owned()));
        }
    }
    let rest = name
        .char_indices()
        .filter(|(i, _)| !cut[*i])
        .map(|(_, c)| c)
        .collect();
    tags.sort();
    (rest, tags)
}

#[test]
fn every_metric_has_one_row_and_one_name() {
    for spec in METRICS {
        assert_eq!(spec.metric.spec(), spec);
        let same_name = METRICS
            .iter()
            .filter(|s| s.envoy_name == spec.envoy_name || s.otel_name == spec.otel_name)
            .count();
        assert_eq!(same_name, 1, "{}", spec.envoy_name);
        // The stat name says what the recorded integers are.
        if spec.recorded_unit == "us" {
            assert!(
                spec.envoy_name.ends_with("_microseconds"),
                "{}",
                spec.envoy_name
            );
            assert_eq!(spec.otel_unit, "s");
            assert_eq!(spec.to_otel_unit, 1e-6);
        }
        assert_eq!(
            spec.instrument == Instrument::Counter,
            spec.envoy_name.ends_with("_total"),
            "{}",
            spec.envoy_name
        );
        assert_eq!(
            spec.instrument == Instrument::Histogram,
            !spec.buckets.is_empty()
        );
    }
}

#[test]
fn models_come_last_so_their_dots_can_be_told_apart() {
    for spec in METRICS {
        let attributes = spec.attributes;
        if let Some(at) = attributes
            .iter()
            .position(|a| *a == Attribute::RequestModel)
        {
            assert_eq!(at + 1, attributes.len(), "{}", spec.envoy_name);
        }
        if let Some(at) = attributes
            .iter()
            .position(|a| *a == Attribute::ResponseModel)
        {
            assert_eq!(
                attributes.get(at + 1),
                Some(&Attribute::RequestModel),
                "{}",
                spec.envoy_name
            );
        }
    }
}

#[test]
fn envoy_wasm_yaml_carries_the_tag_rule_of_every_attribute() {
    let tags = stats_tags();
    for attribute in Attribute::ALL {
        let rule = tags.iter().find(|(tag, _)| tag == attribute.tag());
        assert_eq!(
            rule.map(|(_, regex)| regex.as_str()),
            Some(attribute.regex()),
            "envoy.wasm.yaml stats_tags needs:\n  - tag_name: {}\n    regex: '{}'",
            attribute.tag(),
            attribute.regex()
        );
    }
}

/// Each histogram's buckets are listed in `file` (`envoy_yaml`) under `prefix` + its name.
fn assert_buckets_of_every_histogram(file: &str, envoy_yaml: &str, prefix: &str) {
    let settings = bucket_settings(envoy_yaml);
    for spec in METRICS
        .iter()
        .filter(|s| s.instrument == Instrument::Histogram)
    {
        let prefix = format!("{prefix}{}", spec.envoy_name);
        let expected: Vec<f64> = spec
            .buckets
            .iter()
            .map(|b| (b / spec.to_otel_unit).round())
            .collect();
        let found = settings.iter().find(|(p, _)| *p == prefix);
        let listed = expected
            .iter()
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        assert_eq!(
            found.map(|(_, b)| b),
            Some(&expected),
            "{file} histogram_bucket_settings needs:\n  - match: {{ prefix: {prefix} }}\n    buckets: [{listed}]"
        );
    }
}

#[test]
fn both_shipped_configs_carry_the_buckets_of_every_histogram() {
    assert_buckets_of_every_histogram("envoy.wasm.yaml", ENVOY_WASM_YAML, "wasmcustom.");
    assert_buckets_of_every_histogram("envoy.yaml", ENVOY_NATIVE_YAML, "dynamicmodulescustom.");
}

#[test]
fn envoy_takes_every_label_back_out_of_every_name() {
    let rules = stats_tags();
    let request_model = model_label("meta-llama/Llama-3.1-8B-Instruct");
    let response_model = model_label("llama-3.1-8b.instruct:q4");
    for spec in METRICS {
        let full = LabelValues {
            operation: Some(Operation::TextCompletion),
            provider: Some(Provider::Anthropic),
            token_type: Some(TokenType::Cached),
            error: Some(ErrorType::Status(503)),
            api: Some(ApiLabel::Embeddings),
            status_class: Some(StatusClass::ServerError),
            response_model: Some(&response_model),
            request_model: Some(&request_model),
        };
        let without = LabelValues {
            error: None,
            response_model: None,
            request_model: None,
            ..full
        };
        for values in [full, without] {
            let name = format!("wasmcustom.{}", stat_name(spec, &values));
            let (rest, tags) = extract(&name, &rules);
            assert_eq!(rest, format!("wasmcustom.{}", spec.envoy_name), "{name}");
            let mut expected: Vec<(String, String)> = spec
                .attributes
                .iter()
                .filter_map(|a| {
                    let value = match a {
                        Attribute::Operation => values.operation.map(|v| v.value().to_owned()),
                        Attribute::Provider => values.provider.map(|v| v.value().to_owned()),
                        Attribute::TokenType => values.token_type.map(|v| v.value().to_owned()),
                        Attribute::ErrorType => values.error.map(|v| v.value().into_owned()),
                        Attribute::Api => values.api.map(|v| v.value().to_owned()),
                        Attribute::StatusClass => values.status_class.map(|v| v.value().to_owned()),
                        Attribute::ResponseModel => values.response_model.map(str::to_owned),
                        Attribute::RequestModel => values.request_model.map(str::to_owned),
                    };
                    value.map(|v| (a.tag().to_owned(), v))
                })
                .collect();
            expected.sort();
            assert_eq!(tags, expected, "{name}");
        }
    }
}
