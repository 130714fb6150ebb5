//! PKCE (RFC 7636), S256 only: `plain` is a downgrade an attacker who sees the authorization
//! request can use, so it is refused everywhere (OAuth 2.1 §4.1.1).

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::domain::secret::SecretString;

/// Why a code challenge is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PkceError {
    /// No `code_challenge`.
    #[error("code_challenge is required (PKCE with S256)")]
    Missing,
    /// `plain`, an unknown method, or none (which means `plain`).
    #[error("code_challenge_method must be S256")]
    UnsupportedMethod,
    /// Not 43 base64url characters.
    #[error("code_challenge must be the base64url SHA-256 of the verifier (43 characters)")]
    Malformed,
}

/// A client's S256 code challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeChallenge(String);

impl CodeChallenge {
    /// Checks the challenge parameters of an authorization request.
    ///
    /// # Errors
    /// [`PkceError`] unless the method is `S256` and the challenge is well-formed.
    pub fn parse(challenge: Option<&str>, method: Option<&str>) -> Result<Self, PkceError> {
        let challenge = challenge
            .filter(|c| !c.is_empty())
            .ok_or(PkceError::Missing)?;
        if method != Some("S256") {
            return Err(PkceError::UnsupportedMethod);
        }
        let well_formed = challenge.len() == 43
            && challenge
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !well_formed {
            return Err(PkceError::Malformed);
        }
        Ok(Self(challenge.to_owned()))
    }

    /// Restores a stored challenge.
    #[must_use]
    pub fn from_stored(challenge: String) -> Self {
        Self(challenge)
    }

    /// The challenge as sent.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `verifier` is the one this challenge was made from (constant time).
    #[must_use]
    pub fn verify(&self, verifier: &str) -> bool {
        let well_formed = (43..=128).contains(&verifier.len())
            && verifier
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
        let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        well_formed & bool::from(computed.as_bytes().ct_eq(self.0.as_bytes()))
    }
}

/// Our own PKCE pair toward the upstream authorization server.
#[derive(Debug, Clone)]
pub struct PkcePair {
    /// Kept until the callback, never sent before the token request.
    pub verifier: SecretString,
    /// Sent in the authorization request.
    pub challenge: String,
}

impl PkcePair {
    /// A fresh pair: 32 random bytes → a 43-character verifier.
    #[must_use]
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let verifier = URL_SAFE_NO_PAD.encode(bytes);
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        Self {
            verifier: SecretString::new(verifier),
            challenge,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_round_trip() {
        let pair = PkcePair::generate();
        let challenge = CodeChallenge::parse(Some(&pair.challenge), Some("S256")).unwrap();
        assert!(challenge.verify(pair.verifier.expose_secret()));
        assert!(!challenge.verify(PkcePair::generate().verifier.expose_secret()));
        assert!(!challenge.verify(""));
    }

    /// RFC 7636 appendix B.
    #[test]
    fn rfc_7636_example() {
        let c = CodeChallenge::parse(
            Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
            Some("S256"),
        )
        .unwrap();
        assert!(c.verify("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"));
    }

    #[test]
    fn only_s256_is_accepted() {
        let c = Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        assert_eq!(
            CodeChallenge::parse(None, Some("S256")),
            Err(PkceError::Missing)
        );
        assert_eq!(
            CodeChallenge::parse(c, None),
            Err(PkceError::UnsupportedMethod)
        );
        assert_eq!(
            CodeChallenge::parse(c, Some("plain")),
            Err(PkceError::UnsupportedMethod)
        );
        assert_eq!(
            CodeChallenge::parse(c, Some("s256")),
            Err(PkceError::UnsupportedMethod)
        );
        assert_eq!(
            CodeChallenge::parse(Some("short"), Some("S256")),
            Err(PkceError::Malformed)
        );
    }
}
