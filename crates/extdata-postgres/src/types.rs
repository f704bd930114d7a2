//! PostgreSQL type ↔ [`Value`], read and written in the binary wire format.
//!
//! Results are decoded from the raw binary representation (sqlx asks for binary results),
//! so every digit of a `numeric` and every microsecond of a timestamp survive. Types that
//! are not in the table below are cast to `text` by the server (the query is wrapped, see
//! [`text_wrapper`]) and come back as [`Value::Text`], never as an error.
//!
//! | PostgreSQL | `Value` |
//! |---|---|
//! | `bool` | `Bool` |
//! | `int2` / `int4` / `int8` | `I16` / `I32` / `I64` |
//! | `oid` | `U32` |
//! | `float4` / `float8` | `F32` / `F64` |
//! | `numeric` | `Decimal` (every digit; `NaN`, `Infinity`, `-Infinity`) |
//! | `text`, `varchar`, `char(n)`, `name`, `"char"`, `xml`, enum types, `unknown` | `Text` |
//! | `bytea` | `Bytes` |
//! | `date` | `Date` (`±infinity` → `Text`) |
//! | `time` / `timetz` | `Time` / `TimeTz` |
//! | `timestamp` | `Timestamp` (`±infinity` → `Text`) |
//! | `timestamptz` | `TimestampTz` in UTC (`±infinity` → `Text`) |
//! | `interval` | `Interval` (months, days, microseconds) |
//! | `uuid` | `Uuid` |
//! | `json` / `jsonb` | `Json` |
//! | `inet` | `Ip` (full mask) or `IpNetwork` |
//! | `cidr` | `IpNetwork` |
//! | arrays of any type above (any dimension) | `Array` (nested per dimension) |
//! | domains | as their base type |
//! | `void` | `Null` |
//! | anything else (`money`, `bit`, ranges, composites, geometry, extension types…) | `Text` (server's text form) |

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use chrono::{DateTime, Duration as ChronoDuration, FixedOffset, NaiveDate, NaiveTime, Utc};
use extdata_core::{Decimal, Interval, Value, ValueKind};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::types::Oid;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgTypeKind};
use sqlx::{Encode, Postgres, Type, TypeInfo};

/// Built-in type OIDs (stable: from `pg_type.dat`).
pub(crate) mod oid {
    pub(crate) const UNSPECIFIED: u32 = 0;
    pub(crate) const BOOL: u32 = 16;
    pub(crate) const BYTEA: u32 = 17;
    pub(crate) const CHAR: u32 = 18;
    pub(crate) const NAME: u32 = 19;
    pub(crate) const INT8: u32 = 20;
    pub(crate) const INT2: u32 = 21;
    pub(crate) const INT4: u32 = 23;
    pub(crate) const TEXT: u32 = 25;
    pub(crate) const OID: u32 = 26;
    pub(crate) const JSON: u32 = 114;
    pub(crate) const XML: u32 = 142;
    pub(crate) const CIDR: u32 = 650;
    pub(crate) const FLOAT4: u32 = 700;
    pub(crate) const FLOAT8: u32 = 701;
    pub(crate) const UNKNOWN: u32 = 705;
    pub(crate) const INET: u32 = 869;
    pub(crate) const BPCHAR: u32 = 1042;
    pub(crate) const VARCHAR: u32 = 1043;
    pub(crate) const DATE: u32 = 1082;
    pub(crate) const TIME: u32 = 1083;
    pub(crate) const TIMESTAMP: u32 = 1114;
    pub(crate) const TIMESTAMPTZ: u32 = 1184;
    pub(crate) const INTERVAL: u32 = 1186;
    pub(crate) const TIMETZ: u32 = 1266;
    pub(crate) const NUMERIC: u32 = 1700;
    pub(crate) const VOID: u32 = 2278;
    pub(crate) const UUID: u32 = 2950;
    pub(crate) const JSONB: u32 = 3802;
    pub(crate) const TEXT_ARRAY: u32 = 1009;

    /// Array type → element type, for the built-in array types.
    pub(crate) const ARRAYS: &[(u32, u32)] = &[
        (1000, BOOL),
        (1001, BYTEA),
        (1002, CHAR),
        (1003, NAME),
        (1005, INT2),
        (1007, INT4),
        (TEXT_ARRAY, TEXT),
        (1014, BPCHAR),
        (1015, VARCHAR),
        (1016, INT8),
        (1021, FLOAT4),
        (1022, FLOAT8),
        (1028, OID),
        (199, JSON),
        (143, XML),
        (651, CIDR),
        (1041, INET),
        (1182, DATE),
        (1183, TIME),
        (1115, TIMESTAMP),
        (1185, TIMESTAMPTZ),
        (1187, INTERVAL),
        (1270, TIMETZ),
        (1231, NUMERIC),
        (2951, UUID),
        (3807, JSONB),
    ];

    pub(crate) fn element_of(array: u32) -> Option<u32> {
        ARRAYS.iter().find(|(a, _)| *a == array).map(|(_, e)| *e)
    }

