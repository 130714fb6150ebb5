//! The HTTP surface (poem): `/mcp` behind bearer authentication, the authorization server's
//! JSON API and browser pages, and the operations API. The JSON APIs are declared with
//! poem-openapi; their document is committed under `openapi/`.

use std::sync::Arc;

use poem::{
    Endpoint, EndpointExt, IntoResponse, Request, Response, Route,
    endpoint::{TowerCompatExt, make},
    http::{Method, StatusCode, header},
    middleware::SetHeader,
};
use poem_openapi::{ApiResponse, Object, OpenApi, OpenApiService, payload::Json};
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};

use super::{mcp::McpHandler, oauth::OAuthApi, pages::Pages};
use crate::domain::{
    auth::{audience::MAIL_SCOPE, service::AuthService},
    grant::AccessToken,
    ports::{
        ApprovalStore, AuditLog, ClientStore, FlowStore, MailStore, Policy, TokenVault,
        UpstreamAuth,
    },
    service::{Fittings, MailService, ServiceError},
};

/// Service health.
#[derive(Debug, Object)]
pub struct Health {
    /// Always "ok" when the process serves requests.
    pub status: String,
    /// The server's version.
    pub version: String,
}

#[derive(Debug, ApiResponse)]
enum HealthResponse {
    /// The server is up.
    #[oai(status = 200)]
    Ok(Json<Health>),
}

/// Operations endpoints (no authentication, no mail data).
#[derive(Debug, Default)]
pub struct OpsApi;

#[OpenApi]
impl OpsApi {
    /// Liveness and version.
    #[oai(path = "/healthz", method = "get", operation_id = "health")]
    async fn health(&self) -> HealthResponse {
        HealthResponse::Ok(Json(Health {
            status: "ok".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }))
    }
}

/// The JSON APIs as one OpenAPI service.
pub type ApiService<V, C, U, M> = OpenApiService<(OpsApi, OAuthApi<V, C, U, M>), ()>;

/// Builds the OpenAPI service around the authorization server.
pub fn api_service<
    V: TokenVault + AuditLog + FlowStore,
    C: ClientStore,
    U: UpstreamAuth,
    M: MailStore,
>(
    auth: Arc<AuthService<V, C, U, M>>,
) -> ApiService<V, C, U, M> {
    OpenApiService::new((OpsApi, OAuthApi::new(auth)), "mailconnect", env!("CARGO_PKG_VERSION")).description(
        "The OAuth 2.1 authorization server (discovery, registration, token, revocation) and operations API of \
mailconnect. The MCP endpoint is /mcp (streamable HTTP); the browser pages of the connect flow are /authorize, \
/authorize/decision and /auth/callback.",
    )
}

/// The committed form of an OpenAPI document (stable: no server URL, ends with a newline).
#[must_use]
pub fn committed_form<
    V: TokenVault + AuditLog + FlowStore,
    C: ClientStore,
    U: UpstreamAuth,
    M: MailStore,
>(
    api: &ApiService<V, C, U, M>,
) -> String {
    format!("{}\n", api.spec().trim_end())
}

fn bearer(req: &Request) -> Option<AccessToken> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| AccessToken::new(token))
}

/// RFC 6750 §3 / RFC 9728 §5.1: 401 with a challenge that says where the metadata is, and
/// `error=` only when a token was presented.
fn unauthorized(resource_metadata: &str, error: Option<&str>, description: &str) -> Response {
    let mut challenge =
        format!("Bearer resource_metadata=\"{resource_metadata}\", scope=\"{MAIL_SCOPE}\"");
    if let Some(code) = error {
        challenge.push_str(&format!(
            ", error=\"{code}\", error_description=\"{description}\""
        ));
    }
    let body = serde_json::json!({
        "error": error.unwrap_or("invalid_request"),
        "error_description": description,
    });
    Response::builder()
        .status(StatusCode::UNAUTHORIZED)
        .header(header::WWW_AUTHENTICATE, challenge)
        .header(header::CACHE_CONTROL, "no-store")
        .content_type("application/json")
        .body(body.to_string())
}

fn problem(status: StatusCode, title: &str) -> Response {
    Response::builder()
        .status(status)
        .content_type("application/problem+json")
        .body(
            serde_json::json!({"type": "about:blank", "title": title, "status": status.as_u16()})
                .to_string(),
        )
}

