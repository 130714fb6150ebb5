//! JMAP transport: session discovery and caching, one shared keep-alive HTTP client, and the
//! mapping of HTTP and request-level failures to [`MailStoreError`] (RFC 8620 §2, §3).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use reqwest::{
    Method, RequestBuilder,
    header::{self, HeaderValue},
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use url::Url;

mod errors;
mod streams;

use self::errors::method_error;
pub use self::{errors::method_error_of, streams::EventSource};
use super::wire::{MethodErrorWire, ResponseWire, SessionWire};
use crate::domain::{grant::UpstreamCredential, ports::MailStoreError};

pub const CORE: &str = "urn:ietf:params:jmap:core";
pub const MAIL: &str = "urn:ietf:params:jmap:mail";
pub const SUBMISSION: &str = "urn:ietf:params:jmap:submission";

/// A session with its URLs resolved against the session URL (Cyrus sends relative ones,
/// Fastmail absolute regional ones).
#[derive(Debug)]
pub struct Session {
    pub wire: SessionWire,
    pub api_url: Url,
    pub download_template: String,
    /// The EventSource URL template, when the server offers push.
    pub event_source_template: Option<String>,
    pub account_id: String,
}

/// Session cache key: a digest of the credential, so the cache never holds a secret as a key.
type CredKey = [u8; 32];

const SESSION_CACHE_LIMIT: usize = 10_000;

/// Transport settings.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// The JMAP session URL (Fastmail: `https://api.fastmail.com/jmap/session`).
    pub session_url: Url,
    /// Deadline for one upstream HTTP exchange.
    pub timeout: Duration,
}

/// The HTTP side of the JMAP adapter.
#[derive(Debug)]
pub struct Transport {
    http: reqwest::Client,
    config: TransportConfig,
    sessions: Mutex<HashMap<CredKey, Arc<Session>>>,
    requests: AtomicU64,
}

/// One method response: `(name, raw arguments)`.
pub type MethodResponse = (String, Box<serde_json::value::RawValue>);

