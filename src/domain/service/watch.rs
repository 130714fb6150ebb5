//! One watcher per mailbox account, shared by every stream listening for its new mail: one
//! upstream request per wake whatever the number of listeners, each listener's own rules and
//! announcement pacing applied to the same arrivals.
//!
//! Wakes come from the server's push channel where it offers one (JMAP EventSource), else
//! from polling. Push is a wake-up, never the source of truth: every wake is the same
//! `Email/changes` from the account's cursor, so a lost frame costs latency, not mail.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use chrono::Utc;
use tokio::{sync::mpsc, task::AbortHandle};

use super::{MailService, ServiceError};
use crate::domain::{
    grant::{Caller, Capability},
    notify::{cursor::NewMailCursor, rules::Announcer},
    ports::{MailStore, Policy, PushEvent, TokenVault},
};

/// How often and how patiently an account is watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchTuning {
    /// Between two looks when polling (jittered by up to a tenth, doubled per failure up to
    /// 16×). While push works, looks without a wake are ten times rarer: a safety net.
    pub poll: Duration,
    /// The ping interval asked of the push channel; silence for 2.5 pings reopens it.
    pub ping: Duration,
    /// How long a wake waits for the rest of a burst, so that it costs one look.
    pub settle: Duration,
    /// When the server offers no push, how long until it is asked again.
    pub push_retry: Duration,
}

impl Default for WatchTuning {
    fn default() -> Self {
        Self {
            poll: Duration::from_secs(60),
            ping: Duration::from_secs(30),
            settle: Duration::from_millis(300),
            push_retry: Duration::from_secs(6 * 3600),
        }
    }
}

/// The longest wait between push reconnections.
const PUSH_BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Streams listening for new mail, one watcher per account.
pub struct NewMailWatchers<M, V, P> {
    service: Arc<MailService<M, V, P>>,
    tuning: WatchTuning,
    accounts: Mutex<HashMap<String, Arc<AccountWatch>>>,
    next_id: AtomicU64,
}

impl<M, V, P> std::fmt::Debug for NewMailWatchers<M, V, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewMailWatchers")
            .field("tuning", &self.tuning)
            .finish_non_exhaustive()
    }
}

/// One account's watcher.
struct AccountWatch {
    listeners: Mutex<Vec<Listener>>,
    /// Wakes the look loop; holds one wake at most, so a burst is one look.
    wake: mpsc::Sender<()>,
    push_live: AtomicBool,
    tasks: Mutex<Vec<AbortHandle>>,
}

struct Listener {
    id: u64,
    caller: Caller,
    announcer: Announcer,
    /// "New mail": capacity one, so announcements the stream hasn't taken yet merge.
    tx: mpsc::Sender<()>,
}

/// A stream's place among its account's listeners: [`Subscription::next`] resolves at each
/// announcement, and ends (`None`) when the grant may no longer hear about new mail —
/// revoked, its token expired, or `notify` turned off. Dropping it leaves.
pub struct Subscription {
    rx: mpsc::Receiver<()>,
    leave: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").finish_non_exhaustive()
    }
}

impl Subscription {
    /// The next announcement; `None` once the grant can no longer listen.
    pub async fn next(&mut self) -> Option<()> {
        self.rx.recv().await
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(leave) = self.leave.take() {
            leave();
        }
    }
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain data behind these locks: still consistent after a panic elsewhere.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl AccountWatch {
    fn listeners(&self) -> MutexGuard<'_, Vec<Listener>> {
        locked(&self.listeners)
    }

    fn first_caller(&self) -> Option<Caller> {
        self.listeners().first().map(|l| l.caller.clone())
    }

    fn remove(&self, id: u64) {
        self.listeners().retain(|l| l.id != id);
    }

    fn stop(&self) {
        for task in locked(&self.tasks).drain(..) {
            task.abort();
        }
    }
}

/// Up to a tenth of `base`, at random: watchers started together drift apart.
fn jitter(base: Duration) -> Duration {
    let tenth = u64::try_from(base.as_millis() / 10).unwrap_or(u64::MAX);
    Duration::from_millis(rand::random_range(0..=tenth))
}

impl<M: MailStore, V: TokenVault, P: Policy> NewMailWatchers<M, V, P> {
    /// Watchers looking through `service`.
    #[must_use]
    pub fn new(service: Arc<MailService<M, V, P>>, tuning: WatchTuning) -> Self {
        Self {
            service,
            tuning,
            accounts: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        }
    }

