//! The whole PostgreSQL vault as a [`Snapshot`], and a snapshot of another vault written into
//! it (`mailconnect storage copy`): the record bytes unchanged, the other columns derived from
//! the decoded records as the ports derive them.

use std::collections::BTreeMap;

use tokio_postgres::{GenericClient, types::FromSqlOwned};

use super::{
    PgVault,
    approvals::put_approval,
    background, clients,
    schema::{execute, pg_err},
    tables,
};
use crate::outbound::vault_core::{
    VaultStoreError,
    records::{
        self, GrantRecord, TokenRecord, Tombstone, approval::StoredApproval, audit,
        background::BackgroundRecord,
    },
    snapshot::{AuditRow, Snapshot, TableCounts},
};

/// Every table the vault has, locked together while a snapshot is written.
const TABLES: &str = "grants, tokens, revoked, audit, clients, upstream_registrations, \
                      approvals, notifiers, notifier_cursors, backgrounds";

/// Why a snapshot was not written.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The database holds rows the snapshot does not, or holds them otherwise: it is in use
    /// (or holds another vault). Nothing was written.
    #[error(
        "the PostgreSQL database already holds rows the source does not ({0}): it is in use or \
         holds another vault; copy into an empty database"
    )]
    InUse(TableCounts),
    /// What was written does not read back as the snapshot. Nothing was written.
    #[error("the copy does not read back as the source in: {0}")]
    Mismatch(TableCounts),
    /// The database failed, or a record of the snapshot does not decode.
    #[error(transparent)]
    Store(#[from] VaultStoreError),
}

impl PgVault {
    /// Every row of the vault, read in one repeatable-read transaction.
    ///
    /// # Errors
    /// [`VaultStoreError`] when it can't be read.
    pub async fn export(&self) -> Result<Snapshot, VaultStoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_err)?;
        tx.batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await
            .map_err(pg_err)?;
        let snapshot = export_from(&*tx).await?;
        tx.commit().await.map_err(pg_err)?;
        Ok(snapshot)
    }

    /// Writes `source` into this vault in one transaction, the tables locked against other
    /// writers: only the rows it lacks, so writing the same snapshot again writes nothing.
    /// Before committing, reads every table back and compares it with `source`. Returns how
    /// many rows of each table were written.
    ///
    /// # Errors
    /// [`ImportError::InUse`] when the database holds a row `source` does not (or holds it
    /// otherwise), [`ImportError::Mismatch`] when the tables do not read back as `source`,
    /// [`ImportError::Store`] on a database failure or a record that does not decode; nothing
    /// is written then.
    pub async fn import(&self, source: &Snapshot) -> Result<TableCounts, ImportError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_err)?;
        tx.batch_execute(&format!("LOCK TABLE {TABLES} IN SHARE ROW EXCLUSIVE MODE"))
            .await
            .map_err(pg_err)?;
        let target = export_from(&*tx).await?;
        let surplus = target.without(source);
        if !surplus.is_empty() {
            return Err(ImportError::InUse(surplus.counts()));
        }
        let missing = source.without(&target);
        write(&*tx, &missing).await?;
        let written = export_from(&*tx).await?;
        let differing = written.digest().differing(&source.digest());
        if !differing.is_empty() {
            return Err(ImportError::Mismatch(TableCounts(
                differing
                    .into_iter()
                    .map(|t| (t, written.rows(t)))
                    .collect(),
            )));
        }
        tx.commit().await.map_err(pg_err)?;
        Ok(missing.counts())
    }
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> VaultStoreError {
    VaultStoreError::Corrupt(format!("{what}: {e}"))
}

