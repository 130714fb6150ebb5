//! Turning background delivery on and off for a connection, from the settings page.
//!
//! On: the destination is sealed to the notifier at once when the person already has a
//! notifier grant; otherwise the browser goes to the mail provider first, to approve the
//! separate "mailconnect notifier" client (a second consent, PKCE, bound to this browser), and
//! the grant must be for the same mailbox the person signed in to settings with. Off: the
//! destination goes; with the person's last one, the notifier grant is revoked at the provider
//! and deleted.

use std::sync::Arc;

use crate::domain::{
    auth::{
        flow::{PendingError, PendingFlows},
        settings::account_digest,
    },
    grant::{GrantId, UpstreamCredential},
    notify::{
        background::{Background, NotifierConsent, NotifierControl, TurnOffError},
        delivery::Destination,
    },
    ports::{
        BackgroundError, BackgroundStore, FlowStore, MailReader, MailStoreError, UpstreamAuth,
        UpstreamAuthError,
    },
};

/// What turning on needs next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TurnOn {
    /// On now.
    Done,
    /// First approve the notifier at the provider: send the browser here.
    Consent(String),
}

/// Why turning background delivery on or off failed; the text is a sentence for the person.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// No such consent for this browser, too many pending, or it expired.
    #[error("{0}")]
    Pending(#[from] PendingError),
    /// The answer names another authorization server (mix-up, RFC 9207).
    #[error("the answer came from an unexpected server")]
    WrongIssuer,
    /// The provider sent no code back.
    #[error("the mail provider did not approve the notifier")]
    NotApproved,
    /// The provider's sign-in could not be started.
    #[error("the mail provider's sign-in is unavailable: {0}")]
    SignInUnavailable(UpstreamAuthError),
    /// The provider refused the code or could not be reached.
    #[error("{0}")]
    Upstream(#[from] UpstreamAuthError),
    /// The new grant could not read the mailbox.
    #[error("the mailbox could not be read: {0}")]
    Mailbox(MailStoreError),
    /// The person approved the notifier for another mailbox.
    #[error(
        "you approved the notifier for a different mailbox than the one signed in to settings; nothing was turned on"
    )]
    OtherMailbox,
    /// The background records failed.
    #[error("{0}")]
    Store(#[from] BackgroundError),
    /// Ending the notifier grant did not go cleanly.
    #[error("{0}")]
    TurnOff(#[from] TurnOffError),
}

/// The settings page's side of background delivery: the notifier's upstream client `U`, the
/// mailbox `M` (whose a new notifier grant is), the records' sealing side `S`, the running
/// notifier `C` and the storage `F` where a consent in progress waits.
pub struct BackgroundSetup<U, M, S, C, F> {
    upstream: Arc<U>,
    mail: Arc<M>,
    store: Arc<S>,
    control: Arc<C>,
    flows: Arc<F>,
}

impl<U, M, S, C, F> std::fmt::Debug for BackgroundSetup<U, M, S, C, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackgroundSetup").finish_non_exhaustive()
    }
}

