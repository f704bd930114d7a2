//! The Oracle type → [`Value`] table, and [`Value`] → bind parameter.
//!
//! NUMBER is read as the text ODPI-C makes of the server's decimal digits and never
//! goes through `f64`; DATE has a time part and is a `Timestamp`; the session runs
//! at UTC so that TIMESTAMP WITH LOCAL TIME ZONE values are exact instants.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Timelike};
use extdata_core::{Column, Decimal, Error, Interval, Value, ValueKind};
use oracle::sql_type::{IntervalDS, IntervalYM, OracleType, Timestamp, ToSql};
use oracle::{Connection, SqlValue};

/// Largest string or byte string bound as VARCHAR2 / RAW; longer ones go as a LOB.
const MAX_INLINE_BIND: usize = 32_767;

/// The [`Value`] variant of an Oracle column type, top to bottom.
pub(crate) fn value_kind(oracle_type: &OracleType) -> ValueKind {
    match oracle_type {
        OracleType::Varchar2(_)
        | OracleType::NVarchar2(_)
        | OracleType::Char(_)
        | OracleType::NChar(_)
        | OracleType::Long
        | OracleType::CLOB
        | OracleType::NCLOB
        | OracleType::Rowid
        | OracleType::Xml
        | OracleType::Object(_) => ValueKind::Text,
        OracleType::Raw(_) | OracleType::LongRaw | OracleType::BLOB | OracleType::BFILE => {
            ValueKind::Bytes
        }
        OracleType::BinaryFloat => ValueKind::F32,
        OracleType::BinaryDouble => ValueKind::F64,
        // NUMBER(p) with up to 18 digits always fits i64; NUMBER(p, 0) with more
        // digits, INTEGER (NUMBER(*, 0)) included, fits i128 (at most 38 digits).
        OracleType::Number(precision, 0) if (1..=18).contains(precision) => ValueKind::I64,
        OracleType::Number(_, 0) => ValueKind::I128,
        // Plain NUMBER (scale -127), NUMBER(p, s) and FLOAT(b): exact decimals.
        OracleType::Number(_, _) | OracleType::Float(_) => ValueKind::Decimal,
        OracleType::Date | OracleType::Timestamp(_) => ValueKind::Timestamp,
        OracleType::TimestampTZ(_) | OracleType::TimestampLTZ(_) => ValueKind::TimestampTz,
        OracleType::IntervalDS(_, _) | OracleType::IntervalYM(_) => ValueKind::Interval,
        OracleType::Boolean => ValueKind::Bool,
        OracleType::Json => ValueKind::Json,
        OracleType::Int64 => ValueKind::I64,
        OracleType::UInt64 => ValueKind::U64,
        OracleType::RefCursor => ValueKind::Null,
    }
}

/// A result column.
pub(crate) fn column(info: &oracle::ColumnInfo) -> Column {
    Column::new(
        info.name(),
        info.oracle_type().to_string(),
        value_kind(info.oracle_type()),
    )
    .with_nullable(Some(info.nullable()))
}

fn decode_error(oracle_type: &OracleType, what: impl std::fmt::Display) -> Error {
    Error::decode(format!("cannot read a {oracle_type} value: {what}"))
}

