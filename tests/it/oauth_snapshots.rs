//! Insta snapshots of every JSON body the authorization server sends: metadata, registration,
//! tokens, errors, the 401 challenge. Ports, ids, tokens and times are redacted so the
//! snapshots show shapes; a change to any of them is reviewed as a snapshot diff.

use serde_json::{Value, json};

use crate::support::{
    header,
    oauth::{Client, Standin, spawn_oauth_app},
};

fn settings(issuer: &str) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path("../../snapshots");
    s.set_prepend_module_to_snapshot(false);
    s.add_filter(&regex_escape(issuer), "[issuer]");
    s.add_filter(r"http://127\.0\.0\.1:\d+", "[loopback]");
    s.add_filter(r"http%3A%2F%2F127\.0\.0\.1%3A\d+", "[issuer, form-encoded]");
    s.add_filter(r"\bmc_[A-Za-z0-9_-]{43}\b", "[client_id]");
    s.add_filter(r"\bg[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}\b", "[token]");
    s.add_filter(
        r#""client_secret": "[A-Za-z0-9_-]{43}""#,
        r#""client_secret": "[secret]""#,
    );
    s.add_filter(
        r#""client_id_issued_at": \d+"#,
        r#""client_id_issued_at": "[time]""#,
    );
    s.add_filter(r#""expires_in": \d+"#, r#""expires_in": "[seconds]""#);
    s
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

async fn json_of(r: reqwest::Response) -> Value {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    json!({"status": status, "body": body})
}

#[tokio::test]
async fn oauth_json_bodies() {
    let standin = Standin::start();
    let app = spawn_oauth_app(&standin, &[]).await;
    let base = app.base();
    let http = reqwest::Client::new();
    let get = |path: &str| {
        let http = http.clone();
        let url = format!("{base}{path}");
        async move { json_of(http.get(url).send().await.unwrap()).await }
    };
    let prm = get("/.well-known/oauth-protected-resource/mcp").await;
    let as_meta = get("/.well-known/oauth-authorization-server").await;
    let oidc = get("/.well-known/openid-configuration").await;
    let registered = json_of(
        http.post(format!("{base}/register"))
            .json(&json!({"client_name": "Snapshot Client", "redirect_uris": ["http://127.0.0.1:41999/cb"],
                "token_endpoint_auth_method": "client_secret_post", "grant_types": ["authorization_code", "refresh_token"]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let bad_registration = json_of(
        http.post(format!("{base}/register"))
            .json(&json!({"redirect_uris": ["javascript:alert(1)"]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let client = Client::register(&app, "http://127.0.0.1:41999/cb").await;
    let returned = client
        .authorize(&mut crate::support::oauth::Browser::default())
        .await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", returned.params["code"].as_str()),
        ("redirect_uri", client.redirect_uri.as_str()),
        ("code_verifier", returned.verifier.as_str()),
    ];
    let token = json_of(client.token_request(&form).await).await;
    let replayed = json_of(client.token_request(&form).await).await;
    let unknown_client = json_of(
        http.post(format!("{base}/token"))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", "x"),
                ("client_id", "nobody"),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    let unsupported = json_of(client.token_request(&[("grant_type", "password")]).await).await;
    let unparseable = json_of(
        http.post(format!("{base}/token"))
            .json(&json!({"grant_type": "refresh_token"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let challenge = {
        let r = http.post(format!("{base}/mcp")).send().await.unwrap();
        let header = header(&r, "www-authenticate").to_owned();
        json!({"status": r.status().as_u16(), "www-authenticate": header, "body": r.json::<Value>().await.unwrap()})
    };
    let bad_token = {
        let r = http
            .post(format!("{base}/mcp"))
            .bearer_auth("g1.nope")
            .send()
            .await
            .unwrap();
        let header = header(&r, "www-authenticate").to_owned();
        json!({"status": r.status().as_u16(), "www-authenticate": header, "body": r.json::<Value>().await.unwrap()})
    };
    let error_redirect = {
        let url = client
            .authorize_url("", &[])
            .replace("&code_challenge=&code_challenge_method=S256", "");
        let page = crate::support::oauth::Browser::default().get(&url).await;
        json!({"status": page.status, "location": page.location()})
    };
    settings(&base).bind(|| {
        insta::assert_json_snapshot!("oauth_protected_resource_metadata", prm);
        insta::assert_json_snapshot!("oauth_authorization_server_metadata", as_meta);
        insta::assert_json_snapshot!("oauth_openid_configuration_404", oidc);
        insta::assert_json_snapshot!("oauth_register_created", registered);
        insta::assert_json_snapshot!("oauth_register_invalid_redirect_uri", bad_registration);
        insta::assert_json_snapshot!("oauth_token_issued", token);
        insta::assert_json_snapshot!("oauth_token_code_replayed", replayed);
        insta::assert_json_snapshot!("oauth_token_unknown_client", unknown_client);
        insta::assert_json_snapshot!("oauth_token_unsupported_grant_type", unsupported);
        insta::assert_json_snapshot!("oauth_token_unparseable_body", unparseable);
        insta::assert_json_snapshot!("mcp_401_without_token", challenge);
        insta::assert_json_snapshot!("mcp_401_invalid_token", bad_token);
        insta::assert_json_snapshot!("authorize_error_redirect", error_redirect);
    });
}
