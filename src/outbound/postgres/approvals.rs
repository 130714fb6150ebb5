//! [`ApprovalStore`] on PostgreSQL. Each status change is a compare-and-swap on a row read
//! `FOR UPDATE` in one transaction, so two claims of one approval — on any two instances —
//! cannot both succeed.

use tokio_postgres::{GenericClient, Transaction};

use super::{
    PgVault,
    schema::{execute, pg_err},
};
use crate::{
    domain::{
        grant::GrantId,
        mail::ids::EmailId,
        ports::ApprovalStore,
        sending::approval::{ApprovalError, ApprovalId, ApprovalRecord, Status},
    },
    outbound::vault_core::{
        VaultStoreError,
        records::approval::{KEEP_AFTER_EXPIRY_SECS, StoredApproval, deciding},
    },
};

/// The approvals `sql` selects (`id, record`), as records.
async fn approvals(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<(String, StoredApproval)>, ApprovalError> {
    let rows = client.query(sql, params).await.map_err(pg_err)?;
    rows.iter()
        .map(|row| Ok((row.get(0), StoredApproval::decode(row.get::<_, &[u8]>(1))?)))
        .collect()
}

/// One approval, locked for this transaction.
async fn locked(
    tx: &Transaction<'_>,
    id: &ApprovalId,
) -> Result<Option<StoredApproval>, ApprovalError> {
    Ok(approvals(
        tx,
        "SELECT id, record FROM approvals WHERE id = $1 FOR UPDATE",
        &[&id.as_str()],
    )
    .await?
    .pop()
    .map(|(_, record)| record))
}

/// Inserts `record`, stored as `value`.
pub(super) async fn put_approval(
    client: &impl GenericClient,
    record: &ApprovalRecord,
    value: &[u8],
) -> Result<(), VaultStoreError> {
    execute(
        client,
        "INSERT INTO approvals (id, grant_id, draft, submission, expires_at, record) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &record.id.as_str(),
            &record.grant.as_str(),
            &record.draft.as_str(),
            &record.submission,
            &record.expires_at,
            &value,
        ],
    )
    .await
}

fn into_records(rows: Vec<(String, StoredApproval)>) -> Result<Vec<ApprovalRecord>, ApprovalError> {
    rows.into_iter()
        .map(|(id, record)| record.into_record(&id))
        .collect()
}

impl ApprovalStore for PgVault {
    async fn insert(&self, record: &ApprovalRecord) -> Result<(), ApprovalError> {
        let now = chrono::Utc::now().timestamp();
        let encoded = StoredApproval::from_record(record).encode()?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_err)?;
        // In the same transaction as the insert: the older asks for this draft go, and what
        // lapsed long ago, but never a claimed one (a send in flight settles it).
        let candidates = approvals(
            &*tx,
            "SELECT id, record FROM approvals \
             WHERE (grant_id = $1 AND draft = $2) OR expires_at < $3 FOR UPDATE",
            &[
                &record.grant.as_str(),
                &record.draft.as_str(),
                &(now - KEEP_AFTER_EXPIRY_SECS + 1),
            ],
        )
        .await?;
        for (id, stored) in candidates {
            if stored.replaced_by(record, now) {
                tx.execute("DELETE FROM approvals WHERE id = $1", &[&id])
                    .await
                    .map_err(pg_err)?;
            }
        }
        put_approval(&*tx, record, &encoded).await?;
        tx.commit().await.map_err(pg_err)?;
        Ok(())
    }

    async fn get(&self, id: &ApprovalId) -> Result<Option<ApprovalRecord>, ApprovalError> {
        let client = self.client().await?;
        Ok(into_records(
            approvals(
                &**client,
                "SELECT id, record FROM approvals WHERE id = $1",
                &[&id.as_str()],
            )
            .await?,
        )?
        .pop())
    }

    async fn find(
        &self,
        grant: &GrantId,
        draft: &EmailId,
    ) -> Result<Option<ApprovalRecord>, ApprovalError> {
        let client = self.client().await?;
        let rows = approvals(
            &**client,
            "SELECT id, record FROM approvals WHERE grant_id = $1 AND draft = $2",
            &[&grant.as_str(), &draft.as_str()],
        )
        .await?;
        Ok(deciding(into_records(rows)?, grant, draft))
    }

    async fn by_submission(
        &self,
        grant: &GrantId,
        submission: &str,
    ) -> Result<Option<ApprovalRecord>, ApprovalError> {
        let client = self.client().await?;
        let rows = approvals(
            &**client,
            "SELECT id, record FROM approvals WHERE grant_id = $1 AND submission = $2",
            &[&grant.as_str(), &submission],
        )
        .await?;
        Ok(into_records(rows)?.pop())
    }

    async fn transition(
        &self,
        id: &ApprovalId,
        from: Status,
        to: Status,
        submission: Option<String>,
    ) -> Result<(), ApprovalError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_err)?;
        let mut record = locked(&tx, id).await?.ok_or(ApprovalError::Conflict)?;
        record.transition(from, to, submission.clone())?;
        tx.execute(
            "UPDATE approvals SET record = $2, submission = COALESCE($3, submission) WHERE id = $1",
            &[&id.as_str(), &record.encode()?, &submission],
        )
        .await
        .map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)?;
        Ok(())
    }

    async fn remove(&self, id: &ApprovalId) -> Result<(), ApprovalError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_err)?;
        // Checked in the removing transaction: a claim made meanwhile keeps its record.
        if !locked(&tx, id).await?.is_some_and(|r| r.is_claimed()) {
            tx.execute("DELETE FROM approvals WHERE id = $1", &[&id.as_str()])
                .await
                .map_err(pg_err)?;
        }
        tx.commit().await.map_err(pg_err)?;
        Ok(())
    }
}
