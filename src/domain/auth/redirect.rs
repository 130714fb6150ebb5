//! Redirect URIs: which ones a client may register (RFC 7591, RFC 8252, OAuth 2.1 §2.3) and
//! when a presented one matches a registered one (exact, except the port of a loopback URI).
//!
//! Validation works on the raw string before any URL parser normalises it: `JaVaScRiPt:`,
//! ` javascript:` or `java\tscript:` must be refused as what a browser would make of them, and a
//! parser that strips the tab would hide that.

use std::fmt;

use url::{Host, Url};

/// Why a redirect URI is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("redirect URI {uri:?} is not allowed: {reason}")]
pub struct RedirectUriError {
    /// The URI as sent (truncated for display).
    pub uri: String,
    /// Why.
    pub reason: &'static str,
}

/// Schemes that run code, read local files or are plain web schemes used the wrong way.
const FORBIDDEN_SCHEMES: &[&str] = &[
    "javascript",
    "data",
    "vbscript",
    "file",
    "blob",
    "about",
    "filesystem",
    "ftp",
    "ws",
    "wss",
    "view-source",
    "chrome",
    "chrome-extension",
    "moz-extension",
    "intent",
    "mailto",
    "tel",
    "sms",
];

/// The longest redirect URI we keep.
pub const MAX_REDIRECT_URI_LEN: usize = 2000;

/// What kind of place a redirect URI returns to (shown on the consent screen).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectKind {
    /// `https://` on a host.
    Web,
    /// `http://` on 127.0.0.1, [::1] or localhost: an app on this computer.
    Loopback,
    /// A private-use scheme (`cursor://…`, `com.example.app:/cb`): an installed app.
    App,
}

/// A registered redirect URI, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectUri {
    raw: String,
    kind: RedirectKind,
}

fn refuse(uri: &str, reason: &'static str) -> RedirectUriError {
    let mut shown: String = uri.chars().take(120).collect();
    if shown.len() < uri.len() {
        shown.push('…');
    }
    RedirectUriError { uri: shown, reason }
}

