//! docs/security-checklist.md sections A (discovery), B (registration) and C (authorization and
//! consent): one test per row, named after its requirement.

use serde_json::{Value, json};

use crate::support::{
    header,
    oauth::{Browser, Client, Standin, oauth_app_with_client, pkce, query, spawn_oauth_app},
    send_json,
};

async fn setup() -> (Standin, crate::support::TestApp) {
    let standin = Standin::start();
    let app = spawn_oauth_app(&standin, &[]).await;
    (standin, app)
}

async fn get_json(url: &str) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

async fn register(app: &crate::support::TestApp, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/register", app.base()))
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a1_protected_resource_metadata_names_our_resource_and_issuer() {
    let (_s, app) = setup().await;
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let prm = get_json(&format!("{}{path}", app.base())).await;
        assert_eq!(prm["resource"], format!("{}/mcp", app.base()));
        assert_eq!(prm["authorization_servers"], json!([app.base()]));
        assert_eq!(prm["bearer_methods_supported"], json!(["header"]));
        assert!(
            !prm["scopes_supported"]
                .as_array()
                .unwrap()
                .contains(&json!("offline_access"))
        );
    }
}

#[tokio::test]
async fn a2_authorization_server_metadata_is_s256_only_with_every_endpoint() {
    let (_s, app) = setup().await;
    let m = get_json(&format!(
        "{}/.well-known/oauth-authorization-server",
        app.base()
    ))
    .await;
    let prm = get_json(&format!(
        "{}/.well-known/oauth-protected-resource/mcp",
        app.base()
    ))
    .await;
    assert_eq!(m["issuer"], prm["authorization_servers"][0]);
    assert_eq!(m["issuer"], app.base());
    assert_eq!(m["response_types_supported"], json!(["code"]));
    assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
    for g in ["authorization_code", "refresh_token"] {
        assert!(
            m["grant_types_supported"]
                .as_array()
                .unwrap()
                .contains(&json!(g))
        );
    }
    assert!(
        m["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("none"))
    );
    for e in [
        "revocation_endpoint",
        "registration_endpoint",
        "token_endpoint",
        "authorization_endpoint",
    ] {
        assert!(m[e].as_str().unwrap().starts_with(&app.base()), "{e}");
    }
    assert_eq!(m["authorization_response_iss_parameter_supported"], true);
    assert_eq!(m["client_id_metadata_document_supported"], true);
    let oidc = reqwest::get(format!("{}/.well-known/openid-configuration", app.base()))
        .await
        .unwrap();
    assert_eq!(oidc.status(), 404);
    assert!(
        oidc.json::<Value>().await.unwrap()["error"].is_string(),
        "a JSON 404"
    );
}

#[tokio::test]
async fn a3_every_authorization_response_carries_one_iss() {
    let (_s, app) = setup().await;
    let client = Client::register(&app, "http://127.0.0.1:41999/cb").await;
    let mut browser = Browser::default();
    let ok = client.authorize(&mut browser).await;
    assert_eq!(ok.url.matches("iss=").count(), 1);
    assert_eq!(ok.params["iss"], app.base());
    // An error redirect (no PKCE) carries it too.
    let url = client
        .authorize_url("", &[])
        .replace("&code_challenge=&code_challenge_method=S256", "");
    let page = browser.get(&url).await;
    assert_eq!(page.status, 303);
    let params = query(&page.location());
    assert_eq!(
        (params["error"].as_str(), params["iss"].as_str()),
        ("invalid_request", app.base().as_str())
    );
    // And a denial.
    let consent = client.open_consent(&mut browser).await;
    let denied = browser.decide_consent(&app.base(), &consent, "deny").await;
    let params = query(&denied.location());
    assert_eq!(
        (params["error"].as_str(), params["iss"].as_str()),
        ("access_denied", app.base().as_str())
    );
    assert_eq!(params["state"], "client-state-123");
}

#[tokio::test]
async fn a4_a_spoofed_host_changes_no_url_we_publish() {
    let (_s, app) = setup().await;
    let http = reqwest::Client::new();
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let m: Value = send_json(
            http.get(format!("{}{path}", app.base()))
                .header("host", "evil.example")
                .header("x-forwarded-host", "evil.example")
                .header("x-forwarded-proto", "https"),
        )
        .await;
        assert!(!m.to_string().contains("evil.example"), "{m}");
    }
    let r = http
        .post(format!("{}/mcp", app.base()))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    let challenge = header(&r, "www-authenticate").to_owned();
    assert!(!challenge.contains("evil.example"), "{challenge}");
}

