//! The send-approval review page (`/approve/:id`, `src/inbound/approve.rs` and `approve.js`) in a
//! real browser: headless Chromium (Debian's `/usr/bin/chromium`) driven by playwright-core
//! (`tests/browser/review.mjs`, set up by `tests/browser/setup.sh`), against the writer app
//! in-process, the stand-in upstream and the real Cyrus testbed with its recording sendmail.
//! An OAuth client with the "send" capability asks `send_draft` for a review link; the person
//! opens it in Chromium, signs in with the mail provider, reads the draft the page opened with
//! WebCrypto and decides; the client's next `send_draft` then sends, or doesn't. Screenshots of
//! the main walk (desktop and phone width) and of the refusals are kept in
//! `target/screenshots/review-*.png`. Only the first test signs in from the review page's own
//! Sign in button (the way a person arrives); the others sign in at /settings first, so that
//! each checks one thing. Changes the writer's mailbox (sends mail; the other drafts are
//! deleted at the end): in the `writer-mailbox` nextest group.

use std::{path::Path, time::Duration};

use serde_json::{Value, json};

use crate::support::{
    TestApp,
    chromium::{CHROMIUM, Script, assert_screenshots, chain_of, screenshots},
    compose::{
        approval_path, connected, draft, is_error, marker, send_draft, send_status, sent_with,
        structured, text, writer_app, writer_app_with,
    },
    oauth::call_tool,
    testbed,
};

/// The main walk's screenshots, and the width each is taken at.
const SHOTS: &[(&str, u32)] = &[
    ("review-1-signed-out", 1280),
    ("review-2-draft", 1280),
    ("review-2-draft-phone", 390),
    ("review-3-approved", 1280),
];

/// A review link: the whole `approval_url`, and its parts.
struct Link {
    /// `{base}/approve/{id}#k={key}`.
    full: String,
    /// `{base}/approve/{id}`.
    url: String,
    id: String,
}

/// `send_draft` for `id` (the client can't show a dialog): asks for approval; the review link.
async fn ask(app: &TestApp, token: &str, id: &str) -> (Value, Link) {
    let (_, r) = call_tool(app, token, "send_draft", json!({"draft_id": id})).await;
    assert!(!is_error(&r), "{r}");
    assert_eq!(structured(&r)["status"], "needs_approval", "{r}");
    let url = approval_path(&r);
    let full = structured(&r)["approval_url"].as_str().unwrap().to_owned();
    let id = url
        .strip_prefix(&format!("{}/approve/", app.base()))
        .unwrap_or_else(|| panic!("a review link of this app: {full}"))
        .to_owned();
    (r, Link { full, url, id })
}

/// The approval's status by draft (`get_send_status`), `null` when there is none.
async fn approval_status(app: &TestApp, token: &str, draft: &str) -> Value {
    let (_, r) = call_tool(app, token, "get_send_status", json!({"draft_id": draft})).await;
    assert!(!is_error(&r), "{r}");
    structured(&r)["approval"]["status"].clone()
}

/// `send_draft` once more: still waiting for the person (nothing was approved).
async fn still_needs_approval(app: &TestApp, token: &str, draft: &str) {
    let (_, r) = call_tool(app, token, "send_draft", json!({"draft_id": draft})).await;
    assert_eq!(structured(&r)["status"], "needs_approval", "{r}");
}

/// How the browser signs in (`review.mjs --sign-in`).
#[derive(Clone, Copy)]
enum SignIn {
    /// From the review page's own Sign in button, back to the review page.
    FromTheLink,
    /// At /settings first, then the link (a person already signed in).
    AtSettings,
}

/// Deletes the draft a test left (the writer's mailbox as it was).
async fn delete(app: &TestApp, token: &str, draft: &str) {
    let (_, r) = call_tool(app, token, "delete_draft", json!({"draft_id": draft})).await;
    assert!(!is_error(&r), "{r}");
}

