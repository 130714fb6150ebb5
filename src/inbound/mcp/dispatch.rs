//! `tools/call`: a decoded [`ToolCall`] to the use case it stands for, within the tool deadline,
//! recorded in the audit log. The `match` on `ToolCall` names every tool, so a tool added to
//! `schemas/tools.json` without a handler here does not compile.

use rmcp::{
    ErrorData, RoleServer,
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ResourceContents,
    },
    service::RequestContext,
};
use serde_json::Value;

use super::{
    McpHandler, caller, compose_args,
    contract::{ToolCall, ToolCallError, types as input},
    failure::{ToolFailure, parsed, unknown_tool},
    render,
    send_confirmation::{Confirm, LEGACY_DIALOG_WAIT},
};
use crate::domain::{
    grant::Caller,
    mail::body,
    mail::changes::Keyword,
    mail::ids::{BlobId, EmailId, ThreadId},
    notify::settings::{MuteRequest, parse_duration},
    ports::{AuditEvent, AuditKind, MailStore, MailStoreError, Policy, TokenVault},
    search::query::{EmailQuery, InvalidArgument, SearchExpression, parse_instant},
    search::search_syntax,
    service::{Fittings, NewMailRequest, SearchRequest, ServiceError},
};

/// A tool's successful result before it goes on the wire.
pub(super) struct Rendered {
    structured: Value,
    text: String,
    extra: Vec<ContentBlock>,
    /// Emails a write tool changed (for the audit log).
    changed: Option<u64>,
    /// The audit outcome when it isn't plain "ok" (e.g. an approval was asked for).
    pub(super) outcome: Option<&'static str>,
}

impl Rendered {
    pub(super) fn new(
        structured: impl serde::Serialize,
        text: String,
    ) -> Result<Self, ToolFailure> {
        let structured =
            serde_json::to_value(structured).map_err(|e| ToolFailure::Internal(e.to_string()))?;
        Ok(Self {
            structured,
            text,
            extra: Vec::new(),
            changed: None,
            outcome: None,
        })
    }

    pub(super) fn changed(mut self, n: usize) -> Self {
        self.changed = Some(n as u64);
        self
    }
}

/// A tool's reply: a result, or (2026-07-28) a request for the person's input first.
pub(super) enum Reply {
    Done(Rendered),
    InputRequired(rmcp::model::InputRequiredResult),
}

impl<M: MailStore, V: TokenVault, P: Policy, F: Fittings> McpHandler<M, V, P, F> {
    /// Answers `tools/call`: decodes the call, runs it, audits and logs it (the kind of outcome
    /// only), and puts the result or the failure on the wire.
    pub(super) async fn call_tool_request(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let caller = caller(&ctx)?;
        let name = request.name.to_string();
        let arguments = Value::Object(request.arguments.unwrap_or_default());
        let call = match ToolCall::parse(&name, arguments) {
            Ok(call) => Ok(call),
            Err(ToolCallError::UnknownTool(_)) => return Err(unknown_tool(&name, &caller)),
            Err(ToolCallError::Arguments(e)) => Err(ToolFailure::Arguments(e)),
        };
        let confirm = Confirm {
            ctx: Some(&ctx),
            input_responses: request.input_responses,
            request_state: request.request_state,
        };
        let started = std::time::Instant::now();
        let outcome = match call {
            Ok(call) => self.run_in_time(call, &caller, &confirm).await,
            Err(failure) => Err(failure),
        };
        let elapsed_us = started.elapsed().as_micros();
        let (audited, count) = match &outcome {
            Ok(Reply::Done(r)) => (r.outcome.unwrap_or("ok"), r.changed),
            Ok(Reply::InputRequired(_)) => ("needs_approval", None),
            Err(f) => (f.outcome(), None),
        };
        crate::inbound::record_in_background(
            &self.audit,
            AuditEvent {
                grant: caller.grant.clone(),
                at: chrono::Utc::now().timestamp(),
                kind: AuditKind::ToolCall {
                    tool: name.clone(),
                    outcome: audited.to_owned(),
                    count,
                },
            },
        );
        let result = match outcome {
            Ok(Reply::InputRequired(asked)) => {
                tracing::info!(tool = %name, grant = %caller.grant, outcome = "input_required", elapsed_us, "tool call");
                return Ok(asked.into());
            }
            Ok(Reply::Done(rendered)) => {
                tracing::info!(tool = %name, grant = %caller.grant, outcome = "ok", elapsed_us, "tool call");
                let mut content = vec![ContentBlock::text(rendered.text)];
                content.extend(rendered.extra);
                let mut result = CallToolResult::success(content);
                result.structured_content = Some(rendered.structured);
                result
            }
            Err(failure) => {
                // Log the kind only: error texts can echo arguments (search words, addresses).
                tracing::info!(tool = %name, grant = %caller.grant, outcome = failure.outcome(), elapsed_us, "tool call");
                failure.into_result(&name)
            }
        };
        Ok(result.into())
    }

