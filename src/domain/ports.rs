//! The ports: what the core needs from the outside world, named for their role.
//!
//! Adapters live in `crate::outbound`; tests substitute mocks (`mockall`) for the rules.

use std::time::Duration;

use super::{
    approval::DraftSnapshot,
    auth::{
        client::{ClientId, OAuthClient},
        pkce::CodeChallenge,
        rotation::RefreshRole,
        token::{IssuedToken, TokenPair},
    },
    changes::{ChangeReport, Keyword},
    compose::{CreatedDraft, Identity, NewDraft},
    grant::{AccessToken, CapabilitySet, GrantId, UpstreamCredential},
    ids::{BlobId, EmailId, ThreadId},
    mail::{AccountInfo, AttachmentContent, Email, EmailSummary, Mailbox},
    query::{EmailQuery, PageSize},
    secret::SecretString,
    submission::{Submission, SubmissionStatus},
};

/// Why the mail server could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailStoreError {
    /// The server refused the credential (expired or revoked).
    #[error("the mail server refused our credentials")]
    Unauthorized,
    /// The object does not exist (or is not visible to this account).
    #[error("{0}")]
    NotFound(String),
    /// A mailbox argument matched no mailbox or several.
    #[error("{0}")]
    MailboxLookup(#[from] super::mailboxes::MailboxLookupError),
    /// An attachment is over the size cap.
    #[error("the attachment is {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The cap.
        limit: u64,
    },
    /// The server asked us to slow down.
    #[error("the mail server is rate limiting requests{}", retry_hint(*.retry_after))]
    RateLimited {
        /// When to try again, if the server said.
        retry_after: Option<Duration>,
    },
    /// The server did not answer in time, could not be reached or failed (5xx).
    #[error("the mail server is unavailable ({0})")]
    Unavailable(String),
    /// The server refused the request itself (a JMAP method error).
    #[error("the mail server rejected the request: {kind}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Rejected {
        /// The JMAP error type.
        kind: String,
        /// The server's explanation.
        description: Option<String>,
    },
    /// The server answered something that is not valid JMAP.
    #[error("the mail server sent an invalid response ({0})")]
    Protocol(String),
    /// The server refused to send, or to change a draft or submission.
    #[error("{0}")]
    Refused(super::submission::Refusal),
}

fn retry_hint(after: Option<Duration>) -> String {
    after.map_or_else(String::new, |d| {
        format!("; try again in {} s", d.as_secs().max(1))
    })
}

/// One page of search results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchPage {
    /// The emails, newest first.
    pub emails: Vec<EmailSummary>,
    /// The account's mailboxes (fetched in the same request, for names).
    pub mailboxes: Vec<Mailbox>,
    /// Matches in all, if the server counted.
    pub total: Option<u64>,
    /// Index of the first email of this page among all matches.
    pub position: u64,
}

/// What a move did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveResult {
    /// The target mailbox's id.
    pub target: super::ids::MailboxId,
    /// The account's mailboxes (for the target's path).
    pub mailboxes: Vec<Mailbox>,
    /// Per email.
    pub report: ChangeReport,
}

/// Where a page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageStart {
    /// The first page.
    First,
    /// Emails received at or before `at` (the last page ended there); `extra` more are asked for,
    /// to make room for the ones received exactly at `at` that the caller already has.
    AtOrBefore {
        /// The receivedAt of the previous page's last email.
        at: chrono::DateTime<chrono::Utc>,
        /// How many more to fetch than the page size.
        extra: u32,
    },
}

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

