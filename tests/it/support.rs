//! Shared test support: the Cyrus testbed's settings, an in-process server, a raw MCP client;
//! and, one module a subject, the helpers the test modules share (no test module imports
//! another):
//! - [`oauth`]: the stand-in upstream, the cookie-keeping browser, the OAuth client, MCP calls
//!   with a bearer token, signing in to the settings page;
//! - [`binary`]: the real binary on a free port, its log;
//! - [`chromium`]: running the playwright-core scripts in headless Chromium;
//! - [`compose`]: the writer app, connected clients with capabilities, drafts, the review page,
//!   what the submission stub recorded;
//! - [`mail`]: the writer's mailbox (LMTP delivery, JMAP directly), the listen stream;
//! - [`fault_proxy`]: the fault-injecting proxy in front of Cyrus (and its push stand-in);
//! - [`fake_jmap`]: a misbehaving JMAP server;
//! - [`node`]: running Node programs (the repository, `PATH`, what setup scripts install);
//! - [`sinks`]: the loopback HTTPS webhook / Poke sink and the background-delivery flags.

pub mod binary;
pub mod chromium;
pub mod compose;
pub mod fake_jmap;
pub mod fault_proxy;
pub mod mail;
pub mod node;
pub mod oauth;
pub mod sinks;

use std::{collections::HashMap, net::SocketAddr, path::PathBuf, sync::OnceLock, time::Duration};

use mailconnect::config::{Cli, Config};
use mailconnect::inbound::listener::NoDelayAcceptor;
use poem::Server;
use serde_json::{Value, json};

/// The running Cyrus testbed (`scripts/testbed up`), read from `target/testbed/env`.
pub struct Testbed(HashMap<String, String>);

impl Testbed {
    pub fn get(&self, key: &str) -> &str {
        self.0
            .get(key)
            .unwrap_or_else(|| panic!("{key} missing from target/testbed/env"))
    }
}

/// The testbed's settings. Panics (fails the test) when it is not running: a skipped
/// integration test would prove nothing.
pub fn testbed() -> &'static Testbed {
    static TESTBED: OnceLock<Testbed> = OnceLock::new();
    TESTBED.get_or_init(|| {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/testbed/env");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}. The Cyrus JMAP testbed is not running: start it with `scripts/testbed up` (scripts/test does this)",
                path.display()
            )
        });
        Testbed(
            text.lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .collect(),
        )
    })
}

pub const TOKEN: &str = "it-test-token-0123456789abcdef";

/// A server started in-process on a free loopback port.
pub struct TestApp {
    pub addr: SocketAddr,
    pub _data: tempdir::Dir,
    pub server: tokio::task::JoinHandle<std::io::Result<()>>,
    pub stop: tokio::sync::oneshot::Sender<()>,
    pub args: Vec<String>,
}

impl TestApp {
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server and starts it again on the same port and vault: a process restart.
    ///
    /// rmcp's legacy-session workers outlive a graceful shutdown until the session idles out
    /// (`--session-idle-secs`) and keep the old vault open (locked); the retries wait up to 10 s
    /// for that, and the data directory is never touched in between.
    pub async fn restart(self) -> Self {
        self.restart_with(&[], |_| {}).await
    }

