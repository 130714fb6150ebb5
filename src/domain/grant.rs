//! Who is calling: a grant (one connected client), its upstream credential and its capabilities.

use std::{collections::BTreeSet, fmt};

use super::secret::SecretString;

/// A grant's id: one connected client of one person. Not secret (it appears in logs).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GrantId(String);

impl GrantId {
    /// Wraps a grant id minted by a vault.
    #[must_use]
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id as stored.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for GrantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The bearer token a client presented to us.
///
/// # Security
/// Never logged, never stored: vaults keep only a hash of it.
#[derive(Debug, Clone)]
pub struct AccessToken(SecretString);

impl AccessToken {
    /// Wraps a presented token.
    #[must_use]
    pub fn new(token: impl Into<String>) -> Self {
        Self(SecretString::new(token))
    }

    /// The token text, for hashing or key derivation only.
    #[must_use]
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

/// What we present to the mail server on a grant's behalf.
///
/// # Security
/// `Debug` is redacted; the secret leaves the process only in the upstream `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamCredential {
    /// HTTP Basic (app passwords, self-hosted servers).
    Basic {
        /// The login name.
        username: String,
        /// The password.
        password: SecretString,
    },
    /// An OAuth access token (Fastmail) or another bearer token.
    Bearer(SecretString),
}

/// What a grant may do. `Read` is implied for every grant.
///
/// Each tool in `schemas/tools.json` names the capability it needs by [`Capability::as_str`];
/// `build.rs` writes it as the variant of that name, so a tool needing a capability missing here
/// does not compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Capability {
    /// Read mail: identity, mailboxes, search, emails, threads, attachments.
    Read,
    /// Change mail state: move, archive, mark read/unread, flag.
    Organize,
    /// Write drafts (new, replies, forwards), list and delete them; never send.
    Draft,
    /// Send drafts, each only after the person approved that exact draft. Implies `Draft`.
    Send,
    /// Hear about new mail: `check_new_mail`.
    Notify,
}

impl Capability {
    /// The capability's name as clients and settings show it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Organize => "organize",
            Self::Draft => "draft",
            Self::Send => "send",
            Self::Notify => "notify",
        }
    }

    /// Parses a capability name.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "read" => Some(Self::Read),
            "organize" => Some(Self::Organize),
            "draft" => Some(Self::Draft),
            "send" => Some(Self::Send),
            "notify" => Some(Self::Notify),
            _ => None,
        }
    }
}

/// A grant's capabilities; always contains [`Capability::Read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapabilitySet(BTreeSet<Capability>);

impl CapabilitySet {
    /// Read only: what every new grant starts with.
    #[must_use]
    pub fn read_only() -> Self {
        Self(BTreeSet::from([Capability::Read]))
    }

    /// `Read` plus the given capabilities (`Send` brings `Draft`: what is sent is a draft).
    #[must_use]
    pub fn with(extra: impl IntoIterator<Item = Capability>) -> Self {
        let mut set = Self::read_only();
        set.0.extend(extra);
        if set.0.contains(&Capability::Send) {
            set.0.insert(Capability::Draft);
        }
        set
    }

    /// Whether the grant holds `capability`.
    #[must_use]
    pub fn allows(&self, capability: Capability) -> bool {
        self.0.contains(&capability)
    }

    /// The capabilities in a stable order.
    pub fn iter(&self) -> impl Iterator<Item = Capability> + '_ {
        self.0.iter().copied()
    }
}

/// An authenticated caller: resolved once per request, then passed to every use case.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The grant.
    pub grant: GrantId,
    /// SHA-256 (hex) of the upstream account's identity (to match the person on the review
    /// page); `None` for a self-hosted grant.
    pub account: Option<String>,
    /// The grant's upstream credential, opened for this request only.
    pub credential: UpstreamCredential,
    /// What the grant may do.
    pub capabilities: CapabilitySet,
    /// The token the caller presented (to re-open the grant after an upstream refresh).
    pub token: AccessToken,
    /// Whether the upstream credential can be refreshed (it came from OAuth).
    pub renewable: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_is_always_granted() {
        assert!(CapabilitySet::with([]).allows(Capability::Read));
        assert!(!CapabilitySet::read_only().allows(Capability::Organize));
        assert!(CapabilitySet::with([Capability::Organize]).allows(Capability::Organize));
    }

    #[test]
    fn credentials_debug_without_secrets() {
        let c = UpstreamCredential::Basic {
            username: "alice".into(),
            password: SecretString::new("pw-123"),
        };
        assert!(!format!("{c:?}").contains("pw-123"));
        let t = AccessToken::new("tok-456");
        assert!(!format!("{t:?}").contains("tok-456"));
    }

    #[test]
    fn capability_names_round_trip() {
        for c in [
            Capability::Read,
            Capability::Organize,
            Capability::Draft,
            Capability::Send,
            Capability::Notify,
        ] {
            assert_eq!(Capability::parse(c.as_str()), Some(c));
        }
        assert_eq!(Capability::parse("admin"), None);
    }

    #[test]
    fn send_brings_draft() {
        let s = CapabilitySet::with([Capability::Send]);
        assert!(s.allows(Capability::Draft) && s.allows(Capability::Send));
        assert!(!CapabilitySet::with([Capability::Draft]).allows(Capability::Send));
    }
}
