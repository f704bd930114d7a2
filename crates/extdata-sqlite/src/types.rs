//! SQLite values ↔ [`Value`].
//!
//! SQLite is dynamically typed: a column's declared type is only an affinity, and every
//! cell has one of five *storage classes* (NULL, INTEGER, REAL, TEXT, BLOB). A cell is
//! decoded by its storage class; the declared type picks a richer [`Value`] only where
//! that is exact, and a text that does not parse as the declared type stays [`Value::Text`]
//! (never a guessed value).
//!
//! | declared type (first word, case-insensitive)      | storage class      | `Value`                                  |
//! |----------------------------------------------------|--------------------|------------------------------------------|
//! | any                                                | NULL               | `Null`                                   |
//! | `BOOLEAN`, `BOOL`                                  | INTEGER 0 / 1      | `Bool`                                   |
//! | `DATE`                                             | TEXT `YYYY-MM-DD`  | `Date`                                   |
//! | `TIME`                                             | TEXT `HH:MM[:SS[.f]]` | `Time`                                |
//! | `DATETIME`, `TIMESTAMP`, `TIMESTAMPTZ`, `TIMESTAMP WITH[OUT] TIME ZONE` | TEXT `YYYY-MM-DD HH:MM[:SS[.f]]` (or `T`) | `Timestamp`; with `Z` / `±HH:MM`: `TimestampTz` |
//! | `DECIMAL`, `NUMERIC` (`DECIMAL TEXT` too)          | TEXT (a number)    | `Decimal` (every digit)                  |
//! | `DECIMAL`, `NUMERIC`                               | INTEGER            | `Decimal` (exact)                        |
//! | `DECIMAL`, `NUMERIC`                               | REAL, ≤ 15 significant digits | `Decimal`: shortest text that reads back as the same double |
//! | `DECIMAL`, `NUMERIC`                               | REAL, longer       | `F64` (its digits were lost when stored) |
//! | `JSON`, `JSONB`                                    | TEXT (valid JSON)  | `Json`                                   |
//! | `JSON`, `JSONB`                                    | INTEGER, REAL      | `Json` (a number)                        |
//! | `UUID`, `GUID`                                     | TEXT (a UUID)      | `Uuid`                                   |
//! | `UUID`, `GUID`                                     | BLOB of 16 bytes   | `Uuid`                                   |
//! | any other, or a value the rows above do not cover  | INTEGER            | `I64`                                    |
//! |                                                    | REAL               | `F64`                                    |
//! |                                                    | TEXT               | `Text`                                   |
//! |                                                    | BLOB               | `Bytes`                                  |
//!
//! A `DECIMAL`/`NUMERIC` column has NUMERIC affinity: SQLite stores a bound decimal text
//! as an INTEGER or a REAL of 15 significant digits. Only a column with TEXT affinity
//! (`DECIMAL TEXT`, `TEXT`) or none keeps every digit.
//!
//! Parameters are bound by [`bind_parameters`]; the rules are in the crate README.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime};
use extdata_core::{Column, Decimal, Error, Result, Value, ValueKind};
use sqlx::sqlite::{SqliteArguments, SqliteValueRef};
use sqlx::{Arguments, Decode, Sqlite, TypeInfo, ValueRef};
use uuid::Uuid;

/// What a column's declared type says about its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Declared {
    /// No declared type (an expression): each value's storage class decides.
    Dynamic,
    /// INTEGER affinity (`INT`, `BIGINT`, `INTEGER`, …).
    Integer,
    /// REAL affinity (`REAL`, `FLOAT`, `DOUBLE`).
    Real,
    /// TEXT affinity (`TEXT`, `VARCHAR(n)`, `CLOB`, …).
    Text,
    /// `BLOB`.
    Blob,
    /// NUMERIC affinity under a name this table does not know (`MONEY`, …).
    Numeric,
    /// `BOOLEAN`, `BOOL`.
    Bool,
    /// `DATE`.
    Date,
    /// `TIME`.
    Time,
    /// `DATETIME`, `TIMESTAMP`, `TIMESTAMP WITHOUT TIME ZONE`.
    Timestamp,
    /// `TIMESTAMPTZ`, `TIMESTAMP WITH TIME ZONE`.
    TimestampTz,
    /// `DECIMAL(p,s)`, `NUMERIC(p,s)`.
    Decimal,
    /// `JSON`, `JSONB`.
    Json,
    /// `UUID`, `GUID`.
    Uuid,
}

