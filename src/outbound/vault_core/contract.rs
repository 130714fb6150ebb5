//! The storage ports' contract: one function per behaviour a backend must have, generic over
//! the ports, so every backend's tests run the same rules (redb today: `vault/tests.rs`).
//! Each function starts from an empty store and panics on the first broken rule.
//!
//! A backend's test module calls each function with a fresh store; see
//! docs/storage-schema.md for what the rules protect.

// A contract check is a test: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use crate::domain::{
    auth::{
        client::ClientId,
        pkce::CodeChallenge,
        token::{IssuedToken, TokenPair, new_grant_id, new_token},
    },
    grant::{CapabilitySet, GrantId, UpstreamCredential},
    notify::delivery::{Destination, WebhookSecret, WebhookUrl},
    ports::{
        AuditEvent, AuditKind, BackgroundStore, FlowStore, GrantDraft, Redemption, TokenVault,
        UpstreamTokens,
    },
    secret::SecretString,
};

mod approvals;
mod background;
mod flows;
mod settings;
mod tokens;
mod upkeep;

pub use self::{
    approvals::{a_new_ask_replaces_older_ones_but_never_a_claim, approvals_compare_and_swap},
    background::{
        a_connection_ending_takes_its_destination_with_it,
        destinations_of_ended_connections_are_removed,
        only_the_notifier_key_opens_background_records,
        the_notifier_ends_only_an_unused_grant_and_turning_on_needs_one,
        turning_off_says_whether_the_notifier_is_still_needed,
    },
    flows::{
        a_flow_step_opens_with_its_handle_and_is_taken_once,
        a_flow_step_taken_at_once_by_many_goes_to_one, an_expired_flow_step_is_gone,
    },
    settings::{audit_events_read_back_newest_first, grant_settings_round_trip},
    tokens::{
        a_grants_access_token_opens_its_credential,
        a_refresh_token_two_generations_old_revokes_the_grant,
        a_refreshed_upstream_token_is_resealed_for_every_token, an_expired_code_is_unknown,
        code_is_single_use, only_access_tokens_open_a_grant_for_mcp,
        refresh_rotation_replays_until_the_successor_is_used_then_revokes,
        removing_a_grant_ends_it_and_keeps_its_log, revocation_by_the_owning_client_only,
    },
    upkeep::{clients_and_registrations_round_trip, sweeping_removes_what_expired},
};

const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
/// The client every connection in the contract is issued to.
pub const CLIENT: &str = "client-a";
/// The account (digest) every connection in the contract belongs to.
pub const ACCOUNT: &str = "00";

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn issued(grant: &GrantId, secs: i64) -> IssuedToken {
    IssuedToken {
        token: new_token(grant),
        expires_at: now() + secs,
    }
}

/// A fresh pair for `grant` (an hour, a day).
#[must_use]
pub fn pair(grant: &GrantId) -> TokenPair {
    TokenPair {
        access: issued(grant, 3600),
        refresh: issued(grant, 86400),
        scope: "mail".into(),
    }
}

/// Upstream tokens whose access token is `secret`.
#[must_use]
pub fn upstream(secret: &str) -> UpstreamTokens {
    UpstreamTokens {
        access: SecretString::new(secret),
        refresh: Some(SecretString::new(format!("{secret}-refresh"))),
        expires_at: Some(now() + 3600),
        issued_at: Some(now()),
    }
}

fn bearer(secret: &str) -> UpstreamCredential {
    UpstreamCredential::Bearer(SecretString::new(secret))
}

fn draft(grant: &GrantId, upstream_secret: &str) -> GrantDraft {
    GrantDraft {
        id: grant.clone(),
        client: ClientId::new(CLIENT),
        redirect_uri: "http://127.0.0.1/cb".into(),
        resource: "http://127.0.0.1:1/mcp".into(),
        scope: "mail".into(),
        code_challenge: CodeChallenge::from_stored(CHALLENGE.into()),
        account_digest: ACCOUNT.into(),
        upstream: upstream(upstream_secret),
        capabilities: CapabilitySet::read_only(),
    }
}

/// A grant as the connect flow makes it: created with a code, the code redeemed. Returns the
/// grant and its first pair.
pub async fn connected<S: TokenVault>(store: &S, upstream_secret: &str) -> (GrantId, TokenPair) {
    let grant = new_grant_id();
    let code = issued(&grant, 300);
    store
        .create_grant(draft(&grant, upstream_secret), code.clone())
        .await
        .unwrap();
    let binding = store.code_binding(&code.token).await.unwrap().unwrap();
    assert_eq!((binding.grant, binding.used), (grant.clone(), false));
    let Redemption::Issued(p) = store.redeem_code(&code.token, pair(&grant)).await.unwrap() else {
        panic!("the code was not redeemed");
    };
    (grant, p)
}

