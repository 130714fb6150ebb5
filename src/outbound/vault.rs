//! The redb vault: grants, their hashed tokens, and upstream credentials that only a live token
//! of the grant can open (README "Vault"; schema in docs/storage-schema.md).
//!
//! - Tokens are stored only as SHA-256 digests.
//! - Each grant's upstream credential ("props") is sealed with age to a per-grant X25519
//!   recipient; the recipient is stored in clear so props can be re-sealed after a refresh.
//! - The grant's age identity is stored only wrapped (ChaCha20-Poly1305) under a key derived
//!   with HKDF-SHA256 from each live token. A copy of the database opens nothing.
//!
//! redb is synchronous: every call runs on the blocking pool. Opened grants and policies are
//! cached in memory (bounded, opened grants for at most [`OPEN_CACHE_TTL`] and never past the
//! token's expiry); every write through this vault purges the grant's entries, and redb has one
//! owning process, so a change takes effect on the next request.

use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use age::secrecy::ExposeSecret as _;
use base64::{Engine as _, engine::general_purpose::STANDARD};
use chacha20poly1305::{
    ChaCha20Poly1305, KeyInit as _,
    aead::{Aead as _, AeadCore as _, OsRng},
};
use redb::{Database, ReadableDatabase as _, ReadableTable as _, TableDefinition};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::domain::{
    grant::{AccessToken, Capability, CapabilitySet, GrantId, UpstreamCredential},
    ports::{OpenedGrant, Policy, PolicyError, TokenVault, VaultError},
    secret::SecretString,
};

/// Storage schema version (docs/storage-schema.md).
pub const SCHEMA_VERSION: &str = "1";
const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
const GRANTS: TableDefinition<&str, &[u8]> = TableDefinition::new("grants_v1");
const TOKENS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("tokens_v1");

const HKDF_SALT: &[u8] = b"mailconnect/vault/v1";
/// The grant id of the single-user self-host client.
pub const SELF_HOST_GRANT: &str = "self-host";

/// A grant as stored: nothing in it is secret.
#[derive(Debug, Serialize, Deserialize)]
struct GrantRecord {
    id: String,
    created_at: i64,
    label: String,
    /// age X25519 recipient (public).
    recipient: String,
    /// The upstream credential, age-encrypted to `recipient` (base64).
    sealed_props: String,
    capabilities: Vec<String>,
}

/// A token as stored under its digest.
#[derive(Debug, Serialize, Deserialize)]
struct TokenRecord {
    grant_id: String,
    kind: String,
    expires_at: Option<i64>,
    /// The grant's age identity, encrypted under a key derived from the token (base64 of
    /// nonce ‖ ciphertext).
    wrapped_identity: String,
}

/// The upstream credential inside the sealed props.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Props {
    Basic { username: String, password: String },
    Bearer { token: String },
}

/// What a new grant holds.
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

/// A token that will open a grant.
#[derive(Debug)]
pub struct NewToken<'a> {
    /// The token.
    pub token: &'a AccessToken,
    /// `access`, `refresh`, `code`: bound into the key derivation.
    pub kind: &'a str,
    /// Unix seconds, if it expires.
    pub expires_at: Option<i64>,
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
}