impl Declared {
    /// Classifies a declared type: exact names first, then SQLite's affinity rules
    /// (<https://www.sqlite.org/datatype3.html#determination_of_column_affinity>).
    pub(crate) fn parse(declared: &str) -> Declared {
        let upper = declared.trim().to_ascii_uppercase();
        // `DECIMAL(10,2)` → `DECIMAL`; `TIMESTAMP WITH TIME ZONE` keeps its words.
        let base = upper.split('(').next().unwrap_or("").trim();
        let words: Vec<&str> = base.split_whitespace().collect();
        let exact = match words.as_slice() {
            // No declared type: BLOB affinity, i.e. values keep their storage class.
            [] => return Declared::Dynamic,
            ["BOOLEAN" | "BOOL"] => Some(Declared::Bool),
            ["DATE"] => Some(Declared::Date),
            ["TIME"] => Some(Declared::Time),
            ["DATETIME" | "TIMESTAMP"] | ["TIMESTAMP", "WITHOUT", "TIME", "ZONE"] => {
                Some(Declared::Timestamp)
            }
            ["TIMESTAMPTZ"] | ["TIMESTAMP", "WITH", "TIME", "ZONE"] => Some(Declared::TimestampTz),
            // `DECIMAL TEXT`: SQLite's affinity rules make it a TEXT column, which keeps
            // every digit of a bound decimal; the first word still says what it holds.
            ["DECIMAL" | "NUMERIC", ..] => Some(Declared::Decimal),
            ["JSON" | "JSONB"] => Some(Declared::Json),
            ["UUID" | "GUID"] => Some(Declared::Uuid),
            _ => None,
        };
        if let Some(exact) = exact {
            return exact;
        }
        if upper.contains("INT") {
            Declared::Integer
        } else if upper.contains("CHAR") || upper.contains("CLOB") || upper.contains("TEXT") {
            Declared::Text
        } else if upper.contains("BLOB") {
            Declared::Blob
        } else if upper.contains("REAL") || upper.contains("FLOA") || upper.contains("DOUB") {
            Declared::Real
        } else {
            Declared::Numeric
        }
    }

    /// The [`ValueKind`] of this column's non-NULL values; `None` when only the values'
    /// storage classes can tell.
    pub(crate) fn value_kind(self) -> Option<ValueKind> {
        Some(match self {
            Declared::Dynamic | Declared::Numeric => return None,
            Declared::Integer => ValueKind::I64,
            Declared::Real => ValueKind::F64,
            Declared::Text => ValueKind::Text,
            Declared::Blob => ValueKind::Bytes,
            Declared::Bool => ValueKind::Bool,
            Declared::Date => ValueKind::Date,
            Declared::Time => ValueKind::Time,
            Declared::Timestamp => ValueKind::Timestamp,
            Declared::TimestampTz => ValueKind::TimestampTz,
            Declared::Decimal => ValueKind::Decimal,
            Declared::Json => ValueKind::Json,
            Declared::Uuid => ValueKind::Uuid,
        })
    }
}

/// The storage class of one SQLite value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StorageClass {
    Null,
    Integer,
    Real,
    Text,
    Blob,
}

impl StorageClass {
    fn of(value: &SqliteValueRef<'_>) -> StorageClass {
        if value.is_null() {
            return StorageClass::Null;
        }
        // For a non-NULL value sqlx reports the value's own type (sqlite3_value_type),
        // not the column's declared one.
        match value.type_info().name() {
            "INTEGER" => StorageClass::Integer,
            "REAL" => StorageClass::Real,
            "TEXT" => StorageClass::Text,
            _ => StorageClass::Blob,
        }
    }

    /// SQLite's name of the storage class.
    pub(crate) fn name(self) -> &'static str {
        match self {
            StorageClass::Null => "NULL",
            StorageClass::Integer => "INTEGER",
            StorageClass::Real => "REAL",
            StorageClass::Text => "TEXT",
            StorageClass::Blob => "BLOB",
        }
    }

    /// The [`ValueKind`] a value of this class decodes to without a declared type.
    pub(crate) fn value_kind(self) -> ValueKind {
        match self {
            StorageClass::Null => ValueKind::Null,
            StorageClass::Integer => ValueKind::I64,
            StorageClass::Real => ValueKind::F64,
            StorageClass::Text => ValueKind::Text,
            StorageClass::Blob => ValueKind::Bytes,
        }
    }
}

