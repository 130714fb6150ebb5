//! `mailconnect storage copy --from <redb file> --to postgres://…` (README "Storage"): moves
//! a vault from the embedded redb file to PostgreSQL. Every row is copied as stored, so every
//! grant keeps working for its client without a new consent, and background records still
//! open with the notifier key (which no database holds).
//!
//! The source is opened read-only and read in one transaction; it is never written. The
//! target is written in one transaction holding its tables locked, and only if it holds
//! nothing the source does not: copying again writes nothing, copying into a database in use
//! is refused. Before committing, and again after, the target is read back: its row counts and
//! per-table SHA-256 must be the source's.

use std::{fmt, path::Path, str::FromStr as _};

use super::{
    postgres::{ImportError, PgVault},
    vault::RedbVault,
    vault_core::snapshot::{SnapshotDigest, Table, TableCounts},
};
use crate::domain::secret::SecretString;

/// What a copy did: every table's rows and digest (the same on both sides), and how many rows
/// this run wrote (none when the database already held the copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// Per table, the rows and SHA-256 of the source, and of the copy.
    pub digest: SnapshotDigest,
    /// Per table, the rows this run wrote.
    pub written: TableCounts,
}

/// Why a copy failed. No message holds the PostgreSQL URL's password.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The redb file can't be opened or read (in use, not closed cleanly, another schema).
    #[error("the source vault: {0}")]
    Source(String),
    /// PostgreSQL can't be reached, migrated, read or written.
    #[error("the PostgreSQL database: {0}")]
    Target(String),
    /// The target holds rows the source does not: nothing was written.
    #[error(
        "the PostgreSQL database already holds rows the source does not ({0}): it is in use or \
         holds another vault; nothing was written (copy into an empty database)"
    )]
    InUse(TableCounts),
    /// The target does not read back as the source (rows in the target per differing table).
    #[error("verification failed: the copy differs from the source in {0}")]
    Mismatch(TableCounts),
}

/// Copies the redb vault at `from` into the PostgreSQL database at `to_url` (migrating its
/// schema first) over a pool of at most `pool_size` connections, and verifies the copy.
///
/// # Errors
/// [`CopyError`]; the source is untouched in every case, and the target is unchanged unless
/// only the verification after the commit failed ([`CopyError::Mismatch`]: something wrote to
/// it meanwhile).
pub async fn copy(
    from: &Path,
    to_url: &SecretString,
    pool_size: usize,
) -> Result<CopyReport, CopyError> {
    let path = from.to_owned();
    let source = tokio::task::spawn_blocking(move || RedbVault::export_file(&path))
        .await
        .map_err(|e| CopyError::Source(format!("the read failed: {e}")))?
        .map_err(|e| CopyError::Source(e.to_string()))?;
    let target_err = |e: &dyn fmt::Display| CopyError::Target(redacted(&e.to_string(), to_url));
    let target = PgVault::connect(to_url.expose_secret(), pool_size)
        .await
        .map_err(|e| target_err(&e))?;
    let written = target.import(&source).await.map_err(|e| match e {
        ImportError::InUse(rows) => CopyError::InUse(rows),
        ImportError::Mismatch(rows) => CopyError::Mismatch(rows),
        ImportError::Store(e) => target_err(&e),
    })?;
    let digest = source.digest();
    let copy = target.export().await.map_err(|e| target_err(&e))?;
    let differing = copy.digest().differing(&digest);
    if !differing.is_empty() {
        return Err(CopyError::Mismatch(TableCounts(
            differing.into_iter().map(|t| (t, copy.rows(t))).collect(),
        )));
    }
    Ok(CopyReport { digest, written })
}

/// `message` without the password of `url` (as written in it, and decoded).
fn redacted(message: &str, url: &SecretString) -> String {
    let url = url.expose_secret();
    let decoded = tokio_postgres::Config::from_str(url).ok().and_then(|c| {
        c.get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned())
    });
    let raw = url::Url::parse(url)
        .ok()
        .and_then(|u| u.password().map(str::to_owned));
    let mut out = message.to_owned();
    for password in [decoded, raw].into_iter().flatten() {
        if !password.is_empty() {
            out = out.replace(&password, "[redacted]");
        }
    }
    out
}

fn hex(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A table: rows, written by this run, SHA-256; then the digest over all tables.
impl fmt::Display for CopyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let written = |table: Table| {
            self.written
                .0
                .iter()
                .find(|(t, _)| *t == table)
                .map_or(0, |(_, n)| *n)
        };
        writeln!(f, "{:<24} {:>8} {:>8}  sha-256", "table", "rows", "written")?;
        for t in &self.digest.tables {
            writeln!(
                f,
                "{:<24} {:>8} {:>8}  {}",
                t.table.name(),
                t.rows,
                written(t.table),
                hex(&t.sha256)
            )?;
        }
        writeln!(f, "{:<42}  {}", "all tables", hex(&self.digest.sha256))?;
        write!(
            f,
            "verified: the copy holds the same rows as the source (counts and digests match)"
        )
    }
}

#[cfg(test)]
mod tests;
