//! The redb tables (docs/storage-schema.md), their versions and migrations, and the one
//! durable write transaction every change goes through.

use std::{
    future::{Future, ready},
    path::Path,
};

use redb::{
    Database, MultimapTableDefinition, ReadableDatabase as _, ReadableTable as _, TableDefinition,
    WriteTransaction,
};

use super::RedbVault;
use crate::{
    domain::ports::AuditEvent,
    outbound::vault_core::{
        VaultStoreError, db_err,
        records::{self, GrantRecord, TokenRecord, Tombstone, audit},
        steps::{self, GrantTables},
    },
};

/// Storage schema version (docs/storage-schema.md).
pub const SCHEMA_VERSION: &str = "2";
pub(super) const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
pub(super) const GRANTS: TableDefinition<&str, &[u8]> = TableDefinition::new("grants_v1");
pub(super) const TOKENS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("tokens_v1");
pub(super) const GRANT_TOKENS: MultimapTableDefinition<&str, &[u8; 32]> =
    MultimapTableDefinition::new("grant_tokens_v1");
pub(super) const CLIENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("clients_v1");
pub(super) const REVOKED: TableDefinition<&str, &[u8]> = TableDefinition::new("revoked_v1");
pub(super) const AUDIT: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("audit_v1");
pub(super) const APPROVALS: TableDefinition<&str, &[u8]> = TableDefinition::new("approvals_v1");
pub(super) const NOTIFIERS: TableDefinition<&str, &[u8]> = TableDefinition::new("notifier_v1");
pub(super) const BACKGROUNDS: TableDefinition<&str, &[u8]> = TableDefinition::new("background_v1");
/// Where the notifier's last look at an account left off: apart from the sealed tokens, so
/// saving it can never write back a token a refresh just replaced.
pub(super) const CURSORS: TableDefinition<&str, &str> = TableDefinition::new("notifier_cursor_v1");

pub(super) type AuditTable<'t> = redb::Table<'t, (&'static str, u64), &'static [u8]>;

impl RedbVault {
    /// Opens (or creates) the vault database at `path`.
    ///
    /// # Errors
    /// [`VaultStoreError::Database`] when the file can't be opened or is from a newer schema.
    pub fn open(path: &Path) -> Result<Self, VaultStoreError> {
        Self::init(Database::create(path).map_err(db_err)?)
    }

    /// A vault that lives in memory only (printing the OpenAPI document; tests).
    ///
    /// # Errors
    /// [`VaultStoreError::Database`] when redb can't set it up.
    pub fn in_memory() -> Result<Self, VaultStoreError> {
        Self::init(
            Database::builder()
                .create_with_backend(redb::backends::InMemoryBackend::new())
                .map_err(db_err)?,
        )
    }

    fn init(db: Database) -> Result<Self, VaultStoreError> {
        let tx = db.begin_write().map_err(db_err)?;
        {
            let mut meta = tx.open_table(META).map_err(db_err)?;
            let existing = meta
                .get("schema_version")
                .map_err(db_err)?
                .map(|v| v.value().to_owned());
            match existing.as_deref() {
                // Version 1 had no clients, index or OAuth grants; its only grant (self-host) is
                // re-created at every start, so upgrading is dropping it.
                None | Some("1") => {
                    meta.insert("schema_version", SCHEMA_VERSION)
                        .map_err(db_err)?;
                    let _ = tx.delete_table(GRANTS);
                    let _ = tx.delete_table(TOKENS);
                }
                Some(SCHEMA_VERSION) => {}
                Some(other) => {
                    return Err(VaultStoreError::Database(format!(
                        "schema version {other} is not supported by this build (expects {SCHEMA_VERSION})"
                    )));
                }
            }
            tx.open_table(GRANTS).map_err(db_err)?;
            tx.open_table(TOKENS).map_err(db_err)?;
            tx.open_multimap_table(GRANT_TOKENS).map_err(db_err)?;
            tx.open_table(CLIENTS).map_err(db_err)?;
            tx.open_table(AUDIT).map_err(db_err)?;
            tx.open_table(REVOKED).map_err(db_err)?;
        }
        tx.commit().map_err(db_err)?;
        Ok(Self {
            db: std::sync::Arc::new(db),
            cache: std::sync::Arc::default(),
        })
    }

    /// Runs `f` in one durable write transaction over the grant tables; commits only if it
    /// succeeds.
    pub(super) fn write<T>(
        &self,
        f: impl FnOnce(&mut Writer<'_>) -> Result<T, VaultStoreError>,
    ) -> Result<T, VaultStoreError> {
        self.write_tx(|tx| f(&mut Writer::new(tx)?))
    }

    /// Runs `f` in one durable write transaction; commits only if it succeeds.
    pub(super) fn write_tx<T, E: From<VaultStoreError>>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<T, E>,
    ) -> Result<T, E> {
        let tx = self.db.begin_write().map_err(db_err)?;
        let out = f(&tx)?;
        tx.commit().map_err(db_err)?;
        Ok(out)
    }

    /// Runs `f` in a read transaction.
    pub(super) fn read<T, E: From<VaultStoreError>>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T, E>,
    ) -> Result<T, E> {
        f(&self.db.begin_read().map_err(db_err)?)
    }

    /// A grant's record.
    pub(super) fn grant_record(&self, id: &str) -> Result<Option<GrantRecord>, VaultStoreError> {
        self.read(|tx| {
            tx.open_table(GRANTS)
                .map_err(db_err)?
                .get(id)
                .map_err(db_err)?
                .map(|v| records::decode(v.value()))
                .transpose()
        })
    }
}