    /// [`Self::restart`], running `between` on the stopped server's data directory and
    /// starting again with `extra` flags added (e.g. moved to another store).
    pub async fn restart_with(
        self,
        extra: &[&str],
        between: impl FnOnce(&std::path::Path),
    ) -> Self {
        let Self {
            addr,
            _data: data,
            server,
            stop,
            mut args,
        } = self;
        let _ = stop.send(());
        let _ = server.await;
        between(&data.0);
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        for _ in 0..200 {
            if let Some((server, stop)) = start_on(addr, &data.0, &args).await {
                return Self {
                    addr,
                    _data: data,
                    server,
                    stop,
                    args,
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the app did not restart on {addr}");
    }
}

/// A bearer token Cyrus accepts now (the testbed's own token may have expired).
pub fn mint_jwt() -> String {
    let tb = testbed();
    let out = std::process::Command::new("python3")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/testbed.d/mint-jwt.py"))
        .args([tb.get("JMAP_JWT_HMAC_KEY_B64"), tb.get("JMAP_USERNAME")])
        .output()
        .expect("python3 runs mint-jwt.py");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

pub mod tempdir {
    /// A temporary directory removed on drop.
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new(tag: &str) -> Self {
            let n: u64 = rand::random();
            let p = std::env::temp_dir().join(format!("mailconnect-{tag}-{n:x}"));
            std::fs::create_dir_all(&p).expect("temp dir");
            Self(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl TestApp {
    pub fn mcp_url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }
}

/// Starts the app against `session_url` with Basic credentials of the testbed user and `extra`
/// flags.
pub async fn spawn_app_with(session_url: &str, extra: &[&str]) -> TestApp {
    let tb = testbed();
    let mut args = vec![
        "--jmap-session-url".to_owned(),
        session_url.into(),
        "--self-host-token".into(),
        TOKEN.into(),
        "--upstream-username".into(),
        tb.get("JMAP_USERNAME").into(),
        "--upstream-password".into(),
        tb.get("JMAP_PASSWORD").into(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    spawn_configured(tempdir::Dir::new("app"), &args).await
}

/// Starts the app with exactly `args` (plus data dir, listen address and public URL) on a
/// free loopback port, keeping `data` (the vault) alive with it.
pub async fn spawn_configured(data: tempdir::Dir, args: &[String]) -> TestApp {
    let acceptor = NoDelayAcceptor::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind a free port");
    let addr = acceptor.socket_addr().expect("a TCP address");
    drop(acceptor);
    let (server, stop) = start_on(addr, &data.0, args).await.expect("the app starts");
    TestApp {
        addr,
        _data: data,
        server,
        stop,
        args: args.to_vec(),
    }
}

type Running = (
    tokio::task::JoinHandle<std::io::Result<()>>,
    tokio::sync::oneshot::Sender<()>,
);

/// One start attempt on `addr` with the vault in `data`; `None` while the port or the vault
/// file is still held by a previous server.
async fn start_on(addr: SocketAddr, data: &std::path::Path, args: &[String]) -> Option<Running> {
    let acceptor = NoDelayAcceptor::bind(addr).await.ok()?;
    let mut full = vec![
        "mailconnect".to_owned(),
        "--data-dir".into(),
        data.display().to_string(),
        "--listen".into(),
        addr.to_string(),
    ];
    if !args.iter().any(|a| a == "--public-url") {
        full.extend(["--public-url".into(), format!("http://{addr}")]);
    }
    full.extend(args.iter().cloned());
    let config =
        Config::resolve(Cli::load(full).expect("test flags parse")).expect("test config is valid");
    let app = mailconnect::app::build(&config).await.ok()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        Server::new_with_acceptor(acceptor).run_with_graceful_shutdown(
            mailconnect::inbound::http::access_log(app.routes),
            async move {
                let _ = stopped.await;
            },
            Some(Duration::from_millis(500)),
        ),
    );
    Some((server, stop))
}

/// Starts the app against the Cyrus testbed.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(testbed().get("JMAP_SESSION_URL"), &[]).await
}

/// A raw MCP client over HTTP: exact wire shapes, for snapshots and protocol edge cases.
/// (Real SDK clients are exercised in `sdk_clients`.)
pub struct RawMcp {
    pub http: reqwest::Client,
    pub url: String,
    pub token: String,
    pub session: Option<String>,
    /// The `initialize` result of a legacy session.
    pub initialized: Option<Value>,
    next_id: u64,
}

impl RawMcp {
    pub fn new(url: String) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            url,
            token: TOKEN.into(),
            session: None,
            initialized: None,
            next_id: 1,
        }
    }

    /// A legacy (2025-11-25) session: `initialize` + `notifications/initialized`.
    pub async fn legacy(url: String) -> Self {
        Self::legacy_with(url, TOKEN).await
    }

    /// A legacy session opened with `token`.
    pub async fn legacy_with(url: String, token: &str) -> Self {
        let mut c = Self::new(url);
        c.token = token.to_owned();
        let init = c
            .post(
                json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "it", "version": "0"}}}),
            )
            .await;
        assert_eq!(init.status, 200, "initialize: {:?}", init.body);
        c.session = init.session.clone();
        assert!(
            c.session.is_some(),
            "a legacy initialize gets an Mcp-Session-Id"
        );
        c.initialized = Some(init.json()["result"].clone());
        let note = c
            .post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        assert_eq!(note.status, 202);
        c
    }

