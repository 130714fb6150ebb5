//! The authorization server's JSON endpoints (poem-openapi; the document is committed under
//! `openapi/`): discovery metadata (RFC 9728, RFC 8414), registration (RFC 7591), token
//! (RFC 6749, PKCE, rotation) and revocation (RFC 7009). Every error is the RFC 6749 §5.2 shape,
//! including for bodies that don't parse.

use std::{net::IpAddr, num::NonZeroU32, sync::Arc};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use poem::{Request, http::header};
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    payload::{Form, Json},
};

use crate::domain::{
    auth::{
        audience::MAIL_SCOPE,
        client::ClientMetadata,
        service::{AuthService, ClientCredentials, OAuthError, OAuthErrorCode},
        token::TokenPair,
    },
    ports::{AuditLog, ClientStore, FlowStore, MailStore, TokenVault, UpstreamAuth},
    secret::SecretString,
};

/// RFC 9728 protected resource metadata.
#[derive(Debug, Object)]
pub struct ProtectedResourceMetadata {
    /// The MCP endpoint.
    pub resource: String,
    /// Our issuer.
    pub authorization_servers: Vec<String>,
    /// The scopes a client may ask for.
    pub scopes_supported: Vec<String>,
    /// Only the Authorization header.
    pub bearer_methods_supported: Vec<String>,
    /// A name for people.
    pub resource_name: String,
}

/// RFC 8414 authorization server metadata.
#[derive(Debug, Object)]
pub struct AuthorizationServerMetadata {
    /// The issuer.
    pub issuer: String,
    /// Where the browser starts.
    pub authorization_endpoint: String,
    /// Tokens.
    pub token_endpoint: String,
    /// Dynamic client registration.
    pub registration_endpoint: String,
    /// Revocation.
    pub revocation_endpoint: String,
    /// Only `code`.
    pub response_types_supported: Vec<String>,
    /// `authorization_code`, `refresh_token`.
    pub grant_types_supported: Vec<String>,
    /// Only `S256`.
    pub code_challenge_methods_supported: Vec<String>,
    /// `none`, `client_secret_post`, `client_secret_basic`.
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// Same as for the token endpoint.
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    /// Our scope, and `offline_access` (accepted; refresh tokens are always issued).
    pub scopes_supported: Vec<String>,
    /// Clients may use an https URL of their metadata document as `client_id`.
    pub client_id_metadata_document_supported: bool,
    /// Every authorization response carries `iss` (RFC 9207).
    pub authorization_response_iss_parameter_supported: bool,
}

/// An RFC 6749 §5.2 error.
#[derive(Debug, Object)]
pub struct OAuthErrorBody {
    /// The error code.
    pub error: String,
    /// A sentence for the developer.
    #[oai(skip_serializing_if_is_none)]
    pub error_description: Option<String>,
}

impl From<&OAuthError> for OAuthErrorBody {
    fn from(e: &OAuthError) -> Self {
        Self {
            error: e.code.as_str().to_owned(),
            error_description: Some(e.description.clone()),
        }
    }
}

fn error_body(code: OAuthErrorCode, description: &str) -> Json<OAuthErrorBody> {
    Json(OAuthErrorBody::from(&OAuthError::new(code, description)))
}

/// An RFC 7591 registration request (unknown members are ignored).
#[derive(Debug, Object)]
pub struct RegistrationRequest {
    /// Where the client may be sent back to.
    pub redirect_uris: Option<Vec<String>>,
    /// A name for the consent screen.
    pub client_name: Option<String>,
    /// `none` (default), `client_secret_post` or `client_secret_basic`.
    pub token_endpoint_auth_method: Option<String>,
    /// Must include `authorization_code`.
    pub grant_types: Option<Vec<String>>,
    /// Only `code`.
    pub response_types: Option<Vec<String>>,
    /// Accepted and ignored (we grant one scope).
    pub scope: Option<String>,
}

/// An RFC 7591 registration response.
#[derive(Debug, Object)]
pub struct RegistrationResponse {
    /// The new client id.
    pub client_id: String,
    /// The secret, for confidential clients (shown only here).
    #[oai(skip_serializing_if_is_none)]
    pub client_secret: Option<String>,
    /// Unix seconds.
    pub client_id_issued_at: i64,
    /// 0: the secret does not expire.
    pub client_secret_expires_at: i64,
    /// The name shown on the consent screen.
    pub client_name: String,
    /// The registered redirect URIs.
    pub redirect_uris: Vec<String>,
    /// `authorization_code`, `refresh_token`.
    pub grant_types: Vec<String>,
    /// `code`.
    pub response_types: Vec<String>,
    /// As registered.
    pub token_endpoint_auth_method: String,
    /// The scope every grant gets.
    pub scope: String,
}

