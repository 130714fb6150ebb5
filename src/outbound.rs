//! Driven adapters: the mail server (JMAP) and where grants live (vaults).

pub mod client_directory;
pub mod delivery;
pub mod jmap;
pub mod pdf;
pub mod postgres;
pub mod storage;
pub mod storage_copy;
pub mod upstream_oauth;
pub mod vault;
pub mod vault_core;
