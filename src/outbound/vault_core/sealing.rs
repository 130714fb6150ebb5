//! The vault's cryptography, the same for every backend: age X25519 for the sealed upstream
//! tokens ("props") and background secrets, and ChaCha20-Poly1305 under HKDF-SHA256 keys
//! derived from our tokens for everything only a token holder may open (the grant's age
//! identity, a refresh's replayable answer). docs/storage-schema.md "`TokenRecord`".

use age::secrecy::ExposeSecret as _;
use base64::{Engine as _, engine::general_purpose::STANDARD};
use chacha20poly1305::{
    ChaCha20Poly1305, KeyInit as _,
    aead::{Aead as _, AeadCore as _, OsRng},
};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use super::{VaultStoreError, records::TokenRecord};
use crate::domain::{
    grant::UpstreamCredential,
    ports::{UpstreamRefresh, UpstreamTokens},
    secret::SecretString,
};

const HKDF_SALT: &[u8] = b"mailconnect/vault/v1";

/// SHA-256 of a token: the only form in which tokens are stored.
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn derived_key(token: &str, grant: &str, purpose: &str) -> Zeroizing<[u8; 32]> {
    let hk = hkdf::Hkdf::<Sha256>::new(Some(HKDF_SALT), token.as_bytes());
    let mut key = Zeroizing::new([0u8; 32]);
    let info = format!("{purpose}\0{grant}");
    // 32 bytes is always a valid HKDF-SHA256 output length.
    let _ = hk.expand(info.as_bytes(), key.as_mut());
    key
}

/// Encrypts `plain` under a key only `token` derives (base64 of nonce ‖ ciphertext).
pub fn lock(
    plain: &[u8],
    token: &str,
    grant: &str,
    purpose: &str,
) -> Result<String, VaultStoreError> {
    let key = derived_key(token, grant, purpose);
    let cipher = ChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(key.as_slice()));
    let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
    let sealed = cipher
        .encrypt(&nonce, plain)
        .map_err(|_| VaultStoreError::Crypto("lock".into()))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    Ok(STANDARD.encode(out))
}

/// Decrypts what [`lock`] made; `None` when `token` is not the one it was locked for.
pub fn unlock(locked: &str, token: &str, grant: &str, purpose: &str) -> Option<Zeroizing<Vec<u8>>> {
    let raw = STANDARD.decode(locked).ok()?;
    if raw.len() < 12 {
        return None;
    }
    let (nonce, sealed) = raw.split_at(12);
    let key = derived_key(token, grant, purpose);
    let cipher = ChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(key.as_slice()));
    cipher
        .decrypt(nonce.into(), sealed)
        .ok()
        .map(Zeroizing::new)
}

/// The key-wrapping purpose of a token kind (bound into the derivation, so an access token
/// can't stand in for a refresh token's wrapped key).
pub fn wrap_purpose(kind: &str) -> String {
    format!("wrap-identity\0{kind}")
}

/// A grant's upstream secret inside the sealed props.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Props {
    Basic {
        username: String,
        password: String,
    },
    Bearer {
        token: String,
    },
    #[serde(rename = "oauth")]
    OAuth {
        access: String,
        refresh: Option<String>,
        expires_at: Option<i64>,
        #[serde(default)]
        issued_at: Option<i64>,
    },
}

/// What sealed props open to.
#[derive(Debug)]
pub struct OpenedProps {
    pub credential: UpstreamCredential,
    pub refresh: Option<UpstreamRefresh>,
    pub expires_at: Option<i64>,
    pub issued_at: Option<i64>,
}

