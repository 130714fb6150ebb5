//! The compose and send use cases: drafts from what the model wrote, and a send that happens
//! only with the person's approval of the exact draft (see `domain::sending::approval`).

use zeroize::Zeroizing;

use super::{Fittings, MailService, ServiceError, require};
use crate::domain::{
    grant::{Caller, Capability},
    mail::Attachment,
    mail::body,
    mail::ids::EmailId,
    ports::{ApprovalStore as _, MailStore, MailStoreError, Policy, TokenVault},
    search::query::InvalidArgument,
    sending::approval::{
        self, Approval, ApprovalError, ApprovalId, ApprovalRecord, DraftDigest, DraftSnapshot,
        Schedule, Status, Typed,
    },
    sending::compose::{self, CreatedDraft, DraftRequest, Identity, NewDraft, Original},
    sending::recipients,
    sending::submission::{Submission, SubmissionStatus},
};

/// How sending behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendSettings {
    /// How long an approval waits for the person (seconds).
    pub approval_ttl_secs: i64,
    /// The undo window when the client asks for none (seconds; 0: at once).
    pub default_undo_secs: u32,
}

impl Default for SendSettings {
    fn default() -> Self {
        Self {
            approval_ttl_secs: approval::DEFAULT_TTL_SECS,
            default_undo_secs: 0,
        }
    }
}

/// Why a draft was not sent (or changed), by the approval rules; each has a stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendRefusal {
    /// The draft differs from the one the person approved (or its send time does).
    #[error(
        "the draft or its send time changed after the person approved it, so it was not sent; call send_draft again to ask for approval of the draft as it is now"
    )]
    DraftChanged,
    /// The approval lapsed before the send.
    #[error(
        "the approval expired before the draft was sent, so it was not sent; call send_draft again to ask the person again"
    )]
    ApprovalExpired,
    /// The person declined.
    #[error("the person declined sending this draft; it was not sent and is still in Drafts")]
    ApprovalDeclined,
    /// Another call is sending it, or sent it.
    #[error("this approval was already used: the draft is being sent or was sent by another call")]
    ApprovalUsed,
    /// The approval is not this grant's, or unknown.
    #[error("no such approval for this connection")]
    UnknownApproval,
    /// A submission this connection didn't make.
    #[error("this connection did not send that message, so it can't cancel it")]
    NotOurs,
    /// The From address is not one of the account's identities.
    #[error(
        "the draft's From address {0} is not one of this account's sending identities (get_identity lists them)"
    )]
    FromNotAnIdentity(String),
    /// A recipient outside the connection's rule (set by the person in settings).
    #[error(
        "{0} is not among the recipients this assistant may send to (the person sets that in mailconnect's settings); nothing was sent and no approval was asked for"
    )]
    RecipientNotAllowed(String),
    /// A body was too large to read back whole, so it can't be reviewed.
    #[error("the draft is too large to review safely, so it can't be sent from here")]
    TooLargeToReview,
    /// The outcome is unknown: the submission may or may not have been accepted.
    #[error(
        "the mail server did not confirm the send ({0}); it may or may not have been sent: check get_send_status or the Sent folder before trying again"
    )]
    Unconfirmed(String),
}

impl SendRefusal {
    /// The stable code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::DraftChanged => "draft_changed",
            Self::ApprovalExpired => "approval_expired",
            Self::ApprovalDeclined => "approval_declined",
            Self::ApprovalUsed => "approval_used",
            Self::UnknownApproval => "unknown_approval",
            Self::NotOurs => "not_our_send",
            Self::FromNotAnIdentity(_) => "forbidden_from",
            Self::RecipientNotAllowed(_) => "recipient_not_allowed",
            Self::TooLargeToReview => "too_large_to_review",
            Self::Unconfirmed(_) => "send_unconfirmed",
        }
    }
}

/// A draft created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DraftView {
    /// What the store made.
    pub created: CreatedDraft,
    /// What it holds.
    pub draft: NewDraft,
}

/// An approval to ask the person for.
#[derive(Debug, Clone)]
pub struct ApprovalAsk {
    /// Its id.
    pub id: ApprovalId,
    /// The review copy's key, for the link's fragment only (never stored).
    pub key: Zeroizing<[u8; 32]>,
    /// When it lapses (unix seconds).
    pub expires_at: i64,
    /// The draft as it will be sent.
    pub draft: DraftSnapshot,
    /// When it will leave.
    pub schedule: Schedule,
    /// Whether the review page can approve it (a grant with a known upstream account).
    pub reviewable: bool,
}

