//! Our OAuth client at the mail provider, and the tokens it hands back.

use crate::domain::secret::SecretString;

/// A set of upstream OAuth tokens, as the upstream token endpoint returned them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTokens {
    /// The access token for JMAP.
    pub access: SecretString,
    /// The refresh token, if one was issued (absent: keep the old one).
    pub refresh: Option<SecretString>,
    /// When the access token expires (unix seconds), if the upstream said.
    pub expires_at: Option<i64>,
    /// When we received it (unix seconds).
    pub issued_at: Option<i64>,
}

/// Why the upstream authorization server did not give tokens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamAuthError {
    /// `invalid_grant`: the code or refresh token is dead; the person must sign in again.
    #[error("the mail provider refused the grant ({0})")]
    InvalidGrant(String),
    /// Network trouble, 5xx, 429 or a timeout: try again later, keep the old tokens.
    #[error("the mail provider's sign-in service is unavailable ({0})")]
    Unavailable(String),
    /// Our client registration or configuration is wrong (`invalid_client`, bad URL…).
    #[error("the mail provider rejected our client configuration ({0})")]
    Misconfigured(String),
}

/// Our OAuth client at the upstream (Fastmail or any RFC 8414 provider).
#[trait_variant::make(Send)]
#[cfg_attr(any(test, feature = "test-support"), mockall::automock)]
pub trait UpstreamAuth: Sync + 'static {
    /// Checks the callback's `iss` (RFC 9207): equal to the upstream's issuer, or absent where
    /// the upstream does not promise it.
    async fn accepts_issuer(&self, iss: Option<String>) -> bool;

    /// The URL to send the person's browser to (may discover or register us first).
    async fn authorization_url(
        &self,
        state: &str,
        code_challenge: &str,
    ) -> Result<String, UpstreamAuthError>;

    /// Exchanges the callback's code with our PKCE verifier.
    async fn exchange_code(
        &self,
        code: &str,
        verifier: &SecretString,
    ) -> Result<UpstreamTokens, UpstreamAuthError>;

    /// Refreshes the upstream access token.
    async fn refresh(&self, refresh: &SecretString) -> Result<UpstreamTokens, UpstreamAuthError>;

    /// Revokes a refresh token at the upstream (RFC 7009).
    async fn revoke(&self, token: &SecretString) -> Result<(), UpstreamAuthError>;
}
