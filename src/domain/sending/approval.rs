//! Sending only after the person approved the exact draft.
//!
//! An approval binds a grant to a digest of everything that leaves with the message (sender,
//! every recipient incl. Bcc, subject, bodies, attachments, threading headers, send time). It
//! is single use and short-lived, and moves through `Pending → Approved → Claimed → Sent`
//! (or `Pending → Declined`): the transitions are methods of the state they leave, and each is
//! a compare-and-swap in the [`ApprovalStore`](crate::domain::ports::ApprovalStore), so a claim cannot happen twice and a declined,
//! expired or changed draft cannot be sent.

use std::marker::PhantomData;

use aes_gcm::{Aes256Gcm, KeyInit as _, aead::Aead as _};
use chrono::{DateTime, Utc};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::domain::{
    grant::GrantId,
    mail::ids::{BlobId, EmailId},
    mail::{Address, Attachment},
    ports::ApprovalStore,
};

/// How long a person has to approve a send.
pub const DEFAULT_TTL_SECS: i64 = 600;

/// What is sent, re-read from the mail store right before it is approved or sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DraftSnapshot {
    /// The draft.
    pub id: EmailId,
    /// Its raw message (content-derived on Cyrus and Fastmail).
    pub blob_id: BlobId,
    /// From.
    pub from: Vec<Address>,
    /// To.
    pub to: Vec<Address>,
    /// Cc.
    pub cc: Vec<Address>,
    /// Bcc.
    pub bcc: Vec<Address>,
    /// Reply-To.
    pub reply_to: Vec<Address>,
    /// Subject.
    pub subject: String,
    /// The text/plain bodies, joined.
    pub text: String,
    /// The text/html bodies, joined, if any.
    pub html: Option<String>,
    /// Attachments.
    pub attachments: Vec<Attachment>,
    /// In-Reply-To.
    pub in_reply_to: Vec<String>,
    /// References.
    pub references: Vec<String>,
    /// Whether it is in the Drafts mailbox.
    pub in_drafts: bool,
    /// Whether it has the `$draft` keyword.
    pub is_draft: bool,
    /// Whether the server cut a body (such a draft can't be reviewed, so it is never sent).
    pub truncated: bool,
}

impl DraftSnapshot {
    /// Every recipient, To, Cc and Bcc.
    pub fn recipients(&self) -> impl Iterator<Item = &Address> {
        self.to.iter().chain(&self.cc).chain(&self.bcc)
    }
}

/// When a message leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Now, or after an undo window of this many seconds (0: at once).
    Now {
        /// The undo window.
        undo_secs: u32,
    },
    /// At this instant.
    At(DateTime<Utc>),
}

impl Schedule {
    /// Seconds to hold the message from `now` (`HOLDFOR`), if any.
    #[must_use]
    pub fn hold_secs(&self, now: DateTime<Utc>) -> Option<u64> {
        match *self {
            Self::Now { undo_secs: 0 } => None,
            Self::Now { undo_secs } => Some(u64::from(undo_secs)),
            Self::At(at) => u64::try_from((at - now).num_seconds())
                .ok()
                .filter(|s| *s > 0),
        }
    }
}

/// SHA-256 over a canonical form of a draft and how it is sent.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DraftDigest(pub [u8; 32]);

impl std::fmt::Debug for DraftDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DraftDigest({})", &self.hex()[..12])
    }
}

