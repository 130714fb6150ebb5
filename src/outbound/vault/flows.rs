//! [`FlowStore`] on redb: `flow_steps_v1` (SHA-256 of kind and handle → kind, expiry, sealed
//! record). Taking a step removes it in one write transaction; redb serialises writers, so of
//! two takers one gets it. Expired steps go when the table is full and at every sweep.

use redb::{ReadableTable as _, ReadableTableMetadata as _, TableDefinition};

use super::RedbVault;
use crate::{
    domain::ports::{FlowStore, FlowStoreError, Parked, StepKind},
    outbound::vault_core::{
        VaultStoreError, db_err, now,
        records::flow::{MAX_LIVE_STEPS, open, seal, step_key},
    },
};

/// Step key → (kind, expires at, sealed record).
pub(super) const FLOW_STEPS: TableDefinition<&[u8; 32], (&str, i64, &[u8])> =
    TableDefinition::new("flow_steps_v1");

impl RedbVault {
    /// Removes steps that expired before `at`; how many.
    pub(super) fn sweep_flow_steps(&self, at: i64) -> Result<usize, VaultStoreError> {
        self.write_tx(|tx| {
            let mut table = tx.open_table(FLOW_STEPS).map_err(db_err)?;
            let before = table.len().map_err(db_err)?;
            table
                .retain(|_, (_, expires_at, _)| expires_at > at)
                .map_err(db_err)?;
            let after = table.len().map_err(db_err)?;
            Ok(usize::try_from(before - after).unwrap_or(usize::MAX))
        })
    }
}

impl FlowStore for RedbVault {
    async fn park(&self, handle: &str, parked: Parked) -> Result<(), FlowStoreError> {
        let kind = parked.step.kind();
        let key = step_key(kind, handle);
        let record = seal(handle, &parked)?;
        self.run(move |v| {
            v.write_tx(|tx| {
                let mut table = tx.open_table(FLOW_STEPS).map_err(db_err)?;
                // Counted only when the table is large: a flood is refused, a trickle is free.
                if table.len().map_err(db_err)? >= MAX_LIVE_STEPS {
                    let at = now();
                    table
                        .retain(|_, (_, expires_at, _)| expires_at > at)
                        .map_err(db_err)?;
                    let mut live = 0;
                    for row in table.iter().map_err(db_err)? {
                        if row.map_err(db_err)?.1.value().0 == kind.name() {
                            live += 1;
                        }
                    }
                    if live >= MAX_LIVE_STEPS {
                        return Err(FlowStoreError::Busy);
                    }
                }
                table
                    .insert(&key, (kind.name(), parked.expires_at, record.as_slice()))
                    .map_err(db_err)?;
                Ok(())
            })
        })
        .await
    }

    async fn peek(&self, kind: StepKind, handle: &str) -> Result<Option<Parked>, FlowStoreError> {
        let key = step_key(kind, handle);
        let handle = handle.to_owned();
        self.run(move |v| {
            v.read(|tx| {
                let table = match tx.open_table(FLOW_STEPS) {
                    Ok(table) => table,
                    // Created on the first write: nothing parked yet.
                    Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                    Err(e) => return Err(FlowStoreError::from(db_err(e))),
                };
                let Some(row) = table.get(&key).map_err(db_err)? else {
                    return Ok(None);
                };
                let (_, expires_at, record) = row.value();
                if expires_at <= now() {
                    return Ok(None);
                }
                Ok(open(kind, &handle, record)?)
            })
        })
        .await
    }

    async fn remove(&self, kind: StepKind, handle: &str) -> Result<bool, FlowStoreError> {
        let key = step_key(kind, handle);
        self.run(move |v| {
            v.write_tx(|tx| {
                let mut table = tx.open_table(FLOW_STEPS).map_err(db_err)?;
                let removed = table.remove(&key).map_err(db_err)?;
                Ok(removed.is_some_and(|row| row.value().1 > now()))
            })
        })
        .await
    }
}
