//! Times on the command line and in tables: RFC 3339 (UTC), a bare date, or a duration counted
//! from now (`30d` for an expiry, `7d` ago for a report's start).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Which way a duration on the command line counts from now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relative {
    /// `--expires 30d`: thirty days from now.
    Ahead,
    /// `--from 7d`: seven days ago.
    Ago,
}

pub fn now_ms() -> u64 {
    to_ms(SystemTime::now())
}

fn to_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// `ms` (Unix milliseconds) as RFC 3339 in UTC, to the second: `2026-12-06T08:00:00Z`.
pub fn format_ms(ms: u64) -> String {
    UNIX_EPOCH
        .checked_add(Duration::from_millis(ms))
        .map(|time| humantime::format_rfc3339_seconds(time).to_string())
        .unwrap_or_else(|| format!("{ms} ms"))
}

/// An instant as Unix milliseconds: `now`, RFC 3339 in UTC (`2026-12-31T00:00:00Z`), a date
/// (`2026-12-31`, midnight UTC), or a duration (`30d`, `12h`, `90m`) from `now_ms` in the
/// direction `relative` says.
pub fn parse_instant(text: &str, now_ms: u64, relative: Relative) -> Result<u64, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("now") {
        return Ok(now_ms);
    }
    if let Ok(duration) = humantime::parse_duration(text) {
        let offset = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        return Ok(match relative {
            Relative::Ahead => now_ms.saturating_add(offset),
            Relative::Ago => now_ms.saturating_sub(offset),
        });
    }
    let full = if is_date(text) {
        format!("{text}T00:00:00Z")
    } else {
        text.to_owned()
    };
    humantime::parse_rfc3339(&full)
        .map(to_ms)
        .map_err(|_| {
            format!(
                "`{text}` is not a time: give RFC 3339 in UTC (2026-12-31T08:00:00Z), a date (2026-12-31), `now`, or a duration (30d, 12h)"
            )
        })
}

/// `YYYY-MM-DD`.
fn is_date(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 10
        && bytes.iter().enumerate().all(|(at, byte)| match at {
            4 | 7 => *byte == b'-',
            _ => byte.is_ascii_digit(),
        })
}

/// A report bound for the service: relative forms (`7d`, `now`) become RFC 3339 here, so a
/// watched report moves with the clock; absolute ones go as written (the service reads RFC 3339
/// with any offset and bare dates, and says what is wrong with anything else).
pub fn report_bound(text: &str, now_ms: u64) -> String {
    let trimmed = text.trim();
    let relative =
        trimmed.eq_ignore_ascii_case("now") || humantime::parse_duration(trimmed).is_ok();
    match parse_instant(trimmed, now_ms, Relative::Ago) {
        Ok(ms) if relative => format_ms(ms),
        _ => trimmed.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::{Relative, format_ms, parse_instant, report_bound};

    /// 2026-12-06T08:00:00Z.
    const NOW: u64 = 1_796_544_000_000;

    #[test]
    fn formats_utc_to_the_second() {
        assert_eq!(format_ms(NOW), "2026-12-06T08:00:00Z");
        assert_eq!(format_ms(NOW + 999), "2026-12-06T08:00:00Z");
        assert_eq!(format_ms(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn parses_absolute_and_relative_instants() {
        assert_eq!(
            parse_instant("2026-12-06T08:00:00Z", 0, Relative::Ahead),
            Ok(NOW)
        );
        assert_eq!(
            parse_instant("2026-12-07", 0, Relative::Ahead),
            Ok(NOW + 16 * 3_600_000)
        );
        assert_eq!(parse_instant("now", NOW, Relative::Ago), Ok(NOW));
        assert_eq!(
            parse_instant("30d", NOW, Relative::Ahead),
            Ok(NOW + 30 * 86_400_000)
        );
        assert_eq!(
            parse_instant("2h", NOW, Relative::Ago),
            Ok(NOW - 2 * 3_600_000)
        );
        // Far in the past does not wrap around.
        assert_eq!(parse_instant("100years", 5, Relative::Ago), Ok(0));
        let err = parse_instant("next tuesday", NOW, Relative::Ahead).unwrap_err();
        assert!(err.contains("next tuesday"), "{err}");
        assert!(parse_instant("2026-13-45", NOW, Relative::Ahead).is_err());
    }

    #[test]
    fn report_bounds_resolve_relative_forms_only() {
        assert_eq!(report_bound("1h", NOW), "2026-12-06T07:00:00Z");
        assert_eq!(report_bound("now", NOW), "2026-12-06T08:00:00Z");
        assert_eq!(report_bound("2026-12-01", NOW), "2026-12-01");
        assert_eq!(
            report_bound("2026-12-01T00:00:00+02:00", NOW),
            "2026-12-01T00:00:00+02:00"
        );
    }
}