/// What `send_draft` did.
#[derive(Debug, Clone)]
pub enum SendOutcome {
    /// The person must approve first.
    NeedsApproval(Box<ApprovalAsk>),
    /// Submitted.
    Sent(SubmissionStatus),
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn approval_error(e: ApprovalError) -> ServiceError {
    match e {
        ApprovalError::Conflict => SendRefusal::ApprovalUsed.into(),
        ApprovalError::Expired => SendRefusal::ApprovalExpired.into(),
        ApprovalError::Unexpected(m) => {
            MailStoreError::Unavailable(format!("approvals: {m}")).into()
        }
    }
}

impl<M: MailStore, V: TokenVault, P: Policy, F: Fittings> MailService<M, V, P, F> {
    fn approvals(&self) -> &F::Approvals {
        self.fittings.approvals()
    }

    /// `draft_email`: a new message, reply, reply-all or forward as a draft in Drafts.
    ///
    /// # Errors
    /// [`ServiceError::NotPermitted`] without `draft`; argument errors name the argument.
    pub async fn draft_email(
        &self,
        caller: &Caller,
        request: &DraftRequest,
    ) -> Result<DraftView, ServiceError> {
        require(caller, Capability::Draft, "write drafts")?;
        let identities = self
            .with_credential(
                caller,
                |cred| async move { self.store.identities(&cred).await },
            )
            .await?;
        let original = match &request.source {
            Some(id) => Some(
                self.with_credential(
                    caller,
                    |cred| async move { self.store.email(&cred, id).await },
                )
                .await?
                .0,
            ),
            None => None,
        };
        let mut extra: Vec<Attachment> = Vec::new();
        for (email_id, blob) in &request.attach {
            // Only blobs of the person's own mail, each proven by its email.
            let (email, _) = self
                .with_credential(caller, |cred| async move {
                    self.store.email(&cred, email_id).await
                })
                .await?;
            let found = email
                .attachments
                .into_iter()
                .find(|a| a.blob_id == *blob)
                .ok_or_else(|| {
                    InvalidArgument::new(
                        "attach",
                        format!("{blob} is not an attachment of email {email_id}"),
                    )
                })?;
            extra.push(found);
        }
        if let Some(old) = &request.replaces {
            let snapshot = self
                .with_credential(
                    caller,
                    |cred| async move { self.store.draft(&cred, old).await },
                )
                .await?;
            if !(snapshot.in_drafts && snapshot.is_draft) {
                return Err(MailStoreError::Refused(
                    crate::domain::sending::submission::Refusal::NotADraft,
                )
                .into());
            }
        }
        let text = original
            .as_ref()
            .map(|e| body::body_text(&e.body, body::TextOptions::default()).1);
        let o = original
            .as_ref()
            .zip(text.as_deref())
            .map(|(email, text)| Original { email, text });
        let draft = compose::plan(request, o.as_ref(), &identities, extra)?;
        let draft_ref = &draft;
        let created = self
            .with_credential(caller, |cred| async move {
                self.store.create_draft(&cred, draft_ref).await
            })
            .await?;
        Ok(DraftView { created, draft })
    }

    /// `list_drafts`: the Drafts mailbox, newest first, paged like a search.
    ///
    /// # Errors
    /// [`ServiceError::NotPermitted`] without `draft`; search errors.
    pub async fn list_drafts(
        &self,
        caller: &Caller,
        limit: Option<u64>,
        cursor: Option<String>,
    ) -> Result<super::SearchResult, ServiceError> {
        require(caller, Capability::Draft, "list drafts")?;
        let request = super::SearchRequest {
            query: crate::domain::search::query::EmailQuery {
                mailbox: Some("drafts".into()),
                ..crate::domain::search::query::EmailQuery::default()
            },
            limit,
            cursor,
        };
        self.search(caller, &request).await
    }

    /// `delete_draft`: destroys an email only if it is in Drafts with `$draft`.
    ///
    /// # Errors
    /// [`ServiceError::NotPermitted`] without `draft`; `not_a_draft` for anything else.
    pub async fn delete_draft(&self, caller: &Caller, id: &EmailId) -> Result<(), ServiceError> {
        require(caller, Capability::Draft, "delete drafts")?;
        self.with_credential(caller, |cred| async move {
            self.store.delete_draft(&cred, id).await
        })
        .await
    }

    /// The identity a snapshot is sent from: the one covering its single From address.
    fn sending_identity(
        snapshot: &DraftSnapshot,
        identities: &[Identity],
    ) -> Result<Identity, ServiceError> {
        let from = match snapshot.from.as_slice() {
            [one] => one,
            _ => {
                return Err(SendRefusal::FromNotAnIdentity(format!(
                    "({} addresses)",
                    snapshot.from.len()
                ))
                .into());
            }
        };
        identities
            .iter()
            .find(|i| i.covers(&from.email))
            .cloned()
            .ok_or_else(|| SendRefusal::FromNotAnIdentity(from.email.clone()).into())
    }

