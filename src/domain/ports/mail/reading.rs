//! Reading the mailbox: what the tools show.

use crate::domain::{
    grant::UpstreamCredential,
    mail::ids::{BlobId, EmailId, ThreadId},
    mail::{AccountInfo, AttachmentContent, Email, EmailSummary, Mailbox},
    search::query::{EmailQuery, PageSize},
};

use super::MailStoreError;

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
    /// Emails received at or before `at` (the last page ended there); `extra` more are asked for,
    /// to make room for the ones received exactly at `at` that the caller already has.
    AtOrBefore {
        /// The receivedAt of the previous page's last email.
        at: chrono::DateTime<chrono::Utc>,
        /// How many more to fetch than the page size.
        extra: u32,
    },
}

/// The mailbox as the tools read it: the account, mailboxes, searches, emails, threads and
/// attachments.
///
/// Every read is one upstream HTTP request once the session is known.
#[trait_variant::make(Send)]
pub trait MailReader: Sync + 'static {
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

    /// An attachment of `email`, refused without download when over `max_bytes`.
    async fn attachment(
        &self,
        cred: &UpstreamCredential,
        email: &EmailId,
        blob: &BlobId,
        max_bytes: u64,
    ) -> Result<AttachmentContent, MailStoreError>;
}
