//! docs/security-checklist.md sections G (the resource server, `/mcp`) and H (our server as the
//! upstream's OAuth client): one test per row, named after its requirement; plus the stolen
//! vault and the concurrent-refresh requirements of the issue.

use serde_json::{Value, json};

use crate::support::{
    TestApp,
    compose::text,
    header,
    oauth::{
        Browser, Client, Standin, Tokens, call_tool, oauth_app_toward, oauth_app_with_client, pkce,
        query, spawn_oauth_app, tokens, tool_status,
    },
    testbed,
};

async fn connected(extra: &[&str]) -> (Standin, TestApp, Client, Tokens) {
    let standin = Standin::start();
    let app = spawn_oauth_app(&standin, extra).await;
    let client = Client::register(&app, "http://127.0.0.1:41999/cb").await;
    let t = client.connect().await;
    (standin, app, client, t)
}

async fn post_mcp(app: &TestApp, headers: &[(&str, &str)], body: Value) -> reqwest::Response {
    let mut r = reqwest::Client::new()
        .post(format!("{}/mcp", app.base()))
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json");
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.body(body.to_string()).send().await.unwrap()
}

/// A stateless 2026-07-28 request for `method` (no parameters but the required metadata).
async fn modern(app: &TestApp, token: &str, method: &str) -> reqwest::Response {
    post_mcp(
        app,
        &[
            ("authorization", &format!("Bearer {token}")),
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", method),
        ],
        json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": {"_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "it", "version": "0"},
            "io.modelcontextprotocol/clientCapabilities": {}}}}),
    )
    .await
}

fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "it", "version": "0"}}})
}

