//! HTML to text: parsed by html5ever (through html2text), cleaned (see `clean`), rendered
//! with links as numbered footnotes, its tables made compact rows — or, HTML too deep to parse
//! in reasonable time, stripped of its tags.

mod clean;
mod tables;

use super::tidy::tidy;

/// Converts HTML to readable text: links as numbered footnotes; no styles, scripts, comments,
/// hidden elements or tracking pixels; layout tables linearised (see the module docs).
#[must_use]
pub fn html_to_text(html: &str) -> String {
    const WIDTH: usize = 200;
    if nesting_depth_estimate(html) > MAX_PARSE_DEPTH {
        return fallback_text(html);
    }
    let config = html2text::config::plain()
        .link_footnotes(true)
        .empty_img_mode(html2text::config::ImageRenderMode::IgnoreEmpty);
    let rendered = config.parse_html(html.as_bytes()).and_then(|dom| {
        clean::clean_children(&dom.document, 0);
        config.render_to_string(config.dom_to_render_tree(&dom)?, WIDTH)
    });
    match rendered {
        Ok(text) => tidy(&compact_tables(&text)),
        Err(_) => fallback_text(html),
    }
}

/// Text from HTML that is not rendered: tags stripped, blanks collapsed.
fn fallback_text(html: &str) -> String {
    let text = strip_tags(html);
    let lines: Vec<String> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    tidy(&lines.join("\n"))
}

/// HTML nested deeper than this is not parsed: html5ever's tree builder takes time that grows
/// with the square of the depth (100,000 nested `div`s, 600 KB: ~35 s of CPU in a release
/// build), so such HTML — never real mail — gets the tag-stripping fallback instead.
const MAX_PARSE_DEPTH: usize = 4_000;

/// Elements that do not deepen the tree: void elements, and those whose end tag may be left
/// out (counting them would make ordinary tables and lists look deep).
const NON_NESTING: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr", "p", "li", "dt", "dd", "tr", "td", "th", "tbody", "thead", "tfoot", "option",
    "colgroup", "caption", "rb", "rt", "rp",
];

/// An upper estimate of how deep elements nest, from start and end tags alone, in one pass.
fn nesting_depth_estimate(html: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut rest = html;
    while let Some(at) = rest.find('<') {
        rest = &rest[at + 1..];
        let (closing, tag) = match rest.strip_prefix('/') {
            Some(tag) => (true, tag),
            None => (false, rest),
        };
        let len = tag.bytes().take_while(u8::is_ascii_alphanumeric).count();
        let name = tag[..len].to_ascii_lowercase();
        if name.is_empty() || NON_NESTING.contains(&name.as_str()) {
            continue;
        }
        if closing {
            depth = depth.saturating_sub(1);
        } else {
            depth += 1;
            deepest = deepest.max(depth);
        }
    }
    deepest
}

fn is_box_drawing(c: char) -> bool {
    ('\u{2500}'..='\u{257F}').contains(&c)
}

