//! Search semantics: the filter a client asked for, page sizes and the opaque cursor.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::domain::mail::ids::EmailId;

/// Default emails per search page.
pub const DEFAULT_PAGE_SIZE: u32 = 20;
/// Hard cap on emails per search page (Fastmail quirk 1: clamp, never fail).
pub const MAX_PAGE_SIZE: u32 = 50;

/// What to search for; every present field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmailQuery {
    /// Text anywhere.
    pub text: Option<String>,
    /// Sender.
    pub from: Option<String>,
    /// Recipient (To, Cc, Bcc).
    pub to: Option<String>,
    /// Subject words.
    pub subject: Option<String>,
    /// A mailbox by id, role, path or name (resolved against the account's mailboxes).
    pub mailbox: Option<String>,
    /// Unread (true) or read (false).
    pub unread: Option<bool>,
    /// Flagged or not.
    pub flagged: Option<bool>,
    /// With attachments or without.
    pub has_attachment: Option<bool>,
    /// Received at or after.
    pub after: Option<DateTime<Utc>>,
    /// Received before.
    pub before: Option<DateTime<Utc>>,
    /// A search-box query, combined with the rest by AND.
    pub expression: Option<SearchExpression>,
}

/// A parsed search-box query with its source text (the cursor fingerprints the text, so a
/// relative date like `newer_than:7d` made absolute again on the next page keeps the cursor).
#[derive(Clone, PartialEq, Eq)]
pub struct SearchExpression {
    /// What the client wrote.
    pub source: String,
    /// The filter.
    pub expr: crate::domain::search::search_syntax::Expr,
}

impl std::fmt::Debug for SearchExpression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.source)
    }
}

/// A search argument a client got wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{argument}: {reason}")]
pub struct InvalidArgument {
    /// The argument's name.
    pub argument: &'static str,
    /// What is wrong and what would be right.
    pub reason: String,
}

impl InvalidArgument {
    /// An error about `argument`.
    pub fn new(argument: &'static str, reason: impl Into<String>) -> Self {
        Self {
            argument,
            reason: reason.into(),
        }
    }
}

/// Parses `YYYY-MM-DD` (midnight UTC) or an RFC 3339 date-time.
///
/// # Errors
/// [`InvalidArgument`] naming `argument` when neither form parses.
pub fn parse_instant(argument: &'static str, raw: &str) -> Result<DateTime<Utc>, InvalidArgument> {
    let raw = raw.trim();
    crate::domain::search::search_syntax::parse_date(raw).ok_or_else(|| {
        InvalidArgument::new(
            argument,
            format!(
                "{raw:?} is not a date (YYYY-MM-DD) or an RFC 3339 date-time (2024-03-01T09:00:00Z)"
            ),
        )
    })
}

impl EmailQuery {
    /// Checks rules that span fields.
    ///
    /// # Errors
    /// [`InvalidArgument`] when `after` is not before `before`.
    pub fn validate(&self) -> Result<(), InvalidArgument> {
        if let (Some(after), Some(before)) = (self.after, self.before)
            && after >= before
        {
            return Err(InvalidArgument::new(
                "after",
                format!("{after} is not before {before}; nothing can match"),
            ));
        }
        Ok(())
    }

    /// Whether `received_at` lies in the query's window: at or after `after`, strictly before
    /// `before` (RFC 8621 §4.4.1).
    #[must_use]
    pub fn admits_received_at(&self, received_at: DateTime<Utc>) -> bool {
        self.after.is_none_or(|after| received_at >= after)
            && self.before.is_none_or(|before| received_at < before)
    }
}

/// How many emails to return, clamped to the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize {
    /// The size used.
    pub size: u32,
    /// The size asked for, when it was over the cap.
    pub clamped_from: Option<u64>,
}

impl PageSize {
    /// Default 20; values over 50 are reduced to 50 (and remembered, so the result can say so).
    ///
    /// # Errors
    /// [`InvalidArgument`] for 0.
    pub fn new(requested: Option<u64>) -> Result<Self, InvalidArgument> {
        match requested {
            None => Ok(Self {
                size: DEFAULT_PAGE_SIZE,
                clamped_from: None,
            }),
            Some(0) => Err(InvalidArgument::new("limit", "must be at least 1")),
            Some(n) if n > u64::from(MAX_PAGE_SIZE) => Ok(Self {
                size: MAX_PAGE_SIZE,
                clamped_from: Some(n),
            }),
            Some(n) => Ok(Self {
                size: u32::try_from(n).unwrap_or(MAX_PAGE_SIZE),
                clamped_from: None,
            }),
        }
    }
}

