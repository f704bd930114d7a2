//! MySQL / MariaDB type ↔ [`Value`] table.
//!
//! Reading, top to bottom (sqlx's type name → what we read → `Value`):
//!
//! | server type | `Value` |
//! |---|---|
//! | TINYINT(1) / BOOL | `I8` (`U8` if unsigned): MySQL's BOOL is a TINYINT that may hold any of its values |
//! | TINYINT, SMALLINT, MEDIUMINT, INT, BIGINT | `I8`, `I16`, `I32`, `I32`, `I64` |
//! | … UNSIGNED | `U8`, `U16`, `U32`, `U32`, `U64` |
//! | YEAR | `U16` |
//! | BIT(n) | `U64` (the bits as a number, n ≤ 64) |
//! | FLOAT / DOUBLE | `F32` / `F64` |
//! | DECIMAL(p,s) | `Decimal`, from the server's digits (never through `f64`) |
//! | CHAR, VARCHAR, TEXT…, ENUM, SET (any collation but `binary`) | `Text` |
//! | BINARY, VARBINARY, BLOB… (collation `binary`), GEOMETRY | `Bytes` |
//! | JSON (MySQL) | `Json` |
//! | JSON (MariaDB: a LONGTEXT alias, the protocol cannot tell) | `Text` |
//! | DATE | `Date` |
//! | TIME(fsp) | `Interval` (microseconds): TIME is a signed duration up to ±838:59:59, not only a time of day |
//! | DATETIME(fsp) | `Timestamp` |
//! | TIMESTAMP(fsp) | `TimestampTz` with the session's offset (`+00:00` by default); `Timestamp` when `timezone` is a named zone |
//! | NULL, zero dates (`0000-00-00`) | `Null` |
//!
//! Binding: see [`bind`].

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone};
use extdata_core::{Column, Decimal, Error, Interval, Result, Value, ValueKind};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::mysql::types::{MySqlTime, MySqlTimeSign};
use sqlx::mysql::{MySql, MySqlArguments, MySqlColumn, MySqlRow, MySqlTypeInfo};
use sqlx::{Arguments, Column as _, Decode, Row as _, Type, TypeInfo, ValueRef};

use crate::connect::TimestampMode;

/// The server type of a column, as far as the protocol tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Native {
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    Year,
    Bit,
    F32,
    F64,
    Decimal,
    Text,
    Bytes,
    Json,
    Date,
    Time,
    DateTime,
    Timestamp,
    Null,
}

impl Native {
    /// The type of a column from sqlx's type info.
    pub(crate) fn of(info: &MySqlTypeInfo) -> Native {
        // `name()` is the only public view of the type; signedness and the binary
        // collation are read through sqlx's own compatibility checks.
        let unsigned = <u64 as Type<MySql>>::compatible(info);
        match info.name() {
            // sqlx calls TINYINT(1) "BOOLEAN".
            "BOOLEAN" if unsigned => Native::U8,
            "BOOLEAN" => Native::I8,
            "TINYINT" => Native::I8,
            "TINYINT UNSIGNED" => Native::U8,
            "SMALLINT" => Native::I16,
            "SMALLINT UNSIGNED" => Native::U16,
            "MEDIUMINT" | "INT" => Native::I32,
            "MEDIUMINT UNSIGNED" | "INT UNSIGNED" => Native::U32,
            "BIGINT" => Native::I64,
            "BIGINT UNSIGNED" => Native::U64,
            "YEAR" => Native::Year,
            "BIT" => Native::Bit,
            "FLOAT" => Native::F32,
            "DOUBLE" => Native::F64,
            "DECIMAL" => Native::Decimal,
            "DATE" => Native::Date,
            "TIME" => Native::Time,
            "DATETIME" => Native::DateTime,
            "TIMESTAMP" => Native::Timestamp,
            "JSON" => Native::Json,
            "NULL" => Native::Null,
            "GEOMETRY" => Native::Bytes,
            // CHAR, VARCHAR, *TEXT, *BLOB, BINARY, VARBINARY, ENUM, SET: sqlx names BLOB vs
            // TEXT by the BINARY flag, which `_bin` collations set too; only the
            // `binary` collation (63) means bytes, and that is what `str` checks.
            _ => {
                if <str as Type<MySql>>::compatible(info) {
                    Native::Text
                } else {
                    Native::Bytes
                }
            }
        }
    }

