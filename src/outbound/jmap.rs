//! The JMAP adapter of [`MailStore`] (RFC 8620/8621): Fastmail, Cyrus, any compliant server.
//!
//! Each read is one HTTP request: method calls are batched with back-references
//! (`Email/query` → `Email/get`), and the mailbox list rides along for names.

mod changes;
mod compose;
mod convert;
mod push;
mod read_only;
mod retry;
mod session;
mod wire;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use serde_json::{Map, Value, json};

pub use self::read_only::{Fetched, HEADER_PROPERTIES, NotifierMail, ReadCall};
pub use self::session::TransportConfig;
use self::{
    convert::{account_info, email, mailbox, summary},
    session::{CORE, MAIL, MethodResponse, SUBMISSION, Session, Transport},
    wire::{AddressWire, EmailWire, GetResponse, MailboxWire, QueryResponse, ThreadWire},
};
use crate::domain::{
    approval::DraftSnapshot,
    changes::{ChangeReport, Keyword},
    compose::{CreatedDraft, Identity, NewDraft},
    grant::UpstreamCredential,
    ids::{BlobId, EmailId, ThreadId},
    mail::{AccountInfo, AttachmentContent, Email, EmailSummary, Mailbox},
    mailboxes::MailboxDirectory,
    notify::ChangeFeed,
    ports::{MailStore, MailStoreError, MoveResult, PageStart, PushChannel, SearchPage},
    query::{EmailQuery, PageSize},
    search_syntax::{Expr, Term},
    submission::{Refusal, Submission, SubmissionStatus},
};

/// Most emails one search request fetches (a page plus those skipped at its boundary).
pub const MAX_FETCH: u32 = 500;

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
/// Properties fetched for each search hit or thread member.
pub const SUMMARY_PROPERTIES: &[&str] = &[
    "id",
    "threadId",
    "mailboxIds",
    "keywords",
    "receivedAt",
    "sentAt",
    "from",
    "to",
    "subject",
    "preview",
    "hasAttachment",
];
/// Properties `get_email` fetches besides [`SUMMARY_PROPERTIES`].
const EMAIL_EXTRA_PROPERTIES: &[&str] = &[
    "cc",
    "bcc",
    "sender",
    "replyTo",
    "messageId",
    "inReplyTo",
    "references",
    "attachments",
    "textBody",
    "htmlBody",
    "bodyValues",
];

/// Properties fetched for `get_email`: a summary's and the full headers and body.
#[must_use]
pub fn email_properties() -> Vec<&'static str> {
    [SUMMARY_PROPERTIES, EMAIL_EXTRA_PROPERTIES].concat()
}
/// Largest body value fetched; the tool pages through it (get_email `body_offset`).
pub const MAX_BODY_VALUE_BYTES: u64 = 4 * 1024 * 1024;

/// A JMAP server as the mail store.
#[derive(Debug)]
pub struct JmapMailStore {
    transport: Transport,
    /// Last mailbox list per account, so a mailbox named in a search resolves without an
    /// extra request; every batch that includes `Mailbox/get` refreshes it.
    mailboxes: Mutex<HashMap<String, Arc<Vec<Mailbox>>>>,
}

impl JmapMailStore {
    /// A store for the server at `config.session_url`.
    ///
    /// # Errors
    /// [`MailStoreError::Unavailable`] when the HTTP client can't be built.
    pub fn new(config: TransportConfig) -> Result<Self, MailStoreError> {
        Ok(Self {
            transport: Transport::new(config)?,
            mailboxes: Mutex::new(HashMap::new()),
        })
    }

    /// HTTP requests sent to the mail server so far.
    #[must_use]
    pub fn upstream_requests(&self) -> u64 {
        self.transport.requests_sent()
    }

    fn cached_mailboxes(&self, session: &Session) -> Option<Arc<Vec<Mailbox>>> {
        self.mailboxes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&cache_key(session))
            .cloned()
    }

    fn remember_mailboxes(&self, session: &Session, list: &[Mailbox]) {
        let mut cache = self
            .mailboxes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= 10_000 {
            cache.clear();
        }
        cache.insert(cache_key(session), Arc::new(list.to_vec()));
    }

    /// Runs `calls` (with `Mailbox/get` appended) and returns the other responses and the list.
    async fn call_with_mailboxes(
        &self,
        cred: &UpstreamCredential,
        session: &Session,
        mut calls: Vec<Value>,
    ) -> Result<(Vec<MethodResponse>, Vec<Mailbox>), MailStoreError> {
        calls.push(json!(["Mailbox/get", {"accountId": session.account_id, "properties": MAILBOX_PROPERTIES}, "mailboxes"]));
        let mut responses = self
            .transport
            .call(cred, session, &[CORE, MAIL], calls)
            .await?;
        let (_, args) = responses
            .pop()
            .ok_or_else(|| MailStoreError::Protocol("missing Mailbox/get response".into()))?;
        let list = decode::<GetResponse<MailboxWire>>("Mailbox/get", &args)?
            .list
            .into_iter()
            .filter_map(mailbox)
            .collect::<Vec<_>>();
        self.remember_mailboxes(session, &list);
        Ok((responses, list))
    }

    /// The mailbox id a search names, from the cached list or (once) a fresh one.
    async fn resolve_mailbox(
        &self,
        cred: &UpstreamCredential,
        session: &Session,
        given: &str,
    ) -> Result<String, MailStoreError> {
        if let Some(cached) = self.cached_mailboxes(session)
            && let Ok(entry) = MailboxDirectory::new(cached.to_vec()).resolve(given)
        {
            return Ok(entry.mailbox.id.as_str().to_owned());
        }
        let (_, fresh) = self.call_with_mailboxes(cred, session, Vec::new()).await?;
        let directory = MailboxDirectory::new(fresh);
        Ok(directory.resolve(given)?.mailbox.id.as_str().to_owned())
    }
}

