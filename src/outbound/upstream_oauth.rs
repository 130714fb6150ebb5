//! Our OAuth client at the upstream (Fastmail, or any RFC 8414 / OIDC provider): authorization
//! code with PKCE S256, `state`, `resource`, token refresh. The protocol types and requests
//! come from `oauth2` (the OAuth 2.0 half of `openidconnect`); the HTTP goes through one small
//! adapter on our reqwest client (oauth2 5 is built for reqwest 0.12).

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, EndpointNotSet, EndpointSet,
    HttpRequest, HttpResponse, PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError,
    TokenResponse as _, TokenUrl,
    basic::{BasicClient, BasicErrorResponseType, BasicTokenResponse},
};
use serde::Deserialize;
use url::Url;

use crate::domain::{
    auth::service::provider_answer,
    ports::{RegistrationMemory, UpstreamAuth, UpstreamAuthError, UpstreamTokens},
    secret::SecretString,
};

/// Where the upstream's endpoints are and who we are there.
#[derive(Debug, Clone)]
pub struct UpstreamOAuthConfig {
    /// The upstream's issuer (checked against `iss` on the callback).
    pub issuer: String,
    /// Its authorization endpoint.
    pub authorization_endpoint: Url,
    /// Its token endpoint.
    pub token_endpoint: Url,
    /// Our client id there.
    pub client_id: String,
    /// Our client secret there, if we are a confidential client.
    pub client_secret: Option<SecretString>,
    /// Send the secret in the body instead of HTTP Basic.
    pub secret_in_body: bool,
    /// Scopes to ask for.
    pub scopes: Vec<String>,
    /// The `resource` to ask tokens for (RFC 8707), e.g. the JMAP session URL.
    pub resource: Option<String>,
    /// Our callback, `<public>/auth/callback`.
    pub redirect_uri: Url,
    /// Its revocation endpoint, when it has one.
    pub revocation_endpoint: Option<Url>,
    /// Whether the upstream promises `iss` on authorization responses.
    pub requires_iss: bool,
    /// Per-request timeout.
    pub timeout: Duration,
}

type Client = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// The upstream OAuth client.
#[derive(Debug, Clone)]
pub struct UpstreamOAuth {
    config: UpstreamOAuthConfig,
    client: Client,
    http: reqwest::Client,
}

/// Why the upstream client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("upstream OAuth: {0}")]
pub struct UpstreamConfigError(pub String);

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct HttpError(String);

/// The subset of RFC 8414 / OIDC discovery metadata we use.
#[derive(Debug, Clone, Deserialize)]
pub struct ProviderMetadata {
    /// `issuer`.
    pub issuer: String,
    /// `authorization_endpoint`.
    pub authorization_endpoint: Url,
    /// `token_endpoint`.
    pub token_endpoint: Url,
    /// `registration_endpoint`.
    #[serde(default)]
    pub registration_endpoint: Option<Url>,
    /// `revocation_endpoint` (RFC 7009).
    #[serde(default)]
    pub revocation_endpoint: Option<Url>,
    /// `code_challenge_methods_supported`.
    #[serde(default)]
    pub code_challenge_methods_supported: Vec<String>,
    /// `authorization_response_iss_parameter_supported`.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
}

/// A shared HTTP client for the upstream: no redirects (a token endpoint that redirects is
/// misconfigured, and following would resend credentials), a timeout on every request.
///
/// # Errors
/// When the TLS backend can't be initialised.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, UpstreamConfigError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .user_agent(concat!("mailconnect/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| UpstreamConfigError(e.to_string()))
}

