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
//! - **Both** HTML-derived and plain text are tidied ([`tidy`]): invisible characters (zero-width
//!   spaces, soft hyphens, preheader padding) removed, no-break spaces made plain, trailing
//!   blanks cut, runs of blank lines collapsed to one.
//! - **Optionally** ([`TextOptions::collapse_quotes`], off by default) quoted replies and
//!   signatures are collapsed to one line each ([`collapse_quotes`]).
//! - The result is cut into windows by characters ([`page_with`]) with a continuation offset.

use std::{cell::RefCell, ops::Deref, rc::Rc};

use html2text::{Comment, Element, Handle};

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

// ---------------------------------------------------------------------------------------------
// HTML

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
        clean_children(&dom.document, 0);
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
/// tables are left to render as tables; see [`relayout_table`].)
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

/// A DOM node of html2text's tree (the type is public but not named by the crate).
type Node = <Handle as Deref>::Target;

/// Elements whose content is never text for a reader.
const DROPPED_ELEMENTS: &[&str] = &[
    "script", "style", "head", "title", "meta", "link", "template", "iframe", "object", "embed",
    "audio", "video", "canvas", "map", "base",
];

/// Elements that make a table cell a layout cell rather than a data cell.
const BLOCK_ELEMENTS: &[&str] = &[
    "table",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "ul",
    "ol",
    "dl",
    "blockquote",
    "pre",
    "hr",
];

/// A data cell holds at most this many characters of text (more reads better as a block).
const DATA_CELL_MAX_CHARS: usize = 120;

fn tag(node: &Handle) -> Option<String> {
    match &node.data {
        Element { name, .. } => Some(name.local.deref().to_ascii_lowercase()),
        _ => None,
    }
}

fn attr(node: &Handle, key: &str) -> Option<String> {
    match &node.data {
        Element { attrs, .. } => attrs
            .borrow()
            .iter()
            .find(|a| a.name.local.deref().eq_ignore_ascii_case(key))
            .map(|a| a.value.to_string()),
        _ => None,
    }
}

/// The declarations of an element's `style` attribute, lowercased, without blanks.
fn style_decls(node: &Handle) -> Vec<(String, String)> {
    attr(node, "style")
        .unwrap_or_default()
        .to_ascii_lowercase()
        .split(';')
        .filter_map(|decl| decl.split_once(':'))
        .map(|(k, v)| {
            let strip = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
            (strip(k), strip(v).replace("!important", ""))
        })
        .collect()
}

/// A CSS or attribute length of at most one pixel ("0", "1", "1px", "0.5px").
fn at_most_one_px(value: &str) -> bool {
    value
        .trim()
        .trim_end_matches("px")
        .parse::<f64>()
        .is_ok_and(|v| v <= 1.0)
}

fn is_hidden(node: &Handle) -> bool {
    if attr(node, "hidden").is_some() {
        return true;
    }
    let decls = style_decls(node);
    let has =
        |prop: &str, pred: &dyn Fn(&str) -> bool| decls.iter().any(|(k, v)| k == prop && pred(v));
    has("display", &|v| v == "none")
        || has("visibility", &|v| v == "hidden")
        || (has("max-height", &at_most_one_px) && has("overflow", &|v| v == "hidden"))
}

/// Tracking pixels and images without alt text (which would show as nothing, or as an empty
/// link).
fn is_noise_image(node: &Handle) -> bool {
    let decls = style_decls(node);
    let tiny = |dim: &str| {
        attr(node, dim).is_some_and(|v| at_most_one_px(&v))
            || decls.iter().any(|(k, v)| k == dim && at_most_one_px(v))
    };
    let no_alt = attr(node, "alt").is_none_or(|alt| alt.trim().is_empty());
    tiny("width") || tiny("height") || no_alt
}

fn drop_node(node: &Handle) -> bool {
    match &node.data {
        Comment { .. } => true,
        Element { .. } => {
            let name = tag(node).unwrap_or_default();
            DROPPED_ELEMENTS.contains(&name.as_str())
                || is_hidden(node)
                || (name == "img" && is_noise_image(node))
        }
        _ => false,
    }
}

