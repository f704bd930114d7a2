//! The ClickHouse type → [`Value`] table, and [`Value`] → SQL literal / server parameter.
//!
//! | ClickHouse | `Value` |
//! |---|---|
//! | `Bool` | `Bool` |
//! | `Int8` … `Int128` | `I8` … `I128` |
//! | `UInt8` … `UInt128` | `U8` … `U128` |
//! | `Int256`, `UInt256` | `Decimal` with scale 0 (every digit) |
//! | `Float32`, `Float64` | `F32`, `F64`; `BFloat16` → `F32` |
//! | `Decimal(P, S)`, `Decimal32/64/128/256(S)` | `Decimal` (mantissa and scale, exact) |
//! | `String`, `FixedString(N)` | `Text` when UTF-8 (NUL padding kept), else `Bytes` |
//! | `UUID` | `Uuid` |
//! | `Date`, `Date32` | `Date` |
//! | `DateTime`, `DateTime64(P)` without zone | `Timestamp`: wall clock in the server's zone |
//! | `DateTime('Zone')`, `DateTime64(P, 'Zone')` | `TimestampTz` with the zone's offset at that instant |
//! | `Enum8`, `Enum16` | `Text` (the name) |
//! | `IPv4`, `IPv6` | `Ip` |
//! | `Nullable(T)` | `Null` or T's value |
//! | `LowCardinality(T)`, `SimpleAggregateFunction(f, T)` | T's value |
//! | `Array(T)` | `Array` |
//! | `Tuple(…)`, `Point` | `Tuple` |
//! | `Map(K, V)` | `Map` in server order |
//! | `Interval*` | `Interval` |
//! | `Time`, `Time64` | `Time` (a `Decode` error outside 00:00–24:00) |
//! | `JSON` | `Json` (the backend reads the column through `toJSONString`) |
//! | `Nothing`, `AggregateFunction`, `Variant`, `Dynamic`, geo arrays | `Decode` error naming the type (`Nothing` is read through a cast) |

use std::cell::Cell as StdCell;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;
use clickhouse::native::DataTypeNode;
use clickhouse::native::decode::{Decode, ValueReader};
use clickhouse::native::{ArrayData, ArrayReader};
use clickhouse_types::data_types::{DateTimePrecision, DecimalType, EnumType, IntervalType};
use extdata_core::{Decimal, Error, Interval, Result, Value, ValueKind};
use uuid::Uuid;

type BoxedError = Box<dyn std::error::Error + Send + Sync>;

thread_local! {
    // The server's zone for DateTime columns without one. Decoding is synchronous, so a
    // thread-local set around one block's decoding is enough (see `with_server_zone`).
    static SERVER_ZONE: StdCell<Tz> = const { StdCell::new(Tz::UTC) };
}

/// Runs `f` with `zone` as the zone of DateTime columns that do not name one.
pub(crate) fn with_server_zone<T>(zone: Tz, f: impl FnOnce() -> T) -> T {
    let previous = SERVER_ZONE.with(|z| z.replace(zone));
    let result = f();
    SERVER_ZONE.with(|z| z.set(previous));
    result
}

/// One decoded cell: the `Decode` implementation that turns any Native column into
/// [`Value`]s.
pub(crate) struct Cell(pub(crate) Value);

impl<'a> Decode<'a> for Cell {
    fn compatible(_data_type: &DataTypeNode) -> bool {
        true
    }

    fn decode(reader: &mut ValueReader<'a>) -> std::result::Result<Self, BoxedError> {
        decode_scalar(reader.data_type(), reader.native_bytes())
            .map(Cell)
            .map_err(|e| e.message().to_owned().into())
    }

    fn decode_null(_data_type: &DataTypeNode) -> std::result::Result<Self, BoxedError> {
        Ok(Cell(Value::Null))
    }

    fn decode_array(data: ArrayData<'a>) -> std::result::Result<Self, BoxedError> {
        Ok(Cell(Value::Array(collect(data.into_reader::<Cell>()?)?)))
    }

    fn decode_map(
        key_data: ArrayData<'a>,
        value_data: ArrayData<'a>,
    ) -> std::result::Result<Self, BoxedError> {
        let keys = collect(key_data.into_reader::<Cell>()?)?;
        let values = collect(value_data.into_reader::<Cell>()?)?;
        Ok(Cell(Value::Map(keys.into_iter().zip(values).collect())))
    }
}

/// One value's Native bytes (`None`: NULL), for [`Scalar`] to decode.
pub(crate) struct Raw<'a>(pub(crate) Option<&'a [u8]>);

impl<'a> Decode<'a> for Raw<'a> {
    fn compatible(_data_type: &DataTypeNode) -> bool {
        true
    }

    #[inline]
    fn decode(reader: &mut ValueReader<'a>) -> std::result::Result<Self, BoxedError> {
        Ok(Raw(Some(reader.native_bytes())))
    }

    #[inline]
    fn decode_null(_data_type: &DataTypeNode) -> std::result::Result<Self, BoxedError> {
        Ok(Raw(None))
    }
}

fn collect(reader: ArrayReader<'_, Cell>) -> std::result::Result<Vec<Value>, BoxedError> {
    reader
        .map(|cell| cell.map(|c| c.0).map_err(BoxedError::from))
        .collect()
}

/// Removes the wrappers that do not change how a value is stored.
pub(crate) fn unwrap_type(data_type: &DataTypeNode) -> &DataTypeNode {
    match data_type {
        DataTypeNode::Nullable(inner)
        | DataTypeNode::LowCardinality(inner)
        | DataTypeNode::SimpleAggregateFunction(_, inner) => unwrap_type(inner),
        other => other,
    }
}

fn fixed<const N: usize>(bytes: &[u8], data_type: &DataTypeNode) -> Result<[u8; N]> {
    bytes
        .get(..N)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            Error::decode(format!(
                "{data_type}: expected {N} bytes, got {}",
                bytes.len()
            ))
        })
}

/// Decodes one non-NULL value of `data_type` from its Native bytes.
pub(crate) fn decode_scalar(data_type: &DataTypeNode, bytes: &[u8]) -> Result<Value> {
    let t = unwrap_type(data_type);
    Scalar::of(t)?.decode(bytes, t)
}

/// A DateTime column's zone, looked up once per column.
#[derive(Clone, Copy)]
enum Zone<'t> {
    /// No zone in the type: the server's (see [`with_server_zone`]).
    Server,
    Named(Tz),
    /// A name the zone database does not know: each value is a `Decode` error.
    Unknown(&'t str),
}

impl<'t> Zone<'t> {
    fn of(name: Option<&'t str>) -> Self {
        match name {
            None => Zone::Server,
            Some(name) => parse_zone(name).map_or(Zone::Unknown(name), Zone::Named),
        }
    }
}

