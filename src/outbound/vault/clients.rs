//! [`ClientStore`] and [`RegistrationMemory`] on redb: `clients_v1`, and our registrations
//! at upstreams in `meta` (`upstream-client\0<issuer>\0<redirect>` → client id).

use super::{
    RedbVault,
    schema::{CLIENTS, META},
};
use crate::{
    domain::{
        auth::client::{ClientId, OAuthClient},
        ports::{ClientStore, RegistrationError, RegistrationMemory, VaultError},
    },
    outbound::vault_core::{
        VaultStoreError, db_err,
        records::{self, client::ClientRecord},
    },
};

impl ClientStore for RedbVault {
    async fn client(&self, id: &ClientId) -> Result<Option<OAuthClient>, VaultError> {
        let id = id.clone();
        Ok(self
            .run(move |v| {
                v.read(|tx| {
                    let table = tx.open_table(CLIENTS).map_err(db_err)?;
                    let Some(raw) = table.get(id.as_str()).map_err(db_err)? else {
                        return Ok(None);
                    };
                    records::decode::<ClientRecord>(raw.value())?
                        .into_client()
                        .map(Some)
                })
            })
            .await?)
    }

    async fn put_client(&self, client: OAuthClient) -> Result<(), VaultError> {
        Ok(self
            .run(move |v| {
                let record = records::encode(&ClientRecord::from_client(&client))?;
                v.write_tx(|tx| {
                    tx.open_table(CLIENTS)
                        .map_err(db_err)?
                        .insert(client.id.as_str(), record.as_slice())
                        .map_err(db_err)?;
                    Ok::<_, VaultStoreError>(())
                })
            })
            .await?)
    }
}

impl RegistrationMemory for RedbVault {
    async fn recall(&self, key: &str) -> Result<Option<String>, RegistrationError> {
        let key = key.to_owned();
        self.run(move |v| {
            v.read(|tx| {
                Ok(tx
                    .open_table(META)
                    .map_err(db_err)?
                    .get(key.as_str())
                    .map_err(db_err)?
                    .map(|v| v.value().to_owned()))
            })
        })
        .await
    }

    async fn remember(&self, key: &str, client_id: &str) -> Result<(), RegistrationError> {
        let (key, client_id) = (key.to_owned(), client_id.to_owned());
        self.run(move |v| {
            v.write_tx(|tx| {
                tx.open_table(META)
                    .map_err(db_err)?
                    .insert(key.as_str(), client_id.as_str())
                    .map_err(db_err)?;
                Ok(())
            })
        })
        .await
    }
}
