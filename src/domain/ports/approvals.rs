//! Send approvals (docs/storage-schema.md `approvals_v1`): every status change is a
//! compare-and-swap, so a claim cannot happen twice.

use crate::domain::{
    grant::GrantId,
    mail::ids::EmailId,
    sending::approval::{ApprovalError, ApprovalId, ApprovalRecord, Status},
};

use super::BoxFuture;

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

/// [`ApprovalStore`] behind `Arc<dyn …>` (sending is optional, so the service holds one
/// or none).
pub trait DynApprovalStore: Send + Sync + 'static {
    /// See [`ApprovalStore::insert`].
    fn insert<'a>(&'a self, record: &'a ApprovalRecord)
    -> BoxFuture<'a, Result<(), ApprovalError>>;
    /// See [`ApprovalStore::get`].
    fn get<'a>(
        &'a self,
        id: &'a ApprovalId,
    ) -> BoxFuture<'a, Result<Option<ApprovalRecord>, ApprovalError>>;
    /// See [`ApprovalStore::find`].
    fn find<'a>(
        &'a self,
        grant: &'a GrantId,
        draft: &'a EmailId,
    ) -> BoxFuture<'a, Result<Option<ApprovalRecord>, ApprovalError>>;
    /// See [`ApprovalStore::by_submission`].
    fn by_submission<'a>(
        &'a self,
        grant: &'a GrantId,
        submission: &'a str,
    ) -> BoxFuture<'a, Result<Option<ApprovalRecord>, ApprovalError>>;
    /// See [`ApprovalStore::transition`].
    fn transition<'a>(
        &'a self,
        id: &'a ApprovalId,
        from: Status,
        to: Status,
        submission: Option<String>,
    ) -> BoxFuture<'a, Result<(), ApprovalError>>;
    /// See [`ApprovalStore::remove`].
    fn remove<'a>(&'a self, id: &'a ApprovalId) -> BoxFuture<'a, Result<(), ApprovalError>>;
}

impl<T: ApprovalStore> DynApprovalStore for T {
    fn insert<'a>(
        &'a self,
        record: &'a ApprovalRecord,
    ) -> BoxFuture<'a, Result<(), ApprovalError>> {
        Box::pin(ApprovalStore::insert(self, record))
    }

    fn get<'a>(
        &'a self,
        id: &'a ApprovalId,
    ) -> BoxFuture<'a, Result<Option<ApprovalRecord>, ApprovalError>> {
        Box::pin(ApprovalStore::get(self, id))
    }

    fn find<'a>(
        &'a self,
        grant: &'a GrantId,
        draft: &'a EmailId,
    ) -> BoxFuture<'a, Result<Option<ApprovalRecord>, ApprovalError>> {
        Box::pin(ApprovalStore::find(self, grant, draft))
    }

    fn by_submission<'a>(
        &'a self,
        grant: &'a GrantId,
        submission: &'a str,
    ) -> BoxFuture<'a, Result<Option<ApprovalRecord>, ApprovalError>> {
        Box::pin(ApprovalStore::by_submission(self, grant, submission))
    }

    fn transition<'a>(
        &'a self,
        id: &'a ApprovalId,
        from: Status,
        to: Status,
        submission: Option<String>,
    ) -> BoxFuture<'a, Result<(), ApprovalError>> {
        Box::pin(ApprovalStore::transition(self, id, from, to, submission))
    }

    fn remove<'a>(&'a self, id: &'a ApprovalId) -> BoxFuture<'a, Result<(), ApprovalError>> {
        Box::pin(ApprovalStore::remove(self, id))
    }
}
