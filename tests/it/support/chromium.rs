//! The one Chromium runner of the headless-browser tests (`browser_*.rs`): the preflight,
//! and running one of the playwright-core scripts in `tests/browser/` (set up by
//! `tests/browser/setup.sh`, which `scripts/test` runs). Each script prints its observations
//! as one JSON line, last on stdout; the tests judge them (screenshots and redirect chains
//! included).

use std::{
    ffi::OsStr,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader, Lines},
    process::{Child, ChildStdin, ChildStdout, Command},
    task::JoinHandle,
};

use crate::support::{
    node::{require, root, which},
    tempdir,
};

/// Debian's Chromium, driven by playwright-core (which never downloads a browser).
pub(crate) const CHROMIUM: &str = "/usr/bin/chromium";

/// Fails the test, saying how to fix it, when playwright-core or Chromium is missing: a
/// skipped browser test would prove nothing.
pub(crate) fn preflight() {
    let playwright = root().join("tests/browser/node_modules/playwright-core/package.json");
    require(
        &[&playwright, Path::new(CHROMIUM)],
        "tests/browser/setup.sh",
    );
}

/// Asserts that the script reported a screenshot for each of `shots` (name, width) in `out`
/// and that each looks right.
pub(crate) fn assert_screenshots(seen: &Value, out: &Path, shots: &[(&str, u32)]) {
    for (name, width) in shots {
        let path = out.join(format!("{name}.png"));
        assert!(
            seen["screenshots"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| Path::new(p.as_str().unwrap()) == path),
            "{name}: {}",
            seen["screenshots"]
        );
        assert_screenshot(&path, *width);
    }
}

/// The URLs a script step went through (its redirect chain).
pub(crate) fn chain_of(step: &Value) -> Vec<&str> {
    step["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect()
}

/// Where screenshots a person may want to look at are kept (`target/` is not in git).
pub(crate) fn screenshots() -> PathBuf {
    root().join("target/screenshots")
}

/// A PNG at least `width` CSS pixels wide (device scale 1) that is more than a blank page.
pub(crate) fn assert_screenshot(path: &Path, width: u32) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n") && &bytes[12..16] == b"IHDR",
        "{} is not a PNG",
        path.display()
    );
    let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    // Full-page: a page wider than a phone's screen makes a wider picture.
    assert!(w >= width, "{}: {w}x{h}", path.display());
    assert!(h >= 400, "{}: {w}x{h}", path.display());
    assert!(
        bytes.len() > 8 * 1024,
        "{} is {} bytes: a blank page?",
        path.display(),
        bytes.len()
    );
}

/// `node tests/browser/<script> …` with a throwaway `HOME`, no display and no inherited
/// `NODE_OPTIONS`, killed when dropped.
pub(crate) struct Script {
    name: String,
    cmd: Command,
    home: tempdir::Dir,
}

impl Script {
    /// The script `name` (in `tests/browser/`), after the preflight.
    pub(crate) fn new(name: &str) -> Self {
        preflight();
        let home = tempdir::Dir::new("browser-home");
        let mut cmd = Command::new(which("node"));
        cmd.arg(root().join("tests/browser").join(name))
            .env_remove("NODE_OPTIONS")
            .env_remove("DISPLAY")
            .env("HOME", &home.0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        Self {
            name: name.to_owned(),
            cmd,
            home,
        }
    }

    /// The scenario argument (the first), named in the test's messages too.
    pub(crate) fn scenario(mut self, scenario: &str) -> Self {
        self.cmd.arg(scenario);
        self.name = format!("{} {scenario}", self.name);
        self
    }

    pub(crate) fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.cmd.arg(arg);
        self
    }

    pub(crate) fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Self {
        self.cmd.args(args);
        self
    }

    /// Starts it; talk to it with [`Running::message`] and [`Running::send`].
    pub(crate) fn spawn(mut self) -> Running {
        let mut child = self
            .cmd
            .spawn()
            .unwrap_or_else(|e| panic!("node runs {}: {e}", self.name));
        let mut stderr = child.stderr.take().unwrap();
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text).await;
            text
        });
        Running {
            stdout: BufReader::new(child.stdout.take().unwrap()).lines(),
            stdin: child.stdin.take(),
            child,
            stderr,
            lines: Vec::new(),
            name: self.name,
            started: Instant::now(),
            _home: self.home,
        }
    }

    /// Runs it to the end (within `limit`); returns its observations. Fails the test when it
    /// printed no JSON or exited non-zero (the harness itself failed: its `error` says where).
    pub(crate) async fn observe(self, limit: Duration) -> Value {
        self.spawn().finish(limit).await
    }
}

/// A running script.
pub(crate) struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: JoinHandle<String>,
    lines: Vec<String>,
    name: String,
    started: Instant,
    _home: tempdir::Dir,
}

impl Running {
    /// The next JSON line the script prints (it waits for an answer on stdin after it).
    pub(crate) async fn message(&mut self, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = tokio::time::timeout(left, self.stdout.next_line())
                .await
                .unwrap_or_else(|_| panic!("{}: no message within {limit:?}", self.name))
                .unwrap();
            let Some(line) = line else {
                let _ = self.child.wait().await;
                let stderr = (&mut self.stderr).await.unwrap_or_default();
                panic!(
                    "{} ended before its message:\n{}\n{stderr}",
                    self.name,
                    self.lines.join("\n")
                );
            };
            self.lines.push(line.clone());
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                return v;
            }
        }
    }

    /// Writes `line` to the script's stdin.
    pub(crate) async fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        stdin.flush().await.unwrap();
    }

    /// Waits for the end (within `limit` of the start); returns the last JSON line.
    pub(crate) async fn finish(mut self, limit: Duration) -> Value {
        drop(self.stdin.take());
        let left = limit.saturating_sub(self.started.elapsed());
        let name = self.name.clone();
        let status = tokio::time::timeout(left, async {
            while let Some(line) = self.stdout.next_line().await.unwrap() {
                self.lines.push(line);
            }
            self.child.wait().await.unwrap()
        })
        .await
        .unwrap_or_else(|_| panic!("{name} finished within {limit:?}"));
        let stderr = (&mut self.stderr).await.unwrap_or_default();
        let stdout = self.lines.join("\n");
        let seen: Value = self
            .lines
            .last()
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or_else(|| panic!("{name}: no JSON line:\n{stdout}\n{stderr}"));
        assert!(
            status.success(),
            "{name} failed (exit {status}): {}\n{seen:#}\n{stderr}",
            seen["error"]
        );
        eprintln!(
            "{name}: {:?} (Chromium {}, playwright-core {}, launch {} ms)",
            self.started.elapsed(),
            seen["chromium"],
            seen["playwright_core"],
            seen["launch_ms"]
        );
        seen
    }
}