/// Whether a browser `Origin` may call the API: exact origins, or `scheme://host:*` for any port.
#[must_use]
pub fn origin_allowed(origin: &str, allowed: &[String]) -> bool {
    allowed.iter().any(|a| {
        if let Some(prefix) = a.strip_suffix(":*") {
            origin == prefix
                || origin
                    .strip_prefix(prefix)
                    .and_then(|rest| rest.strip_prefix(':'))
                    .is_some_and(|port| {
                        !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
                    })
        } else {
            origin == a
        }
    })
}

const CORS_ALLOW_HEADERS: &str = "Authorization, Content-Type, Accept, Mcp-Session-Id, MCP-Protocol-Version, Mcp-Method, Mcp-Name, Last-Event-ID";

/// CORS for browser-based clients on the API (never on the pages), and the Origin check the MCP
/// transport requires: a present Origin that is not allowed gets 403 before anything else.
fn cors<E: Endpoint + 'static>(
    ep: E,
    allowed: Arc<Vec<String>>,
) -> impl Endpoint<Output = Response> {
    ep.around(move |ep, req| {
        let allowed = Arc::clone(&allowed);
        async move {
            let origin = req
                .headers()
                .get(header::ORIGIN)
                .and_then(|o| o.to_str().ok())
                .map(str::to_owned);
            if let Some(origin) = &origin
                && !origin_allowed(origin, &allowed)
            {
                return Ok(problem(
                    StatusCode::FORBIDDEN,
                    "this Origin may not call mailconnect",
                ));
            }
            let mut resp = if req.method() == Method::OPTIONS {
                Response::builder()
                    .status(StatusCode::NO_CONTENT)
                    .header(
                        header::ACCESS_CONTROL_ALLOW_METHODS,
                        "GET, POST, DELETE, HEAD, OPTIONS",
                    )
                    .header(header::ACCESS_CONTROL_ALLOW_HEADERS, CORS_ALLOW_HEADERS)
                    .header(header::ACCESS_CONTROL_MAX_AGE, "86400")
                    .finish()
            } else {
                ep.call(req)
                    .await
                    .map(IntoResponse::into_response)
                    .unwrap_or_else(|e| e.into_response())
            };
            if let Some(origin) = origin
                && let Ok(value) = origin.parse()
            {
                let h = resp.headers_mut();
                h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
                h.insert(
                    header::ACCESS_CONTROL_EXPOSE_HEADERS,
                    header::HeaderValue::from_static(
                        "WWW-Authenticate, Mcp-Session-Id, MCP-Protocol-Version",
                    ),
                );
                h.append(header::VARY, header::HeaderValue::from_static("Origin"));
            }
            Ok(resp)
        }
    })
}

const MCP_SESSION_ID: &str = "mcp-session-id";

/// Which grant opened each legacy MCP session.
#[derive(Debug, Default)]
struct SessionOwners(
    std::sync::Mutex<std::collections::HashMap<String, crate::domain::grant::GrantId>>,
);

impl SessionOwners {
    const LIMIT: usize = 100_000;

    fn map(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, crate::domain::grant::GrantId>>
    {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn owned_by(&self, session: &str, grant: &crate::domain::grant::GrantId) -> bool {
        self.map().get(session) == Some(grant)
    }

    fn insert(&self, session: &str, grant: crate::domain::grant::GrantId) {
        let mut map = self.map();
        // Sessions end by idling out inside rmcp without telling us; an old entry only
        // answers "not found" for a session that no longer exists anyway.
        if map.len() >= Self::LIMIT {
            map.clear();
        }
        map.insert(session.to_owned(), grant);
    }

    fn remove(&self, session: &str) {
        self.map().remove(session);
    }
}

/// One log line per request: method, path, status, time. Never the query string: it carries
/// authorization codes and `state` (and anything a client mistakenly puts there).
pub fn access_log<E: Endpoint + 'static>(ep: E) -> impl Endpoint<Output = Response> {
    ep.around(|ep, req| async move {
        let started = std::time::Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let resp = ep.call(req).await.map(IntoResponse::into_response).unwrap_or_else(|e| e.into_response());
        tracing::info!(%method, path, status = resp.status().as_u16(), elapsed_us = started.elapsed().as_micros() as u64, "request");
        Ok(resp)
    })
}

/// Largest request body of the OAuth API.
pub const MAX_API_BODY: usize = 64 * 1024;

/// Reads at most [`MAX_API_BODY`] bytes of a body (with or without `Content-Length`); more is
/// 413 before any handler runs.
fn limit_body<E: Endpoint + 'static>(ep: E) -> impl Endpoint<Output = Response> {
    ep.around(|ep, mut req| async move {
        let too_large = || {
            problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the request body is too large",
            )
        };
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > MAX_API_BODY) {
            return Ok(too_large());
        }
        let Ok(body) = req.take_body().into_bytes_limit(MAX_API_BODY).await else {
            return Ok(too_large());
        };
        req.set_body(body);
        Ok(ep
            .call(req)
            .await
            .map(IntoResponse::into_response)
            .unwrap_or_else(|e| e.into_response()))
    })
}

