//! The settings page (`/settings`): sign in with the mail provider (identity only), see each
//! connected assistant with what it may do and what it did, toggle its capabilities, revoke it.
//! Server-rendered, no JavaScript, every form with the session's CSRF token; the rules (whose
//! grants, the token check) are in `domain::auth::settings`.

mod background;

use std::{fmt::Write as _, sync::Arc};

use poem::{
    Request, Response,
    http::{StatusCode, header},
};

use super::{
    BackgroundDesk,
    browser::{
        Form, FormError, MAX_FORM_BYTES, NEXT_COOKIE, SESSION_COOKIE, SIGN_IN_COOKIE, cookie_name,
        cookie_value, csrf_matches, form_fields, return_path, set_cookie,
    },
    html::{error_page, escape, layout, page, see_other},
    mcp::ToolListWatchers,
};
use crate::domain::{
    auth::{
        service::AuthService,
        settings::{Connection, SettingsError, SettingsSession},
        token::random_value,
    },
    grant::{Capability, CapabilitySet, GrantId},
    notify::settings::{NotifySettings, QuietSpec},
    ports::{
        AuditKind, AuditLog, ClientStore, FlowStore, MailStore, Policy, TokenVault, UpstreamAuth,
    },
    sending::recipients::{self, RecipientRule},
};

/// The capabilities a person can toggle, with the words the page uses.
const TOGGLES: &[(Capability, &str, &str)] = &[
    (
        Capability::Organize,
        "Organize mail",
        "move and archive mail, mark it read or unread, flag it",
    ),
    (
        Capability::Draft,
        "Write drafts",
        "write new mail, replies and forwards as drafts in your Drafts folder, list and delete them; nothing is sent",
    ),
    (
        Capability::Notify,
        "Hear about new mail",
        "check what arrived since it last looked (subjects, senders and previews of new mail in your Inbox)",
    ),
    (
        Capability::Send,
        "Send drafts after you approve them",
        "send a draft only after you approve that exact draft (includes writing drafts); assistants that cached their tool list, like Poke, need reconnecting to see the new tools",
    ),
];

/// The settings pages.
pub struct Settings<V, C, U, M> {
    auth: Arc<AuthService<V, C, U, M>>,
    watchers: Arc<ToolListWatchers>,
    secure: bool,
    /// Background notifications, when the operator offers them.
    background: Option<Arc<dyn BackgroundDesk>>,
    /// Tests only: webhook destinations over http and on loopback.
    allow_insecure_destinations: bool,
}