impl<U, M, S, C, F> BackgroundSetup<U, M, S, C, F>
where
    U: UpstreamAuth,
    M: MailReader,
    S: BackgroundStore,
    C: NotifierControl,
    F: FlowStore,
{
    /// Setup through the notifier's upstream client `upstream`; `mail` reads whose mailbox a
    /// new notifier grant is for.
    #[must_use]
    pub fn new(
        upstream: Arc<U>,
        mail: Arc<M>,
        store: Arc<S>,
        control: Arc<C>,
        flows: Arc<F>,
    ) -> Self {
        Self {
            upstream,
            mail,
            store,
            control,
            flows,
        }
    }

    /// The connection's background delivery, if on.
    #[must_use]
    pub async fn status(&self, grant: &GrantId) -> Option<Background> {
        self.store.background(grant).await.ok().flatten()
    }

    /// Turns background delivery on for `grant` of the person `account` (an account digest;
    /// the caller checked the grant is theirs and may hear about new mail).
    ///
    /// # Errors
    /// [`SetupError`].
    pub async fn turn_on(
        &self,
        account: &str,
        grant: &GrantId,
        destination: Destination,
        browser: &str,
    ) -> Result<TurnOn, SetupError> {
        // With the notifier grant checked in the same transaction: the notifier may be ending
        // one no destination uses right now.
        if self
            .store
            .seal_destination_if_notifier(grant, account, &destination)
            .await?
        {
            self.control.wake();
            tracing::info!(grant = %grant, kind = destination.kind(), "background delivery on");
            return Ok(TurnOn::Done);
        }
        let (state, challenge) = PendingFlows(&*self.flows)
            .await_notifier_consent(
                |verifier| NotifierConsent {
                    grant: grant.clone(),
                    account: account.to_owned(),
                    destination,
                    verifier,
                },
                browser,
            )
            .await?;
        let url = self
            .upstream
            .authorization_url(&state, &challenge)
            .await
            .map_err(SetupError::SignInUnavailable)?;
        Ok(TurnOn::Consent(url))
    }

    /// Finishes a notifier consent, if `state` names one (`Ok(None)`: not ours).
    ///
    /// # Errors
    /// [`SetupError`]: a refused or failed consent, another mailbox.
    pub async fn finish(
        &self,
        state: &str,
        browser: &str,
        code: Option<&str>,
        iss: Option<&str>,
    ) -> Result<Option<GrantId>, SetupError> {
        let consent = match PendingFlows(&*self.flows)
            .take_notifier_consent(state, browser)
            .await
        {
            Ok(c) => c,
            Err(PendingError::Gone) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if !self.upstream.accepts_issuer(iss.map(str::to_owned)).await {
            return Err(SetupError::WrongIssuer);
        }
        let code = code.ok_or(SetupError::NotApproved)?;
        let tokens = self.upstream.exchange_code(code, &consent.verifier).await?;
        if let Err(why) = self.keep(&consent, &tokens).await {
            // A grant we don't keep is revoked, whatever went wrong.
            let token = tokens.refresh.as_ref().unwrap_or(&tokens.access);
            if let Err(e) = self.upstream.revoke(token).await {
                tracing::warn!(error = %e, "an unkept notifier grant was not revoked");
            }
            return Err(why);
        }
        drop(tokens);
        self.control.wake();
        tracing::info!(grant = %consent.grant, "notifier approved; background delivery on");
        Ok(Some(consent.grant))
    }

    /// After a connection of `account` ended (its destination went with it): with no other
    /// connection delivering in the background, the notifier grant is revoked and deleted.
    ///
    /// # Errors
    /// [`TurnOffError`].
    pub async fn connection_ended(&self, account: &str) -> Result<(), TurnOffError> {
        self.control.turn_off(account).await
    }

    /// Keeps a consented notifier grant: for the mailbox signed in to settings only, with the
    /// destination sealed first (the notifier ends notifier grants no destination uses).
    async fn keep(
        &self,
        consent: &NotifierConsent,
        tokens: &crate::domain::ports::UpstreamTokens,
    ) -> Result<(), SetupError> {
        let account = self
            .mail
            .account(&UpstreamCredential::Bearer(tokens.access.clone()))
            .await
            .map_err(SetupError::Mailbox)?;
        if account_digest(&account.username) != consent.account {
            return Err(SetupError::OtherMailbox);
        }
        self.store
            .seal_destination(&consent.grant, &consent.account, &consent.destination)
            .await?;
        Ok(self.store.seal_notifier(&consent.account, tokens).await?)
    }

    /// Turns background delivery off for `grant`; with the person's last connection delivering
    /// in the background, the notifier grant is revoked at the provider and deleted.
    ///
    /// # Errors
    /// [`SetupError`].
    pub async fn turn_off(&self, grant: &GrantId) -> Result<(), SetupError> {
        let Some(on) = self.store.background(grant).await? else {
            return Ok(());
        };
        self.store.remove_destination(grant).await?;
        // Ends the notifier grant only if no other connection of the person uses it.
        self.control.turn_off(&on.account).await?;
        tracing::info!(grant = %grant, "background delivery off");
        Ok(())
    }
}
