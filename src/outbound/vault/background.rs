//! Background delivery in the vault file: `notifier_v1` (account digest → the notifier's
//! upstream tokens, age-sealed to the notifier key) and `background_v1` (grant → destination,
//! its secrets sealed the same way, and the last delivery).
//!
//! The front end gets a [`BackgroundVault`]: the key's public half, enough to seal and list.
//! Only the notifier gets a [`NotifierVault`], built from the [`NotifierKey`] read from a file
//! the configuration keeps outside the vault directory.

use std::path::Path;

use age::secrecy::ExposeSecret as _;
use base64::{Engine as _, engine::general_purpose::STANDARD};
use chrono::{DateTime, Utc};
use redb::{
    ReadableDatabase as _, ReadableTable as _, ReadableTableMetadata as _, TableDefinition,
};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{
    RedbVault,
    crypto::{Sealable, open_props, seal},
};
use crate::domain::{
    grant::{GrantId, UpstreamCredential},
    notify::{
        background::{Background, BackgroundError, BackgroundStore, LastDelivery, NotifierKeyring},
        delivery::{Destination, WebhookSecret, WebhookUrl},
    },
    ports::UpstreamTokens,
    secret::SecretString,
};

pub const NOTIFIERS: TableDefinition<&str, &[u8]> = TableDefinition::new("notifier_v1");
pub const BACKGROUNDS: TableDefinition<&str, &[u8]> = TableDefinition::new("background_v1");
/// Where the notifier's last look at an account left off: apart from the sealed tokens, so
/// saving it can never write back a token a refresh just replaced.
pub const CURSORS: TableDefinition<&str, &str> = TableDefinition::new("notifier_cursor_v1");

/// The notifier's private key: opens notifier grants and destinations, nothing else.
pub struct NotifierKey(age::x25519::Identity);

impl std::fmt::Debug for NotifierKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NotifierKey(…)")
    }
}

/// The notifier key's public half: seals to the notifier.
#[derive(Debug, Clone)]
pub struct NotifierSeal(pub(super) age::x25519::Recipient);

impl NotifierKey {
    /// Reads the key at `path`; `None` when there is no file. A key file others may read is
    /// refused.
    ///
    /// # Errors
    /// A sentence naming the file when it can't be read, is readable by others or holds no
    /// key.
    pub fn load(path: &Path) -> Result<Option<Self>, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => Zeroizing::new(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{} can't be read: {e}", path.display())),
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(format!(
                    "{} may be read by others (mode {:o}); make it owner-only (chmod 600)",
                    path.display(),
                    mode & 0o777
                ));
            }
        }
        text.lines()
            .find(|l| l.starts_with("AGE-SECRET-KEY-"))
            .and_then(|l| l.trim().parse::<age::x25519::Identity>().ok())
            .map(|k| Some(Self(k)))
            .ok_or_else(|| format!("{} holds no age identity", path.display()))
    }

    /// Creates a key at `path` (owner-only); refuses to replace a file.
    ///
    /// # Errors
    /// A sentence naming the file when it can't be created.
    pub fn create(path: &Path) -> Result<Self, String> {
        let identity = age::x25519::Identity::generate();
        let text = Zeroizing::new(format!(
            "# mailconnect notifier key: opens background-notification grants only\n{}\n",
            identity.to_string().expose_secret()
        ));
        write_private(path, text.as_bytes())
            .map_err(|e| format!("{} can't be created: {e}", path.display()))?;
        Ok(Self(identity))
    }

    /// Reads the key at `path`, or creates one there when there is none (tests; the server
    /// never replaces a lost key while grants sealed to it exist, see `app`).
    ///
    /// # Errors
    /// See [`NotifierKey::load`] and [`NotifierKey::create`].
    #[cfg(test)]
    pub(crate) fn load_or_create(path: &Path) -> Result<Self, String> {
        match Self::load(path)? {
            Some(key) => Ok(key),
            None => Self::create(path),
        }
    }

    /// The public half.
    #[must_use]
    pub fn seal(&self) -> NotifierSeal {
        NotifierSeal(self.0.to_public())
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}

#[derive(Serialize, Deserialize)]
struct NotifierRecord {
    sealed: String,
    created_at: i64,
}

#[derive(Serialize, Deserialize)]
struct BackgroundRecord {
    account: String,
    kind: String,
    target: String,
    since: i64,
    /// The destination, age-sealed to the notifier (base64).
    sealed: String,
    #[serde(default)]
    last: Option<LastRecord>,
}

#[derive(Serialize, Deserialize)]
struct LastRecord {
    at: i64,
    delivered: bool,
    detail: String,
}

