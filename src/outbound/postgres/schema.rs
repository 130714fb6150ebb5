//! The connection pool and the schema: versioned migrations, each in one transaction under an
//! advisory lock, so two instances starting at once migrate once and a failed migration leaves
//! nothing half-applied. A database whose schema is newer than this build is refused.

use std::str::FromStr as _;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::{NoTls, error::SqlState};

use crate::outbound::vault_core::VaultStoreError;

/// The schema version this build writes (docs/storage-schema.md, "PostgreSQL").
pub const SCHEMA_VERSION: i32 = 4;

/// The key of the advisory lock migrations hold ("mailconnect" in ASCII, truncated).
const MIGRATION_LOCK: i64 = 0x6d61_696c_636f_6e6e;

/// Migration `n` is `MIGRATIONS[n - 1]`.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/1_vault.sql"),
    include_str!("migrations/2_flow_steps.sql"),
    include_str!("migrations/3_leases.sql"),
    include_str!("migrations/4_shared_keys.sql"),
];

/// The PostgreSQL-backed storage ports.
#[derive(Clone)]
pub struct PgVault {
    pool: Pool,
}

impl std::fmt::Debug for PgVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The pool's configuration holds the password.
        f.debug_struct("PgVault").finish_non_exhaustive()
    }
}

impl PgVault {
    /// Connects to `url` (`postgres://user:password@host:port/database`) with a pool of at most
    /// `pool_size` connections, and brings the schema up to date.
    ///
    /// # Errors
    /// [`VaultStoreError::Database`] for a malformed URL, an unreachable database, a schema
    /// newer than this build, or a failed migration (nothing of it applied).
    pub async fn connect(url: &str, pool_size: usize) -> Result<Self, VaultStoreError> {
        let config = tokio_postgres::Config::from_str(url).map_err(|e| {
            VaultStoreError::Database(format!("the PostgreSQL URL does not parse: {e}"))
        })?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .build()
            .map_err(pg_err)?;
        let vault = Self { pool };
        vault.migrate().await?;
        Ok(vault)
    }

    /// A pooled connection.
    pub(super) async fn client(&self) -> Result<Object, VaultStoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| VaultStoreError::Database(format!("no PostgreSQL connection: {e}")))
    }

    /// Applies the migrations this database lacks, in one transaction under the migration lock.
    async fn migrate(&self) -> Result<(), VaultStoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(pg_err)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS mailconnect_schema (version integer NOT NULL)",
        )
        .await
        .map_err(pg_err)?;
        let current: i32 = tx
            .query_opt("SELECT version FROM mailconnect_schema", &[])
            .await
            .map_err(pg_err)?
            .map_or(0, |row| row.get(0));
        if current > SCHEMA_VERSION {
            return Err(VaultStoreError::Database(format!(
                "the PostgreSQL schema is version {current}, newer than this build knows ({SCHEMA_VERSION}): run a newer mailconnect"
            )));
        }
        for (n, sql) in (1..)
            .zip(MIGRATIONS)
            .skip(usize::try_from(current).unwrap_or(0))
        {
            tx.batch_execute(sql).await.map_err(|e| {
                VaultStoreError::Database(format!("PostgreSQL migration {n} failed: {e}"))
            })?;
        }
        if current == 0 {
            tx.execute(
                "INSERT INTO mailconnect_schema (version) VALUES ($1)",
                &[&SCHEMA_VERSION],
            )
            .await
            .map_err(pg_err)?;
        } else if current < SCHEMA_VERSION {
            tx.execute(
                "UPDATE mailconnect_schema SET version = $1",
                &[&SCHEMA_VERSION],
            )
            .await
            .map_err(pg_err)?;
        }
        tx.commit().await.map_err(pg_err)
    }

    /// The schema version of the database.
    ///
    /// # Errors
    /// [`VaultStoreError::Database`] when it can't be read.
    pub async fn schema_version(&self) -> Result<i32, VaultStoreError> {
        let client = self.client().await?;
        client
            .query_one("SELECT version FROM mailconnect_schema", &[])
            .await
            .map(|row| row.get(0))
            .map_err(pg_err)
    }
}

/// Runs one statement whose row count does not matter (in a transaction or on its own).
pub(super) async fn execute(
    client: &impl tokio_postgres::GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<(), VaultStoreError> {
    client.execute(sql, params).await.map(drop).map_err(pg_err)
}

/// A PostgreSQL failure: a deadlock or serialization failure is [`VaultStoreError::Retry`]
/// (the transaction may simply run again), anything else a database error.
pub(super) fn pg_err(e: impl Into<PgFailure>) -> VaultStoreError {
    match e.into() {
        PgFailure::Driver(e)
            if matches!(
                e.code(),
                Some(&SqlState::T_R_DEADLOCK_DETECTED | &SqlState::T_R_SERIALIZATION_FAILURE)
            ) =>
        {
            VaultStoreError::Retry
        }
        // The server's message, never its detail (which may quote a row's values).
        PgFailure::Driver(e) => VaultStoreError::Database(match e.as_db_error() {
            Some(db) => format!("PostgreSQL: {} ({})", db.message(), db.code().code()),
            None => format!("PostgreSQL: {e}"),
        }),
        PgFailure::Pool(e) => VaultStoreError::Database(format!("PostgreSQL pool: {e}")),
    }
}

/// What the driver or the pool reported.
pub(super) enum PgFailure {
    Driver(tokio_postgres::Error),
    Pool(String),
}

impl From<tokio_postgres::Error> for PgFailure {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Driver(e)
    }
}

impl From<deadpool_postgres::BuildError> for PgFailure {
    fn from(e: deadpool_postgres::BuildError) -> Self {
        Self::Pool(e.to_string())
    }
}
