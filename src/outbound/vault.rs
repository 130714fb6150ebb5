//! The redb vault: clients, grants, their hashed tokens, and upstream credentials that only a
//! live token of the grant can open (README "Vault"; schema in docs/storage-schema.md).
//!
//! - Tokens are stored only as SHA-256 digests.
//! - Each grant's upstream tokens ("props") are sealed with age to a per-grant X25519
//!   recipient; the recipient is stored in clear so props can be re-sealed after a refresh.
//! - The grant's age identity is stored only wrapped (ChaCha20-Poly1305) under a key derived
//!   with HKDF-SHA256 from each live token. A copy of the database opens nothing.
//! - Every write is one durable transaction, so a token is stored before any answer carries it.
//!
//! redb is synchronous: every call runs on the blocking pool. Opened grants and policies are
//! cached in memory (bounded, opened grants for at most [`OPEN_CACHE_TTL`] and never past the
//! token's expiry); every write through this vault purges the grant's entries, and redb has one
//! owning process, so a change takes effect on the next request.

mod approvals;
mod audit;
mod background;
mod clients;

pub use self::audit::Retention;
pub use self::background::{BackgroundVault, NotifierKey, NotifierSeal, NotifierVault};
mod crypto;
mod records;

use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use redb::{
    Database, MultimapTableDefinition, ReadableDatabase as _, ReadableMultimapTable as _,
    ReadableTable as _, TableDefinition, WriteTransaction,
};
use zeroize::Zeroizing;

use self::{
    crypto::{
        Sealable, digest, identity_text, lock, new_identity, open_props, seal, unlock, wrap_purpose,
    },
    records::{GrantRecord, IssuedPairRecord, TokenKind, TokenRecord, hex},
};
use crate::domain::{
    auth::{
        client::ClientId,
        pkce::CodeChallenge,
        rotation::{RefreshDecision, decide},
        token::{IssuedToken, TokenPair},
    },
    grant::{AccessToken, Capability, CapabilitySet, GrantId, UpstreamCredential},
    notify::settings::NotifySettings,
    ports::{
        AuditEvent, AuditKind, CodeBinding, GrantDraft, GrantSummary, OpenedGrant, Policy,
        PolicyError, Redemption, RefreshBinding, TokenVault, UpstreamTokens, VaultError,
    },
    recipients::RecipientRule,
};

/// Storage schema version (docs/storage-schema.md).
pub const SCHEMA_VERSION: &str = "2";
const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
const GRANTS: TableDefinition<&str, &[u8]> = TableDefinition::new("grants_v1");
const TOKENS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("tokens_v1");
const GRANT_TOKENS: MultimapTableDefinition<&str, &[u8; 32]> =
    MultimapTableDefinition::new("grant_tokens_v1");
const CLIENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("clients_v1");
const REVOKED: TableDefinition<&str, &[u8]> = TableDefinition::new("revoked_v1");

/// The grant id of the single-user self-host client.
pub const SELF_HOST_GRANT: &str = "self-host";
const REPLAY_PURPOSE: &str = "replay-last-refresh";

/// What a configured grant holds.
#[derive(Debug)]
pub struct NewGrant<'a> {
    /// Its id.
    pub id: &'a GrantId,
    /// What settings show for it.
    pub label: &'a str,
    /// The upstream credential to seal.
    pub credential: &'a UpstreamCredential,
    /// Its policy.
    pub capabilities: &'a CapabilitySet,
}

/// Why the vault failed.
#[derive(Debug, thiserror::Error)]
pub enum VaultStoreError {
    /// The database file could not be opened or written.
    #[error("vault database: {0}")]
    Database(String),
    /// Encryption failed.
    #[error("vault crypto: {0}")]
    Crypto(String),
    /// A stored record does not decode.
    #[error("vault record: {0}")]
    Corrupt(String),
}

fn db_err(e: impl std::fmt::Display) -> VaultStoreError {
    VaultStoreError::Database(e.to_string())
}

impl From<VaultStoreError> for VaultError {
    fn from(e: VaultStoreError) -> Self {
        Self::Unexpected(e.to_string())
    }
}

/// How long an opened grant stays in memory.
pub const OPEN_CACHE_TTL: Duration = Duration::from_secs(300);
const CACHE_LIMIT: usize = 10_000;

#[derive(Debug, Default)]
struct Cache {
    /// Token digest → the grant it opened, until when.
    opened: HashMap<[u8; 32], (OpenedGrant, Instant)>,
    policies: HashMap<GrantId, CapabilitySet>,
}

impl Cache {
    fn forget_grant(&mut self, grant: &GrantId) {
        self.opened.retain(|_, (o, _)| &o.grant != grant);
        self.policies.remove(grant);
    }
}