impl Transport {
    /// Builds the shared client.
    ///
    /// # Errors
    /// [`MailStoreError::Unavailable`] when the TLS stack cannot be initialised.
    pub fn new(config: TransportConfig) -> Result<Self, MailStoreError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("mailconnect/", env!("CARGO_PKG_VERSION")))
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()
            .map_err(|e| MailStoreError::Unavailable(format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            config,
            sessions: Mutex::new(HashMap::new()),
            requests: AtomicU64::new(0),
        })
    }

    /// HTTP requests sent upstream so far (tests and benchmarks check "one request per read").
    pub fn requests_sent(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn count(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    fn key(cred: &UpstreamCredential) -> CredKey {
        let mut h = Sha256::new();
        match cred {
            UpstreamCredential::Basic { username, password } => {
                h.update(b"basic\0");
                h.update(username.as_bytes());
                h.update(b"\0");
                h.update(password.expose_secret().as_bytes());
            }
            UpstreamCredential::Bearer(token) => {
                h.update(b"bearer\0");
                h.update(token.expose_secret().as_bytes());
            }
        }
        h.finalize().into()
    }

    fn authorization(cred: &UpstreamCredential) -> HeaderValue {
        let raw = match cred {
            UpstreamCredential::Basic { username, password } => format!(
                "Basic {}",
                STANDARD.encode(format!("{username}:{}", password.expose_secret()))
            ),
            UpstreamCredential::Bearer(token) => format!("Bearer {}", token.expose_secret()),
        };
        // A credential with bytes a header can't carry fails upstream as 401, never here.
        let mut value = HeaderValue::from_str(&raw)
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer invalid"));
        value.set_sensitive(true);
        value
    }

    /// A request to the server, authorised as `cred`, counted as sent.
    fn authorised(&self, method: Method, url: Url, cred: &UpstreamCredential) -> RequestBuilder {
        self.count();
        self.http
            .request(method, url)
            .header(header::AUTHORIZATION, Self::authorization(cred))
    }

    /// Sends `request`; not reaching the server is [`MailStoreError::Unavailable`].
    async fn send(&self, request: RequestBuilder) -> Result<reqwest::Response, MailStoreError> {
        request.send().await.map_err(|e| self.transport_error(&e))
    }

    /// The session for `cred`, from cache or fetched.
    ///
    /// # Errors
    /// See [`MailStoreError`].
    pub async fn session(&self, cred: &UpstreamCredential) -> Result<Arc<Session>, MailStoreError> {
        let key = Self::key(cred);
        if let Some(cached) = self.lock().get(&key) {
            return Ok(Arc::clone(cached));
        }
        let request = self
            .authorised(Method::GET, self.config.session_url.clone(), cred)
            .header(header::ACCEPT, "application/json");
        let body = Self::checked_body(self.send(request).await?).await?;
        let wire: SessionWire = serde_json::from_slice(&body)
            .map_err(|e| MailStoreError::Protocol(format!("session: {e}")))?;
        let session = Arc::new(self.resolve(wire)?);
        let mut sessions = self.lock();
        if sessions.len() >= SESSION_CACHE_LIMIT {
            sessions.clear();
        }
        sessions.insert(key, Arc::clone(&session));
        Ok(session)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CredKey, Arc<Session>>> {
        // A panic while holding this lock leaves a plain map behind: still usable.
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn resolve(&self, wire: SessionWire) -> Result<Session, MailStoreError> {
        let base = &self.config.session_url;
        let api_url = base
            .join(&wire.api_url)
            .map_err(|e| MailStoreError::Protocol(format!("session apiUrl: {e}")))?;
        let download_template = resolve_template(base, &wire.download_url);
        let event_source_template = wire
            .event_source_url
            .as_deref()
            .filter(|u| !u.is_empty())
            .map(|u| resolve_template(base, u));
        let account_id = wire.primary_accounts.get(MAIL).cloned().ok_or_else(|| {
            MailStoreError::Protocol("the session has no primary mail account".into())
        })?;
        Ok(Session {
            wire,
            api_url,
            download_template,
            event_source_template,
            account_id,
        })
    }

    fn forget(&self, cred: &UpstreamCredential) {
        self.lock().remove(&Self::key(cred));
    }

    /// Sends one JMAP API request and returns its method responses in order.
    ///
    /// A method error in any response becomes [`MailStoreError::Rejected`] (or `NotFound`);
    /// a changed `sessionState` drops the cached session so the next call refetches it.
    ///
    /// # Errors
    /// See [`MailStoreError`].
    pub async fn call(
        &self,
        cred: &UpstreamCredential,
        session: &Session,
        using: &[&str],
        calls: Vec<Value>,
    ) -> Result<Vec<MethodResponse>, MailStoreError> {
        self.call_with_optional(cred, session, using, calls, &[])
            .await
    }

    /// [`Transport::call`], except that a method error answering one of the `optional` call
    /// ids leaves that call out instead of failing the request (a best-effort extra).
    ///
    /// # Errors
    /// See [`MailStoreError`].
    pub async fn call_with_optional(
        &self,
        cred: &UpstreamCredential,
        session: &Session,
        using: &[&str],
        calls: Vec<Value>,
        optional: &[&str],
    ) -> Result<Vec<MethodResponse>, MailStoreError> {
        let request = json!({ "using": using, "methodCalls": calls });
        super::retry::with_retries(|| self.call_once(cred, session, &request, optional)).await
    }

    /// Sends `calls` exactly once — no retry on throttling or a 5xx, whose outcome is unknown
    /// — and returns every method response by its call id, method errors included (as
    /// `"error"`): for a request that must never run twice (a submission), judged call by call.
    ///
    /// # Errors
    /// A transport, HTTP or protocol failure: then the outcome is unknown.
    pub async fn call_exactly_once(
        &self,
        cred: &UpstreamCredential,
        session: &Session,
        using: &[&str],
        calls: Vec<Value>,
    ) -> Result<Vec<(String, Box<serde_json::value::RawValue>, String)>, MailStoreError> {
        let request = json!({ "using": using, "methodCalls": calls });
        Ok(self
            .post_once(cred, session, &request)
            .await?
            .method_responses)
    }

    /// One attempt of [`Transport::call`].
    async fn call_once(
        &self,
        cred: &UpstreamCredential,
        session: &Session,
        request: &Value,
        optional: &[&str],
    ) -> Result<Vec<MethodResponse>, MailStoreError> {
        let wire = self.post_once(cred, session, request).await?;
        wire.method_responses
            .into_iter()
            .filter(|(name, _, call_id)| !(name == "error" && optional.contains(&call_id.as_str())))
            .map(|(name, args, _call_id)| {
                if name == "error" {
                    let err: MethodErrorWire = serde_json::from_str(args.get())
                        .map_err(|e| MailStoreError::Protocol(format!("method error: {e}")))?;
                    Err(method_error(err))
                } else {
                    Ok((name, args))
                }
            })
            .collect()
    }

    /// Posts one JMAP request and decodes the envelope of its answer.
    async fn post_once(
        &self,
        cred: &UpstreamCredential,
        session: &Session,
        request: &Value,
    ) -> Result<ResponseWire, MailStoreError> {
        let request = self
            .authorised(Method::POST, session.api_url.clone(), cred)
            .header(header::ACCEPT, "application/json")
            .json(request);
        let body = match Self::checked_body(self.send(request).await?).await {
            Err(MailStoreError::Unauthorized) => {
                self.forget(cred);
                return Err(MailStoreError::Unauthorized);
            }
            other => other?,
        };
        let wire: ResponseWire = serde_json::from_slice(&body)
            .map_err(|e| MailStoreError::Protocol(format!("API response: {e}")))?;
        if wire
            .session_state
            .as_deref()
            .is_some_and(|s| s != session.wire.state)
        {
            self.forget(cred);
        }
        Ok(wire)
    }
}

/// Resolves a URL template (RFC 6570) against the session URL before its braces are
/// expanded, keeping them literal (url would percent-encode them).
fn resolve_template(base: &Url, raw: &str) -> String {
    if raw.contains("://") {
        return raw.to_owned();
    }
    let origin = base.origin().ascii_serialization();
    if raw.starts_with('/') {
        format!("{origin}{raw}")
    } else {
        let dir = base
            .as_str()
            .rsplit_once('/')
            .map_or(base.as_str(), |(d, _)| d);
        format!("{dir}/{raw}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transport(session_url: &str) -> Transport {
        Transport::new(TransportConfig {
            session_url: Url::parse(session_url).unwrap(),
            timeout: Duration::from_secs(5),
        })
        .unwrap()
    }

    fn wire(api: &str, download: &str) -> SessionWire {
        serde_json::from_value(json!({
            "apiUrl": api, "downloadUrl": download,
            "primaryAccounts": {MAIL: "A1"}, "unknownField": 1
        }))
        .unwrap()
    }

    #[test]
    fn relative_session_urls_resolve_against_the_session_url() {
        let s = transport("http://127.0.0.1:8080/jmap/")
            .resolve(wire(
                "/jmap/",
                "/jmap/download/{accountId}/{blobId}/{name}?accept={type}",
            ))
            .unwrap();
        assert_eq!(s.api_url.as_str(), "http://127.0.0.1:8080/jmap/");
        assert_eq!(
            s.download_template,
            "http://127.0.0.1:8080/jmap/download/{accountId}/{blobId}/{name}?accept={type}"
        );
    }

    #[test]
    fn absolute_session_urls_are_kept() {
        let s = transport("https://api.fastmail.com/jmap/session")
            .resolve(wire(
                "https://api.fastmail.com/jmap/api/",
                "https://www.fastmailusercontent.com/jmap/download/{accountId}/{blobId}/{name}?type={type}",
            ))
            .unwrap();
        assert_eq!(s.api_url.as_str(), "https://api.fastmail.com/jmap/api/");
        assert!(
            s.download_template
                .starts_with("https://www.fastmailusercontent.com/")
        );
        assert_eq!(s.account_id, "A1");
    }

    #[test]
    fn credentials_never_appear_in_debug() {
        let t = transport("http://127.0.0.1:1/jmap/");
        let cred =
            UpstreamCredential::Bearer(crate::domain::secret::SecretString::new("tok-secret"));
        let header = Transport::authorization(&cred);
        assert!(header.is_sensitive());
        assert!(!format!("{t:?}").contains("tok-secret"));
    }
}
