//! The SQL Server type → [`Value`] table, and [`Value`] → bound parameter.
//!
//! Read top to bottom: [`column_kind`] (what a column announces), [`decode`] (what a
//! cell becomes), [`kind_of_type_name`] (the same table by type name, for `describe`),
//! then [`bind`] (what a parameter is sent as).

use chrono::{
    DateTime, Duration as ChronoDuration, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime,
};
use extdata_core::{Column, Decimal, Dialect, Error, Result, Statement, Value, ValueKind};
use tiberius::numeric::Numeric;
use tiberius::time::{Date, DateTime2, DateTimeOffset, Time};
use tiberius::{ColumnData, ColumnType};

/// The [`Value`] variant of a column's non-NULL values, from the type tiberius reports.
pub(crate) fn column_kind(column_type: ColumnType) -> ValueKind {
    match column_type {
        ColumnType::Null => ValueKind::Null,
        ColumnType::Bit | ColumnType::Bitn => ValueKind::Bool,
        // tinyint is unsigned in SQL Server (0..=255).
        ColumnType::Int1 => ValueKind::U8,
        ColumnType::Int2 => ValueKind::I16,
        ColumnType::Int4 => ValueKind::I32,
        ColumnType::Int8 | ColumnType::Intn => ValueKind::I64,
        ColumnType::Float4 => ValueKind::F32,
        ColumnType::Float8 | ColumnType::Floatn => ValueKind::F64,
        // money and smallmoney are fixed-point with 4 decimals.
        ColumnType::Money | ColumnType::Money4 => ValueKind::Decimal,
        ColumnType::Decimaln | ColumnType::Numericn => ValueKind::Decimal,
        ColumnType::Datetime | ColumnType::Datetime4 | ColumnType::Datetimen => {
            ValueKind::Timestamp
        }
        ColumnType::Daten => ValueKind::Date,
        ColumnType::Timen => ValueKind::Time,
        ColumnType::Datetime2 => ValueKind::Timestamp,
        ColumnType::DatetimeOffsetn => ValueKind::TimestampTz,
        ColumnType::Guid => ValueKind::Uuid,
        ColumnType::BigVarChar
        | ColumnType::BigChar
        | ColumnType::NVarchar
        | ColumnType::NChar
        | ColumnType::Text
        | ColumnType::NText
        | ColumnType::Xml => ValueKind::Text,
        ColumnType::BigVarBin | ColumnType::BigBinary | ColumnType::Image | ColumnType::Udt => {
            ValueKind::Bytes
        }
        // sql_variant: each value has its own base type; text is the usual one.
        ColumnType::SSVariant => ValueKind::Text,
    }
}

/// The server's name for a column type as tiberius reports it (length, precision and
/// scale are not in its column metadata; `describe` gives the full name).
pub(crate) fn type_name(column_type: ColumnType) -> &'static str {
    match column_type {
        ColumnType::Null => "null",
        ColumnType::Bit | ColumnType::Bitn => "bit",
        ColumnType::Int1 => "tinyint",
        ColumnType::Int2 => "smallint",
        ColumnType::Int4 => "int",
        ColumnType::Int8 | ColumnType::Intn => "bigint",
        ColumnType::Float4 => "real",
        ColumnType::Float8 | ColumnType::Floatn => "float",
        ColumnType::Money => "money",
        ColumnType::Money4 => "smallmoney",
        ColumnType::Decimaln => "decimal",
        ColumnType::Numericn => "numeric",
        ColumnType::Datetime | ColumnType::Datetimen => "datetime",
        ColumnType::Datetime4 => "smalldatetime",
        ColumnType::Daten => "date",
        ColumnType::Timen => "time",
        ColumnType::Datetime2 => "datetime2",
        ColumnType::DatetimeOffsetn => "datetimeoffset",
        ColumnType::Guid => "uniqueidentifier",
        ColumnType::BigVarChar => "varchar",
        ColumnType::BigChar => "char",
        ColumnType::NVarchar => "nvarchar",
        ColumnType::NChar => "nchar",
        ColumnType::Text => "text",
        ColumnType::NText => "ntext",
        ColumnType::Xml => "xml",
        ColumnType::BigVarBin => "varbinary",
        ColumnType::BigBinary => "binary",
        ColumnType::Image => "image",
        ColumnType::Udt => "udt",
        ColumnType::SSVariant => "sql_variant",
    }
}

/// Our description of a result column.
pub(crate) fn column(column: &tiberius::Column) -> Column {
    Column::new(
        column.name(),
        type_name(column.column_type()),
        column_kind(column.column_type()),
    )
}