/// Runs `review.mjs <scenario>` on `link`; returns its observations. Nothing on any page
/// opened a dialog or threw.
async fn review(
    scenario: &str,
    sign_in: SignIn,
    app: &TestApp,
    link: &Link,
    shots: Option<&Path>,
) -> Value {
    let mode = match sign_in {
        SignIn::FromTheLink => "link",
        SignIn::AtSettings => "settings",
    };
    let mut script = Script::new("review.mjs").scenario(scenario).args([
        "--base",
        &app.base(),
        "--link",
        &link.full,
        "--sign-in",
        mode,
        "--chromium",
        CHROMIUM,
    ]);
    if let Some(dir) = shots {
        script = script.arg("--out").arg(dir);
    }
    let seen = script.observe(Duration::from_secs(90)).await;
    assert_eq!(seen["base"], app.base());
    assert_eq!(seen["approval_id"], link.id.as_str());
    assert_eq!(seen["dialogs"], json!([]), "{seen:#}");
    assert_eq!(seen["page_errors"], json!([]), "{seen:#}");
    seen
}

/// The review page once signed in. From the link: the Sign in button took the browser through
/// the stand-in upstream and our callback back to the review page (fails with the browser's own
/// words when it got stuck). At /settings: that sign-in ended on /settings, then the link opened.
fn signed_in<'a>(seen: &'a Value, app: &TestApp, link: &Link) -> &'a Value {
    let sign_in = &seen["sign_in"];
    let ends = if seen["sign_in_mode"] == "link" {
        link.url.clone()
    } else {
        format!("{}/settings", app.base())
    };
    let csp = sign_in["csp_console"]
        .as_array()
        .is_some_and(|c| !c.is_empty());
    assert!(
        seen["stopped"].is_null() && sign_in["navigation_error"].is_null(),
        "signing in did not end on {ends}: {}.\nChromium's console: {}\n{}{sign_in:#}",
        seen["stopped"],
        sign_in["csp_console"],
        if csp {
            "(Chromium applies a page's Content-Security-Policy form-action to every redirect \
             that follows the form's POST: a form-action 'self' on the page with the Sign in \
             button refuses the 303 from /settings/sign-in to the upstream's authorize URL, \
             another origin.)\n"
        } else {
            ""
        }
    );
    assert_eq!(sign_in["final_url"], ends.as_str(), "{sign_in:#}");
    let chain = chain_of(sign_in);
    assert_eq!(chain.len(), 4, "{sign_in:#}");
    assert_eq!(chain[0], format!("POST {}/settings/sign-in", app.base()));
    assert!(
        chain[1].starts_with("GET http://127.0.0.1:") && !chain[1].contains(&app.base()),
        "{sign_in:#}"
    );
    assert_eq!(chain[2], format!("GET {}/auth/callback", app.base()));
    assert_eq!(chain[3], format!("GET {ends}"));
    &seen["review"]
}

/// The page a signed-out browser gets for a review link: a Sign in button that returns here,
/// the link's key already out of the address bar and in this tab's storage (`key`), and the
/// headers of every page of ours.
fn assert_signed_out(view: &Value, link: &Link, key: &str) {
    assert_eq!(view["status"], 200, "{view:#}");
    assert_eq!(view["url"], link.url.as_str(), "{view:#}");
    assert_eq!(view["sign_in_button"], 1, "{view:#}");
    assert_eq!(view["next"], format!("/approve/{}", link.id), "{view:#}");
    assert_eq!(view["sealed"], false, "no sealed copy signed out: {view:#}");
    assert_eq!(view["approve"], Value::Null, "{view:#}");
    assert_eq!(view["stored_key"], key, "{view:#}");
    assert_eq!(view["scripts"], json!(["/approve.js"]), "{view:#}");
    assert_headers(view);
}

/// Never framed, cached or referred; scripts from our origin only.
fn assert_headers(view: &Value) {
    assert_eq!(view["x_frame_options"], "DENY", "{view:#}");
    let csp = view["content_security_policy"].as_str().unwrap_or_default();
    for directive in ["frame-ancestors 'none'", "script-src 'self'"] {
        assert!(csp.contains(directive), "CSP {csp}");
    }
    assert_eq!(view["cache_control"], "no-store", "{view:#}");
    assert_eq!(view["referrer_policy"], "no-referrer", "{view:#}");
}

