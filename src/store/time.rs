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

        let nanos = i128::from(millis) * 1_000_000;
        let Ok(at) = time::OffsetDateTime::from_unix_timestamp_nanos(nanos) else {
            return "0000-01-01T00:00:00.000Z".to_string();
        };
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second(),
            at.millisecond()
        )
    }
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
