//! Keeping a mailbox's push channel open as a source of wake-ups, for the listening streams'
//! watchers and for the background notifier alike: each state event wakes, every reconnection
//! after the first wakes too (a catch-up look: frames lost while away cost latency, not mail),
//! silence for 2.5 pings or a dropped stream reconnects after a backoff (1 s to 5 min, full
//! jitter), and a server without push is asked again after a long wait.

use std::{
    future::Future,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use crate::domain::ports::{PushChannel, PushEvent};

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
    /// It failed (logged by the caller's words).
    Failed(String),
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
    let mut connected_before = false;
    loop {
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
                if connected_before {
                    wake();
                }
                connected_before = true;
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
            Opened::Failed(why) => tracing::info!(error = %why, "push channel failed"),
        }
        let ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX);
        tokio::time::sleep(Duration::from_millis(rand::random_range(0..=ms))).await;
        backoff = backoff.saturating_mul(2).min(BACKOFF_MAX);
    }
}