    /// Runs `call`, giving up after the tool deadline.
    async fn run_in_time(
        &self,
        call: ToolCall,
        caller: &Caller,
        confirm: &Confirm<'_>,
    ) -> Result<Reply, ToolFailure> {
        // A send may wait for the person's answer in the client's dialog.
        let deadline = if matches!(call, ToolCall::SendDraft(_)) {
            self.tool_deadline + LEGACY_DIALOG_WAIT
        } else {
            self.tool_deadline
        };
        tokio::time::timeout(deadline, self.dispatch(call, caller, confirm))
            .await
            .unwrap_or_else(|_| {
                Err(ToolFailure::Service(ServiceError::Store(
                    MailStoreError::Unavailable(format!(
                        "the tool took longer than {} s",
                        deadline.as_secs()
                    )),
                )))
            })
    }

    /// Runs `call`: its use case, the result rendered for the model.
    pub(super) async fn dispatch(
        &self,
        call: ToolCall,
        caller: &Caller,
        confirm: &Confirm<'_>,
    ) -> Result<Reply, ToolFailure> {
        let service = &self.service;
        let rendered = match call {
            ToolCall::GetIdentity(_) => {
                let (out, text) = render::identity(&service.identity(caller).await?);
                Rendered::new(out, text)
            }
            ToolCall::ListMailboxes(_) => {
                let (out, text) = render::mailboxes(&service.mailboxes(caller).await?);
                Rendered::new(out, text)
            }
            ToolCall::SearchEmail(a) => {
                let request = search_request(a)?;
                let (out, text) = render::search(&service.search(caller, &request).await?);
                Rendered::new(out, text)
            }
            ToolCall::GetEmail(a) => {
                let id = parsed("email_id", EmailId::parse(a.email_id.to_string()))?;
                let max = a.max_body_chars.map(std::num::NonZeroU64::get);
                let view = service
                    .email(
                        caller,
                        &id,
                        a.body_offset.unwrap_or(0),
                        max,
                        body::TextOptions {
                            collapse_quotes: a.collapse_quotes,
                        },
                    )
                    .await?;
                let (out, text) = render::email(&view);
                Rendered::new(out, text)
            }
            ToolCall::GetThread(a) => {
                let id = parsed("thread_id", ThreadId::parse(a.thread_id.to_string()))?;
                let (out, text) = render::thread(&service.thread(caller, &id).await?);
                Rendered::new(out, text)
            }
            ToolCall::GetAttachment(a) => {
                let email = parsed("email_id", EmailId::parse(a.email_id.to_string()))?;
                let blob = parsed("blob_id", BlobId::parse(a.blob_id.to_string()))?;
                let view = service.attachment(caller, &email, &blob).await?;
                let (out, text) = render::attachment(&view, email.as_str());
                let resource = ResourceContents::BlobResourceContents {
                    uri: out.resource_uri.clone(),
                    mime_type: Some(out.type_.clone()),
                    blob: base64::Engine::encode(
                        &base64::engine::general_purpose::STANDARD,
                        &view.content.bytes,
                    ),
                    meta: None,
                };
                let mut rendered = Rendered::new(out, text)?;
                rendered.extra.push(ContentBlock::resource(resource));
                Ok(rendered)
            }
            ToolCall::MoveEmail(a) => {
                let view = service
                    .move_emails(caller, &raw_ids(a.email_ids), &a.mailbox.to_string())
                    .await?;
                let (out, text) = render::moved(&view);
                Rendered::new(out, text).map(|r| r.changed(view.report.counts().0))
            }
            ToolCall::MarkEmailRead(a) => {
                let read = a.read;
                let out = |report| input::MarkEmailReadOutput { read, report };
                self.set_keyword(caller, a.email_ids, Keyword::Seen, read, out)
                    .await
            }
            ToolCall::FlagEmail(a) => {
                let flagged = a.flagged;
                let out = |report| input::FlagEmailOutput { flagged, report };
                self.set_keyword(caller, a.email_ids, Keyword::Flagged, flagged, out)
                    .await
            }
            ToolCall::CheckNewMail(a) => {
                let request = NewMailRequest {
                    cursor: a.cursor.map(|c| c.to_string()),
                    limit: a.limit.map(std::num::NonZeroU64::get),
                    include_seen: a.include_seen,
                };
                let (out, text) =
                    render::new_mail(&service.check_new_mail(caller, &request).await?);
                Rendered::new(out, text)
            }
            ToolCall::MuteNotifications(a) => {
                let request = MuteRequest {
                    sender: a.sender.map(|s| s.to_string()),
                    thread: a
                        .thread_id
                        .map(|t| parsed("thread_id", ThreadId::parse(t.to_string())))
                        .transpose()?,
                    duration: parsed("for", parse_duration(&a.for_.to_string()))?,
                };
                let settings = service.mute_notifications(caller, &request).await?;
                let (settings, text) = render::notify_settings(&settings);
                Rendered::new(
                    input::MuteNotificationsOutput { settings },
                    format!("Muted. The rules now:\n{text}"),
                )
            }
            ToolCall::GetNotifySettings(_) => {
                let (settings, text) =
                    render::notify_settings(&service.notify_settings(caller).await?);
                let background = match &self.background {
                    Some(desk) => desk.status(&caller.grant).await,
                    None => None,
                };
                let delivery = match &background {
                    Some(on) => format!(
                        "background delivery to {} ({}) is on; only the person can change it, on the settings page",
                        on.target, on.kind
                    ),
                    None => "background delivery is off; only the person can turn it on, on the settings page".to_owned(),
                };
                Rendered::new(
                    input::GetNotifySettingsOutput {
                        settings,
                        channels: input::GetNotifySettingsOutputChannels {
                            check_new_mail: true,
                            live_stream: true,
                            background: background.is_some(),
                        },
                    },
                    format!(
                        "{text}\nNew mail reaches you through check_new_mail, and as resources/updated for mail://new on a subscriptions/listen stream; {delivery}."
                    ),
                )
            }
            ToolCall::DraftEmail(a) => {
                let view = service
                    .draft_email(caller, &compose_args::draft_request(a)?)
                    .await?;
                let (out, text) = render::compose::draft(&view);
                Rendered::new(out, text)
            }
            ToolCall::ListDrafts(a) => {
                let result = service
                    .list_drafts(
                        caller,
                        a.limit.map(std::num::NonZeroU64::get),
                        a.cursor.map(|c| c.to_string()),
                    )
                    .await?;
                let (out, text) = render::compose::drafts(&result);
                Rendered::new(out, text)
            }
            ToolCall::DeleteDraft(a) => {
                let id = parsed("draft_id", EmailId::parse(a.draft_id.to_string()))?;
                service.delete_draft(caller, &id).await?;
                let (out, text) = render::compose::deleted(&id);
                Rendered::new(out, text)
            }
            ToolCall::SendDraft(a) => {
                return self.send_draft(a, caller, confirm).await;
            }
            ToolCall::CancelSend(a) => {
                let draft = service.cancel_send(caller, &a.submission_id).await?;
                let (out, text) = render::compose::canceled(&draft);
                Rendered::new(out, text)
            }
            ToolCall::GetSendStatus(a) => {
                let submission = match &a.submission_id {
                    Some(id) => Some(service.send_status(caller, id).await?),
                    None => None,
                };
                let approval = match &a.draft_id {
                    Some(id) => {
                        let id = parsed("draft_id", EmailId::parse(id.to_string()))?;
                        service.approval_status(caller, &id).await?
                    }
                    None => None,
                };
                if a.submission_id.is_none() && a.draft_id.is_none() {
                    return Err(ToolFailure::Arguments(
                        "give submission_id (from send_draft) or draft_id".into(),
                    ));
                }
                let (out, text) = render::compose::status(submission.as_ref(), approval.as_ref());
                Rendered::new(out, text)
            }
        };
        rendered.map(Reply::Done)
    }

