//! [`Value`]: one exact value type for every backend.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use base64::Engine as _;
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime};
use uuid::Uuid;

use crate::error::{Error, Result};

/// A database value, exact for every backend.
///
/// Integers keep their width and sign, decimals keep every digit (no `f64`), timestamps
/// with and without time zone are different variants, bytes are not text, and NULL is
/// not an empty string. Each backend documents its native type → `Value` table in its
/// README.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed 8-bit integer.
    I8(i8),
    /// A signed 16-bit integer.
    I16(i16),
    /// A signed 32-bit integer.
    I32(i32),
    /// A signed 64-bit integer.
    I64(i64),
    /// A signed 128-bit integer.
    I128(i128),
    /// An unsigned 8-bit integer.
    U8(u8),
    /// An unsigned 16-bit integer.
    U16(u16),
    /// An unsigned 32-bit integer.
    U32(u32),
    /// An unsigned 64-bit integer.
    U64(u64),
    /// An unsigned 128-bit integer.
    U128(u128),
    /// A 32-bit float.
    F32(f32),
    /// A 64-bit float.
    F64(f64),
    /// An exact decimal number with every digit kept.
    Decimal(Decimal),
    /// Text (UTF-8).
    Text(String),
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// A calendar date.
    Date(NaiveDate),
    /// A time of day without zone.
    Time(NaiveTime),
    /// A time of day with a UTC offset (PostgreSQL `timetz`).
    TimeTz(NaiveTime, FixedOffset),
    /// A timestamp without time zone (wall clock).
    Timestamp(NaiveDateTime),
    /// An instant with its UTC offset.
    TimestampTz(DateTime<FixedOffset>),
    /// A calendar interval (PostgreSQL `interval`).
    Interval(Interval),
    /// A UUID.
    Uuid(Uuid),
    /// A JSON document.
    Json(serde_json::Value),
    /// An IP address.
    Ip(IpAddr),
    /// An IP network: address and prefix length (PostgreSQL `cidr`, `inet` with a mask).
    IpNetwork(IpAddr, u8),
    /// An array (PostgreSQL arrays, ClickHouse `Array`).
    Array(Vec<Value>),
    /// A tuple (ClickHouse `Tuple`).
    Tuple(Vec<Value>),
    /// A map in server order (ClickHouse `Map`).
    Map(Vec<(Value, Value)>),
}

/// The variant of a [`Value`], used in column descriptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[allow(missing_docs)] // each variant names the `Value` variant of the same name
pub enum ValueKind {
    Null,
    Bool,
    I8,
    I16,
    I32,
    I64,
    I128,
    U8,
    U16,
    U32,
    U64,
    U128,
    F32,
    F64,
    Decimal,
    Text,
    Bytes,
    Date,
    Time,
    TimeTz,
    Timestamp,
    TimestampTz,
    Interval,
    Uuid,
    Json,
    Ip,
    IpNetwork,
    Array,
    Tuple,
    Map,
}

impl ValueKind {
    /// The lower-case name shown by `describe` (`"i64"`, `"timestamptz"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ValueKind::Null => "null",
            ValueKind::Bool => "bool",
            ValueKind::I8 => "i8",
            ValueKind::I16 => "i16",
            ValueKind::I32 => "i32",
            ValueKind::I64 => "i64",
            ValueKind::I128 => "i128",
            ValueKind::U8 => "u8",
            ValueKind::U16 => "u16",
            ValueKind::U32 => "u32",
            ValueKind::U64 => "u64",
            ValueKind::U128 => "u128",
            ValueKind::F32 => "f32",
            ValueKind::F64 => "f64",
            ValueKind::Decimal => "decimal",
            ValueKind::Text => "text",
            ValueKind::Bytes => "bytes",
            ValueKind::Date => "date",
            ValueKind::Time => "time",
            ValueKind::TimeTz => "timetz",
            ValueKind::Timestamp => "timestamp",
            ValueKind::TimestampTz => "timestamptz",
            ValueKind::Interval => "interval",
            ValueKind::Uuid => "uuid",
            ValueKind::Json => "json",
            ValueKind::Ip => "ip",
            ValueKind::IpNetwork => "ip_network",
            ValueKind::Array => "array",
            ValueKind::Tuple => "tuple",
            ValueKind::Map => "map",
        }
    }
}

