//! Body and search-hit sizes (issue "Fidelity", item 4 "Clean bodies"): over the body corpus
//! (`tests/fixtures/bodies`, decoded by a MIME parser the way the JMAP server decodes it),
//! bytes of text returned versus bytes of the raw (decoded) HTML, per message and in total
//! (goal ≤ 25 %), what `collapse_quotes` saves, the conversion time; and bytes per
//! `search_email` hit, measured on the search results the MCP tool snapshots captured from the
//! seeded testbed (`snapshots/search_email_*.snap`: the `structuredContent` summary as compact
//! JSON and the text rendering's block per hit; goal ≤ 400 bytes). Needs no testbed. Writes
//! `target/bench-bodies-report.md` (copied into BENCHMARKS.md).
//!
//! Run: `cargo bench --bench bodies`.

#![allow(clippy::unwrap_used)]

#[path = "../tests/it/bodies/corpus.rs"]
mod corpus;

use std::{collections::BTreeMap, fmt::Write as _, path::PathBuf, time::Instant};

use mailconnect::domain::{
    mail::RawBody,
    mail::body::{self, BodySource, TextOptions, html_to_text},
};
use serde_json::Value;

const TIMING_RUNS: usize = 30;
/// The goal for text returned against the raw HTML.
const GOAL_RATIO: f64 = 0.25;
/// The goal for bytes per search hit.
const GOAL_HIT_BYTES: usize = 400;
/// The longest preview RFC 8621 allows (the testbed's Cyrus cuts previews much shorter).
const FULL_PREVIEW_CHARS: usize = 256;

fn median_micros(mut f: impl FnMut()) -> f64 {
    let mut samples: Vec<f64> = (0..TIMING_RUNS)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Bytes of the trailing `[n]: url` footnote lines.
fn footnote_bytes(text: &str) -> usize {
    text.lines()
        .rev()
        .take_while(|l| l.starts_with('[') && l.contains("]: "))
        .map(|l| l.len() + 1)
        .sum()
}

/// The words alone: the text without link footnotes, link markers (`[text][n]` → `text`),
/// emphasis and heading marks, table separators and line structure — a floor no text
/// rendering of the message can go below without dropping content.
fn words_bytes(text: &str) -> usize {
    let body: Vec<&str> = text
        .lines()
        .filter(|l| !(l.starts_with('[') && l.contains("]: ")))
        .collect();
    let mut words = String::new();
    let joined = body.join(" ");
    let mut rest = joined.as_str();
    while let Some(i) = rest.find("][") {
        words.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let digits = after.chars().take_while(char::is_ascii_digit).count();
        rest = if digits > 0 && after[digits..].starts_with(']') {
            &after[digits + 1..]
        } else {
            words.push_str("][");
            after
        };
    }
    words.push_str(rest);
    words
        .replace(['[', ']'], "")
        .replace("**", "")
        .replace(" | ", " ")
        .split_whitespace()
        .filter(|w| !w.chars().all(|c| c == '#'))
        .collect::<Vec<_>>()
        .join(" ")
        .len()
}

fn pct(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

fn html_table(out: &mut String, corpus: &[corpus::Fixture]) {
    let _ = writeln!(
        out,
        "### HTML → text (goal: text ≤ 25 % of the HTML)\n\n\
         | message | body returned | raw HTML bytes | text bytes | text / HTML | of which link footnotes | words alone / HTML | convert (µs, median) |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    let (mut html_total, mut text_total, mut words_total) = (0, 0, 0);
    for f in corpus.iter().filter(|f| !f.html.is_empty()) {
        let text = html_to_text(&f.html);
        let micros = median_micros(|| {
            std::hint::black_box(html_to_text(std::hint::black_box(&f.html)));
        });
        let returned = match f.body {
            RawBody::Html(_) => "HTML (only part)",
            RawBody::Text(_) => "text/plain alternative",
            RawBody::None => "none",
        };
        html_total += f.html.len();
        text_total += text.len();
        let words = words_bytes(&text);
        words_total += words;
        let ratio = pct(text.len(), f.html.len());
        let mark = if ratio <= GOAL_RATIO * 100.0 {
            ""
        } else {
            " ✗"
        };
        let _ = writeln!(
            out,
            "| {} | {returned} | {} | {} | {ratio:.1} %{mark} | {} | {:.1} % | {micros:.0} |",
            f.name,
            f.html.len(),
            text.len(),
            footnote_bytes(&text),
            pct(words, f.html.len()),
        );
    }
    let ratio = pct(text_total, html_total);
    let words = pct(words_total, html_total);
    let _ = writeln!(
        out,
        "| **total** | | **{html_total}** | **{text_total}** | **{ratio:.1} %** | | **{words:.1} %** | |\n"
    );
}

fn collapse_table(out: &mut String, corpus: &[corpus::Fixture]) {
    let _ = writeln!(
        out,
        "### Body returned by `get_email`, default and with quotes and signatures collapsed\n\n\
         | message | source | default chars | collapsed chars | saved |\n\
         | --- | --- | --- | --- | --- |"
    );
    for f in corpus {
        let (source, full) = body::body_text(&f.body, TextOptions::default());
        let (_, short) = body::body_text(
            &f.body,
            TextOptions {
                collapse_quotes: true,
            },
        );
        let (full, short) = (full.chars().count(), short.chars().count());
        let source = match source {
            BodySource::Text => "text",
            BodySource::Html => "html",
            BodySource::None => "none",
        };
        let saved = if short < full {
            format!("{:.0} %", pct(full - short, full))
        } else {
            "—".into()
        };
        let _ = writeln!(
            out,
            "| {} | {source} | {full} | {short} | {saved} |",
            f.name
        );
    }
    out.push('\n');
}

/// One search hit as the client receives it.
struct Hit {
    /// Bytes per summary field, key and separators included.
    fields: BTreeMap<String, usize>,
    json: usize,
    text: usize,
    preview_chars: usize,
}

/// The MCP result inside a `search_email_*.snap` file.
fn snapshot_results() -> Vec<(String, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("snapshots");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("search_email_") && n.ends_with(".snap"))
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            // Front matter between the first two `---` lines, then the JSON.
            let json = text.split("\n---\n").nth(1).unwrap();
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            (name, serde_json::from_str(json).unwrap())
        })
        .collect()
}

