//! The stored forms (JSON values; docs/storage-schema.md), the same in every backend, and
//! the record-level steps of issuing, redeeming and rotating. Nothing here is secret in the
//! clear: secrets are sealed or wrapped before they get here.

pub mod approval;
pub mod audit;
pub mod background;
pub mod client;
pub mod flow;
pub mod notify;

pub use self::notify::NotifyRecord;

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use zeroize::Zeroizing;

use super::{
    VaultStoreError,
    sealing::{digest, lock, unlock, wrap_purpose},
};
use crate::domain::{
    auth::{
        client::ClientId,
        pkce::CodeChallenge,
        rotation::RefreshRole,
        token::{IssuedToken, TokenPair},
    },
    grant::{AccessToken, Capability, CapabilitySet, GrantId},
    notify::settings::NotifySettings,
    ports::{CodeBinding, GrantDraft, GrantSummary, RefreshBinding},
    sending::recipients::RecipientRule,
};

/// The purpose under which a rotation's answer is locked with the previous refresh token.
const REPLAY_PURPOSE: &str = "replay-last-refresh";

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, VaultStoreError> {
    serde_json::to_vec(value).map_err(|e| VaultStoreError::Corrupt(e.to_string()))
}

pub fn decode<T: DeserializeOwned>(raw: &[u8]) -> Result<T, VaultStoreError> {
    serde_json::from_slice(raw).map_err(|e| VaultStoreError::Corrupt(e.to_string()))
}

pub fn hex(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn unhex(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if s.len() != 64 {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// What a token is for; bound into its key derivation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    Access,
    Refresh,
    Code,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::Refresh => "refresh",
            Self::Code => "code",
        }
    }
}

/// `tokens_v1`: a token under its SHA-256.
#[derive(Debug, Serialize, Deserialize)]
pub struct TokenRecord {
    pub grant_id: String,
    pub kind: TokenKind,
    /// Unix seconds; `None` for configured tokens.
    pub expires_at: Option<i64>,
    /// The grant's age identity under a key derived from the token; `None` once the token is
    /// retired (a used code, a refresh token two generations old), kept only to recognise reuse.
    pub wrapped_identity: Option<String>,
    /// The newest pair's access token, not used yet: its first use retires the previous
    /// refresh token's replay.
    #[serde(default)]
    pub successor: bool,
}

impl TokenRecord {
    /// A token of `grant` that wraps its age `identity` under a key only `issued` derives;
    /// returns the record with the key it is stored under (the token's SHA-256).
    ///
    /// # Errors
    /// [`VaultStoreError::Crypto`].
    pub fn wrapping(
        grant: &str,
        identity: &str,
        issued: &IssuedToken,
        kind: TokenKind,
        successor: bool,
    ) -> Result<([u8; 32], Self), VaultStoreError> {
        Self::wrap(
            grant,
            identity,
            &issued.token,
            kind,
            Some(issued.expires_at),
            successor,
        )
    }

    /// Like [`TokenRecord::wrapping`], for any token and expiry (`None`: a configured token).
    ///
    /// # Errors
    /// [`VaultStoreError::Crypto`].
    pub fn wrap(
        grant: &str,
        identity: &str,
        token: &AccessToken,
        kind: TokenKind,
        expires_at: Option<i64>,
        successor: bool,
    ) -> Result<([u8; 32], Self), VaultStoreError> {
        let secret = token.expose_secret();
        let record = Self {
            grant_id: grant.to_owned(),
            kind,
            expires_at,
            wrapped_identity: Some(lock(
                identity.as_bytes(),
                secret,
                grant,
                &wrap_purpose(kind.as_str()),
            )?),
            successor,
        };
        Ok((digest(secret), record))
    }

    /// Whether it has not expired at `at` (unix seconds).
    #[must_use]
    pub fn live(&self, at: i64) -> bool {
        self.expires_at.is_none_or(|t| t > at)
    }
}

