//! The storage-neutral half of the vault: what every backend (redb today, PostgreSQL next)
//! shares byte for byte, so a grant sealed by one opens in another and the stored forms stay
//! those of docs/storage-schema.md.
//!
//! - [`sealing`]: age X25519 sealing of upstream tokens and background secrets, HKDF-SHA256 +
//!   ChaCha20-Poly1305 wrapping under our tokens, SHA-256 token digests.
//! - [`records`]: the stored JSON forms and their conversions to domain types.
//! - [`steps`]: the grant-table steps (issue, redeem, rotate with replay and reuse detection,
//!   revoke, reseal, remove with a tombstone) over a backend's [`steps::GrantTables`].
//! - [`notifier_key`]: the notifier's key file (outside any database).
//! - [`snapshot`]: every row of a vault as stored, and its digest, for moving a vault from
//!   one backend to another.
//! - `contract` (tests and the `test-support` feature): the storage ports' behaviour, one
//!   function per rule, for every backend's tests to run.
//!
//! A backend maps these records onto its tables, runs the steps inside its write
//! transactions and keeps any blocking calls off the async workers; it decides nothing that is
//! written here.

use crate::domain::{
    ports::{AuditError, BackgroundError, PolicyError, RegistrationError, VaultError},
    sending::approval::ApprovalError,
};

pub mod notifier_key;
pub mod records;
pub mod sealing;
pub mod snapshot;
pub mod steps;

#[cfg(any(test, feature = "test-support"))]
pub mod contract;

/// Why a vault backend failed.
#[derive(Debug, thiserror::Error)]
pub enum VaultStoreError {
    /// The database could not be opened, read or written.
    #[error("vault database: {0}")]
    Database(String),
    /// The database gave up the transaction to another (a deadlock or serialization
    /// failure): running it again may succeed.
    #[error("vault database: the transaction conflicted with another")]
    Retry,
    /// Encryption failed.
    #[error("vault crypto: {0}")]
    Crypto(String),
    /// A stored record does not decode.
    #[error("vault record: {0}")]
    Corrupt(String),
}

impl From<VaultStoreError> for crate::domain::ports::FlowStoreError {
    fn from(e: VaultStoreError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

/// A database failure, with its cause.
pub fn db_err(e: impl std::fmt::Display) -> VaultStoreError {
    VaultStoreError::Database(e.to_string())
}

/// Unix seconds now.
#[must_use]
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Every storage port's error takes a backend failure as its `Unexpected`.
macro_rules! unexpected_from_store {
    ($($port_error:ty),* $(,)?) => {$(
        impl From<VaultStoreError> for $port_error {
            fn from(e: VaultStoreError) -> Self {
                Self::Unexpected(e.to_string())
            }
        }
    )*};
}

unexpected_from_store!(
    VaultError,
    PolicyError,
    ApprovalError,
    BackgroundError,
    AuditError,
    RegistrationError,
);
