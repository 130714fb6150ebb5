//! Real MCP clients do the whole OAuth connect flow headless, against the server in-process,
//! the stand-in upstream and the Cyrus testbed: the TypeScript SDK (`tests/e2e/ts-oauth-client.mjs`:
//! an `OAuthClientProvider` with its state in a file, DCR or a Client ID Metadata Document,
//! PKCE) and the MCP Inspector CLI (interactive OAuth with `$BROWSER`). The consent screen is
//! clicked through by `tests/e2e/consent-bot.mjs`, which follows the redirects through the
//! stand-in upstream back to the client's loopback redirect URI.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Output, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use tokio::process::Command;

use crate::support::{
    node::{inspector, inspector_env, require, root, which},
    oauth::{Standin, spawn_oauth_app},
    tempdir,
};

const USERNAME: &str = "alice@example.test";
const TOOLS: [&str; 6] = [
    "get_attachment",
    "get_email",
    "get_identity",
    "get_thread",
    "list_mailboxes",
    "search_email",
];

/// A loopback port nobody listens on (for a client's callback listener).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `cmd` to its end, killed after `limit` (then the panic says `what` and `context()`).
/// The server runs on the runtime meanwhile.
async fn output(
    mut cmd: Command,
    limit: Duration,
    what: &str,
    context: impl Fn() -> String,
) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    tokio::time::timeout(limit, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {limit:?}\n{}", context()))
        .unwrap_or_else(|e| panic!("{what} did not start: {e}"))
}

fn texts(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// ---------------------------------------------------------------- the TypeScript SDK

/// `tests/e2e/ts-oauth-client.mjs` with its state file in a temp dir.
struct TsClient {
    node: PathBuf,
    script: PathBuf,
    dir: tempdir::Dir,
}

impl TsClient {
    fn new() -> Self {
        let sdk = root().join("tests/e2e/node_modules/@modelcontextprotocol/sdk/package.json");
        require(&[&sdk], "tests/e2e/setup.sh");
        Self {
            node: which("node"),
            script: root().join("tests/e2e/ts-oauth-client.mjs"),
            dir: tempdir::Dir::new("ts-oauth"),
        }
    }

    fn state(&self) -> PathBuf {
        self.dir.0.join("state.json")
    }

    /// Runs a phase; asserts exit 0 and `ok: true`; returns the result line.
    async fn run(&self, phase: &str, mcp_url: &str, extra: &[&str]) -> Value {
        let mut cmd = Command::new(&self.node);
        cmd.arg(&self.script)
            .arg(phase)
            .args(["--url", mcp_url])
            .arg("--state")
            .arg(self.state())
            .args(["--client-name", "e2e-ts"])
            .args(extra)
            .env_remove("NODE_OPTIONS");
        let started = Instant::now();
        let out = output(
            cmd,
            Duration::from_secs(90),
            "ts-oauth-client.mjs",
            String::new,
        )
        .await;
        let (stdout, stderr) = texts(&out);
        let result: Value = stdout
            .lines()
            .last()
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or_else(|| {
                panic!(
                    "ts-oauth-client {phase}: no JSON result line (exit {}):\n{stdout}\n{stderr}",
                    out.status
                )
            });
        assert!(
            out.status.success() && result["ok"] == true,
            "ts-oauth-client {phase} failed (exit {}): {}\n{result:#}\n--- stderr:\n{stderr}",
            out.status,
            result["error"]
        );
        eprintln!("ts-oauth-client {phase}: {:?}\n{result}", started.elapsed());
        result
    }
}

fn tools_of(result: &Value) -> Vec<&str> {
    result["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {result}"))
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect()
}

/// What every successful phase shows: the six tools, alice's identity, her mailboxes.
fn assert_used_the_tools(result: &Value) {
    assert_eq!(tools_of(result), TOOLS, "{result}");
    assert_eq!(result["username"], USERNAME, "{result}");
    assert!(result["mailboxes"].as_u64().unwrap() > 0, "{result}");
    assert_eq!(result["server"]["name"], "mailconnect", "{result}");
}