/// `grants_v1`: one connected client of one person.
#[derive(Debug, Serialize, Deserialize)]
pub struct GrantRecord {
    pub id: String,
    pub created_at: i64,
    #[serde(default)]
    pub label: String,
    /// age X25519 recipient (public).
    pub recipient: String,
    /// The upstream secrets, age-encrypted to `recipient` (base64).
    pub sealed_props: String,
    pub capabilities: Vec<String>,
    /// Who it may send to (`RecipientRule` stored form); absent: anyone.
    #[serde(default)]
    pub recipients: Option<String>,
    /// Sends are approved only on the review page.
    #[serde(default)]
    pub review_only: bool,
    /// New-mail rules; absent: the defaults.
    #[serde(default)]
    pub notify: Option<NotifyRecord>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub redirect_uri: Option<String>,
    #[serde(default)]
    pub resource: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub code_challenge: Option<String>,
    /// SHA-256 (hex) of the upstream account's identity.
    #[serde(default)]
    pub account_digest: Option<String>,
    #[serde(default)]
    pub code_used: bool,
    /// SHA-256 (hex) of the newest refresh token.
    #[serde(default)]
    pub refresh_current: Option<String>,
    /// SHA-256 (hex) of the one before.
    #[serde(default)]
    pub refresh_previous: Option<String>,
    /// Whether the newest pair has been used.
    #[serde(default)]
    pub successor_used: bool,
    /// The newest pair, encrypted under a key derived from the previous refresh token, so a
    /// retry with that token gets the same answer and nobody else can read it.
    #[serde(default)]
    pub replay: Option<String>,
}

impl GrantRecord {
    pub fn new(id: &str, recipient: &age::x25519::Recipient, sealed_props: String) -> Self {
        Self {
            id: id.to_owned(),
            created_at: chrono::Utc::now().timestamp(),
            label: String::new(),
            recipient: recipient.to_string(),
            sealed_props,
            capabilities: vec!["read".into()],
            recipients: None,
            review_only: false,
            notify: None,
            client_id: None,
            redirect_uri: None,
            resource: None,
            scope: None,
            code_challenge: None,
            account_digest: None,
            code_used: false,
            refresh_current: None,
            refresh_previous: None,
            successor_used: false,
            replay: None,
        }
    }

    /// A grant from the connect flow, its upstream tokens already `sealed` to `recipient`.
    #[must_use]
    pub fn from_draft(
        draft: &GrantDraft,
        recipient: &age::x25519::Recipient,
        sealed: String,
    ) -> Self {
        Self {
            label: String::new(),
            capabilities: names(&draft.capabilities),
            client_id: Some(draft.client.as_str().to_owned()),
            redirect_uri: Some(draft.redirect_uri.clone()),
            resource: Some(draft.resource.clone()),
            scope: Some(draft.scope.clone()),
            code_challenge: Some(draft.code_challenge.as_str().to_owned()),
            account_digest: Some(draft.account_digest.clone()),
            ..Self::new(draft.id.as_str(), recipient, sealed)
        }
    }

    /// Its capabilities (names no longer known are dropped).
    #[must_use]
    pub fn capability_set(&self) -> CapabilitySet {
        CapabilitySet::with(
            self.capabilities
                .iter()
                .filter_map(|c| Capability::parse(c)),
        )
    }

    /// Replaces its capabilities.
    pub fn set_capabilities(&mut self, capabilities: &CapabilitySet) {
        self.capabilities = names(capabilities);
    }

    /// Who it may send to.
    #[must_use]
    pub fn recipient_rule(&self) -> RecipientRule {
        self.recipients
            .as_deref()
            .map(RecipientRule::from_stored)
            .unwrap_or_default()
    }

    /// Its new-mail rules.
    #[must_use]
    pub fn notify_settings(&self) -> NotifySettings {
        self.notify
            .clone()
            .map(NotifyRecord::into_settings)
            .unwrap_or_default()
    }

    /// Whether it is a connection yet (its code was redeemed) of `account_digest`.
    #[must_use]
    pub fn connection_of(&self, account_digest: &str) -> bool {
        self.code_used && self.account_digest.as_deref() == Some(account_digest)
    }

    /// What settings list of it.
    #[must_use]
    pub fn summary(&self, last_used_at: Option<i64>) -> GrantSummary {
        GrantSummary {
            grant: GrantId::new(self.id.clone()),
            client: ClientId::new(self.client_id.clone().unwrap_or_default()),
            redirect_uri: self.redirect_uri.clone().unwrap_or_default(),
            created_at: self.created_at,
            last_used_at,
            capabilities: self.capability_set(),
            recipients: self.recipient_rule(),
            notify: self.notify_settings(),
            review_only: self.review_only,
        }
    }

