//! Background delivery of new-mail notices: what one notice says, how it is framed for an
//! agent that must not obey it, where it goes (a Standard Webhooks endpoint or Poke's inbound
//! API), and the retry schedule of one delivery. No HTTP here: the adapter is
//! `crate::outbound::delivery`.
//!
//! A notice goes to an agent that holds the person's mail and calendar and acts on what it
//! reads, while its sender and subject are written by whoever sent the email. So the text
//! states once, before any of it, that what follows is untrusted data; every untrusted value is
//! quoted on one line that it cannot end or leave, and is cut short.

mod destination;
mod notice;
mod retry;

use std::{future::Future, time::Duration};

pub use destination::{
    Destination, DestinationError, GENERATED_SECRET_BYTES, MAX_SECRET_BYTES, MAX_URL_LEN,
    MIN_SECRET_BYTES, WebhookSecret, WebhookSecretError, WebhookUrl,
};
pub use notice::{
    Arrival, CLOSING, InvalidRunId, MAX_ADDRESS_CHARS, MAX_ARRIVALS_SHOWN, MAX_DIGEST_CHARS,
    MAX_NAME_CHARS, MAX_RUN_ID_LEN, MAX_SUBJECT_CHARS, Notice, PREAMBLE, RunId, quoted,
    untrusted_text,
};
pub use retry::{
    AttemptOutcome, DeliveryError, Jitter, MAX_RETRY_AFTER, RetrySchedule, STANDARD_DELAYS,
};

/// Sends one notice to one destination, once (HTTP in production).
#[trait_variant::make(Send)]
#[cfg_attr(any(test, feature = "test-support"), mockall::automock)]
pub trait Deliverer: Sync + 'static {
    /// One attempt: what the destination answered, classified. Never panics on bad input;
    /// a destination that can't be used is a [`AttemptOutcome::Permanent`] outcome.
    async fn attempt(&self, destination: &Destination, notice: &Notice) -> AttemptOutcome;
}

/// How a delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The destination took it.
    Delivered,
    /// The destination refused it for good (or can't be used); no more attempts.
    Refused,
    /// Every attempt of the schedule failed.
    GaveUp,
}

/// What a delivery came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Attempts made.
    pub attempts: u32,
    /// How it ended.
    pub outcome: DeliveryOutcome,
    /// The last failure (also when a later attempt delivered).
    pub last_error: Option<DeliveryError>,
}