    pub(crate) fn array_of(element: u32) -> Option<u32> {
        ARRAYS.iter().find(|(_, e)| *e == element).map(|(a, _)| *a)
    }
}

/// How the values of one result column are decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decoder {
    Bool,
    Int2,
    Int4,
    Int8,
    Oid,
    Float4,
    Float8,
    Numeric,
    /// UTF-8 text (also enums, `xml`, `unknown`: their binary form is the text).
    Text,
    /// The one-byte `"char"`.
    Char,
    Bytea,
    Date,
    Time,
    TimeTz,
    Timestamp,
    TimestampTz,
    Interval,
    Uuid,
    Json,
    Jsonb,
    Inet,
    Cidr,
    Void,
    Array(Box<Decoder>),
    /// Not in the table: the server must send it as text (see [`text_wrapper`]). If it
    /// could not, the binary value is returned as text when it is UTF-8, else as bytes.
    AsText,
}

impl Decoder {
    /// The decoder for a column of type `ty`.
    pub(crate) fn for_type(ty: &PgTypeInfo) -> Decoder {
        match ty.kind() {
            PgTypeKind::Enum(_) => return Decoder::Text,
            PgTypeKind::Domain(base) => return Decoder::for_type(base),
            PgTypeKind::Array(element) => {
                return match Decoder::for_type(element) {
                    Decoder::AsText => Decoder::AsText,
                    inner => Decoder::Array(Box::new(inner)),
                };
            }
            PgTypeKind::Simple | PgTypeKind::Pseudo => {}
            PgTypeKind::Composite(_) | PgTypeKind::Range(_) => return Decoder::AsText,
        }
        match ty.oid() {
            Some(oid) => Decoder::for_oid(oid.0),
            None => Decoder::AsText,
        }
    }

    fn for_oid(type_oid: u32) -> Decoder {
        use oid::*;
        match type_oid {
            BOOL => Decoder::Bool,
            INT2 => Decoder::Int2,
            INT4 => Decoder::Int4,
            INT8 => Decoder::Int8,
            OID => Decoder::Oid,
            FLOAT4 => Decoder::Float4,
            FLOAT8 => Decoder::Float8,
            NUMERIC => Decoder::Numeric,
            TEXT | VARCHAR | BPCHAR | NAME | XML | UNKNOWN => Decoder::Text,
            CHAR => Decoder::Char,
            BYTEA => Decoder::Bytea,
            DATE => Decoder::Date,
            TIME => Decoder::Time,
            TIMETZ => Decoder::TimeTz,
            TIMESTAMP => Decoder::Timestamp,
            TIMESTAMPTZ => Decoder::TimestampTz,
            INTERVAL => Decoder::Interval,
            UUID => Decoder::Uuid,
            JSON => Decoder::Json,
            JSONB => Decoder::Jsonb,
            INET => Decoder::Inet,
            CIDR => Decoder::Cidr,
            VOID => Decoder::Void,
            other => match oid::element_of(other) {
                Some(element) => match Decoder::for_oid(element) {
                    Decoder::AsText => Decoder::AsText,
                    inner => Decoder::Array(Box::new(inner)),
                },
                None => Decoder::AsText,
            },
        }
    }

    /// The `Value` variant non-NULL values decode to.
    pub(crate) fn value_kind(&self) -> ValueKind {
        match self {
            Decoder::Bool => ValueKind::Bool,
            Decoder::Int2 => ValueKind::I16,
            Decoder::Int4 => ValueKind::I32,
            Decoder::Int8 => ValueKind::I64,
            Decoder::Oid => ValueKind::U32,
            Decoder::Float4 => ValueKind::F32,
            Decoder::Float8 => ValueKind::F64,
            Decoder::Numeric => ValueKind::Decimal,
            Decoder::Text | Decoder::Char | Decoder::AsText => ValueKind::Text,
            Decoder::Bytea => ValueKind::Bytes,
            Decoder::Date => ValueKind::Date,
            Decoder::Time => ValueKind::Time,
            Decoder::TimeTz => ValueKind::TimeTz,
            Decoder::Timestamp => ValueKind::Timestamp,
            Decoder::TimestampTz => ValueKind::TimestampTz,
            Decoder::Interval => ValueKind::Interval,
            Decoder::Uuid => ValueKind::Uuid,
            Decoder::Json | Decoder::Jsonb => ValueKind::Json,
            Decoder::Inet => ValueKind::Ip,
            Decoder::Cidr => ValueKind::IpNetwork,
            Decoder::Void => ValueKind::Null,
            Decoder::Array(_) => ValueKind::Array,
        }
    }