/// Reads an upstream's metadata: RFC 8414 first, then OpenID Connect discovery.
///
/// # Errors
/// When neither document is served or the issuer in it differs from `issuer`.
pub async fn discover(
    http: &reqwest::Client,
    issuer: &str,
) -> Result<ProviderMetadata, UpstreamConfigError> {
    let base = issuer.trim_end_matches('/');
    let mut last = String::new();
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let url = format!("{base}{path}");
        match http.get(&url).send().await {
            Ok(r) if r.status().is_success() => {
                let meta: ProviderMetadata = r
                    .json()
                    .await
                    .map_err(|e| UpstreamConfigError(format!("{url}: {e}")))?;
                if meta.issuer.trim_end_matches('/') != base {
                    return Err(UpstreamConfigError(format!(
                        "{url} names issuer {:?}, expected {issuer:?}",
                        meta.issuer
                    )));
                }
                if !meta
                    .code_challenge_methods_supported
                    .iter()
                    .any(|m| m == "S256")
                {
                    return Err(UpstreamConfigError(format!(
                        "{issuer} does not support PKCE S256"
                    )));
                }
                return Ok(meta);
            }
            Ok(r) => last = format!("{url}: HTTP {}", r.status()),
            Err(e) => last = format!("{url}: {e}"),
        }
    }
    Err(UpstreamConfigError(format!(
        "no authorization server metadata: {last}"
    )))
}

/// Which `resource` (RFC 8707) we ask the upstream's tokens for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamResource {
    /// This one: configured (`--upstream-resource`), or a preset's (Fastmail: its JMAP session
    /// URL).
    Given(String),
    /// The one the JMAP server names in its protected-resource metadata (RFC 9728), read on
    /// first use; none when it publishes none. A provider may refuse any resource but its own,
    /// so it is read rather than guessed.
    Published {
        /// The JMAP session URL: the resource whose metadata is read (then its origin's).
        session_url: Url,
    },
}

/// The subset of RFC 9728 protected-resource metadata we use.
#[derive(Debug, Deserialize)]
struct ResourceMetadata {
    resource: String,
    #[serde(default)]
    authorization_servers: Option<Vec<String>>,
}

/// The resource the JMAP server at `session_url` names (RFC 9728 §3): its own metadata
/// (`/.well-known/oauth-protected-resource` put between the host and the path), then its
/// origin's. A document must name the resource it was fetched for (§3.3), or it is not used.
///
/// # Errors
/// When a metadata URL can't be reached or fails (5xx): "none" must not be remembered for a
/// server that was only down. A 4xx or a redirect means no document there.
pub async fn published_resource(
    http: &reqwest::Client,
    session_url: &Url,
    issuer: &str,
) -> Result<Option<String>, UpstreamConfigError> {
    let origin = session_url.origin().ascii_serialization();
    let mut path = session_url.path().to_owned();
    if path == "/" {
        path.clear();
    }
    if let Some(query) = session_url.query() {
        path = format!("{path}?{query}");
    }
    let own = (
        session_url.as_str().to_owned(),
        format!("{origin}/.well-known/oauth-protected-resource{path}"),
    );
    let at_origin = (
        origin.clone(),
        format!("{origin}/.well-known/oauth-protected-resource"),
    );
    let same = |a: &str, b: &str| a.trim_end_matches('/') == b.trim_end_matches('/');
    for (identifier, url) in [own, at_origin] {
        let response = http
            .get(&url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| {
                UpstreamConfigError(format!("protected-resource metadata at {url}: {e}"))
            })?;
        let status = response.status();
        if status.is_server_error() {
            return Err(UpstreamConfigError(format!(
                "protected-resource metadata at {url}: HTTP {status}"
            )));
        }
        if !status.is_success() {
            continue;
        }
        let meta: ResourceMetadata = match response.json().await {
            Ok(meta) => meta,
            Err(e) => {
                tracing::warn!(%url, error = %e, "unreadable protected-resource metadata; not used");
                continue;
            }
        };
        if !same(&meta.resource, &identifier) {
            tracing::warn!(%url, named = %meta.resource, "protected-resource metadata names another resource; not used");
            continue;
        }
        if meta
            .authorization_servers
            .as_ref()
            .is_some_and(|servers| !servers.iter().any(|s| same(s, issuer)))
        {
            tracing::warn!(%url, issuer, "the mail server's metadata does not list the upstream issuer; its tokens may be refused");
        }
        return Ok(Some(meta.resource));
    }
    Ok(None)
}

#[derive(Debug, Deserialize)]
struct RegistrationResponse {
    client_id: String,
}

