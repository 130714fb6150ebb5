//! Drafting and sending end to end: a real OAuth client, the settings page enabling draft and
//! send, the review page approving, the real Cyrus submitting to the recording sendmail.
//! The writer user's mailbox, one test at a time (.config/nextest.toml).

use serde_json::{Value, json};

use crate::support::{
    TestApp,
    compose::{
        approval_path, connected, decide, decide_asked, draft, is_error, marker, send_draft,
        send_status, sent_with, structured, text, writer_app, writer_app_with,
    },
    mcp_request, meta,
    oauth::{Browser, Client, call_tool, call_tool_at, grant_of, sign_in},
    send_json, testbed,
};

#[tokio::test]
async fn compose_flow_approve_on_the_review_page_then_sent_exactly_once() {
    let (_standin, app) = writer_app().await;
    let (token, mut browser, _) = connected(&app, &["send"]).await;
    let tools = crate::support::oauth::tool_names(&app, &token).await;
    for t in [
        "draft_email",
        "list_drafts",
        "delete_draft",
        "send_draft",
        "cancel_send",
        "get_send_status",
    ] {
        assert!(tools.contains(&t.to_owned()), "{t} in {tools:?}");
    }
    let mark = marker();
    let id = draft(&app, &token, &mark).await;
    let (_, listed) = call_tool(&app, &token, "list_drafts", json!({})).await;
    assert!(listed.to_string().contains(&id), "{listed}");

    let asked = send_draft(&app, &token, json!({"draft_id": id})).await;
    assert!(!is_error(&asked), "{asked}");
    assert_eq!(structured(&asked)["status"], "needs_approval");
    assert_eq!(
        structured(&asked)["draft"]["to"][0]["email"],
        "carol@example.org"
    );
    assert!(sent_with(&mark).is_empty(), "nothing before approval");

    // Asking again before the person decided sends nothing either.
    let again = send_draft(&app, &token, json!({"draft_id": id})).await;
    assert_eq!(structured(&again)["status"], "needs_approval");
    let url = approval_path(&again);

    let decided = decide(&mut browser, &url, "approve").await;
    assert_eq!(decided.status, 200, "{}", decided.body);
    assert!(decided.body.contains("Approved"), "{}", decided.body);
    // The page can't decide twice.
    let twice = browser.get(&url).await;
    assert_eq!(twice.status, 409, "{}", twice.body);

    // Two concurrent sends after one approval: exactly one message leaves.
    let base = app.base();
    let calls: Vec<_> = (0..2)
        .map(|_| {
            let (base, token, id) = (base.clone(), token.clone(), id.clone());
            tokio::spawn(async move {
                call_tool_at(&base, &token, "send_draft", json!({"draft_id": id}))
                    .await
                    .1
            })
        })
        .collect();
    let mut results = Vec::new();
    for c in calls {
        results.push(c.await.unwrap());
    }
    let sent: Vec<&Value> = results
        .iter()
        .filter(|r| structured(r)["status"] == "sent")
        .collect();
    assert_eq!(sent.len(), 1, "{results:?}");
    assert_eq!(
        sent_with(&mark).len(),
        1,
        "exactly one message in the outbox"
    );
    let loser = results
        .iter()
        .find(|r| structured(r)["status"] != "sent")
        .unwrap();
    assert!(is_error(loser), "{loser}");

    // Status by submission and by draft; and a later send of the same draft is refused.
    let submission = sent[0]["result"]["structuredContent"]["submission_id"]
        .as_str()
        .unwrap();
    let status = send_status(&app, &token, json!({"submission_id": submission})).await;
    assert!(!is_error(&status), "{status}");
    assert_eq!(
        structured(&status)["submission"]["undo_status"],
        "final",
        "{status}"
    );
    let status = send_status(&app, &token, json!({"draft_id": id})).await;
    assert_eq!(
        structured(&status)["approval"]["status"],
        "sent",
        "{status}"
    );
    let late = send_draft(&app, &token, json!({"draft_id": id})).await;
    assert!(
        is_error(&late) && text(&late).starts_with("not_a_draft:"),
        "{late}"
    );
    assert_eq!(sent_with(&mark).len(), 1);
}

