//! When to try a delivery again: which answers are worth retrying and how long to wait, kept
//! free of HTTP and timers so the adapter only classifies and the driver only waits.

use std::{fmt, sync::Arc, time::Duration};

// ---------------------------------------------------------------------------------------------
// Outcomes
// ---------------------------------------------------------------------------------------------

/// Why one attempt did not deliver.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// 408, 429 or 5xx: the destination is busy or down; try again later.
    #[error("the destination is unavailable (HTTP {status})")]
    Unavailable {
        /// The status.
        status: u16,
    },
    /// No answer in time.
    #[error("the destination did not answer in time")]
    TimedOut,
    /// No connection (name lookup, TCP or TLS failed).
    #[error("the destination could not be reached ({0})")]
    Unreachable(String),
    /// Another 4xx: the destination refused this notification; retrying won't help.
    #[error("the destination refused the notification (HTTP {status})")]
    Rejected {
        /// The status.
        status: u16,
    },
    /// A 3xx, which is never followed (it could lead anywhere, a private address included).
    #[error("the destination answered with a redirect (HTTP {status}); redirects are not followed")]
    Redirected {
        /// The status.
        status: u16,
    },
    /// The destination's host is, or resolves to, a loopback, private or other special address.
    #[error("the destination's address is not a public one, so nothing was sent")]
    ForbiddenAddress,
    /// The destination or the adapter is misconfigured (a key that can't be a header, a TLS
    /// setup failure).
    #[error("the destination is misconfigured ({0})")]
    Misconfigured(String),
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// A 2xx.
    Delivered {
        /// The status.
        status: u16,
    },
    /// Worth trying again, not before `retry_after` if the destination said.
    Retry {
        /// What went wrong.
        error: DeliveryError,
        /// The destination's `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
    /// Not worth trying again.
    Permanent(DeliveryError),
}

impl AttemptOutcome {
    /// The outcome of an HTTP answer: 2xx delivered; 408, 429 and 5xx retried (after
    /// `retry_after`, if given); a redirect or any other status is permanent.
    #[must_use]
    pub fn from_status(status: u16, retry_after: Option<Duration>) -> Self {
        match status {
            200..=299 => Self::Delivered { status },
            408 | 429 | 500..=599 => Self::Retry {
                error: DeliveryError::Unavailable { status },
                retry_after,
            },
            300..=399 => Self::Permanent(DeliveryError::Redirected { status }),
            _ => Self::Permanent(DeliveryError::Rejected { status }),
        }
    }

    /// The outcome of an attempt that got no HTTP answer: timeouts and unreachable
    /// destinations are retried, the rest is permanent.
    #[must_use]
    pub fn from_error(error: DeliveryError) -> Self {
        match error {
            DeliveryError::TimedOut
            | DeliveryError::Unreachable(_)
            | DeliveryError::Unavailable { .. } => Self::Retry {
                error,
                retry_after: None,
            },
            DeliveryError::Rejected { .. }
            | DeliveryError::Redirected { .. }
            | DeliveryError::ForbiddenAddress
            | DeliveryError::Misconfigured(_) => Self::Permanent(error),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Retry schedule
// ---------------------------------------------------------------------------------------------

/// The waits before the second and later attempts (Standard Webhooks' schedule): 5 s, 5 min,
/// 30 min, 2 h, 5 h, 10 h — seven attempts over about 18 hours, then give up.
pub const STANDARD_DELAYS: [Duration; 6] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
];

/// The longest `Retry-After` honoured: a destination asking for more waits this long.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// How a scheduled wait is spread, so destinations that failed together aren't retried in step.
#[derive(Clone, Default)]
pub enum Jitter {
    /// Full jitter: uniformly random between zero and the scheduled wait.
    #[default]
    Full,
    /// Exactly the scheduled wait (tests).
    None,
    /// Any spread (tests): given the scheduled wait, the wait.
    Custom(Arc<dyn Fn(Duration) -> Duration + Send + Sync>),
}

impl Jitter {
    fn apply(&self, scheduled: Duration) -> Duration {
        match self {
            Self::Full => {
                let nanos = u64::try_from(scheduled.as_nanos()).unwrap_or(u64::MAX);
                Duration::from_nanos(rand::random_range(0..=nanos))
            }
            Self::None => scheduled,
            Self::Custom(f) => f(scheduled),
        }
    }
}

impl fmt::Debug for Jitter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Full => "Full",
            Self::None => "None",
            Self::Custom(_) => "Custom",
        })
    }
}

/// The attempts of one delivery: the first at once, then one after each wait.
#[derive(Debug, Clone)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
    jitter: Jitter,
    max_retry_after: Duration,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        Self::standard()
    }
}

impl RetrySchedule {
    /// [`STANDARD_DELAYS`] with full jitter, `Retry-After` capped at [`MAX_RETRY_AFTER`].
    #[must_use]
    pub fn standard() -> Self {
        Self::new(STANDARD_DELAYS.to_vec())
    }

    /// A schedule with these waits between attempts (`delays.len() + 1` attempts in all), full
    /// jitter.
    #[must_use]
    pub fn new(delays: Vec<Duration>) -> Self {
        Self {
            delays,
            jitter: Jitter::Full,
            max_retry_after: MAX_RETRY_AFTER,
        }
    }

    /// Every wait multiplied by `factor` (0.001 turns seconds into milliseconds, for tests).
    /// A factor that is negative or not a number counts as 0; an overflowing wait as the
    /// longest `Duration`. `Retry-After` is not scaled: it is the destination's word.
    #[must_use]
    pub fn scaled(mut self, factor: f64) -> Self {
        for d in &mut self.delays {
            let secs = d.as_secs_f64() * factor;
            *d = if secs.is_nan() || secs <= 0.0 {
                Duration::ZERO
            } else {
                Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
            };
        }
        self
    }