impl DraftDigest {
    /// Lower-case hex.
    #[must_use]
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The digest of `snapshot` sent from `identity` on `schedule`. Recipient and attachment
    /// order don't matter (the message is the same); every field's content does. Each field
    /// is tagged and length-prefixed, so no two different drafts encode alike.
    #[must_use]
    pub fn of(snapshot: &DraftSnapshot, identity: &str, schedule: &Schedule) -> Self {
        let mut h = Sha256::new();
        let mut field = |tag: &str, value: &[u8]| {
            h.update((tag.len() as u64).to_be_bytes());
            h.update(tag.as_bytes());
            h.update((value.len() as u64).to_be_bytes());
            h.update(value);
        };
        field("v", b"1");
        field("identity", identity.as_bytes());
        field("blob", snapshot.blob_id.as_str().as_bytes());
        for (tag, list) in [
            ("from", &snapshot.from),
            ("to", &snapshot.to),
            ("cc", &snapshot.cc),
            ("bcc", &snapshot.bcc),
            ("reply_to", &snapshot.reply_to),
        ] {
            let mut entries: Vec<String> = list
                .iter()
                .map(|a| {
                    format!(
                        "{}\u{0}{}",
                        a.email.to_lowercase(),
                        a.name.as_deref().unwrap_or_default()
                    )
                })
                .collect();
            entries.sort();
            field(tag, &(entries.len() as u64).to_be_bytes());
            for e in entries {
                field(tag, e.as_bytes());
            }
        }
        field("subject", snapshot.subject.as_bytes());
        field("text", snapshot.text.as_bytes());
        field(
            "html",
            snapshot
                .html
                .as_deref()
                .map_or(&b"\x00none"[..], str::as_bytes),
        );
        let mut attachments: Vec<String> = snapshot
            .attachments
            .iter()
            .map(|a| {
                format!(
                    "{}\u{0}{}\u{0}{}\u{0}{}",
                    a.blob_id.as_str(),
                    a.name.as_deref().unwrap_or_default(),
                    a.mime_type,
                    a.size
                )
            })
            .collect();
        attachments.sort();
        field("attachments", &(attachments.len() as u64).to_be_bytes());
        for a in attachments {
            field("attachment", a.as_bytes());
        }
        field("in_reply_to", snapshot.in_reply_to.join("\n").as_bytes());
        field("references", snapshot.references.join("\n").as_bytes());
        let schedule = match schedule {
            Schedule::Now { undo_secs } => format!("now+{undo_secs}"),
            Schedule::At(at) => format!("at {}", at.timestamp()),
        };
        field("schedule", schedule.as_bytes());
        Self(h.finalize().into())
    }
}

/// An approval's id: 128 random bits, base64url.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ApprovalId(String);

impl ApprovalId {
    /// A fresh random id.
    #[must_use]
    pub fn generate() -> Self {
        let bytes: [u8; 16] = rand::random();
        Self(base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            bytes,
        ))
    }

    /// An id from a URL or a stored record: 22 base64url characters, else `None`.
    #[must_use]
    pub fn parse(raw: &str) -> Option<Self> {
        (raw.len() == 22
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .then(|| Self(raw.to_owned()))
    }

    /// The id.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where an approval is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Asked; nobody answered yet.
    Pending,
    /// The person approved; not yet sent.
    Approved,
    /// The person declined.
    Declined,
    /// A `send_draft` call took it and is submitting.
    Claimed,
    /// Submitted.
    Sent,
}

impl Status {
    /// The stored name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Declined => "declined",
            Self::Claimed => "claimed",
            Self::Sent => "sent",
        }
    }

    /// A stored name back.
    #[must_use]
    pub fn parse(raw: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Approved,
            Self::Declined,
            Self::Claimed,
            Self::Sent,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }
}

/// An approval as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRecord {
    /// Its id (in the review link).
    pub id: ApprovalId,
    /// The grant whose `send_draft` asked.
    pub grant: GrantId,
    /// SHA-256 (hex) of the upstream account, to match the person on the review page.
    pub account: String,
    /// The draft.
    pub draft: EmailId,
    /// What exactly is approved.
    pub digest: DraftDigest,
    /// Where it is.
    pub status: Status,
    /// When it was asked (unix seconds).
    pub created_at: i64,
    /// When it lapses (unix seconds).
    pub expires_at: i64,
    /// The draft for the review page, sealed under a key that only the link carries.
    pub review: Vec<u8>,
    /// The submission, once sent.
    pub submission: Option<String>,
}

/// Why a transition did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalError {
    /// Another request moved it first (a second claim, a decision after another).
    #[error("the approval was already used or decided")]
    Conflict,
    /// It lapsed.
    #[error("the approval expired")]
    Expired,
    /// The store failed.
    #[error("the approval store failed: {0}")]
    Unexpected(String),
}

/// Typestate markers.
#[derive(Debug, Clone, Copy)]
pub struct Pending;
/// Approved by the person.
#[derive(Debug, Clone, Copy)]
pub struct Approved;
/// Claimed by one `send_draft` call.
#[derive(Debug, Clone, Copy)]
pub struct Claimed;

/// An approval known to be in state `S`; only that state's transitions exist on it.
#[derive(Debug, Clone)]
pub struct Approval<S> {
    record: ApprovalRecord,
    state: PhantomData<S>,
}

impl<S> Approval<S> {
    /// The stored record.
    #[must_use]
    pub fn record(&self) -> &ApprovalRecord {
        &self.record
    }

