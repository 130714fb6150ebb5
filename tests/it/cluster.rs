//! Three instances on one PostgreSQL behind HAProxy, configured as `deploy/haproxy.cfg` ships
//! (round robin: consecutive requests of one browser land on different instances).

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::json;

use crate::support::{
    TestApp,
    oauth::{Browser, Client, Standin, call_tool_at, spawn_oauth_app, turn_on},
    tempdir::Dir,
};

const CALLBACK: &str = "http://127.0.0.1:41999/callback";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// HAProxy with the shipped configuration, listening on `port` in front of `servers`;
/// stopped by PID when dropped.
struct Haproxy {
    child: Child,
    _dir: Dir,
}

impl Haproxy {
    async fn start(port: u16, servers: &[String]) -> Self {
        let shipped =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/haproxy.cfg"))
                .unwrap();
        let mut config = String::new();
        for line in shipped.lines() {
            let trimmed = line.trim_start();
            if trimmed.starts_with("bind ") {
                config.push_str(&format!("    bind 127.0.0.1:{port}\n"));
            } else if trimmed.starts_with("server ") {
                if !config.contains("server mc") {
                    for (n, addr) in servers.iter().enumerate() {
                        config.push_str(&format!(
                            "    server mc{} {addr} check inter 1s fall 2 rise 1\n",
                            n + 1
                        ));
                    }
                }
            } else if trimmed.starts_with("http-request set-header X-Forwarded-Proto") {
                // The tests speak plain HTTP on loopback.
            } else {
                config.push_str(line);
                config.push('\n');
            }
        }
        let dir = Dir::new("haproxy");
        let path = dir.0.join("haproxy.cfg");
        std::fs::write(&path, config).unwrap();
        let bin = std::env::var("HAPROXY_BIN").unwrap_or_else(|_| "/usr/sbin/haproxy".into());
        let mut child = Command::new(bin)
            .args(["-db", "-f"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy starts (scripts/pgbed installs it)");
        for _ in 0..100 {
            if reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Self { child, _dir: dir };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("haproxy did not answer on {port}");
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Three instances on one fresh database behind HAProxy, all under the proxy's public URL.
async fn cluster(standin: &Standin) -> (Haproxy, Vec<TestApp>, String) {
    let url = mailconnect::outbound::postgres::testing::fresh_database().await;
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let mut apps = Vec::new();
    for _ in 0..3 {
        apps.push(spawn_oauth_app(standin, &["--storage", &url, "--public-url", &public]).await);
    }
    let servers: Vec<String> = apps.iter().map(|a| a.addr.to_string()).collect();
    (Haproxy::start(port, &servers).await, apps, public)
}

/// The connect flow, a settings sign-in and change, and tool calls through the proxy: every
/// step may land on another instance, and none is lost.
#[tokio::test]
async fn a_connect_flow_and_the_settings_page_span_three_instances() {
    let standin = Standin::start();
    let (_proxy, apps, public) = cluster(&standin).await;
    let client = Client::register_at(&public, CALLBACK).await;
    let mut browser = Browser::default();
    // Several flows, so each step lands on each instance at least once.
    let mut tokens = Vec::new();
    for _ in 0..3 {
        let returned = client.authorize(&mut browser).await;
        tokens.push(client.exchange(&returned).await);
    }
    let t = tokens.pop().unwrap();
    for app in &apps {
        let (status, body) = call_tool_at(&app.base(), &t.access, "get_identity", json!({})).await;
        assert_eq!(status, 200, "{body}");
    }
    // Settings: sign in and turn organize on, each request wherever the proxy sends it.
    let grant = t.access.split('.').next().unwrap().to_owned();
    turn_on(&mut browser, &public, &grant, &["organize"]).await;
    let page = browser.get(&format!("{public}/settings")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("organize"), "{}", page.body);
    // The change holds on every instance.
    for app in &apps {
        let (status, body) =
            call_tool_at(&app.base(), &t.access, "list_mailboxes", json!({})).await;
        assert_eq!(status, 200, "{body}");
    }
}

/// A restart of every instance in the middle of a sign-in loses nothing: the step is in
/// storage, not in the process that showed the consent page.
#[tokio::test]
async fn a_sign_in_survives_the_restart_of_the_instance_that_began_it() {
    let standin = Standin::start();
    let (_proxy, mut apps, public) = cluster(&standin).await;
    let client = Client::register_at(&public, CALLBACK).await;
    let mut browser = Browser::default();
    let (verifier, challenge) = crate::support::oauth::pkce();
    let consent = browser.get(&client.authorize_url(&challenge, &[])).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    for app in std::mem::take(&mut apps) {
        apps.push(app.restart().await);
    }
    let decision = browser.decide_consent(&public, &consent, "approve").await;
    assert_eq!(decision.status, 303, "{}", decision.body);
    let upstream = browser.get(&decision.location()).await;
    let callback = browser.get(&upstream.location()).await;
    assert_eq!(callback.status, 303, "{}", callback.body);
    let returned = crate::support::oauth::Returned {
        params: crate::support::oauth::query(&callback.location()),
        url: callback.location(),
        verifier,
    };
    let t = client.exchange(&returned).await;
    let (status, body) = call_tool_at(&public, &t.access, "get_identity", json!({})).await;
    assert_eq!(status, 200, "{body}");
}

/// 64 tool calls at once for one grant whose upstream token is due, spread over the three
/// instances: exactly one upstream refresh (the stand-in, like Fastmail, ends the whole grant
/// when a refresh token is used twice), and every call answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_calls_over_three_instances_make_one_upstream_refresh() {
    let standin = Standin::start_with(&["--access-ttl", "8"]);
    let (_proxy, apps, public) = cluster(&standin).await;
    let client = Client::register_at(&public, CALLBACK).await;
    let t = client.connect().await;
    // A quarter of the 8 s lifetime before its end, the token is due; the renewed one is not
    // due again for 6 s, time enough for all 64 calls.
    tokio::time::sleep(Duration::from_millis(6300)).await;
    // The refresh takes a while, so every instance sees the token due before it is renewed.
    standin
        .fault(json!({"grant_type": "refresh_token", "kind": "slow", "count": 1, "delay_ms": 800}))
        .await;
    let calls: Vec<_> = (0..64)
        .map(|n| {
            let base = apps[n % apps.len()].base();
            let access = t.access.clone();
            tokio::spawn(
                async move { call_tool_at(&base, &access, "get_identity", json!({})).await },
            )
        })
        .collect();
    for call in calls {
        let (status, body) = call.await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(standin.token_requests("refresh_token").await, 1);
}

/// An instance's log, appended to a file in its data directory.
fn log_file(data: &Dir) -> Stdio {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(data.0.join("server.log"))
        .unwrap()
        .into()
}

/// Sends SIGTERM to `child` and waits (up to 20 s) for it to exit.
async fn stop_gracefully(child: &mut Child) -> std::process::ExitStatus {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    for _ in 0..200 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("an instance did not stop within 20 s of SIGTERM");
}

/// A rolling restart under load: three real instances behind HAProxy, each in turn sent
/// SIGTERM (it drains and exits 0) and started again, while tool calls and client refresh
/// rotations go through the proxy. No request fails and the grant survives.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_restart_under_load_fails_no_request() {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    };

    use crate::support::binary::spawn_binary_at;

    let standin = Standin::start();
    let url = mailconnect::outbound::postgres::testing::fresh_database().await;
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let data: Vec<Dir> = (0..3).map(|_| Dir::new("rolling")).collect();
    let flags = ["--storage", url.as_str()];
    let mut servers = Vec::new();
    for (p, d) in ports.iter().zip(&data) {
        servers.push(
            spawn_binary_at(
                *p,
                Some(&public),
                &d.0,
                &standin,
                &flags,
                "warn",
                log_file(d),
            )
            .await,
        );
    }
    let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let _proxy = Haproxy::start(port, &addrs).await;
    let client = Client::register_at(&public, CALLBACK).await;
    let t = client.connect().await;

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (stop, done, failures) = (stop.clone(), done.clone(), failures.clone());
        let (public, access) = (public.clone(), t.access.clone());
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let (status, body) =
                    call_tool_at(&public, &access, "get_identity", json!({})).await;
                if status == 200 {
                    done.fetch_add(1, Ordering::Relaxed);
                } else {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("tool call: {status} {body}"));
                }
            }
        }));
    }
    let rotations = {
        let (stop, failures, client) = (stop.clone(), failures.clone(), client.clone());
        let mut refresh = t.refresh.clone();
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let r = client.refresh(&refresh).await;
                let status = r.status();
                let body: serde_json::Value = r.json().await.unwrap_or_default();
                match body["refresh_token"].as_str() {
                    Some(next) if status == 200 => {
                        refresh = next.to_owned();
                        n += 1;
                    }
                    _ => failures
                        .lock()
                        .unwrap()
                        .push(format!("refresh: {status} {body}")),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            n
        })
    };

    for (i, server) in servers.iter_mut().enumerate() {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let status = stop_gracefully(server).await;
        assert_eq!(status.code(), Some(0), "instance {i} on SIGTERM: {status}");
        *server = spawn_binary_at(
            ports[i],
            Some(&public),
            &data[i].0,
            &standin,
            &flags,
            "warn",
            log_file(&data[i]),
        )
        .await;
        // Back in rotation after one health check.
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let rotated = rotations.await.unwrap();
    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} failed: {failures:#?}",
        failures.len()
    );
    let done = done.load(Ordering::Relaxed);
    assert!(
        done > 100 && rotated > 10,
        "too little load to say: {done} calls, {rotated} rotations"
    );
    for mut server in servers {
        let _ = server.kill();
        let _ = server.wait();
    }
}

