//! New mail through the mail server's push channel (JMAP EventSource), with a push stand-in in
//! the fault proxy in front of Cyrus (Cyrus itself answers 204): state events wake the
//! account's one watcher, bursts are one look, silence and drops reconnect and catch up, a
//! refused token is renewed once, and a server without push is polled. The writer's mailbox.

use std::time::Duration;

use serde_json::json;

use crate::support::{
    TestApp,
    compose::{connected, writer_app_at},
    fault_proxy::{Proxy, PushAnswer},
    mail::{deliver, listen, mark, read_until},
};

const UPDATED: &str = "notifications/resources/updated";
const STATE: &str = r#"{"@type":"StateChange","changed":{"any":{"Email":"s"}}}"#;

/// Waits (up to `secs`) until the stand-in has had `n` EventSource requests.
async fn connections(proxy: &Proxy, n: usize, secs: u64) -> Vec<(String, String)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let seen = proxy.push_connections().await;
        if seen.len() >= n || tokio::time::Instant::now() > deadline {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A listening stream on `token`, acknowledged.
async fn listening(app: &TestApp, token: &str) -> (reqwest::Response, String) {
    let mut stream = listen(app, token, &["mail://new"]).await;
    let mut seen = String::new();
    assert!(
        read_until(&mut stream, &mut seen, "acknowledged", 5).await,
        "{seen}"
    );
    (stream, seen)
}

#[tokio::test]
async fn push_state_events_wake_one_watcher_per_account_and_a_burst_is_one_look() {
    let proxy = Proxy::start([]).await;
    proxy.offer_push([]).await;
    // Polling so rare that only push can explain a look.
    let (_standin, app) = writer_app_at(&proxy.session_url(), &["--notify-poll-secs", "600"]).await;
    let (first, _, _) = connected(&app, &["notify"]).await;
    let (second, _, _) = connected(&app, &["notify"]).await;
    let (mut a, mut seen_a) = listening(&app, &first).await;
    let (mut b, mut seen_b) = listening(&app, &second).await;

    // Two grants of one account: one watcher, one push stream.
    let open = connections(&proxy, 1, 5).await;
    assert_eq!(open.len(), 1, "{open:?}");
    let query = &open[0].1;
    assert!(
        query.contains("types=EmailDelivery") && query.contains("closeafter=no"),
        "{query}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(proxy.push_connections().await.len(), 1);

    // Three quick arrivals, three state events: one look, one announcement per stream.
    let before = proxy.api_requests();
    for _ in 0..3 {
        deliver("carol@example.org", &mark("Burst"));
    }
    for _ in 0..3 {
        proxy.push("state", STATE).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert!(
        read_until(&mut a, &mut seen_a, UPDATED, 5).await,
        "{seen_a}"
    );
    assert!(
        read_until(&mut b, &mut seen_b, UPDATED, 5).await,
        "{seen_b}"
    );
    // Anything a second look would announce has had time to arrive.
    read_until(&mut a, &mut seen_a, "never", 2).await;
    read_until(&mut b, &mut seen_b, "never", 1).await;
    assert_eq!(proxy.api_requests() - before, 1, "one upstream request");
    assert_eq!(seen_a.matches(UPDATED).count(), 1, "{seen_a}");
    assert_eq!(seen_b.matches(UPDATED).count(), 1, "{seen_b}");

    // A ping is not a wake.
    let before = proxy.api_requests();
    proxy.push("ping", r#"{"interval":30}"#).await;
    read_until(&mut a, &mut seen_a, "never", 1).await;
    assert_eq!(proxy.api_requests(), before);
}

#[tokio::test]
async fn push_silence_reconnects_and_a_dropped_stream_catches_up_on_reconnecting() {
    let proxy = Proxy::start([]).await;
    // The first stream never pings.
    proxy
        .offer_push([PushAnswer::Stream { pings: false }])
        .await;
    let (_standin, app) = writer_app_at(
        &proxy.session_url(),
        &["--notify-poll-secs", "600", "--notify-push-ping-secs", "1"],
    )
    .await;
    let (token, _, _) = connected(&app, &["notify"]).await;
    let (mut stream, mut seen) = listening(&app, &token).await;
    assert_eq!(connections(&proxy, 1, 5).await.len(), 1);
    assert!(connections(&proxy, 1, 5).await[0].1.contains("ping=1"));
    // 2.5 pings of silence (plus at most a second of backoff): a new stream.
    assert_eq!(
        connections(&proxy, 2, 6).await.len(),
        2,
        "silence did not reconnect"
    );
    // The second stream pings, so it stays.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        proxy.push_connections().await.len(),
        2,
        "pings keep it open"
    );

    // Mail lands without a state event (a lost frame), then the stream drops: the watcher
    // reconnects and catches up.
    deliver("dave@example.org", &mark("While away"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!seen.contains(UPDATED), "{seen}");
    proxy.drop_push().await;
    assert!(
        read_until(&mut stream, &mut seen, UPDATED, 6).await,
        "no catch-up after a reconnect: {seen}"
    );
    assert_eq!(proxy.push_connections().await.len(), 3);
}

#[tokio::test]
async fn push_a_refused_token_is_renewed_once_and_push_goes_on() {
    let proxy = Proxy::start([]).await;
    proxy.offer_push([PushAnswer::Status(401)]).await;
    let (standin, app) = writer_app_at(&proxy.session_url(), &["--notify-poll-secs", "600"]).await;
    let (token, _, _) = connected(&app, &["notify"]).await;
    let refreshes = standin.token_requests("refresh_token").await;
    let (mut stream, mut seen) = listening(&app, &token).await;
    assert_eq!(connections(&proxy, 2, 5).await.len(), 2);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(proxy.push_connections().await.len(), 2, "one retry");
    assert_eq!(
        standin.token_requests("refresh_token").await - refreshes,
        1,
        "renewed once"
    );
    deliver("erin@example.org", &mark("After renewal"));
    proxy.push("state", STATE).await;
    assert!(
        read_until(&mut stream, &mut seen, UPDATED, 5).await,
        "{seen}"
    );
}

/// A mail server restarting answers 500, then 503 with `Retry-After`: push is retried on the
/// backoff (not given up for hours), and once the stream is back a delivery is announced
/// without waiting for the polling interval.
#[tokio::test]
async fn push_transient_failures_are_retried_and_push_comes_back() {
    let proxy = Proxy::start([]).await;
    proxy
        .offer_push([PushAnswer::Status(500), PushAnswer::RetryAfter(503, 2)])
        .await;
    let (_standin, app) = writer_app_at(&proxy.session_url(), &["--notify-poll-secs", "600"]).await;
    let (token, _, _) = connected(&app, &["notify"]).await;
    let (mut stream, mut seen) = listening(&app, &token).await;
    let start = tokio::time::Instant::now();
    assert_eq!(connections(&proxy, 2, 5).await.len(), 2, "a 500 is retried");
    let asked_at = tokio::time::Instant::now();
    assert_eq!(connections(&proxy, 3, 8).await.len(), 3, "a 503 is retried");
    assert!(
        asked_at.elapsed() >= Duration::from_millis(1500),
        "Retry-After: 2 was not waited for ({:?} after the 503, {:?} in all)",
        asked_at.elapsed(),
        start.elapsed()
    );
    // The stream is open: a delivery and its state event are announced at once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    deliver("grace@example.org", &mark("After the restart"));
    proxy.push("state", STATE).await;
    assert!(
        read_until(&mut stream, &mut seen, UPDATED, 5).await,
        "{seen}"
    );
}

/// Only 404, 405 and 501 (or a success without a stream) mean "no push here": asked once,
/// then the watcher polls.
#[tokio::test]
async fn push_not_found_means_no_push_and_the_watcher_polls() {
    let proxy = Proxy::start([]).await;
    proxy.offer_push([PushAnswer::Status(404)]).await;
    let (_standin, app) = writer_app_at(&proxy.session_url(), &["--notify-poll-secs", "1"]).await;
    let (token, _, _) = connected(&app, &["notify"]).await;
    let (mut stream, mut seen) = listening(&app, &token).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    deliver("heidi@example.org", &mark("Polled after 404"));
    assert!(
        read_until(&mut stream, &mut seen, UPDATED, 6).await,
        "{seen}"
    );
    assert_eq!(proxy.push_connections().await.len(), 1, "asked once");
}

#[tokio::test]
async fn push_cyrus_answers_204_and_the_watcher_polls() {
    // No stand-in: the proxy relays the EventSource request to Cyrus.
    let proxy = Proxy::start([]).await;
    let (_standin, app) = writer_app_at(&proxy.session_url(), &["--notify-poll-secs", "1"]).await;
    let (token, _, _) = connected(&app, &["notify"]).await;
    let (mut stream, mut seen) = listening(&app, &token).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    deliver("frank@example.org", &mark("Polled"));
    assert!(
        read_until(&mut stream, &mut seen, UPDATED, 6).await,
        "{seen}"
    );
    let asked: Vec<_> = proxy
        .requests()
        .into_iter()
        .filter(|(m, p)| m == "GET" && p.starts_with("/jmap/eventsource"))
        .collect();
    // Asked once; 204 means no push here (asked again in six hours), not "try Email".
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert!(seen.contains(&json!("mail://new").to_string()), "{seen}");
}
