//! Background work, a driving adapter: the loops that run on time and on the mail server's
//! push rather than on a request — the watchers of listening streams, the push channels that
//! wake them, and the background notifier's rounds and deliveries. What they decide (which mail
//! is news, what a notice says, how often to look) is the domain's; here is only when and in
//! which task.

mod leased;
mod new_mail_watch;
mod notifier;
mod push_wake;

pub use self::{
    leased::{LEASE, run_while_leased},
    new_mail_watch::{NewMailWatchers, Subscription, WatchTuning},
    notifier::NotifierRunner,
};