    /// Decodes one non-NULL value from its binary form.
    pub(crate) fn decode(&self, bytes: &[u8]) -> Result<Value, String> {
        Ok(match self {
            Decoder::Bool => Value::Bool(fixed::<1>(bytes)?[0] != 0),
            Decoder::Int2 => Value::I16(i16::from_be_bytes(fixed(bytes)?)),
            Decoder::Int4 => Value::I32(i32::from_be_bytes(fixed(bytes)?)),
            Decoder::Int8 => Value::I64(i64::from_be_bytes(fixed(bytes)?)),
            Decoder::Oid => Value::U32(u32::from_be_bytes(fixed(bytes)?)),
            Decoder::Float4 => Value::F32(f32::from_be_bytes(fixed(bytes)?)),
            Decoder::Float8 => Value::F64(f64::from_be_bytes(fixed(bytes)?)),
            Decoder::Numeric => decode_numeric(bytes)?,
            Decoder::Text => Value::Text(utf8(bytes)?),
            Decoder::Char => {
                let byte = fixed::<1>(bytes).or_else(|_| match bytes {
                    [] => Ok([0]),
                    _ => Err("a \"char\" value is one byte".to_owned()),
                })?[0];
                Value::Text(match byte {
                    0 => String::new(),
                    b if b.is_ascii() => char::from(b).to_string(),
                    // What PostgreSQL's text output prints for a non-ASCII byte.
                    b => format!("\\{b:03o}"),
                })
            }
            Decoder::Bytea => Value::Bytes(bytes.to_vec()),
            Decoder::Date => {
                let days = i32::from_be_bytes(fixed(bytes)?);
                match days {
                    i32::MAX => Value::Text("infinity".into()),
                    i32::MIN => Value::Text("-infinity".into()),
                    days => Value::Date(
                        pg_epoch_date()
                            .checked_add_signed(ChronoDuration::days(days.into()))
                            .ok_or_else(|| {
                                format!("date {days} days from 2000-01-01 is out of range")
                            })?,
                    ),
                }
            }
            Decoder::Time => Value::Time(time_from_micros(i64::from_be_bytes(fixed(bytes)?))?),
            Decoder::TimeTz => {
                let raw = fixed::<12>(bytes)?;
                let micros = i64::from_be_bytes(take(&raw[..8]));
                // The wire format counts seconds *west* of UTC.
                let west = i32::from_be_bytes(take(&raw[8..]));
                let offset = FixedOffset::west_opt(west)
                    .ok_or_else(|| format!("time zone offset {west} s is out of range"))?;
                Value::TimeTz(time_from_micros(micros)?, offset)
            }
            Decoder::Timestamp => match i64::from_be_bytes(fixed(bytes)?) {
                i64::MAX => Value::Text("infinity".into()),
                i64::MIN => Value::Text("-infinity".into()),
                micros => Value::Timestamp(
                    pg_epoch()
                        .checked_add_signed(ChronoDuration::microseconds(micros))
                        .ok_or_else(|| "timestamp out of range".to_owned())?,
                ),
            },
            Decoder::TimestampTz => match i64::from_be_bytes(fixed(bytes)?) {
                i64::MAX => Value::Text("infinity".into()),
                i64::MIN => Value::Text("-infinity".into()),
                micros => {
                    let naive = pg_epoch()
                        .checked_add_signed(ChronoDuration::microseconds(micros))
                        .ok_or_else(|| "timestamp out of range".to_owned())?;
                    Value::TimestampTz(
                        DateTime::<Utc>::from_naive_utc_and_offset(naive, Utc).fixed_offset(),
                    )
                }
            },
            Decoder::Interval => {
                let raw = fixed::<16>(bytes)?;
                Value::Interval(Interval {
                    microseconds: i64::from_be_bytes(take(&raw[..8])),
                    days: i32::from_be_bytes(take(&raw[8..12])),
                    months: i32::from_be_bytes(take(&raw[12..])),
                })
            }
            Decoder::Uuid => Value::Uuid(uuid::Uuid::from_bytes(fixed(bytes)?)),
            Decoder::Json => Value::Json(
                serde_json::from_slice(bytes).map_err(|e| format!("invalid json: {e}"))?,
            ),
            Decoder::Jsonb => match bytes.split_first() {
                Some((1, rest)) => Value::Json(
                    serde_json::from_slice(rest).map_err(|e| format!("invalid jsonb: {e}"))?,
                ),
                Some((version, _)) => return Err(format!("unknown jsonb version {version}")),
                None => return Err("empty jsonb value".into()),
            },
            Decoder::Inet | Decoder::Cidr => decode_inet(bytes, *self == Decoder::Cidr)?,
            Decoder::Void => Value::Null,
            Decoder::Array(element) => decode_array(element, bytes)?,
            Decoder::AsText => match std::str::from_utf8(bytes) {
                Ok(text) => Value::Text(text.to_owned()),
                Err(_) => Value::Bytes(bytes.to_vec()),
            },
        })
    }
}

fn fixed<const N: usize>(bytes: &[u8]) -> Result<[u8; N], String> {
    bytes
        .try_into()
        .map_err(|_| format!("expected {N} bytes, got {}", bytes.len()))
}

fn take<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