impl fmt::Display for ValueKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Value {
    /// The variant of this value.
    pub fn kind(&self) -> ValueKind {
        match self {
            Value::Null => ValueKind::Null,
            Value::Bool(_) => ValueKind::Bool,
            Value::I8(_) => ValueKind::I8,
            Value::I16(_) => ValueKind::I16,
            Value::I32(_) => ValueKind::I32,
            Value::I64(_) => ValueKind::I64,
            Value::I128(_) => ValueKind::I128,
            Value::U8(_) => ValueKind::U8,
            Value::U16(_) => ValueKind::U16,
            Value::U32(_) => ValueKind::U32,
            Value::U64(_) => ValueKind::U64,
            Value::U128(_) => ValueKind::U128,
            Value::F32(_) => ValueKind::F32,
            Value::F64(_) => ValueKind::F64,
            Value::Decimal(_) => ValueKind::Decimal,
            Value::Text(_) => ValueKind::Text,
            Value::Bytes(_) => ValueKind::Bytes,
            Value::Date(_) => ValueKind::Date,
            Value::Time(_) => ValueKind::Time,
            Value::TimeTz(..) => ValueKind::TimeTz,
            Value::Timestamp(_) => ValueKind::Timestamp,
            Value::TimestampTz(_) => ValueKind::TimestampTz,
            Value::Interval(_) => ValueKind::Interval,
            Value::Uuid(_) => ValueKind::Uuid,
            Value::Json(_) => ValueKind::Json,
            Value::Ip(_) => ValueKind::Ip,
            Value::IpNetwork(..) => ValueKind::IpNetwork,
            Value::Array(_) => ValueKind::Array,
            Value::Tuple(_) => ValueKind::Tuple,
            Value::Map(_) => ValueKind::Map,
        }
    }

    /// Whether this is SQL NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The text, if this is [`Value::Text`].
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The value as an `i64` when it is an integer that fits.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::I8(v) => Some(v.into()),
            Value::I16(v) => Some(v.into()),
            Value::I32(v) => Some(v.into()),
            Value::I64(v) => Some(v),
            Value::I128(v) => i64::try_from(v).ok(),
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => i64::try_from(v).ok(),
            Value::U128(v) => i64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Converts the value to JSON the way the `extdata` command prints it.
    ///
    /// NULL is `null`; integers are numbers (`u64`/`i64` in full, 128-bit ones as strings
    /// when they exceed 64 bits); decimals are strings with every digit; dates are
    /// `YYYY-MM-DD`; timestamps RFC 3339 (with offset when the value has a zone); bytes
    /// base64; floats that are not finite become strings (`"NaN"`, `"inf"`).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::I8(v) => J::from(*v),
            Value::I16(v) => J::from(*v),
            Value::I32(v) => J::from(*v),
            Value::I64(v) => J::from(*v),
            Value::I128(v) => wide_int_json(i64::try_from(*v), v),
            Value::U8(v) => J::from(*v),
            Value::U16(v) => J::from(*v),
            Value::U32(v) => J::from(*v),
            Value::U64(v) => J::from(*v),
            Value::U128(v) => wide_int_json(u64::try_from(*v), v),
            Value::F32(v) => float_json(f64::from(*v), &v.to_string()),
            Value::F64(v) => float_json(*v, &v.to_string()),
            Value::Json(v) => v.clone(),
            Value::Array(items) | Value::Tuple(items) => {
                J::Array(items.iter().map(Value::to_json).collect())
            }
            Value::Map(entries) => {
                let all_text = entries.iter().all(|(k, _)| matches!(k, Value::Text(_)));
                if all_text {
                    J::Object(
                        entries
                            .iter()
                            .map(|(k, v)| (k.to_text_lossless(), v.to_json()))
                            .collect(),
                    )
                } else {
                    J::Array(
                        entries
                            .iter()
                            .map(|(k, v)| J::Array(vec![k.to_json(), v.to_json()]))
                            .collect(),
                    )
                }
            }
            other => J::String(other.to_text_lossless()),
        }
    }

    /// Renders the value as text for CSV and tables: NULL is the empty string, the rest
    /// as in [`Value::to_json`] without JSON quoting.
    pub fn to_text_lossless(&self) -> String {
        let mut text = String::new();
        self.write_text_lossless(&mut text);
        text
    }

    /// Appends the text of [`Value::to_text_lossless`] to `out`. For a writer that
    /// formats many values into one reused buffer: integers, floats, text, decimals,
    /// dates, times and timestamps (years 0–9999; `TimestampTz` at offset zero) are
    /// written without a `String` of their own.
    pub fn write_text_lossless(&self, out: &mut String) {
        use fmt::Write as _;
        // Writing into a `String` cannot fail.
        macro_rules! display {
            ($v:expr) => {{
                let _ = write!(out, "{}", $v);
            }};
        }
        match self {
            Value::Null => {}
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::I8(v) => display!(v),
            Value::I16(v) => display!(v),
            Value::I32(v) => display!(v),
            Value::I64(v) => display!(v),
            Value::I128(v) => display!(v),
            Value::U8(v) => display!(v),
            Value::U16(v) => display!(v),
            Value::U32(v) => display!(v),
            Value::U64(v) => display!(v),
            Value::U128(v) => display!(v),
            Value::F32(v) => display!(v),
            Value::F64(v) => display!(v),
            Value::Decimal(d) => out.push_str(d.as_str()),
            Value::Text(s) => out.push_str(s),
            Value::Bytes(b) => base64::engine::general_purpose::STANDARD.encode_string(b, out),
            Value::Date(d) => text::date(out, d),
            Value::Time(t) => text::time(out, t),
            Value::TimeTz(t, off) => {
                text::time(out, t);
                display!(off);
            }
            Value::Timestamp(ts) => text::timestamp(out, ts),
            Value::TimestampTz(ts) => text::timestamp_tz(out, ts),
            Value::Interval(i) => display!(i),
            Value::Uuid(u) => display!(u.hyphenated()),
            Value::Json(j) => display!(j),
            Value::Ip(ip) => display!(ip),
            Value::IpNetwork(ip, prefix) => {
                let _ = write!(out, "{ip}/{prefix}");
            }
            Value::Array(_) | Value::Tuple(_) | Value::Map(_) => display!(self.to_json()),
        }
    }
}

