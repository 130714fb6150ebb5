//! The JMAP adapter against the real Cyrus server, and against a misbehaving one.

use std::{sync::atomic::Ordering, time::Duration};

use mailconnect::{
    domain::{
        grant::UpstreamCredential,
        mail::ids::{BlobId, EmailId, ThreadId},
        mail::mailboxes::MailboxDirectory,
        ports::{MailReader, MailStoreError, MailWriter, PageStart},
        search::query::{EmailQuery, PageSize},
        secret::SecretString,
    },
    outbound::jmap::{JmapMailStore, TransportConfig},
};

use crate::support::{fake_jmap, testbed};

fn store(session_url: &str, timeout: Duration) -> JmapMailStore {
    JmapMailStore::new(TransportConfig {
        session_url: session_url.parse().expect("url"),
        timeout,
    })
    .expect("store")
}

fn cyrus() -> JmapMailStore {
    store(testbed().get("JMAP_SESSION_URL"), Duration::from_secs(10))
}

fn basic() -> UpstreamCredential {
    UpstreamCredential::Basic {
        username: testbed().get("JMAP_USERNAME").into(),
        password: SecretString::new(testbed().get("JMAP_PASSWORD")),
    }
}

fn query(f: impl FnOnce(&mut EmailQuery)) -> EmailQuery {
    let mut q = EmailQuery::default();
    f(&mut q);
    q
}

async fn search(
    s: &JmapMailStore,
    q: &EmailQuery,
    size: u64,
) -> mailconnect::domain::ports::SearchPage {
    s.search(
        &basic(),
        q,
        PageSize::new(Some(size)).unwrap(),
        &PageStart::First,
    )
    .await
    .expect("search")
}

/// Counts the upstream requests one call makes.
macro_rules! requests_for {
    ($store:expr, $call:expr) => {{
        let before = $store.upstream_requests();
        let out = $call;
        ($store.upstream_requests() - before, out)
    }};
}

#[tokio::test]
async fn every_read_is_one_upstream_request_once_the_session_is_known() {
    let s = cyrus();
    let cred = basic();
    let (first, _) = requests_for!(s, s.mailboxes(&cred).await.unwrap());
    assert_eq!(first, 2, "the first call also fetches the session");

    let (n, account) = requests_for!(s, s.account(&cred).await.unwrap());
    assert_eq!((n, account.username.as_str()), (1, "alice@example.test"));
    let (n, boxes) = requests_for!(s, s.mailboxes(&cred).await.unwrap());
    assert_eq!((n, boxes.len()), (1, 9));
    let (n, page) = requests_for!(
        s,
        search(&s, &query(|q| q.text = Some("budget".into())), 20).await
    );
    assert_eq!((n, page.emails.len()), (1, 2));
    let (n, page) = requests_for!(
        s,
        search(
            &s,
            &query(|q| q.mailbox = Some("Project Alpha/Invoices 2024".into())),
            20
        )
        .await
    );
    assert_eq!(
        (n, page.emails.len()),
        (1, 1),
        "a mailbox by path resolves from the cached list"
    );
    let id = page.emails[0].id.clone();
    let (n, (email, _)) = requests_for!(s, s.email(&cred, &id).await.unwrap());
    assert_eq!(n, 1);
    let (n, (thread, _)) =
        requests_for!(s, s.thread(&cred, &email.summary.thread_id).await.unwrap());
    assert_eq!((n, thread.len()), (1, 1));
    let blob = email.attachments[0].blob_id.clone();
    let (n, file) = requests_for!(s, s.attachment(&cred, &id, &blob, 1 << 20).await.unwrap());
    assert_eq!(n, 2, "attachment metadata, then the download");
    assert_eq!(file.attachment.name.as_deref(), Some("notes.txt"));
}

#[tokio::test]
async fn bearer_tokens_that_cyrus_accepts_work() {
    let s = cyrus();
    let cred = UpstreamCredential::Bearer(SecretString::new(crate::support::mint_jwt()));
    assert_eq!(
        s.account(&cred).await.unwrap().username,
        "alice@example.test"
    );
}

#[tokio::test]
async fn a_wrong_password_is_unauthorized() {
    let cred = UpstreamCredential::Basic {
        username: testbed().get("JMAP_USERNAME").into(),
        password: SecretString::new("wrong"),
    };
    assert_eq!(
        cyrus().mailboxes(&cred).await.unwrap_err(),
        MailStoreError::Unauthorized
    );
}