/// The review page with nothing opened: the error says why, Approve stays disabled.
fn assert_unopened(view: &Value, error: &str) {
    assert_eq!(view["status"], 200, "{view:#}");
    assert_eq!(view["sealed"], true, "{view:#}");
    let shown = view["review_error"].as_str().unwrap_or_default();
    assert!(shown.contains(error), "{error:?} in {view:#}");
    assert_eq!(view["draft_shown"], false, "{view:#}");
    for field in ["from", "to", "subject", "text"] {
        assert_eq!(view["fields"][field], "", "{field}: {view:#}");
    }
    assert_eq!(view["approve"]["disabled"], true, "{view:#}");
    assert_eq!(view["decline"]["disabled"], false, "{view:#}");
}

/// The decision's POST answered in place (no redirect) with `status` and an outcome.
fn decided<'a>(seen: &'a Value, link: &Link, status: u16) -> &'a str {
    let decide = &seen["decide"];
    assert_eq!(
        chain_of(decide),
        [format!("POST {}", link.url)],
        "{decide:#}"
    );
    assert_eq!(decide["page"]["status"], status, "{decide:#}");
    decide["page"]["outcome"].as_str().unwrap_or_default()
}

/// The owner opens the whole link signed out, signs in with the mail provider and comes back
/// to the review page, which shows the exact draft (To, Bcc, subject, the body as text, markup
/// included) with the key gone from the address bar; at a phone's width too. Approve → the
/// client's next `send_draft` sends, exactly one message.
#[tokio::test(flavor = "multi_thread")]
async fn chromium_owner_signs_in_from_the_link_approves_the_exact_draft_and_it_is_sent_once() {
    let (_standin, app) = writer_app().await;
    let (token, _, _) = connected(&app, &["send"]).await;
    let mark = marker();
    let subject = format!("Plan {mark} <b>& \"friends\"</b>");
    let body = format!(
        "See you at noon. {mark}\n<script>alert(1)</script> & <b>not bold</b>\n\
         https://example.org/an/unbroken/link/{mark}/that-is-far-wider-than-a-phone-screen-{mark}"
    );
    let (_, r) = call_tool(
        &app,
        &token,
        "draft_email",
        json!({"to": ["Carol <carol@example.org>"], "bcc": ["Dave <dave@example.org>"],
               "subject": subject, "body_text": body}),
    )
    .await;
    assert!(!is_error(&r), "{r}");
    let id = structured(&r)["draft_id"].as_str().unwrap().to_owned();
    let (_, link) = ask(&app, &token, &id).await;
    assert_eq!(approval_status(&app, &token, &id).await, "pending");

    let out = screenshots();
    for (name, _) in SHOTS {
        let _ = std::fs::remove_file(out.join(format!("{name}.png")));
    }
    let seen = review("approve", SignIn::FromTheLink, &app, &link, Some(&out)).await;

    // 1. Signed out: a Sign in button; the key left the address bar for this tab's storage.
    assert_signed_out(&seen["signed_out"], &link, "the link key");
    assert_eq!(seen["signed_out"]["fit"]["overflows"], false);

    // 2. Signed in: back on the review page; the draft as it will leave, as text.
    let page = signed_in(&seen, &app, &link);
    assert_eq!(page["status"], 200, "{page:#}");
    assert_eq!(
        page["url"],
        link.url.as_str(),
        "the key is not in the address bar"
    );
    assert_eq!(page["stored_key"], "the link key", "{page:#}");
    assert_headers(page);
    assert_eq!(page["review_error"], Value::Null, "{page:#}");
    assert_eq!(page["draft_shown"], true, "{page:#}");
    let fields = &page["fields"];
    assert!(
        fields["from"]
            .as_str()
            .unwrap()
            .contains(testbed().get("JMAP_WRITER_USERNAME")),
        "{fields:#}"
    );
    assert_eq!(fields["to"], "Carol <carol@example.org>", "{fields:#}");
    assert_eq!(fields["cc"], "—", "{fields:#}");
    assert_eq!(fields["bcc"], "Dave <dave@example.org>", "{fields:#}");
    assert_eq!(fields["subject"], subject.as_str(), "{fields:#}");
    assert_eq!(fields["text"], body.as_str(), "{fields:#}");
    assert_eq!(fields["send"], "now", "{fields:#}");
    assert_eq!(fields["attachments"], "none", "{fields:#}");
    assert_eq!(fields["html_shown"], false, "{fields:#}");
    assert_eq!(page["approve"]["disabled"], false, "{page:#}");
    assert_eq!(
        page["approve"]["form_action"],
        format!("/approve/{}", link.id)
    );
    assert_eq!(page["csrf_field"], true, "{page:#}");
    assert_eq!(page["fit"]["overflows"], false, "{page:#}");
    // The same session at a phone's width (the whole link, signed in): the same draft, and the
    // long link in the body wraps instead of widening the page.
    let phone = &seen["phone"];
    assert_eq!(phone["status"], 200, "{phone:#}");
    assert_eq!(phone["url"], link.url.as_str(), "{phone:#}");
    assert_eq!(phone["draft_shown"], true, "{phone:#}");
    assert_eq!(phone["fields"], *fields, "{phone:#}");
    assert_eq!(phone["approve"]["disabled"], false, "{phone:#}");
    assert_eq!(phone["fit"]["device_width"], 390, "{phone:#}");
    assert_eq!(phone["fit"]["overflows"], false, "{phone:#}");
    assert_eq!(phone["fit"]["past_column"], json!([]), "{phone:#}");

    // 3. Approve: recorded, and the page says what happens next.
    let outcome = decided(&seen, &link, 200);
    assert!(outcome.starts_with("Approved."), "{outcome}");
    // 4. The link can't decide twice.
    let again = &seen["again"];
    assert_eq!(again["status"], 409, "{again:#}");
    assert!(
        again["outcome"]
            .as_str()
            .unwrap_or_default()
            .contains("already approved"),
        "{again:#}"
    );
    assert_eq!(again["approve"], Value::Null, "{again:#}");
    let csp_reports: Vec<&Value> = seen["console"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c.as_str().unwrap().contains("Content Security Policy"))
        .collect();
    assert!(csp_reports.is_empty(), "{csp_reports:#?}");
    assert_eq!(approval_status(&app, &token, &id).await, "approved");
    assert!(
        sent_with(&mark).is_empty(),
        "nothing sent by the page itself"
    );

    // The client's next send_draft sends it: one message, Bcc in the envelope only.
    let sent = send_draft(&app, &token, json!({"draft_id": id})).await;
    assert!(!is_error(&sent), "{sent}");
    assert_eq!(structured(&sent)["status"], "sent", "{sent}");
    let outbox = sent_with(&mark);
    assert_eq!(outbox.len(), 1, "exactly one message in the outbox");
    let rcpts = outbox[0].envelope["rcptTo"].to_string();
    assert!(
        rcpts.contains("carol@example.org") && rcpts.contains("dave@example.org"),
        "{rcpts}"
    );
    assert_eq!(outbox[0].header("Bcc"), None);
    assert_eq!(approval_status(&app, &token, &id).await, "sent");

    assert_screenshots(&seen, &out, SHOTS);
}

