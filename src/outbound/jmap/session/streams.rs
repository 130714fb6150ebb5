//! The two exchanges that are not API calls: the push EventSource (RFC 8620 §7.3) and blob
//! downloads (§6.2), each streamed.

use std::time::Duration;

use reqwest::{Method, StatusCode, header};
use url::Url;

use super::{Session, Transport};
use crate::domain::{grant::UpstreamCredential, ports::MailStoreError};

/// Longest one push stream is kept open before it is reopened.
const PUSH_STREAM_LIFETIME: Duration = Duration::from_secs(3600);

/// The answer to an EventSource request.
#[derive(Debug)]
pub enum EventSource {
    /// The event stream.
    Open(reqwest::Response),
    /// 400: the server refused the arguments (a type it doesn't know).
    Refused,
    /// No push here.
    NotOffered,
}

impl Transport {
    /// Opens the session's EventSource (RFC 8620 §7.3) for `types`, never closing after a
    /// state, with a ping every `ping`. Without a URL, or answered 404, 405, 501 or a success
    /// without a stream (Debian's Cyrus answers 204), the server offers no push and the caller
    /// polls instead.
    ///
    /// # Errors
    /// [`MailStoreError::Unauthorized`] on 401/403; anything else is transient (a server
    /// restarting answers 500; 429 and 503 carry their `Retry-After`), as are transport
    /// failures: the caller retries on its backoff.
    pub async fn event_source(
        &self,
        cred: &UpstreamCredential,
        session: &Session,
        types: &str,
        ping: Duration,
    ) -> Result<EventSource, MailStoreError> {
        let Some(template) = &session.event_source_template else {
            return Ok(EventSource::NotOffered);
        };
        let url = template
            .replace("{types}", types)
            .replace("{closeafter}", "no")
            .replace("{ping}", &ping.as_secs().max(1).to_string());
        let url = Url::parse(&url)
            .map_err(|e| MailStoreError::Protocol(format!("eventSourceUrl: {e}")))?;
        let request = self
            .authorised(Method::GET, url, cred)
            .header(header::ACCEPT, "text/event-stream")
            // The stream outlives the API deadline; an hour, then a reconnect and a catch-up.
            .timeout(PUSH_STREAM_LIFETIME);
        let response = self.send(request).await?;
        match response.status() {
            StatusCode::OK => Ok(EventSource::Open(response)),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                self.forget(cred);
                Err(MailStoreError::Unauthorized)
            }
            StatusCode::BAD_REQUEST => Ok(EventSource::Refused),
            StatusCode::NOT_FOUND
            | StatusCode::METHOD_NOT_ALLOWED
            | StatusCode::NOT_IMPLEMENTED => Ok(EventSource::NotOffered),
            s if s.is_success() => Ok(EventSource::NotOffered),
            _ => Err(Self::status_error(&response)),
        }
    }

    /// Downloads a blob, refusing more than `max_bytes` while streaming.
    ///
    /// # Errors
    /// See [`MailStoreError`].
    pub async fn download(
        &self,
        cred: &UpstreamCredential,
        session: &Session,
        blob_id: &str,
        name: &str,
        mime_type: &str,
        max_bytes: u64,
    ) -> Result<Vec<u8>, MailStoreError> {
        let url = expand_download(
            &session.download_template,
            &session.account_id,
            blob_id,
            name,
            mime_type,
        );
        let url =
            Url::parse(&url).map_err(|e| MailStoreError::Protocol(format!("downloadUrl: {e}")))?;
        let mut response = self.send(self.authorised(Method::GET, url, cred)).await?;
        if !response.status().is_success() {
            return Err(Self::status_error(&response));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(&e))?
        {
            bytes.extend_from_slice(&chunk);
            if bytes.len() as u64 > max_bytes {
                return Err(MailStoreError::TooLarge {
                    size: bytes.len() as u64,
                    limit: max_bytes,
                });
            }
        }
        Ok(bytes)
    }
}

/// Expands the RFC 8620 §6.2 download template (level-1 RFC 6570: every value percent-encoded).
fn expand_download(
    template: &str,
    account: &str,
    blob: &str,
    name: &str,
    mime_type: &str,
) -> String {
    let enc = |s: &str| {
        url::form_urlencoded::byte_serialize(s.as_bytes())
            .collect::<String>()
            .replace('+', "%20")
    };
    template
        .replace("{accountId}", &enc(account))
        .replace("{blobId}", &enc(blob))
        .replace("{name}", &enc(name))
        .replace("{type}", &enc(mime_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_template_is_percent_encoded() {
        let url = expand_download(
            "https://h/jmap/download/{accountId}/{blobId}/{name}?accept={type}",
            "alice@example.test",
            "Gabc",
            "report q1.pdf",
            "application/pdf",
        );
        assert_eq!(
            url,
            "https://h/jmap/download/alice%40example.test/Gabc/report%20q1.pdf?accept=application%2Fpdf"
        );
    }
}