/// The text rendering's block per hit: a `N. "subject" …` line and its indented lines.
fn text_blocks(text: &str) -> Vec<usize> {
    let mut blocks = Vec::new();
    for line in text.lines() {
        let starts_hit = line
            .split_once(". ")
            .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        if starts_hit {
            blocks.push(line.len() + 1);
        } else if line.starts_with("   ")
            && let Some(last) = blocks.last_mut()
        {
            *last += line.len() + 1;
        }
    }
    blocks
}

/// Per captured result: name, hits, bytes of the whole response, bytes of its text.
type SnapshotSizes = Vec<(String, usize, usize, usize)>;

fn hits() -> (SnapshotSizes, BTreeMap<String, Hit>) {
    let mut per_snapshot = Vec::new();
    let mut unique = BTreeMap::new();
    for (name, result) in snapshot_results() {
        let text = result["content"][0]["text"].as_str().unwrap_or_default();
        let structured = &result["structuredContent"];
        let emails = structured["emails"].as_array().cloned().unwrap_or_default();
        let blocks = text_blocks(text);
        assert_eq!(blocks.len(), emails.len(), "{name}: text blocks vs emails");
        let whole = text.len() + serde_json::to_string(structured).unwrap().len();
        per_snapshot.push((name, emails.len(), whole, text.len()));
        for (email, text) in emails.iter().zip(blocks) {
            let id = email["id"].as_str().unwrap_or_default().to_owned();
            let preview_chars = email["preview"]
                .as_str()
                .unwrap_or_default()
                .chars()
                .count();
            let fields = email
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| {
                    let bytes = serde_json::to_string(k).unwrap().len()
                        + 2
                        + serde_json::to_string(v).unwrap().len();
                    (k.clone(), bytes)
                })
                .collect();
            unique.insert(
                id,
                Hit {
                    fields,
                    json: serde_json::to_string(email).unwrap().len(),
                    text,
                    preview_chars,
                },
            );
        }
    }
    (per_snapshot, unique)
}

