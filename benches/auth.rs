//! The authorization server's costs, against the real stand-in upstream and the Cyrus testbed:
//! `/token` latency (authorization code and refresh, each a durable redb commit), the cost of
//! opening a grant's sealed credentials (from storage and from the cache), and a tool call with
//! authentication in the loop versus with a caller authenticated once, in the same run.
//! Writes `target/bench-auth-report.md` (copied into BENCHMARKS.md).
//!
//! Run: `scripts/testbed up && cargo bench --bench auth`.

#![allow(clippy::unwrap_used)]

use std::{
    collections::HashMap,
    io::{BufRead as _, BufReader},
    path::PathBuf,
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use clap::Parser as _;
use mailconnect::{
    config::{Cli, Config},
    domain::{
        grant::AccessToken,
        service::{MailService, ServiceLimits},
    },
    outbound::{
        jmap::{JmapMailStore, TransportConfig},
        postgres::PgVault,
        storage::Storage,
        vault::RedbVault,
    },
};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

const SAMPLES: usize = 200;

fn testbed() -> HashMap<String, String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/testbed/env");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/testbed up first", path.display()));
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn summary(store: &str, name: &str, mut samples: Vec<Duration>) -> String {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "| {store} | {name} | {} | {:.3} | {:.3} | {:.3} |\n",
        samples.len(),
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.99)),
        ms(*samples.last().unwrap())
    )
}