    /// The `Value` variant non-NULL values of this type decode to.
    pub(crate) fn value_kind(self, timestamps: TimestampMode) -> ValueKind {
        match self {
            Native::I8 => ValueKind::I8,
            Native::I16 => ValueKind::I16,
            Native::I32 => ValueKind::I32,
            Native::I64 => ValueKind::I64,
            Native::U8 => ValueKind::U8,
            Native::U16 | Native::Year => ValueKind::U16,
            Native::U32 => ValueKind::U32,
            Native::U64 | Native::Bit => ValueKind::U64,
            Native::F32 => ValueKind::F32,
            Native::F64 => ValueKind::F64,
            Native::Decimal => ValueKind::Decimal,
            Native::Text => ValueKind::Text,
            Native::Bytes => ValueKind::Bytes,
            Native::Json => ValueKind::Json,
            Native::Date => ValueKind::Date,
            Native::Time => ValueKind::Interval,
            Native::DateTime => ValueKind::Timestamp,
            Native::Timestamp => match timestamps {
                TimestampMode::Offset(_) => ValueKind::TimestampTz,
                TimestampMode::WallClock => ValueKind::Timestamp,
            },
            Native::Null => ValueKind::Null,
        }
    }
}

/// Describes a column.
pub(crate) fn column(col: &sqlx::mysql::MySqlColumn, timestamps: TimestampMode) -> Column {
    let info = col.type_info();
    let native = Native::of(info);
    Column::new(col.name(), info.name(), native.value_kind(timestamps))
}

/// Reads the rows of one result: each column's type is resolved once, from the first
/// row's metadata, instead of per value.
pub(crate) struct RowDecoder {
    natives: Vec<Native>,
    timestamps: TimestampMode,
}

impl RowDecoder {
    /// The decoder for rows with these columns.
    pub(crate) fn new(columns: &[MySqlColumn], timestamps: TimestampMode) -> Self {
        RowDecoder {
            natives: columns.iter().map(|c| Native::of(c.type_info())).collect(),
            timestamps,
        }
    }

    /// The type of each column, as the decoder reads it.
    #[cfg(feature = "arrow")]
    pub(crate) fn natives(&self) -> &[Native] {
        &self.natives
    }

    /// How TIMESTAMP values are read.
    #[cfg(feature = "arrow")]
    pub(crate) fn timestamps(&self) -> TimestampMode {
        self.timestamps
    }

    /// Decodes the value of column `index` of a row of this result, as
    /// [`decode_row`](Self::decode_row) does.
    #[cfg(feature = "arrow")]
    pub(crate) fn decode_cell(&self, row: &MySqlRow, index: usize) -> Result<Value> {
        match self.natives.get(index) {
            Some(native) => decode(row, index, *native, self.timestamps),
            None => Err(Error::decode(format!("column {index}: no such column"))),
        }
    }

    /// Decodes every value of a row.
    pub(crate) fn decode_row(&mut self, row: &MySqlRow) -> Result<Vec<Value>> {
        if row.len() != self.natives.len() {
            // A later result set (`CALL`) with other columns: resolve them again.
            *self = RowDecoder::new(row.columns(), self.timestamps);
        }
        let mut values = Vec::with_capacity(self.natives.len());
        for (index, native) in self.natives.iter().enumerate() {
            values.push(decode(row, index, *native, self.timestamps)?);
        }
        Ok(values)
    }
}