/// A request as a client with retries makes it: a 502/503 or a refused connection (the
/// instance it reached was killed) is tried again, three times at most.
async fn with_retries<T, F, Fut>(mut attempt: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let mut last = String::new();
    for _ in 0..4 {
        match attempt().await {
            Ok(done) => return Ok(done),
            Err(why) => last = why,
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Err(last)
}

/// Chaos: for two minutes, one of three real instances is killed with SIGKILL every 20 s and
/// started again, under a load of new connections, tool calls and refresh rotations through
/// HAProxy. A client that retries what was in flight on the killed instance loses nothing: no
/// request fails in the end, and every grant made during the run still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_an_instance_killed_every_20_s_loses_no_grant_and_fails_no_request() {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    };

    use crate::support::binary::spawn_binary_at;

    let standin = Standin::start();
    let url = mailconnect::outbound::postgres::testing::fresh_database().await;
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let data: Vec<Dir> = (0..3).map(|_| Dir::new("chaos")).collect();
    let flags = ["--storage", url.as_str()];
    let mut servers = Vec::new();
    for (p, d) in ports.iter().zip(&data) {
        servers.push(
            spawn_binary_at(
                *p,
                Some(&public),
                &d.0,
                &standin,
                &flags,
                "warn",
                log_file(d),
            )
            .await,
        );
    }
    let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let _proxy = Haproxy::start(port, &addrs).await;
    let client = Client::register_at(&public, CALLBACK).await;

    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut workers = Vec::new();
    for _ in 0..3 {
        let (stop, calls, failures) = (stop.clone(), calls.clone(), failures.clone());
        let (public, client) = (public.clone(), client.clone());
        workers.push(tokio::spawn(async move {
            let mut grants = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                // A new connection: the whole OAuth flow through the proxy, retried whole.
                let Ok(mut t) = with_retries(|| {
                    let client = client.clone();
                    async move {
                        // The flow's helper asserts each step: a step the killed instance
                        // dropped fails it, and the client starts over.
                        let flow = tokio::spawn(async move { client.connect().await });
                        match tokio::time::timeout(Duration::from_secs(20), flow).await {
                            Ok(Ok(tokens)) => Ok(tokens),
                            Ok(Err(e)) => Err(format!("a connect flow failed: {e}")),
                            Err(_) => Err("connect timed out".to_owned()),
                        }
                    }
                })
                .await
                else {
                    failures
                        .lock()
                        .unwrap()
                        .push("a connect flow failed".into());
                    continue;
                };
                for _ in 0..10 {
                    let access = t.access.clone();
                    let called = with_retries(|| {
                        let (public, access) = (public.clone(), access.clone());
                        async move {
                            let r = crate::support::mcp_request(
                                &public,
                                &access,
                                (1, "tools/call", Some("get_identity")),
                                json!({"name": "get_identity", "arguments": {}}),
                            )
                            .send()
                            .await
                            .map_err(|e| e.to_string())?;
                            match r.status().as_u16() {
                                200 => Ok(()),
                                s => Err(format!("tool call {s}")),
                            }
                        }
                    })
                    .await;
                    match called {
                        Ok(()) => {
                            calls.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(why) => failures.lock().unwrap().push(why),
                    }
                }
                let refresh = t.refresh.clone();
                let rotated = with_retries(|| {
                    let (client, refresh) = (client.clone(), refresh.clone());
                    async move {
                        let r = client.refresh(&refresh).await;
                        let status = r.status().as_u16();
                        let body: serde_json::Value = r.json().await.unwrap_or_default();
                        match (
                            status,
                            body["access_token"].as_str(),
                            body["refresh_token"].as_str(),
                        ) {
                            (200, Some(a), Some(n)) => Ok((a.to_owned(), n.to_owned())),
                            _ => Err(format!("refresh {status} {body}")),
                        }
                    }
                })
                .await;
                match rotated {
                    Ok((access, refresh)) => {
                        t.access = access;
                        t.refresh = refresh;
                    }
                    Err(why) => failures.lock().unwrap().push(why),
                }
                grants.push(t);
            }
            grants
        }));
    }

    let started = std::time::Instant::now();
    let mut victim = 0;
    while started.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_secs(20)).await;
        let _ = servers[victim].kill();
        let _ = servers[victim].wait();
        servers[victim] = spawn_binary_at(
            ports[victim],
            Some(&public),
            &data[victim].0,
            &standin,
            &flags,
            "warn",
            log_file(&data[victim]),
        )
        .await;
        victim = (victim + 1) % servers.len();
    }
    stop.store(true, Ordering::Relaxed);
    let mut grants = Vec::new();
    for worker in workers {
        grants.extend(worker.await.unwrap());
    }
    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} failed: {failures:#?}",
        failures.len()
    );
    assert!(
        grants.len() > 10,
        "too little load: {} grants",
        grants.len()
    );
    // Not one grant made during the run was lost.
    for t in &grants {
        let (status, body) = call_tool_at(&public, &t.access, "get_identity", json!({})).await;
        assert_eq!(status, 200, "a grant was lost: {body}");
    }
    for mut server in servers {
        let _ = server.kill();
        let _ = server.wait();
    }
}
