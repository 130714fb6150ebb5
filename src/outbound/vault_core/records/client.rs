//! `clients_v1` values: registered, fetched or configured OAuth clients (secrets hashed).

use serde::{Deserialize, Serialize};

use super::{hex, unhex};
use crate::{
    domain::auth::{
        client::{ClientId, ClientKind, OAuthClient, TokenAuthMethod},
        redirect::RedirectUri,
    },
    outbound::vault_core::VaultStoreError,
};

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

impl ClientRecord {
    /// The stored form of `client`.
    #[must_use]
    pub fn from_client(client: &OAuthClient) -> Self {
        Self {
            id: client.id.as_str().to_owned(),
            name: client.name.clone(),
            redirect_uris: client
                .redirect_uris
                .iter()
                .map(|r| r.as_str().to_owned())
                .collect(),
            kind: client.kind.as_str().to_owned(),
            auth_method: client.auth_method.as_str().to_owned(),
            secret_digest: client.secret_digest.as_ref().map(hex),
            created_at: client.created_at,
            last_granted_at: None,
        }
    }

    /// The client it stores.
    ///
    /// # Errors
    /// [`VaultStoreError::Corrupt`] when a field does not parse.
    pub fn into_client(self) -> Result<OAuthClient, VaultStoreError> {
        let r = self;
        let corrupt = |what: &str| VaultStoreError::Corrupt(format!("client {}: {what}", r.id));
        Ok(OAuthClient {
            redirect_uris: r
                .redirect_uris
                .iter()
                .map(|u| RedirectUri::parse(u))
                .collect::<Result<_, _>>()
                .map_err(|_| corrupt("redirect URI"))?,
            kind: ClientKind::parse(&r.kind).ok_or_else(|| corrupt("kind"))?,
            auth_method: TokenAuthMethod::parse(&r.auth_method)
                .ok_or_else(|| corrupt("auth method"))?,
            secret_digest: r
                .secret_digest
                .as_deref()
                .map(|d| unhex(d).ok_or_else(|| corrupt("secret digest")))
                .transpose()?,
            id: ClientId::new(r.id.clone()),
            name: r.name.clone(),
            created_at: r.created_at,
        })
    }

    /// Whether a sweep removes it: a registration (not a configured client or a fetched
    /// document) created before `before`, never granted since, that holds no grant.
    #[must_use]
    pub fn unused(&self, before: i64, in_use: &std::collections::HashSet<String>) -> bool {
        self.kind == ClientKind::Registered.as_str()
            && self.last_granted_at.unwrap_or(self.created_at) < before
            && !in_use.contains(&self.id)
    }
}