/// Elements deeper than this are left as they are: cleaning recurses, and mail can nest
/// elements many thousands deep (html2text itself renders such trees without recursion).
const MAX_CLEAN_DEPTH: usize = 128;

/// Cleans `node`'s subtree in place: drops noise, rewrites links, linearises layout tables.
fn clean_children(node: &Handle, depth: usize) {
    if depth > MAX_CLEAN_DEPTH {
        return;
    }
    let children = node.children.take();
    let mut kept = Vec::with_capacity(children.len());
    for child in children {
        if drop_node(&child) {
            continue;
        }
        let name = tag(&child);
        if name.as_deref() == Some("table") {
            kept.extend(relayout_table(&child, depth + 1));
            continue;
        }
        clean_children(&child, depth + 1);
        if name.as_deref() == Some("a") {
            // A link left with nothing to click (its pixel or empty image removed) goes.
            if child.children.borrow().is_empty() {
                continue;
            }
            strip_tracking_params(&child);
        }
        kept.push(child);
    }
    adopt(node, kept);
}

fn adopt(parent: &Handle, children: Vec<Handle>) {
    for child in &children {
        child.parent.set(Some(Rc::downgrade(parent)));
    }
    *parent.children.borrow_mut() = children;
}

/// A new, empty html element `local` (its namespace taken from `like`, an element).
fn new_element(like: &Handle, local: &str) -> Option<Handle> {
    let Element { name, .. } = &like.data else {
        return None;
    };
    let mut name = name.clone();
    name.local = local.into();
    Some(Node::new(Element {
        name,
        attrs: RefCell::new(Vec::new()),
        template_contents: RefCell::new(None),
        mathml_annotation_xml_integration_point: false,
    }))
}

/// Takes the rows out of a table (through thead/tbody/tfoot, not into nested tables), and its
/// caption. Taken, not borrowed: html2text's DOM empties the subtree of a node it drops, so
/// anything moved elsewhere must be detached from the table first.
fn take_rows(table: &Handle) -> (Option<Handle>, Vec<Handle>) {
    let mut caption = None;
    let mut rows = Vec::new();
    for child in table.children.take() {
        match tag(&child).as_deref() {
            Some("tr") => rows.push(child),
            Some("thead" | "tbody" | "tfoot") => rows.extend(
                child
                    .children
                    .take()
                    .into_iter()
                    .filter(|c| tag(c).as_deref() == Some("tr")),
            ),
            Some("caption") => caption = Some(child),
            _ => {}
        }
    }
    (caption, rows)
}

fn row_cells(row: &Handle) -> Vec<Handle> {
    row.children
        .borrow()
        .iter()
        .filter(|c| matches!(tag(c).as_deref(), Some("td" | "th")))
        .cloned()
        .collect()
}

