//! A fault-injecting HTTP proxy in front of the real Cyrus server: every request goes to Cyrus
//! unless a scripted fault answers (or mangles) the next JMAP API call instead. Tests check that
//! the tools retry throttling within bounds and report what finally happened.

use std::time::{Duration, Instant};

use mailconnect::{
    domain::{
        grant::UpstreamCredential,
        mail::changes::{ChangeOutcome, Keyword},
        mail::ids::EmailId,
        ports::{MailReader, MailSender, MailStoreError, MailWriter, PageStart},
        search::query::{EmailQuery, PageSize},
        secret::SecretString,
    },
    outbound::jmap::{JmapMailStore, TransportConfig},
};
use serde_json::{Value, json};

use crate::support::{
    RawMcp,
    fault_proxy::{Fault, Proxy},
    mail::writer,
    spawn_app_with, testbed, text,
};

async fn list_mailboxes_through(proxy: &Proxy, extra: &[&str]) -> (Value, Duration) {
    let app = spawn_app_with(&proxy.session_url(), extra).await;
    let mut mcp = RawMcp::legacy(app.mcp_url()).await;
    // The first call fetches the session through the proxy; faults hit API calls only.
    let started = Instant::now();
    let result = mcp.call("list_mailboxes", json!({})).await;
    (result, started.elapsed())
}

#[tokio::test]
async fn throttled_reads_are_retried_after_the_servers_retry_after() {
    let proxy = Proxy::start([Fault::Status(429, Some(1)), Fault::Status(503, Some(1))]).await;
    let (result, took) = list_mailboxes_through(&proxy, &[]).await;
    assert_eq!(result["isError"], false, "{}", text(&result));
    assert!(text(&result).contains("Inbox"), "{}", text(&result));
    assert_eq!(
        proxy.api_calls(),
        3,
        "two throttled attempts, then the answer"
    );
    assert!(
        took >= Duration::from_secs(2),
        "Retry-After was honoured: {took:?}"
    );
}

