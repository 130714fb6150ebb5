//! The HTML every page shares: escaping, the layout, and the headers that keep a page from
//! being framed, cached or scripted.

use poem::{
    Body, Response,
    http::{StatusCode, header},
};

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
pub(crate) fn page(status: StatusCode, body: String) -> Response {
    page_with_policy(
        status,
        body,
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
    )
}

/// A page with its own content security policy (the review page runs one script of ours).
pub(crate) fn page_with_policy(status: StatusCode, body: String, policy: &str) -> Response {
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

pub(crate) fn see_other(location: &str) -> Response {
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

pub(crate) fn layout(title: &str, content: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{} – mailconnect</title><style>{STYLE}</style></head><body>{content}</body></html>",
        escape(title)
    )
}

pub(crate) fn error_page(status: StatusCode, message: &str) -> Response {
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
