//! Windows in Unix milliseconds: the sliding minute (its fixed one-minute buckets) and calendar
//! hours, days and months in UTC.

use crate::config::quotas::Window;

const MINUTE_MS: u64 = 60_000;
const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 86_400_000;
/// Far beyond any real clock (year ~275,000): keeps the calendar arithmetic in range.
const MAX_DAYS: u64 = 100_000_000;

/// The index of the bucket (minute) or period (hour, day, month) that holds `now_ms`.
pub fn index(window: Window, now_ms: u64) -> u64 {
    match window {
        Window::Minute => now_ms / MINUTE_MS,
        Window::Hour => now_ms / HOUR_MS,
        Window::Day => now_ms / DAY_MS,
        Window::Month => {
            let (year, month) = civil_from_days(now_ms / DAY_MS);
            year.saturating_mul(12)
                .saturating_add(month.saturating_sub(1))
        }
    }
}

/// When the bucket or period `index` ends (Unix ms).
pub fn end_ms(window: Window, index: u64) -> u64 {
    let next = index.saturating_add(1);
    match window {
        Window::Minute => next.saturating_mul(MINUTE_MS),
        Window::Hour => next.saturating_mul(HOUR_MS),
        Window::Day => next.saturating_mul(DAY_MS),
        Window::Month => {
            let (year, month) = (next / 12, (next % 12).saturating_add(1));
            days_from_civil(year, month).saturating_mul(DAY_MS)
        }
    }
}

/// Milliseconds a window lasts at most (Redis keeps each bucket about twice that).
pub fn length_ms(window: Window) -> u64 {
    match window {
        Window::Minute => MINUTE_MS,
        Window::Hour => HOUR_MS,
        Window::Day => DAY_MS,
        Window::Month => DAY_MS.saturating_mul(31),
    }
}

/// (year, month 1..=12) of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64) {
    let z = days.min(MAX_DAYS).saturating_add(719_468);
    let era = z / 146_097;
    let doe = z.saturating_sub(era.saturating_mul(146_097));
    let yoe = doe
        .saturating_sub(doe / 1460)
        .saturating_add(doe / 36_524)
        .saturating_sub(doe / 146_096)
        / 365;
    let year = yoe.saturating_add(era.saturating_mul(400));
    let doy = doe.saturating_sub(
        yoe.saturating_mul(365)
            .saturating_add(yoe / 4)
            .saturating_sub(yoe / 100),
    );
    let mp = doy.saturating_mul(5).saturating_add(2) / 153;
    let month = if mp < 10 {
        mp.saturating_add(3)
    } else {
        mp.saturating_sub(9)
    };
    let year = if month <= 2 {
        year.saturating_add(1)
    } else {
        year
    };
    (year, month)
}

/// Days since 1970-01-01 of the first day of `month` (1..=12) of `year`.
fn days_from_civil(year: u64, month: u64) -> u64 {
    let year = if month <= 2 {
        year.saturating_sub(1)
    } else {
        year
    };
    let era = year / 400;
    let yoe = year.saturating_sub(era.saturating_mul(400));
    let mp = if month > 2 {
        month.saturating_sub(3)
    } else {
        month.saturating_add(9)
    };
    let doy = mp.saturating_mul(153).saturating_add(2) / 5;
    let doe = yoe
        .saturating_mul(365)
        .saturating_add(yoe / 4)
        .saturating_sub(yoe / 100)
        .saturating_add(doy);
    era.saturating_mul(146_097)
        .saturating_add(doe)
        .saturating_sub(719_468)
}

#[cfg(test)]
mod tests {
    #[cfg(target_family = "wasm")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn calendar_periods() {
        // 2024-02-29T12:00:00Z
        let now = 1_709_208_000_000;
        assert_eq!(civil_from_days(now / DAY_MS), (2024, 2));
        let month = index(Window::Month, now);
        assert_eq!(month, 2024 * 12 + 1);
        // The period ends at 2024-03-01T00:00:00Z.
        assert_eq!(end_ms(Window::Month, month), 1_709_251_200_000);
        assert_eq!(
            end_ms(Window::Day, index(Window::Day, now)),
            1_709_251_200_000
        );
        assert_eq!(
            end_ms(Window::Minute, index(Window::Minute, 61_000)),
            120_000
        );
        // December rolls into January.
        let december = 2023 * 12 + 11;
        assert_eq!(end_ms(Window::Month, december), 1_704_067_200_000);
        assert_eq!(days_from_civil(1970, 1), 0);
    }
}