/// A cell as read from SQLite, before the declared type is applied.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell<'a> {
    Null,
    Integer(i64),
    Real(f64),
    Text(&'a str),
    Blob(Vec<u8>),
}

/// Reads one cell by its storage class; returns the class too (for column descriptions).
pub(crate) fn decode(
    declared: Declared,
    value: SqliteValueRef<'_>,
) -> Result<(Value, StorageClass), String> {
    let class = StorageClass::of(&value);
    let cell = match class {
        StorageClass::Null => Cell::Null,
        StorageClass::Integer => {
            Cell::Integer(<i64 as Decode<Sqlite>>::decode(value).map_err(text)?)
        }
        StorageClass::Real => Cell::Real(<f64 as Decode<Sqlite>>::decode(value).map_err(text)?),
        StorageClass::Text => {
            let text = <&str as Decode<Sqlite>>::decode(value)
                .map_err(|_| "TEXT value is not valid UTF-8".to_owned())?;
            return Ok((to_value(declared, Cell::Text(text)), class));
        }
        StorageClass::Blob => Cell::Blob(<Vec<u8> as Decode<Sqlite>>::decode(value).map_err(text)?),
    };
    Ok((to_value(declared, cell), class))
}

fn text(error: impl std::fmt::Display) -> String {
    error.to_string()
}

/// The type table: a cell and its column's declared type → [`Value`].
pub(crate) fn to_value(declared: Declared, cell: Cell<'_>) -> Value {
    match (declared, cell) {
        (_, Cell::Null) => Value::Null,

        (Declared::Bool, Cell::Integer(0)) => Value::Bool(false),
        (Declared::Bool, Cell::Integer(1)) => Value::Bool(true),

        (Declared::Date, Cell::Text(t)) => parse_date(t).map_or_else(|| text_value(t), Value::Date),
        (Declared::Time, Cell::Text(t)) => parse_time(t).map_or_else(|| text_value(t), Value::Time),
        (Declared::Timestamp | Declared::TimestampTz, Cell::Text(t)) => {
            parse_timestamp(t).unwrap_or_else(|| text_value(t))
        }

        (Declared::Decimal, Cell::Integer(i)) => {
            Value::Decimal(Decimal::from_mantissa(i.into(), 0))
        }
        // NUMERIC affinity stores `1.10` as the REAL 1.1: its shortest round-trip text is
        // the decimal the user wrote, minus trailing zeros — for up to 15 significant
        // digits. Longer decimals lost digits when they were stored; a `Decimal` would
        // pretend to know them, so those stay the `F64` SQLite holds.
        (Declared::Decimal, Cell::Real(f)) if f.is_finite() => {
            let shortest = f.to_string();
            match shortest.parse() {
                Ok(decimal) if significant_digits(&shortest) <= REAL_EXACT_DIGITS => {
                    Value::Decimal(decimal)
                }
                _ => Value::F64(f),
            }
        }
        (Declared::Decimal, Cell::Text(t)) if looks_numeric(t) => {
            t.parse().map_or_else(|_| text_value(t), Value::Decimal)
        }

        (Declared::Json, Cell::Integer(i)) => Value::Json(i.into()),
        (Declared::Json, Cell::Real(f)) if f.is_finite() => {
            serde_json::Number::from_f64(f).map_or(Value::F64(f), |n| Value::Json(n.into()))
        }
        (Declared::Json, Cell::Text(t)) => {
            serde_json::from_str(t).map_or_else(|_| text_value(t), Value::Json)
        }

        (Declared::Uuid, Cell::Text(t)) => {
            Uuid::try_parse(t).map_or_else(|_| text_value(t), Value::Uuid)
        }
        (Declared::Uuid, Cell::Blob(b)) if b.len() == 16 => {
            Uuid::from_slice(&b).map_or(Value::Bytes(b), Value::Uuid)
        }

        // The storage class decides.
        (_, Cell::Integer(i)) => Value::I64(i),
        (_, Cell::Real(f)) => Value::F64(f),
        (_, Cell::Text(t)) => text_value(t),
        (_, Cell::Blob(b)) => Value::Bytes(b),
    }
}

/// Significant decimal digits a REAL is guaranteed to keep: every decimal of up to 15
/// significant digits reads back from a double unchanged (`DBL_DIG`).
const REAL_EXACT_DIGITS: usize = 15;

/// Significant digits of a plain decimal text (`-0.00120` → 2).
fn significant_digits(decimal: &str) -> usize {
    let digits: String = decimal.chars().filter(char::is_ascii_digit).collect();
    digits.trim_start_matches('0').trim_end_matches('0').len()
}