fn is_loopback_host(host: Option<Host<&str>>) -> bool {
    match host {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

impl RedirectUri {
    /// Validates a redirect URI a client wants to register.
    ///
    /// # Errors
    /// [`RedirectUriError`] naming the URI and the reason.
    pub fn parse(uri: &str) -> Result<Self, RedirectUriError> {
        if uri.is_empty() {
            return Err(refuse(uri, "it is empty"));
        }
        if uri.len() > MAX_REDIRECT_URI_LEN {
            return Err(refuse(uri, "it is too long"));
        }
        if uri
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
        {
            return Err(refuse(
                uri,
                "it contains whitespace, control characters or a backslash",
            ));
        }
        let Some((scheme, _)) = uri.split_once(':') else {
            return Err(refuse(uri, "it has no scheme"));
        };
        let valid_scheme = scheme
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase())
            && scheme
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+.-".contains(c));
        if !valid_scheme {
            return Err(refuse(
                uri,
                "its scheme must be lower-case letters, digits, +, . or -",
            ));
        }
        if FORBIDDEN_SCHEMES.contains(&scheme) {
            return Err(refuse(uri, "that scheme can run code or reach local data"));
        }
        if uri.contains('#') {
            return Err(refuse(uri, "it has a fragment"));
        }
        let url = Url::parse(uri).map_err(|_| refuse(uri, "it is not a valid URI"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(refuse(uri, "it carries user information (user@host)"));
        }
        let kind = match scheme {
            "https" => {
                if url.host().is_none() {
                    return Err(refuse(uri, "it has no host"));
                }
                RedirectKind::Web
            }
            "http" => {
                if !is_loopback_host(url.host()) {
                    return Err(refuse(
                        uri,
                        "plain http is allowed only to 127.0.0.1, [::1] or localhost",
                    ));
                }
                RedirectKind::Loopback
            }
            _ => RedirectKind::App,
        };
        Ok(Self {
            raw: uri.to_owned(),
            kind,
        })
    }

    /// The URI as registered.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Where it returns to.
    #[must_use]
    pub fn kind(&self) -> RedirectKind {
        self.kind
    }

    /// What the consent screen names as the destination: the host, or the app scheme.
    #[must_use]
    pub fn destination(&self) -> String {
        match Url::parse(&self.raw) {
            Ok(url) => match (self.kind, url.host_str()) {
                (RedirectKind::App, Some(host)) => format!("{}://{host}", url.scheme()),
                (RedirectKind::App, None) => format!("{}:", url.scheme()),
                (_, Some(host)) => host.to_owned(),
                (_, None) => self.raw.clone(),
            },
            Err(_) => self.raw.clone(),
        }
    }

    /// Whether `presented` (from an authorization or token request) is this URI.
    ///
    /// Byte-for-byte equal, except that a loopback URI matches on any port (RFC 8252 §7.3): native
    /// apps listen on an ephemeral port. Scheme, host, path and query must still be identical.
    #[must_use]
    pub fn matches(&self, presented: &str) -> bool {
        if self.raw == presented {
            return true;
        }
        if self.kind != RedirectKind::Loopback {
            return false;
        }
        let Some(rest) = presented.strip_prefix("http://") else {
            return false;
        };
        let Some(registered_rest) = self.raw.strip_prefix("http://") else {
            return false;
        };
        let (Some((p_host, p_port, p_tail)), Some((r_host, _, r_tail))) =
            (split_authority(rest), split_authority(registered_rest))
        else {
            return false;
        };
        p_host == r_host
            && p_tail == r_tail
            && (p_port.is_empty()
                || (p_port.len() <= 5
                    && p_port.bytes().all(|b| b.is_ascii_digit())
                    && p_port.parse::<u16>().is_ok()))
    }
}

/// Splits `host[:port]rest` of an http URI without normalising anything.
fn split_authority(rest: &str) -> Option<(&str, &str, &str)> {
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.contains('@') {
        return None;
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let close = v6.find(']')?;
        let host = &authority[..close + 2];
        let after = &v6[close + 1..];
        match after.strip_prefix(':') {
            Some(port) => (host, port),
            None if after.is_empty() => (host, ""),
            None => return None,
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, port),
            None => (authority, ""),
        }
    };
    Some((host, port, tail))
}

impl fmt::Display for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dangerous_redirect_uris_are_refused() {
        for uri in [
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            " javascript:alert(1)",
            "java\tscript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "vbscript:msgbox(1)",
            "file:///etc/passwd",
            "https://client.example/cb#frag",
            "https://a@evil.example/cb",
            "https://user:pw@evil.example/cb",
            "http://client.example/cb",
            "http://10.0.0.1/cb",
            "https://client.example\\@evil.example/cb",
            "https://client.example/cb\u{0000}",
            "",
            "no-scheme-here",
        ] {
            assert!(RedirectUri::parse(uri).is_err(), "{uri:?} was accepted");
        }
    }

    #[test]
    fn loopback_web_and_app_redirect_uris_are_accepted() {
        for (uri, kind) in [
            ("http://127.0.0.1/cb", RedirectKind::Loopback),
            ("http://127.0.0.1:33418/", RedirectKind::Loopback),
            ("http://[::1]/cb", RedirectKind::Loopback),
            (
                "http://localhost:6274/oauth/callback",
                RedirectKind::Loopback,
            ),
            ("https://claude.ai/api/mcp/auth_callback", RedirectKind::Web),
            (
                "cursor://anysphere.cursor-mcp/oauth/callback",
                RedirectKind::App,
            ),
            (
                "vscode://vscode.github-authentication/did-authenticate",
                RedirectKind::App,
            ),
            ("com.example.app:/oauth2redirect", RedirectKind::App),
        ] {
            assert_eq!(RedirectUri::parse(uri).map(|r| r.kind()), Ok(kind), "{uri}");
        }
    }

    #[test]
    fn matching_is_exact_for_web_uris() {
        let r = RedirectUri::parse("https://client.example/cb").unwrap();
        assert!(r.matches("https://client.example/cb"));
        for other in [
            "https://client.example/cb/",
            "https://Client.example/cb",
            "https://client.example/CB",
            "https://client.example/cb?x=1",
            "https://client.example/%2e%2e/cb",
            "https://client.example:8443/cb",
            "https://client.example@evil.example/cb",
            "https://client.example%40evil.example/cb",
            "https://xn--clent-zqa.example/cb",
        ] {
            assert!(!r.matches(other), "{other} matched");
        }
    }

    #[test]
    fn loopback_redirects_match_on_any_port_only() {
        let r = RedirectUri::parse("http://127.0.0.1:33418/callback").unwrap();
        assert!(r.matches("http://127.0.0.1:51234/callback"));
        assert!(r.matches("http://127.0.0.1/callback"));
        for other in [
            "http://127.0.0.1:51234/other",
            "http://localhost:51234/callback",
            "http://127.0.0.1:.1/callback",
            "http://127.0.0.1:99999/callback",
            "http://127.0.0.1:51234/callback?x=1",
            "http://127.0.0.1:1@evil.example/callback",
            "https://127.0.0.1:51234/callback",
        ] {
            assert!(!r.matches(other), "{other} matched");
        }
        let portless = RedirectUri::parse("http://[::1]/cb").unwrap();
        assert!(portless.matches("http://[::1]:4000/cb"));
        assert!(!portless.matches("http://[::2]:4000/cb"));
    }

    #[test]
    fn the_consent_screen_names_the_destination() {
        assert_eq!(
            RedirectUri::parse("https://claude.ai/cb")
                .unwrap()
                .destination(),
            "claude.ai"
        );
        assert_eq!(
            RedirectUri::parse("cursor://anysphere.cursor-mcp/oauth/callback")
                .unwrap()
                .destination(),
            "cursor://anysphere.cursor-mcp"
        );
    }
}