    /// `send_draft`: sends a draft the person approved; otherwise asks for approval.
    /// `review` renders the draft for the review page (sealed under a key only the link has).
    ///
    /// The draft is re-read and its digest recomputed on every call, right before sending: an
    /// approval covers exactly the draft and schedule it was asked for.
    ///
    /// # Errors
    /// [`ServiceError::NotPermitted`] without `send`; [`SendRefusal`] for approval rules;
    /// store refusals with their codes.
    pub async fn send_draft(
        &self,
        caller: &Caller,
        id: &EmailId,
        schedule: Option<Schedule>,
        review: &(dyn Fn(&DraftSnapshot, &Schedule) -> Vec<u8> + Sync),
    ) -> Result<SendOutcome, ServiceError> {
        require(caller, Capability::Send, "send mail")?;
        let approvals = self.approvals();
        let schedule = schedule.unwrap_or(Schedule::Now {
            undo_secs: self.sending.default_undo_secs,
        });
        let snapshot = self
            .with_credential(
                caller,
                |cred| async move { self.store.draft(&cred, id).await },
            )
            .await?;
        if !(snapshot.in_drafts && snapshot.is_draft) {
            return Err(MailStoreError::Refused(
                crate::domain::sending::submission::Refusal::NotADraft,
            )
            .into());
        }
        if snapshot.truncated {
            return Err(SendRefusal::TooLargeToReview.into());
        }
        if snapshot.recipients().next().is_none() {
            return Err(MailStoreError::Refused(
                crate::domain::sending::submission::Refusal::NoRecipients,
            )
            .into());
        }
        let identities = self
            .with_credential(
                caller,
                |cred| async move { self.store.identities(&cred).await },
            )
            .await?;
        let identity = Self::sending_identity(&snapshot, &identities)?;
        self.check_recipients(caller, &snapshot, &identities)
            .await?;
        let digest = DraftDigest::of(&snapshot, &identity.id, &schedule);
        let existing = approvals
            .find(&caller.grant, id)
            .await
            .map_err(approval_error)?;
        let now = now();
        // A pending approval (or none) is asked again: its key is gone with its tool result.
        match existing.map(ApprovalRecord::typed) {
            Some(Typed::Approved(approved)) => {
                let record = approved.record().clone();
                if record.expired(now) {
                    self.forget(approvals, &record).await?;
                    return Err(SendRefusal::ApprovalExpired.into());
                }
                if record.digest != digest {
                    self.forget(approvals, &record).await?;
                    return Err(SendRefusal::DraftChanged.into());
                }
                return self
                    .send_approved(caller, approvals, approved, &snapshot, &identity, &schedule)
                    .await
                    .map(SendOutcome::Sent);
            }
            Some(Typed::Pending(pending)) => {
                let record = pending.record().clone();
                if record.expired(now) {
                    self.forget(approvals, &record).await?;
                    return Err(SendRefusal::ApprovalExpired.into());
                }
            }
            Some(Typed::Settled(record)) => match record.status {
                Status::Declined => {
                    self.forget(approvals, &record).await?;
                    return Err(SendRefusal::ApprovalDeclined.into());
                }
                // Sent before, and a draft in Drafts again (its send was cancelled): a new
                // send, asked afresh.
                Status::Sent => self.forget(approvals, &record).await?,
                // A send whose outcome was never known: the draft still being a draft proves
                // nothing (a Bcc copy may have left, or only the move to Sent failed), so it
                // is never sent again from this approval.
                _ => return Err(SendRefusal::ApprovalUsed.into()),
            },
            None => {}
        }
        let (key, sealed) = approval::seal_review(&review(&snapshot, &schedule));
        let ask = Approval::ask(
            caller.grant.clone(),
            caller.account.clone().unwrap_or_default(),
            id.clone(),
            digest,
            sealed,
            now,
            self.sending.approval_ttl_secs,
        );
        let record = ask.record().clone();
        approvals.insert(&record).await.map_err(approval_error)?;
        Ok(SendOutcome::NeedsApproval(Box::new(ApprovalAsk {
            id: record.id,
            key,
            expires_at: record.expires_at,
            draft: snapshot,
            schedule,
            reviewable: caller.account.is_some(),
        })))
    }