#[tokio::test]
async fn seeded_mail_is_found_by_every_filter() {
    let s = cyrus();
    let count = |q: EmailQuery| {
        let s = &s;
        async move { search(s, &q, 50).await.total }
    };
    assert_eq!(
        count(query(|q| q.mailbox = Some("Bulk".into()))).await,
        Some(60)
    );
    assert_eq!(
        count(query(|q| {
            q.mailbox = Some("bulk".into());
            q.unread = Some(true);
        }))
        .await,
        Some(30)
    );
    assert_eq!(
        count(query(|q| q.mailbox = Some("inbox".into()))).await,
        Some(4)
    );
    assert_eq!(
        count(query(|q| q.has_attachment = Some(true))).await,
        Some(2)
    );
    assert_eq!(count(query(|q| q.flagged = Some(true))).await, Some(1));
    assert_eq!(
        count(query(|q| q.from = Some("carol@example.de".into()))).await,
        Some(2)
    );
    assert_eq!(
        count(query(|q| q.to = Some("bob@example.com".into()))).await,
        Some(1)
    );
    assert_eq!(
        count(query(|q| q.subject = Some("Grüße".into()))).await,
        Some(1)
    );
    let window = query(|q| {
        q.after = Some("2024-03-02T00:00:00Z".parse().unwrap());
        q.before = Some("2024-03-04T00:00:00Z".parse().unwrap());
    });
    assert_eq!(count(window).await, Some(2));
}

