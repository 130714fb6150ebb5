//! The mail side: the person's mailbox as the core sees it (JMAP in production), one port per
//! role — [`MailReader`], [`MailWriter`], [`MailSender`] and the change feed [`MailFeed`] — so
//! that a part that needs less can be given less: the background notifier gets the change feed
//! and nothing else. [`MailStore`] is the whole mailbox, all four.

mod change_feed;
mod reading;
mod sending;
mod writing;

use std::time::Duration;

#[cfg(any(test, feature = "test-support"))]
pub use self::change_feed::MockMailFeed;
pub use self::{
    change_feed::{MailFeed, PushChannel, PushEvent},
    reading::{MailReader, PageStart, SearchPage},
    sending::MailSender,
    writing::{MailWriter, MoveResult},
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

/// The whole mailbox: what the tools' use cases are generic over.
pub trait MailStore: MailReader + MailWriter + MailSender + MailFeed {}

impl<T: MailReader + MailWriter + MailSender + MailFeed> MailStore for T {}

#[cfg(any(test, feature = "test-support"))]
mod mock {
    //! `automock` can't mock a trait with supertraits, so the whole mailbox is mocked by hand:
    //! one mock with every role, the signatures as `trait_variant` writes them.

    use std::{future::Future, time::Duration};

    use chrono::{DateTime, Utc};

    use super::{
        MailFeed, MailReader, MailSender, MailStoreError, MailWriter, MoveResult, PageStart,
        PushChannel, SearchPage,
    };
    use crate::domain::{
        grant::UpstreamCredential,
        mail::changes::{ChangeReport, Keyword},
        mail::ids::{BlobId, EmailId, ThreadId},
        mail::{AccountInfo, AttachmentContent, Email, EmailSummary, Mailbox},
        notify::ChangeFeed,
        search::query::{EmailQuery, PageSize},
        sending::approval::DraftSnapshot,
        sending::compose::{CreatedDraft, Identity, NewDraft},
        sending::submission::{Submission, SubmissionStatus},
    };

    type Answer<T> = Result<T, MailStoreError>;

    mockall::mock! {
        /// The whole mailbox, every role mocked.
        pub MailStore {}

        impl MailReader for MailStore {
            fn account(&self, cred: &UpstreamCredential)
                -> impl Future<Output = Answer<AccountInfo>> + Send;
            fn mailboxes(&self, cred: &UpstreamCredential)
                -> impl Future<Output = Answer<Vec<Mailbox>>> + Send;
            fn search(
                &self, cred: &UpstreamCredential, query: &EmailQuery, size: PageSize,
                start: &PageStart,
            ) -> impl Future<Output = Answer<SearchPage>> + Send;
            fn email(&self, cred: &UpstreamCredential, id: &EmailId)
                -> impl Future<Output = Answer<(Email, Vec<Mailbox>)>> + Send;
            fn thread(&self, cred: &UpstreamCredential, id: &ThreadId)
                -> impl Future<Output = Answer<(Vec<EmailSummary>, Vec<Mailbox>)>> + Send;
            fn attachment(
                &self, cred: &UpstreamCredential, email: &EmailId, blob: &BlobId, max_bytes: u64,
            ) -> impl Future<Output = Answer<AttachmentContent>> + Send;
        }

        impl MailWriter for MailStore {
            fn set_keyword(
                &self, cred: &UpstreamCredential, ids: &[EmailId], keyword: Keyword, on: bool,
            ) -> impl Future<Output = Answer<ChangeReport>> + Send;
            fn move_emails(&self, cred: &UpstreamCredential, ids: &[EmailId], to: &str)
                -> impl Future<Output = Answer<MoveResult>> + Send;
        }

        impl MailSender for MailStore {
            fn identities(&self, cred: &UpstreamCredential)
                -> impl Future<Output = Answer<Vec<Identity>>> + Send;
            fn written_to(&self, cred: &UpstreamCredential, addresses: &[String])
                -> impl Future<Output = Answer<Vec<String>>> + Send;
            fn create_draft(&self, cred: &UpstreamCredential, draft: &NewDraft)
                -> impl Future<Output = Answer<CreatedDraft>> + Send;
            fn draft(&self, cred: &UpstreamCredential, id: &EmailId)
                -> impl Future<Output = Answer<DraftSnapshot>> + Send;
            fn delete_draft(&self, cred: &UpstreamCredential, id: &EmailId)
                -> impl Future<Output = Answer<()>> + Send;
            fn submit(&self, cred: &UpstreamCredential, submission: &Submission)
                -> impl Future<Output = Answer<SubmissionStatus>> + Send;
            fn submission(&self, cred: &UpstreamCredential, id: &str)
                -> impl Future<Output = Answer<SubmissionStatus>> + Send;
            fn cancel_submission(&self, cred: &UpstreamCredential, id: &str)
                -> impl Future<Output = Answer<EmailId>> + Send;
        }

        impl MailFeed for MailStore {
            fn changes_since(
                &self, cred: &UpstreamCredential, state: Option<String>, since: DateTime<Utc>,
            ) -> impl Future<Output = Answer<ChangeFeed>> + Send;
            fn open_push(&self, cred: &UpstreamCredential, ping: Duration)
                -> impl Future<Output = Answer<Option<PushChannel>>> + Send;
        }
    }
}

#[cfg(any(test, feature = "test-support"))]
pub use self::mock::MockMailStore;