/// Signed in, the link without its fragment, then with a wrong key: the page says the link is
/// incomplete or that its key doesn't open the email, shows nothing of it and keeps Approve
/// disabled; Don't send still works, and the client's next `send_draft` is told it was
/// declined.
#[tokio::test(flavor = "multi_thread")]
async fn chromium_without_the_links_key_or_with_a_wrong_one_the_page_cannot_approve() {
    let (_standin, app) = writer_app().await;
    let (token, _, _) = connected(&app, &["send"]).await;
    let mark = marker();
    let id = draft(&app, &token, &mark).await;
    let (_, link) = ask(&app, &token, &id).await;

    let seen = review(
        "no-key",
        SignIn::AtSettings,
        &app,
        &link,
        Some(&screenshots()),
    )
    .await;
    let page = signed_in(&seen, &app, &link);
    assert_unopened(page, "This link is incomplete");
    assert_eq!(page["stored_key"], "none", "{page:#}");
    let wrong = &seen["wrong_key"];
    assert_unopened(wrong, "This link's key doesn't open this email");
    assert_eq!(wrong["url"], link.url.as_str(), "{wrong:#}");

    let outcome = decided(&seen, &link, 200);
    assert!(outcome.starts_with("Declined"), "{outcome}");
    let r = send_draft(&app, &token, json!({"draft_id": id})).await;
    assert!(
        is_error(&r) && text(&r).starts_with("approval_declined:"),
        "{r}"
    );
    assert!(sent_with(&mark).is_empty());
    let (_, listed) = call_tool(&app, &token, "list_drafts", json!({})).await;
    assert!(listed.to_string().contains(&id), "the draft is intact");
    delete(&app, &token, &id).await;
}