    async fn step<T>(
        self,
        store: &impl ApprovalStore,
        from: Status,
        to: Status,
        submission: Option<String>,
    ) -> Result<Approval<T>, ApprovalError> {
        store
            .transition(&self.record.id, from, to, submission.clone())
            .await?;
        let mut record = self.record;
        record.status = to;
        record.submission = submission.or(record.submission);
        Ok(Approval {
            record,
            state: PhantomData,
        })
    }
}

/// A stored approval by its state.
#[derive(Debug, Clone)]
pub enum Typed {
    /// Waiting for the person.
    Pending(Approval<Pending>),
    /// Approved, not yet claimed.
    Approved(Approval<Approved>),
    /// Declined, claimed or sent: nothing more can happen with it.
    Settled(ApprovalRecord),
}

impl ApprovalRecord {
    /// The record with its state as a type.
    #[must_use]
    pub fn typed(self) -> Typed {
        match self.status {
            Status::Pending => Typed::Pending(Approval {
                record: self,
                state: PhantomData,
            }),
            Status::Approved => Typed::Approved(Approval {
                record: self,
                state: PhantomData,
            }),
            _ => Typed::Settled(self),
        }
    }

    /// Whether it has lapsed at `now` (unix seconds).
    #[must_use]
    pub fn expired(&self, now: i64) -> bool {
        now >= self.expires_at
    }

    /// A claim whose submission's outcome was never known (its answer was lost), old enough
    /// at `now` that its request has ended: the server can say it left (never that it didn't).
    #[must_use]
    pub fn unsettled_claim(self, now: i64) -> Option<Approval<Claimed>> {
        (self.status == Status::Claimed
            && self.submission.is_none()
            && now >= self.expires_at + CLAIM_SETTLES_AFTER)
            .then_some(Approval {
                record: self,
                state: PhantomData,
            })
    }
}

/// How long after its approval lapsed an unknown outcome is looked at again on the server
/// (only to find that it left).
pub const CLAIM_SETTLES_AFTER: i64 = 120;

impl Approval<Pending> {
    /// A new approval for `digest`, with the review page's sealed snapshot.
    #[must_use]
    pub fn ask(
        grant: GrantId,
        account: String,
        draft: EmailId,
        digest: DraftDigest,
        review: Vec<u8>,
        now: i64,
        ttl_secs: i64,
    ) -> Self {
        Self {
            record: ApprovalRecord {
                id: ApprovalId::generate(),
                grant,
                account,
                draft,
                digest,
                status: Status::Pending,
                created_at: now,
                expires_at: now + ttl_secs,
                review,
                submission: None,
            },
            state: PhantomData,
        }
    }

    /// The person approved.
    ///
    /// # Errors
    /// `Expired`, or `Conflict` when it was decided meanwhile.
    pub async fn approve(
        self,
        store: &impl ApprovalStore,
        now: i64,
    ) -> Result<Approval<Approved>, ApprovalError> {
        if self.record.expired(now) {
            return Err(ApprovalError::Expired);
        }
        self.step(store, Status::Pending, Status::Approved, None)
            .await
    }

    /// The person declined.
    ///
    /// # Errors
    /// `Conflict` when it was decided meanwhile.
    pub async fn decline(
        self,
        store: &impl ApprovalStore,
    ) -> Result<ApprovalRecord, ApprovalError> {
        self.step::<Pending>(store, Status::Pending, Status::Declined, None)
            .await
            .map(|a| a.record)
    }
}

impl Approval<Approved> {
    /// Takes it for one submission; a second claim fails.
    ///
    /// # Errors
    /// `Expired`, or `Conflict` when another call claimed it first.
    pub async fn claim(
        self,
        store: &impl ApprovalStore,
        now: i64,
    ) -> Result<Approval<Claimed>, ApprovalError> {
        if self.record.expired(now) {
            return Err(ApprovalError::Expired);
        }
        self.step(store, Status::Approved, Status::Claimed, None)
            .await
    }
}

impl Approval<Claimed> {
    /// The submission was accepted.
    ///
    /// # Errors
    /// `Unexpected`.
    pub async fn sent(
        self,
        store: &impl ApprovalStore,
        submission: String,
    ) -> Result<ApprovalRecord, ApprovalError> {
        self.step::<Claimed>(store, Status::Claimed, Status::Sent, Some(submission))
            .await
            .map(|a| a.record)
    }

