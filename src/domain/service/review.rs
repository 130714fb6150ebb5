//! The review page's use cases: showing a pending send to the person whose mailbox it is, and
//! recording their decision — in the audit log too, so no page can decide without a trace.

use std::sync::Arc;

use crate::domain::{
    ports::{AuditEvent, AuditKind, DynApprovalStore, DynAuditLog},
    sending::approval::{self, ApprovalId, ApprovalRecord, DecisionError, Status},
};

/// Approvals as the person reviews them.
pub struct ReviewDesk {
    approvals: Arc<dyn DynApprovalStore>,
    audit: Arc<dyn DynAuditLog>,
}

impl std::fmt::Debug for ReviewDesk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReviewDesk").finish_non_exhaustive()
    }
}

impl ReviewDesk {
    /// Over the approvals store and the audit log.
    #[must_use]
    pub fn new(approvals: Arc<dyn DynApprovalStore>, audit: Arc<dyn DynAuditLog>) -> Self {
        Self { approvals, audit }
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
        let record = approval::for_account(self.approvals.as_ref(), id, account).await?;
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
        let record = approval::decide(self.approvals.as_ref(), id, account, approve, now).await?;
        self.audit
            .record(AuditEvent {
                grant: record.grant.clone(),
                at: now,
                kind: AuditKind::SendDecision {
                    decision: if approve { "approved" } else { "declined" }.into(),
                    via: "review_page".into(),
                },
            })
            .await;
        Ok(record)
    }
}
