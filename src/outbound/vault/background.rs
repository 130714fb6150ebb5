//! Background delivery on redb: `notifier_v1` (account digest → the notifier's upstream
//! tokens, sealed to the notifier key), `notifier_cursor_v1`, and `background_v1` (grant →
//! destination, its secrets sealed the same way, and the last delivery).
//!
//! The front end gets a [`BackgroundVault`]: the key's public half, enough to seal and list.
//! Only the notifier gets a [`NotifierVault`], built from the [`NotifierKey`] read from a file
//! the configuration keeps outside the vault directory.

use redb::{ReadableTable as _, ReadableTableMetadata as _, WriteTransaction};

use super::{
    RedbVault,
    schema::{BACKGROUNDS, CURSORS, GRANTS, NOTIFIERS, get_from, rows_of},
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
        db_err,
        notifier_key::{NotifierKey, NotifierSeal},
        records::background::{BackgroundRecord, NotifierRecord, decode, encode},
    },
};

/// Whether `account` has a notifier grant, inside a write transaction.
fn has_notifier(tx: &WriteTransaction, account: &str) -> Result<bool, BackgroundError> {
    Ok(tx
        .open_table(NOTIFIERS)
        .map_err(db_err)?
        .get(account)
        .map_err(db_err)?
        .is_some())
}

/// Whether any destination of `account` is left in `background_v1`.
fn delivers_for(
    table: &impl redb::ReadableTable<&'static str, &'static [u8]>,
    account: &str,
) -> Result<bool, BackgroundError> {
    let mut used = false;
    for row in table.iter().map_err(db_err)? {
        let (_, v) = row.map_err(db_err)?;
        used |= decode::<BackgroundRecord>(v.value()).is_ok_and(|r| r.account() == account);
    }
    Ok(used)
}

impl RedbVault {
    fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        table: redb::TableDefinition<&str, &[u8]>,
        key: &str,
    ) -> Result<Option<T>, BackgroundError> {
        self.read(|tx| get_from(tx, table, key, |raw| decode(raw))?.transpose())
    }

    fn put_json(
        &self,
        table: redb::TableDefinition<&str, &[u8]>,
        key: &str,
        value: &impl serde::Serialize,
    ) -> Result<(), BackgroundError> {
        let bytes = encode(value)?;
        self.write_tx(|tx| {
            tx.open_table(table)
                .map_err(db_err)?
                .insert(key, bytes.as_slice())
                .map_err(db_err)?;
            Ok(())
        })
    }

    /// How many notifier grants the vault holds (a missing key file then can't be replaced by
    /// a fresh one: those grants would never open again). Blocking: called at start-up.
    ///
    /// # Errors
    /// [`BackgroundError`].
    pub fn notifier_grants(&self) -> Result<usize, BackgroundError> {
        self.read(|tx| match tx.open_table(NOTIFIERS) {
            Ok(t) => Ok(usize::try_from(t.len().map_err(db_err)?).unwrap_or(usize::MAX)),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
            Err(e) => Err(db_err(e).into()),
        })
    }
}

/// The front end's side: seals to the notifier, lists, never opens.
#[derive(Debug, Clone)]
pub struct BackgroundVault {
    vault: RedbVault,
    seal: NotifierSeal,
}

impl BackgroundVault {
    /// Seals with `seal` into `vault`.
    #[must_use]
    pub fn new(vault: RedbVault, seal: NotifierSeal) -> Self {
        Self { vault, seal }
    }

    /// Runs blocking `work` on the vault's blocking pool.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&RedbVault, &NotifierSeal) -> Result<T, BackgroundError> + Send + 'static,
    ) -> Result<T, BackgroundError> {
        let seal = self.seal.clone();
        self.vault.run(move |v| work(v, &seal)).await
    }
}

impl BackgroundStore for BackgroundVault {
    async fn seal_notifier(
        &self,
        account: &str,
        tokens: &UpstreamTokens,
    ) -> Result<(), BackgroundError> {
        let (account, tokens) = (account.to_owned(), tokens.clone());
        self.run(move |v, seal| {
            v.put_json(NOTIFIERS, &account, &NotifierRecord::seal(&tokens, seal)?)
        })
        .await
    }

