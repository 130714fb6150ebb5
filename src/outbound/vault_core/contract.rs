//! The storage ports' contract: one function per behaviour a backend must have, generic over
//! the ports, so every backend's tests run the same rules (redb today: `vault/tests.rs`).
//! Each function starts from an empty store and panics on the first broken rule.
//!
//! A backend's test module calls each function with a fresh store; see
//! docs/storage-schema.md for what the rules protect.

// A contract check is a test: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use crate::domain::{
    approval::{Approval, ApprovalError, DraftDigest, Pending, Status},
    auth::{
        client::{ClientId, ClientKind, OAuthClient, TokenAuthMethod},
        pkce::CodeChallenge,
        redirect::RedirectUri,
        rotation::RefreshRole,
        token::{IssuedToken, TokenPair, new_grant_id, new_token},
    },
    grant::{AccessToken, Capability, CapabilitySet, GrantId, UpstreamCredential},
    ids::EmailId,
    notify::{
        background::LastDelivery,
        delivery::{Destination, WebhookSecret, WebhookUrl},
        settings::NotifySettings,
    },
    ports::{
        ApprovalStore, AuditEvent, AuditKind, AuditLog, BackgroundStore, ClientStore,
        DynApprovalStore, GrantDraft, NotifierKeyring, Policy, PolicyError, Redemption,
        RegistrationMemory, Retention, SweepRules, Sweeper, TokenVault, UpstreamTokens, VaultError,
    },
    recipients::RecipientRule,
    secret::SecretString,
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

