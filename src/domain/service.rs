//! The use cases behind the tools: authenticate a caller, check its policy, ask the mail store.
//!
//! Generic over the ports (static dispatch, one alias in the composition root): the mailbox,
//! the vault and the policy, and as one more parameter ([`Fittings`]) what the use cases reach
//! besides: credential renewal, document text and send approvals.

use std::{future::Future, sync::Arc};

mod background;
mod new_mail;
mod notifier;
mod review;
mod sending;

pub use self::background::{BackgroundSetup, SetupError, TurnOn};
pub use self::new_mail::{Look, NewMail, NewMailRequest, Sifted, Suppressed};
pub use self::notifier::{LookError, Notifier, NotifierSettings, PushOpening, Round};
pub use self::review::ReviewDesk;
pub use self::sending::{ApprovalAsk, DraftView, SendOutcome, SendRefusal, SendSettings};
use crate::domain::{
    auth::upstream_refresh::{NoRenewal, RefreshError, RenewCredential, needs_refresh},
    grant::{AccessToken, Caller, Capability, CapabilitySet, UpstreamCredential},
    mail::body::{self, BodyPage},
    mail::changes::{self, ChangeReport, Keyword},
    mail::ids::{BlobId, EmailId, ThreadId},
    mail::mailboxes::MailboxDirectory,
    mail::text_extract::{self, ExtractedText},
    mail::{AccountInfo, AttachmentContent, Email, EmailSummary},
    ports::{
        ApprovalStore, DocumentText, MailStore, MailStoreError, NoDocuments, PageStart, Policy,
        PolicyError, TokenVault, VaultError,
    },
    search::query::{self, EmailQuery, InvalidArgument, PageCursor, PageSize},
    search::search_syntax,
};

/// How many more emails than a page a follow-up search fetches, besides the boundary ones it
/// skips: room for the server's rounding of the date bound.
const BOUNDARY_SLACK: u32 = 5;

/// Settings of the use cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceLimits {
    /// Largest attachment `get_attachment` returns.
    pub max_attachment_bytes: u64,
    /// Most characters of attachment text returned.
    pub max_attachment_text_chars: usize,
}

impl Default for ServiceLimits {
    fn default() -> Self {
        Self {
            max_attachment_bytes: 10 * 1024 * 1024,
            max_attachment_text_chars: 100_000,
        }
    }
}

/// Why a use case failed, in terms a client can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// No valid token: the client must (re)authorize.
    #[error("{0}")]
    Unauthenticated(VaultError),
    /// The grant lacks a capability.
    #[error(
        "this connection may not {action}: the \"{}\" capability is off for it. The person can enable it for this assistant in mailconnect's settings",
        capability.as_str()
    )]
    NotPermitted {
        /// The capability needed.
        capability: Capability,
        /// What was attempted, in words.
        action: &'static str,
    },
    /// A tool argument is wrong.
    #[error("{0}")]
    InvalidArgument(#[from] InvalidArgument),
    /// The mail server could not do it.
    #[error("{0}")]
    Store(#[from] MailStoreError),
    /// The policy store failed.
    #[error("{0}")]
    Policy(#[from] PolicyError),
    /// Not sent (or not changed) for a reason of the approval rules.
    #[error("{0}")]
    Send(#[from] SendRefusal),
    /// mailconnect's own storage failed (a database restart): nothing changed, try again.
    #[error("mailconnect's storage is unavailable right now; try again in a moment")]
    StorageUnavailable(String),
}

/// Who the caller reads mail for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityView {
    /// The account.
    pub account: AccountInfo,
    /// The caller's capabilities.
    pub granted: CapabilitySet,
    /// `get_attachment`'s size cap.
    pub max_attachment_bytes: u64,
}

/// A page of search results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchResult {
    /// Newest first.
    pub emails: Vec<EmailSummary>,
    /// The mailboxes, for names.
    pub directory: MailboxDirectory,
    /// Matches in all, if known.
    pub total: Option<u64>,
    /// The page size used.
    pub size: PageSize,
    /// The cursor for the next page.
    pub next_cursor: Option<String>,
}

/// A search as a client asked for it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchRequest {
    /// The filter.
    pub query: EmailQuery,
    /// The page size asked for.
    pub limit: Option<u64>,
    /// A cursor from the previous page.
    pub cursor: Option<String>,
}

/// One email, with its body window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailView {
    /// The email.
    pub email: Email,
    /// The mailboxes, for names.
    pub directory: MailboxDirectory,
    /// The body window.
    pub body: BodyPage,
}

