//! The spend report's query string: `from`, `to`, `granularity`, `group_by`, the filters
//! (`tenant`, `key`, `project`, `model`) and `format`, checked and turned into whole periods.

use sluice_wire::admin::{Dimension, Granularity};

use crate::config::MAX_SPEND_RETENTION_DAYS;
use crate::tenancy::validation;

/// What a spend report is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendQuery {
    /// Unix hours `from_hour..to_hour`, whole periods of `granularity`.
    pub from_hour: u64,
    pub to_hour: u64,
    pub granularity: Granularity,
    pub group_by: Vec<Dimension>,
    pub filter: Filter,
    /// `None`: as the `Accept` header says (JSON unless it asks for CSV).
    pub format: Option<Format>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
}

/// Only rows with these dimensions (absent: any).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub tenant: Option<String>,
    pub key: Option<String>,
    pub project: Option<String>,
    pub model: Option<String>,
}

/// Every dimension, in the order of the CSV's columns and of `group_by`'s default.
pub const ALL_DIMENSIONS: [Dimension; 4] = [
    Dimension::Tenant,
    Dimension::Key,
    Dimension::Project,
    Dimension::Model,
];

pub fn dimension_name(dimension: Dimension) -> &'static str {
    match dimension {
        Dimension::Tenant => "tenant",
        Dimension::Key => "key",
        Dimension::Project => "project",
        Dimension::Model => "model",
    }
}

/// Parses the query string; `now_s` (Unix seconds) for the default range, the last 24 hours.
/// `from` is rounded down and `to` (exclusive) up to whole periods.
pub fn parse(query: Option<&str>, now_s: u64) -> Result<SpendQuery, String> {
    let mut from = None;
    let mut to = None;
    let mut granularity = None;
    let mut group_by = None;
    let mut filter = Filter::default();
    let mut format = None;
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let value = value.into_owned();
        let twice = || format!("{name}: given twice");
        match name.as_ref() {
            "from" => set(&mut from, value).map_err(|()| twice())?,
            "to" => set(&mut to, value).map_err(|()| twice())?,
            "granularity" => set(&mut granularity, value).map_err(|()| twice())?,
            "group_by" => set(&mut group_by, value).map_err(|()| twice())?,
            "format" => set(&mut format, value).map_err(|()| twice())?,
            "tenant" | "key" | "project" => {
                validation::name(&name, &value)?;
                let slot = match name.as_ref() {
                    "tenant" => &mut filter.tenant,
                    "key" => &mut filter.key,
                    _ => &mut filter.project,
                };
                set(slot, value).map_err(|()| twice())?;
            }
            "model" => {
                validation::model("model", &value)?;
                set(&mut filter.model, value).map_err(|()| twice())?;
            }
            other => {
                return Err(format!(
                    "unknown query parameter {other:?}: use from, to, granularity, group_by, tenant, key, project, model, format"
                ));
            }
        }
    }
    let granularity = match granularity.as_deref() {
        None | Some("hour") => Granularity::Hour,
        Some("day") => Granularity::Day,
        Some(other) => return Err(format!("granularity: {other:?} is not hour or day")),
    };
    let group_by = match group_by {
        None => ALL_DIMENSIONS.to_vec(),
        Some(list) => parse_group_by(&list)?,
    };
    let format = match format.as_deref() {
        None => None,
        Some("json") => Some(Format::Json),
        Some("csv") => Some(Format::Csv),
        Some(other) => return Err(format!("format: {other:?} is not json or csv")),
    };
    let to_s = match &to {
        Some(text) => super::period::parse_instant(text).map_err(|e| format!("to: {e}"))?,
        None => now_s,
    };
    let from_s = match &from {
        Some(text) => super::period::parse_instant(text).map_err(|e| format!("from: {e}"))?,
        None => to_s.saturating_sub(24 * 3600),
    };
    if from_s >= to_s {
        return Err("from: must be before to".to_owned());
    }
    let (from_hour, to_hour) = whole_periods(from_s, to_s, granularity);
    let max_hours = u64::from(MAX_SPEND_RETENTION_DAYS) * 24;
    if to_hour - from_hour > max_hours {
        return Err(format!(
            "from: the range is longer than {MAX_SPEND_RETENTION_DAYS} days"
        ));
    }
    Ok(SpendQuery {
        from_hour,
        to_hour,
        granularity,
        group_by,
        filter,
        format,
    })
}