/// Writes every row of `rows`, each table's other columns from its decoded records.
async fn write(client: &impl GenericClient, rows: &Snapshot) -> Result<(), VaultStoreError> {
    for (id, value) in &rows.grants {
        let record: GrantRecord = records::decode(value)?;
        if record.id != *id {
            return Err(corrupt(
                "grant",
                format!("{id} holds the record of another"),
            ));
        }
        tables::put_grant(client, &record, value).await?;
    }
    for (key, value) in &rows.tokens {
        let record: TokenRecord = records::decode(value)?;
        tables::put_token(client, key, &record, value).await?;
    }
    for (id, value) in &rows.revoked {
        let tombstone: Tombstone = records::decode(value)?;
        tables::put_tombstone(client, id, &tombstone, value).await?;
    }
    for row in &rows.audit {
        let event = audit::decode_event(&row.grant, &row.record)?;
        let seq = i64::try_from(row.seq).map_err(|e| corrupt("audit sequence", e))?;
        tables::put_event(client, &event, seq, &row.record).await?;
    }
    for (id, value) in &rows.clients {
        clients::put_client(client, id, value).await?;
    }
    for (key, client_id) in &rows.registrations {
        clients::put_registration(client, key, client_id).await?;
    }
    for (id, value) in &rows.approvals {
        let record = StoredApproval::decode(value)
            .and_then(|a| a.into_record(id))
            .map_err(|e| corrupt("approval", e))?;
        put_approval(client, &record, value).await?;
    }
    for (account, value) in &rows.notifiers {
        background::put_notifier(client, account, value).await?;
    }
    for (account, cursor) in &rows.cursors {
        execute(
            client,
            "INSERT INTO notifier_cursors (account, cursor) VALUES ($1, $2)",
            &[account, cursor],
        )
        .await?;
    }
    for (grant, value) in &rows.backgrounds {
        let record: BackgroundRecord = records::decode(value)?;
        background::put_destination_row(client, grant, record.account(), value).await?;
    }
    Ok(())
}

/// The two columns `sql` selects, by the first.
async fn pairs<K: FromSqlOwned + Ord, V: FromSqlOwned>(
    client: &impl GenericClient,
    sql: &str,
) -> Result<BTreeMap<K, V>, VaultStoreError> {
    client
        .query(sql, &[])
        .await
        .map_err(pg_err)?
        .iter()
        .map(|row| {
            Ok((
                row.try_get(0).map_err(pg_err)?,
                row.try_get(1).map_err(pg_err)?,
            ))
        })
        .collect()
}

/// Every row, read through `client` (in a transaction: as of its snapshot).
async fn export_from(client: &impl GenericClient) -> Result<Snapshot, VaultStoreError> {
    let tokens: BTreeMap<Vec<u8>, Vec<u8>> =
        pairs(client, "SELECT digest, record FROM tokens").await?;
    let mut audit = Vec::new();
    for row in client
        .query("SELECT grant_id, seq, record FROM audit", &[])
        .await
        .map_err(pg_err)?
    {
        let seq: i64 = row.try_get(1).map_err(pg_err)?;
        audit.push(AuditRow {
            grant: row.try_get(0).map_err(pg_err)?,
            seq: u64::try_from(seq).map_err(|e| corrupt("audit sequence", e))?,
            record: row.try_get(2).map_err(pg_err)?,
        });
    }
    audit.sort();
    Ok(Snapshot {
        grants: pairs(client, "SELECT id, record FROM grants").await?,
        tokens: tokens
            .into_iter()
            .map(|(k, v)| {
                <[u8; 32]>::try_from(k.as_slice())
                    .map(|k| (k, v))
                    .map_err(|e| corrupt("token digest", e))
            })
            .collect::<Result<_, _>>()?,
        revoked: pairs(client, "SELECT grant_id, record FROM revoked").await?,
        audit,
        clients: pairs(client, "SELECT id, record FROM clients").await?,
        registrations: pairs(client, "SELECT key, client_id FROM upstream_registrations").await?,
        approvals: pairs(client, "SELECT id, record FROM approvals").await?,
        notifiers: pairs(client, "SELECT account, record FROM notifiers").await?,
        cursors: pairs(client, "SELECT account, cursor FROM notifier_cursors").await?,
        backgrounds: pairs(client, "SELECT grant_id, record FROM backgrounds").await?,
    })
}
