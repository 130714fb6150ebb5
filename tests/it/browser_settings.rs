//! The settings page in a real browser: headless Chromium (Debian's `/usr/bin/chromium`) driven
//! by playwright-core (`tests/browser/settings.mjs`, set up by `tests/browser/setup.sh`), against
//! the writer app in-process (`control.rs`) and the stand-in upstream. Two assistants A and B
//! connect over OAuth; in the browser the person signs in, turns "Organize mail" on for A and
//! revokes B; the effects are then checked where they matter, over MCP. Screenshots of each
//! step and of a consent page (phone and desktop width) are kept in `target/screenshots/`.
//! Changes the writer's mailbox (and restores it): in the `writer-mailbox` nextest group.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::support::{
    chromium::{CHROMIUM, Script, assert_screenshots, chain_of, screenshots},
    compose::writer_app,
    mail::{EMAIL, email_state},
    oauth::{Client, call_tool, grant_of, pkce, tool_names, tool_status},
};

/// Names with every character HTML escapes, and a long one that must wrap on a phone.
const NAME_A: &str = "Ada's \"Mail\" Helper <b>&</b>";
const NAME_B: &str = "Assistant B, a rather long client name that has to wrap on a phone screen";
const REDIRECT_B: &str =
    "https://assistant-b.a-vendor-with-a-long-domain-name.example/oauth/callback";
const NAME_CONSENT: &str =
    "<img src=x onerror=alert(1)> Evil & Co UnbrokenAssistantNameWithoutAnySpacesAtAllXYZ";

/// The step screenshots the script takes, and the width each is taken at.
const SHOTS: &[(&str, u32)] = &[
    ("settings-1-signed-out", 1280),
    ("settings-2-signed-in", 1280),
    ("settings-2-signed-in-phone", 390),
    ("settings-3-organize-enabled", 1280),
    ("settings-4-revoked", 1280),
    ("consent-phone", 390),
    ("consent-desktop", 1280),
];

/// Runs `settings.mjs`; returns its observations.
async fn observe(base: &str, grant_a: &str, grant_b: &str, consent_url: &str, out: &Path) -> Value {
    let seen = Script::new("settings.mjs")
        .args(["--base", base, "--grant-a", grant_a, "--grant-b", grant_b])
        .args(["--consent", consent_url, "--chromium", CHROMIUM])
        .arg("--out")
        .arg(out)
        .observe(Duration::from_secs(100))
        .await;
    assert_eq!(seen["base"], base);
    seen
}

/// The connection section for `grant` in one of the script's page views, if listed.
fn section<'a>(view: &'a Value, grant: &str) -> Option<&'a Value> {
    view["sections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["grant"] == grant)
}