/// The visible text of a subtree, roughly (for deciding what a cell is, not for output).
fn rough_text(node: &Handle) -> String {
    let mut html = Vec::new();
    if node.serialize(&mut html).is_err() {
        return String::new();
    }
    strip_tags(&String::from_utf8_lossy(&html))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether any element below `node` satisfies `pred` (without recursion: see
/// [`MAX_CLEAN_DEPTH`]).
fn any_descendant(node: &Handle, pred: impl Fn(&Handle, &str) -> bool) -> bool {
    let mut stack: Vec<Handle> = node.children.borrow().clone();
    while let Some(n) = stack.pop() {
        if tag(&n).is_some_and(|t| pred(&n, &t)) {
            return true;
        }
        stack.extend(n.children.borrow().iter().cloned());
    }
    false
}

fn contains_block(node: &Handle) -> bool {
    any_descendant(node, |_, t| BLOCK_ELEMENTS.contains(&t))
}

fn has_visible_content(cell: &Handle) -> bool {
    !rough_text(cell).is_empty() || any_descendant(cell, |n, t| t == "img" && !is_noise_image(n))
}

/// A row of short, block-free cells, at least two of them filled: tabular data.
fn is_data_row(filled: &[Handle]) -> bool {
    filled.len() >= 2
        && filled.iter().all(|cell| {
            !contains_block(cell) && rough_text(cell).chars().count() <= DATA_CELL_MAX_CHARS
        })
}

/// A table's replacement: runs of data rows stay tables; every filled cell of any other row
/// becomes a block of its own, in reading order.
fn relayout_table(table: &Handle, depth: usize) -> Vec<Handle> {
    let mut out = Vec::new();
    let mut data_rows: Vec<Handle> = Vec::new();
    let flush = |data_rows: &mut Vec<Handle>, out: &mut Vec<Handle>| {
        if data_rows.is_empty() {
            return;
        }
        let (new_table, Some(body)) = (Node::new(table.data.clone()), new_element(table, "tbody"))
        else {
            return;
        };
        for row in data_rows.iter() {
            clean_children(row, depth + 1);
        }
        adopt(&body, std::mem::take(data_rows));
        adopt(&new_table, vec![body]);
        out.push(new_table);
    };
    let (caption, rows) = take_rows(table);
    if let Some(caption) = caption {
        out.extend(block_of(table, &caption, depth));
    }
    for row in rows {
        if is_hidden(&row) {
            continue;
        }
        let filled: Vec<Handle> = row_cells(&row)
            .into_iter()
            .filter(|c| !is_hidden(c) && has_visible_content(c))
            .collect();
        if is_data_row(&filled) {
            data_rows.push(row);
            continue;
        }
        flush(&mut data_rows, &mut out);
        for cell in filled {
            out.extend(block_of(table, &cell, depth));
        }
    }
    flush(&mut data_rows, &mut out);
    out
}

/// A `div` holding `from`'s (cleaned) children.
fn block_of(like: &Handle, from: &Handle, depth: usize) -> Option<Handle> {
    let div = new_element(like, "div")?;
    adopt(&div, from.children.take());
    clean_children(&div, depth + 1);
    let empty = div.children.borrow().is_empty();
    (!empty).then_some(div)
}

/// Removes `utm_*` and similar campaign-tracking parameters from a link's `href`.
fn strip_tracking_params(link: &Handle) {
    let Element { attrs, .. } = &link.data else {
        return;
    };
    for a in attrs.borrow_mut().iter_mut() {
        if !a.name.local.deref().eq_ignore_ascii_case("href") {
            continue;
        }
        let Ok(mut url) = url::Url::parse(&a.value) else {
            continue;
        };
        if !matches!(url.scheme(), "http" | "https") || url.query().is_none() {
            continue;
        }
        let is_tracking = |k: &str| {
            let k = k.to_ascii_lowercase();
            k.starts_with("utm_") || matches!(k.as_str(), "mc_cid" | "mc_eid" | "_hsenc" | "_hsmi")
        };
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| !is_tracking(k))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if pairs.len() == url.query_pairs().count() {
            continue;
        }
        if pairs.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        a.value = url.as_str().into();
    }
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

// ---------------------------------------------------------------------------------------------
// Text

/// Characters that take room but show nothing: zero-width space and non-joiner, word joiner,
/// BOM, combining grapheme joiner, soft hyphen (newsletters pad preheaders with them). The
/// zero-width *joiner* stays: emoji sequences need it.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}' | '\u{200C}' | '\u{2060}' | '\u{FEFF}' | '\u{034F}' | '\u{00AD}'
    )
}

