//! Copying a redb vault into the test PostgreSQL (`postgres::testbed`).

use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::{CopyError, copy};
use crate::{
    domain::{
        auth::{
            client::{ClientId, ClientKind, OAuthClient, TokenAuthMethod},
            redirect::RedirectUri,
            token::TokenPair,
        },
        grant::{AccessToken, CapabilitySet, GrantId, UpstreamCredential},
        mail::ids::EmailId,
        notify::delivery::Destination,
        ports::{
            ApprovalStore as _, AuditEvent, AuditKind, AuditLog as _, BackgroundStore as _,
            ClientStore as _, NotifierKeyring as _, Redemption, RegistrationMemory as _,
            TokenVault as _,
        },
        secret::SecretString,
        sending::approval::{Approval, ApprovalRecord, DraftDigest},
    },
    outbound::{
        postgres::{self, PgVault, testing::fresh_database},
        vault::{self, NewGrant, NotifierKey, RedbVault, SELF_HOST_GRANT},
        vault_core::{contract, snapshot::Table},
    },
};

const REGISTRATION: &str = "upstream-client\0https://issuer.example\0http://127.0.0.1/cb";

struct TempPath(PathBuf);
impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn key() -> NotifierKey {
    let path = std::env::temp_dir().join(format!("notifier-{:x}.key", rand::random::<u64>()));
    let key = NotifierKey::load_or_create(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    key
}

fn bearer(secret: &str) -> UpstreamCredential {
    UpstreamCredential::Bearer(SecretString::new(secret))
}

fn sha256(path: &Path) -> [u8; 32] {
    Sha256::digest(std::fs::read(path).unwrap()).into()
}

/// A redb vault holding a row of every table.
struct Seeded {
    path: TempPath,
    key: NotifierKey,
    configured: AccessToken,
    grant: GrantId,
    pair: TokenPair,
    ended: GrantId,
    client: OAuthClient,
    approval: ApprovalRecord,
}

async fn seeded() -> Seeded {
    let path = TempPath(
        std::env::temp_dir().join(format!("mailconnect-copy-{:x}.redb", rand::random::<u64>())),
    );
    let vault = RedbVault::open(&path.0).unwrap();
    let configured = AccessToken::new("self-host.configured-token");
    vault
        .put_grant(
            &NewGrant {
                id: &GrantId::new(SELF_HOST_GRANT),
                label: "self-host",
                credential: &bearer("configured-upstream"),
                capabilities: &CapabilitySet::read_only(),
            },
            &configured,
        )
        .unwrap();
    let key = key();
    let front = vault::BackgroundVault::new(vault.clone(), key.seal());
    let (grant, pair, _) = contract::seed_every_secret(&vault, &front).await;
    front.save_cursor("acct", "cursor-1").await.unwrap();
    let (ended, _) = contract::connected(&vault, "ended-upstream").await;
    for (g, tool) in [(&grant, "search_email"), (&ended, "read_email")] {
        vault
            .record(AuditEvent {
                grant: g.clone(),
                at: 1,
                kind: AuditKind::ToolCall {
                    tool: tool.into(),
                    outcome: "ok".into(),
                    count: Some(3),
                },
            })
            .await;
    }
    vault.delete_grant(&ended).unwrap();
    let client = OAuthClient {
        id: ClientId::new("mc_copied"),
        name: "copied client".into(),
        redirect_uris: vec![RedirectUri::parse("http://127.0.0.1/cb").unwrap()],
        kind: ClientKind::Registered,
        auth_method: TokenAuthMethod::None,
        secret_digest: None,
        created_at: 7,
    };
    vault.put_client(client.clone()).await.unwrap();
    vault.remember(REGISTRATION, "our-id").await.unwrap();
    let approval = Approval::ask(
        grant.clone(),
        contract::ACCOUNT.into(),
        EmailId::parse("M1").unwrap(),
        DraftDigest([7; 32]),
        vec![1, 2, 3],
        chrono::Utc::now().timestamp(),
        600,
    )
    .record()
    .clone();
    vault.insert(&approval).await.unwrap();
    Seeded {
        path,
        key,
        configured,
        grant,
        pair,
        ended,
        client,
        approval,
    }
}

fn url(raw: &str) -> SecretString {
    SecretString::new(raw)
}

/// The copy holds every row, byte for byte, and works as the source did: the client's tokens
/// open the same upstream credential and rotate, background records open with the same
/// notifier key; the source file is unchanged; copying again writes nothing.
#[tokio::test]
async fn a_copied_vault_works_for_its_clients_and_the_source_is_untouched() {
    let s = seeded().await;
    let to = fresh_database().await;
    let before = sha256(&s.path.0);
    let report = copy(&s.path.0, &url(&to), 2).await.unwrap();
    assert_eq!(sha256(&s.path.0), before, "the source file changed");

    let source = RedbVault::export_file(&s.path.0).unwrap();
    let target = PgVault::connect(&to, 2).await.unwrap();
    assert_eq!(target.export().await.unwrap(), source);
    assert_eq!(report.digest, source.digest());
    for t in &report.digest.tables {
        assert!(t.rows > 0, "no {} were copied", t.table);
    }
    assert_eq!(report.written, source.counts());
    let shown = report.to_string();
    assert!(shown.contains("upstream registrations"), "{shown}");

    let again = copy(&s.path.0, &url(&to), 2).await.unwrap();
    assert_eq!(again.digest, report.digest);
    assert!(again.written.0.iter().all(|(_, n)| *n == 0), "{again}");
    assert_eq!(sha256(&s.path.0), before, "the source file changed");

    // The grants work on PostgreSQL without a new consent.
    assert_eq!(
        target.open(&s.configured).await.unwrap().credential,
        bearer("configured-upstream")
    );
    assert_eq!(
        target.open(&s.pair.access.token).await.unwrap().credential,
        bearer("upstream-oauth-access-secret")
    );
    let Redemption::Issued(next) = target
        .rotate_refresh(&s.pair.refresh.token, contract::pair(&s.grant))
        .await
        .unwrap()
    else {
        panic!("the copied refresh token did not rotate");
    };
    assert_eq!(
        target.open(&next.access.token).await.unwrap().grant,
        s.grant
    );
    // Now in use on PostgreSQL (a rotation changed its rows): copying again is refused.
    let Err(CopyError::InUse(rows)) = copy(&s.path.0, &url(&to), 2).await else {
        panic!("a copy in use was overwritten");
    };
    assert!(
        rows.0.iter().any(|(t, n)| *t == Table::Tokens && *n > 0),
        "{rows}"
    );
    // Background records open with the same notifier key.
    let seal = s.key.seal();
    let notifier = postgres::NotifierVault::new(target.clone(), s.key);
    let tokens = notifier.open_notifier("acct").await.unwrap().unwrap();
    assert_eq!(tokens.access.expose_secret(), "notifier-upstream-secret");
    assert!(matches!(
        notifier.open_destination(&s.grant).await.unwrap(),
        Some(Destination::Webhook { .. })
    ));
    let front = postgres::BackgroundVault::new(target.clone(), seal);
    assert_eq!(
        front.cursor("acct").await.unwrap().as_deref(),
        Some("cursor-1")
    );
    // The columns derived from the records find them as the ports look for them.
    assert_eq!(
        target
            .find(&s.grant, &EmailId::parse("M1").unwrap())
            .await
            .unwrap(),
        Some(s.approval.clone())
    );
    assert_eq!(target.client(&s.client.id).await.unwrap(), Some(s.client));
    assert_eq!(
        target.recall(REGISTRATION).await.unwrap().as_deref(),
        Some("our-id")
    );
    assert!(
        target
            .events(&s.ended, 10)
            .await
            .unwrap()
            .iter()
            .any(|e| matches!(&e.kind, AuditKind::ToolCall { tool, .. } if tool == "read_email")),
        "the ended connection's log was not copied"
    );
    assert!(
        target
            .revoked_of(contract::ACCOUNT)
            .await
            .unwrap()
            .iter()
            .any(|c| c.grant == s.ended),
        "the ended connection is not listed"
    );
}

/// A database holding another grant is in use: the copy is refused and writes nothing.
#[tokio::test]
async fn copying_into_a_database_in_use_is_refused_and_writes_nothing() {
    let s = seeded().await;
    let to = fresh_database().await;
    let target = PgVault::connect(&to, 2).await.unwrap();
    contract::connected(&target, "someone-else").await;
    let before = target.export().await.unwrap();
    let Err(CopyError::InUse(rows)) = copy(&s.path.0, &url(&to), 2).await else {
        panic!("a database in use was copied into");
    };
    assert!(
        rows.0.iter().any(|(t, n)| *t == Table::Grants && *n == 1),
        "{rows}"
    );
    assert_eq!(target.export().await.unwrap(), before);
}

/// No error names the password of the PostgreSQL URL.
#[tokio::test]
async fn errors_never_show_the_password() {
    let s = seeded().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let to = url(&format!("postgres://u:hunter2-pw@127.0.0.1:{port}/db"));
    let err = copy(&s.path.0, &to, 1).await.unwrap_err();
    assert!(matches!(err, CopyError::Target(_)), "{err}");
    let to = url("postgres://u:hunter2-pw@127.0.0.1:port/db");
    let err = copy(&s.path.0, &to, 1).await.unwrap_err().to_string();
    assert!(!err.contains("hunter2"), "{err}");
    assert_eq!(
        super::redacted(
            "bad hunter2-pw and hunter2%2Dpw",
            &url("postgres://u:hunter2%2Dpw@h/d")
        ),
        "bad [redacted] and [redacted]"
    );
}

/// A vault a running mailconnect holds open is not read: stop it first.
#[tokio::test]
async fn a_vault_in_use_is_not_copied() {
    let s = seeded().await;
    let running = RedbVault::open(&s.path.0).unwrap();
    let before = sha256(&s.path.0);
    let err = copy(&s.path.0, &url(&fresh_database().await), 1)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CopyError::Source(m) if m.contains("stop it first")),
        "{err}"
    );
    assert_eq!(sha256(&s.path.0), before);
    drop(running);
}

/// A source that is not a vault file is a clear error.
#[tokio::test]
async fn a_missing_source_is_a_clear_error() {
    let missing = std::env::temp_dir().join("mailconnect-no-such-vault.redb");
    let err = copy(&missing, &url("postgres://u@127.0.0.1:1/db"), 1)
        .await
        .unwrap_err();
    assert!(matches!(err, CopyError::Source(_)), "{err}");
}
