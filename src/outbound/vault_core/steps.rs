//! The grant-table steps of the [`TokenVault`](crate::domain::ports::TokenVault) and
//! [`Policy`](crate::domain::ports::Policy) ports, written once for every backend: issuing,
//! redeeming, rotating with replay and reuse detection, revoking, resealing, and removing a
//! grant with its tombstone.
//!
//! A backend provides [`GrantTables`] — row reads and writes inside one of its write
//! transactions — and runs a step in that transaction, committing only if it succeeds. Reads
//! in a write transaction must lock what they read (redb has one writer; PostgreSQL reads with
//! `FOR UPDATE`), so two rotations of one refresh token serialise and the second sees the
//! first's result.

use std::future::Future;

use crate::{
    domain::{
        auth::{
            client::ClientId,
            rotation::{RefreshDecision, decide},
            token::{IssuedToken, TokenPair},
        },
        grant::{AccessToken, CapabilitySet, GrantId, UpstreamCredential},
        ports::{AuditEvent, AuditKind, GrantDraft, OpenedGrant, Redemption, UpstreamTokens},
    },
    outbound::vault_core::{
        VaultStoreError, now,
        records::{self, GrantRecord, TokenKind, TokenRecord, Tombstone, hex},
        sealing::{
            Sealable, digest, identity_text, new_identity, open_props, seal, unwrap_identity,
        },
    },
};

/// The grant tables of one write transaction, as the steps need them.
pub trait GrantTables {
    /// A token record by the digest of its token.
    fn token(
        &mut self,
        key: &[u8; 32],
    ) -> impl Future<Output = Result<Option<TokenRecord>, VaultStoreError>> + Send;
    /// A grant record.
    fn grant(
        &mut self,
        id: &str,
    ) -> impl Future<Output = Result<Option<GrantRecord>, VaultStoreError>> + Send;
    /// Inserts or replaces a token record (indexed by its grant).
    fn put_token(
        &mut self,
        key: &[u8; 32],
        record: &TokenRecord,
    ) -> impl Future<Output = Result<(), VaultStoreError>> + Send;
    /// Deletes one token record (not its grant).
    fn remove_token(
        &mut self,
        key: &[u8; 32],
        grant: &str,
    ) -> impl Future<Output = Result<(), VaultStoreError>> + Send;
    /// Inserts or replaces a grant record.
    fn put_grant(
        &mut self,
        record: &GrantRecord,
    ) -> impl Future<Output = Result<(), VaultStoreError>> + Send;
    /// Deletes a grant, every token of it (and so every wrapped copy of its identity) and its
    /// background destination; returns the grant as it was.
    fn take_grant(
        &mut self,
        id: &str,
    ) -> impl Future<Output = Result<Option<GrantRecord>, VaultStoreError>> + Send;
    /// Keeps what settings show of a connection that ended.
    fn put_tombstone(
        &mut self,
        id: &str,
        tombstone: &Tombstone,
    ) -> impl Future<Output = Result<(), VaultStoreError>> + Send;
    /// Appends one audit event.
    fn append_event(
        &mut self,
        event: &AuditEvent,
    ) -> impl Future<Output = Result<(), VaultStoreError>> + Send;
    /// Deletes a grant's audit events.
    fn remove_events(
        &mut self,
        grant: &str,
    ) -> impl Future<Output = Result<(), VaultStoreError>> + Send;
}

/// What opening a grant with a token found (read outside any write transaction).
#[derive(Debug)]
pub struct Opened {
    /// The grant and its upstream credential.
    pub grant: OpenedGrant,
    /// The token's expiry, if it has one.
    pub expires_at: Option<i64>,
    /// This is the newest pair's first use: its predecessor refresh token becomes a reuse
    /// ([`mark_successor_used`]).
    pub first_use_of_successor: bool,
}

/// Opens `grant` with `secret`, the token `record` is stored for, if it is of one of `kinds`
/// and live. `None`: the token does not open it (unknown, wrong kind, expired, or not this
/// grant's).
///
/// # Errors
/// [`VaultStoreError::Corrupt`] when the stored identity or props don't decode.
pub fn open(
    record: &TokenRecord,
    grant: GrantRecord,
    secret: &str,
    kinds: &[TokenKind],
) -> Result<Option<Opened>, VaultStoreError> {
    if !kinds.contains(&record.kind) || !record.live(now()) {
        return Ok(None);
    }
    // A token whose derived key does not unwrap the identity is not this grant's token.
    let Some(identity_text) = unwrap_identity(record, secret) else {
        return Ok(None);
    };
    let identity: age::x25519::Identity = identity_text
        .parse()
        .map_err(|_| VaultStoreError::Corrupt("stored identity is malformed".into()))?;
    let props = open_props(&grant.sealed_props, &identity)
        .ok_or_else(|| VaultStoreError::Corrupt("sealed props do not open".into()))?;
    Ok(Some(Opened {
        first_use_of_successor: record.successor && !grant.successor_used,
        expires_at: record.expires_at,
        grant: OpenedGrant {
            account: grant.account_digest,
            grant: GrantId::new(grant.id),
            credential: props.credential,
            upstream_refresh: props.refresh,
            upstream_expires_at: props.expires_at,
            upstream_issued_at: props.issued_at,
            resource: grant.resource,
        },
    }))
}