/// Registers us at the upstream (RFC 7591) as a public client with `redirect_uri`.
///
/// # Errors
/// When the upstream refuses or can't be reached.
pub async fn register(
    http: &reqwest::Client,
    endpoint: &Url,
    client_name: &str,
    redirect_uri: &Url,
    scopes: &[String],
) -> Result<String, UpstreamConfigError> {
    let body = serde_json::json!({
        "client_name": client_name,
        "redirect_uris": [redirect_uri.as_str()],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        // A registration without a scope gets an empty one at Fastmail.
        "scope": scopes.join(" "),
    });
    let response = http
        .post(endpoint.as_str())
        .json(&body)
        .send()
        .await
        .map_err(|e| UpstreamConfigError(format!("registration at {endpoint}: {e}")))?;
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        return Err(UpstreamConfigError(format!(
            "registration at {endpoint}: HTTP {status}: {}",
            text.chars().take(300).collect::<String>()
        )));
    }
    let registered: RegistrationResponse = response
        .json()
        .await
        .map_err(|e| UpstreamConfigError(format!("registration at {endpoint}: {e}")))?;
    Ok(registered.client_id)
}

impl UpstreamOAuth {
    /// Builds the client.
    ///
    /// # Errors
    /// When an endpoint URL is unusable or the HTTP client can't be built.
    pub fn new(config: UpstreamOAuthConfig) -> Result<Self, UpstreamConfigError> {
        let bad = |e: url::ParseError| UpstreamConfigError(e.to_string());
        let mut client = BasicClient::new(ClientId::new(config.client_id.clone()))
            .set_auth_uri(AuthUrl::new(config.authorization_endpoint.to_string()).map_err(bad)?)
            .set_token_uri(TokenUrl::new(config.token_endpoint.to_string()).map_err(bad)?)
            .set_redirect_uri(RedirectUrl::new(config.redirect_uri.to_string()).map_err(bad)?);
        if let Some(secret) = &config.client_secret {
            client = client.set_client_secret(ClientSecret::new(secret.expose_secret().to_owned()));
        }
        if config.secret_in_body || config.client_secret.is_none() {
            client = client.set_auth_type(AuthType::RequestBody);
        }
        let http = http_client(config.timeout)?;
        Ok(Self {
            config,
            client,
            http,
        })
    }
}

type Exchange = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send>>;

/// oauth2's HTTP client: ours. A named type with a `'static` future keeps the token request
/// futures `Send` (a closure here trips rustc's higher-ranked auto-trait inference).
struct Http(reqwest::Client);

impl<'c> oauth2::AsyncHttpClient<'c> for Http {
    type Error = HttpError;
    type Future = Exchange;

    fn call(&'c self, request: HttpRequest) -> Exchange {
        send(self.0.clone(), request)
    }
}

/// One HTTP exchange for oauth2, on our reqwest client.
fn send(http: reqwest::Client, request: HttpRequest) -> Exchange {
    Box::pin(async move {
        let (parts, body) = request.into_parts();
        let response = http
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body)
            .send()
            .await
            .map_err(|e| HttpError(e.without_url().to_string()))?;
        let status = response.status();
        let headers = response.headers().clone();
        // Token responses are small; anything larger is not one.
        let body = response
            .bytes()
            .await
            .map_err(|e| HttpError(e.to_string()))?;
        if body.len() > 64 * 1024 {
            return Err(HttpError("token response over 64 KiB".into()));
        }
        let mut out = http::Response::builder().status(status);
        if let Some(h) = out.headers_mut() {
            *h = headers;
        }
        out.body(body.to_vec())
            .map_err(|e| HttpError(e.to_string()))
    })
}

fn to_tokens(response: &BasicTokenResponse) -> UpstreamTokens {
    let expires_at = response.expires_in().map(|d| {
        chrono::Utc::now().timestamp() + i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2)
    });
    UpstreamTokens {
        access: SecretString::new(response.access_token().secret().clone()),
        refresh: response
            .refresh_token()
            .map(|r| SecretString::new(r.secret().clone())),
        expires_at,
        issued_at: Some(chrono::Utc::now().timestamp()),
    }
}

