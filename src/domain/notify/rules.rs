//! The person's rules for new mail, in the order they apply: denied senders never; then only
//! VIPs if so chosen; then mutes (the model may add those, never remove them); then quiet hours
//! (queued for a digest at their end; VIPs may break them); then a rate cap whose overflow is
//! summarised in one digest line.

use chrono::{DateTime, Utc};

use super::quiet::QuietHours;
use crate::domain::{mail::ids::ThreadId, sending::recipients};

/// A mute the model or the person added: a sender pattern or a thread, until a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mute {
    /// An address, `@domain` or `*.domain`.
    pub sender: Option<String>,
    /// A thread.
    pub thread: Option<ThreadId>,
    /// Until when.
    pub until: DateTime<Utc>,
}

/// The rules of one connection.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// Senders that never notify (addresses, `@domain`, `*.domain`).
    pub deny: Vec<String>,
    /// VIPs.
    pub allow: Vec<String>,
    /// Only VIPs notify.
    pub only_allowed: bool,
    /// VIPs notify during quiet hours too.
    pub vip_breaks_quiet: bool,
    /// Quiet hours, if any.
    pub quiet: Option<QuietHours>,
    /// Mutes, narrowing only.
    pub mutes: Vec<Mute>,
    /// Replies in conversations the person wrote in count as from a VIP.
    pub replies_are_vip: bool,
}

/// What happens to one arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Tell now (`vip`: from a VIP).
    Notify {
        /// From a VIP.
        vip: bool,
    },
    /// Hold for the digest at the end of quiet hours.
    HoldUntil(DateTime<Utc>),
    /// A denied sender.
    Denied,
    /// Not a VIP while only VIPs notify.
    NotAllowed,
    /// Muted.
    Muted,
}

impl Rules {
    /// The decision for mail from `sender` in `thread`, at `now`. The display name is ignored
    /// (anyone can write any name).
    #[must_use]
    pub fn decide(&self, sender: &str, thread: &ThreadId, now: DateTime<Utc>) -> Decision {
        self.decide_reply(sender, thread, false, true, now)
    }

    /// [`Rules::decide`] for mail that may be a reply in a conversation the person wrote in
    /// (`in_my_thread`: with `replies_are_vip`, its sender counts as a VIP) and whose sender
    /// the receiving server may have failed to verify (`sender_verified`: false when its DMARC
    /// check failed — anyone can write a VIP's address in From). A denied sender stays denied
    /// and mutes still apply.
    #[must_use]
    pub fn decide_reply(
        &self,
        sender: &str,
        thread: &ThreadId,
        in_my_thread: bool,
        sender_verified: bool,
        now: DateTime<Utc>,
    ) -> Decision {
        if recipients::listed(&self.deny, sender) {
            return Decision::Denied;
        }
        let vip = sender_verified
            && (recipients::listed(&self.allow, sender) || (self.replies_are_vip && in_my_thread));
        if self.only_allowed && !vip {
            return Decision::NotAllowed;
        }
        let muted = self.mutes.iter().any(|m| {
            now < m.until
                && (m
                    .sender
                    .as_ref()
                    .is_some_and(|s| recipients::listed(std::slice::from_ref(s), sender))
                    || m.thread.as_ref() == Some(thread))
        });
        if muted {
            return Decision::Muted;
        }
        if let Some(end) = self.quiet.as_ref().and_then(|q| q.ends(now))
            && !(vip && self.vip_breaks_quiet)
        {
            return Decision::HoldUntil(end);
        }
        Decision::Notify { vip }
    }

    /// Adds a mute at `now` (ended ones are dropped): the only change the model may make, as
    /// it can only narrow what notifies.
    pub fn mute(&mut self, mute: Mute, now: DateTime<Utc>) {
        self.mutes.retain(|m| m.until > now);
        self.mutes.push(mute);
    }
}

/// A token bucket: `burst` at once, refilled at `per_hour`; time is passed in.
#[derive(Debug, Clone)]
pub struct RateCap {
    burst: f64,
    per_hour: f64,
    tokens: f64,
    last: Option<DateTime<Utc>>,
    /// What went over the cap since the last digest: sender and count, in order of first.
    overflow: Vec<(String, u32)>,
}