/// Tables as compact rows: html2text draws them with box-drawing borders and pads cells to
/// column widths; here border lines go and each row becomes `cell | cell | cell`. (Only data
/// tables are left to render as tables; see [`tables::relayout_table`].)
fn compact_tables(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let content = line.trim_start_matches(['>', ' ']);
        if !content.is_empty() && content.chars().all(|c| c == ' ' || is_box_drawing(c)) {
            continue;
        }
        if line.contains('\u{2502}') {
            let mut cells: Vec<&str> = line.split('\u{2502}').map(str::trim).collect();
            while cells.last().is_some_and(|c| c.is_empty()) {
                cells.pop();
            }
            out.push_str(&cells.join(" | "));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// Tags become spaces and common entities are decoded: for previews, which servers cut
/// anywhere (even inside a tag), and as a last resort when HTML can't be parsed at all.
pub(super) fn strip_tags(html: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::{clean::MAX_CLEAN_DEPTH, *};

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
    fn simple_html_renders_as_it_always_did() {
        // The seeded testbed newsletter (snapshots/get_email_html_only.snap).
        let html = "<html><body><h1>Weekly news</h1><p>Rust 2024 edition is <b>coming</b>.</p>\
            <p><a href=\"https://example.org/unsub\">Unsubscribe</a></p></body></html>";
        assert_eq!(
            html_to_text(html),
            "# Weekly news\n\nRust 2024 edition is **coming**.\n\n[Unsubscribe][1]\n\n\
             [1]: https://example.org/unsub"
        );
    }

    fn html_text(body: &str) -> String {
        html_to_text(&format!("<html><body>{body}</body></html>"))
    }

    #[test]
    fn tracking_pixels_hidden_text_and_comments_never_reach_the_text() {
        let text = html_text(
            "<div style=\"display: none !important; max-height:0\">Preheader&zwnj;&nbsp;&zwnj;</div>\
             <span style=\"max-height:0px;overflow:hidden\">also hidden</span>\
             <p hidden>hidden too</p><!-- a comment --><!--[if mso]><p>Outlook only</p><![endif]-->\
             <p>Visible</p>\
             <img src=\"https://t.example/a.gif\" width=\"1\" height=\"1\" alt=\"tracking\">\
             <img src=\"https://t.example/b.gif\" style=\"width:1px;height:1px\" alt=\".\">\
             <img src=\"https://t.example/c.gif\" width=\"0\" alt=\"x\">\
             <a href=\"https://t.example/click\"><img src=\"https://t.example/d.png\"></a>\
             <noscript><img src=\"https://t.example/e.gif\" width=1 height=1></noscript>",
        );
        assert_eq!(text, "Visible");
    }

    #[test]
    fn deeply_nested_mail_neither_overflows_the_stack_nor_loses_text() {
        // Far deeper than the cleaning goes (html2text's own time grows with the square of
        // the depth, so not deeper than needed).
        let depth = 3 * MAX_CLEAN_DEPTH;
        let html = format!(
            "{}<table><tr><td><h2>deep</h2></td><td>cell</td></tr></table>{}<p>after</p>",
            "<div><span>".repeat(depth),
            "</span></div>".repeat(depth)
        );
        let text = html_to_text(&html);
        assert!(text.contains("deep") && text.contains("cell"), "{text}");
        assert!(text.ends_with("after"), "{text}");
    }

    #[test]
    fn pathologically_deep_html_is_not_parsed() {
        let depth = 100_000;
        let html = format!(
            "{}deep text{}",
            "<div>".repeat(depth),
            "</div>".repeat(depth)
        );
        let start = std::time::Instant::now();
        assert_eq!(html_to_text(&html), "deep text");
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(
            nesting_depth_estimate("<p>a<p>b<br><table><tr><td>c</table>"),
            1
        );
    }

    #[test]
    fn images_with_alt_text_stay() {
        let text = html_text(
            "<a href=\"https://x.example/\"><img src=\"l.png\" alt=\"Logo\" width=\"120\"></a>",
        );
        assert_eq!(text, "[[Logo]][1]\n\n[1]: https://x.example/");
    }

    #[test]
    fn layout_tables_read_top_to_bottom_and_data_tables_stay_rows() {
        let text = html_text(
            "<table role=\"presentation\"><tr>\
               <td><h2>Left story</h2><p>Left text.</p></td>\
               <td><h2>Right story</h2><p>Right text.</p></td>\
             </tr></table>\
             <table><tr><th>Item</th><th>Qty</th><th>Price</th></tr>\
             <tr><td>Teapot</td><td>1</td><td>€39.00</td></tr></table>",
        );
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.contains(&"## Left story"), "{text}");
        assert!(lines.contains(&"Left text."), "{text}");
        assert!(lines.contains(&"Right text."), "{text}");
        let row = lines.iter().find(|l| l.contains("Teapot")).unwrap_or(&"");
        assert!(row.contains('1') && row.contains("€39.00"), "{text}");
        assert!(!text.contains('─') && !text.contains('│'), "{text}");
    }

    #[test]
    fn campaign_parameters_are_removed_from_links() {
        let text = html_text(
            "<a href=\"https://x.example/a?id=7&amp;utm_source=nl&amp;utm_campaign=w1\">A</a>\
             <a href=\"https://x.example/b?utm_medium=email\">B</a>\
             <a href=\"https://x.example/c?q=1\">C</a>",
        );
        assert!(text.contains("[1]: https://x.example/a?id=7\n"), "{text}");
        assert!(text.contains("[2]: https://x.example/b\n"), "{text}");
        assert!(text.ends_with("[3]: https://x.example/c?q=1"), "{text}");
    }
}