/// The text of dates, times and timestamps, as chrono's `%Y-%m-%d`, `%H:%M:%S%.f` and
/// `to_rfc3339_opts(SecondsFormat::AutoSi, true)` write them, digit by digit for the
/// usual range (years 0–9999, no leap second) and through chrono otherwise.
mod text {
    use std::fmt::Write as _;

    use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

    /// `n` in decimal, left-padded with zeros to `width` digits (`n` < 10^width).
    fn digits(out: &mut String, n: u32, width: u32) {
        let mut unit = 10u32.pow(width - 1);
        while unit > 0 {
            out.push(char::from(b'0' + (n / unit % 10) as u8));
            unit /= 10;
        }
    }

    /// Whether the fast path writes `date` as chrono would.
    fn usual(date: &NaiveDate) -> bool {
        (0..=9999).contains(&date.year())
    }

    pub(super) fn date(out: &mut String, date: &NaiveDate) {
        if !usual(date) {
            let _ = write!(out, "{}", date.format("%Y-%m-%d"));
            return;
        }
        digits(out, date.year() as u32, 4);
        out.push('-');
        digits(out, date.month(), 2);
        out.push('-');
        digits(out, date.day(), 2);
    }

    /// `HH:MM:SS` and the fraction chrono's `%.f` gives: none, 3, 6 or 9 digits.
    /// `None` for a leap second (nanoseconds ≥ 10⁹), which the caller leaves to chrono.
    fn clock(out: &mut String, time: &NaiveTime) -> Option<()> {
        let nanos = time.nanosecond();
        if nanos >= 1_000_000_000 {
            return None;
        }
        digits(out, time.hour(), 2);
        out.push(':');
        digits(out, time.minute(), 2);
        out.push(':');
        digits(out, time.second(), 2);
        if nanos == 0 {
        } else if nanos.is_multiple_of(1_000_000) {
            out.push('.');
            digits(out, nanos / 1_000_000, 3);
        } else if nanos.is_multiple_of(1_000) {
            out.push('.');
            digits(out, nanos / 1_000, 6);
        } else {
            out.push('.');
            digits(out, nanos, 9);
        }
        Some(())
    }

    pub(super) fn time(out: &mut String, time: &NaiveTime) {
        if time.nanosecond() >= 1_000_000_000 {
            let _ = write!(out, "{}", time.format("%H:%M:%S%.f"));
        } else {
            let _ = clock(out, time);
        }
    }

    pub(super) fn timestamp(out: &mut String, ts: &NaiveDateTime) {
        if !usual(&ts.date()) || ts.time().nanosecond() >= 1_000_000_000 {
            let _ = write!(out, "{}", ts.format("%Y-%m-%dT%H:%M:%S%.f"));
            return;
        }
        date(out, &ts.date());
        out.push('T');
        let _ = clock(out, &ts.time());
    }