fn classify<RE: std::error::Error + 'static>(
    e: RequestTokenError<RE, oauth2::StandardErrorResponse<BasicErrorResponseType>>,
) -> UpstreamAuthError {
    match e {
        RequestTokenError::ServerResponse(r) => {
            // What the provider answered, as it said it: the person (or operator) reads it.
            let code = provider_answer(
                r.error().as_ref(),
                r.error_description().map(String::as_str),
            );
            match r.error() {
                BasicErrorResponseType::InvalidGrant => UpstreamAuthError::InvalidGrant(code),
                BasicErrorResponseType::InvalidClient
                | BasicErrorResponseType::UnauthorizedClient
                | BasicErrorResponseType::UnsupportedGrantType
                | BasicErrorResponseType::InvalidScope => UpstreamAuthError::Misconfigured(code),
                // RFC 8707 §2: the resource we asked for is not one it knows.
                BasicErrorResponseType::Extension(e) if e == "invalid_target" => {
                    UpstreamAuthError::Misconfigured(code)
                }
                _ => UpstreamAuthError::Unavailable(code),
            }
        }
        RequestTokenError::Request(e) => UpstreamAuthError::Unavailable(e.to_string()),
        RequestTokenError::Parse(e, _) => {
            UpstreamAuthError::Unavailable(format!("unreadable token response: {e}"))
        }
        RequestTokenError::Other(m) => UpstreamAuthError::Unavailable(m),
    }
}

impl UpstreamOAuth {
    fn authorization_url(&self, state: &str, code_challenge: &str) -> String {
        let state = state.to_owned();
        let mut request = self
            .client
            .authorize_url(move || oauth2::CsrfToken::new(state))
            .add_extra_param("code_challenge", code_challenge)
            .add_extra_param("code_challenge_method", "S256")
            .add_scopes(
                self.config
                    .scopes
                    .iter()
                    .map(|s| oauth2::Scope::new(s.clone())),
            );
        if let Some(resource) = &self.config.resource {
            request = request.add_extra_param("resource", resource);
        }
        request.url().0.to_string()
    }

    async fn exchange_code(
        &self,
        code: &str,
        verifier: &SecretString,
    ) -> Result<UpstreamTokens, UpstreamAuthError> {
        let mut request = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.expose_secret().to_owned()));
        if let Some(resource) = &self.config.resource {
            request = request.add_extra_param("resource", resource);
        }
        let http = Http(self.http.clone());
        request
            .request_async(&http)
            .await
            .map(|r| to_tokens(&r))
            .map_err(classify)
    }

    /// Revokes a refresh token (RFC 7009; its access tokens go with it at the providers we
    /// know).
    async fn revoke(&self, token: &SecretString) -> Result<(), UpstreamAuthError> {
        let endpoint = self.config.revocation_endpoint.as_ref().ok_or_else(|| {
            UpstreamAuthError::Misconfigured("the provider offers no revocation endpoint".into())
        })?;
        let mut form = vec![
            ("token", token.expose_secret().to_owned()),
            ("token_type_hint", "refresh_token".to_owned()),
        ];
        let mut request = self.http.post(endpoint.clone());
        match (&self.config.client_secret, self.config.secret_in_body) {
            (Some(secret), false) => {
                request = request.basic_auth(&self.config.client_id, Some(secret.expose_secret()));
            }
            (Some(secret), true) => {
                form.push(("client_id", self.config.client_id.clone()));
                form.push(("client_secret", secret.expose_secret().to_owned()));
            }
            (None, _) => form.push(("client_id", self.config.client_id.clone())),
        }
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
            .finish();
        let response = request
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .send()
            .await
            .map_err(|e| UpstreamAuthError::Unavailable(e.to_string()))?;
        match response.status() {
            s if s.is_success() => Ok(()),
            s => Err(UpstreamAuthError::Unavailable(format!(
                "revocation answered HTTP {s}"
            ))),
        }
    }

    async fn refresh(&self, refresh: &SecretString) -> Result<UpstreamTokens, UpstreamAuthError> {
        let token = RefreshToken::new(refresh.expose_secret().to_owned());
        let mut request = self.client.exchange_refresh_token(&token);
        if let Some(resource) = &self.config.resource {
            request = request.add_extra_param("resource", resource);
        }
        let http = Http(self.http.clone());
        request
            .request_async(&http)
            .await
            .map(|r| to_tokens(&r))
            .map_err(classify)
    }
}

