//! Tool latency through mailconnect versus the same JMAP request sent directly, against the
//! seeded Cyrus testbed; upstream requests per tool call; the server's RSS. Writes a markdown
//! report to `target/bench-report.md` (copied into BENCHMARKS.md).
//!
//! Run: `scripts/testbed up && cargo bench --bench tools`.
//!
//! Fairness: Cyrus writes responses in small pieces without TCP_NODELAY, so a client that
//! delays its ACKs stalls ~40 ms per response (docs/testbed.md). Both the direct client and
//! mailconnect therefore reach Cyrus through the same loopback relay, which re-arms
//! TCP_QUICKACK before every read; the relay also counts the HTTP requests that pass.

#![allow(clippy::unwrap_used)]

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use mailconnect::outbound::jmap::{
    MAILBOX_PROPERTIES, MAX_BODY_VALUE_BYTES, SUMMARY_PROPERTIES, email_properties,
};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
};

const TOKEN: &str = "bench-token-0123456789abcdef";

fn testbed() -> HashMap<String, String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/testbed/env");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/testbed up first", path.display()));
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Relays bytes both ways, re-arming TCP_QUICKACK before each read; counts request starts.
async fn relay(upstream: SocketAddr, requests: Arc<AtomicU64>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                continue;
            };
            let requests = Arc::clone(&requests);
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = async {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let _ = socket2::SockRef::from(cr.as_ref()).set_tcp_quickack(true);
                        let n = match cr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        // Requests are not pipelined: a chunk opening with a method starts one.
                        if buf.starts_with(b"POST ") || buf.starts_with(b"GET ") {
                            requests.fetch_add(1, Ordering::Relaxed);
                        }
                        if sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = sw.shutdown().await;
                };
                let down = async {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let _ = socket2::SockRef::from(sr.as_ref()).set_tcp_quickack(true);
                        let n = match sr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = cw.shutdown().await;
                };
                tokio::join!(up, down);
            });
        }
    });
    addr
}

