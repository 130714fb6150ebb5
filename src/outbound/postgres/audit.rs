//! [`AuditLog`] on PostgreSQL: one row per event, read newest first.

use super::{PgVault, schema::pg_err, tables};
use crate::{
    domain::{
        grant::GrantId,
        ports::{AuditError, AuditEvent, AuditLog},
    },
    outbound::vault_core::records::audit,
};

impl AuditLog for PgVault {
    async fn record(&self, event: AuditEvent) {
        let written = match self.client().await {
            Ok(client) => tables::append_event(&**client, &event).await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            tracing::warn!(grant = %event.grant, error = %e, "audit event lost");
        }
    }

    async fn events(&self, grant: &GrantId, limit: usize) -> Result<Vec<AuditEvent>, AuditError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT record FROM audit WHERE grant_id = $1 ORDER BY seq DESC, id DESC LIMIT $2",
                &[&grant.as_str(), &i64::try_from(limit).unwrap_or(i64::MAX)],
            )
            .await
            .map_err(pg_err)?;
        Ok(rows
            .iter()
            .map(|row| audit::decode_event(grant.as_str(), row.get::<_, &[u8]>(0)))
            .collect::<Result<_, _>>()?)
    }
}
