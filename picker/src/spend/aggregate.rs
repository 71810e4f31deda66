//! Spend rows summed per period (hour or day) and the dimensions asked for, for the report.

use std::collections::BTreeMap;

use sluice_wire::admin::{Dimension, Granularity, SpendRow};

use super::period;
use super::query::Filter;
use super::row::{SpendKey, SpendValues};

/// Most rows one report may have: a wider question must be narrowed (a shorter range, a
/// filter, fewer dimensions).
pub const MAX_REPORT_ROWS: usize = 100_000;

/// The group of a row: its period's first hour and the dimensions grouped by (`None` for the
/// others, and for a key or project the row does not have).
type Group = (
    u64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

pub struct Aggregate {
    granularity: Granularity,
    by_tenant: bool,
    by_key: bool,
    by_project: bool,
    by_model: bool,
    filter: Filter,
    groups: BTreeMap<Group, SpendValues>,
    max_rows: usize,
}

impl Filter {
    pub fn matches(&self, key: &SpendKey) -> bool {
        self.tenant.as_ref().is_none_or(|t| *t == key.tenant)
            && self
                .key
                .as_ref()
                .is_none_or(|k| key.key.as_ref() == Some(k))
            && self
                .project
                .as_ref()
                .is_none_or(|p| key.project.as_ref() == Some(p))
            && self.model.as_ref().is_none_or(|m| *m == key.model)
    }
}

impl Aggregate {
    pub fn new(
        granularity: Granularity,
        group_by: &[Dimension],
        filter: Filter,
        max_rows: usize,
    ) -> Self {
        Self {
            granularity,
            by_tenant: group_by.contains(&Dimension::Tenant),
            by_key: group_by.contains(&Dimension::Key),
            by_project: group_by.contains(&Dimension::Project),
            by_model: group_by.contains(&Dimension::Model),
            filter,
            groups: BTreeMap::new(),
            max_rows,
        }
    }

    /// Adds a stored row (skipped if the filter does not match). Fails once the report would
    /// have more than `max_rows` rows.
    pub fn add(&mut self, key: &SpendKey, values: &SpendValues) -> Result<(), String> {
        if !self.filter.matches(key) {
            return Ok(());
        }
        let start = match self.granularity {
            Granularity::Hour => key.hour,
            Granularity::Day => period::day_start(key.hour),
        };
        let group = (
            start,
            self.by_tenant.then(|| key.tenant.clone()),
            self.by_key.then(|| key.key.clone()).flatten(),
            self.by_project.then(|| key.project.clone()).flatten(),
            self.by_model.then(|| key.model.clone()),
        );
        if let Some(sum) = self.groups.get_mut(&group) {
            sum.add(values);
            return Ok(());
        }
        if self.groups.len() >= self.max_rows {
            return Err(format!(
                "the report would have more than {} rows: ask for a shorter range, filter, or group by fewer dimensions",
                self.max_rows
            ));
        }
        self.groups.insert(group, *values);
        Ok(())
    }

    /// The rows, by period and then by dimensions.
    pub fn rows(self) -> Vec<SpendRow> {
        self.groups
            .into_iter()
            .map(|((start, tenant, key, project, model), sum)| SpendRow {
                period_start: period::format_hour(start),
                tenant,
                key,
                project,
                model,
                requests: sum.requests,
                input_tokens: sum.input_tokens,
                output_tokens: sum.output_tokens,
                cached_tokens: sum.cached_tokens,
                cost_usd: usd(sum.cost_nano_usd),
            })
            .collect()
    }
}

/// Nano-USD in USD.
#[allow(clippy::cast_precision_loss, reason = "USD amounts in a report")]
pub fn usd(nano: u64) -> f64 {
    nano as f64 / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-06T00:00:00Z in Unix hours.
    const DAY: u64 = 1_796_515_200 / 3600;

    fn row(
        hour: u64,
        tenant: &str,
        key: Option<&str>,
        model: &str,
        cost: u64,
    ) -> (SpendKey, SpendValues) {
        (
            SpendKey {
                hour,
                tenant: tenant.to_owned(),
                key: key.map(str::to_owned),
                project: None,
                model: model.to_owned(),
            },
            SpendValues {
                requests: 1,
                input_tokens: 100,
                output_tokens: 10,
                cached_tokens: 50,
                cost_nano_usd: cost,
            },
        )
    }

    fn rows() -> Vec<(SpendKey, SpendValues)> {
        vec![
            row(DAY + 8, "acme", Some("key_a"), "llama", 1_000),
            row(DAY + 8, "acme", Some("key_b"), "llama", 2_000),
            row(DAY + 9, "acme", Some("key_a"), "qwen", 4_000),
            row(DAY + 9, "beta", None, "llama", 8_000),
            row(DAY + 30, "acme", Some("key_a"), "llama", 16_000),
        ]
    }

    fn run(granularity: Granularity, group_by: &[Dimension], filter: Filter) -> Vec<SpendRow> {
        let mut aggregate = Aggregate::new(granularity, group_by, filter, 100);
        for (key, values) in rows() {
            aggregate.add(&key, &values).unwrap();
        }
        aggregate.rows()
    }

    #[test]
    fn hours_by_tenant() {
        let rows = run(Granularity::Hour, &[Dimension::Tenant], Filter::default());
        let summary: Vec<(&str, Option<&str>, u64, f64)> = rows
            .iter()
            .map(|r| {
                (
                    r.period_start.as_str(),
                    r.tenant.as_deref(),
                    r.requests,
                    r.cost_usd,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("2026-12-06T08:00:00Z", Some("acme"), 2, 0.000_003),
                ("2026-12-06T09:00:00Z", Some("acme"), 1, 0.000_004),
                ("2026-12-06T09:00:00Z", Some("beta"), 1, 0.000_008),
                ("2026-12-07T06:00:00Z", Some("acme"), 1, 0.000_016),
            ]
        );
        assert!(rows.iter().all(|r| r.key.is_none() && r.model.is_none()));
    }

    #[test]
    fn days_by_key_and_model_with_a_filter() {
        let filter = Filter {
            tenant: Some("acme".to_owned()),
            ..Filter::default()
        };
        let rows = run(
            Granularity::Day,
            &[Dimension::Key, Dimension::Model],
            filter,
        );
        type Summary<'a> = (&'a str, Option<&'a str>, Option<&'a str>, u64, u64);
        let summary: Vec<Summary<'_>> = rows
            .iter()
            .map(|r| {
                (
                    r.period_start.as_str(),
                    r.key.as_deref(),
                    r.model.as_deref(),
                    r.requests,
                    r.input_tokens,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("2026-12-06T00:00:00Z", Some("key_a"), Some("llama"), 1, 100),
                ("2026-12-06T00:00:00Z", Some("key_a"), Some("qwen"), 1, 100),
                ("2026-12-06T00:00:00Z", Some("key_b"), Some("llama"), 1, 100),
                ("2026-12-07T00:00:00Z", Some("key_a"), Some("llama"), 1, 100),
            ]
        );
    }

    #[test]
    fn no_dimension_is_one_total_per_period() {
        let rows = run(Granularity::Day, &[], Filter::default());
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (
                rows[0].requests,
                rows[0].output_tokens,
                rows[0].cached_tokens
            ),
            (4, 40, 200)
        );
        assert_eq!(rows[0].cost_usd, 0.000_015);
    }

    #[test]
    fn filters_match_every_dimension() {
        let filter = Filter {
            key: Some("key_a".to_owned()),
            model: Some("llama".to_owned()),
            ..Filter::default()
        };
        let rows = run(Granularity::Hour, &[Dimension::Key], filter);
        assert_eq!(rows.len(), 2);
        let project = Filter {
            project: Some("web".to_owned()),
            ..Filter::default()
        };
        assert!(run(Granularity::Hour, &[], project).is_empty());
    }

    #[test]
    fn reports_are_bounded() {
        let mut aggregate =
            Aggregate::new(Granularity::Hour, &[Dimension::Key], Filter::default(), 2);
        let all = rows();
        aggregate.add(&all[0].0, &all[0].1).unwrap();
        aggregate.add(&all[1].0, &all[1].1).unwrap();
        // An existing group still adds up.
        aggregate.add(&all[0].0, &all[0].1).unwrap();
        assert!(
            aggregate
                .add(&all[2].0, &all[2].1)
                .unwrap_err()
                .contains("more than 2 rows")
        );
    }
}
