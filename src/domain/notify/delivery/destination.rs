//! Where a notice goes, parsed once from what a person typed on the settings page, so a bad URL
//! or secret is refused there and the adapter only ever sees a checked destination.

use std::fmt;

use base64::{
    Engine as _, alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig, general_purpose::STANDARD},
};
use rand::RngCore as _;
use url::Url;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::domain::secret::SecretString;

/// Why a destination URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    /// Not a URL at all.
    #[error("the webhook address is not a URL")]
    NotAUrl,
    /// Longer than [`MAX_URL_LEN`].
    #[error("the webhook address is longer than {MAX_URL_LEN} characters")]
    TooLong,
    /// Not https (or http where allowed).
    #[error("the webhook address must start with https://")]
    NotHttps,
    /// `user:password@` in the URL: credentials belong in the signing secret, not the URL.
    #[error("the webhook address must not contain a user name or password")]
    Userinfo,
    /// A `#fragment`, which is never sent and so is a mistake.
    #[error("the webhook address must not contain a '#' fragment")]
    Fragment,
    /// No host.
    #[error("the webhook address has no host")]
    NoHost,
}

/// Longest webhook URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// A webhook URL as a person typed it, checked: https (http only where allowed, for tests), a
/// host, no credentials and no fragment. Whether its host is a public address is checked at
/// each delivery, where the name is resolved.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl(Url);

impl WebhookUrl {
    /// Parses and checks a URL.
    ///
    /// # Errors
    /// [`DestinationError`] naming the first thing wrong.
    pub fn parse(raw: &str, allow_insecure_http: bool) -> Result<Self, DestinationError> {
        if raw.len() > MAX_URL_LEN {
            return Err(DestinationError::TooLong);
        }
        let url = Url::parse(raw.trim()).map_err(|_| DestinationError::NotAUrl)?;
        match url.scheme() {
            "https" => {}
            "http" if allow_insecure_http => {}
            _ => return Err(DestinationError::NotHttps),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(DestinationError::Userinfo);
        }
        if url.fragment().is_some() {
            return Err(DestinationError::Fragment);
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(DestinationError::NoHost);
        }
        Ok(Self(url))
    }

    /// The URL.
    #[must_use]
    pub fn as_url(&self) -> &Url {
        &self.0
    }

    /// Its host, for logs (the path and query may carry a receiver's token).
    #[must_use]
    pub fn host(&self) -> &str {
        self.0.host_str().unwrap_or_default()
    }
}

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookUrl({}://{}/…)", self.0.scheme(), self.host())
    }
}

/// Why a webhook secret was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookSecretError {
    /// It does not start with `whsec_`.
    #[error("a webhook secret starts with whsec_")]
    MissingPrefix,
    /// The rest is not base64.
    #[error("a webhook secret is whsec_ followed by base64")]
    NotBase64,
    /// Too short or too long.
    #[error("a webhook secret holds {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes (got {0})")]
    Length(usize),
}

/// Fewest bytes in a webhook secret (Standard Webhooks: 24 to 64).
pub const MIN_SECRET_BYTES: usize = 24;
/// Most bytes in a webhook secret.
pub const MAX_SECRET_BYTES: usize = 64;
/// Bytes in a generated secret.
pub const GENERATED_SECRET_BYTES: usize = 32;
const SECRET_PREFIX: &str = "whsec_";

// Receivers' libraries print secrets with padding, people sometimes drop it: accept both.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A Standard Webhooks signing secret (`whsec_` + base64 of 24–64 random bytes): the HMAC key
/// shared with the receiver.
///
/// # Security
/// `Debug` prints `[redacted]`; there is no `Display`; the bytes are wiped on drop; the one way
/// out is [`WebhookSecret::expose_secret`].
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct WebhookSecret(Vec<u8>);

