//! OAuth clients: dynamically registered (RFC 7591), identified by a metadata document URL
//! (CIMD), or configured by the operator; and the rules for registering one.

use std::fmt;

use super::redirect::{RedirectKind, RedirectUri, RedirectUriError};

/// A client's id. Not secret.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(String);

impl ClientId {
    /// Wraps a client id.
    #[must_use]
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id as clients send it.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this id is a Client ID Metadata Document URL (an `https://` URL with a path).
    #[must_use]
    pub fn is_metadata_document_url(&self) -> bool {
        self.0.starts_with("https://")
            && url::Url::parse(&self.0).is_ok_and(|u| u.path() != "/" && !u.path().is_empty())
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a client came to be known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    /// `POST /register`: anyone can register anything, so the consent screen says "unverified".
    Registered,
    /// A metadata document fetched from the https URL that is its id: the host vouches for it.
    MetadataDocument,
    /// Configured by the operator of this server.
    Configured,
}

impl ClientKind {
    /// The stored name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registered => "registered",
            Self::MetadataDocument => "metadata_document",
            Self::Configured => "configured",
        }
    }

    /// Parses a stored name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "registered" => Some(Self::Registered),
            "metadata_document" => Some(Self::MetadataDocument),
            "configured" => Some(Self::Configured),
            _ => None,
        }
    }
}

/// How a client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenAuthMethod {
    /// A public client: `client_id` only, PKCE protects the code.
    None,
    /// `client_id` + `client_secret` in the form body.
    ClientSecretPost,
    /// HTTP Basic.
    ClientSecretBasic,
}

impl TokenAuthMethod {
    /// The RFC 7591 name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::ClientSecretPost => "client_secret_post",
            Self::ClientSecretBasic => "client_secret_basic",
        }
    }

    /// Parses an RFC 7591 name we support.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Self::None),
            "client_secret_post" => Some(Self::ClientSecretPost),
            "client_secret_basic" => Some(Self::ClientSecretBasic),
            _ => None,
        }
    }

    /// Whether the client holds a secret.
    #[must_use]
    pub fn is_confidential(self) -> bool {
        self != Self::None
    }
}

/// A known client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthClient {
    /// Its id.
    pub id: ClientId,
    /// The name it gave (untrusted text: escape it wherever it is shown).
    pub name: String,
    /// Where it may be sent back to.
    pub redirect_uris: Vec<RedirectUri>,
    /// How it came to be known.
    pub kind: ClientKind,
    /// How it authenticates at the token endpoint.
    pub auth_method: TokenAuthMethod,
    /// SHA-256 of its secret, for confidential clients.
    pub secret_digest: Option<[u8; 32]>,
    /// Unix seconds.
    pub created_at: i64,
}

impl OAuthClient {
    /// The registered redirect URI that `presented` matches, if any.
    #[must_use]
    pub fn redirect_uri(&self, presented: &str) -> Option<&RedirectUri> {
        self.redirect_uris.iter().find(|r| r.matches(presented))
    }

    /// Whether every redirect goes to this computer (the consent screen warns about those).
    #[must_use]
    pub fn is_loopback_only(&self) -> bool {
        self.redirect_uris
            .iter()
            .all(|r| r.kind() == RedirectKind::Loopback)
    }
}

/// Client metadata as a client sent it (registration body or metadata document).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientMetadata {
    /// `redirect_uris`.
    pub redirect_uris: Vec<String>,
    /// `client_name`.
    pub client_name: Option<String>,
    /// `token_endpoint_auth_method`.
    pub token_endpoint_auth_method: Option<String>,
    /// `token_endpoint_auth_methods_supported` (plural, as ChatGPT's metadata document has it).
    pub token_endpoint_auth_methods: Vec<String>,
    /// `grant_types`.
    pub grant_types: Option<Vec<String>>,
    /// `response_types`.
    pub response_types: Option<Vec<String>>,
}

/// Why a registration is refused (RFC 7591 §3.2.2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationError {
    /// `invalid_redirect_uri`.
    #[error("{0}")]
    InvalidRedirectUri(#[from] RedirectUriError),
    /// `invalid_client_metadata`.
    #[error("{0}")]
    InvalidClientMetadata(String),
}

/// Limits on what a registration may carry.
pub const MAX_CLIENT_NAME_CHARS: usize = 200;
/// Most redirect URIs in one registration.
pub const MAX_REDIRECT_URIS: usize = 20;