impl RateCap {
    /// A cap of `burst` and `per_hour`.
    #[must_use]
    pub fn new(burst: u32, per_hour: u32) -> Self {
        Self {
            burst: f64::from(burst.max(1)),
            per_hour: f64::from(per_hour),
            tokens: f64::from(burst.max(1)),
            last: None,
            overflow: Vec::new(),
        }
    }

    fn take_slot(&mut self, now: DateTime<Utc>) -> bool {
        if let Some(last) = self.last {
            let hours = (now - last).num_milliseconds().max(0) as f64 / 3_600_000.0;
            self.tokens = (self.tokens + hours * self.per_hour).min(self.burst);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return true;
        }
        false
    }

    /// Whether a digest is owed and may go at `now` (it takes a slot like any notification):
    /// what went over the cap is told late, never lost.
    pub fn admit_digest(&mut self, now: DateTime<Utc>) -> bool {
        !self.overflow.is_empty() && self.take_slot(now)
    }

    /// Whether one more notification may go at `now`; if not, `sender` joins the digest.
    pub fn admit(&mut self, sender: &str, now: DateTime<Utc>) -> bool {
        if self.take_slot(now) {
            return true;
        }
        match self.overflow.iter_mut().find(|(s, _)| s == sender) {
            Some((_, n)) => *n += 1,
            None => self.overflow.push((sender.to_owned(), 1)),
        }
        false
    }

    /// The digest of what went over the cap ("4 more: Bob (2), Carol, Dan"), and a fresh start.
    pub fn take_digest(&mut self) -> Option<String> {
        if self.overflow.is_empty() {
            return None;
        }
        let total: u32 = self.overflow.iter().map(|(_, n)| n).sum();
        let names: Vec<String> = self
            .overflow
            .drain(..)
            .map(|(s, n)| if n > 1 { format!("{s} ({n})") } else { s })
            .collect();
        Some(format!("{total} more: {}", names.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone as _};
    use jiff::civil::{Time, Weekday};

    use super::*;
    use crate::domain::notify::quiet::Window;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
    }

    fn thread(id: &str) -> ThreadId {
        ThreadId::parse(id).unwrap()
    }

    #[test]
    fn a_vip_whose_mail_failed_dmarc_is_no_vip() {
        let rules = Rules {
            allow: vec!["ana@corp.example".into()],
            only_allowed: true,
            ..Rules::default()
        };
        let t = thread("T1");
        assert_eq!(
            rules.decide_reply("ana@corp.example", &t, false, true, now()),
            Decision::Notify { vip: true }
        );
        assert_eq!(
            rules.decide_reply("ana@corp.example", &t, false, false, now()),
            Decision::NotAllowed,
            "anyone can write a VIP's address in From"
        );
    }

    #[test]
    fn deny_then_allow_then_mutes_then_quiet_hours() {
        let mut rules = Rules {
            deny: vec!["@spam.example".into(), "boss@corp.example".into()],
            allow: vec!["*.corp.example".into()],
            ..Rules::default()
        };
        let t = thread("T1");
        assert_eq!(rules.decide("x@spam.example", &t, now()), Decision::Denied);
        assert_eq!(
            rules.decide("boss@corp.example", &t, now()),
            Decision::Denied,
            "deny wins over allow"
        );
        assert_eq!(
            rules.decide("ana@eu.corp.example", &t, now()),
            Decision::Notify { vip: true }
        );
        assert_eq!(
            rules.decide("bob@x.org", &t, now()),
            Decision::Notify { vip: false }
        );
        rules.only_allowed = true;
        assert_eq!(rules.decide("bob@x.org", &t, now()), Decision::NotAllowed);
        rules.only_allowed = false;

        rules.mute(
            Mute {
                sender: Some("@x.org".into()),
                thread: None,
                until: now() + Duration::hours(1),
            },
            now(),
        );
        rules.mute(
            Mute {
                sender: None,
                thread: Some(thread("T9")),
                until: now() + Duration::hours(1),
            },
            now(),
        );
        assert_eq!(rules.decide("bob@x.org", &t, now()), Decision::Muted);
        assert_eq!(
            rules.decide("carol@y.org", &thread("T9"), now()),
            Decision::Muted
        );
        assert_eq!(
            rules.decide("bob@x.org", &t, now() + Duration::hours(2)),
            Decision::Notify { vip: false },
            "mutes end"
        );

        let quiet = QuietHours::new(
            "UTC",
            vec![Window {
                days: vec![Weekday::Wednesday],
                start: Time::new(11, 0, 0, 0).unwrap(),
                end: Time::new(13, 0, 0, 0).unwrap(),
            }],
        )
        .unwrap();
        rules.quiet = Some(quiet);
        let end = Utc.with_ymd_and_hms(2026, 11, 25, 13, 0, 0).unwrap();
        assert_eq!(
            rules.decide("carol@y.org", &t, now()),
            Decision::HoldUntil(end)
        );
        assert_eq!(
            rules.decide("ana@eu.corp.example", &t, now()),
            Decision::HoldUntil(end)
        );
        rules.vip_breaks_quiet = true;
        assert_eq!(
            rules.decide("ana@eu.corp.example", &t, now()),
            Decision::Notify { vip: true }
        );
    }

    #[test]
    fn the_rate_cap_refills_over_time_and_summarises_the_overflow() {
        let mut cap = RateCap::new(3, 10);
        let t0 = now();
        for s in ["Ana", "Bob", "Carol"] {
            assert!(cap.admit(s, t0));
        }
        assert!(!cap.admit("Bob", t0));
        assert!(!cap.admit("Carol", t0 + Duration::minutes(1)));
        assert!(!cap.admit("Bob", t0 + Duration::minutes(2)));
        assert!(!cap.admit("Dan", t0 + Duration::minutes(3)));
        assert_eq!(
            cap.take_digest().as_deref(),
            Some("4 more: Bob (2), Carol, Dan")
        );
        assert_eq!(cap.take_digest(), None);
        // 10 per hour: one more after six minutes.
        assert!(cap.admit("Eve", t0 + Duration::minutes(9)));
        assert!(!cap.admit("Eve", t0 + Duration::minutes(10)));
    }
}

/// When a listening stream says "new mail": at once for arrivals the rules let through (within
/// the rate cap), at the end of quiet hours for those they held, and never more often than the
/// cap allows — an announcement the cap refused is owed, not lost.
#[derive(Debug, Clone)]
pub struct Announcer {
    cap: RateCap,
    owed: Option<DateTime<Utc>>,
}

impl Default for Announcer {
    fn default() -> Self {
        Self {
            cap: RateCap::new(3, 10),
            owed: None,
        }
    }
}

impl Announcer {
    /// Records a look: arrivals due now (`now_due`) and the earliest end of quiet hours that
    /// held others.
    pub fn arrived(
        &mut self,
        now_due: bool,
        held_until: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) {
        let at = if now_due { Some(now) } else { held_until };
        if let Some(at) = at {
            self.owed = Some(self.owed.map_or(at, |o| o.min(at)));
        }
    }