/// Reads one value of a column of `oracle_type`.
pub(crate) fn decode(value: &SqlValue, oracle_type: &OracleType) -> Result<Value, Error> {
    let err = |e: oracle::Error| decode_error(oracle_type, e);
    if value.is_null().map_err(err)? {
        return Ok(Value::Null);
    }
    Ok(match value_kind(oracle_type) {
        ValueKind::Text => Value::Text(value.get::<String>().map_err(err)?),
        ValueKind::Bytes => Value::Bytes(value.get::<Vec<u8>>().map_err(err)?),
        ValueKind::F32 => Value::F32(value.get::<f32>().map_err(err)?),
        ValueKind::F64 => Value::F64(value.get::<f64>().map_err(err)?),
        ValueKind::I64 | ValueKind::I128 | ValueKind::Decimal if is_number(oracle_type) => {
            number_value(&value.get::<String>().map_err(err)?, oracle_type)?
        }
        ValueKind::I64 => Value::I64(value.get::<i64>().map_err(err)?),
        ValueKind::U64 => Value::U64(value.get::<u64>().map_err(err)?),
        ValueKind::Timestamp => {
            Value::Timestamp(naive_timestamp(&value.get::<Timestamp>().map_err(err)?)?)
        }
        ValueKind::TimestampTz => Value::TimestampTz(timestamp_with_offset(
            &value.get::<Timestamp>().map_err(err)?,
        )?),
        ValueKind::Interval => match oracle_type {
            OracleType::IntervalYM(_) => {
                Value::Interval(interval_from_ym(&value.get::<IntervalYM>().map_err(err)?))
            }
            _ => Value::Interval(interval_from_ds(&value.get::<IntervalDS>().map_err(err)?)?),
        },
        ValueKind::Bool => Value::Bool(value.get::<bool>().map_err(err)?),
        ValueKind::Json => {
            let text = value.get::<String>().map_err(|e| {
                decode_error(
                    oracle_type,
                    format!("{e}; select JSON_SERIALIZE(column) to read it as text"),
                )
            })?;
            Value::Json(serde_json::from_str(&text).map_err(|e| decode_error(oracle_type, e))?)
        }
        _ => {
            return Err(decode_error(
                oracle_type,
                "this type has no Value (REF CURSOR); select its columns instead",
            ));
        }
    })
}

fn is_number(oracle_type: &OracleType) -> bool {
    matches!(oracle_type, OracleType::Number(_, _) | OracleType::Float(_))
}

/// A NUMBER / FLOAT from its text, exact: `I64`, `I128` or `Decimal` as
/// [`value_kind`] says; a `Decimal` of a NUMBER(p, s) column keeps `s` digits after
/// the point (Oracle does not store trailing zeros; the column's scale says them).
pub(crate) fn number_value(text: &str, oracle_type: &OracleType) -> Result<Value, Error> {
    let decimal: Decimal = text
        .trim()
        .parse()
        .map_err(|_| decode_error(oracle_type, format!("`{text}` is not a number")))?;
    let integer = || {
        let canonical = decimal.as_str();
        if decimal.scale() > 0 || decimal.is_special() {
            return Err(decode_error(oracle_type, format!("`{text}` is not whole")));
        }
        canonical
            .parse::<i128>()
            .map_err(|_| decode_error(oracle_type, format!("`{text}` does not fit 128 bits")))
    };
    match value_kind(oracle_type) {
        ValueKind::I64 => i64::try_from(integer()?)
            .map(Value::I64)
            .map_err(|_| decode_error(oracle_type, format!("`{text}` does not fit 64 bits"))),
        ValueKind::I128 => integer().map(Value::I128),
        _ => Ok(Value::Decimal(match oracle_type {
            OracleType::Number(_, scale) if *scale > 0 => with_scale(decimal, *scale as u32),
            _ => decimal,
        })),
    }
}

/// Pads the fraction of `decimal` with zeros up to `scale` digits.
fn with_scale(decimal: Decimal, scale: u32) -> Decimal {
    match decimal.mantissa_digits() {
        Some((digits, current)) if current < scale => {
            let zeros = "0".repeat((scale - current) as usize);
            Decimal::from_digits(decimal.is_negative(), &format!("{digits}{zeros}"), scale)
        }
        _ => decimal,
    }
}

/// DATE / TIMESTAMP → wall-clock timestamp.
pub(crate) fn naive_timestamp(ts: &Timestamp) -> Result<NaiveDateTime, Error> {
    NaiveDate::from_ymd_opt(ts.year(), ts.month(), ts.day())
        .and_then(|d| d.and_hms_nano_opt(ts.hour(), ts.minute(), ts.second(), ts.nanosecond()))
        .ok_or_else(|| Error::decode(format!("`{ts}` is not a valid date and time")))
}

/// TIMESTAMP WITH (LOCAL) TIME ZONE → instant with its offset (the parts are the
/// wall clock at that offset).
pub(crate) fn timestamp_with_offset(ts: &Timestamp) -> Result<DateTime<FixedOffset>, Error> {
    let naive = naive_timestamp(ts)?;
    let offset = FixedOffset::east_opt(ts.tz_offset())
        .ok_or_else(|| Error::decode(format!("`{ts}` has an invalid time zone offset")))?;
    offset
        .from_local_datetime(&naive)
        .single()
        .ok_or_else(|| Error::decode(format!("`{ts}` is not a valid instant")))
}

