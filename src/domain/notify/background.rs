//! Background delivery's records: a person's separate *notifier* connection upstream and, per
//! client connection, where its notifications go and how the last delivery went.
//!
//! Client grants open only with a live client token (the vault's guarantee). A watcher that
//! runs while nobody is asking has no such token, so background delivery uses its own
//! upstream grant — approved by the person at the mail provider as "mailconnect notifier" —
//! sealed to the notifier key. The store seals with the key's public half; only the notifier,
//! which alone holds the private half (in a file outside the vault directory), opens. A copy
//! of the vault and the configuration opens neither client grants nor notifier grants.

use chrono::{DateTime, Utc};

use super::delivery::Destination;
use crate::domain::{
    grant::{GrantId, UpstreamCredential},
    notify::ChangeFeed,
    ports::{MailStoreError, PushChannel, UpstreamTokens},
};

/// How the last delivery went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastDelivery {
    /// When it finished.
    pub at: DateTime<Utc>,
    /// Delivered, or given up on.
    pub delivered: bool,
    /// For the settings page: the attempts and the last answer ("delivered (HTTP 200) after
    /// 2 attempts"). Never mail content.
    pub detail: String,
}

/// What the settings page shows of a connection's background delivery (no secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Background {
    /// The connection.
    pub grant: GrantId,
    /// The person (account digest): whose notifier grant watches for it.
    pub account: String,
    /// `webhook` or `poke`.
    pub kind: String,
    /// Where to, for the person: the webhook's host, or "Poke".
    pub target: String,
    /// Since when.
    pub since: DateTime<Utc>,
    /// The last delivery.
    pub last: Option<LastDelivery>,
}

/// Why a background record could not be stored or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackgroundError {
    /// The store failed.
    #[error("the background store failed: {0}")]
    Store(String),
    /// Background delivery is not set up by the operator (no notifier key).
    #[error("background notifications are not available on this server")]
    Unavailable,
}

/// The records, as the front end sees them: it can seal and list, never open.
pub trait BackgroundStore: Send + Sync {
    /// Seals `tokens` to the notifier for `account` (replacing an earlier notifier grant).
    ///
    /// # Errors
    /// [`BackgroundError`].
    fn seal_notifier(&self, account: &str, tokens: &UpstreamTokens) -> Result<(), BackgroundError>;

    /// Where the notifier's last look at `account` left off (an encoded cursor: the server's
    /// state and a time, nothing of the mail), so a restart misses nothing.
    ///
    /// # Errors
    /// [`BackgroundError`].
    fn cursor(&self, account: &str) -> Result<Option<String>, BackgroundError>;

    /// Records where the last look left off.
    ///
    /// # Errors
    /// [`BackgroundError`].
    fn save_cursor(&self, account: &str, cursor: &str) -> Result<(), BackgroundError>;

    /// Turns background delivery on for `grant`, sealing `destination`'s secrets.
    ///
    /// # Errors
    /// [`BackgroundError`].
    fn seal_destination(
        &self,
        grant: &GrantId,
        account: &str,
        destination: &Destination,
    ) -> Result<(), BackgroundError>;

    /// Turns background delivery on for `grant` only if the person has a notifier grant, in
    /// one transaction (the notifier ends grants no destination uses); false: consent first.
    ///
    /// # Errors
    /// [`BackgroundError`].
    fn seal_destination_if_notifier(
        &self,
        grant: &GrantId,
        account: &str,
        destination: &Destination,
    ) -> Result<bool, BackgroundError>;

    /// Removes the destinations of connections that no longer exist; returns how many.
    ///
    /// # Errors
    /// [`BackgroundError`].
    fn remove_orphans(&self) -> Result<usize, BackgroundError>;

    /// The connection's background delivery, if on.
    ///
    /// # Errors
    /// [`BackgroundError`].
    fn background(&self, grant: &GrantId) -> Result<Option<Background>, BackgroundError>;

    /// Every connection with background delivery on.
    ///
    /// # Errors
    /// [`BackgroundError`].
    fn backgrounds(&self) -> Result<Vec<Background>, BackgroundError>;

    /// Records how a delivery went.
    ///
    /// # Errors
    /// [`BackgroundError`].
    fn record_delivery(&self, grant: &GrantId, last: &LastDelivery) -> Result<(), BackgroundError>;

    /// Turns background delivery off for `grant` (its destination's secrets go with it);
    /// returns whether the person has other connections delivering in the background.
    ///
    /// # Errors
    /// [`BackgroundError`].
    fn remove_destination(&self, grant: &GrantId) -> Result<bool, BackgroundError>;
}

/// What only the notifier can do: open what was sealed to it, and delete a notifier grant.
pub trait NotifierKeyring: Send + Sync {
    /// The person's notifier tokens, if any.
    ///
    /// # Errors
    /// [`BackgroundError`].
    fn open_notifier(&self, account: &str) -> Result<Option<UpstreamTokens>, BackgroundError>;

    /// A connection's destination, if any.
    ///
    /// # Errors
    /// [`BackgroundError`].
    fn open_destination(&self, grant: &GrantId) -> Result<Option<Destination>, BackgroundError>;

    /// The people with a notifier grant.
    ///
    /// # Errors
    /// [`BackgroundError`].
    fn notifier_accounts(&self) -> Result<Vec<String>, BackgroundError>;

    /// Deletes the person's notifier grant if no connection delivers through it any more, in
    /// one transaction, and returns its tokens (to revoke them at the provider).
    ///
    /// # Errors
    /// [`BackgroundError`].
    fn take_unused(&self, account: &str) -> Result<Option<UpstreamTokens>, BackgroundError>;

    /// Deletes the person's notifier grant.
    ///
    /// # Errors
    /// [`BackgroundError`].
    fn remove_notifier(&self, account: &str) -> Result<(), BackgroundError>;
}

/// The notifier's whole view of a mailbox: new mail's headers and the push channel. No search,
/// no body, no change, no sending (the JMAP adapter can't even build such a request).
#[trait_variant::make(Send)]
#[cfg_attr(any(test, feature = "test-support"), mockall::automock)]
pub trait NotifierMailbox: Sync + 'static {
    /// Headers of the mail created since `state` (received since `since` on a fresh start).
    async fn changes_since(
        &self,
        cred: &UpstreamCredential,
        state: Option<String>,
        since: DateTime<Utc>,
    ) -> Result<ChangeFeed, MailStoreError>;

    /// The push channel, `None` without push.
    async fn open_push(
        &self,
        cred: &UpstreamCredential,
        ping: std::time::Duration,
    ) -> Result<Option<PushChannel>, MailStoreError>;
}

/// What the front end may ask of the notifier, which holds the key: it never gets the key.
pub trait NotifierControl: Send + Sync {
    /// Ends a person's notifier grant if no connection of theirs delivers through it any more:
    /// deletes it and revokes it at the provider.
    fn turn_off<'a>(
        &'a self,
        account: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>>;

    /// Settings changed: look again soon.
    fn wake(&self);
}
