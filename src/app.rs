//! The composition root: builds the adapters from configuration and wires them to the core.
//! `main` runs it; the black-box tests start it in-process the same way.

use std::{sync::Arc, time::Duration};

use poem::Route;
use rmcp::transport::streamable_http_server::StreamableHttpServerConfig;
use sha2::{Digest as _, Sha256};

use crate::{
    config::{BackgroundConfig, Config, ConfiguredClient, StorageBackend},
    domain::{
        auth::{
            audience::Audience,
            client::{ClientId, ClientKind, OAuthClient},
            service::AuthService,
            upstream_refresh::UpstreamRefresher,
        },
        grant::{AccessToken, CapabilitySet, GrantId},
        notify::delivery::RetrySchedule,
        ports::SweepRules,
        service::{
            BackgroundSetup, Fitted, MailService, Notifier, NotifierSettings, ReviewDesk,
            ServiceLimits,
        },
    },
    inbound::{
        BackgroundDesk, DynAuditLog,
        background_work::{NotifierRunner, WatchTuning, run_while_leased},
        http::{self, Surfaces},
        listener::NoDelayAcceptor,
        mcp::{McpHandler, ToolListWatchers},
    },
    outbound::{
        client_directory::ClientDirectory,
        delivery::{HttpDeliverer, HttpDelivererConfig},
        jmap::NotifierMail,
        jmap::{JmapMailStore, TransportConfig},
        pdf::PdfText,
        postgres::PgVault,
        storage::Storage,
        upstream_oauth::{LazyUpstream, MAIN_CLIENT_NAME, NOTIFIER_CLIENT_NAME, UpstreamSettings},
        vault::{NewGrant, NotifierKey, RedbVault, Retention, SELF_HOST_GRANT},
    },
};

/// The upstream OAuth client as deployed, remembering its registrations in storage `S`.
pub type Upstream<S> = LazyUpstream<S>;
/// Upstream credential renewal as deployed: through our upstream OAuth client, sealed in the
/// vault.
pub type Renewal<S> = UpstreamRefresher<S, Upstream<S>>;
/// The mail use cases as deployed: JMAP mail store, storage `S` (tokens, policy and send
/// approvals), renewal through the upstream OAuth client, PDF text.
pub type Service<S> = MailService<JmapMailStore, S, S, Fitted<Renewal<S>, PdfText, S>>;
/// The authorization server as deployed.
pub type Auth<S> = AuthService<S, ClientDirectory<S>, Upstream<S>, JmapMailStore>;

/// The vault's file inside the data directory.
pub const VAULT_FILE: &str = "mailconnect.redb";
/// How often expired tokens and unused registrations are swept.
pub const SWEEP_EVERY: Duration = Duration::from_secs(600);
/// Registered clients that never got a grant are removed after this many seconds.
pub const UNUSED_CLIENT_SECS: i64 = 30 * 86400;