/// A destination's secrets, as sealed.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum SealedDestination {
    Webhook { url: String, secret: String },
    Poke { api_key: String },
}

fn err(e: impl std::fmt::Display) -> BackgroundError {
    BackgroundError::Store(e.to_string())
}

/// Whether `account` has a notifier grant, inside a write transaction.
fn has_notifier(tx: &redb::WriteTransaction, account: &str) -> Result<bool, BackgroundError> {
    Ok(tx
        .open_table(NOTIFIERS)
        .map_err(err)?
        .get(account)
        .map_err(err)?
        .is_some())
}

fn to_time(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or_default()
}

fn summary(grant: &str, r: BackgroundRecord) -> Background {
    Background {
        grant: GrantId::new(grant.to_owned()),
        account: r.account,
        kind: r.kind,
        target: r.target,
        since: to_time(r.since),
        last: r.last.map(|l| LastDelivery {
            at: to_time(l.at),
            delivered: l.delivered,
            detail: l.detail,
        }),
    }
}

impl RedbVault {
    fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
    ) -> Result<Option<T>, BackgroundError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = match tx.open_table(table) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(err(e)),
        };
        table
            .get(key)
            .map_err(err)?
            .map(|v| serde_json::from_slice(v.value()).map_err(err))
            .transpose()
    }

    fn put_json(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
        value: &impl Serialize,
    ) -> Result<(), BackgroundError> {
        let bytes = serde_json::to_vec(value).map_err(err)?;
        let tx = self.db.begin_write().map_err(err)?;
        tx.open_table(table)
            .map_err(err)?
            .insert(key, bytes.as_slice())
            .map_err(err)?;
        tx.commit().map_err(err)
    }

    /// How many notifier grants the vault holds (a missing key file then can't be replaced by
    /// a fresh one: those grants would never open again).
    ///
    /// # Errors
    /// [`BackgroundError`].
    pub fn notifier_grants(&self) -> Result<usize, BackgroundError> {
        let tx = self.db.begin_read().map_err(err)?;
        match tx.open_table(NOTIFIERS) {
            Ok(t) => Ok(usize::try_from(t.len().map_err(err)?).unwrap_or(usize::MAX)),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
            Err(e) => Err(err(e)),
        }
    }

    /// Every row of `table` (none before the first write created it).
    fn rows(
        &self,
        table: TableDefinition<&str, &[u8]>,
    ) -> Result<Vec<(String, Vec<u8>)>, BackgroundError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = match tx.open_table(table) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(err(e)),
        };
        let mut out = Vec::new();
        for row in table.iter().map_err(err)? {
            let (k, v) = row.map_err(err)?;
            out.push((k.value().to_owned(), v.value().to_vec()));
        }
        Ok(out)
    }

    fn all_backgrounds(&self) -> Result<Vec<(String, BackgroundRecord)>, BackgroundError> {
        Ok(self
            .rows(BACKGROUNDS)?
            .into_iter()
            .filter_map(|(k, v)| Some((k, serde_json::from_slice(&v).ok()?)))
            .collect())
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

    fn sealed(&self, plain: &[u8]) -> Result<String, BackgroundError> {
        let bytes = age::encrypt(&self.seal.0, plain).map_err(err)?;
        Ok(STANDARD.encode(bytes))
    }

    /// A destination as stored: what the page shows in the clear, its secrets sealed.
    fn destination_record(
        &self,
        account: &str,
        destination: &Destination,
    ) -> Result<BackgroundRecord, BackgroundError> {
        let (target, secret) = match destination {
            Destination::Webhook { url, secret } => (
                url.host().to_owned(),
                SealedDestination::Webhook {
                    url: url.as_url().to_string(),
                    secret: secret.to_whsec().expose_secret().to_owned(),
                },
            ),
            Destination::Poke { api_key } => (
                "Poke".to_owned(),
                SealedDestination::Poke {
                    api_key: api_key.expose_secret().to_owned(),
                },
            ),
        };
        let plain = Zeroizing::new(serde_json::to_vec(&secret).map_err(err)?);
        drop(secret);
        Ok(BackgroundRecord {
            account: account.to_owned(),
            kind: destination.kind().to_owned(),
            target,
            since: Utc::now().timestamp(),
            sealed: self.sealed(&plain)?,
            last: None,
        })
    }
}

impl BackgroundStore for BackgroundVault {
    fn seal_notifier(&self, account: &str, tokens: &UpstreamTokens) -> Result<(), BackgroundError> {
        let sealed = seal(&Sealable::Tokens(tokens), &self.seal.0).map_err(err)?;
        self.vault.put_json(
            NOTIFIERS,
            account,
            &NotifierRecord {
                sealed,
                created_at: Utc::now().timestamp(),
            },
        )
    }