fn text_value(text: &str) -> Value {
    Value::Text(text.to_owned())
}

/// `Decimal`'s parser also takes `NaN` and `inf`; a DECIMAL column's text must be a number.
fn looks_numeric(text: &str) -> bool {
    let t = text.trim();
    !t.is_empty()
        && t.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
}

/// `YYYY-MM-DD` exactly (SQLite's date format).
pub(crate) fn parse_date(text: &str) -> Option<NaiveDate> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' || !b[0].is_ascii_digit() {
        return None;
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

/// `HH:MM`, `HH:MM:SS` or `HH:MM:SS.fff` (SQLite's time formats).
pub(crate) fn parse_time(text: &str) -> Option<NaiveTime> {
    let b = text.as_bytes();
    if b.len() < 5 || b[2] != b':' || !b[0].is_ascii_digit() {
        return None;
    }
    match b.len() {
        5 => NaiveTime::parse_from_str(text, "%H:%M").ok(),
        8 => NaiveTime::parse_from_str(text, "%H:%M:%S").ok(),
        _ if b.get(8) == Some(&b'.') && b.len() > 9 => {
            NaiveTime::parse_from_str(text, "%H:%M:%S%.f").ok()
        }
        _ => None,
    }
}

/// `YYYY-MM-DD HH:MM[:SS[.fff]]` (or with `T`), optionally followed by `Z` or `±HH:MM`:
/// a [`Value::Timestamp`], or a [`Value::TimestampTz`] when the text carries an offset.
pub(crate) fn parse_timestamp(text: &str) -> Option<Value> {
    if text.len() < 16 || !text.is_char_boundary(10) || !text.is_char_boundary(11) {
        return None;
    }
    let date = parse_date(&text[..10])?;
    if !matches!(text.as_bytes()[10], b' ' | b'T' | b't') {
        return None;
    }
    let rest = &text[11..];
    let (time, offset) = split_offset(rest)?;
    let time = parse_time(time)?;
    let naive = NaiveDateTime::new(date, time);
    Some(match offset {
        None => Value::Timestamp(naive),
        Some(offset) => Value::TimestampTz(
            naive
                .and_local_timezone(offset)
                .single()
                .map(|dt: DateTime<FixedOffset>| dt)?,
        ),
    })
}

/// Splits `HH:MM:SS.fff+02:00` into the time and its offset (`Z` is UTC).
fn split_offset(rest: &str) -> Option<(&str, Option<FixedOffset>)> {
    if let Some(time) = rest.strip_suffix(['Z', 'z']) {
        return Some((time, FixedOffset::east_opt(0)));
    }
    let b = rest.as_bytes();
    if b.len() > 6 {
        let at = b.len() - 6;
        if matches!(b[at], b'+' | b'-') && b[at + 3] == b':' && rest.is_char_boundary(at) {
            let hours: i32 = rest[at + 1..at + 3].parse().ok()?;
            let minutes: i32 = rest[at + 4..].parse().ok()?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let seconds = (hours * 3600 + minutes * 60) * if b[at] == b'-' { -1 } else { 1 };
            return Some((&rest[..at], Some(FixedOffset::east_opt(seconds)?)));
        }
    }
    Some((rest, None))
}

/// Describes a result column from its declared type (`None`: an expression) and, when a
/// row was read, the storage class and kind of its first value.
pub(crate) fn describe_column(
    name: &str,
    declared: Option<&str>,
    first: Option<(StorageClass, ValueKind)>,
) -> Column {
    let first = first.filter(|(class, _)| *class != StorageClass::Null);
    match declared.filter(|d| !d.trim().is_empty()) {
        Some(declared) => {
            let kind = match (Declared::parse(declared), first) {
                // DATETIME / TIMESTAMP hold texts with or without an offset: the values
                // tell which.
                (Declared::Timestamp, Some((_, ValueKind::TimestampTz))) => ValueKind::TimestampTz,
                (plan, first) => plan
                    .value_kind()
                    .or(first.map(|(class, _)| class.value_kind()))
                    .unwrap_or(ValueKind::Null),
            };
            Column::new(name, declared, kind)
        }
        None => Column::new(
            name,
            first.map_or("", |(class, _)| class.name()),
            first.map_or(ValueKind::Null, |(class, _)| class.value_kind()),
        ),
    }
}