/// A conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadView {
    /// The thread.
    pub thread_id: ThreadId,
    /// Oldest first.
    pub emails: Vec<EmailSummary>,
    /// The mailboxes, for names.
    pub directory: MailboxDirectory,
}

/// An attachment with its text, where it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentView {
    /// The file.
    pub content: AttachmentContent,
    /// Its text, for text formats.
    pub text: Option<ExtractedText>,
}

/// What the mail use cases reach besides the mailbox, the vault and the policy, as one type
/// parameter of [`MailService`]: the adapters that hold the use cases (the MCP handler, the
/// watchers) carry one parameter for the three, and [`Fitted`] names them.
pub trait Fittings: Send + Sync + 'static {
    /// Renews upstream credentials ([`NoRenewal`] without upstream OAuth).
    type Renewal: RenewCredential;
    /// Reads document text ([`NoDocuments`] without a reader).
    type Documents: DocumentText;
    /// Keeps send approvals.
    type Approvals: ApprovalStore;

    /// The renewal, shared with the authorization server (one refresh per grant at a time).
    fn renewal(&self) -> &Self::Renewal;
    /// The document reader.
    fn documents(&self) -> &Self::Documents;
    /// The approvals.
    fn approvals(&self) -> &Self::Approvals;
}

/// The [`Fittings`] of a deployment: renewal `R`, document reader `D`, approvals `A`.
pub struct Fitted<R, D, A> {
    renewal: Arc<R>,
    documents: D,
    approvals: A,
}

impl<R: RenewCredential, D: DocumentText, A: ApprovalStore> Fittings for Fitted<R, D, A> {
    type Renewal = R;
    type Documents = D;
    type Approvals = A;

    fn renewal(&self) -> &R {
        &self.renewal
    }

    fn documents(&self) -> &D {
        &self.documents
    }

    fn approvals(&self) -> &A {
        &self.approvals
    }
}

/// The use cases, over the ports.
pub struct MailService<M, V, P, F> {
    store: Arc<M>,
    vault: V,
    policy: P,
    limits: ServiceLimits,
    fittings: F,
    /// Our MCP endpoint, the only resource a token may be for; `None` (until
    /// [`MailService::with_oauth`]): a token's resource is not checked.
    resource: Option<String>,
    sending: SendSettings,
}

impl<M, V, P, F> std::fmt::Debug for MailService<M, V, P, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailService")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl<M: MailStore, V: TokenVault, P: Policy, A: ApprovalStore>
    MailService<M, V, P, Fitted<NoRenewal, NoDocuments, A>>
{
    /// Wires the use cases to their ports; sends only with approvals kept in `approvals`.
    /// Without [`Self::with_oauth`] nothing is renewed, and without [`Self::with_documents`]
    /// no document has text.
    pub fn new(
        store: impl Into<Arc<M>>,
        vault: V,
        policy: P,
        approvals: A,
        limits: ServiceLimits,
    ) -> Self {
        Self {
            store: store.into(),
            vault,
            policy,
            limits,
            fittings: Fitted {
                renewal: Arc::new(NoRenewal),
                documents: NoDocuments,
                approvals,
            },
            resource: None,
            sending: SendSettings::default(),
        }
    }
}

impl<M: MailStore, V: TokenVault, P: Policy, R, D, A> MailService<M, V, P, Fitted<R, D, A>>
where
    R: RenewCredential,
    D: DocumentText,
    A: ApprovalStore,
{
    /// Sends with `settings`.
    #[must_use]
    pub fn with_send_settings(mut self, settings: SendSettings) -> Self {
        self.sending = settings;
        self
    }

    /// Extracts text from document attachments (PDF) with `reader`.
    #[must_use]
    pub fn with_documents<D2: DocumentText>(
        self,
        reader: D2,
    ) -> MailService<M, V, P, Fitted<R, D2, A>> {
        self.refit(|f| Fitted {
            renewal: f.renewal,
            documents: reader,
            approvals: f.approvals,
        })
    }

    /// Renews expired upstream credentials through `renewal`, and accepts only tokens issued
    /// for `resource` (our MCP endpoint).
    #[must_use]
    pub fn with_oauth<R2: RenewCredential>(
        self,
        renewal: Arc<R2>,
        resource: String,
    ) -> MailService<M, V, P, Fitted<R2, D, A>> {
        let mut service = self.refit(|f| Fitted {
            renewal,
            documents: f.documents,
            approvals: f.approvals,
        });
        service.resource = Some(resource);
        service
    }

    /// The same use cases with other fittings.
    fn refit<G>(self, fit: impl FnOnce(Fitted<R, D, A>) -> G) -> MailService<M, V, P, G> {
        MailService {
            store: self.store,
            vault: self.vault,
            policy: self.policy,
            limits: self.limits,
            fittings: fit(self.fittings),
            resource: self.resource,
            sending: self.sending,
        }
    }
}

