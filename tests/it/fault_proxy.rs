//! A fault-injecting HTTP proxy in front of the real Cyrus server: every request goes to Cyrus
//! unless a scripted fault answers (or mangles) the next JMAP API call instead. Tests check that
//! the tools retry throttling within bounds and report what finally happened.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use mailconnect::{
    domain::{
        changes::{ChangeOutcome, Keyword},
        grant::UpstreamCredential,
        ids::EmailId,
        ports::{MailStore, MailStoreError, PageStart},
        query::{EmailQuery, PageSize},
        secret::SecretString,
    },
    outbound::jmap::{JmapMailStore, TransportConfig},
};
use poem::{
    EndpointExt, Request, Response, Route, Server, handler,
    http::{Method, StatusCode},
    listener::{Acceptor, Listener, TcpListener},
    web::Data,
};
use serde_json::{Value, json};

use crate::support::{RawMcp, spawn_app_with, testbed, text};

/// What the proxy does to one JMAP API request instead of relaying it as is.
#[derive(Debug, Clone)]
pub(crate) enum Fault {
    /// Answers with this status (429, 503…) and optionally `Retry-After` seconds.
    Status(u16, Option<u64>),
    /// Never answers within any sane timeout.
    Hang,
    /// Answers 200 with a body that is not JSON.
    InvalidJson,
    /// Relays the request to Cyrus, then loses the answer (502): the server did the work.
    LoseAnswer,
    /// Relays the request without the first `n` updates of its `Email/set` (all when `None`)
    /// and reports those as `rateLimit` SetErrors, the way a throttling server does.
    RateLimitSet(Option<usize>),
}

/// How the push stand-in answers one EventSource request.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PushAnswer {
    /// This status, no stream.
    Status(u16),
    /// This status with `Retry-After` in seconds, no stream.
    RetryAfter(u16, u64),
    /// An event stream; `pings` says whether it pings at the interval asked for.
    Stream { pings: bool },
}

/// A JMAP push server in place of Cyrus's (which answers 204): streams the tests write
/// events into, drop, or leave silent.
#[derive(Default)]
pub(crate) struct PushStandin {
    offered: bool,
    answers: VecDeque<PushAnswer>,
    /// The open stream's writing end.
    current: Option<tokio::io::WriteHalf<tokio::io::SimplexStream>>,
    /// Each EventSource request: its Authorization header and query.
    connections: Vec<(String, String)>,
    /// Counts streams, so a pinger knows when its stream was replaced.
    generation: u64,
}

#[derive(Default)]
pub(crate) struct Script {
    push: tokio::sync::Mutex<PushStandin>,
    /// Protected-resource metadata documents (RFC 9728) served by path, as the JMAP server's.
    resource_metadata: Mutex<std::collections::HashMap<String, serde_json::Value>>,
    faults: Mutex<VecDeque<Fault>>,
    /// Every request relayed: method and path.
    requests: Mutex<Vec<(String, String)>>,
    api_calls: AtomicUsize,
    email_sets: AtomicUsize,
}

pub(crate) struct Proxy {
    addr: SocketAddr,
    script: Arc<Script>,
}

impl Proxy {
    pub(crate) async fn start(faults: impl IntoIterator<Item = Fault>) -> Self {
        let script = Arc::new(Script::default());
        script.faults.lock().unwrap().extend(faults);
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .unwrap();
        let addr = acceptor.local_addr()[0]
            .as_socket_addr()
            .copied()
            .expect("a TCP address");
        let app = Route::new()
            .at("/*path", relay)
            .data(script.clone())
            .data(Upstream {
                cyrus: testbed().get("JMAP_BASE_URL").to_owned(),
                own: format!("http://{addr}"),
                http: reqwest::Client::new(),
            });
        tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
        Self { addr, script }
    }

    pub(crate) fn session_url(&self) -> String {
        format!("http://{}/jmap/", self.addr)
    }

    fn api_calls(&self) -> usize {
        self.script.api_calls.load(Ordering::SeqCst)
    }

    fn email_sets(&self) -> usize {
        self.script.email_sets.load(Ordering::SeqCst)
    }

    /// Every request relayed so far: method and path.
    pub(crate) fn requests(&self) -> Vec<(String, String)> {
        self.script.requests.lock().unwrap().clone()
    }

    /// JMAP API requests so far.
    pub(crate) fn api_requests(&self) -> usize {
        self.api_calls()
    }

    /// Serves EventSource requests from the stand-in, answering them with `answers` in turn
    /// (then with pinging streams).
    pub(crate) async fn offer_push(&self, answers: impl IntoIterator<Item = PushAnswer>) {
        let mut push = self.script.push.lock().await;
        push.offered = true;
        push.answers.extend(answers);
    }

    /// Serves `document` at `path` (`/.well-known/oauth-protected-resource…`) as the JMAP
    /// server's protected-resource metadata.
    pub(crate) fn publish_resource_metadata(&self, path: &str, document: serde_json::Value) {
        self.script
            .resource_metadata
            .lock()
            .unwrap()
            .insert(path.to_owned(), document);
    }

