//! `GrantRecord.notify`: a grant's new-mail rules as stored (docs/storage-schema.md).

use serde::{Deserialize, Serialize};

use crate::domain::{
    mail::ids::ThreadId,
    notify::{
        rules::Mute,
        settings::{NotifySettings, QuietSpec},
    },
};

/// `GrantRecord.notify`: the new-mail rules (docs/storage-schema.md).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NotifyRecord {
    #[serde(default)]
    pub deny: Vec<String>,
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub only_allowed: bool,
    #[serde(default)]
    pub vip_breaks_quiet: bool,
    #[serde(default)]
    pub zone: String,
    /// `[iso weekdays, start minute, end minute]`.
    #[serde(default)]
    pub quiet: Vec<(Vec<u8>, u16, u16)>,
    /// `[sender, thread, until (unix seconds)]`.
    #[serde(default)]
    pub mutes: Vec<(Option<String>, Option<String>, i64)>,
    /// Folders watched besides the Inbox.
    #[serde(default)]
    pub mailboxes: Vec<String>,
    #[serde(default)]
    pub replies_are_vip: bool,
}

impl NotifyRecord {
    pub fn from_settings(s: &NotifySettings) -> Self {
        Self {
            deny: s.deny.clone(),
            allow: s.allow.clone(),
            only_allowed: s.only_allowed,
            vip_breaks_quiet: s.vip_breaks_quiet,
            zone: s.zone.clone(),
            quiet: s
                .quiet
                .iter()
                .map(|q| (q.days.clone(), q.start, q.end))
                .collect(),
            mutes: s
                .mutes
                .iter()
                .map(|m| {
                    (
                        m.sender.clone(),
                        m.thread.as_ref().map(ToString::to_string),
                        m.until.timestamp(),
                    )
                })
                .collect(),
            mailboxes: s.mailboxes.clone(),
            replies_are_vip: s.replies_are_vip,
        }
    }

    pub fn into_settings(self) -> NotifySettings {
        NotifySettings {
            mailboxes: self.mailboxes,
            replies_are_vip: self.replies_are_vip,
            deny: self.deny,
            allow: self.allow,
            only_allowed: self.only_allowed,
            vip_breaks_quiet: self.vip_breaks_quiet,
            zone: self.zone,
            quiet: self
                .quiet
                .into_iter()
                .map(|(days, start, end)| QuietSpec { days, start, end })
                .collect(),
            mutes: self
                .mutes
                .into_iter()
                .filter_map(|(sender, thread, until)| {
                    Some(Mute {
                        sender,
                        thread: thread.and_then(|t| ThreadId::parse(t).ok()),
                        until: chrono::DateTime::from_timestamp(until, 0)?,
                    })
                })
                .collect(),
        }
    }
}
