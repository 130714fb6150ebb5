//! The connect flow between a client's authorization request and our code: the checks on the
//! request (RFC 6749 §4.1.2.1 order: what can't be redirected safely is shown, the rest goes
//! back to the client), and the two pending steps a browser walks through, each single use.
//!
//! Pending steps live in storage (`ports::FlowStore`), sealed under their handle: any request of
//! a flow may land on any instance, and a restart in the middle of a sign-in loses nothing.

use std::time::Duration;

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::{
    audience::{Audience, granted_scope},
    client::OAuthClient,
    pkce::{CodeChallenge, PkcePair},
    token::random_value,
};
use crate::domain::{
    notify::background::NotifierConsent,
    ports::{FlowStore, FlowStoreError, Parked, Step, StepKind},
    secret::SecretString,
};

/// How long a person has to approve, and to come back from the upstream.
pub const PENDING_TTL: Duration = Duration::from_secs(600);

/// The query of an authorization request, as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizationParams {
    /// `response_type`.
    pub response_type: Option<String>,
    /// `client_id`.
    pub client_id: Option<String>,
    /// `redirect_uri`.
    pub redirect_uri: Option<String>,
    /// `code_challenge`.
    pub code_challenge: Option<String>,
    /// `code_challenge_method`.
    pub code_challenge_method: Option<String>,
    /// `state`.
    pub state: Option<String>,
    /// `scope`.
    pub scope: Option<String>,
    /// `resource`.
    pub resource: Option<String>,
}

/// An error answer to an authorization request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeError {
    /// The client or its redirect URI can't be trusted: show the person an error page.
    Page {
        /// What went wrong, for the person.
        message: String,
    },
    /// Send the browser back to the client with an error (and `state`, `iss`).
    Redirect(ClientRedirect),
}

/// Where the browser goes back to the client, with what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRedirect {
    /// The client's redirect URI.
    pub redirect_uri: String,
    /// The parameters to add (`code` or `error`…; `state` and `iss` are added here).
    pub params: Vec<(String, String)>,
}

impl ClientRedirect {
    fn new(
        redirect_uri: &str,
        state: Option<&str>,
        issuer: &str,
        mut params: Vec<(String, String)>,
    ) -> Self {
        if let Some(state) = state {
            params.push(("state".into(), state.to_owned()));
        }
        params.push(("iss".into(), issuer.to_owned()));
        Self {
            redirect_uri: redirect_uri.to_owned(),
            params,
        }
    }

    /// An error redirect (RFC 6749 §4.1.2.1 with RFC 9207 `iss`).
    #[must_use]
    pub fn error(
        redirect_uri: &str,
        state: Option<&str>,
        issuer: &str,
        error: &str,
        description: &str,
    ) -> Self {
        Self::new(
            redirect_uri,
            state,
            issuer,
            vec![
                ("error".into(), error.to_owned()),
                ("error_description".into(), description.to_owned()),
            ],
        )
    }

    /// A success redirect carrying our code.
    #[must_use]
    pub fn code(redirect_uri: &str, state: Option<&str>, issuer: &str, code: &str) -> Self {
        Self::new(
            redirect_uri,
            state,
            issuer,
            vec![("code".into(), code.to_owned())],
        )
    }

