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

use super::push_wake::{Opened, PushPatience, keep_open};
use crate::domain::{
    grant::{Caller, Capability},
    notify::{cadence, cursor::NewMailCursor, rules::Announcer},
    ports::{MailStore, Policy, TokenVault},
    service::{Fittings, Look, MailService, ServiceError},
};

/// How often and how patiently an account is watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchTuning {
    /// Between two looks when polling: halved for ten minutes after an arrival or a new
    /// listener, doubled per idle hour after the first up to a quarter hour
    /// ([`cadence`](crate::domain::notify::cadence)), doubled per failure up to 16×, jittered
    /// by up to a tenth. While push works, looks without a wake are ten times rarer.
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

/// Streams listening for new mail, one watcher per account.
pub struct NewMailWatchers<M, V, P, F> {
    service: Arc<MailService<M, V, P, F>>,
    tuning: WatchTuning,
    accounts: Mutex<HashMap<String, Arc<AccountWatch>>>,
    next_id: AtomicU64,
}

impl<M, V, P, F> std::fmt::Debug for NewMailWatchers<M, V, P, F> {
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
    /// The last arrival or new listener: polling is brisk after it and slows when idle.
    active_at: Mutex<std::time::Instant>,
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
        self.first().map(|(_, caller)| caller)
    }

    fn first(&self) -> Option<(u64, Caller)> {
        self.listeners().first().map(|l| (l.id, l.caller.clone()))
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

impl<M: MailStore, V: TokenVault, P: Policy, F: Fittings> NewMailWatchers<M, V, P, F> {
    /// Watchers looking through `service`.
    #[must_use]
    pub fn new(service: Arc<MailService<M, V, P, F>>, tuning: WatchTuning) -> Self {
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
        *locked(&watch.active_at) = std::time::Instant::now();
        // A watcher slowed by an idle spell picks up its new pace now.
        let _ = watch.wake.try_send(());
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
            active_at: Mutex::new(std::time::Instant::now()),
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
        let since = locked(&watch.active_at).elapsed();
        let mut wait = if watch.push_live.load(Ordering::Relaxed) {
            base.saturating_mul(10)
        } else {
            // Failures back off from the current cadence, never past 16 times the base.
            cadence::poll_interval(base, since)
                .saturating_mul(1 << failures.min(4))
                .min(base.saturating_mul(16).max(cadence::SLOWEST))
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
            // The first look goes at once; after a failure even the first one waits.
            if cursor.is_some() || failures > 0 {
                let patience = self.patience(&watch, failures);
                if let Ok(Some(())) = tokio::time::timeout(patience, woken.recv()).await {
                    // The rest of a burst joins this wake.
                    tokio::time::sleep(self.tuning.settle).await;
                    while woken.try_recv().is_ok() {}
                }
            }
            self.reauthenticate(&watch).await;
            let Some((id, caller)) = watch.first() else {
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
                        *locked(&watch.active_at) = std::time::Instant::now();
                        self.sift_for_each(&watch, &look).await;
                    }
                    if look.more {
                        let _ = watch.wake.try_send(());
                    }
                    cursor = Some(look.cursor);
                }
                // This listener's grant ended between the check and the look.
                Err(ServiceError::Unauthenticated(_)) => watch.remove(id),
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
    async fn sift_for_each(&self, watch: &AccountWatch, look: &Look) {
        let now = Utc::now();
        let callers: Vec<(u64, Caller)> = watch
            .listeners()
            .iter()
            .map(|l| (l.id, l.caller.clone()))
            .collect();
        for (id, caller) in callers {
            let mut items = look.arrivals.clone();
            match self
                .service
                .sift(&caller, &mut items, &look.mailboxes, &look.my_threads, now)
                .await
            {
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

    /// Keeps the account's push channel open while it has listeners, with the first
    /// listener's credential (see [`push_wake`](super::push_wake)).
    async fn push_loop(self: Arc<Self>, watch: Arc<AccountWatch>) {
        // Let the first look set the cursor before any wake.
        tokio::time::sleep(self.tuning.settle).await;
        let patience = PushPatience {
            ping: self.tuning.ping,
            idle: self.tuning.settle,
            retry: self.tuning.push_retry,
        };
        let open = || async {
            let Some(caller) = watch.first_caller() else {
                return Opened::NoCredential;
            };
            match self.service.open_push(&caller, self.tuning.ping).await {
                Ok(Some(channel)) => Opened::Channel(channel),
                Ok(None) => Opened::NotOffered,
                Err(ServiceError::Store(e)) => Opened::failed(&e),
                Err(e) => Opened::failed_for(&e),
            }
        };
        keep_open(open, patience, &watch.push_live, || {
            let _ = watch.wake.try_send(());
        })
        .await;
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