fn db_err(e: impl std::fmt::Display) -> VaultStoreError {
    VaultStoreError::Database(e.to_string())
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

/// The redb-backed token vault and policy store.
#[derive(Debug, Clone)]
pub struct RedbVault {
    db: Arc<Database>,
    cache: Arc<Mutex<Cache>>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn wrapping_key(token: &str, grant: &str, kind: &str) -> Zeroizing<[u8; 32]> {
    let hk = hkdf::Hkdf::<Sha256>::new(Some(HKDF_SALT), token.as_bytes());
    let mut key = Zeroizing::new([0u8; 32]);
    let info = format!("wrap-identity\0{grant}\0{kind}");
    // 32 bytes is always a valid HKDF-SHA256 output length.
    let _ = hk.expand(info.as_bytes(), key.as_mut());
    key
}

fn wrap(identity: &str, token: &str, grant: &str, kind: &str) -> Result<String, VaultStoreError> {
    let key = wrapping_key(token, grant, kind);
    let cipher = ChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(key.as_slice()));
    let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
    let sealed = cipher
        .encrypt(&nonce, identity.as_bytes())
        .map_err(|_| VaultStoreError::Crypto("wrap".into()))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    Ok(STANDARD.encode(out))
}

fn unwrap(wrapped: &str, token: &str, grant: &str, kind: &str) -> Option<Zeroizing<String>> {
    let raw = STANDARD.decode(wrapped).ok()?;
    if raw.len() < 12 {
        return None;
    }
    let (nonce, sealed) = raw.split_at(12);
    let key = wrapping_key(token, grant, kind);
    let cipher = ChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(key.as_slice()));
    let plain = Zeroizing::new(cipher.decrypt(nonce.into(), sealed).ok()?);
    String::from_utf8(plain.to_vec()).ok().map(Zeroizing::new)
}

fn seal(
    credential: &UpstreamCredential,
    recipient: &age::x25519::Recipient,
) -> Result<String, VaultStoreError> {
    let props = match credential {
        UpstreamCredential::Basic { username, password } => Props::Basic {
            username: username.clone(),
            password: password.expose_secret().to_owned(),
        },
        UpstreamCredential::Bearer(token) => Props::Bearer {
            token: token.expose_secret().to_owned(),
        },
    };
    let plain = Zeroizing::new(
        serde_json::to_vec(&props).map_err(|e| VaultStoreError::Crypto(e.to_string()))?,
    );
    drop(props);
    let sealed =
        age::encrypt(recipient, &plain).map_err(|e| VaultStoreError::Crypto(e.to_string()))?;
    Ok(STANDARD.encode(sealed))
}

fn open_props(sealed: &str, identity: &age::x25519::Identity) -> Option<UpstreamCredential> {
    let raw = STANDARD.decode(sealed).ok()?;
    let plain = Zeroizing::new(age::decrypt(identity, &raw).ok()?);
    Some(match serde_json::from_slice::<Props>(&plain).ok()? {
        Props::Basic { username, password } => UpstreamCredential::Basic {
            username,
            password: SecretString::new(password),
        },
        Props::Bearer { token } => UpstreamCredential::Bearer(SecretString::new(token)),
    })
}

