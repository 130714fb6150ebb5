use super::*;
use crate::domain::auth::rotation::RefreshRole;
use crate::domain::{
    auth::token::{new_grant_id, new_token},
    secret::SecretString,
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

const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn issued(grant: &GrantId, secs: i64) -> IssuedToken {
    IssuedToken {
        token: new_token(grant),
        expires_at: now() + secs,
    }
}

fn pair(grant: &GrantId) -> TokenPair {
    TokenPair {
        access: issued(grant, 3600),
        refresh: issued(grant, 86400),
        scope: "mail".into(),
    }
}

/// A grant created by the connect flow, with its code redeemed: returns (grant, pair).
async fn connected(vault: &RedbVault, upstream_secret: &str) -> (GrantId, TokenPair) {
    let grant = new_grant_id();
    let code = issued(&grant, 300);
    let draft = GrantDraft {
        id: grant.clone(),
        client: ClientId::new("client-a"),
        redirect_uri: "http://127.0.0.1/cb".into(),
        resource: "http://127.0.0.1:1/mcp".into(),
        scope: "mail".into(),
        code_challenge: CodeChallenge::from_stored(CHALLENGE.into()),
        account_digest: "00".into(),
        upstream: UpstreamTokens {
            access: SecretString::new(upstream_secret),
            refresh: Some(SecretString::new(format!("{upstream_secret}-refresh"))),
            expires_at: Some(now() + 3600),
            issued_at: None,
        },
        capabilities: CapabilitySet::read_only(),
    };
    vault.create_grant(draft, code.clone()).await.unwrap();
    let binding = vault.code_binding(&code.token).await.unwrap().unwrap();
    assert_eq!(
        (binding.grant.clone(), binding.used),
        (grant.clone(), false)
    );
    let p = pair(&grant);
    let Redemption::Issued(p) = vault.redeem_code(&code.token, p).await.unwrap() else {
        panic!("code not redeemed");
    };
    (grant, p)
}

#[tokio::test]
async fn the_grants_token_opens_its_credential() {
    let (_p, vault) = temp_db();
    let grant = GrantId::new("g1");
    let token = AccessToken::new("g1.secret-token-value");
    configured(&vault, &grant, &bearer("upstream-1"), &token);
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
    let (_, pair) = connected(&vault, "upstream-oauth-access-secret").await;
    drop(vault);
    let bytes = std::fs::read(&p.0).unwrap();
    let haystack = String::from_utf8_lossy(&bytes);
    for secret in [
        "hunter2-password",
        "the-client-token",
        "AGE-SECRET-KEY",
        "upstream-oauth-access-secret",
        pair.access.token.expose_secret(),
        pair.refresh.token.expose_secret(),
    ] {
        assert!(
            !haystack.contains(secret),
            "{secret} is readable in the database file"
        );
    }
    let reopened = RedbVault::open(&p.0).unwrap();
    assert!(reopened.open(&token).await.is_ok());
    assert_eq!(
        reopened.open(&pair.access.token).await.unwrap().credential,
        bearer("upstream-oauth-access-secret")
    );
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
    assert!(vault.capabilities(&grant).await.is_err());
}

#[tokio::test]
async fn only_access_tokens_open_a_grant_for_mcp() {
    let (_p, vault) = temp_db();
    let (_, pair) = connected(&vault, "up").await;
    assert!(vault.open(&pair.access.token).await.is_ok());
    assert_eq!(
        vault.open(&pair.refresh.token).await.unwrap_err(),
        VaultError::InvalidToken
    );
    assert!(vault.open_fresh(&pair.refresh.token).await.is_ok());
}

#[tokio::test]
async fn a_replayed_code_revokes_the_grant() {
    let (_p, vault) = temp_db();
    let grant = new_grant_id();
    let code = issued(&grant, 300);
    let draft = GrantDraft {
        id: grant.clone(),
        client: ClientId::new("c"),
        redirect_uri: "http://127.0.0.1/cb".into(),
        resource: "r".into(),
        scope: "mail".into(),
        code_challenge: CodeChallenge::from_stored(CHALLENGE.into()),
        account_digest: "00".into(),
        upstream: UpstreamTokens {
            access: SecretString::new("a"),
            refresh: None,
            expires_at: None,
            issued_at: None,
        },
        capabilities: CapabilitySet::read_only(),
    };
    vault.create_grant(draft, code.clone()).await.unwrap();
    let Redemption::Issued(first) = vault.redeem_code(&code.token, pair(&grant)).await.unwrap()
    else {
        panic!("first redemption failed");
    };
    assert!(vault.code_binding(&code.token).await.unwrap().unwrap().used);
    assert!(matches!(
        vault.redeem_code(&code.token, pair(&grant)).await.unwrap(),
        Redemption::Revoked
    ));
    assert_eq!(
        vault.open(&first.access.token).await.unwrap_err(),
        VaultError::InvalidToken
    );
    assert!(
        vault
            .refresh_binding(&first.refresh.token)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn refresh_rotation_replays_until_the_successor_is_used_then_revokes() {
    let (_p, vault) = temp_db();
    let (grant, p1) = connected(&vault, "up").await;
    let r1 = p1.refresh.token.clone();
    let Redemption::Issued(p2) = vault.rotate_refresh(&r1, pair(&grant)).await.unwrap() else {
        panic!("rotation failed");
    };
    // Lost response: R1 again gets the same pair.
    let Redemption::Issued(again) = vault.rotate_refresh(&r1, pair(&grant)).await.unwrap() else {
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
    vault.open(&p2.access.token).await.unwrap();
    assert!(matches!(
        vault.rotate_refresh(&r1, pair(&grant)).await.unwrap(),
        Redemption::Revoked
    ));
    assert_eq!(
        vault.open_fresh(&p2.refresh.token).await.unwrap_err(),
        VaultError::InvalidToken
    );
}

#[tokio::test]
async fn a_refresh_token_two_generations_old_revokes_the_grant() {
    let (_p, vault) = temp_db();
    let (grant, p1) = connected(&vault, "up").await;
    let Redemption::Issued(p2) = vault
        .rotate_refresh(&p1.refresh.token, pair(&grant))
        .await
        .unwrap()
    else {
        panic!()
    };
    let Redemption::Issued(p3) = vault
        .rotate_refresh(&p2.refresh.token, pair(&grant))
        .await
        .unwrap()
    else {
        panic!()
    };
    let binding = vault
        .refresh_binding(&p1.refresh.token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(binding.role, RefreshRole::Older);
    assert!(matches!(
        vault
            .rotate_refresh(&p1.refresh.token, pair(&grant))
            .await
            .unwrap(),
        Redemption::Revoked
    ));
    assert!(vault.open_fresh(&p3.refresh.token).await.is_err());
}

#[tokio::test]
async fn revocation_by_the_owning_client_only() {
    let (_p, vault) = temp_db();
    let (_, p) = connected(&vault, "up").await;
    vault
        .revoke_token(&p.access.token, &ClientId::new("client-b"))
        .await
        .unwrap();
    assert!(
        vault.open(&p.access.token).await.is_ok(),
        "another client revoked it"
    );
    vault
        .revoke_token(&p.access.token, &ClientId::new("client-a"))
        .await
        .unwrap();
    assert_eq!(
        vault.open(&p.access.token).await.unwrap_err(),
        VaultError::InvalidToken
    );
    assert!(
        vault.open_fresh(&p.refresh.token).await.is_ok(),
        "revoking the access token ended the grant"
    );
    vault
        .revoke_token(&p.refresh.token, &ClientId::new("client-a"))
        .await
        .unwrap();
    assert!(vault.open_fresh(&p.refresh.token).await.is_err());
}

#[tokio::test]
async fn a_refreshed_upstream_token_is_resealed_for_every_token() {
    let (_p, vault) = temp_db();
    let (grant, p) = connected(&vault, "up-1").await;
    assert_eq!(
        vault.open(&p.access.token).await.unwrap().credential,
        bearer("up-1")
    );
    let tokens = UpstreamTokens {
        access: SecretString::new("up-2"),
        refresh: Some(SecretString::new("up-2-refresh")),
        expires_at: Some(now() + 60),
        issued_at: Some(now()),
    };
    vault.store_upstream(&grant, tokens).await.unwrap();
    let opened = vault.open(&p.access.token).await.unwrap();
    assert_eq!(opened.credential, bearer("up-2"));
    assert_eq!(
        opened.upstream_refresh.unwrap().token.expose_secret(),
        "up-2-refresh"
    );
    assert_eq!(
        vault.open_fresh(&p.refresh.token).await.unwrap().credential,
        bearer("up-2")
    );
}

#[tokio::test]
async fn sweeping_removes_expired_codes_and_their_grants() {
    let (_p, vault) = temp_db();
    let grant = new_grant_id();
    let code = IssuedToken {
        token: new_token(&grant),
        expires_at: now() - 1,
    };
    let draft = GrantDraft {
        id: grant.clone(),
        client: ClientId::new("c"),
        redirect_uri: "http://127.0.0.1/cb".into(),
        resource: "r".into(),
        scope: "mail".into(),
        code_challenge: CodeChallenge::from_stored(CHALLENGE.into()),
        account_digest: "00".into(),
        upstream: UpstreamTokens {
            access: SecretString::new("a"),
            refresh: None,
            expires_at: None,
            issued_at: None,
        },
        capabilities: CapabilitySet::read_only(),
    };
    vault.create_grant(draft, code.clone()).await.unwrap();
    assert!(
        vault.code_binding(&code.token).await.unwrap().is_none(),
        "an expired code is unknown"
    );
    assert_eq!(vault.sweep(86400, Retention::default()).unwrap(), 2);
    assert!(vault.capabilities(&grant).await.is_err());
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

mod background {
    use super::*;
    use crate::domain::notify::{
        background::{BackgroundStore as _, LastDelivery, NotifierKeyring as _},
        delivery::{Destination, WebhookSecret, WebhookUrl},
    };

    fn key(dir: &std::path::Path) -> NotifierKey {
        NotifierKey::load_or_create(&dir.join(format!("notifier-{:x}.key", rand::random::<u64>())))
            .unwrap()
    }

    fn has_notifier(notifier: &NotifierVault, account: &str) -> bool {
        notifier
            .notifier_accounts()
            .unwrap()
            .iter()
            .any(|a| a == account)
    }

    fn tokens(secret: &str) -> UpstreamTokens {
        UpstreamTokens {
            access: SecretString::new(secret),
            refresh: Some(SecretString::new(format!("{secret}-refresh"))),
            expires_at: Some(now() + 3600),
            issued_at: Some(now()),
        }
    }

    fn webhook() -> (Destination, String) {
        let secret = WebhookSecret::generate();
        let whsec = secret.to_whsec().expose_secret().to_owned();
        let url = WebhookUrl::parse("https://hooks.example.net/mail", false).unwrap();
        (Destination::Webhook { url, secret }, whsec)
    }

    #[tokio::test]
    async fn a_stolen_vault_and_config_open_no_grant_and_the_notifier_key_only_notifier_grants() {
        let (p, vault) = temp_db();
        let dir = std::env::temp_dir();
        let notifier_key = key(&dir);
        let front = BackgroundVault::new(vault.clone(), notifier_key.seal());
        let (grant, pair) = connected(&vault, "client-upstream-secret").await;
        front
            .seal_notifier("acct", &tokens("notifier-upstream-secret"))
            .unwrap();
        let (destination, whsec) = webhook();
        front
            .seal_destination(&grant, "acct", &destination)
            .unwrap();
        drop((front, vault));

        // The file holds none of it in the clear.
        let bytes = std::fs::read(&p.0).unwrap();
        let haystack = String::from_utf8_lossy(&bytes);
        for secret in ["notifier-upstream-secret", whsec.as_str(), "AGE-SECRET-KEY"] {
            assert!(!haystack.contains(secret), "{secret} readable in the file");
        }

        // A thief with the file (and any key of their own) opens nothing.
        let stolen = RedbVault::open(&p.0).unwrap();
        let thief = NotifierVault::new(stolen.clone(), key(&dir));
        assert!(thief.open_notifier("acct").is_err());
        assert!(thief.open_destination(&grant).is_err());

        // The notifier key opens the notifier's grant and destination…
        let notifier = NotifierVault::new(stolen.clone(), notifier_key);
        let opened = notifier.open_notifier("acct").unwrap().unwrap();
        assert_eq!(opened.access.expose_secret(), "notifier-upstream-secret");
        let Some(Destination::Webhook { secret, .. }) = notifier.open_destination(&grant).unwrap()
        else {
            panic!("no webhook");
        };
        assert_eq!(secret.to_whsec().expose_secret(), whsec);
        // … and no client grant: their props are sealed to per-grant keys it doesn't hold.
        let record = stolen.policy_record_blocking(&grant).unwrap();
        assert!(
            super::super::crypto::open_props(&record.sealed_props, notifier.key_for_tests())
                .is_none()
        );
        // The client grant still opens with its own token only.
        assert_eq!(
            stolen.open(&pair.access.token).await.unwrap().credential,
            bearer("client-upstream-secret")
        );
    }

    #[test]
    fn turning_off_removes_the_destination_and_says_whether_the_notifier_is_still_needed() {
        let (_p, vault) = temp_db();
        let k = key(&std::env::temp_dir());
        let front = BackgroundVault::new(vault.clone(), k.seal());
        let (a, b) = (GrantId::new("ga"), GrantId::new("gb"));
        for g in [&a, &b] {
            front.seal_destination(g, "acct", &webhook().0).unwrap();
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
            .unwrap();
        let shown = front.background(&a).unwrap().unwrap();
        assert_eq!(
            (shown.kind.as_str(), shown.target.as_str()),
            ("webhook", "hooks.example.net")
        );
        assert!(shown.last.unwrap().delivered);
        assert_eq!(front.backgrounds().unwrap().len(), 2);
        assert!(front.remove_destination(&a).unwrap(), "b still delivers");
        assert!(!front.remove_destination(&b).unwrap(), "none left");
        assert!(front.background(&a).unwrap().is_none());
        let notifier = NotifierVault::new(vault, k);
        front.seal_notifier("acct", &tokens("t")).unwrap();
        assert!(has_notifier(&notifier, "acct"));
        // Where the notifier left off survives a refresh of its tokens.
        front.save_cursor("acct", "cursor-1").unwrap();
        front.seal_notifier("acct", &tokens("t2")).unwrap();
        assert_eq!(front.cursor("acct").unwrap().as_deref(), Some("cursor-1"));
        notifier.remove_notifier("acct").unwrap();
        assert!(!has_notifier(&notifier, "acct"));
    }

    #[tokio::test]
    async fn a_connection_ending_any_way_takes_its_destination_with_it() {
        let (_p, vault) = temp_db();
        let k = key(&std::env::temp_dir());
        let front = BackgroundVault::new(vault.clone(), k.seal());
        let (grant, _) = connected(&vault, "s").await;
        front
            .seal_destination(&grant, "acct", &webhook().0)
            .unwrap();
        vault.remove_grant(&grant).await.unwrap();
        assert!(front.background(&grant).unwrap().is_none());
        assert!(front.backgrounds().unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_notifier_ends_only_an_unused_grant_and_turning_on_needs_one() {
        let (_p, vault) = temp_db();
        let k = key(&std::env::temp_dir());
        let front = BackgroundVault::new(vault.clone(), k.seal());
        let notifier = NotifierVault::new(vault.clone(), k);
        let (grant, _) = connected(&vault, "s").await;
        // No notifier grant yet: nothing is turned on without the consent.
        assert!(
            !front
                .seal_destination_if_notifier(&grant, "acct", &webhook().0)
                .unwrap()
        );
        assert!(front.background(&grant).unwrap().is_none());
        front.seal_notifier("acct", &tokens("n")).unwrap();
        assert!(
            front
                .seal_destination_if_notifier(&grant, "acct", &webhook().0)
                .unwrap()
        );
        front.save_cursor("acct", "c1").unwrap();
        // In use: not taken.
        assert!(notifier.take_unused("acct").unwrap().is_none());
        assert!(has_notifier(&notifier, "acct"));
        // A delivery recorded after turning off brings nothing back.
        front.remove_destination(&grant).unwrap();
        front
            .record_delivery(
                &grant,
                &LastDelivery {
                    at: chrono::Utc::now(),
                    delivered: true,
                    detail: "late".into(),
                },
            )
            .unwrap();
        assert!(front.background(&grant).unwrap().is_none());
        // Unused: taken whole (tokens to revoke), cursor and all.
        let taken = notifier.take_unused("acct").unwrap().unwrap();
        assert_eq!(taken.refresh.unwrap().expose_secret(), "n-refresh");
        assert!(!has_notifier(&notifier, "acct"));
        assert_eq!(front.cursor("acct").unwrap(), None);
        front.save_cursor("acct", "c2").unwrap();
        assert_eq!(
            front.cursor("acct").unwrap(),
            None,
            "no cursor without a notifier"
        );
    }

    #[tokio::test]
    async fn destinations_of_connections_that_no_longer_exist_are_swept() {
        let (_p, vault) = temp_db();
        let k = key(&std::env::temp_dir());
        let front = BackgroundVault::new(vault.clone(), k.seal());
        let (grant, _) = connected(&vault, "s").await;
        front
            .seal_destination(&grant, "acct", &webhook().0)
            .unwrap();
        front
            .seal_destination(&GrantId::new("gone"), "acct", &webhook().0)
            .unwrap();
        assert_eq!(front.remove_orphans().unwrap(), 1);
        assert_eq!(front.backgrounds().unwrap().len(), 1);
        assert_eq!(vault.notifier_grants().unwrap(), 0);
        front.seal_notifier("acct", &tokens("n")).unwrap();
        assert_eq!(vault.notifier_grants().unwrap(), 1);
    }

    #[test]
    fn the_key_file_is_created_owner_only_and_read_back() {
        let path = std::env::temp_dir().join(format!("notifier-{:x}.key", rand::random::<u64>()));
        let first = NotifierKey::load_or_create(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = NotifierKey::load_or_create(&path).unwrap();
        assert_eq!(first.seal().0.to_string(), again.seal().0.to_string());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let refused = NotifierKey::load(&path).unwrap_err();
            assert!(refused.contains("read by others"), "{refused}");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        std::fs::write(&path, "garbage").unwrap();
        assert!(NotifierKey::load_or_create(&path).is_err());
        let _ = std::fs::remove_file(&path);
    }
}
