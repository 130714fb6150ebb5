//! Keys every instance shares, in `shared_keys`: the first instance to ask makes one, the
//! others read it (an insert that loses the race changes nothing).

use zeroize::Zeroizing;

use super::{PgVault, schema::pg_err};
use crate::outbound::vault_core::VaultStoreError;

impl PgVault {
    /// The key named `name`, made now if there is none.
    ///
    /// # Errors
    /// [`VaultStoreError`] when the database fails.
    pub async fn shared_key(&self, name: &str) -> Result<Zeroizing<[u8; 32]>, VaultStoreError> {
        let client = self.client().await?;
        let candidate = Zeroizing::new(rand::random::<[u8; 32]>());
        client
            .execute(
                "INSERT INTO shared_keys (name, key) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                &[&name, &candidate.as_slice()],
            )
            .await
            .map_err(pg_err)?;
        let row = client
            .query_one("SELECT key FROM shared_keys WHERE name = $1", &[&name])
            .await
            .map_err(pg_err)?;
        <[u8; 32]>::try_from(row.get::<_, &[u8]>(0))
            .map(Zeroizing::new)
            .map_err(|_| VaultStoreError::Corrupt(format!("shared key {name}")))
    }
}