/// A headless browser walk through consent, the stand-in and our callback: returns the code.
async fn authorize(http: &reqwest::Client, base: &str, client_id: &str, challenge: &str) -> String {
    let url = format!(
        "{base}/authorize?response_type=code&client_id={client_id}&redirect_uri=http%3A%2F%2F127.0.0.1%3A5999%2Fcb&code_challenge={challenge}&code_challenge_method=S256&state=s"
    );
    let consent = http.get(&url).send().await.unwrap();
    let cookie = consent.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let body = consent.text().await.unwrap();
    let field = |name: &str| {
        let marker = format!("name=\"{name}\" value=\"");
        let start = body.find(&marker).unwrap() + marker.len();
        body[start..start + body[start..].find('"').unwrap()].to_owned()
    };
    let approved = http
        .post(format!("{base}/authorize/decision"))
        .header("cookie", &cookie)
        .form(&[
            ("request_id", field("request_id")),
            ("csrf_token", field("csrf_token")),
            ("decision", "approve".into()),
        ])
        .send()
        .await
        .unwrap();
    let upstream_cookie = approved.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let upstream = http
        .get(approved.headers()["location"].to_str().unwrap())
        .send()
        .await
        .unwrap();
    let callback = http
        .get(upstream.headers()["location"].to_str().unwrap())
        .header("cookie", upstream_cookie)
        .send()
        .await
        .unwrap();
    let back = url::Url::parse(callback.headers()["location"].to_str().unwrap()).unwrap();
    back.query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let tb = testbed();
    let mut standin = Command::new("python3")
        .arg(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/testbed.d/standin-upstream.py"),
        )
        .args([
            "--jwt-key-b64",
            &tb["JMAP_JWT_HMAC_KEY_B64"],
            "--subject",
            &tb["JMAP_USERNAME"],
            "--client",
            "bench",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(standin.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let standin_url = line.trim().trim_start_matches("STANDIN_URL=").to_owned();

    let mut report = String::from(
        "| store | measurement | samples | p50 ms | p99 ms | max ms |\n| --- | --- | --- | --- | --- | --- |\n",
    );
    let data = std::env::temp_dir().join(format!("mailconnect-bench-auth-{}", std::process::id()));
    std::fs::create_dir_all(&data).unwrap();
    let file = data.join(mailconnect::app::VAULT_FILE);
    let (rows, grants) = measure(
        "redb",
        &tb,
        &standin_url,
        &data,
        RedbVault::open(&file).unwrap(),
    )
    .await;
    report += &rows;
    let mut sizes = format!(
        "\nStored per grant: redb {} bytes (file size / {grants} grants)",
        std::fs::metadata(&file).unwrap().len() / grants.max(1)
    );
    if let Ok(server) = std::env::var("BENCH_PG_URL") {
        let url = fresh_database(&server).await;
        let vault = PgVault::connect(&url, 16).await.unwrap();
        let (rows, grants) = measure("PostgreSQL", &tb, &standin_url, &data, vault).await;
        report += &rows;
        sizes += &format!(
            ", PostgreSQL {} bytes (tables and indexes / {grants} grants)",
            database_bytes(&url).await / grants.max(1)
        );
    }
    report += &sizes;
    report.push('\n');
    println!("{report}");
    std::fs::write(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-auth-report.md"),
        &report,
    )
    .unwrap();
    let _ = standin.kill();
    let _ = standin.wait();
    let _ = std::fs::remove_dir_all(&data);
}

/// A new database on the PostgreSQL server at `server` (a superuser URL).
async fn fresh_database(server: &str) -> String {
    let (client, connection) = tokio_postgres::connect(server, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let name = format!("mc_bench_{:016x}", rand::random::<u64>());
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let base = server.rsplit_once('/').unwrap().0;
    format!("{base}/{name}")
}

/// The bytes the vault's tables and their indexes take in the database at `url`.
async fn database_bytes(url: &str) -> u64 {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT sum(pg_total_relation_size(c.oid))::bigint FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND c.relkind = 'r'",
            &[],
        )
        .await
        .unwrap();
    u64::try_from(row.get::<_, i64>(0)).unwrap()
}

/// Every measurement on `vault` ("store" names it in the report); the report's rows and how
/// many grants the run left stored.
async fn measure<S: Storage>(
    store: &str,
    tb: &HashMap<String, String>,
    standin_url: &str,
    data: &std::path::Path,
    vault: S,
) -> (String, u64) {
    let acceptor =
        mailconnect::inbound::listener::NoDelayAcceptor::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
    let addr = acceptor.socket_addr().unwrap();
    let base = format!("http://{addr}");
    let config = Config::resolve(Cli::parse_from([
        "mailconnect",
        "--data-dir",
        data.to_str().unwrap(),
        "--listen",
        &addr.to_string(),
        "--public-url",
        &base,
        "--jmap-session-url",
        &tb["JMAP_SESSION_URL"],
        "--upstream-issuer",
        standin_url,
        "--upstream-client-id",
        "bench",
    ]))
    .unwrap();
    let app = mailconnect::app::build_with(&config, vault.clone())
        .await
        .unwrap();
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app.routes));

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let reg: Value = http
        .post(format!("{base}/register"))
        .json(&json!({"client_name": "bench", "redirect_uris": ["http://127.0.0.1:5999/cb"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client_id = reg["client_id"].as_str().unwrap().to_owned();

    // /token, authorization_code: one durable commit (wrap under two new tokens, retire code).
    let mut code_times = Vec::new();
    let mut last: Value = Value::Null;
    for _ in 0..SAMPLES {
        let verifier = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let code = authorize(&http, &base, &client_id, &challenge).await;
        let started = Instant::now();
        let r = http
            .post(format!("{base}/token"))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", "http://127.0.0.1:5999/cb"),
                ("code_verifier", verifier.as_str()),
                ("client_id", client_id.as_str()),
            ])
            .send()
            .await
            .unwrap();
        last = r.json().await.unwrap();
        code_times.push(started.elapsed());
    }
    // /token, refresh_token: a chain of rotations, each one durable commit.
    let mut refresh = last["refresh_token"].as_str().unwrap().to_owned();
    let mut refresh_times = Vec::new();
    for _ in 0..SAMPLES {
        let started = Instant::now();
        let r: Value = http
            .post(format!("{base}/token"))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh.as_str()),
                ("client_id", client_id.as_str()),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        refresh_times.push(started.elapsed());
        refresh = r["refresh_token"].as_str().unwrap().to_owned();
        last = r;
    }
    let access = AccessToken::new(last["access_token"].as_str().unwrap());

    // Opening a grant: from storage (read txn + HKDF + unwrap + age) and from the cache.
    let mut cold = Vec::new();
    let mut cached = Vec::new();
    for _ in 0..SAMPLES {
        let started = Instant::now();
        vault.open_fresh(&access).await.unwrap();
        cold.push(started.elapsed());
        let started = Instant::now();
        vault.open(&access).await.unwrap();
        cached.push(started.elapsed());
    }

    // A tool call (get_identity: one JMAP request) with authentication per call vs with a
    // caller authenticated once, through the same use cases, interleaved.
    let mail = JmapMailStore::new(TransportConfig {
        session_url: config.upstream.jmap_session_url.clone(),
        timeout: Duration::from_secs(20),
    })
    .unwrap();
    let service = Arc::new(MailService::new(
        mail,
        vault.clone(),
        vault.clone(),
        vault.clone(),
        ServiceLimits::default(),
    ));
    let caller = service.authenticate(&access).await.unwrap();
    service.identity(&caller).await.unwrap();
    let mut with_auth = Vec::new();
    let mut without_auth = Vec::new();
    for _ in 0..SAMPLES {
        let started = Instant::now();
        let c = service.authenticate(&access).await.unwrap();
        service.identity(&c).await.unwrap();
        with_auth.push(started.elapsed());
        let started = Instant::now();
        service.identity(&caller).await.unwrap();
        without_auth.push(started.elapsed());
    }
    let mut with_sorted = with_auth.clone();
    with_sorted.sort();
    let mut without_sorted = without_auth.clone();
    without_sorted.sort();

    let mut report = String::new();
    report += &summary(
        store,
        "`/token` authorization_code (HTTP, durable commit)",
        code_times,
    );
    report += &summary(
        store,
        "`/token` refresh_token rotation (HTTP, durable commit)",
        refresh_times,
    );
    report += &summary(
        store,
        "open a grant from storage (blocking pool, HKDF, unwrap, age)",
        cold,
    );
    report += &summary(
        store,
        "open a grant again (cache on redb, storage on PostgreSQL)",
        cached,
    );
    report += &summary(store, "get_identity, authenticate + call", with_auth);
    report += &summary(
        store,
        "get_identity, caller authenticated once",
        without_auth,
    );
    report += &format!(
        "| {store} | authentication's cost per tool call at p50: {:.3} ms | | | | |\n",
        (percentile(&with_sorted, 0.5).as_secs_f64()
            - percentile(&without_sorted, 0.5).as_secs_f64())
            * 1000.0
    );
    // Each sample of the code exchange made a grant; the rotations kept one.
    (report, SAMPLES as u64 + 1)
}
