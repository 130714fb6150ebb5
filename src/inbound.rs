//! Driving adapters: the HTTP surface (poem) and the MCP endpoint (rmcp) mounted in it.

pub mod approve;
mod browser;
mod html;
pub mod http;
pub mod listener;
pub mod mcp;
pub mod oauth;
pub mod pages;
pub mod settings;
