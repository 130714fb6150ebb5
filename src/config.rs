//! Configuration: defaults, then a TOML file, then `MAILCONNECT_*` environment variables, then
//! command-line flags (each later layer wins). Every problem is reported at once.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use clap::{Parser, Subcommand};
use serde::Deserialize;
use url::Url;

use crate::{
    domain::{grant::UpstreamCredential, secret::SecretString},
    outbound::upstream_oauth::UpstreamResource,
};

/// The Fastmail preset: its JMAP session resource.
pub const FASTMAIL_SESSION_URL: &str = "https://api.fastmail.com/jmap/session";

/// mailconnect — connects a Fastmail (or any JMAP) mailbox to AI assistants over MCP.
///
/// Every option can also be set in the TOML file given by --config (same names, with `_`
/// instead of `-`) or as an environment variable MAILCONNECT_<NAME> (upper case, `_`).
/// Precedence: flag > environment > file > default.
#[derive(Debug, Parser)]
#[command(name = "mailconnect", version, about, long_about)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// TOML configuration file.
    #[arg(long, env = "MAILCONNECT_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8910].
    #[arg(long, env = "MAILCONNECT_LISTEN", global = true)]
    pub listen: Option<SocketAddr>,
    /// The URL clients use to reach this server (issuer and resource URLs are built from it,
    /// never from the Host header) [default: http://<listen>].
    #[arg(long, env = "MAILCONNECT_PUBLIC_URL", global = true)]
    pub public_url: Option<Url>,
    /// Directory for the embedded database [default: ./mailconnect-data].
    #[arg(long, env = "MAILCONNECT_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// JMAP session URL of the mail server [default: Fastmail's, https://api.fastmail.com/jmap/session].
    #[arg(long, env = "MAILCONNECT_JMAP_SESSION_URL", global = true)]
    pub jmap_session_url: Option<Url>,
    /// Seconds to wait for the mail server on one request [default: 20].
    #[arg(long, env = "MAILCONNECT_UPSTREAM_TIMEOUT_SECS", global = true)]
    pub upstream_timeout_secs: Option<u64>,
    /// Seconds after which a tool call is abandoned with an error [default: 30].
    #[arg(long, env = "MAILCONNECT_TOOL_TIMEOUT_SECS", global = true)]
    pub tool_timeout_secs: Option<u64>,
    /// Seconds an idle 2025-11-25 MCP session (Mcp-Session-Id) is kept [default: 3600].
    #[arg(long, env = "MAILCONNECT_SESSION_IDLE_SECS", global = true)]
    pub session_idle_secs: Option<u64>,
    /// Largest attachment get_attachment returns, in bytes [default: 10485760].
    #[arg(long, env = "MAILCONNECT_MAX_ATTACHMENT_BYTES", global = true)]
    pub max_attachment_bytes: Option<u64>,
    /// Extra Host values accepted on /mcp (DNS-rebinding protection), comma-separated
    /// [default: the public URL's host and loopback names].
    #[arg(
        long,
        env = "MAILCONNECT_ALLOWED_HOSTS",
        value_delimiter = ',',
        global = true
    )]
    pub allowed_hosts: Option<Vec<String>>,
    /// Single-user self-host mode: the bearer token MCP clients send (use 32+ random characters).
    #[arg(
        long,
        env = "MAILCONNECT_SELF_HOST_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub self_host_token: Option<String>,
    /// Self-host mode: login for HTTP Basic to the mail server (with --upstream-password).
    #[arg(long, env = "MAILCONNECT_UPSTREAM_USERNAME", global = true)]
    pub upstream_username: Option<String>,
    /// Self-host mode: password (an app password on Fastmail) for HTTP Basic.
    #[arg(
        long,
        env = "MAILCONNECT_UPSTREAM_PASSWORD",
        hide_env_values = true,
        global = true
    )]
    pub upstream_password: Option<String>,
    /// Self-host mode: a bearer token for the mail server (a Fastmail API token) instead of Basic.
    #[arg(
        long,
        env = "MAILCONNECT_UPSTREAM_BEARER_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub upstream_bearer_token: Option<String>,
    /// Threads running requests [default: 1]. Tool calls mostly wait on the mail server: one
    /// thread serves a person's assistants as fast as two did here (BENCHMARKS.md). Raise it for
    /// a busy multi-user deployment on a larger machine.
    #[arg(long, env = "MAILCONNECT_WORKER_THREADS", global = true)]
    pub worker_threads: Option<usize>,
    /// Log format: "text" or "json" [default: text].
    #[arg(long, env = "MAILCONNECT_LOG_FORMAT", global = true)]
    pub log_format: Option<String>,
    /// Browser origins allowed to call /mcp and the OAuth endpoints, comma-separated; a port
    /// of `*` matches any port [default: the public URL's origin, https://claude.ai,
    /// https://claude.com, https://chatgpt.com, and http://localhost:*, http://127.0.0.1:*,
    /// http://[::1]:*]. Requests without an Origin header (server-side clients) always pass.
    #[arg(
        long,
        env = "MAILCONNECT_ALLOWED_ORIGINS",
        value_delimiter = ',',
        global = true
    )]
    pub allowed_origins: Option<Vec<String>>,
    /// The upstream OAuth issuer (the mail provider's sign-in) [default: Fastmail's,
    /// https://api.fastmail.com, with its endpoints preset]. Any other issuer is discovered
    /// from its RFC 8414 or OpenID Connect metadata on first use.
    #[arg(long, env = "MAILCONNECT_UPSTREAM_ISSUER", global = true)]
    pub upstream_issuer: Option<String>,
    /// Upstream authorization endpoint (with --upstream-token-endpoint: skips discovery).
    #[arg(
        long,
        env = "MAILCONNECT_UPSTREAM_AUTHORIZATION_ENDPOINT",
        global = true
    )]
    pub upstream_authorization_endpoint: Option<Url>,
    /// Upstream token endpoint.
    #[arg(long, env = "MAILCONNECT_UPSTREAM_TOKEN_ENDPOINT", global = true)]
    pub upstream_token_endpoint: Option<Url>,
    /// Upstream registration endpoint, to register this server on first use when no client id
    /// is configured (self-hosting on loopback needs no paperwork).
    #[arg(
        long,
        env = "MAILCONNECT_UPSTREAM_REGISTRATION_ENDPOINT",
        global = true
    )]
    pub upstream_registration_endpoint: Option<Url>,
    /// Upstream revocation endpoint (RFC 7009) [default: Fastmail's, or discovered].
    #[arg(long, env = "MAILCONNECT_UPSTREAM_REVOCATION_ENDPOINT", global = true)]
    pub upstream_revocation_endpoint: Option<Url>,
    /// Our OAuth client id at the upstream [default: registered on first use].
    #[arg(long, env = "MAILCONNECT_UPSTREAM_CLIENT_ID", global = true)]
    pub upstream_client_id: Option<String>,
    /// Our OAuth client secret at the upstream, if it issued one.
    #[arg(
        long,
        env = "MAILCONNECT_UPSTREAM_CLIENT_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub upstream_client_secret: Option<String>,
    /// A file holding the upstream client secret (instead of --upstream-client-secret).
    #[arg(long, env = "MAILCONNECT_UPSTREAM_CLIENT_SECRET_FILE", global = true)]
    pub upstream_client_secret_file: Option<PathBuf>,
    /// Scopes asked of the upstream, comma-separated [default for Fastmail:
    /// urn:ietf:params:oauth:scope:mail,offline_access].
    #[arg(
        long,
        env = "MAILCONNECT_UPSTREAM_SCOPES",
        value_delimiter = ',',
        global = true
    )]
    pub upstream_scopes: Option<Vec<String>>,
    /// The `resource` asked of the upstream (RFC 8707) [default: Fastmail's JMAP session URL;
    /// for another provider, the resource the JMAP server names in its protected-resource
    /// metadata (RFC 9728), or none when it publishes none].
    #[arg(long, env = "MAILCONNECT_UPSTREAM_RESOURCE", global = true)]
    pub upstream_resource: Option<String>,
    /// Lifetime of our access tokens, in seconds [default: 3600].
    #[arg(long, env = "MAILCONNECT_ACCESS_TOKEN_TTL_SECS", global = true)]
    pub access_token_ttl_secs: Option<u64>,
    /// Lifetime of our refresh tokens, in seconds; each refresh starts a new one [default: 2592000].
    #[arg(long, env = "MAILCONNECT_REFRESH_TOKEN_TTL_SECS", global = true)]
    pub refresh_token_ttl_secs: Option<u64>,
    /// Lifetime of authorization codes, in seconds (1–600) [default: 300].
    #[arg(long, env = "MAILCONNECT_CODE_TTL_SECS", global = true)]
    pub code_ttl_secs: Option<u64>,
    /// Days the audit log (and ended connections) are kept [default: 90].
    #[arg(long, env = "MAILCONNECT_AUDIT_RETENTION_DAYS", global = true)]
    pub audit_retention_days: Option<u64>,
    /// Audit events kept per connection [default: 500].
    #[arg(long, env = "MAILCONNECT_AUDIT_MAX_EVENTS", global = true)]
    pub audit_max_events: Option<usize>,
    /// Seconds between looks at the mailbox of a client listening for new mail [default: 60].
    #[arg(long, env = "MAILCONNECT_NOTIFY_POLL_SECS", global = true)]
    pub notify_poll_secs: Option<u64>,
    /// Seconds between the pings asked of the mail server's push channel; 2.5 pings of
    /// silence reopen it [default: 30].
    #[arg(long, env = "MAILCONNECT_NOTIFY_PUSH_PING_SECS", global = true)]
    pub notify_push_ping_secs: Option<u64>,
    /// How long a person has to approve sending a draft, in seconds [default: 600].
    #[arg(long, env = "MAILCONNECT_SEND_APPROVAL_TTL_SECS", global = true)]
    pub send_approval_ttl_secs: Option<u64>,
    /// Seconds a sent message is held so it can still be cancelled, when the assistant asks
    /// for no undo window [default: 0, sent at once].
    #[arg(long, env = "MAILCONNECT_SEND_UNDO_WINDOW_SECS", global = true)]
    pub send_undo_window_secs: Option<u32>,
    /// TESTS ONLY: fetch client metadata documents from http://127.0.0.1 too (real ones are
    /// https on public addresses). Never set this on a server others can reach.
    #[arg(long, global = true, hide = true)]
    pub test_allow_loopback_client_metadata: bool,
    /// Offer background notifications (delivery to a webhook or Poke while no client is
    /// connected); each person still turns them on per connection, with a second consent at
    /// the mail provider [default: off]. Needs --notifier-key-file.
    #[arg(long, env = "MAILCONNECT_NOTIFY_BACKGROUND", global = true)]
    pub notify_background: bool,
    /// The notifier's key file (an age identity, created owner-only when missing). It opens
    /// the notifier's grants and nothing else, and must live outside the data directory, so a
    /// copy of the vault opens none of them.
    #[arg(long, env = "MAILCONNECT_NOTIFIER_KEY_FILE", global = true)]
    pub notifier_key_file: Option<PathBuf>,
    /// The notifier's OAuth client id at the upstream (a client of its own, e.g. "mailconnect
    /// notifier") [default: registered on first use].
    #[arg(long, env = "MAILCONNECT_NOTIFIER_CLIENT_ID", global = true)]
    pub notifier_client_id: Option<String>,
    /// Poke's API origin [default: https://poke.com].
    #[arg(long, env = "MAILCONNECT_POKE_API_BASE", global = true)]
    pub poke_api_base: Option<Url>,
    /// TESTS ONLY: deliver background notifications to loopback and private addresses, over
    /// http too. Never set this on a server others can reach.
    #[arg(long, global = true, hide = true)]
    pub test_allow_private_destinations: bool,
    /// TESTS ONLY: also trust this PEM certificate for background deliveries (a loopback
    /// HTTPS sink's).
    #[arg(long, global = true, hide = true)]
    pub test_delivery_ca_file: Option<PathBuf>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Print the OpenAPI document of the HTTP API (committed as openapi/mailconnect.json).
    Openapi,
}

