//! How often to poll a mailbox that has no push: twice as often for a while after something
//! happened (an arrival, a new listener), the base interval otherwise, and after an idle hour
//! less and less often, up to a quarter of an hour — a watcher left open overnight costs almost
//! nothing, and one in use answers quickly.

use std::time::Duration;

/// How long "something just happened" lasts.
pub const HOT_FOR: Duration = Duration::from_secs(10 * 60);
/// After how long without anything the polling slows down.
pub const IDLE_AFTER: Duration = Duration::from_secs(3600);
/// The slowest polling (unless the base interval is slower still).
pub const SLOWEST: Duration = Duration::from_secs(15 * 60);

/// The interval between looks, `since` the last activity, for a `base` interval.
#[must_use]
pub fn poll_interval(base: Duration, since: Duration) -> Duration {
    if since < HOT_FOR {
        return (base / 2).max(Duration::from_secs(1)).min(base);
    }
    if since < IDLE_AFTER {
        return base;
    }
    // Doubling for every idle hour, from the first.
    let hours = (since - IDLE_AFTER).as_secs() / 3600 + 1;
    let factor = 1_u32 << hours.min(8);
    base.saturating_mul(factor).min(SLOWEST.max(base))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn hot_then_base_then_slower_by_the_idle_hour_up_to_a_quarter_hour() {
        let base = MIN;
        assert_eq!(poll_interval(base, Duration::ZERO), Duration::from_secs(30));
        assert_eq!(poll_interval(base, 9 * MIN), Duration::from_secs(30));
        assert_eq!(poll_interval(base, 10 * MIN), base);
        assert_eq!(poll_interval(base, 59 * MIN), base);
        assert_eq!(poll_interval(base, 60 * MIN), 2 * MIN);
        assert_eq!(poll_interval(base, 125 * MIN), 4 * MIN);
        assert_eq!(poll_interval(base, 24 * 60 * MIN), SLOWEST);
        // A test's one-second base stays one second when hot; a slow base is never sped past.
        assert_eq!(
            poll_interval(Duration::from_secs(1), Duration::ZERO),
            Duration::from_secs(1)
        );
        assert_eq!(poll_interval(30 * MIN, 48 * 60 * MIN), 30 * MIN);
    }
}
