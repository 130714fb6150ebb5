//! The grant steps' tables in one PostgreSQL transaction. Every read locks its row
//! (`FOR UPDATE`): a step reads a token, then its grant, and writes both, so two instances
//! rotating one refresh token serialise on the token's row and the second sees the first's
//! result.

use tokio_postgres::{GenericClient, Transaction};

use super::schema::{execute, pg_err};
use crate::{
    domain::ports::AuditEvent,
    outbound::vault_core::{
        VaultStoreError,
        records::{self, GrantRecord, TokenRecord, Tombstone, audit},
        steps::GrantTables,
    },
};

/// The tables of one open transaction.
pub(super) struct PgTables<'a> {
    pub(super) tx: &'a Transaction<'a>,
}

/// How often a transaction the database gave up for another (deadlock, serialization) is run
/// again before the caller hears of it.
pub(super) const RETRIES: usize = 3;

/// Runs `$step` (an expression using `$tables: &mut PgTables`) in one transaction on a pooled
/// connection and commits it; runs it again, from a fresh transaction, when the database gave
/// it up for another. Evaluates to `Result<T, VaultStoreError>`.
macro_rules! in_transaction {
    ($vault:expr, |$tables:ident| $step:expr) => {{
        let mut attempt = 0;
        loop {
            let outcome: Result<_, $crate::outbound::vault_core::VaultStoreError> = async {
                let mut client = $vault.client().await?;
                let tx = client.transaction().await.map_err(super::schema::pg_err)?;
                let out = {
                    let mut tables = super::tables::PgTables { tx: &tx };
                    let $tables = &mut tables;
                    $step.await?
                };
                tx.commit().await.map_err(super::schema::pg_err)?;
                Ok(out)
            }
            .await;
            match outcome {
                Err($crate::outbound::vault_core::VaultStoreError::Retry)
                    if attempt < super::tables::RETRIES =>
                {
                    attempt += 1;
                }
                other => break other,
            }
        }
    }};
}
pub(super) use in_transaction;

impl GrantTables for PgTables<'_> {
    async fn token(&mut self, key: &[u8; 32]) -> Result<Option<TokenRecord>, VaultStoreError> {
        let row = self
            .tx
            .query_opt(
                "SELECT record FROM tokens WHERE digest = $1 FOR UPDATE",
                &[&key.as_slice()],
            )
            .await
            .map_err(pg_err)?;
        row.map(|r| records::decode(r.get::<_, &[u8]>(0)))
            .transpose()
    }

    async fn grant(&mut self, id: &str) -> Result<Option<GrantRecord>, VaultStoreError> {
        let row = self
            .tx
            .query_opt("SELECT record FROM grants WHERE id = $1 FOR UPDATE", &[&id])
            .await
            .map_err(pg_err)?;
        row.map(|r| records::decode(r.get::<_, &[u8]>(0)))
            .transpose()
    }

    async fn put_token(
        &mut self,
        key: &[u8; 32],
        record: &TokenRecord,
    ) -> Result<(), VaultStoreError> {
        put_token(self.tx, key, record, &records::encode(record)?).await
    }

    async fn remove_token(&mut self, key: &[u8; 32], _grant: &str) -> Result<(), VaultStoreError> {
        self.tx
            .execute("DELETE FROM tokens WHERE digest = $1", &[&key.as_slice()])
            .await
            .map(drop)
            .map_err(pg_err)
    }

    async fn put_grant(&mut self, record: &GrantRecord) -> Result<(), VaultStoreError> {
        put_grant(self.tx, record, &records::encode(record)?).await
    }

    async fn take_grant(&mut self, id: &str) -> Result<Option<GrantRecord>, VaultStoreError> {
        for sql in [
            "DELETE FROM backgrounds WHERE grant_id = $1",
            "DELETE FROM tokens WHERE grant_id = $1",
        ] {
            self.tx.execute(sql, &[&id]).await.map_err(pg_err)?;
        }
        let row = self
            .tx
            .query_opt("DELETE FROM grants WHERE id = $1 RETURNING record", &[&id])
            .await
            .map_err(pg_err)?;
        row.map(|r| records::decode(r.get::<_, &[u8]>(0)))
            .transpose()
    }

    async fn put_tombstone(
        &mut self,
        id: &str,
        tombstone: &Tombstone,
    ) -> Result<(), VaultStoreError> {
        put_tombstone(self.tx, id, tombstone, &records::encode(tombstone)?).await
    }

    async fn append_event(&mut self, event: &AuditEvent) -> Result<(), VaultStoreError> {
        append_event(self.tx, event).await
    }

    async fn remove_events(&mut self, grant: &str) -> Result<(), VaultStoreError> {
        self.tx
            .execute("DELETE FROM audit WHERE grant_id = $1", &[&grant])
            .await
            .map(drop)
            .map_err(pg_err)
    }
}

/// Appends one audit event (in a transaction or on its own).
pub(super) async fn append_event(
    client: &impl GenericClient,
    event: &AuditEvent,
) -> Result<(), VaultStoreError> {
    let seq = i64::try_from(audit::next_key()).unwrap_or(i64::MAX);
    put_event(client, event, seq, &audit::encode_event(event)?).await
}

/// Appends `event` stored as `value` under `seq`.
pub(super) async fn put_event(
    client: &impl GenericClient,
    event: &AuditEvent,
    seq: i64,
    value: &[u8],
) -> Result<(), VaultStoreError> {
    execute(
        client,
        "INSERT INTO audit (grant_id, seq, kind, record) VALUES ($1, $2, $3, $4)",
        &[
            &event.grant.as_str(),
            &seq,
            &audit::kind_name(&event.kind),
            &value,
        ],
    )
    .await
}

/// Inserts or replaces the token `key`, `record` stored as `value` (its other columns are
/// `record`'s).
pub(super) async fn put_token(
    client: &impl GenericClient,
    key: &[u8; 32],
    record: &TokenRecord,
    value: &[u8],
) -> Result<(), VaultStoreError> {
    execute(
        client,
        "INSERT INTO tokens (digest, grant_id, expires_at, record) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (digest) DO UPDATE SET grant_id = EXCLUDED.grant_id, \
         expires_at = EXCLUDED.expires_at, record = EXCLUDED.record",
        &[
            &key.as_slice(),
            &record.grant_id,
            &record.expires_at,
            &value,
        ],
    )
    .await
}

/// Inserts or replaces a grant, `record` stored as `value`.
pub(super) async fn put_grant(
    client: &impl GenericClient,
    record: &GrantRecord,
    value: &[u8],
) -> Result<(), VaultStoreError> {
    execute(
        client,
        "INSERT INTO grants (id, account_digest, client_id, record) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (id) DO UPDATE SET account_digest = EXCLUDED.account_digest, \
         client_id = EXCLUDED.client_id, record = EXCLUDED.record",
        &[
            &record.id,
            &record.account_digest,
            &record.client_id,
            &value,
        ],
    )
    .await
}

/// Inserts or replaces the tombstone of grant `id`, stored as `value`.
pub(super) async fn put_tombstone(
    client: &impl GenericClient,
    id: &str,
    tombstone: &Tombstone,
    value: &[u8],
) -> Result<(), VaultStoreError> {
    execute(
        client,
            "INSERT INTO revoked (grant_id, account_digest, revoked_at, record) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (grant_id) DO UPDATE SET account_digest = EXCLUDED.account_digest, \
             revoked_at = EXCLUDED.revoked_at, record = EXCLUDED.record",
            &[&id, &tombstone.account_digest, &tombstone.revoked_at, &value],
        )
    .await
}