fn utf8(bytes: &[u8]) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| "text is not valid UTF-8".to_owned())
}

fn pg_epoch_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2000, 1, 1).unwrap_or_default()
}

fn pg_epoch() -> chrono::NaiveDateTime {
    pg_epoch_date().and_time(NaiveTime::MIN)
}

fn time_from_micros(micros: i64) -> Result<NaiveTime, String> {
    // 24:00:00 is a valid PostgreSQL time; chrono has no such value.
    if micros == 86_400_000_000 {
        return NaiveTime::from_hms_micro_opt(23, 59, 59, 1_999_999)
            .ok_or_else(|| "time 24:00:00 is out of range".to_owned());
    }
    let secs = u32::try_from(micros.div_euclid(1_000_000)).map_err(|_| "time out of range")?;
    let nanos =
        u32::try_from(micros.rem_euclid(1_000_000) * 1000).map_err(|_| "time out of range")?;
    NaiveTime::from_num_seconds_from_midnight_opt(secs, nanos)
        .ok_or_else(|| format!("time of {micros} µs is out of range"))
}

const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;

/// `numeric` on the wire: ndigits, weight, sign, dscale (i16/u16 each), then `ndigits`
/// base-10000 digits; the first digit is worth 10000^weight.
fn decode_numeric(bytes: &[u8]) -> Result<Value, String> {
    if bytes.len() < 8 {
        return Err("numeric value is too short".into());
    }
    let ndigits = usize::try_from(i16::from_be_bytes(take(&bytes[0..2])))
        .map_err(|_| "numeric digit count is negative")?;
    let weight = i32::from(i16::from_be_bytes(take(&bytes[2..4])));
    let sign = u16::from_be_bytes(take(&bytes[4..6]));
    let dscale = usize::from(u16::from_be_bytes(take(&bytes[6..8])));
    let special = match sign {
        NUMERIC_NAN => Some("NaN"),
        NUMERIC_PINF => Some("Infinity"),
        NUMERIC_NINF => Some("-Infinity"),
        NUMERIC_POS | NUMERIC_NEG => None,
        other => return Err(format!("unknown numeric sign {other:#x}")),
    };
    if let Some(special) = special {
        return special
            .parse::<Decimal>()
            .map(Value::Decimal)
            .map_err(|e| e.to_string());
    }
    if bytes.len() != 8 + 2 * ndigits {
        return Err("numeric value has the wrong length".into());
    }
    let digits: Vec<i16> = bytes[8..]
        .chunks_exact(2)
        .map(|c| i16::from_be_bytes([c[0], c[1]]))
        .collect();
    if digits.iter().any(|d| !(0..10_000).contains(d)) {
        return Err("numeric digit out of range".into());
    }
    let group = |index: i32| -> i16 {
        usize::try_from(index)
            .ok()
            .and_then(|i| digits.get(i).copied())
            .unwrap_or(0)
    };
    // Integer digits, then fraction digits, in one buffer: no allocation per group.
    let integer_groups = usize::try_from(weight + 1).unwrap_or(0);
    let mut text = String::with_capacity(4 * integer_groups + dscale + 4);
    for index in 0..=weight {
        push_group(&mut text, group(index));
    }
    let integer_len = text.len();
    let mut index = weight + 1;
    while text.len() - integer_len < dscale {
        push_group(&mut text, group(index));
        index += 1;
    }
    text.truncate(integer_len + dscale);
    Ok(Value::Decimal(Decimal::from_digits(
        sign == NUMERIC_NEG,
        &text,
        u32::try_from(dscale).map_err(|_| "numeric scale out of range")?,
    )))
}

/// Appends one base-10000 digit (checked to be in 0..10000) as four decimal digits.
fn push_group(out: &mut String, group: i16) {
    let group = group.unsigned_abs();
    for divisor in [1000, 100, 10, 1] {
        out.push(char::from(b'0' + (group / divisor % 10) as u8));
    }
}

