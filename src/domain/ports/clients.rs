//! Registration memory: the OAuth clients registered with us, and the client id an upstream
//! gave us when we registered there.

use crate::domain::auth::client::{ClientId, OAuthClient};

use super::VaultError;

/// Where OAuth clients are registered.
#[trait_variant::make(Send)]
#[cfg_attr(any(test, feature = "test-support"), mockall::automock)]
pub trait ClientStore: Sync + 'static {
    /// A registered or configured client.
    ///
    /// # Errors
    /// [`VaultError::Unexpected`].
    async fn client(&self, id: &ClientId) -> Result<Option<OAuthClient>, VaultError>;

    /// Stores a client (registration, a fetched metadata document, or configuration).
    ///
    /// # Errors
    /// [`VaultError::Unexpected`].
    async fn put_client(&self, client: OAuthClient) -> Result<(), VaultError>;
}

/// Why a registration at an upstream could not be recalled or remembered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationError {
    /// The store failed.
    #[error("the registration could not be stored or read: {0}")]
    Unexpected(String),
}

/// Remembers the client id a registration at an upstream gave us (by DCR), so a restart
/// registers no second client.
#[trait_variant::make(Send)]
#[cfg_attr(any(test, feature = "test-support"), mockall::automock)]
pub trait RegistrationMemory: Sync + 'static {
    /// The client id stored under `key` (the upstream's issuer and our redirect URI).
    ///
    /// # Errors
    /// [`RegistrationError`].
    async fn recall(&self, key: &str) -> Result<Option<String>, RegistrationError>;

    /// Stores a client id under `key`, durably.
    ///
    /// # Errors
    /// [`RegistrationError`].
    async fn remember(&self, key: &str, client_id: &str) -> Result<(), RegistrationError>;
}