/// The mailbox of the person behind a credential (JMAP in production).
///
/// Every read is one upstream HTTP request once the session is known.
#[trait_variant::make(Send)]
#[cfg_attr(any(test, feature = "test-support"), mockall::automock)]
pub trait MailStore: Sync + 'static {
    /// The account, its capabilities, limits and identities.
    async fn account(&self, cred: &UpstreamCredential) -> Result<AccountInfo, MailStoreError>;

    /// All mailboxes.
    async fn mailboxes(&self, cred: &UpstreamCredential) -> Result<Vec<Mailbox>, MailStoreError>;

    /// One page of a search, newest first: up to `size` + 1 emails (+ `extra` after the first
    /// page), so the caller can tell whether more follow.
    async fn search(
        &self,
        cred: &UpstreamCredential,
        query: &EmailQuery,
        size: PageSize,
        start: &PageStart,
    ) -> Result<SearchPage, MailStoreError>;

    /// One email in full, with the account's mailboxes (for names).
    async fn email(
        &self,
        cred: &UpstreamCredential,
        id: &EmailId,
    ) -> Result<(Email, Vec<Mailbox>), MailStoreError>;

    /// A thread's emails, oldest first, with the account's mailboxes.
    async fn thread(
        &self,
        cred: &UpstreamCredential,
        id: &ThreadId,
    ) -> Result<(Vec<EmailSummary>, Vec<Mailbox>), MailStoreError>;

    /// Sets (`on`) or clears a keyword on `ids`; one outcome per id, in order.
    async fn set_keyword(
        &self,
        cred: &UpstreamCredential,
        ids: &[EmailId],
        keyword: Keyword,
        on: bool,
    ) -> Result<ChangeReport, MailStoreError>;

    /// Moves `ids` into the mailbox `to` names (id, role, path or name), out of the mailboxes
    /// they are in, in one change per email. Never creates a mailbox.
    async fn move_emails(
        &self,
        cred: &UpstreamCredential,
        ids: &[EmailId],
        to: &str,
    ) -> Result<MoveResult, MailStoreError>;

    /// The account's sender identities.
    async fn identities(&self, cred: &UpstreamCredential) -> Result<Vec<Identity>, MailStoreError>;

    /// Creates `draft` in the Drafts mailbox (destroying the draft it replaces in the same
    /// request); attachments by blob id, never uploaded again.
    async fn create_draft(
        &self,
        cred: &UpstreamCredential,
        draft: &NewDraft,
    ) -> Result<CreatedDraft, MailStoreError>;

    /// A draft as it would be sent, read in full (bodies the server had to cut are flagged).
    async fn draft(
        &self,
        cred: &UpstreamCredential,
        id: &EmailId,
    ) -> Result<DraftSnapshot, MailStoreError>;

    /// Destroys `id` if it is in Drafts with `$draft` (checked and destroyed atomically),
    /// else [`Refusal::NotADraft`](super::submission::Refusal::NotADraft).
    async fn delete_draft(
        &self,
        cred: &UpstreamCredential,
        id: &EmailId,
    ) -> Result<(), MailStoreError>;

    /// Submits a draft; once accepted it moves to Sent without `$draft`.
    async fn submit(
        &self,
        cred: &UpstreamCredential,
        submission: &Submission,
    ) -> Result<SubmissionStatus, MailStoreError>;

    /// Cancels a held submission and puts its email back in Drafts as a draft.
    async fn cancel_submission(
        &self,
        cred: &UpstreamCredential,
        id: &str,
    ) -> Result<EmailId, MailStoreError>;

    /// What was created since `state` (one request: changes, the created emails, mailboxes and
    /// identities); without a state, or when the server no longer knows it, the mail received
    /// since `since` instead (`reset`).
    async fn changes_since(
        &self,
        cred: &UpstreamCredential,
        state: Option<String>,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<super::notify::ChangeFeed, MailStoreError>;

    /// Opens the server's push channel for new-mail wake-ups, pinging every `ping`; `None`
    /// when the server offers none (then the caller polls).
    async fn open_push(
        &self,
        cred: &UpstreamCredential,
        ping: Duration,
    ) -> Result<Option<PushChannel>, MailStoreError>;

    /// Which of `addresses` the person has sent mail to (To, Cc or Bcc of their Sent mail).
    async fn written_to(
        &self,
        cred: &UpstreamCredential,
        addresses: &[String],
    ) -> Result<Vec<String>, MailStoreError>;

    /// A submission's state.
    async fn submission(
        &self,
        cred: &UpstreamCredential,
        id: &str,
    ) -> Result<SubmissionStatus, MailStoreError>;

    /// An attachment of `email`, refused without download when over `max_bytes`.
    async fn attachment(
        &self,
        cred: &UpstreamCredential,
        email: &EmailId,
        blob: &BlobId,
        max_bytes: u64,
    ) -> Result<AttachmentContent, MailStoreError>;
}

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

    /// Revokes `token` if it belongs to `client`: an access token alone, a refresh token with
    /// its whole grant. Unknown tokens and other clients' tokens are ignored (RFC 7009 §2.2).
    async fn revoke_token(&self, token: &AccessToken, client: &ClientId) -> Result<(), VaultError>;

    /// Deletes a grant with its tokens and wrapped keys (crypto-shredding).
    async fn remove_grant(&self, grant: &GrantId) -> Result<(), VaultError>;

    /// The grants of the upstream account whose identity hashes to `account_digest`.
    async fn grants_of(&self, account_digest: &str) -> Result<Vec<GrantSummary>, VaultError>;

    /// Replaces a grant's capabilities (`read` is always kept); effective on its next request.
    async fn set_capabilities(
        &self,
        grant: &GrantId,
        capabilities: CapabilitySet,
    ) -> Result<(), VaultError>;

    /// Replaces a grant's new-mail rules (the settings page; the model only adds mutes).
    async fn set_notify_settings(
        &self,
        grant: &GrantId,
        settings: super::notify::settings::NotifySettings,
    ) -> Result<(), VaultError>;

    /// Replaces who a grant may send to; effective on its next request.
    async fn set_recipients(
        &self,
        grant: &GrantId,
        rule: super::recipients::RecipientRule,
    ) -> Result<(), VaultError>;

    /// Sets whether the grant's sends are approved only on the review page.
    async fn set_review_only(&self, grant: &GrantId, review_only: bool) -> Result<(), VaultError>;

    /// Grants of the account that ended, kept (without any secret) for their audit log.
    async fn revoked_of(&self, account_digest: &str) -> Result<Vec<GrantSummary>, VaultError>;

    /// A grant's most recent audit events, newest first.
    async fn audit_events(
        &self,
        grant: &GrantId,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, VaultError>;
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
    pub recipients: super::recipients::RecipientRule,
    /// Its new-mail rules.
    pub notify: super::notify::settings::NotifySettings,
    /// Sends are approved only on the review page, never in the client's dialog.
    pub review_only: bool,
}

