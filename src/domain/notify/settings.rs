//! A connection's new-mail settings as stored and shown: who never notifies, who always does,
//! quiet hours in a time zone, and the mutes added since. The settings page may change all of
//! it; the model may only add mutes (see [`MuteRequest`]).

use chrono::{DateTime, Duration, Utc};
use jiff::civil::{Time, Weekday};

use super::{
    quiet::{QuietError, QuietHours, Window},
    rules::{Mute, Rules},
};
use crate::domain::{
    mail::ids::{MailboxId, ThreadId},
    mail::mailboxes::MailboxDirectory,
    sending::recipients,
};

/// Longest mute the model may add.
pub const MAX_MUTE: Duration = Duration::days(30);
/// Most mutes kept (the oldest go first).
pub const MAX_MUTES: usize = 100;

/// A weekly quiet window as stored: ISO weekdays (1 = Monday), wall-clock minutes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuietSpec {
    /// ISO weekdays the window starts on.
    pub days: Vec<u8>,
    /// Start, minutes after midnight.
    pub start: u16,
    /// End, minutes after midnight (before `start`: the next day).
    pub end: u16,
}

/// The settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NotifySettings {
    /// Never notify: addresses, `@domain`, `*.domain`.
    pub deny: Vec<String>,
    /// VIPs.
    pub allow: Vec<String>,
    /// Only VIPs notify.
    pub only_allowed: bool,
    /// VIPs notify during quiet hours.
    pub vip_breaks_quiet: bool,
    /// IANA zone of the quiet hours.
    pub zone: String,
    /// Quiet windows.
    pub quiet: Vec<QuietSpec>,
    /// Mutes.
    pub mutes: Vec<Mute>,
    /// Folders watched besides the Inbox (names or paths; mail a server rule files there
    /// arrives there directly).
    pub mailboxes: Vec<String>,
    /// Replies in conversations the person wrote in count as from a VIP.
    pub replies_are_vip: bool,
}

fn weekday(iso: u8) -> Option<Weekday> {
    Weekday::from_monday_one_offset(i8::try_from(iso).ok()?).ok()
}

fn time(minutes: u16) -> Option<Time> {
    Time::new(
        i8::try_from(minutes / 60).ok()?,
        i8::try_from(minutes % 60).ok()?,
        0,
        0,
    )
    .ok()
}

impl NotifySettings {
    /// The rules these settings make.
    ///
    /// # Errors
    /// An unknown zone or an empty or malformed window.
    pub fn rules(&self) -> Result<Rules, QuietError> {
        let quiet = if self.quiet.is_empty() {
            None
        } else {
            let windows = self
                .quiet
                .iter()
                .map(|q| {
                    Ok(Window {
                        days: q.days.iter().filter_map(|d| weekday(*d)).collect(),
                        start: time(q.start).ok_or(QuietError::Empty)?,
                        end: time(q.end).ok_or(QuietError::Empty)?,
                    })
                })
                .collect::<Result<Vec<_>, QuietError>>()?;
            let zone = if self.zone.is_empty() {
                "UTC"
            } else {
                &self.zone
            };
            Some(QuietHours::new(zone, windows)?)
        };
        Ok(Rules {
            deny: self.deny.clone(),
            allow: self.allow.clone(),
            only_allowed: self.only_allowed,
            vip_breaks_quiet: self.vip_breaks_quiet,
            quiet,
            mutes: self.mutes.clone(),
            replies_are_vip: self.replies_are_vip,
        })
    }

    /// The mailboxes whose new mail counts: the Inbox, and the folders named (those that no
    /// longer resolve to one mailbox are skipped).
    #[must_use]
    pub fn watched(&self, mailboxes: &[crate::domain::mail::Mailbox]) -> Vec<MailboxId> {
        let directory = MailboxDirectory::new(mailboxes.to_vec());
        let mut watched: Vec<MailboxId> = mailboxes
            .iter()
            .filter(|m| m.role.as_ref().is_some_and(|r| r.as_str() == "inbox"))
            .map(|m| m.id.clone())
            .collect();
        for name in &self.mailboxes {
            if let Ok(entry) = directory.resolve(name)
                && !watched.contains(&entry.mailbox.id)
            {
                watched.push(entry.mailbox.id.clone());
            }
        }
        watched
    }
}

/// What the model may ask: mute a sender or a thread, for a while. Never unmute, never
/// change the lists or quiet hours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MuteRequest {
    /// An address, `@domain` or `*.domain`.
    pub sender: Option<String>,
    /// A thread.
    pub thread: Option<ThreadId>,
    /// How long.
    pub duration: Duration,
}

/// Why a mute was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MuteError {
    /// Neither a sender nor a thread.
    #[error("give a sender (address, @domain or *.domain) or a thread_id to mute")]
    Nothing,
    /// Not an address or domain.
    #[error("{0}")]
    Sender(String),
    /// Not a duration the tool takes.
    #[error("for: a duration like 30m, 8h or 7d, at most 30d")]
    Duration,
}

