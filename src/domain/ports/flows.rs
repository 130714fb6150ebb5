//! Steps of a browser flow parked between two requests (docs/storage-schema.md "Flow steps"):
//! an authorization request waiting for consent, the upstream leg of a connect flow, of a
//! settings sign-in or of turning background delivery on (our PKCE verifier), a settings
//! session. They live in storage, not in one
//! process, so each request of a flow may land on any instance and a restart loses none.
//!
//! A step is found and sealed by its handle — the random value only the browser holds (the
//! request id, the upstream `state`, the session cookie) — so a copy of the storage opens
//! none. Taking a step is single use across instances: of two takers, one wins.

use crate::domain::{
    auth::flow::{AuthorizationRequest, UpstreamLeg},
    auth::sessions::SettingsSession,
    notify::background::NotifierConsent,
    secret::SecretString,
};

/// Which kind of step a handle names (each kind its own namespace).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepKind {
    /// An authorization request waiting for the person's decision.
    Consent,
    /// A connect flow's upstream leg.
    Upstream,
    /// A settings sign-in's upstream leg.
    SignIn,
    /// A signed-in settings session.
    Session,
    /// Turning background delivery on, while the person approves the notifier upstream.
    NotifierConsent,
}

impl StepKind {
    /// Its stable name in storage and in key derivation.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Consent => "consent",
            Self::Upstream => "upstream",
            Self::SignIn => "sign_in",
            Self::Session => "session",
            Self::NotifierConsent => "notifier_consent",
        }
    }
}

/// What a step holds.
#[derive(Debug, Clone)]
pub enum Step {
    /// [`StepKind::Consent`].
    Consent(AuthorizationRequest),
    /// [`StepKind::Upstream`].
    Upstream(UpstreamLeg),
    /// [`StepKind::SignIn`]: our PKCE verifier.
    SignIn(SecretString),
    /// [`StepKind::Session`].
    Session(SettingsSession),
    /// [`StepKind::NotifierConsent`].
    NotifierConsent(NotifierConsent),
}

impl Step {
    /// Its kind.
    #[must_use]
    pub fn kind(&self) -> StepKind {
        match self {
            Self::Consent(_) => StepKind::Consent,
            Self::Upstream(_) => StepKind::Upstream,
            Self::SignIn(_) => StepKind::SignIn,
            Self::Session(_) => StepKind::Session,
            Self::NotifierConsent(_) => StepKind::NotifierConsent,
        }
    }
}

/// A step with what binds it: the browser that started it and the form's CSRF token (both as
/// SHA-256; zero where a step has none), and when it lapses.
#[derive(Debug, Clone)]
pub struct Parked {
    /// The step.
    pub step: Step,
    /// SHA-256 of the browser-binding cookie.
    pub browser: [u8; 32],
    /// SHA-256 of the form's CSRF token.
    pub csrf: [u8; 32],
    /// Unix seconds after which it is gone.
    pub expires_at: i64,
}

/// Why storage could not park or find a step.
#[derive(Debug, thiserror::Error)]
pub enum FlowStoreError {
    /// Too many steps of this kind are pending (a flood can't fill storage).
    #[error("too many sign-in requests are in progress")]
    Busy,
    /// Storage can't be reached or failed: the person may try again.
    #[error("storage is unavailable: {0}")]
    Unavailable(String),
}

/// Where parked steps live.
#[trait_variant::make(Send)]
#[cfg_attr(any(test, feature = "test-support"), mockall::automock)]
pub trait FlowStore: Sync + 'static {
    /// Parks `parked` under `handle`, sealed under a key only `handle` derives.
    ///
    /// # Errors
    /// [`FlowStoreError::Busy`] past the limit of live steps of a kind; `Unavailable`.
    async fn park(&self, handle: &str, parked: Parked) -> Result<(), FlowStoreError>;

    /// The live step `handle` names, left in place.
    ///
    /// # Errors
    /// [`FlowStoreError::Unavailable`].
    async fn peek(&self, kind: StepKind, handle: &str) -> Result<Option<Parked>, FlowStoreError>;

    /// Removes the step `handle` names; `true` for the one call that removed it.
    ///
    /// # Errors
    /// [`FlowStoreError::Unavailable`].
    async fn remove(&self, kind: StepKind, handle: &str) -> Result<bool, FlowStoreError>;
}