/// How one non-NULL value of a scalar type is decoded: the type table above resolved
/// once (per column when reading a block), so decoding a value is one flat match.
#[derive(Clone, Copy)]
enum Scalar<'t> {
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
    Int256,
    UInt256,
    F32,
    F64,
    BFloat16,
    Decimal32(u32),
    Decimal64(u32),
    Decimal128(u32),
    Decimal256(u32),
    Text,
    Uuid,
    Date,
    Date32,
    DateTime(Zone<'t>),
    DateTime64(u32, Zone<'t>),
    Time,
    Time64(u32),
    Interval(&'t IntervalType),
    IPv4,
    IPv6,
    Enum8(&'t HashMap<i16, String>),
    Enum16(&'t HashMap<i16, String>),
    Point,
}

impl<'t> Scalar<'t> {
    /// The decoding of `t` (already unwrapped); an error for types that are not scalars
    /// or not supported.
    fn of(t: &'t DataTypeNode) -> Result<Self> {
        Ok(match t {
            DataTypeNode::Bool => Scalar::Bool,
            DataTypeNode::Int8 => Scalar::I8,
            DataTypeNode::Int16 => Scalar::I16,
            DataTypeNode::Int32 => Scalar::I32,
            DataTypeNode::Int64 => Scalar::I64,
            DataTypeNode::Int128 => Scalar::I128,
            DataTypeNode::UInt8 => Scalar::U8,
            DataTypeNode::UInt16 => Scalar::U16,
            DataTypeNode::UInt32 => Scalar::U32,
            DataTypeNode::UInt64 => Scalar::U64,
            DataTypeNode::UInt128 => Scalar::U128,
            DataTypeNode::Int256 => Scalar::Int256,
            DataTypeNode::UInt256 => Scalar::UInt256,
            DataTypeNode::Float32 => Scalar::F32,
            DataTypeNode::Float64 => Scalar::F64,
            DataTypeNode::BFloat16 => Scalar::BFloat16,
            DataTypeNode::Decimal(_, scale, width) => {
                let scale = u32::from(*scale);
                match width {
                    DecimalType::Decimal32 => Scalar::Decimal32(scale),
                    DecimalType::Decimal64 => Scalar::Decimal64(scale),
                    DecimalType::Decimal128 => Scalar::Decimal128(scale),
                    DecimalType::Decimal256 => Scalar::Decimal256(scale),
                }
            }
            DataTypeNode::String | DataTypeNode::FixedString(_) => Scalar::Text,
            DataTypeNode::UUID => Scalar::Uuid,
            DataTypeNode::Date => Scalar::Date,
            DataTypeNode::Date32 => Scalar::Date32,
            DataTypeNode::DateTime(zone) => Scalar::DateTime(Zone::of(zone.as_deref())),
            DataTypeNode::DateTime64(precision, zone) => {
                Scalar::DateTime64(precision_digits(precision), Zone::of(zone.as_deref()))
            }
            DataTypeNode::Time => Scalar::Time,
            DataTypeNode::Time64(precision) => Scalar::Time64(precision_digits(precision)),
            DataTypeNode::Interval(unit) => Scalar::Interval(unit),
            DataTypeNode::IPv4 => Scalar::IPv4,
            DataTypeNode::IPv6 => Scalar::IPv6,
            DataTypeNode::Enum(EnumType::Enum8, names) => Scalar::Enum8(names),
            DataTypeNode::Enum(EnumType::Enum16, names) => Scalar::Enum16(names),
            DataTypeNode::Point => Scalar::Point,
            other => {
                return Err(Error::decode(format!(
                    "the ClickHouse type {other} is not supported; CAST it to a supported type"
                )));
            }
        })
    }

    /// Decodes one value from its Native `bytes`; `t` (the type this was built from)
    /// names the type in errors.
    #[inline]
    fn decode(self, bytes: &[u8], t: &DataTypeNode) -> Result<Value> {
        Ok(match self {
            Scalar::Bool => Value::Bool(fixed::<1>(bytes, t)?[0] != 0),
            Scalar::I8 => Value::I8(i8::from_le_bytes(fixed(bytes, t)?)),
            Scalar::I16 => Value::I16(i16::from_le_bytes(fixed(bytes, t)?)),
            Scalar::I32 => Value::I32(i32::from_le_bytes(fixed(bytes, t)?)),
            Scalar::I64 => Value::I64(i64::from_le_bytes(fixed(bytes, t)?)),
            Scalar::I128 => Value::I128(i128::from_le_bytes(fixed(bytes, t)?)),
            Scalar::U8 => Value::U8(fixed::<1>(bytes, t)?[0]),
            Scalar::U16 => Value::U16(u16::from_le_bytes(fixed(bytes, t)?)),
            Scalar::U32 => Value::U32(u32::from_le_bytes(fixed(bytes, t)?)),
            Scalar::U64 => Value::U64(u64::from_le_bytes(fixed(bytes, t)?)),
            Scalar::U128 => Value::U128(u128::from_le_bytes(fixed(bytes, t)?)),
            Scalar::Int256 => Value::Decimal(wide_decimal(&fixed::<32>(bytes, t)?, true, 0)),
            Scalar::UInt256 => Value::Decimal(wide_decimal(&fixed::<32>(bytes, t)?, false, 0)),
            Scalar::F32 => Value::F32(f32::from_le_bytes(fixed(bytes, t)?)),
            Scalar::F64 => Value::F64(f64::from_le_bytes(fixed(bytes, t)?)),
            Scalar::BFloat16 => {
                let bits = u16::from_le_bytes(fixed(bytes, t)?);
                Value::F32(f32::from_bits(u32::from(bits) << 16))
            }
            Scalar::Decimal32(scale) => {
                Value::Decimal(decimal(i32::from_le_bytes(fixed(bytes, t)?).into(), scale))
            }
            Scalar::Decimal64(scale) => {
                Value::Decimal(decimal(i64::from_le_bytes(fixed(bytes, t)?).into(), scale))
            }
            Scalar::Decimal128(scale) => {
                Value::Decimal(decimal(i128::from_le_bytes(fixed(bytes, t)?), scale))
            }
            Scalar::Decimal256(scale) => {
                Value::Decimal(wide_decimal(&fixed::<32>(bytes, t)?, true, scale))
            }
            Scalar::Text => match std::str::from_utf8(bytes) {
                Ok(text) => Value::Text(text.to_owned()),
                Err(_) => Value::Bytes(bytes.to_vec()),
            },
            Scalar::Uuid => {
                let pair = fixed::<16>(bytes, t)?;
                let (high, low) = pair.split_at(8);
                Value::Uuid(Uuid::from_u64_pair(
                    u64::from_le_bytes(high.try_into().expect("8 bytes")),
                    u64::from_le_bytes(low.try_into().expect("8 bytes")),
                ))
            }
            Scalar::Date => {
                let days = u16::from_le_bytes(fixed(bytes, t)?);
                epoch_date(i64::from(days), t)?
            }
            Scalar::Date32 => {
                let days = i32::from_le_bytes(fixed(bytes, t)?);
                epoch_date(i64::from(days), t)?
            }
            Scalar::DateTime(zone) => {
                let seconds = u32::from_le_bytes(fixed(bytes, t)?);
                instant(i64::from(seconds), 0, zone, t)?
            }
            Scalar::DateTime64(digits, zone) => {
                let ticks = i64::from_le_bytes(fixed(bytes, t)?);
                let per_second = 10_i64.pow(digits);
                let seconds = ticks.div_euclid(per_second);
                let fraction = ticks.rem_euclid(per_second);
                let nanos = u32::try_from(fraction * 10_i64.pow(9 - digits))
                    .map_err(|_| Error::decode(format!("{t}: fraction out of range")))?;
                instant(seconds, nanos, zone, t)?
            }
            Scalar::Time => {
                let seconds = i32::from_le_bytes(fixed(bytes, t)?);
                time_of_day(i64::from(seconds), 0, t)?
            }
            Scalar::Time64(digits) => {
                let ticks = i64::from_le_bytes(fixed(bytes, t)?);
                let per_second = 10_i64.pow(digits);
                let nanos = ticks.rem_euclid(per_second) * 10_i64.pow(9 - digits);
                time_of_day(ticks.div_euclid(per_second), nanos as u32, t)?
            }
            Scalar::Interval(unit) => {
                let count = i64::from_le_bytes(fixed(bytes, t)?);
                interval(count, unit, t)?
            }
            Scalar::IPv4 => Value::Ip(IpAddr::V4(Ipv4Addr::from_bits(u32::from_le_bytes(fixed(
                bytes, t,
            )?)))),
            Scalar::IPv6 => Value::Ip(IpAddr::V6(Ipv6Addr::from(fixed::<16>(bytes, t)?))),
            Scalar::Enum8(names) => {
                enum_name(names, i16::from(i8::from_le_bytes(fixed(bytes, t)?)), t)?
            }
            Scalar::Enum16(names) => enum_name(names, i16::from_le_bytes(fixed(bytes, t)?), t)?,
            Scalar::Point => {
                let pair = fixed::<16>(bytes, t)?;
                let (x, y) = pair.split_at(8);
                Value::Tuple(vec![
                    Value::F64(f64::from_le_bytes(x.try_into().expect("8 bytes"))),
                    Value::F64(f64::from_le_bytes(y.try_into().expect("8 bytes"))),
                ])
            }
        })
    }
}

fn enum_name(names: &HashMap<i16, String>, number: i16, t: &DataTypeNode) -> Result<Value> {
    match names.get(&number) {
        Some(name) => Ok(Value::Text(name.clone())),
        None => Err(Error::decode(format!(
            "{t}: value {number} has no name in the enum"
        ))),
    }
}

/// `mantissa` × 10^-`scale` as a [`Decimal`]: the canonical text is written on the
/// stack and copied once (`Decimal::from_mantissa` allocates three times).
fn decimal(mantissa: i128, scale: u32) -> Decimal {
    // i128 has at most 39 digits; scale ≤ 38 for these widths (Decimal256 goes through
    // `wide_decimal`). Sign, "0." and the digits fit in 96 bytes.
    let width = scale as usize;
    if width > 76 {
        return Decimal::from_mantissa(mantissa, scale);
    }
    let mut digits = [0u8; 40];
    let mut start = digits.len();
    let mut n = mantissa.unsigned_abs();
    // 128-bit division is a library call: once the rest fits in 64 bits, divide those.
    while n > u128::from(u64::MAX) {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    let mut n = n as u64;
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let digits = &digits[start..];
    let mut text = [0u8; 128];
    let mut len = 0;
    let mut push = |bytes: &[u8]| {
        text[len..len + bytes.len()].copy_from_slice(bytes);
        len += bytes.len();
    };
    if mantissa < 0 {
        push(b"-");
    }
    if digits.len() > width {
        let (int, frac) = digits.split_at(digits.len() - width);
        push(int);
        if width > 0 {
            push(b".");
            push(frac);
        }
    } else {
        push(b"0.");
        for _ in 0..width - digits.len() {
            push(b"0");
        }
        push(digits);
    }
    std::str::from_utf8(&text[..len])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| Decimal::from_mantissa(mantissa, scale))
}

pub(crate) fn precision_digits(precision: &DateTimePrecision) -> u32 {
    // The enum's variants are Precision0 … Precision9, in order.
    let text = format!("{precision:?}");
    text.trim_start_matches("Precision").parse().unwrap_or(0)
}

fn epoch_date(days: i64, t: &DataTypeNode) -> Result<Value> {
    // 1970-01-01 is day 719,163 counted from 0001-01-01 (day 1).
    const EPOCH_FROM_CE: i64 = 719_163;
    i32::try_from(days + EPOCH_FROM_CE)
        .ok()
        .and_then(NaiveDate::from_num_days_from_ce_opt)
        .map(Value::Date)
        .ok_or_else(|| Error::decode(format!("{t}: {days} days is out of range")))
}

fn instant(seconds: i64, nanos: u32, zone: Zone<'_>, t: &DataTypeNode) -> Result<Value> {
    let utc = DateTime::<Utc>::from_timestamp(seconds, nanos)
        .ok_or_else(|| Error::decode(format!("{t}: {seconds} s is out of range")))?;
    match zone {
        // UTC needs no look-up in the zone's transitions.
        Zone::Named(Tz::UTC) => Ok(Value::TimestampTz(utc.fixed_offset())),
        Zone::Named(tz) => Ok(Value::TimestampTz(utc.with_timezone(&tz).fixed_offset())),
        Zone::Unknown(name) => Err(Error::decode(format!("{t}: unknown time zone `{name}`"))),
        Zone::Server => {
            let tz = SERVER_ZONE.with(StdCell::get);
            Ok(Value::Timestamp(utc.with_timezone(&tz).naive_local()))
        }
    }
}

fn time_of_day(seconds: i64, nanos: u32, t: &DataTypeNode) -> Result<Value> {
    u32::try_from(seconds)
        .ok()
        .and_then(|s| NaiveTime::from_num_seconds_from_midnight_opt(s, nanos))
        .map(Value::Time)
        .ok_or_else(|| Error::decode(format!("{t}: {seconds} s is not a time of day")))
}

fn interval(count: i64, unit: &IntervalType, t: &DataTypeNode) -> Result<Value> {
    let overflow = || Error::decode(format!("{t}: {count} is out of range"));
    let months = |factor: i64| -> Result<Value> {
        let months = i32::try_from(count.checked_mul(factor).ok_or_else(overflow)?)
            .map_err(|_| overflow())?;
        Ok(Value::Interval(Interval {
            months,
            ..Interval::default()
        }))
    };
    let days = |factor: i64| -> Result<Value> {
        let days = i32::try_from(count.checked_mul(factor).ok_or_else(overflow)?)
            .map_err(|_| overflow())?;
        Ok(Value::Interval(Interval {
            days,
            ..Interval::default()
        }))
    };
    let micros = |factor: i64| -> Result<Value> {
        Ok(Value::Interval(Interval {
            microseconds: count.checked_mul(factor).ok_or_else(overflow)?,
            ..Interval::default()
        }))
    };
    match unit {
        IntervalType::Year => months(12),
        IntervalType::Quarter => months(3),
        IntervalType::Month => months(1),
        IntervalType::Week => days(7),
        IntervalType::Day => days(1),
        IntervalType::Hour => micros(3_600_000_000),
        IntervalType::Minute => micros(60_000_000),
        IntervalType::Second => micros(1_000_000),
        IntervalType::Millisecond => micros(1_000),
        IntervalType::Microsecond => micros(1),
        IntervalType::Nanosecond if count.rem_euclid(1_000) == 0 => micros(1).map(|v| match v {
            Value::Interval(mut i) => {
                i.microseconds /= 1_000;
                Value::Interval(i)
            }
            other => other,
        }),
        IntervalType::Nanosecond => Err(Error::decode(format!(
            "{t}: {count} ns is not a whole number of microseconds"
        ))),
    }
}

/// A 256-bit little-endian integer (two's complement when `signed`) as a decimal with
/// `scale` digits after the point.
pub(crate) fn wide_decimal(bytes: &[u8; 32], signed: bool, scale: u32) -> Decimal {
    let mut limbs = [0u64; 4];
    for (i, limb) in limbs.iter_mut().enumerate() {
        *limb = u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    }
    let negative = signed && limbs[3] >> 63 == 1;
    if negative {
        // Two's complement: invert and add one.
        let mut carry = true;
        for limb in &mut limbs {
            *limb = !*limb;
            if carry {
                let (sum, overflow) = limb.overflowing_add(1);
                *limb = sum;
                carry = overflow;
            }
        }
    }
    // Repeated division by 10^19 (the largest power of ten in a u64), most significant
    // limb first.
    const CHUNK: u64 = 10_000_000_000_000_000_000;
    let mut chunks: Vec<u64> = Vec::new();
    while limbs.iter().any(|l| *l != 0) {
        let mut remainder: u128 = 0;
        for limb in limbs.iter_mut().rev() {
            let current = (remainder << 64) | u128::from(*limb);
            *limb = (current / u128::from(CHUNK)) as u64;
            remainder = current % u128::from(CHUNK);
        }
        chunks.push(remainder as u64);
    }
    let mut digits = String::new();
    for (i, chunk) in chunks.iter().rev().enumerate() {
        if i == 0 {
            digits.push_str(&chunk.to_string());
        } else {
            digits.push_str(&format!("{chunk:019}"));
        }
    }
    if digits.is_empty() {
        digits.push('0');
    }
    Decimal::from_digits(negative, &digits, scale)
}

/// The [`ValueKind`] non-NULL values of `data_type` decode to, and whether it is nullable.
pub(crate) fn value_kind(data_type: &DataTypeNode) -> (ValueKind, bool) {
    let nullable = matches!(data_type, DataTypeNode::Nullable(_))
        || matches!(data_type, DataTypeNode::LowCardinality(inner) if matches!(**inner, DataTypeNode::Nullable(_)));
    let kind = match unwrap_type(data_type) {
        DataTypeNode::Bool => ValueKind::Bool,
        DataTypeNode::Int8 => ValueKind::I8,
        DataTypeNode::Int16 => ValueKind::I16,
        DataTypeNode::Int32 => ValueKind::I32,
        DataTypeNode::Int64 => ValueKind::I64,
        DataTypeNode::Int128 => ValueKind::I128,
        DataTypeNode::UInt8 => ValueKind::U8,
        DataTypeNode::UInt16 => ValueKind::U16,
        DataTypeNode::UInt32 => ValueKind::U32,
        DataTypeNode::UInt64 => ValueKind::U64,
        DataTypeNode::UInt128 => ValueKind::U128,
        DataTypeNode::Int256 | DataTypeNode::UInt256 | DataTypeNode::Decimal(..) => {
            ValueKind::Decimal
        }
        DataTypeNode::Float32 | DataTypeNode::BFloat16 => ValueKind::F32,
        DataTypeNode::Float64 => ValueKind::F64,
        DataTypeNode::String | DataTypeNode::FixedString(_) | DataTypeNode::Enum(..) => {
            ValueKind::Text
        }
        DataTypeNode::UUID => ValueKind::Uuid,
        DataTypeNode::Date | DataTypeNode::Date32 => ValueKind::Date,
        DataTypeNode::DateTime(None) | DataTypeNode::DateTime64(_, None) => ValueKind::Timestamp,
        DataTypeNode::DateTime(Some(_)) | DataTypeNode::DateTime64(_, Some(_)) => {
            ValueKind::TimestampTz
        }
        DataTypeNode::Time | DataTypeNode::Time64(_) => ValueKind::Time,
        DataTypeNode::Interval(_) => ValueKind::Interval,
        DataTypeNode::IPv4 | DataTypeNode::IPv6 => ValueKind::Ip,
        DataTypeNode::Array(_) => ValueKind::Array,
        DataTypeNode::Tuple(_) | DataTypeNode::Point => ValueKind::Tuple,
        DataTypeNode::Map(_) => ValueKind::Map,
        _ => ValueKind::Text,
    };
    (kind, nullable)
}

// ------------------------------------------------------------------ Value → ClickHouse

/// Writes `text` as a ClickHouse string literal: quotes and backslashes escaped, every
/// control byte as `\xHH`. For the backend's own texts (a `query_id`); values go through
/// [`literal`], which never puts their text between quotes.
pub(crate) fn quote_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02X}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// `unhex('…')`: any bytes as a `String` expression whose text holds only hex digits.
fn unhex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len() * 2 + 9);
    out.push_str("unhex('");
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0F)]));
    }
    out.push_str("')");
    out
}

