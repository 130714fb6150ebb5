//! The composition root: builds the adapters from configuration and wires them to the core.
//! `main` runs it; the black-box tests start it in-process the same way.

use std::{sync::Arc, time::Duration};

use poem::{EndpointExt, Route, middleware::Tracing};
use rmcp::transport::streamable_http_server::StreamableHttpServerConfig;

use crate::{
    config::Config,
    domain::{
        grant::{AccessToken, CapabilitySet, GrantId},
        service::{MailService, ServiceLimits},
    },
    inbound::{http, listener::NoDelayAcceptor, mcp::McpHandler},
    outbound::{
        jmap::{JmapMailStore, TransportConfig},
        vault::{NewGrant, NewToken, RedbVault, SELF_HOST_GRANT},
    },
};

/// The service as deployed: JMAP mail store, redb vault (tokens and policy).
pub type Service = MailService<JmapMailStore, RedbVault, RedbVault>;

/// The vault's file inside the data directory.
pub const VAULT_FILE: &str = "mailconnect.redb";

/// Why the app could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The vault could not be opened.
    #[error("{0}")]
    Vault(#[from] crate::outbound::vault::VaultStoreError),
    /// The mail store adapter could not be built.
    #[error("mail store: {0}")]
    MailStore(String),
    /// The data directory is unusable.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// Builds the routes for `config`.
///
/// # Errors
/// [`StartError`] when an adapter can't be built.
pub fn build(config: &Config) -> Result<Route, StartError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    let vault = RedbVault::open(&config.data_dir.join(VAULT_FILE))?;
    match &config.self_host {
        // Re-sealed at every start, so a changed token or credential in config takes effect
        // and the previous token stops working.
        Some(self_host) => vault.put_grant(
            &NewGrant {
                id: &GrantId::new(SELF_HOST_GRANT),
                label: "self-host client (from configuration)",
                credential: &self_host.credential,
                capabilities: &CapabilitySet::read_only(),
            },
            &NewToken {
                token: &AccessToken::new(self_host.token.expose_secret()),
                kind: "access",
                expires_at: None,
            },
        )?,
        None => {
            vault.remove_grant(&GrantId::new(SELF_HOST_GRANT))?;
            tracing::warn!(
                "no client is configured yet: set MAILCONNECT_SELF_HOST_TOKEN and an upstream credential (see --help) to connect an MCP client"
            );
        }
    }
    let store = JmapMailStore::new(TransportConfig {
        session_url: config.jmap_session_url.clone(),
        timeout: config.upstream_timeout,
    })
    .map_err(|e| StartError::MailStore(e.to_string()))?;
    let service = Arc::new(MailService::new(
        store,
        vault.clone(),
        vault,
        ServiceLimits {
            max_attachment_bytes: config.max_attachment_bytes,
            ..ServiceLimits::default()
        },
    ));
    let handler = McpHandler::new(Arc::clone(&service), config.tool_timeout);
    let mcp_config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(config.allowed_hosts.clone())
        .with_sse_keep_alive(Some(Duration::from_secs(15)))
        .with_json_response(true)
        .with_max_request_body_bytes(1024 * 1024);
    Ok(http::routes(
        service,
        handler,
        mcp_config,
        config.session_idle,
        config.public_url.as_str(),
    ))
}

/// Serves until the process is stopped.
///
/// # Errors
/// [`StartError`] or the listener's I/O error.
pub async fn serve(config: &Config) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let routes = build(config)?;
    tracing::info!(listen = %config.listen, public_url = %config.public_url, mcp = %config.mcp_url(), "mailconnect serving");
    let acceptor = NoDelayAcceptor::bind(config.listen).await?;
    poem::Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(
            routes.with(Tracing),
            async {
                let _ = tokio::signal::ctrl_c().await;
            },
            Some(Duration::from_secs(5)),
        )
        .await?;
    Ok(())
}
