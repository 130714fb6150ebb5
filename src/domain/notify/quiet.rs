//! Quiet hours: weekly windows in the person's time zone (IANA name), evaluated on the wall
//! clock of that zone, so they follow daylight-saving changes; a window whose end is before its
//! start spans midnight and belongs to the day it starts on.

use chrono::{DateTime, Utc};
use jiff::{
    Timestamp, Zoned,
    civil::{Time, Weekday},
    tz::TimeZone,
};

/// One weekly window, e.g. Mon–Fri 22:00–07:00.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// The days it starts on.
    pub days: Vec<Weekday>,
    /// Start, wall clock.
    pub start: Time,
    /// End, wall clock (before `start`: the next day).
    pub end: Time,
}

/// A person's quiet hours.
#[derive(Debug, Clone)]
pub struct QuietHours {
    zone: TimeZone,
    windows: Vec<Window>,
}

/// Why quiet hours could not be set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuietError {
    /// Not an IANA zone name.
    #[error("{0:?} is not a time zone name (like Europe/Berlin)")]
    Zone(String),
    /// A window that is empty.
    #[error("a quiet window must not start and end at the same time")]
    Empty,
}

fn zoned(at: DateTime<Utc>, zone: &TimeZone) -> Zoned {
    Timestamp::from_second(at.timestamp())
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_zoned(zone.clone())
}

fn to_chrono(z: &Zoned) -> DateTime<Utc> {
    DateTime::from_timestamp(z.timestamp().as_second(), 0).unwrap_or_default()
}

impl QuietHours {
    /// Quiet hours in the zone named `zone`.
    ///
    /// # Errors
    /// An unknown zone or an empty window.
    pub fn new(zone: &str, windows: Vec<Window>) -> Result<Self, QuietError> {
        let zone = TimeZone::get(zone).map_err(|_| QuietError::Zone(zone.to_owned()))?;
        if windows.iter().any(|w| w.start == w.end) {
            return Err(QuietError::Empty);
        }
        Ok(Self { zone, windows })
    }

    /// The window `at` falls in, with the instant it ends.
    #[must_use]
    pub fn ends(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let here = zoned(at, &self.zone);
        let today = here.date();
        let now = here.time();
        let mut latest: Option<DateTime<Utc>> = None;
        for w in &self.windows {
            let spans_midnight = w.end < w.start;
            // Started today and still on (until midnight, or until the end).
            let started_today = w.days.contains(&today.weekday())
                && now >= w.start
                && (spans_midnight || now < w.end);
            // Started yesterday and spanning midnight into today.
            let yesterday = today.yesterday().ok();
            let from_yesterday = spans_midnight
                && yesterday.is_some_and(|y| w.days.contains(&y.weekday()))
                && now < w.end;
            let end_date = if started_today && spans_midnight {
                today.tomorrow().ok()
            } else if started_today || from_yesterday {
                Some(today)
            } else {
                None
            };
            // An end that doesn't exist that day (spring forward) is read with the offset before
            // the change (RFC 5545); one that happens twice (fall back) is the first.
            let end = end_date
                .and_then(|d| d.to_datetime(w.end).to_zoned(self.zone.clone()).ok())
                .map(|z| to_chrono(&z));
            if let Some(end) = end {
                latest = Some(latest.map_or(end, |l| l.max(end)));
            }
        }
        latest
    }

