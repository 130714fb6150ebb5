//! The storage contract: Clients, registrations and sweeping.

use super::{connected, draft, event, now};
use crate::domain::{
    auth::client::{ClientId, ClientKind, OAuthClient, TokenAuthMethod},
    auth::redirect::RedirectUri,
    auth::token::{IssuedToken, new_grant_id, new_token},
    ports::{
        AuditLog, ClientStore, Policy, PolicyError, RegistrationMemory, Retention, SweepRules,
        Sweeper, TokenVault,
    },
};

fn client(id: &str, kind: ClientKind, created_at: i64) -> OAuthClient {
    OAuthClient {
        id: ClientId::new(id),
        name: format!("client {id}"),
        redirect_uris: vec![RedirectUri::parse("http://127.0.0.1/cb").unwrap()],
        kind,
        auth_method: TokenAuthMethod::None,
        secret_digest: None,
        created_at,
    }
}

/// Clients and our registrations at upstreams read back what was stored.
pub async fn clients_and_registrations_round_trip<S: ClientStore + RegistrationMemory>(store: &S) {
    let c = client("mc_1", ClientKind::Registered, now());
    store.put_client(c.clone()).await.unwrap();
    assert_eq!(store.client(&c.id).await.unwrap(), Some(c));
    assert_eq!(store.client(&ClientId::new("mc_2")).await.unwrap(), None);
    let key = "upstream-client\0https://issuer.example\0http://127.0.0.1/cb";
    assert_eq!(store.recall(key).await.unwrap(), None);
    store.remember(key, "our-id").await.unwrap();
    assert_eq!(store.recall(key).await.unwrap().as_deref(), Some("our-id"));
}

/// A sweep removes expired tokens and the grants they alone could open, registrations never
/// used, and audit events past the per-grant cap; live grants and configured clients stay.
pub async fn sweeping_removes_what_expired<
    S: TokenVault + Policy + AuditLog + ClientStore + Sweeper,
>(
    store: &S,
) {
    let expired = new_grant_id();
    let code = IssuedToken {
        token: new_token(&expired),
        expires_at: now() - 1,
    };
    store
        .create_grant(draft(&expired, "a"), code)
        .await
        .unwrap();
    let (live, p) = connected(store, "up").await;
    for tool in ["1", "2", "3", "4"] {
        store.record(event(&live, tool)).await;
    }
    let month = 30 * 86_400;
    let unused = client("mc_old", ClientKind::Registered, now() - 2 * month);
    let configured = client("configured", ClientKind::Configured, now() - 2 * month);
    store.put_client(unused.clone()).await.unwrap();
    store.put_client(configured.clone()).await.unwrap();
    let removed = store
        .sweep(SweepRules {
            unused_client_secs: month,
            retention: Retention {
                max_age_secs: Retention::default().max_age_secs,
                max_events: 2,
            },
        })
        .await
        .unwrap();
    assert!(removed >= 5, "{removed} records removed");
    assert_eq!(
        store.capabilities(&expired).await.unwrap_err(),
        PolicyError::UnknownGrant(expired.clone()),
        "the grant only an expired code could open"
    );
    assert!(
        store.open(&p.access.token).await.is_ok(),
        "a live grant stays"
    );
    assert_eq!(store.events(&live, 10).await.unwrap().len(), 2);
    assert_eq!(store.client(&unused.id).await.unwrap(), None);
    assert_eq!(
        store.client(&configured.id).await.unwrap(),
        Some(configured)
    );
}