/// The TOML file: the same settings as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    public_url: Option<Url>,
    data_dir: Option<PathBuf>,
    jmap_session_url: Option<Url>,
    upstream_timeout_secs: Option<u64>,
    tool_timeout_secs: Option<u64>,
    session_idle_secs: Option<u64>,
    max_attachment_bytes: Option<u64>,
    allowed_hosts: Option<Vec<String>>,
    worker_threads: Option<usize>,
    self_host_token: Option<SecretString>,
    upstream_username: Option<String>,
    upstream_password: Option<SecretString>,
    upstream_bearer_token: Option<SecretString>,
    log_format: Option<String>,
    allowed_origins: Option<Vec<String>>,
    upstream_issuer: Option<String>,
    upstream_authorization_endpoint: Option<Url>,
    upstream_token_endpoint: Option<Url>,
    upstream_registration_endpoint: Option<Url>,
    upstream_revocation_endpoint: Option<Url>,
    upstream_client_id: Option<String>,
    upstream_client_secret: Option<SecretString>,
    upstream_client_secret_file: Option<PathBuf>,
    upstream_scopes: Option<Vec<String>>,
    upstream_resource: Option<String>,
    access_token_ttl_secs: Option<u64>,
    refresh_token_ttl_secs: Option<u64>,
    code_ttl_secs: Option<u64>,
    audit_retention_days: Option<u64>,
    audit_max_events: Option<usize>,
    send_approval_ttl_secs: Option<u64>,
    send_undo_window_secs: Option<u32>,
    notify_poll_secs: Option<u64>,
    notify_push_ping_secs: Option<u64>,
    notify_background: Option<bool>,
    notifier_key_file: Option<PathBuf>,
    notifier_client_id: Option<String>,
    poke_api_base: Option<Url>,
    /// Clients registered by the operator (exact redirect URIs, optional secret).
    #[serde(default)]
    clients: Vec<ConfiguredClient>,
}

