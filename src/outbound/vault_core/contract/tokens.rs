//! The storage contract: Tokens and grants: codes, rotation, revocation, removal.

use super::{ACCOUNT, CLIENT, bearer, connected, draft, issued, now, pair, upstream};
use crate::domain::{
    auth::client::ClientId,
    auth::rotation::RefreshRole,
    auth::token::{IssuedToken, new_grant_id, new_token},
    grant::{AccessToken, CapabilitySet, GrantId},
    ports::{AuditKind, AuditLog, Policy, PolicyError, Redemption, TokenVault, VaultError},
};

/// A connection's access token opens its sealed upstream credential; no other token does.
pub async fn a_grants_access_token_opens_its_credential<S: TokenVault + Policy>(store: &S) {
    let (grant, p) = connected(store, "upstream-1").await;
    let opened = store.open(&p.access.token).await.unwrap();
    assert_eq!(
        (&opened.grant, &opened.credential, opened.account.as_deref()),
        (&grant, &bearer("upstream-1"), Some(ACCOUNT))
    );
    assert_eq!(
        opened.upstream_refresh.unwrap().token.expose_secret(),
        "upstream-1-refresh"
    );
    assert_eq!(
        store.capabilities(&grant).await.unwrap(),
        CapabilitySet::read_only()
    );
    let forged = AccessToken::new(format!("{grant}.not-a-token-of-it"));
    assert_eq!(
        store.open(&forged).await.unwrap_err(),
        VaultError::InvalidToken
    );
}

/// `/mcp` accepts access tokens only; a refresh token opens the grant only "fresh", before an
/// upstream refresh.
pub async fn only_access_tokens_open_a_grant_for_mcp<S: TokenVault>(store: &S) {
    let (_, p) = connected(store, "up").await;
    assert!(store.open(&p.access.token).await.is_ok());
    assert_eq!(
        store.open(&p.refresh.token).await.unwrap_err(),
        VaultError::InvalidToken
    );
    assert!(store.open_fresh(&p.refresh.token).await.is_ok());
}

/// RFC 6749 §4.1.2: a code is single use; a second redemption revokes the grant and every
/// token issued for it.
pub async fn code_is_single_use<S: TokenVault>(store: &S) {
    let grant = new_grant_id();
    let code = issued(&grant, 300);
    store
        .create_grant(draft(&grant, "a"), code.clone())
        .await
        .unwrap();
    let Redemption::Issued(first) = store.redeem_code(&code.token, pair(&grant)).await.unwrap()
    else {
        panic!("the first redemption failed");
    };
    assert!(store.code_binding(&code.token).await.unwrap().unwrap().used);
    assert!(matches!(
        store.redeem_code(&code.token, pair(&grant)).await.unwrap(),
        Redemption::Revoked
    ));
    assert_eq!(
        store.open(&first.access.token).await.unwrap_err(),
        VaultError::InvalidToken
    );
    assert!(
        store
            .refresh_binding(&first.refresh.token)
            .await
            .unwrap()
            .is_none()
    );
}

/// An expired code is unknown: it binds nothing and redeems nothing.
pub async fn an_expired_code_is_unknown<S: TokenVault>(store: &S) {
    let grant = new_grant_id();
    let code = IssuedToken {
        token: new_token(&grant),
        expires_at: now() - 1,
    };
    store
        .create_grant(draft(&grant, "a"), code.clone())
        .await
        .unwrap();
    assert!(store.code_binding(&code.token).await.unwrap().is_none());
}

/// Refresh rotation (RFC 9700 §4.14.2): a retry with the rotated token gets the same pair
/// until the new pair is used; from then on it is a reuse, which revokes the whole family.
pub async fn refresh_rotation_replays_until_the_successor_is_used_then_revokes<S: TokenVault>(
    store: &S,
) {
    let (grant, p1) = connected(store, "up").await;
    let r1 = p1.refresh.token.clone();
    let Redemption::Issued(p2) = store.rotate_refresh(&r1, pair(&grant)).await.unwrap() else {
        panic!("rotation failed");
    };
    // Lost response: R1 again gets the same pair.
    let Redemption::Issued(again) = store.rotate_refresh(&r1, pair(&grant)).await.unwrap() else {
        panic!("replay failed");
    };
    assert_eq!(
        again.refresh.token.expose_secret(),
        p2.refresh.token.expose_secret()
    );
    assert_eq!(
        again.access.token.expose_secret(),
        p2.access.token.expose_secret()
    );
    // The new access token is used: R1 is now a reuse, which ends the grant.
    store.open(&p2.access.token).await.unwrap();
    assert!(matches!(
        store.rotate_refresh(&r1, pair(&grant)).await.unwrap(),
        Redemption::Revoked
    ));
    assert_eq!(
        store.open_fresh(&p2.refresh.token).await.unwrap_err(),
        VaultError::InvalidToken
    );
}

