//! Settings sessions: who signed in to the settings page (as a hash of their upstream
//! identity), kept in memory for half an hour. Apart from the settings rules so that the
//! authorization server can hold them without the two modules needing each other.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use sha2::{Digest as _, Sha256};

use super::token::random_value;
use crate::domain::secret::SecretString;

/// How long a settings session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(30 * 60);
const MAX_SESSIONS: usize = 10_000;

/// A signed-in settings session.
#[derive(Debug, Clone)]
pub struct SettingsSession {
    /// SHA-256 (hex) of the upstream account's identity.
    pub account_digest: String,
    /// The account's name, to greet the person (kept in memory only).
    pub account: String,
    /// The CSRF token every form of this session carries.
    pub csrf: SecretString,
    until: Instant,
}

/// A new session's cookie value.
#[derive(Debug)]
pub struct SessionTicket(pub SecretString);

/// Settings sessions, in memory (they last half an hour; a restart signs people out).
#[derive(Debug, Default)]
pub struct SettingsSessions(Mutex<HashMap<[u8; 32], SettingsSession>>);

fn digest(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

impl SettingsSessions {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], SettingsSession>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a session for an account.
    pub fn open(&self, account: &str) -> SessionTicket {
        let id = random_value();
        let now = Instant::now();
        let mut map = self.map();
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, s| s.until > now);
        }
        map.insert(
            digest(&id),
            SettingsSession {
                account_digest: account_digest(account),
                account: account.to_owned(),
                csrf: SecretString::new(random_value()),
                until: now + SESSION_TTL,
            },
        );
        SessionTicket(SecretString::new(id))
    }

    /// The live session a cookie names.
    #[must_use]
    pub fn get(&self, id: &str) -> Option<SettingsSession> {
        let mut map = self.map();
        let key = digest(id);
        match map.get(&key) {
            Some(s) if s.until > Instant::now() => Some(s.clone()),
            Some(_) => {
                map.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Ends a session.
    pub fn close(&self, id: &str) {
        self.map().remove(&digest(id));
    }
}

/// SHA-256 (hex) of an upstream account identity: how grants are matched to people without
/// storing who they are.
#[must_use]
pub fn account_digest(account: &str) -> String {
    Sha256::digest(account.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
