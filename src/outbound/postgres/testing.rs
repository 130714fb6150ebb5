//! The test PostgreSQL (`scripts/pgbed up`, which `scripts/test` runs), for this crate's tests
//! and the black-box tests: a fresh, empty database per test.

/// The test server's superuser URL: `PGBED_URL`, or the one `target/pgbed/env` records.
///
/// # Panics
/// When there is no test server: the tests that need one fail, they never skip.
#[must_use]
pub fn server_url() -> String {
    if let Ok(url) = std::env::var("PGBED_URL") {
        return url;
    }
    let env = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pgbed/env");
    std::fs::read_to_string(&env)
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("PGBED_URL=").map(str::to_owned))
        })
        .unwrap_or_else(|| {
            panic!(
                "no test PostgreSQL: run scripts/pgbed up ({} is missing)",
                env.display()
            )
        })
}

/// The URL of a new, empty database on the test server (left for `scripts/pgbed down`, which
/// removes the whole server).
///
/// # Panics
/// When the test server does not answer or refuses.
pub async fn fresh_database() -> String {
    let name = format!("mc_test_{:016x}", rand::random::<u64>());
    as_superuser(&format!("CREATE DATABASE {name}")).await;
    let url = server_url();
    let base = url.rsplit_once('/').map_or(url.as_str(), |(base, _)| base);
    format!("{base}/{name}")
}

/// Runs `sql` on the test server as its superuser (creating databases, cutting connections).
///
/// # Panics
/// When the test server does not answer or refuses.
pub async fn as_superuser(sql: &str) {
    let url = server_url();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("the test PostgreSQL at {url} does not answer: {e}"));
    tokio::spawn(connection);
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}
