//! Tokens and grants: our hashed tokens, the grants they open, rotation and revocation
//! (docs/storage-schema.md "Opening a grant", "Writes").

use crate::domain::{
    auth::{
        client::ClientId,
        pkce::CodeChallenge,
        rotation::RefreshRole,
        token::{IssuedToken, TokenPair},
    },
    grant::{AccessToken, CapabilitySet, GrantId, UpstreamCredential},
    secret::SecretString,
};

use super::{Retention, UpstreamTokens};

/// Why a token did not open a grant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    /// Unknown, expired or revoked token.
    #[error("the access token is not valid")]
    InvalidToken,
    /// The vault itself failed.
    #[error("the token vault failed: {0}")]
    Unexpected(String),
}

/// An OAuth refresh credential for the upstream, kept beside its access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamRefresh {
    /// The upstream refresh token.
    pub token: SecretString,
}

/// A grant opened with its token.
#[derive(Debug, Clone)]
pub struct OpenedGrant {
    /// The grant.
    pub grant: GrantId,
    /// SHA-256 (hex) of the upstream account's identity; `None` for a self-hosted grant.
    pub account: Option<String>,
    /// Its upstream credential, decrypted for this request.
    pub credential: UpstreamCredential,
    /// The upstream refresh token, when the upstream credential came from OAuth.
    pub upstream_refresh: Option<UpstreamRefresh>,
    /// When the upstream access token expires (unix seconds), if known.
    pub upstream_expires_at: Option<i64>,
    /// When it was issued (unix seconds), if known.
    pub upstream_issued_at: Option<i64>,
    /// The protected resource the token was issued for (`None`: configured self-host grant).
    pub resource: Option<String>,
}

/// What a new grant holds, after the person consented and the upstream answered.
#[derive(Debug, Clone)]
pub struct GrantDraft {
    /// Its id (minted by the core).
    pub id: GrantId,
    /// The client it was issued to.
    pub client: ClientId,
    /// The redirect URI of the authorization request (the token request must repeat it).
    pub redirect_uri: String,
    /// The protected resource.
    pub resource: String,
    /// The granted scope.
    pub scope: String,
    /// The client's PKCE challenge for the code.
    pub code_challenge: CodeChallenge,
    /// SHA-256 of the upstream account's identity (hex), to find a person's grants.
    pub account_digest: String,
    /// The upstream tokens to seal.
    pub upstream: UpstreamTokens,
    /// The policy it starts with.
    pub capabilities: CapabilitySet,
}

/// What an authorization code was issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeBinding {
    /// The grant.
    pub grant: GrantId,
    /// The client.
    pub client: ClientId,
    /// The redirect URI of the authorization request.
    pub redirect_uri: String,
    /// The resource.
    pub resource: String,
    /// The scope.
    pub scope: String,
    /// The PKCE challenge.
    pub code_challenge: CodeChallenge,
    /// Whether it was already redeemed.
    pub used: bool,
}

/// What a refresh token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshBinding {
    /// The grant.
    pub grant: GrantId,
    /// The client.
    pub client: ClientId,
    /// The granted scope.
    pub scope: String,
    /// The resource.
    pub resource: String,
    /// Where the token stands in the rotation chain.
    pub role: RefreshRole,
}

/// The outcome of redeeming a code or a refresh token.
#[derive(Debug, Clone)]
pub enum Redemption {
    /// Tokens (new, or the same pair again for a retried refresh).
    Issued(TokenPair),
    /// The token was already used or retired: the grant is revoked.
    Revoked,
}