fn decode(
    row: &MySqlRow,
    index: usize,
    native: Native,
    timestamps: TimestampMode,
) -> Result<Value> {
    let raw = row
        .try_get_raw(index)
        .map_err(|e| Error::decode(format!("column {index}: {e}")))?;
    if raw.is_null() {
        return Ok(Value::Null);
    }
    // Only an error message needs the column's name and type.
    let column = || row.column(index).name();
    let fail = |e: BoxDynError| {
        Error::decode(format!(
            "column `{}` ({}): {e}",
            column(),
            row.column(index).type_info().name()
        ))
    };
    macro_rules! get {
        ($t:ty) => {
            <$t as Decode<MySql>>::decode(raw).map_err(fail)?
        };
    }
    Ok(match native {
        Native::I8 => Value::I8(get!(i8)),
        Native::I16 => Value::I16(get!(i16)),
        Native::I32 => Value::I32(get!(i32)),
        Native::I64 => Value::I64(get!(i64)),
        Native::U8 => Value::U8(get!(u8)),
        Native::U16 | Native::Year => Value::U16(get!(u16)),
        Native::U32 => Value::U32(get!(u32)),
        Native::U64 | Native::Bit => Value::U64(get!(u64)),
        Native::F32 => Value::F32(get!(f32)),
        Native::F64 => Value::F64(get!(f64)),
        // The text and binary protocols both carry DECIMAL as its digits (canonical:
        // parsed with one copy).
        Native::Decimal => Value::Decimal(
            get!(&str)
                .parse::<Decimal>()
                .map_err(|e| Error::decode(format!("column `{}`: {}", column(), e.message())))?,
        ),
        Native::Text => Value::Text(get!(&str).to_owned()),
        Native::Bytes => Value::Bytes(get!(&[u8]).to_vec()),
        Native::Json => Value::Json(serde_json::from_str(get!(&str)).map_err(|e| {
            Error::decode(format!(
                "column `{}`: invalid JSON from the server: {e}",
                column()
            ))
        })?),
        Native::Date => Value::Date(get!(NaiveDate)),
        Native::Time => time_value(get!(MySqlTime)),
        Native::DateTime => Value::Timestamp(get!(NaiveDateTime)),
        Native::Timestamp => {
            let naive = get!(NaiveDateTime);
            match timestamps {
                TimestampMode::Offset(offset) => {
                    match offset.from_local_datetime(&naive).single() {
                        Some(instant) => Value::TimestampTz(instant),
                        None => {
                            return Err(Error::decode(format!(
                                "column `{}`: {naive} is not a valid time at offset {offset}",
                                column()
                            )));
                        }
                    }
                }
                TimestampMode::WallClock => Value::Timestamp(naive),
            }
        }
        Native::Null => Value::Null,
    })
}

/// TIME is a signed duration of up to ±838:59:59.999999.
fn time_value(time: MySqlTime) -> Value {
    let magnitude = (i64::from(time.hours()) * 3600
        + i64::from(time.minutes()) * 60
        + i64::from(time.seconds()))
        * 1_000_000
        + i64::from(time.microseconds());
    Value::Interval(Interval {
        months: 0,
        days: 0,
        microseconds: if time.sign().is_negative() {
            -magnitude
        } else {
            magnitude
        },
    })
}

/// A decimal bound as its digits with the DECIMAL parameter type (sqlx's own decimal
/// types would need a conversion that can round or overflow).
struct DecimalText(String);

impl Type<MySql> for DecimalText {
    fn type_info() -> MySqlTypeInfo {
        <sqlx::types::BigDecimal as Type<MySql>>::type_info()
    }
}

impl sqlx::Encode<'_, MySql> for DecimalText {
    fn encode_by_ref(&self, buf: &mut Vec<u8>) -> Result<IsNull, BoxDynError> {
        <&str as sqlx::Encode<MySql>>::encode(self.0.as_str(), buf)
    }
}

/// Binds the values in order.
///
/// | `Value` | sent as |
/// |---|---|
/// | `Null` | NULL |
/// | `Bool` | TINYINT 0/1 |
/// | `I8`…`I64`, `U8`…`U64` | the integer type of that width and sign |
/// | `I128`, `U128` | BIGINT when it fits, else DECIMAL digits |
/// | `F32`, `F64` | FLOAT, DOUBLE |
/// | `Decimal` | DECIMAL (its digits; NaN and infinities are refused) |
/// | `Text`, `Bytes` | string, binary string |
/// | `Date`, `Time`, `Timestamp` | DATE, TIME, DATETIME |
/// | `TimestampTz` | DATETIME converted to the session's offset (refused when `timezone` is a named zone: the instant could not be placed exactly) |
/// | `Interval` | TIME (months must be 0; up to ±838:59:59) |
/// | `Json`, `Uuid`, `Ip`, `IpNetwork` | text |
/// | `TimeTz`, `Array`, `Tuple`, `Map` | refused (`Parameter`) |
pub(crate) fn bind(values: &[Value], timestamps: TimestampMode) -> Result<MySqlArguments> {
    let mut args = MySqlArguments::default();
    for (position, value) in values.iter().enumerate() {
        bind_one(&mut args, value, timestamps).map_err(|why| {
            Error::parameter(format!(
                "parameter {} ({}): {why}",
                position + 1,
                value.kind()
            ))
        })?;
    }
    Ok(args)
}

