//! The authorization server's use cases: register a client, check an authorization request,
//! record the person's decision, finish the upstream leg, and answer token and revocation
//! requests. Generic over the ports, like the mail use cases.

use std::sync::Arc;

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::{
    audience::{Audience, scope_within},
    client::{
        ClientId, ClientKind, ClientMetadata, OAuthClient, RegistrationError, TokenAuthMethod,
        validate_registration,
    },
    flow::{
        AuthorizationParams, AuthorizeError, ClientRedirect, ConsentTicket, PendingError,
        PendingFlows, check_request,
    },
    token::{IssuedToken, TokenPair, new_grant_id, new_token, random_value},
    upstream_refresh::{UpstreamRefresher, needs_refresh},
};
use crate::domain::{
    grant::{AccessToken, CapabilitySet},
    ports::{
        AuditEvent, AuditKind, AuditLog, ClientStore, FlowStore, GrantDraft, MailReader,
        MailStoreError, Redemption, TokenVault, UpstreamAuth, UpstreamAuthError, VaultError,
    },
    secret::SecretString,
};

/// Lifetimes of what the authorization server issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenLifetimes {
    /// Authorization codes (RFC 6749 says ≤ 10 min; we use less).
    pub code_secs: i64,
    /// Access tokens.
    pub access_secs: i64,
    /// Refresh tokens (each rotation starts a new period).
    pub refresh_secs: i64,
}

impl Default for TokenLifetimes {
    fn default() -> Self {
        Self {
            code_secs: 300,
            access_secs: 3600,
            refresh_secs: 30 * 24 * 3600,
        }
    }
}

/// RFC 6749 §5.2 error codes (and the RFC 7591 / 8707 ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthErrorCode {
    /// `invalid_request`.
    InvalidRequest,
    /// `invalid_client`.
    InvalidClient,
    /// `invalid_grant`.
    InvalidGrant,
    /// `unauthorized_client`.
    UnauthorizedClient,
    /// `unsupported_grant_type`.
    UnsupportedGrantType,
    /// `invalid_scope`.
    InvalidScope,
    /// `invalid_target` (RFC 8707).
    InvalidTarget,
    /// `invalid_redirect_uri` (RFC 7591).
    InvalidRedirectUri,
    /// `invalid_client_metadata` (RFC 7591).
    InvalidClientMetadata,
    /// `server_error`.
    ServerError,
    /// `temporarily_unavailable`.
    TemporarilyUnavailable,
}

impl OAuthErrorCode {
    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::InvalidRedirectUri => "invalid_redirect_uri",
            Self::InvalidClientMetadata => "invalid_client_metadata",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }
}

/// An OAuth error answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {description}", code.as_str())]
pub struct OAuthError {
    /// The code.
    pub code: OAuthErrorCode,
    /// A sentence for the developer (never a secret).
    pub description: String,
}

impl OAuthError {
    /// Builds an error.
    #[must_use]
    pub fn new(code: OAuthErrorCode, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
        }
    }

    fn grant(description: &str) -> Self {
        Self::new(OAuthErrorCode::InvalidGrant, description)
    }
}

fn vault_failure(e: &VaultError) -> OAuthError {
    tracing::error!(error = %e, "vault failure");
    OAuthError::new(
        OAuthErrorCode::TemporarilyUnavailable,
        "the token store is unavailable; try again",
    )
}

impl From<RegistrationError> for OAuthError {
    fn from(e: RegistrationError) -> Self {
        match e {
            RegistrationError::InvalidRedirectUri(r) => {
                Self::new(OAuthErrorCode::InvalidRedirectUri, r.to_string())
            }
            RegistrationError::InvalidClientMetadata(m) => {
                Self::new(OAuthErrorCode::InvalidClientMetadata, m)
            }
        }
    }
}

/// How a client authenticated at the token or revocation endpoint.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    /// The client id (body or Basic).
    pub client_id: String,
    /// The secret, if one was sent.
    pub secret: Option<SecretString>,
    /// Whether it came in an `Authorization: Basic` header.
    pub basic: bool,
}

/// A newly registered client and its secret (shown once).
#[derive(Debug, Clone)]
pub struct Registered {
    /// The client.
    pub client: OAuthClient,
    /// The secret for confidential clients.
    pub secret: Option<SecretString>,
}

/// The consent screen's content.
#[derive(Debug, Clone)]
pub struct ConsentPage {
    /// The request.
    pub request: super::flow::AuthorizationRequest,
    /// The form's secrets.
    pub ticket: ConsentTicket,
    /// What the grant will be able to do.
    pub capabilities: CapabilitySet,
}