/// Where the next page starts, exactly: JMAP has no total order among emails received in the
/// same second, so a position or an anchor can skip or repeat one when the order of such a tie
/// changes between requests. The cursor says "received at or before `at`, except these" —
/// every email received after `at` was on an earlier page, and `seen` lists (by a 6-byte
/// digest) the ones received exactly at `at` that were. Mail that arrives or moves between
/// requests is then returned at most once, and none that matches throughout is skipped.
///
/// Encoded as base64url of `version ‖ fingerprint(9) ‖ at(8) ‖ returned(8) ‖ seen(6 each)`: a
/// tie of 300 emails fits in about 2 400 characters ([`MAX_CURSOR_CHARS`] allows ~2 400 ties).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageCursor {
    /// The receivedAt of the last email returned.
    pub at: DateTime<Utc>,
    /// Digests of the emails returned so far that were received exactly at `at`.
    pub seen: Vec<[u8; SEEN_DIGEST_BYTES]>,
    /// How many emails earlier pages returned.
    pub returned: u64,
    fingerprint: [u8; 9],
}

/// Bytes of an email's digest in a cursor (48 bits: collisions among the emails of one second
/// are negligible).
pub const SEEN_DIGEST_BYTES: usize = 6;
/// The longest cursor (the tool schema says the same).
pub const MAX_CURSOR_CHARS: usize = 20_000;
const CURSOR_VERSION: u8 = 2;

/// The digest a cursor keeps of an email it has returned.
#[must_use]
pub fn seen_digest(id: &EmailId) -> [u8; SEEN_DIGEST_BYTES] {
    let d = Sha256::digest(id.as_str().as_bytes());
    let mut out = [0u8; SEEN_DIGEST_BYTES];
    out.copy_from_slice(&d[..SEEN_DIGEST_BYTES]);
    out
}

fn fingerprint_bytes(query: &EmailQuery) -> [u8; 9] {
    let d = Sha256::digest(format!("{query:?}").as_bytes());
    let mut out = [0u8; 9];
    out.copy_from_slice(&d[..9]);
    out
}

impl PageCursor {
    /// A cursor for the page after one that ended at `at`.
    #[must_use]
    pub fn new(
        query: &EmailQuery,
        at: DateTime<Utc>,
        seen: Vec<[u8; SEEN_DIGEST_BYTES]>,
        returned: u64,
    ) -> Self {
        Self {
            at,
            seen,
            returned,
            fingerprint: fingerprint_bytes(query),
        }
    }

    /// Whether the email was returned by an earlier page.
    #[must_use]
    pub fn has_seen(&self, id: &EmailId) -> bool {
        self.seen.contains(&seen_digest(id))
    }