/// Normalises any body text: CRLF to LF, invisible characters removed, no-break spaces made
/// plain, trailing blanks cut (but for the `-- ` signature delimiter), runs of blank lines
/// collapsed to one, blank lines at the start and the end removed.
#[must_use]
pub fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0usize;
    for line in text.lines() {
        let line: String = line
            .chars()
            .filter(|c| !is_invisible(*c))
            .map(|c| if c == '\u{00A0}' { ' ' } else { c })
            .collect();
        // The signature delimiter keeps its trailing space (RFC 3676 §4.3).
        let line = if line == "-- " {
            line.as_str()
        } else {
            line.trim_end()
        };
        if line.is_empty() {
            blank_run += 1;
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
            if blank_run > 0 {
                out.push('\n');
            }
        }
        blank_run = 0;
        out.push_str(line);
    }
    out
}

/// Lines of quoted text kept as they are: shorter quotes are the context of an inline answer.
const MIN_COLLAPSED_QUOTE_LINES: usize = 3;
/// A "signature" longer than this is not one (a `--` used as a divider in a long text).
const MAX_SIGNATURE_LINES: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hidden {
    Quote,
    Signature,
}

/// Collapses quoted history and signatures, each to one line: `[quoted text: N lines hidden]`,
/// `[signature: N lines hidden]` (N counts the lines of the text given, blank ones included).
///
/// - **Quoted text:** a run of `>` lines (blank lines inside it included) of at least
///   three quoted lines, with the attribution line(s) before it ("On … wrote:", "Am … schrieb:",
///   "Le … a écrit :"). Shorter quotes stay: in an inline reply they are what is answered.
///   HTML `<blockquote>`s arrive here as `>` lines.
/// - **Outlook-style history:** from a `From:` header block (with `Sent:`/`Date:`, `To:` or
///   `Subject:` in the next lines; also German and French; with the
///   `-----Original Message-----` or `_____` line before it) to the end of the text. A
///   forwarded message ("Forwarded message", "Begin forwarded message") is content and stays.
/// - **Signature:** from a line that is `-- ` (or `--`) to the next hidden part or the end, at
///   most 20 lines.
///
/// Link footnotes (`[n]: url`) at the end stay, except those only hidden text referred to.
/// Nothing is collapsed that would leave no visible text.
#[must_use]
pub fn collapse_quotes(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let body_end = footnote_tail(&lines);
    let mut hidden: Vec<Option<Hidden>> = vec![None; body_end];

    mark_outlook_history(&lines[..body_end], &mut hidden);
    mark_quotes(&lines[..body_end], &mut hidden);
    mark_signatures(&lines[..body_end], &mut hidden);

    let visible_content = lines[..body_end]
        .iter()
        .zip(&hidden)
        .any(|(line, h)| h.is_none() && !line.trim().is_empty());
    if !visible_content {
        return text.to_owned();
    }

    let mut out: Vec<String> = Vec::with_capacity(lines.len());
    let mut i = 0;
    while i < body_end {
        match hidden[i] {
            None => {
                out.push(lines[i].to_owned());
                i += 1;
            }
            Some(kind) => {
                let start = i;
                while i < body_end && hidden[i] == Some(kind) {
                    i += 1;
                }
                let n = i - start;
                let label = match kind {
                    Hidden::Quote => "quoted text",
                    Hidden::Signature => "signature",
                };
                let plural = if n == 1 { "line" } else { "lines" };
                out.push(format!("[{label}: {n} {plural} hidden]"));
            }
        }
    }
    let visible = out.join("\n");
    out.push(String::new());
    for line in &lines[body_end..] {
        let referenced =
            footnote_number(line).is_some_and(|n| visible.contains(&format!("][{n}]")));
        if referenced {
            out.push((*line).to_owned());
        }
    }
    tidy(&out.join("\n"))
}

/// The `N` of a link footnote line `[N]: url`.
fn footnote_number(line: &str) -> Option<&str> {
    let rest = line.strip_prefix('[')?;
    let (n, after) = rest.split_once("]: ")?;
    (!n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) && !after.is_empty()).then_some(n)
}

