//! The body corpus (`tests/fixtures/bodies/*.eml`), decoded the way a JMAP server hands bodies
//! to us: a real MIME parser (mail-parser) undoes the transfer encodings (quoted-printable,
//! base64) and the charsets (windows-1252, iso-8859-1, UTF-8), and the readable body is chosen
//! as the JMAP adapter chooses it (`src/outbound/jmap/convert.rs`, `raw_body`): the text/plain
//! parts of `textBody`, else the text/html parts of `htmlBody`. Shared by the snapshot tests
//! (`tests/it/bodies.rs`) and the size bench (`benches/bodies.rs`).

use std::path::PathBuf;

use mail_parser::{MessageParser, PartType};
use mailconnect::domain::mail::RawBody;

/// One corpus message. (Shared by two targets that each read a part of it.)
#[allow(dead_code)]
pub struct Fixture {
    /// The file name without `.eml`.
    pub name: String,
    /// The decoded subject.
    pub subject: String,
    /// The body the JMAP adapter would give the domain.
    pub body: RawBody,
    /// The decoded text/html parts, joined (empty when the message has none): the "raw HTML"
    /// the size comparison measures against.
    pub html: String,
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bodies")
}

/// Every corpus message, in file-name order.
pub fn load() -> Vec<Fixture> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir())
        .expect("tests/fixtures/bodies")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    paths.sort();
    paths.iter().map(|p| parse(p)).collect()
}

fn parse(path: &std::path::Path) -> Fixture {
    let raw = std::fs::read(path).expect("read .eml");
    let message = MessageParser::default()
        .parse(&raw)
        .unwrap_or_else(|| panic!("{} does not parse", path.display()));
    let texts: Vec<&str> = message
        .text_bodies()
        .filter_map(|p| match &p.body {
            PartType::Text(t) => Some(t.as_ref()),
            _ => None,
        })
        .collect();
    let htmls: Vec<&str> = message
        .html_bodies()
        .filter_map(|p| match &p.body {
            PartType::Html(h) => Some(h.as_ref()),
            _ => None,
        })
        .collect();
    let body = if !texts.is_empty() {
        RawBody::Text(texts.join("\n\n"))
    } else if !htmls.is_empty() {
        RawBody::Html(htmls.join("\n\n"))
    } else {
        RawBody::None
    };
    Fixture {
        name: path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("file name")
            .to_owned(),
        subject: message.subject().unwrap_or_default().to_owned(),
        body,
        html: htmls.join("\n\n"),
    }
}
