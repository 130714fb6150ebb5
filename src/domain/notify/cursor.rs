//! `check_new_mail`'s cursor: the mail server's state to ask changes from and the watermark
//! (nothing received before it is new mail). Opaque to the client, versioned, bounded; a cursor
//! that doesn't decode starts a fresh look, never a flood.

use base64::Engine as _;
use chrono::{DateTime, Utc};

const VERSION: u8 = 1;
/// Longest server state kept.
pub const MAX_STATE_BYTES: usize = 512;

/// Where the last look ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMailCursor {
    /// Nothing received before this (less a little slack) is new mail.
    pub watermark: DateTime<Utc>,
    /// The mail server's state after the last look.
    pub state: String,
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

impl NewMailCursor {
    /// The cursor as the client sees it.
    #[must_use]
    pub fn encode(&self) -> String {
        let mut raw = vec![VERSION];
        raw.extend(self.watermark.timestamp().to_be_bytes());
        raw.extend(self.state.as_bytes());
        B64.encode(raw)
    }

    /// Where a look from `cursor` at `now` starts: its watermark, but never further back than
    /// a day (after downtime the server replays everything: no flood).
    #[must_use]
    pub fn watermark_from(cursor: Option<&Self>, now: DateTime<Utc>) -> DateTime<Utc> {
        cursor
            .map_or(super::fresh_watermark(now), |c| c.watermark)
            .max(super::fresh_watermark(now))
    }

    /// The cursor after a look from `watermark` at `now` that left the server at `state` and
    /// found mail received at `received` (a date in the future — a server's clock, an import
    /// — never moves it past `now`, so it can't hide what comes next).
    #[must_use]
    pub fn after(
        watermark: DateTime<Utc>,
        state: String,
        received: impl IntoIterator<Item = DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Self {
        let latest = received.into_iter().max().map(|l| l.min(now));
        Self {
            watermark: latest.map_or(watermark, |l| l.max(watermark)),
            state,
        }
    }

    /// A cursor back, if it is one of ours.
    #[must_use]
    pub fn decode(text: &str) -> Option<Self> {
        if text.len() > (MAX_STATE_BYTES + 9) * 4 / 3 + 4 {
            return None;
        }
        let raw = B64.decode(text).ok()?;
        let (&version, rest) = raw.split_first()?;
        if version != VERSION || rest.len() < 8 || rest.len() - 8 > MAX_STATE_BYTES {
            return None;
        }
        let (secs, state) = rest.split_at(8);
        let watermark = DateTime::from_timestamp(i64::from_be_bytes(secs.try_into().ok()?), 0)?;
        let state = String::from_utf8(state.to_vec()).ok()?;
        (!state.is_empty()).then_some(Self { watermark, state })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_look_starts_at_most_a_day_back_and_a_future_date_never_moves_it_past_now() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let day = chrono::Duration::hours(24);
        let old = NewMailCursor {
            watermark: now - day * 3,
            state: "1".into(),
        };
        assert_eq!(NewMailCursor::watermark_from(Some(&old), now), now - day);
        assert_eq!(NewMailCursor::watermark_from(None, now), now - day);
        let w = now - chrono::Duration::hours(1);
        let later = NewMailCursor::after(w, "2".into(), [now + day, w], now);
        assert_eq!((later.watermark, later.state.as_str()), (now, "2"));
        assert_eq!(NewMailCursor::after(w, "3".into(), [], now).watermark, w);
    }

    #[test]
    fn round_trip_and_garbage_is_no_cursor() {
        let c = NewMailCursor {
            watermark: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            state: "42".into(),
        };
        assert_eq!(NewMailCursor::decode(&c.encode()), Some(c));
        for garbage in [
            "",
            "!!!",
            "AAAA",
            &"A".repeat(5000),
            &B64.encode([2u8, 0, 0]),
        ] {
            assert_eq!(NewMailCursor::decode(garbage), None, "{garbage}");
        }
    }
}
