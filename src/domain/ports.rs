//! The ports: what the core needs from the outside world, named for their role.
//!
//! Adapters live in `crate::outbound`; tests substitute mocks (`mockall`) for the rules.

use std::time::Duration;

use super::{
    grant::{AccessToken, CapabilitySet, GrantId, UpstreamCredential},
    ids::{BlobId, EmailId, ThreadId},
    mail::{AccountInfo, AttachmentContent, Email, EmailSummary, Mailbox},
    query::{EmailQuery, PageSize},
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

/// Where a page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageStart {
    /// The first page.
    First,
    /// Right after `anchor`, expected at `position - 1`.
    After {
        /// The last email of the previous page.
        anchor: EmailId,
        /// Where the page started if the anchor is gone.
        position: u64,
    },
}

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

    /// One page of a search, newest first.
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

/// A grant opened with its token.
#[derive(Debug, Clone)]
pub struct OpenedGrant {
    /// The grant.
    pub grant: GrantId,
    /// Its upstream credential, decrypted for this request.
    pub credential: UpstreamCredential,
}

/// Where grants and their sealed upstream credentials live.
#[trait_variant::make(Send)]
#[cfg_attr(any(test, feature = "test-support"), mockall::automock)]
pub trait TokenVault: Sync + 'static {
    /// Opens the grant a presented token belongs to.
    ///
    /// # Security
    /// Only a live token of the grant can open its credential.
    async fn open(&self, token: &AccessToken) -> Result<OpenedGrant, VaultError>;
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
}
