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

use crate::domain::{grant::GrantId, notify::delivery::Destination, secret::SecretString};

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

/// Why a notifier grant could not be ended cleanly; the text is a sentence for the person.
#[derive(Debug, thiserror::Error)]
pub enum TurnOffError {
    /// Its record could not be read or deleted.
    #[error("{0}")]
    Store(#[from] crate::domain::ports::BackgroundError),
    /// Deleted here, but the provider did not confirm revoking it.
    #[error(
        "the notifier's access was deleted here, but the mail provider did not confirm revoking it ({0}); revoke \"mailconnect notifier\" in its security settings"
    )]
    NotRevoked(crate::domain::ports::UpstreamAuthError),
}

/// What the front end may ask of the notifier, which holds the key: it never gets the key.
#[trait_variant::make(Send)]
pub trait NotifierControl: Sync + 'static {
    /// Ends a person's notifier grant if no connection of theirs delivers through it any more:
    /// deletes it and revokes it at the provider.
    ///
    /// # Errors
    /// [`TurnOffError`].
    async fn turn_off(&self, account: &str) -> Result<(), TurnOffError>;

    /// Settings changed: look again soon.
    fn wake(&self);
}

/// A notifier consent in progress: turning background delivery on for `grant` waits for the
/// person to approve the notifier at the provider.
#[derive(Debug, Clone)]
pub struct NotifierConsent {
    /// The connection to deliver for.
    pub grant: GrantId,
    /// The person (account digest) who signed in to settings.
    pub account: String,
    /// Where its notices go.
    pub destination: Destination,
    /// Our PKCE verifier toward the provider.
    pub verifier: SecretString,
}