/// Why the upstream leg failed, for the person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// No pending flow for this browser and state.
    #[error("{0}")]
    Pending(#[from] PendingError),
    /// The response names another authorization server (mix-up, RFC 9207).
    #[error("the sign-in response came from an unexpected server")]
    WrongIssuer,
    /// The upstream reported an error before the client's redirect is trustworthy.
    #[error("the mail provider did not complete the sign-in: {0}")]
    Upstream(String),
    /// The mail provider refused the sign-in (other than the person declining): the person
    /// sees what it answered — often a configuration only the operator can mend — with the
    /// way back to the client, which hears `server_error`.
    #[error("the mail provider refused the sign-in. It answered: {answer}")]
    Refused {
        /// The provider's answer, fit to show.
        answer: String,
        /// The client's error redirect.
        back: ClientRedirect,
    },
}

/// A provider's error code and description as it said them, as far as they are fit to show
/// to a person: no control characters, at most 200 characters of description.
#[must_use]
pub fn provider_answer(error: &str, description: Option<&str>) -> String {
    let clean = |text: &str, max: usize| -> String {
        text.chars().filter(|c| !c.is_control()).take(max).collect()
    };
    match description.filter(|d| !d.trim().is_empty()) {
        Some(description) => format!("{}: {}", clean(error, 64), clean(description, 200)),
        None => clean(error, 64),
    }
}

/// The authorization server. The vault `V` keeps the tokens and grants, and the audit log of
/// what each grant did.
pub struct AuthService<V, C, U, M> {
    vault: Arc<V>,
    clients: Arc<C>,
    upstream: Arc<U>,
    mail: Arc<M>,
    refresher: Arc<UpstreamRefresher<V, U>>,
    audience: Audience,
    lifetimes: TokenLifetimes,
}