/// A client configured by the operator (`[[clients]]` in the TOML file).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfiguredClient {
    /// Its client id.
    pub id: String,
    /// The name the consent screen shows.
    pub name: String,
    /// Its redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Its secret (then it authenticates with HTTP Basic or in the body, as `auth_method` says).
    pub secret: Option<SecretString>,
    /// `client_secret_basic` (default with a secret) or `client_secret_post`.
    pub auth_method: Option<String>,
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

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address.
    pub listen: SocketAddr,
    /// Public base URL (no trailing slash).
    pub public_url: Url,
    /// Data directory.
    pub data_dir: PathBuf,
    /// JMAP session URL.
    pub jmap_session_url: Url,
    /// Upstream request timeout.
    pub upstream_timeout: Duration,
    /// Tool call deadline.
    pub tool_timeout: Duration,
    /// Idle lifetime of a legacy MCP session.
    pub session_idle: Duration,
    /// Attachment size cap.
    pub max_attachment_bytes: u64,
    /// Host values accepted on /mcp.
    pub allowed_hosts: Vec<String>,
    /// Self-host mode, if configured.
    pub self_host: Option<SelfHost>,
    /// Request threads (1: a single-threaded runtime).
    pub worker_threads: usize,
    /// Log format.
    pub log_format: LogFormat,
    /// Browser origins allowed on the API.
    pub allowed_origins: Vec<String>,
    /// The upstream authorization server.
    pub upstream: UpstreamOAuthSettings,
    /// Our access token lifetime.
    pub access_token_ttl: Duration,
    /// Our refresh token lifetime.
    pub refresh_token_ttl: Duration,
    /// Authorization code lifetime.
    pub code_ttl: Duration,
    /// Audit log retention: days.
    pub audit_retention_days: u64,
    /// Audit log retention: events per connection.
    pub audit_max_events: usize,
    /// Sending: approval lifetime and default undo window.
    pub sending: crate::domain::service::SendSettings,
    /// Between looks at a listening client's mailbox.
    pub notify_poll: Duration,
    /// Pings asked of the mail server's push channel.
    pub notify_push_ping: Duration,
    /// Operator-configured clients.
    pub clients: Vec<ConfiguredClient>,
    /// Tests only: client metadata documents over loopback http.
    pub allow_loopback_client_metadata: bool,
    /// Background notifications, when the operator offers them.
    pub background: Option<BackgroundConfig>,
}

