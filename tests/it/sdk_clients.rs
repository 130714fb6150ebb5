//! Real MCP SDK clients (TypeScript `@modelcontextprotocol/sdk`, Python `mcp`) call every tool
//! over HTTP and check the answers against the seeded mailbox (tests/e2e/); the MCP Inspector
//! CLI lists and calls the tools with a static bearer token (tests/inspector/).

use std::{
    path::PathBuf,
    process::{Command, Output, Stdio},
};

use serde_json::Value;

use crate::support::{
    TOKEN,
    node::{inspector, inspector_env, require, root, which},
    spawn_app, tempdir,
};

fn run(program: PathBuf, script: &str, url: &str) {
    require(&[&program], "tests/e2e/setup.sh");
    let script = root().join(script);
    // The server runs on the other runtime workers while this one waits (multi_thread flavor).
    let output = Command::new(&program)
        .arg(&script)
        .env("MCP_URL", url)
        .env("MCP_TOKEN", TOKEN)
        .output()
        .expect("client runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script:?} failed:\n{stdout}\n{stderr}",
        script = script.display()
    );
    assert!(stdout.contains("ok - "), "no checks ran:\n{stdout}");
    assert!(!stdout.contains("not ok"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn typescript_sdk_client_calls_every_tool() {
    let app = spawn_app().await;
    let node = which("node");
    run(node, "tests/e2e/ts-client.mjs", &app.mcp_url());
}

#[tokio::test(flavor = "multi_thread")]
async fn python_sdk_client_calls_every_tool() {
    let app = spawn_app().await;
    run(
        root().join("target/e2e-venv/bin/python"),
        "tests/e2e/py_client.py",
        &app.mcp_url(),
    );
}

/// The MCP Inspector CLI (`mcp-inspector --cli`, pinned in tests/inspector/package.json) on the
/// Node 22 it needs, with its state (catalog, OAuth store, client config) in a temp dir.
struct Inspector {
    node: PathBuf,
    cli: PathBuf,
    home: tempdir::Dir,
    url: String,
}

impl Inspector {
    fn new(url: String) -> Self {
        let (node, cli) = inspector();
        Self {
            node,
            cli,
            home: tempdir::Dir::new("inspector"),
            url,
        }
    }

    /// Runs `mcp-inspector --cli --server-url <url> --format json <args>`, with the bearer token
    /// when `token` is given. Never interactive: stdin is closed and no OAuth store is used.
    fn run(&self, token: Option<&str>, args: &[&str]) -> Output {
        let home = &self.home.0;
        let mut cmd = Command::new(&self.node);
        cmd.arg(&self.cli)
            .args(["--cli", "--server-url", &self.url, "--format", "json"])
            .args(["--connect-timeout", "20000", "--stored-auth-only"]);
        if let Some(token) = token {
            cmd.args(["--header", &format!("Authorization: Bearer {token}")]);
        }
        // Node 22 first on PATH in case the launcher starts `node` by name.
        // The server runs on the other runtime workers while this one waits (multi_thread flavor).
        cmd.args(args)
            .envs(inspector_env(&self.node, home))
            .env_remove("MCP_OAUTH_CALLBACK_URL")
            .env_remove("MCP_AUTO_OPEN_ENABLED")
            .env_remove("BROWSER")
            .env_remove("NODE_OPTIONS")
            .stdin(Stdio::null())
            .output()
            .expect("the Inspector CLI runs")
    }

    /// Runs a method with the test's token; asserts exit 0 and returns the JSON `result`.
    fn result(&self, args: &[&str]) -> Value {
        let out = self.run(Some(TOKEN), args);
        let (stdout, stderr) = texts(&out);
        assert!(
            out.status.success(),
            "mcp-inspector {args:?} exited {}:\n{stdout}\n{stderr}",
            out.status
        );
        let json: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!("mcp-inspector {args:?}: stdout is not JSON ({e}):\n{stdout}")
        });
        json.get("result")
            .cloned()
            .unwrap_or_else(|| panic!("mcp-inspector {args:?}: no result in {json}"))
    }

    /// `tools/call` with JSON arguments; asserts a successful (not `isError`) tool result.
    fn call(&self, tool: &str, arguments: &str) -> Value {
        let result = self.result(&[
            "--method",
            "tools/call",
            "--tool-name",
            tool,
            "--tool-args-json",
            arguments,
        ]);
        assert_eq!(result["isError"], false, "{tool} {arguments}: {result}");
        result
    }
}

fn texts(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The Inspector CLI's exit code for "auth required (401/403)".
const INSPECTOR_AUTH_REQUIRED: i32 = 3;

#[tokio::test(flavor = "multi_thread")]
async fn mcp_inspector_cli_lists_and_calls_tools() {
    let app = spawn_app().await;
    let inspector = Inspector::new(app.mcp_url());

    let list = inspector.result(&["--method", "tools/list"]);
    let mut names: Vec<&str> = list["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("tools/list: no tools array in {list}"))
        .iter()
        .map(|t| t["name"].as_str().expect("a tool name"))
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "get_attachment",
            "get_email",
            "get_identity",
            "get_thread",
            "list_mailboxes",
            "search_email"
        ]
    );

    let mailboxes = inspector.call("list_mailboxes", "{}");
    assert!(
        mailboxes.to_string().contains("Project Alpha"),
        "list_mailboxes: {mailboxes}"
    );

    let found = inspector.call("search_email", r#"{"text":"budget"}"#);
    let subjects: Vec<&str> = found["structuredContent"]["emails"]
        .as_array()
        .unwrap_or_else(|| panic!("search_email: no structuredContent.emails in {found}"))
        .iter()
        .map(|e| e["subject"].as_str().expect("a subject"))
        .collect();
    assert_eq!(
        subjects,
        ["Quarterly report Q1", "Project Alpha kickoff"],
        "{found}"
    );
    assert_eq!(found["structuredContent"]["total"], 2, "{found}");

    // Without a token, and with a wrong one: "auth required", with its JSON error envelope as
    // the last stderr line (--stored-auth-only: no interactive OAuth is attempted).
    for token in [None, Some("wrong-token-0123456789abcdef")] {
        let out = inspector.run(token, &["--method", "tools/list"]);
        let (stdout, stderr) = texts(&out);
        assert_eq!(
            out.status.code(),
            Some(INSPECTOR_AUTH_REQUIRED),
            "token {token:?}: want exit {INSPECTOR_AUTH_REQUIRED} (auth required):\n{stdout}\n{stderr}"
        );
        let envelope: Value = stderr
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str(l).ok())
            .unwrap_or_else(|| {
                panic!("token {token:?}: no JSON error envelope on stderr:\n{stderr}")
            });
        assert_eq!(
            envelope["error"]["code"], "auth_required",
            "token {token:?}: {envelope}"
        );
    }
}
