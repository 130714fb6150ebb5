//! `check_new_mail`: what arrived since the client last asked, in one upstream request.

use chrono::{DateTime, Utc};

use super::{Fittings, MailService, ServiceError, require};
use crate::domain::{
    grant::{Caller, Capability},
    mail::EmailSummary,
    mail::mailboxes::MailboxDirectory,
    notify::{
        arrival,
        cursor::NewMailCursor,
        rules::Decision,
        settings::{MuteRequest, NotifySettings},
    },
    ports::{MailStore, Policy, PushChannel, TokenVault},
    search::query::{InvalidArgument, PageSize},
};

/// What the client asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewMailRequest {
    /// The cursor of the last answer.
    pub cursor: Option<String>,
    /// Most arrivals to list.
    pub limit: Option<u64>,
    /// Count mail already read elsewhere too.
    pub include_seen: bool,
}

/// New mail.
#[derive(Debug, Clone)]
pub struct NewMail {
    /// The arrivals, oldest first (the newest ones when there were more than the limit).
    pub items: Vec<EmailSummary>,
    /// Older arrivals beyond the limit (counted, not repeated).
    pub not_shown: usize,
    /// For the next call.
    pub cursor: String,
    /// The server has more changes: call again.
    pub more: bool,
    /// The cursor was missing, unreadable or too old: this is a fresh look at the last day.
    pub reset: bool,
    /// For mailbox names.
    pub directory: MailboxDirectory,
    /// The page size used.
    pub size: PageSize,
    /// Arrivals the person's rules held back: denied senders, non-VIPs when only VIPs
    /// count, mutes.
    pub suppressed: Suppressed,
    /// Some listed arrival may be announced now (outside quiet hours, or a VIP who may break
    /// them).
    pub due_now: bool,
    /// The earliest end of the quiet hours that hold the other listed arrivals.
    pub held_until: Option<DateTime<Utc>>,
}

/// Arrivals held back, by rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Suppressed {
    /// From a denied sender.
    pub denied: usize,
    /// Not a VIP while only VIPs count.
    pub not_vip: usize,
    /// Muted (by the person or the assistant).
    pub muted: usize,
}

/// One look at the account: its real arrivals since a cursor, before anyone's rules.
#[derive(Debug, Clone)]
pub struct Look {
    /// The arrivals, in the order the server reported them.
    pub arrivals: Vec<EmailSummary>,
    /// The cursor after this look.
    pub cursor: NewMailCursor,
    /// The server has more changes: look again.
    pub more: bool,
    /// The state was unknown or too old: a fresh look at the last day.
    pub reset: bool,
    /// The account's mailboxes.
    pub mailboxes: Vec<crate::domain::mail::Mailbox>,
    /// The threads the person wrote in, of those the arrivals are in.
    pub my_threads: Vec<crate::domain::mail::ids::ThreadId>,
}

/// What one grant's rules made of a look's arrivals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sifted {
    /// Arrivals held back, by rule.
    pub suppressed: Suppressed,
    /// Some kept arrival may be announced now.
    pub due_now: bool,
    /// The earliest end of the quiet hours that hold the other kept arrivals.
    pub held_until: Option<DateTime<Utc>>,
}

impl<M: MailStore, V: TokenVault, P: Policy, F: Fittings> MailService<M, V, P, F> {
    /// `check_new_mail`.
    ///
    /// # Errors
    /// [`ServiceError::NotPermitted`] without `notify`; store errors.
    pub async fn check_new_mail(
        &self,
        caller: &Caller,
        request: &NewMailRequest,
    ) -> Result<NewMail, ServiceError> {
        require(caller, Capability::Notify, "check for new mail")?;
        let size = PageSize::new(request.limit)?;
        let decoded = request.cursor.as_deref().and_then(NewMailCursor::decode);
        let unreadable = request.cursor.is_some() && decoded.is_none();
        let look = self
            .look_for_arrivals(caller, decoded.as_ref(), request.include_seen)
            .await?;
        let mut items = look.arrivals;
        // Quiet hours are for mail pushed at the person, not for a look they (or their
        // assistant) asked for: held arrivals are listed too.
        let sifted = self
            .sift(
                caller,
                &mut items,
                &look.mailboxes,
                &look.my_threads,
                Utc::now(),
            )
            .await?;
        items.sort_by_key(|e| e.received_at);
        // Over the limit: the newest are listed (oldest first), the older ones counted.
        let not_shown = items.len().saturating_sub(size.size as usize);
        items.drain(..not_shown);
        Ok(NewMail {
            items,
            not_shown,
            cursor: look.cursor.encode(),
            more: look.more,
            reset: unreadable || look.reset,
            directory: MailboxDirectory::new(look.mailboxes),
            size,
            suppressed: sifted.suppressed,
            due_now: sifted.due_now,
            held_until: sifted.held_until,
        })
    }

