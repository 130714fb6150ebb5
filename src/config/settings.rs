//! The resolved configuration: typed sections, one per adapter, each value checked.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use url::Url;

use super::{Cli, FASTMAIL_ISSUER, FASTMAIL_SESSION_URL, file};
use crate::{
    domain::{
        auth::{client::TokenAuthMethod, redirect::RedirectUri, service::TokenLifetimes},
        grant::UpstreamCredential,
        secret::SecretString,
    },
    outbound::upstream_oauth::UpstreamResource,
};

/// A client the operator registered (`[[clients]]` in the TOML file), checked.
#[derive(Debug, Clone)]
pub struct ConfiguredClient {
    /// Its client id.
    pub id: String,
    /// The name the consent screen shows.
    pub name: String,
    /// Its redirect URIs.
    pub redirect_uris: Vec<RedirectUri>,
    /// Its secret, when it is a confidential client.
    pub secret: Option<SecretString>,
    /// How it authenticates at the token endpoint.
    pub auth_method: TokenAuthMethod,
}

impl ConfiguredClient {
    /// Checks an entry: its redirect URIs, and an authentication method that fits its secret.
    fn check(entry: file::ClientEntry, problems: &mut Vec<String>) -> Option<Self> {
        let mut bad = |m: String| problems.push(format!("client {:?}: {m}", entry.id));
        let mut redirect_uris = Vec::new();
        for uri in &entry.redirect_uris {
            match RedirectUri::parse(uri) {
                Ok(uri) => redirect_uris.push(uri),
                Err(e) => {
                    bad(e.to_string());
                    return None;
                }
            }
        }
        let auth_method = match (&entry.secret, entry.auth_method.as_deref()) {
            (None, None | Some("none")) => TokenAuthMethod::None,
            (Some(_), None | Some("client_secret_basic")) => TokenAuthMethod::ClientSecretBasic,
            (Some(_), Some("client_secret_post")) => TokenAuthMethod::ClientSecretPost,
            (_, Some(other)) => {
                bad(format!("auth_method {other:?} does not fit the secret"));
                return None;
            }
        };
        Some(Self {
            id: entry.id,
            name: entry.name,
            redirect_uris,
            secret: entry.secret,
            auth_method,
        })
    }
}

/// How we reach the upstream's authorization server.
#[derive(Debug, Clone)]
pub struct UpstreamOAuthSettings {
    /// Its issuer.
    pub issuer: String,
    /// Its authorization endpoint, if known without discovery.
    pub authorization_endpoint: Option<Url>,
    /// Its token endpoint, if known without discovery.
    pub token_endpoint: Option<Url>,
    /// Its registration endpoint.
    pub registration_endpoint: Option<Url>,
    /// Its revocation endpoint.
    pub revocation_endpoint: Option<Url>,
    /// Our client id there.
    pub client_id: Option<String>,
    /// Our secret there.
    pub client_secret: Option<SecretString>,
    /// Scopes to ask for.
    pub scopes: Vec<String>,
    /// The resource to ask for.
    pub resource: UpstreamResource,
}

/// The single-user self-host client: one token, one upstream credential.
#[derive(Debug, Clone)]
pub struct SelfHost {
    /// The token MCP clients present.
    pub token: SecretString,
    /// What we present to the mail server.
    pub credential: UpstreamCredential,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The resolved configuration: a section per adapter.
#[derive(Debug, Clone)]
pub struct Config {
    /// Our HTTP server: where it listens, who may call it, our tokens.
    pub server: ServerConfig,
    /// The mail server and its sign-in.
    pub upstream: MailServerConfig,
    /// Where state lives and how long the record of it is kept.
    pub storage: StorageConfig,
    /// New mail: looks, push, background delivery.
    pub notify: NotifyConfig,
    /// Sending: approval lifetime and default undo window.
    pub send: crate::domain::service::SendSettings,
    /// Bounds on one call.
    pub limits: LimitsConfig,
}

/// Our HTTP server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// Public base URL (no trailing slash).
    pub public_url: Url,
    /// Host values accepted on /mcp.
    pub allowed_hosts: Vec<String>,
    /// Browser origins allowed on the API.
    pub allowed_origins: Vec<String>,
    /// Request threads (1: a single-threaded runtime).
    pub worker_threads: usize,
    /// Log format.
    pub log_format: LogFormat,
    /// Idle lifetime of a legacy MCP session.
    pub session_idle: Duration,
    /// Our tokens' and codes' lifetimes.
    pub tokens: TokenLifetimes,
    /// Operator-configured clients.
    pub clients: Vec<ConfiguredClient>,
    /// Self-host mode, if configured.
    pub self_host: Option<SelfHost>,
    /// Tests only: client metadata documents over loopback http.
    pub allow_loopback_client_metadata: bool,
}

