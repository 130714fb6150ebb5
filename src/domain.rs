//! The domain core: mail, grants, policy and the use cases behind the tools.
//!
//! It knows no HTTP, JSON-RPC, JMAP JSON or storage engine; the outside world is reached only
//! through the ports in [`ports`]. See README, "Design".

pub mod approval;
pub mod auth;
pub mod body;
pub mod changes;
pub mod compose;
pub mod grant;
pub mod ids;
pub mod mail;
pub mod mailboxes;
pub mod notify;
pub mod ports;
pub mod query;
pub mod recipients;
pub mod search_syntax;
pub mod secret;
pub mod service;
pub mod submission;
pub mod text_extract;