fn hits_table(out: &mut String) {
    let (per_snapshot, unique) = hits();
    let n = unique.len().max(1);
    let avg = |f: &dyn Fn(&Hit) -> usize| unique.values().map(f).sum::<usize>() / n;
    let max = |f: &dyn Fn(&Hit) -> usize| unique.values().map(f).max().unwrap_or(0);
    let full = |h: &Hit| FULL_PREVIEW_CHARS.saturating_sub(h.preview_chars);
    let mark = |v: usize| if v <= GOAL_HIT_BYTES { "" } else { " ✗" };
    let _ = writeln!(
        out,
        "### Bytes per `search_email` hit (goal ≤ 400)\n\n\
         {n} distinct hits from {} captured results (`snapshots/search_email_*.snap`; summaries name \
         mailboxes by path, so no redacted id is in them). \"JSON\" is one `structuredContent.emails[]` \
         summary, compact as sent; \"text\" is the hit's block in the text rendering (`content`). \
         The last row adds a full {FULL_PREVIEW_CHARS}-character preview to every hit, the most \
         RFC 8621 allows and what longer mail gets from servers that use the whole length (the \
         testbed's previews are {}–{} characters).\n\n\
         | per hit | JSON avg | JSON max | text avg | text max | both avg |\n\
         | --- | --- | --- | --- | --- | --- |",
        per_snapshot.len(),
        unique.values().map(|h| h.preview_chars).min().unwrap_or(0),
        unique.values().map(|h| h.preview_chars).max().unwrap_or(0),
    );
    let (ja, jm, ta, tm) = (
        avg(&|h| h.json),
        max(&|h| h.json),
        avg(&|h| h.text),
        max(&|h| h.text),
    );
    let _ = writeln!(
        out,
        "| as captured | {ja}{} | {jm}{} | {ta}{} | {tm}{} | {} |",
        mark(ja),
        mark(jm),
        mark(ta),
        mark(tm),
        ja + ta
    );
    let (ja, jm, ta, tm) = (
        avg(&|h| h.json + full(h)),
        max(&|h| h.json + full(h)),
        avg(&|h| h.text + full(h)),
        max(&|h| h.text + full(h)),
    );
    let _ = writeln!(
        out,
        "| with a {FULL_PREVIEW_CHARS}-char preview | {ja}{} | {jm}{} | {ta}{} | {tm}{} | {} |\n",
        mark(ja),
        mark(jm),
        mark(ta),
        mark(tm),
        ja + ta
    );
    let mut fields: BTreeMap<&str, usize> = BTreeMap::new();
    for hit in unique.values() {
        for (k, v) in &hit.fields {
            *fields.entry(k.as_str()).or_default() += v;
        }
    }
    let mut fields: Vec<(&str, usize)> = fields.into_iter().map(|(k, v)| (k, v / n)).collect();
    fields.sort_by_key(|(_, v)| std::cmp::Reverse(*v));
    let _ = writeln!(
        out,
        "Where the JSON bytes go (average per hit, key included): {}.\n",
        fields
            .iter()
            .map(|(k, v)| format!("`{k}` {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        out,
        "| captured result | hits | whole response (text + compact JSON) bytes | per hit | text only per hit |\n\
         | --- | --- | --- | --- | --- |"
    );
    for (name, hits, whole, text) in per_snapshot {
        let h = hits.max(1);
        let _ = writeln!(
            out,
            "| {name} | {hits} | {whole} | {} | {} |",
            whole / h,
            text / h
        );
    }
    out.push('\n');
}

fn main() {
    let corpus = corpus::load();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Corpus: {} messages in `tests/fixtures/bodies`. \"Raw HTML\" is the decoded text/html \
         part (transfer encoding and charset undone, as JMAP `bodyValues` give it); \"text\" is \
         what `get_email` returns for it (`html_to_text`).\n",
        corpus.len()
    );
    html_table(&mut out, &corpus);
    collapse_table(&mut out, &corpus);
    hits_table(&mut out);
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-bodies-report.md");
    std::fs::write(&path, &out).unwrap();
    println!("{out}");
    eprintln!("written to {}", path.display());
}
