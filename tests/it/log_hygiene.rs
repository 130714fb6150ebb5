//! The real binary's log after a whole connect flow, tool calls, a refresh and a revocation:
//! no token, code, state, CSRF value, upstream secret or mail content may appear in it
//! (`docs/security-checklist.md` J1).

use std::time::Duration;

use serde_json::json;

use crate::support::{
    binary::{spawn_binary, stop_and_read_log},
    mcp_request,
    oauth::{Browser, Client, Standin, call_tool_at, tokens, turn_on},
    testbed,
};

#[tokio::test]
async fn the_log_holds_no_token_code_secret_or_mail_content() {
    let standin = Standin::start();
    let (server, base, _data) = spawn_binary(&standin, &[], "debug").await;

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
    client.revoke(&t2.refresh).await;

    let log = stop_and_read_log(server);
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

/// The writer's mail flows through the real binary at debug level — drafting, new mail, a
/// mute, a live stream — and the log holds no subject, address or body of any of it.
#[tokio::test]
async fn writer_log_of_drafts_and_new_mail_holds_no_subject_address_or_body() {
    let standin = Standin::start_with(&["--subject", testbed().get("JMAP_WRITER_USERNAME")]);
    // Background delivery too: a webhook on loopback hears of the arrival.
    let sink = crate::support::sinks::Sink::start(vec![]).await;
    let (_keys, flags) = crate::support::sinks::background_flags(&sink);
    let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
    args.extend(["--notify-poll-secs", "1"]);
    let (server, base, _data) = spawn_binary(&standin, &args, "debug").await;
    let client = Client::register_at(&base, "http://127.0.0.1:41999/cb").await;
    let mut browser = Browser::default();
    let returned = client.authorize(&mut browser).await;
    let t = client.exchange(&returned).await;
    let grant = t.access.split('.').next().unwrap().to_owned();

    let csrf = turn_on(&mut browser, &base, &grant, &["notify", "draft"]).await;
    let page = browser.get(&format!("{base}/settings")).await;
    let whsec = page.field("secret");
    let on = browser
        .post_form(
            &format!("{base}/settings/connections/{grant}/background"),
            &[
                ("csrf_token", csrf.as_str()),
                ("kind", "webhook"),
                ("url", &sink.url("/hook")),
                ("secret", &whsec),
            ],
        )
        .await;
    let upstream = browser.get(&on.location()).await;
    let back = browser.get(&upstream.location()).await;
    assert_eq!(
        back.location(),
        "/settings?done=background",
        "{}",
        back.body
    );
    // The notifier's first look sets its cursor.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let n: u64 = rand::random();
    let subject = format!("Logcheck subject {n:x}");
    let sender = format!("logcheck-{n:x}@example.org");
    let body = format!("Logcheck body {n:x}");
    let recipient = format!("draftee-{n:x}@example.net");
    let (_, first) = call_tool_at(&base, &t.access, "check_new_mail", json!({})).await;
    let cursor = first["result"]["structuredContent"]["cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    crate::support::mail::deliver(&sender, &subject);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, news) = call_tool_at(
        &base,
        &t.access,
        "check_new_mail",
        json!({"cursor": cursor}),
    )
    .await;
    assert!(news.to_string().contains(&subject), "{news}");
    let mut delivered = false;
    for _ in 0..100 {
        if sink
            .requests()
            .iter()
            .any(|r| String::from_utf8_lossy(&r.body).contains(&subject))
        {
            delivered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(delivered, "the webhook heard nothing");
    let (_, drafted) = call_tool_at(
        &base,
        &t.access,
        "draft_email",
        json!({"to": [recipient], "subject": subject, "body_text": body}),
    )
    .await;
    assert_eq!(drafted["result"]["isError"], false, "{drafted}");
    let draft = drafted["result"]["structuredContent"]["draft_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, muted) = call_tool_at(
        &base,
        &t.access,
        "mute_notifications",
        json!({"sender": sender, "for": "1h"}),
    )
    .await;
    assert_eq!(muted["result"]["isError"], false, "{muted}");
    let _ = call_tool_at(&base, &t.access, "delete_draft", json!({"draft_id": draft})).await;

    let log = stop_and_read_log(server);
    assert!(
        log.contains("tool call"),
        "the log is missing the calls:\n{log}"
    );
    for (what, value) in [
        ("subject", subject.as_str()),
        ("sender address", sender.as_str()),
        ("recipient address", recipient.as_str()),
        ("body", body.as_str()),
        ("access token", t.access.split('.').nth(1).unwrap()),
        ("webhook secret", whsec.trim_start_matches("whsec_")),
        ("webhook path", "/hook"),
    ] {
        assert!(!log.contains(value), "the log holds the {what}:\n{log}");
    }
}

/// Closing a laptop ends a listening stream: the real binary, at the operator's usual info
/// level, logs no ERROR for it (rmcp reports the response it could not send as an error; an
/// operator paging on ERROR must not be woken by every client that goes away).
#[tokio::test]
async fn a_listening_client_that_disconnects_logs_no_error() {
    let standin = Standin::start_with(&["--subject", testbed().get("JMAP_WRITER_USERNAME")]);
    let (server, base, _data) = spawn_binary(&standin, &["--notify-poll-secs", "1"], "info").await;
    let client = Client::register_at(&base, "http://127.0.0.1:41999/cb").await;
    let mut browser = Browser::default();
    let returned = client.authorize(&mut browser).await;
    let t = client.exchange(&returned).await;
    let grant = t.access.split('.').next().unwrap().to_owned();
    turn_on(&mut browser, &base, &grant, &["notify"]).await;

    for id in 0..2 {
        let mut stream = mcp_request(
            &base,
            &t.access,
            (id, "subscriptions/listen", None),
            json!({"notifications": {"resourceSubscriptions": ["mail://new"]}}),
        )
        .send()
        .await
        .unwrap();
        assert_eq!(stream.status(), 200);
        let mut seen = String::new();
        assert!(
            crate::support::mail::read_until(&mut stream, &mut seen, "acknowledged", 5).await,
            "{seen}"
        );
        // A look happens while it listens; then the client goes away mid-stream.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        drop(stream);
        // The server learns of it when it next writes to the stream: mail arrives.
        crate::support::mail::deliver("ivan@example.org", &crate::support::mail::mark("Gone"));
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    // A 2025-11-25 session: its stream, a subscription, then the client ends the session.
    {
        let mut legacy =
            crate::support::RawMcp::legacy_with(format!("{base}/mcp"), &t.access).await;
        let mut stream = legacy.stream().await;
        let subscribed = legacy
            .request("resources/subscribe", json!({"uri": "mail://new"}))
            .await;
        assert!(subscribed.get("result").is_some(), "{subscribed}");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let _ = tokio::time::timeout(Duration::from_millis(100), stream.chunk()).await;
        drop(stream);
        let ended = reqwest::Client::new()
            .delete(format!("{base}/mcp"))
            .bearer_auth(&t.access)
            .header("mcp-session-id", legacy.session.clone().unwrap())
            .send()
            .await
            .unwrap();
        assert!(ended.status().is_success(), "{}", ended.status());
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let log = stop_and_read_log(server);
    assert!(
        log.contains("grant created"),
        "the log is missing the flow:\n{log}"
    );
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    assert!(
        errors.is_empty(),
        "a normal disconnect logged errors:\n{}",
        errors.join("\n")
    );
}
