//! [`TokenVault`] on redb: hashed tokens in `tokens_v1` (indexed by grant in
//! `grant_tokens_v1`), grants in `grants_v1`. Redemption, rotation, replay and reuse detection
//! each happen inside one write transaction, so concurrent refreshes serialise (redb has one
//! writer).

use std::time::{Duration, Instant};

use super::{
    CACHE_LIMIT, OPEN_CACHE_TTL, RedbVault,
    schema::{GRANTS, TOKENS},
};
use crate::{
    domain::{
        auth::{
            client::ClientId,
            rotation::{RefreshDecision, decide},
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
        records::{self, GrantRecord, TokenKind, TokenRecord, hex},
        sealing::{
            Sealable, digest, identity_text, new_identity, open_props, seal, unwrap_identity,
        },
    },
};

impl RedbVault {
    /// Opens a grant from the database with a token of one of `kinds`; also returns the
    /// token's expiry. The first use of the newest access token marks its pair as used.
    fn open_blocking(
        &self,
        token: &AccessToken,
        kinds: &[TokenKind],
    ) -> Result<(OpenedGrant, Option<i64>), VaultError> {
        let secret = token.expose_secret();
        let key = digest(secret);
        let Some((record, grant)) = self.read_token(&key)? else {
            return Err(VaultError::InvalidToken);
        };
        if !kinds.contains(&record.kind) || !record.live(now()) {
            return Err(VaultError::InvalidToken);
        }
        // A token whose derived key does not unwrap the identity is not this grant's token.
        let identity_text = unwrap_identity(&record, secret).ok_or(VaultError::InvalidToken)?;
        let identity: age::x25519::Identity = identity_text
            .parse()
            .map_err(|_| VaultError::Unexpected("stored identity is malformed".into()))?;
        let props = open_props(&grant.sealed_props, &identity)
            .ok_or_else(|| VaultError::Unexpected("sealed props do not open".into()))?;
        if record.successor && !grant.successor_used {
            self.mark_successor_used(&key, &grant.id)?;
        }
        Ok((
            OpenedGrant {
                account: grant.account_digest.clone(),
                grant: GrantId::new(grant.id),
                credential: props.credential,
                upstream_refresh: props.refresh,
                upstream_expires_at: props.expires_at,
                upstream_issued_at: props.issued_at,
                resource: grant.resource,
            },
            record.expires_at,
        ))
    }

    /// The newest pair is in use: from now on its predecessor refresh token is a reuse.
    fn mark_successor_used(&self, key: &[u8; 32], grant: &str) -> Result<(), VaultStoreError> {
        self.write(|w| {
            if let Some(mut g) = w.grant(grant)? {
                g.successor_used = true;
                w.put_grant(&g)?;
            }
            if let Some(mut t) = w.token(key)? {
                t.successor = false;
                w.put_token(key, &t)?;
            }
            Ok(())
        })
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

    fn create_grant_blocking(
        &self,
        draft: &GrantDraft,
        code: &IssuedToken,
    ) -> Result<(), VaultStoreError> {
        let (identity, recipient) = new_identity();
        let record = GrantRecord::from_draft(
            draft,
            &recipient,
            seal(&Sealable::Tokens(&draft.upstream), &recipient)?,
        );
        let identity = identity_text(&identity);
        let (key, token) =
            TokenRecord::wrapping(&record.id, &identity, code, TokenKind::Code, false)?;
        self.write(|w| {
            w.put_grant(&record)?;
            w.put_token(&key, &token)
        })
    }

    /// Redeems or rotates inside one write transaction; a revoked grant leaves the cache.
    fn redeem(
        &self,
        presented: &AccessToken,
        step: impl FnOnce(
            &mut super::schema::Writer<'_>,
            &str,
            [u8; 32],
        ) -> Result<(Redemption, Option<String>), VaultStoreError>,
    ) -> Result<Redemption, VaultStoreError> {
        let secret = presented.expose_secret();
        let (redemption, revoked) = self.write(|w| step(w, secret, digest(secret)))?;
        if let Some(revoked) = revoked {
            self.cache().forget_grant(&GrantId::new(revoked));
        }
        Ok(redemption)
    }

    fn redeem_code_blocking(
        &self,
        code: &AccessToken,
        pair: &TokenPair,
    ) -> Result<Redemption, VaultStoreError> {
        self.redeem(code, |w, secret, key| {
            let Some(mut record) = w.token(&key)?.filter(|t| t.kind == TokenKind::Code) else {
                return Ok((Redemption::Revoked, None));
            };
            let Some(mut grant) = w.grant(&record.grant_id)? else {
                return Ok((Redemption::Revoked, None));
            };
            let identity = match unwrap_identity(&record, secret) {
                Some(identity) if !grant.code_used => identity,
                // Used before (its wrapped key is gone): a replayed code revokes the grant.
                _ => {
                    w.remove_grant(&grant.id)?;
                    return Ok((Redemption::Revoked, Some(grant.id)));
                }
            };
            issue_pair(w, &grant.id, &identity, pair, false)?;
            // The code stays until it expires, without its key, so a replay is recognised.
            record.wrapped_identity = None;
            w.put_token(&key, &record)?;
            grant.redeemed(pair);
            w.put_grant(&grant)?;
            Ok((Redemption::Issued(pair.clone()), None))
        })
    }

    fn rotate_blocking(
        &self,
        refresh: &AccessToken,
        pair: &TokenPair,
    ) -> Result<Redemption, VaultStoreError> {
        self.redeem(refresh, |w, secret, key| {
            let Some(record) = w
                .token(&key)?
                .filter(|t| t.kind == TokenKind::Refresh && t.live(now()))
            else {
                return Ok((Redemption::Revoked, None));
            };
            let Some(mut grant) = w.grant(&record.grant_id)? else {
                return Ok((Redemption::Revoked, None));
            };
            match decide(grant.role_of(&hex(&key))) {
                RefreshDecision::Revoke => {
                    w.remove_grant(&grant.id)?;
                    Ok((Redemption::Revoked, Some(grant.id)))
                }
                RefreshDecision::Replay => Ok((Redemption::Issued(grant.replayed(secret)?), None)),
                RefreshDecision::Rotate => {
                    let identity = unwrap_identity(&record, secret).ok_or_else(|| {
                        VaultStoreError::Corrupt("refresh token does not unwrap its grant".into())
                    })?;
                    issue_pair(w, &grant.id, &identity, pair, true)?;
                    // The token two generations back can no longer open anything.
                    if let Some(previous) =
                        grant.refresh_previous.as_deref().and_then(records::unhex)
                        && let Some(mut old) = w.token(&previous)?
                    {
                        old.wrapped_identity = None;
                        w.put_token(&previous, &old)?;
                    }
                    grant.rotated(secret, pair)?;
                    w.put_grant(&grant)?;
                    Ok((Redemption::Issued(pair.clone()), None))
                }
            }
        })
    }

    fn revoke_blocking(
        &self,
        token: &AccessToken,
        client: &ClientId,
    ) -> Result<Option<GrantId>, VaultStoreError> {
        let key = digest(token.expose_secret());
        self.write(|w| {
            let Some(record) = w.token(&key)? else {
                return Ok(None);
            };
            let Some(grant) = w.grant(&record.grant_id)? else {
                return Ok(None);
            };
            if grant.client_id.as_deref() != Some(client.as_str()) {
                return Ok(None);
            }
            match record.kind {
                TokenKind::Access => w.remove_token(&key, &grant.id)?,
                TokenKind::Refresh | TokenKind::Code => w.remove_grant(&grant.id)?,
            }
            Ok(Some(GrantId::new(grant.id)))
        })
    }

    fn store_upstream_blocking(
        &self,
        grant: &GrantId,
        tokens: &UpstreamTokens,
    ) -> Result<(), VaultError> {
        self.write(|w| {
            let Some(mut record) = w.grant(grant.as_str())? else {
                return Ok(false);
            };
            let recipient: age::x25519::Recipient = record
                .recipient
                .parse()
                .map_err(|_| VaultStoreError::Corrupt("stored recipient is malformed".into()))?;
            record.sealed_props = seal(&Sealable::Tokens(tokens), &recipient)?;
            w.put_grant(&record)?;
            Ok(true)
        })?
        .then_some(())
        .ok_or(VaultError::InvalidToken)
    }
}

/// Wraps the grant's identity under both tokens of `pair` and stores them; `successor`
/// marks the access token of a rotation (its first use retires the replay).
fn issue_pair(
    w: &mut super::schema::Writer<'_>,
    grant: &str,
    identity: &str,
    pair: &TokenPair,
    successor: bool,
) -> Result<(), VaultStoreError> {
    let (key, access) =
        TokenRecord::wrapping(grant, identity, &pair.access, TokenKind::Access, successor)?;
    w.put_token(&key, &access)?;
    let (key, refresh) =
        TokenRecord::wrapping(grant, identity, &pair.refresh, TokenKind::Refresh, false)?;
    w.put_token(&key, &refresh)
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
        let (opened, expires_at) = self
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
                .map(|(o, _)| o)
        })
        .await
    }

    async fn create_grant(&self, draft: GrantDraft, code: IssuedToken) -> Result<(), VaultError> {
        self.run(move |v| v.create_grant_blocking(&draft, &code))
            .await
            .map_err(VaultError::from)
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
        let code = code.clone();
        Ok(self
            .run(move |v| v.redeem_code_blocking(&code, &pair))
            .await?)
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
        let refresh = refresh.clone();
        Ok(self
            .run(move |v| v.rotate_blocking(&refresh, &pair))
            .await?)
    }

    async fn store_upstream(
        &self,
        grant: &GrantId,
        tokens: UpstreamTokens,
    ) -> Result<(), VaultError> {
        let id = grant.clone();
        self.run(move |v| v.store_upstream_blocking(&id, &tokens))
            .await?;
        self.cache().forget_grant(grant);
        Ok(())
    }

    async fn revoke_token(&self, token: &AccessToken, client: &ClientId) -> Result<(), VaultError> {
        let token = token.clone();
        let client = client.clone();
        if let Some(grant) = self
            .run(move |v| v.revoke_blocking(&token, &client))
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