/// Binds `params` (in `?NNN` order) as SQLite values; `names[i]` is the name of the
/// `i`-th parameter, for errors.
pub(crate) fn bind_parameters(params: Vec<Value>, names: &[String]) -> Result<SqliteArguments> {
    let mut args = SqliteArguments::default();
    for (index, value) in params.into_iter().enumerate() {
        let name = names.get(index).map_or("?", String::as_str);
        let bound = match to_sqlite(value) {
            Ok(bound) => bound,
            Err(BindError::Unsupported(why)) => {
                return Err(Error::unsupported(format!("parameter `:{name}`: {why}")));
            }
            Err(BindError::Invalid(why)) => {
                return Err(Error::parameter(format!("parameter `:{name}`: {why}")));
            }
        };
        let added = match bound {
            Bound::Null => args.add(Option::<i64>::None),
            Bound::Integer(v) => args.add(v),
            Bound::Real(v) => args.add(v),
            Bound::Text(v) => args.add(v),
            Bound::Blob(v) => args.add(v),
        };
        added.map_err(|e| Error::parameter(format!("parameter `:{name}`: {e}")))?;
    }
    Ok(args)
}

/// A parameter as SQLite stores it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Bound {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum BindError {
    Unsupported(String),
    Invalid(String),
}

/// The binding table: [`Value`] → SQLite storage class.
pub(crate) fn to_sqlite(value: Value) -> Result<Bound, BindError> {
    let too_big = |v: &dyn std::fmt::Display| {
        BindError::Invalid(format!(
            "{v} does not fit SQLite's 64-bit signed INTEGER (to keep every digit, bind it as \
             text or a decimal into a column declared TEXT or DECIMAL TEXT)"
        ))
    };
    Ok(match value {
        Value::Null => Bound::Null,
        Value::Bool(b) => Bound::Integer(i64::from(b)),
        Value::I8(v) => Bound::Integer(v.into()),
        Value::I16(v) => Bound::Integer(v.into()),
        Value::I32(v) => Bound::Integer(v.into()),
        Value::I64(v) => Bound::Integer(v),
        Value::I128(v) => Bound::Integer(i64::try_from(v).map_err(|_| too_big(&v))?),
        Value::U8(v) => Bound::Integer(v.into()),
        Value::U16(v) => Bound::Integer(v.into()),
        Value::U32(v) => Bound::Integer(v.into()),
        Value::U64(v) => Bound::Integer(i64::try_from(v).map_err(|_| too_big(&v))?),
        Value::U128(v) => Bound::Integer(i64::try_from(v).map_err(|_| too_big(&v))?),
        Value::F32(v) if v.is_nan() => return Err(nan()),
        Value::F64(v) if v.is_nan() => return Err(nan()),
        Value::F32(v) => Bound::Real(v.into()),
        Value::F64(v) => Bound::Real(v),
        Value::Decimal(d) => Bound::Text(d.to_string()),
        Value::Text(s) => Bound::Text(s),
        Value::Bytes(b) => Bound::Blob(b),
        Value::Date(d) => Bound::Text(d.format("%Y-%m-%d").to_string()),
        Value::Time(t) => Bound::Text(t.format("%H:%M:%S%.f").to_string()),
        Value::TimeTz(t, offset) => Bound::Text(format!("{}{offset}", t.format("%H:%M:%S%.f"))),
        Value::Timestamp(ts) => Bound::Text(ts.format("%Y-%m-%d %H:%M:%S%.f").to_string()),
        Value::TimestampTz(ts) => Bound::Text(ts.format("%Y-%m-%d %H:%M:%S%.f%:z").to_string()),
        Value::Interval(i) => Bound::Text(i.to_string()),
        Value::Uuid(u) => Bound::Text(u.hyphenated().to_string()),
        Value::Json(j) => Bound::Text(j.to_string()),
        Value::Ip(ip) => Bound::Text(ip.to_string()),
        Value::IpNetwork(ip, prefix) => Bound::Text(format!("{ip}/{prefix}")),
        Value::Array(_) | Value::Tuple(_) | Value::Map(_) => {
            return Err(BindError::Unsupported(format!(
                "SQLite has no {} type; bind each element as its own parameter or pass JSON",
                value.kind()
            )));
        }
        other => {
            return Err(BindError::Unsupported(format!(
                "{} values cannot be bound to SQLite",
                other.kind()
            )));
        }
    })
}