#[tokio::test]
async fn throttling_that_outlasts_the_bounds_is_reported_not_waited_out() {
    let proxy = Proxy::start(std::iter::repeat_n(Fault::Status(429, None), 10)).await;
    let (result, took) = list_mailboxes_through(&proxy, &[]).await;
    assert_eq!(result["isError"], true);
    assert!(
        text(&result).starts_with("the mail server is rate limiting requests"),
        "{}",
        text(&result)
    );
    assert_eq!(proxy.api_calls(), 4, "bounded attempts");
    assert!(took < Duration::from_secs(10), "bounded wait: {took:?}");

    // A server asking for a minute is not waited for: the model hears when to come back.
    let proxy = Proxy::start([Fault::Status(503, Some(60))]).await;
    let (result, took) = list_mailboxes_through(&proxy, &[]).await;
    assert_eq!(result["isError"], true);
    assert!(
        text(&result).contains("try again in 60 s"),
        "{}",
        text(&result)
    );
    assert_eq!(proxy.api_calls(), 1);
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[tokio::test]
async fn a_hung_or_garbled_answer_is_a_clear_error() {
    let proxy = Proxy::start([Fault::Hang]).await;
    let (result, took) = list_mailboxes_through(&proxy, &["--upstream-timeout-secs", "1"]).await;
    assert_eq!(result["isError"], true);
    assert!(
        text(&result).starts_with("the mail server is unavailable (no answer within 1 s)"),
        "{}",
        text(&result)
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(
        proxy.api_calls(),
        1,
        "a timeout is not retried into the tool deadline"
    );

    let proxy = Proxy::start([Fault::InvalidJson]).await;
    let (result, _) = list_mailboxes_through(&proxy, &[]).await;
    assert_eq!(result["isError"], true);
    assert!(
        text(&result).starts_with("the mail server sent an invalid response"),
        "{}",
        text(&result)
    );
    // The next call is healthy again: nothing about the garbled answer was cached.
    let proxy_calls = proxy.api_calls();
    let app = spawn_app_with(&proxy.session_url(), &[]).await;
    let mut mcp = RawMcp::legacy(app.mcp_url()).await;
    let result = mcp.call("list_mailboxes", json!({})).await;
    assert_eq!(result["isError"], false, "{}", text(&result));
    assert!(proxy.api_calls() > proxy_calls);
}

async fn writer_emails(store: &JmapMailStore, n: u64) -> Vec<EmailId> {
    let page = store
        .search(
            &writer(),
            &EmailQuery::default(),
            PageSize::new(Some(n)).unwrap(),
            &PageStart::First,
        )
        .await
        .expect("search");
    page.emails
        .into_iter()
        .take(n as usize)
        .map(|e| e.id)
        .collect()
}

fn store(proxy: &Proxy) -> JmapMailStore {
    JmapMailStore::new(TransportConfig {
        session_url: proxy.session_url().parse().unwrap(),
        timeout: Duration::from_secs(10),
    })
    .unwrap()
}

/// Runs in the writer-mailbox test group (.config/nextest.toml): it changes bob's flags.
#[tokio::test]
async fn writer_rate_limited_changes_are_retried_per_email_and_reported() {
    let proxy = Proxy::start([]).await;
    let s = store(&proxy);
    let ids = writer_emails(&s, 3).await;
    assert_eq!(ids.len(), 3);
    // Start from unflagged, through the proxy with no faults queued.
    s.set_keyword(&writer(), &ids, Keyword::Flagged, false)
        .await
        .unwrap();

    // Two ids throttled on the first attempt, one on the second: all end up changed, and only
    // the throttled ones were sent again.
    proxy.inject([Fault::RateLimitSet(Some(2)), Fault::RateLimitSet(Some(1))]);
    let sets_before = proxy.email_sets();
    let report = s
        .set_keyword(&writer(), &ids, Keyword::Flagged, true)
        .await
        .unwrap();
    assert!(
        report
            .outcomes
            .iter()
            .all(|(_, o)| *o == ChangeOutcome::Changed),
        "{report:?}"
    );
    assert_eq!(proxy.email_sets() - sets_before, 3);
    let page = s
        .search(
            &writer(),
            &EmailQuery::default(),
            PageSize::new(Some(3)).unwrap(),
            &PageStart::First,
        )
        .await
        .unwrap();
    assert!(
        page.emails.iter().take(3).all(|e| e.keywords.is_flagged()),
        "the server has them flagged"
    );

    // Throttled every time: bounded, and each email says it was not changed and why.
    proxy.inject(std::iter::repeat_n(Fault::RateLimitSet(None), 10));
    let sets_before = proxy.email_sets();
    let started = Instant::now();
    let report = s
        .set_keyword(&writer(), &ids, Keyword::Flagged, false)
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(11));
    assert_eq!(proxy.email_sets() - sets_before, 4, "bounded attempts");
    for (id, outcome) in &report.outcomes {
        assert_eq!(
            *outcome,
            ChangeOutcome::Failed(
                "the mail server is throttling changes; try again in a minute".into()
            ),
            "{id:?}"
        );
    }
    proxy.clear_faults();
    s.set_keyword(&writer(), &ids, Keyword::Flagged, false)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_store_retries_a_503_and_types_a_garbled_answer() {
    let proxy = Proxy::start([Fault::Status(503, Some(1))]).await;
    let s = JmapMailStore::new(TransportConfig {
        session_url: proxy.session_url().parse().unwrap(),
        timeout: Duration::from_secs(10),
    })
    .unwrap();
    let alice = UpstreamCredential::Basic {
        username: testbed().get("JMAP_USERNAME").into(),
        password: SecretString::new(testbed().get("JMAP_PASSWORD")),
    };
    let boxes = s.mailboxes(&alice).await;
    assert!(boxes.is_ok(), "{boxes:?}");
    assert_eq!(proxy.api_calls(), 2);
    let err = {
        proxy.inject([Fault::InvalidJson]);
        s.mailboxes(&alice).await.unwrap_err()
    };
    assert!(matches!(err, MailStoreError::Protocol(_)), "{err:?}");
}

/// Runs in the writer-mailbox group: it sends the writer's mail.
#[tokio::test]
async fn writer_a_submission_is_never_sent_twice_on_an_unknown_outcome() {
    use mailconnect::domain::{mail::Address, sending::compose, sending::submission::Submission};

    let proxy = Proxy::start([]).await;
    let s = store(&proxy);
    let identities = s.identities(&writer()).await.unwrap();
    let mark = format!("once-{:x}", rand::random::<u64>());
    let request = compose::DraftRequest {
        mode: compose::ComposeMode::New,
        source: None,
        to: vec![Address {
            name: None,
            email: "carol@example.org".into(),
        }],
        cc: vec![],
        bcc: vec![],
        subject: Some(mark.clone()),
        body_text: mark.clone(),
        quote_original: false,
        forward_attachments: false,
        attach: vec![],
        identity: None,
        replaces: None,
    };
    let planned = compose::plan(&request, None, &identities, vec![]).unwrap();
    let created = s.create_draft(&writer(), &planned).await.unwrap();
    let submission = Submission {
        email: created.id.clone(),
        identity: planned.identity.id.clone(),
        mail_from: planned.from.email.clone(),
        rcpt_to: vec!["carol@example.org".into()],
        hold_secs: None,
        without_bcc: None,
    };

    // A 503 before the server saw it: an unknown outcome to the caller, and never retried.
    proxy.inject([Fault::Status(503, Some(1))]);
    let calls = proxy.api_calls();
    let err = s.submit(&writer(), &submission).await.unwrap_err();
    assert!(
        matches!(err, MailStoreError::Unavailable(ref m) if m.contains("unknown")),
        "{err:?}"
    );
    assert_eq!(proxy.api_calls() - calls, 1, "not retried");
    assert!(crate::support::compose::sent_with(&mark).is_empty());

    // The server sent it and the answer was lost: reported unknown, and sent exactly once.
    proxy.inject([Fault::LoseAnswer]);
    let calls = proxy.api_calls();
    let err = s.submit(&writer(), &submission).await.unwrap_err();
    assert!(
        matches!(err, MailStoreError::Unavailable(ref m) if m.contains("unknown")),
        "{err:?}"
    );
    assert_eq!(proxy.api_calls() - calls, 1, "not retried");
    assert_eq!(
        crate::support::compose::sent_with(&mark).len(),
        1,
        "sent once, not twice"
    );
}
