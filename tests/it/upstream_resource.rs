//! The `resource` (RFC 8707) asked of a discovered upstream: read from the JMAP server's
//! protected-resource metadata (RFC 9728 §3: the session URL's own document, then the
//! origin's), none when it publishes none, `--upstream-resource` over both; and a provider
//! that refuses the sign-in has its answer shown to the person. A stand-in upstream that
//! accepts only one resource (as strict providers do) and the fault proxy in front of Cyrus
//! serving the metadata.

use serde_json::{Value, json};

use crate::support::{
    TestApp,
    fault_proxy::Proxy,
    oauth::{Browser, Client, Standin, call_tool_at, spawn_oauth_app_at},
};

const CALLBACK: &str = "http://127.0.0.1:41999/cb";
const METADATA: &str = "/.well-known/oauth-protected-resource";

/// The app over `proxy` toward a stand-in started with `standin_args`.
async fn app_over(proxy: &Proxy, standin_args: &[&str], extra: &[&str]) -> (Standin, TestApp) {
    let standin = Standin::start_with(standin_args);
    let app = spawn_oauth_app_at(&proxy.session_url(), &standin, extra).await;
    (standin, app)
}

/// The `resource` of the stand-in's last authorization request (`None` without one).
async fn resource_asked(standin: &Standin) -> Option<String> {
    let stats = standin.stats().await;
    let asked = stats["authorize_requests"]
        .as_array()
        .and_then(|all| all.last())
        .cloned()
        .unwrap_or(Value::Null);
    asked["resource"].as_str().map(str::to_owned)
}

/// Connects a client and reads the mailboxes with its token.
async fn connect_and_read(app: &TestApp) {
    let tokens = Client::connected(app, CALLBACK).await;
    let (status, reply) =
        call_tool_at(&app.base(), &tokens.access, "list_mailboxes", json!({})).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["result"]["isError"], false, "{reply}");
}

#[tokio::test]
async fn upstream_resource_is_the_one_the_jmap_server_names_at_its_origin() {
    let proxy = Proxy::start([]).await;
    let origin = proxy.origin();
    proxy.publish_resource_metadata(METADATA, json!({"resource": origin}));
    let (standin, app) = app_over(&proxy, &["--resource", &origin], &[]).await;
    connect_and_read(&app).await;
    assert_eq!(
        resource_asked(&standin).await.as_deref(),
        Some(origin.as_str())
    );
}

#[tokio::test]
async fn upstream_resource_of_the_session_url_itself_comes_first() {
    let proxy = Proxy::start([]).await;
    let session = proxy.session_url();
    proxy.publish_resource_metadata(&format!("{METADATA}/jmap/"), json!({"resource": session}));
    proxy.publish_resource_metadata(METADATA, json!({"resource": proxy.origin()}));
    let (standin, app) = app_over(&proxy, &["--resource", &session], &[]).await;
    connect_and_read(&app).await;
    assert_eq!(
        resource_asked(&standin).await.as_deref(),
        Some(session.as_str())
    );
}

/// No document, or one naming another resource (RFC 9728 §3.3: not to be used): no
/// `resource` at all, rather than a guess a provider may refuse.
#[tokio::test]
async fn upstream_resource_is_none_without_metadata_that_names_this_server() {
    let proxy = Proxy::start([]).await;
    proxy.publish_resource_metadata(METADATA, json!({"resource": "https://elsewhere.example"}));
    let (standin, app) = app_over(&proxy, &[], &[]).await;
    connect_and_read(&app).await;
    assert_eq!(resource_asked(&standin).await, None);
    let asked: Vec<_> = proxy
        .requests()
        .into_iter()
        .filter(|(_, path)| path.starts_with(METADATA))
        .collect();
    assert_eq!(
        asked.len(),
        2,
        "the session URL's document, then the origin's: {asked:?}"
    );
}

#[tokio::test]
async fn upstream_resource_flag_overrides_the_metadata() {
    let proxy = Proxy::start([]).await;
    proxy.publish_resource_metadata(METADATA, json!({"resource": proxy.origin()}));
    let given = "urn:example:jmap";
    let (standin, app) = app_over(
        &proxy,
        &["--resource", given],
        &["--upstream-resource", given],
    )
    .await;
    connect_and_read(&app).await;
    assert_eq!(resource_asked(&standin).await.as_deref(), Some(given));
    assert!(
        !proxy
            .requests()
            .iter()
            .any(|(_, path)| path.starts_with(METADATA)),
        "metadata read although the resource was given"
    );
}

/// A provider that refuses the resource: the person sees what it answered (not a generic
/// failure), with the way back to the application, which hears `server_error`.
#[tokio::test]
async fn a_provider_refusing_the_sign_in_has_its_answer_shown() {
    let proxy = Proxy::start([]).await;
    let (_standin, app) =
        app_over(&proxy, &["--resource", "https://jmap.example/strict"], &[]).await;
    let client = Client::register(&app, CALLBACK).await;
    let mut browser = Browser::default();
    let consent = client.open_consent(&mut browser).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    let decision = browser
        .decide_consent(&app.base(), &consent, "approve")
        .await;
    let upstream = browser.get(&decision.location()).await;
    assert_eq!(upstream.status, 302, "{}", upstream.body);
    assert!(upstream.location().contains("error=invalid_target"));
    let page = browser.get(&upstream.location()).await;
    assert_eq!(page.status, 502, "{}", page.body);
    assert!(
        page.body
            .contains("invalid_target: Unknown resource indicator"),
        "{}",
        page.body
    );
    let back = page
        .body
        .split("href=\"")
        .find(|s| s.starts_with(CALLBACK))
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("no way back to the application: {}", page.body))
        .replace("&amp;", "&");
    assert!(back.contains("error=server_error"), "{back}");
    assert!(back.contains("state="), "{back}");
}