/// `text`, which the caller built from digits, `-`, `.`, `:` and spaces only, between
/// quotes (dates, decimals, UUIDs, IP addresses).
fn plain(text: &str) -> Result<String> {
    if text
        .bytes()
        .all(|b| b.is_ascii_hexdigit() || matches!(b, b'-' | b'.' | b':' | b' '))
        && !text.contains("--")
    {
        Ok(format!("'{text}'"))
    } else {
        Err(Error::parameter(
            "a value rendered to unexpected characters for a ClickHouse literal",
        ))
    }
}

/// A float as a number literal (ClickHouse reads those exactly; 18.16 reads the text
/// form of `toFloat64('…')` inexactly, about one value in five off by one unit in the
/// last place). Subnormals are a syntax error as literals: they are built by arithmetic
/// that is exact.
fn float_literal(value: f64, function: &str) -> String {
    if value.is_nan() {
        return format!("{function}(nan)");
    }
    if value.is_infinite() {
        return format!("{function}({}inf)", if value > 0.0 { "" } else { "-" });
    }
    if value != 0.0 && value.abs() < f64::MIN_POSITIVE {
        // m × 2^-1074 = (m × 2^-1022) / 2^52, both steps exact.
        let mantissa = value.abs().to_bits();
        let sign = if value < 0.0 { "-" } else { "" };
        return format!(
            "{function}({sign}({mantissa} * {:?}) / 4503599627370496)",
            f64::MIN_POSITIVE
        );
    }
    // `{:?}` is the shortest text that reads back as the same float (`1e-300`, `-0.0`).
    format!("{function}({value:?})")
}

/// What the server can do, for rendering values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ServerFeatures {
    /// `Bool`, `DateTime64`, `Int128`… (21.x and later).
    pub(crate) modern_types: bool,
}