    /// One upstream request: the real arrivals in the account since `cursor` (created, in the
    /// Inbox, not junk, a draft or the person's own, received after the watermark, unread
    /// unless `include_seen`). The watermark never reaches back more than a day, whatever the
    /// cursor says: no flood after downtime.
    ///
    /// # Errors
    /// [`ServiceError::NotPermitted`] without `notify`; store errors.
    pub async fn look_for_arrivals(
        &self,
        caller: &Caller,
        cursor: Option<&NewMailCursor>,
        include_seen: bool,
    ) -> Result<Look, ServiceError> {
        require(caller, Capability::Notify, "check for new mail")?;
        let now = Utc::now();
        let watermark = NewMailCursor::watermark_from(cursor, now);
        let state = cursor.map(|c| c.state.clone());
        let state = &state;
        let feed = self
            .with_credential(caller, |cred| async move {
                self.store
                    .changes_since(&cred, state.clone(), watermark)
                    .await
            })
            .await?;
        let arrivals = arrival::arrivals_in(&feed, watermark, include_seen);
        let cursor = NewMailCursor::after(
            watermark,
            feed.state.clone(),
            arrivals.iter().map(|e| e.received_at),
            now,
        );
        Ok(Look {
            arrivals,
            cursor,
            more: feed.more,
            reset: feed.reset,
            mailboxes: feed.mailboxes,
            my_threads: feed.my_threads,
        })
    }

    /// Applies the caller's rules to `items` at `now`: keeps what arrived in the mailboxes it
    /// watches, drops what the rules hold back (denied senders, non-VIPs when only VIPs count,
    /// mutes; a reply in one of `my_threads` may count as from a VIP) and says when the rest
    /// may be announced.
    ///
    /// # Errors
    /// Policy errors; stored rules that no longer parse, as an argument error.
    pub async fn sift(
        &self,
        caller: &Caller,
        items: &mut Vec<EmailSummary>,
        mailboxes: &[crate::domain::mail::Mailbox],
        my_threads: &[crate::domain::mail::ids::ThreadId],
        now: DateTime<Utc>,
    ) -> Result<Sifted, ServiceError> {
        let settings = self.policy.notify_settings(&caller.grant).await?;
        let rules = settings
            .rules()
            .map_err(|e| InvalidArgument::new("notify settings", e.to_string()))?;
        let watched = settings.watched(mailboxes);
        items.retain(|e| e.mailbox_ids.iter().any(|m| watched.contains(m)));
        let mut sifted = Sifted::default();
        items.retain(|e| {
            let sender = e.from.first().map_or("", |a| a.email.as_str());
            let mine = my_threads.contains(&e.thread_id);
            let verified = e.sender_verified != Some(false);
            match rules.decide_reply(sender, &e.thread_id, mine, verified, now) {
                Decision::Denied => sifted.suppressed.denied += 1,
                Decision::NotAllowed => sifted.suppressed.not_vip += 1,
                Decision::Muted => sifted.suppressed.muted += 1,
                Decision::Notify { .. } => {
                    sifted.due_now = true;
                    return true;
                }
                Decision::HoldUntil(end) => {
                    sifted.held_until = Some(sifted.held_until.map_or(end, |h| h.min(end)));
                    return true;
                }
            }
            false
        });
        Ok(sifted)
    }

    /// Opens the account's push channel with the caller's credential (renewed once if the
    /// server refuses it); `None` when the server offers no push.
    ///
    /// # Errors
    /// [`ServiceError::NotPermitted`] without `notify`; store errors.
    pub async fn open_push(
        &self,
        caller: &Caller,
        ping: std::time::Duration,
    ) -> Result<Option<PushChannel>, ServiceError> {
        require(caller, Capability::Notify, "hear about new mail")?;
        self.with_credential(caller, |cred| async move {
            self.store.open_push(&cred, ping).await
        })
        .await
    }

    /// `mute_notifications`: adds a mute — the only change to the rules the model can make,
    /// and it can only narrow them. Returns the settings now in force.
    ///
    /// # Errors
    /// [`ServiceError::NotPermitted`] without `notify`; a bad mute as an argument error.
    pub async fn mute_notifications(
        &self,
        caller: &Caller,
        request: &MuteRequest,
    ) -> Result<NotifySettings, ServiceError> {
        require(caller, Capability::Notify, "mute notifications")?;
        let now = Utc::now();
        let mute = request
            .mute(now)
            .map_err(|e| InvalidArgument::new("mute", e.to_string()))?;
        let mut settings = self.policy.notify_settings(&caller.grant).await?;
        settings.add_mute(mute, now);
        self.policy
            .set_notify_settings(&caller.grant, settings.clone())
            .await
            .map_err(|e| ServiceError::Unauthenticated(e.into()))?;
        Ok(settings)
    }

    /// `get_notify_settings`.
    ///
    /// # Errors
    /// [`ServiceError::NotPermitted`] without `notify`.
    pub async fn notify_settings(&self, caller: &Caller) -> Result<NotifySettings, ServiceError> {
        require(caller, Capability::Notify, "see notification settings")?;
        let mut settings = self.policy.notify_settings(&caller.grant).await?;
        let now = Utc::now();
        settings.mutes.retain(|m| m.until > now);
        Ok(settings)
    }
}
