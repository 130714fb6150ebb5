//! Asking the person before `send_draft` sends: the client's own dialog where it has one (a
//! 2026-07-28 input-required result, or `elicitation/create` on a legacy session), else a link
//! to our review page. The person's settings may rule out the dialog (README, "Design": sending).

use std::time::Duration;

use rmcp::{Peer, RoleServer, model::ProtocolVersion, service::RequestContext};
use serde_json::Value;

use super::{
    McpHandler, compose_args,
    contract::types as input,
    dispatch::{Rendered, Reply},
    failure::{ToolFailure, parsed},
    render,
};
use crate::domain::{
    grant::Caller,
    mail::ids::EmailId,
    ports::{AuditEvent, AuditKind, MailStore, Policy, TokenVault},
    sending::approval::ApprovalId,
    service::{ApprovalAsk, Fittings, SendOutcome, SendRefusal, ServiceError},
};

/// The key of our one input request in a 2026-07-28 form round trip.
const CONFIRM_KEY: &str = "confirm_send";
/// Longest a legacy `send_draft` waits for the person's answer in the client's dialog.
pub(super) const LEGACY_DIALOG_WAIT: Duration = Duration::from_secs(300);

/// How this request can ask the person to confirm a send: the request's context (legacy
/// sessions can send `elicitation/create`; 2026-07-28 clients answer an input-required result)
/// and, on a 2026-07-28 retry, the answers and our sealed request state.
#[derive(Default)]
pub(super) struct Confirm<'a> {
    pub(super) ctx: Option<&'a RequestContext<RoleServer>>,
    pub(super) input_responses: Option<rmcp::model::InputResponses>,
    pub(super) request_state: Option<String>,
}

impl<M: MailStore, V: TokenVault, P: Policy, F: Fittings> McpHandler<M, V, P, F> {
    /// `send_draft`: sends an approved draft; otherwise asks the person, in order: the
    /// client's form (2026-07-28 input-required result, or `elicitation/create` on a legacy
    /// session), else a review link in the result.
    pub(super) async fn send_draft(
        &self,
        a: input::SendDraftInput,
        caller: &Caller,
        confirm: &Confirm<'_>,
    ) -> Result<Reply, ToolFailure> {
        let id = parsed("draft_id", EmailId::parse(a.draft_id.to_string()))?;
        let schedule = compose_args::schedule(a.send_at.map(|s| s.to_string()), a.undo_window_s)?;
        let review_only = self.service.review_only(caller).await?;
        if let Some(state) = &confirm.request_state
            && !review_only
        {
            // A 2026-07-28 retry with the person's answer to our form.
            let approval = self.open_state(state, caller, &id)?;
            let accepted = confirm
                .input_responses
                .as_ref()
                .and_then(|r| r.get(CONFIRM_KEY))
                .is_some_and(accepted);
            self.client_decided(caller, &approval, accepted).await?;
        }
        let outcome = self
            .service
            .send_draft(caller, &id, schedule, &render::compose::review_copy)
            .await?;
        let mut ask = match outcome {
            SendOutcome::Sent(status) => {
                let (out, text) = render::compose::sent(&id, &status);
                return Rendered::new(out, text).map(|r| Reply::Done(r.changed(1)));
            }
            SendOutcome::NeedsApproval(ask) => ask,
        };
        let mut url = self.review_link(&ask);
        let message = render::compose::confirmation(&ask.draft, &ask.schedule, url.as_deref());
        // A dialog shows the text up to a preview; what it can't show whole needs the link.
        // The person may want approvals on our page only.
        let dialog =
            if !review_only && (render::compose::fits_a_dialog(&ask.draft) || url.is_some()) {
                Dialog::of(confirm.ctx)
            } else {
                Dialog::None
            };
        match dialog {
            Dialog::InputRequired => {
                let state = self.seal_state(&ask, caller, &id)?;
                let form = rmcp::model::ElicitRequest::new(
                    rmcp::model::ElicitRequestParams::FormElicitationParams {
                        meta: None,
                        message,
                        requested_schema: confirm_schema()?,
                    },
                );
                let mut requests = rmcp::model::InputRequests::new();
                requests.insert(
                    CONFIRM_KEY.into(),
                    rmcp::model::InputRequest::Elicitation(form),
                );
                return Ok(Reply::InputRequired(rmcp::model::InputRequiredResult::new(
                    Some(requests),
                    Some(state),
                )));
            }
            Dialog::Legacy(peer) => {
                let params = rmcp::model::ElicitRequestParams::FormElicitationParams {
                    meta: None,
                    message,
                    requested_schema: confirm_schema()?,
                };
                let wait = Duration::from_secs(
                    u64::try_from(ask.expires_at - chrono::Utc::now().timestamp()).unwrap_or(0),
                )
                .min(LEGACY_DIALOG_WAIT);
                match peer
                    .create_elicitation_with_timeout(params, Some(wait))
                    .await
                {
                    Ok(answer) => {
                        let accepted = serde_json::to_value(&answer).is_ok_and(|v| accepted(&v));
                        self.client_decided(caller, &ask.id, accepted).await?;
                        let outcome = self
                            .service
                            .send_draft(caller, &id, schedule, &render::compose::review_copy)
                            .await?;
                        match outcome {
                            SendOutcome::Sent(status) => {
                                let (out, text) = render::compose::sent(&id, &status);
                                return Rendered::new(out, text).map(|r| Reply::Done(r.changed(1)));
                            }
                            // Asked afresh meanwhile: the link of the new request.
                            SendOutcome::NeedsApproval(newer) => {
                                url = self.review_link(&newer);
                                ask = newer;
                            }
                        }
                    }
                    Err(e) => {
                        // No dialog after all (or no answer in time): the link still works.
                        tracing::info!(error = %e, "confirmation dialog unavailable; review link");
                    }
                }
            }
            Dialog::None => {}
        }
        let (out, text) = render::compose::needs_approval(&id, &ask, url.as_deref());
        let mut rendered = Rendered::new(out, text)?;
        rendered.outcome = Some("needs_approval");
        Ok(Reply::Done(rendered))
    }