/// The redb-backed token vault, client store and policy store.
#[derive(Debug, Clone)]
pub struct RedbVault {
    db: Arc<Database>,
    cache: Arc<Mutex<Cache>>,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

type Tokens<'t> = redb::Table<'t, &'static [u8; 32], &'static [u8]>;
type Grants<'t> = redb::Table<'t, &'static str, &'static [u8]>;

/// One write transaction's open tables.
struct Writer<'t> {
    tokens: Tokens<'t>,
    grants: Grants<'t>,
    index: redb::MultimapTable<'t, &'static str, &'static [u8; 32]>,
    audit: redb::Table<'t, (&'static str, u64), &'static [u8]>,
    revoked: Grants<'t>,
    backgrounds: Grants<'t>,
}

impl<'t> Writer<'t> {
    fn new(tx: &'t WriteTransaction) -> Result<Self, VaultStoreError> {
        Ok(Self {
            tokens: tx.open_table(TOKENS).map_err(db_err)?,
            grants: tx.open_table(GRANTS).map_err(db_err)?,
            index: tx.open_multimap_table(GRANT_TOKENS).map_err(db_err)?,
            audit: tx.open_table(audit::AUDIT).map_err(db_err)?,
            revoked: tx.open_table(REVOKED).map_err(db_err)?,
            backgrounds: tx.open_table(background::BACKGROUNDS).map_err(db_err)?,
        })
    }

    fn token(&self, key: &[u8; 32]) -> Result<Option<TokenRecord>, VaultStoreError> {
        self.tokens
            .get(key)
            .map_err(db_err)?
            .map(|v| records::decode(v.value()))
            .transpose()
    }

    fn grant(&self, id: &str) -> Result<Option<GrantRecord>, VaultStoreError> {
        self.grants
            .get(id)
            .map_err(db_err)?
            .map(|v| records::decode(v.value()))
            .transpose()
    }

    fn put_token(&mut self, key: &[u8; 32], record: &TokenRecord) -> Result<(), VaultStoreError> {
        self.tokens
            .insert(key, records::encode(record)?.as_slice())
            .map_err(db_err)?;
        self.index
            .insert(record.grant_id.as_str(), key)
            .map_err(db_err)?;
        Ok(())
    }

    fn put_grant(&mut self, record: &GrantRecord) -> Result<(), VaultStoreError> {
        self.grants
            .insert(record.id.as_str(), records::encode(record)?.as_slice())
            .map_err(db_err)?;
        Ok(())
    }

    /// Deletes a grant, its tokens and their wrapped keys, and where its background
    /// notifications went (however it ended: revoked, replayed, expired).
    fn remove_grant(&mut self, id: &str) -> Result<(), VaultStoreError> {
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
        let removed = self
            .grants
            .remove(id)
            .map_err(db_err)?
            .map(|v| records::decode::<GrantRecord>(v.value()))
            .transpose()?;
        match removed {
            // A connection the person made: keep a tombstone (nothing secret) so settings can
            // still show what it did, and say that it ended.
            Some(grant) if grant.code_used && grant.account_digest.is_some() => {
                let tombstone = records::Tombstone {
                    account_digest: grant.account_digest.clone().unwrap_or_default(),
                    client_id: grant.client_id.clone().unwrap_or_default(),
                    redirect_uri: grant.redirect_uri.clone().unwrap_or_default(),
                    created_at: grant.created_at,
                    revoked_at: now(),
                };
                self.revoked
                    .insert(id, records::encode(&tombstone)?.as_slice())
                    .map_err(db_err)?;
                let event = audit::encode_event(&AuditEvent {
                    grant: GrantId::new(id),
                    at: now(),
                    kind: AuditKind::Revoked,
                })?;
                self.audit
                    .insert((id, audit::next_key()), event.as_slice())
                    .map_err(db_err)?;
                Ok(())
            }
            _ => RedbVault::remove_events(&mut self.audit, id),
        }
    }

    /// Wraps the grant's identity under a new token and stores the token.
    fn issue(
        &mut self,
        grant: &str,
        identity: &str,
        issued: &IssuedToken,
        kind: TokenKind,
        successor: bool,
    ) -> Result<(), VaultStoreError> {
        let secret = issued.token.expose_secret();
        let record = TokenRecord {
            grant_id: grant.to_owned(),
            kind,
            expires_at: Some(issued.expires_at),
            wrapped_identity: Some(lock(
                identity.as_bytes(),
                secret,
                grant,
                &wrap_purpose(kind.as_str()),
            )?),
            successor,
        };
        self.put_token(&digest(secret), &record)
    }
}

/// Unwraps a grant's identity with a presented token.
fn unwrap_identity(record: &TokenRecord, token: &str) -> Option<Zeroizing<String>> {
    let wrapped = record.wrapped_identity.as_deref()?;
    let plain = unlock(
        wrapped,
        token,
        &record.grant_id,
        &wrap_purpose(record.kind.as_str()),
    )?;
    String::from_utf8(plain.to_vec()).ok().map(Zeroizing::new)
}