/// Something a grant did or had done to it, for the person's audit log. Never mail content,
/// addresses or tokens: tool names, outcomes and counts only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// The grant.
    pub grant: GrantId,
    /// Unix seconds.
    pub at: i64,
    /// What happened.
    pub kind: AuditKind,
}

/// What an audit event records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditKind {
    /// The client connected (its code was redeemed).
    Connected,
    /// The client refreshed its tokens.
    Refreshed,
    /// A tool call: its name, outcome and how many emails it touched.
    ToolCall {
        /// The tool.
        tool: String,
        /// `ok`, `not_permitted`, `not_found`…
        outcome: String,
        /// Emails changed, for write tools.
        count: Option<u64>,
    },
    /// The person changed the grant's capabilities.
    PolicyChanged {
        /// The new set, by name.
        capabilities: Vec<String>,
    },
    /// The grant ended (revoked by the person or the client, a reused token, or the upstream
    /// ended it); its tokens and sealed credentials are gone.
    Revoked,
    /// The person approved or declined sending a draft (`approved`, `declined`), where
    /// (`review_page`, `client_dialog`). No content.
    SendDecision {
        /// What they decided.
        decision: String,
        /// Where.
        via: String,
    },
}

/// Where audit events go. Recording never fails the operation it records (a lost event is
/// logged), so it is synchronous and cheap for the caller.
#[cfg_attr(any(test, feature = "test-support"), mockall::automock)]
pub trait AuditLog: Send + Sync + 'static {
    /// Records an event.
    fn record(&self, event: AuditEvent);
}

/// Where OAuth clients are registered.
#[trait_variant::make(Send)]
#[cfg_attr(any(test, feature = "test-support"), mockall::automock)]
pub trait ClientStore: Sync + 'static {
    /// A registered or configured client.
    async fn client(&self, id: &ClientId) -> Result<Option<OAuthClient>, VaultError>;

    /// Stores a client (registration, a fetched metadata document, or configuration).
    async fn put_client(&self, client: OAuthClient) -> Result<(), VaultError>;
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

/// Why the policy could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the policy store failed: {0}")]
pub struct PolicyError(pub String);

/// Each grant's capabilities.
#[trait_variant::make(Send)]
#[cfg_attr(any(test, feature = "test-support"), mockall::automock)]
pub trait Policy: Sync + 'static {
    /// The grant's capabilities now (a change applies from the next request on).
    async fn capabilities(&self, grant: &GrantId) -> Result<CapabilitySet, PolicyError>;

    /// The grant's new-mail rules now.
    async fn notify_settings(
        &self,
        grant: &GrantId,
    ) -> Result<super::notify::settings::NotifySettings, PolicyError>;

    /// Who the grant may send to now.
    async fn recipients(
        &self,
        grant: &GrantId,
    ) -> Result<super::recipients::RecipientRule, PolicyError>;

    /// Whether sends of this grant are approved only on our review page, never in the
    /// client's own dialog (which a client could answer by itself).
    async fn review_only(&self, grant: &GrantId) -> Result<bool, PolicyError>;
}