/// The mail server and its sign-in.
#[derive(Debug, Clone)]
pub struct MailServerConfig {
    /// JMAP session URL.
    pub jmap_session_url: Url,
    /// Per-request timeout.
    pub timeout: Duration,
    /// The upstream authorization server.
    pub oauth: UpstreamOAuthSettings,
}

/// Where state lives.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// Data directory (the embedded vault).
    pub data_dir: PathBuf,
    /// The store the ports use.
    pub backend: StorageBackend,
    /// Audit log retention: days.
    pub audit_retention_days: u64,
    /// Audit log retention: events per connection.
    pub audit_max_events: usize,
}

/// Which store holds the state.
#[derive(Debug, Clone)]
pub enum StorageBackend {
    /// The embedded redb file in the data directory: one instance.
    Redb,
    /// A PostgreSQL database every instance shares.
    Postgres {
        /// Its URL (may hold a password).
        url: SecretString,
        /// Most connections one instance opens.
        pool_size: usize,
    },
}

impl StorageBackend {
    /// Reads `--storage` (`redb` or a `postgres://` URL).
    fn parse(
        value: Option<SecretString>,
        pool_size: Option<u64>,
        problems: &mut Vec<String>,
    ) -> Self {
        let pool_size = pool_size.unwrap_or(16);
        if !(1..=1000).contains(&pool_size) {
            problems.push(format!(
                "storage_pool_size must be between 1 and 1000 (got {pool_size})"
            ));
        }
        let Some(value) = value else {
            return Self::Redb;
        };
        let text = value.expose_secret();
        if text == "redb" {
            return Self::Redb;
        }
        if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
            // Never echo the value: it may hold a password.
            problems.push(
                "storage must be `redb` or a PostgreSQL URL (postgres://user:password@host:port/database)"
                    .into(),
            );
            return Self::Redb;
        }
        if let Err(e) = text.parse::<tokio_postgres::Config>() {
            problems.push(format!("the storage URL does not parse: {e}"));
        }
        Self::Postgres {
            url: value,
            pool_size: usize::try_from(pool_size).unwrap_or(16),
        }
    }
}

/// New mail.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// Between looks at a listening client's mailbox.
    pub poll: Duration,
    /// Pings asked of the mail server's push channel.
    pub push_ping: Duration,
    /// Background notifications, when the operator offers them.
    pub background: Option<BackgroundConfig>,
}

/// Bounds on one call.
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// Tool call deadline.
    pub tool_timeout: Duration,
    /// Attachment size cap.
    pub max_attachment_bytes: u64,
}

/// Background notifications, as the operator set them up.
#[derive(Debug, Clone)]
pub struct BackgroundConfig {
    /// The notifier's key file (outside the data directory).
    pub key_file: PathBuf,
    /// The notifier's client id at the upstream, if registered by hand.
    pub client_id: Option<String>,
    /// The scopes the notifier asks for: ours without submission (it never sends).
    pub scopes: Vec<String>,
    /// Poke's API origin.
    pub poke_api_base: Url,
    /// Tests only: loopback and private destinations, http too.
    pub allow_private_destinations: bool,
    /// Tests only: an extra trusted certificate (PEM) for deliveries.
    pub extra_root_certificate: Option<Vec<u8>>,
}

/// Whether `inner` lies inside `dir`, after making both absolute (and resolving symlinks of
/// the parts that exist).
fn inside(inner: &Path, dir: &Path) -> bool {
    let absolute = |p: &Path| {
        let p = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir().unwrap_or_default().join(p)
        };
        // The file may not exist yet: resolve its directory.
        match (p.parent(), p.file_name()) {
            (Some(parent), Some(name)) if !p.exists() => parent
                .canonicalize()
                .map_or_else(|_| p.clone(), |d| d.join(name)),
            _ => p.canonicalize().unwrap_or(p),
        }
    };
    absolute(inner).starts_with(absolute(dir))
}

/// Everything wrong with a configuration, one line each.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigError(pub Vec<String>);

fn secret(given: Option<SecretString>) -> Option<SecretString> {
    given.filter(|s| !s.is_empty())
}