struct Server {
    child: Child,
    addr: SocketAddr,
    _data: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._data);
    }
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn start_server(session_url: &str, tb: &HashMap<String, String>) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let data = std::env::temp_dir().join(format!("mailconnect-bench-{port}"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailconnect"))
        .env("MAILCONNECT_LISTEN", addr.to_string())
        .env("MAILCONNECT_DATA_DIR", &data)
        .env("MAILCONNECT_JMAP_SESSION_URL", session_url)
        .env("MAILCONNECT_SELF_HOST_TOKEN", TOKEN)
        .env("MAILCONNECT_UPSTREAM_USERNAME", &tb["JMAP_USERNAME"])
        .env("MAILCONNECT_UPSTREAM_PASSWORD", &tb["JMAP_PASSWORD"])
        .env(
            "MAILCONNECT_LOG",
            std::env::var("MAILCONNECT_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .env(
            "MAILCONNECT_WORKER_THREADS",
            std::env::var("MAILCONNECT_WORKER_THREADS").unwrap_or_else(|_| "1".into()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start mailconnect");
    let http = reqwest::Client::new();
    for _ in 0..100 {
        if http
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
            .is_ok()
        {
            return Server {
                child,
                addr,
                _data: data,
            };
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("mailconnect did not start");
}

/// One way of doing the same work: a JMAP batch sent directly, or an MCP tools/call.
#[derive(Clone)]
enum Call {
    Direct {
        url: String,
        body: Value,
    },
    Mcp {
        url: String,
        tool: &'static str,
        args: Value,
    },
    /// A 2025-11-25 client: the same call inside an `Mcp-Session-Id` session (SSE framing).
    McpLegacy {
        url: String,
        session: String,
        tool: &'static str,
        args: Value,
    },
}

impl Call {
    async fn run(&self, http: &reqwest::Client, basic: &(String, String)) -> Duration {
        let started = Instant::now();
        match self {
            Self::Direct { url, body } => {
                let resp = http
                    .post(url)
                    .basic_auth(&basic.0, Some(&basic.1))
                    .json(body)
                    .send()
                    .await
                    .expect("direct request");
                assert!(resp.status().is_success());
                let v: Value = resp.json().await.expect("json");
                assert!(v["methodResponses"].is_array());
            }
            Self::Mcp { url, tool, args } => {
                let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
                "name": tool, "arguments": args,
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "0"},
                    "io.modelcontextprotocol/clientCapabilities": {}
                }}});
                let resp = http
                    .post(url)
                    .bearer_auth(TOKEN)
                    .header("Accept", "application/json, text/event-stream")
                    .header("MCP-Protocol-Version", "2026-07-28")
                    .header("Mcp-Method", "tools/call")
                    .header("Mcp-Name", *tool)
                    .json(&body)
                    .send()
                    .await
                    .expect("mcp request");
                assert!(resp.status().is_success());
                let v: Value = resp.json().await.expect("json");
                assert_eq!(v["result"]["isError"], false, "{v}");
            }
            Self::McpLegacy {
                url,
                session,
                tool,
                args,
            } => {
                // In-flight requests of one session need distinct JSON-RPC ids.
                static NEXT_ID: AtomicU64 = AtomicU64::new(1);
                let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
                let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": args}});
                let resp = http
                    .post(url)
                    .bearer_auth(TOKEN)
                    .header("Accept", "application/json, text/event-stream")
                    .header("MCP-Protocol-Version", "2025-11-25")
                    .header("Mcp-Session-Id", session)
                    .json(&body)
                    .send()
                    .await
                    .expect("mcp request");
                assert!(resp.status().is_success());
                let text = resp.text().await.expect("body");
                let data = text
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .rfind(|l| l.trim_start().starts_with('{'))
                    .unwrap_or_else(|| panic!("no SSE data frame in {text:?}"));
                let v: Value = serde_json::from_str(data).expect("json");
                assert_eq!(v["result"]["isError"], false, "{v}");
            }
        }
        started.elapsed()
    }
}

/// Opens a 2025-11-25 session (initialize + initialized) and returns its id.
async fn legacy_session(url: &str) -> String {
    let http = reqwest::Client::new();
    let init = http
        .post(url)
        .bearer_auth(TOKEN)
        .header("Accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}}}))
        .send()
        .await
        .expect("initialize");
    let session = init.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let _ = init.text().await;
    http.post(url)
        .bearer_auth(TOKEN)
        .header("Accept", "application/json, text/event-stream")
        .header("Mcp-Session-Id", &session)
        .json(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .send()
        .await
        .expect("initialized");
    session
}

/// `total` calls at `concurrency` on `http` (a client kept across rounds, so both sides run on
/// warm keep-alive connections), returning every latency.
async fn measure(
    http: &reqwest::Client,
    call: &Call,
    concurrency: usize,
    total: usize,
    basic: &(String, String),
) -> Vec<Duration> {
    let per_task = total / concurrency;
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (call, http, basic) = (call.clone(), http.clone(), basic.clone());
            tokio::spawn(async move {
                let mut out = Vec::with_capacity(per_task);
                for _ in 0..per_task {
                    out.push(call.run(&http, &basic).await);
                }
                out
            })
        })
        .collect();
    let mut all = Vec::with_capacity(total);
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let tb = testbed();
    let basic = (tb["JMAP_USERNAME"].clone(), tb["JMAP_PASSWORD"].clone());
    let cyrus: SocketAddr = tb["JMAP_BASE_URL"]
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let relayed = Arc::new(AtomicU64::new(0));
    let relay_addr = relay(cyrus, Arc::clone(&relayed)).await;
    let session_url = format!("http://{relay_addr}/jmap/");
    let api_url = format!("http://{relay_addr}/jmap/");
    let server = start_server(&session_url, &tb).await;
    let mcp_url = format!("http://{}/mcp", server.addr);
    let account = tb["JMAP_ACCOUNT_ID"].clone();
    let using = json!(["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"]);
    // The same properties the adapter asks for, so "direct" is exactly the request it sends.
    let mailbox_props = json!(MAILBOX_PROPERTIES);
    let summary_props = json!(SUMMARY_PROPERTIES);
    let email_props = json!(email_properties());

    // The email get_email reads: the Q1 report (text body and a PDF).
    let http = reqwest::Client::new();
    let found: Value = http
        .post(&api_url)
        .basic_auth(&basic.0, Some(&basic.1))
        .json(&json!({"using": using, "methodCalls": [["Email/query", {"accountId": account, "filter": {"subject": "Quarterly report Q1"}, "sort": [{"property": "receivedAt", "isAscending": true}], "limit": 1}, "q"]]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let email_id = found["methodResponses"][0][1]["ids"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let mailbox_get =
        json!(["Mailbox/get", {"accountId": account, "properties": mailbox_props}, "mailboxes"]);

    let search_direct = Call::Direct {
        url: api_url.clone(),
        body: json!({"using": using, "methodCalls": [
                    ["Email/query", {"accountId": account, "filter": {"text": "budget"}, "sort": [{"property": "receivedAt", "isAscending": false}], "collapseThreads": false, "calculateTotal": true, "limit": 20}, "query"],
                    ["Email/get", {"accountId": account, "#ids": {"resultOf": "query", "name": "Email/query", "path": "/ids"}, "properties": summary_props}, "emails"],
                    mailbox_get]}),
    };
    let session = legacy_session(&mcp_url).await;
    let cases: Vec<(&str, Call, Call)> = vec![
        (
            "list_mailboxes",
            Call::Direct {
                url: api_url.clone(),
                body: json!({"using": using, "methodCalls": [mailbox_get]}),
            },
            Call::Mcp {
                url: mcp_url.clone(),
                tool: "list_mailboxes",
                args: json!({}),
            },
        ),
        (
            "search_email",
            search_direct.clone(),
            Call::Mcp {
                url: mcp_url.clone(),
                tool: "search_email",
                args: json!({"text": "budget"}),
            },
        ),
        (
            "get_email",
            Call::Direct {
                url: api_url.clone(),
                body: json!({"using": using, "methodCalls": [
                    ["Email/get", {"accountId": account, "ids": [email_id], "properties": email_props, "fetchTextBodyValues": true, "fetchHTMLBodyValues": true, "maxBodyValueBytes": MAX_BODY_VALUE_BYTES}, "email"],
                    mailbox_get]}),
            },
            Call::Mcp {
                url: mcp_url.clone(),
                tool: "get_email",
                args: json!({"email_id": email_id}),
            },
        ),
        (
            "search_email, 2025-11-25 session",
            search_direct,
            Call::McpLegacy {
                url: mcp_url.clone(),
                session,
                tool: "search_email",
                args: json!({"text": "budget"}),
            },
        ),
    ];

    // BENCH_ONLY=substring runs only the matching cases (for investigating one of them).
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let cases: Vec<_> = cases
        .into_iter()
        .filter(|(name, _, _)| name.contains(&only))
        .collect();
    // One client per side for the whole run; warm-up at the highest concurrency opens every
    // connection (Cyrus forks an httpd per connection, mailconnect fills its upstream pool).
    let client = || {
        reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .build()
            .unwrap()
    };
    let (direct_http, mcp_http) = (client(), client());
    for (name, direct, mcp) in &cases {
        eprintln!("warming up {name}");
        let c: usize = std::env::var("BENCH_WARM_C")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(64);
        measure(&direct_http, direct, c, c * 10, &basic).await;
        measure(&mcp_http, mcp, c, c * 10, &basic).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss = rss_kib(server.child.id(), "VmRSS:");

    let mut report = String::from(
        "| tool | concurrency | calls | direct p50 ms | mailconnect p50 ms | ratio p50 | direct p99 ms | mailconnect p99 ms | ratio p99 | direct calls/s | mailconnect calls/s |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    let mut upstream = String::from(
        "| tool | MCP calls | upstream HTTP requests | per call |\n| --- | --- | --- | --- |\n",
    );
    for (name, direct, mcp) in &cases {
        let before = relayed.load(Ordering::SeqCst);
        measure(&mcp_http, mcp, 1, 100, &basic).await;
        let sent = relayed.load(Ordering::SeqCst) - before;
        upstream.push_str(&format!(
            "| {name} | 100 | {sent} | {:.2} |\n",
            sent as f64 / 100.0
        ));
        for (concurrency, rounds, per_round) in [(1usize, 6usize, 100usize), (64, 4, 640)] {
            // Alternate rounds so drift on a shared 2-core machine hits both sides alike.
            let (mut d, mut m) = (Vec::new(), Vec::new());
            let (mut d_time, mut m_time) = (Duration::ZERO, Duration::ZERO);
            for _ in 0..rounds {
                let started = Instant::now();
                d.extend(measure(&direct_http, direct, concurrency, per_round, &basic).await);
                d_time += started.elapsed();
                let started = Instant::now();
                m.extend(measure(&mcp_http, mcp, concurrency, per_round, &basic).await);
                m_time += started.elapsed();
            }
            let (d_rate, m_rate) = (
                d.len() as f64 / d_time.as_secs_f64(),
                m.len() as f64 / m_time.as_secs_f64(),
            );
            d.sort();
            m.sort();
            let (d50, m50, d99, m99) = (
                percentile(&d, 0.5),
                percentile(&m, 0.5),
                percentile(&d, 0.99),
                percentile(&m, 0.99),
            );
            report.push_str(&format!(
                "| {name} | {concurrency} | {} | {} | {} | {:.2} | {} | {} | {:.2} | {d_rate:.0} | {m_rate:.0} |\n",
                m.len(),
                ms(d50),
                ms(m50),
                m50.as_secs_f64() / d50.as_secs_f64(),
                ms(d99),
                ms(m99),
                m99.as_secs_f64() / d99.as_secs_f64(),
            ));
            eprintln!(
                "{name} c={concurrency}: direct p50 {} p99 {} | mailconnect p50 {} p99 {}",
                ms(d50),
                ms(d99),
                ms(m50),
                ms(m99)
            );
        }
    }
    let loaded_rss = rss_kib(server.child.id(), "VmHWM:");
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let threads = std::env::var("MAILCONNECT_WORKER_THREADS").unwrap_or_else(|_| "1".into());
    let text = format!(
        "Machine: {cores} cores; Cyrus, the relay, mailconnect and the load generator share them. mailconnect worker threads: {threads}.\n\n## Latency (ms)\n\n{report}\n## Upstream requests per tool call (counted at the relay)\n\n{upstream}\n## Server memory\n\n| state | RSS |\n| --- | --- |\n| idle, after warm-up | {:.1} MiB |\n| peak, after the concurrency-64 runs (VmHWM) | {:.1} MiB |\n",
        idle_rss as f64 / 1024.0,
        loaded_rss as f64 / 1024.0
    );
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-report.md");
    std::fs::write(&out, &text).unwrap();
    println!("{text}");
    drop(server);
}
