//! The spend report as CSV: a header row, then one row per period and group. Only the grouped
//! dimensions have columns; a dimension a row lacks (a request without a key) is empty. Costs
//! are written exactly (nano-USD as a decimal), not as floats.

use sluice_wire::admin::{Dimension, SpendRow};

use super::query::{ALL_DIMENSIONS, dimension_name};

pub const CONTENT_TYPE: &str = "text/csv; charset=utf-8";

/// The CSV of `rows` grouped by `group_by` (columns in the canonical order: tenant, key,
/// project, model).
pub fn write(group_by: &[Dimension], rows: &[SpendRow]) -> Result<Vec<u8>, String> {
    let dimensions: Vec<Dimension> = ALL_DIMENSIONS
        .into_iter()
        .filter(|d| group_by.contains(d))
        .collect();
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["period_start"];
    header.extend(dimensions.iter().map(|d| dimension_name(*d)));
    header.extend([
        "requests",
        "input_tokens",
        "output_tokens",
        "cached_tokens",
        "cost_usd",
    ]);
    let fail = |e: csv::Error| format!("cannot write CSV: {e}");
    writer.write_record(&header).map_err(fail)?;
    for row in rows {
        let mut record: Vec<String> = Vec::with_capacity(header.len());
        record.push(row.period_start.clone());
        for dimension in &dimensions {
            let value = match dimension {
                Dimension::Tenant => &row.tenant,
                Dimension::Key => &row.key,
                Dimension::Project => &row.project,
                Dimension::Model => &row.model,
            };
            record.push(value.clone().unwrap_or_default());
        }
        record.extend([
            row.requests.to_string(),
            row.input_tokens.to_string(),
            row.output_tokens.to_string(),
            row.cached_tokens.to_string(),
            usd_text(row.cost_usd),
        ]);
        writer.write_record(&record).map_err(fail)?;
    }
    writer
        .into_inner()
        .map_err(|e| format!("cannot write CSV: {}", e.error()))
}

/// USD with up to nine decimals and no trailing zeros (`0.0015`, `12`).
fn usd_text(usd: f64) -> String {
    let text = format!("{usd:.9}");
    let text = text.trim_end_matches('0');
    text.strip_suffix('.').unwrap_or(text).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(tenant: &str, key: Option<&str>, model: &str, cost_usd: f64) -> SpendRow {
        SpendRow {
            period_start: "2026-12-06T08:00:00Z".to_owned(),
            tenant: Some(tenant.to_owned()),
            key: key.map(str::to_owned),
            project: None,
            model: Some(model.to_owned()),
            requests: 3,
            input_tokens: 30,
            output_tokens: 12,
            cached_tokens: 4,
            cost_usd,
        }
    }

    #[test]
    fn only_grouped_columns_in_the_canonical_order() {
        let rows = [
            row("acme", Some("key_a"), "llama", 0.0015),
            row("acme", None, "org/model, \"quoted\"", 12.0),
        ];
        let text = String::from_utf8(
            write(
                &[Dimension::Model, Dimension::Tenant, Dimension::Key],
                &rows,
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            text,
            "period_start,tenant,key,model,requests,input_tokens,output_tokens,cached_tokens,cost_usd\n\
             2026-12-06T08:00:00Z,acme,key_a,llama,3,30,12,4,0.0015\n\
             2026-12-06T08:00:00Z,acme,,\"org/model, \"\"quoted\"\"\",3,30,12,4,12\n"
        );
    }

    #[test]
    fn no_dimension_is_totals_per_period() {
        let text = String::from_utf8(write(&[], &[row("acme", None, "m", 0.000_000_001)]).unwrap())
            .unwrap();
        assert_eq!(
            text,
            "period_start,requests,input_tokens,output_tokens,cached_tokens,cost_usd\n\
             2026-12-06T08:00:00Z,3,30,12,4,0.000000001\n"
        );
        assert_eq!(usd_text(0.0), "0");
    }
}