/// Why the app could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The vault could not be opened.
    #[error("{0}")]
    Vault(#[from] crate::outbound::vault::VaultStoreError),
    /// An adapter could not be built.
    #[error("{0}")]
    Adapter(String),
    /// The data directory is unusable.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// Everything the routes need, built from configuration.
pub struct App {
    /// The routes.
    pub routes: Route,
    /// The served OpenAPI document, committed form.
    pub openapi: String,
    /// Chores that run while the app serves (the sweeper), ended when the app is dropped so a
    /// stopped app leaves its store free.
    pub chores: Chores,
}

/// Background tasks owned by an [`App`]: aborted on drop.
#[derive(Default)]
pub struct Chores(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Chores {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

async fn install_self_host<S: Storage>(config: &Config, vault: &S) -> Result<(), StartError> {
    match &config.server.self_host {
        // Re-sealed at every start, so a changed token or credential in config takes effect
        // and the previous token stops working.
        Some(self_host) => {
            vault
                .put_configured(
                    &NewGrant {
                        id: &GrantId::new(SELF_HOST_GRANT),
                        label: "self-host client (from configuration)",
                        credential: &self_host.credential,
                        capabilities: &CapabilitySet::read_only(),
                    },
                    &AccessToken::new(self_host.token.expose_secret()),
                )
                .await?;
        }
        None => vault.delete_grant(&GrantId::new(SELF_HOST_GRANT)).await?,
    }
    Ok(())
}

fn configured_client(c: &ConfiguredClient) -> OAuthClient {
    OAuthClient {
        id: ClientId::new(c.id.clone()),
        name: c.name.clone(),
        redirect_uris: c.redirect_uris.clone(),
        kind: ClientKind::Configured,
        auth_method: c.auth_method,
        secret_digest: c
            .secret
            .as_ref()
            .map(|s| Sha256::digest(s.expose_secret().as_bytes()).into()),
        created_at: chrono::Utc::now().timestamp(),
    }
}

/// Our client at the upstream, as configured (the notifier's differs in name, id and scopes).
fn upstream_settings(config: &Config, redirect_uri: url::Url) -> UpstreamSettings {
    let u = &config.upstream.oauth;
    UpstreamSettings {
        issuer: u.issuer.clone(),
        authorization_endpoint: u.authorization_endpoint.clone(),
        token_endpoint: u.token_endpoint.clone(),
        registration_endpoint: u.registration_endpoint.clone(),
        requires_iss: None,
        client_id: u.client_id.clone(),
        client_secret: u.client_secret.clone(),
        secret_in_body: false,
        scopes: u.scopes.clone(),
        resource: u.resource.clone(),
        redirect_uri,
        revocation_endpoint: u.revocation_endpoint.clone(),
        client_name: MAIN_CLIENT_NAME,
        timeout: config.upstream.timeout,
    }
}

/// The notifier as deployed: its read-only mailbox view, its own upstream client, the vault's
/// policy, webhook and Poke delivery, and the two sides of the sealed records.
type DeployedNotifier<S> = Notifier<
    NotifierMail,
    Upstream<S>,
    S,
    HttpDeliverer,
    <S as Storage>::Opening,
    <S as Storage>::Sealing,
>;
/// The notifier's runner as deployed.
type Runner<S> = NotifierRunner<
    NotifierMail,
    Upstream<S>,
    S,
    HttpDeliverer,
    <S as Storage>::Opening,
    <S as Storage>::Sealing,
>;
/// The settings page's side of background delivery as deployed.
type BackgroundSide<S> =
    BackgroundSetup<Upstream<S>, JmapMailStore, <S as Storage>::Sealing, Runner<S>, S>;

/// Sets up background delivery: the notifier key (read or created outside the vault
/// directory), the vault's sealing and opening halves, the notifier's own upstream client,
/// its read-only mailbox view and the delivery adapter; starts the notifier and returns the
/// settings page's side.
async fn background_delivery<S: Storage>(
    config: &Config,
    bg: &BackgroundConfig,
    vault: &S,
    mail: Arc<JmapMailStore>,
    redirect_uri: url::Url,
) -> Result<Arc<BackgroundSide<S>>, StartError> {
    let key = match NotifierKey::load(&bg.key_file)
        .map_err(|e| StartError::Adapter(e.to_string()))?
    {
        Some(key) => key,
        None => {
            // A new key would never open grants sealed to the old one (a failed mount?).
            let sealed = vault
                .notifier_grants()
                .await
                .map_err(|e| StartError::Adapter(e.to_string()))?;
            if sealed > 0 {
                return Err(StartError::Adapter(format!(
                    "the notifier key file {} is missing, but the vault holds {sealed} notifier grant(s) sealed to a key: restore the file",
                    bg.key_file.display()
                )));
            }
            NotifierKey::create(&bg.key_file).map_err(|e| StartError::Adapter(e.to_string()))?
        }
    };
    let store = Arc::new(vault.sealing(key.seal()));
    let keyring = Arc::new(vault.opening(key));
    let upstream = Arc::new(LazyUpstream::new(
        UpstreamSettings {
            client_id: bg.client_id.clone(),
            client_secret: None,
            scopes: bg.scopes.clone(),
            client_name: NOTIFIER_CLIENT_NAME,
            ..upstream_settings(config, redirect_uri)
        },
        Arc::new(vault.clone()),
    ));
    let notifier_mail = NotifierMail::new(TransportConfig {
        session_url: config.upstream.jmap_session_url.clone(),
        timeout: config.upstream.timeout,
    })
    .map_err(|e| StartError::Adapter(format!("notifier mailbox: {e}")))?;
    let deliverer = Arc::new(
        HttpDeliverer::new(HttpDelivererConfig {
            poke_base: bg.poke_api_base.as_str().trim_end_matches('/').to_owned(),
            allow_private_targets: bg.allow_private_destinations,
            extra_root_certificate: bg.extra_root_certificate.clone(),
            ..HttpDelivererConfig::default()
        })
        .map_err(|e| StartError::Adapter(format!("delivery: {e}")))?,
    );
    let notifier: Arc<DeployedNotifier<S>> = Arc::new(Notifier::new(
        notifier_mail,
        Arc::clone(&upstream),
        vault.clone(),
        deliverer,
        keyring,
        Arc::clone(&store),
        NotifierSettings {
            poll: config.notify.poll,
            ping: config.notify.push_ping,
            push_retry: WatchTuning::default().push_retry,
            schedule: RetrySchedule::standard(),
        },
    ));
    let runner: Arc<Runner<S>> = Arc::new(NotifierRunner::new(notifier));
    // One instance at a time delivers in the background: a second would send every notice
    // again.
    let leases = vault.clone();
    let leased = Arc::clone(&runner);
    tokio::spawn(async move {
        run_while_leased(
            leases,
            NOTIFIER_LEASE,
            || Arc::clone(&leased).run(),
            || {
                let leased = Arc::clone(&leased);
                async move { leased.stand_down().await }
            },
        )
        .await;
    });
    tracing::info!("background notifications offered");
    Ok(Arc::new(BackgroundSetup::new(
        upstream,
        mail,
        store,
        runner,
        Arc::new(vault.clone()),
    )))
}

async fn build_app<S: Storage>(
    config: &Config,
    vault: S,
    start_tasks: bool,
) -> Result<App, StartError> {
    install_self_host(config, &vault).await?;
    if config.server.self_host.is_none() {
        tracing::info!("no self-host token configured: MCP clients connect through OAuth");
    }
    for client in &config.server.clients {
        vault
            .put_client(configured_client(client))
            .await
            .map_err(|e| StartError::Adapter(e.to_string()))?;
    }
    let store = Arc::new(
        JmapMailStore::new(TransportConfig {
            session_url: config.upstream.jmap_session_url.clone(),
            timeout: config.upstream.timeout,
        })
        .map_err(|e| StartError::Adapter(format!("mail store: {e}")))?,
    );
    let audience = Audience::new(&config.server.public_url);
    let redirect_uri = url::Url::parse(&audience.url("/auth/callback"))
        .map_err(|e| StartError::Adapter(e.to_string()))?;
    let background: Option<Arc<dyn BackgroundDesk>> = match &config.notify.background {
        Some(bg) if start_tasks => Some(
            background_delivery(config, bg, &vault, Arc::clone(&store), redirect_uri.clone())
                .await?,
        ),
        _ => None,
    };
    let upstream = Arc::new(LazyUpstream::new(
        upstream_settings(config, redirect_uri),
        Arc::new(vault.clone()),
    ));
    let vault_arc = Arc::new(vault.clone());
    let refresher = Arc::new(UpstreamRefresher::new(
        Arc::clone(&vault_arc),
        Arc::clone(&upstream),
    ));
    let service: Arc<Service<S>> = Arc::new(
        MailService::new(
            Arc::clone(&store),
            vault.clone(),
            vault.clone(),
            vault.clone(),
            ServiceLimits {
                max_attachment_bytes: config.limits.max_attachment_bytes,
                ..ServiceLimits::default()
            },
        )
        .with_send_settings(config.send)
        .with_oauth(Arc::clone(&refresher), audience.resource().to_owned())
        .with_documents(PdfText),
    );
    let clients = Arc::new(ClientDirectory::new(
        vault.clone(),
        config.server.allow_loopback_client_metadata,
    ));
    let auth = Arc::new(AuthService::new(
        vault_arc,
        clients,
        upstream,
        store,
        refresher,
        audience,
        config.server.tokens,
    ));
    let openapi = http::committed_form(&http::api_service(Arc::clone(&auth)));
    let watchers = Arc::new(ToolListWatchers::default());
    let audit: Arc<dyn DynAuditLog> = Arc::new(vault.clone());
    let request_state_key = vault
        .shared_key(REQUEST_STATE_KEY)
        .await
        .map_err(|e| StartError::Adapter(e.to_string()))?;
    let handler = McpHandler::new(
        Arc::clone(&service),
        config.limits.tool_timeout,
        Arc::clone(&audit),
        Arc::clone(&watchers),
    )
    .with_public_url(config.server.public_url.as_str())
    .with_request_state_key(&request_state_key)
    .with_background_status(background.clone())
    .with_watch_tuning(WatchTuning {
        poll: config.notify.poll,
        ping: config.notify.push_ping,
        ..WatchTuning::default()
    });
    let mcp_config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(config.server.allowed_hosts.clone())
        .with_sse_keep_alive(Some(Duration::from_secs(15)))
        .with_json_response(true)
        .with_max_request_body_bytes(1024 * 1024);
    let routes = http::routes(Surfaces {
        service,
        handler,
        auth,
        mcp_config,
        session_idle: config.server.session_idle,
        public_url: config.server.public_url.to_string(),
        allowed_origins: config.server.allowed_origins.clone(),
        secure_cookies: config.server.public_url.scheme() == "https",
        watchers,
        review: Arc::new(ReviewDesk::new(vault.clone())),
        background,
        allow_insecure_destinations: config
            .notify
            .background
            .as_ref()
            .is_some_and(|b| b.allow_private_destinations),
    });
    let mut chores = Chores::default();
    if start_tasks {
        chores.0.push(spawn_sweeper(
            vault,
            Retention {
                max_age_secs: i64::try_from(config.storage.audit_retention_days).unwrap_or(90)
                    * 86_400,
                max_events: config.storage.audit_max_events,
            },
        ));
    }
    Ok(App {
        routes,
        openapi,
        chores,
    })
}

/// Builds the app on the configured storage: the redb file in the data directory, or the
/// PostgreSQL database `--storage` names (its schema migrated first).
///
/// # Errors
/// [`StartError`] when the data directory, the storage or an adapter can't be set up.
pub async fn build(config: &Config) -> Result<App, StartError> {
    match &config.storage.backend {
        StorageBackend::Redb => build_app(config, open_redb(config)?, true).await,
        StorageBackend::Postgres { url, pool_size } => {
            build_app(
                config,
                PgVault::connect(url.expose_secret(), *pool_size).await?,
                true,
            )
            .await
        }
    }
}

/// Builds the app on storage the caller opened (benchmarks and tests that want a handle on it).
///
/// # Errors
/// [`StartError`] when an adapter can't be set up.
pub async fn build_with<S: Storage>(config: &Config, storage: S) -> Result<App, StartError> {
    build_app(config, storage, true).await
}

/// The redb file in the data directory, opened (and migrated).
fn open_redb(config: &Config) -> Result<RedbVault, StartError> {
    std::fs::create_dir_all(&config.storage.data_dir).map_err(|source| StartError::DataDir {
        path: config.storage.data_dir.display().to_string(),
        source,
    })?;
    Ok(RedbVault::open(&config.storage.data_dir.join(VAULT_FILE))?)
}

/// `mailconnect storage migrate`: opens the configured storage, which brings its schema up to
/// date, and says which version it is at.
///
/// # Errors
/// [`StartError`] when the storage can't be opened or migrated.
pub async fn migrate_storage(config: &Config) -> Result<String, StartError> {
    Ok(match &config.storage.backend {
        StorageBackend::Redb => {
            open_redb(config)?;
            format!(
                "redb {}: schema version {}",
                config.storage.data_dir.join(VAULT_FILE).display(),
                crate::outbound::vault::SCHEMA_VERSION
            )
        }
        StorageBackend::Postgres { url, pool_size } => {
            let vault = PgVault::connect(url.expose_secret(), *pool_size).await?;
            format!(
                "PostgreSQL: schema version {}",
                vault.schema_version().await?
            )
        }
    })
}

/// The OpenAPI document as committed under `openapi/` (built on an in-memory vault: printing it
/// touches no file and no network).
///
/// # Errors
/// [`StartError`] when the app can't be built.
pub async fn openapi_document(config: &Config) -> Result<String, StartError> {
    // Without the notifier: printing the document starts no task and writes no key file.
    Ok(build_app(config, RedbVault::in_memory()?, false)
        .await?
        .openapi)
}

/// Sweeps expired tokens, unused registrations and old audit events now and then.
fn spawn_sweeper<S: Storage>(vault: S, retention: Retention) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(SWEEP_EVERY);
        loop {
            every.tick().await;
            let rules = SweepRules {
                unused_client_secs: UNUSED_CLIENT_SECS,
                retention,
            };
            match vault.sweep(rules).await {
                Ok(n) if n > 0 => tracing::info!(removed = n, "vault swept"),
                Err(e) => tracing::warn!(error = %e, "vault sweep failed"),
                Ok(_) => {}
            }
        }
    })
}

/// Serves until the process is stopped.
///
/// # Errors
/// [`StartError`] or the listener's I/O error.
pub async fn serve(config: &Config) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let App { routes, chores, .. } = build(config).await?;
    tracing::info!(listen = %config.server.listen, public_url = %config.server.public_url, mcp = %config.mcp_url(), "mailconnect serving");
    let acceptor = NoDelayAcceptor::bind(config.server.listen).await?;
    poem::Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(http::access_log(routes), stop_signal(), Some(DRAIN_TIMEOUT))
        .await?;
    drop(chores);
    tracing::info!("mailconnect stopped");
    Ok(())
}

/// The lease of the instance that runs background delivery.
const NOTIFIER_LEASE: &str = "notifier";

/// The name of the shared key that seals 2026-07-28 request states.
const REQUEST_STATE_KEY: &str = "mcp-request-state";

/// How long a stop waits for requests in flight before it ends them.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Resolves at SIGTERM (a deploy, systemd, a container runtime) or SIGINT (Ctrl-C): the server
/// stops accepting, finishes what is in flight within [`DRAIN_TIMEOUT`], and `main` exits 0.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM: draining"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: draining"),
                }
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops gracefully")
            }
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
