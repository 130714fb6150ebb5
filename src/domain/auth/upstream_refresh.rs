//! Refreshing a grant's upstream token: single-flight per grant, double-checked against what is
//! stored, durably re-sealed before anyone uses it. Upstream refresh tokens may be single use
//! (Fastmail revokes the grant on reuse), so two refreshes of one grant must never race.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use crate::domain::{
    grant::{AccessToken, GrantId, UpstreamCredential},
    ports::{OpenedGrant, TokenVault, UpstreamAuth, UpstreamAuthError, UpstreamTokens, VaultError},
};

/// Refresh ahead of expiry by this many seconds.
pub const REFRESH_AHEAD_SECS: i64 = 60;

/// Why the upstream credential could not be renewed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefreshError {
    /// Our token no longer opens the grant, or the upstream ended it: reconnect.
    #[error("the connection to the mailbox has ended; reconnect this assistant")]
    GrantEnded,
    /// The grant has no upstream refresh token (a configured credential).
    #[error("the mail server refused the configured credential")]
    NotRefreshable,
    /// Try again later; nothing was lost.
    #[error("{0}")]
    Unavailable(String),
}

/// Serialises upstream refreshes per grant.
#[derive(Debug)]
pub struct UpstreamRefresher<V, U> {
    vault: Arc<V>,
    upstream: Arc<U>,
    locks: Mutex<HashMap<GrantId, Arc<tokio::sync::Mutex<()>>>>,
}

/// Whether a grant's upstream access token is at or near its end.
#[must_use]
pub fn needs_refresh(opened: &OpenedGrant, now: i64) -> bool {
    opened.upstream_refresh.is_some()
        && opened
            .upstream_expires_at
            .is_some_and(|t| t - REFRESH_AHEAD_SECS <= now)
}

impl<V: TokenVault, U: UpstreamAuth> UpstreamRefresher<V, U> {
    /// Builds the refresher.
    pub fn new(vault: Arc<V>, upstream: Arc<U>) -> Self {
        Self {
            vault,
            upstream,
            locks: Mutex::default(),
        }
    }

    fn lock_for(&self, grant: &GrantId) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        // Entries nobody holds are dropped so the map stays as small as the refreshes in flight.
        locks.retain(|_, l| Arc::strong_count(l) > 1);
        Arc::clone(locks.entry(grant.clone()).or_default())
    }

    /// Renews the upstream credential of the grant `token` opens, unless another request already
    /// did since `stale` was read (then that result is returned).
    ///
    /// # Errors
    /// [`RefreshError`]; an `invalid_grant` from the upstream ends the grant (it is removed).
    pub async fn refresh(
        &self,
        token: &AccessToken,
        grant: &GrantId,
        stale: &UpstreamCredential,
    ) -> Result<UpstreamCredential, RefreshError> {
        let lock = self.lock_for(grant);
        let _held = lock.lock().await;
        let current = self.vault.open_fresh(token).await.map_err(|e| match e {
            VaultError::InvalidToken => RefreshError::GrantEnded,
            VaultError::Unexpected(m) => RefreshError::Unavailable(m),
        })?;
        if &current.credential != stale && !needs_refresh(&current, chrono::Utc::now().timestamp())
        {
            return Ok(current.credential);
        }
        let Some(refresh) = current.upstream_refresh else {
            return Err(RefreshError::NotRefreshable);
        };
        match self.refresh_with_retries(&refresh.token).await {
            Ok(tokens) => {
                let tokens = UpstreamTokens {
                    refresh: tokens.refresh.or(Some(refresh.token)),
                    ..tokens
                };
                let credential = UpstreamCredential::Bearer(tokens.access.clone());
                self.vault
                    .store_upstream(grant, tokens)
                    .await
                    .map_err(|e| RefreshError::Unavailable(e.to_string()))?;
                tracing::info!(grant = %grant, "upstream token refreshed");
                Ok(credential)
            }
            Err(UpstreamAuthError::InvalidGrant(why)) => {
                tracing::warn!(grant = %grant, reason = %why, "upstream ended the grant; removing it");
                self.vault
                    .remove_grant(grant)
                    .await
                    .map_err(|e| RefreshError::Unavailable(e.to_string()))?;
                Err(RefreshError::GrantEnded)
            }
            Err(e) => Err(RefreshError::Unavailable(e.to_string())),
        }
    }

    /// Transient failures get a few jittered retries; `invalid_grant` and configuration errors
    /// are final at once.
    async fn refresh_with_retries(
        &self,
        refresh: &crate::domain::secret::SecretString,
    ) -> Result<UpstreamTokens, UpstreamAuthError> {
        let mut delay_ms = RETRY_BASE_MS;
        for _ in 1..RETRY_ATTEMPTS {
            match self.upstream.refresh(refresh).await {
                Err(UpstreamAuthError::Unavailable(why)) => {
                    tracing::warn!(reason = %why, "upstream refresh failed; retrying");
                    let jitter = rand::random_range(0..=delay_ms / 2);
                    tokio::time::sleep(std::time::Duration::from_millis(delay_ms + jitter)).await;
                    delay_ms *= 2;
                }
                other => return other,
            }
        }
        self.upstream.refresh(refresh).await
    }
}

/// Upstream refresh attempts in all, for transient failures.
pub const RETRY_ATTEMPTS: u32 = 3;
const RETRY_BASE_MS: u64 = 250;
