//! Our identity as an authorization server and resource server: one issuer string and one
//! resource, built from the configured public URL (never from a request's `Host`), and the
//! rules for the `resource` (RFC 8707) and `scope` parameters clients send.

use url::Url;

/// The one scope we grant. What a grant may do beyond reading is its capability policy,
/// changed in settings, not a scope a client can ask for.
pub const MAIL_SCOPE: &str = "mail";

/// Scopes we accept and ignore at refresh: refresh tokens are always issued.
const IGNORED_SCOPES: &[&str] = &["offline_access"];

/// The issuer and the protected resource, canonical and byte-identical everywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audience {
    issuer: String,
    resource: String,
    origin: Url,
}

/// Why a `resource` parameter is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("resource must be this server's MCP endpoint, {expected}")]
pub struct InvalidTarget {
    /// The canonical resource.
    pub expected: String,
}

impl Audience {
    /// From the public URL: issuer = its origin (no path, no trailing slash, no default port),
    /// resource = issuer + `/mcp`.
    #[must_use]
    pub fn new(public_url: &Url) -> Self {
        let issuer = public_url.origin().ascii_serialization();
        let origin = Url::parse(&issuer).unwrap_or_else(|_| public_url.clone());
        Self {
            resource: format!("{issuer}/mcp"),
            issuer,
            origin,
        }
    }

    /// The issuer (`iss`), e.g. `https://mail.example.com`.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The protected resource, e.g. `https://mail.example.com/mcp`.
    #[must_use]
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// An absolute URL on our origin.
    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// Canonicalises a `resource` parameter: absent → our resource; our origin with path `""`,
    /// `/`, `/mcp` or `/mcp/` (case-insensitive scheme and host, default port or not) → our
    /// resource. Clients spell it all these ways; we serve one resource per host, so accepting
    /// them creates no audience confusion.
    ///
    /// # Errors
    /// [`InvalidTarget`] for anything else, including a fragment.
    pub fn canonical_resource(&self, resource: Option<&str>) -> Result<String, InvalidTarget> {
        let invalid = || InvalidTarget {
            expected: self.resource.clone(),
        };
        let Some(raw) = resource.filter(|r| !r.is_empty()) else {
            return Ok(self.resource.clone());
        };
        if raw.contains('#') {
            return Err(invalid());
        }
        let url = Url::parse(raw).map_err(|_| invalid())?;
        let same_origin = url.origin() == self.origin.origin();
        let our_path = matches!(url.path(), "" | "/" | "/mcp" | "/mcp/");
        if same_origin && our_path && url.query().is_none() && url.username().is_empty() {
            Ok(self.resource.clone())
        } else {
            Err(invalid())
        }
    }
}

/// The scope granted for a requested one: split on any whitespace, unknown values dropped,
/// never an error (clients send `claudeai`, `read write`, ` offline_access`, nothing at all).
/// With one scope, the intersection of what was asked and what exists is always `mail`.
#[must_use]
pub fn granted_scope(_requested: Option<&str>) -> String {
    MAIL_SCOPE.to_owned()
}

/// Whether a scope asked for at refresh is within the granted one.
#[must_use]
pub fn scope_within(requested: Option<&str>, granted: &str) -> bool {
    requested.is_none_or(|r| {
        r.split_whitespace()
            .filter(|s| !IGNORED_SCOPES.contains(s))
            .all(|s| granted.split_whitespace().any(|g| g == s))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audience() -> Audience {
        Audience::new(&Url::parse("https://Mail.Example.com:443/some/path/").unwrap())
    }

    #[test]
    fn the_issuer_is_the_bare_origin() {
        let a = audience();
        assert_eq!(a.issuer(), "https://mail.example.com");
        assert_eq!(a.resource(), "https://mail.example.com/mcp");
        let local = Audience::new(&Url::parse("http://127.0.0.1:8910/").unwrap());
        assert_eq!(local.issuer(), "http://127.0.0.1:8910");
    }

    #[test]
    fn resource_spellings_of_our_endpoint_are_one_resource() {
        let a = audience();
        for r in [
            None,
            Some(""),
            Some("https://mail.example.com/mcp"),
            Some("https://mail.example.com/mcp/"),
            Some("https://MAIL.example.com:443/mcp"),
            Some("https://mail.example.com"),
            Some("https://mail.example.com/"),
        ] {
            assert_eq!(
                a.canonical_resource(r).as_deref(),
                Ok(a.resource()),
                "{r:?}"
            );
        }
        for r in [
            "https://mail.example.com/mcp#x",
            "https://mail.example.com/mcp-other",
            "https://evil.example/mcp",
            "http://mail.example.com/mcp",
            "https://api.fastmail.com/jmap/session",
            "not a url",
        ] {
            assert!(a.canonical_resource(Some(r)).is_err(), "{r}");
        }
    }

    #[test]
    fn scopes_are_granted_never_refused() {
        for s in [
            None,
            Some(""),
            Some("claudeai"),
            Some(" offline_access"),
            Some("mail read write"),
        ] {
            assert_eq!(granted_scope(s), MAIL_SCOPE);
        }
        assert!(scope_within(None, "mail"));
        assert!(scope_within(Some("mail offline_access"), "mail"));
        assert!(!scope_within(Some("mail admin"), "mail"));
    }
}
