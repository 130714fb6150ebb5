//! Background notifications over HTTP: the [`Deliverer`] that posts a notice to a Standard
//! Webhooks endpoint or to Poke's inbound message API.
//!
//! The destination URL is chosen by a person, so every request goes through the SSRF guard
//! ([`guard`]): public addresses only, checked before connecting and pinned for the connect.
//! No proxy (it would resolve the name itself, past the guard), no redirects (answered 3xx is a
//! permanent failure), connect 5 s, whole request 15 s, and at most a few KiB of the answer
//! read. Logs name the destination kind, host and status, never the secret, the key, the URL's
//! path, or anything a sender wrote.

pub mod guard;
pub mod payload;

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::{
    Certificate,
    header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER},
};
use url::Url;
use zeroize::Zeroizing;

use crate::domain::notify::delivery::{
    AttemptOutcome, Deliverer, DeliveryError, Destination, DestinationError, Notice, WebhookUrl,
};

/// Where Poke's API lives unless configured otherwise.
pub const DEFAULT_POKE_BASE: &str = "https://poke.com";
/// Poke's inbound message endpoint, below the base.
pub const POKE_INBOUND_PATH: &str = "/api/v1/inbound/api-message";
/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one attempt may take in all (lookup, connect, TLS, request, answer).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// The most of an answer read (it is only drained, never used).
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024;

/// How the HTTP deliverer is set up.
#[derive(Debug, Clone)]
pub struct HttpDelivererConfig {
    /// Poke's base URL (https), [`DEFAULT_POKE_BASE`] unless a test points it at a stub.
    pub poke_base: String,
    /// Tests only: let loopback addresses through the guard (never any other private one).
    pub allow_private_targets: bool,
    /// Tests only: one more trusted root (PEM), for a self-signed loopback sink.
    pub extra_root_certificate: Option<Vec<u8>>,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// How long one attempt may take in all.
    pub timeout: Duration,
}

impl Default for HttpDelivererConfig {
    fn default() -> Self {
        Self {
            poke_base: DEFAULT_POKE_BASE.to_owned(),
            allow_private_targets: false,
            extra_root_certificate: None,
            connect_timeout: CONNECT_TIMEOUT,
            timeout: REQUEST_TIMEOUT,
        }
    }
}

/// Why the HTTP deliverer could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum DelivererSetupError {
    /// The Poke base URL is not an https URL with a host.
    #[error("the Poke base URL is not usable: {0}")]
    PokeBase(DestinationError),
    /// The extra root certificate is not PEM.
    #[error("the extra root certificate is not a PEM certificate: {0}")]
    Certificate(String),
    /// The HTTP client could not be built (TLS setup).
    #[error("the HTTP client could not be built: {0}")]
    Client(String),
}

/// The [`Deliverer`] over HTTPS (reqwest, rustls).
#[derive(Debug, Clone)]
pub struct HttpDeliverer {
    http: reqwest::Client,
    poke_endpoint: Url,
    allow_private_targets: bool,
}

impl HttpDeliverer {
    /// A deliverer with its own HTTP client, guarded resolver and no redirects.
    ///
    /// # Errors
    /// [`DelivererSetupError`] for a bad Poke base, a bad extra root, or a TLS setup failure.
    pub fn new(config: HttpDelivererConfig) -> Result<Self, DelivererSetupError> {
        let base =
            WebhookUrl::parse(&config.poke_base, false).map_err(DelivererSetupError::PokeBase)?;
        let mut poke_endpoint = base.as_url().clone();
        let path = format!(
            "{}{POKE_INBOUND_PATH}",
            base.as_url().path().trim_end_matches('/')
        );
        poke_endpoint.set_path(&path);
        poke_endpoint.set_query(None);

        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve the name itself, past the guard.
            .no_proxy()
            .dns_resolver(guard::GuardedResolver {
                allow_loopback: config.allow_private_targets,
            })
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            .user_agent(concat!("mailconnect/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &config.extra_root_certificate {
            let certs = Certificate::from_pem_bundle(pem)
                .map_err(|e| DelivererSetupError::Certificate(e.to_string()))?;
            if certs.is_empty() {
                return Err(DelivererSetupError::Certificate(
                    "no certificate in it".into(),
                ));
            }
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder
            .build()
            .map_err(|e| DelivererSetupError::Client(innermost(&e)))?;
        Ok(Self {
            http,
            poke_endpoint,
            allow_private_targets: config.allow_private_targets,
        })
    }

    /// The request for one attempt at `now`, after the guard's look at the URL.
    fn request(
        &self,
        destination: &Destination,
        notice: &Notice,
        now: DateTime<Utc>,
    ) -> Result<reqwest::RequestBuilder, DeliveryError> {
        let json = HeaderValue::from_static("application/json");
        match destination {
            Destination::Webhook { url, secret } => {
                guard::check_url(url.as_url(), self.allow_private_targets)?;
                let body = payload::webhook_body(notice, now)?;
                let timestamp = now.timestamp();
                let signature = payload::sign(secret, notice.run_id.as_str(), timestamp, &body)?;
                let mut headers = HeaderMap::new();
                headers.insert(CONTENT_TYPE, json);
                headers.insert("webhook-id", header(notice.run_id.as_str())?);
                headers.insert("webhook-timestamp", HeaderValue::from(timestamp));
                headers.insert("webhook-signature", header(&signature)?);
                Ok(self
                    .http
                    .post(url.as_url().clone())
                    .headers(headers)
                    .body(body))
            }
            Destination::Poke { api_key } => {
                guard::check_url(&self.poke_endpoint, self.allow_private_targets)?;
                let bearer = Zeroizing::new(format!("Bearer {}", api_key.expose_secret()));
                let mut authorization = HeaderValue::from_str(&bearer).map_err(|_| {
                    DeliveryError::Misconfigured("the Poke API key is not a valid header".into())
                })?;
                authorization.set_sensitive(true);
                let mut headers = HeaderMap::new();
                headers.insert(CONTENT_TYPE, json);
                headers.insert(AUTHORIZATION, authorization);
                Ok(self
                    .http
                    .post(self.poke_endpoint.clone())
                    .headers(headers)
                    .body(payload::poke_body(notice)?))
            }
        }
    }

    fn host<'a>(&'a self, destination: &'a Destination) -> &'a str {
        match destination {
            Destination::Webhook { url, .. } => url.host(),
            Destination::Poke { .. } => self.poke_endpoint.host_str().unwrap_or_default(),
        }
    }
}

impl Deliverer for HttpDeliverer {
    async fn attempt(&self, destination: &Destination, notice: &Notice) -> AttemptOutcome {
        let kind = destination.kind();
        let host = self.host(destination);
        let request = match self.request(destination, notice, Utc::now()) {
            Ok(request) => request,
            Err(error) => {
                tracing::warn!(destination = kind, host, reason = %error, "notification not sent");
                return AttemptOutcome::Permanent(error);
            }
        };
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = retry_after(response.headers(), Utc::now());
                drain(response).await;
                tracing::info!(destination = kind, host, status, "notification answered");
                AttemptOutcome::from_status(status, retry_after)
            }
            Err(e) => {
                let error = classify(&e);
                tracing::info!(destination = kind, host, reason = %error, "notification failed");
                AttemptOutcome::from_error(error)
            }
        }
    }
}

