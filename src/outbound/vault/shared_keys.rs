//! What instances would share, on the one process that holds a redb file: keys in `meta`
//! (`shared-key\0<name>` → hex), made once, by the first to ask, in one write transaction;
//! leases, always its own.

use redb::ReadableTable as _;
use zeroize::Zeroizing;

use super::{RedbVault, schema::META};
use crate::outbound::vault_core::{
    VaultStoreError, db_err,
    records::{hex, unhex},
};

impl RedbVault {
    /// The key named `name`, made now if there is none.
    pub(crate) fn shared_key_blocking(
        &self,
        name: &str,
    ) -> Result<Zeroizing<[u8; 32]>, VaultStoreError> {
        let slot = format!("shared-key\0{name}");
        self.write_tx(|tx| {
            let mut meta = tx.open_table(META).map_err(db_err)?;
            if let Some(stored) = meta.get(slot.as_str()).map_err(db_err)? {
                return unhex(stored.value())
                    .map(Zeroizing::new)
                    .ok_or_else(|| VaultStoreError::Corrupt(format!("shared key {name}")));
            }
            let key = Zeroizing::new(rand::random::<[u8; 32]>());
            meta.insert(slot.as_str(), hex(&key).as_str())
                .map_err(db_err)?;
            Ok(key)
        })
    }
}

/// One process holds the redb file: every lease is its own, at once.
impl crate::domain::ports::Leases for RedbVault {
    async fn take_lease(
        &self,
        _name: &str,
        _holder: &str,
        _secs: i64,
    ) -> Result<bool, crate::domain::ports::VaultError> {
        Ok(true)
    }

    async fn renew_lease(
        &self,
        _name: &str,
        _holder: &str,
        _secs: i64,
    ) -> Result<bool, crate::domain::ports::VaultError> {
        Ok(true)
    }

    async fn end_lease(
        &self,
        _name: &str,
        _holder: &str,
    ) -> Result<(), crate::domain::ports::VaultError> {
        Ok(())
    }
}