    /// `mark_email_read` and `flag_email`: one keyword set or cleared on each email, the
    /// report put in the tool's `output`.
    async fn set_keyword<O: serde::Serialize>(
        &self,
        caller: &Caller,
        ids: input::EmailIds,
        keyword: Keyword,
        on: bool,
        output: impl FnOnce(input::ChangeReport) -> O,
    ) -> Result<Rendered, ToolFailure> {
        let done = self
            .service
            .set_keyword(caller, &raw_ids(ids), keyword, on)
            .await?;
        let (report, text) = render::keyword(&done, keyword, on);
        Rendered::new(output(report), text).map(|r| r.changed(done.counts().0))
    }
}

/// The ids as the model sent them: the use case checks the capability before it parses them.
fn raw_ids(ids: input::EmailIds) -> Vec<String> {
    ids.0.into_iter().map(String::from).collect()
}

/// `search_email`'s arguments as the search use case takes them; dates and the query syntax
/// are parsed here, so a bad one is the model's to fix.
fn search_request(a: input::SearchEmailInput) -> Result<SearchRequest, ToolFailure> {
    let instant = |name: &'static str, raw: Option<String>| -> Result<_, ToolFailure> {
        raw.map(|r| parse_instant(name, &r))
            .transpose()
            .map_err(|e| ServiceError::InvalidArgument(e).into())
    };
    Ok(SearchRequest {
        query: EmailQuery {
            text: a.text.map(|v| v.to_string()),
            from: a.from.map(|v| v.to_string()),
            to: a.to.map(|v| v.to_string()),
            subject: a.subject.map(|v| v.to_string()),
            mailbox: a.mailbox.map(|v| v.to_string()),
            unread: a.unread,
            flagged: a.flagged,
            has_attachment: a.has_attachment,
            after: instant("after", a.after.map(|v| v.to_string()))?,
            before: instant("before", a.before.map(|v| v.to_string()))?,
            expression: a
                .query
                .map(|q| {
                    let source = q.to_string();
                    search_syntax::parse(&source, chrono::Utc::now())
                        .map(|expr| SearchExpression { source, expr })
                        .map_err(|e| {
                            ServiceError::InvalidArgument(InvalidArgument::new(
                                "query",
                                e.to_string(),
                            ))
                        })
                })
                .transpose()?,
        },
        limit: a.limit.map(std::num::NonZeroU64::get),
        cursor: a.cursor.map(|v| v.to_string()),
    })
}