impl RedbVault {
    /// Opens (or creates) the vault database at `path`.
    ///
    /// # Errors
    /// [`VaultStoreError::Database`] when the file can't be opened or is from a newer schema.
    pub fn open(path: &Path) -> Result<Self, VaultStoreError> {
        let db = Database::create(path).map_err(db_err)?;
        let tx = db.begin_write().map_err(db_err)?;
        {
            let mut meta = tx.open_table(META).map_err(db_err)?;
            let existing = meta
                .get("schema_version")
                .map_err(db_err)?
                .map(|v| v.value().to_owned());
            match existing.as_deref() {
                None => {
                    meta.insert("schema_version", SCHEMA_VERSION)
                        .map_err(db_err)?;
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
        }
        tx.commit().map_err(db_err)?;
        Ok(Self {
            db: Arc::new(db),
            cache: Arc::default(),
        })
    }

    /// Creates a grant sealed for `token`, replacing any grant with the same id (and its tokens).
    ///
    /// # Errors
    /// [`VaultStoreError`] on database or crypto failure; nothing is written then.
    pub fn put_grant(
        &self,
        grant: &NewGrant<'_>,
        token: &NewToken<'_>,
    ) -> Result<(), VaultStoreError> {
        let NewGrant {
            id: grant,
            label,
            credential,
            capabilities,
        } = *grant;
        let NewToken {
            token,
            kind,
            expires_at,
        } = *token;
        let identity = age::x25519::Identity::generate();
        let recipient = identity.to_public();
        let record = GrantRecord {
            id: grant.as_str().to_owned(),
            created_at: chrono::Utc::now().timestamp(),
            label: label.to_owned(),
            recipient: recipient.to_string(),
            sealed_props: seal(credential, &recipient)?,
            capabilities: capabilities.iter().map(|c| c.as_str().to_owned()).collect(),
        };
        let identity_text = identity.to_string();
        let token_record = TokenRecord {
            grant_id: record.id.clone(),
            kind: kind.to_owned(),
            expires_at,
            wrapped_identity: wrap(
                identity_text.expose_secret(),
                token.expose_secret(),
                &record.id,
                kind,
            )?,
        };
        let grant_json = serde_json::to_vec(&record).map_err(db_err)?;
        let token_json = serde_json::to_vec(&token_record).map_err(db_err)?;
        let tx = self.db.begin_write().map_err(db_err)?;
        {
            let mut tokens = tx.open_table(TOKENS).map_err(db_err)?;
            remove_tokens_of(&mut tokens, &record.id)?;
            tokens
                .insert(&digest(token.expose_secret()), token_json.as_slice())
                .map_err(db_err)?;
            let mut grants = tx.open_table(GRANTS).map_err(db_err)?;
            grants
                .insert(record.id.as_str(), grant_json.as_slice())
                .map_err(db_err)?;
        }
        tx.commit().map_err(db_err)?;
        self.cache().forget_grant(grant);
        Ok(())
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Deletes a grant and every token of it (crypto-shredding: its wrapped keys go too).
    ///
    /// # Errors
    /// [`VaultStoreError::Database`] on failure; nothing is deleted then.
    pub fn remove_grant(&self, grant: &GrantId) -> Result<(), VaultStoreError> {
        let tx = self.db.begin_write().map_err(db_err)?;
        {
            let mut tokens = tx.open_table(TOKENS).map_err(db_err)?;
            remove_tokens_of(&mut tokens, grant.as_str())?;
            tx.open_table(GRANTS)
                .map_err(db_err)?
                .remove(grant.as_str())
                .map_err(db_err)?;
        }
        tx.commit().map_err(db_err)?;
        self.cache().forget_grant(grant);
        Ok(())
    }

    /// Opens a grant from the database; also returns the token's expiry.
    fn open_blocking(&self, token: &AccessToken) -> Result<(OpenedGrant, Option<i64>), VaultError> {
        let unexpected = |e: redb::Error| VaultError::Unexpected(e.to_string());
        let tx = self.db.begin_read().map_err(|e| unexpected(e.into()))?;
        let tokens = tx.open_table(TOKENS).map_err(|e| unexpected(e.into()))?;
        let Some(raw) = tokens
            .get(&digest(token.expose_secret()))
            .map_err(|e| unexpected(e.into()))?
        else {
            return Err(VaultError::InvalidToken);
        };
        let record: TokenRecord = serde_json::from_slice(raw.value())
            .map_err(|e| VaultError::Unexpected(format!("token record: {e}")))?;
        if record
            .expires_at
            .is_some_and(|t| t <= chrono::Utc::now().timestamp())
        {
            return Err(VaultError::InvalidToken);
        }
        let grants = tx.open_table(GRANTS).map_err(|e| unexpected(e.into()))?;
        let Some(raw) = grants
            .get(record.grant_id.as_str())
            .map_err(|e| unexpected(e.into()))?
        else {
            return Err(VaultError::InvalidToken);
        };
        let grant: GrantRecord = serde_json::from_slice(raw.value())
            .map_err(|e| VaultError::Unexpected(format!("grant record: {e}")))?;
        // A token whose derived key does not unwrap the identity is not this grant's token.
        let identity_text = unwrap(
            &record.wrapped_identity,
            token.expose_secret(),
            &grant.id,
            &record.kind,
        )
        .ok_or(VaultError::InvalidToken)?;
        let identity: age::x25519::Identity = identity_text
            .parse()
            .map_err(|_| VaultError::Unexpected("stored identity is malformed".into()))?;
        let credential = open_props(&grant.sealed_props, &identity)
            .ok_or_else(|| VaultError::Unexpected("sealed props do not open".into()))?;
        Ok((
            OpenedGrant {
                grant: GrantId::new(grant.id),
                credential,
            },
            record.expires_at,
        ))
    }

    fn capabilities_blocking(&self, grant: &GrantId) -> Result<CapabilitySet, PolicyError> {
        let err = |e: redb::Error| PolicyError(e.to_string());
        let tx = self.db.begin_read().map_err(|e| err(e.into()))?;
        let grants = tx.open_table(GRANTS).map_err(|e| err(e.into()))?;
        let raw = grants
            .get(grant.as_str())
            .map_err(|e| err(e.into()))?
            .ok_or_else(|| PolicyError(format!("grant {grant} does not exist")))?;
        let record: GrantRecord =
            serde_json::from_slice(raw.value()).map_err(|e| PolicyError(e.to_string()))?;
        Ok(CapabilitySet::with(
            record
                .capabilities
                .iter()
                .filter_map(|c| Capability::parse(c)),
        ))
    }
}

fn remove_tokens_of(
    tokens: &mut redb::Table<'_, &[u8; 32], &[u8]>,
    grant: &str,
) -> Result<(), VaultStoreError> {
    let stale: Vec<[u8; 32]> = tokens
        .iter()
        .map_err(db_err)?
        .filter_map(Result::ok)
        .filter(|(_, v)| {
            serde_json::from_slice::<TokenRecord>(v.value()).is_ok_and(|t| t.grant_id == grant)
        })
        .map(|(k, _)| *k.value())
        .collect();
    for key in &stale {
        tokens.remove(key).map_err(db_err)?;
    }
    Ok(())
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(f).await.ok()
}

impl TokenVault for RedbVault {
    async fn open(&self, token: &AccessToken) -> Result<OpenedGrant, VaultError> {
        let key = digest(token.expose_secret());
        let now = Instant::now();
        if let Some((opened, until)) = self.cache().opened.get(&key)
            && *until > now
        {
            return Ok(opened.clone());
        }
        let vault = self.clone();
        let token = token.clone();
        let (opened, expires_at) = blocking(move || vault.open_blocking(&token))
            .await
            .unwrap_or_else(|| Err(VaultError::Unexpected("vault task failed".into())))?;
        let mut until = now + OPEN_CACHE_TTL;
        if let Some(expiry) = expires_at {
            let left = u64::try_from(expiry - chrono::Utc::now().timestamp()).unwrap_or(0);
            until = until.min(now + Duration::from_secs(left));
        }
        let mut cache = self.cache();
        if cache.opened.len() >= CACHE_LIMIT {
            cache.opened.clear();
        }
        cache.opened.insert(key, (opened.clone(), until));
        Ok(opened)
    }
}

impl Policy for RedbVault {
    async fn capabilities(&self, grant: &GrantId) -> Result<CapabilitySet, PolicyError> {
        if let Some(cached) = self.cache().policies.get(grant) {
            return Ok(cached.clone());
        }
        let vault = self.clone();
        let id = grant.clone();
        let capabilities = blocking(move || vault.capabilities_blocking(&id))
            .await
            .unwrap_or_else(|| Err(PolicyError("policy task failed".into())))?;
        let mut cache = self.cache();
        if cache.policies.len() >= CACHE_LIMIT {
            cache.policies.clear();
        }
        cache.policies.insert(grant.clone(), capabilities.clone());
        Ok(capabilities)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_db() -> (tempfile_path::TempPath, RedbVault) {
        let path = tempfile_path::TempPath::new();
        let vault = RedbVault::open(&path.0).unwrap();
        (path, vault)
    }

    mod tempfile_path {
        pub struct TempPath(pub std::path::PathBuf);
        impl TempPath {
            pub fn new() -> Self {
                let n: u64 = rand::random();
                Self(std::env::temp_dir().join(format!("mailconnect-vault-{n:x}.redb")))
            }
        }
        impl Drop for TempPath {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    fn put(
        vault: &RedbVault,
        id: &GrantId,
        credential: &UpstreamCredential,
        token: &AccessToken,
        expires_at: Option<i64>,
    ) {
        let grant = NewGrant {
            id,
            label: "test",
            credential,
            capabilities: &CapabilitySet::read_only(),
        };
        let token = NewToken {
            token,
            kind: "access",
            expires_at,
        };
        vault.put_grant(&grant, &token).unwrap();
    }

    fn bearer(secret: &str) -> UpstreamCredential {
        UpstreamCredential::Bearer(SecretString::new(secret))
    }

    #[tokio::test]
    async fn the_grants_token_opens_its_credential() {
        let (_p, vault) = temp_db();
        let grant = GrantId::new("g1");
        let token = AccessToken::new("g1.secret-token-value");
        put(&vault, &grant, &bearer("upstream-1"), &token, None);
        let opened = vault.open(&token).await.unwrap();
        assert_eq!(
            (opened.grant, opened.credential),
            (grant.clone(), bearer("upstream-1"))
        );
        assert_eq!(
            vault.capabilities(&grant).await.unwrap(),
            CapabilitySet::read_only()
        );
        assert_eq!(
            vault.open(&AccessToken::new("g1.other")).await.unwrap_err(),
            VaultError::InvalidToken
        );
    }

    /// design.md §4: a copy of the database alone yields no upstream credential.
    #[tokio::test]
    async fn the_database_file_holds_no_secret_in_the_clear() {
        let (p, vault) = temp_db();
        let token = AccessToken::new("g1.the-client-token");
        put(
            &vault,
            &GrantId::new("g1"),
            &UpstreamCredential::Basic {
                username: "alice".into(),
                password: SecretString::new("hunter2-password"),
            },
            &token,
            None,
        );
        drop(vault);
        let bytes = std::fs::read(&p.0).unwrap();
        let haystack = String::from_utf8_lossy(&bytes);
        for secret in ["hunter2-password", "the-client-token", "AGE-SECRET-KEY"] {
            assert!(
                !haystack.contains(secret),
                "{secret} is readable in the database file"
            );
        }
        // The same file, reopened, still opens with the token: the secret was sealed, not lost.
        let reopened = RedbVault::open(&p.0).unwrap();
        assert!(reopened.open(&token).await.is_ok());
    }

    #[tokio::test]
    async fn an_expired_token_opens_nothing() {
        let (_p, vault) = temp_db();
        let token = AccessToken::new("g1.t");
        let past = chrono::Utc::now().timestamp() - 1;
        put(
            &vault,
            &GrantId::new("g1"),
            &bearer("u"),
            &token,
            Some(past),
        );
        assert_eq!(
            vault.open(&token).await.unwrap_err(),
            VaultError::InvalidToken
        );
    }

    #[tokio::test]
    async fn replacing_a_grant_retires_its_old_tokens() {
        let (_p, vault) = temp_db();
        let grant = GrantId::new(SELF_HOST_GRANT);
        let old = AccessToken::new("old-token");
        let new = AccessToken::new("new-token");
        put(&vault, &grant, &bearer("u1"), &old, None);
        put(&vault, &grant, &bearer("u2"), &new, None);
        assert_eq!(
            vault.open(&old).await.unwrap_err(),
            VaultError::InvalidToken
        );
        assert_eq!(vault.open(&new).await.unwrap().credential, bearer("u2"));
        vault.remove_grant(&grant).unwrap();
        assert_eq!(
            vault.open(&new).await.unwrap_err(),
            VaultError::InvalidToken
        );
        assert!(vault.capabilities(&grant).await.is_err());
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let p = tempfile_path::TempPath::new();
        {
            let db = Database::create(&p.0).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(META)
                .unwrap()
                .insert("schema_version", "99")
                .unwrap();
            tx.commit().unwrap();
        }
        let err = RedbVault::open(&p.0).unwrap_err().to_string();
        assert!(err.contains("schema version 99"), "{err}");
    }
}
