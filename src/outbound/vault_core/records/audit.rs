//! `audit_v1` values: `{"at", "kind", …}` (docs/storage-schema.md). Never mail content,
//! addresses or tokens.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::{
    domain::{
        grant::GrantId,
        ports::{AuditEvent, AuditKind},
    },
    outbound::vault_core::VaultStoreError,
};

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum KindRecord {
    Connected,
    Refreshed,
    ToolCall {
        tool: String,
        outcome: String,
        count: Option<u64>,
    },
    PolicyChanged {
        capabilities: Vec<String>,
    },
    Revoked,
    SendDecision {
        decision: String,
        via: String,
    },
}

#[derive(Serialize, Deserialize)]
struct EventRecord {
    at: i64,
    #[serde(flatten)]
    kind: KindRecord,
}

fn to_record(e: &AuditEvent) -> EventRecord {
    EventRecord {
        at: e.at,
        kind: match &e.kind {
            AuditKind::Connected => KindRecord::Connected,
            AuditKind::Refreshed => KindRecord::Refreshed,
            AuditKind::ToolCall {
                tool,
                outcome,
                count,
            } => KindRecord::ToolCall {
                tool: tool.clone(),
                outcome: outcome.clone(),
                count: *count,
            },
            AuditKind::PolicyChanged { capabilities } => KindRecord::PolicyChanged {
                capabilities: capabilities.clone(),
            },
            AuditKind::Revoked => KindRecord::Revoked,
            AuditKind::SendDecision { decision, via } => KindRecord::SendDecision {
                decision: decision.clone(),
                via: via.clone(),
            },
        },
    }
}

fn from_record(grant: &str, r: EventRecord) -> AuditEvent {
    AuditEvent {
        grant: GrantId::new(grant),
        at: r.at,
        kind: match r.kind {
            KindRecord::Connected => AuditKind::Connected,
            KindRecord::Refreshed => AuditKind::Refreshed,
            KindRecord::ToolCall {
                tool,
                outcome,
                count,
            } => AuditKind::ToolCall {
                tool,
                outcome,
                count,
            },
            KindRecord::PolicyChanged { capabilities } => AuditKind::PolicyChanged { capabilities },
            KindRecord::Revoked => AuditKind::Revoked,
            KindRecord::SendDecision { decision, via } => AuditKind::SendDecision { decision, via },
        },
    }
}

/// An event as stored (its grant is in the key).
///
/// # Errors
/// [`VaultStoreError::Corrupt`].
pub fn encode_event(event: &AuditEvent) -> Result<Vec<u8>, VaultStoreError> {
    super::encode(&to_record(event))
}

/// A stored event of `grant`.
///
/// # Errors
/// [`VaultStoreError::Corrupt`].
pub fn decode_event(grant: &str, raw: &[u8]) -> Result<AuditEvent, VaultStoreError> {
    super::decode(raw).map(|r| from_record(grant, r))
}

/// When a stored event was a tool call (the "last used" of settings), its time.
///
/// # Errors
/// [`VaultStoreError::Corrupt`].
pub fn tool_call_at(raw: &[u8]) -> Result<Option<i64>, VaultStoreError> {
    let record: EventRecord = super::decode(raw)?;
    Ok(matches!(record.kind, KindRecord::ToolCall { .. }).then_some(record.at))
}

/// The event's `kind` as stored (what a backend may index to find tool calls).
#[must_use]
pub fn kind_name(kind: &AuditKind) -> &'static str {
    match kind {
        AuditKind::Connected => "connected",
        AuditKind::Refreshed => "refreshed",
        AuditKind::ToolCall { .. } => TOOL_CALL,
        AuditKind::PolicyChanged { .. } => "policy_changed",
        AuditKind::Revoked => "revoked",
        AuditKind::SendDecision { .. } => "send_decision",
    }
}

/// The stored `kind` of a tool call.
pub const TOOL_CALL: &str = "tool_call";

/// A strictly increasing key: microseconds since the epoch, bumped past the last one issued.
pub fn next_key() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = u64::try_from(chrono::Utc::now().timestamp_micros()).unwrap_or(0);
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(last + 1);
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}
