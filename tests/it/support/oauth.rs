//! Test support for the connect flow: the stand-in upstream authorization server (a process,
//! `scripts/testbed.d/standin-upstream.py`, minting tokens the real Cyrus accepts), a headless
//! "browser" that reads our consent form and follows redirects with its own cookies, and an
//! OAuth client that registers, authorizes with PKCE and exchanges codes; calling tools with its
//! access token, and signing in to the settings page.

use std::{
    collections::HashMap,
    io::{BufRead as _, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::support::{TestApp, mcp_request, send_json, spawn_configured, tempdir, testbed};

/// The stand-in upstream, stopped on drop.
pub struct Standin {
    child: Child,
    pub url: String,
    http: reqwest::Client,
}

pub const UPSTREAM_CLIENT: &str = "mailconnect-test";

impl Standin {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Self {
        let tb = testbed();
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/testbed.d/standin-upstream.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args([
                "--jwt-key-b64",
                tb.get("JMAP_JWT_HMAC_KEY_B64"),
                "--subject",
                tb.get("JMAP_USERNAME"),
            ])
            .args(["--client", UPSTREAM_CLIENT])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs the stand-in upstream");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("STANDIN_URL=")
            .expect("the stand-in prints its URL")
            .to_owned();
        Self {
            child,
            url,
            http: reqwest::Client::new(),
        }
    }

    /// Tokens minted from now on are for `subject` (another Cyrus user signs in).
    pub async fn sign_in_as(&self, subject: &str) {
        let r = self
            .http
            .post(format!("{}/_control/subject", self.url))
            .json(&json!({ "subject": subject }))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }

    /// Queues a fault (see the stand-in's docstring).
    pub async fn fault(&self, spec: Value) {
        let r = self
            .http
            .post(format!("{}/_control/faults", self.url))
            .json(&spec)
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "fault {spec} refused: {}",
            r.text().await.unwrap()
        );
    }

    /// The next `n` access tokens expire for Cyrus `lifetime_secs` after they are issued
    /// (they are backdated; the testbed runs with `http_jwt_max_age`).
    pub async fn short_lived_access_tokens(&self, n: u32, lifetime_secs: u64) {
        let max_age: u64 = testbed()
            .get("JMAP_JWT_MAX_AGE")
            .trim_end_matches('s')
            .parse()
            .unwrap();
        assert!(
            max_age > lifetime_secs,
            "the testbed must run with TESTBED_JWT_MAX_AGE (scripts/test sets it)"
        );
        let r = self
            .http
            .post(format!("{}/_control/expired_access_tokens", self.url))
            .json(&json!({"count": n, "backdate_secs": max_age - lifetime_secs}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }

    pub async fn stats(&self) -> Value {
        crate::support::send_json(self.http.get(format!("{}/_control/stats", self.url))).await
    }

    pub async fn token_requests(&self, grant_type: &str) -> u64 {
        self.stats().await["token_requests"][grant_type]
            .as_u64()
            .unwrap()
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts mailconnect with OAuth toward `standin` and the Cyrus testbed, no self-host grant.
pub async fn spawn_oauth_app(standin: &Standin, extra: &[&str]) -> TestApp {
    spawn_oauth_app_at(testbed().get("JMAP_SESSION_URL"), standin, extra).await
}

/// A stand-in, the app toward it (with `extra` flags) and a client registered with
/// `redirect_uri`.
pub async fn oauth_app_with_client(
    extra: &[&str],
    redirect_uri: &str,
) -> (Standin, TestApp, Client) {
    oauth_app_toward(Standin::start(), extra, redirect_uri).await
}

/// [`oauth_app_with_client`] toward `standin` (started with flags of its own).
pub async fn oauth_app_toward(
    standin: Standin,
    extra: &[&str],
    redirect_uri: &str,
) -> (Standin, TestApp, Client) {
    let app = spawn_oauth_app(&standin, extra).await;
    let client = Client::register(&app, redirect_uri).await;
    (standin, app, client)
}

/// [`spawn_oauth_app`] over the JMAP session at `session_url` (a proxy in front of Cyrus).
pub async fn spawn_oauth_app_at(session_url: &str, standin: &Standin, extra: &[&str]) -> TestApp {
    let mut args: Vec<String> = vec![
        "--jmap-session-url".into(),
        session_url.into(),
        "--upstream-issuer".into(),
        standin.url.clone(),
        "--upstream-client-id".into(),
        UPSTREAM_CLIENT.into(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    spawn_configured(tempdir::Dir::new("oauth"), &args).await
}

/// A browser: follows nothing by itself, keeps cookies per host:port.
pub struct Browser {
    http: reqwest::Client,
    cookies: HashMap<String, HashMap<String, String>>,
}

pub struct Page {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> String {
        self.headers
            .get("location")
            .unwrap_or_else(|| panic!("no Location in a {} answer: {}", self.status, self.body))
            .to_str()
            .unwrap()
            .to_owned()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    }

    /// The value of a hidden input of the consent form.
    pub fn field(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no field {name} in {}", self.body))
            + marker.len();
        let end = self.body[start..].find('"').unwrap() + start;
        self.body[start..end].replace("&amp;", "&")
    }
}

fn host_key(url: &str) -> String {
    let u = url::Url::parse(url).unwrap();
    format!(
        "{}:{}",
        u.host_str().unwrap(),
        u.port_or_known_default().unwrap()
    )
}

impl Default for Browser {
    fn default() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            cookies: HashMap::new(),
        }
    }
}

impl Browser {
    /// Posts `form` to the settings page's `action` (`revoke`, `capabilities`, `background`, …)
    /// for the connection `grant`.
    pub async fn post_connection(
        &mut self,
        app: &TestApp,
        grant: &str,
        action: &str,
        form: &[(&str, &str)],
    ) -> Page {
        let url = format!("{}/settings/connections/{grant}/{action}", app.base());
        self.post_form(&url, form).await
    }

    /// Posts `decision` (`approve` or `deny`) on the consent page `consent` of the app at `base`.
    pub async fn decide_consent(&mut self, base: &str, consent: &Page, decision: &str) -> Page {
        let (request_id, csrf) = (consent.field("request_id"), consent.field("csrf_token"));
        let form = [
            ("request_id", request_id.as_str()),
            ("csrf_token", csrf.as_str()),
            ("decision", decision),
        ];
        self.post_form(&format!("{base}/authorize/decision"), &form)
            .await
    }

    /// The settings page of `app`.
    pub async fn settings(&mut self, app: &TestApp) -> Page {
        self.get(&format!("{}/settings", app.base())).await
    }

    fn cookie_header(&self, url: &str) -> Option<String> {
        let jar = self.cookies.get(&host_key(url))?;
        (!jar.is_empty()).then(|| {
            jar.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    async fn finish(&mut self, url: &str, r: reqwest::Response) -> Page {
        let jar = self.cookies.entry(host_key(url)).or_default();
        for c in r.headers().get_all("set-cookie") {
            let c = c.to_str().unwrap();
            let (pair, attrs) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() || attrs.contains("Max-Age=0") {
                jar.remove(k);
            } else {
                jar.insert(k.to_owned(), v.to_owned());
            }
        }
        Page {
            status: r.status().as_u16(),
            headers: r.headers().clone(),
            body: r.text().await.unwrap(),
        }
    }

    pub async fn get(&mut self, url: &str) -> Page {
        let mut req = self.http.get(url);
        if let Some(c) = self.cookie_header(url) {
            req = req.header("cookie", c);
        }
        let r = req.send().await.unwrap();
        self.finish(url, r).await
    }

    pub async fn post_form(&mut self, url: &str, form: &[(&str, &str)]) -> Page {
        let mut req = self.http.post(url).form(form);
        if let Some(c) = self.cookie_header(url) {
            req = req.header("cookie", c);
        }
        let r = req.send().await.unwrap();
        self.finish(url, r).await
    }
}

/// An OAuth client of ours, as an MCP client would be.
#[derive(Debug, Clone)]
pub struct Client {
    pub base: String,
    pub id: String,
    pub secret: Option<String>,
    pub redirect_uri: String,
}

#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
    pub expires_in: i64,
}

/// A PKCE pair.
pub fn pkce() -> (String, String) {
    let verifier = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

pub fn query(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// Where an authorization attempt ended, back at the client.
pub struct Returned {
    pub url: String,
    pub params: HashMap<String, String>,
    pub verifier: String,
}

impl Client {
    pub async fn register(app: &TestApp, redirect_uri: &str) -> Self {
        Self::register_with(
            app,
            json!({"client_name": "Test Client", "redirect_uris": [redirect_uri]}),
        )
        .await
    }

    pub async fn register_at(base: &str, redirect_uri: &str) -> Self {
        Self::register_body(
            base,
            json!({"client_name": "Test Client", "redirect_uris": [redirect_uri]}),
        )
        .await
    }

    pub async fn register_with(app: &TestApp, body: Value) -> Self {
        Self::register_body(&app.base(), body).await
    }

    async fn register_body(base: &str, body: Value) -> Self {
        let r = reqwest::Client::new()
            .post(format!("{base}/register"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "registration refused");
        let reg: Value = r.json().await.unwrap();
        Self {
            base: base.to_owned(),
            id: reg["client_id"].as_str().unwrap().to_owned(),
            secret: reg["client_secret"].as_str().map(str::to_owned),
            redirect_uri: reg["redirect_uris"][0].as_str().unwrap().to_owned(),
        }
    }

    pub fn authorize_url(&self, challenge: &str, extra: &[(&str, &str)]) -> String {
        let mut u = url::Url::parse(&format!("{}/authorize", self.base)).unwrap();
        {
            let mut q = u.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &self.id)
                .append_pair("redirect_uri", &self.redirect_uri)
                .append_pair("code_challenge", challenge)
                .append_pair("code_challenge_method", "S256")
                .append_pair("state", "client-state-123");
            for (k, v) in extra {
                q.append_pair(k, v);
            }
        }
        u.to_string()
    }

    /// Walks the browser from our authorize URL to the client's redirect: consent (approve),
    /// the stand-in upstream, our callback.
    pub async fn authorize(&self, browser: &mut Browser) -> Returned {
        let (verifier, challenge) = pkce();
        let consent = browser.get(&self.authorize_url(&challenge, &[])).await;
        assert_eq!(consent.status, 200, "no consent page: {}", consent.body);
        let decision = browser
            .decide_consent(&self.base, &consent, "approve")
            .await;
        assert_eq!(decision.status, 303, "{}", decision.body);
        let upstream = browser.get(&decision.location()).await;
        assert_eq!(upstream.status, 302, "stand-in refused: {}", upstream.body);
        let callback = browser.get(&upstream.location()).await;
        assert_eq!(callback.status, 303, "callback failed: {}", callback.body);
        let url = callback.location();
        Returned {
            params: query(&url),
            url,
            verifier,
        }
    }

    pub async fn token_request(&self, form: &[(&str, &str)]) -> reqwest::Response {
        let mut all: Vec<(&str, &str)> = form.to_vec();
        all.push(("client_id", &self.id));
        if let Some(secret) = &self.secret {
            all.push(("client_secret", secret));
        }
        reqwest::Client::new()
            .post(format!("{}/token", self.base))
            .form(&all)
            .send()
            .await
            .unwrap()
    }

    pub async fn exchange(&self, returned: &Returned) -> Tokens {
        tokens(self.redeem(returned, &self.redirect_uri).await).await
    }

    /// The token request redeeming `returned`'s code with its verifier, as this client, naming
    /// `redirect_uri` (another client's, to steal a code).
    pub async fn redeem(&self, returned: &Returned, redirect_uri: &str) -> reqwest::Response {
        self.token_request(&[
            ("grant_type", "authorization_code"),
            ("code", &returned.params["code"]),
            ("redirect_uri", redirect_uri),
            ("code_verifier", &returned.verifier),
        ])
        .await
    }

    /// Opens this client's consent page in `browser` with a fresh PKCE challenge.
    pub async fn open_consent(&self, browser: &mut Browser) -> Page {
        let (_verifier, challenge) = pkce();
        browser.get(&self.authorize_url(&challenge, &[])).await
    }

    /// Revokes `token` (RFC 7009) as this client.
    pub async fn revoke(&self, token: &str) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}/revoke", self.base))
            .form(&[("token", token), ("client_id", &self.id)])
            .send()
            .await
            .unwrap()
    }

    /// Registers a client at `app` with `redirect_uri` and connects it.
    pub async fn connected(app: &TestApp, redirect_uri: &str) -> Tokens {
        Self::register(app, redirect_uri).await.connect().await
    }

    pub async fn refresh(&self, refresh: &str) -> reqwest::Response {
        self.token_request(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
            .await
    }

    /// Register-free shortcut: the whole flow to tokens.
    pub async fn connect(&self) -> Tokens {
        let mut browser = Browser::default();
        let returned = self.authorize(&mut browser).await;
        self.exchange(&returned).await
    }
}

pub async fn tokens(r: reqwest::Response) -> Tokens {
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "token request failed: {body}");
    Tokens {
        access: body["access_token"].as_str().unwrap().to_owned(),
        refresh: body["refresh_token"].as_str().unwrap().to_owned(),
        expires_in: body["expires_in"].as_i64().unwrap(),
    }
}

/// Calls a tool over MCP (2026-07-28 stateless) with `token`; returns (HTTP status, body).
/// The HTTP status of calling `tool` with no arguments (200 while the token works).
pub async fn tool_status(app: &TestApp, token: &str, tool: &str) -> u16 {
    call_tool(app, token, tool, json!({})).await.0
}

pub async fn call_tool(app: &TestApp, token: &str, tool: &str, args: Value) -> (u16, Value) {
    call_tool_at(&app.base(), token, tool, args).await
}

/// [`call_tool`] by base URL (for spawned tasks).
pub async fn call_tool_at(base: &str, token: &str, tool: &str, args: Value) -> (u16, Value) {
    let r = mcp_request(
        base,
        token,
        (1, "tools/call", Some(tool)),
        json!({"name": tool, "arguments": args}),
    )
    .send()
    .await
    .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Signs in to the settings page: the browser goes to the stand-in and back.
pub(crate) async fn sign_in(app: &TestApp) -> (Browser, Page) {
    let mut browser = Browser::default();
    let start = browser.settings(app).await;
    assert!(
        start.body.contains("action=\"/settings/sign-in\""),
        "{}",
        start.body
    );
    let go = browser
        .post_form(
            &format!("{}/settings/sign-in", app.base()),
            &[("sign_in", "1")],
        )
        .await;
    assert_eq!(go.status, 303, "{}", go.body);
    let upstream = browser.get(&go.location()).await;
    let back = browser.get(&upstream.location()).await;
    assert_eq!(
        (back.status, back.location()),
        (303, "/settings".to_owned()),
        "{}",
        back.body
    );
    let page = browser.settings(app).await;
    assert!(
        page.body
            .contains("Signed in as <strong>bob@example.test</strong>"),
        "{}",
        page.body
    );
    (browser, page)
}

/// The grant an access token opens (its id is the token's first part).
pub(crate) fn grant_of(t: &Tokens) -> String {
    t.access.split('.').next().unwrap().to_owned()
}

/// The names `tools/list` gives the holder of `token`.
pub(crate) async fn tool_names(app: &TestApp, token: &str) -> Vec<String> {
    let v = send_json(mcp_request(
        &app.base(),
        token,
        (1, "tools/list", None),
        json!({}),
    ))
    .await;
    v["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The OAuth `error` code of a response.
pub async fn error_code(r: reqwest::Response) -> String {
    let body: serde_json::Value = r.json().await.unwrap();
    body["error"].as_str().unwrap_or_default().to_owned()
}

/// Signs `browser` in to the settings page of the binary at `base` and turns `capabilities`
/// on for `grant`; returns the page's CSRF token.
pub async fn turn_on(
    browser: &mut Browser,
    base: &str,
    grant: &str,
    capabilities: &[&str],
) -> String {
    let go = browser
        .post_form(&format!("{base}/settings/sign-in"), &[("sign_in", "1")])
        .await;
    let upstream = browser.get(&go.location()).await;
    browser.get(&upstream.location()).await;
    let page = browser.get(&format!("{base}/settings")).await;
    let csrf = page.field("csrf_token");
    let mut form = vec![("csrf_token", csrf.as_str())];
    form.extend(capabilities.iter().map(|c| (*c, "on")));
    let saved = browser
        .post_form(
            &format!("{base}/settings/connections/{grant}/capabilities"),
            &form,
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    csrf
}
