//! [`Leases`] on PostgreSQL: `leases` (name, holder, until). Taking one is an upsert that
//! changes a row only when the lease is free or lapsed, so of two instances one gets it.

use std::time::{Duration, Instant};

use super::{PgVault, schema::pg_err};
use crate::{
    domain::ports::{Leases, VaultError},
    outbound::vault_core::VaultStoreError,
};

/// How long a refresh turn lasts unless ended: past the upstream's timeout and retries, so a
/// turn lapses only when its holder died.
const TURN_SECS: i64 = 60;
/// How long a refresh waits for another instance's turn to end.
const TURN_WAIT: Duration = Duration::from_secs(30);
/// How often a waiting refresh looks again.
const TURN_POLL: Duration = Duration::from_millis(50);

impl PgVault {
    /// Takes `name` for `holder` for `secs` if it is free or lapsed.
    async fn try_take(&self, name: &str, holder: &str, secs: i64) -> Result<bool, VaultStoreError> {
        // Inserted, or taken over from a lapsed holder: one row changed. A live lease changes
        // nothing. Times are the database's, so instances' clocks need not agree.
        let taken = self
            .client()
            .await?
            .execute(
                "INSERT INTO leases (name, holder, until) \
                 VALUES ($1, $2, extract(epoch FROM now())::bigint + $3) \
                 ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, \
                 until = EXCLUDED.until WHERE leases.until < extract(epoch FROM now())::bigint",
                &[&name, &holder, &secs],
            )
            .await
            .map_err(pg_err)?;
        Ok(taken == 1)
    }

    /// Takes the turn `name` for `holder` once it is free or lapsed, waiting up to
    /// [`TURN_WAIT`]; `false` when it stayed taken.
    pub(super) async fn wait_for_turn(
        &self,
        name: &str,
        holder: &str,
    ) -> Result<bool, VaultStoreError> {
        let started = Instant::now();
        loop {
            if self.try_take(name, holder, TURN_SECS).await? {
                return Ok(true);
            }
            if started.elapsed() >= TURN_WAIT {
                return Ok(false);
            }
            tokio::time::sleep(TURN_POLL).await;
        }
    }

    /// Gives `holder`'s lease of `name` up (nothing when it is not theirs).
    pub(super) async fn release(&self, name: &str, holder: &str) -> Result<(), VaultStoreError> {
        self.client()
            .await?
            .execute(
                "DELETE FROM leases WHERE name = $1 AND holder = $2",
                &[&name, &holder],
            )
            .await
            .map_err(pg_err)?;
        Ok(())
    }
}

impl Leases for PgVault {
    async fn take_lease(&self, name: &str, holder: &str, secs: i64) -> Result<bool, VaultError> {
        Ok(self.try_take(name, holder, secs).await?)
    }

    async fn renew_lease(&self, name: &str, holder: &str, secs: i64) -> Result<bool, VaultError> {
        let renewed = self
            .client()
            .await?
            .execute(
                "UPDATE leases SET until = extract(epoch FROM now())::bigint + $3 \
                 WHERE name = $1 AND holder = $2",
                &[&name, &holder, &secs],
            )
            .await
            .map_err(pg_err)?;
        Ok(renewed == 1)
    }

    async fn end_lease(&self, name: &str, holder: &str) -> Result<(), VaultError> {
        Ok(self.release(name, holder).await?)
    }
}
