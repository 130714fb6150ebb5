//! The mailbox list: fetched alongside the calls that need names, and cached per account so a
//! mailbox named in a search or a move resolves without an extra request.

use std::sync::{Arc, PoisonError};

use super::{
    connection::Conn,
    convert::mailbox,
    request::Call,
    session::{CORE, MAIL, MethodResponse, Session},
    wire::{GetResponse, MailboxWire, decode},
};
use crate::domain::{mail::Mailbox, mail::mailboxes::MailboxDirectory, ports::MailStoreError};

/// Properties fetched for every mailbox (public so the benchmark sends the same request).
pub const MAILBOX_PROPERTIES: &[&str] = &[
    "id",
    "name",
    "parentId",
    "role",
    "sortOrder",
    "totalEmails",
    "unreadEmails",
];

/// Accounts whose lists are kept before the cache starts over.
const CACHE_LIMIT: usize = 10_000;

/// The `Mailbox/get` of every mailbox, answered under `id`.
pub fn mailbox_get(account: &str, id: impl Into<String>) -> Call {
    Call::new("Mailbox/get", account, id).properties(MAILBOX_PROPERTIES)
}

/// The id of the mailbox with `role` (`drafts`, `sent`) in `list`.
pub fn role_id(list: &[Mailbox], role: &str) -> Option<String> {
    list.iter()
        .find(|m| m.role.as_ref().is_some_and(|r| r.as_str() == role))
        .map(|m| m.id.as_str().to_owned())
}

fn cache_key(session: &Session) -> String {
    format!("{}\u{0}{}", session.api_url, session.account_id)
}

impl Conn<'_> {
    /// The account's last mailbox list, if one was fetched.
    pub fn cached_mailboxes(&self) -> Option<Arc<Vec<Mailbox>>> {
        self.store
            .mailboxes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&cache_key(&self.session))
            .cloned()
    }

    pub fn remember_mailboxes(&self, list: &[Mailbox]) {
        let mut cache = self
            .store
            .mailboxes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(cache_key(&self.session), Arc::new(list.to_vec()));
    }

    /// Runs `calls` (with `Mailbox/get` appended) and returns the other responses and the list.
    ///
    /// # Errors
    /// See [`MailStoreError`].
    pub async fn call_with_mailboxes(
        &self,
        calls: Vec<Call>,
    ) -> Result<(Vec<MethodResponse>, Vec<Mailbox>), MailStoreError> {
        let calls = calls
            .into_iter()
            .chain([mailbox_get(self.account(), "mailboxes")]);
        let mut responses = self.call(&[CORE, MAIL], calls).await?;
        let (_, args) = responses
            .pop()
            .ok_or_else(|| MailStoreError::Protocol("missing Mailbox/get response".into()))?;
        let list = decode::<GetResponse<MailboxWire>>("Mailbox/get", &args)?
            .list
            .into_iter()
            .filter_map(mailbox)
            .collect::<Vec<_>>();
        self.remember_mailboxes(&list);
        Ok((responses, list))
    }

    /// The mailbox list, fetched now.
    ///
    /// # Errors
    /// See [`MailStoreError`].
    pub async fn mailboxes(&self) -> Result<Vec<Mailbox>, MailStoreError> {
        Ok(self.call_with_mailboxes(Vec::new()).await?.1)
    }

    /// The mailbox id a search or a move names, from the cached list or (once) a fresh one.
    ///
    /// # Errors
    /// [`MailStoreError::NotFound`] (through the directory) when no mailbox has that name.
    pub async fn resolve_mailbox(&self, given: &str) -> Result<String, MailStoreError> {
        if let Some(cached) = self.cached_mailboxes()
            && let Ok(entry) = MailboxDirectory::new(cached.to_vec()).resolve(given)
        {
            return Ok(entry.mailbox.id.as_str().to_owned());
        }
        let directory = MailboxDirectory::new(self.mailboxes().await?);
        Ok(directory.resolve(given)?.mailbox.id.as_str().to_owned())
    }

    /// The Drafts and Sent mailbox ids (by role), from the cached list or a fresh one.
    ///
    /// # Errors
    /// [`MailStoreError::NotFound`] when the account has no Drafts mailbox.
    pub async fn drafts_and_sent(&self) -> Result<(String, Option<String>), MailStoreError> {
        let list = match self.cached_mailboxes() {
            Some(list) if role_id(&list, "drafts").is_some() => list.to_vec(),
            _ => self.mailboxes().await?,
        };
        let drafts = role_id(&list, "drafts").ok_or_else(|| {
            MailStoreError::NotFound(
                "the mailbox has no Drafts folder (no mailbox with the drafts role)".into(),
            )
        })?;
        Ok((drafts, role_id(&list, "sent")))
    }
}
