//! The mail side: the person's mailbox as the core sees it (JMAP in production).

use std::time::Duration;

use crate::domain::{
    grant::UpstreamCredential,
    mail::changes::{ChangeReport, Keyword},
    mail::ids::{BlobId, EmailId, ThreadId},
    mail::{AccountInfo, AttachmentContent, Email, EmailSummary, Mailbox},
    search::query::{EmailQuery, PageSize},
    sending::approval::DraftSnapshot,
    sending::compose::{CreatedDraft, Identity, NewDraft},
    sending::submission::{Submission, SubmissionStatus},
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
    MailboxLookup(#[from] crate::domain::mail::mailboxes::MailboxLookupError),
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
    Refused(crate::domain::sending::submission::Refusal),
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
    pub target: crate::domain::mail::ids::MailboxId,
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
    /// else [`Refusal::NotADraft`](crate::domain::sending::submission::Refusal::NotADraft).
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
    ) -> Result<crate::domain::notify::ChangeFeed, MailStoreError>;

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