impl<M: MailStore, V: TokenVault, P: Policy, F: Fittings> MailService<M, V, P, F> {
    /// Resolves a presented token to a caller: its grant, upstream credential and policy.
    /// An upstream credential at or near its expiry is renewed first.
    ///
    /// # Errors
    /// [`ServiceError::Unauthenticated`] for a token that opens no grant, was issued for
    /// another resource, or whose grant the upstream has ended.
    pub async fn authenticate(&self, token: &AccessToken) -> Result<Caller, ServiceError> {
        // A storage failure is no verdict on the token: the client must keep it and retry.
        let opened = self.vault.open(token).await.map_err(|e| match e {
            VaultError::InvalidToken => ServiceError::Unauthenticated(e),
            VaultError::Unexpected(why) => ServiceError::StorageUnavailable(why),
        })?;
        if let (Some(issued_for), Some(ours)) = (&opened.resource, &self.resource)
            && issued_for != ours
        {
            return Err(ServiceError::Unauthenticated(VaultError::InvalidToken));
        }
        let mut credential = opened.credential.clone();
        if needs_refresh(&opened, chrono::Utc::now().timestamp()) {
            match self
                .fittings
                .renewal()
                .renew(token, &opened.grant, &opened.credential)
                .await
            {
                Ok(fresh) => credential = fresh,
                Err(RefreshError::GrantEnded) => {
                    return Err(ServiceError::Unauthenticated(VaultError::InvalidToken));
                }
                // The old token may still work for a moment; a tool call that fails retries.
                Err(e) => {
                    tracing::warn!(grant = %opened.grant, error = %e, "early upstream refresh failed")
                }
            }
        }
        let capabilities = self.policy.capabilities(&opened.grant).await?;
        Ok(Caller {
            account: opened.account,
            grant: opened.grant,
            credential,
            capabilities,
            token: token.clone(),
            renewable: opened.upstream_refresh.is_some(),
        })
    }

    /// Runs a store operation; when the upstream refuses an OAuth credential, renews it once
    /// and runs the operation again.
    async fn with_credential<T, Op, Fut>(&self, caller: &Caller, op: Op) -> Result<T, ServiceError>
    where
        Op: Fn(UpstreamCredential) -> Fut,
        Fut: Future<Output = Result<T, MailStoreError>>,
    {
        match op(caller.credential.clone()).await {
            Err(MailStoreError::Unauthorized) if caller.renewable => {
                let fresh = self
                    .fittings
                    .renewal()
                    .renew(&caller.token, &caller.grant, &caller.credential)
                    .await
                    .map_err(|e| match e {
                        RefreshError::GrantEnded => {
                            ServiceError::Unauthenticated(VaultError::InvalidToken)
                        }
                        RefreshError::NotRefreshable => MailStoreError::Unauthorized.into(),
                        RefreshError::Unavailable(m) => MailStoreError::Unavailable(m).into(),
                    })?;
                Ok(op(fresh).await?)
            }
            other => Ok(other?),
        }
    }

    /// `get_identity`.
    ///
    /// # Errors
    /// See [`ServiceError`].
    pub async fn identity(&self, caller: &Caller) -> Result<IdentityView, ServiceError> {
        require(caller, Capability::Read, "read mail")?;
        let account = self
            .with_credential(
                caller,
                |cred| async move { self.store.account(&cred).await },
            )
            .await?;
        Ok(IdentityView {
            account,
            granted: caller.capabilities.clone(),
            max_attachment_bytes: self.limits.max_attachment_bytes,
        })
    }

    /// `list_mailboxes`.
    ///
    /// # Errors
    /// See [`ServiceError`].
    pub async fn mailboxes(&self, caller: &Caller) -> Result<MailboxDirectory, ServiceError> {
        require(caller, Capability::Read, "read mail")?;
        let mailboxes = self
            .with_credential(
                caller,
                |cred| async move { self.store.mailboxes(&cred).await },
            )
            .await?;
        Ok(MailboxDirectory::new(mailboxes))
    }

