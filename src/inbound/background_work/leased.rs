//! Work one instance does at a time among those sharing a storage (background delivery): it
//! runs while this instance holds its lease, renewed a few times per lease period, and stops
//! before the lease could lapse unrenewed. Another instance stands by, looking every third of a
//! period, and takes over within two periods of the holder dying.

use std::{future::Future, time::Duration};

use crate::domain::{auth::token::random_value, ports::Leases};

/// How long a lease lasts unrenewed.
pub const LEASE: Duration = Duration::from_secs(30);

/// Runs `work` (started afresh on each takeover) while holding the lease `name` in `leases`;
/// never returns.
pub async fn run_while_leased<L, W, F>(leases: L, name: &'static str, mut work: W)
where
    L: Leases,
    W: FnMut() -> F,
    F: Future<Output = ()>,
{
    let holder = random_value();
    let secs = i64::try_from(LEASE.as_secs()).unwrap_or(30);
    loop {
        match leases.take_lease(name, &holder, secs).await {
            Ok(true) => {
                tracing::info!(lease = name, "lease taken: running here");
                tokio::select! {
                    () = work() => {}
                    () = keep(&leases, name, &holder, secs) => {
                        tracing::warn!(lease = name, "lease lost: standing by");
                    }
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(lease = name, error = %e, "lease unavailable"),
        }
        tokio::time::sleep(LEASE / 3).await;
    }
}

/// Renews the lease every third of a period; returns when it is lost, or when it went
/// unrenewed so long it may lapse (the work must stop before another instance starts it).
async fn keep<L: Leases>(leases: &L, name: &str, holder: &str, secs: i64) {
    let mut safe_until = tokio::time::Instant::now() + LEASE - LEASE / 6;
    loop {
        tokio::time::sleep(LEASE / 3).await;
        match leases.renew_lease(name, holder, secs).await {
            Ok(true) => safe_until = tokio::time::Instant::now() + LEASE - LEASE / 6,
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(lease = name, error = %e, "lease not renewed");
                if tokio::time::Instant::now() >= safe_until {
                    return;
                }
            }
        }
    }
}
