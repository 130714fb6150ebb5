//! Previews: the server's one-line summary of an email, made plain.

use super::{PREVIEW_CHARS, html::strip_tags, tidy::is_invisible};

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
    let visible: String = text.chars().filter(|c| !is_invisible(*c)).collect();
    let one_line = visible.split_whitespace().collect::<Vec<_>>().join(" ");
    one_line.chars().take(PREVIEW_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_previews_are_cleaned() {
        assert_eq!(
            clean_preview("<html><body><h1>Weekly news</h1><p>Rust <b>co"),
            "Weekly news Rust co"
        );
        assert_eq!(clean_preview("plain\n text"), "plain text");
    }
}
