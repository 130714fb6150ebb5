//! Turning a message body into clean plain text an assistant can read, page by page.

use super::mail::RawBody;

/// Default characters of body per `get_email` call.
pub const DEFAULT_BODY_CHARS: u64 = 20_000;
/// Most characters of body per call (clamped).
pub const MAX_BODY_CHARS: u64 = 100_000;
/// Least characters of body per call (clamped).
pub const MIN_BODY_CHARS: u64 = 200;
/// Characters in a preview.
pub const PREVIEW_CHARS: usize = 256;

/// Where the text came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodySource {
    /// A text/plain part.
    Text,
    /// An HTML part converted to text.
    Html,
    /// No readable part.
    None,
}

/// One window of a body's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyPage {
    /// Where the text came from.
    pub source: BodySource,
    /// The text, from `offset`.
    pub text: String,
    /// The first character's offset in the whole body.
    pub offset: u64,
    /// Characters in the whole body.
    pub total_chars: u64,
    /// Where the next window starts, when more follows.
    pub next_offset: Option<u64>,
}

/// Converts HTML to readable text: links as numbered footnotes, no styles, scripts or pixels.
#[must_use]
pub fn html_to_text(html: &str) -> String {
    const WIDTH: usize = 200;
    html2text::config::plain()
        .link_footnotes(true)
        .empty_img_mode(html2text::config::ImageRenderMode::IgnoreEmpty)
        .string_from_read(html.as_bytes(), WIDTH)
        .unwrap_or_else(|_| strip_tags(html))
        .trim()
        .to_owned()
}

/// Tags become spaces and common entities are decoded: for previews, which servers cut
/// anywhere (even inside a tag), and as a last resort when HTML can't be parsed at all.
fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    for (entity, plain) in [
        ("&nbsp;", " "),
        ("&lt;", "<"),
        ("&gt;", ">"),
        ("&quot;", "\""),
        ("&#39;", "'"),
        ("&amp;", "&"),
    ] {
        out = out.replace(entity, plain);
    }
    out
}

/// Cuts the body to `[offset, offset + max_chars)` in characters (not bytes), so a client can
/// page through it with `next_offset` and never gets a broken character.
#[must_use]
pub fn page(body: &RawBody, offset: u64, max_chars: u64) -> BodyPage {
    let (source, text) = match body {
        RawBody::Text(text) => (BodySource::Text, normalize_newlines(text)),
        RawBody::Html(html) => (BodySource::Html, html_to_text(html)),
        RawBody::None => (BodySource::None, String::new()),
    };
    let max_chars = max_chars.clamp(MIN_BODY_CHARS, MAX_BODY_CHARS);
    let total_chars = text.chars().count() as u64;
    let offset = offset.min(total_chars);
    let window: String = text
        .chars()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(max_chars).unwrap_or(usize::MAX))
        .collect();
    let end = offset + window.chars().count() as u64;
    BodyPage {
        source,
        text: window,
        offset,
        total_chars,
        next_offset: (end < total_chars).then_some(end),
    }
}

fn normalize_newlines(text: &str) -> String {
    text.replace("\r\n", "\n").trim_end().to_owned()
}

/// A one-line plain-text preview. Some servers (Cyrus) give raw HTML as the preview of
/// HTML-only mail; that is converted here.
#[must_use]
pub fn clean_preview(preview: &str) -> String {
    let looks_like_html = preview.trim_start().starts_with('<') && preview.contains('>');
    let text = if looks_like_html {
        strip_tags(preview)
    } else {
        preview.to_owned()
    };
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    one_line.chars().take(PREVIEW_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEWSLETTER: &str = "<html><head><style>h1{color:red}</style><script>alert(1)</script></head>\
        <body><h1>Weekly news</h1><p>Rust 2024 edition is <b>coming</b>.</p>\
        <img src=\"https://t.example/pixel.gif\" width=1 height=1>\
        <p><a href=\"https://example.org/unsub\">Unsubscribe</a></p></body></html>";

    #[test]
    fn html_becomes_text_with_link_footnotes_and_no_noise() {
        let text = html_to_text(NEWSLETTER);
        assert!(text.contains("Weekly news"), "{text}");
        assert!(text.contains("Rust 2024 edition is"), "{text}");
        assert!(text.contains("https://example.org/unsub"), "{text}");
        for noise in ["color:red", "alert(1)", "pixel.gif", "<p>"] {
            assert!(!text.contains(noise), "{noise} leaked into {text}");
        }
    }

    #[test]
    fn pages_by_characters_not_bytes() {
        let body = RawBody::Text("Grüße ".repeat(100));
        let first = page(&body, 0, 200);
        assert_eq!(first.text.chars().count(), 200);
        assert_eq!(first.next_offset, Some(200));
        let rest = page(&body, 200, 1000);
        assert_eq!(rest.next_offset, None);
        assert_eq!(
            format!("{}{}", first.text, rest.text),
            "Grüße ".repeat(100).trim_end()
        );
    }

    #[test]
    fn an_offset_past_the_end_is_an_empty_last_page() {
        let p = page(&RawBody::Text("short".into()), 99, 500);
        assert_eq!((p.text.as_str(), p.offset, p.next_offset), ("", 5, None));
    }

    #[test]
    fn html_previews_are_cleaned() {
        assert_eq!(
            clean_preview("<html><body><h1>Weekly news</h1><p>Rust <b>co"),
            "Weekly news Rust co"
        );
        assert_eq!(clean_preview("plain\n text"), "plain text");
    }
}
