//! The real binary, started as an operator starts it: on a free port, against Cyrus and a
//! stand-in upstream, logging to a pipe.

use std::{
    io::Read as _,
    process::{Command, Stdio},
    time::Duration,
};

use super::{
    oauth::{Standin, UPSTREAM_CLIENT},
    testbed,
};

/// Stops the binary and returns everything it logged.
pub fn stop_and_read_log(mut server: std::process::Child) -> String {
    let _ = server.kill();
    let mut log = String::new();
    server
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    let _ = server.wait();
    log
}

/// The real binary on a free port, against Cyrus and `standin`, logging at `level` to a pipe;
/// with its base URL and data directory.
pub async fn spawn_binary(
    standin: &Standin,
    extra: &[&str],
    level: &str,
) -> (std::process::Child, String, crate::support::tempdir::Dir) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let data = crate::support::tempdir::Dir::new("binary");
    let server = spawn_binary_at(port, None, &data.0, standin, extra, level, Stdio::piped()).await;
    (server, format!("http://127.0.0.1:{port}"), data)
}

/// [`spawn_binary`] on `port`, under `public` (its own address when `None`), with its data in
/// `data` and its log to `log` (a pipe nobody reads fills and stalls the server); returns
/// once it answers.
pub async fn spawn_binary_at(
    port: u16,
    public: Option<&str>,
    data: &std::path::Path,
    standin: &Standin,
    extra: &[&str],
    level: &str,
    log: Stdio,
) -> std::process::Child {
    let base = format!("http://127.0.0.1:{port}");
    let mut server = Command::new(env!("CARGO_BIN_EXE_mailconnect"))
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--public-url",
            public.unwrap_or(&base),
            "--data-dir",
        ])
        .arg(data)
        .args(["--jmap-session-url", testbed().get("JMAP_SESSION_URL")])
        .args([
            "--upstream-issuer",
            &standin.url,
            "--upstream-client-id",
            UPSTREAM_CLIENT,
        ])
        .args(extra)
        .env("MAILCONNECT_LOG", level)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if reqwest::get(format!("{base}/healthz")).await.is_ok() {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = server.kill();
    let _ = server.wait();
    panic!("the server did not start on {port}");
}
