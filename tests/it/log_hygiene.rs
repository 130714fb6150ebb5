//! The real binary's log after a whole connect flow, tool calls, a refresh and a revocation:
//! no token, code, state, CSRF value, upstream secret or mail content may appear in it
//! (checklist J; design §9).

use std::{
    io::Read as _,
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::json;

use crate::{
    oauth_flow::{Browser, Client, Standin, UPSTREAM_CLIENT, call_tool_at, tokens},
    support::testbed,
};

#[tokio::test]
async fn the_log_holds_no_token_code_secret_or_mail_content() {
    let standin = Standin::start();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let data = crate::support::tempdir::Dir::new("log-hygiene");
    let mut server = Command::new(env!("CARGO_BIN_EXE_mailconnect"))
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--public-url",
            &base,
            "--data-dir",
        ])
        .arg(&data.0)
        .args([
            "--jmap-session-url",
            testbed().get("JMAP_SESSION_URL"),
            "--upstream-issuer",
            &standin.url,
        ])
        .args(["--upstream-client-id", UPSTREAM_CLIENT])
        .env("MAILCONNECT_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut up = false;
    for _ in 0..100 {
        if reqwest::get(format!("{base}/healthz")).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "the server did not start");

    let client = Client::register_at(&base, "http://127.0.0.1:41999/cb").await;
    let mut browser = Browser::default();
    let returned = client.authorize(&mut browser).await;
    let t = client.exchange(&returned).await;
    let (_, found) = call_tool_at(
        &base,
        &t.access,
        "search_email",
        json!({"subject": "Überraschung"}),
    )
    .await;
    assert!(found.to_string().contains("Grüße aus München"), "{found}");
    let (_, email) = call_tool_at(
        &base,
        &t.access,
        "get_email",
        json!({"email_id": "Ma89152f1fc335c92e928b6fa"}),
    )
    .await;
    assert!(email.to_string().contains("日本語"), "{email}");
    let t2 = tokens(client.refresh(&t.refresh).await).await;
    let _ = call_tool_at(
        &base,
        "g-forged.token-value-that-must-not-be-logged",
        "get_identity",
        json!({}),
    )
    .await;
    reqwest::Client::new()
        .post(format!("{base}/revoke"))
        .form(&[
            ("token", t2.refresh.as_str()),
            ("client_id", client.id.as_str()),
        ])
        .send()
        .await
        .unwrap();

    let _ = server.kill();
    let mut log = String::new();
    server
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    let _ = server.wait();
    assert!(
        log.contains("grant created") && log.contains("code redeemed"),
        "the log is missing the flow:\n{log}"
    );
    let secret_part = |token: &str| token.split('.').nth(1).unwrap().to_owned();
    let mut secrets = vec![
        ("access token", secret_part(&t.access)),
        ("refresh token", secret_part(&t.refresh)),
        ("rotated access token", secret_part(&t2.access)),
        ("rotated refresh token", secret_part(&t2.refresh)),
        ("our code", secret_part(&returned.params["code"])),
        ("client state", returned.params["state"].clone()),
        ("PKCE verifier", returned.verifier.clone()),
        ("forged token", "token-value-that-must-not-be-logged".into()),
        ("upstream JWT", "eyJ".into()),
        ("mail subject", "Grüße".into()),
        ("mail body", "日本語".into()),
    ];
    for (name, value) in standin.stats().await["authorize_requests"][0]
        .as_object()
        .unwrap()
    {
        if ["state", "code_challenge"].contains(&name.as_str()) {
            secrets.push((
                "upstream state or challenge",
                value.as_str().unwrap().to_owned(),
            ));
        }
    }
    for (what, value) in secrets {
        assert!(!log.contains(&value), "the log holds the {what}:\n{log}");
    }
}