    /// The connection's recipient rule, on every recipient (To, Cc, Bcc), before anything is
    /// asked or sent.
    async fn check_recipients(
        &self,
        caller: &Caller,
        snapshot: &DraftSnapshot,
        identities: &[Identity],
    ) -> Result<(), ServiceError> {
        let rule = self.policy.recipients(&caller.grant).await?;
        let all: Vec<&str> = snapshot.recipients().map(|a| a.email.as_str()).collect();
        let to_check: Vec<String> = recipients::unchecked(&rule, &all, identities)
            .map_err(|refused| SendRefusal::RecipientNotAllowed(refused.to_owned()))?
            .into_iter()
            .map(str::to_lowercase)
            .collect();
        if to_check.is_empty() {
            return Ok(());
        }
        let to_check = &to_check;
        let known = self
            .with_credential(caller, |cred| async move {
                self.store.written_to(&cred, to_check).await
            })
            .await?;
        match to_check
            .iter()
            .find(|a| !known.iter().any(|k| k.eq_ignore_ascii_case(a)))
        {
            Some(stranger) => Err(SendRefusal::RecipientNotAllowed(stranger.clone()).into()),
            None => Ok(()),
        }
    }

    async fn forget(
        &self,
        approvals: &F::Approvals,
        record: &ApprovalRecord,
    ) -> Result<(), ServiceError> {
        approvals.remove(&record.id).await.map_err(approval_error)
    }

    /// Claims the approval (once), submits, and records the outcome. A refusal gives the
    /// approval back (nothing left); an unknown outcome keeps it claimed (never sent twice).
    async fn send_approved(
        &self,
        caller: &Caller,
        approvals: &F::Approvals,
        approved: Approval<approval::Approved>,
        snapshot: &DraftSnapshot,
        identity: &Identity,
        schedule: &Schedule,
    ) -> Result<SubmissionStatus, ServiceError> {
        let claimed = approved
            .claim(approvals, now())
            .await
            .map_err(approval_error)?;
        let mut rcpt_to: Vec<String> = Vec::new();
        for a in snapshot.recipients() {
            if !rcpt_to.iter().any(|r| r.eq_ignore_ascii_case(&a.email)) {
                rcpt_to.push(a.email.clone());
            }
        }
        let submission = Submission {
            email: snapshot.id.clone(),
            identity: identity.id.clone(),
            mail_from: snapshot.from[0].email.clone(),
            rcpt_to,
            hold_secs: schedule.hold_secs(chrono::Utc::now()),
            without_bcc: (!snapshot.bcc.is_empty()).then(|| snapshot.clone()),
        };
        let submission = &submission;
        // One attempt here: the store already retried throttling, and a renewal retry after
        // an unauthorized answer is safe (nothing was sent).
        let outcome = self
            .with_credential(caller, |cred| async move {
                self.store.submit(&cred, submission).await
            })
            .await;
        match outcome {
            Ok(status) => {
                claimed
                    .sent(approvals, status.id.clone())
                    .await
                    .map_err(approval_error)?;
                Ok(status)
            }
            Err(ServiceError::Store(
                e @ (MailStoreError::Refused(_)
                | MailStoreError::RateLimited { .. }
                | MailStoreError::Rejected { .. }
                | MailStoreError::NotFound(_)
                | MailStoreError::Unauthorized),
            )) => {
                claimed.release(approvals).await.map_err(approval_error)?;
                Err(e.into())
            }
            Err(ServiceError::Store(e)) => Err(SendRefusal::Unconfirmed(e.to_string()).into()),
            Err(e) => Err(e),
        }
    }

    /// The client's form (elicitation) answered: approve or decline the pending approval.
    ///
    /// # Errors
    /// [`SendRefusal::UnknownApproval`] for another grant's or a missing approval; `Conflict`
    /// (as `approval_used`) when it was decided meanwhile.
    pub async fn decide_by_client(
        &self,
        caller: &Caller,
        id: &ApprovalId,
        approve: bool,
    ) -> Result<(), ServiceError> {
        require(caller, Capability::Send, "send mail")?;
        // The person may have chosen the review page only while the client's dialog was open.
        if approve && self.policy.review_only(&caller.grant).await? {
            return Err(SendRefusal::ApprovalUsed.into());
        }
        let approvals = self.approvals();
        let grant = &caller.grant;
        // A caller must not give up midway (a decision half made): the inbound adapter runs
        // this as a task of its own.
        let decided = async {
            let s = approvals;
            let record = s
                .get(id)
                .await?
                .filter(|r| &r.grant == grant)
                .ok_or(ApprovalError::Conflict)?;
            match record.typed() {
                Typed::Pending(p) if approve => p.approve(s, now()).await.map(drop),
                // The client's caller hears "declined" now; the next send_draft asks afresh.
                Typed::Pending(p) => {
                    let r = p.decline(s).await?;
                    s.remove(&r.id).await
                }
                // A "no" after a "yes" (page, then dialog) wins while nothing was sent yet.
                Typed::Approved(a) if !approve => {
                    let id = &a.record().id;
                    s.transition(id, Status::Approved, Status::Declined, None)
                        .await?;
                    s.remove(id).await
                }
                _ => Err(ApprovalError::Conflict),
            }
        };
        decided.await.map_err(approval_error)
    }