fn encode_numeric(decimal: &Decimal, buf: &mut Vec<u8>) -> Result<(), BoxDynError> {
    let header = |buf: &mut Vec<u8>, ndigits: usize, weight: i16, sign: u16, dscale: u16| {
        buf.extend((ndigits as i16).to_be_bytes());
        buf.extend(weight.to_be_bytes());
        buf.extend(sign.to_be_bytes());
        buf.extend(dscale.to_be_bytes());
    };
    let Some((digits, scale)) = decimal.mantissa_digits() else {
        let sign = match decimal.as_str() {
            "NaN" => NUMERIC_NAN,
            "Infinity" => NUMERIC_PINF,
            _ => NUMERIC_NINF,
        };
        header(buf, 0, 0, sign, 0);
        return Ok(());
    };
    let scale = scale as usize;
    let dscale = u16::try_from(scale)
        .ok()
        .filter(|s| *s <= 0x3FFF)
        .ok_or("numeric scale is larger than PostgreSQL allows (16383)")?;
    let (int, frac) = digits.split_at(digits.len() - scale);
    let int = int.trim_start_matches('0');
    let int_groups = int.len().div_ceil(4);
    let mut padded = "0".repeat(int_groups * 4 - int.len());
    padded.push_str(int);
    padded.push_str(frac);
    padded.push_str(&"0".repeat((4 - frac.len() % 4) % 4));
    let mut groups: Vec<i16> = padded
        .as_bytes()
        .chunks(4)
        .map(|c| c.iter().fold(0i16, |acc, d| acc * 10 + i16::from(d - b'0')))
        .collect();
    let mut weight = i32::try_from(int_groups).map_err(|_| "numeric too large")? - 1;
    let leading = groups.iter().take_while(|g| **g == 0).count();
    groups.drain(..leading);
    weight -= i32::try_from(leading).map_err(|_| "numeric too large")?;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        header(buf, 0, 0, NUMERIC_POS, dscale);
        return Ok(());
    }
    let weight = i16::try_from(weight).map_err(|_| "numeric value is out of PostgreSQL's range")?;
    if groups.len() > i16::MAX as usize {
        return Err("numeric value has too many digits".into());
    }
    let sign = if decimal.is_negative() {
        NUMERIC_NEG
    } else {
        NUMERIC_POS
    };
    header(buf, groups.len(), weight, sign, dscale);
    for g in groups {
        buf.extend(g.to_be_bytes());
    }
    Ok(())
}

const PGSQL_AF_INET: u8 = 2;
const PGSQL_AF_INET6: u8 = 3;

fn decode_inet(bytes: &[u8], is_cidr_type: bool) -> Result<Value, String> {
    let [family, bits, _is_cidr, len, addr @ ..] = bytes else {
        return Err("inet value is too short".into());
    };
    let ip = match (*family, *len as usize, addr.len()) {
        (PGSQL_AF_INET, 4, 4) => IpAddr::V4(Ipv4Addr::from(take::<4>(addr))),
        (PGSQL_AF_INET6, 16, 16) => IpAddr::V6(Ipv6Addr::from(take::<16>(addr))),
        _ => return Err("inet value has an unknown address family".into()),
    };
    let full = if ip.is_ipv4() { 32 } else { 128 };
    Ok(if *bits == full && !is_cidr_type {
        Value::Ip(ip)
    } else {
        Value::IpNetwork(ip, *bits)
    })
}

