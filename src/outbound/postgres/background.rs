//! Background delivery on PostgreSQL: `notifiers` (account digest → the notifier's upstream
//! tokens, sealed to the notifier key), `notifier_cursors`, and `backgrounds` (grant →
//! destination, its secrets sealed the same way, and the last delivery).
//!
//! As on redb, the front end gets a [`BackgroundVault`] (the key's public half: seal and
//! list) and only the notifier a [`NotifierVault`] (the key, to open).

use std::sync::Arc;

use tokio_postgres::GenericClient;

use super::{
    PgVault,
    schema::{execute, pg_err},
};
use crate::{
    domain::{
        grant::GrantId,
        notify::{
            background::{Background, LastDelivery},
            delivery::Destination,
        },
        ports::{BackgroundError, BackgroundStore, NotifierKeyring, UpstreamTokens},
    },
    outbound::vault_core::{
        VaultStoreError,
        notifier_key::{NotifierKey, NotifierSeal},
        records::background::{BackgroundRecord, NotifierRecord, decode, encode},
    },
};

/// Whether `account` has a notifier grant; in a transaction, locks it until the end.
async fn has_notifier(client: &impl GenericClient, account: &str) -> Result<bool, BackgroundError> {
    Ok(client
        .query_opt(
            "SELECT 1 FROM notifiers WHERE account = $1 FOR UPDATE",
            &[&account],
        )
        .await
        .map_err(pg_err)?
        .is_some())
}

/// Whether any destination of `account` is left.
async fn delivers_for(client: &impl GenericClient, account: &str) -> Result<bool, BackgroundError> {
    Ok(client
        .query_opt(
            "SELECT 1 FROM backgrounds WHERE account = $1 LIMIT 1",
            &[&account],
        )
        .await
        .map_err(pg_err)?
        .is_some())
}

/// One record of `sql` (`$1`: its key), decoded.
async fn record<T: serde::de::DeserializeOwned>(
    vault: &PgVault,
    sql: &str,
    key: &str,
) -> Result<Option<T>, BackgroundError> {
    let client = vault.client().await?;
    let row = client.query_opt(sql, &[&key]).await.map_err(pg_err)?;
    row.map(|r| decode(r.get::<_, &[u8]>(0))).transpose()
}

/// Inserts or replaces a grant's destination.
async fn put_destination(
    client: &impl GenericClient,
    grant: &GrantId,
    record: &BackgroundRecord,
) -> Result<(), BackgroundError> {
    Ok(put_destination_row(client, grant.as_str(), record.account(), &encode(record)?).await?)
}

/// Inserts or replaces the destination of `grant` (of `account`), stored as `value`.
pub(super) async fn put_destination_row(
    client: &impl GenericClient,
    grant: &str,
    account: &str,
    value: &[u8],
) -> Result<(), VaultStoreError> {
    execute(
        client,
            "INSERT INTO backgrounds (grant_id, account, record) VALUES ($1, $2, $3) \
             ON CONFLICT (grant_id) DO UPDATE SET account = EXCLUDED.account, record = EXCLUDED.record",
            &[&grant, &account, &value],
        )
    .await
}

/// Inserts or replaces the notifier grant of `account`, stored as `value`.
pub(super) async fn put_notifier(
    client: &impl GenericClient,
    account: &str,
    value: &[u8],
) -> Result<(), VaultStoreError> {
    execute(
        client,
        "INSERT INTO notifiers (account, record) VALUES ($1, $2) \
         ON CONFLICT (account) DO UPDATE SET record = EXCLUDED.record",
        &[&account, &value],
    )
    .await
}

impl PgVault {
    /// How many notifier grants the store holds (a missing key file then can't be replaced by
    /// a fresh one: those grants would never open again).
    ///
    /// # Errors
    /// [`BackgroundError`].
    pub async fn notifier_grants(&self) -> Result<usize, BackgroundError> {
        let client = self.client().await?;
        let count: i64 = client
            .query_one("SELECT count(*) FROM notifiers", &[])
            .await
            .map_err(pg_err)?
            .get(0);
        Ok(usize::try_from(count).unwrap_or(usize::MAX))
    }
}

