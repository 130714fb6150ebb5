//! Organizing the mailbox: keywords and moves, the changes a person makes to mail they have.

use crate::domain::{
    grant::UpstreamCredential,
    mail::Mailbox,
    mail::changes::{ChangeReport, Keyword},
    mail::ids::{EmailId, MailboxId},
};

use super::MailStoreError;

/// What a move did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveResult {
    /// The target mailbox's id.
    pub target: MailboxId,
    /// The account's mailboxes (for the target's path).
    pub mailboxes: Vec<Mailbox>,
    /// Per email.
    pub report: ChangeReport,
}

/// Changes to the mail in the mailbox: never creates, destroys or sends an email.
#[trait_variant::make(Send)]
pub trait MailWriter: Sync + 'static {
    /// Sets (`on`) or clears a keyword on `ids`; one outcome per id, in order.
    async fn set_keyword(
        &self,
        cred: &UpstreamCredential,
        ids: &[EmailId],
        keyword: Keyword,
        on: bool,
    ) -> Result<ChangeReport, MailStoreError>;

    /// Moves `ids` into the mailbox `to` names (id, role, path or name), out of the mailboxes
    /// they are in, in one change per email. Never creates a mailbox.
    async fn move_emails(
        &self,
        cred: &UpstreamCredential,
        ids: &[EmailId],
        to: &str,
    ) -> Result<MoveResult, MailStoreError>;
}
