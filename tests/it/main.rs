//! Black-box tests against real parts: the Cyrus JMAP testbed, the server over HTTP, real MCP
//! SDK clients. Start the testbed first (`scripts/testbed up`; `scripts/test` does it).
#![allow(clippy::unwrap_used)]

mod background;
mod bodies;
mod browser_consent;
mod browser_review;
mod browser_settings;
mod checklist_discovery_registration_consent;
mod checklist_resource_upstream;
mod checklist_tokens;
mod cluster;
mod compose;
mod compose_flow;
mod compose_undo;
mod conformance;
mod contract;
mod control;
mod delivery;
mod fault_proxy;
mod jmap_store;
mod lifecycle;
mod log_hygiene;
mod mcp_protocol;
mod mcp_tools;
mod new_mail;
mod oauth_connect;
mod oauth_snapshots;
mod postgres_storage;
mod push;
mod sdk_clients;
mod sdk_oauth;
mod search_syntax;
mod support;
mod upstream_resource;