/// A page on another origin frames the whole link while the person is signed in: Chromium
/// refuses to render the review page in the frame (frame-ancestors 'none' / X-Frame-Options),
/// while a harmless page of a third origin renders in the same framing page (the control).
#[tokio::test(flavor = "multi_thread")]
async fn chromium_does_not_render_the_review_page_in_a_frame() {
    let (_standin, app) = writer_app().await;
    let (token, _, _) = connected(&app, &["send"]).await;
    let mark = marker();
    let id = draft(&app, &token, &mark).await;
    let (_, link) = ask(&app, &token, &id).await;

    let seen = review(
        "frame",
        SignIn::AtSettings,
        &app,
        &link,
        Some(&screenshots()),
    )
    .await;
    // Top level, the same session opens the draft: the frame would have had something to show.
    let page = signed_in(&seen, &app, &link);
    assert_eq!(page["draft_shown"], true, "{page:#}");
    assert_eq!(page["approve"]["disabled"], false, "{page:#}");

    let (victim, control) = (&seen["victim"], &seen["control"]);
    assert_eq!(control["forms"], 1, "the control frame rendered: {seen:#}");
    assert_eq!(victim["frame"], true, "{seen:#}");
    assert_eq!(
        victim["forms"], 0,
        "the review page rendered in a frame: {victim:#}"
    );
    assert_eq!(victim["approve_buttons"], 0, "{victim:#}");
    assert!(
        !victim["url"]
            .as_str()
            .unwrap_or("")
            .starts_with(&app.base()),
        "the frame shows our page: {victim:#}"
    );
    let console = seen["frame_console"].to_string();
    assert!(
        console.contains("frame-ancestors 'none'") || console.contains("X-Frame-Options"),
        "Chromium said why it refused: {console}"
    );
    assert_eq!(approval_status(&app, &token, &id).await, "pending");
    assert!(sent_with(&mark).is_empty());
    delete(&app, &token, &id).await;
}

