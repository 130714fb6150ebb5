//! Driving adapters: the HTTP surface (poem) and the MCP endpoint (rmcp) mounted in it.

pub mod approve;
pub mod background_work;
mod browser;
mod html;
pub mod http;
pub mod listener;
pub mod mcp;
pub mod oauth;
pub mod pages;
pub mod settings;

/// Records `event` from a task of its own: an answer to a client never waits on the log.
fn record_in_background(
    log: &std::sync::Arc<dyn crate::domain::ports::DynAuditLog>,
    event: crate::domain::ports::AuditEvent,
) {
    let log = std::sync::Arc::clone(log);
    tokio::spawn(async move { log.record(event).await });
}
