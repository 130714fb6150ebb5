//! `check_new_mail`: what arrived since the client last asked, in one upstream request.

use chrono::{DateTime, Utc};

use super::{MailService, ServiceError, require};
use crate::domain::{
    grant::{Caller, Capability},
    ids::MailboxId,
    mail::EmailSummary,
    mailboxes::MailboxDirectory,
    notify::{
        arrival::{self, Account, Created, Verdict},
        cursor::NewMailCursor,
        fresh_watermark,
    },
    ports::{MailStore, Policy, TokenVault},
    query::PageSize,
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
    /// The arrivals, oldest first.
    pub items: Vec<EmailSummary>,
    /// More arrivals than listed (the rest are counted, not repeated).
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
}

impl<M: MailStore, V: TokenVault, P: Policy> MailService<M, V, P> {
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
        let now = Utc::now();
        let decoded = request.cursor.as_deref().and_then(NewMailCursor::decode);
        let unreadable = request.cursor.is_some() && decoded.is_none();
        // Never further back than a day, whatever the cursor says: no flood after downtime.
        let watermark = decoded
            .as_ref()
            .map_or(fresh_watermark(now), |c| c.watermark)
            .max(fresh_watermark(now));
        let state = decoded.as_ref().map(|c| c.state.clone());
        let state = &state;
        let feed = self
            .with_credential(caller, |cred| async move {
                self.store
                    .changes_since(&cred, state.clone(), watermark)
                    .await
            })
            .await?;
        let by_role = |roles: &[&str]| -> Vec<MailboxId> {
            feed.mailboxes
                .iter()
                .filter(|m| m.role.as_ref().is_some_and(|r| roles.contains(&r.as_str())))
                .map(|m| m.id.clone())
                .collect()
        };
        let watched = by_role(&["inbox"]);
        let excluded = by_role(&["junk", "trash", "sent", "drafts"]);
        let account = Account {
            watched: &watched,
            excluded: &excluded,
            own: &feed.identities,
            watermark,
            include_seen: request.include_seen,
        };
        let mut items: Vec<EmailSummary> = feed
            .created
            .iter()
            .filter(|e| {
                let created = Created {
                    id: e.id.clone(),
                    received_at: e.received_at,
                    mailboxes: e.mailbox_ids.clone(),
                    keywords: e.keywords.clone(),
                    from: e.from.clone(),
                };
                arrival::classify(&created, &account, |_| false) == Verdict::Arrival
            })
            .cloned()
            .collect();
        items.sort_by_key(|e| e.received_at);
        let latest: Option<DateTime<Utc>> = items.last().map(|e| e.received_at);
        let not_shown = items.len().saturating_sub(size.size as usize);
        items.truncate(size.size as usize);
        let cursor = NewMailCursor {
            watermark: latest.map_or(watermark, |l| l.max(watermark)),
            state: feed.state.clone(),
        };
        Ok(NewMail {
            items,
            not_shown,
            cursor: cursor.encode(),
            more: feed.more,
            reset: unreadable || feed.reset,
            directory: MailboxDirectory::new(feed.mailboxes),
            size,
        })
    }
}