/// `"90m"`, `"8h"`, `"7d"` → a duration between a minute and [`MAX_MUTE`].
///
/// # Errors
/// [`MuteError::Duration`].
pub fn parse_duration(raw: &str) -> Result<Duration, MuteError> {
    let raw = raw.trim();
    let (number, unit) = raw.split_at(raw.len().saturating_sub(1));
    let n: i64 = number.parse().map_err(|_| MuteError::Duration)?;
    // The checked constructors: a huge number is a refusal, not a panic.
    let d = match unit {
        "m" => Duration::try_minutes(n),
        "h" => Duration::try_hours(n),
        "d" => Duration::try_days(n),
        _ => None,
    }
    .ok_or(MuteError::Duration)?;
    if d < Duration::minutes(1) || d > MAX_MUTE {
        return Err(MuteError::Duration);
    }
    Ok(d)
}

impl MuteRequest {
    /// The mute it adds at `now`.
    ///
    /// # Errors
    /// [`MuteError`].
    pub fn mute(&self, now: DateTime<Utc>) -> Result<Mute, MuteError> {
        let sender = match &self.sender {
            Some(s) => {
                let mut parsed =
                    recipients::parse_entries(s).map_err(|e| MuteError::Sender(e.to_string()))?;
                if parsed.len() != 1 {
                    return Err(MuteError::Sender("one sender at a time".into()));
                }
                parsed.pop()
            }
            None => None,
        };
        if sender.is_none() && self.thread.is_none() {
            return Err(MuteError::Nothing);
        }
        Ok(Mute {
            sender,
            thread: self.thread.clone(),
            until: now + self.duration.min(MAX_MUTE),
        })
    }
}

impl NotifySettings {
    /// Adds a mute (only narrows), dropping ended ones and the oldest beyond [`MAX_MUTES`].
    pub fn add_mute(&mut self, mute: Mute, now: DateTime<Utc>) {
        self.mutes.retain(|m| m.until > now);
        self.mutes.push(mute);
        if self.mutes.len() > MAX_MUTES {
            let extra = self.mutes.len() - MAX_MUTES;
            self.mutes.drain(..extra);
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;
    use crate::domain::mail::Mailbox;

    fn mailbox(id: &str, name: &str, parent: Option<&str>, role: Option<&str>) -> Mailbox {
        Mailbox {
            id: MailboxId::parse(id).unwrap(),
            name: name.into(),
            parent_id: parent.map(|p| MailboxId::parse(p).unwrap()),
            role: role.map(crate::domain::mail::MailboxRole::parse),
            sort_order: 0,
            total_emails: 0,
            unread_emails: 0,
        }
    }

    #[test]
    fn the_inbox_and_the_folders_named_are_watched() {
        let boxes = [
            mailbox("in", "Inbox", None, Some("inbox")),
            mailbox("ar", "Archive", None, Some("archive")),
            mailbox("li", "Lists", None, None),
            mailbox("ru", "Rust", Some("li"), None),
        ];
        let ids = |w: Vec<MailboxId>| w.iter().map(|m| m.as_str().to_owned()).collect::<Vec<_>>();
        assert_eq!(ids(NotifySettings::default().watched(&boxes)), ["in"]);
        let settings = NotifySettings {
            mailboxes: vec!["Lists/Rust".into(), "no such folder".into(), "inbox".into()],
            ..NotifySettings::default()
        };
        assert_eq!(ids(settings.watched(&boxes)), ["in", "ru"]);
    }

    #[test]
    fn mutes_only_narrow_and_durations_are_bounded() {
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
        assert_eq!(parse_duration("90m"), Ok(Duration::minutes(90)));
        assert_eq!(parse_duration("7d"), Ok(Duration::days(7)));
        for bad in ["", "0m", "31d", "1y", "h", "-5h", "999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        let req = MuteRequest {
            sender: Some("News@Example.com".into()),
            thread: None,
            duration: Duration::hours(8),
        };
        let mute = req.mute(now).unwrap();
        assert_eq!(mute.sender.as_deref(), Some("news@example.com"));
        assert_eq!(mute.until, now + Duration::hours(8));
        let nothing = MuteRequest {
            sender: None,
            thread: None,
            duration: Duration::hours(1),
        };
        assert_eq!(nothing.mute(now), Err(MuteError::Nothing));
        let two = MuteRequest {
            sender: Some("a@b.cd e@f.gh".into()),
            ..req.clone()
        };
        assert!(two.mute(now).is_err());
        let mut s = NotifySettings::default();
        s.add_mute(mute, now);
        assert_eq!(s.mutes.len(), 1);
        s.add_mute(
            req.mute(now + Duration::days(1)).unwrap(),
            now + Duration::days(1),
        );
        assert_eq!(s.mutes.len(), 1, "the ended mute was dropped");
    }

    #[test]
    fn stored_windows_become_rules() {
        let s = NotifySettings {
            zone: "Europe/Berlin".into(),
            quiet: vec![QuietSpec {
                days: vec![1, 2, 3, 4, 5],
                start: 22 * 60,
                end: 7 * 60,
            }],
            ..NotifySettings::default()
        };
        let rules = s.rules().unwrap();
        let wednesday_night = Utc.with_ymd_and_hms(2026, 11, 25, 22, 0, 0).unwrap();
        assert!(rules.quiet.unwrap().is_quiet(wednesday_night));
        let bad = NotifySettings {
            zone: "Nowhere/Else".into(),
            ..s
        };
        assert!(bad.rules().is_err());
    }
}