fn encode_inet(ip: IpAddr, bits: u8, buf: &mut Vec<u8>) -> Result<(), BoxDynError> {
    let (family, octets): (u8, Vec<u8>) = match ip {
        IpAddr::V4(v4) => (PGSQL_AF_INET, v4.octets().to_vec()),
        IpAddr::V6(v6) => (PGSQL_AF_INET6, v6.octets().to_vec()),
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if bits > max {
        return Err(format!("network prefix /{bits} is longer than the address").into());
    }
    buf.extend([family, bits, 0, octets.len() as u8]);
    buf.extend(octets);
    Ok(())
}

/// Arrays on the wire: ndim, has-null flag, element oid, (length, lower bound) per
/// dimension, then each element as length (-1 for NULL) and bytes.
fn decode_array(element: &Decoder, bytes: &[u8]) -> Result<Value, String> {
    let mut cursor = bytes;
    let read_i32 = |cursor: &mut &[u8]| -> Result<i32, String> {
        if cursor.len() < 4 {
            return Err("array value is truncated".into());
        }
        let (head, rest) = cursor.split_at(4);
        *cursor = rest;
        Ok(i32::from_be_bytes(take(head)))
    };
    let ndim = read_i32(&mut cursor)?;
    let _has_null = read_i32(&mut cursor)?;
    let _element_oid = read_i32(&mut cursor)?;
    if ndim == 0 {
        return Ok(Value::Array(Vec::new()));
    }
    if !(1..=6).contains(&ndim) {
        return Err(format!("array has {ndim} dimensions"));
    }
    let mut dims = Vec::new();
    for _ in 0..ndim {
        let len = usize::try_from(read_i32(&mut cursor)?).map_err(|_| "negative array length")?;
        let _lower_bound = read_i32(&mut cursor)?;
        dims.push(len);
    }
    let total = dims
        .iter()
        .try_fold(1usize, |acc, d| acc.checked_mul(*d))
        .ok_or("array is too large")?;
    let mut items = Vec::with_capacity(total.min(cursor.len() / 4));
    for _ in 0..total {
        let len = read_i32(&mut cursor)?;
        if len < 0 {
            items.push(Value::Null);
            continue;
        }
        let len = len as usize;
        if cursor.len() < len {
            return Err("array element is truncated".into());
        }
        let (value, rest) = cursor.split_at(len);
        cursor = rest;
        items.push(element.decode(value)?);
    }
    // Nest from the innermost dimension outwards.
    for &dim in dims[1..].iter().rev() {
        if dim == 0 {
            break;
        }
        items = items
            .chunks(dim)
            .map(|chunk| Value::Array(chunk.to_vec()))
            .collect();
    }
    Ok(Value::Array(items))
}

/// A [`Value`] bound as a statement parameter, in PostgreSQL's binary format.
///
/// | `Value` | sent as |
/// |---|---|
/// | `Null` | untyped NULL (the server infers the type) |
/// | `Bool` | `bool` |
/// | `I8`, `I16`, `U8` | `int2` |
/// | `I32`, `U16` | `int4` |
/// | `I64`, `U32` | `int8` |
/// | `U64`, `I128`, `U128` | `int8` when the value fits, else `numeric` |
/// | `F32` / `F64` | `float4` / `float8` |
/// | `Decimal` | `numeric` (every digit, `NaN`, `±Infinity`) |
/// | `Text` | `text` |
/// | `Bytes` | `bytea` |
/// | `Date`, `Time`, `TimeTz`, `Timestamp`, `TimestampTz`, `Interval` | `date`, `time`, `timetz`, `timestamp`, `timestamptz`, `interval` |
/// | `Uuid` | `uuid` |
/// | `Json` | `jsonb` |
/// | `Ip` / `IpNetwork` | `inet` |
/// | `Array` | a one-dimensional array of the elements' type (`text[]` when empty or all NULL) |
/// | `Tuple`, `Map` | not supported (a `Parameter` error) |
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Param(pub(crate) Value);

impl Param {
    /// The OID of the PostgreSQL type this value is sent as (0: let the server infer).
    pub(crate) fn type_oid(&self) -> Result<u32, String> {
        scalar_oid(&self.0)
    }
}

fn fits_i64<T: TryInto<i64>>(v: T) -> bool {
    v.try_into().is_ok()
}

fn scalar_oid(value: &Value) -> Result<u32, String> {
    use oid::*;
    Ok(match value {
        Value::Null => UNSPECIFIED,
        Value::Bool(_) => BOOL,
        Value::I8(_) | Value::I16(_) | Value::U8(_) => INT2,
        Value::I32(_) | Value::U16(_) => INT4,
        Value::I64(_) | Value::U32(_) => INT8,
        Value::U64(v) if fits_i64(*v) => INT8,
        Value::I128(v) if fits_i64(*v) => INT8,
        Value::U128(v) if fits_i64(*v) => INT8,
        Value::U64(_) | Value::I128(_) | Value::U128(_) | Value::Decimal(_) => NUMERIC,
        Value::F32(_) => FLOAT4,
        Value::F64(_) => FLOAT8,
        Value::Text(_) => TEXT,
        Value::Bytes(_) => BYTEA,
        Value::Date(_) => DATE,
        Value::Time(_) => TIME,
        Value::TimeTz(..) => TIMETZ,
        Value::Timestamp(_) => TIMESTAMP,
        Value::TimestampTz(_) => TIMESTAMPTZ,
        Value::Interval(_) => INTERVAL,
        Value::Uuid(_) => UUID,
        Value::Json(_) => JSONB,
        Value::Ip(_) | Value::IpNetwork(..) => INET,
        Value::Array(items) => {
            let mut element = None;
            for item in items {
                if matches!(item, Value::Array(_)) {
                    return Err("nested arrays cannot be bound; bind a flat array".into());
                }
                let item_oid = scalar_oid(item)?;
                if item_oid == UNSPECIFIED {
                    continue;
                }
                match element {
                    None => element = Some(item_oid),
                    Some(e) if e == item_oid => {}
                    Some(_) => {
                        return Err("array elements must all have the same type".into());
                    }
                }
            }
            match element {
                None => TEXT_ARRAY,
                Some(e) => oid::array_of(e)
                    .ok_or_else(|| format!("arrays of {} cannot be bound", value_name(items)))?,
            }
        }
        other => {
            return Err(format!(
                "a {} value cannot be bound as a PostgreSQL parameter",
                other.kind()
            ));
        }
    })
}

fn value_name(items: &[Value]) -> String {
    items
        .iter()
        .find(|v| !v.is_null())
        .map_or_else(|| "null".to_owned(), |v| v.kind().to_string())
}

impl Type<Postgres> for Param {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(Oid(oid::UNSPECIFIED))
    }

    fn compatible(_ty: &PgTypeInfo) -> bool {
        true
    }
}

impl Encode<'_, Postgres> for Param {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        if self.0.is_null() {
            return Ok(IsNull::Yes);
        }
        encode_scalar(&self.0, buf)?;
        Ok(IsNull::No)
    }

    fn produces(&self) -> Option<PgTypeInfo> {
        // An unbindable value was already refused before the query was built.
        Some(PgTypeInfo::with_oid(Oid(self
            .type_oid()
            .unwrap_or(oid::UNSPECIFIED))))
    }
}

fn micros_since_epoch(ts: chrono::NaiveDateTime) -> Result<i64, BoxDynError> {
    ts.signed_duration_since(pg_epoch())
        .num_microseconds()
        .ok_or_else(|| "timestamp out of range".into())
}

