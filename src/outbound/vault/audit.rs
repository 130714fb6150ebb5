//! The audit log half of the vault: per-grant events in `audit_v1`, keyed by (grant id,
//! microsecond sequence). Written without waiting for an fsync (`Durability::None`): an event
//! becomes durable with the next durable commit, and losing the last seconds of events in a
//! crash is better than an fsync on every tool call.

use std::sync::atomic::{AtomicU64, Ordering};

use redb::{Durability, ReadableDatabase as _, ReadableTable as _, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{RedbVault, VaultStoreError, db_err, records};
use crate::domain::{
    grant::GrantId,
    ports::{AuditEvent, AuditKind, AuditLog},
};

pub const AUDIT: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("audit_v1");

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

pub(super) fn encode_event(event: &AuditEvent) -> Result<Vec<u8>, VaultStoreError> {
    records::encode(&to_record(event))
}

/// A strictly increasing key: microseconds since the epoch, bumped past the last one issued.
pub(super) fn next_key() -> u64 {
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

impl RedbVault {
    fn record_blocking(&self, event: &AuditEvent) -> Result<(), VaultStoreError> {
        let value = records::encode(&to_record(event))?;
        let mut tx = self.db.begin_write().map_err(db_err)?;
        tx.set_durability(Durability::None).map_err(db_err)?;
        tx.open_table(AUDIT)
            .map_err(db_err)?
            .insert((event.grant.as_str(), next_key()), value.as_slice())
            .map_err(db_err)?;
        tx.commit().map_err(db_err)
    }

    /// The newest `limit` events of `grant`, newest first.
    pub(super) fn events_blocking(
        &self,
        grant: &str,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, VaultStoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let table = tx.open_table(AUDIT).map_err(db_err)?;
        let mut out = Vec::new();
        for entry in table
            .range((grant, 0)..=(grant, u64::MAX))
            .map_err(db_err)?
            .rev()
            .take(limit)
        {
            let (_, v) = entry.map_err(db_err)?;
            out.push(from_record(grant, records::decode(v.value())?));
        }
        Ok(out)
    }

    /// When the grant last called a tool (the "last used" of settings), if it ever did.
    pub(super) fn last_tool_call_blocking(
        &self,
        grant: &str,
    ) -> Result<Option<i64>, VaultStoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let table = tx.open_table(AUDIT).map_err(db_err)?;
        for entry in table
            .range((grant, 0)..=(grant, u64::MAX))
            .map_err(db_err)?
            .rev()
        {
            let (_, v) = entry.map_err(db_err)?;
            let record: EventRecord = records::decode(v.value())?;
            if matches!(record.kind, KindRecord::ToolCall { .. }) {
                return Ok(Some(record.at));
            }
        }
        Ok(None)
    }

    /// Deletes a grant's events (with the grant).
    pub(super) fn remove_events(
        table: &mut redb::Table<'_, (&'static str, u64), &'static [u8]>,
        grant: &str,
    ) -> Result<(), VaultStoreError> {
        let keys: Vec<u64> = table
            .range((grant, 0)..=(grant, u64::MAX))
            .map_err(db_err)?
            .filter_map(Result::ok)
            .map(|(k, _)| k.value().1)
            .collect();
        for k in keys {
            table.remove((grant, k)).map_err(db_err)?;
        }
        Ok(())
    }

    /// Sweeps events past the retention period or beyond the per-grant cap.
    pub(super) fn sweep_events(
        &self,
        now: i64,
        retention: Retention,
    ) -> Result<usize, VaultStoreError> {
        let cutoff = u64::try_from((now - retention.max_age_secs) * 1_000_000).unwrap_or(0);
        let tx = self.db.begin_write().map_err(db_err)?;
        let removed = {
            let mut table = tx.open_table(AUDIT).map_err(db_err)?;
            let mut per_grant: std::collections::HashMap<String, Vec<u64>> =
                std::collections::HashMap::new();
            for entry in table.iter().map_err(db_err)? {
                let (k, _) = entry.map_err(db_err)?;
                let (grant, seq) = k.value();
                per_grant.entry(grant.to_owned()).or_default().push(seq);
            }
            let mut removed = 0;
            for (grant, mut seqs) in per_grant {
                seqs.sort_unstable();
                let over = seqs.len().saturating_sub(retention.max_events);
                for (i, seq) in seqs.into_iter().enumerate() {
                    if i < over || seq < cutoff {
                        table.remove((grant.as_str(), seq)).map_err(db_err)?;
                        removed += 1;
                    }
                }
            }
            removed
        };
        tx.commit().map_err(db_err)?;
        Ok(removed)
    }
}

impl AuditLog for RedbVault {
    fn record(&self, event: AuditEvent) {
        let vault = self.clone();
        let write = move || {
            if let Err(e) = vault.record_blocking(&event) {
                tracing::warn!(grant = %event.grant, error = %e, "audit event lost");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn_blocking(write);
            }
            Err(_) => write(),
        }
    }
}
