//! The PostgreSQL vault: the storage ports' contract (`vault_core::contract`) on a fresh
//! database each, and what only PostgreSQL has: migrations and their refusals.
//!
//! Needs the test PostgreSQL (`scripts/pgbed up`, which `scripts/test` runs): its URL is read
//! from `PGBED_URL` or `target/pgbed/env`.

use super::{BackgroundVault, NotifierVault, PgVault, SCHEMA_VERSION, testing::fresh_database};
use crate::{
    domain::{
        grant::{AccessToken, CapabilitySet, GrantId, UpstreamCredential},
        ports::{BackgroundStore as _, Redemption, TokenVault as _},
        secret::SecretString,
    },
    outbound::vault_core::{VaultStoreError, contract, notifier_key::NotifierKey, steps::NewGrant},
};

async fn fresh_vault() -> PgVault {
    PgVault::connect(&fresh_database().await, 4).await.unwrap()
}

fn key() -> NotifierKey {
    let path = std::env::temp_dir().join(format!("notifier-{:x}.key", rand::random::<u64>()));
    let key = NotifierKey::load_or_create(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    key
}

contract::port_contract_tests!(
    fresh: async { ((), fresh_vault().await) },
    background: BackgroundVault,
    notifier: NotifierVault,
    key: key(),
);

#[tokio::test]
async fn notifier_grants_are_counted() {
    let vault = fresh_vault().await;
    let front = BackgroundVault::new(vault.clone(), key().seal());
    assert_eq!(vault.notifier_grants().await.unwrap(), 0);
    front
        .seal_notifier("acct", &contract::upstream("n"))
        .await
        .unwrap();
    assert_eq!(vault.notifier_grants().await.unwrap(), 1);
}

#[tokio::test]
async fn migrating_twice_at_once_migrates_once() {
    let url = fresh_database().await;
    let (a, b) = tokio::join!(PgVault::connect(&url, 2), PgVault::connect(&url, 2));
    for vault in [a.unwrap(), b.unwrap()] {
        assert_eq!(vault.schema_version().await.unwrap(), SCHEMA_VERSION);
    }
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let url = fresh_database().await;
    let vault = PgVault::connect(&url, 1).await.unwrap();
    vault
        .client()
        .await
        .unwrap()
        .execute(
            "UPDATE mailconnect_schema SET version = $1",
            &[&(SCHEMA_VERSION + 1)],
        )
        .await
        .unwrap();
    let Err(VaultStoreError::Database(message)) = PgVault::connect(&url, 1).await else {
        panic!("a newer schema was opened");
    };
    assert!(message.contains("newer than this build"), "{message}");
}

#[tokio::test]
async fn a_malformed_url_or_an_unreachable_server_is_a_clear_error() {
    let Err(VaultStoreError::Database(message)) =
        PgVault::connect("postgres://127.0.0.1:port/db", 1).await
    else {
        panic!("a malformed URL connected");
    };
    assert!(message.contains("does not parse"), "{message}");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let Err(VaultStoreError::Database(message)) =
        PgVault::connect(&format!("postgres://u@127.0.0.1:{port}/db"), 1).await
    else {
        panic!("an unreachable server connected");
    };
    assert!(message.contains("no PostgreSQL connection"), "{message}");
}

/// Every row of every table as text (bytea as hex), as a thief with a dump would read it.
async fn dump(vault: &PgVault) -> String {
    let client = vault.client().await.unwrap();
    let mut out = String::new();
    for table in client
        .query(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
            &[],
        )
        .await
        .unwrap()
    {
        let table: &str = table.get(0);
        for row in client
            .query(&format!("SELECT row_to_json(t)::text FROM {table} t"), &[])
            .await
            .unwrap()
        {
            out.push_str(row.get::<_, &str>(0));
        }
    }
    out
}

/// Checklist G10 on PostgreSQL: a dump of the database yields no upstream secret or token,
/// in the clear or hex-encoded; the tokens still open their grants.
#[tokio::test]
async fn a_dump_of_the_database_holds_no_secret() {
    let vault = fresh_vault().await;
    let token = AccessToken::new("g1.the-client-token");
    vault
        .put_grant(
            &NewGrant {
                id: &GrantId::new("g1"),
                label: "self-host",
                credential: &UpstreamCredential::Basic {
                    username: "alice".into(),
                    password: SecretString::new("hunter2-password"),
                },
                capabilities: &CapabilitySet::read_only(),
            },
            &token,
        )
        .await
        .unwrap();
    let front = BackgroundVault::new(vault.clone(), key().seal());
    let (_grant, pair, mut secrets) = contract::seed_every_secret(&vault, &front).await;
    secrets.extend(["hunter2-password".into(), "the-client-token".into()]);
    let haystack = dump(&vault).await;
    for secret in &secrets {
        let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
        assert!(
            !haystack.contains(secret.as_str()) && !haystack.contains(&hex),
            "{secret} is readable in a dump"
        );
    }
    assert!(vault.open(&token).await.is_ok());
    assert!(vault.open(&pair.access.token).await.is_ok());
}

/// Two instances (two pools on one database) rotating one refresh token at once: one rotation
/// wins, every other caller is replayed the winner's pair, and the grant lives on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_rotations_on_two_instances_issue_one_pair() {
    let url = fresh_database().await;
    let a = PgVault::connect(&url, 8).await.unwrap();
    let b = PgVault::connect(&url, 8).await.unwrap();
    let (grant, first) = contract::connected(&a, "up").await;
    // Open every pooled connection first, so the rotations start together.
    let mut warm = tokio::task::JoinSet::new();
    for i in 0..16 {
        let vault = if i % 2 == 0 { a.clone() } else { b.clone() };
        warm.spawn(async move {
            let client = vault.client().await.unwrap();
            client.execute("SELECT pg_sleep(0.05)", &[]).await.unwrap();
        });
    }
    warm.join_all().await;
    let mut attempts = tokio::task::JoinSet::new();
    for i in 0..16 {
        let vault = if i % 2 == 0 { a.clone() } else { b.clone() };
        let refresh = first.refresh.token.clone();
        let pair = contract::pair(&grant);
        attempts.spawn(async move { vault.rotate_refresh(&refresh, pair).await.unwrap() });
    }
    let outcomes = attempts.join_all().await;
    let issued: std::collections::HashSet<String> = outcomes
        .iter()
        .map(|o| match o {
            Redemption::Issued(p) => p.access.token.expose_secret().to_owned(),
            Redemption::Revoked => panic!("a concurrent rotation revoked the grant"),
        })
        .collect();
    assert_eq!(issued.len(), 1, "more than one pair was issued");
    let winner = issued.into_iter().next().unwrap();
    assert!(b.open(&AccessToken::new(winner)).await.is_ok());
}