/// Upstream secrets to seal.
pub enum Sealable<'a> {
    /// A configured credential.
    Credential(&'a UpstreamCredential),
    /// OAuth tokens from the upstream.
    Tokens(&'a UpstreamTokens),
}

/// Seals props to the grant's public recipient.
pub fn seal(
    secret: &Sealable<'_>,
    recipient: &age::x25519::Recipient,
) -> Result<String, VaultStoreError> {
    let props = match secret {
        Sealable::Credential(UpstreamCredential::Basic { username, password }) => Props::Basic {
            username: username.clone(),
            password: password.expose_secret().to_owned(),
        },
        Sealable::Credential(UpstreamCredential::Bearer(token)) => Props::Bearer {
            token: token.expose_secret().to_owned(),
        },
        Sealable::Tokens(t) => Props::OAuth {
            access: t.access.expose_secret().to_owned(),
            refresh: t.refresh.as_ref().map(|r| r.expose_secret().to_owned()),
            expires_at: t.expires_at,
            issued_at: t.issued_at,
        },
    };
    let plain = Zeroizing::new(
        serde_json::to_vec(&props).map_err(|e| VaultStoreError::Crypto(e.to_string()))?,
    );
    drop(props);
    seal_bytes(&plain, recipient)
}

/// Opens sealed props with the grant's identity.
pub fn open_props(sealed: &str, identity: &age::x25519::Identity) -> Option<OpenedProps> {
    let plain = open_sealed(sealed, identity)?;
    Some(match serde_json::from_slice::<Props>(&plain).ok()? {
        Props::Basic { username, password } => OpenedProps {
            credential: UpstreamCredential::Basic {
                username,
                password: SecretString::new(password),
            },
            refresh: None,
            expires_at: None,
            issued_at: None,
        },
        Props::Bearer { token } => OpenedProps {
            credential: UpstreamCredential::Bearer(SecretString::new(token)),
            refresh: None,
            expires_at: None,
            issued_at: None,
        },
        Props::OAuth {
            access,
            refresh,
            expires_at,
            issued_at,
        } => OpenedProps {
            credential: UpstreamCredential::Bearer(SecretString::new(access)),
            refresh: refresh.map(|r| UpstreamRefresh {
                token: SecretString::new(r),
            }),
            expires_at,
            issued_at,
        },
    })
}

/// A fresh per-grant age key pair.
pub fn new_identity() -> (age::x25519::Identity, age::x25519::Recipient) {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public();
    (identity, recipient)
}

/// The identity as text, wiped on drop.
pub fn identity_text(identity: &age::x25519::Identity) -> Zeroizing<String> {
    Zeroizing::new(identity.to_string().expose_secret().to_owned())
}

/// Seals bytes to an age recipient (base64 of the age ciphertext).
///
/// # Errors
/// [`VaultStoreError::Crypto`].
pub fn seal_bytes(
    plain: &[u8],
    recipient: &age::x25519::Recipient,
) -> Result<String, VaultStoreError> {
    let sealed =
        age::encrypt(recipient, plain).map_err(|e| VaultStoreError::Crypto(e.to_string()))?;
    Ok(STANDARD.encode(sealed))
}

/// Opens what [`seal_bytes`] sealed; `None` when `identity` is not the one it was sealed to.
pub fn open_sealed(sealed: &str, identity: &age::x25519::Identity) -> Option<Zeroizing<Vec<u8>>> {
    let raw = STANDARD.decode(sealed).ok()?;
    age::decrypt(identity, &raw).ok().map(Zeroizing::new)
}

/// Unwraps a grant's age identity with a presented token; `None` when the token is retired
/// or is not the one it was wrapped under.
pub fn unwrap_identity(record: &TokenRecord, token: &str) -> Option<Zeroizing<String>> {
    let wrapped = record.wrapped_identity.as_deref()?;
    let plain = unlock(
        wrapped,
        token,
        &record.grant_id,
        &wrap_purpose(record.kind.as_str()),
    )?;
    String::from_utf8(plain.to_vec()).ok().map(Zeroizing::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Locked before the vault core moved (docs/storage-schema.md `wrapped_identity`): the
    /// derivation (salt, info) and the layout (nonce ‖ ciphertext) must never change, or
    /// existing vaults no longer open.
    const LOCKED: &str = "cenQ0P+YEowZSUtqAq8PyX0bywrRRSV4YoT7VAOW/U3RGrwpOn2l+a5dUE8MbcU0";

    #[test]
    fn a_wrapped_identity_from_an_existing_vault_still_unwraps() {
        let purpose = wrap_purpose("access");
        let plain = unlock(LOCKED, "g1.token", "g1", &purpose).unwrap();
        assert_eq!(plain.as_slice(), b"AGE-SECRET-KEY-1TEST");
        assert!(unlock(LOCKED, "g1.other", "g1", &purpose).is_none());
        assert!(unlock(LOCKED, "g1.token", "g2", &purpose).is_none());
        assert!(unlock(LOCKED, "g1.token", "g1", &wrap_purpose("refresh")).is_none());
    }

    #[test]
    fn sealed_props_open_only_with_the_grants_identity() {
        let (identity, recipient) = new_identity();
        let tokens = UpstreamTokens {
            access: SecretString::new("up"),
            refresh: Some(SecretString::new("up-refresh")),
            expires_at: Some(7),
            issued_at: None,
        };
        let sealed = seal(&Sealable::Tokens(&tokens), &recipient).unwrap();
        let opened = open_props(&sealed, &identity).unwrap();
        assert_eq!(
            opened.credential,
            UpstreamCredential::Bearer(SecretString::new("up"))
        );
        assert_eq!(opened.expires_at, Some(7));
        assert!(open_props(&sealed, &new_identity().0).is_none());
    }
}
