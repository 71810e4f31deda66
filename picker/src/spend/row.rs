//! Spend rows as the store keeps them: the sums of the requests settled in one hour under one
//! tenant, key, project and served model. Every Envoy reports its rows in the quota sync; rows
//! with the same dimensions add up.

use sluice_wire::quota_sync::{MAX_SPEND_ENTRIES, SpendEntry};

use crate::tenancy::validation;

/// The dimensions of a row; ordered by hour first, so a range of hours is a range of keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpendKey {
    /// Unix hour (Unix seconds / 3600).
    pub hour: u64,
    /// `-` when the caller was not identified.
    pub tenant: String,
    pub key: Option<String>,
    pub project: Option<String>,
    pub model: String,
}

/// The sums of a row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpendValues {
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    pub cost_nano_usd: u64,
}

impl SpendValues {
    /// Field names, in the order of `to_array` (the stores write them under these names).
    pub const FIELDS: [&'static str; 5] = ["requests", "input", "output", "cached", "cost"];

    pub fn add(&mut self, other: &Self) {
        self.requests = self.requests.saturating_add(other.requests);
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.cached_tokens = self.cached_tokens.saturating_add(other.cached_tokens);
        self.cost_nano_usd = self.cost_nano_usd.saturating_add(other.cost_nano_usd);
    }

    pub fn to_array(self) -> [u64; 5] {
        [
            self.requests,
            self.input_tokens,
            self.output_tokens,
            self.cached_tokens,
            self.cost_nano_usd,
        ]
    }

    pub fn from_array([requests, input, output, cached, cost]: [u64; 5]) -> Self {
        Self {
            requests,
            input_tokens: input,
            output_tokens: output,
            cached_tokens: cached,
            cost_nano_usd: cost,
        }
    }

    /// Input and output tokens: what a budget's `tokens` counts.
    pub fn tokens(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}

/// A row of the quota sync, split into dimensions and sums.
pub fn from_entry(entry: &SpendEntry) -> (SpendKey, SpendValues) {
    (
        SpendKey {
            hour: entry.hour,
            tenant: entry.tenant.clone(),
            key: entry.key.clone(),
            project: entry.project.clone(),
            model: entry.model.clone(),
        },
        SpendValues {
            requests: entry.requests,
            input_tokens: entry.input_tokens,
            output_tokens: entry.output_tokens,
            cached_tokens: entry.cached_tokens,
            cost_nano_usd: entry.cost_nano_usd,
        },
    )
}

/// Largest value of one field of one row: Redis counts in signed 64-bit integers.
const MAX_VALUE: u64 = i64::MAX as u64;

/// Refuses a sync with more rows than the filter ever sends (the whole sync gets 400).
pub fn check_count(rows: &[SpendEntry]) -> Result<(), String> {
    if rows.len() > MAX_SPEND_ENTRIES {
        return Err(format!(
            "spend: {} rows, at most {MAX_SPEND_ENTRIES} per sync",
            rows.len()
        ));
    }
    Ok(())
}

/// Why row `i` cannot be stored: a name the admin API would refuse, an hour in the future (a
/// clock far ahead), a sum past `MAX_VALUE`. Such a row is dropped and counted; the sync's
/// quota entries and other rows go on (one bad row must not stop a cluster's quota sync).
pub fn check_row(i: usize, row: &SpendEntry, now_hour: u64) -> Result<(), String> {
    let field = |name: &str| format!("spend[{i}].{name}");
    if row.hour > now_hour.saturating_add(1) {
        return Err(format!(
            "{}: hour {} is in the future (now is hour {now_hour})",
            field("hour"),
            row.hour
        ));
    }
    validation::name(&field("tenant"), &row.tenant)?;
    if let Some(key) = &row.key {
        validation::name(&field("key"), key)?;
    }
    if let Some(project) = &row.project {
        validation::name(&field("project"), project)?;
    }
    validation::model(&field("model"), &row.model)?;
    let (_, values) = from_entry(row);
    for (name, value) in SpendValues::FIELDS.iter().zip(values.to_array()) {
        if value > MAX_VALUE {
            return Err(format!("{}: more than {MAX_VALUE}", field(name)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(hour: u64, tenant: &str, model: &str) -> SpendEntry {
        SpendEntry {
            hour,
            tenant: tenant.to_owned(),
            key: Some("key_0123456789abcdef".to_owned()),
            project: Some("web".to_owned()),
            model: model.to_owned(),
            requests: 1,
            input_tokens: 10,
            output_tokens: 5,
            cached_tokens: 2,
            cost_nano_usd: 1_500,
        }
    }

    #[test]
    fn rows_from_the_filter_pass() {
        let rows = [
            entry(500_000, "acme", "meta-llama/Llama-3.1-8B-Instruct"),
            // The filter's overflow row and an unidentified caller.
            SpendEntry {
                key: None,
                project: None,
                ..entry(500_000, "-", "other")
            },
            SpendEntry {
                key: Some("config:0a1b2c3d".to_owned()),
                ..entry(500_001, "demo", "gpt-4.1")
            },
        ];
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(check_row(i, row, 500_000), Ok(()));
        }
    }

    #[test]
    fn bad_rows_are_named() {
        let cases = [
            (entry(500_002, "acme", "m"), "spend[0].hour:"),
            (entry(1, "a b", "m"), "spend[0].tenant:"),
            (entry(1, "acme", ""), "spend[0].model:"),
            (
                SpendEntry {
                    key: Some("k/1".to_owned()),
                    ..entry(1, "acme", "m")
                },
                "spend[0].key:",
            ),
            (
                SpendEntry {
                    project: Some(String::new()),
                    ..entry(1, "acme", "m")
                },
                "spend[0].project:",
            ),
            (
                SpendEntry {
                    cost_nano_usd: u64::MAX,
                    ..entry(1, "acme", "m")
                },
                "spend[0].cost:",
            ),
        ];
        for (row, expected) in cases {
            let err = check_row(0, &row, 500_000).unwrap_err();
            assert!(err.starts_with(expected), "{expected}: {err}");
        }
        let many = vec![entry(1, "acme", "m"); MAX_SPEND_ENTRIES + 1];
        assert!(check_count(&many).unwrap_err().starts_with("spend:"));
    }

    #[test]
    fn sums_add_up_without_overflow() {
        let (_, mut values) = from_entry(&entry(1, "acme", "m"));
        values.add(&values.clone());
        assert_eq!(values.to_array(), [2, 20, 10, 4, 3_000]);
        assert_eq!(values.tokens(), 30);
        let mut full = SpendValues::from_array([u64::MAX; 5]);
        full.add(&values);
        assert_eq!(full.to_array(), [u64::MAX; 5]);
    }
}