/// Delivers `notice` to `destination`, retrying by `schedule`; `sleep` waits (the runtime's
/// timer in production, a recorder in tests).
pub async fn deliver_with_retries<D, S, F>(
    deliverer: &D,
    destination: &Destination,
    notice: &Notice,
    schedule: &RetrySchedule,
    sleep: S,
) -> DeliveryReport
where
    D: Deliverer,
    S: Fn(Duration) -> F,
    F: Future<Output = ()>,
{
    let mut attempt = 0;
    let mut last_error = None;
    loop {
        attempt += 1;
        let report = |outcome, last_error| DeliveryReport {
            attempts: attempt,
            outcome,
            last_error,
        };
        match deliverer.attempt(destination, notice).await {
            AttemptOutcome::Delivered { .. } => {
                return report(DeliveryOutcome::Delivered, last_error);
            }
            AttemptOutcome::Permanent(error) => {
                tracing::warn!(
                    destination = destination.kind(),
                    attempt,
                    reason = %error,
                    "notification refused; not retried"
                );
                return report(DeliveryOutcome::Refused, Some(error));
            }
            AttemptOutcome::Retry { error, retry_after } => {
                let Some(wait) = schedule.delay_before(attempt + 1, retry_after) else {
                    tracing::warn!(
                        destination = destination.kind(),
                        attempt,
                        reason = %error,
                        "notification not delivered; giving up"
                    );
                    return report(DeliveryOutcome::GaveUp, Some(error));
                };
                tracing::info!(
                    destination = destination.kind(),
                    attempt,
                    wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    reason = %error,
                    "notification not delivered; will retry"
                );
                last_error = Some(error);
                sleep(wait).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    fn notice() -> Notice {
        Notice {
            run_id: RunId::parse("run-1").unwrap(),
            arrivals: vec![],
            digest: None,
        }
    }

    fn webhook() -> Destination {
        Destination::Webhook {
            url: WebhookUrl::parse("https://hooks.example.com/in", false).unwrap(),
            secret: WebhookSecret::generate(),
        }
    }

    /// A deliverer answering `outcomes` in order (and panicking if asked more often).
    fn scripted(outcomes: Vec<AttemptOutcome>) -> MockDeliverer {
        let mut mock = MockDeliverer::new();
        let mut seq = mockall::Sequence::new();
        for outcome in outcomes {
            mock.expect_attempt()
                .times(1)
                .in_sequence(&mut seq)
                .withf(|d, n| d.kind() == "webhook" && n.run_id.as_str() == "run-1")
                .returning(move |_, _| {
                    let outcome = outcome.clone();
                    Box::pin(async move { outcome })
                });
        }
        mock
    }

    async fn run(
        mock: &MockDeliverer,
        schedule: &RetrySchedule,
    ) -> (DeliveryReport, Vec<Duration>) {
        let slept = Mutex::new(Vec::new());
        let report = deliver_with_retries(mock, &webhook(), &notice(), schedule, |d| {
            slept.lock().unwrap().push(d);
            async {}
        })
        .await;
        (report, slept.into_inner().unwrap())
    }

    fn unavailable(status: u16, retry_after: Option<Duration>) -> AttemptOutcome {
        AttemptOutcome::Retry {
            error: DeliveryError::Unavailable { status },
            retry_after,
        }
    }

    #[tokio::test]
    async fn retries_follow_the_schedule_until_delivered() {
        let mock = scripted(vec![
            unavailable(503, None),
            AttemptOutcome::from_error(DeliveryError::TimedOut),
            AttemptOutcome::Delivered { status: 200 },
        ]);
        let schedule = RetrySchedule::standard().with_jitter(Jitter::None);
        let (report, slept) = run(&mock, &schedule).await;
        assert_eq!(
            report,
            DeliveryReport {
                attempts: 3,
                outcome: DeliveryOutcome::Delivered,
                last_error: Some(DeliveryError::TimedOut),
            }
        );
        assert_eq!(slept, STANDARD_DELAYS[..2]);
    }

    #[tokio::test]
    async fn a_permanent_failure_stops_at_once() {
        let mock = scripted(vec![
            unavailable(500, None),
            AttemptOutcome::from_status(410, None),
        ]);
        let schedule = RetrySchedule::standard().with_jitter(Jitter::None);
        let (report, slept) = run(&mock, &schedule).await;
        assert_eq!(
            report,
            DeliveryReport {
                attempts: 2,
                outcome: DeliveryOutcome::Refused,
                last_error: Some(DeliveryError::Rejected { status: 410 }),
            }
        );
        assert_eq!(slept, STANDARD_DELAYS[..1]);
    }

    #[tokio::test]
    async fn retry_after_is_honoured() {
        let mock = scripted(vec![
            unavailable(429, Some(Duration::from_secs(90))),
            unavailable(503, Some(Duration::from_secs(1))),
            AttemptOutcome::Delivered { status: 202 },
        ]);
        let schedule = RetrySchedule::standard().with_jitter(Jitter::None);
        let (report, slept) = run(&mock, &schedule).await;
        assert_eq!(report.outcome, DeliveryOutcome::Delivered);
        // 90 s asked over a 5 s schedule; 1 s asked under a 5 min schedule.
        assert_eq!(slept, [Duration::from_secs(90), Duration::from_secs(300)]);
    }

    #[tokio::test]
    async fn the_schedule_ends_and_the_delivery_gives_up() {
        let mock = scripted(vec![unavailable(503, None); 7]);
        let schedule = RetrySchedule::standard()
            .with_jitter(Jitter::None)
            .scaled(0.001);
        let (report, slept) = run(&mock, &schedule).await;
        assert_eq!(
            report,
            DeliveryReport {
                attempts: 7,
                outcome: DeliveryOutcome::GaveUp,
                last_error: Some(DeliveryError::Unavailable { status: 503 }),
            }
        );
        assert_eq!(slept.len(), 6);
        assert_eq!(slept[5], Duration::from_secs(36));
    }
}
