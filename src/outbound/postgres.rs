//! The PostgreSQL vault: the storage ports over one PostgreSQL database, for hosted
//! deployments where many instances share one store (README "Storage"; schema in
//! docs/storage-schema.md). The stored values are [`super::vault_core`]'s, byte for byte the
//! same as redb's, and the grant steps are its [`steps`](super::vault_core::steps); this
//! adapter maps them onto tables:
//!
//! - `schema`: the connection pool, versioned migrations under an advisory lock;
//! - `tables`: the grant steps' [`GrantTables`](super::vault_core::steps::GrantTables) in one
//!   transaction, rows read `FOR UPDATE` so writers of one grant serialise across instances;
//! - `tokens`, `grants`, `approvals`, `audit`, `clients`, `background`, `sweep`: one port each;
//! - `snapshot`: every row as a [`Snapshot`](super::vault_core::snapshot::Snapshot), and one
//!   written in (`storage copy`).
//!
//! Nothing is cached between requests: another instance may have changed any row.

mod approvals;
mod audit;
mod background;
mod clients;
mod flows;
mod grants;
mod leases;
mod schema;
mod shared_keys;
mod snapshot;
mod sweep;
mod tables;
mod tokens;

pub use self::{
    background::{BackgroundVault, NotifierVault},
    schema::{PgVault, SCHEMA_VERSION},
    snapshot::ImportError,
};

// Always built: the black-box tests use it without a feature, and it holds no secret.
#[doc(hidden)]
pub mod testing;
#[cfg(test)]
mod tests;
