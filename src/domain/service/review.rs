//! The review page's use cases: showing a pending send to the person whose mailbox it is, and
//! recording their decision — in the audit log too, so no page can decide without a trace.

use crate::domain::{
    ports::{ApprovalStore, AuditEvent, AuditKind, AuditLog},
    sending::approval::{self, ApprovalId, ApprovalRecord, DecisionError, Status},
};

/// Approvals as the person reviews them, over the vault `V` in two roles: it keeps the
/// approvals and the audit log.
pub struct ReviewDesk<V> {
    vault: V,
}

impl<V> std::fmt::Debug for ReviewDesk<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReviewDesk").finish_non_exhaustive()
    }
}

impl<V: ApprovalStore + AuditLog> ReviewDesk<V> {
    /// Over the vault's approvals and audit log.
    #[must_use]
    pub fn new(vault: V) -> Self {
        Self { vault }
    }

    /// The approval `id` if the person of `account` (an account digest) may still decide it:
    /// theirs, pending, in time.
    ///
    /// # Errors
    /// [`DecisionError`].
    pub async fn pending(
        &self,
        id: &ApprovalId,
        account: &str,
        now: i64,
    ) -> Result<ApprovalRecord, DecisionError> {
        let record = approval::for_account(&self.vault, id, account).await?;
        if record.expired(now) {
            return Err(DecisionError::Expired);
        }
        if record.status != Status::Pending {
            return Err(DecisionError::Decided(record.status));
        }
        Ok(record)
    }

    /// Records the person's decision on the review page, and audits it.
    ///
    /// # Errors
    /// [`DecisionError`].
    pub async fn decide(
        &self,
        id: &ApprovalId,
        account: &str,
        approve: bool,
        now: i64,
    ) -> Result<ApprovalRecord, DecisionError> {
        let record = approval::decide(&self.vault, id, account, approve, now).await?;
        AuditLog::record(
            &self.vault,
            AuditEvent {
                grant: record.grant.clone(),
                at: now,
                kind: AuditKind::SendDecision {
                    decision: if approve { "approved" } else { "declined" }.into(),
                    via: "review_page".into(),
                },
            },
        )
        .await;
        Ok(record)
    }
}