    /// Adds `caller`'s stream to its account's watcher, starting one if it is the first.
    /// Mail already there is not news: announcements are for what arrives from now on.
    pub fn subscribe(self: &Arc<Self>, caller: Caller) -> Subscription {
        let key = caller
            .account
            .clone()
            .unwrap_or_else(|| "self-hosted".to_owned());
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(1);
        let mut accounts = locked(&self.accounts);
        let watch = accounts
            .entry(key.clone())
            .or_insert_with(|| self.start(key.clone()));
        watch.listeners().push(Listener {
            id,
            caller,
            announcer: Announcer::default(),
            tx,
        });
        let hub = Arc::downgrade(self);
        Subscription {
            rx,
            leave: Some(Box::new(move || {
                if let Some(hub) = hub.upgrade() {
                    hub.leave(&key, id);
                }
            })),
        }
    }

    /// Accounts being watched now.
    #[must_use]
    pub fn watched_accounts(&self) -> usize {
        locked(&self.accounts).len()
    }

    fn start(self: &Arc<Self>, key: String) -> Arc<AccountWatch> {
        let (wake, woken) = mpsc::channel(1);
        let watch = Arc::new(AccountWatch {
            listeners: Mutex::new(Vec::new()),
            wake,
            push_live: AtomicBool::new(false),
            tasks: Mutex::new(Vec::new()),
        });
        let looks = tokio::spawn(Arc::clone(self).look_loop(key, Arc::clone(&watch), woken));
        let push = tokio::spawn(Arc::clone(self).push_loop(Arc::clone(&watch)));
        locked(&watch.tasks).extend([looks.abort_handle(), push.abort_handle()]);
        watch
    }

    fn leave(&self, key: &str, id: u64) {
        let mut accounts = locked(&self.accounts);
        if let Some(watch) = accounts.get(key) {
            watch.remove(id);
            if watch.listeners().is_empty() {
                watch.stop();
                accounts.remove(key);
            }
        }
    }

    /// Ends an account's watcher that has no listeners left (unless one just joined).
    fn retire(&self, key: &str, watch: &Arc<AccountWatch>) -> bool {
        let mut accounts = locked(&self.accounts);
        if !watch.listeners().is_empty() {
            return false;
        }
        if accounts.get(key).is_some_and(|w| Arc::ptr_eq(w, watch)) {
            accounts.remove(key);
        }
        watch.stop();
        true
    }

    /// How long to wait for a wake before looking anyway.
    fn patience(&self, watch: &AccountWatch, failures: u32) -> Duration {
        let base = self.tuning.poll;
        let mut wait = if watch.push_live.load(Ordering::Relaxed) {
            base.saturating_mul(10)
        } else {
            base.saturating_mul(1 << failures.min(4))
        } + jitter(base);
        // An owed announcement (quiet hours ending, a rate slot) is checked on time.
        let now = Utc::now();
        let owed = watch
            .listeners()
            .iter()
            .filter_map(|l| l.announcer.owed())
            .min();
        if let Some(owed) = owed {
            let until = (owed - now)
                .to_std()
                .unwrap_or(base)
                .max(Duration::from_secs(1));
            wait = wait.min(until);
        }
        wait
    }

    async fn look_loop(
        self: Arc<Self>,
        key: String,
        watch: Arc<AccountWatch>,
        mut woken: mpsc::Receiver<()>,
    ) {
        let mut cursor: Option<NewMailCursor> = None;
        let mut failures: u32 = 0;
        loop {
            if cursor.is_some() {
                let patience = self.patience(&watch, failures);
                if let Ok(Some(())) = tokio::time::timeout(patience, woken.recv()).await {
                    // The rest of a burst joins this wake.
                    tokio::time::sleep(self.tuning.settle).await;
                    while woken.try_recv().is_ok() {}
                }
            }
            self.reauthenticate(&watch).await;
            let Some(caller) = watch.first_caller() else {
                if self.retire(&key, &watch) {
                    return;
                }
                continue;
            };
            match self
                .service
                .look_for_arrivals(&caller, cursor.as_ref(), false)
                .await
            {
                Ok(look) => {
                    failures = 0;
                    // The first look only sets the cursor: the backlog is not news.
                    if cursor.is_some() && !look.arrivals.is_empty() {
                        self.sift_for_each(&watch, &look.arrivals).await;
                    }
                    if look.more {
                        let _ = watch.wake.try_send(());
                    }
                    cursor = Some(look.cursor);
                }
                Err(ServiceError::Unauthenticated(_)) => {
                    // This listener's grant ended between the check and the look.
                    let id = watch.listeners().first().map(|l| l.id);
                    if let Some(id) = id {
                        watch.remove(id);
                    }
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::info!(grant = %caller.grant, error = %e, "new-mail look failed");
                }
            }
            announce(&watch);
        }
    }