/// What the routes serve.
pub struct Surfaces<M, V, P, F, C, U> {
    /// The mail use cases.
    pub service: Arc<MailService<M, V, P, F>>,
    /// The MCP handler.
    pub handler: McpHandler<M, V, P, F>,
    /// The authorization server.
    pub auth: Arc<AuthService<V, C, U, M>>,
    /// rmcp's transport settings.
    pub mcp_config: StreamableHttpServerConfig,
    /// Idle lifetime of legacy sessions.
    pub session_idle: std::time::Duration,
    /// The public URL (server entry of the served OpenAPI document).
    pub public_url: String,
    /// Browser origins allowed on the API.
    pub allowed_origins: Vec<String>,
    /// Whether cookies get `Secure` and `__Host-` (https deployments).
    pub secure_cookies: bool,
    /// Legacy sessions to tell when a grant's tool list changes.
    pub watchers: Arc<super::mcp::ToolListWatchers>,
    /// The review page's use cases.
    pub review: Arc<crate::domain::service::ReviewDesk<V>>,
    /// Background notifications, when the operator offers them.
    pub background: Option<Arc<dyn super::BackgroundDesk>>,
    /// Tests only: webhook destinations over http and on loopback.
    pub allow_insecure_destinations: bool,
}

/// The routes: `/mcp` (authenticated), the OAuth API and pages, `/healthz`, `/openapi.json`.
pub fn routes<
    M: MailStore,
    V: TokenVault + Policy + AuditLog + ApprovalStore + FlowStore,
    P: Policy,
    F: Fittings,
    C: ClientStore,
    U: UpstreamAuth,
