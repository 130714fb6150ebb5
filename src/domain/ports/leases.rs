//! Leases among the instances sharing one storage (docs/storage-schema.md "Leases"): work that
//! must run in one place at a time — background delivery — is done by whoever holds its lease,
//! and a holder that dies is replaced once the lease lapses.

use super::VaultError;

/// Named leases with an expiry.
#[trait_variant::make(Send)]
pub trait Leases: Sync + 'static {
    /// Takes `name` for `holder` for `secs` if it is free or lapsed; `true` when taken.
    ///
    /// # Errors
    /// [`VaultError::Unexpected`] when storage fails.
    async fn take_lease(&self, name: &str, holder: &str, secs: i64) -> Result<bool, VaultError>;

    /// Extends `holder`'s lease by `secs` from now; `false` when it is no longer theirs.
    ///
    /// # Errors
    /// [`VaultError::Unexpected`] when storage fails.
    async fn renew_lease(&self, name: &str, holder: &str, secs: i64) -> Result<bool, VaultError>;

    /// Gives `holder`'s lease up.
    ///
    /// # Errors
    /// [`VaultError::Unexpected`] when storage fails.
    async fn end_lease(&self, name: &str, holder: &str) -> Result<(), VaultError>;
}
