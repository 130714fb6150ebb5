//! Single-user self-host mode: one bearer token from config opens one upstream credential
//! from config, read-only. This is the "run it for yourself on loopback" mode; hosted
//! deployments use the OAuth flow and the redb vault instead.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::domain::{
    grant::{AccessToken, CapabilitySet, GrantId, UpstreamCredential},
    ports::{OpenedGrant, Policy, PolicyError, TokenVault, VaultError},
};

/// The grant id of the configured self-host client.
pub const SELF_HOST_GRANT: &str = "self-host";

/// Opens the one configured grant.
///
/// # Security
/// Keeps only a SHA-256 of the token and compares digests in constant time.
#[derive(Debug)]
pub struct StaticVault {
    token_digest: [u8; 32],
    credential: UpstreamCredential,
}

impl StaticVault {
    /// A vault whose only grant opens with `token`.
    #[must_use]
    pub fn new(token: &AccessToken, credential: UpstreamCredential) -> Self {
        Self {
            token_digest: Sha256::digest(token.expose_secret().as_bytes()).into(),
            credential,
        }
    }
}

impl TokenVault for StaticVault {
    async fn open(&self, token: &AccessToken) -> Result<OpenedGrant, VaultError> {
        let presented: [u8; 32] = Sha256::digest(token.expose_secret().as_bytes()).into();
        if bool::from(presented.ct_eq(&self.token_digest)) {
            Ok(OpenedGrant {
                grant: GrantId::new(SELF_HOST_GRANT),
                credential: self.credential.clone(),
            })
        } else {
            Err(VaultError::InvalidToken)
        }
    }
}

/// Every grant is read-only: write tools need the per-client policy of the settings page.
#[derive(Debug, Default)]
pub struct ReadOnlyPolicy;

impl Policy for ReadOnlyPolicy {
    async fn capabilities(&self, _grant: &GrantId) -> Result<CapabilitySet, PolicyError> {
        Ok(CapabilitySet::read_only())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::secret::SecretString;

    #[tokio::test]
    async fn only_the_configured_token_opens_the_grant() {
        let vault = StaticVault::new(
            &AccessToken::new("right"),
            UpstreamCredential::Bearer(SecretString::new("up")),
        );
        assert_eq!(vault.open(&AccessToken::new("right")).await.unwrap().grant.as_str(), "self-host");
        assert_eq!(vault.open(&AccessToken::new("wrong")).await.unwrap_err(), VaultError::InvalidToken);
        assert_eq!(vault.open(&AccessToken::new("")).await.unwrap_err(), VaultError::InvalidToken);
    }
}
