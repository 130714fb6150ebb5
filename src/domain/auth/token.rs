//! Our tokens and grant ids: random, shaped `<grant-id>.<secret>` so a vault can find the grant
//! without a scan, and never stored except as a hash.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore as _;

use crate::domain::grant::{AccessToken, GrantId};

/// Bits of randomness in a token's secret part (RFC 6749 §10.10 asks for ≥ 128, better 160).
pub const TOKEN_SECRET_BYTES: usize = 32;

fn random_b64(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// A fresh grant id (128 random bits).
#[must_use]
pub fn new_grant_id() -> GrantId {
    GrantId::new(format!("g{}", random_b64(16)))
}

/// A fresh token of `grant`.
#[must_use]
pub fn new_token(grant: &GrantId) -> AccessToken {
    AccessToken::new(format!("{grant}.{}", random_b64(TOKEN_SECRET_BYTES)))
}

/// A random opaque value (state, CSRF tokens, client ids and secrets).
#[must_use]
pub fn random_value() -> String {
    random_b64(TOKEN_SECRET_BYTES)
}

/// A token issued with its expiry (unix seconds).
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The token.
    pub token: AccessToken,
    /// When it stops working.
    pub expires_at: i64,
}

/// What a token request answers with.
#[derive(Debug, Clone)]
pub struct TokenPair {
    /// The access token for `/mcp`.
    pub access: IssuedToken,
    /// The refresh token.
    pub refresh: IssuedToken,
    /// The granted scope.
    pub scope: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_their_grant_and_enough_randomness() {
        let g = new_grant_id();
        let t = new_token(&g);
        let (grant, secret) = t.expose_secret().split_once('.').unwrap();
        assert_eq!(grant, g.as_str());
        assert_eq!(
            URL_SAFE_NO_PAD.decode(secret).unwrap().len(),
            TOKEN_SECRET_BYTES
        );
        assert_ne!(new_token(&g).expose_secret(), t.expose_secret());
    }
}