    /// What its code was issued for.
    #[must_use]
    pub fn code_binding(&self) -> CodeBinding {
        CodeBinding {
            grant: GrantId::new(self.id.clone()),
            client: ClientId::new(self.client_id.clone().unwrap_or_default()),
            redirect_uri: self.redirect_uri.clone().unwrap_or_default(),
            resource: self.resource.clone().unwrap_or_default(),
            scope: self.scope.clone().unwrap_or_default(),
            code_challenge: CodeChallenge::from_stored(
                self.code_challenge.clone().unwrap_or_default(),
            ),
            used: self.code_used,
        }
    }

    /// What the refresh token with SHA-256 `key` belongs to.
    #[must_use]
    pub fn refresh_binding(&self, key: &[u8; 32]) -> RefreshBinding {
        RefreshBinding {
            grant: GrantId::new(self.id.clone()),
            client: ClientId::new(self.client_id.clone().unwrap_or_default()),
            scope: self.scope.clone().unwrap_or_default(),
            resource: self.resource.clone().unwrap_or_default(),
            role: self.role_of(&hex(key)),
        }
    }

    /// Its code was redeemed for `pair`.
    pub fn redeemed(&mut self, pair: &TokenPair) {
        self.code_used = true;
        self.refresh_current = Some(hex(&digest(pair.refresh.token.expose_secret())));
    }

    /// The refresh token `presented` was rotated into `pair`: the answer is kept for a retry
    /// with `presented` (locked under it), and `presented` becomes the previous token.
    ///
    /// # Errors
    /// [`VaultStoreError`] when the answer can't be encoded or locked.
    pub fn rotated(&mut self, presented: &str, pair: &TokenPair) -> Result<(), VaultStoreError> {
        let answer = Zeroizing::new(encode(&IssuedPairRecord::from_pair(pair))?);
        self.replay = Some(lock(&answer, presented, &self.id, REPLAY_PURPOSE)?);
        self.refresh_previous = self.refresh_current.take();
        self.refresh_current = Some(hex(&digest(pair.refresh.token.expose_secret())));
        self.successor_used = false;
        Ok(())
    }

    /// The pair the last rotation answered, for a retry with the token it rotated.
    ///
    /// # Errors
    /// [`VaultStoreError::Corrupt`] when it does not open with `presented`.
    pub fn replayed(&self, presented: &str) -> Result<TokenPair, VaultStoreError> {
        self.replay
            .as_deref()
            .and_then(|r| unlock(r, presented, &self.id, REPLAY_PURPOSE))
            .and_then(|plain| serde_json::from_slice::<IssuedPairRecord>(&plain).ok())
            .map(|r| r.to_pair())
            .ok_or_else(|| VaultStoreError::Corrupt("the last refresh answer does not open".into()))
    }

    /// Where a refresh token (by its digest, hex) stands in this grant's chain.
    pub fn role_of(&self, digest_hex: &str) -> RefreshRole {
        if self.refresh_current.as_deref() == Some(digest_hex) {
            RefreshRole::Current
        } else if self.refresh_previous.as_deref() == Some(digest_hex) {
            RefreshRole::Previous {
                successor_used: self.successor_used,
            }
        } else {
            RefreshRole::Older
        }
    }
}

/// A token pair as kept for a replayed refresh (only ever stored encrypted).
#[derive(Serialize, Deserialize)]
pub struct IssuedPairRecord {
    access: String,
    access_expires_at: i64,
    refresh: String,
    refresh_expires_at: i64,
    scope: String,
}

impl IssuedPairRecord {
    pub fn from_pair(pair: &TokenPair) -> Self {
        Self {
            access: pair.access.token.expose_secret().to_owned(),
            access_expires_at: pair.access.expires_at,
            refresh: pair.refresh.token.expose_secret().to_owned(),
            refresh_expires_at: pair.refresh.expires_at,
            scope: pair.scope.clone(),
        }
    }

    pub fn to_pair(&self) -> TokenPair {
        TokenPair {
            access: IssuedToken {
                token: AccessToken::new(self.access.clone()),
                expires_at: self.access_expires_at,
            },
            refresh: IssuedToken {
                token: AccessToken::new(self.refresh.clone()),
                expires_at: self.refresh_expires_at,
            },
            scope: self.scope.clone(),
        }
    }
}

impl Drop for IssuedPairRecord {
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        self.access.zeroize();
        self.refresh.zeroize();
    }
}

/// Capability names as stored.
fn names(capabilities: &CapabilitySet) -> Vec<String> {
    capabilities.iter().map(|c| c.as_str().to_owned()).collect()
}