fn cache_key(session: &Session) -> String {
    format!("{}\u{0}{}", session.api_url, session.account_id)
}

fn decode<T: serde::de::DeserializeOwned>(
    method: &str,
    args: &serde_json::value::RawValue,
) -> Result<T, MailStoreError> {
    serde_json::from_str(args.get()).map_err(|e| MailStoreError::Protocol(format!("{method}: {e}")))
}

fn take(
    responses: &mut Vec<MethodResponse>,
    method: &str,
) -> Result<Box<serde_json::value::RawValue>, MailStoreError> {
    let index = responses
        .iter()
        .position(|(name, _)| name == method)
        .ok_or_else(|| MailStoreError::Protocol(format!("missing {method} response")))?;
    Ok(responses.remove(index).1)
}

/// The JMAP filter of a search-box expression; `in:` names resolved in `mailbox_ids`.
fn expression_filter(expr: &Expr, mailbox_ids: &HashMap<String, String>) -> Value {
    let op = |operator: &str, items: &[Expr]| json!({"operator": operator, "conditions": items.iter().map(|e| expression_filter(e, mailbox_ids)).collect::<Vec<_>>()});
    let time = |t: &chrono::DateTime<chrono::Utc>| {
        json!(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    };
    match expr {
        Expr::And(items) => op("AND", items),
        Expr::Or(items) => op("OR", items),
        Expr::Not(inner) => op("NOT", std::slice::from_ref(inner)),
        Expr::Term(term) => match term {
            Term::Text(v) => json!({"text": v}),
            Term::From(v) => json!({"from": v}),
            Term::To(v) => {
                json!({"operator": "OR", "conditions": [{"to": v}, {"cc": v}, {"bcc": v}]})
            }
            Term::Cc(v) => json!({"cc": v}),
            Term::Bcc(v) => json!({"bcc": v}),
            Term::Subject(v) => json!({"subject": v}),
            Term::In(name) => {
                json!({"inMailbox": mailbox_ids.get(name).cloned().unwrap_or_default()})
            }
            Term::Unread => json!({"notKeyword": "$seen"}),
            Term::Read => json!({"hasKeyword": "$seen"}),
            Term::Flagged => json!({"hasKeyword": "$flagged"}),
            Term::HasAttachment => json!({"hasAttachment": true}),
            Term::After(t) => json!({"after": time(t)}),
            Term::Before(t) => json!({"before": time(t)}),
        },
    }
}

/// The JMAP filter for a query (RFC 8621 §4.4.1); `to` covers To, Cc and Bcc.
fn filter(
    query: &EmailQuery,
    mailbox_id: Option<&str>,
    mailbox_ids: &HashMap<String, String>,
) -> Value {
    let mut cond = Map::new();
    let mut put = |key: &str, value: Value| {
        cond.insert(key.to_owned(), value);
    };
    if let Some(text) = &query.text {
        put("text", json!(text));
    }
    if let Some(from) = &query.from {
        put("from", json!(from));
    }
    if let Some(subject) = &query.subject {
        put("subject", json!(subject));
    }
    if let Some(id) = mailbox_id {
        put("inMailbox", json!(id));
    }
    match query.unread {
        Some(true) => put("notKeyword", json!("$seen")),
        Some(false) => put("hasKeyword", json!("$seen")),
        None => {}
    }
    if let Some(has) = query.has_attachment {
        put("hasAttachment", json!(has));
    }
    if let Some(after) = query.after {
        put(
            "after",
            json!(after.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        );
    }
    if let Some(before) = query.before {
        put(
            "before",
            json!(before.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        );
    }
    let mut conditions = vec![Value::Object(cond)];
    // A condition holds one hasKeyword/notKeyword; a second keyword test needs its own.
    match query.flagged {
        Some(true) => conditions.push(json!({"hasKeyword": "$flagged"})),
        Some(false) => conditions.push(json!({"notKeyword": "$flagged"})),
        None => {}
    }
    if let Some(to) = &query.to {
        conditions
            .push(json!({"operator": "OR", "conditions": [{"to": to}, {"cc": to}, {"bcc": to}]}));
    }
    if let Some(expression) = &query.expression {
        conditions.push(expression_filter(&expression.expr, mailbox_ids));
    }
    if conditions.len() == 1 {
        conditions.remove(0)
    } else {
        json!({"operator": "AND", "conditions": conditions})
    }
}

impl JmapMailStore {
    /// Reads the state of `ids` and applies the patch `patch_for` gives each (none: already
    /// so), retrying throttled ids; the state read and the first `Email/set` share one request.
    async fn change(
        &self,
        cred: &UpstreamCredential,
        session: &Session,
        ids: &[EmailId],
        patch_for: impl Fn(&changes::States, &EmailId) -> Option<Value>,
    ) -> Result<ChangeReport, MailStoreError> {
        let account = session.account_id.clone();
        let mut responses = self
            .transport
            .call(
                cred,
                session,
                &[CORE, MAIL],
                vec![changes::state_call(&account, ids)],
            )
            .await?;
        let states = changes::States::decode(&take(&mut responses, "Email/get")?)?;
        let mut patches = Map::new();
        for id in ids {
            if let Some(patch) = patch_for(&states, id) {
                patches.insert(id.as_str().to_owned(), patch);
            }
        }
        let applied = changes::apply(patches.clone(), |batch| {
            self.transport.call(
                cred,
                session,
                &[CORE, MAIL],
                vec![changes::set_call(&account, &batch)],
            )
        })
        .await?;
        Ok(changes::report(
            ids,
            |id| states.mailboxes(id).is_some(),
            |id| !patches.contains_key(id.as_str()),
            applied,
        ))
    }
}

impl JmapMailStore {
    /// The Drafts and Sent mailbox ids (by role), from the cached list or a fresh one.
    async fn drafts_and_sent(
        &self,
        cred: &UpstreamCredential,
        session: &Session,
    ) -> Result<(String, Option<String>), MailStoreError> {
        let find = |list: &[Mailbox], role: &str| {
            list.iter()
                .find(|m| m.role.as_ref().is_some_and(|r| r.as_str() == role))
                .map(|m| m.id.as_str().to_owned())
        };
        let list = match self.cached_mailboxes(session) {
            Some(list) if find(&list, "drafts").is_some() => list.to_vec(),
            _ => self.call_with_mailboxes(cred, session, Vec::new()).await?.1,
        };
        let drafts = find(&list, "drafts").ok_or_else(|| {
            MailStoreError::NotFound(
                "the mailbox has no Drafts folder (no mailbox with the drafts role)".into(),
            )
        })?;
        Ok((drafts, find(&list, "sent")))
    }

    /// A submission as the server has it.
    async fn submission_wire(
        &self,
        cred: &UpstreamCredential,
        session: &Session,
        id: &str,
    ) -> Result<compose::SubmissionWire, MailStoreError> {
        let calls = vec![
            json!(["EmailSubmission/get", {"accountId": session.account_id, "ids": [id]}, "status"]),
        ];
        let mut responses = self
            .transport
            .call(cred, session, &[CORE, MAIL, SUBMISSION], calls)
            .await?;
        decode::<GetResponse<compose::SubmissionWire>>(
            "EmailSubmission/get",
            &take(&mut responses, "EmailSubmission/get")?,
        )?
        .list
        .into_iter()
        .next()
        .ok_or_else(|| {
            MailStoreError::NotFound(format!(
                "there is no pending or recent submission {id} (cancelled submissions are gone)"
            ))
        })
    }

    /// After a cancel: when the draft back in Drafts was a Bcc-less copy (its envelope named
    /// people its headers don't), puts the Bcc back — as a new draft, since JMAP emails can't
    /// change — so sending it again reaches everyone it was meant to. Returns the draft.
    async fn restore_bcc(
        &self,
        cred: &UpstreamCredential,
        session: &Session,
        drafts: &str,
        email: &EmailId,
        envelope: &[String],
    ) -> Result<EmailId, MailStoreError> {
        let snapshot = self.draft(cred, email).await?;
        let mut known: Vec<String> = snapshot
            .to
            .iter()
            .chain(&snapshot.cc)
            .chain(&snapshot.bcc)
            .map(|a| a.email.to_ascii_lowercase())
            .collect();
        let mut bcc: Vec<crate::domain::mail::Address> = Vec::new();
        for e in envelope {
            let lower = e.to_ascii_lowercase();
            if !known.contains(&lower) {
                known.push(lower);
                bcc.push(crate::domain::mail::Address {
                    name: None,
                    email: e.clone(),
                });
            }
        }
        if bcc.is_empty() {
            return Ok(email.clone());
        }
        let calls = vec![compose::restore_bcc_call(
            &session.account_id,
            drafts,
            &snapshot,
            &bcc,
        )];
        let mut responses = self
            .transport
            .call(cred, session, &[CORE, MAIL], calls)
            .await?;
        let restored = decode::<compose::SetResponse<compose::CreatedWire>>(
            "Email/set",
            &take(&mut responses, "Email/set")?,
        )?
        .created("restored")?;
        let restored = EmailId::parse(restored.id)
            .map_err(|e| MailStoreError::Protocol(format!("restored draft id: {e}")))?;
        // Only once the draft with the Bcc exists does the copy go.
        self.destroy_quietly(cred, session, email.as_str()).await;
        Ok(restored)
    }

    /// Destroys an email, logging (not failing) when the server won't: used to tidy up.
    async fn destroy_quietly(&self, cred: &UpstreamCredential, session: &Session, id: &str) {
        let calls =
            vec![json!(["Email/set", {"accountId": session.account_id, "destroy": [id]}, "tidy"])];
        let outcome = match self
            .transport
            .call(cred, session, &[CORE, MAIL], calls)
            .await
        {
            Ok(mut responses) => take(&mut responses, "Email/set")
                .and_then(|raw| decode::<compose::SetResponse<Value>>("Email/set", &raw))
                .and_then(|mut set| set.destroyed(id)),
            Err(e) => Err(e),
        };
        if let Err(e) = outcome {
            tracing::warn!(error = %e, "could not remove an email left over from sending");
        }
    }

    /// The longest the server holds a submission (`maxDelayedSend`), if it says.
    fn max_delayed_send(session: &Session) -> Option<u64> {
        session
            .wire
            .accounts
            .get(&session.account_id)
            .and_then(|a| a.account_capabilities.get(SUBMISSION))
            .and_then(|c| c.get("maxDelayedSend"))
            .and_then(Value::as_u64)
    }
}

impl MailStore for JmapMailStore {
    async fn identities(&self, cred: &UpstreamCredential) -> Result<Vec<Identity>, MailStoreError> {
        let session = self.transport.session(cred).await?;
        if !session.wire.capabilities.contains_key(SUBMISSION) {
            return Ok(Vec::new());
        }
        let calls = vec![json!(["Identity/get", {"accountId": session.account_id}, "identities"])];
        let mut responses = self
            .transport
            .call(cred, &session, &[CORE, MAIL, SUBMISSION], calls)
            .await?;
        Ok(decode::<GetResponse<compose::IdentityWire>>(
            "Identity/get",
            &take(&mut responses, "Identity/get")?,
        )?
        .list
        .into_iter()
        .map(compose::identity)
        .collect())
    }

    async fn create_draft(
        &self,
        cred: &UpstreamCredential,
        draft: &NewDraft,
    ) -> Result<CreatedDraft, MailStoreError> {
        let session = self.transport.session(cred).await?;
        let (drafts, _) = self.drafts_and_sent(cred, &session).await?;
        let calls = vec![compose::create_call(&session.account_id, &drafts, draft)];
        let mut responses = self
            .transport
            .call(cred, &session, &[CORE, MAIL], calls)
            .await?;
        let mut set: compose::SetResponse<compose::CreatedWire> =
            decode("Email/set", &take(&mut responses, "Email/set")?)?;
        let created = set.created("draft")?;
        if let Some(old) = &draft.replaces
            && let Err(e) = set.destroyed(old.as_str())
        {
            tracing::warn!(error = %e, "the replaced draft was not destroyed");
        }
        Ok(CreatedDraft {
            id: EmailId::parse(created.id).map_err(|e| MailStoreError::Protocol(e.to_string()))?,
            thread_id: ThreadId::parse(created.thread_id.unwrap_or_default())
                .map_err(|e| MailStoreError::Protocol(e.to_string()))?,
        })
    }

    async fn draft(
        &self,
        cred: &UpstreamCredential,
        id: &EmailId,
    ) -> Result<DraftSnapshot, MailStoreError> {
        let session = self.transport.session(cred).await?;
        let calls = vec![json!(["Email/get", {
            "accountId": session.account_id,
            "ids": [id.as_str()],
            "properties": compose::DRAFT_PROPERTIES,
            "fetchAllBodyValues": true,
            "maxBodyValueBytes": MAX_BODY_VALUE_BYTES,
        }, "draft"])];
        let (mut responses, mailboxes) = self.call_with_mailboxes(cred, &session, calls).await?;
        let drafts = mailboxes
            .iter()
            .find(|m| m.role.as_ref().is_some_and(|r| r.as_str() == "drafts"))
            .map(|m| m.id.as_str().to_owned());
        let wire = decode::<GetResponse<wire::EmailWire>>(
            "Email/get",
            &take(&mut responses, "Email/get")?,
        )?
        .list
        .into_iter()
        .next()
        .ok_or_else(|| MailStoreError::NotFound(format!("there is no email with id {id}")))?;
        compose::snapshot(wire, drafts.as_deref())
    }

    async fn delete_draft(
        &self,
        cred: &UpstreamCredential,
        id: &EmailId,
    ) -> Result<(), MailStoreError> {
        let session = self.transport.session(cred).await?;
        let (drafts, _) = self.drafts_and_sent(cred, &session).await?;
        let calls = vec![json!(["Email/get", {
            "accountId": session.account_id, "ids": [id.as_str()],
            "properties": ["id", "mailboxIds", "keywords"],
        }, "check"])];
        let mut responses = self
            .transport
            .call(cred, &session, &[CORE, MAIL], calls)
            .await?;
        let checked = decode::<GetResponse<wire::EmailWire>>(
            "Email/get",
            &take(&mut responses, "Email/get")?,
        )?;
        let state = checked.state;
        let found =
            checked.list.into_iter().next().ok_or_else(|| {
                MailStoreError::NotFound(format!("there is no email with id {id}"))
            })?;
        if found.mailbox_ids.get(&drafts) != Some(&true)
            || found.keywords.get("$draft") != Some(&true)
        {
            return Err(MailStoreError::Refused(Refusal::NotADraft));
        }
        // Destroyed only if nothing changed since the check (ifInState).
        let calls = vec![json!(["Email/set", {
            "accountId": session.account_id, "ifInState": state, "destroy": [id.as_str()],
        }, "destroy"])];
        let mut responses = self
            .transport
            .call(cred, &session, &[CORE, MAIL], calls)
            .await
            .map_err(|e| match e {
                MailStoreError::Rejected { kind, .. } if kind == "stateMismatch" => {
                    MailStoreError::Rejected {
                        kind,
                        description: Some("the mailbox changed meanwhile; try again".into()),
                    }
                }
                other => other,
            })?;
        decode::<compose::SetResponse<Value>>("Email/set", &take(&mut responses, "Email/set")?)?
            .destroyed(id.as_str())
    }

    async fn submit(
        &self,
        cred: &UpstreamCredential,
        submission: &Submission,
    ) -> Result<SubmissionStatus, MailStoreError> {
        if submission.rcpt_to.is_empty() {
            // Servers answer an empty envelope with invalidProperties: it is this.
            return Err(MailStoreError::Refused(Refusal::NoRecipients));
        }
        let session = self.transport.session(cred).await?;
        if let (Some(hold), Some(max)) = (submission.hold_secs, Self::max_delayed_send(&session))
            && hold > max
        {
            return Err(MailStoreError::Refused(Refusal::DelayTooLong(Some(max))));
        }
        let (drafts, sent) = self.drafts_and_sent(cred, &session).await?;
        let account = session.account_id.clone();
        let mut waited = std::time::Duration::ZERO;
        for attempt in 1..=retry::ATTEMPTS {
            let mut calls = Vec::new();
            let email = match &submission.without_bcc {
                Some(draft) => {
                    calls.push(compose::copy_call(&account, &drafts, draft));
                    "#copy".to_owned()
                }
                None => submission.email.as_str().to_owned(),
            };
            calls.push(compose::submit_call(
                &account,
                submission,
                &email,
                &drafts,
                sent.as_deref(),
            ));
            // Exactly once: a 5xx or a lost answer may come after the server sent, so it is an
            // unknown outcome, never a retry.
            let responses = self
                .transport
                .call_exactly_once(cred, &session, &[CORE, MAIL, SUBMISSION], calls)
                .await
                .map_err(|e| match e {
                    e @ (MailStoreError::Unauthorized
                    | MailStoreError::NotFound(_)
                    | MailStoreError::Rejected { .. }) => e,
                    other => MailStoreError::Unavailable(format!(
                        "{other}; whether it was sent is unknown"
                    )),
                })?;
            let by_id = |id: &str| responses.iter().find(|(_, _, call)| call == id);
            let copy = match by_id("copy") {
                Some((name, args, _)) if name == "Email/set" => {
                    decode::<compose::SetResponse<compose::CreatedWire>>("Email/set", args)?
                        .created("copy")
                        .ok()
                        .map(|c| c.id)
                }
                _ => None,
            };
            // The submission's own answer decides, whatever the calls around it said (the
            // implicit Email/set of onSuccessUpdateEmail may fail after the message left).
            let outcome = match by_id("submit") {
                Some((name, args, _)) if name == "EmailSubmission/set" => {
                    decode::<compose::SetResponse<compose::SubmissionWire>>(
                        "EmailSubmission/set",
                        args,
                    )?
                    .created("send")
                }
                Some((name, args, _)) if name == "error" => Err(session::method_error_of(args)),
                _ => Err(MailStoreError::Unavailable(
                    "the mail server did not answer the submission; whether it was sent is unknown"
                        .into(),
                )),
            };
            match outcome {
                Ok(sent) => {
                    let sent_email = match copy {
                        // The copy went; the draft with the Bcc header is no longer needed.
                        Some(copy) => {
                            self.destroy_quietly(cred, &session, submission.email.as_str())
                                .await;
                            EmailId::parse(copy).ok()
                        }
                        None => Some(submission.email.clone()),
                    };
                    return Ok(compose::submission(sent, sent_email.as_ref()));
                }
                Err(e) => {
                    if let Some(copy) = &copy {
                        self.destroy_quietly(cred, &session, copy).await;
                    }
                    // Only a rateLimit SetError says for sure that nothing was sent: retried.
                    let pause = retry::delay(attempt, None);
                    match e {
                        MailStoreError::RateLimited { .. }
                            if attempt < retry::ATTEMPTS && waited + pause <= retry::MAX_WAIT =>
                        {
                            tokio::time::sleep(pause).await;
                            waited += pause;
                        }
                        other => return Err(other),
                    }
                }
            }
        }
        Err(MailStoreError::RateLimited { retry_after: None })
    }

    async fn cancel_submission(
        &self,
        cred: &UpstreamCredential,
        id: &str,
    ) -> Result<EmailId, MailStoreError> {
        let session = self.transport.session(cred).await?;
        let wire = self.submission_wire(cred, &session, id).await?;
        // Who the envelope named: a Bcc-less copy's Bcc recipients are only there.
        let envelope: Vec<String> = wire
            .envelope
            .as_ref()
            .map(|e| e.rcpt_to.iter().map(|a| a.email.clone()).collect())
            .unwrap_or_default();
        let status = compose::submission(wire, None);
        let email = status.email.clone().ok_or_else(|| {
            MailStoreError::Protocol("the submission does not name its email".into())
        })?;
        if status.undo_status != crate::domain::submission::UndoStatus::Pending {
            return Err(MailStoreError::Refused(Refusal::CannotUnsend));
        }
        let (drafts, sent) = self.drafts_and_sent(cred, &session).await?;
        let calls = vec![json!(["EmailSubmission/set", {
            "accountId": session.account_id,
            "update": {id: {"undoStatus": "canceled"}},
            "onSuccessUpdateEmail": {id: compose::back_to_drafts(&drafts, sent.as_deref())},
        }, "cancel"])];
        let mut responses = self
            .transport
            .call(cred, &session, &[CORE, MAIL, SUBMISSION], calls)
            .await?;
        decode::<compose::SetResponse<Value>>(
            "EmailSubmission/set",
            &take(&mut responses, "EmailSubmission/set")?,
        )?
        .updated(id)?;
        // Cancelled: that stands whatever happens next. Putting the Bcc back is best effort
        // (the copy without it is then what comes back, as before).
        match self
            .restore_bcc(cred, &session, &drafts, &email, &envelope)
            .await
        {
            Ok(restored) => Ok(restored),
            Err(e) => {
                tracing::warn!(error = %e, "the Bcc of a cancelled send was not restored");
                Ok(email)
            }
        }
    }

    async fn changes_since(
        &self,
        cred: &UpstreamCredential,
        state: Option<String>,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<ChangeFeed, MailStoreError> {
        let session = self.transport.session(cred).await?;
        let feed = read_only::change_feed(
            &self.transport,
            cred,
            &session,
            state.as_deref(),
            since,
            read_only::Fetched::Summaries,
        )
        .await?;
        self.remember_mailboxes(&session, &feed.mailboxes);
        Ok(feed)
    }

    async fn open_push(
        &self,
        cred: &UpstreamCredential,
        ping: std::time::Duration,
    ) -> Result<Option<PushChannel>, MailStoreError> {
        read_only::open_push(&self.transport, cred, ping).await
    }

    async fn written_to(
        &self,
        cred: &UpstreamCredential,
        addresses: &[String],
    ) -> Result<Vec<String>, MailStoreError> {
        let session = self.transport.session(cred).await?;
        let (_, sent) = self.drafts_and_sent(cred, &session).await?;
        let Some(sent) = sent else {
            return Ok(Vec::new());
        };
        // One request: per address, the Sent mail whose To/Cc/Bcc text matches it (a search
        // matches words, so the hits are checked exactly below), with the identities.
        let mut calls: Vec<Value> =
            vec![json!(["Identity/get", {"accountId": session.account_id}, "identities"])];
        for (i, a) in addresses.iter().enumerate() {
            calls.push(json!(["Email/query", {
                "accountId": session.account_id,
                "filter": {"operator": "AND", "conditions": [
                    {"inMailbox": sent},
                    {"operator": "OR", "conditions": [{"to": a}, {"cc": a}, {"bcc": a}]},
                ]},
                "limit": 25,
            }, format!("q{i}")]));
            calls.push(json!(["Email/get", {
                "accountId": session.account_id,
                "#ids": {"resultOf": format!("q{i}"), "name": "Email/query", "path": "/ids"},
                "properties": ["id", "keywords", "from", "to", "cc", "bcc"],
            }, format!("g{i}")]));
        }
        if addresses.is_empty() {
            return Ok(Vec::new());
        }
        let mut responses = self
            .transport
            .call(cred, &session, &[CORE, MAIL, SUBMISSION], calls)
            .await?;
        let identities: Vec<Identity> = decode::<GetResponse<compose::IdentityWire>>(
            "Identity/get",
            &take(&mut responses, "Identity/get")?,
        )?
        .list
        .into_iter()
        .map(compose::identity)
        .collect();
        let gets = responses.iter().filter(|(name, _)| name == "Email/get");
        let mut found = Vec::new();
        for ((_, args), address) in gets.zip(addresses) {
            let hits = decode::<GetResponse<EmailWire>>("Email/get", args)?.list;
            // Mail the person sent: from one of their identities, not a draft, and addressed
            // to exactly this address (a word match like john.smith@ for smith@ doesn't count).
            let wrote = hits.into_iter().any(|e| {
                let sent_by_them = e
                    .from
                    .iter()
                    .flatten()
                    .filter_map(|a| a.email.as_deref())
                    .any(|f| identities.iter().any(|i| i.covers(f)));
                let to_them = [&e.to, &e.cc, &e.bcc]
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter_map(|a| a.email.as_deref())
                    .any(|r| r.eq_ignore_ascii_case(address));
                sent_by_them && to_them && e.keywords.get("$draft") != Some(&true)
            });
            if wrote {
                found.push(address.clone());
            }
        }
        Ok(found)
    }

    async fn submission(
        &self,
        cred: &UpstreamCredential,
        id: &str,
    ) -> Result<SubmissionStatus, MailStoreError> {
        let session = self.transport.session(cred).await?;
        let wire = self.submission_wire(cred, &session, id).await?;
        Ok(compose::submission(wire, None))
    }

    async fn account(&self, cred: &UpstreamCredential) -> Result<AccountInfo, MailStoreError> {
        let session = self.transport.session(cred).await?;
        let identities = if session.wire.capabilities.contains_key(SUBMISSION) {
            let calls =
                vec![json!(["Identity/get", {"accountId": session.account_id}, "identities"])];
            let mut responses = self
                .transport
                .call(cred, &session, &[CORE, MAIL, SUBMISSION], calls)
                .await?;
            decode::<GetResponse<AddressWire>>(
                "Identity/get",
                &take(&mut responses, "Identity/get")?,
            )?
            .list
        } else {
            Vec::new()
        };
        Ok(account_info(&session, identities))
    }

    async fn set_keyword(
        &self,
        cred: &UpstreamCredential,
        ids: &[EmailId],
        keyword: Keyword,
        on: bool,
    ) -> Result<ChangeReport, MailStoreError> {
        let session = self.transport.session(cred).await?;
        let name = keyword.as_jmap();
        self.change(cred, &session, ids, |states, id| {
            let has = states.has_keyword(id, name)?;
            (has != on).then(|| json!({ format!("keywords/{name}"): if on { json!(true) } else { Value::Null } }))
        })
        .await
    }

    async fn move_emails(
        &self,
        cred: &UpstreamCredential,
        ids: &[EmailId],
        to: &str,
    ) -> Result<MoveResult, MailStoreError> {
        let session = self.transport.session(cred).await?;
        let target = self.resolve_mailbox(cred, &session, to).await?;
        let report = self
            .change(cred, &session, ids, |states, id| {
                let current = states.mailboxes(id)?;
                if current.len() == 1 && current[0] == target {
                    return None;
                }
                // One patch leaves every other mailbox and enters the target: an archive is
                // "out of Inbox, into Archive" in one change, never a bare removal.
                let mut patch = Map::new();
                for mailbox in current.iter().filter(|m| **m != target) {
                    patch.insert(format!("mailboxIds/{mailbox}"), Value::Null);
                }
                patch.insert(format!("mailboxIds/{target}"), json!(true));
                Some(Value::Object(patch))
            })
            .await?;
        let mailboxes = self
            .cached_mailboxes(&session)
            .map(|m| m.to_vec())
            .unwrap_or_default();
        Ok(MoveResult {
            target: crate::domain::ids::MailboxId::parse(target.clone())
                .map_err(|e| MailStoreError::Protocol(e.to_string()))?,
            mailboxes,
            report,
        })
    }

    async fn mailboxes(&self, cred: &UpstreamCredential) -> Result<Vec<Mailbox>, MailStoreError> {
        let session = self.transport.session(cred).await?;
        let (_, list) = self.call_with_mailboxes(cred, &session, Vec::new()).await?;
        Ok(list)
    }

    async fn search(
        &self,
        cred: &UpstreamCredential,
        query: &EmailQuery,
        size: PageSize,
        start: &PageStart,
    ) -> Result<SearchPage, MailStoreError> {
        let session = self.transport.session(cred).await?;
        let mailbox_id = match &query.mailbox {
            Some(given) => Some(self.resolve_mailbox(cred, &session, given).await?),
            None => None,
        };
        let mut mailbox_ids = HashMap::new();
        for name in query.expression.iter().flat_map(|e| e.expr.mailboxes()) {
            if !mailbox_ids.contains_key(name) {
                let id = self.resolve_mailbox(cred, &session, name).await?;
                mailbox_ids.insert(name.to_owned(), id);
            }
        }
        let mut filter = filter(query, mailbox_id.as_deref(), &mailbox_ids);
        let mut limit = size.size + 1;
        if let PageStart::AtOrBefore { at, extra } = start {
            // Strictly before the next second: at or before `at` (some servers, Cyrus among them,
            // read `before` as inclusive; the caller re-checks).
            let bound = (*at + chrono::Duration::seconds(1))
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            filter = json!({"operator": "AND", "conditions": [filter, {"before": bound}]});
            limit = limit.saturating_add(*extra).min(MAX_FETCH);
        }
        let args = json!({
            "accountId": session.account_id,
            "filter": filter,
            "sort": [{"property": "receivedAt", "isAscending": false}],
            "collapseThreads": false,
            "calculateTotal": true,
            "limit": limit,
        });
        let calls = vec![
            json!(["Email/query", args, "query"]),
            json!(["Email/get", {
                "accountId": session.account_id,
                "#ids": {"resultOf": "query", "name": "Email/query", "path": "/ids"},
                "properties": SUMMARY_PROPERTIES,
            }, "emails"]),
        ];
        let (mut responses, mailboxes) = self.call_with_mailboxes(cred, &session, calls).await?;
        let page: QueryResponse = decode("Email/query", &take(&mut responses, "Email/query")?)?;
        let emails =
            decode::<GetResponse<EmailWire>>("Email/get", &take(&mut responses, "Email/get")?)?
                .list
                .into_iter()
                .filter_map(summary)
                .collect();
        Ok(SearchPage {
            emails,
            mailboxes,
            total: page.total,
            position: page.position,
        })
    }

    async fn email(
        &self,
        cred: &UpstreamCredential,
        id: &EmailId,
    ) -> Result<(Email, Vec<Mailbox>), MailStoreError> {
        let session = self.transport.session(cred).await?;
        let calls = vec![json!(["Email/get", {
            "accountId": session.account_id,
            "ids": [id.as_str()],
            "properties": email_properties(),
            "fetchTextBodyValues": true,
            "fetchHTMLBodyValues": true,
            "maxBodyValueBytes": MAX_BODY_VALUE_BYTES,
        }, "email"])];
        let (mut responses, mailboxes) = self.call_with_mailboxes(cred, &session, calls).await?;
        let found =
            decode::<GetResponse<EmailWire>>("Email/get", &take(&mut responses, "Email/get")?)?
                .list
                .into_iter()
                .find_map(email)
                .ok_or_else(|| {
                    MailStoreError::NotFound(format!("there is no email with id {id}"))
                })?;
        Ok((found, mailboxes))
    }

    async fn thread(
        &self,
        cred: &UpstreamCredential,
        id: &ThreadId,
    ) -> Result<(Vec<EmailSummary>, Vec<Mailbox>), MailStoreError> {
        let session = self.transport.session(cred).await?;
        let calls = vec![
            json!(["Thread/get", {"accountId": session.account_id, "ids": [id.as_str()]}, "thread"]),
            json!(["Email/get", {
                "accountId": session.account_id,
                "#ids": {"resultOf": "thread", "name": "Thread/get", "path": "/list/*/emailIds"},
                "properties": SUMMARY_PROPERTIES,
            }, "emails"]),
        ];
        let (mut responses, mailboxes) = self.call_with_mailboxes(cred, &session, calls).await?;
        let threads =
            decode::<GetResponse<ThreadWire>>("Thread/get", &take(&mut responses, "Thread/get")?)?;
        let Some(order) = threads.list.into_iter().next().map(|t| t.email_ids) else {
            return Err(MailStoreError::NotFound(format!(
                "there is no thread with id {id}"
            )));
        };
        let mut emails: Vec<EmailSummary> =
            decode::<GetResponse<EmailWire>>("Email/get", &take(&mut responses, "Email/get")?)?
                .list
                .into_iter()
                .filter_map(summary)
                .collect();
        // Thread/get lists ids oldest first (RFC 8620 §3 of 8621); keep that order.
        emails.sort_by_key(|e| {
            order
                .iter()
                .position(|id| id == e.id.as_str())
                .unwrap_or(usize::MAX)
        });
        Ok((emails, mailboxes))
    }

    async fn attachment(
        &self,
        cred: &UpstreamCredential,
        email_id: &EmailId,
        blob: &BlobId,
        max_bytes: u64,
    ) -> Result<AttachmentContent, MailStoreError> {
        let session = self.transport.session(cred).await?;
        // Two requests by design: the metadata call proves the blob belongs to this email and
        // gives its size, so an oversized file is refused before any byte is downloaded.
        let calls = vec![json!(["Email/get", {
            "accountId": session.account_id,
            "ids": [email_id.as_str()],
            "properties": ["id", "attachments"],
        }, "email"])];
        let mut responses = self
            .transport
            .call(cred, &session, &[CORE, MAIL], calls)
            .await?;
        let found =
            decode::<GetResponse<EmailWire>>("Email/get", &take(&mut responses, "Email/get")?)?
                .list
                .into_iter()
                .next()
                .ok_or_else(|| {
                    MailStoreError::NotFound(format!("there is no email with id {email_id}"))
                })?;
        let attachment = found
            .attachments
            .unwrap_or_default()
            .into_iter()
            .filter_map(convert::attachment)
            .find(|a| &a.blob_id == blob)
            .ok_or_else(|| {
                MailStoreError::NotFound(format!(
                    "email {email_id} has no attachment with blob id {blob}; get_email lists its attachments"
                ))
            })?;
        if attachment.size > max_bytes {
            return Err(MailStoreError::TooLarge {
                size: attachment.size,
                limit: max_bytes,
            });
        }
        let bytes = self
            .transport
            .download(
                cred,
                &session,
                blob.as_str(),
                attachment.name.as_deref().unwrap_or("attachment"),
                &attachment.mime_type,
                max_bytes,
            )
            .await?;
        Ok(AttachmentContent { attachment, bytes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_condition_when_possible() {
        let q = EmailQuery {
            text: Some("budget".into()),
            unread: Some(true),
            ..EmailQuery::default()
        };
        assert_eq!(
            filter(&q, Some("M1"), &HashMap::new()),
            json!({"text": "budget", "inMailbox": "M1", "notKeyword": "$seen"})
        );
    }

    #[test]
    fn to_covers_cc_and_bcc_and_flag_gets_its_own_condition() {
        let q = EmailQuery {
            to: Some("bob".into()),
            flagged: Some(true),
            unread: Some(false),
            ..EmailQuery::default()
        };
        assert_eq!(
            filter(&q, None, &HashMap::new()),
            json!({"operator": "AND", "conditions": [
                {"hasKeyword": "$seen"},
                {"hasKeyword": "$flagged"},
                {"operator": "OR", "conditions": [{"to": "bob"}, {"cc": "bob"}, {"bcc": "bob"}]}
            ]})
        );
    }
}