/// The person signs in to settings in Chromium, turns "Organize mail" on for A and revokes B,
/// each by clicking; then A is offered and can use the write tools, B's token is dead, the
/// mailbox is as before, and every step left a screenshot.
#[tokio::test(flavor = "multi_thread")]
async fn chromium_enables_organize_for_one_assistant_and_revokes_another() {
    let started = Instant::now();
    let (_standin, app) = writer_app().await;
    let a_client = Client::register_with(
        &app,
        json!({"client_name": NAME_A, "redirect_uris": ["http://127.0.0.1:41999/cb"]}),
    )
    .await;
    let b_client = Client::register_with(
        &app,
        json!({"client_name": NAME_B, "redirect_uris": [REDIRECT_B]}),
    )
    .await;
    let (a, b) = (a_client.connect().await, b_client.connect().await);
    let (grant_a, grant_b) = (grant_of(&a), grant_of(&b));
    // A used the mailbox once (the activity list shows it), read-only.
    assert_eq!(tool_status(&app, &a.access, "get_identity").await, 200);
    assert!(
        !tool_names(&app, &a.access)
            .await
            .iter()
            .any(|t| t == "move_email")
    );
    assert_eq!(email_state(EMAIL).await["keywords"], json!({"$seen": true}));
    // A third assistant's consent page, only to be looked at.
    let consent_client = Client::register_with(
        &app,
        json!({"client_name": NAME_CONSENT, "redirect_uris": ["http://127.0.0.1:41997/cb"]}),
    )
    .await;
    let consent_url = consent_client.authorize_url(&pkce().1, &[("scope", "mail")]);
    let connected = started.elapsed();

    let out = screenshots();
    for (name, _) in SHOTS {
        let _ = std::fs::remove_file(out.join(format!("{name}.png")));
    }
    let seen = observe(&app.base(), &grant_a, &grant_b, &consent_url, &out).await;
    let browsed = started.elapsed();

    // Nothing on any page ran or tried to run a script.
    assert_eq!(seen["dialogs"], json!([]), "{seen:#}");
    assert_eq!(seen["page_errors"], json!([]), "{seen:#}");

    // 1. Signed out: the sign-in form, framing refused.
    let signed_out = &seen["signed_out"];
    assert_eq!(signed_out["status"], 200, "{signed_out:#}");
    assert_eq!(signed_out["sign_in_button"], 1, "{signed_out:#}");
    assert_eq!(signed_out["signed_in"], false, "{signed_out:#}");
    assert_eq!(signed_out["sections"], json!([]), "{signed_out:#}");
    assert_eq!(signed_out["x_frame_options"], "DENY");
    assert!(
        signed_out["content_security_policy"]
            .as_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );

    // 2. Sign in: through the stand-in upstream and our callback, back to /settings as bob,
    // with both connections, their names as text, read-only.
    let sign_in = &seen["sign_in"];
    let settings = format!("{}/settings", app.base());
    assert_eq!(sign_in["final_url"], settings.as_str(), "{sign_in:#}");
    assert_eq!(sign_in["status"], 200, "{sign_in:#}");
    let chain = chain_of(sign_in);
    assert_eq!(chain.len(), 4, "{sign_in:#}");
    assert_eq!(chain[0], format!("POST {}/settings/sign-in", app.base()));
    assert!(chain[1].starts_with("GET http://127.0.0.1:") && !chain[1].contains(&app.base()));
    assert_eq!(chain[2], format!("GET {}/auth/callback", app.base()));
    assert_eq!(chain[3], format!("GET {settings}"));
    let signed_in = &seen["signed_in"];
    assert_eq!(signed_in["account"], "bob@example.test", "{signed_in:#}");
    assert_eq!(signed_in["script_elements"], 0);
    assert_eq!(
        signed_in["sections"].as_array().unwrap().len(),
        2,
        "{signed_in:#}"
    );
    for (grant, name, returns_to) in [
        (&grant_a, NAME_A, "127.0.0.1"),
        (
            &grant_b,
            NAME_B,
            "assistant-b.a-vendor-with-a-long-domain-name.example",
        ),
    ] {
        let s = section(signed_in, grant).unwrap_or_else(|| panic!("{grant}: {signed_in:#}"));
        assert_eq!(s["name"], name, "the name as text: {s:#}");
        assert_eq!(s["returns_to"], returns_to, "{s:#}");
        assert_eq!(s["organize_checked"], false, "read-only by default: {s:#}");
        assert_eq!(s["csrf_fields"], 2, "{s:#}");
        assert_eq!(
            s["buttons"],
            json!(["Save", "Revoke (disconnect now)"]),
            "{s:#}"
        );
    }
    let phone = &seen["signed_in_phone"];
    assert_eq!(phone["sections"].as_array().unwrap().len(), 2, "{phone:#}");

    // 3. Save with Organize ticked for A: back on /settings, A checked, B not; A's activity
    // records the change.
    let enable = &seen["enable"];
    assert_eq!(
        chain_of(enable),
        [
            format!(
                "POST {}/settings/connections/{grant_a}/capabilities",
                app.base()
            ),
            format!("GET {settings}")
        ],
        "{enable:#}"
    );
    let after_enable = &seen["after_enable"];
    let a_section = section(after_enable, &grant_a).unwrap();
    assert_eq!(a_section["organize_checked"], true, "{after_enable:#}");
    assert_eq!(
        section(after_enable, &grant_b).unwrap()["organize_checked"],
        false
    );
    assert!(
        a_section["activity"].as_array().unwrap().iter().any(|e| e
            .as_str()
            .unwrap()
            .ends_with("you set its capabilities to: read, organize")),
        "{a_section:#}"
    );

    // 4. Revoke B: B's section is gone, A's is unchanged.
    let revoke = &seen["revoke"];
    assert_eq!(
        chain_of(revoke),
        [
            format!("POST {}/settings/connections/{grant_b}/revoke", app.base()),
            format!("GET {settings}")
        ],
        "{revoke:#}"
    );
    let after_revoke = &seen["after_revoke"];
    assert!(
        section(after_revoke, &grant_b).is_none(),
        "{after_revoke:#}"
    );
    assert_eq!(after_revoke["sections"].as_array().unwrap().len(), 1);
    assert_eq!(
        section(after_revoke, &grant_a).unwrap()["organize_checked"],
        true
    );

    // The settings pages fit a phone's width and their column, long names and hosts included.
    for step in [
        "signed_out",
        "signed_in",
        "signed_in_phone",
        "after_enable",
        "after_revoke",
    ] {
        let fit = &seen[step]["fit"];
        assert_eq!(fit["overflows"], false, "{step}: {fit:#}");
        assert_eq!(fit["past_column"], json!([]), "{step}: {fit:#}");
    }

    // 5. The consent page rendered at both widths, the name as text; a name that is one long
    // word wraps instead of widening a phone's page.
    for (width, view) in [
        (390, &seen["consent"]["phone"]),
        (1280, &seen["consent"]["desktop"]),
    ] {
        assert_eq!(view["status"], 200, "{view:#}");
        let fit = &view["fit"];
        assert_eq!(fit["device_width"], width, "{view:#}");
        assert_eq!(fit["overflows"], false, "consent at {width} px: {view:#}");
        assert_eq!(
            fit["past_column"],
            json!([]),
            "consent at {width} px: {view:#}"
        );
        assert!(
            view["h1"].as_str().unwrap().contains(NAME_CONSENT),
            "{view:#}"
        );
        assert_eq!(view["buttons"], json!(["approve", "deny"]), "{view:#}");
        assert_eq!(view["script_elements"], 0, "{view:#}");
    }

    // The effects, over MCP. A is offered the write tools and can use them: mark the email
    // unread, then read again (restored before anything is judged).
    let listed = tool_names(&app, &a.access).await;
    for tool in ["move_email", "mark_email_read", "flag_email"] {
        assert!(listed.iter().any(|t| t == tool), "{tool}: {listed:?}");
    }
    let (unread_status, unread) = call_tool(
        &app,
        &a.access,
        "mark_email_read",
        json!({"email_ids": [EMAIL], "read": false}),
    )
    .await;
    let while_unread = email_state(EMAIL).await["keywords"].clone();
    let (read_status, read) = call_tool(
        &app,
        &a.access,
        "mark_email_read",
        json!({"email_ids": [EMAIL], "read": true}),
    )
    .await;
    let restored = email_state(EMAIL).await["keywords"].clone();
    assert_eq!(restored, json!({"$seen": true}), "the email is read again");
    assert_eq!(unread_status, 200, "{unread}");
    assert_eq!(
        unread["result"]["structuredContent"]["report"]["changed"], 1,
        "{unread}"
    );
    assert_eq!(while_unread, json!({}), "unread over JMAP");
    assert_eq!(read_status, 200, "{read}");
    assert_eq!(
        read["result"]["structuredContent"]["report"]["changed"], 1,
        "{read}"
    );

    // B is disconnected: its access token is refused, its refresh token too.
    assert_eq!(tool_status(&app, &b.access, "get_identity").await, 401);
    assert_eq!(b_client.refresh(&b.refresh).await.status(), 400);

    // Every step left a screenshot.
    assert_screenshots(&seen, &out, SHOTS);
    eprintln!(
        "browser_settings: connect {connected:?}, browser {:?}, MCP checks {:?}; screenshots in {}",
        browsed - connected,
        started.elapsed() - browsed,
        out.display()
    );
}
