//! Text from attachments: text formats decoded by their charset; other formats have none.

use crate::domain::{mail::AttachmentContent, mail::body::html_to_text};

/// An attachment's text, possibly cut at the cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractedText {
    /// The text.
    pub text: String,
    /// Whether it was cut at the cap.
    pub truncated: bool,
}

const TEXTUAL_APPLICATION_TYPES: &[&str] = &[
    "application/json",
    "application/xml",
    "application/javascript",
    "application/x-sh",
    "application/yaml",
    "application/x-yaml",
    "application/csv",
    "application/ics",
];

/// Extracts the text of a text-format attachment, up to `max_chars`.
#[must_use]
pub fn extract(content: &AttachmentContent, max_chars: usize) -> Option<ExtractedText> {
    let mime = content.attachment.mime_type.as_str();
    let is_text = mime.starts_with("text/") || TEXTUAL_APPLICATION_TYPES.contains(&mime);
    if !is_text {
        return None;
    }
    let encoding = content
        .attachment
        .charset
        .as_deref()
        .and_then(|label| encoding_rs::Encoding::for_label(label.as_bytes()))
        .unwrap_or(encoding_rs::UTF_8);
    let (decoded, _, _) = encoding.decode(&content.bytes);
    let text = if mime == "text/html" {
        html_to_text(&decoded)
    } else {
        decoded.into_owned()
    };
    let truncated = text.chars().count() > max_chars;
    Some(ExtractedText {
        text: text.chars().take(max_chars).collect(),
        truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{mail::Attachment, mail::ids::BlobId};

    fn file(mime: &str, charset: Option<&str>, bytes: &[u8]) -> AttachmentContent {
        AttachmentContent {
            attachment: Attachment {
                blob_id: BlobId::parse("B1").unwrap(),
                name: None,
                mime_type: mime.into(),
                charset: charset.map(Into::into),
                size: bytes.len() as u64,
            },
            bytes: bytes.to_vec(),
        }
    }

    #[test]
    fn decodes_by_declared_charset() {
        let latin1 = file("text/plain", Some("iso-8859-1"), b"Gr\xfc\xdfe");
        assert_eq!(extract(&latin1, 100).unwrap().text, "Grüße");
    }

    #[test]
    fn cuts_at_the_cap_and_says_so() {
        let t = extract(&file("text/csv", None, "a,b\n".repeat(10).as_bytes()), 5).unwrap();
        assert_eq!((t.text.as_str(), t.truncated), ("a,b\na", true));
    }

    #[test]
    fn binary_formats_have_no_text() {
        assert_eq!(extract(&file("image/png", None, b"\x89PNG"), 10), None);
    }
}