/// Grant settings: every part reads back what was written, a capability change applies on
/// the next request, and a grant that ended has none.
pub async fn grant_settings_round_trip<S: TokenVault + Policy>(store: &S) {
    let (grant, _) = connected(store, "up").await;
    assert_eq!(
        store.capabilities(&grant).await.unwrap(),
        CapabilitySet::read_only()
    );
    let organize = CapabilitySet::with([Capability::Organize, Capability::Send]);
    store
        .set_capabilities(&grant, organize.clone())
        .await
        .unwrap();
    assert_eq!(store.capabilities(&grant).await.unwrap(), organize);
    let rules = NotifySettings {
        deny: vec!["@news.example".into()],
        allow: vec!["boss@example.com".into()],
        only_allowed: true,
        zone: "Europe/Berlin".into(),
        ..NotifySettings::default()
    };
    assert_eq!(
        store.notify_settings(&grant).await.unwrap(),
        NotifySettings::default()
    );
    store
        .set_notify_settings(&grant, rules.clone())
        .await
        .unwrap();
    assert_eq!(store.notify_settings(&grant).await.unwrap(), rules);
    assert_eq!(
        store.recipients(&grant).await.unwrap(),
        RecipientRule::Anyone
    );
    store
        .set_recipients(&grant, RecipientRule::WrittenTo)
        .await
        .unwrap();
    assert_eq!(
        store.recipients(&grant).await.unwrap(),
        RecipientRule::WrittenTo
    );
    assert!(!store.review_only(&grant).await.unwrap());
    store.set_review_only(&grant, true).await.unwrap();
    assert!(store.review_only(&grant).await.unwrap());
    let listed = store.grants_of(ACCOUNT).await.unwrap();
    assert_eq!(
        (
            &listed[0].capabilities,
            &listed[0].notify,
            &listed[0].recipients,
            listed[0].review_only
        ),
        (&organize, &rules, &RecipientRule::WrittenTo, true)
    );
    let gone = new_grant_id();
    assert_eq!(
        store
            .set_capabilities(&gone, CapabilitySet::read_only())
            .await
            .unwrap_err(),
        PolicyError::UnknownGrant(gone.clone())
    );
    assert_eq!(
        store.review_only(&gone).await.unwrap_err(),
        PolicyError::UnknownGrant(gone.clone())
    );
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

/// The audit log reads back a grant's events newest first, up to the limit, and settings
/// show the last tool call as "last used".
pub async fn audit_events_read_back_newest_first<S: TokenVault + AuditLog>(store: &S) {
    let (grant, _) = connected(store, "up").await;
    let (other, _) = connected(store, "up").await;
    assert_eq!(
        store.grants_of(ACCOUNT).await.unwrap()[0].last_used_at,
        None
    );
    for tool in ["first", "second", "third"] {
        store.record(event(&grant, tool)).await;
    }
    store.record(event(&other, "elsewhere")).await;
    let tools: Vec<String> = store
        .events(&grant, 2)
        .await
        .unwrap()
        .into_iter()
        .map(|e| match e.kind {
            AuditKind::ToolCall { tool, .. } => tool,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(tools, ["third", "second"]);
    assert_eq!(store.events(&other, 10).await.unwrap().len(), 1);
    let used = store
        .grants_of(ACCOUNT)
        .await
        .unwrap()
        .into_iter()
        .find(|g| g.grant == grant)
        .unwrap();
    assert!(used.last_used_at.is_some());
}

fn ask(draft: &str, at: i64) -> Approval<Pending> {
    Approval::ask(
        GrantId::new("g1"),
        ACCOUNT.into(),
        EmailId::parse(draft).unwrap(),
        DraftDigest([7; 32]),
        vec![1, 2, 3],
        at,
        600,
    )
}

/// Approvals round-trip, a decision empties the review copy, and of several concurrent
/// claims of one approval exactly one wins (compare-and-swap).
pub async fn approvals_compare_and_swap<S: ApprovalStore>(store: &S) {
    let at = now();
    let a = ask("M1", at);
    ApprovalStore::insert(store, a.record()).await.unwrap();
    assert_eq!(
        ApprovalStore::get(store, &a.record().id)
            .await
            .unwrap()
            .as_ref(),
        Some(a.record())
    );
    assert_eq!(
        ApprovalStore::find(store, &GrantId::new("g1"), &EmailId::parse("M1").unwrap())
            .await
            .unwrap()
            .as_ref(),
        Some(a.record())
    );
    let dyn_store: &dyn DynApprovalStore = store;
    let approved = a.approve(dyn_store, at).await.unwrap();
    let stored = ApprovalStore::get(store, &approved.record().id)
        .await
        .unwrap()
        .unwrap();
    assert!(
        stored.review.is_empty(),
        "the review copy goes with the decision"
    );
    let claim = || approved.clone().claim(dyn_store, at);
    let (c1, c2, c3, c4) = tokio::join!(claim(), claim(), claim(), claim());
    let wins = [c1, c2, c3, c4]
        .into_iter()
        .filter(|c| match c {
            Ok(_) => true,
            Err(ApprovalError::Conflict) => false,
            Err(e) => panic!("unexpected {e:?}"),
        })
        .count();
    assert_eq!(wins, 1);
    assert_eq!(
        ApprovalStore::transition(
            store,
            &approved.record().id,
            Status::Approved,
            Status::Claimed,
            None
        )
        .await
        .unwrap_err(),
        ApprovalError::Conflict
    );
}

/// A new ask for a draft replaces the older ones, never a claimed one (a send in flight
/// settles it, and a stale read can't remove it either); a claim decides the draft.
pub async fn a_new_ask_replaces_older_ones_but_never_a_claim<S: ApprovalStore>(store: &S) {
    let at = now();
    let dyn_store: &dyn DynApprovalStore = store;
    let grant = GrantId::new("g1");
    let m1 = EmailId::parse("M1").unwrap();
    let first = ask("M1", at);
    ApprovalStore::insert(store, first.record()).await.unwrap();
    let claimed = first
        .approve(dyn_store, at)
        .await
        .unwrap()
        .claim(dyn_store, at)
        .await
        .unwrap();
    let again = ask("M1", at + 1);
    ApprovalStore::insert(store, again.record()).await.unwrap();
    let found = ApprovalStore::find(store, &grant, &m1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.status, Status::Claimed, "a claim blocks the draft");
    let claimed_id = claimed.record().id.clone();
    ApprovalStore::remove(store, &claimed_id).await.unwrap();
    assert!(
        ApprovalStore::get(store, &claimed_id)
            .await
            .unwrap()
            .is_some(),
        "claimed: kept"
    );
    let sent = claimed.sent(dyn_store, "S1".into()).await.unwrap();
    assert_eq!(sent.submission.as_deref(), Some("S1"));
    assert_eq!(
        ApprovalStore::by_submission(store, &grant, "S1")
            .await
            .unwrap()
            .map(|r| r.id),
        Some(claimed_id.clone())
    );
    assert!(
        ApprovalStore::by_submission(store, &GrantId::new("g2"), "S1")
            .await
            .unwrap()
            .is_none(),
        "another grant's submission"
    );
    ApprovalStore::remove(store, &claimed_id).await.unwrap();
    assert!(
        ApprovalStore::get(store, &claimed_id)
            .await
            .unwrap()
            .is_none()
    );
    let newer = ask("M1", at + 2);
    ApprovalStore::insert(store, newer.record()).await.unwrap();
    assert!(
        ApprovalStore::get(store, &again.record().id)
            .await
            .unwrap()
            .is_none(),
        "the older pending one went"
    );
    assert_eq!(
        ApprovalStore::find(store, &grant, &m1)
            .await
            .unwrap()
            .map(|r| r.id),
        Some(newer.record().id.clone())
    );
}

fn webhook() -> (Destination, String) {
    let secret = WebhookSecret::generate();
    let whsec = secret.to_whsec().expose_secret().to_owned();
    let url = WebhookUrl::parse("https://hooks.example.net/mail", false).unwrap();
    (Destination::Webhook { url, secret }, whsec)
}

async fn has_notifier<N: NotifierKeyring>(notifier: &N, account: &str) -> bool {
    notifier
        .notifier_accounts()
        .await
        .unwrap()
        .iter()
        .any(|a| a == account)
}

/// What is sealed to the notifier opens with the notifier's key only: `thief` holds another
/// key over the same records.
pub async fn only_the_notifier_key_opens_background_records<
    S: TokenVault,
    F: BackgroundStore,
    N: NotifierKeyring,
>(
    store: &S,
    front: &F,
    notifier: &N,
    thief: &N,
) {
    let (grant, _) = connected(store, "client-upstream-secret").await;
    front
        .seal_notifier("acct", &upstream("notifier-upstream-secret"))
        .await
        .unwrap();
    let (destination, whsec) = webhook();
    front
        .seal_destination(&grant, "acct", &destination)
        .await
        .unwrap();
    assert!(thief.open_notifier("acct").await.is_err());
    assert!(thief.open_destination(&grant).await.is_err());
    let opened = notifier.open_notifier("acct").await.unwrap().unwrap();
    assert_eq!(opened.access.expose_secret(), "notifier-upstream-secret");
    let Some(Destination::Webhook { secret, .. }) =
        notifier.open_destination(&grant).await.unwrap()
    else {
        panic!("no webhook");
    };
    assert_eq!(secret.to_whsec().expose_secret(), whsec);
    assert!(notifier.open_notifier("nobody").await.unwrap().is_none());
}

/// Turning off removes the destination and says whether the person's notifier is still
/// needed; where the notifier left off survives a refresh of its tokens.
pub async fn turning_off_says_whether_the_notifier_is_still_needed<
    F: BackgroundStore,
    N: NotifierKeyring,
>(
    front: &F,
    notifier: &N,
) {
    let (a, b) = (GrantId::new("ga"), GrantId::new("gb"));
    for g in [&a, &b] {
        front
            .seal_destination(g, "acct", &webhook().0)
            .await
            .unwrap();
    }
    front
        .record_delivery(
            &a,
            &LastDelivery {
                at: chrono::Utc::now(),
                delivered: true,
                detail: "delivered (HTTP 200) after 1 attempt".into(),
            },
        )
        .await
        .unwrap();
    let shown = front.background(&a).await.unwrap().unwrap();
    assert_eq!(
        (
            shown.kind.as_str(),
            shown.target.as_str(),
            shown.account.as_str()
        ),
        ("webhook", "hooks.example.net", "acct")
    );
    assert!(shown.last.unwrap().delivered);
    assert_eq!(front.backgrounds().await.unwrap().len(), 2);
    assert!(
        front.remove_destination(&a).await.unwrap(),
        "b still delivers"
    );
    assert!(!front.remove_destination(&b).await.unwrap(), "none left");
    assert!(front.background(&a).await.unwrap().is_none());
    front.seal_notifier("acct", &upstream("t")).await.unwrap();
    assert!(has_notifier(notifier, "acct").await);
    front.save_cursor("acct", "cursor-1").await.unwrap();
    front.seal_notifier("acct", &upstream("t2")).await.unwrap();
    assert_eq!(
        front.cursor("acct").await.unwrap().as_deref(),
        Some("cursor-1")
    );
    notifier.remove_notifier("acct").await.unwrap();
    assert!(!has_notifier(notifier, "acct").await);
    assert_eq!(front.cursor("acct").await.unwrap(), None);
}

/// However a connection ends, its destination goes with it.
pub async fn a_connection_ending_takes_its_destination_with_it<
    S: TokenVault,
    F: BackgroundStore,
>(
    store: &S,
    front: &F,
) {
    let (grant, _) = connected(store, "s").await;
    front
        .seal_destination(&grant, "acct", &webhook().0)
        .await
        .unwrap();
    store.remove_grant(&grant).await.unwrap();
    assert!(front.background(&grant).await.unwrap().is_none());
    assert!(front.backgrounds().await.unwrap().is_empty());
}

/// Turning on needs the person's notifier grant (checked with the write); the notifier ends
/// only a grant no destination uses, taking its cursor along.
pub async fn the_notifier_ends_only_an_unused_grant_and_turning_on_needs_one<
    S: TokenVault,
    F: BackgroundStore,
    N: NotifierKeyring,
>(
    store: &S,
    front: &F,
    notifier: &N,
) {
    let (grant, _) = connected(store, "s").await;
    assert!(
        !front
            .seal_destination_if_notifier(&grant, "acct", &webhook().0)
            .await
            .unwrap()
    );
    assert!(front.background(&grant).await.unwrap().is_none());
    front.seal_notifier("acct", &upstream("n")).await.unwrap();
    assert!(
        front
            .seal_destination_if_notifier(&grant, "acct", &webhook().0)
            .await
            .unwrap()
    );
    front.save_cursor("acct", "c1").await.unwrap();
    assert!(
        notifier.take_unused("acct").await.unwrap().is_none(),
        "in use"
    );
    assert!(has_notifier(notifier, "acct").await);
    // A delivery recorded after turning off brings nothing back.
    front.remove_destination(&grant).await.unwrap();
    front
        .record_delivery(
            &grant,
            &LastDelivery {
                at: chrono::Utc::now(),
                delivered: true,
                detail: "late".into(),
            },
        )
        .await
        .unwrap();
    assert!(front.background(&grant).await.unwrap().is_none());
    let taken = notifier.take_unused("acct").await.unwrap().unwrap();
    assert_eq!(taken.refresh.unwrap().expose_secret(), "n-refresh");
    assert!(!has_notifier(notifier, "acct").await);
    assert_eq!(front.cursor("acct").await.unwrap(), None);
    front.save_cursor("acct", "c2").await.unwrap();
    assert_eq!(
        front.cursor("acct").await.unwrap(),
        None,
        "no cursor without a notifier"
    );
}

/// Destinations of connections that no longer exist are removed.
pub async fn destinations_of_ended_connections_are_removed<S: TokenVault, F: BackgroundStore>(
    store: &S,
    front: &F,
) {
    let (grant, _) = connected(store, "s").await;
    front
        .seal_destination(&grant, "acct", &webhook().0)
        .await
        .unwrap();
    front
        .seal_destination(&GrantId::new("gone"), "acct", &webhook().0)
        .await
        .unwrap();
    assert_eq!(front.remove_orphans().await.unwrap(), 1);
    let left: Vec<GrantId> = front
        .backgrounds()
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.grant)
        .collect();
    assert_eq!(left, vec![grant]);
}

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