/// The full connect as the SDK does it: 401 → PRM → AS metadata → DCR → authorize (consent,
/// upstream, callback) → code exchange → MCP; checked from both ends. (With a 2 s access token
/// a slow machine may see the SDK refresh within the connect phase: that is allowed here.)
fn assert_connected_by_dcr(result: &Value, issuer: &str) {
    assert_used_the_tools(result);
    assert_eq!(result["registered"], true, "{result}");
    assert_eq!(result["authorized"], true, "{result}");
    assert!(
        result["client_id"].as_str().unwrap().starts_with("mc_"),
        "{result}"
    );
    let auth = &result["authorization"];
    assert_eq!(auth["iss"], issuer, "{result}");
    assert_eq!(auth["code_challenge_method"], "S256", "{result}");
    assert_eq!(
        auth["scope"], "mail",
        "the WWW-Authenticate scope: {result}"
    );
    assert_eq!(auth["resource"], format!("{issuer}/mcp"), "{result}");
    let requests = &result["requests"];
    for key in [
        "GET /.well-known/oauth-protected-resource/mcp 200",
        "GET /.well-known/oauth-authorization-server 200",
        "POST /register 201",
        "POST /token 200 authorization_code",
    ] {
        assert_eq!(requests[key], 1, "{key}: {result}");
    }
    assert!(
        requests["POST /mcp 401"].as_u64().unwrap_or(0) >= 1,
        "it started from a 401: {result}"
    );
}

/// The TypeScript SDK connects through DCR, consent and the upstream, and calls tools.
#[tokio::test(flavor = "multi_thread")]
async fn typescript_sdk_connects_with_oauth_and_calls_tools() {
    let standin = Standin::start();
    let app = spawn_oauth_app(&standin, &[]).await;
    let ts = TsClient::new();
    let result = ts.run("connect", &app.mcp_url(), &[]).await;
    assert_connected_by_dcr(&result, &app.base());
    assert_eq!(result["requests"]["POST /mcp 401"], 1, "{result}");
    assert_eq!(result["token_requests"]["refresh_token"], 0, "{result}");
    // The upstream saw exactly one authorization, with our PKCE.
    let stats = standin.stats().await;
    assert_eq!(
        stats["authorize_requests"].as_array().unwrap().len(),
        1,
        "{stats}"
    );
    assert_eq!(
        stats["authorize_requests"][0]["code_challenge_method"],
        "S256"
    );
}

/// Our access token expires (2 s); the SDK meets the 401, refreshes with the rotating refresh
/// token by itself and carries on, with no new authorization.
#[tokio::test(flavor = "multi_thread")]
async fn typescript_sdk_refreshes_an_expired_access_token_by_itself() {
    let standin = Standin::start();
    let app = spawn_oauth_app(&standin, &["--access-token-ttl-secs", "2"]).await;
    let ts = TsClient::new();
    let connected = ts.run("connect", &app.mcp_url(), &[]).await;
    assert_connected_by_dcr(&connected, &app.base());
    let first_refresh = saved_refresh_token(&ts.state());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let result = ts.run("call", &app.mcp_url(), &[]).await;
    assert_used_the_tools(&result);
    assert_eq!(
        result["authorized"], false,
        "no new authorization: {result}"
    );
    assert_eq!(result["refreshed"], true, "{result}");
    assert_eq!(result["client_id"], connected["client_id"], "{result}");
    assert!(
        result["requests"]["POST /mcp 401"].as_u64().unwrap_or(0) >= 1,
        "the expired token was refused first: {result}"
    );
    // One refresh (two only if a slow machine let the new 2 s token expire again).
    let refreshes = result["requests"]["POST /token 200 refresh_token"]
        .as_u64()
        .unwrap_or(0);
    assert!((1..=2).contains(&refreshes), "{result}");
    assert_eq!(
        result["token_requests"]["refresh_token"], refreshes,
        "{result}"
    );
    assert_eq!(
        result["token_requests"]["authorization_code"], 0,
        "{result}"
    );
    // Rotation: the SDK saved the new refresh token.
    assert_ne!(
        saved_refresh_token(&ts.state()),
        first_refresh,
        "the refresh token rotated"
    );
}

/// Tokens issued before a restart keep working after it (the vault keeps the grant and the
/// client). The SDK leaves its legacy MCP session open; a 1 s session idle time lets the old
/// server's sessions end, and with them its hold on the vault (see `restart`).
#[tokio::test(flavor = "multi_thread")]
async fn typescript_sdk_keeps_working_across_a_server_restart() {
    let standin = Standin::start();
    let app = spawn_oauth_app(&standin, &["--session-idle-secs", "1"]).await;
    let ts = TsClient::new();
    let connected = ts.run("connect", &app.mcp_url(), &[]).await;
    assert_connected_by_dcr(&connected, &app.base());
    let started = Instant::now();
    let app = app.restart().await;
    eprintln!("restart: {:?}", started.elapsed());
    let result = ts.run("call", &app.mcp_url(), &[]).await;
    assert_used_the_tools(&result);
    assert_eq!(result["authorized"], false, "{result}");
    assert_eq!(
        result["refreshed"], false,
        "the access token still works: {result}"
    );
    assert_eq!(result["requests"]["POST /mcp 401"], Value::Null, "{result}");
}