/// What `each` makes of every row of a table that is created on its first write (none
/// before); rows it makes nothing of are left out.
pub(super) fn rows_of<V: redb::Value + 'static, T, E: From<VaultStoreError>>(
    tx: &redb::ReadTransaction,
    table: TableDefinition<&str, V>,
    mut each: impl FnMut(&str, V::SelfType<'_>) -> Result<Option<T>, E>,
) -> Result<Vec<T>, E> {
    let mut out = Vec::new();
    for_each_row(tx, table, |k, v| {
        out.extend(each(k, v)?);
        Ok::<_, E>(())
    })?;
    Ok(out)
}

/// Calls `each` with every row of a table, in key order (none before its first write).
pub(super) fn for_each_row<K: redb::Key + 'static, V: redb::Value + 'static, E>(
    tx: &redb::ReadTransaction,
    table: TableDefinition<K, V>,
    mut each: impl FnMut(K::SelfType<'_>, V::SelfType<'_>) -> Result<(), E>,
) -> Result<(), E>
where
    E: From<VaultStoreError>,
{
    let table = match tx.open_table(table) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(e) => return Err(db_err(e).into()),
    };
    for row in table.iter().map_err(db_err)? {
        let (k, v) = row.map_err(db_err)?;
        each(k.value(), v.value())?;
    }
    Ok(())
}

/// One value of a table that is created on its first write (none before).
pub(super) fn get_from<V: redb::Value + 'static, T>(
    tx: &redb::ReadTransaction,
    table: TableDefinition<&str, V>,
    key: &str,
    f: impl FnOnce(V::SelfType<'_>) -> T,
) -> Result<Option<T>, VaultStoreError> {
    match tx.open_table(table) {
        Ok(t) => Ok(t.get(key).map_err(db_err)?.map(|v| f(v.value()))),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(db_err(e)),
    }
}

type Tokens<'t> = redb::Table<'t, &'static [u8; 32], &'static [u8]>;
type Grants<'t> = redb::Table<'t, &'static str, &'static [u8]>;

/// One write transaction's open grant tables.
pub(super) struct Writer<'t> {
    pub(super) tokens: Tokens<'t>,
    pub(super) grants: Grants<'t>,
    pub(super) index: redb::MultimapTable<'t, &'static str, &'static [u8; 32]>,
    pub(super) audit: AuditTable<'t>,
    pub(super) revoked: Grants<'t>,
    backgrounds: Grants<'t>,
}

impl<'t> Writer<'t> {
    fn new(tx: &'t WriteTransaction) -> Result<Self, VaultStoreError> {
        Ok(Self {
            tokens: tx.open_table(TOKENS).map_err(db_err)?,
            grants: tx.open_table(GRANTS).map_err(db_err)?,
            index: tx.open_multimap_table(GRANT_TOKENS).map_err(db_err)?,
            audit: tx.open_table(AUDIT).map_err(db_err)?,
            revoked: tx.open_table(REVOKED).map_err(db_err)?,
            backgrounds: tx.open_table(BACKGROUNDS).map_err(db_err)?,
        })
    }

    pub(super) fn token(&self, key: &[u8; 32]) -> Result<Option<TokenRecord>, VaultStoreError> {
        self.tokens
            .get(key)
            .map_err(db_err)?
            .map(|v| records::decode(v.value()))
            .transpose()
    }

    pub(super) fn grant(&self, id: &str) -> Result<Option<GrantRecord>, VaultStoreError> {
        self.grants
            .get(id)
            .map_err(db_err)?
            .map(|v| records::decode(v.value()))
            .transpose()
    }

    pub(super) fn put_token(
        &mut self,
        key: &[u8; 32],
        record: &TokenRecord,
    ) -> Result<(), VaultStoreError> {
        self.tokens
            .insert(key, records::encode(record)?.as_slice())
            .map_err(db_err)?;
        self.index
            .insert(record.grant_id.as_str(), key)
            .map_err(db_err)?;
        Ok(())
    }

