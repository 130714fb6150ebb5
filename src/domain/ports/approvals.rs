//! Send approvals (docs/storage-schema.md `approvals_v1`): every status change is a
//! compare-and-swap, so a claim cannot happen twice.

use crate::domain::{
    grant::GrantId,
    mail::ids::EmailId,
    sending::approval::{ApprovalError, ApprovalId, ApprovalRecord, Status},
};

/// Where approvals live; every transition is a compare-and-swap on the status.
#[trait_variant::make(Send)]
#[cfg_attr(any(test, feature = "test-support"), mockall::automock)]
pub trait ApprovalStore: Sync + 'static {
    /// Stores a new pending approval, replacing any earlier one of the same grant and draft
    /// (never a claimed one), and sweeps long-lapsed ones.
    ///
    /// # Errors
    /// [`ApprovalError::Unexpected`].
    async fn insert(&self, record: &ApprovalRecord) -> Result<(), ApprovalError>;

    /// One approval.
    ///
    /// # Errors
    /// [`ApprovalError::Unexpected`].
    async fn get(&self, id: &ApprovalId) -> Result<Option<ApprovalRecord>, ApprovalError>;

    /// The approval of `grant` for `draft` that decides it: a claimed one, else the newest.
    ///
    /// # Errors
    /// [`ApprovalError::Unexpected`].
    async fn find(
        &self,
        grant: &GrantId,
        draft: &EmailId,
    ) -> Result<Option<ApprovalRecord>, ApprovalError>;

    /// The approval of `grant` whose send became `submission`.
    ///
    /// # Errors
    /// [`ApprovalError::Unexpected`].
    async fn by_submission(
        &self,
        grant: &GrantId,
        submission: &str,
    ) -> Result<Option<ApprovalRecord>, ApprovalError>;

    /// Moves `id` from `from` to `to` (recording `submission` when given), atomically; the
    /// review copy goes once it leaves `pending`.
    ///
    /// # Errors
    /// [`ApprovalError::Conflict`] when it is not in `from` (or gone); `Unexpected`.
    async fn transition(
        &self,
        id: &ApprovalId,
        from: Status,
        to: Status,
        submission: Option<String>,
    ) -> Result<(), ApprovalError>;

    /// Forgets an approval, unless it is claimed (a send in flight settles it; a stale
    /// read must not lose it).
    ///
    /// # Errors
    /// [`ApprovalError::Unexpected`].
    async fn remove(&self, id: &ApprovalId) -> Result<(), ApprovalError>;
}