fn bind_one(
    args: &mut MySqlArguments,
    value: &Value,
    timestamps: TimestampMode,
) -> std::result::Result<(), BoxDynError> {
    match value {
        Value::Null => args.add(None::<&str>),
        Value::Bool(v) => args.add(*v),
        Value::I8(v) => args.add(*v),
        Value::I16(v) => args.add(*v),
        Value::I32(v) => args.add(*v),
        Value::I64(v) => args.add(*v),
        Value::I128(v) => match i64::try_from(*v) {
            Ok(v) => args.add(v),
            Err(_) => args.add(DecimalText(v.to_string())),
        },
        Value::U8(v) => args.add(*v),
        Value::U16(v) => args.add(*v),
        Value::U32(v) => args.add(*v),
        Value::U64(v) => args.add(*v),
        Value::U128(v) => match u64::try_from(*v) {
            Ok(v) => args.add(v),
            Err(_) => args.add(DecimalText(v.to_string())),
        },
        Value::F32(v) => args.add(*v),
        Value::F64(v) => args.add(*v),
        Value::Decimal(d) if d.is_special() => Err(format!("MySQL DECIMAL has no `{d}`").into()),
        Value::Decimal(d) => args.add(DecimalText(d.to_string())),
        Value::Text(s) => args.add(s.as_str()),
        Value::Bytes(b) => args.add(b.as_slice()),
        Value::Date(d) => args.add(*d),
        Value::Time(t) => args.add(*t),
        Value::Timestamp(ts) => args.add(*ts),
        Value::TimestampTz(ts) => match timestamps {
            TimestampMode::Offset(offset) => args.add(instant_at(ts, offset)),
            TimestampMode::WallClock => Err(
                "a timestamp with zone cannot be placed exactly in a session with a named \
                 time zone; bind a wall-clock Timestamp or use a +HH:MM `timezone`"
                    .into(),
            ),
        },
        Value::Interval(i) => args.add(interval_time(i)?),
        Value::Uuid(u) => args.add(u.to_string()),
        Value::Json(j) => args.add(j.to_string()),
        Value::Ip(ip) => args.add(ip.to_string()),
        Value::IpNetwork(ip, prefix) => args.add(format!("{ip}/{prefix}")),
        other => Err(format!("MySQL has no parameter type for {}", other.kind()).into()),
    }
}

fn instant_at(ts: &DateTime<FixedOffset>, offset: FixedOffset) -> NaiveDateTime {
    ts.with_timezone(&offset).naive_local()
}

fn interval_time(interval: &Interval) -> std::result::Result<MySqlTime, BoxDynError> {
    if interval.months != 0 {
        return Err("an interval with months has no MySQL TIME equivalent".into());
    }
    let micros = i128::from(interval.days) * 86_400_000_000 + i128::from(interval.microseconds);
    let sign = if micros < 0 {
        MySqlTimeSign::Negative
    } else {
        MySqlTimeSign::Positive
    };
    let magnitude = micros.unsigned_abs();
    let seconds = magnitude / 1_000_000;
    let hours = u32::try_from(seconds / 3600).map_err(|_| "interval out of TIME range")?;
    // Both fit in u8 by construction (< 60).
    let minutes = u8::try_from((seconds / 60) % 60).unwrap_or(0);
    let secs = u8::try_from(seconds % 60).unwrap_or(0);
    let micros = u32::try_from(magnitude % 1_000_000).unwrap_or(0);
    Ok(MySqlTime::new(sign, hours, minutes, secs, micros)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_intervals() {
        let t = MySqlTime::new(MySqlTimeSign::Negative, 838, 59, 59, 0).unwrap();
        assert_eq!(
            time_value(t),
            Value::Interval(Interval {
                months: 0,
                days: 0,
                microseconds: -(838 * 3600 + 59 * 60 + 59) * 1_000_000
            })
        );
        let t = MySqlTime::new(MySqlTimeSign::Positive, 23, 59, 59, 999_999).unwrap();
        assert_eq!(
            time_value(t),
            Value::Interval(Interval {
                months: 0,
                days: 0,
                microseconds: 86_400_000_000 - 1
            })
        );
    }

    #[test]
    fn intervals_bind_as_time() {
        let i = Interval {
            months: 0,
            days: 1,
            microseconds: -1,
        };
        let t = interval_time(&i).unwrap();
        assert_eq!(
            (t.hours(), t.minutes(), t.seconds(), t.microseconds()),
            (23, 59, 59, 999_999)
        );
        assert!(
            interval_time(&Interval {
                months: 1,
                days: 0,
                microseconds: 0
            })
            .is_err()
        );
        assert!(
            interval_time(&Interval {
                months: 0,
                days: 40,
                microseconds: 0
            })
            .is_err()
        );
    }
}
