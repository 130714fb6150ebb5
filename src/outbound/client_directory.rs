//! Where clients come from: the vault (registered and configured clients) and Client ID
//! Metadata Documents fetched from the https URL that is the client's id.
//!
//! Fetching a URL a stranger chose is a server-side request forgery risk, so the fetch is
//! https only, resolves the host itself and refuses private, loopback, link-local and other
//! special addresses, pins the connection to the checked address, follows no redirect, and
//! reads at most [`MAX_DOCUMENT_BYTES`] within [`FETCH_TIMEOUT`]. A test-only setting allows
//! loopback http, since tests can't get certificates.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use serde::Deserialize;

use crate::domain::{
    auth::client::{ClientId, ClientMetadata, OAuthClient, client_from_metadata_document},
    ports::{ClientStore, VaultError},
};

/// Largest metadata document read.
pub const MAX_DOCUMENT_BYTES: usize = 8 * 1024;
/// How long a fetch may take in all.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a fetched document is trusted (clients send `max-age=300`).
pub const DOCUMENT_TTL: Duration = Duration::from_secs(300);

/// How old a stored copy of a document may be when a fetch fails.
pub const STORED_COPY_MAX_AGE_SECS: i64 = 86_400;

#[derive(Debug, Deserialize)]
struct Document {
    client_id: Option<String>,
    client_name: Option<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Vec<String>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
}

/// Whether an address is one a public metadata document can live at.
#[must_use]
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8)
        }
    }
}

/// The clients of the authorization server.
#[derive(Debug)]
pub struct ClientDirectory<S> {
    vault: S,
    allow_loopback: bool,
    fetched: Mutex<HashMap<String, (OAuthClient, Instant)>>,
}

impl<S: ClientStore> ClientDirectory<S> {
    /// Clients from `vault`, and metadata documents (over loopback http too when
    /// `allow_loopback`, for tests only).
    #[must_use]
    pub fn new(vault: S, allow_loopback: bool) -> Self {
        Self {
            vault,
            allow_loopback,
            fetched: Mutex::default(),
        }
    }

    async fn fetch(&self, url: &str) -> Result<OAuthClient, DocumentError> {
        use DocumentError::{Invalid, Refused, Unreachable};
        let parsed = url::Url::parse(url).map_err(|e| Refused(e.to_string()))?;
        let host = parsed
            .host_str()
            .ok_or_else(|| Refused("no host".into()))?
            .trim_matches(['[', ']'])
            .to_owned();
        let port = parsed
            .port_or_known_default()
            .ok_or_else(|| Refused("no port".into()))?;
        let loopback_ok = self.allow_loopback && parsed.scheme() == "http";
        if parsed.scheme() != "https" && !loopback_ok {
            return Err(Refused(
                "metadata documents are fetched over https only".into(),
            ));
        }
        let addrs: Vec<SocketAddr> = tokio::time::timeout(
            FETCH_TIMEOUT,
            tokio::net::lookup_host((host.as_str(), port)),
        )
        .await
        .map_err(|_| Unreachable("name lookup timed out".into()))?
        .map_err(|e| Unreachable(format!("name lookup failed: {e}")))?
        .collect();
        let addr = addrs
            .into_iter()
            .find(|a| is_public(a.ip()) || (loopback_ok && a.ip().is_loopback()))
            .ok_or_else(|| {
                Refused("the client's host resolves only to private or special addresses".into())
            })?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(FETCH_TIMEOUT)
            .resolve(&host, addr)
            .user_agent(concat!("mailconnect/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Unreachable(e.to_string()))?;
        let mut response = http
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| Unreachable(format!("fetch failed: {}", e.without_url())))?;
        if !response.status().is_success() {
            return Err(Unreachable(format!(
                "the document answered HTTP {}",
                response.status()
            )));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| Unreachable(e.without_url().to_string()))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_DOCUMENT_BYTES {
                return Err(Invalid(format!(
                    "the document is over {MAX_DOCUMENT_BYTES} bytes"
                )));
            }
        }
        let doc: Document = serde_json::from_slice(&body)
            .map_err(|e| Invalid(format!("the document is not client metadata: {e}")))?;
        let meta = ClientMetadata {
            redirect_uris: doc.redirect_uris,
            client_name: doc.client_name,
            token_endpoint_auth_method: doc.token_endpoint_auth_method,
            token_endpoint_auth_methods: doc.token_endpoint_auth_methods_supported,
            grant_types: doc.grant_types,
            response_types: doc.response_types,
        };
        client_from_metadata_document(url, doc.client_id.as_deref(), &meta)
            .map_err(|e| Invalid(e.to_string()))
    }
}

/// Why a client metadata document was refused (logged; the client just isn't known).
#[derive(Debug, thiserror::Error)]
enum DocumentError {
    /// Not a URL, scheme or address we fetch from (the SSRF guard).
    #[error("{0}")]
    Refused(String),
    /// The host could not be reached, or did not answer with a document.
    #[error("{0}")]
    Unreachable(String),
    /// What it answered is not a client metadata document for that URL.
    #[error("{0}")]
    Invalid(String),
}

impl<S: ClientStore> ClientStore for ClientDirectory<S> {
    async fn client(&self, id: &ClientId) -> Result<Option<OAuthClient>, VaultError> {
        if !(id.is_metadata_document_url()
            || (self.allow_loopback && id.as_str().starts_with("http://")))
        {
            return self.vault.client(id).await;
        }
        let cached = self
            .fetched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id.as_str())
            .filter(|(_, at)| at.elapsed() < DOCUMENT_TTL)
            .map(|(c, _)| c.clone());
        if let Some(client) = cached {
            return Ok(Some(client));
        }
        match self.fetch(id.as_str()).await {
            Ok(client) => {
                {
                    let mut fetched = self.fetched.lock().unwrap_or_else(PoisonError::into_inner);
                    if fetched.len() > 1000 {
                        fetched.clear();
                    }
                    fetched.insert(id.as_str().to_owned(), (client.clone(), Instant::now()));
                }
                // Kept so a token request after a restart still knows the client.
                self.vault.put_client(client.clone()).await?;
                Ok(Some(client))
            }
            Err(why) => {
                // Failures are never cached. A copy from a fetch within a day still serves (the
                // client's host may be briefly down while it refreshes its tokens).
                tracing::warn!(client = %id, reason = %why, "client metadata document refused");
                let recent = chrono::Utc::now().timestamp() - STORED_COPY_MAX_AGE_SECS;
                Ok(self
                    .vault
                    .client(id)
                    .await?
                    .filter(|c| c.created_at >= recent))
            }
        }
    }

    async fn put_client(&self, client: OAuthClient) -> Result<(), VaultError> {
        self.vault.put_client(client).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fc00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "224.0.0.1",
            "255.255.255.255",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "2606:2800:220:1:248:1893:25c8:1946",
            "1.1.1.1",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }
}
