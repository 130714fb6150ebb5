//! Work one instance does at a time among those sharing a storage (background delivery): it
//! runs while this instance holds its lease, renewed a few times per lease period, and stops
//! before the lease could lapse unrenewed. Another instance stands by, looking every third of a
//! period, and takes over within two periods of the holder dying.

use std::{future::Future, time::Duration};

use crate::domain::{auth::token::random_value, ports::Leases};

/// How long a lease lasts unrenewed.
pub const LEASE: Duration = Duration::from_secs(30);

/// Runs `work` (started afresh on each takeover) while holding the lease `name` in `leases`,
/// and `stand_down` whenever it stops (what `work` started must stop with it); never returns.
pub async fn run_while_leased<L, W, F, D, G>(
    leases: L,
    name: &'static str,
    mut work: W,
    mut stand_down: D,
) where
    L: Leases,
    W: FnMut() -> F,
    F: Future<Output = ()>,
    D: FnMut() -> G,
    G: Future<Output = ()>,
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
                stand_down().await;
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(lease = name, error = %e, "lease unavailable"),
        }
        tokio::time::sleep(LEASE / 3).await;
    }
}

/// Renews the lease every third of a period; returns when it is lost, or before it could have
/// lapsed unrenewed (a renewal that fails or hangs past that point ends the work: another
/// instance may start it then).
async fn keep<L: Leases>(leases: &L, name: &str, holder: &str, secs: i64) {
    // The lease counts from before the request that set it.
    let margin = LEASE / 6;
    let mut safe_until = tokio::time::Instant::now() + LEASE - margin;
    loop {
        let now = tokio::time::Instant::now();
        tokio::time::sleep((LEASE / 3).min(safe_until.saturating_duration_since(now))).await;
        let sent = tokio::time::Instant::now();
        match tokio::time::timeout_at(safe_until, leases.renew_lease(name, holder, secs)).await {
            Ok(Ok(true)) => safe_until = sent + LEASE - margin,
            Ok(Ok(false)) => return,
            Ok(Err(e)) => tracing::warn!(lease = name, error = %e, "lease not renewed"),
            Err(_) => return,
        }
        if tokio::time::Instant::now() >= safe_until {
            return;
        }
    }
}
