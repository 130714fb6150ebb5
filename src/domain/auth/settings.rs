//! The settings page's rules: a person signs in with the upstream (identity only: the tokens
//! of that sign-in are dropped), sees only the grants of their own upstream account (matched on
//! a hash of its identity), changes a grant's capabilities or revokes it. Every change checks
//! ownership and the session's CSRF token here, so no page or API can skip them.

use subtle::ConstantTimeEq as _;

pub use super::sessions::{
    SESSION_TTL, SessionTicket, SettingsSession, SettingsSessions, account_digest,
};
use super::{flow::PendingError, service::AuthService};
use crate::domain::{
    grant::{CapabilitySet, GrantId, UpstreamCredential},
    ports::{
        AuditError, AuditEvent, AuditKind, AuditLog, ClientStore, FlowStore, GrantSummary,
        MailReader, MailStoreError, Policy, TokenVault, UpstreamAuth, UpstreamAuthError,
        VaultError,
    },
};

/// Why signing in to the settings page failed; the text is a sentence for the person.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// No such sign-in for this browser, too many pending, or it expired.
    #[error("{0}")]
    Pending(#[from] PendingError),
    /// The response names another authorization server (mix-up, RFC 9207).
    #[error("the sign-in response came from an unexpected server")]
    WrongIssuer,
    /// The provider sent no code back.
    #[error("the mail provider did not complete the sign-in")]
    NoCode,
    /// The provider refused or could not be reached.
    #[error("{0}")]
    Upstream(#[from] UpstreamAuthError),
    /// The new sign-in could not read the mailbox.
    #[error("the mailbox could not be read: {0}")]
    Mailbox(MailStoreError),
}

/// Why a settings action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// No or an expired session.
    #[error("please sign in again")]
    SignedOut,
    /// The form's CSRF token is missing or wrong.
    #[error("this form was not submitted from the settings page; reload it and try again")]
    Forged,
    /// Not one of this person's connections (or gone).
    #[error("no such connection")]
    NotFound,
    /// The store failed.
    #[error("settings are unavailable right now; try again")]
    Unavailable,
}

impl From<VaultError> for SettingsError {
    fn from(e: VaultError) -> Self {
        match e {
            VaultError::InvalidToken => Self::NotFound,
            VaultError::Unexpected(m) => {
                tracing::error!(error = %m, "settings: vault failure");
                Self::Unavailable
            }
        }
    }
}

/// One connection as the settings page shows it.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The grant.
    pub summary: GrantSummary,
    /// The client's name (untrusted: escape it).
    pub client_name: String,
    /// Where it returns to.
    pub destination: String,
    /// Its recent activity, newest first.
    pub events: Vec<AuditEvent>,
}

/// Audit events shown per connection.
pub const EVENTS_SHOWN: usize = 20;