/// The [`Value`] kind of a type as `sp_describe_first_result_set` names it
/// (`int`, `decimal(38,10)`, `nvarchar(max)`, `datetimeoffset(7)`, …).
pub(crate) fn kind_of_type_name(name: &str) -> ValueKind {
    let base = name
        .split('(')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match base.as_str() {
        "bit" => ValueKind::Bool,
        "tinyint" => ValueKind::U8,
        "smallint" => ValueKind::I16,
        "int" => ValueKind::I32,
        "bigint" => ValueKind::I64,
        "decimal" | "numeric" | "money" | "smallmoney" => ValueKind::Decimal,
        "real" => ValueKind::F32,
        "float" => ValueKind::F64,
        "char" | "varchar" | "nchar" | "nvarchar" | "text" | "ntext" | "xml" | "sysname"
        | "sql_variant" => ValueKind::Text,
        "binary" | "varbinary" | "image" | "timestamp" | "rowversion" | "hierarchyid"
        | "geometry" | "geography" => ValueKind::Bytes,
        "date" => ValueKind::Date,
        "time" => ValueKind::Time,
        "datetime" | "datetime2" | "smalldatetime" => ValueKind::Timestamp,
        "datetimeoffset" => ValueKind::TimestampTz,
        "uniqueidentifier" => ValueKind::Uuid,
        // Alias types (`CREATE TYPE … FROM`) report their own name: text is the safe
        // guess, the values still decode to their real variant.
        _ => ValueKind::Text,
    }
}

/// Days from 0001-01-01 (the epoch of `date`, `datetime2`, `datetimeoffset`).
fn epoch_0001() -> NaiveDate {
    NaiveDate::from_ymd_opt(1, 1, 1).expect("0001-01-01 is a date")
}

/// Days from 1900-01-01 (the epoch of `datetime` and `smalldatetime`).
fn epoch_1900() -> NaiveDate {
    NaiveDate::from_ymd_opt(1900, 1, 1).expect("1900-01-01 is a date")
}

fn date_from_days(days: i64, epoch: NaiveDate) -> Result<NaiveDate> {
    epoch
        .checked_add_signed(ChronoDuration::days(days))
        .ok_or_else(|| Error::decode(format!("day number {days} is out of the date range")))
}

/// `time(n)`: `increments` of 10^-scale seconds since midnight.
fn time_from_increments(time: Time) -> Result<NaiveTime> {
    let scale = u32::from(time.scale());
    if scale > 7 {
        return Err(Error::decode(format!("time scale {scale} is above 7")));
    }
    let nanos = u128::from(time.increments()) * 10u128.pow(9 - scale);
    let seconds = u32::try_from(nanos / 1_000_000_000)
        .map_err(|_| Error::decode("time of day out of range"))?;
    NaiveTime::from_num_seconds_from_midnight_opt(seconds, (nanos % 1_000_000_000) as u32)
        .ok_or_else(|| Error::decode(format!("{seconds} s is not a time of day")))
}

fn datetime2(value: DateTime2) -> Result<NaiveDateTime> {
    Ok(
        date_from_days(i64::from(value.date().days()), epoch_0001())?
            .and_time(time_from_increments(value.time())?),
    )
}

/// `datetime`: days since 1900 and 1/300 s ticks. Rounded to the millisecond, as SQL
/// Server itself shows them (`.000`, `.003`, `.007`).
fn datetime(value: tiberius::time::DateTime) -> Result<NaiveDateTime> {
    let date = date_from_days(i64::from(value.days()), epoch_1900())?;
    let millis = (u64::from(value.seconds_fragments()) * 10 + 1) / 3;
    let seconds = u32::try_from(millis / 1000).map_err(|_| Error::decode("datetime ticks"))?;
    let time =
        NaiveTime::from_num_seconds_from_midnight_opt(seconds, (millis % 1000) as u32 * 1_000_000)
            .ok_or_else(|| {
                Error::decode(format!(
                    "{} ticks is not a time of day",
                    value.seconds_fragments()
                ))
            })?;
    Ok(date.and_time(time))
}

/// `smalldatetime`: days since 1900 and minutes since midnight.
fn smalldatetime(value: tiberius::time::SmallDateTime) -> Result<NaiveDateTime> {
    let date = date_from_days(i64::from(value.days()), epoch_1900())?;
    let minutes = u32::from(value.seconds_fragments());
    let time = NaiveTime::from_num_seconds_from_midnight_opt(minutes * 60, 0)
        .ok_or_else(|| Error::decode(format!("{minutes} min is not a time of day")))?;
    Ok(date.and_time(time))
}

/// `datetimeoffset`: the date and time are UTC (MS-TDS 2.2.5.5.1.8), the offset in
/// minutes says the zone the value was written in.
fn datetimeoffset(value: DateTimeOffset) -> Result<DateTime<FixedOffset>> {
    let utc = datetime2(value.datetime2())?;
    let minutes = i32::from(value.offset());
    let offset = FixedOffset::east_opt(minutes * 60)
        .ok_or_else(|| Error::decode(format!("offset {minutes} min is out of range")))?;
    Ok(DateTime::from_naive_utc_and_offset(utc, offset))
}

