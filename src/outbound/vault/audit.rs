//! [`AuditLog`] on redb: per-grant events in `audit_v1`, keyed by (grant id, microsecond
//! sequence). Written without waiting for an fsync (`Durability::None`): an event becomes
//! durable with the next durable commit, and losing the last seconds of events in a crash is
//! better than an fsync on every tool call.

use redb::{Durability, ReadableTable as _};

use super::{RedbVault, schema::AUDIT};
use crate::{
    domain::{
        grant::GrantId,
        ports::{AuditError, AuditEvent, AuditLog, Retention},
    },
    outbound::vault_core::{VaultStoreError, db_err, records::audit},
};

impl RedbVault {
    fn record_blocking(&self, event: &AuditEvent) -> Result<(), VaultStoreError> {
        let value = audit::encode_event(event)?;
        let mut tx = self.db.begin_write().map_err(db_err)?;
        tx.set_durability(Durability::None).map_err(db_err)?;
        tx.open_table(AUDIT)
            .map_err(db_err)?
            .insert((event.grant.as_str(), audit::next_key()), value.as_slice())
            .map_err(db_err)?;
        tx.commit().map_err(db_err)
    }

    /// The newest `limit` events of `grant`, newest first.
    fn events_blocking(
        &self,
        grant: &str,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, VaultStoreError> {
        self.read(|tx| {
            let table = tx.open_table(AUDIT).map_err(db_err)?;
            let mut out = Vec::new();
            for entry in table
                .range((grant, 0)..=(grant, u64::MAX))
                .map_err(db_err)?
                .rev()
                .take(limit)
            {
                let (_, v) = entry.map_err(db_err)?;
                out.push(audit::decode_event(grant, v.value())?);
            }
            Ok(out)
        })
    }

    /// Sweeps events past the retention period or beyond the per-grant cap.
    pub(super) fn sweep_events(
        &self,
        now: i64,
        retention: Retention,
    ) -> Result<usize, VaultStoreError> {
        // Saturating: a retention of centuries (a configured value) must not overflow.
        let cutoff = u64::try_from(
            now.saturating_sub(retention.max_age_secs)
                .saturating_mul(1_000_000),
        )
        .unwrap_or(0);
        self.write_tx(|tx| {
            let mut table = tx.open_table(AUDIT).map_err(db_err)?;
            let mut per_grant: std::collections::HashMap<String, Vec<u64>> =
                std::collections::HashMap::new();
            for entry in table.iter().map_err(db_err)? {
                let (k, _) = entry.map_err(db_err)?;
                let (grant, seq) = k.value();
                per_grant.entry(grant.to_owned()).or_default().push(seq);
            }
            let mut removed = 0;
            for (grant, mut seqs) in per_grant {
                seqs.sort_unstable();
                let over = seqs.len().saturating_sub(retention.max_events);
                for (i, seq) in seqs.into_iter().enumerate() {
                    if i < over || seq < cutoff {
                        table.remove((grant.as_str(), seq)).map_err(db_err)?;
                        removed += 1;
                    }
                }
            }
            Ok(removed)
        })
    }
}

impl AuditLog for RedbVault {
    async fn record(&self, event: AuditEvent) {
        let grant = event.grant.clone();
        if let Err(e) = self.run(move |v| v.record_blocking(&event)).await {
            tracing::warn!(grant = %grant, error = %e, "audit event lost");
        }
    }

    async fn events(&self, grant: &GrantId, limit: usize) -> Result<Vec<AuditEvent>, AuditError> {
        let id = grant.clone();
        Ok(self
            .run(move |v| v.events_blocking(id.as_str(), limit))
            .await?)
    }
}
