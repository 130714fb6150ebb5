//! The MCP endpoint as a protocol: authentication, both revisions on one URL, JSON-RPC errors,
//! and failures upstream that must become clear tool errors (never a 500 or a hang).

use serde_json::{Value, json};

use crate::support::{RawMcp, Reply, TOKEN, fake_jmap, header, spawn_app, spawn_app_with, text};

const MODERN: &str = "2026-07-28";

fn meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientInfo": {"name": "it", "version": "0"},
        "io.modelcontextprotocol/clientCapabilities": {}
    })
}

/// A stateless 2026-07-28 request (no session, metadata in every request).
async fn modern(url: &str, id: u64, method: &str, mut params: Value) -> Reply {
    params["_meta"] = meta();
    let mut req = reqwest::Client::new()
        .post(url)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .header("Authorization", format!("Bearer {TOKEN}"))
        .header("MCP-Protocol-Version", MODERN)
        .header("Mcp-Method", method);
    if let Some(name) = params.get("name").and_then(Value::as_str) {
        req = req.header("Mcp-Name", name);
    }
    let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    Reply::read(req.body(body.to_string()).send().await.unwrap()).await
}

#[tokio::test]
async fn mcp_without_a_valid_token_is_401_with_a_bearer_challenge() {
    let app = spawn_app().await;
    let http = reqwest::Client::new();
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}).to_string();
    let none = http
        .post(app.mcp_url())
        .body(init.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 401);
    assert!(header(&none, "www-authenticate").starts_with("Bearer "));
    let wrong = http
        .post(app.mcp_url())
        .bearer_auth("not-the-token")
        .body(init.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(header(&wrong, "www-authenticate").contains("error=\"invalid_token\""));
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token");
    let basic = http
        .post(app.mcp_url())
        .basic_auth("a", Some("b"))
        .body(init)
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401);
}

#[tokio::test]
async fn legacy_clients_get_a_session_and_their_version_echoed() {
    let app = spawn_app().await;
    for (asked, answered) in [
        ("2025-11-25", "2025-11-25"),
        ("2025-06-18", "2025-06-18"),
        ("2025-03-26", "2025-03-26"),
    ] {
        let mut mcp = RawMcp::new(app.mcp_url());
        let reply = mcp
            .post(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": asked, "capabilities": {}, "clientInfo": {"name": "it", "version": "0"}}}))
            .await;
        assert_eq!(reply.status, 200);
        assert!(reply.session.is_some());
        let msg = reply.json();
        assert_eq!(msg["result"]["protocolVersion"], answered);
        assert_eq!(msg["result"]["serverInfo"]["name"], "mailconnect");
        let instructions = msg["result"]["instructions"].as_str().unwrap();
        assert!(
            instructions
                .chars()
                .take(512)
                .collect::<String>()
                .contains("untrusted")
        );
    }
}

#[tokio::test]
async fn modern_clients_work_statelessly() {
    let app = spawn_app().await;
    let discover = modern(&app.mcp_url(), 1, "server/discover", json!({})).await;
    assert_eq!(discover.status, 200, "{}", discover.body);
    let msg = discover.json();
    let versions = msg["result"]["supportedVersions"].as_array().unwrap();
    assert!(versions.contains(&json!(MODERN)) && versions.contains(&json!("2025-11-25")));
    assert!(discover.session.is_none(), "2026-07-28 has no sessions");

    let listed = modern(&app.mcp_url(), 2, "tools/list", json!({}))
        .await
        .json();
    assert_eq!(listed["result"]["tools"].as_array().unwrap().len(), 6);
    let called = modern(
        &app.mcp_url(),
        3,
        "tools/call",
        json!({"name": "search_email", "arguments": {"text": "budget"}}),
    )
    .await
    .json();
    assert_eq!(
        called["result"]["structuredContent"]["total"], 2,
        "{called}"
    );
    assert_eq!(called["result"]["resultType"], "complete");

    // Claude Code and Copilot CLI send initialize after a successful discover: still fine.
    let mut legacy = RawMcp::legacy(app.mcp_url()).await;
    assert_eq!(
        legacy.call("get_identity", json!({})).await["isError"],
        false
    );
}

#[tokio::test]
async fn unroutable_requests_are_json_rpc_errors() {
    let app = spawn_app().await;
    let mut mcp = RawMcp::legacy(app.mcp_url()).await;
    let unknown_tool = mcp
        .request(
            "tools/call",
            json!({"name": "delete_everything", "arguments": {}}),
        )
        .await;
    assert_eq!(unknown_tool["error"]["code"], -32602, "{unknown_tool}");
    assert!(
        unknown_tool["error"]["message"]
            .as_str()
            .unwrap()
            .contains("search_email")
    );
    let unknown_method = mcp.request("mail/explode", json!({})).await;
    assert_eq!(unknown_method["error"]["code"], -32601, "{unknown_method}");
}

#[tokio::test]
async fn malformed_bodies_never_reach_a_500() {
    let app = spawn_app().await;
    let mcp = RawMcp::legacy(app.mcp_url()).await;
    for body in ["{not json", "[]", "{\"jsonrpc\":\"2.0\"}", ""] {
        let resp = mcp
            .http
            .post(app.mcp_url())
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream")
            .header("Authorization", format!("Bearer {TOKEN}"))
            .header("Mcp-Session-Id", mcp.session.clone().unwrap())
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(
            resp.status().is_client_error() || resp.status().is_success(),
            "{body:?} → {}",
            resp.status()
        );
    }
}

#[tokio::test]
async fn get_without_a_session_is_405_not_a_loop_inducing_400() {
    let app = spawn_app().await;
    let resp = reqwest::Client::new()
        .get(app.mcp_url())
        .header("Accept", "text/event-stream")
        .bearer_auth(TOKEN)
        .header("MCP-Protocol-Version", MODERN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
}

#[tokio::test]
async fn a_foreign_host_header_is_refused() {
    let app = spawn_app().await;
    let resp = reqwest::Client::new()
        .post(app.mcp_url())
        .header("Host", "evil.example")
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .bearer_auth(TOKEN)
        .body(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "x", "version": "0"}}}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403, "DNS-rebinding protection");
}