/// A token request (`application/x-www-form-urlencoded`).
#[derive(Debug, Object, serde::Deserialize)]
pub struct TokenRequest {
    /// `authorization_code` or `refresh_token`.
    pub grant_type: Option<String>,
    /// The authorization code.
    pub code: Option<String>,
    /// The redirect URI of the authorization request.
    pub redirect_uri: Option<String>,
    /// The PKCE verifier.
    pub code_verifier: Option<String>,
    /// The refresh token.
    pub refresh_token: Option<String>,
    /// The client (public clients and `client_secret_post`).
    pub client_id: Option<String>,
    /// The secret (`client_secret_post`).
    pub client_secret: Option<String>,
    /// A narrower scope (refresh).
    pub scope: Option<String>,
    /// The resource (RFC 8707); defaults to the MCP endpoint.
    pub resource: Option<String>,
}

/// A successful token response.
#[derive(Debug, Object)]
pub struct TokenResponse {
    /// For `Authorization: Bearer` on `/mcp`.
    pub access_token: String,
    /// `Bearer`.
    pub token_type: String,
    /// Seconds.
    pub expires_in: i64,
    /// Single use: each refresh returns a new one.
    pub refresh_token: String,
    /// The granted scope.
    pub scope: String,
}

/// A revocation request (RFC 7009).
#[derive(Debug, Object, serde::Deserialize)]
pub struct RevocationRequest {
    /// The token.
    pub token: Option<String>,
    /// `access_token` or `refresh_token` (a hint; both are found without it).
    pub token_type_hint: Option<String>,
    /// The client (public clients and `client_secret_post`).
    pub client_id: Option<String>,
    /// The secret (`client_secret_post`).
    pub client_secret: Option<String>,
}

#[derive(Debug, ApiResponse)]
enum MetadataResponse<T: poem_openapi::types::ToJSON + Send + Sync> {
    /// The document.
    #[oai(status = 200)]
    Ok(Json<T>),
}

#[derive(Debug, ApiResponse)]
enum NotFoundResponse {
    /// We are not an OpenID provider.
    #[oai(status = 404)]
    NotFound(Json<OAuthErrorBody>),
}

#[derive(Debug, ApiResponse)]
#[oai(bad_request_handler = "bad_registration")]
enum RegisterResponse {
    /// Registered.
    #[oai(status = 201)]
    Created(Json<RegistrationResponse>),
    /// `invalid_redirect_uri` or `invalid_client_metadata`.
    #[oai(status = 400)]
    BadRequest(Json<OAuthErrorBody>),
    /// Too many registrations from this address.
    #[oai(status = 429)]
    TooMany(Json<OAuthErrorBody>),
    /// The store is unavailable.
    #[oai(status = 503)]
    Unavailable(Json<OAuthErrorBody>),
}

#[allow(clippy::needless_pass_by_value)] // the signature poem-openapi calls
fn bad_registration(err: poem::Error) -> RegisterResponse {
    RegisterResponse::BadRequest(error_body(
        OAuthErrorCode::InvalidClientMetadata,
        &format!("the registration body is not valid client metadata JSON: {err}"),
    ))
}

#[derive(Debug, ApiResponse)]
#[oai(bad_request_handler = "bad_token_request")]
enum TokenEndpointResponse {
    /// Tokens.
    #[oai(status = 200)]
    Ok(Json<TokenResponse>),
    /// An RFC 6749 error.
    #[oai(status = 400)]
    BadRequest(Json<OAuthErrorBody>),
    /// Client authentication failed.
    #[oai(status = 401)]
    Unauthorized(
        Json<OAuthErrorBody>,
        #[oai(header = "WWW-Authenticate")] String,
    ),
    /// The store is unavailable.
    #[oai(status = 503)]
    Unavailable(Json<OAuthErrorBody>),
}

#[allow(clippy::needless_pass_by_value)] // the signature poem-openapi calls
fn bad_token_request(err: poem::Error) -> TokenEndpointResponse {
    TokenEndpointResponse::BadRequest(error_body(
        OAuthErrorCode::InvalidRequest,
        &format!("send an application/x-www-form-urlencoded body: {err}"),
    ))
}