fn micros_of_day(t: NaiveTime) -> i64 {
    use chrono::Timelike;
    i64::from(t.num_seconds_from_midnight()) * 1_000_000 + i64::from(t.nanosecond() / 1000)
}

fn encode_scalar(value: &Value, buf: &mut Vec<u8>) -> Result<(), BoxDynError> {
    match value {
        Value::Null => {}
        Value::Bool(v) => buf.push(u8::from(*v)),
        Value::I8(v) => buf.extend(i16::from(*v).to_be_bytes()),
        Value::I16(v) => buf.extend(v.to_be_bytes()),
        Value::U8(v) => buf.extend(i16::from(*v).to_be_bytes()),
        Value::I32(v) => buf.extend(v.to_be_bytes()),
        Value::U16(v) => buf.extend(i32::from(*v).to_be_bytes()),
        Value::I64(v) => buf.extend(v.to_be_bytes()),
        Value::U32(v) => buf.extend(i64::from(*v).to_be_bytes()),
        Value::U64(v) => match i64::try_from(*v) {
            Ok(v) => buf.extend(v.to_be_bytes()),
            Err(_) => encode_numeric(&Decimal::from_digits(false, &v.to_string(), 0), buf)?,
        },
        Value::I128(v) => match i64::try_from(*v) {
            Ok(v) => buf.extend(v.to_be_bytes()),
            Err(_) => encode_numeric(&Decimal::from_mantissa(*v, 0), buf)?,
        },
        Value::U128(v) => match i64::try_from(*v) {
            Ok(v) => buf.extend(v.to_be_bytes()),
            Err(_) => encode_numeric(&Decimal::from_digits(false, &v.to_string(), 0), buf)?,
        },
        Value::F32(v) => buf.extend(v.to_be_bytes()),
        Value::F64(v) => buf.extend(v.to_be_bytes()),
        Value::Decimal(d) => encode_numeric(d, buf)?,
        Value::Text(s) => {
            if s.contains('\0') {
                return Err("text contains a NUL character, which PostgreSQL cannot store".into());
            }
            buf.extend(s.as_bytes())
        }
        Value::Bytes(b) => buf.extend(b),
        Value::Date(d) => {
            let days = d.signed_duration_since(pg_epoch_date()).num_days();
            buf.extend(
                i32::try_from(days)
                    .map_err(|_| "date out of range")?
                    .to_be_bytes(),
            )
        }
        Value::Time(t) => buf.extend(micros_of_day(*t).to_be_bytes()),
        Value::TimeTz(t, offset) => {
            buf.extend(micros_of_day(*t).to_be_bytes());
            buf.extend((-offset.local_minus_utc()).to_be_bytes());
        }
        Value::Timestamp(ts) => buf.extend(micros_since_epoch(*ts)?.to_be_bytes()),
        Value::TimestampTz(ts) => buf.extend(micros_since_epoch(ts.naive_utc())?.to_be_bytes()),
        Value::Interval(i) => {
            buf.extend(i.microseconds.to_be_bytes());
            buf.extend(i.days.to_be_bytes());
            buf.extend(i.months.to_be_bytes());
        }
        Value::Uuid(u) => buf.extend(u.as_bytes()),
        Value::Json(j) => {
            buf.push(1);
            serde_json::to_writer(&mut *buf, j)?;
        }
        Value::Ip(ip) => encode_inet(*ip, if ip.is_ipv4() { 32 } else { 128 }, buf)?,
        Value::IpNetwork(ip, bits) => encode_inet(*ip, *bits, buf)?,
        Value::Array(items) => {
            let array_oid = scalar_oid(value)?;
            let element_oid = oid::element_of(array_oid).unwrap_or(oid::TEXT);
            let has_null = items.iter().any(Value::is_null);
            buf.extend(1i32.to_be_bytes());
            buf.extend(i32::from(has_null).to_be_bytes());
            buf.extend(element_oid.to_be_bytes());
            buf.extend(i32::try_from(items.len())?.to_be_bytes());
            buf.extend(1i32.to_be_bytes());
            for item in items {
                if item.is_null() {
                    buf.extend((-1i32).to_be_bytes());
                    continue;
                }
                let start = buf.len();
                buf.extend(0i32.to_be_bytes());
                encode_scalar(item, buf)?;
                let len = i32::try_from(buf.len() - start - 4)?;
                buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
            }
        }
        other => {
            return Err(format!(
                "a {} value cannot be bound as a PostgreSQL parameter",
                other.kind()
            )
            .into());
        }
    }
    Ok(())
}

/// The server's name for a column type, as `describe` shows it.
pub(crate) fn type_name(ty: &PgTypeInfo) -> String {
    ty.name().to_owned()
}

