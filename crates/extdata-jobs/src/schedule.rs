//! [`Schedule`]: a cron expression in a time zone, and its next fire times.
//!
//! Parsing and matching are `croner`'s (seconds optional, `L`, `W`, `#`); zones are
//! `chrono-tz`'s IANA database. Matching happens on the zone's wall clock, so
//! `0 30 2 * * *` in a zone that skips 02:00–03:00 fires once, at the first instant after
//! the gap, and a repeated hour (autumn) fires once, at its first occurrence.

use std::fmt;
use std::str::FromStr as _;

use chrono::{DateTime, Timelike as _, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};

/// A cron expression evaluated in an IANA time zone.
#[derive(Clone)]
pub struct Schedule {
    expression: String,
    cron: Cron,
    zone: Tz,
}

impl Schedule {
    /// Parses `cron` (5 or 6 fields; seconds first when 6) in `zone` (an IANA name such as
    /// `Europe/Moscow`, or `UTC`). The error names the field (`cron` or `timezone`).
    pub fn parse(cron: &str, zone: &str) -> Result<Self, (&'static str, String)> {
        let parsed = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(cron)
            .map_err(|e| ("cron", format!("`{cron}` is not a cron expression: {e}")))?;
        let zone = Tz::from_str(zone.trim()).map_err(|_| {
            (
                "timezone",
                format!("`{zone}` is not an IANA time zone name (e.g. `Europe/Moscow`, `UTC`)"),
            )
        })?;
        Ok(Schedule {
            expression: cron.trim().to_owned(),
            cron: parsed,
            zone,
        })
    }

    /// The expression as written.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The time zone.
    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// The first fire time strictly after `after`; `None` when the expression never
    /// fires again (e.g. a past year).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Fire times are whole seconds: a fraction of `after` must not leak into them.
        let after = after.with_nanosecond(0).unwrap_or(after);
        let local = after.with_timezone(&self.zone);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The next `count` fire times after `after`.
    pub fn upcoming(&self, after: DateTime<Utc>, count: usize) -> Vec<DateTime<Utc>> {
        let mut times = Vec::with_capacity(count);
        let mut at = after;
        while times.len() < count {
            match self.next_after(at) {
                Some(next) => {
                    times.push(next);
                    at = next;
                }
                None => break,
            }
        }
        times
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schedule")
            .field("cron", &self.expression)
            .field("timezone", &self.zone.name())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn fires(cron: &str, zone: &str, after: &str, count: usize) -> Vec<String> {
        Schedule::parse(cron, zone)
            .unwrap()
            .upcoming(utc(after), count)
            .into_iter()
            .map(|t| t.to_rfc3339())
            .collect()
    }

    #[test]
    fn berlin_spring_forward_skips_the_missing_hour_once() {
        // 2024-03-31: 02:00 CET jumps to 03:00 CEST. A daily 02:30 job fires once that
        // day, right after the gap (01:00 UTC), and at 02:30 CEST (00:30 UTC) after.
        assert_eq!(
            fires("0 30 2 * * *", "Europe/Berlin", "2024-03-29T12:00:00Z", 3),
            [
                "2024-03-30T01:30:00+00:00",
                "2024-03-31T01:00:00+00:00",
                "2024-04-01T00:30:00+00:00"
            ]
        );
        // Hourly: 01:00 CET (00:00 UTC), then 03:00 CEST (01:00 UTC): one hour apart in
        // real time, no fire lost or doubled.
        assert_eq!(
            fires("0 0 * * * *", "Europe/Berlin", "2024-03-30T23:30:00Z", 3),
            [
                "2024-03-31T00:00:00+00:00",
                "2024-03-31T01:00:00+00:00",
                "2024-03-31T02:00:00+00:00"
            ]
        );
    }

    #[test]
    fn berlin_fall_back_fires_the_repeated_hour_once() {
        // 2024-10-27: 03:00 CEST falls back to 02:00 CET; 02:30 exists twice and the
        // job fires once, at the first (00:30 UTC), then 02:30 CET the day after.
        assert_eq!(
            fires("0 30 2 * * *", "Europe/Berlin", "2024-10-26T12:00:00Z", 2),
            ["2024-10-27T00:30:00+00:00", "2024-10-28T01:30:00+00:00"]
        );
    }

    #[test]
    fn new_york_changes_keep_local_wall_clock() {
        // 09:00 local every day: 14:00 UTC in EST, 13:00 UTC in EDT (2024-03-10).
        assert_eq!(
            fires("0 0 9 * * *", "America/New_York", "2024-03-09T00:00:00Z", 3),
            [
                "2024-03-09T14:00:00+00:00",
                "2024-03-10T13:00:00+00:00",
                "2024-03-11T13:00:00+00:00"
            ]
        );
        // 2024-11-03: 02:00 EDT falls back to 01:00 EST; 01:30 fires once.
        assert_eq!(
            fires(
                "0 30 1 * * *",
                "America/New_York",
                "2024-11-02T12:00:00Z",
                2
            ),
            ["2024-11-03T05:30:00+00:00", "2024-11-04T06:30:00+00:00"]
        );
    }

    #[test]
    fn moscow_has_no_dst_and_five_field_cron_works() {
        assert_eq!(
            fires("*/15 * * * *", "Europe/Moscow", "2024-03-31T00:07:00Z", 2),
            ["2024-03-31T00:15:00+00:00", "2024-03-31T00:30:00+00:00"]
        );
    }

    #[test]
    fn fire_times_are_whole_seconds() {
        assert_eq!(
            fires("*/2 * * * * *", "UTC", "2024-01-01T00:00:00.664Z", 2),
            ["2024-01-01T00:00:02+00:00", "2024-01-01T00:00:04+00:00"]
        );
    }

    #[test]
    fn bad_cron_and_zone_name_their_field() {
        assert_eq!(Schedule::parse("61 * * * *", "UTC").unwrap_err().0, "cron");
        assert_eq!(
            Schedule::parse("* * * * *", "Mars/Olympus").unwrap_err().0,
            "timezone"
        );
    }
}
