//! Black-box tests against real parts: the Cyrus JMAP testbed, the server over HTTP, real MCP
//! SDK clients. Start the testbed first (`scripts/testbed up`; `scripts/test` does it).
#![allow(clippy::unwrap_used)]

mod checklist_discovery_registration_consent;
mod conformance;
mod contract;
mod fake_jmap;
mod jmap_store;
mod mcp_protocol;
mod mcp_tools;
mod oauth_connect;
mod oauth_flow;
mod sdk_clients;
mod support;
