//! Text from PDF attachments (pdf-extract). A PDF is attacker-controlled input: extraction runs
//! on the blocking pool with a deadline and a size cap, and a panic inside the library (it has
//! them on malformed files) becomes "no text", never a crashed request.

use std::{panic::AssertUnwindSafe, time::Duration};

use crate::domain::ports::DocumentText;

/// How long one extraction may take.
pub const DEADLINE: Duration = Duration::from_secs(5);

/// Reads the text of PDFs.
#[derive(Debug, Default, Clone, Copy)]
pub struct PdfText;

impl DocumentText for PdfText {
    fn reads(&self, mime_type: &str) -> bool {
        mime_type.eq_ignore_ascii_case("application/pdf")
    }

    async fn text(&self, bytes: &[u8]) -> Option<String> {
        let owned = bytes.to_vec();
        let work = tokio::task::spawn_blocking(move || {
            std::panic::catch_unwind(AssertUnwindSafe(|| {
                pdf_extract::extract_text_from_mem(&owned)
            }))
            .ok()
            .and_then(Result::ok)
        });
        match tokio::time::timeout(DEADLINE, work).await {
            Ok(Ok(text)) => text.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()),
            _ => {
                tracing::warn!("PDF text extraction failed or timed out");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A malformed or hostile file yields no text and no panic.
    #[tokio::test]
    async fn garbage_is_no_text_never_a_panic() {
        let reader = PdfText;
        assert!(reader.reads("application/PDF") && !reader.reads("text/plain"));
        for bytes in [&b""[..], b"%PDF-1.4\n garbage", b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 9 0 R >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF"] {
            assert_eq!(reader.text(bytes).await, None);
        }
    }
}
