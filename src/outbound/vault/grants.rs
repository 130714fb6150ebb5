//! Grants as settings see them on redb: [`Policy`] (read fresh, capabilities cached), the
//! listing of a person's connections and of those that ended (`revoked_v1`), and the
//! configured self-host grant.

use redb::ReadableTable as _;

use super::{
    CACHE_LIMIT, RedbVault,
    schema::{AUDIT, GRANTS, REVOKED, now_or_never},
};
use crate::{
    domain::{
        grant::{AccessToken, CapabilitySet, GrantId},
        notify::settings::NotifySettings,
        ports::{GrantSummary, Policy, PolicyError},
        sending::recipients::RecipientRule,
    },
    outbound::vault_core::{
        VaultStoreError, db_err,
        records::{self, GrantRecord, NotifyRecord, Tombstone, audit},
        steps::{self, NewGrant},
    },
};

impl RedbVault {
    /// Creates (or replaces) a configured grant opened by `token`, which never expires.
    /// Blocking: called once at start-up.
    ///
    /// # Errors
    /// [`VaultStoreError`] on database or crypto failure; nothing is written then.
    pub fn put_grant(
        &self,
        grant: &NewGrant<'_>,
        token: &AccessToken,
    ) -> Result<(), VaultStoreError> {
        self.write(|w| now_or_never(steps::put_configured(w, grant, token)))?;
        self.cache().forget_grant(grant.id);
        Ok(())
    }

    /// Deletes a grant and every token of it. Blocking.
    ///
    /// # Errors
    /// [`VaultStoreError::Database`] on failure; nothing is deleted then.
    pub fn delete_grant(&self, grant: &GrantId) -> Result<(), VaultStoreError> {
        self.write(|w| w.remove_grant(grant.as_str()))?;
        self.cache().forget_grant(grant);
        Ok(())
    }

    /// A grant's record, for its policy.
    fn policy_record(&self, grant: &GrantId) -> Result<GrantRecord, PolicyError> {
        self.grant_record(grant.as_str())?
            .ok_or_else(|| PolicyError::UnknownGrant(grant.clone()))
    }

    /// Reads one part of a grant's policy, fresh (a tightened rule applies at once).
    async fn read_policy<T: Send + 'static>(
        &self,
        grant: &GrantId,
        part: impl FnOnce(GrantRecord) -> T + Send + 'static,
    ) -> Result<T, PolicyError> {
        let id = grant.clone();
        self.run(move |v| v.policy_record(&id).map(part)).await
    }

    /// Changes one part of a grant's policy in its record.
    async fn update_policy(
        &self,
        grant: &GrantId,
        change: impl FnOnce(&mut GrantRecord) + Send + 'static,
    ) -> Result<(), PolicyError> {
        let id = grant.clone();
        let found = self
            .run(move |v| v.write(|w| now_or_never(steps::update_grant(w, &id, change))))
            .await?;
        found
            .then_some(())
            .ok_or_else(|| PolicyError::UnknownGrant(grant.clone()))
    }

    pub(super) fn grants_of_blocking(
        &self,
        account_digest: &str,
    ) -> Result<Vec<GrantSummary>, VaultStoreError> {
        let mut out = self.read(|tx| {
            let grants = tx.open_table(GRANTS).map_err(db_err)?;
            let events = tx.open_table(AUDIT).map_err(db_err)?;
            let mut out = Vec::new();
            for entry in grants.iter().map_err(db_err)? {
                let (_, v) = entry.map_err(db_err)?;
                let g: GrantRecord = records::decode(v.value())?;
                // A grant whose code was never redeemed is not a connection yet.
                if !g.connection_of(account_digest) {
                    continue;
                }
                let mut last_used_at = None;
                for entry in events
                    .range((g.id.as_str(), 0)..=(g.id.as_str(), u64::MAX))
                    .map_err(db_err)?
                    .rev()
                {
                    let (_, v) = entry.map_err(db_err)?;
                    last_used_at = audit::tool_call_at(v.value())?;
                    if last_used_at.is_some() {
                        break;
                    }
                }
                out.push(g.summary(last_used_at));
            }
            Ok::<_, VaultStoreError>(out)
        })?;
        out.sort_by_key(|g| std::cmp::Reverse(g.created_at));
        Ok(out)
    }

    pub(super) fn revoked_of_blocking(
        &self,
        account_digest: &str,
    ) -> Result<Vec<GrantSummary>, VaultStoreError> {
        let mut out = self.read(|tx| {
            let table = tx.open_table(REVOKED).map_err(db_err)?;
            let mut out = Vec::new();
            for entry in table.iter().map_err(db_err)? {
                let (k, v) = entry.map_err(db_err)?;
                let t: Tombstone = records::decode(v.value())?;
                if t.account_digest == account_digest {
                    out.push(t.summary(k.value()));
                }
            }
            Ok::<_, VaultStoreError>(out)
        })?;
        out.sort_by_key(|g| std::cmp::Reverse(g.last_used_at));
        Ok(out)
    }
}

impl Policy for RedbVault {
    async fn capabilities(&self, grant: &GrantId) -> Result<CapabilitySet, PolicyError> {
        if let Some(cached) = self.cache().policies.get(grant) {
            return Ok(cached.clone());
        }
        let capabilities = self.read_policy(grant, |g| g.capability_set()).await?;
        let mut cache = self.cache();
        if cache.policies.len() >= CACHE_LIMIT {
            cache.policies.clear();
        }
        cache.policies.insert(grant.clone(), capabilities.clone());
        Ok(capabilities)
    }

    async fn notify_settings(&self, grant: &GrantId) -> Result<NotifySettings, PolicyError> {
        self.read_policy(grant, |g| g.notify_settings()).await
    }

    async fn recipients(&self, grant: &GrantId) -> Result<RecipientRule, PolicyError> {
        // Read fresh each time: sending is rare, and a tightened rule must apply at once.
        self.read_policy(grant, |g| g.recipient_rule()).await
    }

    async fn review_only(&self, grant: &GrantId) -> Result<bool, PolicyError> {
        // Read fresh each time, like the recipient rule: a tightened rule applies at once.
        self.read_policy(grant, |g| g.review_only).await
    }

    async fn set_capabilities(
        &self,
        grant: &GrantId,
        capabilities: CapabilitySet,
    ) -> Result<(), PolicyError> {
        self.update_policy(grant, move |g| g.set_capabilities(&capabilities))
            .await?;
        self.cache().forget_grant(grant);
        Ok(())
    }

    async fn set_notify_settings(
        &self,
        grant: &GrantId,
        settings: NotifySettings,
    ) -> Result<(), PolicyError> {
        let record = NotifyRecord::from_settings(&settings);
        self.update_policy(grant, move |g| g.notify = Some(record))
            .await
    }

    async fn set_recipients(
        &self,
        grant: &GrantId,
        rule: RecipientRule,
    ) -> Result<(), PolicyError> {
        self.update_policy(grant, move |g| g.recipients = Some(rule.to_stored()))
            .await
    }

    async fn set_review_only(&self, grant: &GrantId, review_only: bool) -> Result<(), PolicyError> {
        self.update_policy(grant, move |g| g.review_only = review_only)
            .await
    }
}
