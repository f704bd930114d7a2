//! [`Schedule`]: a cron expression in a time zone, and its next fire times.
//!
//! Parsing and matching are `croner`'s (seconds optional, `L`, `W`, `#`); zones are
//! `chrono-tz`'s IANA database. Matching happens on the zone's wall clock, so
//! `0 30 2 * * *` in a zone that skips 02:00–03:00 fires once, at the first instant after
//! the gap, and a repeated hour (autumn) fires once, at its first occurrence.

use std::str::FromStr as _;

use chrono::{DateTime, Timelike as _, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};

/// A schedule that does not fire within this many years is a configuration error.
pub const NEVER_FIRES_YEARS: u32 = 5;

/// A cron field: its name and its range of numbers.
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const SECOND: Field = Field {
    name: "second",
    min: 0,
    max: 59,
    names: &[],
};
const FIELDS: [Field; 5] = [
    Field {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
    },
    Field {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
    },
    Field {
        name: "day of month",
        min: 1,
        max: 31,
        names: &[],
    },
    Field {
        name: "month",
        min: 1,
        max: 12,
        names: &[
            "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
        ],
    },
    Field {
        name: "day of week",
        min: 0,
        max: 7,
        names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
    },
];

/// Checks the number of fields and each field's numbers and names, naming the field:
/// croner's own messages (`Number out of bounds`) do not say which.
fn check_fields(cron: &str) -> Result<(), String> {
    let parts: Vec<&str> = cron.split_whitespace().collect();
    if parts.first().is_some_and(|p| p.starts_with('@')) {
        return Ok(());
    }
    let fields: Vec<&Field> = match parts.len() {
        5 => FIELDS.iter().collect(),
        6 => std::iter::once(&SECOND).chain(FIELDS.iter()).collect(),
        n => {
            return Err(format!(
                "`{}` has {n} fields; a cron expression has 5 (minute hour day-of-month month \
                 day-of-week) or 6 (second first)",
                cron.trim()
            ));
        }
    };
    for (text, field) in parts.iter().zip(fields) {
        for item in text.split(',') {
            let (range, step) = match item.split_once('/') {
                Some((range, step)) => (range, Some(step)),
                None => (item, None),
            };
            if let Some(step) = step {
                match step.parse::<u32>() {
                    Ok(0) => return Err(format!("{}: a step of 0 never moves", field.name)),
                    Ok(n) if n > field.max => {
                        return Err(format!(
                            "{}: step {n} is larger than the field's range {}–{}",
                            field.name, field.min, field.max
                        ));
                    }
                    Ok(_) => {}
                    Err(_) => {
                        return Err(format!(
                            "{}: step `{step}` is not a whole number",
                            field.name
                        ));
                    }
                }
            }
            if matches!(range, "*" | "?") {
                continue;
            }
            for value in range.split('-') {
                check_value(value, field)?;
            }
        }
    }
    Ok(())
}

fn check_value(value: &str, field: &Field) -> Result<(), String> {
    if let Ok(n) = value.parse::<u64>() {
        if n < u64::from(field.min) || n > u64::from(field.max) {
            let mut message = format!(
                "{}: {n} is out of range {}–{}",
                field.name, field.min, field.max
            );
            if field.name == "hour" && n == 24 {
                message.push_str(" (midnight is 0)");
            }
            return Err(message);
        }
        return Ok(());
    }
    let upper = value.to_ascii_uppercase();
    // croner's own syntax (L, W, #, LW, 5L, …) is left to croner.
    let is_letters = !upper.is_empty() && upper.chars().all(|c| c.is_ascii_alphabetic());
    if field.names.is_empty()
        || !is_letters
        || upper == "L"
        || upper == "W"
        || upper == "LW"
        || field.names.contains(&upper.as_str())
    {
        return Ok(());
    }
    let letters = |text: &str| {
        let mut chars: Vec<char> = text.chars().collect();
        chars.sort_unstable();
        chars
    };
    // One letter off, or the right letters in another order (`JNA`).
    let closest = field
        .names
        .iter()
        .map(|name| {
            let distance = extdata::edit_distance(&upper, name);
            let anagram = letters(&upper) == letters(name);
            (if anagram { 1 } else { distance }, *name)
        })
        .min()
        .filter(|(distance, _)| *distance <= 1);
    Err(match closest {
        Some((_, name)) => format!(
            "{}: `{value}` is not a name; did you mean `{name}`?",
            field.name
        ),
        None => format!(
            "{}: `{value}` is not a name; one of {}",
            field.name,
            field.names.join(", ")
        ),
    })
}