/// Reads one cell of a column of `column_type`.
pub(crate) fn decode(column_type: ColumnType, data: ColumnData<'static>) -> Result<Value> {
    Ok(match data {
        ColumnData::Bit(v) => v.map_or(Value::Null, Value::Bool),
        ColumnData::U8(v) => v.map_or(Value::Null, Value::U8),
        ColumnData::I16(v) => v.map_or(Value::Null, Value::I16),
        ColumnData::I32(v) => v.map_or(Value::Null, Value::I32),
        ColumnData::I64(v) => v.map_or(Value::Null, Value::I64),
        ColumnData::F32(v) => v.map_or(Value::Null, Value::F32),
        ColumnData::F64(None) => Value::Null,
        // tiberius hands money over as f64 (scaled integer / 10^4): back to the
        // 4-decimal fixed point. Exact while |value| < 2^50 / 10^4 (≈ 112 billion);
        // beyond that the driver's f64 has already lost the last digit.
        ColumnData::F64(Some(v))
            if matches!(column_type, ColumnType::Money | ColumnType::Money4) =>
        {
            let scaled = (v * 10_000.0).round();
            if !scaled.is_finite() || scaled.abs() > 1e19 {
                return Err(Error::decode(format!("money value {v} is out of range")));
            }
            Value::Decimal(Decimal::from_mantissa(scaled as i128, 4))
        }
        ColumnData::F64(Some(v)) => Value::F64(v),
        ColumnData::Numeric(v) => v.map_or(Value::Null, |n| {
            Value::Decimal(Decimal::from_mantissa(n.value(), u32::from(n.scale())))
        }),
        ColumnData::String(v) => v.map_or(Value::Null, |s| Value::Text(s.into_owned())),
        ColumnData::Guid(v) => v.map_or(Value::Null, Value::Uuid),
        ColumnData::Binary(v) => v.map_or(Value::Null, |b| Value::Bytes(b.into_owned())),
        ColumnData::Xml(v) => v.map_or(Value::Null, |x| Value::Text(x.into_owned().into_string())),
        ColumnData::DateTime(v) => match v {
            None => Value::Null,
            Some(v) => Value::Timestamp(datetime(v)?),
        },
        ColumnData::SmallDateTime(v) => match v {
            None => Value::Null,
            Some(v) => Value::Timestamp(smalldatetime(v)?),
        },
        ColumnData::Time(v) => match v {
            None => Value::Null,
            Some(v) => Value::Time(time_from_increments(v)?),
        },
        ColumnData::Date(v) => match v {
            None => Value::Null,
            Some(v) => Value::Date(date_from_days(i64::from(v.days()), epoch_0001())?),
        },
        ColumnData::DateTime2(v) => match v {
            None => Value::Null,
            Some(v) => Value::Timestamp(datetime2(v)?),
        },
        ColumnData::DateTimeOffset(v) => match v {
            None => Value::Null,
            Some(v) => Value::TimestampTz(datetimeoffset(v)?),
        },
    })
}

/// The last valid day of `date`/`datetime2` (9999-12-31) as days since 0001-01-01.
const MAX_DATE_DAYS: i64 = 3_652_058;

fn date_value(date: NaiveDate) -> Result<Date> {
    let days = date.signed_duration_since(epoch_0001()).num_days();
    if !(0..=MAX_DATE_DAYS).contains(&days) {
        return Err(Error::parameter(format!(
            "date {date} is outside SQL Server's range 0001-01-01 to 9999-12-31"
        )));
    }
    Ok(Date::new(days as u32))
}

/// `time(7)`: 100 ns increments (finer digits are cut, as the server would round them
/// away anyway).
fn time_value(time: NaiveTime) -> Time {
    use chrono::Timelike;
    // A leap second (nanosecond ≥ 1e9) is kept in the last increment of its second.
    let nanos = u64::from(time.num_seconds_from_midnight()) * 1_000_000_000
        + u64::from(time.nanosecond().min(999_999_999));
    Time::new(nanos / 100, 7)
}

fn datetime2_value(value: NaiveDateTime) -> Result<DateTime2> {
    Ok(DateTime2::new(
        date_value(value.date())?,
        time_value(value.time()),
    ))
}

/// A decimal as `numeric(p,s)`: at most 38 digits and scale 38.
fn numeric_value(decimal: &Decimal) -> Result<Numeric> {
    let (digits, scale) = decimal.mantissa_digits().ok_or_else(|| {
        Error::parameter(format!(
            "{decimal} cannot be bound: SQL Server decimals have no NaN or infinity"
        ))
    })?;
    let significant = digits.trim_start_matches('0');
    if significant.len() > 38 || scale > 38 {
        return Err(Error::parameter(format!(
            "{decimal} has more than 38 digits or a scale above 38 (SQL Server decimal(38,s))"
        )));
    }
    let magnitude: i128 = if significant.is_empty() {
        0
    } else {
        significant
            .parse()
            .map_err(|_| Error::parameter(format!("{decimal} is not a decimal number")))?
    };
    let value = if decimal.is_negative() {
        -magnitude
    } else {
        magnitude
    };
    let numeric = Numeric::new_with_scale(value, scale as u8);
    if numeric.precision() > 38 {
        return Err(Error::parameter(format!(
            "{decimal} needs a precision above 38 (SQL Server decimal(38,s)); round it to fewer decimals"
        )));
    }
    Ok(numeric)
}