    /// Re-opens each listener's grant with its own token: a grant revoked, a token expired or
    /// `notify` turned off drops the listener, which ends its stream.
    async fn reauthenticate(&self, watch: &AccountWatch) {
        let listeners: Vec<(u64, Caller)> = watch
            .listeners()
            .iter()
            .map(|l| (l.id, l.caller.clone()))
            .collect();
        for (id, caller) in listeners {
            match self.service.authenticate(&caller.token).await {
                Ok(fresh) if fresh.capabilities.allows(Capability::Notify) => {
                    if let Some(l) = watch.listeners().iter_mut().find(|l| l.id == id) {
                        l.caller = fresh;
                    }
                }
                Ok(_) | Err(ServiceError::Unauthenticated(_)) => watch.remove(id),
                // The vault or upstream hiccuped: keep listening, try again next look.
                Err(e) => tracing::info!(grant = %caller.grant, error = %e, "re-check failed"),
            }
        }
    }

    /// Applies each listener's rules to the arrivals and records what it owes its stream.
    async fn sift_for_each(
        &self,
        watch: &AccountWatch,
        arrivals: &[crate::domain::mail::EmailSummary],
    ) {
        let now = Utc::now();
        let callers: Vec<(u64, Caller)> = watch
            .listeners()
            .iter()
            .map(|l| (l.id, l.caller.clone()))
            .collect();
        for (id, caller) in callers {
            let mut items = arrivals.to_vec();
            match self.service.sift(&caller, &mut items, now).await {
                Ok(sifted) if !items.is_empty() => {
                    if let Some(l) = watch.listeners().iter_mut().find(|l| l.id == id) {
                        l.announcer.arrived(sifted.due_now, sifted.held_until, now);
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::info!(grant = %caller.grant, error = %e, "rules failed"),
            }
        }
    }

    /// Keeps the account's push channel open while it has listeners: each state event wakes
    /// the look loop, and every reconnection is followed by a catch-up look. A server without
    /// push is asked again after [`WatchTuning::push_retry`]; silence for 2.5 pings, a dropped
    /// stream or a failure reconnects after a backoff (1 s to 5 min, full jitter).
    async fn push_loop(self: Arc<Self>, watch: Arc<AccountWatch>) {
        let mut backoff = Duration::from_secs(1);
        let mut connected_before = false;
        // Let the first look set the cursor before any wake.
        tokio::time::sleep(self.tuning.settle).await;
        loop {
            let Some(caller) = watch.first_caller() else {
                tokio::time::sleep(self.tuning.settle).await;
                continue;
            };
            match self.service.open_push(&caller, self.tuning.ping).await {
                Ok(None) => {
                    tracing::debug!("no push from the mail server; polling");
                    tokio::time::sleep(self.tuning.push_retry).await;
                    continue;
                }
                Ok(Some(mut events)) => {
                    watch.push_live.store(true, Ordering::Relaxed);
                    backoff = Duration::from_secs(1);
                    if connected_before {
                        let _ = watch.wake.try_send(());
                    }
                    connected_before = true;
                    let silence = self.tuning.ping.saturating_mul(5) / 2;
                    loop {
                        match tokio::time::timeout(silence, events.recv()).await {
                            Ok(Some(PushEvent::Changed)) => {
                                let _ = watch.wake.try_send(());
                            }
                            Ok(Some(PushEvent::Ping)) => {}
                            Ok(None) | Err(_) => break,
                        }
                    }
                    watch.push_live.store(false, Ordering::Relaxed);
                    tracing::debug!("push stream ended; reconnecting");
                }
                Err(e) => tracing::info!(error = %e, "push channel failed"),
            }
            let ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX);
            tokio::time::sleep(Duration::from_millis(rand::random_range(0..=ms))).await;
            backoff = backoff.saturating_mul(2).min(PUSH_BACKOFF_MAX);
        }
    }
}

/// Tells each listener whose announcement is due; a listener whose stream is gone leaves.
fn announce(watch: &AccountWatch) {
    let now = Utc::now();
    watch.listeners().retain_mut(|l| {
        if l.announcer.due(now) {
            return !matches!(
                l.tx.try_send(()),
                Err(mpsc::error::TrySendError::Closed(()))
            );
        }
        !l.tx.is_closed()
    });
}
