//! Turning a message body into clean plain text an assistant can read, page by page.
//!
//! The JMAP server has already undone transfer encodings and charsets (`bodyValues`), so this
//! starts at decoded text or HTML:
//!
//! - **HTML** ([`html_to_text`]) is parsed (html5ever, through html2text) and cleaned before it
//!   is rendered: scripts, styles, comments (and the Outlook-only markup inside conditional
//!   comments), hidden elements (`display:none`, `visibility:hidden`, the `hidden` attribute,
//!   zero-height preheaders), tracking pixels (images of 1×1 or less) and images without alt
//!   text never reach the text. Layout tables are linearised — each cell of a row that holds
//!   blocks (headings, paragraphs, nested tables, lists) becomes its own block, so two-column
//!   newsletters read top to bottom — while rows of short cells stay a table (receipts,
//!   statements), rendered as compact `cell | cell` rows. Links become numbered footnotes (`[text][1]` … `[1]: url`) with `utm_*`
//!   tracking parameters removed.
//! - **Both** HTML-derived and plain text are tidied ([`tidy()`]): invisible characters
//!   (zero-width spaces, soft hyphens, preheader padding) removed, no-break spaces made plain,
//!   trailing blanks cut, runs of blank lines collapsed to one.
//! - **Optionally** ([`TextOptions::collapse_quotes`], off by default) quoted replies and
//!   signatures are collapsed to one line each ([`collapse_quotes`]).
//! - The result is cut into windows by characters ([`page_with`]) with a continuation offset.

mod html;
mod preview;
mod quotes;
mod tidy;

pub use self::{html::html_to_text, preview::clean_preview, quotes::collapse_quotes, tidy::tidy};
use crate::domain::mail::RawBody;

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

/// How a body becomes text, beyond the cleaning every body gets.
///
/// The default is the full text. Offsets ([`BodyPage::offset`], [`BodyPage::next_offset`])
/// count characters of the text *these options* produce, so a client paging through a body
/// must pass the same options with every continuation offset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TextOptions {
    /// Replace quoted history and signatures by one line each, such as
    /// `[quoted text: 42 lines hidden]` or `[signature: 6 lines hidden]` (see
    /// [`collapse_quotes`] for what counts). Meant for a `collapse_quotes` tool argument:
    /// replies shrink to what the sender wrote (the quoted messages are usually earlier emails
    /// of the same thread).
    pub collapse_quotes: bool,
}

/// The whole cleaned text of a body, and where it came from.
#[must_use]
pub fn body_text(body: &RawBody, options: TextOptions) -> (BodySource, String) {
    let (source, text) = match body {
        RawBody::Text(text) => (BodySource::Text, tidy(text)),
        RawBody::Html(html) => (BodySource::Html, html_to_text(html)),
        RawBody::None => (BodySource::None, String::new()),
    };
    let text = if options.collapse_quotes {
        collapse_quotes(&text)
    } else {
        text
    };
    (source, text)
}

/// Cuts the body to `[offset, offset + max_chars)` in characters (not bytes), so a client can
/// page through it with `next_offset` and never gets a broken character. The full text, as
/// [`body_text`] with default options.
#[must_use]
pub fn page(body: &RawBody, offset: u64, max_chars: u64) -> BodyPage {
    page_with(body, offset, max_chars, TextOptions::default())
}

/// [`page`] with [`TextOptions`]: offsets count characters of the text these options produce.
#[must_use]
pub fn page_with(body: &RawBody, offset: u64, max_chars: u64, options: TextOptions) -> BodyPage {
    let (source, text) = body_text(body, options);
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

#[cfg(test)]
mod tests {
    use super::*;

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

    const REPLY: &str = "Thursday works.\n\nJonas\n\n-- \nJonas Berg\nOffice Operations\n\n\
        On Tue, 10 Nov 2026 at 09:12, Priya Nair <priya@example.org> wrote:\n\
        > Could we meet this week?\n>\n> Priya\n>\n>> earlier\n>> history";

    #[test]
    fn default_keeps_quotes_and_collapsing_hides_them_with_a_count() {
        let (_, full) = body_text(&RawBody::Text(REPLY.into()), TextOptions::default());
        assert_eq!(full, REPLY);
        let (_, short) = body_text(
            &RawBody::Text(REPLY.into()),
            TextOptions {
                collapse_quotes: true,
            },
        );
        assert_eq!(
            short,
            "Thursday works.\n\nJonas\n\n[signature: 3 lines hidden]\n\n[quoted text: 7 lines hidden]"
        );
    }

    #[test]
    fn offsets_count_the_text_of_the_options_given() {
        let body = RawBody::Text(format!("{}\n\n{}", "Reply. ".repeat(40), REPLY));
        let options = TextOptions {
            collapse_quotes: true,
        };
        let (_, whole) = body_text(&body, options);
        let first = page_with(&body, 0, 200, options);
        let next = first.next_offset.unwrap_or_default();
        let rest = page_with(&body, next, 1000, options);
        assert_eq!(format!("{}{}", first.text, rest.text), whole);
        assert_eq!(rest.total_chars, whole.chars().count() as u64);
        assert!(page(&body, 0, 100_000).total_chars > rest.total_chars);
    }
}
