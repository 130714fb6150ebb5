//! The arrival classifier: an email created since the last look is "new mail" only if it
//! really arrived — in a watched mailbox, not a draft, not junk, not the person's own copy, not
//! old mail replayed from a stale cursor, and not already read or already told about.
//! (A move into the Inbox is an update, never a creation, so it never gets here.)

use chrono::{DateTime, Duration, Utc};

use crate::domain::{
    mail::ids::{EmailId, MailboxId},
    mail::{Address, EmailSummary, Keywords},
    sending::compose::Identity,
};

/// How far before the watermark an arrival may have been received (server clocks and
/// delivery delays).
pub const WATERMARK_SLACK: Duration = Duration::minutes(2);

/// An email the change feed reported as created, as fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// Its id.
    pub id: EmailId,
    /// When the mailbox received it.
    pub received_at: DateTime<Utc>,
    /// The mailboxes it is in.
    pub mailboxes: Vec<MailboxId>,
    /// Its keywords at detection time.
    pub keywords: Keywords,
    /// Its senders.
    pub from: Vec<Address>,
}

/// What the classifier needs to know about the account.
pub struct Account<'a> {
    /// Mailboxes whose new mail counts (by default the Inbox).
    pub watched: &'a [MailboxId],
    /// Junk, Trash, Sent and Drafts: mail there is never new mail.
    pub excluded: &'a [MailboxId],
    /// The person's own identities.
    pub own: &'a [Identity],
    /// The later of "watching since" and "last arrival told".
    pub watermark: DateTime<Utc>,
    /// Whether mail already read elsewhere counts.
    pub include_seen: bool,
}

/// Why an email is or is not new mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// New mail.
    Arrival,
    /// Not in a watched mailbox.
    NotWatched,
    /// In Junk, Trash, Sent or Drafts.
    ExcludedMailbox,
    /// A draft.
    Draft,
    /// Marked junk or phishing.
    Junk,
    /// Sent by the person (a copy of their own mail).
    OwnMail,
    /// Received before the watermark: a replay after downtime or a stale cursor.
    Old,
    /// Already read on another device.
    Seen,
    /// Already told about.
    AlreadyTold,
}

/// Classifies one created email; `told` says whether it was already announced.
#[must_use]
pub fn classify(
    email: &Created,
    account: &Account<'_>,
    told: impl Fn(&EmailId) -> bool,
) -> Verdict {
    let has = |k: &str| {
        email
            .keywords
            .as_slice()
            .iter()
            .any(|x| x.eq_ignore_ascii_case(k))
    };
    if !email.mailboxes.iter().any(|m| account.watched.contains(m)) {
        return Verdict::NotWatched;
    }
    if email.mailboxes.iter().any(|m| account.excluded.contains(m)) {
        return Verdict::ExcludedMailbox;
    }
    if has("$draft") {
        return Verdict::Draft;
    }
    if has("$junk") || has("$phishing") {
        return Verdict::Junk;
    }
    if email
        .from
        .iter()
        .any(|a| account.own.iter().any(|i| i.covers(&a.email)))
    {
        return Verdict::OwnMail;
    }
    if email.received_at < account.watermark - WATERMARK_SLACK {
        return Verdict::Old;
    }
    if !account.include_seen && has("$seen") {
        return Verdict::Seen;
    }
    if told(&email.id) {
        return Verdict::AlreadyTold;
    }
    Verdict::Arrival
}

