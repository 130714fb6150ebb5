//! [`FlowStore`] on PostgreSQL: `flow_steps`. Taking a step is one `DELETE` whose row count
//! says which of two instances got it.

use super::{PgVault, schema::pg_err};
use crate::{
    domain::ports::{FlowStore, FlowStoreError, Parked, StepKind},
    outbound::vault_core::{
        now,
        records::flow::{MAX_LIVE_STEPS, open, seal, step_key},
    },
};

impl FlowStore for PgVault {
    async fn park(&self, handle: &str, parked: Parked) -> Result<(), FlowStoreError> {
        let kind = parked.step.kind();
        let record = seal(handle, &parked)?;
        let client = self.client().await?;
        let at = now();
        let live: i64 = client
            .query_one(
                "SELECT count(*) FROM flow_steps WHERE kind = $1 AND expires_at > $2",
                &[&kind.name(), &at],
            )
            .await
            .map_err(pg_err)?
            .get(0);
        if u64::try_from(live).unwrap_or(u64::MAX) >= MAX_LIVE_STEPS {
            return Err(FlowStoreError::Busy);
        }
        client
            .execute(
                "INSERT INTO flow_steps (key, kind, expires_at, record) VALUES ($1, $2, $3, $4)",
                &[
                    &step_key(kind, handle).as_slice(),
                    &kind.name(),
                    &parked.expires_at,
                    &record,
                ],
            )
            .await
            .map_err(pg_err)?;
        Ok(())
    }

    async fn peek(&self, kind: StepKind, handle: &str) -> Result<Option<Parked>, FlowStoreError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT record FROM flow_steps WHERE key = $1 AND expires_at > $2",
                &[&step_key(kind, handle).as_slice(), &now()],
            )
            .await
            .map_err(pg_err)?;
        match row {
            Some(row) => Ok(open(kind, handle, row.get::<_, &[u8]>(0))?),
            None => Ok(None),
        }
    }

    async fn remove(&self, kind: StepKind, handle: &str) -> Result<bool, FlowStoreError> {
        let removed = self
            .client()
            .await?
            .execute(
                "DELETE FROM flow_steps WHERE key = $1 AND expires_at > $2",
                &[&step_key(kind, handle).as_slice(), &now()],
            )
            .await
            .map_err(pg_err)?;
        Ok(removed == 1)
    }
}