fn integer_as_numeric(value: i128) -> Result<ColumnData<'static>> {
    match i64::try_from(value) {
        Ok(v) => Ok(ColumnData::I64(Some(v))),
        Err(_) => Ok(ColumnData::Numeric(Some(numeric_value(
            &Decimal::from_mantissa(value, 0),
        )?))),
    }
}

/// A non-NULL value as the parameter it is sent as (NULL is written into the SQL as
/// `NULL`, see [`render`]).
pub(crate) fn bind(value: &Value) -> Result<ColumnData<'static>> {
    Ok(match value {
        Value::Null => ColumnData::String(None),
        Value::Bool(v) => ColumnData::Bit(Some(*v)),
        // tinyint is unsigned: a signed byte goes as smallint.
        Value::I8(v) => ColumnData::I16(Some(i16::from(*v))),
        Value::I16(v) => ColumnData::I16(Some(*v)),
        Value::I32(v) => ColumnData::I32(Some(*v)),
        Value::I64(v) => ColumnData::I64(Some(*v)),
        Value::I128(v) => integer_as_numeric(*v)?,
        Value::U8(v) => ColumnData::U8(Some(*v)),
        Value::U16(v) => ColumnData::I32(Some(i32::from(*v))),
        Value::U32(v) => ColumnData::I64(Some(i64::from(*v))),
        Value::U64(v) => integer_as_numeric(i128::from(*v))?,
        Value::U128(v) => match i128::try_from(*v) {
            Ok(v) => integer_as_numeric(v)?,
            Err(_) => {
                return Err(Error::parameter(format!(
                    "{v} has more than 38 digits (SQL Server decimal(38,0))"
                )));
            }
        },
        Value::F32(v) => ColumnData::F32(Some(*v)),
        Value::F64(v) => ColumnData::F64(Some(*v)),
        Value::Decimal(d) => ColumnData::Numeric(Some(numeric_value(d)?)),
        Value::Text(s) => ColumnData::String(Some(s.clone().into())),
        Value::Bytes(b) => ColumnData::Binary(Some(b.clone().into())),
        Value::Date(d) => ColumnData::Date(Some(date_value(*d)?)),
        Value::Time(t) => ColumnData::Time(Some(time_value(*t))),
        Value::Timestamp(ts) => ColumnData::DateTime2(Some(datetime2_value(*ts)?)),
        Value::TimestampTz(ts) => {
            let seconds = ts.offset().local_minus_utc();
            if seconds % 60 != 0 {
                return Err(Error::parameter(format!(
                    "{ts}: SQL Server offsets are whole minutes"
                )));
            }
            ColumnData::DateTimeOffset(Some(DateTimeOffset::new(
                datetime2_value(ts.naive_utc())?,
                (seconds / 60) as i16,
            )))
        }
        Value::Uuid(u) => ColumnData::Guid(Some(*u)),
        Value::Json(j) => ColumnData::String(Some(j.to_string().into())),
        Value::Ip(ip) => ColumnData::String(Some(ip.to_string().into())),
        Value::IpNetwork(ip, prefix) => ColumnData::String(Some(format!("{ip}/{prefix}").into())),
        Value::TimeTz(..) => {
            return Err(Error::parameter(
                "a time with zone cannot be bound: SQL Server has no such type (bind a TimestampTz as datetimeoffset)",
            ));
        }
        Value::Interval(_) => {
            return Err(Error::parameter(
                "an interval cannot be bound: SQL Server has no interval type",
            ));
        }
        Value::Array(_) | Value::Tuple(_) | Value::Map(_) => {
            return Err(Error::parameter(format!(
                "a {} cannot be bound: SQL Server parameters are scalars",
                value.kind()
            )));
        }
        other => {
            return Err(Error::parameter(format!(
                "a {} value cannot be bound",
                other.kind()
            )));
        }
    })
}

/// The declared type of a bound parameter, as `sp_describe_first_result_set` needs it
/// (matching what tiberius sends).
pub(crate) fn declared_type(data: &ColumnData<'_>) -> String {
    match data {
        ColumnData::U8(_) => "tinyint".into(),
        ColumnData::I16(_) => "smallint".into(),
        ColumnData::I32(_) => "int".into(),
        ColumnData::I64(_) => "bigint".into(),
        ColumnData::F32(_) => "real".into(),
        ColumnData::F64(_) => "float".into(),
        ColumnData::Bit(_) => "bit".into(),
        ColumnData::String(Some(s)) if s.len() > 4000 => "nvarchar(max)".into(),
        ColumnData::String(_) => "nvarchar(4000)".into(),
        ColumnData::Guid(_) => "uniqueidentifier".into(),
        ColumnData::Binary(Some(b)) if b.len() > 8000 => "varbinary(max)".into(),
        ColumnData::Binary(_) => "varbinary(8000)".into(),
        ColumnData::Numeric(Some(n)) => format!("numeric({},{})", n.precision(), n.scale()),
        ColumnData::Numeric(None) => "numeric(38,0)".into(),
        ColumnData::Xml(_) => "xml".into(),
        ColumnData::DateTime(_) => "datetime".into(),
        ColumnData::SmallDateTime(_) => "smalldatetime".into(),
        ColumnData::Time(_) => "time(7)".into(),
        ColumnData::Date(_) => "date".into(),
        ColumnData::DateTime2(_) => "datetime2(7)".into(),
        ColumnData::DateTimeOffset(_) => "datetimeoffset(7)".into(),
    }
}