/// Renders `value` as a ClickHouse expression of the same value.
///
/// Used where the server has no binding (18.x) and for the values that have no server
/// parameter type below. The value's own text never appears: strings and bytes are hex
/// digits inside `unhex('…')`, numbers are digits, and dates, timestamps, decimals,
/// UUIDs and IP addresses are digits, hex digits, `-`, `.`, `:` and spaces between
/// quotes. So whatever the lexer state at the placeholder, no value can end a comment,
/// a string or a quoted identifier, or start one (see the README's "Parameters").
pub(crate) fn literal(value: &Value, features: ServerFeatures) -> Result<String> {
    let modern = features.modern_types;
    Ok(match value {
        Value::Null => "NULL".to_owned(),
        Value::Bool(b) if modern => b.to_string(),
        Value::Bool(b) => format!("toUInt8({})", u8::from(*b)),
        Value::I8(v) => format!("toInt8({v})"),
        Value::I16(v) => format!("toInt16({v})"),
        Value::I32(v) => format!("toInt32({v})"),
        Value::I64(v) => format!("toInt64({v})"),
        Value::I128(v) => format!("toInt128({})", plain(&v.to_string())?),
        Value::U8(v) => format!("toUInt8({v})"),
        Value::U16(v) => format!("toUInt16({v})"),
        Value::U32(v) => format!("toUInt32({v})"),
        Value::U64(v) => format!("toUInt64({v})"),
        Value::U128(v) => format!("toUInt128({})", plain(&v.to_string())?),
        Value::F32(v) => float_literal(f64::from(*v), "toFloat32"),
        Value::F64(v) => float_literal(*v, "toFloat64"),
        Value::Decimal(d) => {
            let (digits, scale) = d
                .mantissa_digits()
                .ok_or_else(|| Error::parameter("ClickHouse has no decimal NaN or infinity"))?;
            let text = plain(d.as_str())?;
            if !modern {
                // 18.x refuses a typed Decimal in INSERT … VALUES ("Expected Decimal(38, 10).
                // Got: Decimal128") but parses the column's text form.
                return Ok(text);
            }
            let function = match digits.len() {
                0..=9 => "toDecimal32",
                10..=18 => "toDecimal64",
                19..=38 => "toDecimal128",
                _ => "toDecimal256",
            };
            format!("{function}({text}, {scale})")
        }
        Value::Text(s) => unhex(s.as_bytes()),
        Value::Bytes(b) => unhex(b),
        Value::Json(j) => unhex(j.to_string().as_bytes()),
        Value::Date(d) => {
            date_in_range(*d, modern)?;
            format!("toDate({})", plain(&d.format("%Y-%m-%d").to_string())?)
        }
        Value::Timestamp(ts) => {
            let seconds = ts.and_utc().timestamp();
            datetime_in_range(seconds, modern)?;
            if ts.and_utc().timestamp_subsec_nanos() == 0 && fits_datetime(seconds) {
                format!(
                    "toDateTime({})",
                    plain(&ts.format("%Y-%m-%d %H:%M:%S").to_string())?
                )
            } else if modern {
                format!(
                    "toDateTime64({}, 9)",
                    plain(&ts.format("%Y-%m-%d %H:%M:%S%.9f").to_string())?
                )
            } else {
                // 18.x has no sub-second type (DateTime64 came with 20.1): the text,
                // never a rounded DateTime.
                plain(&ts.format("%Y-%m-%d %H:%M:%S%.f").to_string())?
            }
        }
        Value::TimestampTz(ts) => {
            let utc = ts.with_timezone(&Utc);
            datetime_in_range(utc.timestamp(), modern)?;
            if utc.timestamp_subsec_nanos() == 0 && fits_datetime(utc.timestamp()) {
                format!(
                    "toDateTime({}, 'UTC')",
                    plain(&utc.format("%Y-%m-%d %H:%M:%S").to_string())?
                )
            } else if modern {
                format!(
                    "toDateTime64({}, 9, 'UTC')",
                    plain(&utc.format("%Y-%m-%d %H:%M:%S%.9f").to_string())?
                )
            } else {
                plain(&utc.format("%Y-%m-%d %H:%M:%S%.f").to_string())?
            }
        }
        Value::Uuid(u) if modern => format!("toUUID({})", plain(&u.hyphenated().to_string())?),
        // 18.x refuses a typed UUID in INSERT … VALUES ("Expected: UUID. Got: UInt128").
        Value::Uuid(u) => plain(&u.hyphenated().to_string())?,
        Value::Ip(IpAddr::V4(ip)) if modern => format!("toIPv4({})", plain(&ip.to_string())?),
        Value::Ip(IpAddr::V6(ip)) if modern => format!("toIPv6({})", plain(&ip.to_string())?),
        Value::Ip(ip) => plain(&ip.to_string())?,
        Value::Array(items) => {
            let items: Result<Vec<String>> = items.iter().map(|v| literal(v, features)).collect();
            format!("[{}]", items?.join(", "))
        }
        Value::Tuple(items) => {
            let items: Result<Vec<String>> = items.iter().map(|v| literal(v, features)).collect();
            format!("tuple({})", items?.join(", "))
        }
        Value::Map(entries) => {
            let mut parts = Vec::with_capacity(entries.len() * 2);
            for (k, v) in entries {
                parts.push(literal(k, features)?);
                parts.push(literal(v, features)?);
            }
            format!("map({})", parts.join(", "))
        }
        other => {
            return Err(Error::parameter(format!(
                "a {} value cannot be bound to a ClickHouse query",
                other.kind()
            )));
        }
    })
}

/// `Date` holds 1970-01-01 to 2149-06-06 (18.x: to 2105-12-31); a date outside would
/// silently become another date.
fn date_in_range(date: NaiveDate, modern: bool) -> Result<()> {
    let first = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
    let last = if modern {
        NaiveDate::from_ymd_opt(2149, 6, 6)
    } else {
        NaiveDate::from_ymd_opt(2105, 12, 31)
    }
    .expect("valid date");
    if (first..=last).contains(&date) {
        Ok(())
    } else {
        Err(Error::parameter(format!(
            "a date parameter is outside ClickHouse's Date range ({first} to {last})"
        )))
    }
}

/// Whether `seconds` since the epoch fit `DateTime` (a `UInt32`).
fn fits_datetime(seconds: i64) -> bool {
    (0..=i64::from(u32::MAX)).contains(&seconds)
}

/// `DateTime` holds 1970 to 2106-02-07 (seconds as `UInt32`); outside it a value would
/// silently become another instant. Servers with `DateTime64` take 1900 to 2299.
fn datetime_in_range(seconds: i64, modern: bool) -> Result<()> {
    // 1900-01-01 to 2299-12-31 23:59:59 for DateTime64.
    let fits = if modern {
        (-2_208_988_800..=10_413_791_999).contains(&seconds)
    } else {
        fits_datetime(seconds)
    };
    if fits {
        Ok(())
    } else {
        Err(Error::parameter(
            "a timestamp parameter is outside the range ClickHouse's DateTime holds",
        ))
    }
}

/// The deepest nesting of arrays, tuples and maps a bound value may have. 26.x refuses
/// an expression deeper than 300 AST levels (an array parameter between 100 and 200
/// levels deep), and an 18.16 server crashes on a literal 1,000 arrays deep (a stack
/// overflow that ends its process); rendering and redacting recurse once per level too.
pub(crate) const MAX_NESTING: usize = 100;

/// Whether `value` nests arrays, tuples and maps more than [`MAX_NESTING`] levels deep
/// (a scalar is level 0). Walks the value without recursing, so any depth is safe.
pub(crate) fn too_deep(value: &Value) -> bool {
    let mut pending: Vec<(&Value, usize)> = vec![(value, 0)];
    while let Some((value, depth)) = pending.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Array(items) | Value::Tuple(items) => Box::new(items.iter()),
            Value::Map(entries) => Box::new(entries.iter().flat_map(|(k, v)| [k, v])),
            _ => continue,
        };
        if depth + 1 > MAX_NESTING {
            return true;
        }
        pending.extend(children.map(|child| (child, depth + 1)));
    }
    false
}

/// The server parameter `{name:Type}` type and text for `value`, when it has one
/// (servers with server-side parameters only). `None`: render it as a literal — a
/// top-level NULL, bytes that are not UTF-8 and NaN and infinities (outside arrays,
/// tuples and maps), intervals and times, arrays whose elements have no common type,
/// and values outside the range of their parameter type (the literal path refuses those
/// with a `Parameter` error instead of letting the server store another value).
///
/// The text is the value exactly as the request's `param_<name>` field carries it, in
/// the server's text format for the type (it reads a parameter as a value of an
/// escaped, TSV-like field): a top-level string with `\`, `'`, `` ` ``, tab and newline
/// escaped; arrays, tuples and maps as `['a\'b',NULL]`, `(1,'x')`, `{'k':[1]}`, each
/// string between quotes with [`quote_string`]'s escapes. It is never part of the SQL.
pub(crate) fn server_parameter(value: &Value) -> Option<(String, String)> {
    match value {
        Value::Array(_) | Value::Tuple(_) | Value::Map(_) => {
            let (data_type, text) = nested_parameter(value)?;
            data_type
                .holds_its_values()
                .then(|| (data_type.name(), text))
        }
        Value::Null => None,
        scalar => {
            let (data_type, text, _) = scalar_parameter(scalar)?;
            Some((data_type.name(), escaped(&text)))
        }
    }
}

