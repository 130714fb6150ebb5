//! The stored forms (JSON values in redb tables; docs/storage-schema.md). Nothing here is
//! secret in the clear: secrets are sealed or wrapped before they get here.

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::VaultStoreError;
use crate::domain::{
    auth::{
        rotation::RefreshRole,
        token::{IssuedToken, TokenPair},
    },
    grant::AccessToken,
    ids::ThreadId,
    notify::{
        rules::Mute,
        settings::{NotifySettings, QuietSpec},
    },
};

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

/// `clients_v1`: a registered, fetched or configured client.
#[derive(Debug, Serialize, Deserialize)]
pub struct ClientRecord {
    pub id: String,
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub kind: String,
    pub auth_method: String,
    /// SHA-256 (hex) of the client secret.
    pub secret_digest: Option<String>,
    pub created_at: i64,
    /// Unix seconds of the last grant created for it (registrations never used expire).
    #[serde(default)]
    pub last_granted_at: Option<i64>,
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

/// `GrantRecord.notify`: the new-mail rules (docs/storage-schema.md).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NotifyRecord {
    #[serde(default)]
    pub deny: Vec<String>,
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub only_allowed: bool,
    #[serde(default)]
    pub vip_breaks_quiet: bool,
    #[serde(default)]
    pub zone: String,
    /// `[iso weekdays, start minute, end minute]`.
    #[serde(default)]
    pub quiet: Vec<(Vec<u8>, u16, u16)>,
    /// `[sender, thread, until (unix seconds)]`.
    #[serde(default)]
    pub mutes: Vec<(Option<String>, Option<String>, i64)>,
    /// Folders watched besides the Inbox.
    #[serde(default)]
    pub mailboxes: Vec<String>,
    #[serde(default)]
    pub replies_are_vip: bool,
}

impl NotifyRecord {
    pub fn from_settings(s: &NotifySettings) -> Self {
        Self {
            deny: s.deny.clone(),
            allow: s.allow.clone(),
            only_allowed: s.only_allowed,
            vip_breaks_quiet: s.vip_breaks_quiet,
            zone: s.zone.clone(),
            quiet: s
                .quiet
                .iter()
                .map(|q| (q.days.clone(), q.start, q.end))
                .collect(),
            mutes: s
                .mutes
                .iter()
                .map(|m| {
                    (
                        m.sender.clone(),
                        m.thread.as_ref().map(ToString::to_string),
                        m.until.timestamp(),
                    )
                })
                .collect(),
            mailboxes: s.mailboxes.clone(),
            replies_are_vip: s.replies_are_vip,
        }
    }

    pub fn into_settings(self) -> NotifySettings {
        NotifySettings {
            mailboxes: self.mailboxes,
            replies_are_vip: self.replies_are_vip,
            deny: self.deny,
            allow: self.allow,
            only_allowed: self.only_allowed,
            vip_breaks_quiet: self.vip_breaks_quiet,
            zone: self.zone,
            quiet: self
                .quiet
                .into_iter()
                .map(|(days, start, end)| QuietSpec { days, start, end })
                .collect(),
            mutes: self
                .mutes
                .into_iter()
                .filter_map(|(sender, thread, until)| {
                    Some(Mute {
                        sender,
                        thread: thread.and_then(|t| ThreadId::parse(t).ok()),
                        until: chrono::DateTime::from_timestamp(until, 0)?,
                    })
                })
                .collect(),
        }
    }
}
