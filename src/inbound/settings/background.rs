//! The settings page's background-notification controls: per connection that may hear about
//! new mail, a destination (a Standard Webhooks endpoint, with a signing secret shown once in
//! the form, or Poke's inbound API with the person's key), on and off, and the last delivery.
//! Destinations and on/off are set here only: an assistant can never point notifications
//! somewhere else.

use std::{fmt::Write as _, sync::Arc};

use poem::{Request, Response, http::StatusCode, http::header};

use super::{Settings, time};
use crate::{
    domain::{
        auth::{settings::SettingsError, token::random_value},
        grant::Capability,
        notify::delivery::{Destination, WebhookSecret, WebhookUrl},
        ports::{AuditLog, ClientStore, FlowStore, MailStore, Policy, TokenVault, UpstreamAuth},
        secret::SecretString,
        service::TurnOn,
    },
    inbound::{
        BackgroundDesk,
        browser::{FormError, NOTIFIER_COOKIE, csrf_matches, set_cookie},
        html::{error_page, escape, see_other},
    },
};

/// What background delivery means for the person, in the words of the privacy section.
const WHAT_CHANGES: &str = "You approve a separate <em>mailconnect notifier</em> connection at your mail provider. \
Its token is sealed under the notifier key, which the mailconnect notifier holds so it can watch for new mail while you're away. \
It sees only new messages' sender, subject and time, and sends those to the destination below, marked as untrusted text. \
It can't read bodies, change or send mail, and no AI client can use it. Turn it off here, or revoke \"mailconnect notifier\" at your provider, and it is deleted.";

/// The background part of a connection's box.
pub(super) async fn section(
    setup: &dyn BackgroundDesk,
    g: &crate::domain::ports::GrantSummary,
    csrf: &str,
) -> String {
    let id = escape(g.grant.as_str());
    let csrf = escape(csrf);
    let mut html = String::from("<details><summary>Background notifications</summary>");
    let status = setup.status(&g.grant).await;
    if status.is_none() && !g.capabilities.allows(Capability::Notify) {
        html.push_str("<p>Turn on <em>Hear about new mail</em> first.</p></details>");
        return html;
    }
    match status {
        Some(on) => {
            let last = on.last.map_or_else(
                || "none yet".to_owned(),
                |l| format!("{} — {}", l.at.format("%Y-%m-%d %H:%M UTC"), l.detail),
            );
            let _ = write!(
                html,
                "<p class=\"background-on\">On: new mail goes to <strong>{}</strong> ({}) since {}.</p>\
<p>Last delivery: <span class=\"last-delivery\">{}</span></p>\
<form method=\"post\" action=\"/settings/connections/{id}/background/off\"><input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\
<button type=\"submit\">Turn off background notifications</button></form>",
                escape(&on.target),
                escape(&on.kind),
                time(on.since.timestamp()),
                escape(&last),
            );
        }
        None => {
            // Shown once: the secret is sealed to the notifier on saving and never shown again.
            let secret = WebhookSecret::generate().to_whsec();
            let _ = write!(
                html,
                "<p>{WHAT_CHANGES}</p>\
<form method=\"post\" action=\"/settings/connections/{id}/background\"><input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\
<p><label><input type=\"radio\" name=\"kind\" value=\"webhook\" checked> A webhook (Standard Webhooks, signed)</label></p>\
<p><label>Webhook URL (https) <input type=\"url\" name=\"url\" placeholder=\"https://\"></label></p>\
<p><label>Signing secret — copy it into your receiver now, it isn't shown again <input type=\"text\" name=\"secret\" value=\"{}\" readonly></label></p>\
<p><label><input type=\"radio\" name=\"kind\" value=\"poke\"> Poke</label></p>\
<p><label>Poke API key <input type=\"password\" name=\"poke_key\" autocomplete=\"off\"></label></p>\
<button type=\"submit\">Turn on background notifications</button></form>",
                escape(secret.expose_secret()),
            );
        }
    }
    html.push_str("</details>");
    html
}