fn time(at: i64) -> String {
    chrono::DateTime::from_timestamp(at, 0).map_or_else(
        || at.to_string(),
        |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

fn event_text(kind: &AuditKind) -> String {
    match kind {
        AuditKind::Connected => "connected".into(),
        AuditKind::Refreshed => "renewed its access".into(),
        AuditKind::ToolCall {
            tool,
            outcome,
            count,
        } => match count {
            Some(n) => format!("{tool}: {outcome}, {n} email(s) changed"),
            None => format!("{tool}: {outcome}"),
        },
        AuditKind::PolicyChanged { capabilities } => {
            format!("you set its capabilities to: {}", capabilities.join(", "))
        }
        AuditKind::Revoked => "disconnected: its access and stored credentials were deleted".into(),
        AuditKind::SendDecision { decision, via } => {
            let via = if via == "review_page" {
                "on the review page"
            } else {
                "in the assistant's dialog"
            };
            format!("you {decision} sending a draft {via}")
        }
    }
}

fn activity_html(events: &[crate::domain::ports::AuditEvent]) -> String {
    let mut html = String::from("<details><summary>Activity</summary><ul class=\"activity\">");
    if events.is_empty() {
        html.push_str("<li>nothing yet</li>");
    }
    for e in events {
        let _ = write!(
            html,
            "<li>{} — {}</li>",
            time(e.at),
            escape(&event_text(&e.kind))
        );
    }
    html.push_str("</ul></details>");
    html
}

/// Who the connection may send to: only when it may send.
fn recipients_html(g: &crate::domain::ports::GrantSummary, csrf: &str) -> String {
    if !g.capabilities.allows(Capability::Send) {
        return String::new();
    }
    let id = escape(g.grant.as_str());
    let checked = |on: bool| if on { " checked" } else { "" };
    let list = match &g.recipients {
        RecipientRule::Only(entries) => entries.join("\n"),
        _ => String::new(),
    };
    format!(
        "<form method=\"post\" action=\"/settings/connections/{id}/recipients\"><input type=\"hidden\" name=\"csrf_token\" value=\"{}\">\
<fieldset><legend>It may send to: <strong>{}</strong></legend>\
<p><label><input type=\"radio\" name=\"recipients\" value=\"anyone\"{}> anyone</label></p>\
<p><label><input type=\"radio\" name=\"recipients\" value=\"written_to\"{}> only people you have written to</label></p>\
<p><label><input type=\"radio\" name=\"recipients\" value=\"only\"{}> only these addresses and domains (e.g. <code>ana@example.com</code>, <code>@example.com</code>, <code>*.example.com</code>):</label><br>\
<textarea name=\"only_list\" rows=\"3\" cols=\"40\">{}</textarea></p>\
<p><label><input type=\"checkbox\" name=\"review_only\" value=\"on\"{}> approve its sends only on mailconnect's review page, never in the assistant's own dialog (which an assistant could answer by itself)</label></p>\
<button type=\"submit\">Save sending rules</button></fieldset></form>",
        escape(csrf),
        escape(&g.recipients.describe()),
        checked(g.recipients == RecipientRule::Anyone),
        checked(g.recipients == RecipientRule::WrittenTo),
        checked(matches!(g.recipients, RecipientRule::Only(_))),
        escape(&list),
        checked(g.review_only),
    )
}

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

fn clock(minutes: u16) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// New-mail rules: only when the connection may hear about new mail.
fn notify_html(g: &crate::domain::ports::GrantSummary, csrf: &str) -> String {
    if !g.capabilities.allows(Capability::Notify) {
        return String::new();
    }
    let n = &g.notify;
    let id = escape(g.grant.as_str());
    let checked = |on: bool| if on { " checked" } else { "" };
    let window = n.quiet.first();
    let days: String = DAYS
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let on = window.is_some_and(|w| w.days.contains(&(i as u8 + 1)));
            format!(
                "<label><input type=\"checkbox\" name=\"quiet_day\" value=\"{}\"{}> {d}</label> ",
                i + 1,
                checked(on)
            )
        })
        .collect();
    let mutes: String = n
        .mutes
        .iter()
        .map(|m| {
            format!(
                "<li>{} until {}</li>",
                escape(m.sender.as_deref().unwrap_or("a conversation")),
                m.until.format("%Y-%m-%d %H:%M UTC")
            )
        })
        .collect();
    format!(
        "<form method=\"post\" action=\"/settings/connections/{id}/notify\"><input type=\"hidden\" name=\"csrf_token\" value=\"{}\">\
<fieldset><legend>New mail</legend>\
<p><label>Never from (addresses, @domain, *.domain):<br><textarea name=\"deny\" rows=\"2\" cols=\"40\">{}</textarea></label></p>\
<p><label>VIPs:<br><textarea name=\"vips\" rows=\"2\" cols=\"40\">{}</textarea></label></p>\
<p><label><input type=\"checkbox\" name=\"only_vips\" value=\"on\"{}> only VIPs</label> \
<label><input type=\"checkbox\" name=\"vips_break_quiet\" value=\"on\"{}> VIPs even in quiet hours</label></p>\
<p><label><input type=\"checkbox\" name=\"replies_vip\" value=\"on\"{}> replies in conversations I wrote in count as VIPs</label></p>\
<p><label>Also watch these folders (one per line; the Inbox always counts):<br><textarea name=\"mailboxes\" rows=\"2\" cols=\"40\">{}</textarea></label></p>\
<p>Quiet hours: {days}<br><label>from <input type=\"time\" name=\"quiet_start\" value=\"{}\"></label> \
<label>to <input type=\"time\" name=\"quiet_end\" value=\"{}\"></label> \
<label>time zone <input name=\"zone\" value=\"{}\" placeholder=\"Europe/Berlin\" size=\"18\"></label></p>\
{}<button type=\"submit\">Save new-mail rules</button></fieldset></form>",
        escape(csrf),
        escape(&n.deny.join("\n")),
        escape(&n.allow.join("\n")),
        checked(n.only_allowed),
        checked(n.vip_breaks_quiet),
        checked(n.replies_are_vip),
        escape(&n.mailboxes.join("\n")),
        window.map(|w| clock(w.start)).unwrap_or_default(),
        window.map(|w| clock(w.end)).unwrap_or_default(),
        escape(&n.zone),
        if mutes.is_empty() {
            String::new()
        } else {
            format!("<p>Muted by you or your assistant:</p><ul>{mutes}</ul>")
        },
    )
}

