//! The pages a person sees in the browser during the connect flow: the consent screen
//! (`GET /authorize`), the decision (`POST /authorize/decision`) and the upstream's return
//! (`GET /auth/callback`). Server-rendered, no JavaScript, one form with stable field names;
//! never framed, never cached, no referrer; every redirect is a 303.

use std::{fmt::Write as _, sync::Arc};

use poem::{
    Body, Request, Response,
    http::{StatusCode, header},
};

use crate::domain::{
    auth::{
        client::ClientKind,
        flow::{AuthorizationParams, AuthorizeError, PendingError},
        redirect::RedirectKind,
        service::{AuthService, CallbackError, ConsentPage},
        token::random_value,
    },
    ports::{ClientStore, MailStore, TokenVault, UpstreamAuth},
};

/// Largest form body we read.
pub(super) const MAX_FORM_BYTES: usize = 16 * 1024;
const CONSENT_COOKIE: &str = "mc_consent";
const UPSTREAM_COOKIE: &str = "mc_upstream";

/// The browser pages of the connect flow.
pub struct Pages<V, C, U, M> {
    auth: Arc<AuthService<V, C, U, M>>,
    secure_cookies: bool,
    /// Background notifications: their consent comes back through the same callback.
    background: Option<Arc<crate::domain::service::BackgroundSetup<U, M>>>,
}

/// Escapes text for HTML element content and quoted attributes.
#[must_use]
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Headers every page carries: not frameable (RFC 9700 §4.16), not cached, no referrer, no
/// scripts. No `form-action`: browsers apply it to the redirects that follow the form's post
/// too, and ours go on to the upstream and back to the client, both other origins.
pub(super) fn page(status: StatusCode, body: String) -> Response {
    page_with_policy(
        status,
        body,
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
    )
}

/// A page with its own content security policy (the review page runs one script of ours).
pub(super) fn page_with_policy(status: StatusCode, body: String, policy: &str) -> Response {
    Response::builder()
        .status(status)
        .content_type("text/html; charset=utf-8")
        .header(header::CONTENT_SECURITY_POLICY, policy)
        .header(header::X_FRAME_OPTIONS, "DENY")
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::PRAGMA, "no-cache")
        .header(header::REFERRER_POLICY, "no-referrer")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .body(Body::from_string(body))
}

pub(super) fn see_other(location: &str) -> Response {
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, location)
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::REFERRER_POLICY, "no-referrer")
        .finish()
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:34rem;margin:2rem auto;padding:0 1rem;line-height:1.5;color:#1b1b1f}\
h1{font-size:1.5rem}h2{font-size:1.2rem}h3{font-size:1.05rem}h1,h2,h3,strong{overflow-wrap:anywhere}\
.box{border:1px solid #ccd;border-radius:.5rem;padding:.25rem 1rem 1rem;margin:1rem 0}.box>h2:first-child,.box>h3:first-child{margin-top:.75rem}\
.warn{background:#fff6e0;border-color:#e8c36a}.tag{font-size:.8rem;padding:.1rem .4rem;border-radius:.3rem;background:#eee}\
.notice{background:#e8f4ea;border:1px solid #8bc79a;border-radius:.5rem;padding:.5rem 1rem}.when{white-space:nowrap}\
.ended{color:#555}form.revoke{margin-top:1.5rem;padding-top:.75rem;border-top:1px dashed #ccd}\
button{font-size:1rem;padding:.6rem 1.2rem;margin:.25rem .5rem .25rem 0;border-radius:.4rem;border:1px solid #888}\
button[value=approve]{background:#1d5bd6;color:#fff;border-color:#1d5bd6}button:disabled{opacity:.45;cursor:not-allowed}button.danger{background:#fff;color:#b3261e;border-color:#b3261e}\
code{word-break:break-all}";

pub(super) fn layout(title: &str, content: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{} – mailconnect</title><style>{STYLE}</style></head><body>{content}</body></html>",
        escape(title)
    )
}

pub(super) fn error_page(status: StatusCode, message: &str) -> Response {
    page(
        status,
        layout(
            "Can't connect",
            &format!(
                "<h1>This connection can't continue</h1><p>{}</p>",
                escape(message)
            ),
        ),
    )
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

/// A cookie's name: `__Host-` prefixed on https (which then requires `Secure`, `Path=/` and no
/// `Domain`); a loopback http deployment can't use the prefix.
pub(super) fn cookie_name(secure: bool, base: &str) -> String {
    if secure {
        format!("__Host-{base}")
    } else {
        base.to_owned()
    }
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, short-lived.
pub(super) fn set_cookie(secure: bool, base: &str, value: &str, max_age: u32) -> String {
    let flag = if secure { "; Secure" } else { "" };
    format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{flag}",
        cookie_name(secure, base)
    )
}

pub(super) fn cookie_value(req: &Request, name: &str) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

pub(super) fn form_fields(body: &[u8]) -> std::collections::HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

impl<V: TokenVault, C: ClientStore, U: UpstreamAuth, M: MailStore> Pages<V, C, U, M> {
    /// Serves `auth`; `secure_cookies` when the public URL is https (cookies get `__Host-`
    /// and `Secure`; a loopback http deployment can't use them).
    pub fn new(
        auth: Arc<AuthService<V, C, U, M>>,
        secure_cookies: bool,
        background: Option<Arc<crate::domain::service::BackgroundSetup<U, M>>>,
    ) -> Self {
        Self {
            auth,
            secure_cookies,
            background,
        }
    }

    fn cookie_name(&self, base: &str) -> String {
        if self.secure_cookies {
            format!("__Host-{base}")
        } else {
            base.to_owned()
        }
    }

    fn set_cookie(&self, base: &str, value: &str, max_age: u32) -> String {
        let secure = if self.secure_cookies { "; Secure" } else { "" };
        format!(
            "{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}",
            self.cookie_name(base)
        )
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
            let binding = cookie_value(&req, &self.cookie_name(super::settings::NOTIFIER_COOKIE))
                .unwrap_or_default();
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
                && let Ok(v) = self
                    .set_cookie(super::settings::NOTIFIER_COOKIE, "", 0)
                    .parse()
            {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
            if let Some(resp) = resp {
                return resp;
            }
        }
        let sign_in = cookie_value(&req, &self.cookie_name(super::settings::SIGN_IN_COOKIE))
            .unwrap_or_default();
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
                let next = cookie_value(&req, &self.cookie_name(super::settings::NEXT_COOKIE))
                    .and_then(|n| super::settings::return_path(&n).map(str::to_owned));
                let mut resp = see_other(next.as_deref().unwrap_or("/settings"));
                for cookie in [
                    self.set_cookie(
                        super::settings::SESSION_COOKIE,
                        ticket.0.expose_secret(),
                        super::settings::SESSION_MAX_AGE,
                    ),
                    self.set_cookie(super::settings::SIGN_IN_COOKIE, "", 0),
                    self.set_cookie(super::settings::NEXT_COOKIE, "", 0),
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
            Err(e) => error_page(StatusCode::BAD_REQUEST, &e.to_string()),
        };
        if leg_taken && let Ok(v) = self.set_cookie(UPSTREAM_COOKIE, "", 0).parse() {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
        resp
    }
}
