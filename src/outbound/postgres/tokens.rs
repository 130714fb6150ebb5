//! [`TokenVault`] on PostgreSQL: the grant steps in one transaction each
//! ([`in_transaction!`](super::tables::in_transaction)); opening reads a token and its grant
//! in one query.

use super::{PgVault, schema::pg_err, tables::in_transaction};
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
        VaultStoreError, now,
        records::{self, GrantRecord, TokenKind, TokenRecord},
        sealing::digest,
        steps,
    },
};

impl PgVault {
    /// A token (by its digest) with its grant.
    async fn read_token(
        &self,
        key: &[u8; 32],
    ) -> Result<Option<(TokenRecord, GrantRecord)>, VaultStoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT t.record, g.record FROM tokens t JOIN grants g ON g.id = t.grant_id \
                 WHERE t.digest = $1",
                &[&key.as_slice()],
            )
            .await
            .map_err(pg_err)?;
        row.map(|r| {
            Ok((
                records::decode(r.get::<_, &[u8]>(0))?,
                records::decode(r.get::<_, &[u8]>(1))?,
            ))
        })
        .transpose()
    }

    /// Opens a grant with a token of one of `kinds`; the first use of the newest access token
    /// marks its pair as used.
    async fn open_with(
        &self,
        token: &AccessToken,
        kinds: &[TokenKind],
    ) -> Result<OpenedGrant, VaultError> {
        let secret = token.expose_secret();
        let key = digest(secret);
        let (record, grant) = self
            .read_token(&key)
            .await?
            .ok_or(VaultError::InvalidToken)?;
        let opened = steps::open(&record, grant, secret, kinds)?.ok_or(VaultError::InvalidToken)?;
        if opened.first_use_of_successor {
            let grant = opened.grant.grant.as_str();
            in_transaction!(self, |t| steps::mark_successor_used(t, &key, grant))?;
        }
        Ok(opened.grant)
    }

    /// What `bind` makes of the grant of a live (unexpired) token of `kind`.
    async fn binding<T>(
        &self,
        token: &AccessToken,
        kind: TokenKind,
        bind: impl FnOnce(&GrantRecord, &[u8; 32]) -> T,
    ) -> Result<Option<T>, VaultError> {
        let key = digest(token.expose_secret());
        Ok(self
            .read_token(&key)
            .await?
            .filter(|(record, _)| record.kind == kind && record.live(now()))
            .map(|(_, grant)| bind(&grant, &key)))
    }

    /// Lists grants or tombstones of one account by `sql` (`$1`: the account digest), each
    /// row's record made a summary by `summary`.
    pub(super) async fn summaries(
        &self,
        sql: &str,
        account_digest: &str,
        summary: impl Fn(&tokio_postgres::Row) -> Result<Option<GrantSummary>, VaultStoreError>,
    ) -> Result<Vec<GrantSummary>, VaultError> {
        let client = self.client().await?;
        let rows = client
            .query(sql, &[&account_digest])
            .await
            .map_err(pg_err)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.extend(summary(row)?);
        }
        Ok(out)
    }
}

/// The lease that makes renewing `grant`'s upstream tokens one instance's turn.
fn refresh_turn(grant: &GrantId) -> String {
    format!("refresh-turn:{grant}")
}

impl TokenVault for PgVault {
    async fn open(&self, token: &AccessToken) -> Result<OpenedGrant, VaultError> {
        self.open_with(token, &[TokenKind::Access]).await
    }

    async fn open_fresh(&self, token: &AccessToken) -> Result<OpenedGrant, VaultError> {
        self.open_with(token, &[TokenKind::Access, TokenKind::Refresh])
            .await
    }

    async fn create_grant(&self, draft: GrantDraft, code: IssuedToken) -> Result<(), VaultError> {
        Ok(in_transaction!(self, |t| steps::create_grant(
            t, &draft, &code
        ))?)
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
        Ok(in_transaction!(self, |t| steps::redeem_code(t, code, &pair))?.0)
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
        Ok(in_transaction!(self, |t| steps::rotate(t, refresh, &pair))?.0)
    }

    async fn store_upstream(
        &self,
        grant: &GrantId,
        tokens: UpstreamTokens,
    ) -> Result<(), VaultError> {
        in_transaction!(self, |t| steps::store_upstream(t, grant, &tokens))?
            .then_some(())
            .ok_or(VaultError::InvalidToken)
    }

    async fn take_refresh_turn(&self, grant: &GrantId, holder: &str) -> Result<bool, VaultError> {
        Ok(self.wait_for_turn(&refresh_turn(grant), holder).await?)
    }

    async fn end_refresh_turn(&self, grant: &GrantId, holder: &str) -> Result<(), VaultError> {
        Ok(self.release(&refresh_turn(grant), holder).await?)
    }

    async fn revoke_token(&self, token: &AccessToken, client: &ClientId) -> Result<(), VaultError> {
        in_transaction!(self, |t| steps::revoke(t, token, client))?;
        Ok(())
    }

    async fn remove_grant(&self, grant: &GrantId) -> Result<(), VaultError> {
        Ok(self.delete_grant(grant).await?)
    }

    async fn grants_of(&self, account_digest: &str) -> Result<Vec<GrantSummary>, VaultError> {
        // The newest tool call of each grant is its last use.
        let mut out = self
            .summaries(
                "SELECT g.record, (SELECT a.record FROM audit a WHERE a.grant_id = g.id \
                   AND a.kind = 'tool_call' \
                   ORDER BY a.seq DESC, a.id DESC LIMIT 1) \
                 FROM grants g WHERE g.account_digest = $1",
                account_digest,
                |row| {
                    let grant: GrantRecord = records::decode(row.get::<_, &[u8]>(0))?;
                    if !grant.connection_of(account_digest) {
                        return Ok(None);
                    }
                    let last_used_at = match row.get::<_, Option<&[u8]>>(1) {
                        Some(raw) => records::audit::tool_call_at(raw)?,
                        None => None,
                    };
                    Ok(Some(grant.summary(last_used_at)))
                },
            )
            .await?;
        out.sort_by_key(|g| std::cmp::Reverse(g.created_at));
        Ok(out)
    }

    async fn revoked_of(&self, account_digest: &str) -> Result<Vec<GrantSummary>, VaultError> {
        let mut out = self
            .summaries(
                "SELECT grant_id, record FROM revoked WHERE account_digest = $1",
                account_digest,
                |row| {
                    let tombstone: records::Tombstone = records::decode(row.get::<_, &[u8]>(1))?;
                    Ok(Some(tombstone.summary(row.get::<_, &str>(0))))
                },
            )
            .await?;
        out.sort_by_key(|g| std::cmp::Reverse(g.last_used_at));
        Ok(out)
    }
}