#[tokio::test]
async fn b1_dangerous_redirect_uris_are_refused_and_nothing_is_stored() {
    let (_s, app) = setup().await;
    for uri in [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        " javascript:alert(1)",
        "java\tscript:alert(1)",
        "data:text/html,x",
        "vbscript:x",
        "file:///etc/passwd",
        "https://client.example/cb#frag",
        "https://a@evil.example/cb",
        "http://client.example/cb",
    ] {
        let (status, body) =
            register(&app, json!({"client_name": "x", "redirect_uris": [uri]})).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_redirect_uri")),
            "{uri:?}: {body}"
        );
        assert!(body.get("client_id").is_none());
    }
}

#[tokio::test]
async fn b2_loopback_and_https_redirects_are_accepted_and_loopback_is_flagged() {
    let (_s, app) = setup().await;
    for uri in [
        "http://127.0.0.1/cb",
        "http://[::1]/cb",
        "http://localhost/cb",
        "https://claude.ai/api/mcp/auth_callback",
    ] {
        assert_eq!(
            register(&app, json!({"redirect_uris": [uri]})).await.0,
            201,
            "{uri}"
        );
    }
    let client = Client::register(&app, "http://127.0.0.1:5000/cb").await;
    let (_v, challenge) = pkce();
    let page = Browser::default()
        .get(&client.authorize_url(&challenge, &[]))
        .await;
    assert!(page.body.contains("loopback"), "no loopback warning");
    assert!(
        page.body
            .contains("<strong id=\"redirect-host\">127.0.0.1</strong>")
    );
}

#[tokio::test]
async fn b2b_private_use_schemes_and_several_uris_in_one_registration_are_accepted() {
    let (_s, app) = setup().await;
    let cursor = json!({"client_name": "Cursor", "redirect_uris": [
        "cursor://anysphere.cursor-mcp/oauth/callback", "http://localhost:33418/callback", "http://127.0.0.1:33418/callback"],
        "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"], "token_endpoint_auth_method": "none"});
    let (status, body) = register(&app, cursor).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["redirect_uris"].as_array().unwrap().len(), 3);
    let (status, body) =
        register(&app, json!({"redirect_uris": ["vscode://vscode.github-authentication/did-authenticate", "javascript:alert(1)"]})).await;
    assert_eq!(status, 400);
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("javascript:alert(1)"),
        "{body}"
    );
}