    /// The full URL (the redirect URI's own query is kept; ours is appended).
    #[must_use]
    pub fn to_url(&self) -> String {
        let mut url = self.redirect_uri.clone();
        let mut sep = if url.contains('?') { '&' } else { '?' };
        for (k, v) in &self.params {
            url.push(sep);
            url.push_str(&urlencode(k));
            url.push('=');
            url.push_str(&urlencode(v));
            sep = '&';
        }
        url
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// An authorization request that passed every check, waiting for the person's decision.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    /// The client.
    pub client: OAuthClient,
    /// The redirect URI as presented (the token request must repeat it exactly).
    pub redirect_uri: String,
    /// The client's `state`.
    pub state: Option<String>,
    /// The client's PKCE challenge.
    pub code_challenge: CodeChallenge,
    /// The canonical resource.
    pub resource: String,
    /// The granted scope.
    pub scope: String,
}

impl AuthorizationRequest {
    /// An error back to this request's client.
    #[must_use]
    pub fn error(&self, audience: &Audience, error: &str, description: &str) -> ClientRedirect {
        ClientRedirect::error(
            &self.redirect_uri,
            self.state.as_deref(),
            audience.issuer(),
            error,
            description,
        )
    }
}

/// Checks an authorization request once its client is known (`None`: unknown client).
///
/// # Errors
/// [`AuthorizeError::Page`] for an unknown client or a redirect URI that isn't registered;
/// [`AuthorizeError::Redirect`] for everything after that.
pub fn check_request(
    params: &AuthorizationParams,
    client: Option<OAuthClient>,
    audience: &Audience,
) -> Result<AuthorizationRequest, AuthorizeError> {
    let page = |m: &str| AuthorizeError::Page {
        message: m.to_owned(),
    };
    let Some(client) = client else {
        return Err(page(
            "This application is not registered with mailconnect (unknown client_id). Go back to the application and connect again.",
        ));
    };
    let redirect_uri = match params.redirect_uri.as_deref() {
        Some(presented) => match client.redirect_uri(presented) {
            Some(_) => presented.to_owned(),
            None => {
                return Err(page(
                    "The address this application asked to return to is not one it registered, so mailconnect will not send you there.",
                ));
            }
        },
        None => match client.redirect_uris.as_slice() {
            [only] => only.as_str().to_owned(),
            _ => {
                return Err(page(
                    "The request does not say where to return to (redirect_uri).",
                ));
            }
        },
    };
    let state = params.state.clone();
    let back = |error: &str, description: &str| {
        AuthorizeError::Redirect(ClientRedirect::error(
            &redirect_uri,
            state.as_deref(),
            audience.issuer(),
            error,
            description,
        ))
    };
    match params.response_type.as_deref() {
        Some("code") => {}
        None => {
            return Err(back(
                "invalid_request",
                "response_type is required and must be \"code\"",
            ));
        }
        Some(_) => {
            return Err(back(
                "unsupported_response_type",
                "only response_type=code is supported",
            ));
        }
    }
    let code_challenge = CodeChallenge::parse(
        params.code_challenge.as_deref(),
        params.code_challenge_method.as_deref(),
    )
    .map_err(|e| back("invalid_request", &e.to_string()))?;
    let resource = audience
        .canonical_resource(params.resource.as_deref())
        .map_err(|e| back("invalid_target", &e.to_string()))?;
    Ok(AuthorizationRequest {
        client,
        redirect_uri,
        state: params.state.clone(),
        code_challenge,
        resource,
        scope: granted_scope(params.scope.as_deref()),
    })
}

/// The consent screen's secret values, bound to one request and one browser.
#[derive(Debug, Clone)]
pub struct ConsentTicket {
    /// Names the pending request in the form.
    pub request_id: String,
    /// The form's CSRF token.
    pub csrf_token: SecretString,
}

/// A request approved by the person, waiting for the upstream to send the browser back.
#[derive(Debug, Clone)]
pub struct UpstreamLeg {
    /// The client's request.
    pub request: AuthorizationRequest,
    /// Our PKCE verifier toward the upstream.
    pub verifier: SecretString,
}

/// Why a pending step could not be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PendingError {
    /// Unknown, expired or already used.
    #[error(
        "this sign-in request has expired or was already used; start again from the application"
    )]
    Gone,
    /// The CSRF token or the browser binding does not match.
    #[error("this form was not submitted from the page mailconnect showed you")]
    Forged,
    /// Too many requests are pending.
    #[error("too many sign-in requests are in progress; try again in a few minutes")]
    Busy,
    /// Storage is unavailable: nothing was lost, try again.
    #[error("mailconnect can't reach its storage right now; try again in a moment")]
    Unavailable,
}