/// What we know about the upstream from configuration; the rest is discovered on first use.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// The upstream's issuer.
    pub issuer: String,
    /// Its authorization endpoint (with `token_endpoint`: no discovery needed).
    pub authorization_endpoint: Option<Url>,
    /// Its token endpoint.
    pub token_endpoint: Option<Url>,
    /// Its registration endpoint, for registering ourselves when no client id is configured.
    pub registration_endpoint: Option<Url>,
    /// Whether it promises `iss` on authorization responses (discovered when not set).
    pub requires_iss: Option<bool>,
    /// Our client id there (registered on first use when absent).
    pub client_id: Option<String>,
    /// Our client secret there.
    pub client_secret: Option<SecretString>,
    /// Send the secret in the body instead of HTTP Basic.
    pub secret_in_body: bool,
    /// Scopes to ask for.
    pub scopes: Vec<String>,
    /// The `resource` to ask for.
    pub resource: UpstreamResource,
    /// Our callback URL.
    pub redirect_uri: Url,
    /// Its revocation endpoint (discovered when not set).
    pub revocation_endpoint: Option<Url>,
    /// The name we register under, which the person sees at the provider ("mailconnect",
    /// "mailconnect notifier"); each name is a client of its own.
    pub client_name: &'static str,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// The upstream client, built on first use: discovery and registration need the network, and
/// the server must start without it (the README's run command reaches no other service).
pub struct LazyUpstream<R> {
    settings: UpstreamSettings,
    memory: Arc<R>,
    ready: tokio::sync::OnceCell<UpstreamOAuth>,
}

impl<R> std::fmt::Debug for LazyUpstream<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyUpstream")
            .field("issuer", &self.settings.issuer)
            .finish_non_exhaustive()
    }
}

impl<R: RegistrationMemory> LazyUpstream<R> {
    /// Wraps the settings.
    pub fn new(settings: UpstreamSettings, memory: Arc<R>) -> Self {
        Self {
            settings,
            memory,
            ready: tokio::sync::OnceCell::new(),
        }
    }

    async fn client(&self) -> Result<&UpstreamOAuth, UpstreamAuthError> {
        self.ready
            .get_or_try_init(|| self.build())
            .await
            .map_err(|e| UpstreamAuthError::Misconfigured(e.to_string()))
    }

    async fn build(&self) -> Result<UpstreamOAuth, UpstreamConfigError> {
        let s = &self.settings;
        let http = http_client(s.timeout)?;
        let mut revocation_endpoint = s.revocation_endpoint.clone();
        let (authorization_endpoint, token_endpoint, registration_endpoint, discovered_iss) =
            match (&s.authorization_endpoint, &s.token_endpoint) {
                (Some(a), Some(t)) => {
                    (a.clone(), t.clone(), s.registration_endpoint.clone(), false)
                }
                _ => {
                    let meta = discover(&http, &s.issuer).await?;
                    revocation_endpoint = revocation_endpoint.or(meta.revocation_endpoint);
                    (
                        meta.authorization_endpoint,
                        meta.token_endpoint,
                        s.registration_endpoint
                            .clone()
                            .or(meta.registration_endpoint),
                        meta.authorization_response_iss_parameter_supported,
                    )
                }
            };
        let resource = match &s.resource {
            UpstreamResource::Given(resource) => Some(resource.clone()),
            UpstreamResource::Published { session_url } => {
                let found = published_resource(&http, session_url, &s.issuer).await?;
                tracing::info!(
                    resource = found.as_deref().unwrap_or("none"),
                    "the resource to ask the upstream for, from the mail server's metadata"
                );
                found
            }
        };
        let client_id = match &s.client_id {
            Some(id) => id.clone(),
            None => {
                self.registered_client_id(&http, registration_endpoint.as_ref())
                    .await?
            }
        };
        UpstreamOAuth::new(UpstreamOAuthConfig {
            issuer: s.issuer.clone(),
            authorization_endpoint,
            token_endpoint,
            client_id,
            client_secret: s.client_secret.clone(),
            secret_in_body: s.secret_in_body,
            scopes: s.scopes.clone(),
            resource,
            redirect_uri: s.redirect_uri.clone(),
            revocation_endpoint,
            requires_iss: s.requires_iss.unwrap_or(discovered_iss),
            timeout: s.timeout,
        })
    }