impl From<OAuthError> for TokenEndpointResponse {
    fn from(e: OAuthError) -> Self {
        match e.code {
            OAuthErrorCode::InvalidClient => {
                Self::Unauthorized(Json((&e).into()), "Basic realm=\"mailconnect\"".into())
            }
            OAuthErrorCode::TemporarilyUnavailable | OAuthErrorCode::ServerError => {
                Self::Unavailable(Json((&e).into()))
            }
            _ => Self::BadRequest(Json((&e).into())),
        }
    }
}

#[derive(Debug, ApiResponse)]
#[oai(bad_request_handler = "bad_revocation")]
enum RevokeResponse {
    /// Revoked, or nothing to revoke (the answer is the same).
    #[oai(status = 200)]
    Ok,
    /// A malformed request.
    #[oai(status = 400)]
    BadRequest(Json<OAuthErrorBody>),
    /// Client authentication failed.
    #[oai(status = 401)]
    Unauthorized(
        Json<OAuthErrorBody>,
        #[oai(header = "WWW-Authenticate")] String,
    ),
    /// The store is unavailable.
    #[oai(status = 503)]
    Unavailable(Json<OAuthErrorBody>),
}

#[allow(clippy::needless_pass_by_value)] // the signature poem-openapi calls
fn bad_revocation(err: poem::Error) -> RevokeResponse {
    RevokeResponse::BadRequest(error_body(
        OAuthErrorCode::InvalidRequest,
        &format!("send an application/x-www-form-urlencoded body: {err}"),
    ))
}

impl From<OAuthError> for RevokeResponse {
    fn from(e: OAuthError) -> Self {
        match TokenEndpointResponse::from(e) {
            TokenEndpointResponse::Unauthorized(body, challenge) => {
                Self::Unauthorized(body, challenge)
            }
            TokenEndpointResponse::Unavailable(body) => Self::Unavailable(body),
            TokenEndpointResponse::BadRequest(body) => Self::BadRequest(body),
            TokenEndpointResponse::Ok(_) => Self::Ok,
        }
    }
}

/// How a client authenticated: `Authorization: Basic` or the body, never both (RFC 6749 §2.3).
fn client_credentials(
    req: &Request,
    client_id: Option<&str>,
    client_secret: Option<&str>,
) -> Result<ClientCredentials, OAuthError> {
    let invalid = |m: &str| OAuthError::new(OAuthErrorCode::InvalidClient, m);
    if let Some(value) = req.headers().get(header::AUTHORIZATION) {
        let value = value
            .to_str()
            .map_err(|_| invalid("malformed Authorization header"))?;
        let (scheme, encoded) = value
            .trim()
            .split_once(' ')
            .ok_or_else(|| invalid("malformed Authorization header"))?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(invalid(
                "only HTTP Basic client authentication is supported in the header",
            ));
        }
        if client_secret.is_some() {
            return Err(OAuthError::new(
                OAuthErrorCode::InvalidRequest,
                "use one client authentication method",
            ));
        }
        let decoded = STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .ok_or_else(|| invalid("malformed Basic credentials"))?;
        let (id, secret) = decoded
            .split_once(':')
            .ok_or_else(|| invalid("malformed Basic credentials"))?;
        let id = form_decode(id);
        if client_id.is_some_and(|c| c != id) {
            return Err(invalid("client_id differs from the Basic credentials"));
        }
        return Ok(ClientCredentials {
            client_id: id,
            secret: Some(SecretString::new(form_decode(secret))),
            basic: true,
        });
    }
    let client_id = client_id
        .filter(|c| !c.is_empty())
        .ok_or_else(|| invalid("client_id is required"))?;
    Ok(ClientCredentials {
        client_id: client_id.to_owned(),
        secret: client_secret
            .filter(|s| !s.is_empty())
            .map(SecretString::new),
        basic: false,
    })
}

/// RFC 6749 §2.3.1: Basic credentials are form-encoded first.
fn form_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn token_response(pair: &TokenPair) -> TokenEndpointResponse {
    TokenEndpointResponse::Ok(Json(TokenResponse {
        access_token: pair.access.token.expose_secret().to_owned(),
        token_type: "Bearer".into(),
        expires_in: (pair.access.expires_at - chrono::Utc::now().timestamp()).max(0),
        refresh_token: pair.refresh.token.expose_secret().to_owned(),
        scope: pair.scope.clone(),
    }))
}

