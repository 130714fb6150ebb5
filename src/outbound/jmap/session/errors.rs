//! HTTP, transport and method failures as [`MailStoreError`]s (RFC 8620 §3.6): what the caller
//! can do about each, never a URL or a server's text at length.

use std::time::Duration;

use reqwest::{StatusCode, header};

use super::Transport;
use crate::{
    domain::ports::MailStoreError,
    outbound::jmap::wire::{MethodErrorWire, ProblemWire},
};

impl Transport {
    pub(super) async fn checked_body(
        response: reqwest::Response,
    ) -> Result<Vec<u8>, MailStoreError> {
        let status = response.status();
        if status.is_success() {
            return response.bytes().await.map(|b| b.to_vec()).map_err(|e| {
                MailStoreError::Unavailable(format!("reading the response: {}", short(&e)))
            });
        }
        let headers_only = Self::status_error(&response);
        let body = response
            .bytes()
            .await
            .map(|b| b.to_vec())
            .unwrap_or_default();
        match headers_only {
            MailStoreError::Rejected { .. } => Err(Self::status_error_with_body(status, &body)),
            other => Err(other),
        }
    }

    pub(super) fn status_error(response: &reqwest::Response) -> MailStoreError {
        let status = response.status();
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => MailStoreError::Unauthorized,
            StatusCode::NOT_FOUND => {
                MailStoreError::NotFound("the mail server has no such object".into())
            }
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                MailStoreError::RateLimited {
                    retry_after: response
                        .headers()
                        .get(header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs),
                }
            }
            s if s.is_server_error() => MailStoreError::Unavailable(format!("HTTP {}", s.as_u16())),
            s => MailStoreError::Rejected {
                kind: format!("HTTP {}", s.as_u16()),
                description: None,
            },
        }
    }

    fn status_error_with_body(status: StatusCode, body: &[u8]) -> MailStoreError {
        let problem: Option<ProblemWire> = serde_json::from_slice(body).ok();
        MailStoreError::Rejected {
            kind: problem
                .as_ref()
                .and_then(|p| p.kind.clone())
                .unwrap_or_else(|| format!("HTTP {}", status.as_u16())),
            description: problem
                .and_then(|p| p.detail)
                .map(|d| d.chars().take(300).collect()),
        }
    }

    pub(super) fn transport_error(&self, e: &reqwest::Error) -> MailStoreError {
        if e.is_timeout() {
            MailStoreError::Unavailable(format!(
                "no answer within {} s",
                self.config.timeout.as_secs()
            ))
        } else if e.is_connect() {
            MailStoreError::Unavailable("cannot connect".into())
        } else {
            MailStoreError::Unavailable(short(e))
        }
    }
}

/// Error text without the URL (it may carry an account id) and without a source chain.
fn short(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "<url>");
    }
    text.chars().take(200).collect()
}

/// A method error response's arguments as the domain error.
pub fn method_error_of(args: &serde_json::value::RawValue) -> MailStoreError {
    match serde_json::from_str::<MethodErrorWire>(args.get()) {
        Ok(err) => method_error(err),
        Err(e) => MailStoreError::Protocol(format!("method error: {e}")),
    }
}

pub(super) fn method_error(err: MethodErrorWire) -> MailStoreError {
    let description = err.description.map(|d| d.chars().take(300).collect());
    match err.kind.as_str() {
        "accountNotFound" | "accountNotSupportedByMethod" => MailStoreError::Rejected {
            kind: err.kind,
            description,
        },
        "serverUnavailable" | "serverFail" => MailStoreError::Unavailable(format!(
            "{}{}",
            err.kind,
            description.map(|d| format!(": {d}")).unwrap_or_default()
        )),
        "rateLimit" | "tooManyRequests" => MailStoreError::RateLimited { retry_after: None },
        _ => MailStoreError::Rejected {
            kind: err.kind,
            description,
        },
    }
}