/// A grant's refresh turn has one holder among all instances: a second waits until the first
/// ends it, and a turn whose holder died (lapsed) is taken over at once.
#[tokio::test]
async fn a_refresh_turn_has_one_holder_until_it_ends_or_lapses() {
    let url = fresh_database().await;
    let a = PgVault::connect(&url, 2).await.unwrap();
    let b = PgVault::connect(&url, 2).await.unwrap();
    let grant = GrantId::new("g-turn");
    assert!(a.take_refresh_turn(&grant, "holder-a").await.unwrap());
    let waiting = {
        let b = b.clone();
        let grant = grant.clone();
        tokio::spawn(async move { b.take_refresh_turn(&grant, "holder-b").await.unwrap() })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "a second holder took a live turn");
    // Another holder's end does not end it.
    b.end_refresh_turn(&grant, "holder-c").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "a stranger ended the turn");
    a.end_refresh_turn(&grant, "holder-a").await.unwrap();
    assert!(waiting.await.unwrap());
    // holder-b died holding it: once lapsed, it is taken over without waiting.
    a.client()
        .await
        .unwrap()
        .execute("UPDATE leases SET until = 0", &[])
        .await
        .unwrap();
    let started = std::time::Instant::now();
    assert!(a.take_refresh_turn(&grant, "holder-d").await.unwrap());
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
}

/// A shared key is made once: two instances asking at once get the same key, another name
/// another key.
#[tokio::test]
async fn every_instance_gets_the_same_shared_key() {
    let url = fresh_database().await;
    let a = PgVault::connect(&url, 2).await.unwrap();
    let b = PgVault::connect(&url, 2).await.unwrap();
    let (ka, kb) = tokio::join!(a.shared_key("k"), b.shared_key("k"));
    let (ka, kb) = (ka.unwrap(), kb.unwrap());
    assert_eq!(*ka, *kb);
    assert_eq!(*a.shared_key("k").await.unwrap(), *ka);
    assert_ne!(*a.shared_key("other").await.unwrap(), *ka);
}

/// A lease is one holder's until it ends or lapses; only its holder renews or ends it.
#[tokio::test]
async fn a_lease_is_one_holders_until_it_ends() {
    use crate::domain::ports::Leases as _;
    let url = fresh_database().await;
    let a = PgVault::connect(&url, 2).await.unwrap();
    let b = PgVault::connect(&url, 2).await.unwrap();
    assert!(a.take_lease("notifier", "a", 30).await.unwrap());
    assert!(!b.take_lease("notifier", "b", 30).await.unwrap());
    assert!(!b.renew_lease("notifier", "b", 30).await.unwrap());
    b.end_lease("notifier", "b").await.unwrap();
    assert!(a.renew_lease("notifier", "a", 30).await.unwrap());
    a.end_lease("notifier", "a").await.unwrap();
    assert!(b.take_lease("notifier", "b", 30).await.unwrap());
    // b died: once lapsed, a takes it over, and b's renewal finds it gone.
    a.client()
        .await
        .unwrap()
        .execute("UPDATE leases SET until = 0", &[])
        .await
        .unwrap();
    assert!(a.take_lease("notifier", "a", 30).await.unwrap());
    assert!(!b.renew_lease("notifier", "b", 30).await.unwrap());
}