/// A registration that passed the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidRegistration {
    /// The name to show (a placeholder when none was given).
    pub name: String,
    /// The redirect URIs.
    pub redirect_uris: Vec<RedirectUri>,
    /// The token endpoint auth method.
    pub auth_method: TokenAuthMethod,
}

/// The grant types we serve; others a client lists are ignored, except the ones that would
/// mean it expects tokens without a code.
const REFUSED_GRANT_TYPES: &[&str] = &["implicit", "password"];

/// Checks client metadata against our rules.
///
/// Strict where security needs it (every redirect URI, the response type, the auth method),
/// tolerant elsewhere (extra grant types, no name, unknown fields).
///
/// # Errors
/// [`RegistrationError`] naming the offending value.
pub fn validate_registration(
    meta: &ClientMetadata,
) -> Result<ValidRegistration, RegistrationError> {
    let bad = |m: String| Err(RegistrationError::InvalidClientMetadata(m));
    if meta.redirect_uris.is_empty() {
        return Err(RegistrationError::InvalidRedirectUri(RedirectUriError {
            uri: String::new(),
            reason: "redirect_uris must list at least one URI",
        }));
    }
    if meta.redirect_uris.len() > MAX_REDIRECT_URIS {
        return bad(format!(
            "at most {MAX_REDIRECT_URIS} redirect_uris are allowed"
        ));
    }
    let redirect_uris = meta
        .redirect_uris
        .iter()
        .map(|u| RedirectUri::parse(u))
        .collect::<Result<Vec<_>, _>>()?;
    let name = meta
        .client_name
        .as_deref()
        .map(str::trim)
        .unwrap_or_default();
    if name.chars().count() > MAX_CLIENT_NAME_CHARS {
        return bad(format!(
            "client_name is longer than {MAX_CLIENT_NAME_CHARS} characters"
        ));
    }
    if name.chars().any(char::is_control) {
        return bad("client_name contains control characters".into());
    }
    if let Some(types) = &meta.response_types
        && types.iter().any(|t| t != "code")
    {
        return bad("response_types may only contain \"code\"".into());
    }
    if let Some(grants) = &meta.grant_types {
        if let Some(refused) = grants
            .iter()
            .find(|g| REFUSED_GRANT_TYPES.contains(&g.as_str()))
        {
            return bad(format!("grant type {refused:?} is not supported"));
        }
        if !grants.iter().any(|g| g == "authorization_code") {
            return bad("grant_types must include \"authorization_code\"".into());
        }
    }
    let auth_method = match &meta.token_endpoint_auth_method {
        Some(method) => TokenAuthMethod::parse(method).ok_or_else(|| {
            RegistrationError::InvalidClientMetadata(format!(
                "token_endpoint_auth_method {method:?} is not supported (use none, client_secret_post or client_secret_basic)"
            ))
        })?,
        // A metadata document may list several methods it supports; a public client is the
        // one every client can be (it has no secret registered with us).
        None => TokenAuthMethod::None,
    };
    Ok(ValidRegistration {
        name: if name.is_empty() {
            "Unnamed client".to_owned()
        } else {
            name.to_owned()
        },
        redirect_uris,
        auth_method,
    })
}