/// The front end's side: seals to the notifier, lists, never opens.
#[derive(Debug, Clone)]
pub struct BackgroundVault {
    vault: PgVault,
    seal: NotifierSeal,
}

impl BackgroundVault {
    /// Seals with `seal` into `vault`.
    #[must_use]
    pub fn new(vault: PgVault, seal: NotifierSeal) -> Self {
        Self { vault, seal }
    }
}

impl BackgroundStore for BackgroundVault {
    async fn seal_notifier(
        &self,
        account: &str,
        tokens: &UpstreamTokens,
    ) -> Result<(), BackgroundError> {
        let value = encode(&NotifierRecord::seal(tokens, &self.seal)?)?;
        Ok(put_notifier(&**self.vault.client().await?, account, &value).await?)
    }

    async fn cursor(&self, account: &str) -> Result<Option<String>, BackgroundError> {
        let client = self.vault.client().await?;
        Ok(client
            .query_opt(
                "SELECT cursor FROM notifier_cursors WHERE account = $1",
                &[&account],
            )
            .await
            .map_err(pg_err)?
            .map(|r| r.get(0)))
    }

    async fn save_cursor(&self, account: &str, cursor: &str) -> Result<(), BackgroundError> {
        // Only for a notifier that still exists: a turned-off one leaves nothing behind.
        let client = self.vault.client().await?;
        client
            .execute(
                "INSERT INTO notifier_cursors (account, cursor) \
                 SELECT account, $2 FROM notifiers WHERE account = $1 \
                 ON CONFLICT (account) DO UPDATE SET cursor = EXCLUDED.cursor",
                &[&account, &cursor],
            )
            .await
            .map_err(pg_err)?;
        Ok(())
    }

    async fn seal_destination(
        &self,
        grant: &GrantId,
        account: &str,
        destination: &Destination,
    ) -> Result<(), BackgroundError> {
        let record = BackgroundRecord::seal(account, destination, &self.seal)?;
        put_destination(&**self.vault.client().await?, grant, &record).await
    }

    async fn seal_destination_if_notifier(
        &self,
        grant: &GrantId,
        account: &str,
        destination: &Destination,
    ) -> Result<bool, BackgroundError> {
        let record = BackgroundRecord::seal(account, destination, &self.seal)?;
        let mut client = self.vault.client().await?;
        let tx = client.transaction().await.map_err(pg_err)?;
        let exists = has_notifier(&*tx, account).await?;
        if exists {
            put_destination(&*tx, grant, &record).await?;
        }
        tx.commit().await.map_err(pg_err)?;
        Ok(exists)
    }

    async fn remove_orphans(&self) -> Result<usize, BackgroundError> {
        let client = self.vault.client().await?;
        let removed = client
            .execute(
                "DELETE FROM backgrounds b WHERE NOT EXISTS \
                 (SELECT 1 FROM grants g WHERE g.id = b.grant_id)",
                &[],
            )
            .await
            .map_err(pg_err)?;
        Ok(usize::try_from(removed).unwrap_or(usize::MAX))
    }

    async fn background(&self, grant: &GrantId) -> Result<Option<Background>, BackgroundError> {
        Ok(record::<BackgroundRecord>(
            &self.vault,
            "SELECT record FROM backgrounds WHERE grant_id = $1",
            grant.as_str(),
        )
        .await?
        .map(|r| r.summary(grant.as_str())))
    }

    async fn backgrounds(&self) -> Result<Vec<Background>, BackgroundError> {
        let client = self.vault.client().await?;
        let rows = client
            .query("SELECT grant_id, record FROM backgrounds", &[])
            .await
            .map_err(pg_err)?;
        // A record that does not decode is skipped, not fatal to the list.
        Ok(rows
            .iter()
            .filter_map(|row| {
                decode::<BackgroundRecord>(row.get::<_, &[u8]>(1))
                    .ok()
                    .map(|r| r.summary(row.get::<_, &str>(0)))
            })
            .collect())
    }