fn live(record: &TokenRecord, at: i64) -> bool {
    record.expires_at.is_none_or(|t| t > at)
}

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
            tx.open_table(audit::AUDIT).map_err(db_err)?;
            tx.open_table(REVOKED).map_err(db_err)?;
        }
        tx.commit().map_err(db_err)?;
        Ok(Self {
            db: Arc::new(db),
            cache: Arc::default(),
        })
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` in one durable write transaction; commits only if it succeeds.
    fn write<T>(
        &self,
        f: impl FnOnce(&mut Writer<'_>) -> Result<T, VaultStoreError>,
    ) -> Result<T, VaultStoreError> {
        let tx = self.db.begin_write().map_err(db_err)?;
        let out = {
            let mut w = Writer::new(&tx)?;
            f(&mut w)?
        };
        tx.commit().map_err(db_err)?;
        Ok(out)
    }

    /// Creates (or replaces) a configured grant opened by `token`, which never expires.
    ///
    /// # Errors
    /// [`VaultStoreError`] on database or crypto failure; nothing is written then.
    pub fn put_grant(
        &self,
        grant: &NewGrant<'_>,
        token: &AccessToken,
    ) -> Result<(), VaultStoreError> {
        let (identity, recipient) = new_identity();
        let record = GrantRecord {
            label: grant.label.to_owned(),
            capabilities: grant
                .capabilities
                .iter()
                .map(|c| c.as_str().to_owned())
                .collect(),
            ..GrantRecord::new(
                grant.id.as_str(),
                &recipient,
                seal(&Sealable::Credential(grant.credential), &recipient)?,
            )
        };
        let identity = identity_text(&identity);
        let secret = token.expose_secret();
        let token_record = TokenRecord {
            grant_id: record.id.clone(),
            kind: TokenKind::Access,
            expires_at: None,
            wrapped_identity: Some(lock(
                identity.as_bytes(),
                secret,
                &record.id,
                &wrap_purpose("access"),
            )?),
            successor: false,
        };
        self.write(|w| {
            w.remove_grant(&record.id)?;
            w.put_token(&digest(secret), &token_record)?;
            w.put_grant(&record)
        })?;
        self.cache().forget_grant(grant.id);
        Ok(())
    }

    /// Deletes a grant and every token of it.
    ///
    /// # Errors
    /// [`VaultStoreError::Database`] on failure; nothing is deleted then.
    pub fn delete_grant(&self, grant: &GrantId) -> Result<(), VaultStoreError> {
        self.write(|w| w.remove_grant(grant.as_str()))?;
        self.cache().forget_grant(grant);
        Ok(())
    }

    /// Opens a grant from the database with a token of one of `kinds`; also returns the
    /// token's expiry. The first use of the newest access token marks its pair as used.
    fn open_blocking(
        &self,
        token: &AccessToken,
        kinds: &[TokenKind],
    ) -> Result<(OpenedGrant, Option<i64>), VaultError> {
        let secret = token.expose_secret();
        let key = digest(secret);
        let tx = self
            .db
            .begin_read()
            .map_err(|e| VaultError::Unexpected(e.to_string()))?;
        let tokens = tx
            .open_table(TOKENS)
            .map_err(|e| VaultError::Unexpected(e.to_string()))?;
        let record: TokenRecord = match tokens
            .get(&key)
            .map_err(|e| VaultError::Unexpected(e.to_string()))?
        {
            Some(raw) => records::decode(raw.value())?,
            None => return Err(VaultError::InvalidToken),
        };
        if !kinds.contains(&record.kind) || !live(&record, now()) {
            return Err(VaultError::InvalidToken);
        }
        let grants = tx
            .open_table(GRANTS)
            .map_err(|e| VaultError::Unexpected(e.to_string()))?;
        let grant: GrantRecord = match grants
            .get(record.grant_id.as_str())
            .map_err(|e| VaultError::Unexpected(e.to_string()))?
        {
            Some(raw) => records::decode(raw.value())?,
            None => return Err(VaultError::InvalidToken),
        };
        drop((tokens, grants, tx));
        // A token whose derived key does not unwrap the identity is not this grant's token.
        let identity_text = unwrap_identity(&record, secret).ok_or(VaultError::InvalidToken)?;
        let identity: age::x25519::Identity = identity_text
            .parse()
            .map_err(|_| VaultError::Unexpected("stored identity is malformed".into()))?;
        let props = open_props(&grant.sealed_props, &identity)
            .ok_or_else(|| VaultError::Unexpected("sealed props do not open".into()))?;
        if record.successor && !grant.successor_used {
            self.mark_successor_used(&key, &grant.id)?;
        }
        Ok((
            OpenedGrant {
                account: grant.account_digest.clone(),
                grant: GrantId::new(grant.id),
                credential: props.credential,
                upstream_refresh: props.refresh,
                upstream_expires_at: props.expires_at,
                upstream_issued_at: props.issued_at,
                resource: grant.resource,
            },
            record.expires_at,
        ))
    }

    /// The newest pair is in use: from now on its predecessor refresh token is a reuse.
    fn mark_successor_used(&self, key: &[u8; 32], grant: &str) -> Result<(), VaultError> {
        self.write(|w| {
            if let Some(mut g) = w.grant(grant)? {
                g.successor_used = true;
                w.put_grant(&g)?;
            }
            if let Some(mut t) = w.token(key)? {
                t.successor = false;
                w.put_token(key, &t)?;
            }
            Ok(())
        })?;
        Ok(())
    }

    /// A grant's record, for its policy.
    fn policy_record_blocking(&self, grant: &GrantId) -> Result<GrantRecord, PolicyError> {
        let err = |e: redb::Error| PolicyError(e.to_string());
        let tx = self.db.begin_read().map_err(|e| err(e.into()))?;
        let grants = tx.open_table(GRANTS).map_err(|e| err(e.into()))?;
        let raw = grants
            .get(grant.as_str())
            .map_err(|e| err(e.into()))?
            .ok_or_else(|| PolicyError(format!("grant {grant} does not exist")))?;
        records::decode(raw.value()).map_err(|e| PolicyError(e.to_string()))
    }

    fn capabilities_blocking(&self, grant: &GrantId) -> Result<CapabilitySet, PolicyError> {
        Ok(CapabilitySet::with(
            self.policy_record_blocking(grant)?
                .capabilities
                .iter()
                .filter_map(|c| Capability::parse(c)),
        ))
    }

    fn read_token(
        &self,
        token: &AccessToken,
    ) -> Result<Option<(TokenRecord, GrantRecord)>, VaultStoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let tokens = tx.open_table(TOKENS).map_err(db_err)?;
        let Some(raw) = tokens.get(&digest(token.expose_secret())).map_err(db_err)? else {
            return Ok(None);
        };
        let record: TokenRecord = records::decode(raw.value())?;
        let grants = tx.open_table(GRANTS).map_err(db_err)?;
        let Some(raw) = grants.get(record.grant_id.as_str()).map_err(db_err)? else {
            return Ok(None);
        };
        Ok(Some((record, records::decode(raw.value())?)))
    }

    /// A live (unexpired) token of `kind` with its grant.
    fn read_live(
        &self,
        token: &AccessToken,
        kind: TokenKind,
    ) -> Result<Option<(TokenRecord, GrantRecord)>, VaultStoreError> {
        Ok(self
            .read_token(token)?
            .filter(|(record, _)| record.kind == kind && live(record, now())))
    }

    fn create_grant_blocking(
        &self,
        draft: &GrantDraft,
        code: &IssuedToken,
    ) -> Result<(), VaultStoreError> {
        let (identity, recipient) = new_identity();
        let record = GrantRecord {
            label: String::new(),
            capabilities: draft
                .capabilities
                .iter()
                .map(|c| c.as_str().to_owned())
                .collect(),
            client_id: Some(draft.client.as_str().to_owned()),
            redirect_uri: Some(draft.redirect_uri.clone()),
            resource: Some(draft.resource.clone()),
            scope: Some(draft.scope.clone()),
            code_challenge: Some(draft.code_challenge.as_str().to_owned()),
            account_digest: Some(draft.account_digest.clone()),
            ..GrantRecord::new(
                draft.id.as_str(),
                &recipient,
                seal(&Sealable::Tokens(&draft.upstream), &recipient)?,
            )
        };
        let identity = identity_text(&identity);
        self.write(|w| {
            w.put_grant(&record)?;
            w.issue(&record.id, &identity, code, TokenKind::Code, false)
        })
    }

    fn redeem_code_blocking(
        &self,
        code: &AccessToken,
        pair: &TokenPair,
    ) -> Result<Redemption, VaultStoreError> {
        let secret = code.expose_secret();
        let key = digest(secret);
        let outcome = self.write(|w| {
            let Some(mut record) = w.token(&key)?.filter(|t| t.kind == TokenKind::Code) else {
                return Ok((Redemption::Revoked, None));
            };
            let Some(mut grant) = w.grant(&record.grant_id)? else {
                return Ok((Redemption::Revoked, None));
            };
            let identity = match unwrap_identity(&record, secret) {
                Some(identity) if !grant.code_used => identity,
                // Used before (its wrapped key is gone): a replayed code revokes the grant.
                _ => {
                    w.remove_grant(&grant.id)?;
                    return Ok((Redemption::Revoked, Some(grant.id)));
                }
            };
            w.issue(&grant.id, &identity, &pair.access, TokenKind::Access, false)?;
            w.issue(
                &grant.id,
                &identity,
                &pair.refresh,
                TokenKind::Refresh,
                false,
            )?;
            // The code stays until it expires, without its key, so a replay is recognised.
            record.wrapped_identity = None;
            w.put_token(&key, &record)?;
            grant.code_used = true;
            grant.refresh_current = Some(hex(&digest(pair.refresh.token.expose_secret())));
            w.put_grant(&grant)?;
            Ok((Redemption::Issued(pair.clone()), None))
        })?;
        if let (_, Some(revoked)) = &outcome {
            self.cache().forget_grant(&GrantId::new(revoked.clone()));
        }
        Ok(outcome.0)
    }

    fn rotate_blocking(
        &self,
        refresh: &AccessToken,
        pair: &TokenPair,
    ) -> Result<Redemption, VaultStoreError> {
        let secret = refresh.expose_secret();
        let key = digest(secret);
        let outcome = self.write(|w| {
            let Some(record) = w
                .token(&key)?
                .filter(|t| t.kind == TokenKind::Refresh && live(t, now()))
            else {
                return Ok((Redemption::Revoked, None));
            };
            let Some(mut grant) = w.grant(&record.grant_id)? else {
                return Ok((Redemption::Revoked, None));
            };
            match decide(grant.role_of(&hex(&key))) {
                RefreshDecision::Revoke => {
                    w.remove_grant(&grant.id)?;
                    Ok((Redemption::Revoked, Some(grant.id)))
                }
                RefreshDecision::Replay => {
                    let replayed = grant
                        .replay
                        .as_deref()
                        .and_then(|r| unlock(r, secret, &grant.id, REPLAY_PURPOSE))
                        .and_then(|plain| serde_json::from_slice::<IssuedPairRecord>(&plain).ok())
                        .ok_or_else(|| {
                            VaultStoreError::Corrupt("the last refresh answer does not open".into())
                        })?;
                    Ok((Redemption::Issued(replayed.to_pair()), None))
                }
                RefreshDecision::Rotate => {
                    let identity = unwrap_identity(&record, secret).ok_or_else(|| {
                        VaultStoreError::Corrupt("refresh token does not unwrap its grant".into())
                    })?;
                    w.issue(&grant.id, &identity, &pair.access, TokenKind::Access, true)?;
                    w.issue(
                        &grant.id,
                        &identity,
                        &pair.refresh,
                        TokenKind::Refresh,
                        false,
                    )?;
                    // The token two generations back can no longer open anything.
                    if let Some(previous) =
                        grant.refresh_previous.as_deref().and_then(records::unhex)
                        && let Some(mut old) = w.token(&previous)?
                    {
                        old.wrapped_identity = None;
                        w.put_token(&previous, &old)?;
                    }
                    let answer =
                        serde_json::to_vec(&IssuedPairRecord::from_pair(pair)).map_err(db_err)?;
                    grant.replay = Some(lock(
                        &Zeroizing::new(answer),
                        secret,
                        &grant.id,
                        REPLAY_PURPOSE,
                    )?);
                    grant.refresh_previous = grant.refresh_current.take();
                    grant.refresh_current = Some(hex(&digest(pair.refresh.token.expose_secret())));
                    grant.successor_used = false;
                    w.put_grant(&grant)?;
                    Ok((Redemption::Issued(pair.clone()), None))
                }
            }
        })?;
        if let (_, Some(revoked)) = &outcome {
            self.cache().forget_grant(&GrantId::new(revoked.clone()));
        }
        Ok(outcome.0)
    }

    fn revoke_blocking(
        &self,
        token: &AccessToken,
        client: &ClientId,
    ) -> Result<Option<GrantId>, VaultStoreError> {
        let key = digest(token.expose_secret());
        self.write(|w| {
            let Some(record) = w.token(&key)? else {
                return Ok(None);
            };
            let Some(grant) = w.grant(&record.grant_id)? else {
                return Ok(None);
            };
            if grant.client_id.as_deref() != Some(client.as_str()) {
                return Ok(None);
            }
            match record.kind {
                TokenKind::Access => {
                    w.tokens.remove(&key).map_err(db_err)?;
                    w.index.remove(grant.id.as_str(), &key).map_err(db_err)?;
                }
                TokenKind::Refresh | TokenKind::Code => w.remove_grant(&grant.id)?,
            }
            Ok(Some(GrantId::new(grant.id)))
        })
    }

    fn store_upstream_blocking(
        &self,
        grant: &GrantId,
        tokens: &UpstreamTokens,
    ) -> Result<(), VaultError> {
        self.write(|w| {
            let Some(mut record) = w.grant(grant.as_str())? else {
                return Ok(false);
            };
            let recipient: age::x25519::Recipient = record
                .recipient
                .parse()
                .map_err(|_| VaultStoreError::Corrupt("stored recipient is malformed".into()))?;
            record.sealed_props = seal(&Sealable::Tokens(tokens), &recipient)?;
            w.put_grant(&record)?;
            Ok(true)
        })?
        .then_some(())
        .ok_or(VaultError::InvalidToken)
    }

    /// Deletes expired tokens, grants no live token can open any more, and registered clients
    /// that were never used within `unused_client_secs`. Returns how many records went.
    ///
    /// # Errors
    /// [`VaultStoreError`]; nothing is deleted then.
    pub fn sweep(
        &self,
        unused_client_secs: i64,
        retention: Retention,
    ) -> Result<usize, VaultStoreError> {
        let at = now();
        let removed = self.write(|w| {
            let mut removed = 0;
            let expired: Vec<([u8; 32], String)> = w
                .tokens
                .iter()
                .map_err(db_err)?
                .filter_map(Result::ok)
                .filter_map(|(k, v)| {
                    let t: TokenRecord = records::decode(v.value()).ok()?;
                    (!live(&t, at)).then(|| (*k.value(), t.grant_id))
                })
                .collect();
            for (key, grant) in &expired {
                w.tokens.remove(key).map_err(db_err)?;
                w.index.remove(grant.as_str(), key).map_err(db_err)?;
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
        })?;
        let clients = self.sweep_clients(at - unused_client_secs)?;
        let events = self.sweep_events(at, retention)?
            + self.sweep_tombstones(at - retention.max_age_secs)?;
        self.cache().opened.clear();
        Ok(removed + clients + events)
    }
}

impl crate::outbound::upstream_oauth::RegistrationMemory for RedbVault {
    fn recall(&self, key: &str) -> Option<String> {
        let tx = self.db.begin_read().ok()?;
        let meta = tx.open_table(META).ok()?;
        meta.get(key).ok().flatten().map(|v| v.value().to_owned())
    }

    fn remember(&self, key: &str, client_id: &str) -> Result<(), String> {
        let tx = self.db.begin_write().map_err(|e| e.to_string())?;
        tx.open_table(META)
            .map_err(|e| e.to_string())?
            .insert(key, client_id)
            .map_err(|e| e.to_string())?;
        tx.commit().map_err(|e| e.to_string())
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, VaultError> + Send + 'static,
) -> Result<T, VaultError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|_| Err(VaultError::Unexpected("vault task failed".into())))
}

impl TokenVault for RedbVault {
    async fn open(&self, token: &AccessToken) -> Result<OpenedGrant, VaultError> {
        let key = digest(token.expose_secret());
        let started = Instant::now();
        if let Some((opened, until)) = self.cache().opened.get(&key)
            && *until > started
        {
            return Ok(opened.clone());
        }
        let vault = self.clone();
        let token = token.clone();
        let (opened, expires_at) =
            blocking(move || vault.open_blocking(&token, &[TokenKind::Access])).await?;
        let mut until = started + OPEN_CACHE_TTL;
        if let Some(expiry) = expires_at {
            let left = u64::try_from(expiry - now()).unwrap_or(0);
            until = until.min(started + Duration::from_secs(left));
        }
        let mut cache = self.cache();
        if cache.opened.len() >= CACHE_LIMIT {
            cache.opened.clear();
        }
        cache.opened.insert(key, (opened.clone(), until));
        Ok(opened)
    }

    async fn open_fresh(&self, token: &AccessToken) -> Result<OpenedGrant, VaultError> {
        let vault = self.clone();
        let token = token.clone();
        blocking(move || {
            vault
                .open_blocking(&token, &[TokenKind::Access, TokenKind::Refresh])
                .map(|(o, _)| o)
        })
        .await
    }

    async fn create_grant(&self, draft: GrantDraft, code: IssuedToken) -> Result<(), VaultError> {
        let vault = self.clone();
        blocking(move || Ok(vault.create_grant_blocking(&draft, &code)?)).await
    }

    async fn code_binding(&self, code: &AccessToken) -> Result<Option<CodeBinding>, VaultError> {
        let vault = self.clone();
        let code = code.clone();
        blocking(move || {
            let Some((_, grant)) = vault.read_live(&code, TokenKind::Code)? else {
                return Ok(None);
            };
            Ok(Some(CodeBinding {
                grant: GrantId::new(grant.id.clone()),
                client: ClientId::new(grant.client_id.clone().unwrap_or_default()),
                redirect_uri: grant.redirect_uri.clone().unwrap_or_default(),
                resource: grant.resource.clone().unwrap_or_default(),
                scope: grant.scope.clone().unwrap_or_default(),
                code_challenge: CodeChallenge::from_stored(
                    grant.code_challenge.clone().unwrap_or_default(),
                ),
                used: grant.code_used,
            }))
        })
        .await
    }

    async fn redeem_code(
        &self,
        code: &AccessToken,
        pair: TokenPair,
    ) -> Result<Redemption, VaultError> {
        let vault = self.clone();
        let code = code.clone();
        blocking(move || Ok(vault.redeem_code_blocking(&code, &pair)?)).await
    }

    async fn refresh_binding(
        &self,
        refresh: &AccessToken,
    ) -> Result<Option<RefreshBinding>, VaultError> {
        let vault = self.clone();
        let refresh = refresh.clone();
        blocking(move || {
            let Some((_, grant)) = vault.read_live(&refresh, TokenKind::Refresh)? else {
                return Ok(None);
            };
            let role = grant.role_of(&hex(&digest(refresh.expose_secret())));
            Ok(Some(RefreshBinding {
                grant: GrantId::new(grant.id.clone()),
                client: ClientId::new(grant.client_id.clone().unwrap_or_default()),
                scope: grant.scope.clone().unwrap_or_default(),
                resource: grant.resource.clone().unwrap_or_default(),
                role,
            }))
        })
        .await
    }

    async fn rotate_refresh(
        &self,
        refresh: &AccessToken,
        pair: TokenPair,
    ) -> Result<Redemption, VaultError> {
        let vault = self.clone();
        let refresh = refresh.clone();
        blocking(move || Ok(vault.rotate_blocking(&refresh, &pair)?)).await
    }

    async fn store_upstream(
        &self,
        grant: &GrantId,
        tokens: UpstreamTokens,
    ) -> Result<(), VaultError> {
        let vault = self.clone();
        let id = grant.clone();
        blocking(move || vault.store_upstream_blocking(&id, &tokens)).await?;
        self.cache().forget_grant(grant);
        Ok(())
    }

    async fn revoke_token(&self, token: &AccessToken, client: &ClientId) -> Result<(), VaultError> {
        let vault = self.clone();
        let token = token.clone();
        let client = client.clone();
        if let Some(grant) = blocking(move || Ok(vault.revoke_blocking(&token, &client)?)).await? {
            self.cache().forget_grant(&grant);
        }
        Ok(())
    }

    async fn remove_grant(&self, grant: &GrantId) -> Result<(), VaultError> {
        let vault = self.clone();
        let id = grant.clone();
        blocking(move || Ok(vault.delete_grant(&id)?)).await
    }

    async fn grants_of(&self, account_digest: &str) -> Result<Vec<GrantSummary>, VaultError> {
        let vault = self.clone();
        let digest = account_digest.to_owned();
        blocking(move || Ok(vault.grants_of_blocking(&digest)?)).await
    }

    async fn set_notify_settings(
        &self,
        grant: &GrantId,
        settings: NotifySettings,
    ) -> Result<(), VaultError> {
        let record = records::NotifyRecord::from_settings(&settings);
        self.update_policy(grant, move |g| g.notify = Some(record))
            .await
    }

    async fn set_recipients(&self, grant: &GrantId, rule: RecipientRule) -> Result<(), VaultError> {
        self.update_policy(grant, move |g| g.recipients = Some(rule.to_stored()))
            .await
    }

    async fn set_review_only(&self, grant: &GrantId, review_only: bool) -> Result<(), VaultError> {
        self.update_policy(grant, move |g| g.review_only = review_only)
            .await
    }

    async fn set_capabilities(
        &self,
        grant: &GrantId,
        capabilities: CapabilitySet,
    ) -> Result<(), VaultError> {
        let names = capabilities.iter().map(|c| c.as_str().to_owned()).collect();
        self.update_policy(grant, move |g| g.capabilities = names)
            .await?;
        self.cache().forget_grant(grant);
        Ok(())
    }

    async fn revoked_of(&self, account_digest: &str) -> Result<Vec<GrantSummary>, VaultError> {
        let vault = self.clone();
        let digest = account_digest.to_owned();
        blocking(move || Ok(vault.revoked_of_blocking(&digest)?)).await
    }

    async fn audit_events(
        &self,
        grant: &GrantId,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, VaultError> {
        let vault = self.clone();
        let id = grant.clone();
        blocking(move || Ok(vault.events_blocking(id.as_str(), limit)?)).await
    }
}

impl RedbVault {
    fn grants_of_blocking(
        &self,
        account_digest: &str,
    ) -> Result<Vec<GrantSummary>, VaultStoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let grants = tx.open_table(GRANTS).map_err(db_err)?;
        let mut out = Vec::new();
        for entry in grants.iter().map_err(db_err)? {
            let (_, v) = entry.map_err(db_err)?;
            let g: GrantRecord = records::decode(v.value())?;
            // A grant whose code was never redeemed is not a connection yet.
            if g.account_digest.as_deref() != Some(account_digest) || !g.code_used {
                continue;
            }
            let last_used_at = self.last_tool_call_blocking(&g.id)?;
            out.push(GrantSummary {
                grant: GrantId::new(g.id.clone()),
                client: ClientId::new(g.client_id.clone().unwrap_or_default()),
                redirect_uri: g.redirect_uri.clone().unwrap_or_default(),
                created_at: g.created_at,
                last_used_at,
                capabilities: CapabilitySet::with(
                    g.capabilities.iter().filter_map(|c| Capability::parse(c)),
                ),
                recipients: g
                    .recipients
                    .as_deref()
                    .map(RecipientRule::from_stored)
                    .unwrap_or_default(),
                notify: g
                    .notify
                    .clone()
                    .map(records::NotifyRecord::into_settings)
                    .unwrap_or_default(),
                review_only: g.review_only,
            });
        }
        out.sort_by_key(|g| std::cmp::Reverse(g.created_at));
        Ok(out)
    }

    fn revoked_of_blocking(
        &self,
        account_digest: &str,
    ) -> Result<Vec<GrantSummary>, VaultStoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let table = tx.open_table(REVOKED).map_err(db_err)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(db_err)? {
            let (k, v) = entry.map_err(db_err)?;
            let t: records::Tombstone = records::decode(v.value())?;
            if t.account_digest != account_digest {
                continue;
            }
            out.push(GrantSummary {
                grant: GrantId::new(k.value()),
                client: ClientId::new(t.client_id),
                redirect_uri: t.redirect_uri,
                created_at: t.created_at,
                last_used_at: Some(t.revoked_at),
                capabilities: CapabilitySet::read_only(),
                recipients: RecipientRule::default(),
                notify: NotifySettings::default(),
                review_only: false,
            });
        }
        out.sort_by_key(|g| std::cmp::Reverse(g.last_used_at));
        Ok(out)
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
                    let t: records::Tombstone = records::decode(v.value()).ok()?;
                    (t.revoked_at < before).then(|| k.value().to_owned())
                })
                .collect();
            for id in &old {
                w.revoked.remove(id.as_str()).map_err(db_err)?;
                RedbVault::remove_events(&mut w.audit, id)?;
            }
            Ok(old.len())
        })
    }

    fn recipients_blocking(&self, grant: &GrantId) -> Result<RecipientRule, PolicyError> {
        Ok(self
            .policy_record_blocking(grant)?
            .recipients
            .as_deref()
            .map(RecipientRule::from_stored)
            .unwrap_or_default())
    }

    /// Changes one part of a grant's policy in its record; an unknown grant is an invalid
    /// token (it ended).
    async fn update_policy(
        &self,
        grant: &GrantId,
        change: impl FnOnce(&mut GrantRecord) + Send + 'static,
    ) -> Result<(), VaultError> {
        let vault = self.clone();
        let id = grant.clone();
        let found = blocking(move || {
            Ok(vault.write(|w| {
                let Some(mut record) = w.grant(id.as_str())? else {
                    return Ok(false);
                };
                change(&mut record);
                w.put_grant(&record)?;
                Ok(true)
            })?)
        })
        .await?;
        found.then_some(()).ok_or(VaultError::InvalidToken)
    }
}

impl Policy for RedbVault {
    async fn notify_settings(&self, grant: &GrantId) -> Result<NotifySettings, PolicyError> {
        let vault = self.clone();
        let id = grant.clone();
        tokio::task::spawn_blocking(move || {
            Ok(vault
                .policy_record_blocking(&id)?
                .notify
                .map(records::NotifyRecord::into_settings)
                .unwrap_or_default())
        })
        .await
        .unwrap_or_else(|_| Err(PolicyError("policy task failed".into())))
    }

    async fn recipients(&self, grant: &GrantId) -> Result<RecipientRule, PolicyError> {
        // Read fresh each time: sending is rare, and a tightened rule must apply at once.
        let vault = self.clone();
        let id = grant.clone();
        tokio::task::spawn_blocking(move || vault.recipients_blocking(&id))
            .await
            .unwrap_or_else(|_| Err(PolicyError("policy task failed".into())))
    }

    async fn review_only(&self, grant: &GrantId) -> Result<bool, PolicyError> {
        // Read fresh each time, like the recipient rule: a tightened rule applies at once.
        let vault = self.clone();
        let id = grant.clone();
        tokio::task::spawn_blocking(move || {
            vault
                .policy_record_blocking(&id)
                .map(|record| record.review_only)
        })
        .await
        .unwrap_or_else(|_| Err(PolicyError("policy task failed".into())))
    }

    async fn capabilities(&self, grant: &GrantId) -> Result<CapabilitySet, PolicyError> {
        if let Some(cached) = self.cache().policies.get(grant) {
            return Ok(cached.clone());
        }
        let vault = self.clone();
        let id = grant.clone();
        let capabilities = tokio::task::spawn_blocking(move || vault.capabilities_blocking(&id))
            .await
            .unwrap_or_else(|_| Err(PolicyError("policy task failed".into())))?;
        let mut cache = self.cache();
        if cache.policies.len() >= CACHE_LIMIT {
            cache.policies.clear();
        }
        cache.policies.insert(grant.clone(), capabilities.clone());
        Ok(capabilities)
    }
}

#[cfg(test)]
mod tests;
