//! mailconnect: a mail bridge for AI assistants (MCP server in front of JMAP).
//!
//! Layout (hexagonal): [`domain`] is the core; [`inbound`] adapters drive it (HTTP, MCP);
//! [`outbound`] adapters are driven by it (JMAP, vault); [`app`] wires them (composition root).

pub mod app;
pub mod config;
pub mod domain;
pub mod inbound;
pub mod outbound;
pub mod telemetry;
