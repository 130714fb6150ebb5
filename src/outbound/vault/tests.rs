//! The redb vault: the storage ports' contract (`vault_core::contract`) on a fresh database
//! file each, and what only redb has: the file itself, its schema version, configured grants.

use redb::Database;

use super::{
    BackgroundVault, NewGrant, NotifierKey, NotifierVault, RedbVault, SELF_HOST_GRANT,
    schema::{GRANTS, META},
};
use crate::{
    domain::{
        grant::{AccessToken, CapabilitySet, GrantId, UpstreamCredential},
        ports::{BackgroundStore as _, Policy as _, PolicyError, TokenVault as _, VaultError},
        secret::SecretString,
    },
    outbound::vault_core::{contract, records::GrantRecord, sealing::open_props},
};

struct TempPath(std::path::PathBuf);
impl TempPath {
    fn new() -> Self {
        let n: u64 = rand::random();
        Self(std::env::temp_dir().join(format!("mailconnect-vault-{n:x}.redb")))
    }
}
impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn temp_db() -> (TempPath, RedbVault) {
    let path = TempPath::new();
    let vault = RedbVault::open(&path.0).unwrap();
    (path, vault)
}

fn key() -> NotifierKey {
    let path = std::env::temp_dir().join(format!("notifier-{:x}.key", rand::random::<u64>()));
    let key = NotifierKey::load_or_create(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    key
}

contract::port_contract_tests!(
    fresh: async { temp_db() },
    background: BackgroundVault,
    notifier: NotifierVault,
    key: key(),
);

#[tokio::test]
async fn notifier_grants_are_counted() {
    let (_p, vault) = temp_db();
    let front = BackgroundVault::new(vault.clone(), key().seal());
    assert_eq!(vault.notifier_grants().unwrap(), 0);
    front
        .seal_notifier("acct", &contract::upstream("n"))
        .await
        .unwrap();
    assert_eq!(vault.notifier_grants().unwrap(), 1);
}

fn bearer(secret: &str) -> UpstreamCredential {
    UpstreamCredential::Bearer(SecretString::new(secret))
}

fn configured(
    vault: &RedbVault,
    id: &GrantId,
    credential: &UpstreamCredential,
    token: &AccessToken,
) {
    let grant = NewGrant {
        id,
        label: "test",
        credential,
        capabilities: &CapabilitySet::read_only(),
    };
    vault.put_grant(&grant, token).unwrap();
}

fn grant_record(vault: &RedbVault, grant: &GrantId) -> GrantRecord {
    vault.grant_record(grant.as_str()).unwrap().unwrap()
}

#[tokio::test]
async fn a_configured_grants_token_opens_its_credential() {
    let (_p, vault) = temp_db();
    let grant = GrantId::new("g1");
    let token = AccessToken::new("g1.secret-token-value");
    configured(&vault, &grant, &bearer("upstream-1"), &token);
    let opened = vault.open(&token).await.unwrap();
    assert_eq!(
        (opened.grant, opened.credential, opened.account),
        (grant.clone(), bearer("upstream-1"), None)
    );
    assert_eq!(
        vault.capabilities(&grant).await.unwrap(),
        CapabilitySet::read_only()
    );
    assert_eq!(grant_record(&vault, &grant).label, "test");
}

/// Checklist G10: a copy of the database yields no upstream secret or token.
#[tokio::test]
async fn the_database_file_holds_no_secret_in_the_clear() {
    let (p, vault) = temp_db();
    let token = AccessToken::new("g1.the-client-token");
    configured(
        &vault,
        &GrantId::new("g1"),
        &UpstreamCredential::Basic {
            username: "alice".into(),
            password: SecretString::new("hunter2-password"),
        },
        &token,
    );
    let notifier_key = key();
    let front = BackgroundVault::new(vault.clone(), notifier_key.seal());
    let (grant, pair, mut secrets) = contract::seed_every_secret(&vault, &front).await;
    secrets.extend(["hunter2-password".into(), "the-client-token".into()]);
    drop((front, vault));
    let bytes = std::fs::read(&p.0).unwrap();
    let haystack = String::from_utf8_lossy(&bytes);
    for secret in &secrets {
        assert!(
            !haystack.contains(secret.as_str()),
            "{secret} is readable in the database file"
        );
    }
    let reopened = RedbVault::open(&p.0).unwrap();
    assert!(reopened.open(&token).await.is_ok());
    assert_eq!(
        reopened.open(&pair.access.token).await.unwrap().credential,
        bearer("upstream-oauth-access-secret")
    );
    // The notifier key opens no client grant: their props are sealed to per-grant keys.
    let record = grant_record(&reopened, &grant);
    assert!(open_props(&record.sealed_props, notifier_key.identity()).is_none());
}

#[tokio::test]
async fn replacing_a_configured_grant_retires_its_old_token() {
    let (_p, vault) = temp_db();
    let grant = GrantId::new(SELF_HOST_GRANT);
    let old = AccessToken::new("old-token");
    let new = AccessToken::new("new-token");
    configured(&vault, &grant, &bearer("u1"), &old);
    configured(&vault, &grant, &bearer("u2"), &new);
    assert_eq!(
        vault.open(&old).await.unwrap_err(),
        VaultError::InvalidToken
    );
    assert_eq!(vault.open(&new).await.unwrap().credential, bearer("u2"));
    vault.delete_grant(&grant).unwrap();
    assert_eq!(
        vault.open(&new).await.unwrap_err(),
        VaultError::InvalidToken
    );
    assert_eq!(
        vault.capabilities(&grant).await.unwrap_err(),
        PolicyError::UnknownGrant(grant.clone())
    );
}

#[test]
fn a_newer_schema_is_refused() {
    let p = TempPath::new();
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

/// A version-1 file (only the configured grant) is upgraded by dropping its grants.
#[test]
fn a_version_1_file_is_upgraded_by_dropping_its_grants() {
    let p = TempPath::new();
    {
        let db = Database::create(&p.0).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(META)
            .unwrap()
            .insert("schema_version", "1")
            .unwrap();
        tx.open_table(GRANTS)
            .unwrap()
            .insert("self-host", b"{}".as_slice())
            .unwrap();
        tx.commit().unwrap();
    }
    let vault = RedbVault::open(&p.0).unwrap();
    assert!(vault.grant_record("self-host").unwrap().is_none());
    let version = vault
        .read(|tx| {
            Ok::<_, crate::outbound::vault_core::VaultStoreError>(
                tx.open_table(META)
                    .unwrap()
                    .get("schema_version")
                    .unwrap()
                    .map(|v| v.value().to_owned()),
            )
        })
        .unwrap();
    assert_eq!(version.as_deref(), Some(super::SCHEMA_VERSION));
}

/// A shared key is made once and read back after a restart; another name, another key.
#[test]
fn a_shared_key_is_made_once_and_kept() {
    let (path, vault) = temp_db();
    let key = vault.shared_key_blocking("k").unwrap();
    assert_eq!(*vault.shared_key_blocking("k").unwrap(), *key);
    assert_ne!(*vault.shared_key_blocking("other").unwrap(), *key);
    drop(vault);
    let reopened = RedbVault::open(&path.0).unwrap();
    assert_eq!(*reopened.shared_key_blocking("k").unwrap(), *key);
}