/// Where grants and their sealed upstream credentials live.
///
/// Every method that writes is one durable transaction: a response that carries a token is sent
/// only after the token is stored.
#[trait_variant::make(Send)]
#[cfg_attr(any(test, feature = "test-support"), mockall::automock)]
pub trait TokenVault: Sync + 'static {
    /// Opens the grant a presented access token belongs to (from a short-lived cache).
    ///
    /// # Security
    /// Only a live access token of the grant can open its credential.
    async fn open(&self, token: &AccessToken) -> Result<OpenedGrant, VaultError>;

    /// Like [`TokenVault::open`], always from storage, for any live token kind (access or
    /// refresh): used before an upstream refresh, to see what another request may have stored.
    async fn open_fresh(&self, token: &AccessToken) -> Result<OpenedGrant, VaultError>;

    /// Creates a grant whose identity is wrapped under `code` (its only token so far).
    async fn create_grant(&self, draft: GrantDraft, code: IssuedToken) -> Result<(), VaultError>;

    /// What a code was issued for, without consuming it (`None`: unknown or expired).
    async fn code_binding(&self, code: &AccessToken) -> Result<Option<CodeBinding>, VaultError>;

    /// Redeems a code for `pair` once; a second redemption revokes the grant.
    async fn redeem_code(
        &self,
        code: &AccessToken,
        pair: TokenPair,
    ) -> Result<Redemption, VaultError>;

    /// What a refresh token belongs to (`None`: unknown, expired or revoked).
    async fn refresh_binding(
        &self,
        refresh: &AccessToken,
    ) -> Result<Option<RefreshBinding>, VaultError>;

    /// Rotates, replays or revokes by [`crate::domain::auth::rotation::decide`], atomically.
    async fn rotate_refresh(
        &self,
        refresh: &AccessToken,
        pair: TokenPair,
    ) -> Result<Redemption, VaultError>;

    /// Re-seals a grant's upstream tokens (after an upstream refresh). Needs no token: the
    /// grant's recipient is public, only opening needs a token.
    async fn store_upstream(
        &self,
        grant: &GrantId,
        tokens: UpstreamTokens,
    ) -> Result<(), VaultError>;

    /// Waits for, and takes, the one turn to refresh `grant`'s upstream tokens among every
    /// instance sharing this storage (`holder` names this turn). `false` when another holder
    /// kept it past the wait. A turn never ended lapses by itself (its holder died).
    async fn take_refresh_turn(&self, grant: &GrantId, holder: &str) -> Result<bool, VaultError>;

    /// Ends `holder`'s refresh turn of `grant`.
    async fn end_refresh_turn(&self, grant: &GrantId, holder: &str) -> Result<(), VaultError>;

    /// Revokes `token` if it belongs to `client`: an access token alone, a refresh token with
    /// its whole grant. Unknown tokens and other clients' tokens are ignored (RFC 7009 §2.2).
    async fn revoke_token(&self, token: &AccessToken, client: &ClientId) -> Result<(), VaultError>;

    /// Deletes a grant with its tokens and wrapped keys (crypto-shredding).
    async fn remove_grant(&self, grant: &GrantId) -> Result<(), VaultError>;

    /// The grants of the upstream account whose identity hashes to `account_digest`.
    async fn grants_of(&self, account_digest: &str) -> Result<Vec<GrantSummary>, VaultError>;

    /// Grants of the account that ended, kept (without any secret) for their audit log.
    async fn revoked_of(&self, account_digest: &str) -> Result<Vec<GrantSummary>, VaultError>;
}

/// A grant as the settings page lists it (nothing secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantSummary {
    /// The grant.
    pub grant: GrantId,
    /// Its client.
    pub client: ClientId,
    /// Where the client returns to.
    pub redirect_uri: String,
    /// When it was connected (unix seconds).
    pub created_at: i64,
    /// When it was last used (unix seconds), if ever.
    pub last_used_at: Option<i64>,
    /// What it may do.
    pub capabilities: CapabilitySet,
    /// Who it may send to.
    pub recipients: crate::domain::sending::recipients::RecipientRule,
    /// Its new-mail rules.
    pub notify: crate::domain::notify::settings::NotifySettings,
    /// Sends are approved only on the review page, never in the client's dialog.
    pub review_only: bool,
}

/// What a sweep removes (docs/storage-schema.md "Writes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepRules {
    /// Registered clients that got no grant within this many seconds go.
    pub unused_client_secs: i64,
    /// How long and how much of the audit log is kept.
    pub retention: Retention,
}

/// Storage upkeep: expired tokens, grants no live token opens, unused registrations, audit
/// events and ended connections past their retention.
#[trait_variant::make(Send)]
#[cfg_attr(any(test, feature = "test-support"), mockall::automock)]
pub trait Sweeper: Sync + 'static {
    /// Removes what expired or lapsed, in as few transactions as the backend needs; returns
    /// how many records went.
    ///
    /// # Errors
    /// [`VaultError::Unexpected`]; what was not yet removed stays for the next sweep.
    async fn sweep(&self, rules: SweepRules) -> Result<usize, VaultError>;
}