    async fn registered_client_id(
        &self,
        http: &reqwest::Client,
        endpoint: Option<&Url>,
    ) -> Result<String, UpstreamConfigError> {
        // The notifier is a client of its own: its name is part of the key (the main
        // client's key predates names and keeps its form).
        let key = match self.settings.client_name {
            MAIN_CLIENT_NAME => format!(
                "upstream-client\0{}\0{}",
                self.settings.issuer, self.settings.redirect_uri
            ),
            name => format!(
                "upstream-client\0{}\0{}\0{name}",
                self.settings.issuer, self.settings.redirect_uri
            ),
        };
        if let Some(id) = self.memory.recall(&key).await.ok().flatten() {
            return Ok(id);
        }
        let endpoint = endpoint.ok_or_else(|| {
            UpstreamConfigError(format!(
                "no upstream client id is configured and {} offers no registration endpoint",
                self.settings.issuer
            ))
        })?;
        let id = register(
            http,
            endpoint,
            self.settings.client_name,
            &self.settings.redirect_uri,
            &self.settings.scopes,
        )
        .await?;
        self.memory
            .remember(&key, &id)
            .await
            .map_err(|e| UpstreamConfigError(e.to_string()))?;
        tracing::info!(issuer = %self.settings.issuer, "registered with the upstream authorization server");
        Ok(id)
    }
}

impl<R: RegistrationMemory> UpstreamAuth for LazyUpstream<R> {
    async fn accepts_issuer(&self, iss: Option<String>) -> bool {
        use subtle::ConstantTimeEq as _;
        match iss {
            Some(iss) => bool::from(iss.as_bytes().ct_eq(self.settings.issuer.as_bytes())),
            None => match self.client().await {
                Ok(client) => !client.config.requires_iss,
                Err(_) => false,
            },
        }
    }

    async fn authorization_url(
        &self,
        state: &str,
        code_challenge: &str,
    ) -> Result<String, UpstreamAuthError> {
        Ok(self
            .client()
            .await?
            .authorization_url(state, code_challenge))
    }

    async fn exchange_code(
        &self,
        code: &str,
        verifier: &SecretString,
    ) -> Result<UpstreamTokens, UpstreamAuthError> {
        self.client().await?.exchange_code(code, verifier).await
    }

    /// Transient failures (network, 5xx, 429) get a few jittered retries here, for every
    /// caller; `invalid_grant` and configuration errors are final at once.
    async fn refresh(&self, refresh: &SecretString) -> Result<UpstreamTokens, UpstreamAuthError> {
        let client = self.client().await?;
        let mut delay_ms = REFRESH_RETRY_BASE_MS;
        for _ in 1..REFRESH_ATTEMPTS {
            match client.refresh(refresh).await {
                Err(UpstreamAuthError::Unavailable(why)) => {
                    tracing::warn!(reason = %why, "upstream refresh failed; retrying");
                    let jitter = rand::random_range(0..=delay_ms / 2);
                    tokio::time::sleep(Duration::from_millis(delay_ms + jitter)).await;
                    delay_ms *= 2;
                }
                other => return other,
            }
        }
        client.refresh(refresh).await
    }

    async fn revoke(&self, token: &SecretString) -> Result<(), UpstreamAuthError> {
        self.client().await?.revoke(token).await
    }
}

/// Upstream refresh attempts in all, for transient failures.
pub const REFRESH_ATTEMPTS: u32 = 3;
const REFRESH_RETRY_BASE_MS: u64 = 250;

/// The name the main client registers under.
pub const MAIN_CLIENT_NAME: &str = "mailconnect";
/// The name the background notifier registers under: a client of its own, which the person
/// sees, and can revoke, separately.
pub const NOTIFIER_CLIENT_NAME: &str = "mailconnect notifier";
