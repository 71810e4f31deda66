//! The spend report (`GET /admin/v1/spend`): rows read from the store a day at a time and summed
//! as asked, and the standings of the budgets of the tenants asked about.

use sluice_wire::admin::SpendReport;

use super::aggregate::{Aggregate, MAX_REPORT_ROWS};
use super::budget::{self, PeriodSums};
use super::query::SpendQuery;
use super::row::{SpendKey, SpendValues};
use crate::tenancy::service::Tenancy;
use crate::tenancy::store::StoreError;

/// Hours read from the store at once: a day bounds what is held besides the report itself.
const HOURS_PER_READ: u64 = 24;

/// Why a report cannot be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportError {
    /// The question is too wide (400).
    TooLarge(String),
    /// The store cannot be read (503).
    Unavailable(StoreError),
}

impl From<StoreError> for ReportError {
    fn from(err: StoreError) -> Self {
        Self::Unavailable(err)
    }
}

pub async fn report(
    tenancy: &Tenancy,
    query: &SpendQuery,
    now_hour: u64,
) -> Result<SpendReport, ReportError> {
    let mut aggregate = Aggregate::new(
        query.granularity,
        &query.group_by,
        query.filter.clone(),
        MAX_REPORT_ROWS,
    );
    read_by_day(tenancy, query.from_hour, query.to_hour, |key, values| {
        aggregate.add(key, values).map_err(ReportError::TooLarge)
    })
    .await?;
    let state = tenancy.state(std::time::Duration::ZERO).await?;
    let budgets = if budget::any(&state, &query.filter) {
        let mut sums = PeriodSums::new(now_hour);
        // Up to the next hour: an Envoy's clock may be a little ahead.
        read_by_day(
            tenancy,
            sums.first_hour(),
            now_hour.saturating_add(2),
            |key, values| {
                sums.add(key, values);
                Ok(())
            },
        )
        .await?;
        budget::standings(&state, &query.filter, &sums)
    } else {
        Vec::new()
    };
    Ok(SpendReport {
        granularity: query.granularity,
        group_by: query.group_by.clone(),
        rows: aggregate.rows(),
        budgets,
    })
}

/// Reads the rows of `from_hour..to_hour` a day at a time and hands each to `visit`.
async fn read_by_day(
    tenancy: &Tenancy,
    from_hour: u64,
    to_hour: u64,
    mut visit: impl FnMut(&SpendKey, &SpendValues) -> Result<(), ReportError>,
) -> Result<(), ReportError> {
    let mut start = from_hour;
    while start < to_hour {
        let end = start.saturating_add(HOURS_PER_READ).min(to_hour);
        for (key, values) in tenancy.spend(start, end).await? {
            visit(&key, &values)?;
        }
        start = end;
    }
    Ok(())
}