    pub async fn post(&mut self, body: Value) -> Reply {
        let mut req = self
            .http
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream")
            .header("Authorization", format!("Bearer {}", self.token));
        if let Some(s) = &self.session {
            req = req.header("Mcp-Session-Id", s);
        }
        let resp = req
            .body(body.to_string())
            .send()
            .await
            .expect("request sent");
        Reply::read(resp).await
    }

    /// The session's GET stream (server-initiated messages), open.
    pub async fn stream(&self) -> reqwest::Response {
        let r = self
            .http
            .get(&self.url)
            .bearer_auth(&self.token)
            .header("accept", "text/event-stream")
            .header(
                "mcp-session-id",
                self.session.as_deref().unwrap_or_default(),
            )
            .header("mcp-protocol-version", "2025-11-25")
            .send()
            .await
            .expect("the stream opens");
        assert_eq!(r.status(), 200);
        r
    }

    /// A JSON-RPC request in this client's era; returns the whole response message.
    pub async fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let reply = self
            .post(json!({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}))
            .await;
        assert_eq!(reply.status, 200, "{method}: {:?}", reply.body);
        reply.json()
    }

    /// `tools/call`, returning the `result` object (panics on a JSON-RPC error).
    pub async fn call(&mut self, tool: &str, arguments: Value) -> Value {
        let msg = self
            .request("tools/call", json!({"name": tool, "arguments": arguments}))
            .await;
        msg.get("result")
            .cloned()
            .unwrap_or_else(|| panic!("{tool}: JSON-RPC error {msg}"))
    }
}

/// An HTTP reply from `/mcp`, with SSE framing undone.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub session: Option<String>,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Reply {
    pub async fn read(resp: reqwest::Response) -> Self {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let session = headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = resp.text().await.unwrap_or_default();
        Self {
            status,
            session,
            headers,
            body,
        }
    }

    /// The JSON-RPC message: the body, or the last `data:` frame of an SSE body.
    pub fn json(&self) -> Value {
        let is_sse = self
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("text/event-stream"));
        let raw = if is_sse {
            self.body
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim)
                .rfind(|l| l.starts_with('{'))
                .unwrap_or_default()
                .to_owned()
        } else {
            self.body.clone()
        };
        serde_json::from_str(&raw).unwrap_or_else(|e| panic!("not JSON-RPC ({e}): {}", self.body))
    }
}

/// The `_meta` a 2026-07-28 MCP client sends with every request, declaring `capabilities`.
pub fn meta(capabilities: Value) -> Value {
    json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
           "io.modelcontextprotocol/clientInfo": {"name": "it", "version": "1"},
           "io.modelcontextprotocol/clientCapabilities": capabilities})
}

/// A 2026-07-28 (stateless) MCP request `method` to `{base}/mcp` with bearer `token`: the
/// method (and `name`, of a tool or resource) repeated in headers as the transport asks, and
/// `params` carrying [`meta`] without capabilities unless they have a `_meta` of their own.
pub fn mcp_request(
    base: &str,
    token: &str,
    (id, method, name): (u64, &str, Option<&str>),
    mut params: Value,
) -> reqwest::RequestBuilder {
    if params.get("_meta").is_none() {
        params["_meta"] = meta(json!({}));
    }
    let mut request = reqwest::Client::new()
        .post(format!("{base}/mcp"))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method);
    if let Some(name) = name {
        request = request.header("mcp-name", name);
    }
    request.json(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
}

/// Sends `request` and reads its answer as JSON.
pub async fn send_json(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// The value of header `name` of `r` (which must have it).
pub fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()[name].to_str().unwrap()
}

/// The text of a tool result's first content block.
pub fn text(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or_default()
}
