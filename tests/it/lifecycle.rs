//! The binary's life as an operator sees it: SIGTERM drains and exits 0, and
//! `mailconnect storage migrate` brings either store's schema up to date.

use std::{process::Command, time::Duration};

use crate::support::{
    binary::{spawn_binary, stop_and_read_log},
    oauth::Standin,
};

/// Sends `signal` to `child` and waits (up to 15 s) for it to exit.
async fn signal_and_wait(
    child: &mut std::process::Child,
    signal: &str,
) -> std::process::ExitStatus {
    let sent = Command::new("kill")
        .args([format!("-{signal}"), child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    for _ in 0..150 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server did not exit within 15 s of SIG{signal}");
}

#[tokio::test]
async fn sigterm_and_sigint_stop_gracefully_with_exit_0() {
    let standin = Standin::start();
    for signal in ["TERM", "INT"] {
        let (mut server, base, _data) = spawn_binary(&standin, &[], "info").await;
        let status = signal_and_wait(&mut server, signal).await;
        assert_eq!(status.code(), Some(0), "SIG{signal} exit: {status}");
        assert!(reqwest::get(format!("{base}/healthz")).await.is_err());
        let log = stop_and_read_log(server);
        assert!(log.contains(&format!("SIG{signal}: draining")), "{log}");
        assert!(log.contains("mailconnect stopped"), "{log}");
    }
}

/// `storage migrate` on the configured store, as the binary's output says it.
fn migrate(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mailconnect"))
        .args(["storage", "migrate"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn storage_migrate_brings_either_store_up_to_date() {
    let data = crate::support::tempdir::Dir::new("migrate");
    let dir = data.0.display().to_string();
    let (ok, said) = migrate(&["--data-dir", &dir]);
    assert!(ok, "{said}");
    assert!(
        said.contains("redb") && said.contains("schema version"),
        "{said}"
    );
    assert!(data.0.join("mailconnect.redb").exists());
    let url = mailconnect::outbound::postgres::testing::fresh_database().await;
    let (ok, said) = migrate(&["--storage", &url]);
    assert!(ok, "{said}");
    assert!(
        said.contains(&format!(
            "PostgreSQL: schema version {}",
            mailconnect::outbound::postgres::SCHEMA_VERSION
        )),
        "{said}"
    );
    // Unreachable: a clear error, exit non-zero, and never the URL's password.
    let (ok, said) = migrate(&["--storage", "postgres://u:pass-word-9@127.0.0.1:1/db"]);
    assert!(!ok, "{said}");
    assert!(said.contains("PostgreSQL"), "{said}");
    assert!(!said.contains("pass-word-9"), "{said}");
    // Not a store at all: refused before anything starts, without echoing the value.
    let (ok, said) = migrate(&["--storage", "mysql://u:pass-word-9@h/db"]);
    assert!(!ok, "{said}");
    assert!(said.contains("storage must be"), "{said}");
    assert!(!said.contains("pass-word-9"), "{said}");
}
