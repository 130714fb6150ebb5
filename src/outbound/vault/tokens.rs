//! [`TokenVault`] on redb: hashed tokens in `tokens_v1` (indexed by grant in
//! `grant_tokens_v1`), grants in `grants_v1`. Redemption, rotation, replay and reuse detection
//! each happen inside one write transaction ([`steps`](crate::outbound::vault_core::steps)),
//! so concurrent refreshes serialise (redb has one writer).

use std::time::{Duration, Instant};

use super::{
    CACHE_LIMIT, OPEN_CACHE_TTL, RedbVault,
    schema::{GRANTS, TOKENS, now_or_never},
};
use crate::{
    domain::{
        auth::{
            client::ClientId,
            token::{IssuedToken, TokenPair},
        },
        grant::{AccessToken, GrantId},
        ports::{
            CodeBinding, GrantDraft, GrantSummary, OpenedGrant, Redemption, RefreshBinding,
            TokenVault, UpstreamTokens, VaultError,
        },
    },
    outbound::vault_core::{
        VaultStoreError, db_err, now,
        records::{self, GrantRecord, TokenKind, TokenRecord},
        sealing::digest,
        steps::{self, Opened},
    },
};

impl RedbVault {
    /// Opens a grant from the database with a token of one of `kinds`. The first use of the
    /// newest access token marks its pair as used.
    fn open_blocking(
        &self,
        token: &AccessToken,
        kinds: &[TokenKind],
    ) -> Result<Opened, VaultError> {
        let secret = token.expose_secret();
        let key = digest(secret);
        let Some((record, grant)) = self.read_token(&key)? else {
            return Err(VaultError::InvalidToken);
        };
        let opened = steps::open(&record, grant, secret, kinds)?.ok_or(VaultError::InvalidToken)?;
        if opened.first_use_of_successor {
            let grant = opened.grant.grant.as_str().to_owned();
            self.write(|w| now_or_never(steps::mark_successor_used(w, &key, &grant)))?;
        }
        Ok(opened)
    }

    /// A token (by its digest) with its grant.
    fn read_token(
        &self,
        key: &[u8; 32],
    ) -> Result<Option<(TokenRecord, GrantRecord)>, VaultStoreError> {
        self.read(|tx| {
            let tokens = tx.open_table(TOKENS).map_err(db_err)?;
            let Some(raw) = tokens.get(key).map_err(db_err)? else {
                return Ok(None);
            };
            let record: TokenRecord = records::decode(raw.value())?;
            let grants = tx.open_table(GRANTS).map_err(db_err)?;
            let Some(raw) = grants.get(record.grant_id.as_str()).map_err(db_err)? else {
                return Ok(None);
            };
            Ok(Some((record, records::decode(raw.value())?)))
        })
    }

    /// What `bind` makes of the grant of a live (unexpired) token of `kind`, given the
    /// token's digest.
    async fn binding<T: Send + 'static>(
        &self,
        token: &AccessToken,
        kind: TokenKind,
        bind: impl FnOnce(&GrantRecord, &[u8; 32]) -> T + Send + 'static,
    ) -> Result<Option<T>, VaultError> {
        let key = digest(token.expose_secret());
        Ok(self
            .run(move |v| v.read_token(&key))
            .await?
            .filter(|(record, _)| record.kind == kind && record.live(now()))
            .map(|(_, grant)| bind(&grant, &key)))
    }

    /// Redeems or rotates inside one write transaction; a revoked grant leaves the cache.
    async fn redeem(
        &self,
        presented: &AccessToken,
        pair: TokenPair,
        step: Redeem,
    ) -> Result<Redemption, VaultError> {
        let presented = presented.clone();
        let (redemption, revoked) = self
            .run(move |v| {
                v.write(|w| match step {
                    Redeem::Code => now_or_never(steps::redeem_code(w, &presented, &pair)),
                    Redeem::Refresh => now_or_never(steps::rotate(w, &presented, &pair)),
                })
            })
            .await?;
        if let Some(revoked) = revoked {
            self.cache().forget_grant(&revoked);
        }
        Ok(redemption)
    }
}

/// Which token a redemption presents.
#[derive(Debug, Clone, Copy)]
enum Redeem {
    Code,
    Refresh,
}

