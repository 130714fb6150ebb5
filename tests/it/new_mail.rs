//! `check_new_mail` against the real Cyrus: mail delivered over LMTP is new mail; a move into
//! the Inbox, mail read before the look and the person's own copies are not; unreadable and
//! stale cursors recover without a flood. The writer's mailbox, one test at a time.
use mailconnect::domain::notify::cursor::NewMailCursor;
use serde_json::{Value, json};

use crate::support::{
    RawMcp, TestApp,
    compose::{connected, is_error, structured, writer_app},
    mail::{deliver, deliver_with, email_state, listen, mark, read_until},
    mcp_request,
    oauth::call_tool,
    testbed,
};

async fn check(app: &TestApp, token: &str, args: Value) -> Value {
    let (_, r) = call_tool(app, token, "check_new_mail", args).await;
    assert!(!is_error(&r), "{r}");
    structured(&r).clone()
}

fn subjects(result: &Value) -> Vec<String> {
    result["emails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["subject"].as_str().unwrap().to_owned())
        .collect()
}

/// The writer's email with `subject`, by a search through the app (the search index takes a
/// moment to see a delivery).
async fn find(app: &TestApp, token: &str, subject: &str) -> String {
    for _ in 0..40 {
        let (_, r) = call_tool(app, token, "search_email", json!({"subject": subject})).await;
        if let Some(id) = structured(&r)["emails"][0]["id"].as_str() {
            return id.to_owned();
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{subject:?} was not found");
}

#[tokio::test]
async fn new_mail_only_real_arrivals_and_cursors_that_recover_without_a_flood() {
    let (_standin, app) = writer_app().await;
    let (token, _, _) = connected(&app, &["notify", "organize"]).await;

    let first = check(&app, &token, json!({})).await;
    let cursor = first["cursor"].as_str().unwrap().to_owned();

    // A delivery is new mail; the cursor moves past it.
    let arrived = mark("Arrived");
    deliver("carol@example.org", &arrived);
    let r = check(&app, &token, json!({"cursor": cursor})).await;
    assert_eq!(subjects(&r), std::slice::from_ref(&arrived), "{r}");
    assert_eq!(r["reset"], false);
    let cursor = r["cursor"].as_str().unwrap().to_owned();
    let r = check(&app, &token, json!({"cursor": cursor})).await;
    assert!(subjects(&r).is_empty(), "told once: {r}");
    let cursor = r["cursor"].as_str().unwrap().to_owned();

    // Not new: the person's own copy, mail read before the look, an old email moved back in.
    deliver(testbed().get("JMAP_WRITER_USERNAME"), &mark("Own copy"));
    let read = mark("Read elsewhere");
    deliver("dave@example.org", &read);
    let read_id = find(&app, &token, &read).await;
    let (_, r) = call_tool(
        &app,
        &token,
        "mark_email_read",
        json!({"email_ids": [read_id], "read": true}),
    )
    .await;
    assert!(!is_error(&r), "{r}");
    let old = crate::support::mail::EMAIL;
    let before = email_state(old).await;
    for to in ["archive", "inbox"] {
        let (_, r) = call_tool(
            &app,
            &token,
            "move_email",
            json!({"email_ids": [old], "mailbox": to}),
        )
        .await;
        assert!(!is_error(&r), "{r}");
    }
    let r = check(&app, &token, json!({"cursor": cursor})).await;
    assert!(subjects(&r).is_empty(), "{r}");
    // ... but read mail counts when asked for.
    let with_seen = check(
        &app,
        &token,
        json!({"cursor": cursor, "include_seen": true}),
    )
    .await;
    assert_eq!(
        subjects(&with_seen),
        std::slice::from_ref(&read),
        "{with_seen}"
    );
    assert_eq!(email_state(old).await["mailboxIds"], before["mailboxIds"]);

    // A garbage cursor: a fresh look at the last day (unread arrivals), flagged as a reset.
    let r = check(&app, &token, json!({"cursor": "not-a-cursor"})).await;
    assert_eq!(r["reset"], true);
    assert!(subjects(&r).contains(&arrived), "{r}");
    assert!(!subjects(&r).iter().any(|s| s.starts_with("Own copy")));

    // A stale cursor (a state from long ago): the server replays every change since, but
    // nothing older than a day comes back — no flood of the seeded 2024 mail.
    let stale = NewMailCursor {
        watermark: chrono::Utc::now() - chrono::Duration::days(400),
        state: "1".into(),
    }
    .encode();
    let r = check(&app, &token, json!({"cursor": stale})).await;
    let listed = subjects(&r);
    assert!(listed.len() <= 20, "{r}");
    assert!(
        listed.iter().all(|s| !s.contains("Quarterly report")),
        "{r}"
    );

    // Following `more` walks the replay to the end, still without old mail.
    let mut r = r;
    for _ in 0..10 {
        if r["more"] != true {
            break;
        }
        let cursor = r["cursor"].as_str().unwrap().to_owned();
        r = check(&app, &token, json!({"cursor": cursor})).await;
        assert!(
            subjects(&r).iter().all(|s| !s.contains("Quarterly report")),
            "{r}"
        );
    }
    assert_eq!(r["more"], false, "{r}");

    // The limit lists the oldest and counts the rest.
    let cursor = r["cursor"].as_str().unwrap().to_owned();
    let burst: Vec<String> = (0..3).map(|i| mark(&format!("Burst {i}"))).collect();
    for s in &burst {
        deliver("erin@example.org", s);
    }
    let r = check(&app, &token, json!({"cursor": cursor, "limit": 2})).await;
    assert_eq!(subjects(&r).len(), 2, "{r}");
    assert_eq!(r["not_shown"], 1);
}

#[tokio::test]
async fn new_mail_needs_the_notify_capability() {
    let (_standin, app) = writer_app().await;
    let (token, _, _) = connected(&app, &["organize"]).await;
    let tools = crate::support::oauth::tool_names(&app, &token).await;
    assert!(!tools.contains(&"check_new_mail".to_owned()), "{tools:?}");
    let (_, r) = call_tool(&app, &token, "check_new_mail", json!({})).await;
    assert!(is_error(&r), "{r}");
}

#[tokio::test]
async fn new_mail_rules_from_settings_and_mutes_from_the_assistant() {
    let (_standin, app) = writer_app().await;
    let (token, mut browser, csrf) = connected(&app, &["notify"]).await;
    let settings = browser.settings(&app).await;
    let grant = grant_on(&settings.body);
    let rules_url = format!("{}/settings/connections/{grant}/notify", app.base());
    let bad = browser
        .post_form(
            &rules_url,
            &[
                ("csrf_token", &csrf),
                ("zone", "Mars/Olympus"),
                ("quiet_day", "1"),
                ("quiet_start", "22:00"),
                ("quiet_end", "07:00"),
            ],
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    // Quiet all day, every day: a look the assistant asks for is not held back by it.
    let form = quiet_all_day(
        &csrf,
        &[
            ("deny", "@spam.example"),
            ("vips", "boss@corp.example"),
            ("zone", "Europe/Berlin"),
        ],
    );
    let saved = browser.post_form(&rules_url, &form).await;
    assert_eq!(saved.status, 303, "{}", saved.body);

    let cursor = check(&app, &token, json!({})).await["cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, muted) = call_tool(
        &app,
        &token,
        "mute_notifications",
        json!({"sender": "@news.example", "for": "8h"}),
    )
    .await;
    assert!(!is_error(&muted), "{muted}");
    assert_eq!(
        structured(&muted)["settings"]["mutes"][0]["sender"],
        "@news.example"
    );
    let wanted = mark("Wanted");
    deliver("spammer@spam.example", &mark("Spam"));
    deliver("digest@news.example", &mark("News"));
    deliver("ana@example.org", &wanted);
    let r = check(&app, &token, json!({"cursor": cursor})).await;
    assert_eq!(subjects(&r), std::slice::from_ref(&wanted), "{r}");
    assert_eq!(
        r["suppressed"],
        json!({"denied": 1, "not_vip": 0, "muted": 1})
    );

    let (_, shown) = call_tool(&app, &token, "get_notify_settings", json!({})).await;
    let s = &structured(&shown)["settings"];
    assert_eq!(s["deny"], json!(["@spam.example"]));
    assert_eq!(s["vips"], json!(["boss@corp.example"]));
    assert_eq!(s["time_zone"], "Europe/Berlin");
    assert_eq!(s["quiet_hours"][0]["start"], "00:00");
    assert_eq!(s["mutes"].as_array().unwrap().len(), 1);
    // The assistant can't undo or widen anything: bad mutes are refused, no tool unmutes.
    for bad in [
        json!({"for": "8h"}),
        json!({"sender": "@x.org", "for": "99d"}),
        json!({"sender": "not an address", "for": "1h"}),
    ] {
        let (_, r) = call_tool(&app, &token, "mute_notifications", bad.clone()).await;
        assert!(is_error(&r), "{bad}: {r}");
    }
    // The page shows the mute, and saving the rules keeps it.
    let page = browser.settings(&app).await;
    assert!(
        page.body.contains("Muted by you or your assistant"),
        "{}",
        page.body
    );
    let saved = browser.post_form(&rules_url, &form).await;
    assert_eq!(saved.status, 303);
    let (_, shown) = call_tool(&app, &token, "get_notify_settings", json!({})).await;
    assert_eq!(
        structured(&shown)["settings"]["mutes"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// A new-mail rules form with quiet hours all day, every day, and `fields`.
fn quiet_all_day<'a>(csrf: &'a str, fields: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut form = vec![
        ("csrf_token", csrf),
        ("quiet_start", "00:00"),
        ("quiet_end", "23:59"),
    ];
    form.extend_from_slice(fields);
    form.extend(["1", "2", "3", "4", "5", "6", "7"].map(|d| ("quiet_day", d)));
    form
}

/// The grant of the (one) connection the settings page shows.
fn grant_on(page: &str) -> String {
    let marker = "/settings/connections/";
    let start = page.find(marker).unwrap() + marker.len();
    page[start..].split('/').next().unwrap().to_owned()
}

#[tokio::test]
async fn new_mail_a_listening_client_hears_of_an_arrival_and_the_stream_ends_with_the_grant() {
    let (_standin, app) =
        crate::support::compose::writer_app_with(&["--notify-poll-secs", "1"]).await;
    let (token, mut browser, csrf) = connected(&app, &["notify"]).await;

    // The resource is listed and readable (what check_new_mail gives without a cursor).
    let r = mcp_request(
        &app.base(),
        &token,
        (3, "resources/read", Some("mail://new")),
        json!({"uri": "mail://new"}),
    )
    .send()
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(
        r.contains("mail://new") && r.contains("\\\"emails\\\""),
        "{r}"
    );

    let mut stream = listen(&app, &token, &["mail://new", "mail://other"]).await;
    let mut seen = String::new();
    assert!(
        read_until(
            &mut stream,
            &mut seen,
            "notifications/subscriptions/acknowledged",
            5
        )
        .await,
        "{seen}"
    );
    assert!(
        seen.contains("mail://new") && !seen.contains("mail://other"),
        "only our URI: {seen}"
    );
    // Let the first look set the cursor, then deliver.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    deliver("carol@example.org", &mark("Live"));
    assert!(
        read_until(&mut stream, &mut seen, "notifications/resources/updated", 6).await,
        "no resources/updated after an arrival: {seen}"
    );
    assert!(seen.contains("\"uri\":\"mail://new\""), "{seen}");

    // Revoking the connection ends the stream gracefully.
    let settings = browser.settings(&app).await;
    let grant = grant_on(&settings.body);
    let revoked = browser
        .post_connection(&app, &grant, "revoke", &[("csrf_token", &csrf)])
        .await;
    assert_eq!(revoked.status, 303);
    assert!(
        read_until(&mut stream, &mut seen, "\"resultType\":\"complete\"", 8).await,
        "the stream did not end after revocation: {seen}"
    );
}

#[tokio::test]
async fn new_mail_quiet_hours_hold_the_stream_but_a_vip_may_break_them() {
    let (_standin, app) =
        crate::support::compose::writer_app_with(&["--notify-poll-secs", "1"]).await;
    let (token, mut browser, csrf) = connected(&app, &["notify"]).await;
    let settings = browser.settings(&app).await;
    let grant = grant_on(&settings.body);
    // Quiet all day, every day; VIPs may break it.
    let form = quiet_all_day(
        &csrf,
        &[
            ("vips", "boss@corp.example"),
            ("vips_break_quiet", "on"),
            ("zone", "UTC"),
        ],
    );
    let saved = browser.post_connection(&app, &grant, "notify", &form).await;
    assert_eq!(saved.status, 303, "{}", saved.body);

    let mut stream = listen(&app, &token, &["mail://new"]).await;
    let mut seen = String::new();
    assert!(
        read_until(&mut stream, &mut seen, "acknowledged", 5).await,
        "{seen}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    deliver("carol@example.org", &mark("Quiet"));
    assert!(
        !read_until(&mut stream, &mut seen, "notifications/resources/updated", 4).await,
        "announced during quiet hours: {seen}"
    );
    // ... though check_new_mail, which the person asks for, still lists it.
    deliver("boss@corp.example", &mark("From the boss"));
    assert!(
        read_until(&mut stream, &mut seen, "notifications/resources/updated", 6).await,
        "a VIP who may break quiet hours was not announced: {seen}"
    );
}

#[tokio::test]
async fn new_mail_a_legacy_session_subscribes_and_hears_on_its_stream() {
    let (_standin, app) =
        crate::support::compose::writer_app_with(&["--notify-poll-secs", "1"]).await;
    let (token, _, _) = connected(&app, &["notify"]).await;
    let mut mcp = RawMcp::legacy_with(app.mcp_url(), &token).await;
    let info = mcp.initialized.clone().unwrap();
    assert_eq!(
        info["capabilities"]["resources"]["subscribe"], true,
        "resources.subscribe advertised: {info}"
    );
    let mut stream = mcp.stream().await;
    let other = mcp
        .request("resources/subscribe", json!({"uri": "mail://other"}))
        .await;
    assert!(other.get("error").is_some(), "{other}");
    let ok = mcp
        .request("resources/subscribe", json!({"uri": "mail://new"}))
        .await;
    assert!(ok.get("result").is_some(), "{ok}");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    deliver("carol@example.org", &mark("Legacy"));
    let mut seen = String::new();
    assert!(
        read_until(&mut stream, &mut seen, "notifications/resources/updated", 6).await,
        "nothing on the session's stream: {seen}"
    );
    assert!(seen.contains("mail://new"), "{seen}");
}

#[tokio::test]
async fn new_mail_the_stream_ends_when_the_access_token_expires() {
    let (_standin, app) = crate::support::compose::writer_app_with(&[
        "--notify-poll-secs",
        "1",
        "--access-token-ttl-secs",
        "5",
    ])
    .await;
    let (token, _, _) = connected(&app, &["notify"]).await;
    let mut stream = listen(&app, &token, &["mail://new"]).await;
    let mut seen = String::new();
    assert!(
        read_until(&mut stream, &mut seen, "acknowledged", 3).await,
        "{seen}"
    );
    // Ends gracefully (the client re-listens with a fresh token), within a look of expiry.
    assert!(
        read_until(&mut stream, &mut seen, "\"resultType\":\"complete\"", 10).await,
        "the stream outlived its token: {seen}"
    );
}

#[tokio::test]
async fn new_mail_the_feed_knows_the_threads_the_person_wrote_in() {
    use mailconnect::{
        domain::ports::MailFeed as _,
        outbound::jmap::{JmapMailStore, TransportConfig},
    };
    let store = JmapMailStore::new(TransportConfig {
        session_url: testbed().get("JMAP_SESSION_URL").parse().unwrap(),
        timeout: std::time::Duration::from_secs(10),
    })
    .unwrap();
    let cred = crate::support::mail::writer();
    let me = testbed().get("JMAP_WRITER_USERNAME");
    let tag = format!("{:x}", rand::random::<u32>());
    let (m1, m2) = (
        format!("<m1-{tag}@it.example>"),
        format!("<m2-{tag}@it.example>"),
    );
    let subject = format!("Plan {tag}");
    deliver_with("carol@example.org", &subject, &m1, "");
    deliver_with(
        me,
        &format!("Re: {subject}"),
        &m2,
        &format!("In-Reply-To: {m1}\r\nReferences: {m1}\r\n"),
    );
    let since = chrono::Utc::now() - chrono::Duration::hours(1);
    let before = store.changes_since(&cred, None, since).await.unwrap();

    let m3 = format!("<m3-{tag}@it.example>");
    deliver_with(
        "carol@example.org",
        &format!("Re: {subject}"),
        &m3,
        &format!("In-Reply-To: {m2}\r\nReferences: {m1} {m2}\r\n"),
    );
    deliver("dave@example.org", &format!("Other {tag}"));
    let feed = store
        .changes_since(&cred, Some(before.state), since)
        .await
        .unwrap();
    let thread_of = |prefix: &str| {
        feed.created
            .iter()
            .find(|e| e.subject.starts_with(prefix) && e.subject.contains(&tag))
            .unwrap_or_else(|| panic!("{prefix} not in {:?}", feed.created))
            .thread_id
            .clone()
    };
    assert!(
        feed.my_threads.contains(&thread_of("Re: Plan")),
        "{:?}",
        feed.my_threads
    );
    assert!(
        !feed.my_threads.contains(&thread_of("Other")),
        "{:?}",
        feed.my_threads
    );
}

#[tokio::test]
async fn new_mail_a_vip_whose_mail_failed_dmarc_is_no_vip() {
    let (_standin, app) = writer_app().await;
    let (token, mut browser, csrf) = connected(&app, &["notify"]).await;
    let grant = token.split('.').next().unwrap();
    let saved = browser
        .post_connection(
            &app,
            grant,
            "notify",
            &[
                ("csrf_token", csrf.as_str()),
                ("vips", "ana@corp.example"),
                ("only_vips", "on"),
            ],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let cursor = check(&app, &token, json!({})).await["cursor"]
        .as_str()
        .unwrap()
        .to_owned();

    // The receiving server's verdict is the topmost Authentication-Results; one the sender
    // put below it changes nothing.
    let verified = mark("Verified");
    let spoofed = mark("Spoofed");
    let id = |what: &str| format!("<{what}-{:x}@it.example>", rand::random::<u32>());
    deliver_with(
        "ana@corp.example",
        &verified,
        &id("v"),
        "Authentication-Results: mx.it.example; dmarc=pass (p=reject) header.from=corp.example\r\n",
    );
    deliver_with(
        "ana@corp.example",
        &spoofed,
        &id("s"),
        "Authentication-Results: mx.it.example; dmarc=fail (p=none) header.from=corp.example\r\n\
         Authentication-Results: forged.example; dmarc=pass header.from=corp.example\r\n",
    );
    let r = check(&app, &token, json!({"cursor": cursor})).await;
    assert_eq!(subjects(&r), std::slice::from_ref(&verified), "{r}");
    assert_eq!(r["suppressed"]["not_vip"], 1, "{r}");
}
