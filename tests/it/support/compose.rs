//! Drafting and sending through the app as the writer: the writer app (the stand-in signing the
//! writer in), a client connected with capabilities enabled on the settings page, drafts and
//! their review links, deciding on the review page, and what the submission stub recorded
//! (scripts/testbed.d/fake-sendmail.py).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::{
    TestApp,
    oauth::{Browser, Client, Page, Standin, call_tool, grant_of, sign_in, spawn_oauth_app_at},
    testbed,
};

/// The stand-in signs the writer user in; the app reads the writer's mailbox.
pub(crate) async fn writer_app() -> (Standin, TestApp) {
    writer_app_with(&[]).await
}

/// The text of a `tools/call` answer's first content block (empty when there is none).
pub(crate) fn text(result: &Value) -> String {
    result["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The structured content of a `tools/call` answer.
pub(crate) fn structured(result: &Value) -> &Value {
    &result["result"]["structuredContent"]
}

/// Whether a `tools/call` answer is a tool error (shown to the model).
pub(crate) fn is_error(result: &Value) -> bool {
    result["result"]["isError"] == true
}

/// A connected client of the writer with `capabilities` enabled on the settings page.
pub(crate) async fn connected(app: &TestApp, capabilities: &[&str]) -> (String, Browser, String) {
    let tokens = Client::connected(app, "http://127.0.0.1:41999/cb").await;
    let grant = grant_of(&tokens);
    let (mut browser, page) = sign_in(app).await;
    let csrf = page.field("csrf_token");
    let mut form = vec![("csrf_token", csrf.as_str())];
    form.extend(capabilities.iter().map(|c| (*c, "on")));
    let saved = browser
        .post_connection(app, &grant, "capabilities", &form)
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    (tokens.access, browser, csrf)
}

/// A unique marker to find one test's messages in the outbox by.
pub(crate) fn marker() -> String {
    format!("mcflow-{:016x}", rand::random::<u64>())
}

/// Drafts a message to Carol carrying `mark` through `draft_email`; returns its draft id.
pub(crate) async fn draft(app: &TestApp, token: &str, mark: &str) -> String {
    let (_, r) = call_tool(
        app,
        token,
        "draft_email",
        json!({"to": ["Carol <carol@example.org>"], "subject": format!("Plan {mark}"),
               "body_text": format!("See you at noon. {mark}")}),
    )
    .await;
    assert!(!is_error(&r), "{r}");
    structured(&r)["draft_id"].as_str().unwrap().to_owned()
}

/// The result of `send_draft` with `args` (`{"draft_id": …}` and any more).
pub(crate) async fn send_draft(app: &TestApp, token: &str, args: Value) -> Value {
    call_tool(app, token, "send_draft", args).await.1
}

/// Asks `send_draft` with `args`, approves on the review page (`browser` signed in), and asks
/// again; returns the second answer.
pub(crate) async fn send_approved(
    app: &TestApp,
    token: &str,
    browser: &mut Browser,
    args: Value,
) -> Value {
    let asked = send_draft(app, token, args.clone()).await;
    let done = decide_asked(browser, &asked, "approve").await;
    assert!(done.body.contains("Approved"), "{}", done.body);
    send_draft(app, token, args).await
}

/// The `submission_id` of a `send_draft` result.
pub(crate) fn submission_of(result: &Value) -> String {
    structured(result)["submission_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no submission_id: {result}"))
        .to_owned()
}

/// The result of `cancel_send` with `args`.
pub(crate) async fn cancel_send(app: &TestApp, token: &str, args: Value) -> Value {
    call_tool(app, token, "cancel_send", args).await.1
}

/// The result of `get_send_status` with `args`.
pub(crate) async fn send_status(app: &TestApp, token: &str, args: Value) -> Value {
    call_tool(app, token, "get_send_status", args).await.1
}

/// The review page's URL from a `send_draft` result's link, without the fragment (this client
/// has no script to read it).
pub(crate) fn approval_path(result: &Value) -> String {
    let url = structured(result)["approval_url"]
        .as_str()
        .unwrap_or_else(|| panic!("no approval_url: {result}"));
    let (path, fragment) = url.split_once('#').unwrap();
    assert!(fragment.starts_with("k=") && fragment.len() > 40, "{url}");
    path.to_owned()
}

/// [`decide`] on the review page linked from the `send_draft` result `asked`.
pub(crate) async fn decide_asked(browser: &mut Browser, asked: &Value, decision: &str) -> Page {
    decide(browser, &approval_path(asked), decision).await
}

/// Opens the review page at `url` (signed in) and posts `decision` with its CSRF token.
pub(crate) async fn decide(
    browser: &mut Browser,
    url: &str,
    decision: &str,
) -> crate::support::oauth::Page {
    let page = browser.get(url).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("data-sealed=\""), "{}", page.body);
    let csrf = page.field("csrf_token");
    browser
        .post_form(url, &[("csrf_token", &csrf), ("decision", decision)])
        .await
}

/// The writer app with extra flags.
pub(crate) async fn writer_app_with(extra: &[&str]) -> (Standin, TestApp) {
    writer_app_at(testbed().get("JMAP_SESSION_URL"), extra).await
}

/// The app over the JMAP session at `session_url` (a proxy in front of Cyrus), signing in as
/// the writer.
pub(crate) async fn writer_app_at(session_url: &str, extra: &[&str]) -> (Standin, TestApp) {
    let standin = Standin::start_with(&["--subject", testbed().get("JMAP_WRITER_USERNAME")]);
    let app = spawn_oauth_app_at(session_url, &standin, extra).await;
    (standin, app)
}

/// A message the submission stub received: its raw text and SMTP envelope.
#[derive(Debug)]
pub(crate) struct Sent {
    pub raw: String,
    pub envelope: serde_json::Value,
}

impl Sent {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        let head = self.raw.split("\r\n\r\n").next().unwrap_or_default();
        head.lines().find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim())
        })
    }
}

fn outbox() -> PathBuf {
    PathBuf::from(testbed().get("CYRUS_OUTBOX"))
}

/// The messages in the outbox whose raw text contains `marker`.
pub(crate) fn sent_with(marker: &str) -> Vec<Sent> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(outbox()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "eml") {
            let raw = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            if raw.contains(marker) {
                let envelope = std::fs::read_to_string(path.with_extension("json")).unwrap();
                found.push(Sent {
                    raw,
                    envelope: serde_json::from_str(&envelope).unwrap(),
                });
            }
        }
    }
    found
}

/// While alive, the stub answers the writer's submissions with `line` ("VERB CODE TEXT").
pub(crate) struct Refusing(PathBuf);

impl Refusing {
    pub(crate) fn with(line: &str) -> Self {
        let path = outbox().join(format!(
            ".reject-{}",
            testbed().get("JMAP_WRITER_USERNAME").to_lowercase()
        ));
        std::fs::write(&path, format!("{line}\n")).unwrap();
        Self(path)
    }
}

impl Drop for Refusing {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Releases the submissions held until `epoch` (calalarmd -t, as root) and waits (5 s at most)
/// for the messages containing `marker` to reach the outbox; returns them.
pub(crate) async fn released(epoch: i64, marker: &str) -> Vec<Sent> {
    release(epoch);
    let mut sent = Vec::new();
    for _ in 0..50 {
        sent = sent_with(marker);
        if !sent.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    sent
}

/// Releases held submissions due by `epoch` (calalarmd -t, as root).
pub(crate) fn release(epoch: i64) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(root.join("scripts/testbed"))
        .args(["release", &epoch.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
