//! Keeping a mailbox's push channel open as a source of wake-ups, for the listening streams'
//! watchers and for the background notifier alike: each state event wakes, every reconnection
//! after the first wakes too (a catch-up look: frames lost while away cost latency, not mail),
//! silence for 2.5 pings or a dropped stream reconnects after a backoff (1 s to 5 min, full
//! jitter), a transient failure to open (a 5xx while the server restarts, 429, a refused or
//! reset connection, a timeout) is retried on the same backoff, never sooner than the server's
//! `Retry-After`, and only a server without push is asked again after a long wait.

use std::{
    future::Future,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use crate::domain::ports::{MailStoreError, PushChannel, PushEvent};

/// The longest wait between push reconnections.
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// What an attempt to open the channel came to.
#[derive(Debug)]
pub(super) enum Opened {
    /// The channel.
    Channel(PushChannel),
    /// The server offers no push.
    NotOffered,
    /// Nobody to open it for right now.
    NoCredential,
    /// It failed for now: retried on the backoff.
    Failed {
        /// Why, for the log.
        why: String,
        /// The least wait the server asked for.
        wait: Option<Duration>,
    },
}

impl Opened {
    /// A failure with no wait asked for.
    pub(super) fn failed_for(why: &impl std::fmt::Display) -> Self {
        Self::Failed {
            why: why.to_string(),
            wait: None,
        }
    }

    /// A failure of the mail server's, with the wait it asked for.
    pub(super) fn failed(e: &MailStoreError) -> Self {
        Self::Failed {
            why: e.to_string(),
            wait: match e {
                MailStoreError::RateLimited { retry_after } => *retry_after,
                _ => None,
            },
        }
    }
}

/// How patiently.
#[derive(Debug, Clone, Copy)]
pub(super) struct PushPatience {
    /// The ping interval asked for.
    pub ping: Duration,
    /// How long to wait without a credential before trying again.
    pub idle: Duration,
    /// When the server offers no push, how long until it is asked again.
    pub retry: Duration,
}

/// Runs forever (the caller aborts it): opens with `open`, calls `wake` for every state event
/// and catch-up, and keeps `live` true while a stream is open.
pub(super) async fn keep_open<O, F>(
    mut open: O,
    patience: PushPatience,
    live: &AtomicBool,
    wake: impl Fn(),
) where
    O: FnMut() -> F,
    F: Future<Output = Opened>,
{
    let mut backoff = Duration::from_secs(1);
    // Mail may have come while no stream was open: every stream but the very first one
    // starts with a look.
    let mut catch_up = false;
    loop {
        let mut wait = None;
        match open().await {
            Opened::NoCredential => {
                tokio::time::sleep(patience.idle).await;
                continue;
            }
            Opened::NotOffered => {
                tracing::debug!("no push from the mail server; polling");
                tokio::time::sleep(patience.retry).await;
                continue;
            }
            Opened::Channel(mut events) => {
                live.store(true, Ordering::Relaxed);
                backoff = Duration::from_secs(1);
                if catch_up {
                    wake();
                }
                catch_up = true;
                let silence = patience.ping.saturating_mul(5) / 2;
                loop {
                    match tokio::time::timeout(silence, events.recv()).await {
                        Ok(Some(PushEvent::Changed)) => wake(),
                        Ok(Some(PushEvent::Ping)) => {}
                        Ok(None) | Err(_) => break,
                    }
                }
                live.store(false, Ordering::Relaxed);
                tracing::debug!("push stream ended; reconnecting");
            }
            Opened::Failed { why, wait: asked } => {
                tracing::info!(error = %why, "push channel failed; retrying");
                catch_up = true;
                wait = asked;
            }
        }
        let ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX);
        let jittered = Duration::from_millis(rand::random_range(0..=ms));
        tokio::time::sleep(jittered.max(wait.unwrap_or_default().min(BACKOFF_MAX))).await;
        backoff = backoff.saturating_mul(2).min(BACKOFF_MAX);
    }
}
