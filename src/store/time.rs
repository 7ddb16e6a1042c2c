//! The store's clock: UTC instants in milliseconds, written as fixed-width
//! RFC 3339 text (`2026-12-03T17:45:00.123Z`).
//!
//! INVARIANT: every time the store writes has this exact width, so that
//! comparing the text in SQL (`leased_until <= ?`) compares the instants.
//! That holds for the years 0000 to 9999.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Millis(i64);

impl Millis {
    pub(crate) fn now() -> Millis {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Millis(i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
    }

    pub(crate) fn plus(self, duration: Duration) -> Millis {
        let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Millis(self.0.saturating_add(millis))
    }

    pub(crate) fn minus(self, duration: Duration) -> Millis {
        let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Millis(self.0.saturating_sub(millis))
    }

    /// `2026-12-03T17:45:00.123Z`; instants outside the years 0000-9999
    /// are clamped to them, so the width never changes.
    pub(crate) fn to_rfc3339(self) -> String {
        const MIN: i64 = -62_167_219_200_000; // 0000-01-01T00:00:00.000Z
        const MAX: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
        let millis = self.0.clamp(MIN, MAX);

        let seconds = millis.div_euclid(1000);
        let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
        let rest = seconds.rem_euclid(86_400);
        let (hour, minute, second) = (rest / 3600, rest % 3600 / 60, rest % 60);
        let fraction = millis.rem_euclid(1000);
        format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{fraction:03}Z")
    }
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_fixed_width_utc() {
        let cases = [
            (0, "1970-01-01T00:00:00.000Z"),
            (1_000_000_000_123, "2001-09-09T01:46:40.123Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (1_796_313_900_007, "2026-12-03T16:05:00.007Z"),
            (-1, "1969-12-31T23:59:59.999Z"),
            (i64::MAX, "9999-12-31T23:59:59.999Z"),
            (i64::MIN, "0000-01-01T00:00:00.000Z"),
        ];
        for (millis, text) in cases {
            assert_eq!(Millis(millis).to_rfc3339(), text, "{millis}");
        }
    }

    #[test]
    fn text_order_is_time_order() {
        let instants = [-5_000, 0, 999, 1_000, 86_399_999, 1_796_313_900_007];
        for pair in instants.windows(2) {
            let (a, b) = (Millis(pair[0]), Millis(pair[1]));
            assert!(a.to_rfc3339() < b.to_rfc3339());
        }
    }

    #[test]
    fn arithmetic_saturates() {
        let far = Millis(i64::MAX - 1).plus(Duration::from_secs(10));
        assert_eq!(far, Millis(i64::MAX));
        assert_eq!(
            Millis(1_000).minus(Duration::from_millis(1_500)),
            Millis(-500)
        );
    }
}
