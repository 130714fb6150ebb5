//! The audit log: what each grant did or had done to it, appended and read through one port
//! (docs/storage-schema.md `audit_v1`).

use crate::domain::grant::GrantId;

/// Something a grant did or had done to it, for the person's audit log. Never mail content,
/// addresses or tokens: tool names, outcomes and counts only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// The grant.
    pub grant: GrantId,
    /// Unix seconds.
    pub at: i64,
    /// What happened.
    pub kind: AuditKind,
}

/// What an audit event records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditKind {
    /// The client connected (its code was redeemed).
    Connected,
    /// The client refreshed its tokens.
    Refreshed,
    /// A tool call: its name, outcome and how many emails it touched.
    ToolCall {
        /// The tool.
        tool: String,
        /// `ok`, `not_permitted`, `not_found`…
        outcome: String,
        /// Emails changed, for write tools.
        count: Option<u64>,
    },
    /// The person changed the grant's capabilities.
    PolicyChanged {
        /// The new set, by name.
        capabilities: Vec<String>,
    },
    /// The grant ended (revoked by the person or the client, a reused token, or the upstream
    /// ended it); its tokens and sealed credentials are gone.
    Revoked,
    /// The person approved or declined sending a draft (`approved`, `declined`), where
    /// (`review_page`, `client_dialog`). No content.
    SendDecision {
        /// What they decided.
        decision: String,
        /// Where.
        via: String,
    },
}

/// How long and how much of the audit log is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Events (and ended connections) older than this many seconds are swept.
    pub max_age_secs: i64,
    /// Events kept per grant; older ones are swept.
    pub max_events: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            max_age_secs: 90 * 86_400,
            max_events: 500,
        }
    }
}

/// Why the audit log could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    /// The store failed.
    #[error("the audit log failed: {0}")]
    Unexpected(String),
}

/// Where audit events go and are read back.
#[trait_variant::make(Send)]
#[cfg_attr(any(test, feature = "test-support"), mockall::automock)]
pub trait AuditLog: Sync + 'static {
    /// Records an event, durably once it returns. Recording never fails the operation it
    /// records: the store logs an event it lost. An adapter that must not make a client wait
    /// for it records from a task of its own.
    async fn record(&self, event: AuditEvent);

    /// A grant's most recent events, newest first (in the order they were recorded).
    ///
    /// # Errors
    /// [`AuditError`].
    async fn events(&self, grant: &GrantId, limit: usize) -> Result<Vec<AuditEvent>, AuditError>;
}
