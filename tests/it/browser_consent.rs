//! The consent page in a real browser: headless Chromium (Debian's `/usr/bin/chromium`) driven
//! by playwright-core (`tests/browser/consent.mjs`, set up by `tests/browser/setup.sh`), against
//! the server in-process and the stand-in upstream. The client registers itself as
//! `<script>alert(1)</script> Evil` with a loopback redirect URI the script listens on.
//! The script reports what the browser saw; the checks are here.

use std::time::Duration;

use serde_json::Value;

use crate::support::{
    chromium::{CHROMIUM, Script},
    oauth::{Standin, spawn_oauth_app},
    tempdir,
};

const EVIL_NAME: &str = "<script>alert(1)</script> Evil";

/// Runs `consent.mjs <scenario>` against a fresh app; returns its observations.
async fn observe(scenario: &str) -> Value {
    let standin = Standin::start();
    let app = spawn_oauth_app(&standin, &[]).await;
    let shots = tempdir::Dir::new("browser-consent");
    let seen = Script::new("consent.mjs")
        .scenario(scenario)
        .args(["--issuer", &app.base(), "--chromium", CHROMIUM])
        .arg("--out")
        .arg(&shots.0)
        .observe(Duration::from_secs(120))
        .await;
    assert_eq!(seen["issuer"], app.base());
    // The stand-in stays up until here: the browser went through it.
    drop(standin);
    seen
}

/// What a person sees before deciding: the name a client gave itself, as text (no markup, no
/// script ran), where they will be sent, the loopback warning, and one form with two buttons.
fn assert_consent_page(seen: &Value) {
    let page = &seen["page"];
    assert_eq!(page["status"], 200, "{page:#}");
    assert_eq!(seen["registered_name"], EVIL_NAME);
    assert_eq!(page["name_shown_as_text"], true, "{page:#}");
    assert!(
        page["h1"].as_str().unwrap().contains(EVIL_NAME),
        "the name, escaped, in the heading: {page:#}"
    );
    assert_eq!(page["script_elements"], 0, "no script element: {page:#}");
    assert_eq!(seen["dialogs"], serde_json::json!([]), "no dialog fired");
    assert_eq!(seen["page_errors"], serde_json::json!([]), "{seen:#}");
    assert_eq!(page["redirect_host"], "127.0.0.1", "{page:#}");
    assert_eq!(page["loopback_warning"], true, "{page:#}");
    assert_eq!(page["forms"], 1, "{page:#}");
    assert_eq!(page["buttons"], serde_json::json!(["approve", "deny"]));
    assert_eq!(page["x_frame_options"], "DENY", "{page:#}");
    let csp = page["content_security_policy"].as_str().unwrap_or("");
    assert!(csp.contains("frame-ancestors 'none'"), "CSP: {csp}");
}

/// Where the decision took the browser; fails with the browser's own words when the page's
/// Content-Security-Policy stopped the form's redirect chain.
fn landed(seen: &Value) -> &Value {
    let decision = &seen["decision"];
    assert_eq!(
        decision["ended"], "arrived",
        "the browser never reached the client's redirect URI {}.\n\
         Chromium's console: {}\n\
         (Chromium applies the consent page's CSP form-action to every redirect that follows the \
         form's POST: 'self' alone refuses the 303 to the upstream's authorize URL on Approve and \
         the 303 to the client's redirect URI on Deny; form-action must also allow those origins.)\n\
         {decision:#}",
        seen["redirect_uri"], decision["csp_console"]
    );
    let arrivals = decision["arrivals"].as_array().unwrap();
    assert_eq!(arrivals.len(), 1, "{decision:#}");
    let final_url = decision["final_url"].as_str().unwrap();
    assert!(
        final_url.starts_with(&format!("{}?", seen["redirect_uri"].as_str().unwrap())),
        "the browser ended on {final_url}"
    );
    &arrivals[0]
}

/// Approve: Chromium goes through the stand-in upstream and our callback to the client's
/// redirect URI with `code`, `state` and `iss`; the code is good at /token.
#[tokio::test(flavor = "multi_thread")]
async fn chromium_shows_the_consent_page_and_approve_ends_at_the_client_with_a_code() {
    let seen = observe("approve").await;
    assert_consent_page(&seen);
    let back = landed(&seen);
    assert!(
        back["code"].as_str().is_some_and(|c| !c.is_empty()),
        "{back}"
    );
    assert_eq!(back["state"], seen["state"], "{back}");
    assert_eq!(back["iss"], seen["issuer"], "{back}");
    assert_eq!(back["error"], Value::Null, "{back}");
    assert_eq!(seen["token"]["status"], 200, "{:#}", seen["token"]);
    assert_eq!(seen["token"]["has_access_token"], true);
}

/// Deny: Chromium lands on the client's redirect URI with `error=access_denied`, `state` and
/// `iss`, and no code.
#[tokio::test(flavor = "multi_thread")]
async fn chromium_deny_ends_at_the_client_with_access_denied() {
    let seen = observe("deny").await;
    assert_consent_page(&seen);
    let back = landed(&seen);
    assert_eq!(back["error"], "access_denied", "{back}");
    assert_eq!(back["state"], seen["state"], "{back}");
    assert_eq!(back["iss"], seen["issuer"], "{back}");
    assert_eq!(back["code"], Value::Null, "{back}");
}

/// A page on another loopback origin frames the consent page: Chromium refuses to render it
/// (frame-ancestors 'none' / X-Frame-Options: DENY), while a harmless cross-origin page in
/// the same framing page renders (the control: the check can see a framed form).
#[tokio::test(flavor = "multi_thread")]
async fn chromium_does_not_render_the_consent_page_in_a_frame() {
    let seen = observe("frame").await;
    let victim = &seen["victim"];
    let control = &seen["control"];
    assert_eq!(control["forms"], 1, "the control frame rendered: {seen:#}");
    assert_eq!(victim["frame"], true, "{seen:#}");
    assert_eq!(
        victim["forms"], 0,
        "the consent form rendered in a frame: {seen:#}"
    );
    assert!(
        !victim["url"]
            .as_str()
            .unwrap_or("")
            .starts_with(seen["issuer"].as_str().unwrap()),
        "the frame shows our page: {victim}"
    );
    let console = seen["console"].to_string();
    assert!(
        console.contains("frame-ancestors 'none'") || console.contains("X-Frame-Options"),
        "Chromium said why it refused: {console}"
    );
    assert_eq!(seen["dialogs"], serde_json::json!([]));
}