>(
    s: Surfaces<M, V, P, F, C, U>,
) -> Route {
    let Surfaces {
        service,
        handler,
        auth,
        mcp_config,
        session_idle,
        public_url,
        allowed_origins,
        secure_cookies,
        watchers,
        review,
        background,
        allow_insecure_destinations,
    } = s;
    let resource_metadata = auth
        .audience()
        .url("/.well-known/oauth-protected-resource/mcp");
    let mut sessions = LocalSessionManager::default();
    sessions.session_config.keep_alive = Some(session_idle);
    let mcp =
        StreamableHttpService::new(move || Ok(handler.clone()), Arc::new(sessions), mcp_config);
    let owners = Arc::new(SessionOwners::default());
    let guarded = mcp.compat().map_to_response().around(move |ep, mut req| {
        let service = Arc::clone(&service);
        let resource_metadata = resource_metadata.clone();
        let owners = Arc::clone(&owners);
        async move {
            // Tokens in URLs end up in logs and histories: refused outright.
            if req
                .uri()
                .query()
                .is_some_and(|q| q.split('&').any(|p| p.starts_with("access_token=")))
            {
                return Ok(unauthorized(
                    &resource_metadata,
                    Some("invalid_request"),
                    "send the token in the Authorization header, not the URL",
                ));
            }
            let Some(token) = bearer(&req) else {
                return Ok(unauthorized(
                    &resource_metadata,
                    None,
                    "send an OAuth access token as Authorization: Bearer",
                ));
            };
            match service.authenticate(&token).await {
                Ok(caller) => {
                    let grant = caller.grant.clone();
                    let session = req
                        .headers()
                        .get(MCP_SESSION_ID)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    // A session belongs to the grant that opened it: another grant's token can't
                    // use (or guess its way into) it.
                    if let Some(id) = &session
                        && !owners.owned_by(id, &grant)
                    {
                        return Ok(problem(StatusCode::NOT_FOUND, "no such session"));
                    }
                    let closing = req.method() == Method::DELETE;
                    req.extensions_mut().insert(caller);
                    let resp = ep.call(req).await?.into_response();
                    match (
                        &session,
                        resp.headers()
                            .get(MCP_SESSION_ID)
                            .and_then(|v| v.to_str().ok()),
                    ) {
                        (None, Some(new)) => owners.insert(new, grant),
                        (Some(id), _) if closing => owners.remove(id),
                        _ => {}
                    }
                    Ok(resp)
                }
                Err(ServiceError::Unauthenticated(_)) => Ok(unauthorized(
                    &resource_metadata,
                    Some("invalid_token"),
                    "the access token is unknown, expired, revoked or for another resource",
                )),
                Err(other) => {
                    tracing::error!(error = %other, "authentication failed");
                    Ok(problem(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "temporarily unavailable",
                    ))
                }
            }
        }
    });
    let guarded = Arc::new(guarded);
    let allowed = Arc::new(allowed_origins);
    let mcp_at = |g: &Arc<_>| cors(Arc::clone(g), Arc::clone(&allowed));
    let api = api_service(Arc::clone(&auth)).server(public_url.trim_end_matches('/'));
    let spec = api.spec_endpoint();
    let api = cors(
        limit_body(
            api.with(
                SetHeader::new()
                    .overriding(header::CACHE_CONTROL, "no-store")
                    .overriding(header::PRAGMA, "no-cache"),
            ),
        ),
        Arc::clone(&allowed),
    );
    let settings = Arc::new(
        super::settings::Settings::new(Arc::clone(&auth), watchers, secure_cookies)
            .with_background(background.clone(), allow_insecure_destinations),
    );
    let review = Arc::new(super::approve::ReviewPage::new(
        Arc::clone(&auth),
        review,
        secure_cookies,
    ));
    let pages = Arc::new(Pages::new(auth, secure_cookies, background));
    // One endpoint per page method: `served!(pages, authorize)` calls `pages.authorize(req)`.
    macro_rules! served {
        ($owner:ident, $method:ident) => {{
            let owner = Arc::clone(&$owner);
            make(move |req| {
                let owner = Arc::clone(&owner);
                async move { Ok::<_, poem::Error>(owner.$method(req).await) }
            })
        }};
    }
    let script = make(|_req| async {
        Ok::<_, poem::Error>(
            Response::builder()
                .content_type("text/javascript; charset=utf-8")
                .header(header::CACHE_CONTROL, "no-cache")
                .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
                .body(super::approve::SCRIPT),
        )
    });
    Route::new()
        .at("/settings", poem::get(served!(settings, show)))
        .at("/settings/sign-in", poem::post(served!(settings, sign_in)))
        .at(
            "/settings/sign-out",
            poem::post(served!(settings, sign_out)),
        )
        .at(
            "/settings/connections/:grant/capabilities",
            poem::post(served!(settings, capabilities)),
        )
        .at(
            "/settings/connections/:grant/revoke",
            poem::post(served!(settings, revoke)),
        )
        .at(
            "/settings/connections/:grant/recipients",
            poem::post(served!(settings, recipients)),
        )
        .at(
            "/settings/connections/:grant/notify",
            poem::post(served!(settings, notify)),
        )
        .at(
            "/settings/connections/:grant/background",
            poem::post(served!(settings, background_on)),
        )
        .at(
            "/settings/connections/:grant/background/off",
            poem::post(served!(settings, background_off)),
        )
        .at(
            "/approve/:id",
            poem::get(served!(review, show)).post(served!(review, decide)),
        )
        .at("/approve.js", poem::get(script))
        .at("/mcp", mcp_at(&guarded))
        .at("/mcp/", mcp_at(&guarded))
        .at("/openapi.json", spec)
        .at("/authorize", poem::get(served!(pages, authorize)))
        .at("/authorize/decision", poem::post(served!(pages, decide)))
        .at("/auth/callback", poem::get(served!(pages, callback)))
        .nest("/", api)
}