/// The newest pair is in use: from now on its predecessor refresh token is a reuse.
///
/// # Errors
/// [`VaultStoreError`] from the backend.
pub async fn mark_successor_used<W: GrantTables>(
    w: &mut W,
    key: &[u8; 32],
    grant: &str,
) -> Result<(), VaultStoreError> {
    if let Some(mut g) = w.grant(grant).await? {
        g.successor_used = true;
        w.put_grant(&g).await?;
    }
    if let Some(mut t) = w.token(key).await? {
        t.successor = false;
        w.put_token(key, &t).await?;
    }
    Ok(())
}

/// A grant and its authorization code, as the connect flow creates them: a fresh identity,
/// the upstream tokens sealed to it, the identity wrapped under the code.
///
/// # Errors
/// [`VaultStoreError`] from the backend or the sealing.
pub async fn create_grant<W: GrantTables>(
    w: &mut W,
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
    let (key, token) = TokenRecord::wrapping(&record.id, &identity, code, TokenKind::Code, false)?;
    w.put_grant(&record).await?;
    w.put_token(&key, &token).await
}

/// What a configured grant (the self-host grant) holds.
#[derive(Debug)]
pub struct NewGrant<'a> {
    /// Its id.
    pub id: &'a GrantId,
    /// What settings show for it.
    pub label: &'a str,
    /// The upstream credential to seal.
    pub credential: &'a UpstreamCredential,
    /// Its policy.
    pub capabilities: &'a CapabilitySet,
}

/// Creates or replaces a configured grant opened by `token`, which never expires; the old
/// grant's tokens go with it.
///
/// # Errors
/// [`VaultStoreError`] from the backend, the sealing or the wrapping.
pub async fn put_configured<W: GrantTables>(
    w: &mut W,
    grant: &NewGrant<'_>,
    token: &AccessToken,
) -> Result<(), VaultStoreError> {
    let (identity, recipient) = new_identity();
    let mut record = GrantRecord::new(
        grant.id.as_str(),
        &recipient,
        seal(&Sealable::Credential(grant.credential), &recipient)?,
    );
    record.label = grant.label.to_owned();
    record.set_capabilities(grant.capabilities);
    let (key, token_record) = TokenRecord::wrap(
        &record.id,
        &identity_text(&identity),
        token,
        TokenKind::Access,
        None,
        false,
    )?;
    remove_grant(w, &record.id).await?;
    w.put_token(&key, &token_record).await?;
    w.put_grant(&record).await
}

/// Redeems an authorization code for `pair`. The second element names a grant this revoked
/// (a replayed code revokes its grant), for the backend's caches.
///
/// # Errors
/// [`VaultStoreError`] from the backend.
pub async fn redeem_code<W: GrantTables>(
    w: &mut W,
    code: &AccessToken,
    pair: &TokenPair,
) -> Result<(Redemption, Option<GrantId>), VaultStoreError> {
    let secret = code.expose_secret();
    let key = digest(secret);
    let Some(mut record) = w.token(&key).await?.filter(|t| t.kind == TokenKind::Code) else {
        return Ok((Redemption::Revoked, None));
    };
    let Some(mut grant) = w.grant(&record.grant_id).await? else {
        return Ok((Redemption::Revoked, None));
    };
    let identity = match unwrap_identity(&record, secret) {
        Some(identity) if !grant.code_used => identity,
        // Used before (its wrapped key is gone): a replayed code revokes the grant.
        _ => {
            remove_grant(w, &grant.id).await?;
            return Ok((Redemption::Revoked, Some(GrantId::new(grant.id))));
        }
    };
    issue_pair(w, &grant.id, &identity, pair, false).await?;
    // The code stays until it expires, without its key, so a replay is recognised.
    record.wrapped_identity = None;
    w.put_token(&key, &record).await?;
    grant.redeemed(pair);
    w.put_grant(&grant).await?;
    Ok((Redemption::Issued(pair.clone()), None))
}