impl<V, C, U, M> std::fmt::Debug for AuthService<V, C, U, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthService")
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl<V: TokenVault + AuditLog + FlowStore, C: ClientStore, U: UpstreamAuth, M: MailReader>
    AuthService<V, C, U, M>
{
    /// Builds the service.
    pub fn new(
        vault: Arc<V>,
        clients: Arc<C>,
        upstream: Arc<U>,
        mail: Arc<M>,
        refresher: Arc<UpstreamRefresher<V, U>>,
        audience: Audience,
        lifetimes: TokenLifetimes,
    ) -> Self {
        Self {
            vault,
            clients,
            upstream,
            mail,
            refresher,
            audience,
            lifetimes,
        }
    }

    /// The steps of flows in progress, in the vault's storage.
    pub(super) fn flows(&self) -> PendingFlows<'_, V> {
        PendingFlows(&*self.vault)
    }

    pub(super) fn sessions(&self) -> super::sessions::SettingsSessions<'_, V> {
        super::sessions::SettingsSessions(&*self.vault)
    }

    pub(super) fn upstream(&self) -> &U {
        &self.upstream
    }

    pub(super) fn mail(&self) -> &M {
        &self.mail
    }

    pub(super) fn vault(&self) -> &V {
        &self.vault
    }

    pub(super) fn clients(&self) -> &C {
        &self.clients
    }

    /// The vault, as the audit log.
    pub(super) fn audit_log(&self) -> &impl AuditLog {
        self.vault.as_ref()
    }

    async fn record(&self, grant: &crate::domain::grant::GrantId, kind: AuditKind) {
        AuditLog::record(
            self.audit_log(),
            AuditEvent {
                grant: grant.clone(),
                at: chrono::Utc::now().timestamp(),
                kind,
            },
        )
        .await;
    }

    /// Our issuer and resource.
    pub fn audience(&self) -> &Audience {
        &self.audience
    }

    /// Registers a client (RFC 7591).
    ///
    /// # Errors
    /// `invalid_redirect_uri` / `invalid_client_metadata`, or the store's failure.
    pub async fn register(&self, meta: &ClientMetadata) -> Result<Registered, OAuthError> {
        let valid = validate_registration(meta)?;
        let secret = valid
            .auth_method
            .is_confidential()
            .then(|| SecretString::new(random_value()));
        let client = OAuthClient {
            id: ClientId::new(format!("mc_{}", random_value())),
            name: valid.name,
            redirect_uris: valid.redirect_uris,
            kind: ClientKind::Registered,
            auth_method: valid.auth_method,
            secret_digest: secret
                .as_ref()
                .map(|s| Sha256::digest(s.expose_secret().as_bytes()).into()),
            created_at: chrono::Utc::now().timestamp(),
        };
        self.clients
            .put_client(client.clone())
            .await
            .map_err(|e| vault_failure(&e))?;
        tracing::info!(client = %client.id, "client registered");
        Ok(Registered { client, secret })
    }

    /// Checks an authorization request and parks it for the person's decision.
    ///
    /// # Errors
    /// [`AuthorizeError`]: a page for what can't go back to the client, else a redirect.
    pub async fn authorize(
        &self,
        params: &AuthorizationParams,
        browser: &str,
    ) -> Result<ConsentPage, AuthorizeError> {
        let client =
            match params.client_id.as_deref() {
                Some(id) => self.clients.client(&ClientId::new(id)).await.map_err(|e| {
                    AuthorizeError::Page {
                        message: vault_failure(&e).description,
                    }
                })?,
                None => None,
            };
        let request = check_request(params, client, &self.audience)?;
        let ticket = self
            .flows()
            .await_consent(request.clone(), browser)
            .await
            .map_err(|e| {
                AuthorizeError::Redirect(request.error(
                    &self.audience,
                    "temporarily_unavailable",
                    &e.to_string(),
                ))
            })?;
        Ok(ConsentPage {
            request,
            ticket,
            capabilities: CapabilitySet::read_only(),
        })
    }

    /// Records the person's decision: approve → the upstream's authorization URL; deny → back
    /// to the client with `access_denied`.
    ///
    /// # Errors
    /// [`PendingError`] when the form is stale, replayed or forged.
    ///
    /// `upstream_browser` is a fresh binding (a new cookie) for the upstream leg: the state we
    /// send upstream is only accepted back in the browser that approved.
    pub async fn decide(
        &self,
        request_id: &str,
        csrf: &str,
        browser: &str,
        upstream_browser: &str,
        approve: bool,
    ) -> Result<String, PendingError> {
        let request = self.flows().take_consent(request_id, csrf, browser).await?;
        if !approve {
            tracing::info!(client = %request.client.id, "consent denied");
            return Ok(request
                .error(&self.audience, "access_denied", "the person declined")
                .to_url());
        }
        let client = request.client.id.clone();
        let back = request.error(
            &self.audience,
            "temporarily_unavailable",
            "the mail provider's sign-in is unavailable",
        );
        let (state, challenge) = self
            .flows()
            .await_upstream(request, upstream_browser)
            .await?;
        match self.upstream.authorization_url(&state, &challenge).await {
            Ok(url) => {
                tracing::info!(client = %client, "consent approved; sending the browser to the upstream");
                Ok(url)
            }
            Err(e) => {
                tracing::error!(client = %client, error = %e, "the upstream authorization endpoint is unavailable");
                Ok(back.to_url())
            }
        }
    }

    /// Finishes the upstream leg: exchanges its code, identifies the account, creates the
    /// grant and returns the redirect to the client carrying our code.
    ///
    /// # Errors
    /// [`CallbackError`] when nothing can be sent back to the client; upstream failures after
    /// the flow is known go back to the client as OAuth errors instead.
    pub async fn callback(
        &self,
        state: &str,
        browser: &str,
        code: Option<&str>,
        iss: Option<&str>,
        upstream_error: Option<(&str, Option<&str>)>,
    ) -> Result<ClientRedirect, CallbackError> {
        let leg = self.flows().take_upstream(state, browser).await?;
        if !self.upstream.accepts_issuer(iss.map(str::to_owned)).await {
            tracing::warn!(client = %leg.request.client.id, "upstream callback with a wrong or missing iss");
            return Err(CallbackError::WrongIssuer);
        }
        let request = leg.request;
        let back =
            |error: &str, description: &str| request.error(&self.audience, error, description);
        if let Some((error, description)) = upstream_error {
            if error == "access_denied" {
                return Ok(back(
                    "access_denied",
                    "the mail provider did not grant access",
                ));
            }
            let answer = provider_answer(error, description);
            tracing::warn!(client = %request.client.id, answer = %answer, "the upstream refused the sign-in");
            return Err(CallbackError::Refused {
                answer,
                back: back("server_error", "the mail provider refused the sign-in"),
            });
        }
        let Some(code) = code else {
            return Err(CallbackError::Upstream("no code in the response".into()));
        };
        let tokens = match self.upstream.exchange_code(code, &leg.verifier).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(client = %request.client.id, error = %e, "upstream code exchange failed");
                return match e {
                    UpstreamAuthError::Unavailable(_) => Ok(back(
                        "temporarily_unavailable",
                        "the mail provider's token exchange failed",
                    )),
                    UpstreamAuthError::InvalidGrant(answer)
                    | UpstreamAuthError::Misconfigured(answer) => Err(CallbackError::Refused {
                        answer,
                        back: back("server_error", "the mail provider's token exchange failed"),
                    }),
                };
            }
        };
        let credential = crate::domain::grant::UpstreamCredential::Bearer(tokens.access.clone());
        let account = match self.mail.account(&credential).await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(client = %request.client.id, error = %e, "reading the mail account failed");
                let code = if matches!(
                    e,
                    MailStoreError::Unavailable(_) | MailStoreError::RateLimited { .. }
                ) {
                    "temporarily_unavailable"
                } else {
                    "server_error"
                };
                return Ok(back(
                    code,
                    "the mailbox could not be read with the new sign-in",
                ));
            }
        };
        let grant = new_grant_id();
        let code = IssuedToken {
            token: new_token(&grant),
            expires_at: chrono::Utc::now().timestamp() + self.lifetimes.code_secs,
        };
        let draft = GrantDraft {
            id: grant.clone(),
            client: request.client.id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            resource: request.resource.clone(),
            scope: request.scope.clone(),
            code_challenge: request.code_challenge.clone(),
            account_digest: super::sessions::account_digest(&account.username),
            upstream: tokens,
            capabilities: CapabilitySet::read_only(),
        };
        if let Err(e) = self.vault.create_grant(draft, code.clone()).await {
            tracing::error!(error = %e, "storing the grant failed");
            return Ok(back(
                "temporarily_unavailable",
                "the grant could not be stored",
            ));
        }
        tracing::info!(client = %request.client.id, grant = %grant, "grant created");
        Ok(ClientRedirect::code(
            &request.redirect_uri,
            request.state.as_deref(),
            self.audience.issuer(),
            code.token.expose_secret(),
        ))
    }

    /// Authenticates a client at the token or revocation endpoint, as it registered.
    ///
    /// # Errors
    /// `invalid_client` for an unknown client, a wrong or missing secret, or the wrong method.
    pub async fn authenticate_client(
        &self,
        creds: &ClientCredentials,
    ) -> Result<OAuthClient, OAuthError> {
        let invalid = || {
            OAuthError::new(
                OAuthErrorCode::InvalidClient,
                "client authentication failed",
            )
        };
        let client = self
            .clients
            .client(&ClientId::new(&creds.client_id))
            .await
            .map_err(|e| vault_failure(&e))?
            .ok_or_else(invalid)?;
        match (client.auth_method, &creds.secret, &client.secret_digest) {
            (TokenAuthMethod::None, None, _) => Ok(client),
            (TokenAuthMethod::ClientSecretBasic, Some(secret), Some(stored)) if creds.basic => {
                secret_matches(secret, stored)
                    .then_some(client)
                    .ok_or_else(invalid)
            }
            (TokenAuthMethod::ClientSecretPost, Some(secret), Some(stored)) if !creds.basic => {
                secret_matches(secret, stored)
                    .then_some(client)
                    .ok_or_else(invalid)
            }
            _ => Err(invalid()),
        }
    }

    fn new_pair(&self, grant: &crate::domain::grant::GrantId, scope: &str) -> TokenPair {
        let now = chrono::Utc::now().timestamp();
        TokenPair {
            access: IssuedToken {
                token: new_token(grant),
                expires_at: now + self.lifetimes.access_secs,
            },
            refresh: IssuedToken {
                token: new_token(grant),
                expires_at: now + self.lifetimes.refresh_secs,
            },
            scope: scope.to_owned(),
        }
    }

    /// The `authorization_code` grant.
    ///
    /// A failed check leaves the code unused (the rightful client can still redeem it); a second
    /// redemption revokes the grant and everything issued from it (RFC 6749 §10.5).
    ///
    /// # Errors
    /// `invalid_grant`, `invalid_target`, or a store failure.
    pub async fn exchange_code(
        &self,
        client: &OAuthClient,
        code: &str,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
        resource: Option<&str>,
    ) -> Result<TokenPair, OAuthError> {
        let code = AccessToken::new(code);
        let binding = self
            .vault
            .code_binding(&code)
            .await
            .map_err(|e| vault_failure(&e))?
            .ok_or_else(|| OAuthError::grant("the authorization code is invalid or expired"))?;
        if binding.client != client.id {
            return Err(OAuthError::grant(
                "the authorization code was issued to another client",
            ));
        }
        if redirect_uri != Some(binding.redirect_uri.as_str()) {
            return Err(OAuthError::grant(
                "redirect_uri does not match the authorization request",
            ));
        }
        if !verifier.is_some_and(|v| binding.code_challenge.verify(v)) {
            return Err(OAuthError::grant(
                "code_verifier does not match the code_challenge",
            ));
        }
        let resource = self
            .audience
            .canonical_resource(resource)
            .map_err(|e| OAuthError::new(OAuthErrorCode::InvalidTarget, e.to_string()))?;
        if resource != binding.resource {
            return Err(OAuthError::new(
                OAuthErrorCode::InvalidTarget,
                "resource differs from the authorization request",
            ));
        }
        let pair = self.new_pair(&binding.grant, &binding.scope);
        match self
            .vault
            .redeem_code(&code, pair)
            .await
            .map_err(|e| vault_failure(&e))?
        {
            Redemption::Issued(pair) => {
                tracing::info!(client = %client.id, grant = %binding.grant, "code redeemed");
                self.record(&binding.grant, AuditKind::Connected).await;
                Ok(pair)
            }
            Redemption::Revoked => {
                tracing::warn!(client = %client.id, grant = %binding.grant, security = true, "authorization code replayed; grant revoked");
                Err(OAuthError::grant("the authorization code was already used"))
            }
        }
    }

    /// The `refresh_token` grant: rotation with replay of the last answer and reuse detection
    /// (see [`super::rotation`]); the upstream token is renewed in the same step when near expiry.
    ///
    /// # Errors
    /// `invalid_grant`, `invalid_scope`, `invalid_target`, or a store failure.
    pub async fn refresh(
        &self,
        client: &OAuthClient,
        refresh: &str,
        scope: Option<&str>,
        resource: Option<&str>,
    ) -> Result<TokenPair, OAuthError> {
        let refresh = AccessToken::new(refresh);
        let binding = self
            .vault
            .refresh_binding(&refresh)
            .await
            .map_err(|e| vault_failure(&e))?
            .ok_or_else(|| OAuthError::grant("the refresh token is invalid, expired or revoked"))?;
        if binding.client != client.id {
            return Err(OAuthError::grant(
                "the refresh token was issued to another client",
            ));
        }
        if !scope_within(scope.filter(|s| !s.trim().is_empty()), &binding.scope) {
            return Err(OAuthError::new(
                OAuthErrorCode::InvalidScope,
                "a refresh can't widen the granted scope",
            ));
        }
        if resource.is_some() {
            let canonical = self
                .audience
                .canonical_resource(resource)
                .map_err(|e| OAuthError::new(OAuthErrorCode::InvalidTarget, e.to_string()))?;
            if canonical != binding.resource {
                return Err(OAuthError::new(
                    OAuthErrorCode::InvalidTarget,
                    "resource differs from the grant's",
                ));
            }
        }
        self.renew_upstream_if_due(&refresh).await;
        let pair = self.new_pair(&binding.grant, &binding.scope);
        match self
            .vault
            .rotate_refresh(&refresh, pair)
            .await
            .map_err(|e| vault_failure(&e))?
        {
            Redemption::Issued(pair) => Ok(pair),
            Redemption::Revoked => {
                tracing::warn!(client = %client.id, grant = %binding.grant, security = true, "retired refresh token reused; grant revoked");
                Err(OAuthError::grant("the refresh token was already used"))
            }
        }
    }

    /// A client refresh is a good moment to renew the upstream token; a failure here is not the
    /// client's problem (the next tool call retries), so it is only logged.
    async fn renew_upstream_if_due(&self, refresh: &AccessToken) {
        let Ok(opened) = self.vault.open_fresh(refresh).await else {
            return;
        };
        if needs_refresh(&opened, chrono::Utc::now().timestamp())
            && let Err(e) = self
                .refresher
                .refresh(refresh, &opened.grant, &opened.credential)
                .await
        {
            tracing::warn!(grant = %opened.grant, error = %e, "upstream refresh during token refresh failed");
        }
    }

    /// Revokes a token of `client` (RFC 7009): unknown tokens and other clients' tokens are
    /// answered the same way and change nothing.
    ///
    /// # Errors
    /// Only a store failure.
    pub async fn revoke(&self, client: &OAuthClient, token: &str) -> Result<(), OAuthError> {
        self.vault
            .revoke_token(&AccessToken::new(token), &client.id)
            .await
            .map_err(|e| vault_failure(&e))
    }
}

fn secret_matches(secret: &SecretString, stored: &[u8; 32]) -> bool {
    let presented: [u8; 32] = Sha256::digest(secret.expose_secret().as_bytes()).into();
    bool::from(presented.ct_eq(stored))
}