/// Renders a statement for SQL Server: `@P1…` placeholders and their values in order.
///
/// A NULL value is written into the SQL as `NULL` instead of being bound: a typed NULL
/// parameter (tiberius has no untyped one) could not be stored in every column type
/// (`nvarchar` does not convert to `varbinary`, `int` not to `date`), an untyped NULL
/// literal can. A name used twice is bound twice.
pub(crate) fn render(statement: &Statement) -> Result<(String, Vec<ColumnData<'static>>)> {
    let mut params = Vec::new();
    let sql = statement.render_inline(Dialect::MsSql, |value| {
        if value.is_null() {
            return Ok("NULL".to_owned());
        }
        params.push(bind(value)?);
        Ok(format!("@P{}", params.len()))
    })?;
    Ok((sql, params))
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use tiberius::xml::XmlData;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn dec(text: &str) -> Value {
        Value::Decimal(text.parse().unwrap())
    }

    fn days_0001(d: NaiveDate) -> u32 {
        d.signed_duration_since(epoch_0001()).num_days() as u32
    }

    /// Every type of the table, as tiberius hands it over, and the value it becomes.
    #[test]
    fn every_server_type_decodes_to_its_value() {
        let uuid: uuid::Uuid = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".parse().unwrap();
        let leap = date(2024, 2, 29);
        let cases: Vec<(&str, ColumnType, ColumnData<'static>, Value)> = vec![
            (
                "bit",
                ColumnType::Bitn,
                ColumnData::Bit(Some(true)),
                Value::Bool(true),
            ),
            (
                "tinyint",
                ColumnType::Int1,
                ColumnData::U8(Some(255)),
                Value::U8(255),
            ),
            (
                "smallint",
                ColumnType::Int2,
                ColumnData::I16(Some(i16::MIN)),
                Value::I16(i16::MIN),
            ),
            (
                "int",
                ColumnType::Int4,
                ColumnData::I32(Some(i32::MAX)),
                Value::I32(i32::MAX),
            ),
            (
                "bigint",
                ColumnType::Int8,
                ColumnData::I64(Some(i64::MIN)),
                Value::I64(i64::MIN),
            ),
            (
                "decimal(38,0) max",
                ColumnType::Decimaln,
                ColumnData::Numeric(Some(Numeric::new_with_scale(
                    99_999_999_999_999_999_999_999_999_999_999_999_999,
                    0,
                ))),
                dec("99999999999999999999999999999999999999"),
            ),
            (
                "decimal(38,38)",
                ColumnType::Decimaln,
                ColumnData::Numeric(Some(Numeric::new_with_scale(
                    -12_345_678_901_234_567_890_123_456_789_012_345_678,
                    38,
                ))),
                dec("-0.12345678901234567890123456789012345678"),
            ),
            (
                "numeric(10,4) keeps trailing zeros",
                ColumnType::Numericn,
                ColumnData::Numeric(Some(Numeric::new_with_scale(15_000, 4))),
                dec("1.5000"),
            ),
            (
                "money",
                ColumnType::Money,
                ColumnData::F64(Some(922_337_203.580_7)),
                dec("922337203.5807"),
            ),
            (
                "money negative",
                ColumnType::Money,
                ColumnData::F64(Some(-0.0001)),
                dec("-0.0001"),
            ),
            (
                "smallmoney",
                ColumnType::Money4,
                ColumnData::F64(Some(214_748.364_7)),
                dec("214748.3647"),
            ),
            (
                "real",
                ColumnType::Float4,
                ColumnData::F32(Some(1.5)),
                Value::F32(1.5),
            ),
            (
                "float",
                ColumnType::Float8,
                ColumnData::F64(Some(f64::MAX)),
                Value::F64(f64::MAX),
            ),
            (
                "char",
                ColumnType::BigChar,
                ColumnData::String(Some("ab   ".into())),
                Value::Text("ab   ".into()),
            ),
            (
                "varchar",
                ColumnType::BigVarChar,
                ColumnData::String(Some("x".into())),
                Value::Text("x".into()),
            ),
            (
                "nchar",
                ColumnType::NChar,
                ColumnData::String(Some("é ".into())),
                Value::Text("é ".into()),
            ),
            (
                "nvarchar",
                ColumnType::NVarchar,
                ColumnData::String(Some("✓ 😀".into())),
                Value::Text("✓ 😀".into()),
            ),
            (
                "text",
                ColumnType::Text,
                ColumnData::String(Some("long".into())),
                Value::Text("long".into()),
            ),
            (
                "ntext",
                ColumnType::NText,
                ColumnData::String(Some("ü".into())),
                Value::Text("ü".into()),
            ),
            (
                "binary",
                ColumnType::BigBinary,
                ColumnData::Binary(Some(vec![0, 255].into())),
                Value::Bytes(vec![0, 255]),
            ),
            (
                "varbinary",
                ColumnType::BigVarBin,
                ColumnData::Binary(Some(Cow::Owned(vec![]))),
                Value::Bytes(vec![]),
            ),
            (
                "image",
                ColumnType::Image,
                ColumnData::Binary(Some(vec![7].into())),
                Value::Bytes(vec![7]),
            ),
            (
                "date",
                ColumnType::Daten,
                ColumnData::Date(Some(Date::new(days_0001(leap)))),
                Value::Date(leap),
            ),
            (
                "date min",
                ColumnType::Daten,
                ColumnData::Date(Some(Date::new(0))),
                Value::Date(date(1, 1, 1)),
            ),
            (
                "date max",
                ColumnType::Daten,
                ColumnData::Date(Some(Date::new(3_652_058))),
                Value::Date(date(9999, 12, 31)),
            ),
            (
                "time(7)",
                ColumnType::Timen,
                ColumnData::Time(Some(Time::new(481_551_234_567, 7))),
                Value::Time(NaiveTime::from_hms_nano_opt(13, 22, 35, 123_456_700).unwrap()),
            ),
            (
                "time(0)",
                ColumnType::Timen,
                ColumnData::Time(Some(Time::new(86_399, 0))),
                Value::Time(NaiveTime::from_hms_opt(23, 59, 59).unwrap()),
            ),
            (
                "datetime .003",
                ColumnType::Datetimen,
                // 1900-01-02 00:00:00 + 1 tick (1/300 s)
                ColumnData::DateTime(Some(tiberius::time::DateTime::new(1, 1))),
                Value::Timestamp(date(1900, 1, 2).and_hms_milli_opt(0, 0, 0, 3).unwrap()),
            ),
            (
                "datetime .007 before 1900",
                ColumnType::Datetime,
                ColumnData::DateTime(Some(tiberius::time::DateTime::new(-1, 300 * 3600 + 2))),
                Value::Timestamp(date(1899, 12, 31).and_hms_milli_opt(1, 0, 0, 7).unwrap()),
            ),
            (
                "datetime last tick",
                ColumnType::Datetime,
                ColumnData::DateTime(Some(tiberius::time::DateTime::new(0, 300 * 86_400 - 1))),
                Value::Timestamp(date(1900, 1, 1).and_hms_milli_opt(23, 59, 59, 997).unwrap()),
            ),
            (
                "smalldatetime",
                ColumnType::Datetime4,
                ColumnData::SmallDateTime(Some(tiberius::time::SmallDateTime::new(
                    45_350,
                    13 * 60 + 14,
                ))),
                Value::Timestamp(date(2024, 3, 1).and_hms_opt(13, 14, 0).unwrap()),
            ),
            (
                "datetime2(7)",
                ColumnType::Datetime2,
                ColumnData::DateTime2(Some(DateTime2::new(
                    Date::new(days_0001(leap)),
                    Time::new(863_999_999_999, 7),
                ))),
                Value::Timestamp(leap.and_hms_nano_opt(23, 59, 59, 999_999_900).unwrap()),
            ),
            (
                "datetimeoffset (UTC on the wire)",
                ColumnType::DatetimeOffsetn,
                ColumnData::DateTimeOffset(Some(DateTimeOffset::new(
                    DateTime2::new(
                        Date::new(days_0001(date(2024, 3, 1))),
                        Time::new(7 * 36_000_000_000, 7),
                    ),
                    -8 * 60,
                ))),
                Value::TimestampTz(
                    DateTime::parse_from_rfc3339("2024-02-29T23:00:00-08:00").unwrap(),
                ),
            ),
            (
                "uniqueidentifier",
                ColumnType::Guid,
                ColumnData::Guid(Some(uuid)),
                Value::Uuid(uuid),
            ),
            (
                "xml",
                ColumnType::Xml,
                ColumnData::Xml(Some(Cow::Owned(XmlData::new("<a b=\"1\"/>")))),
                Value::Text("<a b=\"1\"/>".into()),
            ),
        ];
        for (name, column_type, data, expected) in cases {
            let kind = column_kind(column_type);
            let value = decode(column_type, data).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(value, expected, "{name}");
            assert_eq!(value.kind(), kind, "{name}: the column announces {kind}");
        }
    }

    #[test]
    fn null_of_every_type_is_null() {
        let nulls: Vec<(ColumnType, ColumnData<'static>)> = vec![
            (ColumnType::Bitn, ColumnData::Bit(None)),
            (ColumnType::Int1, ColumnData::U8(None)),
            (ColumnType::Int2, ColumnData::I16(None)),
            (ColumnType::Int4, ColumnData::I32(None)),
            (ColumnType::Int8, ColumnData::I64(None)),
            (ColumnType::Float4, ColumnData::F32(None)),
            (ColumnType::Money, ColumnData::F64(None)),
            (ColumnType::Numericn, ColumnData::Numeric(None)),
            (ColumnType::NVarchar, ColumnData::String(None)),
            (ColumnType::Guid, ColumnData::Guid(None)),
            (ColumnType::BigVarBin, ColumnData::Binary(None)),
            (ColumnType::Xml, ColumnData::Xml(None)),
            (ColumnType::Datetimen, ColumnData::DateTime(None)),
            (ColumnType::Datetime4, ColumnData::SmallDateTime(None)),
            (ColumnType::Timen, ColumnData::Time(None)),
            (ColumnType::Daten, ColumnData::Date(None)),
            (ColumnType::Datetime2, ColumnData::DateTime2(None)),
            (
                ColumnType::DatetimeOffsetn,
                ColumnData::DateTimeOffset(None),
            ),
        ];
        for (column_type, data) in nulls {
            assert_eq!(
                decode(column_type, data).unwrap(),
                Value::Null,
                "{column_type:?}"
            );
        }
    }

    #[test]
    fn malformed_wire_values_are_decode_errors_not_panics() {
        let bad = [
            (
                ColumnType::Timen,
                ColumnData::Time(Some(Time::new(u64::MAX, 7))),
            ),
            (ColumnType::Timen, ColumnData::Time(Some(Time::new(1, 9)))),
            (
                ColumnType::Datetime,
                ColumnData::DateTime(Some(tiberius::time::DateTime::new(0, u32::MAX))),
            ),
            (
                ColumnType::Datetime4,
                ColumnData::SmallDateTime(Some(tiberius::time::SmallDateTime::new(0, u16::MAX))),
            ),
            (
                ColumnType::DatetimeOffsetn,
                ColumnData::DateTimeOffset(Some(DateTimeOffset::new(
                    DateTime2::new(Date::new(0), Time::new(0, 7)),
                    i16::MAX,
                ))),
            ),
            (ColumnType::Money, ColumnData::F64(Some(f64::INFINITY))),
        ];
        for (column_type, data) in bad {
            let err = decode(column_type, data).unwrap_err();
            assert_eq!(err.kind(), extdata_core::ErrorKind::Decode);
        }
    }

    /// Every `Value` variant: bound as what, and back through the decoder where the
    /// server would return the same type.
    #[test]
    fn every_value_binds() {
        let ts = date(2024, 2, 29)
            .and_hms_nano_opt(13, 14, 15, 123_456_700)
            .unwrap();
        let tz = DateTime::parse_from_rfc3339("2024-02-29T23:59:59.9999999+05:30").unwrap();
        let uuid = uuid::Uuid::nil();
        let round_trips: Vec<(Value, &str, Value)> = vec![
            (Value::Bool(true), "bit", Value::Bool(true)),
            (Value::I8(-5), "smallint", Value::I16(-5)),
            (Value::I16(7), "smallint", Value::I16(7)),
            (Value::I32(-7), "int", Value::I32(-7)),
            (Value::I64(i64::MAX), "bigint", Value::I64(i64::MAX)),
            (Value::I128(-3), "bigint", Value::I64(-3)),
            (
                Value::I128(i128::from(i64::MAX) + 1),
                "numeric(19,0)",
                dec("9223372036854775808"),
            ),
            (Value::U8(200), "tinyint", Value::U8(200)),
            (Value::U16(65_535), "int", Value::I32(65_535)),
            (
                Value::U32(u32::MAX),
                "bigint",
                Value::I64(i64::from(u32::MAX)),
            ),
            (
                Value::U64(u64::MAX),
                "numeric(20,0)",
                dec("18446744073709551615"),
            ),
            (Value::U128(12), "bigint", Value::I64(12)),
            (Value::F32(-1.5), "real", Value::F32(-1.5)),
            (Value::F64(0.1), "float", Value::F64(0.1)),
            (
                dec("-12345678901234567890.123456789012345678"),
                "numeric(38,18)",
                dec("-12345678901234567890.123456789012345678"),
            ),
            (dec("0.005"), "numeric(4,3)", dec("0.005")),
            (dec("100"), "numeric(3,0)", dec("100")),
            (
                Value::Text("it's".into()),
                "nvarchar(4000)",
                Value::Text("it's".into()),
            ),
            (
                Value::Bytes(vec![1, 2]),
                "varbinary(8000)",
                Value::Bytes(vec![1, 2]),
            ),
            (
                Value::Date(date(9999, 12, 31)),
                "date",
                Value::Date(date(9999, 12, 31)),
            ),
            (Value::Time(ts.time()), "time(7)", Value::Time(ts.time())),
            (Value::Timestamp(ts), "datetime2(7)", Value::Timestamp(ts)),
            (
                Value::TimestampTz(tz),
                "datetimeoffset(7)",
                Value::TimestampTz(tz),
            ),
            (Value::Uuid(uuid), "uniqueidentifier", Value::Uuid(uuid)),
        ];
        for (value, declared, back) in round_trips {
            let data = bind(&value).unwrap_or_else(|e| panic!("{value:?}: {e}"));
            assert_eq!(declared_type(&data), declared, "{value:?}");
            let column_type = match &data {
                ColumnData::Numeric(_) => ColumnType::Numericn,
                _ => ColumnType::Null,
            };
            assert_eq!(decode(column_type, data).unwrap(), back, "{value:?}");
        }
        let texts = [
            (Value::Json(serde_json::json!({"a": [1]})), r#"{"a":[1]}"#),
            (Value::Ip("2001:db8::1".parse().unwrap()), "2001:db8::1"),
            (
                Value::IpNetwork("10.0.0.0".parse().unwrap(), 8),
                "10.0.0.0/8",
            ),
        ];
        for (value, text) in texts {
            match bind(&value).unwrap() {
                ColumnData::String(Some(s)) => assert_eq!(s, text),
                other => panic!("{value:?} bound as {other:?}"),
            }
        }
        let long = "x".repeat(5000);
        assert_eq!(
            declared_type(&bind(&Value::Text(long)).unwrap()),
            "nvarchar(max)"
        );
        assert_eq!(
            declared_type(&bind(&Value::Bytes(vec![0; 9000])).unwrap()),
            "varbinary(max)"
        );
    }

    #[test]
    fn values_sql_server_cannot_hold_are_parameter_errors() {
        let refused = [
            dec("NaN"),
            dec("Infinity"),
            dec("123456789012345678901234567890123456789"), // 39 digits
            dec("0.123456789012345678901234567890123456789"), // scale 39
            Value::U128(u128::MAX),
            Value::I128(i128::MIN),
            Value::Date(date(-5, 1, 1)),
            Value::Timestamp(date(-5, 1, 1).and_hms_opt(0, 0, 0).unwrap()),
            Value::TimestampTz(
                DateTime::parse_from_rfc3339("2024-01-01T00:00:00+00:00")
                    .unwrap()
                    .with_timezone(&FixedOffset::east_opt(30).unwrap()),
            ),
            Value::TimeTz(NaiveTime::MIN, FixedOffset::east_opt(0).unwrap()),
            Value::Interval(extdata_core::Interval::default()),
            Value::Array(vec![Value::I32(1)]),
            Value::Tuple(vec![]),
            Value::Map(vec![]),
        ];
        for value in refused {
            let err = bind(&value).unwrap_err();
            assert_eq!(err.kind(), extdata_core::ErrorKind::Parameter, "{value:?}");
        }
    }

    #[test]
    fn placeholders_are_numbered_and_null_is_inlined() {
        let statement =
            Statement::new("SELECT :a, ':a', [:b], :b /* :c */, :n FROM t WHERE x = :a -- :zz")
                .bind("a", 1_i32)
                .bind("b", "two")
                .bind("n", Value::Null);
        let (sql, params) = render(&statement).unwrap();
        assert_eq!(
            sql,
            "SELECT @P1, ':a', [:b], @P2 /* :c */, NULL FROM t WHERE x = @P3 -- :zz"
        );
        assert_eq!(params.len(), 3);
        assert!(matches!(params[0], ColumnData::I32(Some(1))));
        assert!(matches!(params[2], ColumnData::I32(Some(1))));
        let missing = render(&Statement::new("SELECT :x")).unwrap_err();
        assert_eq!(missing.kind(), extdata_core::ErrorKind::Parameter);
        let unused = render(&Statement::new("SELECT 1").bind("x", 1)).unwrap_err();
        assert_eq!(unused.kind(), extdata_core::ErrorKind::Parameter);
    }

    #[test]
    fn type_names_map_like_column_types() {
        let cases = [
            ("bit", ValueKind::Bool),
            ("tinyint", ValueKind::U8),
            ("smallint", ValueKind::I16),
            ("int", ValueKind::I32),
            ("bigint", ValueKind::I64),
            ("decimal(38,10)", ValueKind::Decimal),
            ("numeric(5,0)", ValueKind::Decimal),
            ("money", ValueKind::Decimal),
            ("smallmoney", ValueKind::Decimal),
            ("real", ValueKind::F32),
            ("float", ValueKind::F64),
            ("char(5)", ValueKind::Text),
            ("varchar(max)", ValueKind::Text),
            ("nchar(2)", ValueKind::Text),
            ("NVARCHAR(4000)", ValueKind::Text),
            ("text", ValueKind::Text),
            ("ntext", ValueKind::Text),
            ("xml", ValueKind::Text),
            ("binary(16)", ValueKind::Bytes),
            ("varbinary(max)", ValueKind::Bytes),
            ("image", ValueKind::Bytes),
            ("date", ValueKind::Date),
            ("time(7)", ValueKind::Time),
            ("datetime", ValueKind::Timestamp),
            ("datetime2(3)", ValueKind::Timestamp),
            ("smalldatetime", ValueKind::Timestamp),
            ("datetimeoffset(7)", ValueKind::TimestampTz),
            ("uniqueidentifier", ValueKind::Uuid),
        ];
        for (name, kind) in cases {
            assert_eq!(kind_of_type_name(name), kind, "{name}");
        }
    }
}
