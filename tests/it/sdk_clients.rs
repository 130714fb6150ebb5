//! Real MCP SDK clients (TypeScript `@modelcontextprotocol/sdk`, Python `mcp`) call every tool
//! over HTTP and check the answers against the seeded mailbox (tests/e2e/).

use std::{path::PathBuf, process::Command};

use crate::support::{TOKEN, spawn_app};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(program: PathBuf, script: &str, url: &str) {
    assert!(
        program.exists(),
        "{} is missing: run tests/e2e/setup.sh (scripts/test does it)",
        program.display()
    );
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

fn which(program: &str) -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(program))
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(format!("/usr/bin/{program}")))
}
