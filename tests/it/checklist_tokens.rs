//! docs/security-checklist.md sections D (token endpoint), E (refresh tokens) and F (revocation):
//! one test per row, named after its requirement.

use serde_json::{Value, json};

use crate::support::{
    TestApp, header,
    oauth::{
        Browser, Client, Returned, Standin, Tokens, oauth_app_with_client, tokens, tool_status,
    },
};

async fn setup(extra: &[&str]) -> (Standin, TestApp, Client) {
    oauth_app_with_client(extra, "http://127.0.0.1:41999/cb").await
}

async fn authorized(client: &Client) -> Returned {
    client.authorize(&mut Browser::default()).await
}

async fn error_of(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

async fn exchange_with(
    client: &Client,
    returned: &Returned,
    overrides: &[(&str, &str)],
) -> reqwest::Response {
    let mut form: Vec<(&str, &str)> = vec![
        ("grant_type", "authorization_code"),
        ("code", &returned.params["code"]),
        ("redirect_uri", &client.redirect_uri),
        ("code_verifier", &returned.verifier),
    ];
    for (k, v) in overrides {
        form.retain(|(f, _)| f != k);
        if !v.is_empty() {
            form.push((k, v));
        }
    }
    client.token_request(&form).await
}

async fn works(app: &TestApp, access: &str) -> bool {
    tool_status(app, access, "get_identity").await == 200
}

#[tokio::test]
async fn d1_a_wrong_verifier_is_invalid_grant_and_leaves_the_code_usable() {
    let (_s, _app, client) = setup(&[]).await;
    let returned = authorized(&client).await;
    let wrong = "x".repeat(43);
    assert_eq!(
        error_of(exchange_with(&client, &returned, &[("code_verifier", &wrong)]).await).await,
        (400, "invalid_grant".into())
    );
    client.exchange(&returned).await;
}

#[tokio::test]
async fn d2_a_token_request_without_the_verifier_is_refused() {
    let (_s, _app, client) = setup(&[]).await;
    let returned = authorized(&client).await;
    assert_eq!(
        error_of(exchange_with(&client, &returned, &[("code_verifier", "")]).await).await,
        (400, "invalid_grant".into())
    );
}

#[tokio::test]
async fn d3_a_code_redeemed_twice_revokes_everything_issued_from_it() {
    let (_s, app, client) = setup(&[]).await;
    let returned = authorized(&client).await;
    let first = client.exchange(&returned).await;
    assert!(works(&app, &first.access).await);
    assert_eq!(
        error_of(exchange_with(&client, &returned, &[]).await).await,
        (400, "invalid_grant".into())
    );
    assert_eq!(tool_status(&app, &first.access, "get_identity").await, 401);
    assert_eq!(
        error_of(client.refresh(&first.refresh).await).await.1,
        "invalid_grant"
    );
}

#[tokio::test]
async fn d4_another_client_or_redirect_uri_is_invalid_grant_and_consumes_nothing() {
    let (_s, app, client) = setup(&[]).await;
    let other = Client::register(&app, "http://127.0.0.1:41999/cb").await;
    let returned = authorized(&client).await;
    let stolen = other.redeem(&returned, &client.redirect_uri).await;
    assert_eq!(error_of(stolen).await, (400, "invalid_grant".into()));
    let wrong_redirect = exchange_with(
        &client,
        &returned,
        &[("redirect_uri", "http://127.0.0.1:41999/other")],
    )
    .await;
    assert_eq!(
        error_of(wrong_redirect).await,
        (400, "invalid_grant".into())
    );
    client.exchange(&returned).await;
}

#[tokio::test]
async fn d5_an_expired_code_is_invalid_grant() {
    let (_s, _app, client) = setup(&["--code-ttl-secs", "1"]).await;
    let returned = authorized(&client).await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(
        error_of(exchange_with(&client, &returned, &[]).await).await,
        (400, "invalid_grant".into())
    );
}

#[tokio::test]
async fn d6_a_forged_code_for_someone_elses_grant_is_refused_and_harmless() {
    let (_s, app, client) = setup(&[]).await;
    let victim = client.connect().await;
    let grant = victim.access.split('.').next().unwrap();
    let attacker = Client::register(&app, "http://127.0.0.1:41999/cb").await;
    let forged = format!("{grant}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let r = attacker
        .token_request(&[
            ("grant_type", "authorization_code"),
            ("code", &forged),
            ("redirect_uri", &attacker.redirect_uri),
            ("code_verifier", &"v".repeat(43)),
        ])
        .await;
    assert_eq!(error_of(r).await, (400, "invalid_grant".into()));
    assert!(
        works(&app, &victim.access).await,
        "the victim's grant was harmed"
    );
}

#[tokio::test]
async fn d7_a_resource_that_differs_from_the_authorization_is_invalid_target() {
    let (_s, _app, client) = setup(&[]).await;
    let returned = authorized(&client).await;
    let r = exchange_with(
        &client,
        &returned,
        &[("resource", "https://other.example/mcp")],
    )
    .await;
    assert_eq!(error_of(r).await, (400, "invalid_target".into()));
    client.exchange(&returned).await;
}

#[tokio::test]
async fn d8_token_responses_are_bearer_uncacheable_json() {
    let (_s, _app, client) = setup(&[]).await;
    let returned = authorized(&client).await;
    let r = exchange_with(&client, &returned, &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.headers()["pragma"], "no-cache");
    assert!(header(&r, "content-type").starts_with("application/json"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_i64().unwrap() > 0);
    assert_eq!(body["scope"], "mail");
    assert!(body["refresh_token"].is_string());
    // Our tokens are opaque and never the upstream's (no token passthrough).
    assert!(!body["access_token"].as_str().unwrap().starts_with("eyJ"));
}

#[tokio::test]
async fn d9_bad_confidential_client_authentication_is_401_with_a_basic_challenge() {
    let (_s, app, _client) = setup(&[]).await;
    let confidential = Client::register_with(
        &app,
        json!({"redirect_uris": ["http://127.0.0.1:41999/cb"], "token_endpoint_auth_method": "client_secret_basic"}),
    )
    .await;
    assert!(confidential.secret.is_some());
    let http = reqwest::Client::new();
    for auth in ["Basic !!!not-base64", "Basic bm9jb2xvbg==", "Bearer x"] {
        let r = http
            .post(format!("{}/token", app.base()))
            .header("authorization", auth)
            .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{auth}");
        assert!(header(&r, "www-authenticate").starts_with("Basic"));
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");
    }
    let wrong = http
        .post(format!("{}/token", app.base()))
        .basic_auth(&confidential.id, Some("wrong-secret"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    // The right secret, but in the body when it registered for Basic: refused too.
    let r = confidential
        .token_request(&[("grant_type", "refresh_token"), ("refresh_token", "x")])
        .await;
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn d10_the_token_endpoint_takes_no_get_and_no_secrets_in_urls() {
    let (_s, app, _client) = setup(&[]).await;
    let r = reqwest::get(format!(
        "{}/token?grant_type=refresh_token&refresh_token=x&client_id=y",
        app.base()
    ))
    .await
    .unwrap();
    assert_eq!(r.status(), 405);
}

#[tokio::test]
async fn e1_a_refresh_returns_a_new_access_and_refresh_token() {
    let (_s, app, client) = setup(&[]).await;
    let t1 = client.connect().await;
    let t2 = tokens(client.refresh(&t1.refresh).await).await;
    assert_ne!(
        (t2.access.as_str(), t2.refresh.as_str()),
        (t1.access.as_str(), t1.refresh.as_str())
    );
    assert!(works(&app, &t2.access).await);
}

#[tokio::test]
async fn e2_a_repeated_refresh_before_the_new_pair_is_used_gets_the_same_pair() {
    let (_s, app, client) = setup(&[]).await;
    let t1 = client.connect().await;
    let t2 = tokens(client.refresh(&t1.refresh).await).await;
    let again = tokens(client.refresh(&t1.refresh).await).await;
    assert_eq!(
        (again.access, again.refresh.clone()),
        (t2.access.clone(), t2.refresh.clone())
    );
    assert!(works(&app, &t2.access).await);
    let t3 = tokens(client.refresh(&t2.refresh).await).await;
    assert!(works(&app, &t3.access).await);
}

#[tokio::test]
async fn e3_concurrent_refreshes_rotate_once_and_everyone_gets_the_new_pair() {
    let (_s, app, client) = setup(&[]).await;
    let t1 = client.connect().await;
    let results = futures_join(16, |_| {
        let client = client.clone();
        let r = t1.refresh.clone();
        async move { tokens(client.refresh(&r).await).await }
    })
    .await;
    let first = &results[0].refresh;
    assert!(
        results.iter().all(|t| &t.refresh == first),
        "more than one rotation"
    );
    assert!(works(&app, &results[0].access).await);
}

#[tokio::test]
async fn e4_reusing_a_refresh_token_after_its_successor_was_used_revokes_the_grant() {
    let (_s, app, client) = setup(&[]).await;
    let t1 = client.connect().await;
    let t2 = tokens(client.refresh(&t1.refresh).await).await;
    assert!(works(&app, &t2.access).await);
    assert_eq!(
        error_of(client.refresh(&t1.refresh).await).await,
        (400, "invalid_grant".into())
    );
    assert_eq!(tool_status(&app, &t2.access, "get_identity").await, 401);
    assert_eq!(
        error_of(client.refresh(&t2.refresh).await).await.1,
        "invalid_grant"
    );
}

#[tokio::test]
async fn e5_a_refresh_token_two_generations_old_revokes_the_grant() {
    let (_s, app, client) = setup(&[]).await;
    let t0 = client.connect().await;
    let t1 = tokens(client.refresh(&t0.refresh).await).await;
    let t2 = tokens(client.refresh(&t1.refresh).await).await;
    assert_eq!(
        error_of(client.refresh(&t0.refresh).await).await,
        (400, "invalid_grant".into())
    );
    assert_eq!(tool_status(&app, &t2.access, "get_identity").await, 401);
}

#[tokio::test]
async fn e6_a_refresh_may_narrow_the_scope_but_never_widen_it() {
    let (_s, _app, client) = setup(&[]).await;
    let t = client.connect().await;
    let narrow = client
        .token_request(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &t.refresh),
            ("scope", "mail"),
        ])
        .await;
    let t2 = tokens(narrow).await;
    let wide = client
        .token_request(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &t2.refresh),
            ("scope", "mail admin"),
        ])
        .await;
    assert_eq!(error_of(wide).await, (400, "invalid_scope".into()));
}

#[tokio::test]
async fn e7_a_refresh_by_another_client_is_invalid_grant() {
    let (_s, app, client) = setup(&[]).await;
    let t = client.connect().await;
    let other = Client::register(&app, "http://127.0.0.1:41999/cb").await;
    assert_eq!(
        error_of(other.refresh(&t.refresh).await).await,
        (400, "invalid_grant".into())
    );
    tokens(client.refresh(&t.refresh).await).await;
}

#[tokio::test]
async fn e8_a_refresh_after_revocation_is_invalid_grant_not_a_server_error() {
    let (_s, _app, client) = setup(&[]).await;
    let t = client.connect().await;
    revoke(&client, &t.refresh).await;
    assert_eq!(
        error_of(client.refresh(&t.refresh).await).await,
        (400, "invalid_grant".into())
    );
    assert_eq!(
        error_of(client.refresh("garbage").await).await,
        (400, "invalid_grant".into())
    );
}

#[tokio::test]
async fn e9_after_a_restart_the_newest_refresh_token_works() {
    let (_s, app, client) = setup(&[]).await;
    let t1 = client.connect().await;
    let t2 = tokens(client.refresh(&t1.refresh).await).await;
    let app = app.restart().await;
    // Lost response before the restart: R1 still answers with the stored pair.
    let again = tokens(client.refresh(&t1.refresh).await).await;
    assert_eq!(again.refresh, t2.refresh);
    let t3 = tokens(client.refresh(&t2.refresh).await).await;
    assert!(works(&app, &t3.access).await);
}

async fn revoke(client: &Client, token: &str) -> u16 {
    client.revoke(token).await.status().as_u16()
}

#[tokio::test]
async fn f1_revoking_an_access_token_leaves_the_refresh_token_working() {
    let (_s, app, client) = setup(&[]).await;
    let t = client.connect().await;
    assert_eq!(revoke(&client, &t.access).await, 200);
    assert_eq!(tool_status(&app, &t.access, "get_identity").await, 401);
    let t2 = tokens(client.refresh(&t.refresh).await).await;
    assert!(works(&app, &t2.access).await);
}

#[tokio::test]
async fn f2_revoking_a_refresh_token_ends_the_whole_grant() {
    let (_s, app, client) = setup(&[]).await;
    let t = client.connect().await;
    assert_eq!(revoke(&client, &t.refresh).await, 200);
    assert_eq!(tool_status(&app, &t.access, "get_identity").await, 401);
    assert_eq!(
        error_of(client.refresh(&t.refresh).await).await.1,
        "invalid_grant"
    );
}

#[tokio::test]
async fn f3_unknown_or_already_revoked_tokens_get_the_same_200() {
    let (_s, _app, client) = setup(&[]).await;
    let t = client.connect().await;
    assert_eq!(revoke(&client, "garbage").await, 200);
    assert_eq!(revoke(&client, &t.refresh).await, 200);
    assert_eq!(revoke(&client, &t.refresh).await, 200);
}

#[tokio::test]
async fn f4_another_client_cannot_revoke_a_token() {
    let (_s, app, client) = setup(&[]).await;
    let t = client.connect().await;
    let other = Client::register(&app, "http://127.0.0.1:41999/cb").await;
    assert_eq!(revoke(&other, &t.refresh).await, 200);
    assert!(works(&app, &t.access).await);
    tokens(client.refresh(&t.refresh).await).await;
}

#[tokio::test]
async fn f5_revocation_checks_client_authentication_first() {
    let (_s, app, client) = setup(&[]).await;
    let t = client.connect().await;
    let r = reqwest::Client::new()
        .post(format!("{}/revoke", app.base()))
        .form(&[
            ("token", t.refresh.as_str()),
            ("client_id", "unknown-client"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(works(&app, &t.access).await);
}

#[tokio::test]
async fn f6_revocation_deletes_the_grants_sealed_upstream_tokens() {
    let (_s, app, client) = setup(&[]).await;
    let t: Tokens = client.connect().await;
    assert_eq!(revoke(&client, &t.refresh).await, 200);
    // Every token of the grant is gone with its wrapped key: none opens anything any more.
    assert_eq!(tool_status(&app, &t.access, "get_identity").await, 401);
    assert_eq!(
        error_of(client.refresh(&t.refresh).await).await.1,
        "invalid_grant"
    );
    // (The vault's unit tests check that removing a grant deletes its record and tokens.)
}

/// Runs `n` futures concurrently and collects their outputs in order.
async fn futures_join<T, F, Fut>(n: usize, f: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = (0..n).map(|i| tokio::spawn(f(i))).collect();
    let mut out = Vec::with_capacity(n);
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}