    /// A timestamp at offset zero as `…Z`; any other offset through chrono.
    pub(super) fn timestamp_tz(out: &mut String, ts: &DateTime<FixedOffset>) {
        let naive = ts.naive_utc();
        if ts.offset().local_minus_utc() != 0
            || !usual(&naive.date())
            || naive.time().nanosecond() >= 1_000_000_000
        {
            out.push_str(&ts.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true));
            return;
        }
        timestamp(out, &naive);
        out.push('Z');
    }
}

/// A 128-bit integer as a JSON number when it fits the 64 bits JSON readers keep
/// (`narrow`), as its exact text otherwise.
fn wide_int_json<N: Into<serde_json::Value>, E>(
    narrow: std::result::Result<N, E>,
    wide: &impl fmt::Display,
) -> serde_json::Value {
    narrow
        .map(Into::into)
        .unwrap_or_else(|_| serde_json::Value::String(wide.to_string()))
}

fn float_json(v: f64, text: &str) -> serde_json::Value {
    serde_json::Number::from_f64(v)
        .map(serde_json::Value::Number)
        .unwrap_or_else(|| serde_json::Value::String(text.to_owned()))
}

macro_rules! value_from {
    ($($t:ty => $variant:ident),* $(,)?) => {
        $(impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::$variant(v.into())
            }
        })*
    };
}

value_from! {
    bool => Bool, i8 => I8, i16 => I16, i32 => I32, i64 => I64, i128 => I128,
    u8 => U8, u16 => U16, u32 => U32, u64 => U64, u128 => U128,
    f32 => F32, f64 => F64, String => Text, &str => Text, Vec<u8> => Bytes,
    NaiveDate => Date, NaiveTime => Time, NaiveDateTime => Timestamp,
    DateTime<FixedOffset> => TimestampTz, Uuid => Uuid, serde_json::Value => Json,
    IpAddr => Ip, Decimal => Decimal, Interval => Interval,
}

impl From<DateTime<chrono::Utc>> for Value {
    fn from(v: DateTime<chrono::Utc>) -> Self {
        Value::TimestampTz(v.fixed_offset())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// An exact decimal number, kept as its canonical digits.
///
/// Unlike `f64` it never rounds, and unlike 96-bit decimal types it holds any precision
/// (PostgreSQL `numeric` with 40+ digits, ClickHouse `Decimal256`). The special values
/// `NaN`, `Infinity` and `-Infinity` of PostgreSQL `numeric` are representable.
///
/// ```
/// use extdata_core::Decimal;
/// let d: Decimal = "-00123.4500".parse().unwrap();
/// assert_eq!(d.to_string(), "-123.4500");
/// assert_eq!(d.scale(), 4);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Decimal {
    // Canonical: optional '-', integer digits without leading zeros (at least one),
    // optional '.' and fraction digits (trailing zeros kept: they carry the scale).
    // Or one of "NaN", "Infinity", "-Infinity".
    text: String,
}

impl Decimal {
    /// Builds a decimal from an integer `mantissa` and a `scale` (digits after the point).
    pub fn from_mantissa(mantissa: i128, scale: u32) -> Self {
        Self::from_digits(mantissa < 0, &mantissa.unsigned_abs().to_string(), scale)
    }

    /// Builds a decimal from its sign, its decimal digits (mantissa) and a scale.
    ///
    /// Useful for backends whose wire format gives an arbitrary-size integer mantissa.
    /// The result's text holds at least `scale + 1` digits: `scale` comes from a column
    /// type (bounded by the backend's type system; Hive's is checked against
    /// [`Decimal::MAX_SCALE`]), never from a value. Text from users goes through
    /// [`FromStr`](std::str::FromStr), which is bounded.
    pub fn from_digits(negative: bool, digits: &str, scale: u32) -> Self {
        let digits = digits.trim_start_matches('0');
        let scale = scale as usize;
        let mut padded = String::new();
        if digits.len() <= scale {
            padded.push_str(&"0".repeat(scale + 1 - digits.len()));
        }
        padded.push_str(digits);
        let (int, frac) = padded.split_at(padded.len() - scale);
        let mut text = String::with_capacity(padded.len() + 2);
        let is_zero = digits.is_empty();
        if negative && !is_zero {
            text.push('-');
        }
        text.push_str(int);
        if scale > 0 {
            text.push('.');
            text.push_str(frac);
        }
        Decimal { text }
    }

    /// The canonical text (`-123.4500`, `NaN`, `Infinity`).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Number of digits after the decimal point (0 for the special values).
    pub fn scale(&self) -> u32 {
        self.text
            .split_once('.')
            .map_or(0, |(_, frac)| frac.len() as u32)
    }

    /// Whether this is `NaN` or an infinity.
    pub fn is_special(&self) -> bool {
        matches!(self.text.as_str(), "NaN" | "Infinity" | "-Infinity")
    }