fn nan() -> BindError {
    BindError::Invalid("NaN cannot be stored: SQLite turns it into NULL".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Option<Value> {
        parse_timestamp(text)
    }

    /// Each of `texts`, in a column declared `declared`, is read back as the text it is.
    fn stays_text(declared: Declared, texts: &[&str]) {
        for text in texts {
            assert_eq!(
                to_value(declared, Cell::Text(text)),
                Value::Text((*text).into()),
                "{declared:?} {text:?}"
            );
        }
    }

    #[test]
    fn declared_types_follow_exact_names_then_affinity() {
        let cases = [
            ("", Declared::Dynamic),
            ("INTEGER", Declared::Integer),
            ("bigint", Declared::Integer),
            ("UNSIGNED BIG INT", Declared::Integer),
            ("VARCHAR(255)", Declared::Text),
            ("NCHAR(10)", Declared::Text),
            ("CLOB", Declared::Text),
            ("BLOB", Declared::Blob),
            ("DOUBLE PRECISION", Declared::Real),
            ("FLOAT", Declared::Real),
            ("BOOLEAN", Declared::Bool),
            ("bool", Declared::Bool),
            ("DATE", Declared::Date),
            ("TIME", Declared::Time),
            ("DATETIME", Declared::Timestamp),
            ("TIMESTAMP", Declared::Timestamp),
            ("timestamp without time zone", Declared::Timestamp),
            ("TIMESTAMPTZ", Declared::TimestampTz),
            ("TIMESTAMP WITH TIME ZONE", Declared::TimestampTz),
            ("DECIMAL(10,2)", Declared::Decimal),
            ("NUMERIC", Declared::Decimal),
            ("DECIMAL TEXT", Declared::Decimal),
            ("numeric text(38, 10)", Declared::Decimal),
            ("JSON", Declared::Json),
            ("UUID", Declared::Uuid),
            ("MONEY", Declared::Numeric),
        ];
        for (declared, expected) in cases {
            assert_eq!(Declared::parse(declared), expected, "{declared:?}");
        }
    }

    #[test]
    fn storage_class_decides_without_an_exact_declared_type() {
        for declared in [
            Declared::Dynamic,
            Declared::Integer,
            Declared::Text,
            Declared::Numeric,
        ] {
            assert_eq!(to_value(declared, Cell::Integer(7)), Value::I64(7));
            assert_eq!(to_value(declared, Cell::Real(1.5)), Value::F64(1.5));
            assert_eq!(to_value(declared, Cell::Text("x")), Value::Text("x".into()));
            assert_eq!(
                to_value(declared, Cell::Blob(vec![0, 1])),
                Value::Bytes(vec![0, 1])
            );
            assert_eq!(to_value(declared, Cell::Null), Value::Null);
        }
    }

    #[test]
    fn booleans_are_zero_and_one_only() {
        assert_eq!(
            to_value(Declared::Bool, Cell::Integer(1)),
            Value::Bool(true)
        );
        assert_eq!(
            to_value(Declared::Bool, Cell::Integer(0)),
            Value::Bool(false)
        );
        assert_eq!(to_value(Declared::Bool, Cell::Integer(2)), Value::I64(2));
        assert_eq!(
            to_value(Declared::Bool, Cell::Text("true")),
            Value::Text("true".into())
        );
    }

    #[test]
    fn dates_times_and_timestamps_parse_sqlite_formats_only() {
        assert_eq!(
            to_value(Declared::Date, Cell::Text("2024-02-29")),
            Value::Date(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap())
        );
        stays_text(
            Declared::Date,
            &[
                "2023-02-29",
                "24-01-01",
                "2024-1-01",
                "yesterday",
                "2024-01-01 10:00",
            ],
        );
        assert_eq!(
            to_value(Declared::Time, Cell::Text("23:59:58.25")),
            Value::Time(NaiveTime::from_hms_milli_opt(23, 59, 58, 250).unwrap())
        );
        assert_eq!(
            to_value(Declared::Time, Cell::Text("25:00")),
            Value::Text("25:00".into())
        );
        let naive = NaiveDate::from_ymd_opt(2024, 3, 1)
            .unwrap()
            .and_hms_micro_opt(10, 20, 30, 123_456)
            .unwrap();
        assert_eq!(
            ts("2024-03-01 10:20:30.123456"),
            Some(Value::Timestamp(naive))
        );
        assert_eq!(
            ts("2024-03-01T10:20:30.123456"),
            Some(Value::Timestamp(naive))
        );
        assert_eq!(
            ts("2024-03-01 10:20"),
            Some(Value::Timestamp(
                NaiveDate::from_ymd_opt(2024, 3, 1)
                    .unwrap()
                    .and_hms_opt(10, 20, 0)
                    .unwrap()
            ))
        );
        let with_offset = DateTime::parse_from_rfc3339("2024-03-01T10:20:30.123456+03:00").unwrap();
        assert_eq!(
            ts("2024-03-01 10:20:30.123456+03:00"),
            Some(Value::TimestampTz(with_offset))
        );
        let utc = DateTime::parse_from_rfc3339("2024-03-01T10:20:30Z").unwrap();
        assert_eq!(ts("2024-03-01T10:20:30Z"), Some(Value::TimestampTz(utc)));
        stays_text(
            Declared::Timestamp,
            &[
                "2024-03-01",
                "2024-03-01 25:00:00",
                "2024-03-01X10:00:00",
                "2024-03-01 10:00:00+24:00",
                "2024-03-01 10:00:00 UTC",
                "2024-03-01 10:00:0é",
            ],
        );
    }

    #[test]
    fn decimals_keep_their_digits_and_refuse_non_numbers() {
        let long = "12345678901234567890.123456789";
        assert_eq!(
            to_value(Declared::Decimal, Cell::Text(long)),
            Value::Decimal(long.parse().unwrap())
        );
        assert_eq!(
            to_value(Declared::Decimal, Cell::Integer(-42)),
            Value::Decimal("-42".parse().unwrap())
        );
        assert_eq!(
            to_value(Declared::Decimal, Cell::Real(1.1)),
            Value::Decimal("1.1".parse().unwrap())
        );
        for text in ["NaN", "inf", "abc", ""] {
            assert_eq!(
                to_value(Declared::Decimal, Cell::Text(text)),
                Value::Text(text.into())
            );
        }
    }

    #[test]
    fn reals_are_decimals_only_up_to_fifteen_significant_digits() {
        for (real, decimal) in [
            (-123.45, "-123.45"),
            (0.001_2, "0.0012"),
            (123_456_789_012_345.0, "123456789012345"),
            (0.123_456_789_012_345, "0.123456789012345"),
            (1e20, "100000000000000000000"),
        ] {
            assert_eq!(
                to_value(Declared::Decimal, Cell::Real(real)),
                Value::Decimal(decimal.parse().unwrap()),
                "{real}"
            );
        }
        // What SQLite makes of `12345678901234567890.1234567890` in a NUMERIC column: its
        // shortest text (12345678901234567000) has digits nobody wrote.
        let lossy: f64 = "12345678901234567890.1234567890".parse().unwrap();
        for real in [lossy, 0.1 + 0.2, 1_234_567_890_123_456.0] {
            assert_eq!(
                to_value(Declared::Decimal, Cell::Real(real)),
                Value::F64(real),
                "{real}"
            );
        }
        assert_eq!(significant_digits("-0.00120"), 2);
        assert_eq!(significant_digits("1200"), 2);
        assert_eq!(significant_digits("0"), 0);
    }

    #[test]
    fn json_and_uuid_columns() {
        assert_eq!(
            to_value(Declared::Json, Cell::Text(r#"{"a":[1,2]}"#)),
            Value::Json(serde_json::json!({"a": [1, 2]}))
        );
        assert_eq!(
            to_value(Declared::Json, Cell::Integer(5)),
            Value::Json(serde_json::json!(5))
        );
        assert_eq!(
            to_value(Declared::Json, Cell::Text("{not json")),
            Value::Text("{not json".into())
        );
        let uuid = Uuid::parse_str("67e55044-10b1-426f-9247-bb680e5fe0c8").unwrap();
        assert_eq!(
            to_value(
                Declared::Uuid,
                Cell::Text("67e55044-10b1-426f-9247-bb680e5fe0c8")
            ),
            Value::Uuid(uuid)
        );
        assert_eq!(
            to_value(Declared::Uuid, Cell::Blob(uuid.as_bytes().to_vec())),
            Value::Uuid(uuid)
        );
        assert_eq!(
            to_value(Declared::Uuid, Cell::Blob(vec![1, 2, 3])),
            Value::Bytes(vec![1, 2, 3])
        );
        assert_eq!(
            to_value(Declared::Uuid, Cell::Text("not-a-uuid")),
            Value::Text("not-a-uuid".into())
        );
    }

    #[test]
    fn columns_use_the_declared_type_or_the_first_value() {
        let real = Some((StorageClass::Real, ValueKind::Decimal));
        let c = describe_column("price", Some("DECIMAL(10,2)"), real);
        assert_eq!(
            (c.database_type.as_str(), c.value_kind),
            ("DECIMAL(10,2)", ValueKind::Decimal)
        );
        let c = describe_column("n", None, Some((StorageClass::Integer, ValueKind::I64)));
        assert_eq!(
            (c.database_type.as_str(), c.value_kind),
            ("INTEGER", ValueKind::I64)
        );
        let c = describe_column("n", None, None);
        assert_eq!(
            (c.database_type.as_str(), c.value_kind),
            ("", ValueKind::Null)
        );
        let c = describe_column(
            "m",
            Some("MONEY"),
            Some((StorageClass::Text, ValueKind::Text)),
        );
        assert_eq!(c.value_kind, ValueKind::Text);
        let tz = Some((StorageClass::Text, ValueKind::TimestampTz));
        assert_eq!(
            describe_column("t", Some("DATETIME"), tz).value_kind,
            ValueKind::TimestampTz
        );
        assert_eq!(
            describe_column("t", Some("DATETIME"), None).value_kind,
            ValueKind::Timestamp
        );
    }

    #[test]
    fn binding_rules() {
        assert_eq!(to_sqlite(Value::Bool(true)), Ok(Bound::Integer(1)));
        assert_eq!(
            to_sqlite(Value::U64(i64::MAX as u64)),
            Ok(Bound::Integer(i64::MAX))
        );
        assert!(matches!(
            to_sqlite(Value::U64(u64::MAX)),
            Err(BindError::Invalid(_))
        ));
        assert!(matches!(
            to_sqlite(Value::I128(i128::MIN)),
            Err(BindError::Invalid(_))
        ));
        assert!(matches!(
            to_sqlite(Value::F64(f64::NAN)),
            Err(BindError::Invalid(_))
        ));
        assert_eq!(
            to_sqlite(Value::Decimal("-1.50".parse().unwrap())),
            Ok(Bound::Text("-1.50".into()))
        );
        let naive = NaiveDate::from_ymd_opt(2024, 3, 1)
            .unwrap()
            .and_hms_micro_opt(10, 0, 0, 5)
            .unwrap();
        assert_eq!(
            to_sqlite(Value::Timestamp(naive)),
            Ok(Bound::Text("2024-03-01 10:00:00.000005".into()))
        );
        let tz = DateTime::parse_from_rfc3339("2024-03-01T10:00:00+03:00").unwrap();
        assert_eq!(
            to_sqlite(Value::TimestampTz(tz)),
            Ok(Bound::Text("2024-03-01 10:00:00+03:00".into()))
        );
        assert!(matches!(
            to_sqlite(Value::Array(vec![Value::I64(1)])),
            Err(BindError::Unsupported(_))
        ));
    }

    #[test]
    fn bound_values_read_back_as_the_same_value() {
        // What we write for each temporal kind, the type table reads back exactly.
        let date = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
        let time = NaiveTime::from_hms_micro_opt(1, 2, 3, 456_789).unwrap();
        let naive = date.and_time(time);
        let tz = DateTime::parse_from_rfc3339("2024-02-29T01:02:03.456789-05:30").unwrap();
        let cases = [
            (Declared::Date, Value::Date(date)),
            (Declared::Time, Value::Time(time)),
            (Declared::Timestamp, Value::Timestamp(naive)),
            (Declared::TimestampTz, Value::TimestampTz(tz)),
        ];
        for (declared, value) in cases {
            let Ok(Bound::Text(text)) = to_sqlite(value.clone()) else {
                panic!("{value:?} is not bound as text");
            };
            assert_eq!(to_value(declared, Cell::Text(&text)), value, "{text}");
        }
    }

    #[test]
    fn parameter_errors_name_the_parameter() {
        let err = bind_parameters(
            vec![Value::I64(1), Value::Array(vec![])],
            &["ok".into(), "ids".into()],
        )
        .unwrap_err();
        assert_eq!(err.kind(), extdata_core::ErrorKind::Unsupported);
        assert!(err.message().contains(":ids"), "{err}");
        let err = bind_parameters(vec![Value::U64(u64::MAX)], &["big".into()]).unwrap_err();
        assert_eq!(err.kind(), extdata_core::ErrorKind::Parameter);
        assert!(err.message().contains(":big"), "{err}");
    }
}