/// Rotates a refresh token to `pair`, replays the newest pair to a retry with the previous
/// token, or revokes the grant on a reuse. The second element names a revoked grant.
///
/// # Errors
/// [`VaultStoreError`] from the backend, or a refresh token that doesn't unwrap its grant.
pub async fn rotate<W: GrantTables>(
    w: &mut W,
    refresh: &AccessToken,
    pair: &TokenPair,
) -> Result<(Redemption, Option<GrantId>), VaultStoreError> {
    let secret = refresh.expose_secret();
    let key = digest(secret);
    let Some(record) = w
        .token(&key)
        .await?
        .filter(|t| t.kind == TokenKind::Refresh && t.live(now()))
    else {
        return Ok((Redemption::Revoked, None));
    };
    let Some(mut grant) = w.grant(&record.grant_id).await? else {
        return Ok((Redemption::Revoked, None));
    };
    match decide(grant.role_of(&hex(&key))) {
        RefreshDecision::Revoke => {
            remove_grant(w, &grant.id).await?;
            Ok((Redemption::Revoked, Some(GrantId::new(grant.id))))
        }
        RefreshDecision::Replay => Ok((Redemption::Issued(grant.replayed(secret)?), None)),
        RefreshDecision::Rotate => {
            let identity = unwrap_identity(&record, secret).ok_or_else(|| {
                VaultStoreError::Corrupt("refresh token does not unwrap its grant".into())
            })?;
            issue_pair(w, &grant.id, &identity, pair, true).await?;
            // The token two generations back can no longer open anything.
            if let Some(previous) = grant.refresh_previous.as_deref().and_then(records::unhex)
                && let Some(mut old) = w.token(&previous).await?
            {
                old.wrapped_identity = None;
                w.put_token(&previous, &old).await?;
            }
            grant.rotated(secret, pair)?;
            w.put_grant(&grant).await?;
            Ok((Redemption::Issued(pair.clone()), None))
        }
    }
}

/// RFC 7009 revocation by the client that owns the token: an access token alone, a refresh
/// token or code with its whole grant. Returns the grant it touched, if any.
///
/// # Errors
/// [`VaultStoreError`] from the backend.
pub async fn revoke<W: GrantTables>(
    w: &mut W,
    token: &AccessToken,
    client: &ClientId,
) -> Result<Option<GrantId>, VaultStoreError> {
    let key = digest(token.expose_secret());
    let Some(record) = w.token(&key).await? else {
        return Ok(None);
    };
    let Some(grant) = w.grant(&record.grant_id).await? else {
        return Ok(None);
    };
    if grant.client_id.as_deref() != Some(client.as_str()) {
        return Ok(None);
    }
    match record.kind {
        TokenKind::Access => w.remove_token(&key, &grant.id).await?,
        TokenKind::Refresh | TokenKind::Code => remove_grant(w, &grant.id).await?,
    }
    Ok(Some(GrantId::new(grant.id)))
}

/// Seals a refreshed upstream token set to the grant's recipient, so every token of the grant
/// opens it. `false`: there is no such grant.
///
/// # Errors
/// [`VaultStoreError`] from the backend or the sealing.
pub async fn store_upstream<W: GrantTables>(
    w: &mut W,
    grant: &GrantId,
    tokens: &UpstreamTokens,
) -> Result<bool, VaultStoreError> {
    let Some(mut record) = w.grant(grant.as_str()).await? else {
        return Ok(false);
    };
    let recipient: age::x25519::Recipient = record
        .recipient
        .parse()
        .map_err(|_| VaultStoreError::Corrupt("stored recipient is malformed".into()))?;
    record.sealed_props = seal(&Sealable::Tokens(tokens), &recipient)?;
    w.put_grant(&record).await?;
    Ok(true)
}

/// Changes a grant's record (its settings). `false`: there is no such grant.
///
/// # Errors
/// [`VaultStoreError`] from the backend.
pub async fn update_grant<W: GrantTables>(
    w: &mut W,
    grant: &GrantId,
    change: impl FnOnce(&mut GrantRecord) + Send,
) -> Result<bool, VaultStoreError> {
    let Some(mut record) = w.grant(grant.as_str()).await? else {
        return Ok(false);
    };
    change(&mut record);
    w.put_grant(&record).await?;
    Ok(true)
}

/// Deletes a grant however it ended (revoked, replayed, expired). A connection the person
/// made leaves a tombstone and a `revoked` event, so settings can still show what it did and
/// that it ended; anything else takes its events with it.
///
/// # Errors
/// [`VaultStoreError`] from the backend.
pub async fn remove_grant<W: GrantTables>(w: &mut W, id: &str) -> Result<(), VaultStoreError> {
    match w
        .take_grant(id)
        .await?
        .and_then(|grant| Tombstone::of(&grant, now()))
    {
        Some(tombstone) => {
            w.put_tombstone(id, &tombstone).await?;
            w.append_event(&AuditEvent {
                grant: GrantId::new(id),
                at: now(),
                kind: AuditKind::Revoked,
            })
            .await
        }
        None => w.remove_events(id).await,
    }
}

/// Wraps the grant's identity under both tokens of `pair` and stores them; `successor`
/// marks the access token of a rotation (its first use retires the replay).
async fn issue_pair<W: GrantTables>(
    w: &mut W,
    grant: &str,
    identity: &str,
    pair: &TokenPair,
    successor: bool,
) -> Result<(), VaultStoreError> {
    let (key, access) =
        TokenRecord::wrapping(grant, identity, &pair.access, TokenKind::Access, successor)?;
    w.put_token(&key, &access).await?;
    let (key, refresh) =
        TokenRecord::wrapping(grant, identity, &pair.refresh, TokenKind::Refresh, false)?;
    w.put_token(&key, &refresh).await
}