    fn cursor(&self, account: &str) -> Result<Option<String>, BackgroundError> {
        let tx = self.vault.db.begin_read().map_err(err)?;
        let table = match tx.open_table(CURSORS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(err(e)),
        };
        Ok(table
            .get(account)
            .map_err(err)?
            .map(|v| v.value().to_owned()))
    }

    fn save_cursor(&self, account: &str, cursor: &str) -> Result<(), BackgroundError> {
        let tx = self.vault.db.begin_write().map_err(err)?;
        {
            // Only for a notifier that still exists: a turned-off one leaves nothing behind.
            if has_notifier(&tx, account)? {
                tx.open_table(CURSORS)
                    .map_err(err)?
                    .insert(account, cursor)
                    .map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    fn seal_destination_if_notifier(
        &self,
        grant: &GrantId,
        account: &str,
        destination: &Destination,
    ) -> Result<bool, BackgroundError> {
        let record = self.destination_record(account, destination)?;
        let bytes = serde_json::to_vec(&record).map_err(err)?;
        let tx = self.vault.db.begin_write().map_err(err)?;
        let sealed = {
            let exists = has_notifier(&tx, account)?;
            if exists {
                tx.open_table(BACKGROUNDS)
                    .map_err(err)?
                    .insert(grant.as_str(), bytes.as_slice())
                    .map_err(err)?;
            }
            exists
        };
        tx.commit().map_err(err)?;
        Ok(sealed)
    }

    fn remove_orphans(&self) -> Result<usize, BackgroundError> {
        let tx = self.vault.db.begin_write().map_err(err)?;
        let removed = {
            let grants = tx.open_table(super::GRANTS).map_err(err)?;
            let mut table = tx.open_table(BACKGROUNDS).map_err(err)?;
            let mut orphans = Vec::new();
            for row in table.iter().map_err(err)? {
                let (k, _) = row.map_err(err)?;
                let grant = k.value().to_owned();
                if grants.get(grant.as_str()).map_err(err)?.is_none() {
                    orphans.push(grant);
                }
            }
            for grant in &orphans {
                table.remove(grant.as_str()).map_err(err)?;
            }
            orphans.len()
        };
        tx.commit().map_err(err)?;
        Ok(removed)
    }

    fn seal_destination(
        &self,
        grant: &GrantId,
        account: &str,
        destination: &Destination,
    ) -> Result<(), BackgroundError> {
        let record = self.destination_record(account, destination)?;
        self.vault.put_json(BACKGROUNDS, grant.as_str(), &record)
    }

    fn background(&self, grant: &GrantId) -> Result<Option<Background>, BackgroundError> {
        Ok(self
            .vault
            .get_json::<BackgroundRecord>(BACKGROUNDS, grant.as_str())?
            .map(|r| summary(grant.as_str(), r)))
    }

    fn backgrounds(&self) -> Result<Vec<Background>, BackgroundError> {
        Ok(self
            .vault
            .all_backgrounds()?
            .into_iter()
            .map(|(g, r)| summary(&g, r))
            .collect())
    }

    fn record_delivery(&self, grant: &GrantId, last: &LastDelivery) -> Result<(), BackgroundError> {
        let tx = self.vault.db.begin_write().map_err(err)?;
        {
            let mut table = tx.open_table(BACKGROUNDS).map_err(err)?;
            let current = table
                .get(grant.as_str())
                .map_err(err)?
                .map(|v| serde_json::from_slice::<BackgroundRecord>(v.value()));
            // Turned off meanwhile: nothing comes back.
            if let Some(Ok(mut record)) = current {
                record.last = Some(LastRecord {
                    at: last.at.timestamp(),
                    delivered: last.delivered,
                    detail: last.detail.clone(),
                });
                let bytes = serde_json::to_vec(&record).map_err(err)?;
                table
                    .insert(grant.as_str(), bytes.as_slice())
                    .map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    fn remove_destination(&self, grant: &GrantId) -> Result<bool, BackgroundError> {
        let tx = self.vault.db.begin_write().map_err(err)?;
        let others = {
            let mut table = tx.open_table(BACKGROUNDS).map_err(err)?;
            let removed = table.remove(grant.as_str()).map_err(err)?;
            let account = removed
                .and_then(|v| serde_json::from_slice::<BackgroundRecord>(v.value()).ok())
                .map(|r| r.account);
            let mut others = false;
            if let Some(account) = account {
                for row in table.iter().map_err(err)? {
                    let (_, v) = row.map_err(err)?;
                    others |= serde_json::from_slice::<BackgroundRecord>(v.value())
                        .is_ok_and(|r| r.account == account);
                }
            }
            others
        };
        tx.commit().map_err(err)?;
        Ok(others)
    }
}

/// The notifier's side: opens what was sealed to it.
#[derive(Debug)]
pub struct NotifierVault {
    vault: RedbVault,
    key: NotifierKey,
}

impl NotifierVault {
    /// Opens with `key` from `vault`.
    #[must_use]
    pub fn new(vault: RedbVault, key: NotifierKey) -> Self {
        Self { vault, key }
    }

    /// The tokens a record holds, if this key opens them.
    fn tokens(&self, record: &NotifierRecord) -> Option<UpstreamTokens> {
        let props = open_props(&record.sealed, &self.key.0)?;
        let UpstreamCredential::Bearer(access) = props.credential else {
            return None;
        };
        Some(UpstreamTokens {
            access,
            refresh: props.refresh.map(|r| r.token),
            expires_at: props.expires_at,
            issued_at: props.issued_at,
        })
    }

    #[cfg(test)]
    pub(super) fn key_for_tests(&self) -> &age::x25519::Identity {
        &self.key.0
    }

    fn open(&self, sealed: &str) -> Option<Zeroizing<Vec<u8>>> {
        let raw = STANDARD.decode(sealed).ok()?;
        age::decrypt(&self.key.0, &raw).ok().map(Zeroizing::new)
    }
}

impl NotifierKeyring for NotifierVault {
    fn open_notifier(&self, account: &str) -> Result<Option<UpstreamTokens>, BackgroundError> {
        let Some(record) = self.vault.get_json::<NotifierRecord>(NOTIFIERS, account)? else {
            return Ok(None);
        };
        self.tokens(&record)
            .map(Some)
            .ok_or_else(|| err("the notifier grant does not open with this key"))
    }

    fn open_destination(&self, grant: &GrantId) -> Result<Option<Destination>, BackgroundError> {
        let Some(record) = self
            .vault
            .get_json::<BackgroundRecord>(BACKGROUNDS, grant.as_str())?
        else {
            return Ok(None);
        };
        let plain = self
            .open(&record.sealed)
            .ok_or_else(|| err("the destination does not open with this key"))?;
        let sealed: SealedDestination = serde_json::from_slice(&plain).map_err(err)?;
        Ok(Some(match sealed {
            SealedDestination::Webhook { url, secret } => Destination::Webhook {
                url: WebhookUrl::parse(&url, true).map_err(err)?,
                secret: WebhookSecret::parse(&secret).map_err(err)?,
            },
            SealedDestination::Poke { api_key } => Destination::Poke {
                api_key: SecretString::new(api_key),
            },
        }))
    }

    fn notifier_accounts(&self) -> Result<Vec<String>, BackgroundError> {
        Ok(self
            .vault
            .rows(NOTIFIERS)?
            .into_iter()
            .map(|(account, _)| account)
            .collect())
    }

    fn remove_notifier(&self, account: &str) -> Result<(), BackgroundError> {
        let tx = self.vault.db.begin_write().map_err(err)?;
        tx.open_table(NOTIFIERS)
            .map_err(err)?
            .remove(account)
            .map_err(err)?;
        tx.open_table(CURSORS)
            .map_err(err)?
            .remove(account)
            .map_err(err)?;
        tx.commit().map_err(err)
    }

    fn take_unused(&self, account: &str) -> Result<Option<UpstreamTokens>, BackgroundError> {
        let tx = self.vault.db.begin_write().map_err(err)?;
        let taken = {
            let backgrounds = tx.open_table(BACKGROUNDS).map_err(err)?;
            let mut used = false;
            for row in backgrounds.iter().map_err(err)? {
                let (_, v) = row.map_err(err)?;
                used |= serde_json::from_slice::<BackgroundRecord>(v.value())
                    .is_ok_and(|r| r.account == account);
            }
            if used {
                None
            } else {
                let removed = tx
                    .open_table(NOTIFIERS)
                    .map_err(err)?
                    .remove(account)
                    .map_err(err)?
                    .map(|v| v.value().to_vec());
                tx.open_table(CURSORS)
                    .map_err(err)?
                    .remove(account)
                    .map_err(err)?;
                removed
            }
        };
        tx.commit().map_err(err)?;
        let Some(bytes) = taken else {
            return Ok(None);
        };
        let record: NotifierRecord = serde_json::from_slice(&bytes).map_err(err)?;
        Ok(self.tokens(&record))
    }
}