/// The adapter fetches a page and one more (so the caller knows more follow), and a follow-up
/// page is "received at or before" the previous page's last email (which it includes again:
/// the service skips the ones it already returned).
#[tokio::test]
async fn search_pages_newest_first_and_continues_at_or_before_a_date() {
    let s = cyrus();
    let q = query(|q| q.mailbox = Some("Bulk".into()));
    let first = search(&s, &q, 50).await;
    assert_eq!(first.emails.len(), 51, "a page and one more");
    assert!(
        first
            .emails
            .windows(2)
            .all(|w| w[0].received_at >= w[1].received_at)
    );
    let boundary = &first.emails[49];
    let rest = s
        .search(
            &basic(),
            &q,
            PageSize::new(Some(50)).unwrap(),
            &PageStart::AtOrBefore {
                at: boundary.received_at,
                extra: 0,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        rest.emails.len(),
        11,
        "the boundary email and the 10 older ones"
    );
    assert_eq!(rest.emails[0].id, boundary.id);
    assert!(
        rest.emails
            .iter()
            .all(|e| e.received_at <= boundary.received_at)
    );
}

#[tokio::test]
async fn unknown_objects_are_not_found() {
    let s = cyrus();
    let cred = basic();
    let missing = EmailId::parse("Mdoesnotexist").unwrap();
    assert!(matches!(
        s.email(&cred, &missing).await,
        Err(MailStoreError::NotFound(_))
    ));
    let thread = ThreadId::parse("Tdoesnotexist").unwrap();
    assert!(matches!(
        s.thread(&cred, &thread).await,
        Err(MailStoreError::NotFound(_))
    ));
    let err = s
        .search(
            &cred,
            &query(|q| q.mailbox = Some("Needs action".into())),
            PageSize::new(None).unwrap(),
            &PageStart::First,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Project Alpha"), "{err}");
}

#[tokio::test]
async fn an_oversized_attachment_is_refused_before_download() {
    let s = cyrus();
    let cred = basic();
    let page = search(
        &s,
        &query(|q| q.subject = Some("Quarterly report".into())),
        5,
    )
    .await;
    let report = page
        .emails
        .iter()
        .find(|e| e.has_attachment)
        .expect("the report");
    let (email, _) = s.email(&cred, &report.id).await.unwrap();
    let blob: &BlobId = &email.attachments[0].blob_id;
    let (n, err) = requests_for!(
        s,
        s.attachment(&cred, &report.id, blob, 100)
            .await
            .unwrap_err()
    );
    assert_eq!(
        err,
        MailStoreError::TooLarge {
            size: 589,
            limit: 100
        }
    );
    assert_eq!(n, 1, "no download was attempted");
}

#[tokio::test]
async fn mailbox_directory_from_cyrus_is_in_human_order() {
    let boxes = cyrus().mailboxes(&basic()).await.unwrap();
    let paths: Vec<String> = MailboxDirectory::new(boxes)
        .entries()
        .iter()
        .map(|e| e.path.clone())
        .collect();
    assert_eq!(
        paths,
        [
            "Inbox",
            "Drafts",
            "Sent",
            "Archive",
            "Bulk",
            "Project Alpha",
            "Project Alpha/Invoices 2024",
            "Junk",
            "Trash"
        ]
    );
}

// --- failures real servers won't produce on demand -------------------------------------------

async fn fake(mode: &str, timeout: Duration) -> (JmapMailStore, fake_jmap::Hits) {
    let (addr, hits) = fake_jmap::start().await;
    (
        store(&format!("http://{addr}/{mode}/session"), timeout),
        hits,
    )
}

#[tokio::test]
async fn a_5xx_is_unavailable() {
    let (s, _) = fake("error500", Duration::from_secs(5)).await;
    assert_eq!(
        s.mailboxes(&basic()).await.unwrap_err(),
        MailStoreError::Unavailable("HTTP 500".into())
    );
}

#[tokio::test]
async fn invalid_json_is_a_protocol_error() {
    let (s, _) = fake("garbage", Duration::from_secs(5)).await;
    assert!(matches!(
        s.mailboxes(&basic()).await,
        Err(MailStoreError::Protocol(_))
    ));
}

#[tokio::test]
async fn http_429_is_rate_limited_with_retry_after() {
    let (s, _) = fake("ratelimit", Duration::from_secs(5)).await;
    assert_eq!(
        s.mailboxes(&basic()).await.unwrap_err(),
        MailStoreError::RateLimited {
            retry_after: Some(Duration::from_secs(7))
        }
    );
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let (s, _) = fake("slow", Duration::from_secs(1)).await;
    let started = std::time::Instant::now();
    let err = s.mailboxes(&basic()).await.unwrap_err();
    assert_eq!(
        err,
        MailStoreError::Unavailable("no answer within 1 s".into())
    );
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn a_method_error_is_typed() {
    let (s, _) = fake("methoderror", Duration::from_secs(5)).await;
    assert_eq!(
        s.mailboxes(&basic()).await.unwrap_err(),
        MailStoreError::Unavailable("serverFail: disk on fire".into())
    );
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = store(
        &format!("http://127.0.0.1:{port}/jmap/"),
        Duration::from_secs(2),
    );
    assert_eq!(
        s.mailboxes(&basic()).await.unwrap_err(),
        MailStoreError::Unavailable("cannot connect".into())
    );
}

#[tokio::test]
async fn the_session_is_cached_and_refetched_when_its_state_changes() {
    let (steady, hits) = fake("steady", Duration::from_secs(5)).await;
    for _ in 0..3 {
        steady.mailboxes(&basic()).await.unwrap();
    }
    assert_eq!(
        hits.session.load(Ordering::SeqCst),
        1,
        "one session fetch for three calls"
    );

    let (changing, hits) = fake("statechange", Duration::from_secs(5)).await;
    for _ in 0..3 {
        changing.mailboxes(&basic()).await.unwrap();
    }
    assert_eq!(
        hits.session.load(Ordering::SeqCst),
        3,
        "a new sessionState forces a refetch"
    );
}

#[tokio::test]
async fn a_401_drops_the_cached_session() {
    let (s, hits) = fake("unauthorized", Duration::from_secs(5)).await;
    for _ in 0..2 {
        assert_eq!(
            s.mailboxes(&basic()).await.unwrap_err(),
            MailStoreError::Unauthorized
        );
    }
    assert_eq!(hits.session.load(Ordering::SeqCst), 2);
}

/// Throttling goes through one bounded retry path: an HTTP 429 with `Retry-After` is waited
/// out, `rateLimit` SetErrors are retried for just those emails, and the report says what
/// finally happened.
#[tokio::test]
async fn throttled_changes_are_retried_and_reported_honestly() {
    use mailconnect::domain::{
        mail::changes::{ChangeOutcome, Keyword},
        mail::ids::EmailId,
    };
    let (s, hits) = fake("throttledset", Duration::from_secs(5)).await;
    let ids = [EmailId::parse("M1").unwrap(), EmailId::parse("M2").unwrap()];
    let started = std::time::Instant::now();
    let report = s
        .set_keyword(&basic(), &ids, Keyword::Seen, true)
        .await
        .unwrap();
    assert_eq!(
        report
            .outcomes
            .iter()
            .map(|(_, o)| o.clone())
            .collect::<Vec<_>>(),
        [ChangeOutcome::Changed, ChangeOutcome::Changed]
    );
    assert_eq!(
        hits.sets.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "429, rateLimit, then done"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was not honoured"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the retries are bounded"
    );
}