/// INTERVAL DAY TO SECOND → days and microseconds (sub-microsecond digits are an
/// error, not silently dropped).
pub(crate) fn interval_from_ds(it: &IntervalDS) -> Result<Interval, Error> {
    if it.nanoseconds() % 1000 != 0 {
        return Err(Error::decode(format!(
            "the interval `{it}` has digits below a microsecond, which Value::Interval cannot hold"
        )));
    }
    let micros = i64::from(it.hours()) * 3_600_000_000
        + i64::from(it.minutes()) * 60_000_000
        + i64::from(it.seconds()) * 1_000_000
        + i64::from(it.nanoseconds()) / 1000;
    Ok(Interval {
        months: 0,
        days: it.days(),
        microseconds: micros,
    })
}

/// INTERVAL YEAR TO MONTH → months.
pub(crate) fn interval_from_ym(it: &IntervalYM) -> Interval {
    Interval {
        months: it.years().saturating_mul(12).saturating_add(it.months()),
        days: 0,
        microseconds: 0,
    }
}

/// A value with the Oracle type it is bound as.
pub(crate) struct Bind {
    value: Box<dyn ToSql + Send + Sync>,
    oracle_type: OracleType,
}

impl std::fmt::Debug for Bind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values are customer data: only their type is shown.
        write!(f, "Bind({})", self.oracle_type)
    }
}

impl Bind {
    fn new(value: impl ToSql + Send + Sync + 'static, oracle_type: OracleType) -> Self {
        Bind {
            value: Box::new(value),
            oracle_type,
        }
    }

    /// The Oracle type the value is bound as.
    #[cfg(test)]
    pub(crate) fn oracle_type(&self) -> &OracleType {
        &self.oracle_type
    }
}

impl ToSql for Bind {
    fn oratype(&self, _conn: &Connection) -> oracle::Result<OracleType> {
        Ok(self.oracle_type.clone())
    }

    fn to_sql(&self, val: &mut SqlValue) -> oracle::Result<()> {
        self.value.to_sql(val)
    }
}

/// NULL of a given type: binds no value.
struct Null;

impl ToSql for Null {
    fn oratype(&self, _conn: &Connection) -> oracle::Result<OracleType> {
        Ok(OracleType::Varchar2(1))
    }

    fn to_sql(&self, val: &mut SqlValue) -> oracle::Result<()> {
        val.set_null()
    }
}

fn refuse(what: &str, why: &str) -> Error {
    Error::parameter(format!("a {what} value cannot be bound for Oracle: {why}"))
}

fn text_bind(text: String) -> Bind {
    let oracle_type = if text.len() > MAX_INLINE_BIND {
        OracleType::CLOB
    } else {
        // VARCHAR2, not the oracle crate's NVARCHAR2 default: comparing a VARCHAR2
        // column with an NVARCHAR2 bind converts the column and skips its index.
        OracleType::Varchar2(text.len().max(1) as u32)
    };
    Bind::new(text, oracle_type)
}

fn number_text_bind(digits: String) -> Bind {
    Bind::new(digits, OracleType::Number(0, 0))
}