/// When some columns are not in the table, the query wrapped so that the server sends
/// those columns as text: `WITH q(c1, …) AS (<query>) SELECT c1, c2::text, … FROM q`.
/// A CTE (not a subquery) so that `INSERT … RETURNING` works too. `None` when every
/// column can be decoded.
pub(crate) fn text_wrapper(sql: &str, decoders: &[Decoder]) -> Option<String> {
    if !decoders.contains(&Decoder::AsText) {
        return None;
    }
    let body = sql.trim_end().trim_end_matches(';');
    let names: Vec<String> = (1..=decoders.len())
        .map(|i| format!("extdata_c{i}"))
        .collect();
    let select: Vec<String> = names
        .iter()
        .zip(decoders)
        .map(|(name, d)| match d {
            Decoder::AsText => format!("{name}::text"),
            _ => name.clone(),
        })
        .collect();
    // The newline before `)` ends a trailing `--` comment of the original query.
    Some(format!(
        "WITH extdata_q({}) AS (\n{body}\n) SELECT {} FROM extdata_q",
        names.join(", "),
        select.join(", ")
    ))
}

/// Decodes one binary value of the built-in type `type_oid`: the per-value conversion
/// without a server, for the benchmarks (`benches/benches/convert.rs`). Not API.
#[doc(hidden)]
pub fn decode_binary_for_bench(type_oid: u32, bytes: &[u8]) -> Result<Value, String> {
    Decoder::for_oid(type_oid).decode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric_round_trip(text: &str) -> String {
        let d: Decimal = text.parse().unwrap();
        let mut buf = Vec::new();
        encode_numeric(&d, &mut buf).unwrap();
        match decode_numeric(&buf).unwrap() {
            Value::Decimal(d) => d.to_string(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn numeric_wire_format_keeps_every_digit() {
        for text in [
            "0",
            "0.00",
            "1",
            "-1",
            "10000",
            "9999.9999",
            "0.0001",
            "0.00001",
            "-0.000000012300",
            "123456789012345678901234567890123456789012.345678901234567890",
            "-98765432109876543210987654321098765432109876543210",
            "NaN",
            "Infinity",
            "-Infinity",
            "100000000.00000001",
        ] {
            assert_eq!(numeric_round_trip(text), text, "{text}");
        }
    }

    #[test]
    fn numeric_decodes_server_bytes() {
        // 12345.678 as PostgreSQL sends it: ndigits 3, weight 1, sign +, dscale 3,
        // digits 1, 2345, 6780.
        let bytes = [0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1A, 0x7C];
        assert_eq!(
            decode_numeric(&bytes).unwrap(),
            Value::Decimal("12345.678".parse().unwrap())
        );
    }

    #[test]
    fn arrays_nest_per_dimension() {
        let mut buf = Vec::new();
        for v in [2i32, 0, 23, 2, 1, 2, 1] {
            buf.extend(v.to_be_bytes());
        }
        for v in [1i32, 2, 3, 4] {
            buf.extend(4i32.to_be_bytes());
            buf.extend(v.to_be_bytes());
        }
        assert_eq!(
            Decoder::Array(Box::new(Decoder::Int4))
                .decode(&buf)
                .unwrap(),
            Value::Array(vec![
                Value::Array(vec![Value::I32(1), Value::I32(2)]),
                Value::Array(vec![Value::I32(3), Value::I32(4)]),
            ])
        );
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        for decoder in [
            Decoder::Int4,
            Decoder::Numeric,
            Decoder::Interval,
            Decoder::Inet,
            Decoder::Array(Box::new(Decoder::Text)),
            Decoder::TimeTz,
            Decoder::Jsonb,
        ] {
            assert!(decoder.decode(&[1, 2, 3]).is_err(), "{decoder:?}");
        }
        assert!(Decoder::Text.decode(&[0xff]).is_err());
    }

    #[test]
    fn parameter_types() {
        assert_eq!(
            Param(Value::U64(u64::MAX)).type_oid().unwrap(),
            oid::NUMERIC
        );
        assert_eq!(Param(Value::U64(5)).type_oid().unwrap(), oid::INT8);
        assert_eq!(Param(Value::Null).type_oid().unwrap(), oid::UNSPECIFIED);
        assert_eq!(
            Param(Value::Array(vec![Value::Null, Value::I64(1)]))
                .type_oid()
                .unwrap(),
            1016
        );
        assert!(
            Param(Value::Array(vec![Value::I64(1), Value::Text("x".into())]))
                .type_oid()
                .is_err()
        );
        assert!(Param(Value::Tuple(vec![])).type_oid().is_err());
    }

    #[test]
    fn wrapper_casts_only_unknown_columns() {
        let sql = text_wrapper(
            "SELECT a, b FROM t -- note",
            &[Decoder::Int4, Decoder::AsText],
        )
        .unwrap();
        assert_eq!(
            sql,
            "WITH extdata_q(extdata_c1, extdata_c2) AS (\nSELECT a, b FROM t -- note\n) \
             SELECT extdata_c1, extdata_c2::text FROM extdata_q"
        );
        assert!(text_wrapper("SELECT 1", &[Decoder::Int4]).is_none());
    }
}