impl TokenVault for RedbVault {
    async fn open(&self, token: &AccessToken) -> Result<OpenedGrant, VaultError> {
        let key = digest(token.expose_secret());
        let started = Instant::now();
        if let Some((opened, until)) = self.cache().opened.get(&key)
            && *until > started
        {
            return Ok(opened.clone());
        }
        let token = token.clone();
        let Opened {
            grant: opened,
            expires_at,
            ..
        } = self
            .run(move |v| v.open_blocking(&token, &[TokenKind::Access]))
            .await?;
        let mut until = started + OPEN_CACHE_TTL;
        if let Some(expiry) = expires_at {
            let left = u64::try_from(expiry - now()).unwrap_or(0);
            until = until.min(started + Duration::from_secs(left));
        }
        let mut cache = self.cache();
        if cache.opened.len() >= CACHE_LIMIT {
            cache.opened.clear();
        }
        cache.opened.insert(key, (opened.clone(), until));
        Ok(opened)
    }

    async fn open_fresh(&self, token: &AccessToken) -> Result<OpenedGrant, VaultError> {
        let token = token.clone();
        self.run(move |v| {
            v.open_blocking(&token, &[TokenKind::Access, TokenKind::Refresh])
                .map(|o| o.grant)
        })
        .await
    }

    async fn create_grant(&self, draft: GrantDraft, code: IssuedToken) -> Result<(), VaultError> {
        Ok(self
            .run(move |v| v.write(|w| now_or_never(steps::create_grant(w, &draft, &code))))
            .await?)
    }

    async fn code_binding(&self, code: &AccessToken) -> Result<Option<CodeBinding>, VaultError> {
        self.binding(code, TokenKind::Code, |g, _| g.code_binding())
            .await
    }

    async fn redeem_code(
        &self,
        code: &AccessToken,
        pair: TokenPair,
    ) -> Result<Redemption, VaultError> {
        self.redeem(code, pair, Redeem::Code).await
    }

    async fn refresh_binding(
        &self,
        refresh: &AccessToken,
    ) -> Result<Option<RefreshBinding>, VaultError> {
        self.binding(refresh, TokenKind::Refresh, GrantRecord::refresh_binding)
            .await
    }

    async fn rotate_refresh(
        &self,
        refresh: &AccessToken,
        pair: TokenPair,
    ) -> Result<Redemption, VaultError> {
        self.redeem(refresh, pair, Redeem::Refresh).await
    }

    async fn store_upstream(
        &self,
        grant: &GrantId,
        tokens: UpstreamTokens,
    ) -> Result<(), VaultError> {
        let id = grant.clone();
        let stored = self
            .run(move |v| v.write(|w| now_or_never(steps::store_upstream(w, &id, &tokens))))
            .await?;
        self.cache().forget_grant(grant);
        stored.then_some(()).ok_or(VaultError::InvalidToken)
    }

    /// One process holds the redb file, and the refresher serialises its own refreshes of a
    /// grant: every turn is free at once.
    async fn take_refresh_turn(&self, _grant: &GrantId, _holder: &str) -> Result<bool, VaultError> {
        Ok(true)
    }

    async fn end_refresh_turn(&self, _grant: &GrantId, _holder: &str) -> Result<(), VaultError> {
        Ok(())
    }

    async fn revoke_token(&self, token: &AccessToken, client: &ClientId) -> Result<(), VaultError> {
        let token = token.clone();
        let client = client.clone();
        if let Some(grant) = self
            .run(move |v| v.write(|w| now_or_never(steps::revoke(w, &token, &client))))
            .await?
        {
            self.cache().forget_grant(&grant);
        }
        Ok(())
    }

    async fn remove_grant(&self, grant: &GrantId) -> Result<(), VaultError> {
        let id = grant.clone();
        Ok(self.run(move |v| v.delete_grant(&id)).await?)
    }

    async fn grants_of(&self, account_digest: &str) -> Result<Vec<GrantSummary>, VaultError> {
        let account = account_digest.to_owned();
        Ok(self.run(move |v| v.grants_of_blocking(&account)).await?)
    }

    async fn revoked_of(&self, account_digest: &str) -> Result<Vec<GrantSummary>, VaultError> {
        let account = account_digest.to_owned();
        Ok(self.run(move |v| v.revoked_of_blocking(&account)).await?)
    }
}