impl Config {
    /// Resolves flags, environment and file into a configuration.
    ///
    /// # Errors
    /// [`ConfigError`] listing every problem found.
    pub fn resolve(mut cli: Cli) -> Result<Self, ConfigError> {
        let mut problems = std::mem::take(&mut cli.file_problems);
        if cli.config.is_some() && !cli.layered {
            problems.push(
                "the config file is read by Cli::load: parse the command line with it".into(),
            );
        }
        let listen = cli
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8910)));
        let public_url = cli
            .public_url
            .or_else(|| Url::parse(&format!("http://{listen}")).ok())
            .unwrap_or_else(|| {
                Url::parse("http://127.0.0.1:8910").unwrap_or_else(|_| unreachable!())
            });
        if !matches!(public_url.scheme(), "http" | "https") || public_url.host_str().is_none() {
            problems.push(format!(
                "public_url {public_url} must be an http(s) URL with a host"
            ));
        }
        if public_url.scheme() == "http"
            && !is_loopback_host(public_url.host_str().unwrap_or_default())
        {
            problems.push(format!(
                "public_url {public_url} must use https unless it is a loopback address (tokens would travel in clear text)"
            ));
        }
        let jmap_session_url = cli
            .jmap_session_url
            .unwrap_or_else(|| Url::parse(FASTMAIL_SESSION_URL).unwrap_or_else(|_| unreachable!()));
        if !matches!(jmap_session_url.scheme(), "http" | "https") {
            problems.push(format!(
                "jmap_session_url {jmap_session_url} must be http(s)"
            ));
        }
        let seconds = |name: &str, value: Option<u64>, default: u64, problems: &mut Vec<String>| {
            let v = value.unwrap_or(default);
            if !(1..=600).contains(&v) {
                problems.push(format!("{name} must be between 1 and 600 (got {v})"));
            }
            Duration::from_secs(v.clamp(1, 600))
        };
        let upstream_timeout = seconds(
            "upstream_timeout_secs",
            cli.upstream_timeout_secs,
            20,
            &mut problems,
        );
        let tool_timeout = seconds(
            "tool_timeout_secs",
            cli.tool_timeout_secs,
            30,
            &mut problems,
        );
        let session_idle = Duration::from_secs(cli.session_idle_secs.unwrap_or(3600).max(1));
        let max_attachment_bytes = cli.max_attachment_bytes.unwrap_or(10 * 1024 * 1024);
        let mut allowed_hosts = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        if let Some(host) = public_url.host_str() {
            allowed_hosts.push(host.trim_matches(['[', ']']).to_owned());
        }
        allowed_hosts.extend(cli.allowed_hosts.unwrap_or_default());
        allowed_hosts.dedup();

        let token = secret(cli.self_host_token);
        let username = cli.upstream_username;
        let password = secret(cli.upstream_password);
        let bearer = secret(cli.upstream_bearer_token);
        let credential = match (username, password, bearer) {
            (Some(username), Some(password), None) => {
                Some(UpstreamCredential::Basic { username, password })
            }
            (None, None, Some(token)) => Some(UpstreamCredential::Bearer(token)),
            (None, None, None) => None,
            (_, _, Some(_)) => {
                problems.push("give either upstream_bearer_token or upstream_username + upstream_password, not both".into());
                None
            }
            _ => {
                problems.push("upstream_username and upstream_password go together".into());
                None
            }
        };
        let self_host = match (token, credential) {
            (Some(token), Some(credential)) => {
                if token.expose_secret().len() < 16 {
                    problems.push("self_host_token must be at least 16 characters".into());
                }
                Some(SelfHost { token, credential })
            }
            (None, None) => None,
            (Some(_), None) => {
                problems.push("self_host_token needs an upstream credential (upstream_bearer_token, or upstream_username + upstream_password)".into());
                None
            }
            (None, Some(_)) => {
                problems.push("an upstream credential needs self_host_token (the token MCP clients will send)".into());
                None
            }
        };
        let worker_threads = cli.worker_threads.unwrap_or(1);
        if !(1..=256).contains(&worker_threads) {
            problems.push(format!(
                "worker_threads must be between 1 and 256 (got {worker_threads})"
            ));
        }
        let log_format = match cli.log_format.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                problems.push(format!(
                    "log_format must be \"text\" or \"json\" (got {other:?})"
                ));
                LogFormat::Text
            }
        };
        let mut allowed_origins = cli.allowed_origins.unwrap_or_else(|| {
            [
                "https://claude.ai",
                "https://claude.com",
                "https://chatgpt.com",
                "http://localhost:*",
                "http://127.0.0.1:*",
                "http://[::1]:*",
            ]
            .map(str::to_owned)
            .to_vec()
        });
        allowed_origins.push(public_url.origin().ascii_serialization());
        let client_secret = match (
            secret(cli.upstream_client_secret),
            cli.upstream_client_secret_file,
        ) {
            (Some(s), None) => Some(s),
            (None, Some(path)) => match std::fs::read_to_string(&path) {
                Ok(text) => Some(SecretString::new(text.trim())).filter(|s| !s.is_empty()),
                Err(e) => {
                    problems.push(format!(
                        "upstream_client_secret_file {}: {e}",
                        path.display()
                    ));
                    None
                }
            },
            (None, None) => None,
            (Some(_), Some(_)) => {
                problems.push(
                    "give upstream_client_secret or upstream_client_secret_file, not both".into(),
                );
                None
            }
        };
        let upstream = upstream_settings(
            UpstreamInputs {
                issuer: cli.upstream_issuer,
                authorization_endpoint: cli.upstream_authorization_endpoint,
                token_endpoint: cli.upstream_token_endpoint,
                registration_endpoint: cli.upstream_registration_endpoint,
                revocation_endpoint: cli.upstream_revocation_endpoint,
                client_id: cli.upstream_client_id,
                client_secret,
                scopes: cli.upstream_scopes,
                resource: cli.upstream_resource,
            },
            &jmap_session_url,
            &mut problems,
        );
        let ttl =
            |name: &str, value: Option<u64>, default: u64, max: u64, problems: &mut Vec<String>| {
                let v = value.unwrap_or(default);
                if !(1..=max).contains(&v) {
                    problems.push(format!("{name} must be between 1 and {max} (got {v})"));
                }
                Duration::from_secs(v.clamp(1, max))
            };
        let access_token_ttl = ttl(
            "access_token_ttl_secs",
            cli.access_token_ttl_secs,
            3600,
            30 * 86400,
            &mut problems,
        );
        let refresh_token_ttl = ttl(
            "refresh_token_ttl_secs",
            cli.refresh_token_ttl_secs,
            30 * 86400,
            365 * 86400,
            &mut problems,
        );
        let code_ttl = ttl("code_ttl_secs", cli.code_ttl_secs, 300, 600, &mut problems);
        let audit_retention_days = cli.audit_retention_days.unwrap_or(90);
        if !(1..=3650).contains(&audit_retention_days) {
            problems.push(format!(
                "audit_retention_days must be between 1 and 3650 (got {audit_retention_days})"
            ));
        }
        let audit_max_events = cli.audit_max_events.unwrap_or(500);
        if !(1..=100_000).contains(&audit_max_events) {
            problems.push(format!(
                "audit_max_events must be between 1 and 100000 (got {audit_max_events})"
            ));
        }
        let approval_ttl = cli.send_approval_ttl_secs.unwrap_or(600);
        if !(1..=86_400).contains(&approval_ttl) {
            problems.push(format!(
                "send_approval_ttl_secs must be between 1 and 86400 (got {approval_ttl})"
            ));
        }
        let undo = cli.send_undo_window_secs.unwrap_or(0);
        if undo > 600 {
            problems.push(format!(
                "send_undo_window_secs must be at most 600 (got {undo})"
            ));
        }
        let notify_poll = cli.notify_poll_secs.unwrap_or(60);
        if !(1..=3600).contains(&notify_poll) {
            problems.push(format!(
                "notify_poll_secs must be between 1 and 3600 (got {notify_poll})"
            ));
        }
        let push_ping = cli.notify_push_ping_secs.unwrap_or(30);
        if !(1..=300).contains(&push_ping) {
            problems.push(format!(
                "notify_push_ping_secs must be between 1 and 300 (got {push_ping})"
            ));
        }
        let data_dir = cli
            .data_dir
            .unwrap_or_else(|| PathBuf::from("mailconnect-data"));
        let backend = StorageBackend::parse(cli.storage, cli.storage_pool_size, &mut problems);
        let background = if cli.notify_background {
            match cli.notifier_key_file {
                None => {
                    problems.push(
                        "notify_background needs notifier_key_file (outside the data directory)"
                            .into(),
                    );
                    None
                }
                Some(key_file) if inside(&key_file, &data_dir) => {
                    problems.push(format!(
                        "notifier_key_file {} must be outside the data directory {} (a copy of the vault must not open the notifier's grants)",
                        key_file.display(),
                        data_dir.display()
                    ));
                    None
                }
                Some(key_file) => {
                    let extra_root_certificate = match &cli.test_delivery_ca_file {
                        Some(path) => std::fs::read(path)
                            .map_err(|e| problems.push(format!("{}: {e}", path.display())))
                            .ok(),
                        None => None,
                    };
                    Some(BackgroundConfig {
                        key_file,
                        client_id: cli.notifier_client_id,
                        // The notifier never sends: it doesn't ask for submission.
                        scopes: upstream
                            .scopes
                            .iter()
                            .filter(|s| !s.contains("submission"))
                            .cloned()
                            .collect(),
                        poke_api_base: cli.poke_api_base.unwrap_or_else(|| {
                            Url::parse("https://poke.com").unwrap_or_else(|_| unreachable!())
                        }),
                        allow_private_destinations: cli.test_allow_private_destinations,
                        extra_root_certificate,
                    })
                }
            }
        } else {
            None
        };
        let clients = std::mem::take(&mut cli.clients)
            .into_iter()
            .filter_map(|entry| ConfiguredClient::check(entry, &mut problems))
            .collect();
        if !problems.is_empty() {
            return Err(ConfigError(problems));
        }
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4);
        Ok(Self {
            server: ServerConfig {
                listen,
                public_url,
                allowed_hosts,
                allowed_origins,
                worker_threads,
                log_format,
                session_idle,
                tokens: TokenLifetimes {
                    access_secs: secs(access_token_ttl),
                    refresh_secs: secs(refresh_token_ttl),
                    code_secs: secs(code_ttl),
                },
                clients,
                self_host,
                allow_loopback_client_metadata: cli.test_allow_loopback_client_metadata,
            },
            upstream: MailServerConfig {
                jmap_session_url,
                timeout: upstream_timeout,
                oauth: upstream,
            },
            storage: StorageConfig {
                data_dir,
                backend,
                audit_retention_days,
                audit_max_events,
            },
            notify: NotifyConfig {
                poll: Duration::from_secs(notify_poll),
                push_ping: Duration::from_secs(push_ping),
                background,
            },
            send: crate::domain::service::SendSettings {
                approval_ttl_secs: i64::try_from(approval_ttl).unwrap_or(600),
                default_undo_secs: undo,
            },
            limits: LimitsConfig {
                tool_timeout,
                max_attachment_bytes,
            },
        })
    }

    /// The MCP endpoint's public URL.
    #[must_use]
    pub fn mcp_url(&self) -> String {
        format!(
            "{}/mcp",
            self.server.public_url.as_str().trim_end_matches('/')
        )
    }
}