    /// `cancel_send`: cancels a held submission; its email is a draft in Drafts again.
    ///
    /// # Errors
    /// [`ServiceError::NotPermitted`] without `send`; `cannot_unsend` once it left.
    pub async fn cancel_send(
        &self,
        caller: &Caller,
        submission: &str,
    ) -> Result<EmailId, ServiceError> {
        require(caller, Capability::Send, "cancel sending")?;
        // Only a send this connection made: never the person's own (or another assistant's).
        let approvals = self.approvals();
        let record = approvals
            .by_submission(&caller.grant, submission)
            .await
            .map_err(approval_error)?
            .filter(|r| r.status == Status::Sent)
            .ok_or(SendRefusal::NotOurs)?;
        let draft = self
            .with_credential(caller, |cred| async move {
                self.store.cancel_submission(&cred, submission).await
            })
            .await?;
        // The approval was used up by that send; sending the draft again asks again.
        self.forget(approvals, &record).await?;
        Ok(draft)
    }

    /// `get_send_status`: a submission's state.
    ///
    /// # Errors
    /// [`ServiceError::NotPermitted`] without `send`.
    pub async fn send_status(
        &self,
        caller: &Caller,
        submission: &str,
    ) -> Result<SubmissionStatus, ServiceError> {
        require(caller, Capability::Send, "see sending status")?;
        let found = self
            .with_credential(caller, |cred| async move {
                self.store.submission(&cred, submission).await
            })
            .await;
        match found {
            // Servers may forget a submission once it left (Cyrus keeps only held ones): ours
            // still knows it went.
            Err(ServiceError::Store(MailStoreError::NotFound(why))) => {
                let approvals = self.approvals();
                let sent = approvals
                    .by_submission(&caller.grant, submission)
                    .await
                    .map_err(approval_error)?;
                sent.filter(|r| r.status == Status::Sent)
                    .map(|r| SubmissionStatus {
                        id: submission.to_owned(),
                        email: Some(r.draft),
                        undo_status: crate::domain::sending::submission::UndoStatus::Final,
                        send_at: None,
                        delivery: Vec::new(),
                    })
                    .ok_or_else(|| MailStoreError::NotFound(why).into())
            }
            other => other,
        }
    }

    /// Whether the person wants this connection's sends approved only on the review page
    /// (never in the client's own dialog, which a client could answer by itself).
    ///
    /// # Errors
    /// Policy errors.
    pub async fn review_only(&self, caller: &Caller) -> Result<bool, ServiceError> {
        require(caller, Capability::Send, "send mail")?;
        Ok(self.policy.review_only(&caller.grant).await?)
    }

    /// `get_send_status` for a draft: where its approval is, if it has one.
    ///
    /// # Errors
    /// [`ServiceError::NotPermitted`] without `send`.
    pub async fn approval_status(
        &self,
        caller: &Caller,
        draft: &EmailId,
    ) -> Result<Option<ApprovalRecord>, ServiceError> {
        require(caller, Capability::Send, "see sending status")?;
        let approvals = self.approvals();
        let found = approvals
            .find(&caller.grant, draft)
            .await
            .map_err(approval_error)?;
        let Some(claim) = found.clone().and_then(|r| r.unsettled_claim(now())) else {
            return Ok(found);
        };
        // An unknown outcome, old enough to settle: a draft that is no longer a draft left
        // (the submission moved it). One still in Drafts proves nothing — a Bcc copy may have
        // gone, or only the move failed — so the claim stays, never to be sent again.
        let snapshot = self
            .with_credential(caller, |cred| async move {
                self.store.draft(&cred, draft).await
            })
            .await;
        let left = match snapshot {
            Ok(s) => !(s.in_drafts && s.is_draft),
            Err(ServiceError::Store(MailStoreError::NotFound(_))) => true,
            Err(e) => return Err(e),
        };
        if !left {
            return Ok(found);
        }
        claim
            .left(approvals)
            .await
            .map(Some)
            .map_err(approval_error)
    }
}
