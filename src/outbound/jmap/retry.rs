//! One retry path for throttling, for every JMAP request: HTTP 429 and 503 (honouring
//! `Retry-After`), and — in `changes` — `rateLimit` SetErrors for single records. Bounded in
//! attempts and in total wait, with jitter so throttled clients don't retry in step.

use std::{future::Future, time::Duration};

use crate::domain::ports::MailStoreError;

/// Attempts in all for one change (the first and the retries).
pub const ATTEMPTS: u32 = 4;
/// The most a change waits for throttling, in all.
pub const MAX_WAIT: Duration = Duration::from_secs(10);
const BASE_DELAY: Duration = Duration::from_millis(200);

/// Runs `op` again while it is throttled, at most [`ATTEMPTS`] times and [`MAX_WAIT`] in all,
/// waiting what the server asked (`Retry-After`) or an exponential, jittered delay.
///
/// # Errors
/// The last error when the retries are exhausted, or the first error that isn't throttling.
pub async fn with_retries<T, F, Fut>(mut op: F) -> Result<T, MailStoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, MailStoreError>>,
{
    let mut waited = Duration::ZERO;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match op().await {
            Err(MailStoreError::RateLimited { retry_after }) if attempt < ATTEMPTS => {
                let delay = delay(attempt, retry_after);
                if waited + delay > MAX_WAIT {
                    return Err(MailStoreError::RateLimited { retry_after });
                }
                tokio::time::sleep(delay).await;
                waited += delay;
            }
            other => return other,
        }
    }
}

/// The wait before retry `attempt` (1-based): the server's word, or 200 ms · 2ⁿ⁻¹ with up to
/// 50 % jitter so throttled clients don't retry in step.
#[must_use]
pub fn delay(attempt: u32, retry_after: Option<Duration>) -> Duration {
    retry_after.unwrap_or_else(|| {
        let base = BASE_DELAY * 2u32.saturating_pow(attempt.saturating_sub(1));
        let jitter = rand::random_range(0..=base.as_millis() as u64 / 2);
        base + Duration::from_millis(jitter)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_wait_wins_and_ours_grows_with_jitter() {
        assert_eq!(
            delay(3, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        let first = delay(1, None);
        assert!(
            first >= BASE_DELAY && first <= BASE_DELAY * 3 / 2,
            "{first:?}"
        );
        let third = delay(3, None);
        assert!(
            third >= BASE_DELAY * 4 && third <= BASE_DELAY * 6,
            "{third:?}"
        );
    }

    #[tokio::test]
    async fn throttling_is_retried_within_bounds() {
        let mut calls = 0;
        let result: Result<(), _> = with_retries(|| {
            calls += 1;
            async {
                Err(MailStoreError::RateLimited {
                    retry_after: Some(Duration::from_millis(10)),
                })
            }
        })
        .await;
        assert!(matches!(result, Err(MailStoreError::RateLimited { .. })));
        assert_eq!(calls, ATTEMPTS);
        let mut calls = 0;
        let result: Result<(), _> = with_retries(|| {
            calls += 1;
            async {
                Err(MailStoreError::RateLimited {
                    retry_after: Some(Duration::from_secs(60)),
                })
            }
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls, 1, "a wait longer than the bound is not waited");
    }
}