/// `text` as a top-level `String` parameter: what the server reads as an escaped field
/// comes back as `text` (the escapes the clickhouse crate's own `param` writes).
fn escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        match c {
            '\\' | '\'' | '`' => {
                out.push('\\');
                out.push(c);
            }
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// The type of a parameter value, as far as joining it with its siblings' in an array
/// (or a map's keys or values) goes.
#[derive(Debug, Clone, PartialEq)]
enum ParamType {
    /// The elements of an empty array: any type.
    Unknown,
    /// A NULL: its siblings' type, made `Nullable`.
    Null,
    /// A type without parameters that joins only itself (`Int64`, `String`, `UUID`…).
    Named(&'static str),
    /// `Decimal(76, scale)`, holding values with up to `integer_digits` digits before
    /// the point.
    Decimal {
        integer_digits: usize,
        scale: u32,
    },
    /// `DateTime` (`precision` `None`) or `DateTime64(precision)`, with `'UTC'` for a
    /// `TimestampTz`; `past_nanos`: some value is later than `DateTime64(9)` holds.
    Timestamp {
        precision: Option<u32>,
        utc: bool,
        past_nanos: bool,
    },
    Nullable(Box<ParamType>),
    Array(Box<ParamType>),
    Tuple(Vec<ParamType>),
    Map(Box<ParamType>, Box<ParamType>),
}

impl ParamType {
    /// The ClickHouse type name.
    fn name(&self) -> String {
        match self {
            ParamType::Unknown => "Nothing".to_owned(),
            ParamType::Null => "Nullable(Nothing)".to_owned(),
            ParamType::Named(name) => (*name).to_owned(),
            ParamType::Decimal { scale, .. } => format!("Decimal(76, {scale})"),
            ParamType::Timestamp { precision, utc, .. } => match (precision, utc) {
                (None, false) => "DateTime".to_owned(),
                (None, true) => "DateTime('UTC')".to_owned(),
                (Some(p), false) => format!("DateTime64({p})"),
                (Some(p), true) => format!("DateTime64({p}, 'UTC')"),
            },
            ParamType::Nullable(inner) => format!("Nullable({})", inner.name()),
            ParamType::Array(element) => format!("Array({})", element.name()),
            ParamType::Tuple(elements) => {
                let names: Vec<String> = elements.iter().map(ParamType::name).collect();
                format!("Tuple({})", names.join(", "))
            }
            ParamType::Map(key, value) => format!("Map({}, {})", key.name(), value.name()),
        }
    }

    /// Whether every value joined into this type fits it: a `DateTime64(9)` ends in
    /// 2262, where a value with fewer digits may lie beyond.
    fn holds_its_values(&self) -> bool {
        match self {
            ParamType::Timestamp {
                precision,
                past_nanos,
                ..
            } => !(*past_nanos && *precision == Some(9)),
            ParamType::Nullable(inner) | ParamType::Array(inner) => inner.holds_its_values(),
            ParamType::Tuple(elements) => elements.iter().all(ParamType::holds_its_values),
            ParamType::Map(key, value) => key.holds_its_values() && value.holds_its_values(),
            _ => true,
        }
    }

    /// Whether ClickHouse has `Nullable` of this type (not of arrays, tuples, maps).
    fn may_be_nullable(&self) -> bool {
        !matches!(
            self,
            ParamType::Array(_) | ParamType::Tuple(_) | ParamType::Map(_, _)
        )
    }

    /// The type that holds values of both `self` and `other` exactly, if any: the same
    /// type; `Nullable` when one is NULL; the larger scale and integer part of two
    /// decimals; the finer precision of two timestamps of the same kind.
    fn join(self, other: ParamType) -> Option<ParamType> {
        use ParamType as T;
        Some(match (self, other) {
            (T::Unknown, t) | (t, T::Unknown) => t,
            (T::Null, T::Null) => T::Null,
            (T::Null, t) | (t, T::Null) => match t {
                T::Nullable(_) => t,
                t if t.may_be_nullable() => T::Nullable(Box::new(t)),
                _ => return None,
            },
            (T::Nullable(a), T::Nullable(b)) => T::Nullable(Box::new(a.join(*b)?)),
            (T::Nullable(a), b) | (b, T::Nullable(a)) => T::Nullable(Box::new(a.join(b)?)),
            (T::Named(a), T::Named(b)) if a == b => T::Named(a),
            (
                T::Decimal {
                    integer_digits: i1,
                    scale: s1,
                },
                T::Decimal {
                    integer_digits: i2,
                    scale: s2,
                },
            ) => {
                let (integer_digits, scale) = (i1.max(i2), s1.max(s2));
                if integer_digits + scale as usize > 76 {
                    return None;
                }
                T::Decimal {
                    integer_digits,
                    scale,
                }
            }
            (
                T::Timestamp {
                    precision: p1,
                    utc: u1,
                    past_nanos: n1,
                },
                T::Timestamp {
                    precision: p2,
                    utc: u2,
                    past_nanos: n2,
                },
            ) if u1 == u2 => T::Timestamp {
                // `None` (DateTime) is below `Some(0)`.
                precision: p1.max(p2),
                utc: u1,
                past_nanos: n1 || n2,
            },
            (T::Array(a), T::Array(b)) => T::Array(Box::new(a.join(*b)?)),
            (T::Tuple(a), T::Tuple(b)) if a.len() == b.len() => T::Tuple(
                a.into_iter()
                    .zip(b)
                    .map(|(a, b)| a.join(b))
                    .collect::<Option<_>>()?,
            ),
            (T::Map(k1, v1), T::Map(k2, v2)) => {
                T::Map(Box::new(k1.join(*k2)?), Box::new(v1.join(*v2)?))
            }
            _ => return None,
        })
    }
}

/// The parameter type of a scalar `value`, its text (not escaped) and whether that text
/// goes between quotes inside an array, tuple or map; `None` where it has none.
fn scalar_parameter(value: &Value) -> Option<(ParamType, String, bool)> {
    let named = |t: &'static str, text: String| Some((ParamType::Named(t), text, false));
    let quoted = |t: &'static str, text: String| Some((ParamType::Named(t), text, true));
    match value {
        Value::Bool(b) => named("Bool", b.to_string()),
        Value::I8(v) => named("Int8", v.to_string()),
        Value::I16(v) => named("Int16", v.to_string()),
        Value::I32(v) => named("Int32", v.to_string()),
        Value::I64(v) => named("Int64", v.to_string()),
        Value::I128(v) => named("Int128", v.to_string()),
        Value::U8(v) => named("UInt8", v.to_string()),
        Value::U16(v) => named("UInt16", v.to_string()),
        Value::U32(v) => named("UInt32", v.to_string()),
        Value::U64(v) => named("UInt64", v.to_string()),
        Value::U128(v) => named("UInt128", v.to_string()),
        Value::F64(v) if v.is_finite() => named("Float64", format!("{v:?}")),
        Value::F32(v) if v.is_finite() => named("Float32", format!("{v:?}")),
        Value::Decimal(d) if !d.is_special() => {
            let (digits, scale) = d.mantissa_digits()?;
            let data_type = ParamType::Decimal {
                integer_digits: digits.len().saturating_sub(scale as usize),
                scale,
            };
            (digits.len() <= 76 && (scale as usize) <= 76)
                .then(|| (data_type, d.to_string(), false))
        }
        Value::Text(s) => quoted("String", s.clone()),
        Value::Json(j) => quoted("String", j.to_string()),
        Value::Bytes(b) => quoted("String", std::str::from_utf8(b).ok()?.to_owned()),
        Value::Date(d) => {
            let first = NaiveDate::from_ymd_opt(1900, 1, 1)?;
            let last = NaiveDate::from_ymd_opt(2299, 12, 31)?;
            (first..=last).contains(d).then(|| {
                (
                    ParamType::Named("Date32"),
                    d.format("%Y-%m-%d").to_string(),
                    true,
                )
            })
        }
        Value::Timestamp(ts) => timestamp_parameter(ts.and_utc(), false),
        Value::TimestampTz(ts) => timestamp_parameter(ts.with_timezone(&Utc), true),
        Value::Uuid(u) => quoted("UUID", u.hyphenated().to_string()),
        Value::Ip(IpAddr::V4(ip)) => quoted("IPv4", ip.to_string()),
        Value::Ip(IpAddr::V6(ip)) => quoted("IPv6", ip.to_string()),
        _ => None,
    }
}

/// The parameter type and text of `value` inside an array, tuple or map (or of one of
/// those): scalars as [`scalar_parameter`] has them (strings, dates, timestamps, UUIDs
/// and addresses between quotes, [`quote_string`]), NULL as `NULL`, bytes that are not
/// UTF-8 as `\xHH` escapes, NaN and infinities as `nan`, `inf`, `-inf`.
fn nested_parameter(value: &Value) -> Option<(ParamType, String)> {
    /// Joins the types of `items` and writes their texts between `open` and `close`.
    fn list<'v>(
        items: impl Iterator<Item = &'v Value>,
        open: char,
        close: char,
    ) -> Option<(Vec<ParamType>, String)> {
        let mut types = Vec::new();
        let mut text = String::from(open);
        for (i, item) in items.enumerate() {
            let (data_type, item_text) = nested_parameter(item)?;
            if i > 0 {
                text.push(',');
            }
            text.push_str(&item_text);
            types.push(data_type);
        }
        text.push(close);
        Some((types, text))
    }
    fn joined(types: Vec<ParamType>) -> Option<ParamType> {
        types
            .into_iter()
            .try_fold(ParamType::Unknown, ParamType::join)
    }
    Some(match value {
        Value::Null => (ParamType::Null, "NULL".to_owned()),
        Value::Array(items) => {
            let (types, text) = list(items.iter(), '[', ']')?;
            (ParamType::Array(Box::new(joined(types)?)), text)
        }
        Value::Tuple(items) if !items.is_empty() => {
            let (types, text) = list(items.iter(), '(', ')')?;
            (ParamType::Tuple(types), text)
        }
        Value::Map(entries) => {
            let mut key_type = ParamType::Unknown;
            let mut value_type = ParamType::Unknown;
            let mut text = String::from("{");
            for (i, (key, entry)) in entries.iter().enumerate() {
                let (k, key_text) = nested_parameter(key)?;
                let (v, entry_text) = nested_parameter(entry)?;
                key_type = key_type.join(k)?;
                value_type = value_type.join(v)?;
                if i > 0 {
                    text.push(',');
                }
                text.push_str(&key_text);
                text.push(':');
                text.push_str(&entry_text);
            }
            text.push('}');
            (
                ParamType::Map(Box::new(key_type), Box::new(value_type)),
                text,
            )
        }
        Value::Bytes(bytes) if std::str::from_utf8(bytes).is_err() => {
            let mut text = String::with_capacity(bytes.len() * 4 + 2);
            text.push('\'');
            for byte in bytes {
                text.push_str(&format!("\\x{byte:02X}"));
            }
            text.push('\'');
            (ParamType::Named("String"), text)
        }
        Value::F64(v) if !v.is_finite() => (ParamType::Named("Float64"), non_finite(*v)),
        Value::F32(v) if !v.is_finite() => (ParamType::Named("Float32"), non_finite(f64::from(*v))),
        scalar => {
            let (data_type, text, quoted) = scalar_parameter(scalar)?;
            (data_type, if quoted { quote_string(&text) } else { text })
        }
    })
}

/// NaN or an infinity as the server's text reads it.
fn non_finite(value: f64) -> String {
    if value.is_nan() {
        "nan".to_owned()
    } else if value > 0.0 {
        "inf".to_owned()
    } else {
        "-inf".to_owned()
    }
}

/// The parameter type and text of a timestamp whose wall clock is `wall` (read in the
/// server's zone, or in UTC when `utc`): `DateTime` for whole seconds in its range,
/// otherwise `DateTime64(P)` with the fewest digits (0, 3, 6 or 9) that hold it
/// exactly; `None` outside what that type holds (1900 to 2299; with 9 digits, to
/// 2262-04-11 23:47:16). Its text goes between quotes inside arrays.
fn timestamp_parameter(wall: DateTime<Utc>, utc: bool) -> Option<(ParamType, String, bool)> {
    let seconds = wall.timestamp();
    let nanos = wall.timestamp_subsec_nanos();
    let whole = wall.format("%Y-%m-%d %H:%M:%S").to_string();
    // DateTime64(9) counts nanoseconds in an Int64: it ends in 2262.
    let past_nanos = wall.timestamp_nanos_opt().is_none();
    let timestamp = |precision| ParamType::Timestamp {
        precision,
        utc,
        past_nanos,
    };
    if nanos == 0 && fits_datetime(seconds) {
        return Some((timestamp(None), whole, true));
    }
    datetime_in_range(seconds, true).ok()?;
    let (precision, fraction) = match nanos {
        0 => (0, String::new()),
        n if n % 1_000_000 == 0 => (3, format!(".{:03}", n / 1_000_000)),
        n if n % 1_000 == 0 => (6, format!(".{:06}", n / 1_000)),
        n => (9, format!(".{n:09}")),
    };
    if precision == 9 && past_nanos {
        return None;
    }
    Some((
        timestamp(Some(precision)),
        format!("{whole}{fraction}"),
        true,
    ))
}

/// The zone `name` names (`None`: unknown to the zone database, UTC is used).
pub(crate) fn parse_zone(name: &str) -> Option<Tz> {
    name.parse().ok()
}

/// A reader positioned in one column of a block: [`ColumnReader::next_value`] decodes
/// the column's next value, so a block is decoded row by row (a chunk of rows at a time)
/// without materialising whole columns. Top-level `Tuple` columns go through the
/// crate's tuple decoding (its tuple iterator type is not public, so a tuple nested in an
/// array or map cannot be decoded by [`Cell`] and is reported as a `Decode` error).
pub(crate) struct ColumnReader<'a> {
    column: &'a clickhouse::native::Column,
    values: Values<'a>,
}

