//! The PostgreSQL vault: the storage ports' contract (`vault_core::contract`) on a fresh
//! database each, and what only PostgreSQL has: migrations and their refusals.
//!
//! Needs the test PostgreSQL (`scripts/pgbed up`, which `scripts/test` runs): its URL is read
//! from `PGBED_URL` or `target/pgbed/env`.

use super::{PgVault, SCHEMA_VERSION};
use crate::outbound::vault_core::{VaultStoreError, contract};

/// The test server's superuser URL.
fn server_url() -> String {
    if let Ok(url) = std::env::var("PGBED_URL") {
        return url;
    }
    let env = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pgbed/env");
    std::fs::read_to_string(&env)
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("PGBED_URL=").map(str::to_owned))
        })
        .unwrap_or_else(|| {
            panic!(
                "no test PostgreSQL: run scripts/pgbed up ({} is missing)",
                env.display()
            )
        })
}

/// A URL of a new, empty database on the test server.
async fn fresh_database() -> String {
    let url = server_url();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("the test PostgreSQL at {url} does not answer: {e}"));
    tokio::spawn(connection);
    let name = format!("mc_test_{:016x}", rand::random::<u64>());
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let base = url.rsplit_once('/').map_or(url.as_str(), |(base, _)| base);
    format!("{base}/{name}")
}

async fn fresh_vault() -> PgVault {
    PgVault::connect(&fresh_database().await, 4).await.unwrap()
}

/// The contract functions that take the vault alone, one test each.
macro_rules! contract_on_postgres {
    ($($behaviour:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $behaviour() {
            contract::$behaviour(&fresh_vault().await).await;
        }
    )*};
}

contract_on_postgres!(
    a_grants_access_token_opens_its_credential,
    only_access_tokens_open_a_grant_for_mcp,
    code_is_single_use,
    an_expired_code_is_unknown,
    refresh_rotation_replays_until_the_successor_is_used_then_revokes,
    a_refresh_token_two_generations_old_revokes_the_grant,
    revocation_by_the_owning_client_only,
    a_refreshed_upstream_token_is_resealed_for_every_token,
    removing_a_grant_ends_it_and_keeps_its_log,
    grant_settings_round_trip,
    audit_events_read_back_newest_first,
    approvals_compare_and_swap,
    a_new_ask_replaces_older_ones_but_never_a_claim,
    clients_and_registrations_round_trip,
);

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