    /// The opaque form given to clients.
    #[must_use]
    pub fn encode(&self) -> String {
        let mut raw = Vec::with_capacity(26 + self.seen.len() * SEEN_DIGEST_BYTES);
        raw.push(CURSOR_VERSION);
        raw.extend_from_slice(&self.fingerprint);
        raw.extend_from_slice(&self.at.timestamp().to_be_bytes());
        raw.extend_from_slice(&self.returned.to_be_bytes());
        for d in &self.seen {
            raw.extend_from_slice(d);
        }
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Reads a cursor back and checks it belongs to `query`.
    ///
    /// # Errors
    /// [`InvalidArgument`] for a cursor that is malformed or from another search.
    pub fn decode(raw: &str, query: &EmailQuery) -> Result<Self, InvalidArgument> {
        let malformed = || {
            InvalidArgument::new(
                "cursor",
                "is not a cursor from search_email; pass next_cursor exactly as returned",
            )
        };
        let bytes = URL_SAFE_NO_PAD
            .decode(raw.trim())
            .map_err(|_| malformed())?;
        if bytes.len() < 26
            || bytes[0] != CURSOR_VERSION
            || (bytes.len() - 26) % SEEN_DIGEST_BYTES != 0
        {
            return Err(malformed());
        }
        let mut fingerprint = [0u8; 9];
        fingerprint.copy_from_slice(&bytes[1..10]);
        let word = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[at..at + 8]);
            w
        };
        let at = DateTime::from_timestamp(i64::from_be_bytes(word(10)), 0).ok_or_else(malformed)?;
        let returned = u64::from_be_bytes(word(18));
        if fingerprint != fingerprint_bytes(query) {
            return Err(InvalidArgument::new(
                "cursor",
                "belongs to a different search; send the same search arguments as for the first page",
            ));
        }
        Ok(Self {
            at,
            seen: bytes[26..]
                .chunks_exact(SEEN_DIGEST_BYTES)
                .map(|c| {
                    let mut d = [0u8; SEEN_DIGEST_BYTES];
                    d.copy_from_slice(c);
                    d
                })
                .collect(),
            returned,
            fingerprint,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_datetimes_parse_to_utc() {
        assert_eq!(
            parse_instant("after", "2024-03-01").unwrap().to_rfc3339(),
            "2024-03-01T00:00:00+00:00"
        );
        assert_eq!(
            parse_instant("after", "2024-03-01T10:00:00+02:00")
                .unwrap()
                .to_rfc3339(),
            "2024-03-01T08:00:00+00:00"
        );
    }

    #[test]
    fn unparseable_dates_name_the_argument() {
        let err = parse_instant("before", "last tuesday").unwrap_err();
        assert_eq!(err.argument, "before");
        assert!(err.reason.contains("YYYY-MM-DD"));
        assert!(parse_instant("after", "2024-02-30").is_err());
    }

    #[test]
    fn an_empty_window_is_refused() {
        let q = EmailQuery {
            after: Some(parse_instant("after", "2024-03-02").unwrap()),
            before: Some(parse_instant("before", "2024-03-01").unwrap()),
            ..EmailQuery::default()
        };
        assert_eq!(q.validate().unwrap_err().argument, "after");
    }

    #[test]
    fn the_window_is_half_open() {
        let at = |s: &str| parse_instant("t", s).unwrap();
        let q = EmailQuery {
            after: Some(at("2024-03-01T09:00:00.500Z")),
            before: Some(at("2024-03-02T10:30:00Z")),
            ..EmailQuery::default()
        };
        assert!(
            !q.admits_received_at(at("2024-03-01T09:00:00Z")),
            "after rounds up, not down"
        );
        assert!(q.admits_received_at(at("2024-03-01T09:00:01Z")));
        assert!(
            !q.admits_received_at(at("2024-03-02T10:30:00Z")),
            "before is exclusive"
        );
    }

    #[test]
    fn page_size_defaults_and_clamps() {
        assert_eq!(PageSize::new(None).unwrap().size, 20);
        assert_eq!(
            PageSize::new(Some(7)).unwrap(),
            PageSize {
                size: 7,
                clamped_from: None
            }
        );
        assert_eq!(
            PageSize::new(Some(500)).unwrap(),
            PageSize {
                size: 50,
                clamped_from: Some(500)
            }
        );
        assert!(PageSize::new(Some(0)).is_err());
    }

    #[test]
    fn cursor_round_trips_for_the_same_query_only() {
        let q = EmailQuery {
            text: Some("budget".into()),
            ..EmailQuery::default()
        };
        let at = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let c = PageCursor::new(
            &q,
            at,
            vec![seen_digest(&EmailId::parse("M42").unwrap())],
            20,
        );
        let back = PageCursor::decode(&c.encode(), &q).unwrap();
        assert_eq!(back, c);
        assert!(back.has_seen(&EmailId::parse("M42").unwrap()));
        assert!(!back.has_seen(&EmailId::parse("M43").unwrap()));
        let other = EmailQuery {
            text: Some("holiday".into()),
            ..EmailQuery::default()
        };
        assert!(
            PageCursor::decode(&c.encode(), &other)
                .unwrap_err()
                .reason
                .contains("different search")
        );
        assert!(PageCursor::decode("garbage!", &q).is_err());
    }
}
