//! The pages a person sees in the browser during the connect flow: the consent screen
//! (`GET /authorize`), the decision (`POST /authorize/decision`) and the upstream's return
//! (`GET /auth/callback`). Server-rendered, no JavaScript, one form with stable field names;
//! never framed, never cached, no referrer; every redirect is a 303.

use std::{fmt::Write as _, sync::Arc};

use poem::{
    Request, Response,
    http::{StatusCode, header},
};

use super::{
    browser::{
        CONSENT_COOKIE, MAX_FORM_BYTES, NEXT_COOKIE, NOTIFIER_COOKIE, SESSION_COOKIE,
        SESSION_MAX_AGE, SIGN_IN_COOKIE, UPSTREAM_COOKIE, cookie_name, cookie_value, form_fields,
        return_path, set_cookie,
    },
    html::{error_page, escape, layout, page, see_other},
};

use crate::domain::{
    auth::{
        client::ClientKind,
        flow::{AuthorizationParams, AuthorizeError, PendingError},
        redirect::RedirectKind,
        service::{AuthService, CallbackError, ConsentPage},
        token::random_value,
    },
    ports::{AuditLog, ClientStore, FlowStore, MailStore, TokenVault, UpstreamAuth},
};

/// The browser pages of the connect flow.
pub struct Pages<V, C, U, M> {
    auth: Arc<AuthService<V, C, U, M>>,
    secure_cookies: bool,
    /// Background notifications: their consent comes back through the same callback.
    background: Option<Arc<dyn super::BackgroundDesk>>,
}

/// The provider refused the sign-in: what it answered, and the way back to the application
/// (which hears `server_error`).
fn refused_page(answer: &str, back: &str) -> Response {
    page(
        StatusCode::BAD_GATEWAY,
        layout(
            "Can't connect",
            &format!(
                "<h1>Your mail provider refused this sign-in</h1>\
                 <p>It answered: <code>{}</code></p>\
                 <p>This is usually a setting of this mailconnect server that only its operator \
                 can change. Tell them what the provider answered.</p>\
                 <p><a href=\"{}\">Return to the application</a></p>",
                escape(answer),
                escape(back)
            ),
        ),
    )
}

fn consent_html(view: &ConsentPage) -> String {
    let r = &view.request;
    let client = &r.client;
    let destination = client.redirect_uri(&r.redirect_uri).map_or_else(
        || r.redirect_uri.clone(),
        crate::domain::auth::redirect::RedirectUri::destination,
    );
    let kind = client
        .redirect_uri(&r.redirect_uri)
        .map(crate::domain::auth::redirect::RedirectUri::kind);
    let mut html = format!(
        "<h1>Connect <strong>{}</strong> to your mailbox?</h1>",
        escape(&client.name)
    );
    let verified = match client.kind {
        ClientKind::MetadataDocument => format!(
            "<span class=\"tag\">identified by {}</span>",
            escape(
                &url::Url::parse(client.id.as_str())
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_owned))
                    .unwrap_or_default()
            )
        ),
        ClientKind::Configured => {
            "<span class=\"tag\">configured by this server's operator</span>".to_owned()
        }
        ClientKind::Registered => {
            "<span class=\"tag\">unverified: the application named itself</span>".to_owned()
        }
    };
    let _ = write!(
        html,
        "<div class=\"box\"><p>{verified}</p><p>After you approve, you will be sent back to <strong id=\"redirect-host\">{}</strong>.</p>",
        escape(&destination)
    );
    match kind {
        Some(RedirectKind::Loopback) => html.push_str(
            "<p class=\"box warn\">This application receives the connection on <em>this computer</em> (a loopback address). \
Approve only if you just started connecting an application on this computer.</p>",
        ),
        Some(RedirectKind::App) => html.push_str("<p>That is an application installed on your device.</p>"),
        _ => {}
    }
    html.push_str("</div>");
    let _ = write!(
        html,
        "<div class=\"box\"><p>It will be able to:</p><ul id=\"capabilities\">\
<li>read your mail: search, open messages, threads and attachments, and list your mailboxes</li></ul>\
<p>It will <strong>not</strong> be able to move, mark, delete or send mail. {} You can turn those on for this \
application later in mailconnect's settings, and disconnect it there at any time.</p></div>",
        if view.capabilities.iter().count() > 1 {
            ""
        } else {
            "Those tools are off."
        }
    );
    let _ = write!(
        html,
        "<p>Next, your mail provider will ask you to sign in and allow mailconnect access.</p>\
<form method=\"post\" action=\"/authorize/decision\">\
<input type=\"hidden\" name=\"request_id\" value=\"{}\">\
<input type=\"hidden\" name=\"csrf_token\" value=\"{}\">\
<button type=\"submit\" name=\"decision\" value=\"approve\">Approve</button>\
<button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></form>",
        escape(&view.ticket.request_id),
        escape(view.ticket.csrf_token.expose_secret())
    );
    layout(&format!("Connect {}", client.name), &html)
}

