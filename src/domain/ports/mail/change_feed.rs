//! The change feed: new mail since a state, and the push channel that says when to look.
//!
//! All the background notifier may see of a mailbox: its adapter
//! (`crate::outbound::jmap::NotifierMail`) implements this port and no other.

use std::time::Duration;

use crate::domain::{grant::UpstreamCredential, notify::ChangeFeed};

use super::MailStoreError;

/// A wake-up from the mail server's push channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushEvent {
    /// Something changed: look.
    Changed,
    /// Nothing changed; the channel is alive.
    Ping,
}

/// An open push channel: wake-ups until the server or the network ends it (then `None`).
pub type PushChannel = tokio::sync::mpsc::Receiver<PushEvent>;

/// New mail since a state, and the push channel: no search, no body, no change, no sending.
#[trait_variant::make(Send)]
#[cfg_attr(any(test, feature = "test-support"), mockall::automock)]
pub trait MailFeed: Sync + 'static {
    /// What was created since `state` (one request: changes, the created emails, mailboxes and
    /// identities); without a state, or when the server no longer knows it, the mail received
    /// since `since` instead (`reset`).
    async fn changes_since(
        &self,
        cred: &UpstreamCredential,
        state: Option<String>,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<ChangeFeed, MailStoreError>;

    /// Opens the server's push channel for new-mail wake-ups, pinging every `ping`; `None`
    /// when the server offers none (then the caller polls).
    async fn open_push(
        &self,
        cred: &UpstreamCredential,
        ping: Duration,
    ) -> Result<Option<PushChannel>, MailStoreError>;
}