/// The values of one column, in order.
enum Values<'a> {
    /// A scalar column: the crate hands over each value's Native bytes and `Scalar`
    /// (resolved once for the column) decodes them.
    Scalars {
        raw: clickhouse::native::ColumnIter<'a, Raw<'a>>,
        scalar: Scalar<'a>,
        data_type: &'a DataTypeNode,
    },
    /// Arrays, maps and unsupported types: decoded by [`Cell`].
    Cells(clickhouse::native::ColumnIter<'a, Cell>),
    Tuples(Box<dyn Iterator<Item = clickhouse::error::Result<Value>> + Send + 'a>),
}

impl<'a> ColumnReader<'a> {
    /// A reader at the first value of `column`; `zoned`: its type with the zone its
    /// header left out (a `DateTime('Zone')` named `DateTime`, the same layout).
    pub(crate) fn new(
        column: &'a clickhouse::native::Column,
        zoned: Option<&'a DataTypeNode>,
    ) -> Result<Self> {
        let fail = |e| Self::wrap(column, e);
        macro_rules! cell_of {
            ($v:ident) => {
                Cell
            };
        }
        macro_rules! tuples {
            ($($v:ident),+) => {{
                Values::Tuples(Box::new(
                    column
                        .iter::<($(cell_of!($v),)+)>()
                        .map_err(fail)?
                        .map(|item| item.map(|($($v,)+)| Value::Tuple(vec![$($v.0),+]))),
                ))
            }};
        }
        let unwrapped = unwrap_type(zoned.unwrap_or(column.data_type()));
        let values = if let Ok(scalar) = Scalar::of(unwrapped) {
            Values::Scalars {
                raw: column.iter::<Raw<'a>>().map_err(fail)?,
                scalar,
                data_type: unwrapped,
            }
        } else if let DataTypeNode::Tuple(elements) = unwrapped {
            match elements.len() {
                1 => tuples!(a),
                2 => tuples!(a, b),
                3 => tuples!(a, b, c),
                4 => tuples!(a, b, c, d),
                5 => tuples!(a, b, c, d, e),
                6 => tuples!(a, b, c, d, e, f),
                7 => tuples!(a, b, c, d, e, f, g),
                8 => tuples!(a, b, c, d, e, f, g, h),
                n => {
                    return Err(Error::decode(format!(
                        "column `{}`: a Tuple of {n} elements is wider than the 8 this \
                         backend reads",
                        String::from_utf8_lossy(column.name_bytes())
                    )));
                }
            }
        } else {
            Values::Cells(column.iter::<Cell>().map_err(fail)?)
        };
        Ok(ColumnReader { column, values })
    }

    /// The column's next value (`Null` past its end, which a well-formed block never
    /// reaches: every column has the block's number of rows).
    #[inline]
    pub(crate) fn next_value(&mut self) -> Result<Value> {
        let next = match &mut self.values {
            Values::Scalars {
                raw,
                scalar,
                data_type,
            } => {
                return match raw.next() {
                    Some(Ok(Raw(Some(bytes)))) => scalar.decode(bytes, data_type).map_err(|e| {
                        Error::decode(format!(
                            "column `{}`: {}",
                            String::from_utf8_lossy(self.column.name_bytes()),
                            e.message()
                        ))
                    }),
                    Some(Ok(Raw(None))) | None => Ok(Value::Null),
                    Some(Err(e)) => Err(Self::wrap(self.column, e)),
                };
            }
            Values::Cells(cells) => cells.next().map(|cell| cell.map(|c| c.0)),
            Values::Tuples(tuples) => tuples.next(),
        };
        match next {
            Some(Ok(value)) => Ok(value),
            Some(Err(e)) => Err(Self::wrap(self.column, e)),
            None => Ok(Value::Null),
        }
    }

    #[cold]
    fn wrap(column: &clickhouse::native::Column, e: clickhouse::error::Error) -> Error {
        let name = String::from_utf8_lossy(column.name_bytes());
        let text = e.to_string();
        if text.contains("unexpected data type Tuple") {
            Error::decode(format!(
                "column `{name}`: a Tuple inside an Array or Map cannot be read with the \
                 clickhouse crate 0.15; select its elements with tupleElement() instead"
            ))
        } else {
            Error::decode(format!("column `{name}`: {text}"))
        }
    }
}

#[cfg(test)]
fn offset_seconds(zone: Tz, at: DateTime<Utc>) -> i32 {
    use chrono::{Offset, TimeZone};
    zone.offset_from_utc_datetime(&at.naive_utc())
        .fix()
        .local_minus_utc()
}

/// Decodes one non-NULL Native value of the type named `type_name`: the per-value
/// conversion without a server, for the benchmarks (`benches/benches/convert.rs`).
/// Not API.
#[doc(hidden)]
pub fn decode_scalar_for_bench(type_name: &str, bytes: &[u8]) -> Result<Value> {
    let data_type = DataTypeNode::new(type_name)
        .map_err(|e| Error::decode(format!("type `{type_name}`: {e}")))?;
    decode_scalar(&data_type, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDateTime;

    fn dt(text: &str) -> DataTypeNode {
        DataTypeNode::new(text).unwrap()
    }

    #[test]
    fn timestamps_are_parameters_with_the_digits_they_need() {
        let at = |text: &str| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").unwrap();
        let param = |value: Value| server_parameter(&value);
        let pair = |t: &str, v: &str| Some((t.to_owned(), v.to_owned()));
        assert_eq!(
            param(Value::Timestamp(at("2024-02-29 23:59:58"))),
            pair("DateTime", "2024-02-29 23:59:58")
        );
        assert_eq!(
            param(Value::Timestamp(at("2024-02-29 23:59:58.5"))),
            pair("DateTime64(3)", "2024-02-29 23:59:58.500")
        );
        assert_eq!(
            param(Value::Timestamp(at("1900-01-01 00:00:00.000001"))),
            pair("DateTime64(6)", "1900-01-01 00:00:00.000001")
        );
        assert_eq!(
            param(Value::Timestamp(at("2200-01-01 00:00:00"))),
            pair("DateTime64(0)", "2200-01-01 00:00:00")
        );
        assert_eq!(
            param(Value::Timestamp(at("2262-04-11 23:47:16.000000001"))),
            pair("DateTime64(9)", "2262-04-11 23:47:16.000000001")
        );
        // DateTime64(9) ends in 2262; before 1900 and after 2299 nothing holds it.
        assert_eq!(
            param(Value::Timestamp(at("2263-01-01 00:00:00.000000001"))),
            None
        );
        assert_eq!(param(Value::Timestamp(at("1899-12-31 23:59:59"))), None);
        assert_eq!(param(Value::Timestamp(at("2300-01-01 00:00:00"))), None);
        let zoned = DateTime::parse_from_rfc3339("2024-03-01T05:29:58.5+05:30").unwrap();
        assert_eq!(
            param(Value::TimestampTz(zoned)),
            pair("DateTime64(3, 'UTC')", "2024-02-29 23:59:58.500")
        );
        assert_eq!(
            param(Value::Date(NaiveDate::from_ymd_opt(1900, 1, 1).unwrap())),
            pair("Date32", "1900-01-01")
        );
        assert_eq!(
            param(Value::Date(NaiveDate::from_ymd_opt(2300, 1, 1).unwrap())),
            None
        );
        assert_eq!(param(Value::Bytes(vec![0xFF])), None);
        assert_eq!(param(Value::Bytes(b"ok".to_vec())), pair("String", "ok"));
        assert_eq!(param(Value::F64(f64::NAN)), None);
        assert_eq!(
            param(Value::Ip("::1".parse().unwrap())),
            pair("IPv6", "::1")
        );
    }

    #[test]
    fn composites_are_parameters_of_their_joined_type() {
        let param = |value: Value| server_parameter(&value);
        let pair = |t: &str, v: &str| Some((t.to_owned(), v.to_owned()));
        let text = |t: &str| Value::Text(t.to_owned());
        let array = Value::Array;
        assert_eq!(
            param(array(vec![text("a'b\\"), Value::Null, text("\t\n\0*/`")])),
            pair("Array(Nullable(String))", r"['a\'b\\',NULL,'\t\n\0*/`']")
        );
        assert_eq!(param(array(vec![])), pair("Array(Nothing)", "[]"));
        assert_eq!(
            param(array(vec![Value::Null])),
            pair("Array(Nullable(Nothing))", "[NULL]")
        );
        assert_eq!(
            param(array(vec![
                array(vec![]),
                array(vec![Value::I64(1), Value::Null])
            ])),
            pair("Array(Array(Nullable(Int64)))", "[[],[1,NULL]]")
        );
        // Decimals join to the larger scale and integer part; timestamps to the finer
        // precision (DateTime below DateTime64(0)).
        assert_eq!(
            param(array(vec![
                Value::Decimal("-1.5".parse().unwrap()),
                Value::Decimal("123.001".parse().unwrap()),
            ])),
            pair("Array(Decimal(76, 3))", "[-1.5,123.001]")
        );
        let at = |text: &str| {
            Value::Timestamp(
                chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").unwrap(),
            )
        };
        assert_eq!(
            param(array(vec![
                at("2024-01-02 03:04:05"),
                at("2024-01-02 03:04:05.25")
            ])),
            pair(
                "Array(DateTime64(3))",
                "['2024-01-02 03:04:05','2024-01-02 03:04:05.250']"
            )
        );
        // A 9-digit timestamp cannot join one past 2262: the literal path takes it.
        assert_eq!(
            param(array(vec![
                at("2290-01-01 00:00:00"),
                at("2000-01-01 00:00:00.000000001")
            ])),
            None
        );
        assert_eq!(
            param(Value::Tuple(vec![
                Value::I8(-1),
                Value::Bytes(vec![0xFF, 0x27]),
                Value::F64(f64::NEG_INFINITY),
                Value::Uuid(Uuid::nil()),
            ])),
            pair(
                "Tuple(Int8, String, Float64, UUID)",
                r"(-1,'\xFF\x27',-inf,'00000000-0000-0000-0000-000000000000')"
            )
        );
        assert_eq!(
            param(Value::Map(vec![
                (text("k"), array(vec![Value::U8(255), Value::Null])),
                (text("l'"), array(vec![])),
            ])),
            pair(
                "Map(String, Array(Nullable(UInt8)))",
                r"{'k':[255,NULL],'l\'':[]}"
            )
        );
        // No common type: rendered as a literal (which the server refuses in turn).
        assert_eq!(param(array(vec![Value::I8(1), text("a")])), None);
        assert_eq!(
            param(array(vec![Value::Null, array(vec![Value::I8(1)])])),
            None
        );
        assert_eq!(
            param(array(vec![Value::Interval(Interval::default())])),
            None
        );
        assert_eq!(param(Value::Tuple(vec![])), None);
        // Top-level strings carry the escapes of an escaped field.
        assert_eq!(
            param(text("a'\\`\t\n\r")),
            pair("String", "a\\'\\\\\\`\\t\\n\r")
        );
    }

    #[test]
    fn nesting_is_measured_without_recursion() {
        let nest = |depth: usize, wrap: fn(Value) -> Value| {
            let mut value = Value::I8(1);
            for _ in 0..depth {
                value = wrap(value);
            }
            value
        };
        let array = |v| Value::Array(vec![v]);
        let tuple = |v| Value::Tuple(vec![Value::Null, v]);
        let map = |v| Value::Map(vec![(Value::I8(0), v)]);
        assert!(!too_deep(&Value::I8(1)));
        assert!(!too_deep(&Value::Array(vec![])));
        for wrap in [array, tuple, map] {
            assert!(!too_deep(&nest(MAX_NESTING, wrap)));
            assert!(too_deep(&nest(MAX_NESTING + 1, wrap)));
        }
        // A map's key counts as deep as its value.
        let deep_key = Value::Map(vec![(nest(MAX_NESTING, array), Value::Null)]);
        assert!(too_deep(&deep_key));
        // Far deeper than any stack would take recursively.
        let deep = nest(200_000, array);
        assert!(too_deep(&deep));
        std::mem::forget(deep);
    }

    #[test]
    fn wide_integers_keep_every_digit() {
        let mut max = [0xFFu8; 32];
        assert_eq!(
            wide_decimal(&max, false, 0).as_str(),
            "115792089237316195423570985008687907853269984665640564039457584007913129639935"
        );
        assert_eq!(wide_decimal(&max, true, 0).as_str(), "-1");
        max[31] = 0x7F;
        assert_eq!(
            wide_decimal(&max, true, 0).as_str(),
            "57896044618658097711785492504343953926634992332820282019728792003956564819967"
        );
        let mut min = [0u8; 32];
        min[31] = 0x80;
        assert_eq!(
            wide_decimal(&min, true, 0).as_str(),
            "-57896044618658097711785492504343953926634992332820282019728792003956564819968"
        );
        let mut small = [0u8; 32];
        small[0] = 0x39;
        small[1] = 0x30; // 12345
        assert_eq!(wide_decimal(&small, true, 3).as_str(), "12.345");
        assert_eq!(wide_decimal(&[0; 32], true, 2).as_str(), "0.00");
    }

    #[test]
    fn decimals_match_the_core_constructor() {
        for mantissa in [
            0,
            1,
            -1,
            5,
            -12345,
            10_000,
            -10_000,
            i128::from(i64::MAX),
            i128::from(i64::MIN),
            i128::from(u64::MAX),
            i128::from(u64::MAX) + 1,
            -i128::from(u64::MAX) - 1,
            i128::MAX,
            i128::MIN,
        ] {
            for scale in [0, 1, 2, 4, 5, 9, 18, 38, 39, 40, 76] {
                assert_eq!(
                    decimal(mantissa, scale),
                    Decimal::from_mantissa(mantissa, scale),
                    "{mantissa} scale {scale}"
                );
            }
        }
        assert_eq!(decimal(-5, 3).as_str(), "-0.005");
        assert_eq!(decimal(0, 2).as_str(), "0.00");
    }

    #[test]
    fn dates_cover_both_types_ranges() {
        let date = |days: i64| match epoch_date(days, &dt("Date32")).unwrap() {
            Value::Date(d) => d,
            other => panic!("{other:?}"),
        };
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        for days in [0_i64, 1, -1, 365, -25_567, 65_535, 120_529, -719_162] {
            assert_eq!(
                date(days),
                epoch + chrono::TimeDelta::days(days),
                "{days} days"
            );
        }
        assert!(epoch_date(i64::from(i32::MAX), &dt("Date32")).is_err());
        assert!(epoch_date(i64::from(i32::MIN), &dt("Date32")).is_err());
    }

    #[test]
    fn utc_and_other_zones_keep_the_instant() {
        let seconds = 1_700_000_000_u32;
        for zone in ["UTC", "Etc/UTC", "Europe/Moscow"] {
            let value =
                decode_scalar(&dt(&format!("DateTime('{zone}')")), &seconds.to_le_bytes()).unwrap();
            let Value::TimestampTz(ts) = value else {
                panic!("{value:?}")
            };
            assert_eq!(ts.timestamp(), i64::from(seconds), "{zone}");
            let expected = if zone == "Europe/Moscow" { 3 * 3600 } else { 0 };
            assert_eq!(ts.offset().local_minus_utc(), expected, "{zone}");
        }
    }

    #[test]
    fn unknown_zone_fails_only_values() {
        let err =
            decode_scalar(&dt("DateTime('Nowhere/Atlantis')"), &0_u32.to_le_bytes()).unwrap_err();
        assert!(
            err.message()
                .contains("unknown time zone `Nowhere/Atlantis`"),
            "{err}"
        );
    }

    #[test]
    fn scalars_decode_exactly() {
        assert_eq!(
            decode_scalar(&dt("UInt64"), &u64::MAX.to_le_bytes()).unwrap(),
            Value::U64(u64::MAX)
        );
        assert_eq!(
            decode_scalar(&dt("Decimal(18, 4)"), &(-12345_i64).to_le_bytes()).unwrap(),
            Value::Decimal("-1.2345".parse().unwrap())
        );
        assert_eq!(
            decode_scalar(&dt("Nullable(Int8)"), &[0xFF]).unwrap(),
            Value::I8(-1)
        );
        assert_eq!(
            decode_scalar(&dt("IPv4"), &0x01020304_u32.to_le_bytes()).unwrap(),
            Value::Ip("1.2.3.4".parse().unwrap())
        );
        assert_eq!(
            decode_scalar(&dt("Enum8('a' = 1, 'b' = -2)"), &[0xFE]).unwrap(),
            Value::Text("b".into())
        );
        assert!(decode_scalar(&dt("Enum8('a' = 1)"), &[7]).is_err());
        assert_eq!(
            decode_scalar(&dt("FixedString(3)"), b"ab\0").unwrap(),
            Value::Text("ab\0".into())
        );
        assert_eq!(
            decode_scalar(&dt("String"), &[0xFF, 0x00]).unwrap(),
            Value::Bytes(vec![0xFF, 0x00])
        );
        assert_eq!(
            decode_scalar(&dt("Date"), &1_u16.to_le_bytes()).unwrap(),
            Value::Date(NaiveDate::from_ymd_opt(1970, 1, 2).unwrap())
        );
        assert_eq!(
            decode_scalar(&dt("Date32"), &(-1_i32).to_le_bytes()).unwrap(),
            Value::Date(NaiveDate::from_ymd_opt(1969, 12, 31).unwrap())
        );
        assert!(decode_scalar(&dt("Int32"), &[1, 2]).is_err(), "short input");
    }

    #[test]
    fn datetimes_keep_zone_and_precision() {
        let ticks: i64 = 1_700_000_000_123_456;
        let value =
            decode_scalar(&dt("DateTime64(6, 'Asia/Tokyo')"), &ticks.to_le_bytes()).unwrap();
        let Value::TimestampTz(ts) = value else {
            panic!("{value:?}")
        };
        assert_eq!(ts.offset().local_minus_utc(), 9 * 3600);
        assert_eq!(ts.timestamp_micros(), ticks);
        let naive = with_server_zone(Tz::UTC, || {
            decode_scalar(&dt("DateTime"), &1_700_000_000_u32.to_le_bytes()).unwrap()
        });
        assert_eq!(
            naive,
            Value::Timestamp(
                NaiveDateTime::parse_from_str("2023-11-14 22:13:20", "%Y-%m-%d %H:%M:%S").unwrap()
            )
        );
        let moscow: Tz = "Europe/Moscow".parse().unwrap();
        let local = with_server_zone(moscow, || {
            decode_scalar(&dt("DateTime"), &1_700_000_000_u32.to_le_bytes()).unwrap()
        });
        assert_eq!(
            local,
            Value::Timestamp(
                NaiveDateTime::parse_from_str("2023-11-15 01:13:20", "%Y-%m-%d %H:%M:%S").unwrap()
            )
        );
        assert_eq!(
            offset_seconds(moscow, DateTime::from_timestamp(1_700_000_000, 0).unwrap()),
            3 * 3600
        );
        let negative = decode_scalar(&dt("DateTime64(3, 'UTC')"), &(-1_i64).to_le_bytes()).unwrap();
        let Value::TimestampTz(ts) = negative else {
            panic!()
        };
        assert_eq!(ts.timestamp_millis(), -1);
    }

    #[test]
    fn kinds_follow_the_table() {
        assert_eq!(value_kind(&dt("Nullable(UInt64)")), (ValueKind::U64, true));
        assert_eq!(
            value_kind(&dt("LowCardinality(Nullable(String))")),
            (ValueKind::Text, true)
        );
        assert_eq!(
            value_kind(&dt("Decimal(76, 10)")),
            (ValueKind::Decimal, false)
        );
        assert_eq!(
            value_kind(&dt("DateTime64(3, 'UTC')")),
            (ValueKind::TimestampTz, false)
        );
        assert_eq!(
            value_kind(&dt("Map(String, UInt8)")),
            (ValueKind::Map, false)
        );
    }

    #[test]
    fn literals_render_each_value() {
        let f = ServerFeatures {
            modern_types: false,
        };
        let render = |v: Value| literal(&v, f).unwrap();
        assert_eq!(render(Value::Null), "NULL");
        assert_eq!(
            render(Value::I64(i64::MIN)),
            "toInt64(-9223372036854775808)"
        );
        assert_eq!(
            render(Value::U64(u64::MAX)),
            "toUInt64(18446744073709551615)"
        );
        assert_eq!(render(Value::F64(0.1)), "toFloat64(0.1)");
        assert_eq!(render(Value::F64(f64::NAN)), "toFloat64(nan)");
        assert_eq!(render(Value::F64(f64::NEG_INFINITY)), "toFloat64(-inf)");
        assert_eq!(
            render(Value::F64(-5e-324)),
            "toFloat64(-(1 * 2.2250738585072014e-308) / 4503599627370496)"
        );
        assert_eq!(render(Value::Decimal("-1.50".parse().unwrap())), "'-1.50'");
        let modern = ServerFeatures { modern_types: true };
        assert_eq!(
            literal(&Value::Decimal("-1.50".parse().unwrap()), modern).unwrap(),
            "toDecimal32('-1.50', 2)"
        );
        assert_eq!(render(Value::Bytes(vec![0, 255])), "unhex('00FF')");
        assert_eq!(render(Value::Text("a'`\\".into())), "unhex('6127605C')");
        assert_eq!(
            render(Value::Array(vec![Value::I8(1), Value::Text("a'".into())])),
            "[toInt8(1), unhex('6127')]"
        );
        let ts =
            NaiveDateTime::parse_from_str("2024-01-02 03:04:05.5", "%Y-%m-%d %H:%M:%S%.f").unwrap();
        assert_eq!(render(Value::Timestamp(ts)), "'2024-01-02 03:04:05.500'");
        assert_eq!(
            literal(&Value::Timestamp(ts), modern).unwrap(),
            "toDateTime64('2024-01-02 03:04:05.500000000', 9)"
        );
        assert!(literal(&Value::Interval(Interval::default()), f).is_err());
        let old_date = NaiveDate::from_ymd_opt(1969, 12, 31).unwrap();
        assert_eq!(
            literal(&Value::Date(old_date), f).unwrap_err().kind(),
            extdata_core::ErrorKind::Parameter
        );
    }

    /// No value's text reaches the rendered SQL: only the renderer's own words,
    /// punctuation and digits, so no lexer state can be left or entered by a value.
    #[test]
    fn rendered_values_hold_only_inert_characters() {
        let hostile = "'\"`\\*/ /* -- # $$ \n\r\0 ); DROP TABLE x; é🎉";
        for features in [false, true].map(|modern_types| ServerFeatures { modern_types }) {
            for value in [
                Value::Text(hostile.into()),
                Value::Bytes(hostile.as_bytes().to_vec()),
                Value::Json(serde_json::json!({ "k": hostile })),
                Value::Array(vec![Value::Text(hostile.into()), Value::Null]),
                Value::Tuple(vec![Value::Text(hostile.into()), Value::I8(-1)]),
                Value::Map(vec![(Value::Text(hostile.into()), Value::F64(-0.0))]),
            ] {
                let text = literal(&value, features).unwrap();
                assert!(
                    text.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b" '()[],.-*/_".contains(&b)),
                    "{text}"
                );
                for forbidden in ["--", "/*", "*/", "`", "\"", "\\", "#", "$"] {
                    assert!(!text.contains(forbidden), "{forbidden} in {text}");
                }
            }
        }
    }

    #[test]
    fn string_literal_escapes_everything_that_could_end_it() {
        assert_eq!(quote_string("a'b\\c"), "'a\\'b\\\\c'");
        assert_eq!(quote_string("\0\n\r\t\x01\x7f"), "'\\0\\n\\r\\t\\x01\\x7F'");
        assert_eq!(quote_string("日本 🎉"), "'日本 🎉'");
    }
}
