//! Grant settings: what each grant may do and how (capabilities, new-mail rules, recipients,
//! review-only), read and written through one port. Not secret: the settings page reads and
//! changes them without any client token.

use crate::domain::{
    grant::{CapabilitySet, GrantId},
    notify::settings::NotifySettings,
    sending::recipients::RecipientRule,
};

use super::VaultError;

/// Why a grant's settings could not be read or changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The grant does not exist (any more): it ended, so its client is no longer
    /// authenticated.
    #[error("the policy store failed: grant {0} does not exist")]
    UnknownGrant(GrantId),
    /// The store failed.
    #[error("the policy store failed: {0}")]
    Unexpected(String),
}

impl From<PolicyError> for VaultError {
    /// A grant that ended is a token that no longer opens anything.
    fn from(e: PolicyError) -> Self {
        match e {
            PolicyError::UnknownGrant(_) => Self::InvalidToken,
            PolicyError::Unexpected(m) => Self::Unexpected(m),
        }
    }
}

/// Each grant's settings. A change applies from the grant's next request on.
#[trait_variant::make(Send)]
#[cfg_attr(any(test, feature = "test-support"), mockall::automock)]
pub trait Policy: Sync + 'static {
    /// The grant's capabilities now (a change applies from the next request on).
    ///
    /// # Errors
    /// [`PolicyError`].
    async fn capabilities(&self, grant: &GrantId) -> Result<CapabilitySet, PolicyError>;

    /// The grant's new-mail rules now.
    ///
    /// # Errors
    /// [`PolicyError`].
    async fn notify_settings(&self, grant: &GrantId) -> Result<NotifySettings, PolicyError>;

    /// Who the grant may send to now.
    ///
    /// # Errors
    /// [`PolicyError`].
    async fn recipients(&self, grant: &GrantId) -> Result<RecipientRule, PolicyError>;

    /// Whether sends of this grant are approved only on our review page, never in the
    /// client's own dialog (which a client could answer by itself).
    ///
    /// # Errors
    /// [`PolicyError`].
    async fn review_only(&self, grant: &GrantId) -> Result<bool, PolicyError>;

    /// Replaces a grant's capabilities (`read` is always kept).
    ///
    /// # Errors
    /// [`PolicyError::UnknownGrant`] when it ended; `Unexpected`.
    async fn set_capabilities(
        &self,
        grant: &GrantId,
        capabilities: CapabilitySet,
    ) -> Result<(), PolicyError>;

    /// Replaces a grant's new-mail rules (the settings page; the model only adds mutes).
    ///
    /// # Errors
    /// [`PolicyError::UnknownGrant`] when it ended; `Unexpected`.
    async fn set_notify_settings(
        &self,
        grant: &GrantId,
        settings: NotifySettings,
    ) -> Result<(), PolicyError>;

    /// Replaces who a grant may send to.
    ///
    /// # Errors
    /// [`PolicyError::UnknownGrant`] when it ended; `Unexpected`.
    async fn set_recipients(&self, grant: &GrantId, rule: RecipientRule)
    -> Result<(), PolicyError>;

    /// Sets whether the grant's sends are approved only on the review page.
    ///
    /// # Errors
    /// [`PolicyError::UnknownGrant`] when it ended; `Unexpected`.
    async fn set_review_only(&self, grant: &GrantId, review_only: bool) -> Result<(), PolicyError>;
}
