//! The domain core: mail, grants, policy and the use cases behind the tools, in rooms by
//! subject — the mail model, search, sending, sign-in and grants, new mail — beside the ports
//! and the use cases.
//!
//! It knows no HTTP, JSON-RPC, JMAP JSON or storage engine; the outside world is reached only
//! through the ports in [`ports`]. See README, "Design", and docs/architecture.md.

pub mod auth;
pub mod grant;
pub mod mail;
pub mod notify;
pub mod ports;
pub mod search;
pub mod secret;
pub mod sending;
pub mod service;