    /// The proxy's origin, `http://127.0.0.1:PORT`.
    pub(crate) fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Writes `event` (with `data`) to the open push stream.
    pub(crate) async fn push(&self, event: &str, data: &str) {
        use tokio::io::AsyncWriteExt as _;
        let mut push = self.script.push.lock().await;
        let stream = push.current.as_mut().expect("an open push stream");
        stream
            .write_all(format!("event: {event}\ndata: {data}\n\n").as_bytes())
            .await
            .unwrap();
    }

    /// Ends the open push stream, as a network drop would.
    pub(crate) async fn drop_push(&self) {
        self.script.push.lock().await.current = None;
    }

    /// Each EventSource request so far: its Authorization header and query.
    pub(crate) async fn push_connections(&self) -> Vec<(String, String)> {
        self.script.push.lock().await.connections.clone()
    }
}

/// Answers an EventSource request from the stand-in.
async fn push_standin(req: &Request, script: &Arc<Script>) -> Response {
    let mut push = script.push.lock().await;
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    push.connections.push((authorization, query.clone()));
    match push
        .answers
        .pop_front()
        .unwrap_or(PushAnswer::Stream { pings: true })
    {
        PushAnswer::Status(code) => Response::builder()
            .status(StatusCode::from_u16(code).unwrap())
            .finish(),
        PushAnswer::RetryAfter(code, secs) => Response::builder()
            .status(StatusCode::from_u16(code).unwrap())
            .header("retry-after", secs.to_string())
            .finish(),
        PushAnswer::Stream { pings } => {
            let (read, write) = tokio::io::simplex(64 * 1024);
            push.current = Some(write);
            push.generation += 1;
            if pings {
                let ping: u64 = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("ping="))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(30);
                let (script, generation) = (Arc::clone(script), push.generation);
                tokio::spawn(async move {
                    use tokio::io::AsyncWriteExt as _;
                    loop {
                        tokio::time::sleep(Duration::from_secs(ping)).await;
                        let mut push = script.push.lock().await;
                        if push.generation != generation {
                            return;
                        }
                        let Some(stream) = push.current.as_mut() else {
                            return;
                        };
                        let ping = format!("event: ping\ndata: {{\"interval\":{ping}}}\n\n");
                        if stream.write_all(ping.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
            Response::builder()
                .content_type("text/event-stream")
                .body(poem::Body::from_async_read(read))
        }
    }
}

#[derive(Clone)]
struct Upstream {
    cyrus: String,
    own: String,
    http: reqwest::Client,
}

#[handler]
async fn relay(
    req: &Request,
    body: Vec<u8>,
    script: Data<&Arc<Script>>,
    up: Data<&Upstream>,
) -> Response {
    script
        .requests
        .lock()
        .unwrap()
        .push((req.method().to_string(), req.uri().path().to_owned()));
    if req.method() == Method::GET {
        let published = script
            .resource_metadata
            .lock()
            .unwrap()
            .get(req.uri().path())
            .cloned();
        if let Some(document) = published {
            return Response::builder()
                .content_type("application/json")
                .body(document.to_string());
        }
    }
    if req.method() == Method::GET
        && req.uri().path().starts_with("/jmap/eventsource")
        && script.push.lock().await.offered
    {
        return push_standin(req, &script).await;
    }
    let is_api = req.method() == Method::POST && req.uri().path() == "/jmap/";
    let mut body = body;
    let mut throttled = Vec::new();
    let mut lose = false;
    if is_api {
        script.api_calls.fetch_add(1, Ordering::SeqCst);
        let is_set = String::from_utf8_lossy(&body).contains("\"Email/set\"");
        if is_set {
            script.email_sets.fetch_add(1, Ordering::SeqCst);
        }
        let fault = {
            let mut faults = script.faults.lock().unwrap();
            // A SetError fault waits for a request that sets something.
            match faults.front() {
                Some(Fault::RateLimitSet(_)) if !is_set => None,
                _ => faults.pop_front(),
            }
        };
        match fault {
            Some(Fault::Status(code, retry_after)) => {
                let mut r = Response::builder().status(StatusCode::from_u16(code).unwrap());
                if let Some(s) = retry_after {
                    r = r.header("Retry-After", s.to_string());
                }
                return r.body("throttled");
            }
            Some(Fault::Hang) => {
                tokio::time::sleep(Duration::from_secs(120)).await;
                return Response::builder()
                    .status(StatusCode::GATEWAY_TIMEOUT)
                    .finish();
            }
            Some(Fault::InvalidJson) => {
                return Response::builder()
                    .content_type("application/json")
                    .body("{\"methodResponses\": [[\"Mailbox/get\", {\"li");
            }
            Some(Fault::RateLimitSet(n)) => (body, throttled) = hold_back_updates(&body, n),
            Some(Fault::LoseAnswer) => lose = true,
            None => {}
        }
    }
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let mut forward = up
        .http
        .request(req.method().clone(), format!("{}{path}", up.cyrus))
        .body(body);
    for name in ["authorization", "content-type", "accept"] {
        if let Some(v) = req.headers().get(name) {
            forward = forward.header(name, v.as_bytes());
        }
    }
    let resp = forward.send().await.expect("Cyrus answers");
    if lose {
        return Response::builder()
            .status(StatusCode::BAD_GATEWAY)
            .body("lost");
    }
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    let mut bytes = resp.bytes().await.unwrap().to_vec();
    if !throttled.is_empty() {
        bytes = report_throttled(&bytes, &throttled);
    }
    if req.method() == Method::GET && path.starts_with("/jmap/") {
        // The session names Cyrus's own URLs; clients must come back through us.
        bytes = String::from_utf8_lossy(&bytes)
            .replace(&up.cyrus, &up.own)
            .replace(&up.cyrus.replace('/', "\\/"), &up.own)
            .into_bytes();
    }
    let mut out = Response::builder().status(StatusCode::from_u16(status).unwrap());
    if let Some(ct) = content_type {
        out = out.content_type(ct);
    }
    out.body(bytes)
}

/// The request without the first `n` updates of its `Email/set`, and their ids.
fn hold_back_updates(body: &[u8], n: Option<usize>) -> (Vec<u8>, Vec<String>) {
    let mut request: Value = serde_json::from_slice(body).unwrap();
    let mut held = Vec::new();
    for call in request["methodCalls"].as_array_mut().unwrap() {
        if call[0] == "Email/set" {
            let update = call[1]["update"].as_object_mut().unwrap();
            let ids: Vec<String> = update.keys().cloned().collect();
            for id in ids.into_iter().take(n.unwrap_or(usize::MAX)) {
                update.remove(&id);
                held.push(id);
            }
        }
    }
    (serde_json::to_vec(&request).unwrap(), held)
}

/// Cyrus's response with `rateLimit` SetErrors for the `held` ids in its `Email/set`.
fn report_throttled(body: &[u8], held: &[String]) -> Vec<u8> {
    let mut response: Value = serde_json::from_slice(body).unwrap();
    for call in response["methodResponses"].as_array_mut().unwrap() {
        if call[0] == "Email/set" {
            let args = call[1].as_object_mut().unwrap();
            let not_updated = args.entry("notUpdated").or_insert(Value::Null);
            if !not_updated.is_object() {
                // Cyrus says `null` when nothing failed.
                *not_updated = json!({});
            }
            let not_updated = not_updated.as_object_mut().unwrap();
            for id in held {
                not_updated.insert(
                    id.clone(),
                    json!({"type": "rateLimit", "description": "slow down"}),
                );
            }
        }
    }
    serde_json::to_vec(&response).unwrap()
}

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

fn writer() -> UpstreamCredential {
    UpstreamCredential::Basic {
        username: testbed().get("JMAP_WRITER_USERNAME").into(),
        password: SecretString::new(testbed().get("JMAP_WRITER_PASSWORD")),
    }
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
    proxy
        .script
        .faults
        .lock()
        .unwrap()
        .extend([Fault::RateLimitSet(Some(2)), Fault::RateLimitSet(Some(1))]);
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
    proxy
        .script
        .faults
        .lock()
        .unwrap()
        .extend(std::iter::repeat_n(Fault::RateLimitSet(None), 10));
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
    proxy.script.faults.lock().unwrap().clear();
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
        proxy
            .script
            .faults
            .lock()
            .unwrap()
            .extend([Fault::InvalidJson]);
        s.mailboxes(&alice).await.unwrap_err()
    };
    assert!(matches!(err, MailStoreError::Protocol(_)), "{err:?}");
}

/// Runs in the writer-mailbox group: it sends the writer's mail.
#[tokio::test]
async fn writer_a_submission_is_never_sent_twice_on_an_unknown_outcome() {
    use mailconnect::domain::{compose, mail::Address, submission::Submission};

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
    proxy
        .script
        .faults
        .lock()
        .unwrap()
        .push_back(Fault::Status(503, Some(1)));
    let calls = proxy.api_calls();
    let err = s.submit(&writer(), &submission).await.unwrap_err();
    assert!(
        matches!(err, MailStoreError::Unavailable(ref m) if m.contains("unknown")),
        "{err:?}"
    );
    assert_eq!(proxy.api_calls() - calls, 1, "not retried");
    assert!(crate::compose::sent_with(&mark).is_empty());

    // The server sent it and the answer was lost: reported unknown, and sent exactly once.
    proxy
        .script
        .faults
        .lock()
        .unwrap()
        .push_back(Fault::LoseAnswer);
    let calls = proxy.api_calls();
    let err = s.submit(&writer(), &submission).await.unwrap_err();
    assert!(
        matches!(err, MailStoreError::Unavailable(ref m) if m.contains("unknown")),
        "{err:?}"
    );
    assert_eq!(proxy.api_calls() - calls, 1, "not retried");
    assert_eq!(
        crate::compose::sent_with(&mark).len(),
        1,
        "sent once, not twice"
    );
}