    /// Whether `at` is quiet.
    #[must_use]
    pub fn is_quiet(&self, at: DateTime<Utc>) -> bool {
        self.ends(at).is_some()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    fn t(h: i8, m: i8) -> Time {
        Time::new(h, m, 0, 0).unwrap()
    }

    const WEEK: [Weekday; 7] = [
        Weekday::Monday,
        Weekday::Tuesday,
        Weekday::Wednesday,
        Weekday::Thursday,
        Weekday::Friday,
        Weekday::Saturday,
        Weekday::Sunday,
    ];

    fn nightly(zone: &str) -> QuietHours {
        QuietHours::new(
            zone,
            vec![Window {
                days: WEEK.to_vec(),
                start: t(22, 0),
                end: t(7, 0),
            }],
        )
        .unwrap()
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn a_window_spanning_midnight_follows_the_wall_clock_across_dst_in_three_zones() {
        // Berlin springs forward on 2027-03-28 (02:00 → 03:00): 07:00 local is 05:00 UTC after,
        // 06:00 UTC the day before.
        let berlin = nightly("Europe/Berlin");
        assert_eq!(
            berlin.ends(utc(2027, 3, 27, 21, 30)),
            Some(utc(2027, 3, 28, 5, 0))
        );
        assert_eq!(
            berlin.ends(utc(2027, 3, 26, 21, 30)),
            Some(utc(2027, 3, 27, 6, 0))
        );
        assert!(
            !berlin.is_quiet(utc(2027, 3, 28, 5, 0)),
            "07:00 CEST is day"
        );
        assert!(berlin.is_quiet(utc(2027, 3, 28, 4, 59)));
        assert!(!berlin.is_quiet(utc(2027, 3, 27, 20, 59)), "21:59 CET");
        // New York falls back on 2026-11-01 (02:00 → 01:00): 07:00 EST is 12:00 UTC.
        let ny = nightly("America/New_York");
        assert_eq!(
            ny.ends(utc(2026, 11, 1, 3, 0)),
            Some(utc(2026, 11, 1, 12, 0))
        );
        assert!(
            ny.is_quiet(utc(2026, 11, 1, 5, 30)),
            "01:30 happens twice, both quiet"
        );
        assert!(ny.is_quiet(utc(2026, 11, 1, 6, 30)));
        assert!(!ny.is_quiet(utc(2026, 11, 1, 12, 0)));
        // Sydney springs forward on 2026-10-04 (02:00 → 03:00, UTC+10 → +11).
        let sydney = nightly("Australia/Sydney");
        assert_eq!(
            sydney.ends(utc(2026, 10, 3, 13, 0)),
            Some(utc(2026, 10, 3, 20, 0))
        );
        assert!(!sydney.is_quiet(utc(2026, 10, 3, 20, 0)));
        assert!(sydney.is_quiet(utc(2026, 10, 3, 12, 0)), "22:00 AEST");
        assert!(!sydney.is_quiet(utc(2026, 10, 3, 11, 59)), "21:59 AEST");
    }

    #[test]
    fn days_belong_to_the_start_and_a_gap_end_moves_forward() {
        // Weekdays only, starting Friday night: Saturday 06:00 is still quiet (Friday's window),
        // Saturday 23:00 is not.
        let weekdays = QuietHours::new(
            "UTC",
            vec![Window {
                days: WEEK[..5].to_vec(),
                start: t(22, 0),
                end: t(7, 0),
            }],
        )
        .unwrap();
        assert!(
            weekdays.is_quiet(utc(2026, 11, 28, 6, 0)),
            "Saturday morning"
        );
        assert!(
            !weekdays.is_quiet(utc(2026, 11, 28, 23, 0)),
            "Saturday night"
        );
        assert!(
            !weekdays.is_quiet(utc(2026, 11, 30, 1, 0)),
            "Sunday night belongs to Sunday"
        );
        // A window ending at 02:30 in Berlin on the spring-forward night, a time that doesn't
        // exist: read with the offset before the change (RFC 5545), i.e. 03:30 CEST.
        let odd = QuietHours::new(
            "Europe/Berlin",
            vec![Window {
                days: WEEK.to_vec(),
                start: t(23, 0),
                end: t(2, 30),
            }],
        )
        .unwrap();
        assert_eq!(
            odd.ends(utc(2027, 3, 27, 22, 30)),
            Some(utc(2027, 3, 28, 1, 30))
        );
        assert!(matches!(
            QuietHours::new("Mars/Olympus", vec![]),
            Err(QuietError::Zone(_))
        ));
        assert_eq!(
            QuietHours::new(
                "UTC",
                vec![Window {
                    days: vec![],
                    start: t(1, 0),
                    end: t(1, 0)
                }]
            )
            .unwrap_err(),
            QuietError::Empty
        );
    }
}
