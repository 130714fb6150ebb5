//! The background notifier: while nobody is asking, it watches each person's mailbox with
//! their separate notifier grant and tells the destinations of their connections about new
//! mail, under each connection's rules.
//!
//! It holds the only key that opens notifier grants ([`NotifierKeyring`]) and a mailbox view
//! that can read nothing but headers (a [`MailFeed`]). What it keeps holds no mail: per
//! account a cursor (stored, so a restart resumes where the last look left off), and in memory
//! per connection a rate cap and the headers held for the digest at the end of quiet hours
//! (lost on a restart: held arrivals then go untold, a loss we accept over storing headers).
//!
//! It decides; it does not run. The rounds, the push channels and the deliveries' tasks and
//! waits are the background-work adapter's (`inbound::background_work`).

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    future::Future,
    sync::Arc,
    time::Duration,
};

use chrono::{DateTime, Utc};

use crate::domain::{
    auth::upstream_refresh::due,
    grant::{Capability, GrantId, UpstreamCredential},
    notify::{
        arrival,
        background::{Background, LastDelivery, TurnOffError},
        cursor::NewMailCursor,
        delivery::{
            Arrival, AttemptOutcome, Deliverer, DeliveryError, DeliveryOutcome, Destination,
            Notice, RetrySchedule, RunId, deliver_with_retries,
        },
        rules::{Decision, RateCap, Rules},
        settings::NotifySettings,
    },
    ports::{
        BackgroundStore, MailFeed, MailStoreError, NotifierKeyring, Policy, PushChannel,
        UpstreamAuth, UpstreamAuthError, UpstreamTokens,
    },
};

/// How the notifier runs.
#[derive(Debug, Clone)]
pub struct NotifierSettings {
    /// Between looks at each mailbox (jittered by up to a tenth).
    pub poll: Duration,
    /// The ping interval asked of each mailbox's push channel.
    pub ping: Duration,
    /// When a server offers no push, how long until it is asked again.
    pub push_retry: Duration,
    /// The retries of one delivery.
    pub schedule: RetrySchedule,
}

/// One connection's pacing.
#[derive(Debug)]
struct Pacing {
    cap: RateCap,
    /// Arrivals held by quiet hours, for the digest at their end.
    held: Vec<Arrival>,
    held_until: Option<DateTime<Utc>>,
    /// The least time between two notices (Poke: every one is a text message).
    spacing: Option<chrono::Duration>,
    /// When the last notice went.
    last_sent: Option<DateTime<Utc>>,
    /// Arrivals waiting for the spacing, merged into the next notice.
    spaced: Vec<Arrival>,
}

impl Default for Pacing {
    fn default() -> Self {
        Self {
            cap: RateCap::new(3, 10),
            held: Vec::new(),
            held_until: None,
            spacing: None,
            last_sent: None,
            spaced: Vec::new(),
        }
    }
}

/// The least time between two Poke messages, on top of the connection's rate cap.
const POKE_SPACING: chrono::Duration = chrono::Duration::minutes(2);

#[derive(Debug, Default)]
struct AccountState {
    cursor: Option<NewMailCursor>,
    pacing: HashMap<GrantId, Pacing>,
}

/// The notifier, over its mailbox view `N`, its upstream client `U`, the policy `P`, the
/// deliverer `D`, and the two sides of background delivery's records: the keyring `K` that opens
/// them and the store `S` that seals and lists them.
pub struct Notifier<N, U, P, D, K, S> {
    mail: N,
    upstream: Arc<U>,
    policy: P,
    deliverer: Arc<D>,
    keyring: Arc<K>,
    store: Arc<S>,
    settings: NotifierSettings,
    accounts: tokio::sync::Mutex<HashMap<String, AccountState>>,
    /// One refresh at a time: a rotated refresh token used twice ends the grant.
    refreshing: tokio::sync::Mutex<()>,
}

impl<N, U, P, D, K, S> std::fmt::Debug for Notifier<N, U, P, D, K, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// What one round found.
#[derive(Debug, Default)]
pub struct Round {
    /// The notices to deliver, each to a connection's destination.
    pub notices: Vec<(GrantId, Notice)>,
    /// Accounts whose server had more changes than one look reads: look again at once.
    pub again: HashSet<String>,
    /// On a round over every account: the accounts delivering in the background now.
    pub accounts: Option<BTreeSet<String>>,
}

