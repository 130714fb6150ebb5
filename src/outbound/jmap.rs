//! The JMAP adapter of the mail ports (RFC 8620/8621): Fastmail, Cyrus, any compliant server.
//! [`JmapMailStore`] is the whole mailbox, every role of
//! [`MailStore`](crate::domain::ports::MailStore); [`NotifierMail`] is the change feed alone.
//!
//!
//! Each read is one HTTP request: method calls are batched with back-references
//! (`Email/query` → `Email/get`), and the mailbox list rides along for names. The store only
//! routes: each operation lives in the module of its concern — `read` (account, search,
//! email, thread, attachment), `organize` (keywords, moves), `compose` (drafts, submissions),
//! `read_only` (the change feed and push) — over `connection`, `request` (method calls built
//! once) and `session` (HTTP).

mod changes;
mod compose;
mod connection;
mod convert;
mod mailboxes;
mod organize;
mod push;
mod read;
mod read_only;
mod request;
mod retry;
mod session;
mod set;
mod wire;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use self::{connection::Conn, session::Transport};
pub use self::{
    mailboxes::MAILBOX_PROPERTIES,
    read::{MAX_BODY_VALUE_BYTES, MAX_FETCH, SUMMARY_PROPERTIES, email_properties},
    read_only::{Fetched, HEADER_PROPERTIES, NotifierMail, ReadCall},
    session::TransportConfig,
};
use crate::domain::{
    grant::UpstreamCredential,
    mail::changes::{ChangeReport, Keyword},
    mail::ids::{BlobId, EmailId, ThreadId},
    mail::{AccountInfo, AttachmentContent, Email, EmailSummary, Mailbox},
    notify::ChangeFeed,
    ports::{
        MailFeed, MailReader, MailSender, MailStoreError, MailWriter, MoveResult, PageStart,
        PushChannel, SearchPage,
    },
    search::query::{EmailQuery, PageSize},
    sending::approval::DraftSnapshot,
    sending::compose::{CreatedDraft, Identity, NewDraft},
    sending::submission::{Submission, SubmissionStatus},
};

/// A JMAP server as the mail store.
#[derive(Debug)]
pub struct JmapMailStore {
    transport: Transport,
    /// Last mailbox list per account, so a mailbox named in a search resolves without an
    /// extra request; every batch that includes `Mailbox/get` refreshes it.
    mailboxes: Mutex<HashMap<String, Arc<Vec<Mailbox>>>>,
}

impl JmapMailStore {
    /// A store for the server at `config.session_url`.
    ///
    /// # Errors
    /// [`MailStoreError::Unavailable`] when the HTTP client can't be built.
    pub fn new(config: TransportConfig) -> Result<Self, MailStoreError> {
        Ok(Self {
            transport: Transport::new(config)?,
            mailboxes: Mutex::new(HashMap::new()),
        })
    }

    /// HTTP requests sent to the mail server so far.
    #[must_use]
    pub fn upstream_requests(&self) -> u64 {
        self.transport.requests_sent()
    }

    async fn conn<'a>(&'a self, cred: &'a UpstreamCredential) -> Result<Conn<'a>, MailStoreError> {
        Conn::open(self, cred).await
    }
}

impl MailReader for JmapMailStore {
    async fn account(&self, cred: &UpstreamCredential) -> Result<AccountInfo, MailStoreError> {
        read::account(&self.conn(cred).await?).await
    }

    async fn mailboxes(&self, cred: &UpstreamCredential) -> Result<Vec<Mailbox>, MailStoreError> {
        self.conn(cred).await?.mailboxes().await
    }

    async fn search(
        &self,
        cred: &UpstreamCredential,
        query: &EmailQuery,
        size: PageSize,
        start: &PageStart,
    ) -> Result<SearchPage, MailStoreError> {
        read::search(&self.conn(cred).await?, query, size, start).await
    }

    async fn email(
        &self,
        cred: &UpstreamCredential,
        id: &EmailId,
    ) -> Result<(Email, Vec<Mailbox>), MailStoreError> {
        read::email(&self.conn(cred).await?, id).await
    }

    async fn thread(
        &self,
        cred: &UpstreamCredential,
        id: &ThreadId,
    ) -> Result<(Vec<EmailSummary>, Vec<Mailbox>), MailStoreError> {
        read::thread(&self.conn(cred).await?, id).await
    }

    async fn attachment(
        &self,
        cred: &UpstreamCredential,
        email_id: &EmailId,
        blob: &BlobId,
        max_bytes: u64,
    ) -> Result<AttachmentContent, MailStoreError> {
        read::attachment(&self.conn(cred).await?, email_id, blob, max_bytes).await
    }
}

impl MailWriter for JmapMailStore {
    async fn set_keyword(
        &self,
        cred: &UpstreamCredential,
        ids: &[EmailId],
        keyword: Keyword,
        on: bool,
    ) -> Result<ChangeReport, MailStoreError> {
        organize::set_keyword(&self.conn(cred).await?, ids, keyword, on).await
    }

    async fn move_emails(
        &self,
        cred: &UpstreamCredential,
        ids: &[EmailId],
        to: &str,
    ) -> Result<MoveResult, MailStoreError> {
        organize::move_emails(&self.conn(cred).await?, ids, to).await
    }
}

impl MailSender for JmapMailStore {
    async fn identities(&self, cred: &UpstreamCredential) -> Result<Vec<Identity>, MailStoreError> {
        read::identities(&self.conn(cred).await?).await
    }

    async fn written_to(
        &self,
        cred: &UpstreamCredential,
        addresses: &[String],
    ) -> Result<Vec<String>, MailStoreError> {
        read::written_to(&self.conn(cred).await?, addresses).await
    }

    async fn create_draft(
        &self,
        cred: &UpstreamCredential,
        draft: &NewDraft,
    ) -> Result<CreatedDraft, MailStoreError> {
        compose::create_draft(&self.conn(cred).await?, draft).await
    }

    async fn draft(
        &self,
        cred: &UpstreamCredential,
        id: &EmailId,
    ) -> Result<DraftSnapshot, MailStoreError> {
        compose::draft(&self.conn(cred).await?, id).await
    }

    async fn delete_draft(
        &self,
        cred: &UpstreamCredential,
        id: &EmailId,
    ) -> Result<(), MailStoreError> {
        compose::delete_draft(&self.conn(cred).await?, id).await
    }

    async fn submit(
        &self,
        cred: &UpstreamCredential,
        submission: &Submission,
    ) -> Result<SubmissionStatus, MailStoreError> {
        compose::check_envelope(submission)?;
        compose::submit(&self.conn(cred).await?, submission).await
    }

    async fn submission(
        &self,
        cred: &UpstreamCredential,
        id: &str,
    ) -> Result<SubmissionStatus, MailStoreError> {
        compose::submission(&self.conn(cred).await?, id).await
    }

    async fn cancel_submission(
        &self,
        cred: &UpstreamCredential,
        id: &str,
    ) -> Result<EmailId, MailStoreError> {
        compose::cancel_submission(&self.conn(cred).await?, id).await
    }
}

impl MailFeed for JmapMailStore {
    async fn changes_since(
        &self,
        cred: &UpstreamCredential,
        state: Option<String>,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<ChangeFeed, MailStoreError> {
        read_only::tools_feed(&self.conn(cred).await?, state.as_deref(), since).await
    }

    async fn open_push(
        &self,
        cred: &UpstreamCredential,
        ping: std::time::Duration,
    ) -> Result<Option<PushChannel>, MailStoreError> {
        read_only::open_push(&self.transport, cred, ping).await
    }
}
