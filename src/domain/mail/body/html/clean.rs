//! Cleaning the parsed DOM before it is rendered: noise dropped (scripts, styles, comments,
//! hidden elements, tracking pixels, images without alt text), links stripped of campaign
//! tracking, tables handed to `tables` to be laid out for reading.

use std::{cell::RefCell, ops::Deref, rc::Rc};

use html2text::{Comment, Element, Handle};

use super::tables::relayout_table;

/// A DOM node of html2text's tree (the type is public but not named by the crate).
pub(super) type Node = <Handle as Deref>::Target;

/// Elements whose content is never text for a reader.
const DROPPED_ELEMENTS: &[&str] = &[
    "script", "style", "head", "title", "meta", "link", "template", "iframe", "object", "embed",
    "audio", "video", "canvas", "map", "base",
];

pub(super) fn tag(node: &Handle) -> Option<String> {
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

pub(super) fn is_hidden(node: &Handle) -> bool {
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
pub(super) fn is_noise_image(node: &Handle) -> bool {
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
pub(super) const MAX_CLEAN_DEPTH: usize = 128;

/// Cleans `node`'s subtree in place: drops noise, rewrites links, linearises layout tables.
pub(super) fn clean_children(node: &Handle, depth: usize) {
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

pub(super) fn adopt(parent: &Handle, children: Vec<Handle>) {
    for child in &children {
        child.parent.set(Some(Rc::downgrade(parent)));
    }
    *parent.children.borrow_mut() = children;
}

/// A new, empty html element `local` (its namespace taken from `like`, an element).
pub(super) fn new_element(like: &Handle, local: &str) -> Option<Handle> {
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
