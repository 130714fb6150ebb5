//! The mail model the use cases work on (RFC 8621 concepts, none of its JSON).

pub mod body;
pub mod changes;
pub mod ids;
pub mod mailboxes;
pub mod text_extract;

use chrono::{DateTime, Utc};

use self::ids::{BlobId, EmailId, MailboxId, ThreadId};

/// One address with its display name. Untrusted: written by the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// The display name, when the message gave a non-empty one.
    pub name: Option<String>,
    /// The address itself.
    pub email: String,
}

/// A mailbox's role (RFC 8621 §2, IANA "IMAP Mailbox Name Attributes").
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MailboxRole {
    /// Where new mail arrives.
    Inbox,
    /// Archived mail.
    Archive,
    /// Drafts.
    Drafts,
    /// Sent mail.
    Sent,
    /// Junk / spam.
    Junk,
    /// Deleted mail.
    Trash,
    /// Any other role the server names (e.g. `important`, `scheduled`).
    Other(String),
}

impl MailboxRole {
    /// Parses a role name (case-insensitive, as servers differ).
    #[must_use]
    pub fn parse(raw: &str) -> Self {
        match raw.to_ascii_lowercase().as_str() {
            "inbox" => Self::Inbox,
            "archive" => Self::Archive,
            "drafts" => Self::Drafts,
            "sent" => Self::Sent,
            "junk" | "spam" => Self::Junk,
            "trash" => Self::Trash,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The role's RFC 8621 name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Inbox => "inbox",
            Self::Archive => "archive",
            Self::Drafts => "drafts",
            Self::Sent => "sent",
            Self::Junk => "junk",
            Self::Trash => "trash",
            Self::Other(other) => other,
        }
    }
}

/// A mailbox (folder) as the server describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// Its id.
    pub id: MailboxId,
    /// Its own name (not the path).
    pub name: String,
    /// Its parent, for nested mailboxes.
    pub parent_id: Option<MailboxId>,
    /// Its role, if any.
    pub role: Option<MailboxRole>,
    /// The server's preferred position among siblings.
    pub sort_order: u32,
    /// Emails in it.
    pub total_emails: u64,
    /// Unread emails in it.
    pub unread_emails: u64,
}

/// The JMAP keywords an email carries (`$seen`, `$flagged`, …), sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keywords(Vec<String>);

impl Keywords {
    /// Builds the set from the server's keyword names.
    #[must_use]
    pub fn new(mut names: Vec<String>) -> Self {
        names.sort();
        names.dedup();
        Self(names)
    }

    /// Whether the email is unread (no `$seen`).
    #[must_use]
    pub fn is_unread(&self) -> bool {
        !self.has("$seen")
    }

    /// Whether the email is flagged (`$flagged`).
    #[must_use]
    pub fn is_flagged(&self) -> bool {
        self.has("$flagged")
    }

    fn has(&self, keyword: &str) -> bool {
        self.0.iter().any(|k| k.eq_ignore_ascii_case(keyword))
    }

    /// The keyword names.
    #[must_use]
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }
}

/// What a search or a thread lists about each email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailSummary {
    /// The email's id.
    pub id: EmailId,
    /// Its thread.
    pub thread_id: ThreadId,
    /// When the mailbox received it.
    pub received_at: DateTime<Utc>,
    /// The Date header, as the sender wrote it (RFC 3339).
    pub sent_at: Option<String>,
    /// From.
    pub from: Vec<Address>,
    /// To.
    pub to: Vec<Address>,
    /// The subject ("" when absent).
    pub subject: String,
    /// A short plain-text preview.
    pub preview: String,
    /// Its keywords.
    pub keywords: Keywords,
    /// Whether it has attachments.
    pub has_attachment: bool,
    /// The mailboxes it is in.
    pub mailbox_ids: Vec<MailboxId>,
    /// The receiving server's DMARC verdict on the From domain: `Some(false)` failed,
    /// `Some(true)` passed, `None` nothing said (or not asked). A VIP whose mail failed it is
    /// not treated as a VIP.
    pub sender_verified: Option<bool>,
}

/// An attachment's description (not its bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// Where its bytes are.
    pub blob_id: BlobId,
    /// Its file name, if it has one.
    pub name: Option<String>,
    /// Its MIME type (lowercase, without parameters).
    pub mime_type: String,
    /// Its declared charset, for text types.
    pub charset: Option<String>,
    /// Its size in bytes (decoded).
    pub size: u64,
}

/// The readable body of an email, as the server gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawBody {
    /// A text/plain part.
    Text(String),
    /// Only a text/html part.
    Html(String),
    /// No readable part.
    None,
}

/// One email in full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    /// What a summary holds.
    pub summary: EmailSummary,
    /// Sender header.
    pub sender: Vec<Address>,
    /// Cc.
    pub cc: Vec<Address>,
    /// Bcc (only on mail the person sent).
    pub bcc: Vec<Address>,
    /// Reply-To.
    pub reply_to: Vec<Address>,
    /// The Message-ID, without angle brackets.
    pub message_id: Option<String>,
    /// In-Reply-To ids.
    pub in_reply_to: Vec<String>,
    /// References ids.
    pub references: Vec<String>,
    /// Attachments.
    pub attachments: Vec<Attachment>,
    /// The body.
    pub body: RawBody,
}

/// An attachment with its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentContent {
    /// What it is.
    pub attachment: Attachment,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// Limits of the mail server that matter to an assistant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerLimits {
    /// `maxMailboxesPerEmail`.
    pub max_mailboxes_per_email: Option<u64>,
    /// `maxSizeAttachmentsPerEmail`.
    pub max_size_attachments_per_email: Option<u64>,
    /// `maxObjectsInGet`.
    pub max_objects_in_get: Option<u64>,
}

/// The mailbox account behind a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountInfo {
    /// The login (usually the address).
    pub username: String,
    /// The primary mail account's id.
    pub account_id: String,
    /// The account's name.
    pub account_name: String,
    /// Whether it belongs to the person (not shared).
    pub is_personal: bool,
    /// Whether the person may only read it.
    pub is_read_only: bool,
    /// Capability URIs the server offers.
    pub capabilities: Vec<String>,
    /// Limits.
    pub limits: ServerLimits,
    /// Sender identities.
    pub identities: Vec<Address>,
}