fn set(slot: &mut Option<String>, value: String) -> Result<(), ()> {
    if slot.is_some() {
        return Err(());
    }
    *slot = Some(value);
    Ok(())
}

fn parse_group_by(list: &str) -> Result<Vec<Dimension>, String> {
    let mut out = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let dimension = ALL_DIMENSIONS
            .into_iter()
            .find(|d| dimension_name(*d) == part)
            .ok_or_else(|| {
                format!("group_by: {part:?} is not one of tenant, key, project, model")
            })?;
        if out.contains(&dimension) {
            return Err(format!("group_by: {part} is listed twice"));
        }
        out.push(dimension);
    }
    Ok(out)
}

/// Unix hours covering `from_s..to_s` in whole periods.
fn whole_periods(from_s: u64, to_s: u64, granularity: Granularity) -> (u64, u64) {
    let period = match granularity {
        Granularity::Hour => 1,
        Granularity::Day => 24,
    };
    let from_hour = from_s / 3600;
    let to_hour = to_s.div_ceil(3600);
    (
        from_hour - from_hour % period,
        to_hour.div_ceil(period).saturating_mul(period),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-06T08:30:00Z.
    const NOW: u64 = 1_796_515_200 + 8 * 3600 + 1800;
    const DAY_HOUR: u64 = 1_796_515_200 / 3600;

    #[test]
    fn defaults_are_the_last_24_hours_by_hour_and_every_dimension() {
        let query = parse(None, NOW).unwrap();
        assert_eq!(query.granularity, Granularity::Hour);
        assert_eq!(query.group_by, ALL_DIMENSIONS.to_vec());
        assert_eq!(query.to_hour, DAY_HOUR + 9);
        assert_eq!(query.from_hour, DAY_HOUR + 8 - 24);
        assert_eq!(query.filter, Filter::default());
        assert_eq!(query.format, None);
    }

    #[test]
    fn every_parameter() {
        let query = parse(
            Some("from=2026-12-01&to=2026-12-06T08%3A30%3A00%2B00%3A00&granularity=day&group_by=model,tenant&tenant=acme&key=key_1&project=web&model=meta-llama%2FLlama&format=csv"),
            NOW,
        )
        .unwrap();
        assert_eq!(query.granularity, Granularity::Day);
        assert_eq!(query.group_by, vec![Dimension::Model, Dimension::Tenant]);
        assert_eq!(query.from_hour, DAY_HOUR - 5 * 24);
        // The day of `to` is counted whole.
        assert_eq!(query.to_hour, DAY_HOUR + 24);
        assert_eq!(query.filter.tenant.as_deref(), Some("acme"));
        assert_eq!(query.filter.key.as_deref(), Some("key_1"));
        assert_eq!(query.filter.project.as_deref(), Some("web"));
        assert_eq!(query.filter.model.as_deref(), Some("meta-llama/Llama"));
        assert_eq!(query.format, Some(Format::Csv));
        assert_eq!(parse(Some("group_by="), NOW).unwrap().group_by, vec![]);
    }

    #[test]
    fn mistakes_are_named() {
        let cases = [
            ("granularity=week", "granularity:"),
            ("group_by=tenant,team", "group_by:"),
            ("group_by=tenant,tenant", "group_by: tenant is listed twice"),
            ("format=xml", "format:"),
            ("from=yesterday", "from:"),
            ("to=2026-12-06T25:00:00Z", "to:"),
            ("from=2026-12-06&to=2026-12-05", "from: must be before to"),
            ("from=2000-01-01", "from: the range is longer"),
            ("tenant=a%20b", "tenant:"),
            ("tenant=a&tenant=b", "tenant: given twice"),
            ("teant=a", "unknown query parameter"),
        ];
        for (query, expected) in cases {
            let err = parse(Some(query), NOW).unwrap_err();
            assert!(err.starts_with(expected), "{query}: {err}");
        }
    }
}