/// The real arrivals in a change feed: created, in a mailbox that is not Junk, Trash, Sent or
/// Drafts, not a draft or junk, not the person's own, received after `watermark`, unread
/// unless `include_seen`. Which mailboxes count (the Inbox, and folders the person named) is
/// each connection's rule: see `NotifySettings::watched`.
#[must_use]
pub fn arrivals_in(
    feed: &super::ChangeFeed,
    watermark: DateTime<Utc>,
    include_seen: bool,
) -> Vec<EmailSummary> {
    let by_role = |roles: &[&str]| -> Vec<MailboxId> {
        feed.mailboxes
            .iter()
            .filter(|m| m.role.as_ref().is_some_and(|r| roles.contains(&r.as_str())))
            .map(|m| m.id.clone())
            .collect()
    };
    let excluded = by_role(&["junk", "trash", "sent", "drafts"]);
    let watched: Vec<MailboxId> = feed
        .mailboxes
        .iter()
        .map(|m| m.id.clone())
        .filter(|id| !excluded.contains(id))
        .collect();
    let account = Account {
        watched: &watched,
        excluded: &excluded,
        own: &feed.identities,
        watermark,
        include_seen,
    };
    feed.created
        .iter()
        .filter(|e| {
            let created = Created {
                id: e.id.clone(),
                received_at: e.received_at,
                mailboxes: e.mailbox_ids.clone(),
                keywords: e.keywords.clone(),
                from: e.from.clone(),
            };
            classify(&created, &account, |_| false) == Verdict::Arrival
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    fn at(min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 12, min, 0).unwrap()
    }

    fn mailbox(id: &str) -> MailboxId {
        MailboxId::parse(id).unwrap()
    }

    fn created(keywords: &[&str], boxes: &[&str], from: &str, min: u32) -> Created {
        Created {
            id: EmailId::parse("M1").unwrap(),
            received_at: at(min),
            mailboxes: boxes.iter().map(|b| mailbox(b)).collect(),
            keywords: Keywords::new(keywords.iter().map(|k| (*k).to_owned()).collect()),
            from: vec![Address {
                name: Some("Alice".into()),
                email: from.into(),
            }],
        }
    }

    #[test]
    fn only_real_arrivals_count() {
        let own = [Identity {
            id: "I1".into(),
            email: "bob@example.test".into(),
            name: None,
        }];
        let watched = [mailbox("inbox"), mailbox("needs")];
        let excluded = [
            mailbox("junk"),
            mailbox("sent"),
            mailbox("drafts"),
            mailbox("trash"),
        ];
        let account = Account {
            watched: &watched,
            excluded: &excluded,
            own: &own,
            watermark: at(30),
            include_seen: false,
        };
        let never = |_: &EmailId| false;
        let v = |c: Created| classify(&c, &account, never);
        assert_eq!(v(created(&[], &["inbox"], "a@x.org", 31)), Verdict::Arrival);
        assert_eq!(
            v(created(&[], &["needs"], "a@x.org", 31)),
            Verdict::Arrival,
            "a watched folder (Sieve)"
        );
        assert_eq!(
            v(created(&[], &["archive"], "a@x.org", 31)),
            Verdict::NotWatched
        );
        assert_eq!(
            v(created(&[], &["inbox", "junk"], "a@x.org", 31)),
            Verdict::ExcludedMailbox
        );
        assert_eq!(
            v(created(&["$draft"], &["inbox"], "a@x.org", 31)),
            Verdict::Draft
        );
        assert_eq!(
            v(created(&["$Junk"], &["inbox"], "a@x.org", 31)),
            Verdict::Junk
        );
        assert_eq!(
            v(created(&["$phishing"], &["inbox"], "a@x.org", 31)),
            Verdict::Junk
        );
        assert_eq!(
            v(created(&[], &["inbox"], "BOB@example.test", 31)),
            Verdict::OwnMail,
            "a self-sent copy"
        );
        assert_eq!(
            v(created(&[], &["inbox"], "a@x.org", 29)),
            Verdict::Arrival,
            "within the slack"
        );
        assert_eq!(
            v(created(&[], &["inbox"], "a@x.org", 27)),
            Verdict::Old,
            "a replay from a stale cursor"
        );
        assert_eq!(
            v(created(&["$seen"], &["inbox"], "a@x.org", 31)),
            Verdict::Seen,
            "read elsewhere"
        );
        let with_seen = Account {
            include_seen: true,
            ..account
        };
        assert_eq!(
            classify(
                &created(&["$seen"], &["inbox"], "a@x.org", 31),
                &with_seen,
                never
            ),
            Verdict::Arrival
        );
        assert_eq!(
            classify(&created(&[], &["inbox"], "a@x.org", 31), &with_seen, |_| {
                true
            }),
            Verdict::AlreadyTold
        );
    }
}
