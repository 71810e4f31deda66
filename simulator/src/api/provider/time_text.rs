//! Times and durations as the providers write them in rate-limit headers: OpenAI a duration in
//! Go's notation (`12ms`, `1.5s`, `1m0s`), Anthropic an RFC 3339 time (`2025-01-01T00:00:00Z`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Go's `time.Duration` notation, to the millisecond (rounded up, so a client waiting that long
/// is never early).
pub fn go_duration(duration: Duration) -> String {
    let millis = duration.as_micros().div_ceil(1000);
    if millis == 0 {
        return "0s".to_owned();
    }
    if millis < 1000 {
        return format!("{millis}ms");
    }
    let minutes = millis / 60_000;
    let seconds = millis % 60_000 / 1000;
    let fraction = millis % 1000;
    let seconds = if fraction == 0 {
        seconds.to_string()
    } else {
        let text = format!("{seconds}.{fraction:03}");
        text.trim_end_matches('0').to_owned()
    };
    if minutes > 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}

/// An RFC 3339 UTC time to the second, rounded up.
pub fn rfc3339(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_epoch.as_micros().div_ceil(1_000_000);
    let seconds = u64::try_from(seconds).unwrap_or(u64::MAX);
    let days = seconds / 86_400;
    let of_day = seconds % 86_400;
    let (year, month, day) = civil_date(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's days-to-civil
/// algorithm, over 400-year eras of 146,097 days).
fn civil_date(days: u64) -> (u64, u64, u64) {
    let shifted = days.saturating_add(719_468); // days since 0000-03-01
    let era = shifted / 146_097;
    let day_of_era = shifted % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_go_notation() {
        assert_eq!(go_duration(Duration::ZERO), "0s");
        assert_eq!(go_duration(Duration::from_micros(1)), "1ms");
        assert_eq!(go_duration(Duration::from_millis(12)), "12ms");
        assert_eq!(go_duration(Duration::from_secs(1)), "1s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_millis(8640)), "8.64s");
        assert_eq!(go_duration(Duration::from_secs(60)), "1m0s");
        assert_eq!(go_duration(Duration::from_millis(90_250)), "1m30.25s");
    }

    #[test]
    fn times_in_rfc3339() {
        let at = |seconds: u64| rfc3339(UNIX_EPOCH + Duration::from_secs(seconds));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(at(1_735_689_600), "2025-01-01T00:00:00Z");
        assert_eq!(at(4_102_444_800), "2100-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_millis(1)),
            "1970-01-01T00:00:01Z",
            "rounded up"
        );
    }
}
