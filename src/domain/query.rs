//! Search semantics: the filter a client asked for, page sizes and the opaque cursor.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::ids::EmailId;

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
    pub expr: super::search_syntax::Expr,
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
    super::search_syntax::parse_date(raw).ok_or_else(|| {
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

    /// A stable digest of the query, so a cursor can't be replayed against another search.
    #[must_use]
    pub fn fingerprint(&self) -> String {
        let canonical = format!("{self:?}");
        let digest = Sha256::digest(canonical.as_bytes());
        URL_SAFE_NO_PAD.encode(&digest[..9])
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

/// Where the next page starts: after `anchor`, which was at `position`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageCursor {
    /// Index of the first email of the next page.
    pub position: u64,
    /// The last email of the previous page: the next page starts right after it, even when
    /// new mail arrived in between and shifted positions.
    pub anchor: EmailId,
    fingerprint: String,
}

const CURSOR_VERSION: &str = "c1";

impl PageCursor {
    /// A cursor for the page after `anchor` in the results of `query`.
    #[must_use]
    pub fn new(query: &EmailQuery, position: u64, anchor: EmailId) -> Self {
        Self {
            position,
            anchor,
            fingerprint: query.fingerprint(),
        }
    }

    /// The opaque form given to clients.
    #[must_use]
    pub fn encode(&self) -> String {
        let plain = format!(
            "{CURSOR_VERSION}.{}.{}.{}",
            self.fingerprint, self.position, self.anchor
        );
        URL_SAFE_NO_PAD.encode(plain)
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
        let plain = String::from_utf8(bytes).map_err(|_| malformed())?;
        let mut parts = plain.splitn(4, '.');
        let (Some(CURSOR_VERSION), Some(fingerprint), Some(position), Some(anchor)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed());
        };
        let position = position.parse().map_err(|_| malformed())?;
        let anchor = EmailId::parse(anchor).map_err(|_| malformed())?;
        if fingerprint != query.fingerprint() {
            return Err(InvalidArgument::new(
                "cursor",
                "belongs to a different search; send the same search arguments as for the first page",
            ));
        }
        Ok(Self {
            position,
            anchor,
            fingerprint: fingerprint.to_owned(),
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
        let c = PageCursor::new(&q, 20, EmailId::parse("M42").unwrap());
        let back = PageCursor::decode(&c.encode(), &q).unwrap();
        assert_eq!(back, c);
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