/// What opening an account's push channel came to.
#[derive(Debug)]
pub enum PushOpening {
    /// The channel.
    Channel(PushChannel),
    /// The server offers no push.
    NotOffered,
    /// The account has no notifier grant (any more).
    NoGrant,
}

/// Why the notifier could not look at, or reach, one account.
#[derive(Debug, thiserror::Error)]
pub enum LookError {
    #[error("no notifier grant")]
    NoGrant,
    #[error("the notifier grant ended at the provider")]
    Ended,
    #[error("{0}")]
    Store(String),
    #[error("{0}")]
    Mail(#[from] MailStoreError),
    #[error("{0}")]
    Upstream(UpstreamAuthError),
}

impl<N, U, P, D, K, S> Notifier<N, U, P, D, K, S>
where
    N: MailFeed,
    U: UpstreamAuth,
    P: Policy,
    D: Deliverer,
    K: NotifierKeyring,
    S: BackgroundStore,
{
    /// A notifier over its ports.
    #[must_use]
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        mail: N,
        upstream: Arc<U>,
        policy: P,
        deliverer: Arc<D>,
        keyring: Arc<K>,
        store: Arc<S>,
        settings: NotifierSettings,
    ) -> Self {
        Self {
            mail,
            upstream,
            policy,
            deliverer,
            keyring,
            store,
            settings,
            accounts: tokio::sync::Mutex::new(HashMap::new()),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    /// Forgets what this process knew of every account (cursors, pacing): another instance
    /// may have delivered since, and the stored cursors are where to go on from.
    pub async fn forget_accounts(&self) {
        self.accounts.lock().await.clear();
    }

    /// How it was set up.
    #[must_use]
    pub fn settings(&self) -> &NotifierSettings {
        &self.settings
    }

    /// One look at every account with background delivery on (`only`: at these); what it
    /// found is the caller's to deliver.
    pub async fn look_all(&self, only: Option<&HashSet<String>>) -> Round {
        let mut round = Round::default();
        if only.is_none() {
            // Destinations of connections that ended without the settings page knowing.
            match self.store.remove_orphans().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "destinations of ended connections removed"),
                Err(e) => tracing::warn!(error = %e, "orphan sweep failed"),
            }
        }
        let backgrounds = match self.store.backgrounds().await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "background list failed");
                return round;
            }
        };
        let mut by_account: BTreeMap<String, Vec<Background>> = BTreeMap::new();
        for b in backgrounds {
            by_account.entry(b.account.clone()).or_default().push(b);
        }
        if only.is_none() {
            self.tidy(&by_account).await;
            round.accounts = Some(by_account.keys().cloned().collect());
        }
        for (account, grants) in by_account {
            if only.is_some_and(|o| !o.contains(&account)) {
                continue;
            }
            match self.look(&account, &grants, &mut round).await {
                Ok(()) => {}
                Err(LookError::Ended) => {
                    tracing::info!("a notifier grant ended at the provider; turning it off");
                    self.forget(&account, &grants).await;
                }
                Err(e) => tracing::info!(error = %e, "background look failed"),
            }
        }
        round
    }

    /// Matches the cursors to the accounts delivering in the background, and ends notifier
    /// grants no connection uses any more (its last one ended some other way than the
    /// settings page).
    async fn tidy(&self, by_account: &BTreeMap<String, Vec<Background>>) {
        self.accounts
            .lock()
            .await
            .retain(|account, _| by_account.contains_key(account));
        let unused = self
            .keyring
            .notifier_accounts()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|a| !by_account.contains_key(a));
        for account in unused {
            if let Err(e) = self.end_unused(&account).await {
                tracing::warn!(error = %e, "an unused notifier grant could not be ended");
            }
        }
    }

    /// Opens `account`'s push channel with its notifier grant, renewed once if the server
    /// refuses it.
    ///
    /// # Errors
    /// [`LookError`].
    pub async fn open_push(&self, account: &str) -> Result<PushOpening, LookError> {
        let mut force = false;
        loop {
            let cred = match self.credential(account, force).await {
                Ok(cred) => cred,
                Err(LookError::NoGrant) => return Ok(PushOpening::NoGrant),
                Err(e) => return Err(e),
            };
            match self.mail.open_push(&cred, self.settings.ping).await {
                Ok(Some(channel)) => return Ok(PushOpening::Channel(channel)),
                Ok(None) => return Ok(PushOpening::NotOffered),
                Err(MailStoreError::Unauthorized) if !force => force = true,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The person revoked the notifier at the provider: its record and destinations go.
    async fn forget(&self, account: &str, grants: &[Background]) {
        for b in grants {
            let _ = self.store.remove_destination(&b.grant).await;
        }
        let _ = self.keyring.remove_notifier(account).await;
    }

    /// Ends `account`'s notifier grant if no connection delivers through it: deleted in one
    /// transaction with that check, then revoked at the provider. Holds the refresh lock, so
    /// no refresh re-seals it meanwhile.
    ///
    /// # Errors
    /// [`TurnOffError`]: the record can't be read or deleted, or the provider did not confirm
    /// the revocation (the grant is deleted here anyway).
    pub async fn end_unused(&self, account: &str) -> Result<bool, TurnOffError> {
        let _one_at_a_time = self.refreshing.lock().await;
        let Some(tokens) = self.keyring.take_unused(account).await? else {
            return Ok(false);
        };
        self.accounts.lock().await.remove(account);
        let token = tokens.refresh.unwrap_or(tokens.access);
        if let Err(e) = self.upstream.revoke(&token).await {
            tracing::warn!(error = %e, "the provider did not revoke the notifier grant");
            return Err(TurnOffError::NotRevoked(e));
        }
        tracing::info!("a notifier grant was revoked and deleted");
        Ok(true)
    }

    /// The notifier's credential for `account`, renewed (and re-sealed) when it is about to
    /// expire or `force`d after a refusal.
    async fn credential(
        &self,
        account: &str,
        force: bool,
    ) -> Result<UpstreamCredential, LookError> {
        let _one_at_a_time = self.refreshing.lock().await;
        let tokens = self
            .keyring
            .open_notifier(account)
            .await
            .map_err(|e| LookError::Store(e.to_string()))?
            .ok_or(LookError::NoGrant)?;
        let expiring = due(
            tokens.expires_at,
            tokens.issued_at,
            tokens.refresh.is_some(),
            Utc::now().timestamp(),
        );
        let Some(refresh) = tokens.refresh.clone().filter(|_| force || expiring) else {
            return Ok(UpstreamCredential::Bearer(tokens.access));
        };
        match self.upstream.refresh(&refresh).await {
            Ok(fresh) => {
                let fresh = UpstreamTokens {
                    refresh: fresh.refresh.or(Some(refresh)),
                    ..fresh
                };
                self.store
                    .seal_notifier(account, &fresh)
                    .await
                    .map_err(|e| LookError::Store(e.to_string()))?;
                Ok(UpstreamCredential::Bearer(fresh.access))
            }
            Err(UpstreamAuthError::InvalidGrant(_)) => Err(LookError::Ended),
            Err(e) => Err(LookError::Upstream(e)),
        }
    }

    async fn look(
        &self,
        account: &str,
        grants: &[Background],
        round: &mut Round,
    ) -> Result<(), LookError> {
        let mut accounts = self.accounts.lock().await;
        let state = accounts.entry(account.to_owned()).or_default();
        if state.cursor.is_none() {
            // After a restart, from where the last look left off: nothing that arrived
            // meanwhile is missed (and nothing older than a day comes back).
            state.cursor = self
                .store
                .cursor(account)
                .await
                .ok()
                .flatten()
                .and_then(|c| NewMailCursor::decode(&c));
        }
        let now = Utc::now();
        let watermark = NewMailCursor::watermark_from(state.cursor.as_ref(), now);
        let since = state.cursor.as_ref().map(|c| c.state.clone());
        let cred = self.credential(account, false).await?;
        let feed = match self
            .mail
            .changes_since(&cred, since.clone(), watermark)
            .await
        {
            Err(MailStoreError::Unauthorized) => {
                let cred = self.credential(account, true).await?;
                self.mail.changes_since(&cred, since, watermark).await?
            }
            other => other?,
        };
        let arrivals = arrival::arrivals_in(&feed, watermark, false);
        // The first look only sets the cursor: the backlog is not news.
        let first = state.cursor.is_none();
        let cursor = NewMailCursor::after(
            watermark,
            feed.state.clone(),
            arrivals.iter().map(|a| a.received_at),
            now,
        );
        if state.cursor.as_ref() != Some(&cursor)
            && let Err(e) = self.store.save_cursor(account, &cursor.encode()).await
        {
            tracing::warn!(error = %e, "the notifier's cursor was not saved");
        }
        state.cursor = Some(cursor);
        if feed.more {
            round.again.insert(account.to_owned());
        }
        for b in grants {
            let pacing = state.pacing.entry(b.grant.clone()).or_default();
            pacing.spacing = (b.kind == "poke").then_some(POKE_SPACING);
            let settings = match self.settings_of(&b.grant).await {
                Ok(Some(settings)) => settings,
                // A connection that may no longer hear about new mail hears nothing.
                Ok(None) => {
                    *pacing = Pacing::default();
                    continue;
                }
                // A hiccup: what quiet hours hold stays held.
                Err(e) => {
                    tracing::info!(error = %e, "a connection's rules could not be read");
                    continue;
                }
            };
            let Ok(rules) = settings.rules() else {
                continue;
            };
            let watched = settings.watched(&feed.mailboxes);
            let mine: Vec<Candidate> = arrivals
                .iter()
                .filter(|_| !first)
                .filter(|e| e.mailbox_ids.iter().any(|m| watched.contains(m)))
                .map(|e| Candidate {
                    arrival: Arrival::from_summary(e),
                    in_my_thread: feed.my_threads.contains(&e.thread_id),
                    sender_verified: e.sender_verified != Some(false),
                })
                .collect();
            if let Some(notice) = notice(&rules, pacing, &mine, now) {
                round.notices.push((b.grant.clone(), notice));
            }
        }
        Ok(())
    }

    /// The connection's new-mail settings, if it may still hear about new mail.
    async fn settings_of(
        &self,
        grant: &GrantId,
    ) -> Result<Option<NotifySettings>, crate::domain::ports::PolicyError> {
        if !self
            .policy
            .capabilities(grant)
            .await?
            .allows(Capability::Notify)
        {
            return Ok(None);
        }
        self.policy.notify_settings(grant).await.map(Some)
    }

    /// Delivers `notice` to `grant`'s destination with the retry schedule, waiting between
    /// attempts with `sleep` (for hours: the caller runs this apart from everything else),
    /// and records the outcome for the settings page.
    pub async fn deliver<W, F>(&self, grant: GrantId, notice: Notice, sleep: W)
    where
        W: Fn(Duration) -> F,
        F: Future<Output = ()>,
    {
        let destination = match self.keyring.open_destination(&grant).await {
            Ok(Some(d)) => d,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "a destination did not open");
                return;
            }
        };
        let still_on = StillOn {
            inner: Arc::clone(&self.deliverer),
            keyring: Arc::clone(&self.keyring),
            grant: grant.clone(),
        };
        let report = deliver_with_retries(
            &still_on,
            &destination,
            &notice,
            &self.settings.schedule,
            sleep,
        )
        .await;
        let attempts = match report.attempts {
            1 => "1 attempt".to_owned(),
            n => format!("{n} attempts"),
        };
        let detail = match (report.outcome, &report.last_error) {
            (DeliveryOutcome::Delivered, _) => format!("delivered after {attempts}"),
            (DeliveryOutcome::Refused, Some(e)) => format!("refused: {e}"),
            (DeliveryOutcome::GaveUp, Some(e)) => format!("gave up after {attempts}: {e}"),
            (_, None) => format!("not delivered after {attempts}"),
        };
        let last = LastDelivery {
            at: Utc::now(),
            delivered: report.outcome == DeliveryOutcome::Delivered,
            detail,
        };
        if let Err(e) = self.store.record_delivery(&grant, &last).await {
            tracing::warn!(error = %e, "delivery record failed");
        }
    }
}