/// `Value` → bind parameter, for every variant.
pub(crate) fn bind(value: &Value) -> Result<Bind, Error> {
    Ok(match value {
        Value::Null => Bind::new(Null, OracleType::Varchar2(1)),
        // NUMBER 1/0: what BOOLEAN-less servers (before 23ai) store, and what 23ai's
        // BOOLEAN columns accept.
        Value::Bool(b) => Bind::new(i64::from(*b), OracleType::Number(1, 0)),
        Value::I8(v) => Bind::new(i64::from(*v), OracleType::Number(0, 0)),
        Value::I16(v) => Bind::new(i64::from(*v), OracleType::Number(0, 0)),
        Value::I32(v) => Bind::new(i64::from(*v), OracleType::Number(0, 0)),
        Value::I64(v) => Bind::new(*v, OracleType::Number(0, 0)),
        Value::U8(v) => Bind::new(u64::from(*v), OracleType::Number(0, 0)),
        Value::U16(v) => Bind::new(u64::from(*v), OracleType::Number(0, 0)),
        Value::U32(v) => Bind::new(u64::from(*v), OracleType::Number(0, 0)),
        Value::U64(v) => Bind::new(*v, OracleType::Number(0, 0)),
        Value::I128(v) => number_text_bind(v.to_string()),
        Value::U128(v) => number_text_bind(v.to_string()),
        Value::F32(v) => Bind::new(*v, OracleType::BinaryFloat),
        Value::F64(v) => Bind::new(*v, OracleType::BinaryDouble),
        Value::Decimal(d) => {
            if d.is_special() {
                return Err(refuse(
                    "decimal NaN or infinity",
                    "NUMBER has no such values (bind an F64 for BINARY_DOUBLE)",
                ));
            }
            number_text_bind(d.as_str().to_owned())
        }
        Value::Text(s) => text_bind(s.clone()),
        Value::Bytes(b) => {
            let oracle_type = if b.len() > MAX_INLINE_BIND {
                OracleType::BLOB
            } else {
                OracleType::Raw(b.len().max(1) as u32)
            };
            Bind::new(b.clone(), oracle_type)
        }
        Value::Date(d) => Bind::new(*d, OracleType::Date),
        // Oracle has no TIME type: a time of day is the interval since midnight.
        Value::Time(t) => {
            let ds = IntervalDS::new(
                0,
                t.hour() as i32,
                t.minute() as i32,
                t.second() as i32,
                (t.nanosecond() % 1_000_000_000) as i32,
            )
            .map_err(|e| refuse("time", &e.to_string()))?;
            Bind::new(ds, OracleType::IntervalDS(2, 9))
        }
        Value::TimeTz(..) => {
            return Err(refuse(
                "time with time zone",
                "Oracle has no such type; bind a TimestampTz",
            ));
        }
        Value::Timestamp(ts) => Bind::new(*ts, OracleType::Timestamp(9)),
        Value::TimestampTz(ts) => Bind::new(*ts, OracleType::TimestampTZ(9)),
        Value::Interval(i) => interval_bind(i)?,
        Value::Uuid(u) => text_bind(u.hyphenated().to_string()),
        Value::Json(j) => text_bind(j.to_string()),
        Value::Ip(ip) => text_bind(ip.to_string()),
        Value::IpNetwork(ip, prefix) => text_bind(format!("{ip}/{prefix}")),
        Value::Array(_) | Value::Tuple(_) | Value::Map(_) => {
            return Err(refuse(
                "array, tuple or map",
                "bind each element as a parameter of its own",
            ));
        }
        other => {
            return Err(refuse(
                other.kind().as_str(),
                "this variant has no Oracle type",
            ));
        }
    })
}

/// INTERVAL YEAR TO MONTH for months only, DAY TO SECOND otherwise (Oracle keeps
/// the two apart: a month is no fixed number of days).
fn interval_bind(interval: &Interval) -> Result<Bind, Error> {
    if interval.months != 0 {
        if interval.days != 0 || interval.microseconds != 0 {
            return Err(refuse(
                "interval with months and days or time",
                "Oracle has INTERVAL YEAR TO MONTH or INTERVAL DAY TO SECOND, not both in one value",
            ));
        }
        let ym = IntervalYM::new(interval.months / 12, interval.months % 12)
            .map_err(|e| refuse("interval", &e.to_string()))?;
        return Ok(Bind::new(ym, OracleType::IntervalYM(9)));
    }
    let ds = interval_to_ds(interval)?;
    Ok(Bind::new(ds, OracleType::IntervalDS(9, 9)))
}