    /// The message left after all, though its submission's answer was lost (the server no
    /// longer has the draft as a draft).
    ///
    /// # Errors
    /// [`ApprovalError::Conflict`] when it moved meanwhile.
    pub async fn left(self, store: &impl ApprovalStore) -> Result<ApprovalRecord, ApprovalError> {
        self.step::<Claimed>(store, Status::Claimed, Status::Sent, None)
            .await
            .map(|a| a.record)
    }

    /// The server refused the submission, so nothing left: the approval may be used again
    /// (e.g. after a rate limit). Never called when the outcome is unknown.
    ///
    /// # Errors
    /// `Unexpected`.
    pub async fn release(
        self,
        store: &impl ApprovalStore,
    ) -> Result<Approval<Approved>, ApprovalError> {
        self.step(store, Status::Claimed, Status::Approved, None)
            .await
    }
}

/// Why the review page could not record a decision.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecisionError {
    /// No such approval (never asked, replaced, or swept).
    #[error("this approval link is unknown or was replaced by a newer one")]
    Unknown,
    /// The signed-in person's mailbox is not the one the draft is in.
    #[error("this email belongs to another mailbox: sign in with the mailbox it was written in")]
    OtherAccount,
    /// It lapsed.
    #[error("this approval expired; ask your assistant to send the draft again for a new link")]
    Expired,
    /// It was decided already.
    #[error("this email was already {}", .0.as_str())]
    Decided(Status),
    /// The store failed.
    #[error("the approval store failed: {0}")]
    Store(String),
}

/// The record behind a review link, if `account` (the signed-in person's account digest) may
/// see it: the same mailbox, compared in constant time.
///
/// # Errors
/// `Unknown`, `OtherAccount`, `Store`.
pub async fn for_account(
    store: &impl ApprovalStore,
    id: &ApprovalId,
    account: &str,
) -> Result<ApprovalRecord, DecisionError> {
    let record = store
        .get(id)
        .await
        .map_err(|e| DecisionError::Store(e.to_string()))?
        .ok_or(DecisionError::Unknown)?;
    let same = !record.account.is_empty()
        && bool::from(subtle::ConstantTimeEq::ct_eq(
            record.account.as_bytes(),
            account.as_bytes(),
        ));
    if same {
        Ok(record)
    } else {
        Err(DecisionError::OtherAccount)
    }
}

/// The person's decision on the review page: only theirs, only while pending and in time.
///
/// # Errors
/// See [`DecisionError`].
pub async fn decide(
    store: &impl ApprovalStore,
    id: &ApprovalId,
    account: &str,
    approve: bool,
    now: i64,
) -> Result<ApprovalRecord, DecisionError> {
    let record = for_account(store, id, account).await?;
    if record.expired(now) {
        return Err(DecisionError::Expired);
    }
    let decided = match record.typed() {
        Typed::Pending(p) if approve => p.approve(store, now).await.map(|a| a.record().clone()),
        Typed::Pending(p) => p.decline(store).await,
        Typed::Approved(a) => return Err(DecisionError::Decided(a.record().status)),
        Typed::Settled(r) => return Err(DecisionError::Decided(r.status)),
    };
    decided.map_err(|e| match e {
        ApprovalError::Expired => DecisionError::Expired,
        ApprovalError::Conflict => DecisionError::Decided(Status::Claimed),
        ApprovalError::Unexpected(m) => DecisionError::Store(m),
    })
}

/// The review page's copy of the draft, sealed with AES-256-GCM under a fresh key that goes
/// only into the review link's fragment (browsers never send it; WebCrypto opens it).
/// Returns the key and `nonce ‖ ciphertext`.
///
/// # Panics
/// Never: a fresh 32-byte key and a 12-byte nonce are always valid.
#[must_use]
pub fn seal_review(plaintext: &[u8]) -> (Zeroizing<[u8; 32]>, Vec<u8>) {
    let key = Zeroizing::new(rand::random::<[u8; 32]>());
    let nonce: [u8; 12] = rand::random();
    let cipher = Aes256Gcm::new_from_slice(key.as_slice()).expect("a 32-byte key");
    let sealed = cipher
        .encrypt(&nonce.into(), plaintext)
        .expect("AES-GCM encrypts any length we produce");
    let mut out = nonce.to_vec();
    out.extend(sealed);
    (key, out)
}

#[cfg(test)]
mod tests;
