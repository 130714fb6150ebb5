//! The whole redb vault as a [`Snapshot`] (`mailconnect storage copy`): every row of every
//! table, read in one read transaction, the values as stored.

use std::{collections::BTreeMap, path::Path};

use redb::{DatabaseError, ReadOnlyDatabase, ReadTransaction, ReadableDatabase as _};

use super::{
    RedbVault,
    schema::{
        APPROVALS, AUDIT, BACKGROUNDS, CLIENTS, CURSORS, GRANTS, META, NOTIFIERS, REVOKED,
        SCHEMA_VERSION, TOKENS, for_each_row,
    },
};
use crate::outbound::vault_core::{
    VaultStoreError, db_err,
    snapshot::{AuditRow, Snapshot},
};

/// The prefix of our registrations at upstreams in `meta` (the rest of `meta` is the schema's).
const REGISTRATION_PREFIX: &str = "upstream-client\0";

impl RedbVault {
    /// Every row of the vault, in one read transaction. Blocking.
    ///
    /// # Errors
    /// [`VaultStoreError::Database`] when it can't be read.
    pub fn export(&self) -> Result<Snapshot, VaultStoreError> {
        self.read(export_from)
    }

    /// Every row of the vault file at `path`, opened read-only: nothing is ever written to it
    /// (no migration, no repair). Blocking.
    ///
    /// # Errors
    /// [`VaultStoreError::Database`] when the file can't be opened (in use by a running
    /// mailconnect, not closed cleanly, not a vault) or read, or its schema is not this
    /// build's.
    pub fn export_file(path: &Path) -> Result<Snapshot, VaultStoreError> {
        let db = ReadOnlyDatabase::open(path).map_err(|e| {
            VaultStoreError::Database(match e {
                DatabaseError::DatabaseAlreadyOpen => format!(
                    "{} is open in another process (a running mailconnect?): stop it first",
                    path.display()
                ),
                DatabaseError::RepairAborted => format!(
                    "{} was not closed cleanly: start and stop mailconnect on it once (which \
                     repairs it), then copy",
                    path.display()
                ),
                e => format!("{} can't be opened: {e}", path.display()),
            })
        })?;
        let tx = db.begin_read().map_err(db_err)?;
        export_from(&tx)
    }
}

/// Every `&str`-keyed row of `table`, as `value` makes it.
fn by_name<V: redb::Value + 'static, T>(
    tx: &ReadTransaction,
    table: redb::TableDefinition<&str, V>,
    value: impl Fn(V::SelfType<'_>) -> T,
) -> Result<BTreeMap<String, T>, VaultStoreError> {
    let mut out = BTreeMap::new();
    for_each_row(tx, table, |k, v| {
        out.insert(k.to_owned(), value(v));
        Ok::<_, VaultStoreError>(())
    })?;
    Ok(out)
}

fn export_from(tx: &ReadTransaction) -> Result<Snapshot, VaultStoreError> {
    let mut snapshot = Snapshot::default();
    let mut version = None;
    for_each_row(tx, META, |k, v| {
        if k == "schema_version" {
            version = Some(v.to_owned());
        } else if k.starts_with(REGISTRATION_PREFIX) {
            snapshot
                .registrations
                .insert(k.as_bytes().to_vec(), v.to_owned());
        }
        Ok::<_, VaultStoreError>(())
    })?;
    if version.as_deref() != Some(SCHEMA_VERSION) {
        return Err(VaultStoreError::Database(format!(
            "the vault's schema version is {}, not this build's ({SCHEMA_VERSION}): start \
             mailconnect on it once to bring it up to date",
            version.as_deref().unwrap_or("missing")
        )));
    }
    for_each_row(tx, TOKENS, |k, v| {
        snapshot.tokens.insert(*k, v.to_vec());
        Ok::<_, VaultStoreError>(())
    })?;
    for_each_row(tx, AUDIT, |(grant, seq), v| {
        snapshot.audit.push(AuditRow {
            grant: grant.to_owned(),
            seq,
            record: v.to_vec(),
        });
        Ok::<_, VaultStoreError>(())
    })?;
    snapshot.grants = by_name(tx, GRANTS, <[u8]>::to_vec)?;
    snapshot.revoked = by_name(tx, REVOKED, <[u8]>::to_vec)?;
    snapshot.clients = by_name(tx, CLIENTS, <[u8]>::to_vec)?;
    snapshot.approvals = by_name(tx, APPROVALS, <[u8]>::to_vec)?;
    snapshot.notifiers = by_name(tx, NOTIFIERS, <[u8]>::to_vec)?;
    snapshot.cursors = by_name(tx, CURSORS, str::to_owned)?;
    snapshot.backgrounds = by_name(tx, BACKGROUNDS, <[u8]>::to_vec)?;
    Ok(snapshot)
}
