//! The client store half of the vault.

use redb::{ReadableDatabase as _, ReadableTable as _};

use super::{
    CLIENTS, GRANTS, RedbVault, VaultStoreError, blocking, db_err,
    records::{self, ClientRecord, GrantRecord, hex, unhex},
};
use crate::domain::{
    auth::{
        client::{ClientId, ClientKind, OAuthClient, TokenAuthMethod},
        redirect::RedirectUri,
    },
    ports::{ClientStore, VaultError},
};

fn to_record(client: &OAuthClient) -> ClientRecord {
    ClientRecord {
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

fn from_record(r: ClientRecord) -> Result<OAuthClient, VaultStoreError> {
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

impl RedbVault {
    fn client_blocking(&self, id: &ClientId) -> Result<Option<OAuthClient>, VaultStoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let table = tx.open_table(CLIENTS).map_err(db_err)?;
        let Some(raw) = table.get(id.as_str()).map_err(db_err)? else {
            return Ok(None);
        };
        from_record(records::decode(raw.value())?).map(Some)
    }

    /// Removes registered (not configured) clients created before `before` that hold no grant.
    pub(super) fn sweep_clients(&self, before: i64) -> Result<usize, VaultStoreError> {
        let tx = self.db.begin_write().map_err(db_err)?;
        let removed = {
            let grants = tx.open_table(GRANTS).map_err(db_err)?;
            let in_use: std::collections::HashSet<String> = grants
                .iter()
                .map_err(db_err)?
                .filter_map(Result::ok)
                .filter_map(|(_, v)| records::decode::<GrantRecord>(v.value()).ok()?.client_id)
                .collect();
            let mut clients = tx.open_table(CLIENTS).map_err(db_err)?;
            let stale: Vec<String> = clients
                .iter()
                .map_err(db_err)?
                .filter_map(Result::ok)
                .filter_map(|(k, v)| {
                    let r: ClientRecord = records::decode(v.value()).ok()?;
                    let unused = r.kind == ClientKind::Registered.as_str()
                        && r.last_granted_at.unwrap_or(r.created_at) < before
                        && !in_use.contains(&r.id);
                    unused.then(|| k.value().to_owned())
                })
                .collect();
            for id in &stale {
                clients.remove(id.as_str()).map_err(db_err)?;
            }
            stale.len()
        };
        tx.commit().map_err(db_err)?;
        Ok(removed)
    }
}

impl ClientStore for RedbVault {
    async fn client(&self, id: &ClientId) -> Result<Option<OAuthClient>, VaultError> {
        let vault = self.clone();
        let id = id.clone();
        blocking(move || Ok(vault.client_blocking(&id)?)).await
    }

    async fn put_client(&self, client: OAuthClient) -> Result<(), VaultError> {
        let vault = self.clone();
        blocking(move || {
            let record = records::encode(&to_record(&client))?;
            let tx = vault.db.begin_write().map_err(db_err)?;
            tx.open_table(CLIENTS)
                .map_err(db_err)?
                .insert(client.id.as_str(), record.as_slice())
                .map_err(db_err)?;
            tx.commit().map_err(db_err)?;
            Ok(())
        })
        .await
    }
}
