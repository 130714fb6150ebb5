//! [`Policy`] on PostgreSQL: a grant's settings live in its record; every read is fresh (a
//! tightened rule applies at once, on every instance), every change one transaction.

use super::{PgVault, schema::pg_err, tables::in_transaction};
use crate::{
    domain::{
        grant::{AccessToken, CapabilitySet, GrantId},
        notify::settings::NotifySettings,
        ports::{Policy, PolicyError},
        sending::recipients::RecipientRule,
    },
    outbound::vault_core::{
        VaultStoreError,
        records::{self, GrantRecord, NotifyRecord},
        steps::{self, NewGrant},
    },
};

impl PgVault {
    /// Creates (or replaces) a configured grant opened by `token`, which never expires.
    ///
    /// # Errors
    /// [`VaultStoreError`] on database or crypto failure; nothing is written then.
    pub async fn put_grant(
        &self,
        grant: &NewGrant<'_>,
        token: &AccessToken,
    ) -> Result<(), VaultStoreError> {
        in_transaction!(self, |t| steps::put_configured(t, grant, token))
    }

    /// Deletes a grant and every token of it.
    ///
    /// # Errors
    /// [`VaultStoreError`] on failure; nothing is deleted then.
    pub async fn delete_grant(&self, grant: &GrantId) -> Result<(), VaultStoreError> {
        in_transaction!(self, |t| steps::remove_grant(t, grant.as_str()))
    }

    /// One part of a grant's settings, read fresh.
    async fn read_policy<T>(
        &self,
        grant: &GrantId,
        part: impl FnOnce(GrantRecord) -> T,
    ) -> Result<T, PolicyError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT record FROM grants WHERE id = $1",
                &[&grant.as_str()],
            )
            .await
            .map_err(pg_err)?
            .ok_or_else(|| PolicyError::UnknownGrant(grant.clone()))?;
        Ok(part(records::decode(row.get::<_, &[u8]>(0))?))
    }

    /// Changes one part of a grant's settings in its record.
    async fn update_policy(
        &self,
        grant: &GrantId,
        change: impl Fn(&mut GrantRecord) + Send + Sync,
    ) -> Result<(), PolicyError> {
        in_transaction!(self, |t| steps::update_grant(t, grant, &change))?
            .then_some(())
            .ok_or_else(|| PolicyError::UnknownGrant(grant.clone()))
    }
}

impl Policy for PgVault {
    async fn capabilities(&self, grant: &GrantId) -> Result<CapabilitySet, PolicyError> {
        self.read_policy(grant, |g| g.capability_set()).await
    }

    async fn notify_settings(&self, grant: &GrantId) -> Result<NotifySettings, PolicyError> {
        self.read_policy(grant, |g| g.notify_settings()).await
    }

    async fn recipients(&self, grant: &GrantId) -> Result<RecipientRule, PolicyError> {
        self.read_policy(grant, |g| g.recipient_rule()).await
    }

    async fn review_only(&self, grant: &GrantId) -> Result<bool, PolicyError> {
        self.read_policy(grant, |g| g.review_only).await
    }

    async fn set_capabilities(
        &self,
        grant: &GrantId,
        capabilities: CapabilitySet,
    ) -> Result<(), PolicyError> {
        self.update_policy(grant, |g| g.set_capabilities(&capabilities))
            .await
    }

    async fn set_notify_settings(
        &self,
        grant: &GrantId,
        settings: NotifySettings,
    ) -> Result<(), PolicyError> {
        let record = NotifyRecord::from_settings(&settings);
        self.update_policy(grant, |g| g.notify = Some(record.clone()))
            .await
    }

    async fn set_recipients(
        &self,
        grant: &GrantId,
        rule: RecipientRule,
    ) -> Result<(), PolicyError> {
        self.update_policy(grant, |g| g.recipients = Some(rule.to_stored()))
            .await
    }

    async fn set_review_only(&self, grant: &GrantId, review_only: bool) -> Result<(), PolicyError> {
        self.update_policy(grant, |g| g.review_only = review_only)
            .await
    }
}
