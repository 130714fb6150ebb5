//! [`ApprovalStore`] on redb: `approvals_v1` (approval id → JSON record). Each status change
//! is a compare-and-swap inside one write transaction: redb serialises writers, so two claims
//! of one approval cannot both succeed.

use redb::ReadableTable as _;

use super::{
    RedbVault,
    schema::{APPROVALS, get_from, rows_of},
};
use crate::{
    domain::{
        grant::GrantId,
        mail::ids::EmailId,
        ports::ApprovalStore,
        sending::approval::{ApprovalError, ApprovalId, ApprovalRecord, Status},
    },
    outbound::vault_core::{
        db_err,
        records::approval::{StoredApproval, deciding},
    },
};

impl RedbVault {
    fn approvals_all(&self) -> Result<Vec<ApprovalRecord>, ApprovalError> {
        self.read(|tx| {
            rows_of(tx, APPROVALS, |id, raw| {
                StoredApproval::decode(raw)?.into_record(id).map(Some)
            })
        })
    }

    /// Reads one row in a write transaction, changes it with `f`, writes it back.
    fn update_approval<T>(
        &self,
        id: &ApprovalId,
        f: impl FnOnce(Option<StoredApproval>) -> Result<(Option<StoredApproval>, T), ApprovalError>,
    ) -> Result<T, ApprovalError> {
        self.write_tx(|tx| {
            let mut table = tx.open_table(APPROVALS).map_err(db_err)?;
            let current = table
                .get(id.as_str())
                .map_err(db_err)?
                .map(|v| StoredApproval::decode(v.value()))
                .transpose()?;
            let (write, out) = f(current)?;
            if let Some(record) = write {
                table
                    .insert(id.as_str(), record.encode()?.as_slice())
                    .map_err(db_err)?;
            }
            Ok(out)
        })
    }
}

impl ApprovalStore for RedbVault {
    async fn insert(&self, record: &ApprovalRecord) -> Result<(), ApprovalError> {
        let record = record.clone();
        self.run(move |v| {
            let now = chrono::Utc::now().timestamp();
            let encoded = StoredApproval::from_record(&record).encode()?;
            v.write_tx(|tx| {
                let mut table = tx.open_table(APPROVALS).map_err(db_err)?;
                // In the same transaction as the insert: the older asks for this draft go, and
                // what lapsed long ago, but never a claimed one (a send in flight settles it).
                let mut stale = Vec::new();
                for row in table.iter().map_err(db_err)? {
                    let (k, v) = row.map_err(db_err)?;
                    if StoredApproval::decode(v.value())?.replaced_by(&record, now) {
                        stale.push(k.value().to_owned());
                    }
                }
                for id in &stale {
                    table.remove(id.as_str()).map_err(db_err)?;
                }
                table
                    .insert(record.id.as_str(), encoded.as_slice())
                    .map_err(db_err)?;
                Ok(())
            })
        })
        .await
    }

    async fn get(&self, id: &ApprovalId) -> Result<Option<ApprovalRecord>, ApprovalError> {
        let id = id.clone();
        self.run(move |v| {
            v.read(|tx| {
                get_from(tx, APPROVALS, id.as_str(), |raw| {
                    StoredApproval::decode(raw).and_then(|r| r.into_record(id.as_str()))
                })?
                .transpose()
            })
        })
        .await
    }

    async fn find(
        &self,
        grant: &GrantId,
        draft: &EmailId,
    ) -> Result<Option<ApprovalRecord>, ApprovalError> {
        let (grant, draft) = (grant.clone(), draft.clone());
        self.run(move |v| Ok(deciding(v.approvals_all()?, &grant, &draft)))
            .await
    }

    async fn by_submission(
        &self,
        grant: &GrantId,
        submission: &str,
    ) -> Result<Option<ApprovalRecord>, ApprovalError> {
        let (grant, submission) = (grant.clone(), submission.to_owned());
        self.run(move |v| {
            Ok(v.approvals_all()?
                .into_iter()
                .find(|r| r.grant == grant && r.submission.as_deref() == Some(&*submission)))
        })
        .await
    }

    async fn transition(
        &self,
        id: &ApprovalId,
        from: Status,
        to: Status,
        submission: Option<String>,
    ) -> Result<(), ApprovalError> {
        let id = id.clone();
        self.run(move |v| {
            v.update_approval(&id, |current| {
                let mut record = current.ok_or(ApprovalError::Conflict)?;
                record.transition(from, to, submission)?;
                Ok((Some(record), ()))
            })
        })
        .await
    }

    async fn remove(&self, id: &ApprovalId) -> Result<(), ApprovalError> {
        let id = id.clone();
        self.run(move |v| {
            v.write_tx(|tx| {
                let mut table = tx.open_table(APPROVALS).map_err(db_err)?;
                // Checked in the removing transaction: a claim made meanwhile keeps its record.
                let claimed = table
                    .get(id.as_str())
                    .map_err(db_err)?
                    .map(|v| StoredApproval::decode(v.value()))
                    .transpose()?
                    .is_some_and(|r| r.is_claimed());
                if !claimed {
                    table.remove(id.as_str()).map_err(db_err)?;
                }
                Ok(())
            })
        })
        .await
    }
}
