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

use super::{BoxFuture, UpstreamTokens};

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

type Answer<'a, T> = BoxFuture<'a, Result<T, BackgroundError>>;

/// [`BackgroundStore`] behind `Arc<dyn …>` (background delivery is optional).
pub trait DynBackgroundStore: Send + Sync + 'static {
    /// See [`BackgroundStore::seal_notifier`].
    fn seal_notifier<'a>(&'a self, account: &'a str, tokens: &'a UpstreamTokens) -> Answer<'a, ()>;
    /// See [`BackgroundStore::cursor`].
    fn cursor<'a>(&'a self, account: &'a str) -> Answer<'a, Option<String>>;
    /// See [`BackgroundStore::save_cursor`].
    fn save_cursor<'a>(&'a self, account: &'a str, cursor: &'a str) -> Answer<'a, ()>;
    /// See [`BackgroundStore::seal_destination`].
    fn seal_destination<'a>(
        &'a self,
        grant: &'a GrantId,
        account: &'a str,
        destination: &'a Destination,
    ) -> Answer<'a, ()>;
    /// See [`BackgroundStore::seal_destination_if_notifier`].
    fn seal_destination_if_notifier<'a>(
        &'a self,
        grant: &'a GrantId,
        account: &'a str,
        destination: &'a Destination,
    ) -> Answer<'a, bool>;
    /// See [`BackgroundStore::remove_orphans`].
    fn remove_orphans(&self) -> Answer<'_, usize>;
    /// See [`BackgroundStore::background`].
    fn background<'a>(&'a self, grant: &'a GrantId) -> Answer<'a, Option<Background>>;
    /// See [`BackgroundStore::backgrounds`].
    fn backgrounds(&self) -> Answer<'_, Vec<Background>>;
    /// See [`BackgroundStore::record_delivery`].
    fn record_delivery<'a>(&'a self, grant: &'a GrantId, last: &'a LastDelivery) -> Answer<'a, ()>;
    /// See [`BackgroundStore::remove_destination`].
    fn remove_destination<'a>(&'a self, grant: &'a GrantId) -> Answer<'a, bool>;
}

impl<T: BackgroundStore> DynBackgroundStore for T {
    fn seal_notifier<'a>(&'a self, account: &'a str, tokens: &'a UpstreamTokens) -> Answer<'a, ()> {
        Box::pin(BackgroundStore::seal_notifier(self, account, tokens))
    }

    fn cursor<'a>(&'a self, account: &'a str) -> Answer<'a, Option<String>> {
        Box::pin(BackgroundStore::cursor(self, account))
    }

    fn save_cursor<'a>(&'a self, account: &'a str, cursor: &'a str) -> Answer<'a, ()> {
        Box::pin(BackgroundStore::save_cursor(self, account, cursor))
    }

    fn seal_destination<'a>(
        &'a self,
        grant: &'a GrantId,
        account: &'a str,
        destination: &'a Destination,
    ) -> Answer<'a, ()> {
        Box::pin(BackgroundStore::seal_destination(
            self,
            grant,
            account,
            destination,
        ))
    }

    fn seal_destination_if_notifier<'a>(
        &'a self,
        grant: &'a GrantId,
        account: &'a str,
        destination: &'a Destination,
    ) -> Answer<'a, bool> {
        Box::pin(BackgroundStore::seal_destination_if_notifier(
            self,
            grant,
            account,
            destination,
        ))
    }

    fn remove_orphans(&self) -> Answer<'_, usize> {
        Box::pin(BackgroundStore::remove_orphans(self))
    }

    fn background<'a>(&'a self, grant: &'a GrantId) -> Answer<'a, Option<Background>> {
        Box::pin(BackgroundStore::background(self, grant))
    }

    fn backgrounds(&self) -> Answer<'_, Vec<Background>> {
        Box::pin(BackgroundStore::backgrounds(self))
    }

    fn record_delivery<'a>(&'a self, grant: &'a GrantId, last: &'a LastDelivery) -> Answer<'a, ()> {
        Box::pin(BackgroundStore::record_delivery(self, grant, last))
    }

    fn remove_destination<'a>(&'a self, grant: &'a GrantId) -> Answer<'a, bool> {
        Box::pin(BackgroundStore::remove_destination(self, grant))
    }
}

/// [`NotifierKeyring`] behind `Arc<dyn …>` (the notifier and its deliveries share it).
pub trait DynNotifierKeyring: Send + Sync + 'static {
    /// See [`NotifierKeyring::open_notifier`].
    fn open_notifier<'a>(&'a self, account: &'a str) -> Answer<'a, Option<UpstreamTokens>>;
    /// See [`NotifierKeyring::open_destination`].
    fn open_destination<'a>(&'a self, grant: &'a GrantId) -> Answer<'a, Option<Destination>>;
    /// See [`NotifierKeyring::notifier_accounts`].
    fn notifier_accounts(&self) -> Answer<'_, Vec<String>>;
    /// See [`NotifierKeyring::take_unused`].
    fn take_unused<'a>(&'a self, account: &'a str) -> Answer<'a, Option<UpstreamTokens>>;
    /// See [`NotifierKeyring::remove_notifier`].
    fn remove_notifier<'a>(&'a self, account: &'a str) -> Answer<'a, ()>;
}

impl<T: NotifierKeyring> DynNotifierKeyring for T {
    fn open_notifier<'a>(&'a self, account: &'a str) -> Answer<'a, Option<UpstreamTokens>> {
        Box::pin(NotifierKeyring::open_notifier(self, account))
    }

    fn open_destination<'a>(&'a self, grant: &'a GrantId) -> Answer<'a, Option<Destination>> {
        Box::pin(NotifierKeyring::open_destination(self, grant))
    }

    fn notifier_accounts(&self) -> Answer<'_, Vec<String>> {
        Box::pin(NotifierKeyring::notifier_accounts(self))
    }

    fn take_unused<'a>(&'a self, account: &'a str) -> Answer<'a, Option<UpstreamTokens>> {
        Box::pin(NotifierKeyring::take_unused(self, account))
    }

    fn remove_notifier<'a>(&'a self, account: &'a str) -> Answer<'a, ()> {
        Box::pin(NotifierKeyring::remove_notifier(self, account))
    }
}