/// The person is signed in with another mailbox (alice) than the draft's (bob): the link
/// answers 403 "another mailbox" without the sealed copy, and even that session's own CSRF
/// token can't approve. Nothing is approved or sent.
#[tokio::test(flavor = "multi_thread")]
async fn chromium_another_mailbox_signed_in_is_refused_and_nothing_is_sent() {
    let (standin, app) = writer_app().await;
    let (token, _, _) = connected(&app, &["send"]).await;
    let mark = marker();
    let id = draft(&app, &token, &mark).await;
    let (_, link) = ask(&app, &token, &id).await;

    standin.sign_in_as(testbed().get("JMAP_USERNAME")).await;
    let seen = review(
        "other",
        SignIn::AtSettings,
        &app,
        &link,
        Some(&screenshots()),
    )
    .await;
    standin
        .sign_in_as(testbed().get("JMAP_WRITER_USERNAME"))
        .await;

    assert_eq!(
        seen["sign_in"]["account"],
        testbed().get("JMAP_USERNAME"),
        "signed in as alice"
    );
    let page = signed_in(&seen, &app, &link);
    assert_eq!(page["status"], 403, "{page:#}");
    // (The refusal page has no script: the link's key stays in the address bar.)
    assert!(
        page["url"].as_str().unwrap().starts_with(&link.url),
        "{page:#}"
    );
    assert!(
        page["outcome"]
            .as_str()
            .unwrap_or_default()
            .contains("another mailbox"),
        "{page:#}"
    );
    assert_eq!(page["sealed"], false, "no sealed copy for another mailbox");
    assert_eq!(page["approve"], Value::Null, "{page:#}");
    assert_headers(page);
    assert_eq!(seen["settings_csrf"], true);
    let forged = &seen["forged"];
    assert_eq!(
        chain_of(forged),
        [format!("POST {}", link.url)],
        "{forged:#}"
    );
    assert_eq!(forged["page"]["status"], 403, "{forged:#}");
    assert!(
        forged["page"]["outcome"]
            .as_str()
            .unwrap_or_default()
            .contains("another mailbox"),
        "{forged:#}"
    );

    assert_eq!(approval_status(&app, &token, &id).await, "pending");
    still_needs_approval(&app, &token, &id).await;
    assert!(sent_with(&mark).is_empty());
    delete(&app, &token, &id).await;
}

/// While the person is signed in, pages elsewhere auto-submit `decision=approve` to the link:
/// from another port of 127.0.0.1 (same site: the session cookie goes along, the CSRF token
/// is missing → 403), from localhost and from a data: URL (cross-site: SameSite=Lax keeps the
/// cookie → 401). The approval stays pending and nothing is sent.
#[tokio::test(flavor = "multi_thread")]
async fn chromium_cross_site_and_cross_origin_form_posts_do_not_approve() {
    let (_standin, app) = writer_app().await;
    let (token, _, _) = connected(&app, &["send"]).await;
    let mark = marker();
    let id = draft(&app, &token, &mark).await;
    let (_, link) = ask(&app, &token, &id).await;

    let seen = review("csrf", SignIn::AtSettings, &app, &link, None).await;
    let page = signed_in(&seen, &app, &link);
    assert_eq!(page["approve"]["disabled"], false, "signed in: {page:#}");

    let attacks = &seen["attacks"];
    let same_site = &attacks["same_site"];
    assert_eq!(same_site["sent_cookie"], true, "{same_site:#}");
    assert_eq!(same_site["status"], 403, "{same_site:#}");
    assert!(
        same_site["body_text"]
            .as_str()
            .unwrap()
            .contains("This form did not come from your review page."),
        "{same_site:#}"
    );
    for name in ["cross_site", "data_url"] {
        let attack = &attacks[name];
        assert_eq!(attack["sent_cookie"], false, "{name}: {attack:#}");
        assert_eq!(attack["status"], 401, "{name}: {attack:#}");
        assert!(
            attack["body_text"]
                .as_str()
                .unwrap()
                .contains("Your sign-in expired"),
            "{name}: {attack:#}"
        );
    }
    assert_eq!(attacks["data_url"]["origin_header"], "null");
    for (name, attack) in attacks.as_object().unwrap() {
        assert!(
            !attack["body_text"].as_str().unwrap().contains("Approved"),
            "{name}: {attack:#}"
        );
    }
    // The person's own page still offers the decision: nothing was decided.
    let after = &seen["after"];
    assert_eq!(after["status"], 200, "{after:#}");
    assert_eq!(after["approve"]["disabled"], false, "{after:#}");

    assert_eq!(approval_status(&app, &token, &id).await, "pending");
    still_needs_approval(&app, &token, &id).await;
    assert!(sent_with(&mark).is_empty());
    delete(&app, &token, &id).await;
}

