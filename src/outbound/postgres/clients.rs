//! [`ClientStore`] and [`RegistrationMemory`] on PostgreSQL: `clients`, and our registrations
//! at upstreams in `upstream_registrations`.

use super::{PgVault, schema::pg_err};
use crate::{
    domain::{
        auth::client::{ClientId, OAuthClient},
        ports::{ClientStore, RegistrationError, RegistrationMemory, VaultError},
    },
    outbound::vault_core::records::{self, client::ClientRecord},
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
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO clients (id, record) VALUES ($1, $2) \
                 ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record",
                &[&oauth_client.id.as_str(), &value],
            )
            .await
            .map_err(pg_err)?;
        Ok(())
    }
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
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO upstream_registrations (key, client_id) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET client_id = EXCLUDED.client_id",
                &[&key.as_bytes(), &client_id],
            )
            .await
            .map_err(pg_err)?;
        Ok(())
    }
}
