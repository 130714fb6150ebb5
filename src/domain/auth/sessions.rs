//! Settings sessions: who signed in to the settings page (as a hash of their upstream
//! identity), for half an hour. They live in storage (`ports::FlowStore`), sealed under the
//! session cookie, so any instance serves the settings and review pages and a restart signs
//! nobody out. Apart from the settings rules so that the authorization server can hold them
//! without the two modules needing each other.

use std::time::Duration;

use sha2::{Digest as _, Sha256};

use super::{flow::expiry, token::random_value};
use crate::domain::{
    ports::{FlowStore, Parked, Step, StepKind},
    secret::SecretString,
};

/// How long a settings session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(30 * 60);

/// A signed-in settings session.
#[derive(Debug, Clone)]
pub struct SettingsSession {
    /// SHA-256 (hex) of the upstream account's identity.
    pub account_digest: String,
    /// The account's name, to greet the person (stored sealed under the session cookie).
    pub account: String,
    /// The CSRF token every form of this session carries.
    pub csrf: SecretString,
}

/// A new session's cookie value.
#[derive(Debug)]
pub struct SessionTicket(pub SecretString);

/// Settings sessions in storage `F`.
#[derive(Debug)]
pub struct SettingsSessions<'a, F>(pub &'a F);

impl<F: FlowStore> SettingsSessions<'_, F> {
    /// Starts a session for an account; `None` when storage refused it (logged).
    pub async fn open(&self, account: &str) -> Option<SessionTicket> {
        let id = random_value();
        let parked = Parked {
            step: Step::Session(SettingsSession {
                account_digest: account_digest(account),
                account: account.to_owned(),
                csrf: SecretString::new(random_value()),
            }),
            browser: [0; 32],
            csrf: [0; 32],
            expires_at: expiry(SESSION_TTL),
        };
        match self.0.park(&id, parked).await {
            Ok(()) => Some(SessionTicket(SecretString::new(id))),
            Err(e) => {
                tracing::error!(error = %e, "a settings session could not be stored");
                None
            }
        }
    }

    /// The live session a cookie names; none when storage fails (the person signs in again,
    /// nothing is shown without a session).
    pub async fn get(&self, id: &str) -> Option<SettingsSession> {
        match self.0.peek(StepKind::Session, id).await {
            Ok(Some(Parked {
                step: Step::Session(session),
                ..
            })) => Some(session),
            Ok(_) => None,
            Err(e) => {
                tracing::error!(error = %e, "settings sessions unavailable");
                None
            }
        }
    }

    /// Ends a session.
    pub async fn close(&self, id: &str) {
        if let Err(e) = self.0.remove(StepKind::Session, id).await {
            tracing::error!(error = %e, "a settings session could not be ended");
        }
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