#[tokio::test]
async fn g1_no_token_gets_a_bare_challenge_naming_the_metadata() {
    let (_s, app, _c, _t) = connected(&[]).await;
    for method in [reqwest::Method::POST, reqwest::Method::GET] {
        let r = reqwest::Client::new()
            .request(method.clone(), format!("{}/mcp", app.base()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{method}");
        let challenge = header(&r, "www-authenticate").to_owned();
        assert_eq!(
            challenge,
            format!(
                "Bearer resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp\", scope=\"mail\"",
                app.base()
            )
        );
        assert!(!challenge.contains("error="));
    }
}

#[tokio::test]
async fn g2_bad_expired_or_revoked_tokens_get_invalid_token() {
    let (_s, app, client, t) = connected(&["--access-token-ttl-secs", "1"]).await;
    let revoked = client.connect().await;
    client.revoke(&revoked.access).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    for (label, token) in [
        ("malformed", "%%%"),
        ("unknown", "g1.unknown"),
        ("expired", t.access.as_str()),
        ("revoked", &revoked.access),
    ] {
        let r = post_mcp(
            &app,
            &[("authorization", &format!("Bearer {token}"))],
            initialize(),
        )
        .await;
        assert_eq!(r.status(), 401, "{label}");
        assert!(
            header(&r, "www-authenticate").contains("error=\"invalid_token\""),
            "{label}"
        );
    }
    let r = reqwest::Client::new()
        .post(format!("{}/mcp?access_token={}", app.base(), t.access))
        .body(initialize().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a token in the query string was accepted");
}

#[tokio::test]
async fn g3_tokens_for_another_audience_are_refused_never_passed_upstream() {
    let (_s, app, _c, t) = connected(&[]).await;
    // The upstream's own token (Cyrus would accept it) and our refresh token are not access
    // tokens for this resource.
    for (label, token) in [
        ("upstream token", crate::support::mint_jwt()),
        ("refresh token", t.refresh.clone()),
    ] {
        let r = post_mcp(
            &app,
            &[("authorization", &format!("Bearer {token}"))],
            initialize(),
        )
        .await;
        assert_eq!(r.status(), 401, "{label}");
    }
    // A token minted by another instance of us (another issuer and resource).
    let (_s2, _other, _c2, foreign) = connected(&[]).await;
    let r = post_mcp(
        &app,
        &[("authorization", &format!("Bearer {}", foreign.access))],
        initialize(),
    )
    .await;
    assert_eq!(r.status(), 401);
}

/// G4 as far as it applies today: a new grant is read-only, lists only read-only tools, and a
/// call to a write tool is refused before anything reaches the mail server. (The write tools
/// and their per-client toggles are the "Control" issue; it extends this test.)
#[tokio::test]
async fn g4_a_read_only_grant_lists_and_runs_only_read_only_tools() {
    let (_s, app, _c, t) = connected(&[]).await;
    let r = modern(&app, &t.access, "tools/list").await;
    let listed: Value = r.json().await.unwrap();
    let tools = listed["result"]["tools"].as_array().unwrap();
    assert!(!tools.is_empty());
    assert!(
        tools
            .iter()
            .all(|t| t["annotations"]["readOnlyHint"] == true),
        "{listed}"
    );
    let (status, body) = call_tool(
        &app,
        &t.access,
        "move_email",
        json!({"email_ids": ["M1"], "to": "Archive"}),
    )
    .await;
    assert!(status == 200 || status == 404, "{status}");
    let refused = body.get("error").is_some() || body["result"]["isError"] == true;
    assert!(refused, "a write tool ran for a read-only grant: {body}");
}

#[tokio::test]
async fn g5_a_foreign_origin_is_403_and_a_missing_one_is_fine() {
    let (_s, app, _c, t) = connected(&[]).await;
    let auth = format!("Bearer {}", t.access);
    let r = post_mcp(
        &app,
        &[("authorization", &auth), ("origin", "https://evil.example")],
        initialize(),
    )
    .await;
    assert_eq!(r.status(), 403);
    let r = post_mcp(&app, &[("origin", "https://evil.example")], initialize()).await;
    assert_eq!(
        r.status(),
        403,
        "the Origin check must come before authentication"
    );
    let r = post_mcp(&app, &[("authorization", &auth)], initialize()).await;
    assert_eq!(r.status(), 200);
    let r = post_mcp(
        &app,
        &[
            ("authorization", &auth),
            ("origin", "http://localhost:6274"),
        ],
        initialize(),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://localhost:6274"
    );
    // A preflight is answered before authentication.
    let r = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, format!("{}/mcp", app.base()))
        .header("origin", "https://claude.ai")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(header(&r, "access-control-allow-headers").contains("Authorization"));
}

#[tokio::test]
async fn g6_a_session_opened_by_one_grant_is_not_found_for_another() {
    let (_s, app, client, alice) = connected(&[]).await;
    let other = client.connect().await;
    let r = post_mcp(
        &app,
        &[("authorization", &format!("Bearer {}", alice.access))],
        initialize(),
    )
    .await;
    let session = header(&r, "mcp-session-id").to_owned();
    assert!(session.len() >= 16);
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let mine = post_mcp(
        &app,
        &[
            ("authorization", &format!("Bearer {}", alice.access)),
            ("mcp-session-id", &session),
        ],
        list.clone(),
    )
    .await;
    assert_eq!(mine.status(), 200);
    let theirs = post_mcp(
        &app,
        &[
            ("authorization", &format!("Bearer {}", other.access)),
            ("mcp-session-id", &session),
        ],
        list.clone(),
    )
    .await;
    assert_eq!(theirs.status(), 404);
    let guessed = post_mcp(
        &app,
        &[
            ("authorization", &format!("Bearer {}", alice.access)),
            ("mcp-session-id", "guessed-session"),
        ],
        list,
    )
    .await;
    assert_eq!(guessed.status(), 404);
}

#[tokio::test]
async fn g7_an_unsupported_protocol_version_header_is_400() {
    let (_s, app, _c, t) = connected(&[]).await;
    let auth = format!("Bearer {}", t.access);
    let r = post_mcp(&app, &[("authorization", &auth)], initialize()).await;
    let session = header(&r, "mcp-session-id").to_owned();
    let r = post_mcp(
        &app,
        &[
            ("authorization", &auth),
            ("mcp-session-id", &session),
            ("mcp-protocol-version", "1999-01-01"),
        ],
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    )
    .await;
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn g8_oversized_bodies_are_refused() {
    let (_s, app, _c, t) = connected(&[]).await;
    let big = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "search_email", "arguments": {"text": "x".repeat(2 * 1024 * 1024)}}});
    let r = post_mcp(
        &app,
        &[("authorization", &format!("Bearer {}", t.access))],
        big,
    )
    .await;
    assert_eq!(r.status(), 413);
    let r = reqwest::Client::new()
        .post(format!("{}/token", app.base()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("x".repeat(100 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
}

#[tokio::test]
async fn g9_an_unknown_method_is_a_json_rpc_method_not_found() {
    let (_s, app, _c, t) = connected(&[]).await;
    let (status, body) = {
        let r = modern(&app, &t.access, "no/such").await;
        (r.status().as_u16(), r.text().await.unwrap())
    };
    // rmcp answers a stateless request for an unknown method with 404 and the JSON-RPC error.
    assert!(matches!(status, 200 | 404), "{status}: {body}");
    assert!(body.contains("-32601"), "{body}");
    // In a legacy session it is a plain HTTP 200 with -32601 (clients fall back on 4xx).
    let auth = format!("Bearer {}", t.access);
    let r = post_mcp(&app, &[("authorization", &auth)], initialize()).await;
    let session = header(&r, "mcp-session-id").to_owned();
    let r = post_mcp(
        &app,
        &[("authorization", &auth), ("mcp-session-id", &session)],
        json!({"jsonrpc": "2.0", "id": 3, "method": "no/such"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("-32601"));
}

/// G10 and the stolen-vault test: the database file and the server's configuration
/// hold no upstream token or client token in a usable form; a wrong token opens nothing and
/// answers 401, never 500.
#[tokio::test]
async fn g10_a_stolen_vault_and_configuration_yield_no_upstream_token() {
    let (_standin, app, client) = oauth_app_with_client(&[], "http://127.0.0.1:41999/cb").await;
    let t = client.connect().await;
    let t2 = tokens(client.refresh(&t.refresh).await).await;
    assert_eq!(tool_status(&app, &t2.access, "get_identity").await, 200);
    // What a thief copies: the data directory (the vault) and the configuration.
    let vault = std::fs::read(app._data.0.join("mailconnect.redb")).unwrap();
    let stolen = String::from_utf8_lossy(&vault);
    let config = app.args.join(" ");
    let upstream_prefix = "eyJ"; // every upstream access token is a JWT
    assert!(
        !stolen.contains(upstream_prefix),
        "an upstream JWT is readable in the vault"
    );
    for secret in [&t.access, &t.refresh, &t2.access, &t2.refresh] {
        let secret_part = secret.split('.').nth(1).unwrap();
        assert!(!stolen.contains(secret_part) && !config.contains(secret_part));
    }
    assert!(
        !stolen.contains("AGE-SECRET-KEY"),
        "a grant's private key is stored in the clear"
    );
    // With the database but without a live token there is nothing to derive keys from: a
    // guessed token of the right grant opens nothing, and the answer is 401, not 500.
    let grant = t2.access.split('.').next().unwrap();
    let guessed = format!("{grant}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    assert_eq!(tool_status(&app, &guessed, "get_identity").await, 401);
}

#[tokio::test]
async fn h1_a_callback_with_a_wrong_missing_replayed_or_foreign_state_is_refused() {
    let (_standin, app, client) = oauth_app_with_client(&[], "http://127.0.0.1:41999/cb").await;
    let mut browser = Browser::default();
    let consent = client.open_consent(&mut browser).await;
    let approved = browser
        .decide_consent(&app.base(), &consent, "approve")
        .await;
    let callback = browser.get(&approved.location()).await.location();
    let params = query(&callback);
    let base = format!("{}/auth/callback", app.base());
    let missing = browser
        .get(&format!("{base}?code={}", params["code"]))
        .await;
    assert_eq!(missing.status, 400);
    let wrong = browser
        .get(&format!(
            "{base}?code={}&state=forged&iss={}",
            params["code"], params["iss"]
        ))
        .await;
    assert_eq!(wrong.status, 400);
    let foreign = Browser::default().get(&callback).await;
    assert_eq!(foreign.status, 403, "another browser used the state");
    assert_eq!(browser.get(&callback).await.status, 303);
    assert_eq!(
        browser.get(&callback).await.status,
        400,
        "a replayed state was accepted"
    );
}

#[tokio::test]
async fn h2_pkce_s256_is_sent_upstream_with_a_fresh_verifier_each_time() {
    let (standin, _app, client, _t) = connected(&[]).await;
    client.connect().await;
    let stats = standin.stats().await;
    let asked = stats["authorize_requests"].as_array().unwrap();
    assert_eq!(asked.len(), 2);
    assert!(asked.iter().all(|a| a["code_challenge_method"] == "S256"));
    assert_ne!(asked[0]["code_challenge"], asked[1]["code_challenge"]);
    assert_ne!(asked[0]["state"], asked[1]["state"]);
}

#[tokio::test]
async fn h3_a_callback_naming_another_issuer_is_refused() {
    let (standin, app, client) = oauth_app_with_client(&[], "http://127.0.0.1:41999/cb").await;
    let mut browser = Browser::default();
    let consent = client.open_consent(&mut browser).await;
    let approved = browser
        .decide_consent(&app.base(), &consent, "approve")
        .await;
    let callback = browser.get(&approved.location()).await.location();
    let params = query(&callback);
    let mixed_up = format!(
        "{}/auth/callback?code={}&state={}&iss=https%3A%2F%2Fevil.example",
        app.base(),
        params["code"],
        params["state"]
    );
    let page = browser.get(&mixed_up).await;
    assert_eq!(page.status, 400);
    assert!(page.header("location").is_none());
    assert_eq!(
        standin.token_requests("authorization_code").await,
        0,
        "the code was sent to the token endpoint"
    );
}

#[tokio::test]
async fn h4_upstream_tokens_never_reach_the_client() {
    let (_s, app, client, _t) = connected(&[]).await;
    let mut browser = Browser::default();
    let returned = client.authorize(&mut browser).await;
    assert!(!returned.url.contains("eyJ"));
    let r = client.redeem(&returned, &client.redirect_uri).await;
    let body = r.text().await.unwrap();
    assert!(
        !body.contains("eyJ"),
        "an upstream token in our token response"
    );
    let t: Value = serde_json::from_str(&body).unwrap();
    let (_, result) = call_tool(
        &app,
        t["access_token"].as_str().unwrap(),
        "get_identity",
        json!({}),
    )
    .await;
    assert!(!result.to_string().contains("eyJ"));
}

/// Lets the grant's upstream token expire for real (Cyrus rejects it after 2 s).
async fn connected_with_expiring_upstream(extra: &[&str]) -> (Standin, TestApp, Client, Tokens) {
    let standin = Standin::start();
    let app = spawn_oauth_app(&standin, extra).await;
    let client = Client::register(&app, "http://127.0.0.1:41999/cb").await;
    standin.short_lived_access_tokens(1, 2).await;
    let t = client.connect().await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    (standin, app, client, t)
}

#[tokio::test]
async fn h5_transient_upstream_refresh_failures_are_retried_and_never_end_the_grant() {
    let (standin, app, _c, t) = connected_with_expiring_upstream(&[]).await;
    standin
        .fault(json!({"grant_type": "refresh_token", "kind": "server_error", "count": 3}))
        .await;
    let (status, body) = call_tool(&app, &t.access, "get_identity", json!({})).await;
    assert_eq!(status, 200, "a transient failure must not be a 401: {body}");
    assert_eq!(body["result"]["isError"], true, "{body}");
    assert!(text(&body).contains("unavailable"), "{body}");
    assert_eq!(
        standin.token_requests("refresh_token").await,
        3,
        "bounded retries"
    );
    // The faults are over: the same grant works again.
    let (status, body) = call_tool(&app, &t.access, "get_identity", json!({})).await;
    assert_eq!(
        (status, body["result"]["isError"].clone()),
        (200, json!(false)),
        "{body}"
    );
}

#[tokio::test]
async fn h6_upstream_invalid_grant_ends_the_grant_and_the_client_reauthorizes() {
    let (standin, app, client, t) = connected_with_expiring_upstream(&[]).await;
    standin
        .fault(json!({"grant_type": "refresh_token", "kind": "invalid_grant", "count": 1}))
        .await;
    let (_, body) = call_tool(&app, &t.access, "get_identity", json!({})).await;
    assert_eq!(body["result"]["isError"], true, "{body}");
    assert_eq!(tool_status(&app, &t.access, "get_identity").await, 401);
    assert_eq!(
        crate::support::oauth::error_code(client.refresh(&t.refresh).await).await,
        "invalid_grant"
    );
    let again = client.connect().await;
    assert_eq!(tool_status(&app, &again.access, "get_identity").await, 200);
}

/// H7 and the issue's "64 concurrent refreshes of one grant cause exactly one upstream
/// refresh and leave the grant usable".
#[tokio::test]
async fn h7_sixty_four_concurrent_calls_needing_a_refresh_make_one_upstream_refresh() {
    let (standin, app, _c, t) = connected_with_expiring_upstream(&[]).await;
    let calls: Vec<_> = (0..64)
        .map(|_| {
            let base = app.base();
            let token = t.access.clone();
            tokio::spawn(async move {
                crate::support::oauth::call_tool_at(&base, &token, "list_mailboxes", json!({}))
                    .await
            })
        })
        .collect();
    for c in calls {
        let (status, body) = c.await.unwrap();
        assert_eq!(
            (status, body["result"]["isError"].clone()),
            (200, json!(false)),
            "{body}"
        );
    }
    assert_eq!(
        standin.token_requests("refresh_token").await,
        1,
        "more than one upstream refresh"
    );
    assert_eq!(tool_status(&app, &t.access, "get_identity").await, 200);
}

/// The same with 64 concurrent client refreshes of one refresh token while the upstream
/// token is due: one rotation, one upstream refresh, everyone gets the same pair.
#[tokio::test]
async fn sixty_four_concurrent_client_refreshes_make_one_upstream_refresh() {
    let (standin, app, client) = oauth_app_toward(
        Standin::start_with(&["--access-ttl", "8"]),
        &[],
        "http://127.0.0.1:41999/cb",
    )
    .await;
    let t = client.connect().await;
    // 8 s tokens are due 2 s before their end; wait until the first one is.
    tokio::time::sleep(std::time::Duration::from_secs(7)).await;
    let refreshes: Vec<_> = (0..64)
        .map(|_| {
            let client = client.clone();
            let r = t.refresh.clone();
            tokio::spawn(async move { tokens(client.refresh(&r).await).await })
        })
        .collect();
    let mut pairs = Vec::new();
    for r in refreshes {
        pairs.push(r.await.unwrap());
    }
    assert!(
        pairs.iter().all(|p| p.refresh == pairs[0].refresh),
        "more than one rotation"
    );
    assert_eq!(
        standin.token_requests("refresh_token").await,
        1,
        "more than one upstream refresh"
    );
    assert_eq!(
        tool_status(&app, &pairs[0].access, "get_identity").await,
        200
    );
}

#[tokio::test]
async fn h9_client_metadata_documents_are_fetched_only_from_public_https_addresses() {
    use std::io::{Read as _, Write as _};
    let standin = Standin::start();
    let app = spawn_oauth_app(&standin, &[]).await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let (_v, challenge) = pkce();
    for id in [
        format!("https://127.0.0.1:{port}/client.json"),
        format!("https://localhost:{port}/client.json"),
        format!("http://127.0.0.1:{port}/client.json"),
    ] {
        let url = format!(
            "{}/authorize?response_type=code&client_id={}&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcb&code_challenge={challenge}&code_challenge_method=S256",
            app.base(),
            url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
        );
        let page = Browser::default().get(&url).await;
        assert_eq!(page.status, 400, "{id}");
    }
    assert!(
        listener.accept().is_err(),
        "the server connected to a loopback address for a metadata document"
    );

    // With the test-only switch, a loopback document works; a redirect or an oversized one
    // doesn't.
    let app = spawn_oauth_app(&standin, &["--test-allow-loopback-client-metadata"]).await;
    let doc_url = format!("http://127.0.0.1:{port}/client.json");
    let redirect_url = format!("http://127.0.0.1:{port}/moved.json");
    let big_url = format!("http://127.0.0.1:{port}/big.json");
    let doc = json!({"client_id": doc_url, "client_name": "Metadata Client", "redirect_uris": ["http://127.0.0.1/cb"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "none"], "grant_types": ["authorization_code", "urn:ietf:params:oauth:grant-type:jwt-bearer"]});
    let big = json!({"client_id": big_url, "redirect_uris": ["http://127.0.0.1/cb"], "client_name": "x".repeat(10_000)});
    let server = std::thread::spawn(move || {
        let listener = listener;
        listener.set_nonblocking(false).unwrap();
        for _ in 0..3 {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap();
            let req = String::from_utf8_lossy(&buf[..n]).to_string();
            let (status, extra, body) = if req.starts_with("GET /client.json") {
                ("200 OK", String::new(), doc.to_string())
            } else if req.starts_with("GET /moved.json") {
                (
                    "302 Found",
                    "Location: /client.json\r\n".to_owned(),
                    String::new(),
                )
            } else {
                ("200 OK", String::new(), big.to_string())
            };
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let authorize = |id: &str| {
        format!(
            "{}/authorize?response_type=code&client_id={}&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcb&code_challenge={challenge}&code_challenge_method=S256",
            app.base(),
            url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
        )
    };
    let page = Browser::default().get(&authorize(&doc_url)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Metadata Client") && page.body.contains("identified by 127.0.0.1"));
    assert_eq!(
        Browser::default()
            .get(&authorize(&redirect_url))
            .await
            .status,
        400,
        "a redirect was followed"
    );
    assert_eq!(
        Browser::default().get(&authorize(&big_url)).await.status,
        400,
        "an oversized document was accepted"
    );
    server.join().unwrap();
    let _ = testbed();
}