/// Background notifications, as the operator set them up.
#[derive(Debug, Clone)]
pub struct BackgroundConfig {
    /// The notifier's key file (outside the data directory).
    pub key_file: PathBuf,
    /// The notifier's client id at the upstream, if registered by hand.
    pub client_id: Option<String>,
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

/// Fastmail's authorization server.
pub const FASTMAIL_ISSUER: &str = "https://api.fastmail.com";

/// Everything wrong with a configuration, one line each.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigError(pub Vec<String>);

fn secret(flag: Option<String>, file: Option<SecretString>) -> Option<SecretString> {
    flag.map(SecretString::new)
        .or(file)
        .filter(|s| !s.is_empty())
}

impl Config {
    /// Resolves flags, environment and file into a configuration.
    ///
    /// # Errors
    /// [`ConfigError`] listing every problem found.
    pub fn resolve(cli: Cli) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let file = match &cli.config {
            Some(path) => load_file(path).unwrap_or_else(|e| {
                problems.push(e);
                FileConfig::default()
            }),
            None => FileConfig::default(),
        };
        let listen = cli
            .listen
            .or(file.listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8910)));
        let public_url = cli
            .public_url
            .or(file.public_url)
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
            .or(file.jmap_session_url)
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
            cli.upstream_timeout_secs.or(file.upstream_timeout_secs),
            20,
            &mut problems,
        );
        let tool_timeout = seconds(
            "tool_timeout_secs",
            cli.tool_timeout_secs.or(file.tool_timeout_secs),
            30,
            &mut problems,
        );
        let session_idle = Duration::from_secs(
            cli.session_idle_secs
                .or(file.session_idle_secs)
                .unwrap_or(3600)
                .max(1),
        );
        let max_attachment_bytes = cli
            .max_attachment_bytes
            .or(file.max_attachment_bytes)
            .unwrap_or(10 * 1024 * 1024);
        let mut allowed_hosts = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        if let Some(host) = public_url.host_str() {
            allowed_hosts.push(host.trim_matches(['[', ']']).to_owned());
        }
        allowed_hosts.extend(cli.allowed_hosts.or(file.allowed_hosts).unwrap_or_default());
        allowed_hosts.dedup();

        let token = secret(cli.self_host_token, file.self_host_token);
        let username = cli.upstream_username.or(file.upstream_username);
        let password = secret(cli.upstream_password, file.upstream_password);
        let bearer = secret(cli.upstream_bearer_token, file.upstream_bearer_token);
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
        let worker_threads = cli.worker_threads.or(file.worker_threads).unwrap_or(1);
        if !(1..=256).contains(&worker_threads) {
            problems.push(format!(
                "worker_threads must be between 1 and 256 (got {worker_threads})"
            ));
        }
        let log_format = match cli.log_format.or(file.log_format).as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                problems.push(format!(
                    "log_format must be \"text\" or \"json\" (got {other:?})"
                ));
                LogFormat::Text
            }
        };
        let mut allowed_origins =
            cli.allowed_origins
                .or(file.allowed_origins)
                .unwrap_or_else(|| {
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
            secret(cli.upstream_client_secret, file.upstream_client_secret),
            cli.upstream_client_secret_file
                .or(file.upstream_client_secret_file),
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
                issuer: cli.upstream_issuer.or(file.upstream_issuer),
                authorization_endpoint: cli
                    .upstream_authorization_endpoint
                    .or(file.upstream_authorization_endpoint),
                token_endpoint: cli.upstream_token_endpoint.or(file.upstream_token_endpoint),
                registration_endpoint: cli
                    .upstream_registration_endpoint
                    .or(file.upstream_registration_endpoint),
                revocation_endpoint: cli
                    .upstream_revocation_endpoint
                    .or(file.upstream_revocation_endpoint),
                client_id: cli.upstream_client_id.or(file.upstream_client_id),
                client_secret,
                scopes: cli.upstream_scopes.or(file.upstream_scopes),
                resource: cli.upstream_resource.or(file.upstream_resource),
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
            cli.access_token_ttl_secs.or(file.access_token_ttl_secs),
            3600,
            30 * 86400,
            &mut problems,
        );
        let refresh_token_ttl = ttl(
            "refresh_token_ttl_secs",
            cli.refresh_token_ttl_secs.or(file.refresh_token_ttl_secs),
            30 * 86400,
            365 * 86400,
            &mut problems,
        );
        let code_ttl = ttl(
            "code_ttl_secs",
            cli.code_ttl_secs.or(file.code_ttl_secs),
            300,
            600,
            &mut problems,
        );
        let audit_retention_days = cli
            .audit_retention_days
            .or(file.audit_retention_days)
            .unwrap_or(90);
        if !(1..=3650).contains(&audit_retention_days) {
            problems.push(format!(
                "audit_retention_days must be between 1 and 3650 (got {audit_retention_days})"
            ));
        }
        let audit_max_events = cli
            .audit_max_events
            .or(file.audit_max_events)
            .unwrap_or(500);
        if !(1..=100_000).contains(&audit_max_events) {
            problems.push(format!(
                "audit_max_events must be between 1 and 100000 (got {audit_max_events})"
            ));
        }
        let approval_ttl = cli
            .send_approval_ttl_secs
            .or(file.send_approval_ttl_secs)
            .unwrap_or(600);
        if !(1..=86_400).contains(&approval_ttl) {
            problems.push(format!(
                "send_approval_ttl_secs must be between 1 and 86400 (got {approval_ttl})"
            ));
        }
        let undo = cli
            .send_undo_window_secs
            .or(file.send_undo_window_secs)
            .unwrap_or(0);
        if undo > 600 {
            problems.push(format!(
                "send_undo_window_secs must be at most 600 (got {undo})"
            ));
        }
        let notify_poll = cli.notify_poll_secs.or(file.notify_poll_secs).unwrap_or(60);
        if !(1..=3600).contains(&notify_poll) {
            problems.push(format!(
                "notify_poll_secs must be between 1 and 3600 (got {notify_poll})"
            ));
        }
        let push_ping = cli
            .notify_push_ping_secs
            .or(file.notify_push_ping_secs)
            .unwrap_or(30);
        if !(1..=300).contains(&push_ping) {
            problems.push(format!(
                "notify_push_ping_secs must be between 1 and 300 (got {push_ping})"
            ));
        }
        let data_dir = cli
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("mailconnect-data"));
        let background = if cli.notify_background || file.notify_background == Some(true) {
            match cli.notifier_key_file.or(file.notifier_key_file) {
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
                        client_id: cli.notifier_client_id.or(file.notifier_client_id),
                        poke_api_base: cli.poke_api_base.or(file.poke_api_base).unwrap_or_else(
                            || Url::parse("https://poke.com").unwrap_or_else(|_| unreachable!()),
                        ),
                        allow_private_destinations: cli.test_allow_private_destinations,
                        extra_root_certificate,
                    })
                }
            }
        } else {
            None
        };
        if !problems.is_empty() {
            return Err(ConfigError(problems));
        }
        Ok(Self {
            listen,
            public_url,
            data_dir,
            jmap_session_url,
            upstream_timeout,
            tool_timeout,
            session_idle,
            max_attachment_bytes,
            allowed_hosts,
            self_host,
            worker_threads,
            log_format,
            allowed_origins,
            upstream,
            access_token_ttl,
            refresh_token_ttl,
            code_ttl,
            audit_retention_days,
            audit_max_events,
            notify_poll: Duration::from_secs(notify_poll),
            notify_push_ping: Duration::from_secs(push_ping),
            sending: crate::domain::service::SendSettings {
                approval_ttl_secs: i64::try_from(approval_ttl).unwrap_or(600),
                default_undo_secs: undo,
            },
            clients: file.clients,
            allow_loopback_client_metadata: cli.test_allow_loopback_client_metadata,
            background,
        })
    }

    /// The MCP endpoint's public URL.
    #[must_use]
    pub fn mcp_url(&self) -> String {
        format!("{}/mcp", self.public_url.as_str().trim_end_matches('/'))
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

fn load_file(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("config file {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("config file {}: {}", path.display(), e.message()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        Cli::parse_from(std::iter::once("mailconnect").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_need_nothing() {
        let c = Config::resolve(cli(&[])).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8910");
        assert_eq!(c.mcp_url(), "http://127.0.0.1:8910/mcp");
        assert_eq!(c.jmap_session_url.as_str(), FASTMAIL_SESSION_URL);
        assert!(c.self_host.is_none());
    }

    #[test]
    fn all_problems_are_reported_at_once() {
        let err = Config::resolve(cli(&[
            "--public-url",
            "http://mail.example.com",
            "--self-host-token",
            "short",
            "--upstream-username",
            "alice",
            "--tool-timeout-secs",
            "0",
        ]))
        .unwrap_err();
        assert_eq!(err.0.len(), 4, "{err}");
        assert!(err.to_string().contains("https"), "{err}");
    }

    #[test]
    fn file_values_apply_under_flags() {
        let dir = std::env::temp_dir().join(format!("mc-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\ntool_timeout_secs = 5\n",
        )
        .unwrap();
        let c = Config::resolve(cli(&[
            "--config",
            path.to_str().unwrap(),
            "--tool-timeout-secs",
            "7",
        ]))
        .unwrap();
        assert_eq!((c.listen.port(), c.tool_timeout.as_secs()), (9000, 7));
        std::fs::write(&path, "listne = 1\n").unwrap();
        assert!(Config::resolve(cli(&["--config", path.to_str().unwrap()])).is_err());
    }

    #[test]
    fn background_needs_a_key_file_outside_the_data_directory() {
        let err = Config::resolve(cli(&["--notify-background"])).unwrap_err();
        assert!(err.to_string().contains("notifier_key_file"), "{err}");
        let dir = std::env::temp_dir().join(format!("mc-bg-{}", std::process::id()));
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        for inner in [
            data.join("notifier.key"),
            dir.join("data/../data/sub/notifier.key"),
        ] {
            let err = Config::resolve(cli(&[
                "--notify-background",
                "--data-dir",
                data.to_str().unwrap(),
                "--notifier-key-file",
                inner.to_str().unwrap(),
            ]))
            .unwrap_err();
            assert!(
                err.to_string().contains("outside the data directory"),
                "{err}"
            );
        }
        let c = Config::resolve(cli(&[
            "--notify-background",
            "--data-dir",
            data.to_str().unwrap(),
            "--notifier-key-file",
            dir.join("notifier.key").to_str().unwrap(),
        ]))
        .unwrap();
        let bg = c.background.unwrap();
        assert_eq!(bg.poke_api_base.as_str(), "https://poke.com/");
        assert!(!bg.allow_private_destinations);
        assert!(Config::resolve(cli(&[])).unwrap().background.is_none());
    }

    #[test]
    fn debug_never_prints_secrets() {
        let c = Config::resolve(cli(&[
            "--self-host-token",
            "0123456789abcdef-token",
            "--upstream-bearer-token",
            "upstream-secret",
        ]))
        .unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("0123456789abcdef-token") && !shown.contains("upstream-secret"));
    }
}