    async fn record_delivery(
        &self,
        grant: &GrantId,
        last: &LastDelivery,
    ) -> Result<(), BackgroundError> {
        let mut client = self.vault.client().await?;
        let tx = client.transaction().await.map_err(pg_err)?;
        let current = tx
            .query_opt(
                "SELECT record FROM backgrounds WHERE grant_id = $1 FOR UPDATE",
                &[&grant.as_str()],
            )
            .await
            .map_err(pg_err)?
            .map(|r| decode::<BackgroundRecord>(r.get::<_, &[u8]>(0)));
        // Turned off meanwhile: nothing comes back.
        if let Some(Ok(mut record)) = current {
            record.set_last(last);
            put_destination(&*tx, grant, &record).await?;
        }
        tx.commit().await.map_err(pg_err)?;
        Ok(())
    }

    async fn remove_destination(&self, grant: &GrantId) -> Result<bool, BackgroundError> {
        let mut client = self.vault.client().await?;
        let tx = client.transaction().await.map_err(pg_err)?;
        let account: Option<String> = tx
            .query_opt(
                "DELETE FROM backgrounds WHERE grant_id = $1 RETURNING account",
                &[&grant.as_str()],
            )
            .await
            .map_err(pg_err)?
            .map(|r| r.get(0));
        let still_needed = match account {
            Some(account) => delivers_for(&*tx, &account).await?,
            None => false,
        };
        tx.commit().await.map_err(pg_err)?;
        Ok(still_needed)
    }
}

/// The notifier's side: opens what was sealed to it.
#[derive(Debug, Clone)]
pub struct NotifierVault {
    vault: PgVault,
    key: Arc<NotifierKey>,
}

impl NotifierVault {
    /// Opens with `key` from `vault`.
    #[must_use]
    pub fn new(vault: PgVault, key: NotifierKey) -> Self {
        Self {
            vault,
            key: Arc::new(key),
        }
    }
}

impl NotifierKeyring for NotifierVault {
    async fn open_notifier(
        &self,
        account: &str,
    ) -> Result<Option<UpstreamTokens>, BackgroundError> {
        let Some(record) = record::<NotifierRecord>(
            &self.vault,
            "SELECT record FROM notifiers WHERE account = $1",
            account,
        )
        .await?
        else {
            return Ok(None);
        };
        record.open(&self.key).map(Some).ok_or_else(|| {
            BackgroundError::Unexpected("the notifier grant does not open with this key".into())
        })
    }

    async fn open_destination(
        &self,
        grant: &GrantId,
    ) -> Result<Option<Destination>, BackgroundError> {
        record::<BackgroundRecord>(
            &self.vault,
            "SELECT record FROM backgrounds WHERE grant_id = $1",
            grant.as_str(),
        )
        .await?
        .map(|record| record.open(&self.key))
        .transpose()
    }

    async fn notifier_accounts(&self) -> Result<Vec<String>, BackgroundError> {
        let client = self.vault.client().await?;
        Ok(client
            .query("SELECT account FROM notifiers ORDER BY account", &[])
            .await
            .map_err(pg_err)?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    async fn remove_notifier(&self, account: &str) -> Result<(), BackgroundError> {
        let mut client = self.vault.client().await?;
        let tx = client.transaction().await.map_err(pg_err)?;
        for sql in [
            "DELETE FROM notifiers WHERE account = $1",
            "DELETE FROM notifier_cursors WHERE account = $1",
        ] {
            tx.execute(sql, &[&account]).await.map_err(pg_err)?;
        }
        tx.commit().await.map_err(pg_err)?;
        Ok(())
    }

    async fn take_unused(&self, account: &str) -> Result<Option<UpstreamTokens>, BackgroundError> {
        let mut client = self.vault.client().await?;
        let tx = client.transaction().await.map_err(pg_err)?;
        // The notifier's row first (locked), then the check: a destination sealed meanwhile
        // waits for this transaction and then finds no notifier.
        if !has_notifier(&*tx, account).await? || delivers_for(&*tx, account).await? {
            return Ok(None);
        }
        let removed: Option<Vec<u8>> = tx
            .query_opt(
                "DELETE FROM notifiers WHERE account = $1 RETURNING record",
                &[&account],
            )
            .await
            .map_err(pg_err)?
            .map(|r| r.get(0));
        tx.execute(
            "DELETE FROM notifier_cursors WHERE account = $1",
            &[&account],
        )
        .await
        .map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)?;
        let Some(bytes) = removed else {
            return Ok(None);
        };
        Ok(decode::<NotifierRecord>(&bytes)?.open(&self.key))
    }
}
