//! Configuration: defaults, then a TOML file, then `MAILCONNECT_*` environment variables, then
//! command-line flags (each later layer wins). Every setting is defined once, as a flag of
//! [`Cli`] (its environment variable and file key follow from it); [`Config::resolve`] turns
//! them into typed sections, one per adapter, reporting every problem at once.

mod file;
mod settings;
#[cfg(test)]
mod tests;

use std::{ffi::OsString, net::SocketAddr, path::PathBuf};

use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};
use url::Url;

use crate::domain::secret::SecretString;
pub use settings::{
    BackgroundConfig, Config, ConfigError, ConfiguredClient, LimitsConfig, LogFormat,
    MailServerConfig, NotifyConfig, SelfHost, ServerConfig, StorageBackend, StorageConfig,
    UpstreamOAuthSettings,
};

/// The Fastmail preset: its JMAP session resource.
pub const FASTMAIL_SESSION_URL: &str = "https://api.fastmail.com/jmap/session";
/// Fastmail's authorization server.
pub const FASTMAIL_ISSUER: &str = "https://api.fastmail.com";

/// mailconnect — connects a Fastmail (or any JMAP) mailbox to AI assistants over MCP.
///
/// Every option can also be set in the TOML file given by --config (same names, with `_`
/// instead of `-`) or as an environment variable MAILCONNECT_<NAME> (upper case, `_`).
/// Precedence: flag > environment > file > default.
// Secrets are `SecretString`s from the moment they are parsed, so `Debug` never shows them.
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
    /// Where state lives: `redb` (the embedded file in the data directory) or a PostgreSQL URL,
    /// `postgres://user:password@host:port/database`, shared by every instance [default: redb].
    #[arg(
        long,
        env = "MAILCONNECT_STORAGE",
        global = true,
        hide_env_values = true
    )]
    pub storage: Option<SecretString>,
    /// Most PostgreSQL connections one instance opens [default: 16].
    #[arg(long, env = "MAILCONNECT_STORAGE_POOL_SIZE", global = true)]
    pub storage_pool_size: Option<u64>,
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
    pub self_host_token: Option<SecretString>,
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
    pub upstream_password: Option<SecretString>,
    /// Self-host mode: a bearer token for the mail server (a Fastmail API token) instead of Basic.
    #[arg(
        long,
        env = "MAILCONNECT_UPSTREAM_BEARER_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub upstream_bearer_token: Option<SecretString>,
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
    pub upstream_client_secret: Option<SecretString>,
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
    /// The file's `[[clients]]` (the one setting without a flag).
    #[arg(skip)]
    clients: Vec<file::ClientEntry>,
    /// What was wrong with the file, told with every other problem by [`Config::resolve`].
    #[arg(skip)]
    file_problems: Vec<String>,
    /// Whether `--config` was read (by [`Cli::load`]).
    #[arg(skip)]
    layered: bool,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Print the OpenAPI document of the HTTP API (committed as openapi/mailconnect.json).
    Openapi,
    /// Look after the storage: migrate its schema, copy it to PostgreSQL.
    #[command(subcommand)]
    Storage(StorageCommand),
}

/// `mailconnect storage …`.
#[derive(Debug, Subcommand)]
pub enum StorageCommand {
    /// Bring the configured storage's schema up to date (the server does this at start-up too).
    Migrate,
    /// Copy everything from an embedded redb file into a PostgreSQL database, verify the copy,
    /// and leave the source untouched. Grants keep working for their clients.
    Copy {
        /// The redb file (e.g. ./mailconnect-data/mailconnect.redb).
        #[arg(long)]
        from: PathBuf,
        /// The PostgreSQL URL (an empty database, or one this command copied into before);
        /// from the environment, it stays out of the process list.
        #[arg(long, env = "MAILCONNECT_COPY_TO", hide_env_values = true)]
        to: SecretString,
    },
}

impl Cli {
    /// Reads the command line (`args`, the program name first), the environment, and the TOML
    /// file `--config` names: the file's settings count as if given before the command line,
    /// so a flag or an environment variable wins over them. What is wrong with the file is
    /// kept for [`Config::resolve`] to report with everything else.
    ///
    /// # Errors
    /// A command line clap refuses (including `--help` and `--version`, which it prints).
    pub fn load<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let command = Self::command();
        let given = command.clone().try_get_matches_from(&args)?;
        let mut cli = Self::from_arg_matches(&given)?;
        cli.layered = true;
        let Some(path) = cli.config.clone() else {
            return Ok(cli);
        };
        let layer = file::read(&path, &command, &given);
        let mut problems = layer.problems;
        if !layer.args.is_empty() {
            let program = args
                .first()
                .cloned()
                .unwrap_or_else(|| "mailconnect".into());
            // The file's settings alone first, so a bad value is told as the file's.
            match Self::try_parse_from(std::iter::once(program.clone()).chain(layer.args.clone())) {
                Err(e) => problems.push(format!(
                    "config file {}: {}",
                    path.display(),
                    first_line(&e)
                )),
                Ok(_) => {
                    cli = Self::try_parse_from(
                        std::iter::once(program)
                            .chain(layer.args)
                            .chain(args.into_iter().skip(1)),
                    )?;
                    cli.layered = true;
                }
            }
        }
        cli.clients = layer.clients;
        cli.file_problems = problems;
        Ok(cli)
    }
}

/// clap's message without its `error: ` prefix and usage hints.
fn first_line(e: &clap::Error) -> String {
    let text = e.to_string();
    let line = text.lines().next().unwrap_or_default();
    line.strip_prefix("error: ").unwrap_or(line).to_owned()
}
