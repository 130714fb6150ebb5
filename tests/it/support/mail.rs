//! The writer's mailbox in the Cyrus testbed, beside the app: delivering over LMTP, reading
//! it over JMAP directly, the writer's credential and store, unique subjects, and listening to
//! the app's `subscriptions/listen` stream.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    time::Duration,
};

use mailconnect::{
    domain::{grant::UpstreamCredential, secret::SecretString},
    outbound::jmap::{JmapMailStore, TransportConfig},
};
use serde_json::{Value, json};

use crate::support::{TestApp, mcp_request, testbed};

/// The writer's copy of a seed email in the Inbox, read ("Grüße aus München", docs/testbed.md).
/// Its id differs from alice's copy because the seed addresses each user by name (so the bytes,
/// and with them Cyrus's id, differ), and it is as deterministic.
pub(crate) const EMAIL: &str = "M90089a6e6ff4b78d4c8a1333";

/// The writer's mailbox over JMAP directly (not through mailconnect).
pub(crate) async fn jmap(calls: Value) -> Value {
    let tb = testbed();
    crate::support::send_json(reqwest::Client::new()
        .post(tb.get("JMAP_SESSION_URL"))
        .basic_auth(tb.get("JMAP_WRITER_USERNAME"), Some(tb.get("JMAP_WRITER_PASSWORD")))
        .json(&json!({"using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"], "methodCalls": calls}))
        ).await
}

/// The keywords and mailboxes of the writer's email `id`, over JMAP directly.
pub(crate) async fn email_state(id: &str) -> Value {
    let account = testbed().get("JMAP_WRITER_USERNAME");
    let r = jmap(json!([["Email/get", {"accountId": account, "ids": [id], "properties": ["keywords", "mailboxIds"]}, "g"]])).await;
    r["methodResponses"][0][1]["list"][0].clone()
}

/// The writer user's credential for the JMAP adapter (basic auth on the testbed).
pub(crate) fn writer() -> UpstreamCredential {
    UpstreamCredential::Basic {
        username: testbed().get("JMAP_WRITER_USERNAME").into(),
        password: SecretString::new(testbed().get("JMAP_WRITER_PASSWORD")),
    }
}

/// The JMAP adapter over the session at `session_url` (Cyrus, or a proxy in front of it).
pub(crate) fn store(session_url: &str) -> JmapMailStore {
    JmapMailStore::new(TransportConfig {
        session_url: session_url.parse().unwrap(),
        timeout: Duration::from_secs(10),
    })
    .unwrap()
}

/// Delivers a message to the writer's Inbox over Cyrus LMTP (loopback, no auth).
pub(crate) fn deliver(from: &str, subject: &str) {
    let id = format!("<{:x}@it.example>", rand::random::<u64>());
    deliver_with(from, subject, &id, "");
}

/// [`deliver`] with a Message-ID and extra header lines (`In-Reply-To: …\r\n`).
pub(crate) fn deliver_with(from: &str, subject: &str, message_id: &str, headers: &str) {
    let port: u16 = testbed().get("LMTP_PORT").parse().unwrap();
    let rcpt = testbed().get("JMAP_WRITER_USERNAME");
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    // The last line of a (possibly multi-line) reply.
    let mut reply = || loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line.as_bytes().get(3) != Some(&b'-') {
            return line;
        }
    };
    assert!(reply().starts_with("220"));
    for cmd in [
        "LHLO it".to_owned(),
        format!("MAIL FROM:<{from}>"),
        format!("RCPT TO:<{rcpt}>"),
        "DATA".to_owned(),
    ] {
        writer.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
        let r = reply();
        assert!(r.starts_with('2') || r.starts_with('3'), "{cmd}: {r}");
    }
    let date = chrono::Utc::now().to_rfc2822();
    let message = format!(
        "From: <{from}>\r\nTo: <{rcpt}>\r\nSubject: {subject}\r\nDate: {date}\r\nMessage-ID: {message_id}\r\n{headers}\r\nHello.\r\n.\r\n"
    );
    writer.write_all(message.as_bytes()).unwrap();
    let r = reply();
    assert!(r.starts_with("250"), "DATA: {r}");
    writer.write_all(b"QUIT\r\n").unwrap();
}

/// `what` with a random suffix: a subject no other test delivers.
pub(crate) fn mark(what: &str) -> String {
    format!("{what} {:x}", rand::random::<u32>())
}

/// Opens `subscriptions/listen` (2026-07-28) for `uris`; returns the open response stream.
pub(crate) async fn listen(app: &TestApp, token: &str, uris: &[&str]) -> reqwest::Response {
    let r = mcp_request(
        &app.base(),
        token,
        (9, "subscriptions/listen", None),
        json!({"notifications": {"toolsListChanged": true, "resourceSubscriptions": uris}}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    r
}

/// Reads the stream until `wanted` shows up (or the stream ends, or `secs` pass).
pub(crate) async fn read_until(
    stream: &mut reqwest::Response,
    seen: &mut String,
    wanted: &str,
    secs: u64,
) -> bool {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !seen.contains(wanted) {
        match tokio::time::timeout_at(deadline, stream.chunk()).await {
            Ok(Ok(Some(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            _ => return false,
        }
    }
    true
}