#[tokio::test]
async fn compose_flow_declined_changed_expired_and_replayed_approvals_send_nothing() {
    let (standin, app) = writer_app_with(&["--send-approval-ttl-secs", "3"]).await;
    let (token, mut browser, _) = connected(&app, &["send"]).await;

    // Declined: nothing sent, the draft intact, and the next call says so.
    let mark = marker();
    let id = draft(&app, &token, &mark).await;
    let asked = send_draft(&app, &token, json!({"draft_id": id})).await;
    let url = approval_path(&asked);
    let declined = decide(&mut browser, &url, "decline").await;
    assert!(declined.body.contains("Declined"), "{}", declined.body);
    let r = send_draft(&app, &token, json!({"draft_id": id})).await;
    assert!(text(&r).starts_with("approval_declined:"), "{r}");
    assert!(sent_with(&mark).is_empty());
    let (_, listed) = call_tool(&app, &token, "list_drafts", json!({})).await;
    assert!(listed.to_string().contains(&id), "the draft is intact");

    // Approved, then the send asked for is not the one approved (another schedule).
    let asked = send_draft(&app, &token, json!({"draft_id": id})).await;
    decide_asked(&mut browser, &asked, "approve").await;
    let r = send_draft(&app, &token, json!({"draft_id": id, "undo_window_s": 30})).await;
    assert!(text(&r).starts_with("draft_changed:"), "{r}");
    assert!(sent_with(&mark).is_empty());

    // An approval for another draft doesn't send this one.
    let other = draft(&app, &token, &marker()).await;
    let asked = send_draft(&app, &token, json!({"draft_id": other})).await;
    decide_asked(&mut browser, &asked, "approve").await;
    let r = send_draft(&app, &token, json!({"draft_id": id})).await;
    assert_eq!(structured(&r)["status"], "needs_approval", "{r}");
    assert!(sent_with(&mark).is_empty());

    // Expired before the person decided: the page says so, and so does the next send.
    let asked = send_draft(&app, &token, json!({"draft_id": id})).await;
    let url = approval_path(&asked);
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let page = browser.get(&url).await;
    assert_eq!(page.status, 410, "{}", page.body);
    let r = send_draft(&app, &token, json!({"draft_id": id})).await;
    assert!(text(&r).starts_with("approval_expired:"), "{r}");
    assert!(sent_with(&mark).is_empty());

    // Someone else's mailbox can't open or decide it; a form without the token is refused.
    let asked = send_draft(&app, &token, json!({"draft_id": id})).await;
    let url = approval_path(&asked);
    let no_csrf = browser.post_form(&url, &[("decision", "approve")]).await;
    assert_eq!(no_csrf.status, 403, "{}", no_csrf.body);
    let mut stranger = Browser::default();
    let page = stranger.get(&url).await;
    assert!(
        page.body.contains("action=\"/settings/sign-in\""),
        "signed out: {}",
        page.body
    );
    assert!(
        page.body.contains("name=\"next\" value=\"/approve/"),
        "{}",
        page.body
    );
    // Signing in returns to the review page, and alice's mailbox is not bob's.
    standin.sign_in_as(testbed().get("JMAP_USERNAME")).await;
    let path = url.trim_start_matches(&app.base()).to_owned();
    let go = stranger
        .post_form(
            &format!("{}/settings/sign-in", app.base()),
            &[("sign_in", "1"), ("next", &path)],
        )
        .await;
    let upstream = stranger.get(&go.location()).await;
    let back = stranger.get(&upstream.location()).await;
    standin
        .sign_in_as(testbed().get("JMAP_WRITER_USERNAME"))
        .await;
    assert_eq!(
        (back.status, back.location()),
        (303, path.clone()),
        "{}",
        back.body
    );
    let page = stranger.get(&url).await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.body.contains("another mailbox"), "{}", page.body);
    let csrf = {
        let settings = stranger.settings(&app).await;
        settings.field("csrf_token")
    };
    let forged = stranger
        .post_form(&url, &[("csrf_token", &csrf), ("decision", "approve")])
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    // A `next` that isn't one of our review pages is ignored.
    let go = stranger
        .post_form(
            &format!("{}/settings/sign-in", app.base()),
            &[("sign_in", "1"), ("next", "https://evil.example/")],
        )
        .await;
    let upstream = stranger.get(&go.location()).await;
    let back = stranger.get(&upstream.location()).await;
    assert_eq!(back.location(), "/settings");
    assert!(sent_with(&mark).is_empty());
}