    /// The same waits spread by `jitter`.
    #[must_use]
    pub fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// The longest `Retry-After` honoured.
    #[must_use]
    pub fn with_max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max;
        self
    }

    /// Attempts in all.
    #[must_use]
    pub fn attempts(&self) -> u32 {
        u32::try_from(self.delays.len())
            .unwrap_or(u32::MAX - 1)
            .saturating_add(1)
    }

    /// The wait before attempt `attempt` (1-based; the first is immediate), given the previous
    /// answer's `Retry-After`: the scheduled wait, jittered, but never less than what the
    /// destination asked (capped). `None` when the schedule is over: give up.
    #[must_use]
    pub fn delay_before(&self, attempt: u32, retry_after: Option<Duration>) -> Option<Duration> {
        if attempt <= 1 {
            return Some(Duration::ZERO);
        }
        let index = usize::try_from(attempt - 2).ok()?;
        let scheduled = self.jitter.apply(*self.delays.get(index)?);
        Some(match retry_after {
            Some(asked) => scheduled.max(asked.min(self.max_retry_after)),
            None => scheduled,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified() {
        let retry = |status, retry_after| AttemptOutcome::Retry {
            error: DeliveryError::Unavailable { status },
            retry_after,
        };
        assert_eq!(
            AttemptOutcome::from_status(200, None),
            AttemptOutcome::Delivered { status: 200 }
        );
        assert_eq!(
            AttemptOutcome::from_status(204, None),
            AttemptOutcome::Delivered { status: 204 }
        );
        for status in [408, 429, 500, 502, 503, 504] {
            assert_eq!(
                AttemptOutcome::from_status(status, None),
                retry(status, None)
            );
        }
        let after = Some(Duration::from_secs(7));
        assert_eq!(AttemptOutcome::from_status(429, after), retry(429, after));
        for status in [301, 302, 303, 307, 308] {
            assert_eq!(
                AttemptOutcome::from_status(status, None),
                AttemptOutcome::Permanent(DeliveryError::Redirected { status })
            );
        }
        for status in [400, 401, 403, 404, 410, 413, 422, 101, 600] {
            assert_eq!(
                AttemptOutcome::from_status(status, None),
                AttemptOutcome::Permanent(DeliveryError::Rejected { status })
            );
        }
        assert!(matches!(
            AttemptOutcome::from_error(DeliveryError::TimedOut),
            AttemptOutcome::Retry { .. }
        ));
        assert!(matches!(
            AttemptOutcome::from_error(DeliveryError::Unreachable("refused".into())),
            AttemptOutcome::Retry { .. }
        ));
        assert_eq!(
            AttemptOutcome::from_error(DeliveryError::ForbiddenAddress),
            AttemptOutcome::Permanent(DeliveryError::ForbiddenAddress)
        );
    }

    #[test]
    fn the_standard_schedule_is_seven_attempts_over_about_eighteen_hours() {
        let s = RetrySchedule::standard().with_jitter(Jitter::None);
        assert_eq!(s.attempts(), 7);
        assert_eq!(s.delay_before(1, None), Some(Duration::ZERO));
        let waits: Vec<Duration> = (2..=7).map(|a| s.delay_before(a, None).unwrap()).collect();
        assert_eq!(waits, STANDARD_DELAYS);
        assert_eq!(s.delay_before(8, None), None, "then give up");
        let total: Duration = waits.iter().sum();
        assert_eq!(total.as_secs(), 5 + 300 + 1800 + 7200 + 18_000 + 36_000);

        let fast = RetrySchedule::standard()
            .with_jitter(Jitter::None)
            .scaled(0.001);
        assert_eq!(fast.delay_before(2, None), Some(Duration::from_millis(5)));
        assert_eq!(fast.delay_before(7, None), Some(Duration::from_secs(36)));
        assert_eq!(
            RetrySchedule::standard()
                .scaled(f64::NAN)
                .with_jitter(Jitter::None)
                .delay_before(3, None),
            Some(Duration::ZERO)
        );
        assert_eq!(
            RetrySchedule::standard()
                .scaled(-1.0)
                .with_jitter(Jitter::None)
                .delay_before(3, None),
            Some(Duration::ZERO)
        );
        assert_eq!(
            RetrySchedule::standard()
                .scaled(f64::INFINITY)
                .with_jitter(Jitter::None)
                .delay_before(3, None),
            Some(Duration::MAX)
        );
    }

    #[test]
    fn full_jitter_stays_within_the_scheduled_wait_and_retry_after_is_a_floor() {
        let s = RetrySchedule::standard();
        for _ in 0..100 {
            let d = s.delay_before(3, None).unwrap();
            assert!(d <= Duration::from_secs(300), "{d:?}");
        }
        let halved =
            RetrySchedule::standard().with_jitter(Jitter::Custom(Arc::new(|d: Duration| d / 2)));
        assert_eq!(
            halved.delay_before(2, None),
            Some(Duration::from_millis(2500))
        );
        // The destination's word wins when longer, up to the cap.
        let ra = |secs| Some(Duration::from_secs(secs));
        assert_eq!(halved.delay_before(2, ra(60)), ra(60));
        assert_eq!(
            halved.delay_before(2, ra(1)),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(halved.delay_before(2, ra(86_400)), Some(MAX_RETRY_AFTER));
        assert_eq!(
            halved
                .with_max_retry_after(Duration::from_secs(10))
                .delay_before(2, ra(60)),
            ra(10)
        );
    }
}
