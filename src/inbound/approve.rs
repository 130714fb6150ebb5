//! The review page: where a person approves sending one exact draft when their assistant
//! can't show a confirmation dialog.
//!
//! The server can't read the mailbox here (upstream tokens open only with the client's
//! token), so the page shows a copy of the draft sealed at `send_draft` time under a key that
//! only the link's fragment carries; the page's script opens it in the browser (WebCrypto).
//! Deciding needs our settings session (a sign-in with the mail provider) for the same
//! mailbox, a CSRF token, and a POST: link previewers and agents fetching the link can't
//! approve. The page only records the decision; the client's next `send_draft` sends.

use std::sync::Arc;

use poem::{Request, Response, http::StatusCode};

use super::{
    browser::{
        MAX_FORM_BYTES, SESSION_COOKIE, cookie_name, cookie_value, csrf_matches, form_fields,
    },
    html::{escape, layout},
};
use crate::domain::{
    auth::{service::AuthService, settings::SettingsSession},
    ports::{ApprovalStore, AuditLog, ClientStore, FlowStore, MailStore, TokenVault, UpstreamAuth},
    sending::approval::{ApprovalId, ApprovalRecord, DecisionError},
    service::ReviewDesk,
};

/// The page's script (served from our origin: the page allows scripts from 'self' only).
pub const SCRIPT: &str = include_str!("approve.js");

/// The review pages.
pub struct ReviewPage<V, C, U, M> {
    auth: Arc<AuthService<V, C, U, M>>,
    desk: Arc<ReviewDesk<V>>,
    secure: bool,
}

/// A review page: like every page (never framed or cached, no referrer), plus our one script.
/// No `form-action`: the signed-out page's form goes on to the mail provider's sign-in, and
/// browsers apply `form-action` to the redirects that follow a post.
fn page(status: StatusCode, body: String) -> Response {
    super::html::page_with_policy(
        status,
        body,
        "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
    )
}

/// A refusal in the review page's words; its script still takes the key out of the address
/// bar.
fn problem(status: StatusCode, message: &str) -> Response {
    page(
        status,
        layout(
            "Review an email",
            &format!(
                "<h1>This email can't be approved here</h1><p id=\"outcome\">{}</p><script src=\"/approve.js\"></script>",
                escape(message)
            ),
        ),
    )
}

fn refused(e: &DecisionError) -> Response {
    let status = match e {
        DecisionError::Unknown => StatusCode::NOT_FOUND,
        DecisionError::OtherAccount => StatusCode::FORBIDDEN,
        DecisionError::Expired => StatusCode::GONE,
        DecisionError::Decided(_) => StatusCode::CONFLICT,
        DecisionError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    problem(status, &e.to_string())
}

/// What the page shows of the draft: filled in by the script from the sealed copy.
fn review_html(record: &ApprovalRecord, csrf: &str, account: &str) -> String {
    let sealed = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        &record.review,
    );
    let expires = chrono::DateTime::from_timestamp(record.expires_at, 0)
        .map(|t| t.format("%H:%M UTC").to_string())
        .unwrap_or_default();
    format!(
        "<h1>Send this email?</h1>\
<p>Your assistant wants to send this email from <strong>{account}</strong>. Check it; nothing is sent unless you approve, \
and only this exact version can be sent. This request expires at {expires}.</p>\
<div id=\"review\" data-id=\"{id}\" data-sealed=\"{sealed}\">\
<p id=\"review-error\" class=\"box warn\" hidden></p>\
<section id=\"draft\" class=\"box\" hidden>\
<p><strong>From:</strong> <span id=\"f-from\"></span><br><strong>To:</strong> <span id=\"f-to\"></span><br>\
<strong>Cc:</strong> <span id=\"f-cc\"></span><br><strong>Bcc:</strong> <span id=\"f-bcc\"></span><br>\
<strong>Reply-To:</strong> <span id=\"f-reply-to\"></span><br><strong>Subject:</strong> <span id=\"f-subject\"></span><br>\
<strong>Sends:</strong> <span id=\"f-send\"></span><br><strong>Attachments:</strong> <span id=\"f-attachments\"></span></p>\
<pre id=\"f-text\" style=\"white-space:pre-wrap;overflow-wrap:anywhere\"></pre>\
<div id=\"f-html-box\" hidden><p><strong>HTML part, as text:</strong></p><pre id=\"f-html\" style=\"white-space:pre-wrap;overflow-wrap:anywhere\"></pre></div>\
</section></div>\
<form method=\"post\" action=\"/approve/{id}\"><input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\
<button type=\"submit\" name=\"decision\" value=\"approve\" id=\"approve\" disabled>Approve sending</button>\
<button type=\"submit\" name=\"decision\" value=\"decline\" class=\"danger\" id=\"decline\">Don't send</button></form>\
<script src=\"/approve.js\"></script>",
        account = escape(account),
        id = escape(record.id.as_str()),
        csrf = escape(csrf),
    )
}