    async fn cursor(&self, account: &str) -> Result<Option<String>, BackgroundError> {
        let account = account.to_owned();
        self.run(move |v, _| Ok(v.read(|tx| get_from(tx, CURSORS, &account, str::to_owned))?))
            .await
    }

    async fn save_cursor(&self, account: &str, cursor: &str) -> Result<(), BackgroundError> {
        let (account, cursor) = (account.to_owned(), cursor.to_owned());
        self.run(move |v, _| {
            v.write_tx(|tx| {
                // Only for a notifier that still exists: a turned-off one leaves nothing behind.
                if has_notifier(tx, &account)? {
                    tx.open_table(CURSORS)
                        .map_err(db_err)?
                        .insert(account.as_str(), cursor.as_str())
                        .map_err(db_err)?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn seal_destination(
        &self,
        grant: &GrantId,
        account: &str,
        destination: &Destination,
    ) -> Result<(), BackgroundError> {
        let record = BackgroundRecord::seal(account, destination, &self.seal)?;
        let grant = grant.clone();
        self.run(move |v, _| v.put_json(BACKGROUNDS, grant.as_str(), &record))
            .await
    }

    async fn seal_destination_if_notifier(
        &self,
        grant: &GrantId,
        account: &str,
        destination: &Destination,
    ) -> Result<bool, BackgroundError> {
        let bytes = encode(&BackgroundRecord::seal(account, destination, &self.seal)?)?;
        let (grant, account) = (grant.clone(), account.to_owned());
        self.run(move |v, _| {
            v.write_tx(|tx| {
                let exists = has_notifier(tx, &account)?;
                if exists {
                    tx.open_table(BACKGROUNDS)
                        .map_err(db_err)?
                        .insert(grant.as_str(), bytes.as_slice())
                        .map_err(db_err)?;
                }
                Ok(exists)
            })
        })
        .await
    }

    async fn remove_orphans(&self) -> Result<usize, BackgroundError> {
        self.run(|v, _| {
            v.write_tx(|tx| {
                let grants = tx.open_table(GRANTS).map_err(db_err)?;
                let mut table = tx.open_table(BACKGROUNDS).map_err(db_err)?;
                let mut orphans = Vec::new();
                for row in table.iter().map_err(db_err)? {
                    let (k, _) = row.map_err(db_err)?;
                    let grant = k.value().to_owned();
                    if grants.get(grant.as_str()).map_err(db_err)?.is_none() {
                        orphans.push(grant);
                    }
                }
                for grant in &orphans {
                    table.remove(grant.as_str()).map_err(db_err)?;
                }
                Ok(orphans.len())
            })
        })
        .await
    }

    async fn background(&self, grant: &GrantId) -> Result<Option<Background>, BackgroundError> {
        let grant = grant.clone();
        self.run(move |v, _| {
            Ok(v.get_json::<BackgroundRecord>(BACKGROUNDS, grant.as_str())?
                .map(|r| r.summary(grant.as_str())))
        })
        .await
    }

    async fn backgrounds(&self) -> Result<Vec<Background>, BackgroundError> {
        self.run(|v, _| {
            v.read(|tx| {
                rows_of(tx, BACKGROUNDS, |grant, raw| {
                    // A record that does not decode is skipped, not fatal to the list.
                    Ok(decode::<BackgroundRecord>(raw)
                        .ok()
                        .map(|r| r.summary(grant)))
                })
            })
        })
        .await
    }

    async fn record_delivery(
        &self,
        grant: &GrantId,
        last: &LastDelivery,
    ) -> Result<(), BackgroundError> {
        let (grant, last) = (grant.clone(), last.clone());
        self.run(move |v, _| {
            v.write_tx(|tx| {
                let mut table = tx.open_table(BACKGROUNDS).map_err(db_err)?;
                let current = table
                    .get(grant.as_str())
                    .map_err(db_err)?
                    .map(|v| decode::<BackgroundRecord>(v.value()));
                // Turned off meanwhile: nothing comes back.
                if let Some(Ok(mut record)) = current {
                    record.set_last(&last);
                    table
                        .insert(grant.as_str(), encode(&record)?.as_slice())
                        .map_err(db_err)?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn remove_destination(&self, grant: &GrantId) -> Result<bool, BackgroundError> {
        let grant = grant.clone();
        self.run(move |v, _| {
            v.write_tx(|tx| {
                let mut table = tx.open_table(BACKGROUNDS).map_err(db_err)?;
                let removed = table.remove(grant.as_str()).map_err(db_err)?;
                let account = removed
                    .and_then(|v| decode::<BackgroundRecord>(v.value()).ok())
                    .map(|r| r.account().to_owned());
                match account {
                    Some(account) => delivers_for(&table, &account),
                    None => Ok(false),
                }
            })
        })
        .await
    }
}

/// The notifier's side: opens what was sealed to it.
#[derive(Debug, Clone)]
pub struct NotifierVault {
    vault: RedbVault,
    key: std::sync::Arc<NotifierKey>,
}

impl NotifierVault {
    /// Opens with `key` from `vault`.
    #[must_use]
    pub fn new(vault: RedbVault, key: NotifierKey) -> Self {
        Self {
            vault,
            key: std::sync::Arc::new(key),
        }
    }

    /// Runs blocking `work` on the vault's blocking pool.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&RedbVault, &NotifierKey) -> Result<T, BackgroundError> + Send + 'static,
    ) -> Result<T, BackgroundError> {
        let key = std::sync::Arc::clone(&self.key);
        self.vault.run(move |v| work(v, &key)).await
    }
}

impl NotifierKeyring for NotifierVault {
    async fn open_notifier(
        &self,
        account: &str,
    ) -> Result<Option<UpstreamTokens>, BackgroundError> {
        let account = account.to_owned();
        self.run(move |v, key| {
            let Some(record) = v.get_json::<NotifierRecord>(NOTIFIERS, &account)? else {
                return Ok(None);
            };
            record.open(key).map(Some).ok_or_else(|| {
                BackgroundError::Unexpected("the notifier grant does not open with this key".into())
            })
        })
        .await
    }

    async fn open_destination(
        &self,
        grant: &GrantId,
    ) -> Result<Option<Destination>, BackgroundError> {
        let grant = grant.clone();
        self.run(move |v, key| {
            v.get_json::<BackgroundRecord>(BACKGROUNDS, grant.as_str())?
                .map(|record| record.open(key))
                .transpose()
        })
        .await
    }

    async fn notifier_accounts(&self) -> Result<Vec<String>, BackgroundError> {
        self.run(|v, _| {
            v.read(|tx| rows_of(tx, NOTIFIERS, |account, _| Ok(Some(account.to_owned()))))
        })
        .await
    }

    async fn remove_notifier(&self, account: &str) -> Result<(), BackgroundError> {
        let account = account.to_owned();
        self.run(move |v, _| {
            v.write_tx(|tx| {
                tx.open_table(NOTIFIERS)
                    .map_err(db_err)?
                    .remove(account.as_str())
                    .map_err(db_err)?;
                tx.open_table(CURSORS)
                    .map_err(db_err)?
                    .remove(account.as_str())
                    .map_err(db_err)?;
                Ok(())
            })
        })
        .await
    }

    async fn take_unused(&self, account: &str) -> Result<Option<UpstreamTokens>, BackgroundError> {
        let account = account.to_owned();
        self.run(move |v, key| {
            let taken = v.write_tx(|tx| {
                let used = delivers_for(&tx.open_table(BACKGROUNDS).map_err(db_err)?, &account)?;
                if used {
                    return Ok::<_, BackgroundError>(None);
                }
                let removed = tx
                    .open_table(NOTIFIERS)
                    .map_err(db_err)?
                    .remove(account.as_str())
                    .map_err(db_err)?
                    .map(|v| v.value().to_vec());
                tx.open_table(CURSORS)
                    .map_err(db_err)?
                    .remove(account.as_str())
                    .map_err(db_err)?;
                Ok(removed)
            })?;
            let Some(bytes) = taken else {
                return Ok(None);
            };
            Ok(decode::<NotifierRecord>(&bytes)?.open(key))
        })
        .await
    }
}