impl WebhookSecret {
    /// Parses `whsec_<base64>`.
    ///
    /// # Errors
    /// [`WebhookSecretError`] when the prefix is missing, the rest is not base64, or it holds
    /// fewer than [`MIN_SECRET_BYTES`] or more than [`MAX_SECRET_BYTES`] bytes.
    pub fn parse(raw: &str) -> Result<Self, WebhookSecretError> {
        let encoded = raw
            .trim()
            .strip_prefix(SECRET_PREFIX)
            .ok_or(WebhookSecretError::MissingPrefix)?;
        let bytes = Zeroizing::new(
            LENIENT_BASE64
                .decode(encoded)
                .map_err(|_| WebhookSecretError::NotBase64)?,
        );
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&bytes.len()) {
            return Err(WebhookSecretError::Length(bytes.len()));
        }
        Ok(Self(bytes.to_vec()))
    }

    /// A fresh secret of [`GENERATED_SECRET_BYTES`] random bytes.
    #[must_use]
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; GENERATED_SECRET_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// The secret as the person copies it into the receiver: `whsec_<base64>`.
    ///
    /// # Security
    /// Show it once, or seal it; never log it.
    #[must_use]
    pub fn to_whsec(&self) -> SecretString {
        let encoded = Zeroizing::new(STANDARD.encode(&self.0));
        SecretString::new(format!("{SECRET_PREFIX}{}", encoded.as_str()))
    }

    /// The key bytes: call only to sign.
    #[must_use]
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Where background notifications go (settings page only: the model can never set one).
#[derive(Debug, Clone)]
pub enum Destination {
    /// A generic HTTPS endpoint, signed per Standard Webhooks.
    Webhook {
        /// The endpoint.
        url: WebhookUrl,
        /// The signing secret.
        secret: WebhookSecret,
    },
    /// Poke's inbound message API.
    Poke {
        /// The person's Poke V2 API key.
        api_key: SecretString,
    },
}

impl Destination {
    /// `webhook` or `poke`, for logs.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Webhook { .. } => "webhook",
            Self::Poke { .. } => "poke",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destination_urls_are_https_with_a_host_and_nothing_hidden() {
        let ok = WebhookUrl::parse("https://hooks.example.com:8443/in?x=1", false).unwrap();
        assert_eq!(ok.host(), "hooks.example.com");
        assert_eq!(format!("{ok:?}"), "WebhookUrl(https://hooks.example.com/…)");
        for (raw, why) in [
            ("http://hooks.example.com/", DestinationError::NotHttps),
            ("ftp://hooks.example.com/", DestinationError::NotHttps),
            ("javascript:alert(1)", DestinationError::NotHttps),
            ("hooks.example.com/in", DestinationError::NotAUrl),
            (
                "https://user:pw@hooks.example.com/",
                DestinationError::Userinfo,
            ),
            (
                "https://user@hooks.example.com/",
                DestinationError::Userinfo,
            ),
            ("https://hooks.example.com/#x", DestinationError::Fragment),
            ("https://hooks.example.com/#", DestinationError::Fragment),
            ("https://", DestinationError::NotAUrl),
        ] {
            assert_eq!(WebhookUrl::parse(raw, false), Err(why), "{raw}");
        }
        let long = format!("https://a.example/{}", "x".repeat(MAX_URL_LEN));
        assert_eq!(
            WebhookUrl::parse(&long, false),
            Err(DestinationError::TooLong)
        );
        assert!(WebhookUrl::parse("http://127.0.0.1:9/", true).is_ok());
        assert_eq!(
            WebhookUrl::parse("file:///etc/passwd", true),
            Err(DestinationError::NotHttps)
        );
    }

    #[test]
    fn webhook_secrets_parse_generate_and_stay_redacted() {
        // The Standard Webhooks reference secret: 24 bytes.
        let s = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(s.expose_secret().len(), 24);
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(
            s.to_whsec().expose_secret(),
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        );
        let g = WebhookSecret::generate();
        assert_eq!(g.expose_secret().len(), GENERATED_SECRET_BYTES);
        let again = WebhookSecret::parse(g.to_whsec().expose_secret()).unwrap();
        assert_eq!(again.expose_secret(), g.expose_secret());
        assert_ne!(WebhookSecret::generate().expose_secret(), g.expose_secret());
        // Padding is optional.
        let unpadded = format!("whsec_{}", STANDARD.encode([7u8; 32]).trim_end_matches('='));
        assert!(WebhookSecret::parse(&unpadded).is_ok());

        assert_eq!(
            WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").err(),
            Some(WebhookSecretError::MissingPrefix)
        );
        assert_eq!(
            WebhookSecret::parse("whsec_not base64!").err(),
            Some(WebhookSecretError::NotBase64)
        );
        let short = format!("whsec_{}", STANDARD.encode([1u8; 23]));
        assert_eq!(
            WebhookSecret::parse(&short).err(),
            Some(WebhookSecretError::Length(23))
        );
        let long = format!("whsec_{}", STANDARD.encode([1u8; 65]));
        assert_eq!(
            WebhookSecret::parse(&long).err(),
            Some(WebhookSecretError::Length(65))
        );
        let poke = Destination::Poke {
            api_key: SecretString::new("pk-secret"),
        };
        assert!(!format!("{poke:?}").contains("pk-secret"));
    }
}