/// An approval lives `--send-approval-ttl-secs` (3 here): the page opened in time, Approve
/// clicked after the expiry → 410; the link again → 410; the client's next `send_draft` is
/// told it expired. Nothing is sent.
#[tokio::test(flavor = "multi_thread")]
async fn chromium_expired_approval_is_refused_on_the_page_and_to_the_client() {
    let (_standin, app) = writer_app_with(&["--send-approval-ttl-secs", "3"]).await;
    let (token, _, _) = connected(&app, &["send"]).await;
    let mark = marker();
    let id = draft(&app, &token, &mark).await;

    // The browser signs in first, so the page opens well within the 3 s.
    let mut run = Script::new("review.mjs")
        .scenario("expire")
        .args([
            "--base",
            &app.base(),
            "--link",
            "-",
            "--sign-in",
            "settings",
        ])
        .args(["--chromium", CHROMIUM])
        .arg("--out")
        .arg(screenshots())
        .spawn();
    let ready = run.message(Duration::from_secs(60)).await;
    assert_eq!(ready["ready"], true, "{ready}");
    let (asked, link) = ask(&app, &token, &id).await;
    let expires = chrono::DateTime::parse_from_rfc3339(
        structured(&asked)["approval_expires_at"].as_str().unwrap(),
    )
    .unwrap()
    .timestamp();
    let not_before_ms = (expires + 1) * 1000 + 300;
    run.send(&format!("{} {not_before_ms}", link.full)).await;
    let seen = run.finish(Duration::from_secs(90)).await;
    assert_eq!(seen["dialogs"], json!([]), "{seen:#}");
    assert_eq!(seen["page_errors"], json!([]), "{seen:#}");
    assert_eq!(seen["approval_id"], link.id.as_str());

    let opened = signed_in(&seen, &app, &link);
    assert_eq!(opened["status"], 200, "{opened:#}");
    assert_eq!(opened["draft_shown"], true, "{opened:#}");
    assert_eq!(opened["approve"]["disabled"], false, "{opened:#}");
    let outcome = decided(&seen, &link, 410);
    assert!(outcome.contains("expired"), "{outcome}");
    let again = &seen["again"];
    assert_eq!(again["status"], 410, "{again:#}");
    assert_eq!(again["approve"], Value::Null, "{again:#}");

    let r = send_draft(&app, &token, json!({"draft_id": id})).await;
    assert!(
        is_error(&r) && text(&r).starts_with("approval_expired:"),
        "{r}"
    );
    assert!(sent_with(&mark).is_empty());
    delete(&app, &token, &id).await;
}

/// Approved in the browser, then the client asks for another send (a 30-second undo window):
/// `draft_changed`, nothing submitted, and the approval is used up (the link is gone, a new
/// `send_draft` asks again).
#[tokio::test(flavor = "multi_thread")]
async fn chromium_approval_does_not_cover_a_changed_send() {
    let (_standin, app) = writer_app().await;
    let (token, mut browser, _) = connected(&app, &["send"]).await;
    let mark = marker();
    let id = draft(&app, &token, &mark).await;
    let (_, link) = ask(&app, &token, &id).await;

    let seen = review("approve", SignIn::AtSettings, &app, &link, None).await;
    signed_in(&seen, &app, &link);
    let outcome = decided(&seen, &link, 200);
    assert!(outcome.starts_with("Approved."), "{outcome}");
    assert_eq!(approval_status(&app, &token, &id).await, "approved");

    let r = send_draft(&app, &token, json!({"draft_id": id, "undo_window_s": 30})).await;
    assert!(
        is_error(&r) && text(&r).starts_with("draft_changed:"),
        "{r}"
    );
    let status = send_status(&app, &token, json!({"draft_id": id})).await;
    assert_eq!(
        structured(&status)["submission"],
        Value::Null,
        "nothing submitted: {status}"
    );
    assert_eq!(
        browser.get(&link.url).await.status,
        404,
        "the used approval's link"
    );
    still_needs_approval(&app, &token, &id).await;
    let (_, listed) = call_tool(&app, &token, "list_drafts", json!({})).await;
    assert!(listed.to_string().contains(&id), "the draft is intact");
    assert!(sent_with(&mark).is_empty());
    delete(&app, &token, &id).await;
}
