//! The notifier key: an age X25519 identity in its own owner-only file, kept outside the
//! vault directory (docs/storage-schema.md "Background notifications"). It opens notifier
//! grants and destinations, nothing else.

use std::path::Path;

use age::secrecy::ExposeSecret as _;
use zeroize::Zeroizing;

/// The notifier's private key: opens notifier grants and destinations, nothing else.
pub struct NotifierKey(age::x25519::Identity);

impl std::fmt::Debug for NotifierKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NotifierKey(…)")
    }
}

/// The notifier key's public half: seals to the notifier.
#[derive(Debug, Clone)]
pub struct NotifierSeal(age::x25519::Recipient);

/// Why the notifier key file can't be used; the text names the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// It can't be read or created.
    #[error("{path} can't be {doing}: {source}")]
    Io {
        /// The file.
        path: String,
        /// "read" or "created".
        doing: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// Others may read it.
    #[error("{path} may be read by others (mode {mode:o}); make it owner-only (chmod 600)")]
    Exposed {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// It holds no age identity.
    #[error("{0} holds no age identity")]
    NoKey(String),
}

impl NotifierKey {
    /// Reads the key at `path`; `None` when there is no file. A key file others may read is
    /// refused.
    ///
    /// # Errors
    /// A sentence naming the file when it can't be read, is readable by others or holds no
    /// key.
    pub fn load(path: &Path) -> Result<Option<Self>, KeyFileError> {
        let io = |doing, source| KeyFileError::Io {
            path: path.display().to_string(),
            doing,
            source,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => Zeroizing::new(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("read", e)),
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(path)
                .map_err(|e| io("read", e))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(KeyFileError::Exposed {
                    path: path.display().to_string(),
                    mode: mode & 0o777,
                });
            }
        }
        text.lines()
            .find(|l| l.starts_with("AGE-SECRET-KEY-"))
            .and_then(|l| l.trim().parse::<age::x25519::Identity>().ok())
            .map(|k| Some(Self(k)))
            .ok_or_else(|| KeyFileError::NoKey(path.display().to_string()))
    }

    /// Creates a key at `path` (owner-only); refuses to replace a file.
    ///
    /// # Errors
    /// A sentence naming the file when it can't be created.
    pub fn create(path: &Path) -> Result<Self, KeyFileError> {
        let identity = age::x25519::Identity::generate();
        let text = Zeroizing::new(format!(
            "# mailconnect notifier key: opens background-notification grants only\n{}\n",
            identity.to_string().expose_secret()
        ));
        write_private(path, text.as_bytes()).map_err(|source| KeyFileError::Io {
            path: path.display().to_string(),
            doing: "created",
            source,
        })?;
        Ok(Self(identity))
    }

    /// Reads the key at `path`, or creates one there when there is none (tests; the server
    /// never replaces a lost key while grants sealed to it exist, see `app`).
    ///
    /// # Errors
    /// See [`NotifierKey::load`] and [`NotifierKey::create`].
    #[cfg(any(test, feature = "test-support"))]
    pub fn load_or_create(path: &Path) -> Result<Self, KeyFileError> {
        match Self::load(path)? {
            Some(key) => Ok(key),
            None => Self::create(path),
        }
    }

    /// The public half.
    #[must_use]
    pub fn seal(&self) -> NotifierSeal {
        NotifierSeal(self.0.to_public())
    }

    /// The age identity (opens what was sealed to [`NotifierKey::seal`]).
    pub(in crate::outbound) fn identity(&self) -> &age::x25519::Identity {
        &self.0
    }
}

impl NotifierSeal {
    /// The age recipient to seal to.
    pub(in crate::outbound) fn recipient(&self) -> &age::x25519::Recipient {
        &self.0
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_file_is_created_owner_only_and_read_back() {
        let path = std::env::temp_dir().join(format!("notifier-{:x}.key", rand::random::<u64>()));
        let first = NotifierKey::load_or_create(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = NotifierKey::load_or_create(&path).unwrap();
        assert_eq!(first.seal().0.to_string(), again.seal().0.to_string());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let refused = NotifierKey::load(&path).unwrap_err();
            assert!(refused.to_string().contains("read by others"), "{refused}");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        std::fs::write(&path, "garbage").unwrap();
        assert!(NotifierKey::load_or_create(&path).is_err());
        let _ = std::fs::remove_file(&path);
    }
}
