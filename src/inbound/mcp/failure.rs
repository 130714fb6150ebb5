//! How a failed tool call reaches the client. Failures the model can act on (a bad argument, no
//! such email, over a cap) are tool results with `isError` and a sentence it can use; only a
//! request we can't route (an unknown tool, no authenticated caller) is a JSON-RPC error.

use rmcp::{
    ErrorData,
    model::{CallToolResult, ContentBlock},
};

use super::contract::CATALOG;
use crate::domain::{grant::Caller, ports::MailStoreError, service::ServiceError};

/// Why a tool call failed, as the model will read it.
#[derive(Debug, thiserror::Error)]
pub(super) enum ToolFailure {
    #[error("invalid arguments: {0}")]
    Arguments(String),
    #[error("{0}")]
    Service(#[from] ServiceError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ToolFailure {
    /// The kind of failure, for the audit log and our own log (never the error's text: it can
    /// echo arguments such as search words and addresses).
    pub(super) fn outcome(&self) -> &'static str {
        match self {
            Self::Arguments(_) | Self::Service(ServiceError::InvalidArgument(_)) => {
                "invalid_arguments"
            }
            Self::Service(ServiceError::NotPermitted { .. }) => "not_permitted",
            Self::Service(ServiceError::Store(
                MailStoreError::NotFound(_) | MailStoreError::MailboxLookup(_),
            )) => "not_found",
            Self::Service(ServiceError::Store(MailStoreError::TooLarge { .. })) => "too_large",
            Self::Service(
                ServiceError::Store(MailStoreError::Unauthorized)
                | ServiceError::Unauthenticated(_),
            ) => "unauthorized",
            Self::Service(ServiceError::Store(MailStoreError::RateLimited { .. })) => {
                "rate_limited"
            }
            Self::Service(ServiceError::Store(MailStoreError::Unavailable(_))) => {
                "upstream_unavailable"
            }
            Self::Service(ServiceError::StorageUnavailable(_)) => "storage_unavailable",
            Self::Service(ServiceError::Send(refusal)) => refusal.code(),
            Self::Service(ServiceError::Store(MailStoreError::Refused(refusal))) => refusal.code(),
            Self::Service(_) | Self::Internal(_) => "failed",
        }
    }

    /// A stable code the model can branch on, for the refusals of drafting and sending (and
    /// throttling of the send tools, which the model should retry later, not rephrase).
    fn code(&self, tool: &str) -> Option<&'static str> {
        match self {
            Self::Service(
                ServiceError::Send(_) | ServiceError::Store(MailStoreError::Refused(_)),
            ) => Some(self.outcome()),
            Self::Service(ServiceError::Store(MailStoreError::RateLimited { .. }))
                if matches!(tool, "send_draft" | "cancel_send" | "draft_email") =>
            {
                Some("rate_limited")
            }
            _ => None,
        }
    }

    fn advice(&self) -> &'static str {
        match self {
            Self::Service(ServiceError::Store(MailStoreError::Unauthorized)) => {
                " The mailbox connection has expired or was revoked; the person needs to reconnect mailconnect."
            }
            Self::Service(ServiceError::Store(
                MailStoreError::Unavailable(_) | MailStoreError::RateLimited { .. },
            )) => " Try again in a moment.",
            _ => "",
        }
    }

    /// The tool result the model reads: the code to branch on, the sentence, what to do next.
    pub(super) fn into_result(self, tool: &str) -> CallToolResult {
        let code = self
            .code(tool)
            .map(|c| format!("{c}: "))
            .unwrap_or_default();
        CallToolResult::error(vec![ContentBlock::text(format!(
            "{code}{self}.{}",
            self.advice()
        ))])
    }
}

/// A domain value parsed from an argument, its error naming the argument.
pub(super) fn parsed<T, E: std::fmt::Display>(
    what: &str,
    r: Result<T, E>,
) -> Result<T, ToolFailure> {
    r.map_err(|e| ToolFailure::Arguments(format!("{what}: {e}")))
}

/// A call of a tool that doesn't exist: the client has the wrong list, so it gets the tools
/// this caller may use.
pub(super) fn unknown_tool(name: &str, caller: &Caller) -> ErrorData {
    let known: Vec<&str> = CATALOG
        .iter()
        .filter(|(spec, _)| caller.capabilities.allows(spec.capability))
        .map(|(spec, _)| spec.name)
        .collect();
    ErrorData::invalid_params(
        format!("unknown tool {name:?}; the tools are {}", known.join(", ")),
        None,
    )
}