fn digest(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

/// Whether `browser` (and `csrf`, when the step has a form) are the ones a step was bound to,
/// compared in constant time.
fn binding_matches(
    bound_browser: &[u8; 32],
    bound_csrf: &[u8; 32],
    browser: &str,
    csrf: Option<&str>,
) -> bool {
    let browser_ok = bool::from(bound_browser.ct_eq(&digest(browser)));
    let csrf_ok = csrf.is_none_or(|c| bool::from(bound_csrf.ct_eq(&digest(c))));
    browser_ok && csrf_ok
}

impl From<FlowStoreError> for PendingError {
    fn from(e: FlowStoreError) -> Self {
        match e {
            FlowStoreError::Busy => Self::Busy,
            FlowStoreError::Unavailable(why) => {
                tracing::error!(error = %why, "flow storage unavailable");
                Self::Unavailable
            }
        }
    }
}

/// The steps of every flow in progress, in storage `F`: the two of a connect flow and the
/// upstream leg of a settings sign-in.
#[derive(Debug)]
pub struct PendingFlows<'a, F>(pub &'a F);

/// Unix seconds `ttl` from now.
pub(crate) fn expiry(ttl: Duration) -> i64 {
    chrono::Utc::now().timestamp() + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2)
}

impl<F: FlowStore> PendingFlows<'_, F> {
    /// Parks `step` bound to `browser` (and a new CSRF token, when `with_csrf`) under a new
    /// handle; returns the handle and the CSRF token.
    async fn park(
        &self,
        step: Step,
        browser: &str,
        with_csrf: bool,
    ) -> Result<(String, Option<String>), PendingError> {
        let handle = random_value();
        let csrf = with_csrf.then(random_value);
        let parked = Parked {
            step,
            browser: digest(browser),
            csrf: csrf.as_deref().map_or([0; 32], digest),
            expires_at: expiry(PENDING_TTL),
        };
        self.0.park(&handle, parked).await?;
        Ok((handle, csrf))
    }

    /// Takes the step `handle` names, once, if `browser` (and `csrf`) match; a mismatch leaves
    /// it for the real browser, so a forged post can't cancel someone's sign-in. Of two
    /// instances taking one step at once, one gets it.
    async fn take(
        &self,
        kind: StepKind,
        handle: &str,
        browser: &str,
        csrf: Option<&str>,
    ) -> Result<Step, PendingError> {
        let parked = self.0.peek(kind, handle).await?.ok_or(PendingError::Gone)?;
        if !binding_matches(&parked.browser, &parked.csrf, browser, csrf) {
            return Err(PendingError::Forged);
        }
        if !self.0.remove(kind, handle).await? {
            return Err(PendingError::Gone);
        }
        Ok(parked.step)
    }

    /// Parks a checked request until the person decides; `browser` is the value of the
    /// browser-binding cookie set with the consent page.
    ///
    /// # Errors
    /// [`PendingError::Busy`] when too many flows are pending; `Unavailable`.
    pub async fn await_consent(
        &self,
        request: AuthorizationRequest,
        browser: &str,
    ) -> Result<ConsentTicket, PendingError> {
        let (request_id, csrf) = self.park(Step::Consent(request), browser, true).await?;
        Ok(ConsentTicket {
            request_id,
            csrf_token: SecretString::new(csrf.unwrap_or_default()),
        })
    }

    /// Takes the request the person decided on, once.
    ///
    /// # Errors
    /// [`PendingError::Gone`], [`PendingError::Forged`] or `Unavailable`.
    pub async fn take_consent(
        &self,
        request_id: &str,
        csrf: &str,
        browser: &str,
    ) -> Result<AuthorizationRequest, PendingError> {
        match self
            .take(StepKind::Consent, request_id, browser, Some(csrf))
            .await?
        {
            Step::Consent(request) => Ok(request),
            _ => Err(PendingError::Gone),
        }
    }

    /// Parks an approved request while the browser is at the upstream; returns the upstream
    /// `state` and our PKCE pair's challenge.
    ///
    /// # Errors
    /// [`PendingError::Busy`] when too many flows are pending; `Unavailable`.
    pub async fn await_upstream(
        &self,
        request: AuthorizationRequest,
        browser: &str,
    ) -> Result<(String, String), PendingError> {
        let pkce = PkcePair::generate();
        let leg = UpstreamLeg {
            request,
            verifier: pkce.verifier,
        };
        let (state, _) = self.park(Step::Upstream(leg), browser, false).await?;
        Ok((state, pkce.challenge))
    }

    /// Parks a settings sign-in while the browser is at the upstream; returns the `state` and
    /// our PKCE challenge.
    ///
    /// # Errors
    /// [`PendingError::Busy`] when too many flows are pending; `Unavailable`.
    pub async fn await_sign_in(&self, browser: &str) -> Result<(String, String), PendingError> {
        let pkce = PkcePair::generate();
        let (state, _) = self
            .park(Step::SignIn(pkce.verifier), browser, false)
            .await?;
        Ok((state, pkce.challenge))
    }

    /// Takes a settings sign-in by `state`, once, from the browser that started it; returns
    /// our PKCE verifier.
    ///
    /// # Errors
    /// [`PendingError::Gone`] (not a sign-in: maybe a client's flow), [`PendingError::Forged`]
    /// or `Unavailable`.
    pub async fn take_sign_in(
        &self,
        state: &str,
        browser: &str,
    ) -> Result<SecretString, PendingError> {
        match self.take(StepKind::SignIn, state, browser, None).await? {
            Step::SignIn(verifier) => Ok(verifier),
            _ => Err(PendingError::Gone),
        }
    }

    /// Parks a notifier consent while the browser is at the upstream; returns the `state`
    /// and our PKCE challenge.
    ///
    /// # Errors
    /// [`PendingError::Busy`] when too many flows are pending; `Unavailable`.
    pub async fn await_notifier_consent(
        &self,
        consent: impl FnOnce(SecretString) -> NotifierConsent,
        browser: &str,
    ) -> Result<(String, String), PendingError> {
        let pkce = PkcePair::generate();
        let step = Step::NotifierConsent(consent(pkce.verifier));
        let (state, _) = self.park(step, browser, false).await?;
        Ok((state, pkce.challenge))
    }

    /// Takes a notifier consent by `state`, once, from the browser that started it.
    ///
    /// # Errors
    /// [`PendingError::Gone`] (not a notifier consent), [`PendingError::Forged`] or
    /// `Unavailable`.
    pub async fn take_notifier_consent(
        &self,
        state: &str,
        browser: &str,
    ) -> Result<NotifierConsent, PendingError> {
        match self
            .take(StepKind::NotifierConsent, state, browser, None)
            .await?
        {
            Step::NotifierConsent(consent) => Ok(consent),
            _ => Err(PendingError::Gone),
        }
    }

    /// Takes the leg the upstream's callback names by `state`, once, from the same browser.
    ///
    /// # Errors
    /// [`PendingError::Gone`], [`PendingError::Forged`] or `Unavailable`.
    pub async fn take_upstream(
        &self,
        state: &str,
        browser: &str,
    ) -> Result<UpstreamLeg, PendingError> {
        match self.take(StepKind::Upstream, state, browser, None).await? {
            Step::Upstream(leg) => Ok(leg),
            _ => Err(PendingError::Gone),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::HashMap, sync::Mutex};

    use super::*;
    use crate::domain::auth::{
        client::{ClientId, ClientKind, TokenAuthMethod},
        redirect::RedirectUri,
    };

    fn audience() -> Audience {
        Audience::new(&url::Url::parse("https://mc.example").unwrap())
    }

    fn client() -> OAuthClient {
        OAuthClient {
            id: ClientId::new("c1"),
            name: "Client".into(),
            redirect_uris: vec![RedirectUri::parse("http://127.0.0.1:5000/cb").unwrap()],
            kind: ClientKind::Registered,
            auth_method: TokenAuthMethod::None,
            secret_digest: None,
            created_at: 0,
        }
    }

    fn params() -> AuthorizationParams {
        AuthorizationParams {
            response_type: Some("code".into()),
            client_id: Some("c1".into()),
            redirect_uri: Some("http://127.0.0.1:6000/cb".into()),
            code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
            code_challenge_method: Some("S256".into()),
            state: Some("st".into()),
            scope: None,
            resource: None,
        }
    }

    #[test]
    fn a_good_request_defaults_the_resource() {
        let r = check_request(&params(), Some(client()), &audience()).unwrap();
        assert_eq!(r.resource, "https://mc.example/mcp");
        assert_eq!(r.redirect_uri, "http://127.0.0.1:6000/cb");
    }

    #[test]
    fn unknown_clients_and_foreign_redirects_get_a_page_not_a_redirect() {
        assert!(matches!(
            check_request(&params(), None, &audience()),
            Err(AuthorizeError::Page { .. })
        ));
        let mut p = params();
        p.redirect_uri = Some("http://127.0.0.1:6000/other".into());
        assert!(matches!(
            check_request(&p, Some(client()), &audience()),
            Err(AuthorizeError::Page { .. })
        ));
    }

    #[test]
    fn later_errors_redirect_with_state_and_iss() {
        let mut p = params();
        p.code_challenge_method = Some("plain".into());
        let Err(AuthorizeError::Redirect(r)) = check_request(&p, Some(client()), &audience())
        else {
            panic!("expected a redirect");
        };
        let url = r.to_url();
        assert!(
            url.starts_with("http://127.0.0.1:6000/cb?error=invalid_request&"),
            "{url}"
        );
        assert!(
            url.contains("state=st") && url.contains("iss=https%3A%2F%2Fmc.example"),
            "{url}"
        );
        let mut p = params();
        p.response_type = Some("token".into());
        let Err(AuthorizeError::Redirect(r)) = check_request(&p, Some(client()), &audience())
        else {
            panic!("expected a redirect");
        };
        assert_eq!(r.params[0].1, "unsupported_response_type");
        let mut p = params();
        p.resource = Some("https://other.example/mcp".into());
        let Err(AuthorizeError::Redirect(r)) = check_request(&p, Some(client()), &audience())
        else {
            panic!("expected a redirect");
        };
        assert_eq!(r.params[0].1, "invalid_target");
    }

    /// Steps in a map: the binding rules under test are the core's, not storage's.
    #[derive(Default)]
    struct Steps(Mutex<HashMap<(StepKind, String), Parked>>);

    impl FlowStore for Steps {
        async fn park(&self, handle: &str, parked: Parked) -> Result<(), FlowStoreError> {
            let key = (parked.step.kind(), handle.to_owned());
            self.0.lock().unwrap().insert(key, parked);
            Ok(())
        }
        async fn peek(
            &self,
            kind: StepKind,
            handle: &str,
        ) -> Result<Option<Parked>, FlowStoreError> {
            Ok(self
                .0
                .lock()
                .unwrap()
                .get(&(kind, handle.to_owned()))
                .cloned())
        }
        async fn remove(&self, kind: StepKind, handle: &str) -> Result<bool, FlowStoreError> {
            Ok(self
                .0
                .lock()
                .unwrap()
                .remove(&(kind, handle.to_owned()))
                .is_some())
        }
    }

    #[tokio::test]
    async fn pending_steps_are_single_use_and_bound_to_the_browser() {
        let steps = Steps::default();
        let flows = PendingFlows(&steps);
        let request = check_request(&params(), Some(client()), &audience()).unwrap();
        let ticket = flows.await_consent(request, "browser-a").await.unwrap();
        let csrf = ticket.csrf_token.expose_secret();
        assert_eq!(
            flows
                .take_consent(&ticket.request_id, "wrong", "browser-a")
                .await
                .unwrap_err(),
            PendingError::Forged
        );
        assert_eq!(
            flows
                .take_consent(&ticket.request_id, csrf, "browser-b")
                .await
                .unwrap_err(),
            PendingError::Forged
        );
        let request = flows
            .take_consent(&ticket.request_id, csrf, "browser-a")
            .await
            .unwrap();
        assert_eq!(
            flows
                .take_consent(&ticket.request_id, csrf, "browser-a")
                .await
                .unwrap_err(),
            PendingError::Gone
        );
        let (state, _challenge) = flows.await_upstream(request, "browser-a").await.unwrap();
        assert_eq!(
            flows.take_upstream(&state, "browser-b").await.unwrap_err(),
            PendingError::Forged
        );
        assert!(flows.take_upstream(&state, "browser-a").await.is_ok());
        assert_eq!(
            flows.take_upstream(&state, "browser-a").await.unwrap_err(),
            PendingError::Gone
        );
    }
}
