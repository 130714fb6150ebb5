//! Sending a draft: what the mail store is asked, what it answers, and every way a submission
//! server says no, each with the stable code the tools report.

use chrono::{DateTime, Utc};

use crate::domain::mail::ids::EmailId;

/// A draft to submit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    /// The draft.
    pub email: EmailId,
    /// The identity it is sent from.
    pub identity: String,
    /// The envelope sender (the From address).
    pub mail_from: String,
    /// The envelope recipients: To, Cc and Bcc (Bcc never reaches the headers).
    pub rcpt_to: Vec<String>,
    /// Hold it this many seconds first (undo window or scheduled send; RFC 4865 `HOLDFOR`).
    pub hold_secs: Option<u64>,
    /// The draft, when it has Bcc recipients: servers (Cyrus) send the message as stored, Bcc
    /// header included, so a copy without it is sent instead and the draft removed after.
    pub without_bcc: Option<crate::domain::sending::approval::DraftSnapshot>,
}

/// Whether a submission can still be undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UndoStatus {
    /// Held; it can be cancelled until `send_at`.
    Pending,
    /// Handed on for delivery.
    Final,
    /// Cancelled.
    Canceled,
}

impl UndoStatus {
    /// JMAP's name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Final => "final",
            Self::Canceled => "canceled",
        }
    }
}

/// What the server said of a submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmissionStatus {
    /// Its id.
    pub id: String,
    /// The email it sends, when the server said.
    pub email: Option<EmailId>,
    /// Whether it can be undone.
    pub undo_status: UndoStatus,
    /// When it leaves (or left).
    pub send_at: Option<DateTime<Utc>>,
    /// Per recipient, the server's delivery word (`queued`, `yes`, `no`, `unknown`).
    pub delivery: Vec<(String, String)>,
}

/// Why the server refused to send (or to change a submission).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The From address is not the person's to send from.
    ForbiddenFrom,
    /// The envelope sender is not allowed.
    ForbiddenMailFrom,
    /// The account may not send (policy, quota).
    ForbiddenToSend,
    /// Too many recipients, with the server's maximum when it said.
    TooManyRecipients(Option<u64>),
    /// Recipients the server refused.
    InvalidRecipients(Vec<String>),
    /// The draft has no recipients.
    NoRecipients,
    /// The message is too large, with the server's maximum when it said.
    TooLarge(Option<u64>),
    /// The submission already left (cancel came too late).
    CannotUnsend,
    /// Not an email in Drafts with `$draft`.
    NotADraft,
    /// The send time is further out than the server holds messages (its maximum, in seconds).
    DelayTooLong(Option<u64>),
    /// Anything else, by the server's type.
    Other(String),
}

impl Refusal {
    /// The stable code the tools report.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::ForbiddenFrom => "forbidden_from",
            Self::ForbiddenMailFrom => "forbidden_mail_from",
            Self::ForbiddenToSend => "forbidden_to_send",
            Self::TooManyRecipients(_) => "too_many_recipients",
            Self::InvalidRecipients(_) => "invalid_recipients",
            Self::NoRecipients => "no_recipients",
            Self::TooLarge(_) => "too_large",
            Self::CannotUnsend => "cannot_unsend",
            Self::NotADraft => "not_a_draft",
            Self::DelayTooLong(_) => "delay_exceeds_max",
            Self::Other(_) => "refused",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ForbiddenFrom => write!(
                f,
                "the mail server does not let this account send from that From address"
            ),
            Self::ForbiddenMailFrom => write!(f, "the mail server refused the envelope sender"),
            Self::ForbiddenToSend => write!(
                f,
                "the mail server does not let this account send mail right now"
            ),
            Self::TooManyRecipients(Some(max)) => {
                write!(f, "too many recipients (the server allows {max})")
            }
            Self::TooManyRecipients(None) => write!(f, "too many recipients for the mail server"),
            Self::InvalidRecipients(list) => write!(
                f,
                "the mail server refused these recipients: {}",
                list.join(", ")
            ),
            Self::NoRecipients => write!(f, "the draft has no recipients"),
            Self::TooLarge(Some(max)) => write!(
                f,
                "the message is too large (the server allows {max} bytes)"
            ),
            Self::TooLarge(None) => write!(f, "the message is too large for the mail server"),
            Self::CannotUnsend => write!(
                f,
                "the message has already been sent and can no longer be cancelled"
            ),
            Self::NotADraft => write!(
                f,
                "that email is not a draft (only emails in Drafts marked as drafts can be changed or sent)"
            ),
            Self::DelayTooLong(Some(max)) => write!(
                f,
                "the send time is further out than the mail server holds messages ({} days at most)",
                max / 86_400
            ),
            Self::DelayTooLong(None) => write!(
                f,
                "the send time is further out than the mail server holds messages"
            ),
            Self::Other(kind) => write!(f, "the mail server refused to send it ({kind})"),
        }
    }
}