/// Where the trailing block of link footnotes (and the blank lines among them) starts:
/// `lines.len()` when there is none.
fn footnote_tail(lines: &[&str]) -> usize {
    let mut start = lines.len();
    while start > 0 {
        let line = lines[start - 1];
        let footnote = footnote_number(line).is_some();
        if footnote || (line.trim().is_empty() && start < lines.len()) {
            start -= 1;
        } else {
            break;
        }
    }
    start
}

fn is_quoted(line: &str) -> bool {
    line.trim_start().starts_with('>')
}

/// The last line of an attribution: "On … wrote:", "Am … schrieb:", "Le … a écrit :" and the
/// like.
fn is_attribution_end(line: &str) -> bool {
    let line = line.trim().to_lowercase();
    if !line.ends_with(':') {
        return false;
    }
    [
        "wrote",
        "writes",
        "schrieb",
        "écrit",
        "escribió",
        "scritto",
        "scrisse",
        "skrev",
        "schreef",
        "napisał",
        "kirjoitti",
        "escreveu",
        "написал",
        "寫道",
        "写道",
        "書きました",
    ]
    .iter()
    .any(|w| line.contains(w))
}

fn mark_quotes(lines: &[&str], hidden: &mut [Option<Hidden>]) {
    let mut i = 0;
    while i < lines.len() {
        if !is_quoted(lines[i]) || hidden[i].is_some() {
            i += 1;
            continue;
        }
        // The run: quoted lines and blank lines between them.
        let start = i;
        let mut end = i + 1;
        let mut quoted = 1;
        let mut j = i + 1;
        while j < lines.len() && hidden[j].is_none() {
            if is_quoted(lines[j]) {
                quoted += 1;
                end = j + 1;
            } else if !lines[j].trim().is_empty() {
                break;
            }
            j += 1;
        }
        i = end;
        if quoted < MIN_COLLAPSED_QUOTE_LINES {
            continue;
        }
        // The attribution: up to three lines ending in "wrote:", at most one blank line away.
        let mut first = start;
        let mut k = start;
        if k > 0 && lines[k - 1].trim().is_empty() {
            k -= 1;
        }
        if k > 0 && is_attribution_end(lines[k - 1]) && hidden[k - 1].is_none() {
            first = k - 1;
            // A wrapped attribution ("On …, Name <" / "address> wrote:").
            let opens = |line: &str| {
                let head = line.trim_start();
                ["On ", "Am ", "Le ", "El ", "Il ", "Op "]
                    .iter()
                    .any(|p| head.starts_with(p))
            };
            if !opens(lines[first])
                && first > 0
                && opens(lines[first - 1])
                && hidden[first - 1].is_none()
            {
                first -= 1;
            }
        }
        for h in &mut hidden[first..end] {
            *h = Some(Hidden::Quote);
        }
    }
}

/// A header field line of a quoted message: `From:`, `**Sent:**` (bold in HTML) and the like.
fn header_field(line: &str) -> Option<&'static str> {
    let plain: String = line.trim().chars().filter(|c| *c != '*').collect();
    let (name, value) = plain.split_once(':')?;
    if value.trim().is_empty() {
        return None;
    }
    match name.trim().to_lowercase().as_str() {
        "from" | "von" | "de" => Some("from"),
        "sent" | "date" | "gesendet" | "datum" | "envoyé" | "date d'envoi" => Some("date"),
        "to" | "an" | "à" => Some("to"),
        "subject" | "betreff" | "objet" => Some("subject"),
        "cc" => Some("cc"),
        _ => None,
    }
}

fn is_separator(line: &str) -> bool {
    let t = line.trim();
    let underscores = t.len() >= 10 && t.chars().all(|c| c == '_');
    let original = t.starts_with("---")
        && t.ends_with("---")
        && !t.to_lowercase().contains("forward")
        && t.trim_matches('-').trim().chars().any(char::is_alphabetic);
    underscores || original
}

fn is_forward_marker(line: &str) -> bool {
    let t = line.to_lowercase();
    t.contains("forwarded message")
        || t.contains("weitergeleitete nachricht")
        || t.contains("message transféré")
}