impl<V: TokenVault + AuditLog + FlowStore, C: ClientStore, U: UpstreamAuth, M: MailReader>
    AuthService<V, C, U, M>
{
    /// Starts a settings sign-in: the upstream's authorization URL for a fresh state bound to
    /// `browser`.
    ///
    /// # Errors
    /// When too many flows are pending or the upstream is unreachable.
    pub async fn begin_sign_in(&self, browser: &str) -> Result<String, SignInError> {
        let (state, challenge) = self.flows().await_sign_in(browser).await?;
        Ok(self
            .upstream()
            .authorization_url(&state, &challenge)
            .await?)
    }

    /// Finishes a settings sign-in, if `state` names one: exchanges the code, reads the
    /// account's identity and drops the upstream tokens. `Ok(None)`: not a sign-in.
    ///
    /// # Errors
    /// [`SignInError`], whose text is a sentence for the person.
    pub async fn finish_sign_in(
        &self,
        state: &str,
        browser: &str,
        code: Option<&str>,
        iss: Option<&str>,
    ) -> Result<Option<SessionTicket>, SignInError> {
        let verifier = match self.flows().take_sign_in(state, browser).await {
            Ok(v) => v,
            Err(PendingError::Gone) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if !self.upstream().accepts_issuer(iss.map(str::to_owned)).await {
            return Err(SignInError::WrongIssuer);
        }
        let code = code.ok_or(SignInError::NoCode)?;
        let tokens = self.upstream().exchange_code(code, &verifier).await?;
        let account = self
            .mail()
            .account(&UpstreamCredential::Bearer(tokens.access.clone()))
            .await
            .map_err(SignInError::Mailbox)?;
        // The tokens of a settings sign-in are never stored: they only proved who this is.
        drop(tokens);
        tracing::info!("settings sign-in");
        self.sessions()
            .open(&account.username)
            .await
            .map(Some)
            .ok_or(SignInError::Pending(PendingError::Unavailable))
    }

    /// The session a cookie names.
    pub async fn settings_session(&self, cookie: &str) -> Option<SettingsSession> {
        self.sessions().get(cookie).await
    }

    /// Ends a session.
    pub async fn sign_out(&self, cookie: &str) {
        self.sessions().close(cookie).await;
    }

    /// The person's connections, newest first.
    ///
    /// # Errors
    /// [`SettingsError`].
    pub async fn connections(
        &self,
        session: &SettingsSession,
    ) -> Result<Vec<Connection>, SettingsError> {
        let grants = self.vault().grants_of(&session.account_digest).await?;
        self.described(grants).await
    }

    /// The person's connections that ended (kept for their activity until the retention
    /// period passes; `last_used_at` is when they ended).
    ///
    /// # Errors
    /// [`SettingsError`].
    pub async fn disconnected(
        &self,
        session: &SettingsSession,
    ) -> Result<Vec<Connection>, SettingsError> {
        let grants = self.vault().revoked_of(&session.account_digest).await?;
        self.described(grants).await
    }

    async fn described(&self, grants: Vec<GrantSummary>) -> Result<Vec<Connection>, SettingsError> {
        let mut out = Vec::new();
        for summary in grants {
            let client = self.clients().client(&summary.client).await?;
            let (client_name, destination) = match client {
                Some(c) => {
                    let dest = c.redirect_uri(&summary.redirect_uri).map_or_else(
                        || summary.redirect_uri.clone(),
                        super::redirect::RedirectUri::destination,
                    );
                    (c.name, dest)
                }
                None => (
                    "(a client that no longer exists)".to_owned(),
                    summary.redirect_uri.clone(),
                ),
            };
            let events = self
                .audit_log()
                .events(&summary.grant, EVENTS_SHOWN)
                .await
                .map_err(|AuditError::Unexpected(m)| VaultError::Unexpected(m))?;
            out.push(Connection {
                summary,
                client_name,
                destination,
                events,
            });
        }
        Ok(out)
    }

    async fn owned(
        &self,
        session: &SettingsSession,
        csrf: &str,
        grant: &GrantId,
    ) -> Result<(), SettingsError> {
        if !bool::from(
            csrf.as_bytes()
                .ct_eq(session.csrf.expose_secret().as_bytes()),
        ) {
            return Err(SettingsError::Forged);
        }
        let mine = self.vault().grants_of(&session.account_digest).await?;
        if mine.iter().any(|g| &g.grant == grant) {
            Ok(())
        } else {
            Err(SettingsError::NotFound)
        }
    }
}

/// The changes a person makes on the settings page (grant settings: [`Policy`]).
impl<V: TokenVault + Policy + AuditLog + FlowStore, C: ClientStore, U: UpstreamAuth, M: MailReader>
    AuthService<V, C, U, M>
{
    /// Replaces a connection's capabilities (`read` always stays).
    ///
    /// # Errors
    /// [`SettingsError`]: a forged form, someone else's grant.
    pub async fn change_capabilities(
        &self,
        session: &SettingsSession,
        csrf: &str,
        grant: &GrantId,
        capabilities: CapabilitySet,
    ) -> Result<(), SettingsError> {
        self.owned(session, csrf, grant).await?;
        let names: Vec<String> = capabilities.iter().map(|c| c.as_str().to_owned()).collect();
        self.vault()
            .set_capabilities(grant, capabilities)
            .await
            .map_err(VaultError::from)?;
        self.audit_log()
            .record(AuditEvent {
                grant: grant.clone(),
                at: chrono::Utc::now().timestamp(),
                kind: AuditKind::PolicyChanged {
                    capabilities: names,
                },
            })
            .await;
        tracing::info!(grant = %grant, "capabilities changed in settings");
        Ok(())
    }

    /// Replaces a connection's new-mail rules, keeping the mutes in force.
    ///
    /// # Errors
    /// [`SettingsError`]: a forged form, someone else's grant.
    pub async fn change_notify_rules(
        &self,
        session: &SettingsSession,
        csrf: &str,
        grant: &GrantId,
        mut rules: crate::domain::notify::settings::NotifySettings,
    ) -> Result<(), SettingsError> {
        self.owned(session, csrf, grant).await?;
        let current = self
            .vault()
            .grants_of(&session.account_digest)
            .await?
            .into_iter()
            .find(|g| &g.grant == grant)
            .map(|g| g.notify)
            .unwrap_or_default();
        rules.mutes = current.mutes;
        self.vault()
            .set_notify_settings(grant, rules)
            .await
            .map_err(VaultError::from)?;
        tracing::info!(grant = %grant, "new-mail rules changed in settings");
        Ok(())
    }

    /// Replaces who a connection may send to.
    ///
    /// # Errors
    /// [`SettingsError`]: a forged form, someone else's grant.
    pub async fn change_recipients(
        &self,
        session: &SettingsSession,
        csrf: &str,
        grant: &GrantId,
        rule: crate::domain::sending::recipients::RecipientRule,
        review_only: bool,
    ) -> Result<(), SettingsError> {
        self.owned(session, csrf, grant).await?;
        self.vault()
            .set_recipients(grant, rule)
            .await
            .map_err(VaultError::from)?;
        self.vault()
            .set_review_only(grant, review_only)
            .await
            .map_err(VaultError::from)?;
        tracing::info!(grant = %grant, "sending rules changed in settings");
        Ok(())
    }
}

impl<V: TokenVault + AuditLog + FlowStore, C: ClientStore, U: UpstreamAuth, M: MailReader>
    AuthService<V, C, U, M>
{
    /// Revokes a connection: the grant, its tokens and wrapped keys are deleted.
    ///
    /// # Errors
    /// [`SettingsError`]: a forged form, someone else's grant.
    pub async fn revoke_connection(
        &self,
        session: &SettingsSession,
        csrf: &str,
        grant: &GrantId,
    ) -> Result<(), SettingsError> {
        self.owned(session, csrf, grant).await?;
        self.vault().remove_grant(grant).await?;
        tracing::info!(grant = %grant, "connection revoked in settings");
        Ok(())
    }
}