#[tokio::test]
async fn compose_flow_without_send_no_tool_reaches_submission() {
    let (_standin, app) = writer_app().await;
    let (token, _, _) = connected(&app, &["draft"]).await;
    let tools = crate::support::oauth::tool_names(&app, &token).await;
    assert!(tools.contains(&"draft_email".to_owned()));
    assert!(
        !tools
            .iter()
            .any(|t| t == "send_draft" || t == "cancel_send")
    );
    let mark = marker();
    let id = draft(&app, &token, &mark).await;
    let r = send_draft(&app, &token, json!({"draft_id": id})).await;
    assert!(
        is_error(&r) && text(&r).contains("\"send\" capability is off"),
        "{r}"
    );
    let (_, r) = call_tool(&app, &token, "delete_draft", json!({"draft_id": id})).await;
    assert!(!is_error(&r), "{r}");
    assert!(sent_with(&mark).is_empty());
}

/// `tools/call send_draft` on 2026-07-28 from a client that declares form elicitation, with
/// `extra` params (a retry's `inputResponses` and `requestState`).
async fn send_with_form(app: &TestApp, token: &str, draft: &str, extra: Value) -> Value {
    let mut params = json!({"name": "send_draft", "arguments": {"draft_id": draft},
        "_meta": meta(json!({"elicitation": {}}))});
    for (k, v) in extra.as_object().into_iter().flatten() {
        params[k] = v.clone();
    }
    send_json(mcp_request(
        &app.base(),
        token,
        (7, "tools/call", Some("send_draft")),
        params,
    ))
    .await
}

#[tokio::test]
async fn compose_flow_a_2026_client_confirms_in_its_own_form_once() {
    let (_standin, app) = writer_app().await;
    let (token, _, _) = connected(&app, &["send"]).await;
    let mark = marker();
    let id = draft(&app, &token, &mark).await;

    let asked = send_with_form(&app, &token, &id, json!({})).await;
    let result = &asked["result"];
    assert_eq!(result["resultType"], "input_required", "{asked}");
    let form = &result["inputRequests"]["confirm_send"];
    assert_eq!(form["method"], "elicitation/create", "{asked}");
    let message = form["params"]["message"].as_str().unwrap();
    assert!(
        message.contains("carol@example.org") && message.contains(&mark),
        "{message}"
    );
    assert_eq!(
        form["params"]["requestedSchema"]["properties"]["send"]["type"],
        "boolean"
    );
    let state = result["requestState"].as_str().unwrap().to_owned();
    assert!(sent_with(&mark).is_empty());

    // A tampered state, or one for another draft, is refused without sending.
    let other = draft(&app, &token, &marker()).await;
    let accept = json!({"confirm_send": {"action": "accept", "content": {"send": true}}});
    let r = send_with_form(
        &app,
        &token,
        &other,
        json!({"inputResponses": accept, "requestState": state}),
    )
    .await;
    assert!(is_error(&r) && text(&r).contains("request state"), "{r}");
    let mut forged = state.clone();
    forged.replace_range(forged.len() - 3.., "AAA");
    let r = send_with_form(
        &app,
        &token,
        &id,
        json!({"inputResponses": accept, "requestState": forged}),
    )
    .await;
    assert!(is_error(&r), "{r}");
    assert!(sent_with(&mark).is_empty());

    // The person accepts: sent once; the same answer replayed sends nothing more.
    let r = send_with_form(
        &app,
        &token,
        &id,
        json!({"inputResponses": accept, "requestState": state}),
    )
    .await;
    assert_eq!(structured(&r)["status"], "sent", "{r}");
    let r = send_with_form(
        &app,
        &token,
        &id,
        json!({"inputResponses": accept, "requestState": state}),
    )
    .await;
    assert!(is_error(&r), "{r}");
    assert_eq!(sent_with(&mark).len(), 1);

    // Declined (or unticked): not sent, the draft intact.
    let mark = marker();
    let id = draft(&app, &token, &mark).await;
    let asked = send_with_form(&app, &token, &id, json!({})).await;
    let state = asked["result"]["requestState"].as_str().unwrap().to_owned();
    let decline = json!({"confirm_send": {"action": "decline"}});
    let r = send_with_form(
        &app,
        &token,
        &id,
        json!({"inputResponses": decline, "requestState": state}),
    )
    .await;
    assert!(text(&r).starts_with("approval_declined:"), "{r}");
    let asked = send_with_form(&app, &token, &id, json!({})).await;
    let state = asked["result"]["requestState"].as_str().unwrap().to_owned();
    let unticked = json!({"confirm_send": {"action": "accept", "content": {"send": false}}});
    let r = send_with_form(
        &app,
        &token,
        &id,
        json!({"inputResponses": unticked, "requestState": state}),
    )
    .await;
    assert!(text(&r).starts_with("approval_declined:"), "{r}");
    assert!(sent_with(&mark).is_empty());
    let (_, listed) = call_tool(&app, &token, "list_drafts", json!({})).await;
    assert!(listed.to_string().contains(&id));
}