/// Why a day of month never comes in a single month (`0 0 30 2 *`), when that is why.
fn impossible_date(cron: &str) -> Option<String> {
    const DAYS: [u32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let parts: Vec<&str> = cron.split_whitespace().collect();
    let skip = parts.len().checked_sub(5)?;
    let day: u32 = parts.get(skip + 2)?.parse().ok()?;
    let month = parts.get(skip + 3)?;
    let month: usize = month.parse::<usize>().ok().or_else(|| {
        FIELDS[3]
            .names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(month))
            .map(|i| i + 1)
    })?;
    let most = *DAYS.get(month.checked_sub(1)?)?;
    (day > most).then(|| {
        format!(
            "day of month {day} never comes in {} (at most {most} days)",
            MONTHS[month - 1]
        )
    })
}

/// A cron expression evaluated in an IANA time zone.
#[derive(Clone)]
pub struct Schedule {
    expression: String,
    cron: Cron,
    zone: Tz,
}

impl Schedule {
    /// Parses `cron` (5 or 6 fields; seconds first when 6) in `zone` (an IANA name such as
    /// `Europe/Moscow`, or `UTC`). The error names the config field (`cron` or
    /// `timezone`) and, for a cron value out of range, the cron field
    /// (`minute: 61 is out of range 0–59`). An expression that would not fire within the
    /// next [`NEVER_FIRES_YEARS`] years (`0 0 30 2 *`) is an error too.
    pub fn parse(cron: &str, zone: &str) -> Result<Self, (&'static str, String)> {
        check_fields(cron).map_err(|message| ("cron", message))?;
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
        let schedule = Schedule {
            expression: cron.trim().to_owned(),
            cron: parsed,
            zone,
        };
        let now = Utc::now();
        let horizon = now + chrono::Duration::days(365 * i64::from(NEVER_FIRES_YEARS) + 2);
        if schedule
            .cron
            .find_next_occurrence(&now.with_timezone(&zone), false)
            .map_or(true, |next| next.with_timezone(&Utc) > horizon)
        {
            let why = impossible_date(cron).unwrap_or_else(|| {
                "check the day of month, month and day of week together".to_owned()
            });
            return Err((
                "cron",
                format!(
                    "`{}` never fires in the next {NEVER_FIRES_YEARS} years: {why}",
                    cron.trim()
                ),
            ));
        }
        Ok(schedule)
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

extdata::debug_fields!(Schedule |schedule| {
    cron: schedule.expression,
    timezone: schedule.zone.name(),
});

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

    fn cron_error(cron: &str) -> String {
        let (field, message) = Schedule::parse(cron, "UTC").unwrap_err();
        assert_eq!(field, "cron", "{cron}");
        message
    }

    #[test]
    fn values_out_of_range_name_their_cron_field() {
        for (cron, expected) in [
            ("61 * * * *", "minute: 61 is out of range 0–59"),
            (
                "* 24 * * *",
                "hour: 24 is out of range 0–23 (midnight is 0)",
            ),
            ("0 0 0 * *", "day of month: 0 is out of range 1–31"),
            ("0 0 1 13 *", "month: 13 is out of range 1–12"),
            ("0 0 * * 8", "day of week: 8 is out of range 0–7"),
            ("60 0 0 * * *", "second: 60 is out of range 0–59"),
            ("0 10-61 * * * *", "minute: 61 is out of range 0–59"),
            ("1,2,99 * * * *", "minute: 99 is out of range 0–59"),
            ("*/0 * * * *", "minute: a step of 0 never moves"),
            ("*/x * * * *", "minute: step `x` is not a whole number"),
            (
                "0 0 1 JNA *",
                "month: `JNA` is not a name; did you mean `JAN`?",
            ),
            (
                "0 0 * * MONDAY",
                "day of week: `MONDAY` is not a name; one of SUN, MON, TUE, WED, THU, FRI, SAT",
            ),
            (
                "* * * *",
                "`* * * *` has 4 fields; a cron expression has 5 (minute hour day-of-month month day-of-week) or 6 (second first)",
            ),
        ] {
            assert_eq!(cron_error(cron), expected, "{cron}");
        }
    }

    #[test]
    fn an_expression_that_never_fires_is_an_error() {
        assert_eq!(
            cron_error("0 0 30 2 *"),
            "`0 0 30 2 *` never fires in the next 5 years: day of month 30 never comes in February (at most 29 days)"
        );
        assert_eq!(
            cron_error("0 0 31 APR *"),
            "`0 0 31 APR *` never fires in the next 5 years: day of month 31 never comes in April (at most 30 days)"
        );
        // Leap days come once in four years: within the horizon.
        assert!(Schedule::parse("0 0 29 2 *", "UTC").is_ok());
        // Names, L, W and # are croner's and still work.
        for cron in [
            "0 0 L * *",
            "0 0 * * MON-FRI",
            "0 0 * * 5#2",
            "0 0 1 jan,jul *",
        ] {
            assert!(Schedule::parse(cron, "UTC").is_ok(), "{cron}");
        }
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