/// Registrations per client address: generous, since hosted clients share egress addresses.
pub const REGISTRATIONS_PER_MINUTE: u32 = 30;

/// The OAuth JSON API.
pub struct OAuthApi<V, C, U, M> {
    auth: Arc<AuthService<V, C, U, M>>,
    registrations: DefaultKeyedRateLimiter<IpAddr>,
}

impl<V, C, U, M> OAuthApi<V, C, U, M> {
    /// Serves `auth`.
    pub fn new(auth: Arc<AuthService<V, C, U, M>>) -> Self {
        let per_minute = NonZeroU32::new(REGISTRATIONS_PER_MINUTE).unwrap_or(NonZeroU32::MIN);
        Self {
            auth,
            registrations: RateLimiter::keyed(Quota::per_minute(per_minute)),
        }
    }
}

#[OpenApi]
impl<V: TokenVault + AuditLog + FlowStore, C: ClientStore, U: UpstreamAuth, M: MailStore>
    OAuthApi<V, C, U, M>
{
    /// Protected resource metadata of the MCP endpoint (RFC 9728).
    #[oai(
        path = "/.well-known/oauth-protected-resource/mcp",
        method = "get",
        operation_id = "protectedResourceMetadata"
    )]
    async fn protected_resource(&self) -> MetadataResponse<ProtectedResourceMetadata> {
        let audience = self.auth.audience();
        MetadataResponse::Ok(Json(ProtectedResourceMetadata {
            resource: audience.resource().to_owned(),
            authorization_servers: vec![audience.issuer().to_owned()],
            scopes_supported: vec![MAIL_SCOPE.to_owned()],
            bearer_methods_supported: vec!["header".into()],
            resource_name: "mailconnect".into(),
        }))
    }

    /// The same document at the root path, for clients that look there.
    #[oai(
        path = "/.well-known/oauth-protected-resource",
        method = "get",
        operation_id = "protectedResourceMetadataRoot"
    )]
    async fn protected_resource_root(&self) -> MetadataResponse<ProtectedResourceMetadata> {
        self.protected_resource().await
    }

    /// Authorization server metadata (RFC 8414).
    #[oai(
        path = "/.well-known/oauth-authorization-server",
        method = "get",
        operation_id = "authorizationServerMetadata"
    )]
    async fn authorization_server(&self) -> MetadataResponse<AuthorizationServerMetadata> {
        let a = self.auth.audience();
        let methods = vec![
            "none".to_owned(),
            "client_secret_post".to_owned(),
            "client_secret_basic".to_owned(),
        ];
        MetadataResponse::Ok(Json(AuthorizationServerMetadata {
            issuer: a.issuer().to_owned(),
            authorization_endpoint: a.url("/authorize"),
            token_endpoint: a.url("/token"),
            registration_endpoint: a.url("/register"),
            revocation_endpoint: a.url("/revoke"),
            response_types_supported: vec!["code".into()],
            grant_types_supported: vec!["authorization_code".into(), "refresh_token".into()],
            code_challenge_methods_supported: vec!["S256".into()],
            token_endpoint_auth_methods_supported: methods.clone(),
            revocation_endpoint_auth_methods_supported: methods,
            scopes_supported: vec![MAIL_SCOPE.to_owned(), "offline_access".into()],
            client_id_metadata_document_supported: true,
            authorization_response_iss_parameter_supported: true,
        }))
    }

    /// Not an OpenID provider: a JSON 404 (clients probe this path).
    #[oai(
        path = "/.well-known/openid-configuration",
        method = "get",
        operation_id = "openidConfiguration"
    )]
    async fn openid_configuration(&self) -> NotFoundResponse {
        NotFoundResponse::NotFound(error_body(
            OAuthErrorCode::InvalidRequest,
            "this server is an OAuth 2.1 authorization server, not an OpenID provider; see /.well-known/oauth-authorization-server",
        ))
    }

    /// Dynamic client registration (RFC 7591).
    #[oai(path = "/register", method = "post", operation_id = "registerClient")]
    async fn register(&self, req: &Request, body: Json<RegistrationRequest>) -> RegisterResponse {
        if let Some(ip) = req
            .remote_addr()
            .as_socket_addr()
            .map(std::net::SocketAddr::ip)
            && self.registrations.check_key(&ip).is_err()
        {
            return RegisterResponse::TooMany(error_body(
                OAuthErrorCode::TemporarilyUnavailable,
                "too many registrations from this address; try again in a minute",
            ));
        }
        let body = body.0;
        let meta = ClientMetadata {
            redirect_uris: body.redirect_uris.unwrap_or_default(),
            client_name: body.client_name,
            token_endpoint_auth_method: body.token_endpoint_auth_method,
            token_endpoint_auth_methods: Vec::new(),
            grant_types: body.grant_types,
            response_types: body.response_types,
        };
        match self.auth.register(&meta).await {
            Ok(registered) => {
                let c = registered.client;
                RegisterResponse::Created(Json(RegistrationResponse {
                    client_id: c.id.as_str().to_owned(),
                    client_secret: registered.secret.map(|s| s.expose_secret().to_owned()),
                    client_id_issued_at: c.created_at,
                    client_secret_expires_at: 0,
                    client_name: c.name,
                    redirect_uris: c
                        .redirect_uris
                        .iter()
                        .map(|r| r.as_str().to_owned())
                        .collect(),
                    grant_types: vec!["authorization_code".into(), "refresh_token".into()],
                    response_types: vec!["code".into()],
                    token_endpoint_auth_method: c.auth_method.as_str().to_owned(),
                    scope: MAIL_SCOPE.to_owned(),
                }))
            }
            Err(e) if e.code == OAuthErrorCode::TemporarilyUnavailable => {
                RegisterResponse::Unavailable(Json((&e).into()))
            }
            Err(e) => RegisterResponse::BadRequest(Json((&e).into())),
        }
    }

    /// The token endpoint: `authorization_code` and `refresh_token` grants.
    #[oai(path = "/token", method = "post", operation_id = "token")]
    async fn token(&self, req: &Request, form: Form<TokenRequest>) -> TokenEndpointResponse {
        let f = form.0;
        let creds =
            match client_credentials(req, f.client_id.as_deref(), f.client_secret.as_deref()) {
                Ok(c) => c,
                Err(e) => return e.into(),
            };
        let client = match self.auth.authenticate_client(&creds).await {
            Ok(c) => c,
            Err(e) => return e.into(),
        };
        let result = match f.grant_type.as_deref() {
            Some("authorization_code") => {
                let Some(code) = f.code.as_deref() else {
                    return OAuthError::new(OAuthErrorCode::InvalidRequest, "code is required")
                        .into();
                };
                self.auth
                    .exchange_code(
                        &client,
                        code,
                        f.redirect_uri.as_deref(),
                        f.code_verifier.as_deref(),
                        f.resource.as_deref(),
                    )
                    .await
            }
            Some("refresh_token") => {
                let Some(refresh) = f.refresh_token.as_deref() else {
                    return OAuthError::new(
                        OAuthErrorCode::InvalidRequest,
                        "refresh_token is required",
                    )
                    .into();
                };
                self.auth
                    .refresh(&client, refresh, f.scope.as_deref(), f.resource.as_deref())
                    .await
            }
            Some(_) => Err(OAuthError::new(
                OAuthErrorCode::UnsupportedGrantType,
                "grant_type must be authorization_code or refresh_token",
            )),
            None => Err(OAuthError::new(
                OAuthErrorCode::InvalidRequest,
                "grant_type is required",
            )),
        };
        match result {
            Ok(pair) => token_response(&pair),
            Err(e) => e.into(),
        }
    }

    /// Token revocation (RFC 7009).
    #[oai(path = "/revoke", method = "post", operation_id = "revoke")]
    async fn revoke(&self, req: &Request, form: Form<RevocationRequest>) -> RevokeResponse {
        let f = form.0;
        let creds =
            match client_credentials(req, f.client_id.as_deref(), f.client_secret.as_deref()) {
                Ok(c) => c,
                Err(e) => return e.into(),
            };
        let client = match self.auth.authenticate_client(&creds).await {
            Ok(c) => c,
            Err(e) => return e.into(),
        };
        let Some(token) = f.token.filter(|t| !t.is_empty()) else {
            return OAuthError::new(OAuthErrorCode::InvalidRequest, "token is required").into();
        };
        match self.auth.revoke(&client, &token).await {
            Ok(()) => RevokeResponse::Ok,
            Err(e) => e.into(),
        }
    }
}