    /// Records the person's answer in the client's dialog, and audits it.
    async fn client_decided(
        &self,
        caller: &Caller,
        approval: &ApprovalId,
        accepted: bool,
    ) -> Result<(), ToolFailure> {
        // A task of its own, so that a client hanging up midway never leaves a decision half
        // made.
        let (service, who, id) = (
            std::sync::Arc::clone(&self.service),
            caller.clone(),
            approval.clone(),
        );
        tokio::spawn(async move { service.decide_by_client(&who, &id, accepted).await })
            .await
            .map_err(|e| ToolFailure::Internal(format!("the decision's task: {e}")))??;
        crate::inbound::record_in_background(
            &self.audit,
            AuditEvent {
                grant: caller.grant.clone(),
                at: chrono::Utc::now().timestamp(),
                kind: AuditKind::SendDecision {
                    decision: if accepted { "approved" } else { "declined" }.into(),
                    via: "client_dialog".into(),
                },
            },
        );
        if accepted {
            Ok(())
        } else {
            Err(ServiceError::Send(SendRefusal::ApprovalDeclined).into())
        }
    }

    /// What binds a form's request state: the grant, the tool and the draft.
    fn state_binding(caller: &Caller, draft: &EmailId) -> Vec<u8> {
        format!("{}\u{0}tools/call:send_draft\u{0}{draft}", caller.grant).into_bytes()
    }

    fn seal_state(
        &self,
        ask: &ApprovalAsk,
        caller: &Caller,
        draft: &EmailId,
    ) -> Result<String, ToolFailure> {
        let ttl = u64::try_from(ask.expires_at - chrono::Utc::now().timestamp()).unwrap_or(1);
        let binding = Self::state_binding(caller, draft);
        let options = rmcp::model::SealOptions::new()
            .associated_data(&binding)
            .ttl(Duration::from_secs(ttl.max(1)));
        Ok(self.states.seal_with(ask.id.as_str().as_bytes(), &options))
    }

    /// The approval a retry's request state names, if it is ours, for this grant and draft,
    /// and in time. Every failure is the same error (the state is the client's to tamper with).
    fn open_state(
        &self,
        state: &str,
        caller: &Caller,
        draft: &EmailId,
    ) -> Result<ApprovalId, ToolFailure> {
        self.states
            .open_with(state, &Self::state_binding(caller, draft))
            .ok()
            .and_then(|raw| String::from_utf8(raw).ok())
            .and_then(|id| ApprovalId::parse(&id))
            .ok_or_else(|| {
                ToolFailure::Arguments(
                    "the confirmation's request state is not valid for this draft or has expired; call send_draft again without it".into(),
                )
            })
    }

    /// The review page's link: the approval's id in the path, the review copy's key in the
    /// fragment (browsers never send it to any server).
    fn review_link(&self, ask: &ApprovalAsk) -> Option<String> {
        let base = self.public_url.as_deref().filter(|_| ask.reviewable)?;
        let key = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            ask.key.as_slice(),
        );
        Some(format!("{base}/approve/{}#k={key}", ask.id.as_str()))
    }
}

/// Which confirmation dialog the client declared for this request.
enum Dialog {
    /// 2026-07-28 with form elicitation: an input-required result.
    InputRequired,
    /// A legacy session with form elicitation: `elicitation/create` on this request's stream.
    Legacy(Peer<RoleServer>),
    /// None: the review link.
    None,
}

impl Dialog {
    fn of(ctx: Option<&RequestContext<RoleServer>>) -> Self {
        let Some(ctx) = ctx else {
            return Self::None;
        };
        // An empty `elicitation: {}` means form (the spec's default); decided on what the
        // client declared, never on a cancel.
        let form = ctx
            .client_capabilities()
            .and_then(|c| c.elicitation)
            .is_some_and(|e| e.form.is_some() || e.url.is_none());
        if !form {
            return Self::None;
        }
        match ctx.protocol_version() {
            Some(v) if v >= ProtocolVersion::V_2026_07_28 => Self::InputRequired,
            Some(_)
                if ctx
                    .peer
                    .peer_info()
                    .is_some_and(|i| i.capabilities.elicitation.is_some()) =>
            {
                Self::Legacy(ctx.peer.clone())
            }
            _ => Self::None,
        }
    }
}

/// Whether an elicitation answer approves: accepted, with `send: true`.
fn accepted(answer: &Value) -> bool {
    answer["action"] == "accept" && answer["content"]["send"] == true
}

/// The form: one checkbox.
fn confirm_schema() -> Result<rmcp::model::ElicitationSchema, ToolFailure> {
    rmcp::model::ElicitationSchema::builder()
        .required_bool_with("send", |b| b.title("Send this email now"))
        .build()
        .map_err(|e| ToolFailure::Internal(e.to_owned()))
}