/// `send_draft` through the TypeScript SDK answering the form as told (run without blocking:
/// the server under test shares this runtime).
async fn ts_elicit(app: &TestApp, token: &str, draft: &str, answer: &str) -> Value {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tokio::process::Command::new("node")
        .arg(root.join("tests/e2e/ts-elicit.mjs"))
        .args([draft, answer])
        .env("MCP_URL", app.mcp_url())
        .env("MCP_TOKEN", token)
        .env("TIMEOUT_MS", "20000")
        .output()
        .await
        .expect("node runs");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn compose_flow_the_typescript_sdk_confirms_in_its_dialog_on_a_legacy_session() {
    let (_standin, app) = writer_app().await;
    let (token, _, _) = connected(&app, &["send"]).await;
    let mark = marker();
    let id = draft(&app, &token, &mark).await;
    let out = ts_elicit(&app, &token, &id, "accept").await;
    let message = out["asked"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("carol@example.org"), "{out}");
    assert_eq!(
        out["result"]["structuredContent"]["status"], "sent",
        "{out}"
    );
    assert_eq!(sent_with(&mark).len(), 1);

    for answer in ["decline", "cancel"] {
        let mark = marker();
        let id = draft(&app, &token, &mark).await;
        let out = ts_elicit(&app, &token, &id, answer).await;
        assert_eq!(out["result"]["isError"], true, "{out}");
        let said = out["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default();
        assert!(said.starts_with("approval_declined:"), "{out}");
        assert!(sent_with(&mark).is_empty());
    }
}

#[tokio::test]
async fn compose_flow_recipient_rules_refuse_before_asking_and_the_model_cannot_widen_them() {
    let (_standin, app) = writer_app().await;
    let tokens = Client::connected(&app, "http://127.0.0.1:41999/cb").await;
    let (token, grant) = (tokens.access.clone(), grant_of(&tokens));
    let (mut browser, page) = sign_in(&app).await;
    let csrf = page.field("csrf_token");
    let caps = format!("{}/settings/connections/{grant}/capabilities", app.base());
    browser
        .post_form(&caps, &[("csrf_token", &csrf), ("send", "on")])
        .await;
    let rules = format!("{}/settings/connections/{grant}/recipients", app.base());
    let draft_to = |to: String| {
        let (app, token) = (&app, &token);
        async move {
            let (_, r) = call_tool(
                app,
                token,
                "draft_email",
                json!({"to": [to], "subject": "rules", "body_text": "hello"}),
            )
            .await;
            structured(&r)["draft_id"].as_str().unwrap().to_owned()
        }
    };

    // Only listed addresses and domains.
    let saved = browser
        .post_form(
            &rules,
            &[
                ("csrf_token", &csrf),
                ("recipients", "only"),
                ("only_list", "@example.org\nana@example.net"),
            ],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let settings = browser.settings(&app).await;
    assert!(
        settings.body.contains("only @example.org, ana@example.net"),
        "{}",
        settings.body
    );
    let stranger = draft_to("eve@evil.example".into()).await;
    let r = send_draft(&app, &token, json!({"draft_id": stranger})).await;
    assert!(
        text(&r).starts_with("recipient_not_allowed:") && text(&r).contains("eve@evil.example"),
        "{r}"
    );
    let status = send_status(&app, &token, json!({"draft_id": stranger})).await;
    assert_eq!(
        structured(&status)["approval"],
        Value::Null,
        "no approval was asked for"
    );
    // Listed, and never written to (a fresh address).
    let fresh = format!("new-{:x}@example.org", rand::random::<u64>());
    let listed = draft_to(fresh).await;
    let r = send_draft(&app, &token, json!({"draft_id": listed})).await;
    assert_eq!(structured(&r)["status"], "needs_approval", "{r}");

    // Only people written to: the seed's Sent mail went to bob@example.com.
    browser
        .post_form(
            &rules,
            &[("csrf_token", &csrf), ("recipients", "written_to")],
        )
        .await;
    let r = send_draft(&app, &token, json!({"draft_id": listed})).await;
    assert!(text(&r).starts_with("recipient_not_allowed:"), "{r}");
    let known = draft_to("bob@example.com".into()).await;
    let r = send_draft(&app, &token, json!({"draft_id": known})).await;
    assert_eq!(structured(&r)["status"], "needs_approval", "{r}");

    // Bad lists and forged forms change nothing; no tool takes a recipient rule.
    let bad = browser
        .post_form(
            &rules,
            &[
                ("csrf_token", &csrf),
                ("recipients", "only"),
                ("only_list", "not an address"),
            ],
        )
        .await;
    assert_eq!(bad.status, 400);
    let forged = browser
        .post_form(&rules, &[("csrf_token", "nope"), ("recipients", "anyone")])
        .await;
    assert_eq!(forged.status, 403);
    let r = send_draft(&app, &token, json!({"draft_id": listed})).await;
    assert!(text(&r).starts_with("recipient_not_allowed:"), "{r}");
    let r = send_draft(
        &app,
        &token,
        json!({"draft_id": listed, "recipients": "anyone"}),
    )
    .await;
    assert!(is_error(&r) && text(&r).contains("recipients"), "{r}");
}

#[tokio::test]
async fn compose_flow_review_page_only_never_asks_in_the_clients_form() {
    let (_standin, app) = writer_app().await;
    let (token, _, _) = connected(&app, &["send"]).await;
    let mark = marker();
    let id = draft(&app, &token, &mark).await;
    // An answer to the client's form, asked before the person chose the review page only.
    let asked = send_with_form(&app, &token, &id, json!({})).await;
    let state = asked["result"]["requestState"].as_str().unwrap().to_owned();

    let (mut browser, page) = crate::support::oauth::sign_in(&app).await;
    let csrf = page.field("csrf_token");
    let grant = token.split('.').next().unwrap();
    let saved = browser
        .post_connection(
            &app,
            grant,
            "recipients",
            &[
                ("csrf_token", csrf.as_str()),
                ("recipients", "anyone"),
                ("review_only", "on"),
            ],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let page = browser.settings(&app).await;
    assert!(
        page.body
            .contains("name=\"review_only\" value=\"on\" checked"),
        "{}",
        page.body
    );

    // The form is never offered again, and an answer to the old one approves nothing.
    let accept = json!({"confirm_send": {"action": "accept", "content": {"send": true}}});
    let r = send_with_form(
        &app,
        &token,
        &id,
        json!({"inputResponses": accept, "requestState": state}),
    )
    .await;
    assert_ne!(r["result"]["resultType"], "input_required", "{r}");
    assert!(approval_path(&r).contains("/approve/"), "{r}");
    assert!(sent_with(&mark).is_empty(), "nothing left without the page");
    let (_, r) = call_tool(&app, &token, "delete_draft", json!({"draft_id": id})).await;
    assert!(!is_error(&r), "{r}");
}

/// Two instances on one PostgreSQL: a 2026-07-28 client asked to confirm by one instance
/// answers through the other (as behind a load balancer), and the draft is sent once — the
/// request state is sealed under a key every instance shares.
#[tokio::test]
async fn compose_flow_a_2026_confirmation_may_be_answered_on_another_instance() {
    let url = mailconnect::outbound::postgres::testing::fresh_database().await;
    let (standin, a) = writer_app_with(&["--storage", &url]).await;
    let public = a.base();
    let b = crate::support::oauth::spawn_oauth_app_at(
        testbed().get("JMAP_SESSION_URL"),
        &standin,
        &["--storage", &url, "--public-url", &public],
    )
    .await;
    let (token, _, _) = connected(&a, &["send"]).await;
    let mark = marker();
    let id = draft(&a, &token, &mark).await;
    let asked = send_with_form(&a, &token, &id, json!({})).await;
    let state = asked["result"]["requestState"].as_str().unwrap().to_owned();
    let accept = json!({"confirm_send": {"action": "accept", "content": {"send": true}}});
    let r = send_with_form(
        &b,
        &token,
        &id,
        json!({"inputResponses": accept, "requestState": state}),
    )
    .await;
    assert_eq!(structured(&r)["status"], "sent", "{r}");
    assert_eq!(sent_with(&mark).len(), 1);
}