#[tokio::test]
async fn b3_oversized_registrations_are_refused_with_bounded_memory() {
    let (_s, app) = setup().await;
    let http = reqwest::Client::new();
    let huge =
        json!({"redirect_uris": ["http://127.0.0.1/cb"], "client_name": "x".repeat(100_000)});
    let r = http
        .post(format!("{}/register", app.base()))
        .json(&huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let (status, _) = register(
        &app,
        json!({"redirect_uris": ["http://127.0.0.1/cb"], "client_name": "x".repeat(300)}),
    )
    .await;
    assert_eq!(status, 400);
    let many: Vec<String> = (0..10_000)
        .map(|i| format!("http://127.0.0.1/{i}"))
        .collect();
    let r = http
        .post(format!("{}/register", app.base()))
        .json(&json!({"redirect_uris": many}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let (status, _) = register(&app, json!({"redirect_uris": (0..21).map(|i| format!("http://127.0.0.1/{i}")).collect::<Vec<_>>()})).await;
    assert_eq!(status, 400);
    let r = http
        .post(format!("{}/register", app.base()))
        .header("content-type", "text/plain")
        .body("redirect_uris=http://127.0.0.1/cb")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "invalid_client_metadata"
    );
}

#[tokio::test]
async fn b4_client_names_are_escaped_and_logo_uris_never_fetched() {
    let (_s, app) = setup().await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let logo = format!("http://{}/logo.png", listener.local_addr().unwrap());
    let client = Client::register_with(
        &app,
        json!({"client_name": "<script>alert(1)</script>", "redirect_uris": ["http://127.0.0.1:5000/cb"], "logo_uri": logo, "client_uri": logo}),
    )
    .await;
    let (_v, challenge) = pkce();
    let page = Browser::default()
        .get(&client.authorize_url(&challenge, &[]))
        .await;
    assert!(!page.body.contains("<script>alert(1)</script>"));
    assert!(page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(
        listener.accept().is_err(),
        "the server fetched the client's logo_uri"
    );
}

#[tokio::test]
async fn b5_a_registration_flood_is_rate_limited() {
    let (_s, app) = setup().await;
    let mut statuses = Vec::new();
    for _ in 0..40 {
        statuses.push(
            register(&app, json!({"redirect_uris": ["http://127.0.0.1/cb"]}))
                .await
                .0,
        );
    }
    assert!(
        statuses.iter().filter(|s| **s == 201).count() >= 30,
        "{statuses:?}"
    );
    assert!(statuses.contains(&429), "{statuses:?}");
}

#[tokio::test]
async fn b6_unsupported_client_capabilities_are_invalid_client_metadata() {
    let (_s, app) = setup().await;
    for body in [
        json!({"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "private_key_jwt"}),
        json!({"redirect_uris": ["http://127.0.0.1/cb"], "grant_types": ["implicit"]}),
        json!({"redirect_uris": ["http://127.0.0.1/cb"], "response_types": ["token"]}),
        json!({"redirect_uris": "http://127.0.0.1/cb"}),
    ] {
        let (status, resp) = register(&app, body.clone()).await;
        assert_eq!(
            (status, resp["error"].as_str()),
            (400, Some("invalid_client_metadata")),
            "{body}"
        );
    }
}

#[tokio::test]
async fn c1_an_unknown_client_gets_an_error_page_not_a_redirect() {
    let (_s, app) = setup().await;
    let (_v, challenge) = pkce();
    let url = format!(
        "{}/authorize?response_type=code&client_id=nobody&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcb&code_challenge={challenge}&code_challenge_method=S256",
        app.base()
    );
    let page = Browser::default().get(&url).await;
    assert_eq!(page.status, 400);
    assert!(page.header("location").is_none());
    assert!(page.body.contains("not registered"));
}

#[tokio::test]
async fn c2_a_redirect_uri_that_is_not_exactly_registered_gets_an_error_page() {
    let (_s, app) = setup().await;
    let mut client = Client::register(&app, "https://client.example/cb").await;
    let (_v, challenge) = pkce();
    for other in [
        "https://client.example/cb/",
        "https://CLIENT.example/cb",
        "https://client.example/cb?x=1",
        "https://client.example/%2e%2e/cb",
        "https://client.example@evil.example/cb",
        "https://client.example%40evil.example/cb",
        "https://client.example\\@evil.example/cb",
        "https://xn--clent-zqa.example/cb",
        "https://client.example:8443/cb",
    ] {
        client.redirect_uri = other.to_owned();
        let page = Browser::default()
            .get(&client.authorize_url(&challenge, &[]))
            .await;
        assert_eq!(page.status, 400, "{other}");
        assert!(page.header("location").is_none(), "{other} redirected");
    }
}

#[tokio::test]
async fn c3_a_loopback_redirect_may_change_its_port_only() {
    let (_s, app) = setup().await;
    let mut client = Client::register(&app, "http://127.0.0.1:5000/cb").await;
    let (_v, challenge) = pkce();
    client.redirect_uri = "http://127.0.0.1:61234/cb".into();
    assert_eq!(
        Browser::default()
            .get(&client.authorize_url(&challenge, &[]))
            .await
            .status,
        200
    );
    for other in [
        "http://127.0.0.1:61234/other",
        "http://localhost:61234/cb",
        "http://127.0.0.1:.1/cb",
    ] {
        client.redirect_uri = other.into();
        assert_eq!(
            Browser::default()
                .get(&client.authorize_url(&challenge, &[]))
                .await
                .status,
            400,
            "{other}"
        );
    }
}

#[tokio::test]
async fn c4_pkce_s256_is_required() {
    let (_s, app) = setup().await;
    let client = Client::register(&app, "http://127.0.0.1:5000/cb").await;
    let (_v, challenge) = pkce();
    let base = client.authorize_url(&challenge, &[]);
    for (label, url) in [
        (
            "missing challenge",
            base.replace(&format!("code_challenge={challenge}&"), ""),
        ),
        (
            "plain",
            base.replace("code_challenge_method=S256", "code_challenge_method=plain"),
        ),
        (
            "method omitted",
            base.replace("&code_challenge_method=S256", ""),
        ),
        (
            "unknown method",
            base.replace("code_challenge_method=S256", "code_challenge_method=S512"),
        ),
    ] {
        let page = Browser::default().get(&url).await;
        assert_eq!(page.status, 303, "{label}");
        let p = query(&page.location());
        assert_eq!(p["error"], "invalid_request", "{label}");
        assert_eq!(p["iss"], app.base(), "{label}");
    }
}

#[tokio::test]
async fn c5_only_the_code_response_type_is_served() {
    let (_s, app) = setup().await;
    let client = Client::register(&app, "http://127.0.0.1:5000/cb").await;
    let (_v, challenge) = pkce();
    let base = client.authorize_url(&challenge, &[]);
    let token = Browser::default()
        .get(&base.replace("response_type=code", "response_type=token"))
        .await;
    assert_eq!(
        query(&token.location())["error"],
        "unsupported_response_type"
    );
    let missing = Browser::default()
        .get(&base.replace("response_type=code&", ""))
        .await;
    assert_eq!(query(&missing.location())["error"], "invalid_request");
}

#[tokio::test]
async fn c6_a_foreign_resource_is_invalid_target_and_none_defaults_to_ours() {
    let (_s, app) = setup().await;
    let client = Client::register(&app, "http://127.0.0.1:5000/cb").await;
    let (_v, challenge) = pkce();
    for resource in [
        "https://other.example/mcp".to_owned(),
        format!("{}/mcp#frag", app.base()),
    ] {
        let page = Browser::default()
            .get(&client.authorize_url(&challenge, &[("resource", &resource)]))
            .await;
        assert_eq!(
            query(&page.location())["error"],
            "invalid_target",
            "{resource}"
        );
    }
    for resource in [
        format!("{}/mcp", app.base()),
        format!("{}/mcp/", app.base()),
        format!("{}/", app.base()),
    ] {
        let page = Browser::default()
            .get(&client.authorize_url(&challenge, &[("resource", &resource)]))
            .await;
        assert_eq!(page.status, 200, "{resource}");
    }
}

#[tokio::test]
async fn c7_the_consent_form_needs_its_own_csrf_token_once() {
    let (_s, app) = setup().await;
    let a = Client::register(&app, "http://127.0.0.1:5000/cb").await;
    let b = Client::register(&app, "http://127.0.0.1:5001/cb").await;
    let mut browser = Browser::default();
    let page_a = a.open_consent(&mut browser).await;
    let page_b = b.open_consent(&mut browser).await;
    let decision = format!("{}/authorize/decision", app.base());
    let (rid_a, csrf_a, csrf_b) = (
        page_a.field("request_id"),
        page_a.field("csrf_token"),
        page_b.field("csrf_token"),
    );
    for (label, form) in [
        (
            "no csrf",
            vec![("request_id", rid_a.as_str()), ("decision", "approve")],
        ),
        (
            "wrong csrf",
            vec![
                ("request_id", &rid_a),
                ("csrf_token", "forged"),
                ("decision", "approve"),
            ],
        ),
        (
            "B's csrf on A's request",
            vec![
                ("request_id", &rid_a),
                ("csrf_token", &csrf_b),
                ("decision", "approve"),
            ],
        ),
    ] {
        let r = browser.post_form(&decision, &form).await;
        assert!(matches!(r.status, 400 | 403), "{label}: {}", r.status);
        assert!(r.header("location").is_none(), "{label} was issued");
    }
    // Another browser (no consent cookie) can't submit it either.
    let r = Browser::default()
        .post_form(
            &decision,
            &[
                ("request_id", &rid_a),
                ("csrf_token", &csrf_a),
                ("decision", "approve"),
            ],
        )
        .await;
    assert_eq!(r.status, 403);
    // The real one works once.
    let ok = browser
        .post_form(
            &decision,
            &[
                ("request_id", &rid_a),
                ("csrf_token", &csrf_a),
                ("decision", "approve"),
            ],
        )
        .await;
    assert_eq!(ok.status, 303);
    let replay = browser
        .post_form(
            &decision,
            &[
                ("request_id", &rid_a),
                ("csrf_token", &csrf_a),
                ("decision", "approve"),
            ],
        )
        .await;
    assert_eq!(replay.status, 400);
}

#[tokio::test]
async fn c8_the_consent_page_cannot_be_framed_cached_or_leak_a_referrer() {
    let (_s, app) = setup().await;
    let client = Client::register(&app, "http://127.0.0.1:5000/cb").await;
    let (_v, challenge) = pkce();
    let page = Browser::default()
        .get(&client.authorize_url(&challenge, &[]))
        .await;
    assert!(
        page.header("content-security-policy")
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(page.header("x-frame-options").as_deref(), Some("DENY"));
    assert_eq!(page.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(
        page.header("referrer-policy").as_deref(),
        Some("no-referrer")
    );
}

#[tokio::test]
async fn c9_consent_names_the_client_the_return_host_and_what_it_may_do() {
    let (_s, app) = setup().await;
    let client = Client::register_with(&app, json!({"client_name": "Acme Assistant", "redirect_uris": ["https://acme.example/oauth/cb"]})).await;
    let (_v, challenge) = pkce();
    let page = Browser::default()
        .get(&client.authorize_url(&challenge, &[]))
        .await;
    assert!(page.body.contains("Acme Assistant"));
    assert!(
        page.body
            .contains("<strong id=\"redirect-host\">acme.example</strong>")
    );
    assert!(page.body.contains("read your mail"));
    assert!(
        page.body
            .contains("<strong>not</strong> be able to move, mark, delete or send")
    );
    assert!(page.body.contains("unverified"));
}

#[tokio::test]
async fn c10_the_redirect_after_consent_is_a_303() {
    let (_s, app) = setup().await;
    let client = Client::register(&app, "http://127.0.0.1:5000/cb").await;
    let mut browser = Browser::default();
    let consent = client.open_consent(&mut browser).await;
    let r = browser
        .decide_consent(&app.base(), &consent, "approve")
        .await;
    assert_eq!(r.status, 303);
    let upstream = browser.get(&r.location()).await;
    let callback = browser.get(&upstream.location()).await;
    assert_eq!(callback.status, 303);
}

#[tokio::test]
async fn c11_a_new_client_gets_our_consent_page_even_after_another_was_approved() {
    let (_s, app) = setup().await;
    let first = Client::register(&app, "http://127.0.0.1:5000/cb").await;
    let mut browser = Browser::default();
    first.authorize(&mut browser).await;
    let attacker = Client::register_with(
        &app,
        json!({"client_name": "Evil", "redirect_uris": ["https://evil.example/cb"]}),
    )
    .await;
    let page = attacker.open_consent(&mut browser).await;
    assert_eq!(page.status, 200, "the second client skipped consent");
    assert!(page.body.contains("Evil") && page.body.contains("evil.example"));
}

#[tokio::test]
async fn c12_the_upstream_state_cookie_is_set_only_after_approval_and_host_prefixed_on_https() {
    let (standin, app, client) = oauth_app_with_client(&[], "http://127.0.0.1:5000/cb").await;
    let mut browser = Browser::default();
    let consent = client.open_consent(&mut browser).await;
    let cookies: Vec<String> = consent
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().to_owned())
        .collect();
    assert!(
        cookies.iter().all(|c| !c.contains("mc_upstream")),
        "{cookies:?}"
    );
    let approved = browser
        .decide_consent(&app.base(), &consent, "approve")
        .await;
    let set = approved.header("set-cookie").unwrap();
    assert!(
        set.starts_with("mc_upstream=") && set.contains("HttpOnly") && set.contains("SameSite=Lax"),
        "{set}"
    );
    let max_age: u64 = set
        .split("Max-Age=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(max_age <= 600);
    // Single use: a second callback with the same state is refused.
    let upstream = browser.get(&approved.location()).await;
    let callback_url = upstream.location();
    assert_eq!(browser.get(&callback_url).await.status, 303);
    assert_eq!(browser.get(&callback_url).await.status, 400);

    // Behind https the cookies are __Host- and Secure.
    let https = crate::support::spawn_configured(
        crate::support::tempdir::Dir::new("https"),
        &[
            "--jmap-session-url".into(),
            crate::support::testbed().get("JMAP_SESSION_URL").into(),
            "--upstream-issuer".into(),
            standin.url.clone(),
            "--upstream-client-id".into(),
            crate::support::oauth::UPSTREAM_CLIENT.into(),
            "--public-url".into(),
            "https://mail.example.test".into(),
        ],
    )
    .await;
    let mut c = client.clone();
    c.base = https.base();
    let reg: Value = send_json(
        reqwest::Client::new()
            .post(format!("{}/register", https.base()))
            .json(&json!({"redirect_uris": ["http://127.0.0.1:5000/cb"]})),
    )
    .await;
    c.id = reg["client_id"].as_str().unwrap().to_owned();
    let page = c.open_consent(&mut Browser::default()).await;
    let set = page.header("set-cookie").unwrap();
    assert!(
        set.starts_with("__Host-mc_consent=") && set.contains("; Secure") && set.contains("Path=/"),
        "{set}"
    );
}

#[tokio::test]
async fn c13_prompt_none_never_skips_consent() {
    let (_s, app) = setup().await;
    let client = Client::register(&app, "http://127.0.0.1:5000/cb").await;
    let mut browser = Browser::default();
    client.authorize(&mut browser).await;
    let (_v, challenge) = pkce();
    let page = browser
        .get(&client.authorize_url(&challenge, &[("prompt", "none")]))
        .await;
    assert_eq!(page.status, 200, "consent was skipped");
    assert!(page.body.contains("name=\"csrf_token\""));
}
