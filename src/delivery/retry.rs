//! When a failed push is tried again: exponential backoff with jitter, a
//! floor of `retry_base`, a ceiling of `retry_max`, and the endpoint's
//! `Retry-After` when it gives one. Each wait is drawn between the
//! previous attempt's ceiling and this one's, so waits never shrink from
//! one attempt to the next while still spreading retries out.

use std::time::Duration;

/// The retry settings of `[delivery]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub max: Duration,
}

impl RetryPolicy {
    /// The longest wait after failed attempt number `attempt` (1-based):
    /// `base * 2^(attempt-1)`, at most `max`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(32);
        self.base
            .saturating_mul(1u32 << doublings.min(31))
            .min(self.max)
            .max(self.base)
    }

    /// The wait after failed attempt `attempt`, given `unit`, a random
    /// number in `[0, 1)`: uniform between the previous attempt's ceiling
    /// (`base` for the first) and this attempt's [`Self::ceiling`], so
    /// that endpoints recovering from an outage are not hit by every retry
    /// at once, and no wait is shorter than the one before it.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let ceiling = self.ceiling(attempt);
        let floor = if attempt <= 1 {
            self.base
        } else {
            self.ceiling(attempt - 1)
        };
        let spread = ceiling.saturating_sub(floor);
        floor + spread.mul_f64(unit.clamp(0.0, 1.0))
    }

    /// The wait an endpoint asked for, at most `max`.
    pub fn honour(&self, retry_after: Duration) -> Duration {
        retry_after.min(self.max)
    }
}

/// A `Retry-After` header in seconds. The HTTP-date form is not read: a
/// delivery then backs off as usual.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// A random number in `[0, 1)`; 0.5 if the system has none to give.
pub fn unit_random() -> f64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return 0.5;
    }
    // 53 random bits: every value a f64 in [0, 1) can hold evenly.
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 10,
        base: Duration::from_millis(100),
        max: Duration::from_millis(500),
    };

    #[test]
    fn ceilings_double_from_base_up_to_max() {
        let ceilings: Vec<u128> = (1..=6).map(|n| POLICY.ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 500, 500, 500]);
        assert_eq!(POLICY.ceiling(u32::MAX), POLICY.max);
    }

    #[test]
    fn delays_never_shrink_from_one_attempt_to_the_next() {
        let units = [0.0, 0.3, 0.999_999];
        for attempt in 1..=8 {
            for earlier in units {
                for later in units {
                    assert!(
                        POLICY.delay(attempt + 1, later) >= POLICY.delay(attempt, earlier),
                        "{attempt}: {earlier} then {later}"
                    );
                }
            }
        }
    }

    #[test]
    fn delays_stay_between_base_and_the_ceiling() {
        for attempt in 1..=8 {
            for unit in [0.0, 0.25, 0.999_999, 1.5, -1.0] {
                let delay = POLICY.delay(attempt, unit);
                assert!(delay >= POLICY.base, "{attempt} {unit}");
                assert!(delay <= POLICY.ceiling(attempt), "{attempt} {unit}");
            }
        }
        // Attempt 3 draws between the ceilings of attempts 2 and 3.
        assert_eq!(POLICY.delay(3, 0.5), Duration::from_millis(300));
    }

    #[test]
    fn retry_after_is_seconds_capped_at_max() {
        assert_eq!(parse_retry_after(" 2 "), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(
            POLICY.honour(Duration::from_secs(2)),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn random_units_are_in_range() {
        for _ in 0..100 {
            let unit = unit_random();
            assert!((0.0..1.0).contains(&unit));
        }
    }
}
