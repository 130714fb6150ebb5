//! Sending later and taking it back, end to end over MCP against Cyrus: an undo window and a
//! scheduled send hold the message (`HOLDFOR`), `cancel_send` puts it back in Drafts, time
//! travel releases it; a revised draft replaces the old one; the settings page shows what was
//! approved. The writer's mailbox, one test at a time.

use serde_json::json;

use crate::support::{
    compose::{
        cancel_send, connected, decide_asked, draft, is_error, marker, release, released,
        send_approved, send_draft, send_status, sent_with, structured, submission_of, text,
        writer_app,
    },
    oauth::{Browser, call_tool},
};

/// Approves the draft's pending send on the review page (the browser is signed in).
async fn approve(browser: &mut Browser, asked: &serde_json::Value) {
    let done = decide_asked(browser, asked, "approve").await;
    assert!(done.body.contains("Approved"), "{}", done.body);
}

#[tokio::test]
async fn compose_undo_window_cancel_and_scheduled_release_over_mcp() {
    let (_standin, app) = writer_app().await;
    let (token, mut browser, _) = connected(&app, &["send"]).await;

    // A revised draft replaces the old one in one step.
    let mark = marker();
    let first = draft(&app, &token, &mark).await;
    let (_, revised) = call_tool(
        &app,
        &token,
        "draft_email",
        json!({"to": ["carol@example.org"], "subject": format!("Plan v2 {mark}"),
               "body_text": format!("Noon works. {mark}"), "replaces_draft_id": first}),
    )
    .await;
    assert_eq!(
        structured(&revised)["replaced_draft_id"],
        first.as_str(),
        "{revised}"
    );
    let id = structured(&revised)["draft_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, gone) = call_tool(&app, &token, "delete_draft", json!({"draft_id": first})).await;
    assert!(is_error(&gone), "the replaced draft is gone: {gone}");

    // An undo window: approved, held, cancelled → back in Drafts, nothing left.
    let args = json!({"draft_id": id, "undo_window_s": 600});
    let held = send_approved(&app, &token, &mut browser, args).await;
    assert_eq!(structured(&held)["status"], "scheduled", "{held}");
    let submission = submission_of(&held);
    let status = send_status(&app, &token, json!({"submission_id": submission})).await;
    assert_eq!(
        structured(&status)["submission"]["undo_status"],
        "pending",
        "{status}"
    );
    let cancelled = cancel_send(&app, &token, json!({"submission_id": submission})).await;
    assert_eq!(
        structured(&cancelled)["draft_id"],
        id.as_str(),
        "{cancelled}"
    );
    release(chrono::Utc::now().timestamp() + 3_600);
    assert!(sent_with(&mark).is_empty(), "a cancelled send never leaves");
    let (_, listed) = call_tool(&app, &token, "list_drafts", json!({})).await;
    assert!(listed.to_string().contains(&id), "back in Drafts: {listed}");
    let again = cancel_send(&app, &token, json!({"submission_id": submission})).await;
    assert!(is_error(&again), "{again}");

    // A scheduled send: held until its time, released once by time travel; too late to cancel.
    let at = (chrono::Utc::now() + chrono::Duration::minutes(5)).to_rfc3339();
    let args = json!({"draft_id": id, "send_at": at});
    let held = send_approved(&app, &token, &mut browser, args).await;
    assert_eq!(structured(&held)["status"], "scheduled", "{held}");
    let submission = submission_of(&held);
    assert!(sent_with(&mark).is_empty());
    let sent = released(chrono::Utc::now().timestamp() + 600, &mark).await;
    assert_eq!(sent.len(), 1, "released exactly once");
    let late = cancel_send(&app, &token, json!({"submission_id": submission})).await;
    assert!(is_error(&late), "{late}");
    // A submission this connection didn't make can't be cancelled (the person's own, say).
    let foreign = cancel_send(&app, &token, json!({"submission_id": "S99999"})).await;
    assert!(text(&foreign).starts_with("not_our_send:"), "{foreign}");

    // A send time past what the server holds is refused with its code.
    let far = (chrono::Utc::now() + chrono::Duration::days(1_000)).to_rfc3339();
    let other = draft(&app, &token, &marker()).await;
    let args = json!({"draft_id": other, "send_at": far});
    let asked = send_draft(&app, &token, args.clone()).await;
    approve(&mut browser, &asked).await;
    let r = send_draft(&app, &token, args).await;
    assert!(text(&r).starts_with("delay_exceeds_max:"), "{r}");

    // The person's settings page lists the decisions (no content).
    let settings = browser.settings(&app).await;
    assert!(
        settings
            .body
            .contains("you approved sending a draft on the review page"),
        "{}",
        settings.body
    );
    assert!(
        !settings.body.contains(&mark),
        "no mail content in the activity log"
    );
}