    /// `search_email`.
    ///
    /// # Errors
    /// See [`ServiceError`]; bad dates, limits and cursors are [`ServiceError::InvalidArgument`].
    pub async fn search(
        &self,
        caller: &Caller,
        request: &SearchRequest,
    ) -> Result<SearchResult, ServiceError> {
        require(caller, Capability::Read, "read mail")?;
        request.query.validate()?;
        let size = PageSize::new(request.limit)?;
        let cursor = request
            .cursor
            .as_deref()
            .map(|raw| PageCursor::decode(raw, &request.query))
            .transpose()?;
        // Room for the emails at the boundary second that earlier pages returned (skipped
        // below), and for the server's rounding of `before`.
        let extra = cursor.as_ref().map_or(0, |c| {
            u32::try_from(c.seen.len())
                .unwrap_or(u32::MAX)
                .saturating_add(BOUNDARY_SLACK)
        });
        let start = cursor
            .as_ref()
            .map_or(PageStart::First, |c| PageStart::AtOrBefore {
                at: c.at,
                extra,
            });
        let start = &start;
        let page = self
            .with_credential(caller, |cred| async move {
                self.store.search(&cred, &request.query, size, start).await
            })
            .await?;
        let fetched = page.emails.len();
        let asked = (size.size as usize)
            .saturating_add(1)
            .saturating_add(extra as usize);
        let mut candidates: Vec<EmailSummary> = page
            .emails
            .into_iter()
            // Servers round date bounds (Cyrus treats `before` as inclusive; seconds are whole):
            // re-check them so the answer is exactly what the client asked for.
            .filter(|e| request.query.admits_received_at(e.received_at))
            .filter(|e| {
                cursor
                    .as_ref()
                    .is_none_or(|c| e.received_at <= c.at && !c.has_seen(&e.id))
            })
            // The same for the `query` expression (its dates, and negations servers ignore,
            // e.g. Fastmail's `-from:` with a domain): what it certainly excludes is excluded.
            .filter(|e| {
                request
                    .query
                    .expression
                    .as_ref()
                    .is_none_or(|x| admitted(e, &x.expr))
            })
            .collect();
        let more = candidates.len() > size.size as usize || fetched >= asked;
        candidates.truncate(size.size as usize);
        let returned = cursor.as_ref().map_or(0, |c| c.returned) + candidates.len() as u64;
        let next_cursor = if more {
            candidates.last().map(|last| {
                let at = last.received_at;
                let mut seen: Vec<[u8; query::SEEN_DIGEST_BYTES]> = match &cursor {
                    Some(c) if c.at == at => c.seen.clone(),
                    _ => Vec::new(),
                };
                seen.extend(
                    candidates
                        .iter()
                        .filter(|e| e.received_at == at)
                        .map(|e| query::seen_digest(&e.id)),
                );
                PageCursor::new(&request.query, at, seen, returned).encode()
            })
        } else {
            None
        };
        // The total the server counted, as seen from the first page: what earlier pages returned
        // plus what is left (the narrowed query still counts the boundary emails already seen).
        let total = page.total.map(|t| match &cursor {
            None => t,
            Some(c) => c.returned + t.saturating_sub(c.seen.len() as u64),
        });
        Ok(SearchResult {
            emails: candidates,
            directory: MailboxDirectory::new(page.mailboxes),
            total,
            size,
            next_cursor,
        })
    }

    /// `get_email`.
    ///
    /// # Errors
    /// See [`ServiceError`].
    pub async fn email(
        &self,
        caller: &Caller,
        id: &EmailId,
        body_offset: u64,
        max_body_chars: Option<u64>,
        options: body::TextOptions,
    ) -> Result<EmailView, ServiceError> {
        require(caller, Capability::Read, "read mail")?;
        let (email, mailboxes) = self
            .with_credential(
                caller,
                |cred| async move { self.store.email(&cred, id).await },
            )
            .await?;
        let body = body::page_with(
            &email.body,
            body_offset,
            max_body_chars.unwrap_or(body::DEFAULT_BODY_CHARS),
            options,
        );
        Ok(EmailView {
            email,
            directory: MailboxDirectory::new(mailboxes),
            body,
        })
    }