/// Checklist G10 (a copy of the store yields no secret): stores one of each secret a store
/// holds sealed or hashed — a connection's upstream token and its client tokens, a notifier's
/// upstream token, a webhook's signing secret, a sign-in's PKCE verifier and a settings
/// session's account and CSRF token — and returns the connection with the secrets, none of
/// which may be readable in the store's raw bytes.
pub async fn seed_every_secret<S: TokenVault + FlowStore, F: BackgroundStore>(
    store: &S,
    front: &F,
) -> (GrantId, TokenPair, Vec<String>) {
    let (grant, pair) = connected(store, "upstream-oauth-access-secret").await;
    front
        .seal_notifier("acct", &upstream("notifier-upstream-secret"))
        .await
        .unwrap();
    let secret = WebhookSecret::generate();
    let whsec = secret.to_whsec().expose_secret().to_owned();
    let url = WebhookUrl::parse("https://hooks.example.net/m", false).unwrap();
    front
        .seal_destination(&grant, "acct", &Destination::Webhook { url, secret })
        .await
        .unwrap();
    flows::park_secrets(store, "flow-handle-secret").await;
    let secrets = vec![
        "flow-handle-secret".to_owned(),
        flows::VERIFIER_SECRET.to_owned(),
        flows::SESSION_ACCOUNT.to_owned(),
        flows::SESSION_CSRF.to_owned(),
        flows::POKE_KEY_SECRET.to_owned(),
        "AGE-SECRET-KEY".to_owned(),
        "upstream-oauth-access-secret".to_owned(),
        "notifier-upstream-secret".to_owned(),
        whsec,
        pair.access.token.expose_secret().to_owned(),
        pair.refresh.token.expose_secret().to_owned(),
    ];
    (grant, pair, secrets)
}

fn event(grant: &GrantId, tool: &str) -> AuditEvent {
    AuditEvent {
        grant: grant.clone(),
        at: now(),
        kind: AuditKind::ToolCall {
            tool: tool.into(),
            outcome: "ok".into(),
            count: None,
        },
    }
}

/// The whole contract as one test per behaviour, for a backend's test module:
/// `fresh` is an async block giving `(guard, store)` for a new, empty store (the guard lives
/// as long as the test), `background`/`notifier` the backend's background-delivery types
/// (`new(store, seal)`, `new(store, key)`) and `key` an expression making a notifier key.
#[cfg(test)]
macro_rules! port_contract_tests {
    (fresh: $fresh:expr, background: $background:ident, notifier: $notifier:ident, key: $key:expr $(,)?) => {
        $crate::outbound::vault_core::contract::port_contract_tests!(@alone $fresh;
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
            sweeping_removes_what_expired,
            a_flow_step_opens_with_its_handle_and_is_taken_once,
            a_flow_step_taken_at_once_by_many_goes_to_one,
            an_expired_flow_step_is_gone,
        );

        #[tokio::test]
        async fn only_the_notifier_key_opens_background_records() {
            let (_guard, store) = $fresh.await;
            let key = $key;
            let front = $background::new(store.clone(), key.seal());
            let notifier = $notifier::new(store.clone(), key);
            let thief = $notifier::new(store.clone(), $key);
            $crate::outbound::vault_core::contract::only_the_notifier_key_opens_background_records(
                &store, &front, &notifier, &thief,
            )
            .await;
        }

        #[tokio::test]
        async fn turning_off_says_whether_the_notifier_is_still_needed() {
            let (_guard, store) = $fresh.await;
            let key = $key;
            let front = $background::new(store.clone(), key.seal());
            let notifier = $notifier::new(store, key);
            $crate::outbound::vault_core::contract::turning_off_says_whether_the_notifier_is_still_needed(
                &front, &notifier,
            )
            .await;
        }

        #[tokio::test]
        async fn a_connection_ending_takes_its_destination_with_it() {
            let (_guard, store) = $fresh.await;
            let front = $background::new(store.clone(), $key.seal());
            $crate::outbound::vault_core::contract::a_connection_ending_takes_its_destination_with_it(
                &store, &front,
            )
            .await;
        }

        #[tokio::test]
        async fn the_notifier_ends_only_an_unused_grant_and_turning_on_needs_one() {
            let (_guard, store) = $fresh.await;
            let key = $key;
            let front = $background::new(store.clone(), key.seal());
            let notifier = $notifier::new(store.clone(), key);
            $crate::outbound::vault_core::contract::the_notifier_ends_only_an_unused_grant_and_turning_on_needs_one(
                &store, &front, &notifier,
            )
            .await;
        }

        #[tokio::test]
        async fn destinations_of_ended_connections_are_removed() {
            let (_guard, store) = $fresh.await;
            let front = $background::new(store.clone(), $key.seal());
            $crate::outbound::vault_core::contract::destinations_of_ended_connections_are_removed(
                &store, &front,
            )
            .await;
        }
    };
    (@alone $fresh:expr; $($behaviour:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $behaviour() {
            let (_guard, store) = $fresh.await;
            $crate::outbound::vault_core::contract::$behaviour(&store).await;
        }
    )*};
}
#[cfg(test)]
pub(crate) use port_contract_tests;
