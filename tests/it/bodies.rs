//! Body cleaning over a corpus of real-world-shaped messages (`tests/fixtures/bodies`, see its
//! README): newsletters, receipts, replies with quoted history, signatures, non-UTF-8 charsets,
//! quoted-printable and base64. Each message is decoded by a real MIME parser the way the JMAP
//! server decodes it, then cleaned by the domain; the text is snapshotted as the reader gets it
//! by default and with quotes and signatures collapsed (`snapshots/body_*.snap`). Needs no
//! testbed: `cargo nextest run --test it bodies::`.

mod corpus;

use mailconnect::domain::{
    mail::RawBody,
    mail::body::{self, BodySource, TextOptions},
};

fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path("../../snapshots");
    s.set_prepend_module_to_snapshot(false);
    s
}

const COLLAPSED: TextOptions = TextOptions {
    collapse_quotes: true,
};

/// What a snapshot shows: the subject (proving the header charset decoding too), where the
/// text came from, its size, then the text.
fn rendered(subject: &str, source: BodySource, text: &str) -> String {
    format!(
        "subject: {subject}\nsource: {source:?}\nchars: {} · bytes: {}\n---\n{text}\n",
        text.chars().count(),
        text.len()
    )
}

#[test]
fn corpus_snapshots() {
    let corpus = corpus::load();
    assert!(
        corpus.len() >= 10,
        "the corpus has {} messages",
        corpus.len()
    );
    for f in &corpus {
        for (suffix, options) in [("", TextOptions::default()), ("_collapsed", COLLAPSED)] {
            let (source, text) = body::body_text(&f.body, options);
            let name = format!("body_{}{suffix}", f.name);
            settings().bind(|| insta::assert_snapshot!(name, rendered(&f.subject, source, &text)));
            // A message with both parts: the HTML alternative is cleaned too (the adapter
            // picks text/plain, but the HTML path must hold up on the same message).
            if !f.html.is_empty() && !matches!(f.body, RawBody::Html(_)) {
                let html = RawBody::Html(f.html.clone());
                let (source, text) = body::body_text(&html, options);
                let name = format!("body_{}_html{suffix}", f.name);
                settings()
                    .bind(|| insta::assert_snapshot!(name, rendered(&f.subject, source, &text)));
            }
        }
    }
}

#[test]
fn no_markup_styles_scripts_or_pixels_reach_the_text() {
    for f in corpus::load().iter().filter(|f| !f.html.is_empty()) {
        let text = body::html_to_text(&f.html);
        for noise in [
            "</",
            "<p",
            "<div",
            "<img",
            "<table",
            "<td",
            "<span",
            "<!",
            "-->",
            "{",
            "}",
            "gtag",
            "dataLayer",
            "mso-",
            "display:",
            "font-family",
            "@media",
            ".gif",
            "open.aspx",
            "utm_",
            "[if",
            "endif",
            "&nbsp;",
            "&zwnj;",
            "\u{200C}",
            "\u{034F}",
            "\u{00A0}",
            "─",
            "│",
        ] {
            assert!(
                !text.contains(noise),
                "{noise:?} leaked into {}:\n{text}",
                f.name
            );
        }
        assert!(
            !text.contains("\n\n\n"),
            "a run of blank lines in {}",
            f.name
        );
        assert!(
            text.lines().all(|l| l == l.trim_end()),
            "trailing blanks in {}",
            f.name
        );
    }
}

#[test]
fn non_utf8_charsets_and_transfer_encodings_are_decoded() {
    let corpus = corpus::load();
    let text = |name: &str| {
        let f = corpus
            .iter()
            .find(|f| f.name.starts_with(name))
            .unwrap_or_else(|| panic!("{name} is in the corpus"));
        body::body_text(&f.body, TextOptions::default()).1
    };
    assert!(text("07-").contains("s’élève à 149,90 € TTC — livraison"));
    assert!(text("08-").contains("Größere Gepäckstücke"));
    assert!(text("09-").contains("👨\u{200D}👩\u{200D}👧\u{200D}👦 family picture at 金閣寺"));
    assert!(text("02-").contains("Stoneware teapot"));
}

#[test]
fn a_long_newsletter_pages_with_continuation_offsets() {
    let corpus = corpus::load();
    let long = corpus
        .iter()
        .find(|f| f.name.starts_with("13-"))
        .expect("the long newsletter");
    let (_, whole) = body::body_text(&long.body, TextOptions::default());
    assert!(whole.chars().count() as u64 > body::DEFAULT_BODY_CHARS);
    let mut offset = 0;
    let mut joined = String::new();
    let mut pages = 0;
    loop {
        let page = body::page(&long.body, offset, body::DEFAULT_BODY_CHARS);
        assert_eq!(page.offset, offset);
        assert_eq!(page.total_chars, whole.chars().count() as u64);
        joined.push_str(&page.text);
        pages += 1;
        match page.next_offset {
            Some(next) => offset = next,
            None => break,
        }
    }
    assert_eq!(joined, whole);
    assert!(pages >= 2);
}
