//! Refreshing a grant's upstream token: single-flight per grant, double-checked against what is
//! stored, durably re-sealed before anyone uses it (transient failures are retried by the
//! upstream adapter). Upstream refresh tokens may be single use
//! (Fastmail revokes the grant on reuse), so two refreshes of one grant must never race.
//!
//! The mail use cases renew through [`RenewCredential`]: the auth room's offer to them, not a
//! port (the core implements it, with [`UpstreamRefresher`] over the vault and the upstream
//! client), so it lives here beside its implementation. It spares the mail use cases two type
//! parameters (the vault and the upstream client behind the refresher) and lets a deployment
//! without upstream OAuth say so with [`NoRenewal`].

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use super::token::random_value;
use crate::domain::{
    grant::{AccessToken, GrantId, UpstreamCredential},
    ports::{OpenedGrant, TokenVault, UpstreamAuth, UpstreamAuthError, UpstreamTokens, VaultError},
};

/// Refresh ahead of expiry by this many seconds (or a quarter of the token's lifetime, if
/// shorter: a token that lives 30 s must not be "near expiry" the moment it arrives).
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

/// The one rule for when an upstream access token is renewed, for client grants and the
/// notifier alike: at most [`REFRESH_AHEAD_SECS`] before it expires, or a quarter of its
/// lifetime if that is shorter; never without an expiry or a refresh token to renew with.
#[must_use]
pub fn due(expires_at: Option<i64>, issued_at: Option<i64>, refreshable: bool, now: i64) -> bool {
    let Some(expires_at) = expires_at else {
        return false;
    };
    let ahead = issued_at.map_or(REFRESH_AHEAD_SECS, |issued| {
        REFRESH_AHEAD_SECS.min((expires_at - issued) / 4)
    });
    refreshable && expires_at - ahead <= now
}

/// Whether a grant's upstream access token is at or near its end ([`due`]).
#[must_use]
pub fn needs_refresh(opened: &OpenedGrant, now: i64) -> bool {
    due(
        opened.upstream_expires_at,
        opened.upstream_issued_at,
        opened.upstream_refresh.is_some(),
        now,
    )
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
        // One refresh per grant in this process, then one among every instance: a refresh
        // token used twice ends the grant at Fastmail.
        let lock = self.lock_for(grant);
        let _held = lock.lock().await;
        let holder = random_value();
        let unavailable = |e: VaultError| RefreshError::Unavailable(e.to_string());
        if !self
            .vault
            .take_refresh_turn(grant, &holder)
            .await
            .map_err(unavailable)?
        {
            return Err(RefreshError::Unavailable(
                "another instance is still renewing this connection".into(),
            ));
        }
        let outcome = self.refresh_in_turn(token, grant, stale).await;
        if let Err(e) = self.vault.end_refresh_turn(grant, &holder).await {
            // It lapses by itself; until then the next refresh of this grant waits.
            tracing::warn!(grant = %grant, error = %e, "a refresh turn was not ended");
        }
        outcome
    }

    /// [`Self::refresh`] while holding the grant's refresh turn: re-reads what is stored (an
    /// earlier turn may have renewed it), then renews.
    async fn refresh_in_turn(
        &self,
        token: &AccessToken,
        grant: &GrantId,
        stale: &UpstreamCredential,
    ) -> Result<UpstreamCredential, RefreshError> {
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
        match self.upstream.refresh(&refresh.token).await {
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
}

/// Renews a grant's upstream credential (the upstream OAuth refresh, single-flight).
#[trait_variant::make(Send)]
pub trait RenewCredential: Sync + 'static {
    /// Renews the credential of the grant `token` opens, unless someone did since `stale`.
    ///
    /// # Errors
    /// [`RefreshError`].
    async fn renew(
        &self,
        token: &AccessToken,
        grant: &GrantId,
        stale: &UpstreamCredential,
    ) -> Result<UpstreamCredential, RefreshError>;
}

impl<V: TokenVault, U: UpstreamAuth> RenewCredential for UpstreamRefresher<V, U> {
    async fn renew(
        &self,
        token: &AccessToken,
        grant: &GrantId,
        stale: &UpstreamCredential,
    ) -> Result<UpstreamCredential, RefreshError> {
        self.refresh(token, grant, stale).await
    }
}

/// Renews nothing (no upstream OAuth client): a credential the mail server refuses stays
/// refused.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRenewal;

