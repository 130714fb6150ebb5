//! The storage backends behind one name: what the composition root needs of a store beyond the
//! ports — its background-delivery halves and the configured grant — so the app is built once,
//! generic over [`Storage`], and a backend is chosen by configuration (`--storage`).
//!
//! | backend | for | module |
//! | --- | --- | --- |
//! | redb | one instance, the embedded default | [`super::vault`] |
//! | PostgreSQL | many instances sharing one database | [`super::postgres`] |

use std::future::Future;

use zeroize::Zeroizing;

use crate::{
    domain::{
        grant::{AccessToken, GrantId},
        ports::{
            ApprovalStore, AuditLog, BackgroundError, BackgroundStore, ClientStore, FlowStore,
            Leases, NotifierKeyring, Policy, RegistrationMemory, Sweeper, TokenVault,
        },
    },
    outbound::{
        postgres::{self, PgVault},
        vault::{self, RedbVault},
        vault_core::{
            VaultStoreError,
            notifier_key::{NotifierKey, NotifierSeal},
            steps::NewGrant,
        },
    },
};

/// A store for every storage port.
pub trait Storage:
    TokenVault
    + Policy
    + ApprovalStore
    + AuditLog
    + ClientStore
    + RegistrationMemory
    + FlowStore
    + Leases
    + Sweeper
    + Clone
    + Send
    + Sync
    + 'static
{
    /// The front end's half of background delivery: seals to the notifier key, never opens.
    type Sealing: BackgroundStore + Clone + Send + Sync + 'static;
    /// The notifier's half: opens with the notifier key.
    type Opening: NotifierKeyring + Clone + Send + Sync + 'static;

    /// The sealing half, sealing to `seal`.
    fn sealing(&self, seal: NotifierSeal) -> Self::Sealing;

    /// The opening half, opening with `key`.
    fn opening(&self, key: NotifierKey) -> Self::Opening;

    /// How many notifier grants are stored (a lost key file must not be replaced while any is).
    fn notifier_grants(&self) -> impl Future<Output = Result<usize, BackgroundError>> + Send;

    /// Creates or replaces the configured (self-host) grant, opened by `token`.
    fn put_configured(
        &self,
        grant: &NewGrant<'_>,
        token: &AccessToken,
    ) -> impl Future<Output = Result<(), VaultStoreError>> + Send;

    /// Deletes a grant and its tokens.
    fn delete_grant(
        &self,
        grant: &GrantId,
    ) -> impl Future<Output = Result<(), VaultStoreError>> + Send;

    /// The random key named `name` that every instance on this storage shares, made by the
    /// first to ask (e.g. the HMAC key of 2026-07-28 request states).
    fn shared_key(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Zeroizing<[u8; 32]>, VaultStoreError>> + Send;
}

impl Storage for RedbVault {
    type Sealing = vault::BackgroundVault;
    type Opening = vault::NotifierVault;

    fn sealing(&self, seal: NotifierSeal) -> Self::Sealing {
        vault::BackgroundVault::new(self.clone(), seal)
    }

    fn opening(&self, key: NotifierKey) -> Self::Opening {
        vault::NotifierVault::new(self.clone(), key)
    }

    async fn notifier_grants(&self) -> Result<usize, BackgroundError> {
        self.run(|v| v.notifier_grants()).await
    }

    async fn put_configured(
        &self,
        grant: &NewGrant<'_>,
        token: &AccessToken,
    ) -> Result<(), VaultStoreError> {
        // Called once at start-up: the blocking write is not worth a trip to the pool.
        self.put_grant(grant, token)
    }

    async fn delete_grant(&self, grant: &GrantId) -> Result<(), VaultStoreError> {
        RedbVault::delete_grant(self, grant)
    }

    async fn shared_key(&self, name: &str) -> Result<Zeroizing<[u8; 32]>, VaultStoreError> {
        // Called at start-up, once.
        self.shared_key_blocking(name)
    }
}

impl Storage for PgVault {
    type Sealing = postgres::BackgroundVault;
    type Opening = postgres::NotifierVault;

    fn sealing(&self, seal: NotifierSeal) -> Self::Sealing {
        postgres::BackgroundVault::new(self.clone(), seal)
    }

    fn opening(&self, key: NotifierKey) -> Self::Opening {
        postgres::NotifierVault::new(self.clone(), key)
    }

    async fn notifier_grants(&self) -> Result<usize, BackgroundError> {
        PgVault::notifier_grants(self).await
    }

    async fn put_configured(
        &self,
        grant: &NewGrant<'_>,
        token: &AccessToken,
    ) -> Result<(), VaultStoreError> {
        self.put_grant(grant, token).await
    }

    async fn delete_grant(&self, grant: &GrantId) -> Result<(), VaultStoreError> {
        PgVault::delete_grant(self, grant).await
    }

    async fn shared_key(&self, name: &str) -> Result<Zeroizing<[u8; 32]>, VaultStoreError> {
        PgVault::shared_key(self, name).await
    }
}
