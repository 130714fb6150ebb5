//! Reading the text of document attachments the core can't read itself (PDF).
//!
//! A port, not core code: the parsers are large and run untrusted input, so the adapter
//! (`crate::outbound::pdf`) keeps them away from the request. A deployment without one uses
//! [`NoDocuments`], which reads nothing: attachments of those formats then come without text.

/// Reads the text of document formats the core can't (PDF).
#[trait_variant::make(Send)]
pub trait DocumentText: Sync + 'static {
    /// Whether this reader handles `mime_type`.
    fn reads(&self, mime_type: &str) -> bool;

    /// The text of `bytes`, if there is any.
    async fn text(&self, bytes: &[u8]) -> Option<String>;
}

/// A reader that reads no format.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDocuments;

impl DocumentText for NoDocuments {
    fn reads(&self, _mime_type: &str) -> bool {
        false
    }

    async fn text(&self, _bytes: &[u8]) -> Option<String> {
        None
    }
}