/// A Client ID Metadata Document instead of DCR: the script serves the document on loopback
/// (the server runs with the test-only `--test-allow-loopback-client-metadata`), never
/// registers, and the server fetches the document. Then the access token expires and the SDK
/// refreshes as that client. SDK 1.32.2 takes only https `clientMetadataUrl`s, so for this
/// http URL the provider presents the URL client id itself (see the script's header).
#[tokio::test(flavor = "multi_thread")]
async fn typescript_sdk_connects_with_a_client_id_metadata_document() {
    let standin = Standin::start();
    let app = spawn_oauth_app(
        &standin,
        &[
            "--test-allow-loopback-client-metadata",
            "--access-token-ttl-secs",
            "2",
        ],
    )
    .await;
    let ts = TsClient::new();
    let result = ts
        .run(
            "connect",
            &app.mcp_url(),
            &["--cimd", "http://127.0.0.1:0/oauth/client-metadata.json"],
        )
        .await;
    assert_used_the_tools(&result);
    let url = result["cimd"]["url"].as_str().unwrap();
    assert_eq!(result["client_id"], url, "{result}");
    assert_eq!(result["registered"], false, "{result}");
    assert_eq!(result["authorized"], true, "{result}");
    assert!(
        result["cimd"]["fetches"].as_u64().unwrap() >= 1,
        "the server fetched the document: {result}"
    );
    assert!(
        !result["requests"]
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.contains("/register")),
        "no registration: {result}"
    );
    assert_eq!(result["authorization"]["iss"], app.base(), "{result}");
    assert_eq!(
        result["requests"]["POST /token 200 authorization_code"], 1,
        "{result}"
    );
    // The access token expires; the SDK refreshes as the same URL client (the script serves
    // the document again, at the same URL, in case the server fetches it again).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let again = ts.run("call", &app.mcp_url(), &[]).await;
    assert_used_the_tools(&again);
    assert_eq!(again["client_id"], url, "{again}");
    assert_eq!(again["authorized"], false, "{again}");
    assert_eq!(again["refreshed"], true, "{again}");
    assert!(
        again["requests"]["POST /token 200 refresh_token"]
            .as_u64()
            .is_some_and(|n| n >= 1),
        "{again}"
    );
}

fn saved_refresh_token(state: &Path) -> String {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(state).unwrap()).unwrap();
    v["tokens"]["refresh_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no refresh token saved: {v}"))
        .to_owned()
}

// ---------------------------------------------------------------- the MCP Inspector CLI

/// The Inspector CLI on its Node 22, with all its state in a temp dir, "opening a browser"
/// through `$BROWSER`: a script that runs the consent bot, which delivers the final redirect
/// to the CLI's callback listener.
struct Inspector {
    node: PathBuf,
    cli: PathBuf,
    home: tempdir::Dir,
    callback: String,
}

impl Inspector {
    fn new() -> Self {
        let (node, cli) = inspector();
        let home = tempdir::Dir::new("inspector-oauth");
        let browser = home.0.join("browser.sh");
        std::fs::write(
            &browser,
            format!(
                "#!/bin/sh\n# $BROWSER for the Inspector: the consent bot plays the person.\n\
                 exec '{}' '{}' \"$1\" >>'{}' 2>&1\n",
                node.display(),
                root().join("tests/e2e/consent-bot.mjs").display(),
                home.0.join("browser.log").display()
            ),
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&browser, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Self {
            node,
            cli,
            callback: format!("http://127.0.0.1:{}/oauth/callback", free_port()),
            home,
        }
    }

    fn browser_log(&self) -> String {
        std::fs::read_to_string(self.home.0.join("browser.log")).unwrap_or_default()
    }

    /// `mcp-inspector --cli --transport http --server-url <url> --format json <args>`; with
    /// `interactive`, OAuth may open the "browser"; without, only stored auth is used.
    async fn run(&self, url: &str, interactive: bool, args: &[&str]) -> Output {
        let home = &self.home.0;
        let mut cmd = Command::new(&self.node);
        cmd.arg(&self.cli)
            .args(["--cli", "--transport", "http", "--server-url", url])
            .args(["--format", "json", "--connect-timeout", "20000"])
            .args(["--callback-url", &self.callback]);
        if !interactive {
            cmd.arg("--stored-auth-only");
        }
        cmd.args(args)
            .envs(inspector_env(&self.node, home))
            // No OS keychain here: without a file store the tokens die with the process.
            .env("MCP_INSPECTOR_SECRET_STORE", "file")
            .env("MCP_INSPECTOR_SECRET_FILE", home.join("secrets.json"));
        // xdg-open picks $BROWSER only with no desktop session in sight.
        for var in [
            "DISPLAY",
            "WAYLAND_DISPLAY",
            "XDG_CURRENT_DESKTOP",
            "DESKTOP_SESSION",
            "KDE_FULL_SESSION",
            "GNOME_DESKTOP_SESSION_ID",
            "MATE_DESKTOP_SESSION_ID",
            "WSL_DISTRO_NAME",
            "MCP_OAUTH_CALLBACK_URL",
            "NODE_OPTIONS",
            "VITEST",
        ] {
            cmd.env_remove(var);
        }
        if interactive {
            cmd.env("BROWSER", home.join("browser.sh"))
                .env("MCP_AUTO_OPEN_ENABLED", "true");
        } else {
            cmd.env_remove("BROWSER")
                .env("MCP_AUTO_OPEN_ENABLED", "false");
        }
        let started = Instant::now();
        let out = output(cmd, Duration::from_secs(120), "mcp-inspector", || {
            format!("--- browser log:\n{}", self.browser_log())
        })
        .await;
        eprintln!("mcp-inspector {args:?}: {:?}", started.elapsed());
        out
    }

    /// Asserts exit 0 and returns the JSON `result`.
    async fn result(&self, url: &str, interactive: bool, args: &[&str]) -> Value {
        let out = self.run(url, interactive, args).await;
        let (stdout, stderr) = texts(&out);
        assert!(
            out.status.success(),
            "mcp-inspector {args:?} exited {}:\n{stdout}\n{stderr}\n--- browser log:\n{}",
            out.status,
            self.browser_log()
        );
        let json: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!("mcp-inspector {args:?}: stdout is not JSON ({e}):\n{stdout}\n{stderr}")
        });
        json.get("result")
            .cloned()
            .unwrap_or_else(|| panic!("mcp-inspector {args:?}: no result in {json}"))
    }
}

