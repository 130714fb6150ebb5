//! [`ClientStore`] and [`RegistrationMemory`] on PostgreSQL: `clients`, and our registrations
//! at upstreams in `upstream_registrations`.

use tokio_postgres::GenericClient;

use super::{
    PgVault,
    schema::{execute, pg_err},
};
use crate::{
    domain::{
        auth::client::{ClientId, OAuthClient},
        ports::{ClientStore, RegistrationError, RegistrationMemory, VaultError},
    },
    outbound::vault_core::{
        VaultStoreError,
        records::{self, client::ClientRecord},
    },
};

impl ClientStore for PgVault {
    async fn client(&self, id: &ClientId) -> Result<Option<OAuthClient>, VaultError> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT record FROM clients WHERE id = $1", &[&id.as_str()])
            .await
            .map_err(pg_err)?;
        Ok(row
            .map(|r| records::decode::<ClientRecord>(r.get::<_, &[u8]>(0))?.into_client())
            .transpose()?)
    }

    async fn put_client(&self, oauth_client: OAuthClient) -> Result<(), VaultError> {
        let value = records::encode(&ClientRecord::from_client(&oauth_client))?;
        Ok(put_client(&**self.client().await?, oauth_client.id.as_str(), &value).await?)
    }
}

/// Inserts or replaces the client `id`, stored as `value`.
pub(super) async fn put_client(
    client: &impl GenericClient,
    id: &str,
    value: &[u8],
) -> Result<(), VaultStoreError> {
    execute(
        client,
        "INSERT INTO clients (id, record) VALUES ($1, $2) \
         ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record",
        &[&id, &value],
    )
    .await
}

/// Remembers our client id at an upstream under `key`.
pub(super) async fn put_registration(
    client: &impl GenericClient,
    key: &[u8],
    client_id: &str,
) -> Result<(), VaultStoreError> {
    execute(
        client,
        "INSERT INTO upstream_registrations (key, client_id) VALUES ($1, $2) \
         ON CONFLICT (key) DO UPDATE SET client_id = EXCLUDED.client_id",
        &[&key, &client_id],
    )
    .await
}

impl RegistrationMemory for PgVault {
    async fn recall(&self, key: &str) -> Result<Option<String>, RegistrationError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT client_id FROM upstream_registrations WHERE key = $1",
                &[&key.as_bytes()],
            )
            .await
            .map_err(pg_err)?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn remember(&self, key: &str, client_id: &str) -> Result<(), RegistrationError> {
        Ok(put_registration(&**self.client().await?, key.as_bytes(), client_id).await?)
    }
}