/// The destination a form names.
fn destination(
    form: &std::collections::HashMap<String, String>,
    allow_insecure: bool,
) -> Result<Destination, FormError> {
    let field = |name: &str| form.get(name).map_or("", |v| v.trim());
    match field("kind") {
        "webhook" => Ok(Destination::Webhook {
            url: WebhookUrl::parse(field("url"), allow_insecure)
                .map_err(FormError::from_display)?,
            secret: WebhookSecret::parse(field("secret")).map_err(FormError::from_display)?,
        }),
        "poke" if !field("poke_key").is_empty() => Ok(Destination::Poke {
            api_key: SecretString::new(field("poke_key")),
        }),
        "poke" => Err(FormError("Enter your Poke API key.".into())),
        _ => Err(FormError("Choose where notifications go.".into())),
    }
}

impl<V: TokenVault + Policy + AuditLog + FlowStore, C: ClientStore, U: UpstreamAuth, M: MailStore>
    Settings<V, C, U, M>
{
    fn setup(&self) -> Option<Arc<dyn BackgroundDesk>> {
        self.background.clone()
    }

    fn not_offered() -> Response {
        error_page(
            StatusCode::NOT_FOUND,
            "Background notifications are not offered on this server.",
        )
    }

    /// The grant of a signed-in person's background form, checked: their own connection, the
    /// form's CSRF token, and (`needs_notify`) allowed to hear about new mail.
    async fn background_form(
        &self,
        req: Request,
        needs_notify: bool,
    ) -> Result<
        (
            crate::domain::auth::settings::SettingsSession,
            crate::domain::grant::GrantId,
            std::collections::HashMap<String, String>,
        ),
        Response,
    > {
        let (session, grant, form, _) = self.connection_form(req).await?;
        if !csrf_matches(&form, &session) {
            return Err(Self::refused(&SettingsError::Forged));
        }
        let connections = self
            .auth
            .connections(&session)
            .await
            .map_err(|e| Self::refused(&e))?;
        let Some(c) = connections.iter().find(|c| c.summary.grant == grant) else {
            return Err(Self::refused(&SettingsError::NotFound));
        };
        if needs_notify && !c.summary.capabilities.allows(Capability::Notify) {
            return Err(error_page(
                StatusCode::BAD_REQUEST,
                "Turn on \"Hear about new mail\" for this assistant first.",
            ));
        }
        Ok((session, grant, form))
    }

    /// `POST /settings/connections/:grant/background`: on, maybe after the notifier's consent
    /// at the mail provider.
    pub async fn background_on(&self, req: Request) -> Response {
        let Some(setup) = self.setup() else {
            return Self::not_offered();
        };
        let (session, grant, form) = match self.background_form(req, true).await {
            Ok(parts) => parts,
            Err(resp) => return resp,
        };
        let destination = match destination(&form, self.allow_insecure_destinations) {
            Ok(d) => d,
            Err(why) => return error_page(StatusCode::BAD_REQUEST, &why.to_string()),
        };
        let binding = random_value();
        match setup
            .turn_on(&session.account_digest, &grant, destination, &binding)
            .await
        {
            Ok(TurnOn::Done) => see_other("/settings?done=background"),
            Ok(TurnOn::Consent(url)) => {
                let mut resp = see_other(&url);
                if let Ok(v) = set_cookie(self.secure, NOTIFIER_COOKIE, &binding, 600).parse() {
                    resp.headers_mut().append(header::SET_COOKIE, v);
                }
                resp
            }
            Err(why) => error_page(StatusCode::SERVICE_UNAVAILABLE, &why.to_string()),
        }
    }

    /// `POST /settings/connections/:grant/background/off`.
    pub async fn background_off(&self, req: Request) -> Response {
        let Some(setup) = self.setup() else {
            return Self::not_offered();
        };
        let (_, grant, _) = match self.background_form(req, false).await {
            Ok(parts) => parts,
            Err(resp) => return resp,
        };
        match setup.turn_off(&grant).await {
            Ok(()) => see_other("/settings?done=background-off"),
            Err(why) => error_page(
                StatusCode::BAD_GATEWAY,
                &format!("Background notifications are off. {why}."),
            ),
        }
    }
}