/// The Inspector CLI does the full interactive OAuth login headless (DCR, its callback
/// listener, `$BROWSER` = the consent bot), lists the tools, then calls one with the stored
/// authorization only.
#[tokio::test(flavor = "multi_thread")]
async fn mcp_inspector_cli_logs_in_with_oauth_and_calls_a_tool() {
    let standin = Standin::start();
    let app = spawn_oauth_app(&standin, &[]).await;
    let inspector = Inspector::new();
    let url = app.mcp_url();

    let list = inspector
        .result(&url, true, &["--method", "tools/list"])
        .await;
    let mut names: Vec<&str> = list["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("tools/list: no tools in {list}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, TOOLS);
    let log = inspector.browser_log();
    assert!(
        log.contains("POST http://127.0.0.1") && log.contains("/authorize/decision"),
        "the consent page was approved:\n{log}"
    );
    let callback_path = inspector.callback.split_once("127.0.0.1:").unwrap().1;
    assert!(
        log.lines().any(|l| l.contains("delivered to")
            && l.contains(callback_path)
            && l.contains("→ 200")),
        "the redirect reached the Inspector's callback listener ({}):\n{log}",
        inspector.callback
    );
    assert_eq!(
        standin.stats().await["authorize_requests"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Stored authorization only: no browser, no new login.
    let identity = inspector
        .result(
            &url,
            false,
            &["--method", "tools/call", "--tool-name", "get_identity"],
        )
        .await;
    assert_eq!(identity["isError"], false, "{identity}");
    assert_eq!(
        identity["structuredContent"]["username"], USERNAME,
        "{identity}"
    );
    assert_eq!(
        inspector.browser_log(),
        log,
        "the second run opened no browser"
    );
}

/// `scripts/dev-stack` as a newcomer runs it: Cyrus, the stand-in upstream (mailconnect registers
/// itself there by DCR, as a self-hosted instance does at Fastmail) and the mailconnect binary as
/// processes; the TypeScript SDK connects through the whole flow and calls the tools.
#[tokio::test(flavor = "multi_thread")]
async fn the_dev_stack_serves_the_whole_connect_flow() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let stack = root().join("scripts/dev-stack");
    let up = Command::new(&stack)
        .arg("up")
        .env("DEV_STACK_PORT", port.to_string())
        .env("DEV_STACK_BIN", env!("CARGO_BIN_EXE_mailconnect"))
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&up.stdout).to_string();
    let down = || async {
        let _ = Command::new(&stack).arg("down").output().await;
    };
    if !up.status.success() {
        down().await;
        panic!(
            "dev-stack up failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&up.stderr)
        );
    }
    let mcp_url = stdout
        .lines()
        .find_map(|l| l.strip_prefix("MCP_URL="))
        .unwrap_or_else(|| panic!("no MCP_URL in:\n{stdout}"))
        .to_owned();
    let ts = TsClient::new();
    let result = ts.run("connect", &mcp_url, &[]).await;
    down().await;
    assert_used_the_tools(&result);
    assert_eq!(mcp_url, format!("http://127.0.0.1:{port}/mcp"));
}