fn mark_outlook_history(lines: &[&str], hidden: &mut [Option<Hidden>]) {
    for i in 0..lines.len() {
        if header_field(lines[i]) != Some("from") {
            continue;
        }
        let next: Vec<&'static str> = lines[i + 1..lines.len().min(i + 6)]
            .iter()
            .map_while(|l| header_field(l))
            .collect();
        let has_date = next.contains(&"date");
        let has_other = next.contains(&"to") || next.contains(&"subject");
        if !(has_date && has_other) {
            continue;
        }
        let mut start = i;
        let mut k = i;
        while k > 0 && lines[k - 1].trim().is_empty() {
            k -= 1;
        }
        if k > 0 && is_forward_marker(lines[k - 1]) {
            continue;
        }
        if k > 0 && is_separator(lines[k - 1]) {
            start = k - 1;
        }
        for h in &mut hidden[start..] {
            *h = Some(Hidden::Quote);
        }
        return;
    }
}

fn mark_signatures(lines: &[&str], hidden: &mut [Option<Hidden>]) {
    let mut i = 0;
    while i < lines.len() {
        if hidden[i].is_some() || lines[i].trim_end() != "--" {
            i += 1;
            continue;
        }
        let mut end = i + 1;
        while end < lines.len() && hidden[end].is_none() {
            end += 1;
        }
        // Blank lines before the next hidden part belong to neither.
        let mut last = end;
        while last > i + 1 && lines[last - 1].trim().is_empty() {
            last -= 1;
        }
        if last - i <= MAX_SIGNATURE_LINES {
            for h in &mut hidden[i..last] {
                *h = Some(Hidden::Signature);
            }
        }
        i = end;
    }
}

// ---------------------------------------------------------------------------------------------
// Previews

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

    #[test]
    fn tidy_collapses_blank_runs_and_drops_invisible_characters() {
        assert_eq!(
            tidy(
                "\n\nHi\u{00A0}there \r\n\r\n\r\n \u{200B}\n\u{200C}x\u{00AD}y\u{FEFF}\n\n\n👨\u{200D}👩\n\n"
            ),
            "Hi there\n\nxy\n\n👨\u{200D}👩"
        );
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
    fn short_inline_quotes_stay() {
        let text = "> Is the server up?\n\nYes.\n\n> And the dashboard\n> access?\n\nDone.";
        assert_eq!(collapse_quotes(text), text);
    }

    #[test]
    fn outlook_history_is_collapsed_but_a_forward_is_not() {
        let outlook = "Figures below.\n\nClaire\n\n________________________________\n\
            **From:** Martin <m@example.org>\n**Sent:** Wednesday, November 11, 2026 4:18 PM\n\
            **To:** Claire <c@example.org>\n**Subject:** RE: Q3\n\nHi Claire,\nsend them.\n\n\
            Martin";
        assert_eq!(
            collapse_quotes(outlook),
            "Figures below.\n\nClaire\n\n[quoted text: 10 lines hidden]"
        );
        let forward = "FYI.\n\n---------- Forwarded message ---------\nFrom: Events <e@example.org>\n\
            Date: Thu, 19 Nov 2026\nSubject: Venue\nTo: Sam <s@example.org>\n\nRoom 2.";
        assert_eq!(collapse_quotes(forward), forward);
    }

    #[test]
    fn nothing_is_collapsed_when_nothing_would_be_left() {
        let only_quote = "> a\n> b\n> c\n> d";
        assert_eq!(collapse_quotes(only_quote), only_quote);
    }

    #[test]
    fn footnotes_only_hidden_text_referred_to_are_dropped() {
        let text = "See [the plan][1].\n\nOn Mon, Bob wrote:\n\n> Read [this][2]\n> and\n> that\n\n\
            [1]: https://a.example/\n[2]: https://b.example/";
        assert_eq!(
            collapse_quotes(text),
            "See [the plan][1].\n\n[quoted text: 5 lines hidden]\n\n[1]: https://a.example/"
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
