//! Sending: drafts, submissions and what the sending rules ask of the mailbox.

use crate::domain::{
    grant::UpstreamCredential,
    mail::ids::EmailId,
    sending::approval::DraftSnapshot,
    sending::compose::{CreatedDraft, Identity, NewDraft},
    sending::submission::{Submission, SubmissionStatus},
};

use super::MailStoreError;

/// Composing and sending mail, and the reads only sending needs: who the person may send as
/// and whom they have written to (the recipient rule).
#[trait_variant::make(Send)]
pub trait MailSender: Sync + 'static {
    /// The account's sender identities.
    async fn identities(&self, cred: &UpstreamCredential) -> Result<Vec<Identity>, MailStoreError>;

    /// Which of `addresses` the person has sent mail to (To, Cc or Bcc of their Sent mail).
    async fn written_to(
        &self,
        cred: &UpstreamCredential,
        addresses: &[String],
    ) -> Result<Vec<String>, MailStoreError>;

    /// Creates `draft` in the Drafts mailbox (destroying the draft it replaces in the same
    /// request); attachments by blob id, never uploaded again.
    async fn create_draft(
        &self,
        cred: &UpstreamCredential,
        draft: &NewDraft,
    ) -> Result<CreatedDraft, MailStoreError>;

    /// A draft as it would be sent, read in full (bodies the server had to cut are flagged).
    async fn draft(
        &self,
        cred: &UpstreamCredential,
        id: &EmailId,
    ) -> Result<DraftSnapshot, MailStoreError>;

    /// Destroys `id` if it is in Drafts with `$draft` (checked and destroyed atomically),
    /// else [`Refusal::NotADraft`](crate::domain::sending::submission::Refusal::NotADraft).
    async fn delete_draft(
        &self,
        cred: &UpstreamCredential,
        id: &EmailId,
    ) -> Result<(), MailStoreError>;

    /// Submits a draft; once accepted it moves to Sent without `$draft`.
    async fn submit(
        &self,
        cred: &UpstreamCredential,
        submission: &Submission,
    ) -> Result<SubmissionStatus, MailStoreError>;

    /// A submission's state.
    async fn submission(
        &self,
        cred: &UpstreamCredential,
        id: &str,
    ) -> Result<SubmissionStatus, MailStoreError>;

    /// Cancels a held submission and puts its email back in Drafts as a draft.
    async fn cancel_submission(
        &self,
        cred: &UpstreamCredential,
        id: &str,
    ) -> Result<EmailId, MailStoreError>;
}
