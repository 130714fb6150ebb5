//! `flow_steps` values: a browser flow's parked step (docs/storage-schema.md "Flow steps").
//! The whole record — the client's request, our PKCE verifier, the session's account and CSRF
//! token, the bindings — is locked under a key derived from the step's handle, which only the
//! browser holds; the row's key is a digest of kind and handle. A copy of the storage opens no
//! step and can't tell whose it is.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{background::SealedDestination, client::ClientRecord, hex, unhex};
use crate::{
    domain::{
        auth::{
            flow::{AuthorizationRequest, UpstreamLeg},
            pkce::CodeChallenge,
            sessions::SettingsSession,
        },
        grant::GrantId,
        notify::background::NotifierConsent,
        ports::{Parked, Step, StepKind},
        secret::SecretString,
    },
    outbound::vault_core::{
        VaultStoreError,
        sealing::{digest, lock, unlock},
    },
};

/// The row key of the step `handle` names: SHA-256 of kind and handle.
#[must_use]
pub fn step_key(kind: StepKind, handle: &str) -> [u8; 32] {
    digest(&format!("flow\0{}\0{handle}", kind.name()))
}

fn purpose(kind: StepKind) -> String {
    format!("flow-step\0{}", kind.name())
}

#[derive(Serialize, Deserialize)]
struct RequestRecord {
    client: ClientRecord,
    redirect_uri: String,
    state: Option<String>,
    code_challenge: String,
    resource: String,
    scope: String,
}

impl RequestRecord {
    fn from_request(r: &AuthorizationRequest) -> Self {
        Self {
            client: ClientRecord::from_client(&r.client),
            redirect_uri: r.redirect_uri.clone(),
            state: r.state.clone(),
            code_challenge: r.code_challenge.as_str().to_owned(),
            resource: r.resource.clone(),
            scope: r.scope.clone(),
        }
    }

    fn into_request(self) -> Result<AuthorizationRequest, VaultStoreError> {
        Ok(AuthorizationRequest {
            client: self.client.into_client()?,
            redirect_uri: self.redirect_uri,
            state: self.state,
            code_challenge: CodeChallenge::from_stored(self.code_challenge),
            resource: self.resource,
            scope: self.scope,
        })
    }
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum StepRecord {
    Consent {
        request: RequestRecord,
    },
    Upstream {
        request: RequestRecord,
        verifier: String,
    },
    SignIn {
        verifier: String,
    },
    Session {
        account_digest: String,
        account: String,
        csrf: String,
    },
    NotifierConsent {
        grant: String,
        account: String,
        destination: SealedDestination,
        verifier: String,
    },
}

#[derive(Serialize, Deserialize)]
struct ParkedRecord {
    step: StepRecord,
    browser: String,
    csrf: String,
    expires_at: i64,
}

/// The stored form of `parked`: locked under `handle`.
///
/// # Errors
/// [`VaultStoreError::Crypto`] or `Corrupt` when it can't be encoded.
pub fn seal(handle: &str, parked: &Parked) -> Result<Vec<u8>, VaultStoreError> {
    let step = match &parked.step {
        Step::Consent(request) => StepRecord::Consent {
            request: RequestRecord::from_request(request),
        },
        Step::Upstream(leg) => StepRecord::Upstream {
            request: RequestRecord::from_request(&leg.request),
            verifier: leg.verifier.expose_secret().to_owned(),
        },
        Step::SignIn(verifier) => StepRecord::SignIn {
            verifier: verifier.expose_secret().to_owned(),
        },
        Step::Session(s) => StepRecord::Session {
            account_digest: s.account_digest.clone(),
            account: s.account.clone(),
            csrf: s.csrf.expose_secret().to_owned(),
        },
        Step::NotifierConsent(c) => StepRecord::NotifierConsent {
            grant: c.grant.as_str().to_owned(),
            account: c.account.clone(),
            destination: SealedDestination::of(&c.destination),
            verifier: c.verifier.expose_secret().to_owned(),
        },
    };
    let plain = Zeroizing::new(super::encode(&ParkedRecord {
        step,
        browser: hex(&parked.browser),
        csrf: hex(&parked.csrf),
        expires_at: parked.expires_at,
    })?);
    Ok(lock(&plain, handle, "", &purpose(parked.step.kind()))?.into_bytes())
}

/// The step a stored record holds, if `handle` opens it and it is of `kind`.
///
/// # Errors
/// [`VaultStoreError::Corrupt`] when it opens but does not decode.
pub fn open(
    kind: StepKind,
    handle: &str,
    stored: &[u8],
) -> Result<Option<Parked>, VaultStoreError> {
    let Ok(text) = std::str::from_utf8(stored) else {
        return Ok(None);
    };
    let Some(plain) = unlock(text, handle, "", &purpose(kind)) else {
        return Ok(None);
    };
    let record: ParkedRecord = super::decode(&plain)?;
    let step = match record.step {
        StepRecord::Consent { request } => Step::Consent(request.into_request()?),
        StepRecord::Upstream { request, verifier } => Step::Upstream(UpstreamLeg {
            request: request.into_request()?,
            verifier: SecretString::new(verifier),
        }),
        StepRecord::SignIn { verifier } => Step::SignIn(SecretString::new(verifier)),
        StepRecord::Session {
            account_digest,
            account,
            csrf,
        } => Step::Session(SettingsSession {
            account_digest,
            account,
            csrf: SecretString::new(csrf),
        }),
        StepRecord::NotifierConsent {
            grant,
            account,
            destination,
            verifier,
        } => Step::NotifierConsent(NotifierConsent {
            grant: GrantId::new(grant),
            account,
            destination: destination
                .into_destination()
                .map_err(|e| VaultStoreError::Corrupt(e.to_string()))?,
            verifier: SecretString::new(verifier),
        }),
    };
    if step.kind() != kind {
        return Ok(None);
    }
    let corrupt = || VaultStoreError::Corrupt("flow step binding".into());
    Ok(Some(Parked {
        step,
        browser: unhex(&record.browser).ok_or_else(corrupt)?,
        csrf: unhex(&record.csrf).ok_or_else(corrupt)?,
        expires_at: record.expires_at,
    }))
}

/// Most live steps of one kind (a flood of authorization requests can't fill storage).
pub const MAX_LIVE_STEPS: u64 = 10_000;