/// A client described by a Client ID Metadata Document fetched from `url` (its id).
///
/// The document must name itself: its `client_id` is compared with the URL byte for byte, so a
/// document copied to another host can't borrow its name.
///
/// # Errors
/// [`RegistrationError`] when the document names another id or breaks a registration rule.
pub fn client_from_metadata_document(
    url: &str,
    document_client_id: Option<&str>,
    meta: &ClientMetadata,
) -> Result<OAuthClient, RegistrationError> {
    if document_client_id != Some(url) {
        return Err(RegistrationError::InvalidClientMetadata(
            "the metadata document's client_id is not the URL it was fetched from".into(),
        ));
    }
    // A metadata document can't carry a secret we issued: its client is public, whatever
    // methods it lists (ChatGPT lists private_key_jwt in the plural field).
    let public = ClientMetadata {
        token_endpoint_auth_method: None,
        ..meta.clone()
    };
    let valid = validate_registration(&public)?;
    Ok(OAuthClient {
        id: ClientId::new(url),
        name: valid.name,
        redirect_uris: valid.redirect_uris,
        kind: ClientKind::MetadataDocument,
        auth_method: TokenAuthMethod::None,
        secret_digest: None,
        created_at: chrono::Utc::now().timestamp(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(uris: &[&str]) -> ClientMetadata {
        ClientMetadata {
            redirect_uris: uris.iter().map(|s| (*s).to_owned()).collect(),
            client_name: Some("Test".into()),
            ..ClientMetadata::default()
        }
    }

    #[test]
    fn cursors_three_uri_registration_is_accepted() {
        let m = meta(&[
            "cursor://anysphere.cursor-mcp/oauth/callback",
            "http://localhost:33418/callback",
            "http://127.0.0.1:33418/callback",
        ]);
        assert_eq!(validate_registration(&m).unwrap().redirect_uris.len(), 3);
    }

    #[test]
    fn one_dangerous_uri_refuses_the_registration_and_is_named() {
        let m = meta(&["http://127.0.0.1/cb", "javascript:alert(1)"]);
        let err = validate_registration(&m).unwrap_err();
        assert!(matches!(err, RegistrationError::InvalidRedirectUri(_)));
        assert!(err.to_string().contains("javascript:alert(1)"), "{err}");
    }

    #[test]
    fn unsupported_capabilities_are_invalid_client_metadata() {
        let mut m = meta(&["http://127.0.0.1/cb"]);
        m.token_endpoint_auth_method = Some("private_key_jwt".into());
        assert!(matches!(
            validate_registration(&m),
            Err(RegistrationError::InvalidClientMetadata(_))
        ));
        let mut m = meta(&["http://127.0.0.1/cb"]);
        m.grant_types = Some(vec!["implicit".into()]);
        assert!(validate_registration(&m).is_err());
        let mut m = meta(&["http://127.0.0.1/cb"]);
        m.response_types = Some(vec!["token".into()]);
        assert!(validate_registration(&m).is_err());
        let mut m = meta(&["http://127.0.0.1/cb"]);
        m.grant_types = Some(vec![
            "authorization_code".into(),
            "refresh_token".into(),
            "urn:ietf:params:oauth:grant-type:jwt-bearer".into(),
        ]);
        assert!(
            validate_registration(&m).is_ok(),
            "extra grant types are ignored"
        );
    }

    #[test]
    fn oversized_metadata_is_refused() {
        let mut m = meta(&["http://127.0.0.1/cb"]);
        m.client_name = Some("x".repeat(MAX_CLIENT_NAME_CHARS + 1));
        assert!(validate_registration(&m).is_err());
        let many: Vec<String> = (0..=MAX_REDIRECT_URIS)
            .map(|i| format!("http://127.0.0.1/cb{i}"))
            .collect();
        let m = ClientMetadata {
            redirect_uris: many,
            ..ClientMetadata::default()
        };
        assert!(validate_registration(&m).is_err());
    }

    #[test]
    fn a_metadata_document_must_name_itself() {
        let url = "https://client.example/oauth/metadata.json";
        let m = meta(&["https://client.example/cb"]);
        assert!(client_from_metadata_document(url, Some(url), &m).is_ok());
        assert!(
            client_from_metadata_document(url, Some("https://client.example/other"), &m).is_err()
        );
        assert!(client_from_metadata_document(url, Some(&format!("{url}/")), &m).is_err());
        assert!(client_from_metadata_document(url, None, &m).is_err());
        let mut chatgpt = m.clone();
        chatgpt.token_endpoint_auth_methods = vec!["private_key_jwt".into(), "none".into()];
        chatgpt.token_endpoint_auth_method = Some("private_key_jwt".into());
        let c = client_from_metadata_document(url, Some(url), &chatgpt).unwrap();
        assert_eq!(
            (c.kind, c.auth_method),
            (ClientKind::MetadataDocument, TokenAuthMethod::None)
        );
    }

    #[test]
    fn metadata_document_ids_are_https_urls_with_a_path() {
        assert!(
            ClientId::new("https://claude.ai/oauth/mcp-oauth-client-metadata")
                .is_metadata_document_url()
        );
        assert!(!ClientId::new("https://claude.ai/").is_metadata_document_url());
        assert!(!ClientId::new("http://claude.ai/x").is_metadata_document_url());
        assert!(!ClientId::new("mc_abc").is_metadata_document_url());
    }
}