/// A delivery's attempts, each only while the connection still delivers in the background
/// (retries run for hours; turning off or revoking stops them), to its destination as it is
/// now.
struct StillOn<D, K> {
    inner: Arc<D>,
    keyring: Arc<K>,
    grant: GrantId,
}

impl<D: Deliverer, K: NotifierKeyring> Deliverer for StillOn<D, K> {
    async fn attempt(&self, _destination: &Destination, notice: &Notice) -> AttemptOutcome {
        match self.keyring.open_destination(&self.grant).await {
            Ok(Some(now)) => self.inner.attempt(&now, notice).await,
            Ok(None) => AttemptOutcome::Permanent(DeliveryError::Misconfigured(
                "background delivery was turned off".into(),
            )),
            Err(e) => AttemptOutcome::Retry {
                error: DeliveryError::Misconfigured(e.to_string()),
                retry_after: None,
            },
        }
    }
}

/// An arrival as the rules see it.
#[derive(Debug, Clone)]
struct Candidate {
    arrival: Arrival,
    /// A reply in a thread the person wrote in.
    in_my_thread: bool,
    /// Not refused by the receiving server's DMARC check.
    sender_verified: bool,
}

/// What to tell a connection now, under its `rules`: `arrivals` (each with whether it is a
/// reply in a thread the person wrote in) due now within the rate cap, and what quiet hours
/// held, as one notice when they end; what went over the cap rides along as a digest line, or
/// is told once a slot frees.
fn notice(
    rules: &Rules,
    pacing: &mut Pacing,
    arrivals: &[Candidate],
    now: DateTime<Utc>,
) -> Option<Notice> {
    let mut listed = Vec::new();
    for c in arrivals {
        let a = &c.arrival;
        match rules.decide_reply(
            &a.from.email,
            &a.thread_id,
            c.in_my_thread,
            c.sender_verified,
            now,
        ) {
            Decision::Notify { .. } => {
                if pacing.cap.admit(&a.from.email, now) {
                    listed.push(a.clone());
                }
            }
            Decision::HoldUntil(end) => {
                pacing.held.push(a.clone());
                pacing.held_until = Some(pacing.held_until.map_or(end, |h| h.min(end)));
            }
            Decision::Denied | Decision::NotAllowed | Decision::Muted => {}
        }
    }
    // Quiet hours are over: what they held goes now, in this one notice.
    if pacing.held_until.is_some_and(|end| end <= now) {
        pacing.held_until = None;
        listed.append(&mut pacing.held);
    }
    // Too soon after the last notice: this waits, merged into the next one.
    let next_slot = pacing
        .spacing
        .zip(pacing.last_sent)
        .map(|(gap, last)| last + gap);
    if next_slot.is_some_and(|slot| now < slot) {
        pacing.spaced.append(&mut listed);
        return None;
    }
    listed.splice(0..0, pacing.spaced.drain(..));
    let digest = if !listed.is_empty() || pacing.cap.admit_digest(now) {
        pacing.cap.take_digest()
    } else {
        None
    };
    if listed.is_empty() && digest.is_none() {
        return None;
    }
    let run_id = RunId::parse(format!(
        "mc-{}-{:016x}",
        now.timestamp_millis(),
        rand::random::<u64>()
    ))
    .ok()?;
    pacing.last_sent = Some(now);
    Some(Notice {
        run_id,
        arrivals: listed,
        digest,
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;
    use crate::{
        domain::{
            mail::Address,
            mail::ids::{EmailId, ThreadId},
            notify::{
                delivery::MockDeliverer,
                settings::{NotifySettings, QuietSpec},
            },
            ports::{MockMailFeed, MockPolicy, MockUpstreamAuth},
        },
        outbound::vault::{BackgroundVault, NotifierKey, NotifierVault, RedbVault},
    };

    type TestNotifier = Notifier<
        MockMailFeed,
        MockUpstreamAuth,
        MockPolicy,
        MockDeliverer,
        NotifierVault,
        BackgroundVault,
    >;

    /// Quiet every day 22:00–07:00 in UTC.
    fn quiet_nights() -> NotifySettings {
        NotifySettings {
            zone: "UTC".into(),
            quiet: vec![QuietSpec {
                days: (1..=7).collect(),
                start: 22 * 60,
                end: 7 * 60,
            }],
            ..NotifySettings::default()
        }
    }

    fn notifier(policy: MockPolicy, upstream: MockUpstreamAuth) -> (TestNotifier, RedbVault) {
        let vault = RedbVault::in_memory().unwrap();
        let path = std::env::temp_dir().join(format!("notifier-{:x}.key", rand::random::<u64>()));
        let key = NotifierKey::load_or_create(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let store = Arc::new(BackgroundVault::new(vault.clone(), key.seal()));
        let keyring = Arc::new(NotifierVault::new(vault.clone(), key));
        let n = Notifier::new(
            MockMailFeed::new(),
            Arc::new(upstream),
            policy,
            Arc::new(MockDeliverer::new()),
            keyring,
            store,
            NotifierSettings {
                poll: Duration::from_secs(60),
                ping: Duration::from_secs(30),
                push_retry: Duration::from_secs(3600),
                schedule: RetrySchedule::standard(),
            },
        );
        (n, vault)
    }

    fn arrival(from: &str, n: u32) -> Arrival {
        Arrival {
            from: Address {
                name: None,
                email: from.into(),
            },
            subject: format!("Subject {n}"),
            received_at: Utc.with_ymd_and_hms(2026, 11, 26, 23, 0, n).unwrap(),
            email_id: EmailId::parse(format!("e{n}")).unwrap(),
            thread_id: ThreadId::parse(format!("t{n}")).unwrap(),
        }
    }

    fn plain(arrivals: &[Arrival]) -> Vec<Candidate> {
        arrivals.iter().map(|a| candidate(a, false)).collect()
    }

    fn candidate(a: &Arrival, in_my_thread: bool) -> Candidate {
        Candidate {
            arrival: a.clone(),
            in_my_thread,
            sender_verified: true,
        }
    }

    #[test]
    fn quiet_hours_hold_arrivals_for_exactly_one_digest_at_their_end() {
        let rules = quiet_nights().rules().unwrap();
        let mut pacing = Pacing::default();
        let night = Utc.with_ymd_and_hms(2026, 11, 26, 23, 30, 0).unwrap();
        let first = [
            arrival("bob@example.org", 1),
            arrival("carol@example.org", 2),
        ];
        assert!(notice(&rules, &mut pacing, &plain(&first), night).is_none());
        let later = night + chrono::Duration::hours(2);
        let more = [arrival("dan@example.org", 3)];
        assert!(notice(&rules, &mut pacing, &plain(&more), later).is_none());
        // 07:00: the three arrive together, once.
        let morning = Utc.with_ymd_and_hms(2026, 11, 27, 7, 0, 1).unwrap();
        let digest = notice(&rules, &mut pacing, &[], morning).unwrap();
        let ids: Vec<&str> = digest
            .arrivals
            .iter()
            .map(|a| a.email_id.as_str())
            .collect();
        assert_eq!(ids, ["e1", "e2", "e3"]);
        assert!(notice(&rules, &mut pacing, &[], morning).is_none());
    }

    #[test]
    fn a_reply_in_my_thread_may_break_quiet_hours_like_a_vip() {
        let mut settings = quiet_nights();
        settings.vip_breaks_quiet = true;
        settings.replies_are_vip = true;
        let rules = settings.rules().unwrap();
        let mut pacing = Pacing::default();
        let night = Utc.with_ymd_and_hms(2026, 11, 26, 23, 30, 0).unwrap();
        let told = notice(
            &rules,
            &mut pacing,
            &[
                candidate(&arrival("bob@example.org", 1), true),
                candidate(&arrival("carol@example.org", 2), false),
            ],
            night,
        )
        .unwrap();
        let ids: Vec<&str> = told.arrivals.iter().map(|a| a.email_id.as_str()).collect();
        assert_eq!(ids, ["e1"], "the reply now, the other held");
        assert_eq!(pacing.held.len(), 1);
        settings.replies_are_vip = false;
        let rules = settings.rules().unwrap();
        let mut pacing = Pacing::default();
        assert!(
            notice(
                &rules,
                &mut pacing,
                &[candidate(&arrival("bob@example.org", 1), true)],
                night
            )
            .is_none()
        );
    }

    #[test]
    fn poke_hears_at_most_every_two_minutes_and_nothing_waiting_is_lost() {
        let rules = NotifySettings::default().rules().unwrap();
        let mut pacing = Pacing {
            spacing: Some(POKE_SPACING),
            ..Pacing::default()
        };
        let t0 = Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap();
        let first = notice(&rules, &mut pacing, &plain(&[arrival("a@x.org", 1)]), t0).unwrap();
        assert_eq!(first.arrivals.len(), 1);
        let soon = t0 + chrono::Duration::seconds(30);
        assert!(notice(&rules, &mut pacing, &plain(&[arrival("b@x.org", 2)]), soon).is_none());
        assert!(
            notice(
                &rules,
                &mut pacing,
                &[],
                t0 + chrono::Duration::seconds(119)
            )
            .is_none()
        );
        let next = notice(
            &rules,
            &mut pacing,
            &plain(&[arrival("c@x.org", 3)]),
            t0 + POKE_SPACING,
        )
        .unwrap();
        let ids: Vec<&str> = next.arrivals.iter().map(|a| a.email_id.as_str()).collect();
        assert_eq!(ids, ["e2", "e3"], "the waiting one first, merged");
    }

    #[test]
    fn over_the_rate_cap_the_rest_is_a_digest_line_or_told_later() {
        let rules = NotifySettings::default().rules().unwrap();
        let mut pacing = Pacing::default();
        let t0 = Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap();
        let burst: Vec<Arrival> = (1..=5).map(|i| arrival("bob@example.org", i)).collect();
        let now = notice(&rules, &mut pacing, &plain(&burst), t0).unwrap();
        assert_eq!(now.arrivals.len(), 3, "the burst");
        assert_eq!(
            now.digest.as_deref(),
            Some("2 more: bob@example.org (2)"),
            "the rest rides along as a digest line"
        );
        // With the bucket empty, more arrivals are owed, not lost: told once a slot frees (6
        // minutes at 10 an hour).
        let t1 = t0 + chrono::Duration::minutes(1);
        let more = [
            arrival("carol@example.org", 6),
            arrival("bob@example.org", 7),
        ];
        assert!(notice(&rules, &mut pacing, &plain(&more), t1).is_none());
        let later = notice(&rules, &mut pacing, &[], t0 + chrono::Duration::minutes(7)).unwrap();
        assert!(later.arrivals.is_empty());
        assert_eq!(
            later.digest.as_deref(),
            Some("2 more: carol@example.org, bob@example.org")
        );
        assert!(notice(&rules, &mut pacing, &[], t0 + chrono::Duration::minutes(8)).is_none());
    }

    #[tokio::test]
    async fn retries_stop_once_background_delivery_is_off() {
        let (n, _vault) = notifier(MockPolicy::new(), MockUpstreamAuth::new());
        let grant = GrantId::new("g");
        let url = crate::domain::notify::delivery::WebhookUrl::parse("https://h.example/x", false)
            .unwrap();
        let destination = Destination::Webhook {
            url,
            secret: crate::domain::notify::delivery::WebhookSecret::generate(),
        };
        n.store
            .seal_destination(&grant, "acct", &destination)
            .await
            .unwrap();
        let mut inner = MockDeliverer::new();
        inner.expect_attempt().times(1).returning(|_, _| {
            Box::pin(std::future::ready(AttemptOutcome::Delivered {
                status: 200,
            }))
        });
        let still_on = StillOn {
            inner: Arc::new(inner),
            keyring: Arc::clone(&n.keyring),
            grant: grant.clone(),
        };
        let notice = Notice {
            run_id: RunId::parse("r1").unwrap(),
            arrivals: vec![],
            digest: None,
        };
        assert!(matches!(
            still_on.attempt(&destination, &notice).await,
            AttemptOutcome::Delivered { .. }
        ));
        n.store.remove_destination(&grant).await.unwrap();
        assert!(matches!(
            still_on.attempt(&destination, &notice).await,
            AttemptOutcome::Permanent(_)
        ));
    }

    #[tokio::test]
    async fn a_notifier_grant_no_connection_uses_is_revoked_and_deleted() {
        let mut upstream = MockUpstreamAuth::new();
        upstream
            .expect_revoke()
            .withf(|t| t.expose_secret() == "r-secret")
            .times(1)
            .returning(|_| Box::pin(std::future::ready(Ok(()))));
        let (n, _vault) = notifier(MockPolicy::new(), upstream);
        n.store
            .seal_notifier(
                "acct",
                &UpstreamTokens {
                    access: crate::domain::secret::SecretString::new("a-secret"),
                    refresh: Some(crate::domain::secret::SecretString::new("r-secret")),
                    expires_at: None,
                    issued_at: None,
                },
            )
            .await
            .unwrap();
        let n = Arc::new(n);
        n.look_all(None).await;
        assert!(n.keyring.notifier_accounts().await.unwrap().is_empty());
    }
}