/// A refresh token two generations back is always a reuse: the grant is revoked.
pub async fn a_refresh_token_two_generations_old_revokes_the_grant<S: TokenVault>(store: &S) {
    let (grant, p1) = connected(store, "up").await;
    let Redemption::Issued(p2) = store
        .rotate_refresh(&p1.refresh.token, pair(&grant))
        .await
        .unwrap()
    else {
        panic!("first rotation failed")
    };
    let Redemption::Issued(p3) = store
        .rotate_refresh(&p2.refresh.token, pair(&grant))
        .await
        .unwrap()
    else {
        panic!("second rotation failed")
    };
    let binding = store
        .refresh_binding(&p1.refresh.token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(binding.role, RefreshRole::Older);
    assert!(matches!(
        store
            .rotate_refresh(&p1.refresh.token, pair(&grant))
            .await
            .unwrap(),
        Redemption::Revoked
    ));
    assert!(store.open_fresh(&p3.refresh.token).await.is_err());
}

/// RFC 7009 §2.1: only the client a token was issued to revokes it; an access token alone,
/// a refresh token with its whole grant.
pub async fn revocation_by_the_owning_client_only<S: TokenVault>(store: &S) {
    let (_, p) = connected(store, "up").await;
    store
        .revoke_token(&p.access.token, &ClientId::new("client-b"))
        .await
        .unwrap();
    assert!(
        store.open(&p.access.token).await.is_ok(),
        "another client revoked it"
    );
    store
        .revoke_token(&p.access.token, &ClientId::new(CLIENT))
        .await
        .unwrap();
    assert_eq!(
        store.open(&p.access.token).await.unwrap_err(),
        VaultError::InvalidToken
    );
    assert!(
        store.open_fresh(&p.refresh.token).await.is_ok(),
        "revoking the access token ended the grant"
    );
    store
        .revoke_token(&p.refresh.token, &ClientId::new(CLIENT))
        .await
        .unwrap();
    assert!(store.open_fresh(&p.refresh.token).await.is_err());
}

/// Upstream tokens re-sealed after a refresh open with every live token of the grant.
pub async fn a_refreshed_upstream_token_is_resealed_for_every_token<S: TokenVault>(store: &S) {
    let (grant, p) = connected(store, "up-1").await;
    assert_eq!(
        store.open(&p.access.token).await.unwrap().credential,
        bearer("up-1")
    );
    store
        .store_upstream(&grant, upstream("up-2"))
        .await
        .unwrap();
    let opened = store.open(&p.access.token).await.unwrap();
    assert_eq!(opened.credential, bearer("up-2"));
    assert_eq!(
        opened.upstream_refresh.unwrap().token.expose_secret(),
        "up-2-refresh"
    );
    assert_eq!(
        store.open_fresh(&p.refresh.token).await.unwrap().credential,
        bearer("up-2")
    );
    assert_eq!(
        store
            .store_upstream(&new_grant_id(), upstream("x"))
            .await
            .unwrap_err(),
        VaultError::InvalidToken,
        "a grant that ended stores nothing"
    );
}

/// Removing a grant deletes its tokens (crypto-shredding) and settings; the person still
/// sees that the connection ended, with its log.
pub async fn removing_a_grant_ends_it_and_keeps_its_log<S: TokenVault + Policy + AuditLog>(
    store: &S,
) {
    let (grant, p) = connected(store, "up").await;
    let (other, _) = connected(store, "up").await;
    assert_eq!(store.grants_of(ACCOUNT).await.unwrap().len(), 2);
    store.remove_grant(&grant).await.unwrap();
    assert_eq!(
        store.open(&p.access.token).await.unwrap_err(),
        VaultError::InvalidToken
    );
    assert!(store.open_fresh(&p.refresh.token).await.is_err());
    assert_eq!(
        store.capabilities(&grant).await.unwrap_err(),
        PolicyError::UnknownGrant(grant.clone())
    );
    let live: Vec<GrantId> = store
        .grants_of(ACCOUNT)
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.grant)
        .collect();
    assert_eq!(live, vec![other]);
    let ended = store.revoked_of(ACCOUNT).await.unwrap();
    assert_eq!(ended.len(), 1);
    assert_eq!(
        (&ended[0].grant, ended[0].client.as_str()),
        (&grant, CLIENT)
    );
    let events = store.events(&grant, 10).await.unwrap();
    assert_eq!(
        events.first().map(|e| &e.kind),
        Some(&AuditKind::Revoked),
        "the end is in its log"
    );
    assert!(store.revoked_of("someone-else").await.unwrap().is_empty());
}