/// The upstream settings as given, before presets.
struct UpstreamInputs {
    issuer: Option<String>,
    authorization_endpoint: Option<Url>,
    token_endpoint: Option<Url>,
    registration_endpoint: Option<Url>,
    revocation_endpoint: Option<Url>,
    client_id: Option<String>,
    client_secret: Option<SecretString>,
    scopes: Option<Vec<String>>,
    resource: Option<String>,
}

/// Applies the Fastmail preset (endpoints, scopes, resource) when the issuer is Fastmail's.
fn upstream_settings(
    given: UpstreamInputs,
    session_url: &Url,
    problems: &mut Vec<String>,
) -> UpstreamOAuthSettings {
    let issuer = given.issuer.unwrap_or_else(|| FASTMAIL_ISSUER.to_owned());
    let issuer = issuer.trim_end_matches('/').to_owned();
    match Url::parse(&issuer) {
        Ok(u) if u.scheme() == "https" || is_loopback_host(u.host_str().unwrap_or_default()) => {}
        _ => problems.push(format!(
            "upstream_issuer {issuer:?} must be an https URL (or http on loopback)"
        )),
    }
    let fastmail = issuer == FASTMAIL_ISSUER;
    let preset = |path: &str| {
        fastmail
            .then(|| Url::parse(&format!("{FASTMAIL_ISSUER}{path}")).ok())
            .flatten()
    };
    UpstreamOAuthSettings {
        authorization_endpoint: given
            .authorization_endpoint
            .or_else(|| preset("/oauth/authorize")),
        token_endpoint: given.token_endpoint.or_else(|| preset("/oauth/refresh")),
        registration_endpoint: given
            .registration_endpoint
            .or_else(|| preset("/oauth/register")),
        revocation_endpoint: given
            .revocation_endpoint
            .or_else(|| preset("/oauth/revoke")),
        client_id: given.client_id.filter(|c| !c.is_empty()),
        client_secret: given.client_secret,
        scopes: given.scopes.unwrap_or_else(|| {
            vec![
                "urn:ietf:params:oauth:scope:mail".to_owned(),
                "offline_access".to_owned(),
            ]
        }),
        resource: match given.resource {
            Some(resource) => UpstreamResource::Given(resource),
            None if fastmail => UpstreamResource::Given(session_url.to_string()),
            None => UpstreamResource::Published {
                session_url: session_url.clone(),
            },
        },
        issuer,
    }
}

fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
