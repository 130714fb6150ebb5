//! The background notifier's rounds: every poll interval over every account, and at once for
//! an account whose push channel says something changed; one push channel per account
//! delivering in the background; each notice delivered in a task of its own (its retries run
//! for hours, and a slow destination holds up nobody). What a round finds is the domain
//! [`Notifier`]'s decision.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, PoisonError, atomic::AtomicBool},
    time::Duration,
};

use super::push_wake::{Opened, PushPatience, keep_open};
use crate::domain::{
    notify::{
        background::{NotifierControl, TurnOffError},
        delivery::Deliverer,
    },
    ports::{BackgroundStore, MailFeed, NotifierKeyring, Policy, UpstreamAuth},
    service::{LookError, Notifier, PushOpening, Round},
};

/// How long a wake waits for the rest of a burst.
const SETTLE: Duration = Duration::from_millis(300);

/// Runs a [`Notifier`].
pub struct NotifierRunner<N, U, P, D, K, S> {
    notifier: Arc<Notifier<N, U, P, D, K, S>>,
    wake: tokio::sync::Notify,
    /// Accounts whose push channel woke us, or `None` inside for "all" (settings changed).
    woken: Mutex<Option<HashSet<String>>>,
    /// One push task per account.
    pushes: Mutex<HashMap<String, tokio::task::AbortHandle>>,
}

impl<N, U, P, D, K, S> std::fmt::Debug for NotifierRunner<N, U, P, D, K, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotifierRunner").finish_non_exhaustive()
    }
}

impl<N, U, P, D, K, S> NotifierRunner<N, U, P, D, K, S>
where
    N: MailFeed,
    U: UpstreamAuth,
    P: Policy,
    D: Deliverer,
    K: NotifierKeyring,
    S: BackgroundStore,
{
    /// Runs `notifier` once [`run`](Self::run) is started.
    #[must_use]
    pub fn new(notifier: Arc<Notifier<N, U, P, D, K, S>>) -> Self {
        Self {
            notifier,
            wake: tokio::sync::Notify::new(),
            woken: Mutex::new(Some(HashSet::new())),
            pushes: Mutex::new(HashMap::new()),
        }
    }

    /// Looks at every account with background delivery on, every poll interval, and at an
    /// account as soon as its push channel says something changed. Never returns.
    pub async fn run(self: Arc<Self>) {
        let mut woken = None;
        // The next look at every account comes on time however often pushes wake some.
        let mut next_full = tokio::time::Instant::now();
        loop {
            if woken.is_none() {
                let base = self.notifier.settings().poll;
                let tenth = u64::try_from(base.as_millis() / 10).unwrap_or(u64::MAX);
                next_full = tokio::time::Instant::now()
                    + base
                    + Duration::from_millis(rand::random_range(0..=tenth));
            }
            let round = self.notifier.look_all(woken.as_ref()).await;
            self.follow(round);
            woken = tokio::select! {
                () = self.wake.notified() => {
                    // The rest of a burst joins this wake.
                    tokio::time::sleep(SETTLE).await;
                    self.take_woken()
                }
                () = tokio::time::sleep_until(next_full) => None,
            };
        }
    }

    /// Stops what the loop started (push channels, which would renew the notifier grant's
    /// token) and forgets what it knew: the lease went to another instance, which may deliver
    /// and move the cursors meanwhile.
    pub async fn stand_down(&self) {
        let pushes =
            std::mem::take(&mut *self.pushes.lock().unwrap_or_else(PoisonError::into_inner));
        for task in pushes.into_values() {
            task.abort();
        }
        self.notifier.forget_accounts().await;
    }

    /// Delivers what a round found, looks again where the server had more, and matches the
    /// push channels to the accounts delivering in the background.
    fn follow(self: &Arc<Self>, round: Round) {
        for (grant, notice) in round.notices {
            let notifier = Arc::clone(&self.notifier);
            tokio::spawn(async move {
                notifier.deliver(grant, notice, tokio::time::sleep).await;
            });
        }
        for account in round.again {
            self.woken_by(Some(&account));
        }
        if let Some(accounts) = round.accounts {
            let mut pushes = self.pushes.lock().unwrap_or_else(PoisonError::into_inner);
            pushes.retain(|account, task| {
                let keep = accounts.contains(account);
                if !keep {
                    task.abort();
                }
                keep
            });
            for account in accounts {
                if let std::collections::hash_map::Entry::Vacant(slot) = pushes.entry(account) {
                    let task = self.spawn_push(slot.key().clone());
                    slot.insert(task);
                }
            }
        }
    }

    /// The accounts woken since the last look (`None`: all of them).
    fn take_woken(&self) -> Option<HashSet<String>> {
        let mut woken = self.woken.lock().unwrap_or_else(PoisonError::into_inner);
        woken.replace(HashSet::new())
    }

    fn woken_by(&self, account: Option<&str>) {
        let mut woken = self.woken.lock().unwrap_or_else(PoisonError::into_inner);
        match (account, woken.as_mut()) {
            (Some(account), Some(set)) => {
                set.insert(account.to_owned());
            }
            (None, _) => *woken = None,
            (Some(_), None) => {}
        }
        drop(woken);
        self.wake.notify_one();
    }

    /// Keeps `account`'s push channel open, waking the look at that account.
    fn spawn_push(self: &Arc<Self>, account: String) -> tokio::task::AbortHandle {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let live = AtomicBool::new(false);
            let settings = this.notifier.settings();
            let patience = PushPatience {
                ping: settings.ping,
                idle: settings.poll,
                retry: settings.push_retry,
            };
            let open = || async {
                match this.notifier.open_push(&account).await {
                    Ok(PushOpening::Channel(channel)) => Opened::Channel(channel),
                    Ok(PushOpening::NotOffered) => Opened::NotOffered,
                    Ok(PushOpening::NoGrant) => Opened::NoCredential,
                    Err(LookError::Mail(e)) => Opened::failed(&e),
                    Err(e) => Opened::failed_for(&e),
                }
            };
            keep_open(open, patience, &live, || this.woken_by(Some(&account))).await;
        })
        .abort_handle()
    }
}

impl<N, U, P, D, K, S> NotifierControl for NotifierRunner<N, U, P, D, K, S>
where
    N: MailFeed,
    U: UpstreamAuth,
    P: Policy,
    D: Deliverer,
    K: NotifierKeyring,
    S: BackgroundStore,
{
    async fn turn_off(&self, account: &str) -> Result<(), TurnOffError> {
        self.notifier.end_unused(account).await.map(|_| ())
    }

    fn wake(&self) {
        self.woken_by(None);
    }
}