    /// Whether the number is negative.
    pub fn is_negative(&self) -> bool {
        self.text.starts_with('-')
    }

    /// The digits without sign and point, and the scale: `-12.30` → (`"1230"`, 2).
    /// `None` for the special values.
    pub fn mantissa_digits(&self) -> Option<(String, u32)> {
        if self.is_special() {
            return None;
        }
        let unsigned = self.text.trim_start_matches('-');
        let digits: String = unsigned.chars().filter(|c| *c != '.').collect();
        Some((digits, self.scale()))
    }
}

impl Decimal {
    /// The longest text [`Decimal::from_str`](std::str::FromStr) reads, in bytes
    /// (surrounding spaces included).
    pub const MAX_TEXT_LEN: usize = 4096;
    /// The most digits before the decimal point a parsed decimal may have (exponent
    /// applied, leading zeros not counted).
    pub const MAX_INTEGER_DIGITS: usize = 1000;
    /// The most digits after the decimal point a parsed decimal may have (exponent
    /// applied).
    pub const MAX_SCALE: u32 = 1000;

    /// Whether parsing `text` gives a decimal whose text is `text` itself: a canonical
    /// decimal (optional `-`, no leading zero, no `+`, no exponent, no negative zero)
    /// within the limits above. A reader that only needs the text of a decimal a
    /// server sent (e.g. into a text column) can then take `text` as it is, without
    /// building a `Decimal`.
    pub fn is_canonical(text: &str) -> bool {
        if text.len() > Decimal::MAX_TEXT_LEN || !is_canonical_decimal(text) {
            return false;
        }
        let unsigned = text.trim_start_matches('-');
        let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
        check_decimal_size(int.trim_start_matches('0').len(), frac.len() as i128).is_ok()
    }
}

/// Parses decimal text: `-123.4500`, `+.5`, `1.5E+3`, `NaN`, `Infinity`, `-inf`.
///
/// Text comes from users (a `--param`, a form) as well as servers, so parsing is
/// bounded: at most [`Decimal::MAX_TEXT_LEN`] bytes, [`Decimal::MAX_INTEGER_DIGITS`]
/// digits before the point and [`Decimal::MAX_SCALE`] after it once the exponent is
/// applied — more than any backend's largest declared precision (PostgreSQL
/// `numeric(1000)`; MySQL 65, ClickHouse `Decimal256` 76, Oracle, SQL Server and Hive
/// 38 digits). Past them, and for text that is not a number, the error is a
/// [`ErrorKind::Parameter`](crate::ErrorKind::Parameter) that does not quote the
/// text; memory never grows with the exponent (`1e-4000000000` is refused at once).
impl FromStr for Decimal {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        if s.len() > Decimal::MAX_TEXT_LEN {
            return Err(Error::parameter(format!(
                "decimal text is longer than {} bytes",
                Decimal::MAX_TEXT_LEN
            )));
        }
        // What servers print (`-123.4500`) is usually canonical already: one copy.
        if Decimal::is_canonical(s) {
            return Ok(Decimal { text: s.to_owned() });
        }
        let trimmed = s.trim();
        match trimmed.to_ascii_lowercase().as_str() {
            "nan" => return Ok(Decimal { text: "NaN".into() }),
            "infinity" | "+infinity" | "inf" | "+inf" => {
                return Ok(Decimal {
                    text: "Infinity".into(),
                });
            }
            "-infinity" | "-inf" => {
                return Ok(Decimal {
                    text: "-Infinity".into(),
                });
            }
            _ => {}
        }
        let invalid = || Error::parameter("not a decimal number");
        let (negative, unsigned) = match trimmed.as_bytes().first() {
            Some(b'-') => (true, &trimmed[1..]),
            Some(b'+') => (false, &trimmed[1..]),
            _ => (false, trimmed),
        };
        // Scientific notation (`1.5E+3`) as some servers print it.
        let (base, exponent) = match unsigned.find(['e', 'E']) {
            Some(pos) => (
                &unsigned[..pos],
                unsigned[pos + 1..].parse::<i64>().map_err(|_| invalid())?,
            ),
            None => (unsigned, 0),
        };
        let (int, frac) = base.split_once('.').unwrap_or((base, ""));
        if (int.is_empty() && frac.is_empty())
            || !int.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(invalid());
        }
        // i128: neither `len - i64::MIN` nor `len + i64::MAX` overflows.
        let scale = frac.len() as i128 - i128::from(exponent);
        let significant = format!("{int}{frac}");
        let significant = significant.trim_start_matches('0');
        // A zero has no integer digits however large its exponent (`0e9999` is 0).
        let integer_digits = if significant.is_empty() {
            0
        } else {
            (significant.len() as i128 - scale).max(0)
        };
        check_decimal_size(usize::try_from(integer_digits).unwrap_or(usize::MAX), scale)?;
        if scale >= 0 {
            // Bounded by MAX_SCALE above.
            Ok(Decimal::from_digits(negative, significant, scale as u32))
        } else {
            // Bounded by MAX_INTEGER_DIGITS above (none for a zero).
            let zeros = if significant.is_empty() {
                0
            } else {
                (-scale) as usize
            };
            Ok(Decimal::from_digits(
                negative,
                &format!("{significant}{}", "0".repeat(zeros)),
                0,
            ))
        }
    }
}