/// Days and microseconds → an IntervalDS whose fields share one sign.
pub(crate) fn interval_to_ds(interval: &Interval) -> Result<IntervalDS, Error> {
    let total = i128::from(interval.days) * 86_400_000_000 + i128::from(interval.microseconds);
    let negative = total < 0;
    let abs = total.unsigned_abs();
    let days = abs / 86_400_000_000;
    let rest = abs % 86_400_000_000;
    let (hours, rest) = (rest / 3_600_000_000, rest % 3_600_000_000);
    let (minutes, rest) = (rest / 60_000_000, rest % 60_000_000);
    let (seconds, micros) = (rest / 1_000_000, rest % 1_000_000);
    let sign = if negative { -1 } else { 1 };
    let days = i32::try_from(days)
        .map_err(|_| refuse("interval", "more days than INTERVAL DAY(9) holds"))?;
    IntervalDS::new(
        sign * days,
        sign * hours as i32,
        sign * minutes as i32,
        sign * seconds as i32,
        sign * (micros * 1000) as i32,
    )
    .map_err(|e| refuse("interval", &e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveTime;

    #[test]
    fn type_table_maps_every_oracle_type() {
        let cases = [
            (OracleType::Varchar2(10), ValueKind::Text),
            (OracleType::NVarchar2(10), ValueKind::Text),
            (OracleType::Char(1), ValueKind::Text),
            (OracleType::NChar(1), ValueKind::Text),
            (OracleType::CLOB, ValueKind::Text),
            (OracleType::NCLOB, ValueKind::Text),
            (OracleType::Long, ValueKind::Text),
            (OracleType::Rowid, ValueKind::Text),
            (OracleType::Xml, ValueKind::Text),
            (OracleType::Raw(16), ValueKind::Bytes),
            (OracleType::LongRaw, ValueKind::Bytes),
            (OracleType::BLOB, ValueKind::Bytes),
            (OracleType::BFILE, ValueKind::Bytes),
            (OracleType::BinaryFloat, ValueKind::F32),
            (OracleType::BinaryDouble, ValueKind::F64),
            (OracleType::Number(1, 0), ValueKind::I64),
            (OracleType::Number(10, 0), ValueKind::I64),
            (OracleType::Number(18, 0), ValueKind::I64),
            (OracleType::Number(19, 0), ValueKind::I128),
            (OracleType::Number(38, 0), ValueKind::I128),
            (OracleType::Number(0, 0), ValueKind::I128),
            (OracleType::Number(0, -127), ValueKind::Decimal),
            (OracleType::Number(10, 2), ValueKind::Decimal),
            (OracleType::Number(5, -2), ValueKind::Decimal),
            (OracleType::Float(126), ValueKind::Decimal),
            (OracleType::Date, ValueKind::Timestamp),
            (OracleType::Timestamp(6), ValueKind::Timestamp),
            (OracleType::TimestampTZ(6), ValueKind::TimestampTz),
            (OracleType::TimestampLTZ(6), ValueKind::TimestampTz),
            (OracleType::IntervalDS(2, 6), ValueKind::Interval),
            (OracleType::IntervalYM(2), ValueKind::Interval),
            (OracleType::Boolean, ValueKind::Bool),
            (OracleType::Json, ValueKind::Json),
            (OracleType::Int64, ValueKind::I64),
            (OracleType::UInt64, ValueKind::U64),
        ];
        for (oracle_type, kind) in cases {
            assert_eq!(value_kind(&oracle_type), kind, "{oracle_type}");
        }
    }

    fn decimal(text: &str) -> Value {
        Value::Decimal(text.parse().unwrap())
    }

    #[test]
    fn numbers_are_exact() {
        let number = OracleType::Number(0, -127);
        assert_eq!(
            number_value("12345678901234567890123456789012345678", &number).unwrap(),
            decimal("12345678901234567890123456789012345678")
        );
        assert_eq!(number_value("-.5", &number).unwrap(), decimal("-0.5"));
        assert_eq!(
            number_value("1E+125", &number).unwrap(),
            decimal(&format!("1{}", "0".repeat(125)))
        );
        assert_eq!(
            number_value("1.25E-5", &number).unwrap(),
            decimal("0.0000125")
        );
        assert_eq!(
            number_value("0.1", &OracleType::Float(126)).unwrap(),
            decimal("0.1")
        );
        assert!(number_value("abc", &number).is_err());
    }

    #[test]
    fn number_with_scale_keeps_the_column_scale() {
        let money = OracleType::Number(10, 2);
        assert_eq!(number_value("1.5", &money).unwrap(), decimal("1.50"));
        assert_eq!(number_value("-3", &money).unwrap(), decimal("-3.00"));
        assert_eq!(number_value("0", &money).unwrap(), decimal("0.00"));
        assert_eq!(number_value("12.34", &money).unwrap(), decimal("12.34"));
    }

    #[test]
    fn integer_columns_give_integers_or_errors() {
        assert_eq!(
            number_value("-9223372036854775808", &OracleType::Number(18, 0)).unwrap(),
            Value::I64(i64::MIN)
        );
        assert!(number_value("99999999999999999999", &OracleType::Number(18, 0)).is_err());
        assert!(number_value("1.5", &OracleType::Number(10, 0)).is_err());
        assert_eq!(
            number_value(
                "99999999999999999999999999999999999999",
                &OracleType::Number(38, 0)
            )
            .unwrap(),
            Value::I128(99_999_999_999_999_999_999_999_999_999_999_999_999)
        );
        assert_eq!(
            number_value("42", &OracleType::Number(0, 0)).unwrap(),
            Value::I128(42)
        );
    }

    #[test]
    fn dates_and_timestamps_keep_their_parts() {
        let ts = Timestamp::new(2024, 2, 29, 23, 59, 58, 123_456_789).unwrap();
        assert_eq!(
            naive_timestamp(&ts).unwrap(),
            NaiveDate::from_ymd_opt(2024, 2, 29)
                .unwrap()
                .and_hms_nano_opt(23, 59, 58, 123_456_789)
                .unwrap()
        );
        let tz = ts.and_tz_hm_offset(5, 30).unwrap();
        let instant = timestamp_with_offset(&tz).unwrap();
        assert_eq!(instant.to_rfc3339(), "2024-02-29T23:59:58.123456789+05:30");
        let west = ts.and_tz_hm_offset(-3, -30).unwrap();
        assert_eq!(
            timestamp_with_offset(&west)
                .unwrap()
                .offset()
                .local_minus_utc(),
            -(3 * 3600 + 30 * 60)
        );
    }

    #[test]
    fn intervals_convert_both_ways() {
        let ds = IntervalDS::new(3, 4, 5, 6, 500_000_000).unwrap();
        let interval = interval_from_ds(&ds).unwrap();
        assert_eq!(interval.days, 3);
        assert_eq!(
            interval.microseconds,
            4 * 3_600_000_000 + 5 * 60_000_000 + 6_500_000
        );
        let back = interval_to_ds(&interval).unwrap();
        assert_eq!(
            (
                back.days(),
                back.hours(),
                back.minutes(),
                back.seconds(),
                back.nanoseconds()
            ),
            (3, 4, 5, 6, 500_000_000)
        );
        let negative = Interval {
            months: 0,
            days: -1,
            microseconds: -1_500_000,
        };
        let ds = interval_to_ds(&negative).unwrap();
        assert_eq!(
            (ds.days(), ds.seconds(), ds.nanoseconds()),
            (-1, -1, -500_000_000)
        );
        assert_eq!(interval_from_ds(&ds).unwrap(), negative);
        // Mixed signs are normalised: 1 day minus 1 hour is 23 hours.
        let mixed = Interval {
            months: 0,
            days: 1,
            microseconds: -3_600_000_000,
        };
        let ds = interval_to_ds(&mixed).unwrap();
        assert_eq!((ds.days(), ds.hours()), (0, 23));
        assert!(interval_from_ds(&IntervalDS::new(0, 0, 0, 0, 1).unwrap()).is_err());
        let ym = IntervalYM::new(1, 2).unwrap();
        assert_eq!(
            interval_from_ym(&ym),
            Interval {
                months: 14,
                days: 0,
                microseconds: 0
            }
        );
    }

    #[test]
    fn every_value_variant_binds_or_is_refused_with_a_reason() {
        let time = NaiveTime::from_hms_micro_opt(1, 2, 3, 4).unwrap();
        let date = NaiveDate::from_ymd_opt(2024, 1, 2).unwrap();
        let cases: Vec<(Value, Option<OracleType>)> = vec![
            (Value::Null, Some(OracleType::Varchar2(1))),
            (Value::Bool(true), Some(OracleType::Number(1, 0))),
            (Value::I8(-1), Some(OracleType::Number(0, 0))),
            (Value::I16(-1), Some(OracleType::Number(0, 0))),
            (Value::I32(-1), Some(OracleType::Number(0, 0))),
            (Value::I64(i64::MIN), Some(OracleType::Number(0, 0))),
            (Value::I128(i128::MIN), Some(OracleType::Number(0, 0))),
            (Value::U8(1), Some(OracleType::Number(0, 0))),
            (Value::U16(1), Some(OracleType::Number(0, 0))),
            (Value::U32(1), Some(OracleType::Number(0, 0))),
            (Value::U64(u64::MAX), Some(OracleType::Number(0, 0))),
            (Value::U128(u128::MAX), Some(OracleType::Number(0, 0))),
            (Value::F32(1.5), Some(OracleType::BinaryFloat)),
            (Value::F64(f64::NAN), Some(OracleType::BinaryDouble)),
            (decimal("1.50"), Some(OracleType::Number(0, 0))),
            (decimal("NaN"), None),
            (Value::Text("abc".into()), Some(OracleType::Varchar2(3))),
            (Value::Text(String::new()), Some(OracleType::Varchar2(1))),
            (Value::Text("x".repeat(40_000)), Some(OracleType::CLOB)),
            (Value::Bytes(vec![1, 2]), Some(OracleType::Raw(2))),
            (Value::Bytes(vec![0; 40_000]), Some(OracleType::BLOB)),
            (Value::Date(date), Some(OracleType::Date)),
            (Value::Time(time), Some(OracleType::IntervalDS(2, 9))),
            (Value::TimeTz(time, FixedOffset::east_opt(0).unwrap()), None),
            (
                Value::Timestamp(date.and_time(time)),
                Some(OracleType::Timestamp(9)),
            ),
            (
                Value::TimestampTz(
                    FixedOffset::east_opt(3600)
                        .unwrap()
                        .from_local_datetime(&date.and_time(time))
                        .unwrap(),
                ),
                Some(OracleType::TimestampTZ(9)),
            ),
            (
                Value::Interval(Interval {
                    months: 14,
                    days: 0,
                    microseconds: 0,
                }),
                Some(OracleType::IntervalYM(9)),
            ),
            (
                Value::Interval(Interval {
                    months: 0,
                    days: 2,
                    microseconds: 5,
                }),
                Some(OracleType::IntervalDS(9, 9)),
            ),
            (
                Value::Interval(Interval {
                    months: 1,
                    days: 2,
                    microseconds: 0,
                }),
                None,
            ),
            (Value::Uuid(uuid_nil()), Some(OracleType::Varchar2(36))),
            (
                Value::Json(serde_json::json!({"a": 1})),
                Some(OracleType::Varchar2(7)),
            ),
            (
                Value::Ip("10.0.0.1".parse().unwrap()),
                Some(OracleType::Varchar2(8)),
            ),
            (
                Value::IpNetwork("10.0.0.0".parse().unwrap(), 8),
                Some(OracleType::Varchar2(10)),
            ),
            (Value::Array(vec![]), None),
            (Value::Tuple(vec![]), None),
            (Value::Map(vec![]), None),
        ];
        for (value, expected) in cases {
            match (bind(&value), expected) {
                (Ok(bound), Some(oracle_type)) => {
                    assert_eq!(bound.oracle_type(), &oracle_type, "{value:?}");
                }
                (Err(e), None) => {
                    assert_eq!(e.kind(), extdata_core::ErrorKind::Parameter, "{value:?}");
                    assert!(e.message().contains("cannot be bound"), "{e}");
                }
                (Ok(bound), None) => panic!("{value:?} was bound as {bound:?}"),
                (Err(e), Some(_)) => panic!("{value:?} was refused: {e}"),
            }
        }
    }

    fn uuid_nil() -> uuid::Uuid {
        uuid::Uuid::nil()
    }

    #[test]
    fn bind_debug_never_shows_the_value() {
        let bound = bind(&Value::Text("customer secret".into())).unwrap();
        assert_eq!(format!("{bound:?}"), "Bind(VARCHAR2(15))");
    }
}