    /// `get_thread`.
    ///
    /// # Errors
    /// See [`ServiceError`].
    pub async fn thread(&self, caller: &Caller, id: &ThreadId) -> Result<ThreadView, ServiceError> {
        require(caller, Capability::Read, "read mail")?;
        let (emails, mailboxes) = self
            .with_credential(
                caller,
                |cred| async move { self.store.thread(&cred, id).await },
            )
            .await?;
        Ok(ThreadView {
            thread_id: id.clone(),
            emails,
            directory: MailboxDirectory::new(mailboxes),
        })
    }

    /// `get_attachment`.
    ///
    /// # Errors
    /// See [`ServiceError`]; a file over the cap is [`MailStoreError::TooLarge`].
    pub async fn attachment(
        &self,
        caller: &Caller,
        email: &EmailId,
        blob: &BlobId,
    ) -> Result<AttachmentView, ServiceError> {
        require(caller, Capability::Read, "read mail")?;
        let limit = self.limits.max_attachment_bytes;
        let content = self
            .with_credential(caller, |cred| async move {
                self.store.attachment(&cred, email, blob, limit).await
            })
            .await?;
        let mut text = text_extract::extract(&content, self.limits.max_attachment_text_chars);
        if text.is_none()
            && self
                .fittings
                .documents()
                .reads(&content.attachment.mime_type)
            && let Some(extracted) = self.fittings.documents().text(&content.bytes).await
        {
            let max = self.limits.max_attachment_text_chars;
            text = Some(ExtractedText {
                truncated: extracted.chars().count() > max,
                text: extracted.chars().take(max).collect(),
            });
        }
        Ok(AttachmentView { content, text })
    }
}

/// A move's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveView {
    /// The target mailbox and the account's others (for its path).
    pub directory: MailboxDirectory,
    /// The target's id.
    pub target: crate::domain::mail::ids::MailboxId,
    /// Per email.
    pub report: ChangeReport,
}

impl<M: MailStore, V: TokenVault, P: Policy, F: Fittings> MailService<M, V, P, F> {
    /// `mark_email_read` and `flag_email`: set or clear a keyword on up to 50 emails.
    ///
    /// # Errors
    /// [`ServiceError::NotPermitted`] without `organize`; bad ids are
    /// [`ServiceError::InvalidArgument`].
    pub async fn set_keyword(
        &self,
        caller: &Caller,
        raw_ids: &[String],
        keyword: Keyword,
        on: bool,
    ) -> Result<ChangeReport, ServiceError> {
        require(
            caller,
            Capability::Organize,
            "change mail (mark read or unread, flag)",
        )?;
        let ids = changes::email_ids(raw_ids)?;
        let ids = &ids;
        self.with_credential(caller, |cred| async move {
            self.store.set_keyword(&cred, ids, keyword, on).await
        })
        .await
    }

    /// `move_email`: move up to 50 emails to an existing mailbox.
    ///
    /// # Errors
    /// [`ServiceError::NotPermitted`] without `organize`; bad ids or an unknown mailbox are
    /// argument or lookup errors.
    pub async fn move_emails(
        &self,
        caller: &Caller,
        raw_ids: &[String],
        to: &str,
    ) -> Result<MoveView, ServiceError> {
        require(caller, Capability::Organize, "move mail")?;
        let ids = changes::email_ids(raw_ids)?;
        let ids = &ids;
        let moved = self
            .with_credential(caller, |cred| async move {
                self.store.move_emails(&cred, ids, to).await
            })
            .await?;
        Ok(MoveView {
            directory: MailboxDirectory::new(moved.mailboxes),
            target: moved.target,
            report: moved.report,
        })
    }
}

/// Whether a hit the server returned for `expr` may match it, judged from the hit (see
/// [`search_syntax::Expr::verdict`]).
fn admitted(e: &EmailSummary, expr: &search_syntax::Expr) -> bool {
    let from: Vec<(&str, Option<&str>)> = e
        .from
        .iter()
        .map(|a| (a.email.as_str(), a.name.as_deref()))
        .collect();
    let facts = search_syntax::HitFacts {
        received_at: e.received_at,
        from: &from,
        unread: e.keywords.is_unread(),
        flagged: e.keywords.is_flagged(),
        has_attachment: e.has_attachment,
    };
    expr.verdict(&facts) != Some(false)
}

fn require(
    caller: &Caller,
    capability: Capability,
    action: &'static str,
) -> Result<(), ServiceError> {
    if caller.capabilities.allows(capability) {
        Ok(())
    } else {
        Err(ServiceError::NotPermitted { capability, action })
    }
}

#[cfg(test)]
mod tests;