/// Refuses a decimal whose canonical form would pass the digit limits.
fn check_decimal_size(integer_digits: usize, scale: i128) -> Result<()> {
    if integer_digits > Decimal::MAX_INTEGER_DIGITS {
        return Err(Error::parameter(format!(
            "decimal has more than {} digits before the decimal point",
            Decimal::MAX_INTEGER_DIGITS
        )));
    }
    if scale > i128::from(Decimal::MAX_SCALE) {
        return Err(Error::parameter(format!(
            "decimal has more than {} digits after the decimal point",
            Decimal::MAX_SCALE
        )));
    }
    Ok(())
}

/// Whether `s` is a decimal's canonical text: optional `-`, integer digits without
/// leading zeros, optional `.` and at least one fraction digit, and not a negative zero.
fn is_canonical_decimal(s: &str) -> bool {
    let bytes = s.as_bytes();
    let unsigned = bytes.strip_prefix(b"-").unwrap_or(bytes);
    let (int, frac) = match unsigned.iter().position(|&b| b == b'.') {
        Some(point) => (&unsigned[..point], Some(&unsigned[point + 1..])),
        None => (unsigned, None),
    };
    let int_ok =
        !int.is_empty() && int.iter().all(u8::is_ascii_digit) && (int[0] != b'0' || int.len() == 1);
    let frac_ok = frac.is_none_or(|f| !f.is_empty() && f.iter().all(u8::is_ascii_digit));
    let negative_zero = unsigned.len() != bytes.len()
        && int == b"0"
        && frac.is_none_or(|f| f.iter().all(|&b| b == b'0'));
    int_ok && frac_ok && !negative_zero
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl serde::Serialize for Decimal {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

/// A calendar interval: months, days and microseconds kept apart, as PostgreSQL does
/// (a month is not a fixed number of days).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Interval {
    /// Whole months.
    pub months: i32,
    /// Whole days.
    pub days: i32,
    /// Microseconds.
    pub microseconds: i64,
}

impl fmt::Display for Interval {
    /// ISO 8601 duration, e.g. `P1Y2M3DT4H5M6.5S`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (years, months) = (self.months / 12, self.months % 12);
        write!(f, "P")?;
        if years != 0 {
            write!(f, "{years}Y")?;
        }
        if months != 0 {
            write!(f, "{months}M")?;
        }
        if self.days != 0 {
            write!(f, "{}D", self.days)?;
        }
        let micros = self.microseconds;
        if micros != 0 || (self.months == 0 && self.days == 0) {
            let sign = if micros < 0 { "-" } else { "" };
            let abs = micros.unsigned_abs();
            let (hours, rest) = (abs / 3_600_000_000, abs % 3_600_000_000);
            let (minutes, rest) = (rest / 60_000_000, rest % 60_000_000);
            let (seconds, frac) = (rest / 1_000_000, rest % 1_000_000);
            write!(f, "T")?;
            if hours != 0 {
                write!(f, "{sign}{hours}H")?;
            }
            if minutes != 0 {
                write!(f, "{sign}{minutes}M")?;
            }
            if seconds != 0 || frac != 0 || (hours == 0 && minutes == 0) {
                if frac == 0 {
                    write!(f, "{sign}{seconds}S")?;
                } else {
                    let frac = format!("{frac:06}");
                    write!(f, "{sign}{seconds}.{}S", frac.trim_end_matches('0'))?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    mod canonical_decimals {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// `is_canonical` says exactly when parsing keeps the text as it is.
            #[test]
            fn is_exactly_when_parsing_keeps_the_text(
                text in "[-+ ]?[0-9]{0,4}(\\.[0-9]{0,4})?([eE][-+]?[0-9])?|-?0+(\\.0*)?|.{0,6}"
            ) {
                let kept = text.parse::<Decimal>().is_ok_and(|d| d.as_str() == text);
                prop_assert_eq!(Decimal::is_canonical(&text), kept, "{:?}", text);
            }
        }

        #[test]
        fn past_the_limits_is_not_canonical() {
            let long = "9".repeat(Decimal::MAX_INTEGER_DIGITS + 1);
            assert!(!Decimal::is_canonical(&long));
            assert!(long.parse::<Decimal>().is_err());
            let at_limit = "9".repeat(Decimal::MAX_INTEGER_DIGITS);
            assert!(Decimal::is_canonical(&at_limit));
        }
    }

    mod text_of_time {
        use super::*;
        use chrono::{Datelike as _, FixedOffset, NaiveDateTime, TimeZone as _};
        use proptest::prelude::*;

        /// Any timestamp chrono has, with any nanoseconds (a leap second too).
        fn any_timestamp() -> impl Strategy<Value = NaiveDateTime> {
            let min = NaiveDateTime::MIN.and_utc().timestamp();
            let max = NaiveDateTime::MAX.and_utc().timestamp();
            (
                prop_oneof![min..=max, -62_167_219_200i64..253_402_300_800],
                prop_oneof![
                    Just(0u32),
                    (0u32..1000).prop_map(|ms| ms * 1_000_000),
                    (0u32..1_000_000).prop_map(|us| us * 1_000),
                    0u32..2_000_000_000,
                ],
            )
                .prop_filter_map("in chrono's range", |(secs, nanos)| {
                    DateTime::from_timestamp(secs, nanos).map(|t| t.naive_utc())
                })
        }

        proptest! {
            /// The digit-by-digit text is chrono's, for every date, time and timestamp.
            #[test]
            fn is_what_chrono_writes(ts in any_timestamp(), offset in -86_399i32..86_400) {
                let text = |v: Value| {
                    let mut out = String::from("x");
                    v.write_text_lossless(&mut out);
                    out[1..].to_owned()
                };
                prop_assert_eq!(text(Value::Date(ts.date())), ts.date().format("%Y-%m-%d").to_string());
                prop_assert_eq!(text(Value::Time(ts.time())), ts.time().format("%H:%M:%S%.f").to_string());
                prop_assert_eq!(
                    text(Value::Timestamp(ts)),
                    ts.format("%Y-%m-%dT%H:%M:%S%.f").to_string()
                );
                // A non-zero offset only where the local time stays in chrono's range.
                let far = !(1..=9998).contains(&ts.date().year());
                for offset in [0, offset] {
                    if offset != 0 && far {
                        continue;
                    }
                    let tz = FixedOffset::east_opt(offset).unwrap().from_utc_datetime(&ts);
                    prop_assert_eq!(
                        text(Value::TimestampTz(tz)),
                        tz.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                    );
                }
            }
        }
    }

    #[test]
    fn decimal_keeps_every_digit() {
        let long = "12345678901234567890123456789012345678901234.5678901234567890";
        let d: Decimal = long.parse().unwrap();
        assert_eq!(d.to_string(), long);
        assert_eq!(d.scale(), 16);
    }

    #[test]
    fn decimal_canonical_forms() {
        let cases = [
            ("0", "0"),
            ("-0", "0"),
            ("-0.00", "0.00"),
            ("007.10", "7.10"),
            (".5", "0.5"),
            ("+3", "3"),
            ("1.5E+3", "1500"),
            ("1.25e-2", "0.0125"),
            ("nan", "NaN"),
            ("-Infinity", "-Infinity"),
            // Already canonical (kept as is) and its near misses.
            ("-123.4500", "-123.4500"),
            ("0.0000", "0.0000"),
            ("-0.0001", "-0.0001"),
            ("-0.0000", "0.0000"),
            ("10", "10"),
            ("00", "0"),
            ("01.5", "1.5"),
            ("1.", "1"),
            ("-.5", "-0.5"),
            (" 7 ", "7"),
        ];
        for (input, expected) in cases {
            assert_eq!(
                input.parse::<Decimal>().unwrap().as_str(),
                expected,
                "{input}"
            );
        }
    }

    #[test]
    fn decimal_rejects_garbage() {
        for bad in [
            "", "-", "1.2.3", "abc", "1e", "12a", ".", "--1", "1.-2", "1.2a", "-.",
        ] {
            assert!(bad.parse::<Decimal>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn decimal_with_a_huge_exponent_is_refused_without_allocating() {
        let started = std::time::Instant::now();
        for text in [
            "1e-4000000000",
            "1e4000000000",
            "-1.5e-9223372036854775808",
            "1e9223372036854775807",
            "9e-1001",
            "1e1000",
        ] {
            let error = text.parse::<Decimal>().unwrap_err();
            assert_eq!(error.kind(), crate::ErrorKind::Parameter, "{text}");
            assert!(error.message().contains("digits"), "{text}: {error}");
            assert!(!error.message().contains(text), "{text} quoted in {error}");
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn decimal_limits_cover_every_backends_precision() {
        let max_integer = "9".repeat(Decimal::MAX_INTEGER_DIGITS);
        assert_eq!(
            max_integer.parse::<Decimal>().unwrap().as_str(),
            max_integer
        );
        assert!(format!("1{max_integer}").parse::<Decimal>().is_err());
        // Leading zeros are not digits of the value.
        assert!(format!("000{max_integer}").parse::<Decimal>().is_ok());
        let max_fraction = format!("0.{}", "1".repeat(Decimal::MAX_SCALE as usize));
        assert_eq!(
            max_fraction.parse::<Decimal>().unwrap().scale(),
            Decimal::MAX_SCALE
        );
        assert!(format!("{max_fraction}1").parse::<Decimal>().is_err());
        assert!(format!("-{max_fraction}1").parse::<Decimal>().is_err());
        // Decimal256: 76 digits, any scale.
        let d256 = format!("-{}.{}", "7".repeat(38), "3".repeat(38));
        assert_eq!(d256.parse::<Decimal>().unwrap().as_str(), d256);
        assert_eq!("1e999".parse::<Decimal>().unwrap().as_str().len(), 1000);
        assert_eq!("0e999999999".parse::<Decimal>().unwrap().as_str(), "0");
        let long = " ".repeat(Decimal::MAX_TEXT_LEN) + "1";
        let error = long.parse::<Decimal>().unwrap_err();
        assert_eq!(error.kind(), crate::ErrorKind::Parameter);
    }

    #[test]
    fn decimal_errors_do_not_quote_the_text() {
        let error = "ann@example.com".parse::<Decimal>().unwrap_err();
        assert_eq!(error.kind(), crate::ErrorKind::Parameter);
        assert!(!error.to_string().contains("ann@"), "{error}");
    }

    #[test]
    fn decimal_from_mantissa() {
        assert_eq!(Decimal::from_mantissa(-12345, 2).as_str(), "-123.45");
        assert_eq!(Decimal::from_mantissa(5, 3).as_str(), "0.005");
        assert_eq!(Decimal::from_mantissa(0, 2).as_str(), "0.00");
        assert_eq!(
            Decimal::from_mantissa(i128::MAX, 0).as_str(),
            i128::MAX.to_string()
        );
        let (digits, scale) = Decimal::from_mantissa(-1230, 2).mantissa_digits().unwrap();
        assert_eq!((digits.as_str(), scale), ("1230", 2));
    }

    #[test]
    fn json_rendering_is_exact() {
        assert_eq!(
            Value::U64(u64::MAX).to_json().to_string(),
            "18446744073709551615"
        );
        assert_eq!(
            Value::I64(i64::MIN).to_json().to_string(),
            "-9223372036854775808"
        );
        assert_eq!(
            Value::Decimal("1.10".parse().unwrap()).to_json(),
            serde_json::json!("1.10")
        );
        assert_eq!(
            Value::Bytes(vec![0, 255]).to_json(),
            serde_json::json!("AP8=")
        );
        assert_eq!(Value::Null.to_json(), serde_json::Value::Null);
        let ts = DateTime::parse_from_rfc3339("2024-03-01T10:00:00+03:00").unwrap();
        assert_eq!(
            Value::TimestampTz(ts).to_json(),
            serde_json::json!("2024-03-01T10:00:00+03:00")
        );
        let naive = NaiveDate::from_ymd_opt(2024, 3, 1)
            .unwrap()
            .and_hms_micro_opt(10, 0, 0, 5)
            .unwrap();
        assert_eq!(
            Value::Timestamp(naive).to_json(),
            serde_json::json!("2024-03-01T10:00:00.000005")
        );
        assert_eq!(Value::F64(f64::NAN).to_json(), serde_json::json!("NaN"));
    }

    #[test]
    fn interval_is_iso8601() {
        let i = Interval {
            months: 14,
            days: 3,
            microseconds: 4 * 3_600_000_000 + 5 * 60_000_000 + 6_500_000,
        };
        assert_eq!(i.to_string(), "P1Y2M3DT4H5M6.5S");
        assert_eq!(Interval::default().to_string(), "PT0S");
    }
}
