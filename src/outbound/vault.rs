//! The redb vault: the storage ports over one embedded database file (README "Vault"; schema
//! in docs/storage-schema.md). What is sealed, wrapped and stored, and how, is
//! [`super::vault_core`]'s; this adapter maps it onto redb tables:
//!
//! - `schema`: tables, versions and migrations, the write transaction;
//! - `tokens`: [`TokenVault`](crate::domain::ports::TokenVault) (open, issue, rotate, revoke);
//! - `grants`: [`Policy`](crate::domain::ports::Policy), listing, configured grants;
//! - `approvals`, `audit`, `background`, `clients`: one port each;
//! - `sweep`: [`Sweeper`](crate::domain::ports::Sweeper);
//! - `export`: every row as a [`Snapshot`](super::vault_core::snapshot::Snapshot), read-only.
//!
//! redb is synchronous: every port call runs its work on the blocking pool through
//! `RedbVault::run`. Opened grants and capabilities are cached in memory (bounded, opened
//! grants for at most [`OPEN_CACHE_TTL`] and never past the token's expiry); every write
//! through this vault purges the grant's entries, and redb has one owning process, so a
//! change takes effect on the next request.

mod approvals;
mod audit;
mod background;
mod clients;
mod export;
mod flows;
mod grants;
mod schema;
mod shared_keys;
mod sweep;
mod tokens;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use redb::Database;

pub use self::{
    background::{BackgroundVault, NotifierVault},
    schema::SCHEMA_VERSION,
};
pub use super::vault_core::{
    VaultStoreError,
    notifier_key::{NotifierKey, NotifierSeal},
    steps::NewGrant,
};
pub use crate::domain::ports::Retention;
use crate::domain::{
    grant::{CapabilitySet, GrantId},
    ports::OpenedGrant,
};

/// The grant id of the single-user self-host client.
pub const SELF_HOST_GRANT: &str = "self-host";

/// How long an opened grant stays in memory.
pub const OPEN_CACHE_TTL: Duration = Duration::from_secs(300);
const CACHE_LIMIT: usize = 10_000;

#[derive(Debug, Default)]
struct Cache {
    /// Token digest → the grant it opened, until when.
    opened: HashMap<[u8; 32], (OpenedGrant, Instant)>,
    policies: HashMap<GrantId, CapabilitySet>,
}

impl Cache {
    fn forget_grant(&mut self, grant: &GrantId) {
        self.opened.retain(|_, (o, _)| &o.grant != grant);
        self.policies.remove(grant);
    }
}

/// The redb-backed storage ports.
#[derive(Debug, Clone)]
pub struct RedbVault {
    db: Arc<Database>,
    cache: Arc<Mutex<Cache>>,
}

impl RedbVault {
    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs blocking storage `work` on tokio's blocking pool (redb is synchronous): the one
    /// way this adapter leaves the async workers.
    pub(crate) async fn run<T, E>(
        &self,
        work: impl FnOnce(&Self) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<VaultStoreError> + Send + 'static,
    {
        let vault = self.clone();
        tokio::task::spawn_blocking(move || work(&vault))
            .await
            .unwrap_or_else(|e| {
                Err(VaultStoreError::Database(format!("vault task failed: {e}")).into())
            })
    }
}

#[cfg(test)]
mod tests;