impl<V: TokenVault + AuditLog + FlowStore, C: ClientStore, U: UpstreamAuth, M: MailStore>
    Pages<V, C, U, M>
{
    /// Serves `auth`; `secure_cookies` when the public URL is https (cookies get `__Host-`
    /// and `Secure`; a loopback http deployment can't use them).
    pub fn new(
        auth: Arc<AuthService<V, C, U, M>>,
        secure_cookies: bool,
        background: Option<Arc<dyn super::BackgroundDesk>>,
    ) -> Self {
        Self {
            auth,
            secure_cookies,
            background,
        }
    }

    fn cookie_name(&self, base: &str) -> String {
        cookie_name(self.secure_cookies, base)
    }

    fn set_cookie(&self, base: &str, value: &str, max_age: u32) -> String {
        set_cookie(self.secure_cookies, base, value, max_age)
    }

    /// `GET /authorize`.
    pub async fn authorize(&self, req: Request) -> Response {
        let query: Vec<(String, String)> =
            url::form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes())
                .into_owned()
                .collect();
        let mut params = AuthorizationParams::default();
        let mut repeated = false;
        for (k, v) in query {
            let slot = match k.as_str() {
                "response_type" => &mut params.response_type,
                "client_id" => &mut params.client_id,
                "redirect_uri" => &mut params.redirect_uri,
                "code_challenge" => &mut params.code_challenge,
                "code_challenge_method" => &mut params.code_challenge_method,
                "state" => &mut params.state,
                "scope" => &mut params.scope,
                "resource" => &mut params.resource,
                _ => continue,
            };
            repeated |= slot.is_some();
            *slot = Some(v);
        }
        if repeated {
            return error_page(
                StatusCode::BAD_REQUEST,
                "The request repeats a parameter, so mailconnect can't tell what was meant.",
            );
        }
        let browser = cookie_value(&req, &self.cookie_name(CONSENT_COOKIE))
            .filter(|v| v.len() >= 32)
            .unwrap_or_else(random_value);
        match self.auth.authorize(&params, &browser).await {
            Ok(view) => {
                let mut resp = page(StatusCode::OK, consent_html(&view));
                if let Ok(v) = self.set_cookie(CONSENT_COOKIE, &browser, 900).parse() {
                    resp.headers_mut().append(header::SET_COOKIE, v);
                }
                resp
            }
            Err(AuthorizeError::Page { message }) => error_page(StatusCode::BAD_REQUEST, &message),
            Err(AuthorizeError::Redirect(r)) => see_other(&r.to_url()),
        }
    }

    /// `POST /authorize/decision`.
    pub async fn decide(&self, mut req: Request) -> Response {
        let body = match req.take_body().into_bytes_limit(MAX_FORM_BYTES).await {
            Ok(b) => b,
            Err(_) => return error_page(StatusCode::PAYLOAD_TOO_LARGE, "The form is too large."),
        };
        let fields = form_fields(&body);
        let (Some(request_id), Some(csrf), Some(decision)) = (
            fields.get("request_id"),
            fields.get("csrf_token"),
            fields.get("decision"),
        ) else {
            return error_page(StatusCode::BAD_REQUEST, "The form is incomplete.");
        };
        let approve = match decision.as_str() {
            "approve" => true,
            "deny" => false,
            _ => {
                return error_page(
                    StatusCode::BAD_REQUEST,
                    "The form's decision is not approve or deny.",
                );
            }
        };
        let browser = cookie_value(&req, &self.cookie_name(CONSENT_COOKIE)).unwrap_or_default();
        let upstream_binding = random_value();
        match self
            .auth
            .decide(request_id, csrf, &browser, &upstream_binding, approve)
            .await
        {
            Ok(location) => {
                let mut resp = see_other(&location);
                if approve
                    && let Ok(v) = self
                        .set_cookie(UPSTREAM_COOKIE, &upstream_binding, 600)
                        .parse()
                {
                    resp.headers_mut().append(header::SET_COOKIE, v);
                }
                resp
            }
            Err(PendingError::Forged) => {
                error_page(StatusCode::FORBIDDEN, &PendingError::Forged.to_string())
            }
            Err(e @ PendingError::Unavailable) => {
                error_page(StatusCode::SERVICE_UNAVAILABLE, &e.to_string())
            }
            Err(e) => error_page(StatusCode::BAD_REQUEST, &e.to_string()),
        }
    }

    /// `GET /auth/callback`.
    pub async fn callback(&self, req: Request) -> Response {
        let query: std::collections::HashMap<String, String> =
            url::form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes())
                .into_owned()
                .collect();
        let Some(state) = query.get("state") else {
            return error_page(
                StatusCode::BAD_REQUEST,
                "The mail provider's answer has no state.",
            );
        };
        if let Some(setup) = &self.background {
            let binding =
                cookie_value(&req, &self.cookie_name(NOTIFIER_COOKIE)).unwrap_or_default();
            let finished = setup
                .finish(
                    state,
                    &binding,
                    query.get("code").map(String::as_str),
                    query.get("iss").map(String::as_str),
                )
                .await;
            let mut resp = match finished {
                Ok(None) => None,
                Ok(Some(_)) => Some(see_other("/settings?done=background")),
                Err(why) => Some(error_page(
                    StatusCode::BAD_REQUEST,
                    &format!("Background notifications were not turned on: {why}."),
                )),
            };
            if let Some(resp) = resp.as_mut()
                && let Ok(v) = self.set_cookie(NOTIFIER_COOKIE, "", 0).parse()
            {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
            if let Some(resp) = resp {
                return resp;
            }
        }
        let sign_in = cookie_value(&req, &self.cookie_name(SIGN_IN_COOKIE)).unwrap_or_default();
        match self
            .auth
            .finish_sign_in(
                state,
                &sign_in,
                query.get("code").map(String::as_str),
                query.get("iss").map(String::as_str),
            )
            .await
        {
            Ok(None) => {}
            Ok(Some(ticket)) => {
                let next = cookie_value(&req, &self.cookie_name(NEXT_COOKIE))
                    .and_then(|n| return_path(&n).map(str::to_owned));
                let mut resp = see_other(next.as_deref().unwrap_or("/settings"));
                for cookie in [
                    self.set_cookie(SESSION_COOKIE, ticket.0.expose_secret(), SESSION_MAX_AGE),
                    self.set_cookie(SIGN_IN_COOKIE, "", 0),
                    self.set_cookie(NEXT_COOKIE, "", 0),
                ] {
                    if let Ok(v) = cookie.parse() {
                        resp.headers_mut().append(header::SET_COOKIE, v);
                    }
                }
                return resp;
            }
            Err(why) => {
                return error_page(
                    StatusCode::BAD_REQUEST,
                    &format!("Signing in to settings failed: {why}."),
                );
            }
        }
        let browser = cookie_value(&req, &self.cookie_name(UPSTREAM_COOKIE)).unwrap_or_default();
        let outcome = self
            .auth
            .callback(
                state,
                &browser,
                query.get("code").map(String::as_str),
                query.get("iss").map(String::as_str),
                query.get("error").map(|error| {
                    (
                        error.as_str(),
                        query.get("error_description").map(String::as_str),
                    )
                }),
            )
            .await;
        // The binding cookie is single use: it goes once the leg it binds was taken (whatever
        // happened next), but a stray or forged callback can't clear it for the real one.
        let leg_taken = !matches!(outcome, Err(CallbackError::Pending(_)));
        let mut resp = match outcome {
            Ok(redirect) => see_other(&redirect.to_url()),
            Err(CallbackError::Pending(PendingError::Forged)) => error_page(
                StatusCode::FORBIDDEN,
                "This sign-in was started in another browser. Start again from the application.",
            ),
            Err(CallbackError::Refused { answer, back }) => refused_page(&answer, &back.to_url()),
            Err(e @ CallbackError::Pending(PendingError::Unavailable)) => {
                error_page(StatusCode::SERVICE_UNAVAILABLE, &e.to_string())
            }
            Err(e) => error_page(StatusCode::BAD_REQUEST, &e.to_string()),
        };
        if leg_taken && let Ok(v) = self.set_cookie(UPSTREAM_COOKIE, "", 0).parse() {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
        resp
    }
}
