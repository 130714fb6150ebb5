//! Organizing mail: keywords set or cleared and emails moved, each as `Email/set` patches
//! computed from the emails' state read just before (see [`super::changes`]).

use serde_json::{Map, Value};

use super::{
    changes::{self, States},
    connection::Conn,
    request::Patch,
    session::{CORE, MAIL},
    wire::take,
};
use crate::domain::{
    mail::changes::{ChangeReport, Keyword},
    mail::ids::{EmailId, MailboxId},
    ports::{MailStoreError, MoveResult},
};

/// Sets (`on`) or clears `keyword` on `ids`.
///
/// # Errors
/// See [`MailStoreError`]; per-email failures are in the report.
pub async fn set_keyword(
    conn: &Conn<'_>,
    ids: &[EmailId],
    keyword: Keyword,
    on: bool,
) -> Result<ChangeReport, MailStoreError> {
    let name = keyword.as_jmap();
    change(conn, ids, |states, id| {
        let has = states.has_keyword(id, name)?;
        (has != on).then(|| Patch::default().keyword(name, on).into())
    })
    .await
}

/// Moves `ids` to the mailbox named `to`, out of every other.
///
/// # Errors
/// See [`MailStoreError`]; [`MailStoreError::NotFound`] when there is no such mailbox.
pub async fn move_emails(
    conn: &Conn<'_>,
    ids: &[EmailId],
    to: &str,
) -> Result<MoveResult, MailStoreError> {
    let target = conn.resolve_mailbox(to).await?;
    let report = change(conn, ids, |states, id| {
        let current = states.mailboxes(id)?;
        if current.len() == 1 && current[0] == target {
            return None;
        }
        // One patch leaves every other mailbox and enters the target: an archive is
        // "out of Inbox, into Archive" in one change, never a bare removal.
        let patch = current
            .iter()
            .filter(|m| **m != target)
            .fold(Patch::default(), |patch, m| patch.mailbox(m, false));
        Some(patch.mailbox(&target, true).into())
    })
    .await?;
    let mailboxes = conn
        .cached_mailboxes()
        .map(|m| m.to_vec())
        .unwrap_or_default();
    Ok(MoveResult {
        target: MailboxId::parse(target.clone())
            .map_err(|e| MailStoreError::Protocol(e.to_string()))?,
        mailboxes,
        report,
    })
}

/// Reads the state of `ids` and applies the patch `patch_for` gives each (none: already
/// so), retrying throttled ids; the state read and the first `Email/set` share one request.
async fn change(
    conn: &Conn<'_>,
    ids: &[EmailId],
    patch_for: impl Fn(&States, &EmailId) -> Option<Value>,
) -> Result<ChangeReport, MailStoreError> {
    let account = conn.account();
    let mut responses = conn
        .call(&[CORE, MAIL], [changes::state_call(account, ids)])
        .await?;
    let states = States::decode(&take(&mut responses, "Email/get")?)?;
    let mut patches = Map::new();
    for id in ids {
        if let Some(patch) = patch_for(&states, id) {
            patches.insert(id.as_str().to_owned(), patch);
        }
    }
    let applied = changes::apply(patches.clone(), |batch| {
        conn.call(&[CORE, MAIL], [changes::set_call(account, &batch)])
    })
    .await?;
    Ok(changes::report(
        ids,
        |id| states.mailboxes(id).is_some(),
        |id| !patches.contains_key(id.as_str()),
        applied,
    ))
}
