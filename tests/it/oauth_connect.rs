//! The connect flow end to end with real parts: our authorization server, the stand-in
//! upstream (tokens the real Cyrus verifies), and tool calls answered from the Cyrus testbed.

use serde_json::json;

use crate::support::oauth::{
    Browser, Standin, call_tool, oauth_app_toward, oauth_app_with_client, tokens, tool_status,
};

fn identity_username(body: &serde_json::Value) -> String {
    body["result"]["structuredContent"]["username"]
        .as_str()
        .unwrap_or_else(|| panic!("no identity in {body}"))
        .to_owned()
}

#[tokio::test]
async fn a_client_connects_through_consent_and_the_upstream_and_reads_mail() {
    let (standin, app, client) =
        oauth_app_with_client(&[], "http://127.0.0.1:41999/callback").await;
    let mut browser = Browser::default();
    let returned = client.authorize(&mut browser).await;
    assert!(
        returned.url.starts_with("http://127.0.0.1:41999/callback?"),
        "{}",
        returned.url
    );
    assert_eq!(returned.params["state"], "client-state-123");
    assert_eq!(returned.params["iss"], app.base());
    let t = client.exchange(&returned).await;
    assert!(
        (3500..=3600).contains(&t.expires_in),
        "default access token lifetime: {}",
        t.expires_in
    );
    let (status, body) = call_tool(&app, &t.access, "get_identity", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(identity_username(&body), "alice@example.test");
    // We sent our own PKCE challenge upstream, and no resource: Cyrus publishes no
    // protected-resource metadata naming one (upstream_resource.rs covers those that do).
    let stats = standin.stats().await;
    let asked = &stats["authorize_requests"][0];
    assert_eq!(asked["code_challenge_method"], "S256");
    assert_eq!(asked["client_id"], "mailconnect-test");
    assert!(asked.get("resource").is_none(), "{asked}");
}

#[tokio::test]
async fn tokens_keep_working_across_client_refresh_and_a_restart() {
    let (_standin, app, client) =
        oauth_app_with_client(&[], "http://127.0.0.1:41999/callback").await;
    let t1 = client.connect().await;
    let t2 = tokens(client.refresh(&t1.refresh).await).await;
    assert_ne!(t2.refresh, t1.refresh);
    assert_eq!(tool_status(&app, &t2.access, "list_mailboxes").await, 200);
    // A restart keeps the vault: tokens issued before still work, and refresh still rotates.
    let app = app.restart().await;
    assert_eq!(tool_status(&app, &t2.access, "get_identity").await, 200);
    let t3 = tokens(client.refresh(&t2.refresh).await).await;
    let (status, body) = call_tool(&app, &t3.access, "get_identity", json!({})).await;
    assert_eq!(
        (status, identity_username(&body)),
        (200, "alice@example.test".to_owned())
    );
}

/// The upstream token Cyrus rejects (expired for real: backdated past `http_jwt_max_age`) is
/// refreshed upstream once, lazily, and the tool call succeeds.
#[tokio::test]
async fn an_upstream_token_the_mail_server_rejects_is_refreshed_on_the_tool_call() {
    let (standin, app, client) =
        oauth_app_with_client(&[], "http://127.0.0.1:41999/callback").await;
    standin.short_lived_access_tokens(1, 2).await;
    let t = client.connect().await;
    assert_eq!(tool_status(&app, &t.access, "list_mailboxes").await, 200);
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(standin.token_requests("refresh_token").await, 0);
    let (status, body) = call_tool(&app, &t.access, "get_identity", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(identity_username(&body), "alice@example.test");
    assert_eq!(
        standin.token_requests("refresh_token").await,
        1,
        "exactly one upstream refresh"
    );
    // The renewed upstream token is stored: the next call needs no refresh.
    assert_eq!(tool_status(&app, &t.access, "list_mailboxes").await, 200);
    assert_eq!(standin.token_requests("refresh_token").await, 1);
}

/// An upstream token near its expiry (the upstream said so) is renewed before it is used.
#[tokio::test]
async fn an_upstream_token_near_expiry_is_renewed_before_the_call() {
    let (standin, app, client) = oauth_app_toward(
        Standin::start_with(&["--access-ttl", "4"]),
        &[],
        "http://127.0.0.1:41999/callback",
    )
    .await;
    let t = client.connect().await;
    // A fresh token is not due yet (a quarter of its 4 s life before the end is).
    assert_eq!(tool_status(&app, &t.access, "get_identity").await, 200);
    assert_eq!(standin.token_requests("refresh_token").await, 0);
    tokio::time::sleep(std::time::Duration::from_millis(3200)).await;
    assert_eq!(tool_status(&app, &t.access, "get_identity").await, 200);
    assert_eq!(
        standin.token_requests("refresh_token").await,
        1,
        "no early upstream refresh"
    );
}
