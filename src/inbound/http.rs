//! The HTTP surface (poem): `/mcp` behind bearer authentication, and the operations API
//! declared with poem-openapi (its document is committed under `openapi/`).

use std::sync::Arc;

use poem::{
    Endpoint, EndpointExt, IntoResponse, Request, Response, Route,
    endpoint::TowerCompatExt,
    http::{StatusCode, header},
};
use poem_openapi::{ApiResponse, Object, OpenApi, OpenApiService, payload::Json};
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};

use super::mcp::McpHandler;
use crate::domain::{
    grant::AccessToken,
    ports::{MailStore, Policy, TokenVault},
    service::{MailService, ServiceError},
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

/// The OpenAPI service for the HTTP API, with `public_url` as its server.
#[must_use]
pub fn openapi(public_url: &str) -> OpenApiService<OpsApi, ()> {
    api_document().server(public_url.trim_end_matches('/'))
}

fn api_document() -> OpenApiService<OpsApi, ()> {
    OpenApiService::new(OpsApi, "mailconnect", env!("CARGO_PKG_VERSION"))
        .description("HTTP API of mailconnect besides the MCP endpoint at /mcp.")
}

/// The committed form of the OpenAPI document (stable: no server URL, ends with a newline).
#[must_use]
pub fn openapi_document() -> String {
    let doc = api_document().spec();
    format!("{}\n", doc.trim_end())
}

fn bearer(req: &Request) -> Option<AccessToken> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| AccessToken::new(token))
}

/// RFC 6750 §3: 401 with a `WWW-Authenticate: Bearer` challenge and a JSON body.
fn unauthorized(error: Option<&str>, description: &str) -> Response {
    let challenge = match error {
        Some(code) => format!(
            "Bearer realm=\"mailconnect\", error=\"{code}\", error_description=\"{description}\""
        ),
        None => "Bearer realm=\"mailconnect\"".to_owned(),
    };
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

/// The routes: `/mcp` (authenticated), `/healthz`, `/openapi.json`.
pub fn routes<M: MailStore, V: TokenVault, P: Policy>(
    service: Arc<MailService<M, V, P>>,
    handler: McpHandler<M, V, P>,
    mcp_config: StreamableHttpServerConfig,
    session_idle: std::time::Duration,
    public_url: &str,
) -> Route {
    let mut sessions = LocalSessionManager::default();
    sessions.session_config.keep_alive = Some(session_idle);
    let mcp =
        StreamableHttpService::new(move || Ok(handler.clone()), Arc::new(sessions), mcp_config);
    let guarded = mcp.compat().map_to_response().around(move |ep, mut req| {
        let service = Arc::clone(&service);
        async move {
            let Some(token) = bearer(&req) else {
                return Ok(unauthorized(None, "send an OAuth access token as Authorization: Bearer"));
            };
            match service.authenticate(&token).await {
                Ok(caller) => {
                    req.extensions_mut().insert(caller);
                    Ok(ep.call(req).await?.into_response())
                }
                Err(ServiceError::Unauthenticated(_)) => {
                    Ok(unauthorized(Some("invalid_token"), "the access token is unknown, expired or revoked"))
                }
                Err(other) => {
                    tracing::error!(error = %other, "authentication failed");
                    Ok(Response::builder()
                        .status(StatusCode::SERVICE_UNAVAILABLE)
                        .content_type("application/problem+json")
                        .body(
                            serde_json::json!({"type": "about:blank", "title": "temporarily unavailable", "status": 503})
                                .to_string(),
                        ))
                }
            }
        }
    });
    let api = openapi(public_url);
    let spec = api.spec_endpoint();
    Route::new()
        .at("/mcp", guarded)
        .at("/openapi.json", spec)
        .nest("/", api)
}