fn header(value: &str) -> Result<HeaderValue, DeliveryError> {
    HeaderValue::from_str(value)
        .map_err(|_| DeliveryError::Misconfigured("a header value is not valid".into()))
}

/// The wait a `Retry-After` header asks for: delay-seconds, or an HTTP date from `now`
/// (RFC 9110 §10.2.3). Absent, unreadable or past: none.
#[must_use]
pub fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    (at - now).to_std().ok()
}

/// Reads what the destination answered, up to [`MAX_RESPONSE_BYTES`], and drops it: enough
/// for the connection to be reused after a short answer, never a large download.
async fn drain(mut response: reqwest::Response) {
    let mut read = 0;
    while read <= MAX_RESPONSE_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => read += chunk.len(),
            Ok(None) | Err(_) => break,
        }
    }
}

/// What a failed request means: the guard's refusal (from the resolver, deep in the error
/// chain), a timeout, or an unreachable destination.
fn classify(error: &reqwest::Error) -> DeliveryError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.downcast_ref::<guard::ForbiddenTarget>().is_some() {
            return DeliveryError::ForbiddenAddress;
        }
        source = e.source();
    }
    if error.is_timeout() {
        DeliveryError::TimedOut
    } else if error.is_builder() {
        DeliveryError::Misconfigured(innermost(error))
    } else {
        DeliveryError::Unreachable(innermost(error))
    }
}

/// The innermost cause's message: the useful one, and free of the URL (whose path may carry a
/// receiver's token) that reqwest's outer message includes.
fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        message = e.to_string();
        source = e.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = Utc.with_ymd_and_hms(2015, 10, 21, 7, 28, 0).unwrap();
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(RETRY_AFTER, HeaderValue::from_static(v));
            retry_after(&h, now)
        };
        assert_eq!(with("1"), Some(Duration::from_secs(1)));
        assert_eq!(with(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(
            with("Wed, 21 Oct 2015 07:29:30 GMT"),
            Some(Duration::from_secs(90))
        );
        assert_eq!(with("Wed, 21 Oct 2015 07:00:00 GMT"), None, "past");
        assert_eq!(with("soon"), None);
        assert_eq!(with("-5"), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn the_poke_endpoint_is_below_the_base() {
        let at = |base: &str| {
            HttpDeliverer::new(HttpDelivererConfig {
                poke_base: base.into(),
                ..HttpDelivererConfig::default()
            })
            .map(|d| d.poke_endpoint.to_string())
        };
        assert_eq!(
            at(DEFAULT_POKE_BASE).unwrap(),
            "https://poke.com/api/v1/inbound/api-message"
        );
        assert_eq!(
            at("https://127.0.0.1:8443/stub/").unwrap(),
            "https://127.0.0.1:8443/stub/api/v1/inbound/api-message"
        );
        assert!(matches!(
            at("http://poke.com"),
            Err(DelivererSetupError::PokeBase(DestinationError::NotHttps))
        ));
        assert!(matches!(
            HttpDeliverer::new(HttpDelivererConfig {
                extra_root_certificate: Some(b"not pem".to_vec()),
                ..HttpDelivererConfig::default()
            }),
            Err(DelivererSetupError::Certificate(_))
        ));
    }
}