#[tokio::test]
async fn an_unreachable_mail_server_is_a_tool_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = spawn_app_with(
        &format!("http://127.0.0.1:{port}/jmap/"),
        &["--upstream-timeout-secs", "2"],
    )
    .await;
    let mut mcp = RawMcp::legacy(app.mcp_url()).await;
    let result = mcp.call("list_mailboxes", json!({})).await;
    assert_eq!(result["isError"], true);
    assert_eq!(
        text(&result),
        "the mail server is unavailable (cannot connect). Try again in a moment."
    );
}

#[tokio::test]
async fn upstream_failures_become_tool_errors_without_secrets() {
    let (addr, _) = fake_jmap::start().await;
    for (mode, expected) in [
        (
            "error500",
            "the mail server is unavailable (HTTP 500). Try again in a moment.",
        ),
        ("garbage", "the mail server sent an invalid response"),
        (
            "ratelimit",
            "the mail server is rate limiting requests; try again in 7 s. Try again in a moment.",
        ),
        (
            "unauthorized",
            "the mail server refused our credentials. The mailbox connection has expired or was revoked",
        ),
    ] {
        let app = spawn_app_with(&format!("http://{addr}/{mode}/session"), &[]).await;
        let mut mcp = RawMcp::legacy(app.mcp_url()).await;
        let result = mcp.call("list_mailboxes", json!({})).await;
        assert_eq!(result["isError"], true, "{mode}");
        assert!(
            text(&result).starts_with(expected),
            "{mode}: {}",
            text(&result)
        );
        assert!(!text(&result).contains("alice-secret") && !text(&result).contains(TOKEN));
    }
}

#[tokio::test]
async fn a_slow_mail_server_hits_the_tool_deadline() {
    let (addr, _) = fake_jmap::start().await;
    let app = spawn_app_with(
        &format!("http://{addr}/slow/session"),
        &["--tool-timeout-secs", "1", "--upstream-timeout-secs", "30"],
    )
    .await;
    let mut mcp = RawMcp::legacy(app.mcp_url()).await;
    let started = std::time::Instant::now();
    let result = mcp.call("list_mailboxes", json!({})).await;
    assert_eq!(result["isError"], true);
    assert!(
        text(&result).contains("longer than 1 s"),
        "{}",
        text(&result)
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
}

#[tokio::test]
async fn health_is_public_and_holds_no_data() {
    let app = spawn_app().await;
    let body: Value = reqwest::get(format!("http://{}/healthz", app.addr))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "ok");
}
