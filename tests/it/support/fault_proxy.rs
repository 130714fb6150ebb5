//! A fault-injecting HTTP proxy in front of the real Cyrus server: every request goes to Cyrus
//! unless a scripted fault answers (or mangles) the next JMAP API call instead; it also stands
//! in for the JMAP push (EventSource) endpoint with scripted answers.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use poem::{
    EndpointExt, Request, Response, Route, Server, handler,
    http::{Method, StatusCode},
    listener::{Acceptor, Listener, TcpListener},
    web::Data,
};
use serde_json::{Value, json};

use crate::support::testbed;

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

    /// Queues `faults` for the next JMAP API calls.
    pub(crate) fn inject(&self, faults: impl IntoIterator<Item = Fault>) {
        self.script.faults.lock().unwrap().extend(faults);
    }

    /// Drops the faults still queued.
    pub(crate) fn clear_faults(&self) {
        self.script.faults.lock().unwrap().clear();
    }

    /// The JMAP session URL through the proxy.
    pub(crate) fn session_url(&self) -> String {
        format!("http://{}/jmap/", self.addr)
    }

    /// JMAP API calls relayed or answered so far.
    pub(crate) fn api_calls(&self) -> usize {
        self.script.api_calls.load(Ordering::SeqCst)
    }

    /// `Email/set` calls seen so far.
    pub(crate) fn email_sets(&self) -> usize {
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
