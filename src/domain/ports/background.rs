//! Background delivery's records (docs/storage-schema.md `notifier_v1`, `background_v1`):
//! the front end's side seals and lists, only the notifier's side opens. See
//! [`crate::domain::notify::background`] for why there are two sides.

use crate::domain::{
    grant::GrantId,
    notify::{
        background::{Background, LastDelivery},
        delivery::Destination,
    },
};

use super::UpstreamTokens;

/// Why a background record could not be stored or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackgroundError {
    /// Background delivery is not set up by the operator (no notifier key).
    #[error("background notifications are not available on this server")]
    Unavailable,
    /// The store failed, or a record does not open with this key.
    #[error("the background store failed: {0}")]
    Unexpected(String),
}

/// The records, as the front end sees them: it can seal and list, never open.
#[trait_variant::make(Send)]
pub trait BackgroundStore: Sync + 'static {
    /// Seals `tokens` to the notifier for `account` (replacing an earlier notifier grant).
    ///
    /// # Errors
    /// [`BackgroundError`].
    async fn seal_notifier(
        &self,
        account: &str,
        tokens: &UpstreamTokens,
    ) -> Result<(), BackgroundError>;

    /// Where the notifier's last look at `account` left off (an encoded cursor: the server's
    /// state and a time, nothing of the mail), so a restart misses nothing.
    ///
    /// # Errors
    /// [`BackgroundError`].
    async fn cursor(&self, account: &str) -> Result<Option<String>, BackgroundError>;

    /// Records where the last look left off (only while the person has a notifier grant).
    ///
    /// # Errors
    /// [`BackgroundError`].
    async fn save_cursor(&self, account: &str, cursor: &str) -> Result<(), BackgroundError>;

    /// Turns background delivery on for `grant`, sealing `destination`'s secrets.
    ///
    /// # Errors
    /// [`BackgroundError`].
    async fn seal_destination(
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
    async fn seal_destination_if_notifier(
        &self,
        grant: &GrantId,
        account: &str,
        destination: &Destination,
    ) -> Result<bool, BackgroundError>;

    /// Removes the destinations of connections that no longer exist; returns how many.
    ///
    /// # Errors
    /// [`BackgroundError`].
    async fn remove_orphans(&self) -> Result<usize, BackgroundError>;

    /// The connection's background delivery, if on.
    ///
    /// # Errors
    /// [`BackgroundError`].
    async fn background(&self, grant: &GrantId) -> Result<Option<Background>, BackgroundError>;

    /// Every connection with background delivery on.
    ///
    /// # Errors
    /// [`BackgroundError`].
    async fn backgrounds(&self) -> Result<Vec<Background>, BackgroundError>;

    /// Records how a delivery went (nothing, once turned off).
    ///
    /// # Errors
    /// [`BackgroundError`].
    async fn record_delivery(
        &self,
        grant: &GrantId,
        last: &LastDelivery,
    ) -> Result<(), BackgroundError>;

    /// Turns background delivery off for `grant` (its destination's secrets go with it);
    /// returns whether the person has other connections delivering in the background.
    ///
    /// # Errors
    /// [`BackgroundError`].
    async fn remove_destination(&self, grant: &GrantId) -> Result<bool, BackgroundError>;
}

/// What only the notifier can do: open what was sealed to it, and delete a notifier grant.
#[trait_variant::make(Send)]
pub trait NotifierKeyring: Sync + 'static {
    /// The person's notifier tokens, if any.
    ///
    /// # Errors
    /// [`BackgroundError`], also when they don't open with this key.
    async fn open_notifier(&self, account: &str)
    -> Result<Option<UpstreamTokens>, BackgroundError>;

    /// A connection's destination, if any.
    ///
    /// # Errors
    /// [`BackgroundError`], also when it doesn't open with this key.
    async fn open_destination(
        &self,
        grant: &GrantId,
    ) -> Result<Option<Destination>, BackgroundError>;

    /// The people with a notifier grant.
    ///
    /// # Errors
    /// [`BackgroundError`].
    async fn notifier_accounts(&self) -> Result<Vec<String>, BackgroundError>;

    /// Deletes the person's notifier grant if no connection delivers through it any more, in
    /// one transaction, and returns its tokens (to revoke them at the provider).
    ///
    /// # Errors
    /// [`BackgroundError`].
    async fn take_unused(&self, account: &str) -> Result<Option<UpstreamTokens>, BackgroundError>;

    /// Deletes the person's notifier grant (and where its last look left off).
    ///
    /// # Errors
    /// [`BackgroundError`].
    async fn remove_notifier(&self, account: &str) -> Result<(), BackgroundError>;
}
