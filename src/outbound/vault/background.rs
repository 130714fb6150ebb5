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
use redb::{ReadableDatabase as _, ReadableTable as _, TableDefinition};
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
    /// Reads the key at `path`, or creates one there (owner-only) when there is none.
    ///
    /// # Errors
    /// A sentence naming the file when it can't be read, created or parsed.
    pub fn load_or_create(path: &Path) -> Result<Self, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => text
                .lines()
                .find(|l| l.starts_with("AGE-SECRET-KEY-"))
                .and_then(|l| l.trim().parse::<age::x25519::Identity>().ok())
                .map(Self)
                .ok_or_else(|| format!("{} holds no age identity", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let identity = age::x25519::Identity::generate();
                let text = Zeroizing::new(format!(
                    "# mailconnect notifier key: opens background-notification grants only\n{}\n",
                    identity.to_string().expose_secret()
                ));
                write_private(path, text.as_bytes())
                    .map_err(|e| format!("{} can't be created: {e}", path.display()))?;
                Ok(Self(identity))
            }
            Err(e) => Err(format!("{} can't be read: {e}", path.display())),
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
    /// Where the last look left off (server state and a time).
    #[serde(default)]
    cursor: Option<String>,
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

    fn all_backgrounds(&self) -> Result<Vec<(String, BackgroundRecord)>, BackgroundError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = match tx.open_table(BACKGROUNDS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(err(e)),
        };
        let mut out = Vec::new();
        for row in table.iter().map_err(err)? {
            let (k, v) = row.map_err(err)?;
            if let Ok(record) = serde_json::from_slice::<BackgroundRecord>(v.value()) {
                out.push((k.value().to_owned(), record));
            }
        }
        Ok(out)
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
                cursor: self
                    .vault
                    .get_json::<NotifierRecord>(NOTIFIERS, account)?
                    .and_then(|r| r.cursor),
            },
        )
    }

    fn has_notifier(&self, account: &str) -> Result<bool, BackgroundError> {
        Ok(self
            .vault
            .get_json::<NotifierRecord>(NOTIFIERS, account)?
            .is_some())
    }

    fn cursor(&self, account: &str) -> Result<Option<String>, BackgroundError> {
        Ok(self
            .vault
            .get_json::<NotifierRecord>(NOTIFIERS, account)?
            .and_then(|r| r.cursor))
    }

    fn save_cursor(&self, account: &str, cursor: &str) -> Result<(), BackgroundError> {
        let Some(mut record) = self.vault.get_json::<NotifierRecord>(NOTIFIERS, account)? else {
            return Ok(());
        };
        record.cursor = Some(cursor.to_owned());
        self.vault.put_json(NOTIFIERS, account, &record)
    }

    fn seal_destination(
        &self,
        grant: &GrantId,
        account: &str,
        destination: &Destination,
    ) -> Result<(), BackgroundError> {
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
        let record = BackgroundRecord {
            account: account.to_owned(),
            kind: destination.kind().to_owned(),
            target,
            since: Utc::now().timestamp(),
            sealed: self.sealed(&plain)?,
            last: None,
        };
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
        let Some(mut record) = self
            .vault
            .get_json::<BackgroundRecord>(BACKGROUNDS, grant.as_str())?
        else {
            return Ok(());
        };
        record.last = Some(LastRecord {
            at: last.at.timestamp(),
            delivered: last.delivered,
            detail: last.detail.clone(),
        });
        self.vault.put_json(BACKGROUNDS, grant.as_str(), &record)
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
        let props = open_props(&record.sealed, &self.key.0)
            .ok_or_else(|| err("the notifier grant does not open with this key"))?;
        let UpstreamCredential::Bearer(access) = props.credential else {
            return Err(err("the notifier grant holds no OAuth tokens"));
        };
        Ok(Some(UpstreamTokens {
            access,
            refresh: props.refresh.map(|r| r.token),
            expires_at: props.expires_at,
            issued_at: props.issued_at,
        }))
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
        let tx = self.vault.db.begin_read().map_err(err)?;
        let table = match tx.open_table(NOTIFIERS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(err(e)),
        };
        let mut out = Vec::new();
        for row in table.iter().map_err(err)? {
            out.push(row.map_err(err)?.0.value().to_owned());
        }
        Ok(out)
    }

    fn remove_notifier(&self, account: &str) -> Result<(), BackgroundError> {
        let tx = self.vault.db.begin_write().map_err(err)?;
        tx.open_table(NOTIFIERS)
            .map_err(err)?
            .remove(account)
            .map_err(err)?;
        tx.commit().map_err(err)
    }
}
