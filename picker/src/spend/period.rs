//! Time in spend reports: instants given as RFC 3339 or `YYYY-MM-DD` (UTC), Unix hours, the
//! start of a budget's period (hour, day, calendar month, UTC), and RFC 3339 out.

use sluice_wire::tenancy::Period;
use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime, Time};

/// Unix seconds of `2026-12-06T08:30:00Z`, `2026-12-06T09:30:00+01:00` or `2026-12-06`
/// (midnight UTC). Times before 1970 are refused.
pub fn parse_instant(text: &str) -> Result<u64, String> {
    let seconds = if text.len() == 10 {
        parse_date(text)
            .ok_or_else(|| format!("{text:?} is not a date (YYYY-MM-DD)"))?
            .with_time(Time::MIDNIGHT)
            .assume_utc()
            .unix_timestamp()
    } else {
        OffsetDateTime::parse(text, &Rfc3339)
            .map_err(|e| format!("{text:?} is not an RFC 3339 time or YYYY-MM-DD date: {e}"))?
            .unix_timestamp()
    };
    u64::try_from(seconds).map_err(|_| format!("{text:?} is before 1970"))
}

fn parse_date(text: &str) -> Option<Date> {
    let mut parts = text.split('-');
    let (year, month, day) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || year.len() != 4 || month.len() != 2 || day.len() != 2 {
        return None;
    }
    let month = Month::try_from(month.parse::<u8>().ok()?).ok()?;
    Date::from_calendar_date(year.parse().ok()?, month, day.parse().ok()?).ok()
}

/// `2026-12-06T08:00:00Z` for the start of Unix hour `hour`.
pub fn format_hour(hour: u64) -> String {
    i64::try_from(hour.saturating_mul(3600))
        .ok()
        .and_then(|seconds| OffsetDateTime::from_unix_timestamp(seconds).ok())
        .and_then(|at| at.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("hour {hour}"))
}

/// The first hour of the day (UTC) holding `hour`.
pub fn day_start(hour: u64) -> u64 {
    hour - hour % 24
}

/// The first hour of the period holding `hour`.
pub fn period_start(period: Period, hour: u64) -> u64 {
    match period {
        Period::Hour => hour,
        Period::Day => day_start(hour),
        Period::Month => month_start(hour),
    }
}

fn month_start(hour: u64) -> u64 {
    let Some(at) = i64::try_from(hour.saturating_mul(3600))
        .ok()
        .and_then(|seconds| OffsetDateTime::from_unix_timestamp(seconds).ok())
    else {
        return day_start(hour);
    };
    let days_in = u64::from(at.day()).saturating_sub(1);
    day_start(hour).saturating_sub(days_in.saturating_mul(24))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unix hour of 2026-12-06T08:00:00Z.
    const HOUR: u64 = 1_796_515_200 / 3600 + 8;

    #[test]
    fn instants() {
        assert_eq!(parse_instant("2026-12-06"), Ok(1_796_515_200));
        assert_eq!(
            parse_instant("2026-12-06T08:30:00Z"),
            Ok(1_796_515_200 + 8 * 3600 + 1800)
        );
        assert_eq!(
            parse_instant("2026-12-06T09:30:00+01:00"),
            parse_instant("2026-12-06T08:30:00Z")
        );
        assert_eq!(
            parse_instant("2026-12-06T08:30:00.250Z"),
            Ok(1_796_515_200 + 8 * 3600 + 1800)
        );
        for bad in [
            "2026-13-01",
            "2026-02-30",
            "26-12-06",
            "yesterday",
            "1969-12-31",
            "",
        ] {
            assert!(parse_instant(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hours_are_formatted_in_rfc_3339() {
        assert_eq!(format_hour(HOUR), "2026-12-06T08:00:00Z");
        assert_eq!(format_hour(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn periods_start_on_the_hour_the_day_and_the_first_of_the_month() {
        assert_eq!(period_start(Period::Hour, HOUR), HOUR);
        assert_eq!(
            format_hour(period_start(Period::Day, HOUR)),
            "2026-12-06T00:00:00Z"
        );
        assert_eq!(
            format_hour(period_start(Period::Month, HOUR)),
            "2026-12-01T00:00:00Z"
        );
        let first = period_start(Period::Month, HOUR);
        assert_eq!(period_start(Period::Month, first), first);
        assert_eq!(
            format_hour(period_start(Period::Month, first - 1)),
            "2026-11-01T00:00:00Z"
        );
    }
}
