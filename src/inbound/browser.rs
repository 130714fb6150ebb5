//! What a browser keeps and sends us: our cookies (names, attributes, reading), posted forms,
//! and the check that a form carries its session's CSRF token.

use poem::{Request, http::header};

use crate::domain::auth::settings::SettingsSession;

/// What is wrong with a posted form, in a sentence for the person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct FormError(pub String);

impl FormError {
    /// The problem `e` describes.
    pub(crate) fn from_display(e: impl std::fmt::Display) -> Self {
        Self(e.to_string())
    }
}

/// Largest form body we read.
pub(crate) const MAX_FORM_BYTES: usize = 16 * 1024;
/// Binds a consent form to the browser that asked for it.
pub(crate) const CONSENT_COOKIE: &str = "mc_consent";
/// Binds the upstream leg of a sign-in to the browser that started it.
pub(crate) const UPSTREAM_COOKIE: &str = "mc_upstream";

/// The settings session cookie.
pub(crate) const SESSION_COOKIE: &str = "mc_settings";
/// Binds a settings sign-in to the browser that started it.
pub(crate) const SIGN_IN_COOKIE: &str = "mc_signin";
/// Where to go after signing in, when it isn't the settings page (a review link).
pub(crate) const NEXT_COOKIE: &str = "mc_next";

/// A page a sign-in may return to: only a review page of ours (never another origin).
pub(crate) fn return_path(next: &str) -> Option<&str> {
    next.strip_prefix("/approve/")
        .and_then(crate::domain::sending::approval::ApprovalId::parse)
        .map(|_| next)
}

/// The session cookie's lifetime (the session itself lasts as long).
pub(crate) const SESSION_MAX_AGE: u32 = 30 * 60;

/// A posted form's fields.
pub(crate) type Form = std::collections::HashMap<String, String>;

/// Whether a form carries its settings session's CSRF token (compared in constant time).
pub(crate) fn csrf_matches(form: &Form, session: &SettingsSession) -> bool {
    let sent = form.get("csrf_token").map_or("", String::as_str);
    bool::from(subtle::ConstantTimeEq::ct_eq(
        sent.as_bytes(),
        session.csrf.expose_secret().as_bytes(),
    ))
}

/// Binds a notifier consent to the browser that started it.
pub(crate) const NOTIFIER_COOKIE: &str = "mc_notifier";

/// A cookie's name: `__Host-` prefixed on https (which then requires `Secure`, `Path=/` and no
/// `Domain`); a loopback http deployment can't use the prefix.
pub(crate) fn cookie_name(secure: bool, base: &str) -> String {
    if secure {
        format!("__Host-{base}")
    } else {
        base.to_owned()
    }
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, short-lived.
pub(crate) fn set_cookie(secure: bool, base: &str, value: &str, max_age: u32) -> String {
    let flag = if secure { "; Secure" } else { "" };
    format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{flag}",
        cookie_name(secure, base)
    )
}

pub(crate) fn cookie_value(req: &Request, name: &str) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

pub(crate) fn form_fields(body: &[u8]) -> std::collections::HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}