/// `revoked_v1`: a connection that ended, kept (nothing secret) for its audit log until the
/// retention period passes.
#[derive(Debug, Serialize, Deserialize)]
pub struct Tombstone {
    pub account_digest: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub created_at: i64,
    pub revoked_at: i64,
}

impl Tombstone {
    /// What is kept of a removed grant at `now`: only of a connection the person made (its
    /// code was redeemed), so settings can still show what it did and that it ended.
    #[must_use]
    pub fn of(grant: &GrantRecord, now: i64) -> Option<Self> {
        (grant.code_used && grant.account_digest.is_some()).then(|| Self {
            account_digest: grant.account_digest.clone().unwrap_or_default(),
            client_id: grant.client_id.clone().unwrap_or_default(),
            redirect_uri: grant.redirect_uri.clone().unwrap_or_default(),
            created_at: grant.created_at,
            revoked_at: now,
        })
    }

    /// What settings list of the ended connection `grant`.
    #[must_use]
    pub fn summary(self, grant: &str) -> GrantSummary {
        GrantSummary {
            grant: GrantId::new(grant),
            client: ClientId::new(self.client_id),
            redirect_uri: self.redirect_uri,
            created_at: self.created_at,
            last_used_at: Some(self.revoked_at),
            capabilities: CapabilitySet::read_only(),
            recipients: RecipientRule::default(),
            notify: NotifySettings::default(),
            review_only: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        mail::ids::EmailId,
        ports::{AuditEvent, AuditKind},
        sending::approval::{ApprovalId, ApprovalRecord, DraftDigest, Status},
    };

    /// The stored forms are the schema's (docs/storage-schema.md), to the byte: every backend
    /// writes these, and files written before stay readable.
    #[test]
    fn records_keep_their_stored_form() {
        let token = TokenRecord {
            grant_id: "g1".into(),
            kind: TokenKind::Refresh,
            expires_at: Some(10),
            wrapped_identity: None,
            successor: false,
        };
        assert_eq!(
            String::from_utf8(encode(&token).unwrap()).unwrap(),
            r#"{"grant_id":"g1","kind":"refresh","expires_at":10,"wrapped_identity":null,"successor":false}"#
        );
        let old: GrantRecord = decode(
            br#"{"id":"g1","created_at":5,"recipient":"age1x","sealed_props":"c2VhbGVk","capabilities":["read","organize"]}"#,
        )
        .unwrap();
        assert_eq!(
            (old.capability_set(), old.recipient_rule(), old.review_only),
            (
                CapabilitySet::with([Capability::Organize]),
                RecipientRule::Anyone,
                false
            )
        );
        assert_eq!(
            String::from_utf8(encode(&old).unwrap()).unwrap(),
            r#"{"id":"g1","created_at":5,"label":"","recipient":"age1x","sealed_props":"c2VhbGVk","capabilities":["read","organize"],"recipients":null,"review_only":false,"notify":null,"client_id":null,"redirect_uri":null,"resource":null,"scope":null,"code_challenge":null,"account_digest":null,"code_used":false,"refresh_current":null,"refresh_previous":null,"successor_used":false,"replay":null}"#
        );
        let event = audit::encode_event(&AuditEvent {
            grant: GrantId::new("g1"),
            at: 3,
            kind: AuditKind::ToolCall {
                tool: "search_email".into(),
                outcome: "ok".into(),
                count: None,
            },
        })
        .unwrap();
        assert_eq!(
            String::from_utf8(event).unwrap(),
            r#"{"at":3,"kind":"tool_call","tool":"search_email","outcome":"ok","count":null}"#
        );
        let id = ApprovalId::parse("AAAAAAAAAAAAAAAAAAAAAA").unwrap();
        let approval = approval::StoredApproval::from_record(&ApprovalRecord {
            id: id.clone(),
            grant: GrantId::new("g1"),
            account: "acct".into(),
            draft: EmailId::parse("M1").unwrap(),
            digest: DraftDigest([0xab; 32]),
            status: Status::Pending,
            created_at: 1,
            expires_at: 2,
            review: vec![1, 2, 3],
            submission: None,
        });
        assert_eq!(
            String::from_utf8(approval.encode().unwrap()).unwrap(),
            format!(
                r#"{{"grant":"g1","account":"acct","draft":"M1","digest":"{}","status":"pending","created_at":1,"expires_at":2,"review":"AQID","submission":null}}"#,
                "ab".repeat(32)
            )
        );
    }
}
