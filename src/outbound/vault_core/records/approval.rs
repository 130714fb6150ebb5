//! `approvals_v1` values (docs/storage-schema.md "Approval records") and the rules every
//! backend applies to them inside its compare-and-swap transaction.

use serde::{Deserialize, Serialize};

use crate::domain::{
    grant::GrantId,
    mail::ids::EmailId,
    sending::approval::{ApprovalError, ApprovalId, ApprovalRecord, DraftDigest, Status},
};

/// How long a settled approval is kept after it lapsed, for `get_send_status`.
pub const KEEP_AFTER_EXPIRY_SECS: i64 = 86_400;

/// An approval as stored (its id is the key).
#[derive(Serialize, Deserialize)]
pub struct StoredApproval {
    grant: String,
    account: String,
    draft: String,
    digest: String,
    status: String,
    created_at: i64,
    expires_at: i64,
    #[serde(with = "review_b64")]
    review: Vec<u8>,
    #[serde(default)]
    submission: Option<String>,
}

mod review_b64 {
    use base64::Engine as _;
    use serde::{Deserialize as _, Deserializer, Serializer};

    const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD_NO_PAD;

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        B64.decode(text).map_err(serde::de::Error::custom)
    }
}

fn unexpected(e: impl std::fmt::Display) -> ApprovalError {
    ApprovalError::Unexpected(e.to_string())
}

impl StoredApproval {
    /// The stored form of `a`.
    #[must_use]
    pub fn from_record(a: &ApprovalRecord) -> Self {
        Self {
            grant: a.grant.as_str().to_owned(),
            account: a.account.clone(),
            draft: a.draft.as_str().to_owned(),
            digest: a.digest.hex(),
            status: a.status.as_str().to_owned(),
            created_at: a.created_at,
            expires_at: a.expires_at,
            review: a.review.clone(),
            submission: a.submission.clone(),
        }
    }

    /// The domain record stored under `id`.
    ///
    /// # Errors
    /// [`ApprovalError::Unexpected`] when a field does not parse.
    pub fn into_record(self, id: &str) -> Result<ApprovalRecord, ApprovalError> {
        let corrupt = |what: &str| ApprovalError::Unexpected(format!("stored approval {what}"));
        Ok(ApprovalRecord {
            id: ApprovalId::parse(id).ok_or_else(|| corrupt("id"))?,
            grant: GrantId::new(self.grant),
            account: self.account,
            draft: EmailId::parse(self.draft).map_err(|_| corrupt("draft"))?,
            digest: DraftDigest(super::unhex(&self.digest).ok_or_else(|| corrupt("digest"))?),
            status: Status::parse(&self.status).ok_or_else(|| corrupt("status"))?,
            created_at: self.created_at,
            expires_at: self.expires_at,
            review: self.review,
            submission: self.submission,
        })
    }

    /// The JSON value.
    ///
    /// # Errors
    /// [`ApprovalError::Unexpected`].
    pub fn encode(&self) -> Result<Vec<u8>, ApprovalError> {
        super::encode(self).map_err(unexpected)
    }

    /// From the JSON value.
    ///
    /// # Errors
    /// [`ApprovalError::Unexpected`].
    pub fn decode(raw: &[u8]) -> Result<Self, ApprovalError> {
        super::decode(raw).map_err(unexpected)
    }

    /// Whether inserting `new` at `now` removes this one: an older ask for the same draft
    /// (never a claimed one: a send in flight settles it), or one that lapsed long ago.
    #[must_use]
    pub fn replaced_by(&self, new: &ApprovalRecord, now: i64) -> bool {
        let same_draft = self.grant == new.grant.as_str() && self.draft == new.draft.as_str();
        (same_draft && !self.is_claimed()) || now >= self.expires_at + KEEP_AFTER_EXPIRY_SECS
    }

    /// Whether a send holds it (only that send settles it).
    #[must_use]
    pub fn is_claimed(&self) -> bool {
        self.status == Status::Claimed.as_str()
    }

    /// The compare-and-swap: moves it from `from` to `to`, recording `submission` when given;
    /// the review copy serves the decision only and goes once it is made.
    ///
    /// # Errors
    /// [`ApprovalError::Conflict`] when it is not in `from`.
    pub fn transition(
        &mut self,
        from: Status,
        to: Status,
        submission: Option<String>,
    ) -> Result<(), ApprovalError> {
        if self.status != from.as_str() {
            return Err(ApprovalError::Conflict);
        }
        self.status = to.as_str().to_owned();
        if to != Status::Pending {
            self.review.clear();
        }
        if submission.is_some() {
            self.submission = submission;
        }
        Ok(())
    }
}

/// The approval of `grant` for `draft` that decides it: a claim (a send in flight, or one
/// whose outcome is unknown) blocks the draft whatever was asked after it; else the newest.
pub fn deciding(
    all: impl IntoIterator<Item = ApprovalRecord>,
    grant: &GrantId,
    draft: &EmailId,
) -> Option<ApprovalRecord> {
    all.into_iter()
        .filter(|r| r.grant == *grant && r.draft == *draft)
        .max_by_key(|r| (r.status == Status::Claimed, r.created_at))
}
