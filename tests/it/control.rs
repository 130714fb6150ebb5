//! Per-client capability policy, the write tools and the settings page, against the real
//! Cyrus testbed (the writer user's copy of the seed: these tests change mail and restore it).
//! They share that mailbox, so nextest runs them one at a time (.config/nextest.toml).

use serde_json::json;

use crate::support::{
    RawMcp, TestApp,
    compose::{text, writer_app},
    mail::{EMAIL, email_state, jmap},
    oauth::{
        Browser, Client, Page, Standin, call_tool, grant_of, sign_in, tool_names, tool_status,
    },
    testbed,
};

async fn set_organize(
    app: &TestApp,
    browser: &mut Browser,
    csrf: &str,
    grant: &str,
    on: bool,
) -> Page {
    let mut form = vec![("csrf_token", csrf)];
    if on {
        form.push(("organize", "on"));
    }
    browser
        .post_connection(app, grant, "capabilities", &form)
        .await
}

async fn mailbox_id(role: &str) -> String {
    let account = testbed().get("JMAP_WRITER_USERNAME");
    let r =
        jmap(json!([["Mailbox/get", {"accountId": account, "properties": ["role"]}, "m"]])).await;
    r["methodResponses"][0][1]["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == role)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn mailbox_count() -> usize {
    let account = testbed().get("JMAP_WRITER_USERNAME");
    let r = jmap(json!([["Mailbox/get", {"accountId": account, "properties": ["id"]}, "m"]])).await;
    r["methodResponses"][0][1]["list"].as_array().unwrap().len()
}

/// The main scenario: read-only by default by every path; the person enables
/// `organize` for A in settings; A can mark, flag, move and archive (visible over JMAP);
/// B, connected to the same mailbox, still cannot; the changes are in A's activity log.
#[tokio::test]
async fn organize_is_off_until_the_person_enables_it_for_one_client() {
    let (_standin, app) = writer_app().await;
    let a = Client::connected(&app, "http://127.0.0.1:41999/cb").await;
    let b = Client::connected(&app, "http://127.0.0.1:41998/cb").await;
    let writes = ["move_email", "mark_email_read", "flag_email"];

    // Read-only by default: not listed, and refused when called anyway, batch or crafted.
    assert!(
        tool_names(&app, &a.access)
            .await
            .iter()
            .all(|t| !writes.contains(&t.as_str()))
    );
    for (tool, args) in [
        (
            "mark_email_read",
            json!({"email_ids": [EMAIL], "read": false}),
        ),
        ("flag_email", json!({"email_ids": [EMAIL, EMAIL, "M1"]})),
        (
            "move_email",
            json!({"email_ids": [EMAIL], "mailbox": "archive"}),
        ),
    ] {
        let (status, body) = call_tool(&app, &a.access, tool, args).await;
        assert_eq!(
            (status, body["result"]["isError"].clone()),
            (200, json!(true)),
            "{body}"
        );
        assert!(
            text(&body).contains("settings"),
            "the refusal says how to enable it: {body}"
        );
    }
    assert_eq!(
        email_state(EMAIL).await["keywords"],
        json!({"$seen": true}),
        "mail changed while read-only"
    );

    // The person turns organize on for A.
    let (mut browser, page) = sign_in(&app).await;
    let csrf = page.field("csrf_token");
    assert!(
        page.body.contains(&format!("connection-{}", grant_of(&a)))
            && page.body.contains(&format!("connection-{}", grant_of(&b)))
    );
    assert_eq!(
        set_organize(&app, &mut browser, &csrf, &grant_of(&a), true)
            .await
            .status,
        303
    );
    let listed = tool_names(&app, &a.access).await;
    assert!(
        writes.iter().all(|w| listed.iter().any(|t| t == w)),
        "{listed:?}"
    );

    // Mark unread, then read again: the change is visible over JMAP.
    let (_, body) = call_tool(
        &app,
        &a.access,
        "mark_email_read",
        json!({"email_ids": [EMAIL], "read": false}),
    )
    .await;
    assert_eq!(
        body["result"]["structuredContent"]["report"]["changed"], 1,
        "{body}"
    );
    assert_eq!(email_state(EMAIL).await["keywords"], json!({}));
    let (_, body) = call_tool(
        &app,
        &a.access,
        "mark_email_read",
        json!({"email_ids": [EMAIL, "Mnosuchemail000"]}),
    )
    .await;
    let report = &body["result"]["structuredContent"]["report"];
    assert_eq!(
        (report["changed"].clone(), report["failed"].clone()),
        (json!(1), json!(1)),
        "{body}"
    );
    assert_eq!(report["results"][1]["error"], "no such email");
    let (_, body) = call_tool(
        &app,
        &a.access,
        "mark_email_read",
        json!({"email_ids": [EMAIL]}),
    )
    .await;
    assert_eq!(
        body["result"]["structuredContent"]["report"]["unchanged"], 1,
        "already read: {body}"
    );

    // Flag and unflag.
    let (_, body) = call_tool(&app, &a.access, "flag_email", json!({"email_ids": [EMAIL]})).await;
    assert_eq!(
        body["result"]["structuredContent"]["report"]["changed"], 1,
        "{body}"
    );
    assert_eq!(email_state(EMAIL).await["keywords"]["$flagged"], true);
    call_tool(
        &app,
        &a.access,
        "flag_email",
        json!({"email_ids": [EMAIL], "flagged": false}),
    )
    .await;
    assert!(
        email_state(EMAIL).await["keywords"]
            .get("$flagged")
            .is_none()
    );

    // Archive (out of Inbox, into Archive in one change), then back to the Inbox.
    let (inbox, archive) = (mailbox_id("inbox").await, mailbox_id("archive").await);
    let (_, body) = call_tool(
        &app,
        &a.access,
        "move_email",
        json!({"email_ids": [EMAIL], "mailbox": "archive"}),
    )
    .await;
    assert_eq!(
        body["result"]["structuredContent"]["mailbox"]["role"], "archive",
        "{body}"
    );
    assert_eq!(
        email_state(EMAIL).await["mailboxIds"],
        json!({archive.clone(): true})
    );
    let (_, body) = call_tool(
        &app,
        &a.access,
        "move_email",
        json!({"email_ids": [EMAIL], "mailbox": "Inbox"}),
    )
    .await;
    assert_eq!(
        body["result"]["structuredContent"]["report"]["changed"], 1,
        "{body}"
    );
    assert_eq!(email_state(EMAIL).await["mailboxIds"], json!({inbox: true}));

    // Nothing is created for a mailbox that doesn't exist; too many ids are refused.
    let before = mailbox_count().await;
    let (_, body) = call_tool(
        &app,
        &a.access,
        "move_email",
        json!({"email_ids": [EMAIL], "mailbox": "No Such Folder"}),
    )
    .await;
    assert_eq!(body["result"]["isError"], true, "{body}");
    assert_eq!(mailbox_count().await, before);
    let many: Vec<String> = (0..51).map(|i| format!("M{i}")).collect();
    let (_, body) = call_tool(&app, &a.access, "flag_email", json!({"email_ids": many})).await;
    assert_eq!(body["result"]["isError"], true, "{body}");

    // B is still read-only.
    let (_, body) = call_tool(&app, &b.access, "flag_email", json!({"email_ids": [EMAIL]})).await;
    assert_eq!(body["result"]["isError"], true, "{body}");
    assert!(
        email_state(EMAIL).await["keywords"]
            .get("$flagged")
            .is_none()
    );

    // A's activity is in the settings page: tool names and counts, nothing of the mail.
    let page = browser.settings(&app).await;
    assert!(
        page.body
            .contains("mark_email_read: ok, 1 email(s) changed"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("you set its capabilities to: read, organize")
    );
    assert!(!page.body.contains("Grüße"));

    // Turning it off again applies to the next request.
    assert_eq!(
        set_organize(&app, &mut browser, &csrf, &grant_of(&a), false)
            .await
            .status,
        303
    );
    let (_, body) = call_tool(&app, &a.access, "flag_email", json!({"email_ids": [EMAIL]})).await;
    assert_eq!(body["result"]["isError"], true, "{body}");
}

#[tokio::test]
async fn settings_forms_need_the_sessions_csrf_token_and_the_persons_own_grant() {
    let (_standin, app) = writer_app().await;
    let a = Client::connected(&app, "http://127.0.0.1:41999/cb").await;
    let (mut browser, page) = sign_in(&app).await;
    let csrf = page.field("csrf_token");
    let grant = grant_of(&a);
    assert!(
        page.header("content-security-policy")
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(page.header("x-frame-options").as_deref(), Some("DENY"));
    // Without or with a wrong token: refused, nothing changes.
    for token in ["", "forged"] {
        let r = set_organize(&app, &mut browser, token, &grant, true).await;
        assert_eq!(r.status, 403);
        let r = browser
            .post_connection(&app, &grant, "revoke", &[("csrf_token", token)])
            .await;
        assert_eq!(r.status, 403);
    }
    assert!(
        !tool_names(&app, &a.access)
            .await
            .iter()
            .any(|t| t == "move_email")
    );
    assert_eq!(tool_status(&app, &a.access, "get_identity").await, 200);
    // Another browser without the session: signed out.
    let r = set_organize(&app, &mut Browser::default(), &csrf, &grant, true).await;
    assert_eq!(r.status, 401);
    // A grant that isn't this person's (another account's, or made up): not found, no hint.
    let r = set_organize(&app, &mut browser, &csrf, "gAAAAAAAAAAAAAAAAAAAAAA", true).await;
    assert_eq!(r.status, 404);
    // Revoke: the client's next call is a 401.
    let r = browser
        .post_connection(&app, &grant, "revoke", &[("csrf_token", &csrf)])
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(tool_status(&app, &a.access, "get_identity").await, 401);
    let page = browser.settings(&app).await;
    assert!(!page.body.contains(&format!("connection-{grant}")));
    // It is listed as disconnected, with its activity ending in the revocation.
    assert!(
        page.body.contains(&format!("ended-{grant}")),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("disconnected: its access and stored credentials were deleted")
    );
}

/// The person sees only their own connections: alice's grants don't show in bob's settings.
#[tokio::test]
async fn settings_show_only_the_signed_in_persons_connections() {
    let (_standin, app) = writer_app().await;
    let alice_standin = Standin::start();
    let alice_app = crate::support::oauth::spawn_oauth_app(&alice_standin, &[]).await;
    let alices = Client::connected(&alice_app, "http://127.0.0.1:41999/cb").await;
    let bobs = Client::connected(&app, "http://127.0.0.1:41999/cb").await;
    let (_browser, page) = sign_in(&app).await;
    assert!(
        page.body
            .contains(&format!("connection-{}", grant_of(&bobs)))
    );
    assert!(!page.body.contains(&grant_of(&alices)));
}

/// A policy change reaches a client that holds a stream: `notifications/tools/list_changed`
/// arrives on its legacy session's GET stream.
#[tokio::test]
async fn a_policy_change_notifies_the_clients_listening_sessions() {
    let (_standin, app) = writer_app().await;
    let a = Client::connected(&app, "http://127.0.0.1:41999/cb").await;
    let mcp = RawMcp::legacy_with(app.mcp_url(), &a.access).await;
    let mut stream = mcp.stream().await;

    let (mut browser, page) = sign_in(&app).await;
    assert_eq!(
        set_organize(
            &app,
            &mut browser,
            &page.field("csrf_token"),
            &grant_of(&a),
            true
        )
        .await
        .status,
        303
    );
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while !seen.contains("notifications/tools/list_changed") {
        match tokio::time::timeout_at(deadline, stream.chunk()).await {
            Ok(Ok(Some(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            _ => panic!("no list_changed notification on the stream; got:\n{seen}"),
        }
    }
}

async fn mailbox_named(name: &str) -> String {
    let account = testbed().get("JMAP_WRITER_USERNAME");
    let r =
        jmap(json!([["Mailbox/get", {"accountId": account, "properties": ["name"]}, "m"]])).await;
    r["methodResponses"][0][1]["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn ids_in(mailbox: &str) -> Vec<String> {
    let account = testbed().get("JMAP_WRITER_USERNAME");
    let r = jmap(json!([["Email/query", {"accountId": account, "filter": {"inMailbox": mailbox}, "limit": 1000}, "q"]])).await;
    r["methodResponses"][0][1]["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap().to_owned())
        .collect()
}

async fn move_directly(id: &str, from: &str, to: &str) {
    let account = testbed().get("JMAP_WRITER_USERNAME");
    let r = jmap(json!([["Email/set", {"accountId": account, "update": {id: {format!("mailboxIds/{from}"): null, format!("mailboxIds/{to}"): true}}}, "s"]])).await;
    assert!(
        r["methodResponses"][0][1]["updated"].get(id).is_some(),
        "{r}"
    );
}

/// The paging test: 300 emails received in the same second (JMAP has no order among
/// them), walked 50 at a time while mail moves in and out between page requests: every email
/// that is in the mailbox throughout comes exactly once, one moved in comes once, ones moved out
/// before their turn don't come.
#[tokio::test]
async fn paging_through_identical_dates_returns_each_email_exactly_once_while_mail_moves() {
    let (_standin, app) = writer_app().await;
    let token = Client::connected(&app, "http://127.0.0.1:41999/cb")
        .await
        .access;
    let same = mailbox_named("Same Time").await;
    let archive = mailbox_id("archive").await;
    // An earlier run that failed half-way may have left mail moved: put it back.
    let account = testbed().get("JMAP_WRITER_USERNAME");
    let mut moved_in = None;
    for (mailbox, other) in [(&archive, &same), (&same, &archive)] {
        let ids = ids_in(mailbox).await;
        let r = jmap(json!([["Email/get", {"accountId": account, "ids": ids, "properties": ["subject"]}, "g"]])).await;
        for e in r["methodResponses"][0][1]["list"].as_array().unwrap() {
            let id = e["id"].as_str().unwrap();
            let same_time = e["subject"].as_str().unwrap().starts_with("Same time");
            if same_time == (mailbox == &archive) {
                move_directly(id, mailbox, other).await;
            }
            if !same_time {
                moved_in = Some(id.to_owned());
            }
        }
    }
    let moved_in = moved_in.expect("the writer's Archive holds an older email");
    let initial = ids_in(&same).await;
    assert_eq!(
        initial.len(),
        300,
        "the writer's seed has 300 same-second emails"
    );

    let mut returned: Vec<String> = Vec::new();
    let mut moved_out: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut failure = None;
    for page_no in 0..20 {
        let mut args = json!({"mailbox": "Same Time", "limit": 50});
        if let Some(c) = &cursor {
            args["cursor"] = json!(c);
        }
        let (status, body) = call_tool(&app, &token, "search_email", args).await;
        if status != 200 || body["result"]["isError"] != false {
            failure = Some(format!("page {page_no}: {body}"));
            break;
        }
        let page = &body["result"]["structuredContent"];
        returned.extend(
            page["emails"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_owned()),
        );
        // Between requests: one email not returned yet leaves, an older one arrives.
        if page_no == 0 || page_no == 2 {
            let leaving = initial
                .iter()
                .find(|id| !returned.contains(id) && !moved_out.contains(id))
                .unwrap()
                .clone();
            move_directly(&leaving, &same, &archive).await;
            moved_out.push(leaving);
        }
        if page_no == 1 {
            move_directly(&moved_in, &archive, &same).await;
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    // Put everything back before judging.
    for id in &moved_out {
        move_directly(id, &archive, &same).await;
    }
    move_directly(&moved_in, &same, &archive).await;
    assert_eq!(failure, None);

    let mut unique = returned.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), returned.len(), "an email came twice");
    let mut expected: Vec<String> = initial
        .iter()
        .filter(|id| !moved_out.contains(id))
        .cloned()
        .collect();
    expected.push(moved_in);
    expected.sort();
    assert_eq!(unique, expected, "the walk missed or added emails");
}