    /// When an announcement is owed from (it may still wait for the rate cap).
    #[must_use]
    pub fn owed(&self) -> Option<DateTime<Utc>> {
        self.owed
    }

    /// Whether to announce at `now` (then nothing is owed until the next arrival).
    pub fn due(&mut self, now: DateTime<Utc>) -> bool {
        match self.owed {
            Some(at) if at <= now && self.cap.admit("stream", now) => {
                self.owed = None;
                let _ = self.cap.take_digest();
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod announcer_tests {
    use chrono::{Duration, TimeZone as _};

    use super::*;

    #[test]
    fn quiet_hours_defer_and_the_cap_spaces_without_losing_news() {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
        let mut a = Announcer::default();
        assert!(!a.due(t0), "nothing arrived");
        a.arrived(false, Some(t0 + Duration::hours(2)), t0);
        assert!(!a.due(t0 + Duration::hours(1)), "held by quiet hours");
        assert!(a.due(t0 + Duration::hours(2)), "announced when they end");
        assert!(!a.due(t0 + Duration::hours(2)), "once");
        // Three at once pass the burst; the fourth is owed until the bucket refills (6 min).
        let t1 = t0 + Duration::hours(3);
        for i in 0..3 {
            a.arrived(true, None, t1 + Duration::seconds(i));
            assert!(a.due(t1 + Duration::seconds(i)));
        }
        a.arrived(true, None, t1 + Duration::seconds(3));
        assert!(!a.due(t1 + Duration::seconds(3)));
        assert!(!a.due(t1 + Duration::minutes(5)));
        assert!(a.due(t1 + Duration::minutes(7)), "owed, not lost");
    }
}
