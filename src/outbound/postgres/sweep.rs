//! [`Sweeper`] on PostgreSQL: expired tokens, grants no live token can open any more,
//! registered clients never used, audit events and ended connections past their retention
//! (docs/storage-schema.md "Writes"). Any instance may sweep; each part is safe to run twice
//! at once (a grant is removed through the same locked step as a revocation).

use std::collections::HashSet;

use super::{PgVault, schema::pg_err, tables::in_transaction};
use crate::{
    domain::ports::{Retention, SweepRules, Sweeper, VaultError},
    outbound::vault_core::{
        VaultStoreError, now,
        records::{self, client::ClientRecord},
        steps,
    },
};

fn count(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

impl PgVault {
    /// Deletes expired tokens, then grants left without any token.
    async fn sweep_tokens(&self, at: i64) -> Result<usize, VaultStoreError> {
        let client = self.client().await?;
        let tokens = client
            .execute("DELETE FROM tokens WHERE expires_at <= $1", &[&at])
            .await
            .map_err(pg_err)?
            + client
                .execute("DELETE FROM flow_steps WHERE expires_at <= $1", &[&at])
                .await
                .map_err(pg_err)?
            + client
                .execute("DELETE FROM leases WHERE until < $1", &[&at])
                .await
                .map_err(pg_err)?;
        let orphans: Vec<String> = client
            .query(
                "SELECT id FROM grants g WHERE NOT EXISTS \
                 (SELECT 1 FROM tokens t WHERE t.grant_id = g.id)",
                &[],
            )
            .await
            .map_err(pg_err)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        drop(client);
        for id in &orphans {
            in_transaction!(self, |t| steps::remove_grant(t, id))?;
        }
        Ok(count(tokens) + orphans.len())
    }

    /// Removes registered (not configured) clients created before `before` that hold no grant.
    async fn sweep_clients(&self, before: i64) -> Result<usize, VaultStoreError> {
        let client = self.client().await?;
        let in_use: HashSet<String> = client
            .query(
                "SELECT DISTINCT client_id FROM grants WHERE client_id IS NOT NULL",
                &[],
            )
            .await
            .map_err(pg_err)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut removed = 0;
        for row in client
            .query("SELECT id, record FROM clients", &[])
            .await
            .map_err(pg_err)?
        {
            let Ok(record) = records::decode::<ClientRecord>(row.get::<_, &[u8]>(1)) else {
                continue;
            };
            if record.unused(before, &in_use) {
                // Not if a grant for it appeared since the list above.
                removed += client
                    .execute(
                        "DELETE FROM clients c WHERE c.id = $1 AND NOT EXISTS \
                         (SELECT 1 FROM grants g WHERE g.client_id = c.id)",
                        &[&row.get::<_, &str>(0)],
                    )
                    .await
                    .map_err(pg_err)?;
            }
        }
        Ok(count(removed))
    }

    /// Removes events past the retention period or beyond the per-grant cap, and tombstones
    /// (with their events) of connections that ended before the retention period.
    async fn sweep_events(&self, at: i64, retention: Retention) -> Result<usize, VaultStoreError> {
        let cutoff = at
            .saturating_sub(retention.max_age_secs)
            .saturating_mul(1_000_000);
        let cap = i64::try_from(retention.max_events).unwrap_or(i64::MAX);
        let client = self.client().await?;
        let old = client
            .execute("DELETE FROM audit WHERE seq < $1", &[&cutoff])
            .await
            .map_err(pg_err)?;
        let over = client
            .execute(
                "DELETE FROM audit WHERE id IN (SELECT id FROM (SELECT id, row_number() OVER \
                 (PARTITION BY grant_id ORDER BY seq DESC, id DESC) AS n FROM audit) ranked \
                 WHERE n > $1)",
                &[&cap],
            )
            .await
            .map_err(pg_err)?;
        let tombstones = client
            .execute(
                "WITH gone AS (DELETE FROM revoked WHERE revoked_at < $1 RETURNING grant_id) \
                 DELETE FROM audit WHERE grant_id IN (SELECT grant_id FROM gone)",
                &[&at.saturating_sub(retention.max_age_secs)],
            )
            .await
            .map_err(pg_err)?;
        Ok(count(old + over + tombstones))
    }
}

impl Sweeper for PgVault {
    async fn sweep(&self, rules: SweepRules) -> Result<usize, VaultError> {
        let at = now();
        let removed = self.sweep_tokens(at).await?
            + self
                .sweep_clients(at.saturating_sub(rules.unused_client_secs))
                .await?
            + self.sweep_events(at, rules.retention).await?;
        Ok(removed)
    }
}