impl RenewCredential for NoRenewal {
    async fn renew(
        &self,
        _token: &AccessToken,
        _grant: &GrantId,
        _stale: &UpstreamCredential,
    ) -> Result<UpstreamCredential, RefreshError> {
        Err(RefreshError::NotRefreshable)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex as StdMutex;

    use super::*;
    use crate::domain::{
        ports::{MockTokenVault, MockUpstreamAuth, UpstreamRefresh},
        secret::SecretString,
    };

    fn opened(access: &str) -> OpenedGrant {
        OpenedGrant {
            account: None,
            grant: GrantId::new("g1"),
            credential: UpstreamCredential::Bearer(SecretString::new(access)),
            upstream_refresh: Some(UpstreamRefresh {
                token: SecretString::new("old-refresh"),
            }),
            upstream_expires_at: Some(0),
            upstream_issued_at: None,
            resource: None,
        }
    }

    /// Every refresh turn is granted at once and must be ended.
    fn with_turns(vault: &mut MockTokenVault) {
        vault
            .expect_take_refresh_turn()
            .returning(|_, _| Box::pin(async { Ok(true) }));
        vault
            .expect_end_refresh_turn()
            .times(1..)
            .returning(|_, _| Box::pin(async { Ok(()) }));
    }

    fn vault_with(
        current: &'static str,
        stored: Arc<StdMutex<Vec<UpstreamTokens>>>,
    ) -> MockTokenVault {
        let mut vault = MockTokenVault::new();
        with_turns(&mut vault);
        vault
            .expect_open_fresh()
            .returning(move |_| Box::pin(async move { Ok(opened(current)) }));
        vault.expect_store_upstream().returning(move |_, t| {
            stored.lock().unwrap().push(t);
            Box::pin(async { Ok(()) })
        });
        vault
    }

    fn stale() -> UpstreamCredential {
        UpstreamCredential::Bearer(SecretString::new("a1"))
    }

    /// Checklist H8: an upstream that doesn't rotate keeps the refresh token we had.
    #[tokio::test]
    async fn an_upstream_that_returns_no_refresh_token_keeps_the_old_one() {
        let stored = Arc::new(StdMutex::new(Vec::new()));
        let mut upstream = MockUpstreamAuth::new();
        upstream.expect_refresh().times(1).returning(|_| {
            Box::pin(async {
                Ok(UpstreamTokens {
                    access: SecretString::new("a2"),
                    refresh: None,
                    expires_at: None,
                    issued_at: None,
                })
            })
        });
        let r = UpstreamRefresher::new(
            Arc::new(vault_with("a1", Arc::clone(&stored))),
            Arc::new(upstream),
        );
        let fresh = r
            .refresh(&AccessToken::new("t"), &GrantId::new("g1"), &stale())
            .await
            .unwrap();
        assert_eq!(fresh, UpstreamCredential::Bearer(SecretString::new("a2")));
        let kept = stored.lock().unwrap()[0].refresh.clone().unwrap();
        assert_eq!(kept.expose_secret(), "old-refresh");
    }

    /// Another instance keeps the grant's refresh turn: nothing is refreshed here (a second
    /// use of the refresh token would end the grant), and the caller may retry.
    #[tokio::test]
    async fn a_turn_held_elsewhere_refreshes_nothing() {
        let mut upstream = MockUpstreamAuth::new();
        upstream.expect_refresh().never();
        let mut vault = MockTokenVault::new();
        vault
            .expect_take_refresh_turn()
            .times(1)
            .returning(|_, _| Box::pin(async { Ok(false) }));
        vault.expect_open_fresh().never();
        vault.expect_end_refresh_turn().never();
        let r = UpstreamRefresher::new(Arc::new(vault), Arc::new(upstream));
        let err = r
            .refresh(&AccessToken::new("t"), &GrantId::new("g1"), &stale())
            .await
            .unwrap_err();
        assert!(matches!(err, RefreshError::Unavailable(_)), "{err:?}");
    }

    #[tokio::test]
    async fn a_refresh_someone_else_already_did_is_reused() {
        let mut upstream = MockUpstreamAuth::new();
        upstream.expect_refresh().never();
        let mut vault = MockTokenVault::new();
        with_turns(&mut vault);
        vault.expect_open_fresh().returning(|_| {
            Box::pin(async {
                let mut o = opened("a2");
                o.upstream_expires_at = Some(i64::MAX / 2);
                Ok(o)
            })
        });
        let r = UpstreamRefresher::new(Arc::new(vault), Arc::new(upstream));
        let fresh = r
            .refresh(&AccessToken::new("t"), &GrantId::new("g1"), &stale())
            .await
            .unwrap();
        assert_eq!(fresh, UpstreamCredential::Bearer(SecretString::new("a2")));
    }

    #[tokio::test]
    async fn invalid_grant_ends_the_grant_and_transient_failures_keep_it() {
        let mut upstream = MockUpstreamAuth::new();
        upstream.expect_refresh().times(1).returning(|_| {
            Box::pin(async { Err(UpstreamAuthError::InvalidGrant("invalid_grant".into())) })
        });
        let mut vault = vault_with("a1", Arc::default());
        vault
            .expect_remove_grant()
            .times(1)
            .returning(|_| Box::pin(async { Ok(()) }));
        let r = UpstreamRefresher::new(Arc::new(vault), Arc::new(upstream));
        let err = r
            .refresh(&AccessToken::new("t"), &GrantId::new("g1"), &stale())
            .await
            .unwrap_err();
        assert_eq!(err, RefreshError::GrantEnded);

        let mut upstream = MockUpstreamAuth::new();
        upstream
            .expect_refresh()
            .times(1)
            .returning(|_| Box::pin(async { Err(UpstreamAuthError::Unavailable("503".into())) }));
        let mut vault = vault_with("a1", Arc::default());
        vault.expect_remove_grant().never();
        let r = UpstreamRefresher::new(Arc::new(vault), Arc::new(upstream));
        let err = r
            .refresh(&AccessToken::new("t"), &GrantId::new("g1"), &stale())
            .await
            .unwrap_err();
        assert!(matches!(err, RefreshError::Unavailable(_)), "{err:?}");
    }

    #[test]
    fn short_lived_tokens_are_not_due_the_moment_they_arrive() {
        let mut o = opened("a");
        o.upstream_issued_at = Some(1000);
        o.upstream_expires_at = Some(1030);
        assert!(!needs_refresh(&o, 1000));
        assert!(needs_refresh(&o, 1023));
        o.upstream_issued_at = None;
        o.upstream_expires_at = Some(10_000);
        assert!(!needs_refresh(&o, 9_000));
        assert!(needs_refresh(&o, 9_950));
    }
}