/// `HH:MM` → minutes after midnight.
fn minutes(raw: &str) -> Option<u16> {
    let (h, m) = raw.split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

/// The new-mail rules a form describes.
fn notify_form(form: &str) -> Result<NotifySettings, FormError> {
    let fields: Vec<(String, String)> = url::form_urlencoded::parse(form.as_bytes())
        .into_owned()
        .collect();
    let one = |k: &str| {
        fields
            .iter()
            .find(|(n, _)| n == k)
            .map_or("", |(_, v)| v.as_str())
    };
    let days: Vec<u8> = fields
        .iter()
        .filter(|(n, _)| n == "quiet_day")
        .filter_map(|(_, v)| v.parse().ok())
        .filter(|d| (1..=7).contains(d))
        .collect();
    let quiet = match (minutes(one("quiet_start")), minutes(one("quiet_end"))) {
        (Some(start), Some(end)) if !days.is_empty() => vec![QuietSpec { days, start, end }],
        _ => Vec::new(),
    };
    let settings = NotifySettings {
        deny: recipients::parse_entries(one("deny")).map_err(FormError::from_display)?,
        allow: recipients::parse_entries(one("vips")).map_err(FormError::from_display)?,
        only_allowed: one("only_vips") == "on",
        vip_breaks_quiet: one("vips_break_quiet") == "on",
        zone: one("zone").trim().to_owned(),
        quiet,
        mutes: Vec::new(),
        mailboxes: one("mailboxes")
            .split(['\n', ','])
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .take(20)
            .map(str::to_owned)
            .collect(),
        replies_are_vip: one("replies_vip") == "on",
    };
    if settings.mailboxes.iter().any(|m| m.chars().count() > 200) {
        return Err(FormError("A folder name is too long.".into()));
    }
    settings.rules().map_err(FormError::from_display)?;
    Ok(settings)
}

fn connection_html(c: &Connection, csrf: &str, background: &str) -> String {
    let g = &c.summary;
    let id = escape(g.grant.as_str());
    let mut html = format!(
        "<section class=\"box\" id=\"connection-{id}\"><h2>{}</h2><p>Returns to <strong>{}</strong> · connected {} · last used {}</p>",
        escape(&c.client_name),
        escape(&c.destination),
        time(g.created_at),
        g.last_used_at.map_or_else(|| "never".to_owned(), time),
    );
    let _ = write!(
        html,
        "<form method=\"post\" action=\"/settings/connections/{id}/capabilities\"><input type=\"hidden\" name=\"csrf_token\" value=\"{}\">\
<p><label><input type=\"checkbox\" checked disabled> Read mail (always on)</label></p>",
        escape(csrf)
    );
    for (capability, label, what) in TOGGLES {
        let name = capability.as_str();
        let checked = if g.capabilities.allows(*capability) {
            " checked"
        } else {
            ""
        };
        let _ = write!(
            html,
            "<p><label><input type=\"checkbox\" name=\"{name}\" value=\"on\"{checked}> {label}</label> <small>({what})</small></p>"
        );
    }
    let _ = write!(
        html,
        "<button type=\"submit\">Save</button></form>{}\
<form class=\"revoke\" method=\"post\" action=\"/settings/connections/{id}/revoke\"><input type=\"hidden\" name=\"csrf_token\" value=\"{}\">\
<button type=\"submit\" class=\"danger\">Revoke (disconnect now)</button></form>",
        recipients_html(g, csrf) + &notify_html(g, csrf) + background,
        escape(csrf)
    );
    html.push_str(&activity_html(&c.events));
    html.push_str("</section>");
    html
}

impl<V: TokenVault + Policy + AuditLog + FlowStore, C: ClientStore, U: UpstreamAuth, M: MailStore>
    Settings<V, C, U, M>
{
    /// Serves `auth`; tool list changes go out through `watchers`.
    pub fn new(
        auth: Arc<AuthService<V, C, U, M>>,
        watchers: Arc<ToolListWatchers>,
        secure: bool,
    ) -> Self {
        Self {
            auth,
            watchers,
            secure,
            background: None,
            allow_insecure_destinations: false,
        }
    }

    /// Offers background notifications through `setup` (`allow_insecure`: tests only).
    #[must_use]
    pub fn with_background(
        mut self,
        setup: Option<Arc<dyn BackgroundDesk>>,
        allow_insecure: bool,
    ) -> Self {
        self.background = setup;
        self.allow_insecure_destinations = allow_insecure;
        self
    }

    async fn session(&self, req: &Request) -> Option<(String, SettingsSession)> {
        let cookie = cookie_value(req, &cookie_name(self.secure, SESSION_COOKIE))?;
        let session = self.auth.settings_session(&cookie).await?;
        Some((cookie, session))
    }

    /// `GET /settings`.
    pub async fn show(&self, req: Request) -> Response {
        let Some((_, session)) = self.session(&req).await else {
            return page(
                StatusCode::OK,
                layout(
                    "Settings",
                    "<h1>mailconnect settings</h1><p>Sign in with your mail provider to see the assistants connected to your \
mailbox, choose what each may do, and disconnect them.</p>\
<form method=\"post\" action=\"/settings/sign-in\"><button type=\"submit\" name=\"sign_in\" value=\"1\">Sign in</button></form>",
                ),
            );
        };
        let connections = match self.auth.connections(&session).await {
            Ok(c) => c,
            Err(e) => return error_page(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        };
        let csrf = session.csrf.expose_secret();
        let notice = match req.uri().query().unwrap_or_default() {
            "done=saved" => {
                "<p class=\"notice\" role=\"status\">Saved: the assistant gets the new permissions on its next request.</p>"
            }
            "done=revoked" => {
                "<p class=\"notice\" role=\"status\">Disconnected: the assistant's access and the stored credentials are deleted.</p>"
            }
            "done=background" => {
                "<p class=\"notice\" role=\"status\">Background notifications are on.</p>"
            }
            "done=background-off" => {
                "<p class=\"notice\" role=\"status\">Background notifications are off; without other connections using it, the notifier's access was revoked and deleted.</p>"
            }
            _ => "",
        };
        let mut html = format!(
            "<h1>mailconnect settings</h1><p>Signed in as <strong>{}</strong>.</p>\
<form method=\"post\" action=\"/settings/sign-out\"><input type=\"hidden\" name=\"csrf_token\" value=\"{}\"><button type=\"submit\">Sign out</button></form>\
{notice}<h2>Connected assistants</h2>",
            escape(&session.account),
            escape(csrf)
        );
        if connections.is_empty() {
            html.push_str("<p>No assistant is connected to this mailbox.</p>");
        }
        for c in &connections {
            let background = match &self.background {
                Some(setup) => background::section(setup.as_ref(), &c.summary, csrf).await,
                None => String::new(),
            };
            html.push_str(&connection_html(c, csrf, &background));
        }
        let ended = self.auth.disconnected(&session).await.unwrap_or_default();
        if !ended.is_empty() {
            html.push_str("<h2>Disconnected</h2>");
        }
        for c in &ended {
            let _ = write!(
                html,
                "<section class=\"box ended\" id=\"ended-{}\"><h3>{}</h3><p>Returned to <strong>{}</strong> · connected {} · disconnected {}</p>{}</section>",
                escape(c.summary.grant.as_str()),
                escape(&c.client_name),
                escape(&c.destination),
                time(c.summary.created_at),
                c.summary.last_used_at.map_or_else(String::new, time),
                activity_html(&c.events)
            );
        }
        page(StatusCode::OK, layout("Settings", &html))
    }

    /// `POST /settings/sign-in` (`next`: a review page to return to).
    pub async fn sign_in(&self, mut req: Request) -> Response {
        let form = Self::form(&mut req).await.unwrap_or_default();
        let next = form.get("next").and_then(|n| return_path(n)).unwrap_or("");
        let binding = random_value();
        match self.auth.begin_sign_in(&binding).await {
            Ok(url) => {
                let mut resp = see_other(&url);
                for cookie in [
                    set_cookie(self.secure, SIGN_IN_COOKIE, &binding, 600),
                    set_cookie(
                        self.secure,
                        NEXT_COOKIE,
                        next,
                        if next.is_empty() { 0 } else { 600 },
                    ),
                ] {
                    if let Ok(v) = cookie.parse() {
                        resp.headers_mut().append(header::SET_COOKIE, v);
                    }
                }
                resp
            }
            Err(why) => error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("The mail provider's sign-in is unavailable: {why}."),
            ),
        }
    }

    async fn form(req: &mut Request) -> Option<std::collections::HashMap<String, String>> {
        let body = req
            .take_body()
            .into_bytes_limit(MAX_FORM_BYTES)
            .await
            .ok()?;
        Some(form_fields(&body))
    }

    fn refused(e: &SettingsError) -> Response {
        let status = match e {
            SettingsError::SignedOut => StatusCode::UNAUTHORIZED,
            SettingsError::Forged => StatusCode::FORBIDDEN,
            SettingsError::NotFound => StatusCode::NOT_FOUND,
            SettingsError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        };
        error_page(status, &e.to_string())
    }

    /// What a connection form names: the signed-in session, the grant in the path, the form
    /// and its CSRF token.
    async fn connection_form(
        &self,
        mut req: Request,
    ) -> Result<(SettingsSession, GrantId, Form, String), Response> {
        let Some((_, session)) = self.session(&req).await else {
            return Err(Self::refused(&SettingsError::SignedOut));
        };
        let grant = GrantId::new(req.raw_path_param("grant").unwrap_or_default());
        let form = Self::form(&mut req)
            .await
            .ok_or_else(|| error_page(StatusCode::PAYLOAD_TOO_LARGE, "The form is too large."))?;
        let csrf = form.get("csrf_token").cloned().unwrap_or_default();
        Ok((session, grant, form, csrf))
    }

    /// `POST /settings/connections/:grant/capabilities`.
    pub async fn capabilities(&self, req: Request) -> Response {
        let (session, grant, form, csrf) = match self.connection_form(req).await {
            Ok(parts) => parts,
            Err(resp) => return resp,
        };
        let csrf = csrf.as_str();
        let chosen = CapabilitySet::with(
            TOGGLES
                .iter()
                .filter(|(c, _, _)| form.get(c.as_str()).is_some_and(|v| v == "on"))
                .map(|(c, _, _)| *c),
        );
        let hears = chosen.allows(Capability::Notify);
        match self
            .auth
            .change_capabilities(&session, csrf, &grant, chosen)
            .await
        {
            Ok(()) => {
                self.watchers.notify(&grant).await;
                // Background notifications go with "Hear about new mail".
                if !hears
                    && let Some(setup) = &self.background
                    && let Err(why) = setup.turn_off(&grant).await
                {
                    return error_page(StatusCode::BAD_GATEWAY, &why.to_string());
                }
                see_other("/settings?done=saved")
            }
            Err(e) => Self::refused(&e),
        }
    }

    /// `POST /settings/connections/:grant/recipients`.
    pub async fn recipients(&self, req: Request) -> Response {
        let (session, grant, form, csrf) = match self.connection_form(req).await {
            Ok(parts) => parts,
            Err(resp) => return resp,
        };
        let csrf = csrf.as_str();
        let rule = match form.get("recipients").map(String::as_str) {
            Some("anyone") => RecipientRule::Anyone,
            Some("written_to") => RecipientRule::WrittenTo,
            Some("only") => {
                match recipients::parse_entries(form.get("only_list").map_or("", String::as_str)) {
                    Ok(entries) => RecipientRule::Only(entries),
                    Err(why) => return error_page(StatusCode::BAD_REQUEST, &why.to_string()),
                }
            }
            _ => return error_page(StatusCode::BAD_REQUEST, "Choose who it may send to."),
        };
        match self
            .auth
            .change_recipients(
                &session,
                csrf,
                &grant,
                rule,
                form.get("review_only").is_some_and(|v| v == "on"),
            )
            .await
        {
            Ok(()) => see_other("/settings?done=saved"),
            Err(e) => Self::refused(&e),
        }
    }

    /// `POST /settings/connections/:grant/notify`.
    pub async fn notify(&self, mut req: Request) -> Response {
        let Some((_, session)) = self.session(&req).await else {
            return Self::refused(&SettingsError::SignedOut);
        };
        let grant = GrantId::new(req.raw_path_param("grant").unwrap_or_default());
        let Ok(body) = req.take_body().into_bytes_limit(MAX_FORM_BYTES).await else {
            return error_page(StatusCode::PAYLOAD_TOO_LARGE, "The form is too large.");
        };
        let body = String::from_utf8_lossy(&body).into_owned();
        let form = form_fields(body.as_bytes());
        let csrf = form.get("csrf_token").map_or("", String::as_str);
        let rules = match notify_form(&body) {
            Ok(rules) => rules,
            Err(why) => return error_page(StatusCode::BAD_REQUEST, &why.to_string()),
        };
        match self
            .auth
            .change_notify_rules(&session, csrf, &grant, rules)
            .await
        {
            Ok(()) => see_other("/settings?done=saved"),
            Err(e) => Self::refused(&e),
        }
    }

    /// `POST /settings/connections/:grant/revoke`.
    pub async fn revoke(&self, req: Request) -> Response {
        let (session, grant, _, csrf) = match self.connection_form(req).await {
            Ok(parts) => parts,
            Err(resp) => return resp,
        };
        let csrf = csrf.as_str();
        let background = match &self.background {
            Some(setup) => setup.status(&grant).await,
            None => None,
        };
        match self.auth.revoke_connection(&session, csrf, &grant).await {
            Ok(()) => {
                // Its destination went with it; the notifier goes with the person's last one.
                if let (Some(setup), Some(on)) = (&self.background, background)
                    && let Err(why) = setup.connection_ended(&on.account).await
                {
                    tracing::warn!(grant = %grant, error = %why, "notifier not ended");
                }
                see_other("/settings?done=revoked")
            }
            Err(e) => Self::refused(&e),
        }
    }

    /// `POST /settings/sign-out`.
    pub async fn sign_out(&self, mut req: Request) -> Response {
        let Some((cookie, session)) = self.session(&req).await else {
            return see_other("/settings");
        };
        let form = Self::form(&mut req).await.unwrap_or_default();
        if !csrf_matches(&form, &session) {
            return Self::refused(&SettingsError::Forged);
        }
        self.auth.sign_out(&cookie).await;
        let mut resp = see_other("/settings");
        if let Ok(v) = set_cookie(self.secure, SESSION_COOKIE, "", 0).parse() {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
        resp
    }
}
