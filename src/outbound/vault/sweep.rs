//! [`Sweeper`] on redb: expired tokens, grants no live token can open any more, registered
//! clients never used, audit events and ended connections past their retention
//! (docs/storage-schema.md "Writes"). Each part is one write transaction.

use std::collections::HashSet;

use redb::{ReadableMultimapTable as _, ReadableTable as _};

use super::{
    RedbVault,
    schema::{CLIENTS, GRANTS, remove_events},
};
use crate::{
    domain::ports::{SweepRules, Sweeper, VaultError},
    outbound::vault_core::{
        VaultStoreError, db_err, now,
        records::{self, GrantRecord, TokenRecord, Tombstone, client::ClientRecord},
    },
};

impl RedbVault {
    /// Deletes expired tokens, then grants left without any token.
    fn sweep_tokens(&self, at: i64) -> Result<usize, VaultStoreError> {
        self.write(|w| {
            let mut removed = 0;
            let expired: Vec<([u8; 32], String)> = w
                .tokens
                .iter()
                .map_err(db_err)?
                .filter_map(Result::ok)
                .filter_map(|(k, v)| {
                    let t: TokenRecord = records::decode(v.value()).ok()?;
                    (!t.live(at)).then(|| (*k.value(), t.grant_id))
                })
                .collect();
            for (key, grant) in &expired {
                w.remove_token(key, grant)?;
                removed += 1;
            }
            let grant_ids: Vec<String> = w
                .grants
                .iter()
                .map_err(db_err)?
                .filter_map(Result::ok)
                .map(|(k, _)| k.value().to_owned())
                .collect();
            for id in grant_ids {
                let has_live_token = w.index.get(id.as_str()).map_err(db_err)?.next().is_some();
                if !has_live_token {
                    w.remove_grant(&id)?;
                    removed += 1;
                }
            }
            Ok(removed)
        })
    }

    /// Removes registered (not configured) clients created before `before` that hold no grant.
    fn sweep_clients(&self, before: i64) -> Result<usize, VaultStoreError> {
        self.write_tx(|tx| {
            let grants = tx.open_table(GRANTS).map_err(db_err)?;
            let in_use: HashSet<String> = grants
                .iter()
                .map_err(db_err)?
                .filter_map(Result::ok)
                .filter_map(|(_, v)| records::decode::<GrantRecord>(v.value()).ok()?.client_id)
                .collect();
            let mut clients = tx.open_table(CLIENTS).map_err(db_err)?;
            let stale: Vec<String> = clients
                .iter()
                .map_err(db_err)?
                .filter_map(Result::ok)
                .filter_map(|(k, v)| {
                    let r: ClientRecord = records::decode(v.value()).ok()?;
                    r.unused(before, &in_use).then(|| k.value().to_owned())
                })
                .collect();
            for id in &stale {
                clients.remove(id.as_str()).map_err(db_err)?;
            }
            Ok(stale.len())
        })
    }

    /// Removes tombstones (and their events) of grants that ended before `before`.
    fn sweep_tombstones(&self, before: i64) -> Result<usize, VaultStoreError> {
        self.write(|w| {
            let old: Vec<String> = w
                .revoked
                .iter()
                .map_err(db_err)?
                .filter_map(Result::ok)
                .filter_map(|(k, v)| {
                    let t: Tombstone = records::decode(v.value()).ok()?;
                    (t.revoked_at < before).then(|| k.value().to_owned())
                })
                .collect();
            for id in &old {
                w.revoked.remove(id.as_str()).map_err(db_err)?;
                remove_events(&mut w.audit, id)?;
            }
            Ok(old.len())
        })
    }

    fn sweep_blocking(&self, rules: SweepRules) -> Result<usize, VaultStoreError> {
        let at = now();
        let removed = self.sweep_tokens(at)? + self.sweep_flow_steps(at)?;
        let clients = self.sweep_clients(at.saturating_sub(rules.unused_client_secs))?;
        let events = self.sweep_events(at, rules.retention)?
            + self.sweep_tombstones(at.saturating_sub(rules.retention.max_age_secs))?;
        self.cache().opened.clear();
        Ok(removed + clients + events)
    }
}

impl Sweeper for RedbVault {
    async fn sweep(&self, rules: SweepRules) -> Result<usize, VaultError> {
        Ok(self.run(move |v| v.sweep_blocking(rules)).await?)
    }
}