    /// Deletes one token (not its grant).
    pub(super) fn remove_token(
        &mut self,
        key: &[u8; 32],
        grant: &str,
    ) -> Result<(), VaultStoreError> {
        self.tokens.remove(key).map_err(db_err)?;
        self.index.remove(grant, key).map_err(db_err)?;
        Ok(())
    }

    pub(super) fn put_grant(&mut self, record: &GrantRecord) -> Result<(), VaultStoreError> {
        self.grants
            .insert(record.id.as_str(), records::encode(record)?.as_slice())
            .map_err(db_err)?;
        Ok(())
    }

    /// Deletes a grant, its tokens and their wrapped keys, and where its background
    /// notifications went (however it ended), leaving a tombstone for a connection the person
    /// made ([`steps::remove_grant`]).
    pub(super) fn remove_grant(&mut self, id: &str) -> Result<(), VaultStoreError> {
        now_or_never(steps::remove_grant(self, id))
    }

    fn take_grant(&mut self, id: &str) -> Result<Option<GrantRecord>, VaultStoreError> {
        self.backgrounds.remove(id).map_err(db_err)?;
        let keys: Vec<[u8; 32]> = self
            .index
            .remove_all(id)
            .map_err(db_err)?
            .filter_map(Result::ok)
            .map(|k| *k.value())
            .collect();
        for key in &keys {
            self.tokens.remove(key).map_err(db_err)?;
        }
        self.grants
            .remove(id)
            .map_err(db_err)?
            .map(|v| records::decode::<GrantRecord>(v.value()))
            .transpose()
    }
}

/// The grant steps run on redb: each call is done when it returns, so the futures the steps
/// await are always ready.
impl GrantTables for Writer<'_> {
    fn token(
        &mut self,
        key: &[u8; 32],
    ) -> impl Future<Output = Result<Option<TokenRecord>, VaultStoreError>> + Send {
        ready(Writer::token(self, key))
    }

    fn grant(
        &mut self,
        id: &str,
    ) -> impl Future<Output = Result<Option<GrantRecord>, VaultStoreError>> + Send {
        ready(Writer::grant(self, id))
    }

    fn put_token(
        &mut self,
        key: &[u8; 32],
        record: &TokenRecord,
    ) -> impl Future<Output = Result<(), VaultStoreError>> + Send {
        ready(Writer::put_token(self, key, record))
    }

    fn remove_token(
        &mut self,
        key: &[u8; 32],
        grant: &str,
    ) -> impl Future<Output = Result<(), VaultStoreError>> + Send {
        ready(Writer::remove_token(self, key, grant))
    }

    fn put_grant(
        &mut self,
        record: &GrantRecord,
    ) -> impl Future<Output = Result<(), VaultStoreError>> + Send {
        ready(Writer::put_grant(self, record))
    }

    fn take_grant(
        &mut self,
        id: &str,
    ) -> impl Future<Output = Result<Option<GrantRecord>, VaultStoreError>> + Send {
        ready(Writer::take_grant(self, id))
    }

    fn put_tombstone(
        &mut self,
        id: &str,
        tombstone: &Tombstone,
    ) -> impl Future<Output = Result<(), VaultStoreError>> + Send {
        ready(records::encode(tombstone).and_then(|value| {
            self.revoked
                .insert(id, value.as_slice())
                .map(drop)
                .map_err(db_err)
        }))
    }

    fn append_event(
        &mut self,
        event: &AuditEvent,
    ) -> impl Future<Output = Result<(), VaultStoreError>> + Send {
        ready(audit::encode_event(event).and_then(|value| {
            self.audit
                .insert((event.grant.as_str(), audit::next_key()), value.as_slice())
                .map(drop)
                .map_err(db_err)
        }))
    }

    fn remove_events(
        &mut self,
        grant: &str,
    ) -> impl Future<Output = Result<(), VaultStoreError>> + Send {
        ready(remove_events(&mut self.audit, grant))
    }
}

/// The output of a grant step run on redb, whose futures are always ready.
pub(super) fn now_or_never<T>(
    step: impl Future<Output = Result<T, VaultStoreError>>,
) -> Result<T, VaultStoreError> {
    let mut step = std::pin::pin!(step);
    match step
        .as_mut()
        .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    {
        std::task::Poll::Ready(out) => out,
        std::task::Poll::Pending => Err(VaultStoreError::Database(
            "a grant step waited on redb, which never waits".into(),
        )),
    }
}

/// Deletes a grant's events (with the grant).
pub(super) fn remove_events(
    table: &mut AuditTable<'_>,
    grant: &str,
) -> Result<(), VaultStoreError> {
    let keys: Vec<u64> = table
        .range((grant, 0)..=(grant, u64::MAX))
        .map_err(db_err)?
        .filter_map(Result::ok)
        .map(|(k, _)| k.value().1)
        .collect();
    for k in keys {
        table.remove((grant, k)).map_err(db_err)?;
    }
    Ok(())
}
