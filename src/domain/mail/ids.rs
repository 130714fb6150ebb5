//! Identifiers of mail objects (RFC 8620 §1.2 `Id`): parsed once, at the edge, never re-checked.

use std::fmt;

use thiserror::Error;

/// An identifier that is not a JMAP `Id` (1–255 characters of `A-Za-z0-9_-`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{kind} must be 1 to 255 letters, digits, '-' or '_' (got {shown})")]
pub struct InvalidId {
    kind: &'static str,
    shown: String,
}

fn check(kind: &'static str, raw: &str) -> Result<(), InvalidId> {
    let ok = (1..=255).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        let shown: String = raw.chars().take(40).collect();
        Err(InvalidId {
            kind,
            shown: format!("{shown:?}"),
        })
    }
}

macro_rules! jmap_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Parses an identifier received from a client or a server.
            ///
            /// # Errors
            /// [`InvalidId`] when `raw` is not a JMAP `Id`.
            pub fn parse(raw: impl Into<String>) -> Result<Self, InvalidId> {
                let raw = raw.into();
                check($kind, &raw)?;
                Ok(Self(raw))
            }

            /// The identifier as the server spells it.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

jmap_id!(
    /// An email's id.
    EmailId,
    "an email id"
);
jmap_id!(
    /// A thread's id.
    ThreadId,
    "a thread id"
);
jmap_id!(
    /// A blob's id (attachment bytes).
    BlobId,
    "a blob id"
);
jmap_id!(
    /// A mailbox's id.
    MailboxId,
    "a mailbox id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_jmap_ids() {
        assert_eq!(EmailId::parse("Mabc-_9").unwrap().as_str(), "Mabc-_9");
    }

    #[test]
    fn rejects_what_rfc_8620_forbids() {
        for bad in ["", "a b", "a/b", "é", "x@y", &"a".repeat(256)] {
            assert!(EmailId::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn error_names_the_kind_and_caps_the_echo() {
        let err = ThreadId::parse("x".repeat(300)).unwrap_err().to_string();
        assert!(err.starts_with("a thread id must be"), "{err}");
        assert!(err.len() < 120, "{err}");
    }
}
