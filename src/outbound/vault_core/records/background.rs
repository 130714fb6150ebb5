//! `notifier_v1` and `background_v1` values (docs/storage-schema.md "Background
//! notifications"): secrets sealed to the notifier key, what settings show in the clear.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use zeroize::Zeroizing;

use crate::{
    domain::{
        grant::{GrantId, UpstreamCredential},
        notify::{
            background::{Background, LastDelivery},
            delivery::{Destination, WebhookSecret, WebhookUrl},
        },
        ports::{BackgroundError, UpstreamTokens},
        secret::SecretString,
    },
    outbound::vault_core::{
        notifier_key::{NotifierKey, NotifierSeal},
        sealing::{Sealable, open_props, open_sealed, seal, seal_bytes},
    },
};

fn err(e: impl std::fmt::Display) -> BackgroundError {
    BackgroundError::Unexpected(e.to_string())
}

/// A background record's JSON value.
///
/// # Errors
/// [`BackgroundError::Unexpected`].
pub fn encode(value: &impl Serialize) -> Result<Vec<u8>, BackgroundError> {
    serde_json::to_vec(value).map_err(err)
}

/// A background record from its JSON value.
///
/// # Errors
/// [`BackgroundError::Unexpected`].
pub fn decode<T: DeserializeOwned>(raw: &[u8]) -> Result<T, BackgroundError> {
    serde_json::from_slice(raw).map_err(err)
}

/// `notifier_v1`: a person's notifier grant, sealed to the notifier key.
#[derive(Serialize, Deserialize)]
pub struct NotifierRecord {
    sealed: String,
    created_at: i64,
}

impl NotifierRecord {
    /// Seals `tokens` to the notifier.
    ///
    /// # Errors
    /// [`BackgroundError::Unexpected`] when sealing fails.
    pub fn seal(tokens: &UpstreamTokens, to: &NotifierSeal) -> Result<Self, BackgroundError> {
        Ok(Self {
            sealed: seal(&Sealable::Tokens(tokens), to.recipient()).map_err(err)?,
            created_at: Utc::now().timestamp(),
        })
    }

    /// The tokens, if `key` opens them.
    #[must_use]
    pub fn open(&self, key: &NotifierKey) -> Option<UpstreamTokens> {
        let props = open_props(&self.sealed, key.identity())?;
        let UpstreamCredential::Bearer(access) = props.credential else {
            return None;
        };
        Some(UpstreamTokens {
            access,
            refresh: props.refresh.map(|r| r.token),
            expires_at: props.expires_at,
            issued_at: props.issued_at,
        })
    }
}

/// `background_v1`: where a connection's notifications go.
#[derive(Serialize, Deserialize)]
pub struct BackgroundRecord {
    account: String,
    kind: String,
    target: String,
    since: i64,
    /// The destination, age-sealed to the notifier (base64).
    sealed: String,
    #[serde(default)]
    last: Option<LastRecord>,
}

#[derive(Serialize, Deserialize)]
struct LastRecord {
    at: i64,
    delivered: bool,
    detail: String,
}

/// A destination's secrets, as sealed (to the notifier here; under a flow step's handle while
/// the person approves the notifier).
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SealedDestination {
    Webhook { url: String, secret: String },
    Poke { api_key: String },
}

impl SealedDestination {
    /// The secrets of `destination`, to be sealed.
    #[must_use]
    pub fn of(destination: &Destination) -> Self {
        match destination {
            Destination::Webhook { url, secret } => Self::Webhook {
                url: url.as_url().to_string(),
                secret: secret.to_whsec().expose_secret().to_owned(),
            },
            Destination::Poke { api_key } => Self::Poke {
                api_key: api_key.expose_secret().to_owned(),
            },
        }
    }

    /// The destination it holds.
    ///
    /// # Errors
    /// [`BackgroundError::Unexpected`] when a stored value no longer parses.
    pub fn into_destination(self) -> Result<Destination, BackgroundError> {
        Ok(match self {
            Self::Webhook { url, secret } => Destination::Webhook {
                url: WebhookUrl::parse(&url, true).map_err(err)?,
                secret: WebhookSecret::parse(&secret).map_err(err)?,
            },
            Self::Poke { api_key } => Destination::Poke {
                api_key: SecretString::new(api_key),
            },
        })
    }
}

fn to_time(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or_default()
}

impl BackgroundRecord {
    /// A destination as stored: what the page shows in the clear, its secrets sealed.
    ///
    /// # Errors
    /// [`BackgroundError::Unexpected`] when sealing fails.
    pub fn seal(
        account: &str,
        destination: &Destination,
        to: &NotifierSeal,
    ) -> Result<Self, BackgroundError> {
        let target = match destination {
            Destination::Webhook { url, .. } => url.host().to_owned(),
            Destination::Poke { .. } => "Poke".to_owned(),
        };
        let secret = SealedDestination::of(destination);
        let plain = Zeroizing::new(serde_json::to_vec(&secret).map_err(err)?);
        drop(secret);
        Ok(Self {
            account: account.to_owned(),
            kind: destination.kind().to_owned(),
            target,
            since: Utc::now().timestamp(),
            sealed: seal_bytes(&plain, to.recipient()).map_err(err)?,
            last: None,
        })
    }

    /// The person (account digest) it delivers for.
    #[must_use]
    pub fn account(&self) -> &str {
        &self.account
    }

    /// What settings show of it.
    #[must_use]
    pub fn summary(self, grant: &str) -> Background {
        Background {
            grant: GrantId::new(grant.to_owned()),
            account: self.account,
            kind: self.kind,
            target: self.target,
            since: to_time(self.since),
            last: self.last.map(|l| LastDelivery {
                at: to_time(l.at),
                delivered: l.delivered,
                detail: l.detail,
            }),
        }
    }

    /// Records how the last delivery went.
    pub fn set_last(&mut self, last: &LastDelivery) {
        self.last = Some(LastRecord {
            at: last.at.timestamp(),
            delivered: last.delivered,
            detail: last.detail.clone(),
        });
    }

    /// The destination, opened with the notifier key.
    ///
    /// # Errors
    /// [`BackgroundError::Unexpected`] when `key` does not open it.
    pub fn open(&self, key: &NotifierKey) -> Result<Destination, BackgroundError> {
        let plain = open_sealed(&self.sealed, key.identity())
            .ok_or_else(|| err("the destination does not open with this key"))?;
        serde_json::from_slice::<SealedDestination>(&plain)
            .map_err(err)?
            .into_destination()
    }
}