impl<
    V: TokenVault + AuditLog + ApprovalStore + FlowStore,
    C: ClientStore,
    U: UpstreamAuth,
    M: MailStore,
> ReviewPage<V, C, U, M>
{
    /// Serves the approvals of `desk`, with settings sessions from `auth`.
    pub fn new(auth: Arc<AuthService<V, C, U, M>>, desk: Arc<ReviewDesk<V>>, secure: bool) -> Self {
        Self { auth, desk, secure }
    }

    async fn session(&self, req: &Request) -> Option<SettingsSession> {
        let cookie = cookie_value(req, &cookie_name(self.secure, SESSION_COOKIE))?;
        self.auth.settings_session(&cookie).await
    }

    fn approval_id(req: &Request) -> Option<ApprovalId> {
        ApprovalId::parse(req.raw_path_param("id").unwrap_or_default())
    }

    /// `GET /approve/:id`.
    pub async fn show(&self, req: Request) -> Response {
        let Some(id) = Self::approval_id(&req) else {
            return refused(&DecisionError::Unknown);
        };
        let Some(session) = self.session(&req).await else {
            // The script keeps the link's key in this tab's storage across the sign-in.
            return page(
                StatusCode::OK,
                layout(
                    "Review an email",
                    &format!(
                        "<h1>Review an email before it is sent</h1><p>Your assistant asked to send an email from your mailbox. \
Sign in with your mail provider to see it and decide.</p><div id=\"review\" data-id=\"{id}\"></div>\
<form method=\"post\" action=\"/settings/sign-in\"><input type=\"hidden\" name=\"next\" value=\"/approve/{id}\">\
<button type=\"submit\" name=\"sign_in\" value=\"1\">Sign in</button></form><script src=\"/approve.js\"></script>",
                        id = escape(id.as_str())
                    ),
                ),
            );
        };
        let now = chrono::Utc::now().timestamp();
        let record = match self.desk.pending(&id, &session.account_digest, now).await {
            Ok(r) => r,
            Err(e) => return refused(&e),
        };
        page(
            StatusCode::OK,
            layout(
                "Review an email",
                &review_html(&record, session.csrf.expose_secret(), &session.account),
            ),
        )
    }

    /// `POST /approve/:id`: the decision.
    pub async fn decide(&self, mut req: Request) -> Response {
        let Some(id) = Self::approval_id(&req) else {
            return refused(&DecisionError::Unknown);
        };
        let Some(session) = self.session(&req).await else {
            return problem(
                StatusCode::UNAUTHORIZED,
                "Your sign-in expired: open the link again and sign in.",
            );
        };
        let Ok(body) = req.take_body().into_bytes_limit(MAX_FORM_BYTES).await else {
            return problem(StatusCode::PAYLOAD_TOO_LARGE, "The form is too large.");
        };
        let form = form_fields(&body);
        if !csrf_matches(&form, &session) {
            return problem(
                StatusCode::FORBIDDEN,
                "This form did not come from your review page.",
            );
        }
        let approve = match form.get("decision").map(String::as_str) {
            Some("approve") => true,
            Some("decline") => false,
            _ => return problem(StatusCode::BAD_REQUEST, "Choose approve or don't send."),
        };
        let account = session.account_digest.clone();
        let now = chrono::Utc::now().timestamp();
        match self.desk.decide(&id, &account, approve, now).await {
            Ok(record) => {
                let outcome = if approve {
                    "<h1>Approved</h1><p id=\"outcome\">Approved. Tell your assistant you approved it: it sends the email on its next try. \
If the draft changes before then, it won't be sent.</p>"
                } else {
                    "<h1>Not sent</h1><p id=\"outcome\">Declined: the email will not be sent. It stays in your Drafts.</p>"
                };
                // The script forgets the link's key kept for this approval.
                let body = format!(
                    "{outcome}<div id=\"decided\" data-id=\"{}\"></div><script src=\"/approve.js\"></script>",
                    escape(record.id.as_str())
                );
                page(StatusCode::OK, layout("Review an email", &body))
            }
            Err(e) => refused(&e),
        }
    }
}
