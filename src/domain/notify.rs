//! New mail for the assistant (issue 7): which changes are real arrivals, and the person's
//! rules for which of them reach it and when. Pure domain logic with an injected clock; the
//! watcher, the tools and the delivery channels drive it.

pub mod arrival;
pub mod background;
pub mod cadence;
pub mod cursor;
pub mod delivery;
pub mod quiet;
pub mod rules;
pub mod settings;

use chrono::{DateTime, Utc};

use crate::domain::{
    mail::{EmailSummary, Mailbox},
    sending::compose::Identity,
};

/// What changed in the mailbox since a state, as one upstream request reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeFeed {
    /// Emails created since (or, on a fresh start, received in the look-back window), with
    /// their summaries.
    pub created: Vec<EmailSummary>,
    /// The state to ask from next time.
    pub state: String,
    /// The server has more changes than one request carries.
    pub more: bool,
    /// The state was too old or unknown, so this is a fresh look instead of changes.
    pub reset: bool,
    /// The account's mailboxes (roles, names).
    pub mailboxes: Vec<Mailbox>,
    /// The person's sender identities (their own mail is never new mail).
    pub identities: Vec<Identity>,
    /// Of the created emails' threads, those the person wrote in (mail of theirs there that
    /// is not a draft): a reply there may count as from a VIP.
    pub my_threads: Vec<crate::domain::mail::ids::ThreadId>,
}

/// How far back a fresh look (no cursor, or one the server no longer knows) reaches: new
/// mail, never a flood of old mail.
pub const LOOK_BACK: chrono::Duration = chrono::Duration::hours(24);

/// The watermark of a fresh look at `now`.
#[must_use]
pub fn fresh_watermark(now: DateTime<Utc>) -> DateTime<Utc> {
    now - LOOK_BACK
}
