//! Tables laid out for reading: a layout table's cells become blocks in reading order (a
//! two-column newsletter reads top to bottom), while runs of rows of short cells stay a table
//! (receipts, statements).

use html2text::Handle;

use super::{
    clean::{Node, adopt, clean_children, is_hidden, is_noise_image, new_element, tag},
    strip_tags,
};

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
/// [`super::clean::MAX_CLEAN_DEPTH`]).
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
pub(super) fn relayout_table(table: &Handle, depth: usize) -> Vec<Handle> {
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
