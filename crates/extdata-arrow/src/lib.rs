#![doc = include_str!("../README.md")]

use std::sync::Arc;

use arrow_array::ArrayRef;
use arrow_array::builder::{
    ArrayBuilder, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    Decimal256Builder, FixedSizeBinaryBuilder, Float32Builder, Float64Builder, Int8Builder,
    Int16Builder, Int32Builder, Int64Builder, StringBuilder, Time64MicrosecondBuilder,
    TimestampMicrosecondBuilder, UInt8Builder, UInt16Builder, UInt32Builder, UInt64Builder,
};
use arrow_array::types::{Decimal128Type, Decimal256Type, DecimalType};
use arrow_buffer::i256;
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{NaiveDate, NaiveTime, Timelike};
use extdata_core::{Column, Columns, Error, Result, Row, RowStream, Value, ValueKind};
use futures::{Stream, StreamExt};

/// The Arrow record batch type the batches are (re-exported from `arrow-array`).
pub use arrow_array::RecordBatch;

#[cfg(any(feature = "ipc", feature = "parquet"))]
mod write;
#[cfg(any(feature = "ipc", feature = "parquet"))]
pub use write::*;

/// Rows per [`RecordBatch`] unless the caller says otherwise.
pub const DEFAULT_BATCH_ROWS: usize = 8192;

/// About how many bytes of values a [`RecordBatch`] holds before it is cut, unless the
/// caller says otherwise.
pub const DEFAULT_BATCH_BYTES: usize = 16 * 1024 * 1024;

/// Where a [`BatchBuilder`] cuts a batch: at `rows` rows, or once its values take about
/// `bytes` bytes, whichever comes first. A batch always holds at least one row, so a
/// single value larger than `bytes` makes a batch of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Rows per batch at most.
    pub rows: usize,
    /// Bytes of values per batch, about (fixed-width values by their width, text and
    /// binary by their length plus an offset).
    pub bytes: usize,
}

impl Default for BatchLimits {
    /// [`DEFAULT_BATCH_ROWS`] rows, [`DEFAULT_BATCH_BYTES`] bytes.
    fn default() -> Self {
        BatchLimits {
            rows: DEFAULT_BATCH_ROWS,
            bytes: DEFAULT_BATCH_BYTES,
        }
    }
}

/// The zone of `timestamptz` columns: values are instants, kept in UTC.
const UTC: &str = "+00:00";

/// The Arrow type of one column (see the type table in the README).
pub fn data_type(column: &Column) -> DataType {
    match column.value_kind {
        ValueKind::Bool => DataType::Boolean,
        ValueKind::I8 => DataType::Int8,
        ValueKind::I16 => DataType::Int16,
        ValueKind::I32 => DataType::Int32,
        ValueKind::I64 => DataType::Int64,
        ValueKind::U8 => DataType::UInt8,
        ValueKind::U16 => DataType::UInt16,
        ValueKind::U32 => DataType::UInt32,
        ValueKind::U64 => DataType::UInt64,
        ValueKind::I128 => DataType::Decimal128(38, 0),
        ValueKind::F32 => DataType::Float32,
        ValueKind::F64 => DataType::Float64,
        ValueKind::Decimal => match precision_and_scale(&column.database_type) {
            Some((p, s)) if p <= 38 => DataType::Decimal128(p, s),
            Some((p, s)) if p <= 76 => DataType::Decimal256(p, s),
            _ => DataType::Utf8,
        },
        ValueKind::Bytes => DataType::Binary,
        ValueKind::Uuid => DataType::FixedSizeBinary(16),
        ValueKind::Date => DataType::Date32,
        ValueKind::Time => DataType::Time64(TimeUnit::Microsecond),
        ValueKind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
        ValueKind::TimestampTz => DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
        _ => DataType::Utf8,
    }
}

/// The Arrow schema of a result's columns (every field nullable unless the server said
/// the column holds no NULL).
pub fn schema(columns: &[Column]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(&c.name, data_type(c), c.nullable != Some(false)))
            .collect::<Vec<_>>(),
    ))
}

/// `(precision, scale)` from a server type name: `numeric(18,4)`, `Decimal(18, 4)`,
/// `Nullable(Decimal(38, 10))`, `DECIMAL(10,2) UNSIGNED`.
fn precision_and_scale(type_name: &str) -> Option<(u8, i8)> {
    let lower = type_name.to_ascii_lowercase();
    let start = lower
        .find("decimal(")
        .map(|i| i + 8)
        .or_else(|| lower.find("numeric(").map(|i| i + 8))?;
    let rest = &lower[start..];
    let inner = &rest[..rest.find(')')?];
    let mut parts = inner.split(',').map(str::trim);
    let precision: u8 = parts.next()?.parse().ok()?;
    let scale: i8 = parts.next().map_or(Some(0), |s| s.parse().ok())?;
    (precision > 0 && scale >= 0 && i16::from(scale) <= i16::from(precision))
        .then_some((precision, scale))
}

/// The mantissa of `text` (a canonical decimal) at `scale`; `None` when it has more
/// fraction digits than `scale` or does not fit 128 bits.
fn mantissa128(text: &str, scale: i8) -> Option<i128> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let mut mantissa: i128 = 0;
    let mut fraction: Option<i8> = None;
    for byte in digits.bytes() {
        match byte {
            b'.' if fraction.is_none() => fraction = Some(0),
            b'0'..=b'9' => {
                mantissa = mantissa
                    .checked_mul(10)?
                    .checked_add(i128::from(byte - b'0'))?;
                if let Some(f) = fraction.as_mut() {
                    *f = f.checked_add(1)?;
                }
            }
            _ => return None,
        }
    }
    let missing = scale.checked_sub(fraction.unwrap_or(0))?;
    if missing < 0 {
        return None;
    }
    mantissa = mantissa.checked_mul(10i128.checked_pow(missing as u32)?)?;
    Some(if negative { -mantissa } else { mantissa })
}

/// As [`mantissa128`], for up to 76 digits.
fn mantissa256(text: &str, scale: i8) -> Option<i256> {
    if let Some(small) = mantissa128(text, scale) {
        return Some(i256::from_i128(small));
    }
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let pad = usize::try_from(scale).ok()?.checked_sub(frac.len())?;
    i256::from_string(&format!("{int}{frac}{}", "0".repeat(pad)))
}

/// The error of a decimal that does not fit its column, with what to do about it.
/// Without the value: a value may be a bound parameter the server echoed
/// (`SELECT :amount::numeric(10,2)`), which must not reach an error.
fn too_wide_decimal(precision: u8, scale: i8) -> String {
    format!(
        "a decimal with more digits than its column holds (Decimal({precision}, {scale})): \
         where the server does not enforce the column's type (SQLite), cast the column in \
         the query to text or to a wider decimal; where a calculation overflowed \
         (ClickHouse without overflow checks), fix the calculation"
    )
}

fn days_since_epoch(date: &NaiveDate) -> i32 {
    // The unix epoch as days from 0001-01-01 (chrono's day count).
    const EPOCH_DAYS_FROM_CE: i32 = 719_163;
    chrono::Datelike::num_days_from_ce(date) - EPOCH_DAYS_FROM_CE
}

fn whole_micros(nanos: u32) -> Option<i64> {
    nanos
        .is_multiple_of(1000)
        .then_some(i64::from(nanos / 1000))
}

fn time_micros(time: &NaiveTime) -> Option<i64> {
    Some(i64::from(time.num_seconds_from_midnight()) * 1_000_000 + whole_micros(time.nanosecond())?)
}

/// One column being built.
enum Builder {
    Bool(BooleanBuilder),
    I8(Int8Builder),
    I16(Int16Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    U8(UInt8Builder),
    U16(UInt16Builder),
    U32(UInt32Builder),
    U64(UInt64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    /// With the column's scale and precision.
    Decimal128(Decimal128Builder, i8, u8),
    /// With the column's scale and precision.
    Decimal256(Decimal256Builder, i8, u8),
    Text(StringBuilder),
    Binary(BinaryBuilder),
    Uuid(FixedSizeBinaryBuilder),
    Date(Date32Builder),
    Time(Time64MicrosecondBuilder),
    Timestamp(TimestampMicrosecondBuilder),
}

impl Builder {
    fn new(data_type: &DataType, capacity: usize) -> Builder {
        match data_type {
            DataType::Boolean => Builder::Bool(BooleanBuilder::with_capacity(capacity)),
            DataType::Int8 => Builder::I8(Int8Builder::with_capacity(capacity)),
            DataType::Int16 => Builder::I16(Int16Builder::with_capacity(capacity)),
            DataType::Int32 => Builder::I32(Int32Builder::with_capacity(capacity)),
            DataType::Int64 => Builder::I64(Int64Builder::with_capacity(capacity)),
            DataType::UInt8 => Builder::U8(UInt8Builder::with_capacity(capacity)),
            DataType::UInt16 => Builder::U16(UInt16Builder::with_capacity(capacity)),
            DataType::UInt32 => Builder::U32(UInt32Builder::with_capacity(capacity)),
            DataType::UInt64 => Builder::U64(UInt64Builder::with_capacity(capacity)),
            DataType::Float32 => Builder::F32(Float32Builder::with_capacity(capacity)),
            DataType::Float64 => Builder::F64(Float64Builder::with_capacity(capacity)),
            DataType::Decimal128(p, s) => Builder::Decimal128(
                Decimal128Builder::with_capacity(capacity).with_data_type(data_type.clone()),
                *s,
                *p,
            ),
            DataType::Decimal256(p, s) => Builder::Decimal256(
                Decimal256Builder::with_capacity(capacity).with_data_type(data_type.clone()),
                *s,
                *p,
            ),
            DataType::Binary => Builder::Binary(BinaryBuilder::with_capacity(capacity, 0)),
            DataType::FixedSizeBinary(_) => {
                Builder::Uuid(FixedSizeBinaryBuilder::with_capacity(capacity, 16))
            }
            DataType::Date32 => Builder::Date(Date32Builder::with_capacity(capacity)),
            DataType::Time64(_) => Builder::Time(Time64MicrosecondBuilder::with_capacity(capacity)),
            DataType::Timestamp(_, zone) => Builder::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(capacity)
                    .with_timezone_opt(zone.clone()),
            ),
            _ => Builder::Text(StringBuilder::with_capacity(capacity, 0)),
        }
    }

    /// Bytes one value of this column takes in the batch, not counting the variable
    /// part of text and binary values (see [`Builder::append`]).
    fn fixed_width(data_type: &DataType) -> usize {
        match data_type {
            DataType::Boolean => 1,
            DataType::FixedSizeBinary(width) => usize::try_from(*width).unwrap_or(16),
            DataType::Utf8 | DataType::Binary => 4,
            other => other.primitive_width().unwrap_or(8),
        }
    }

    /// Appends one value; returns the variable bytes it added (the length of a text or
    /// binary value, 0 for the rest). `Err` names what did not fit.
    fn append(&mut self, value: &Value) -> std::result::Result<usize, String> {
        macro_rules! push {
            ($b:expr, $v:expr) => {{
                $b.append_value($v);
                Ok(0)
            }};
        }
        if value.is_null() {
            self.append_null();
            return Ok(0);
        }
        match (self, value) {
            (Builder::Bool(b), Value::Bool(v)) => push!(b, *v),
            (Builder::I8(b), Value::I8(v)) => push!(b, *v),
            (Builder::I16(b), Value::I16(v)) => push!(b, *v),
            (Builder::I32(b), Value::I32(v)) => push!(b, *v),
            (Builder::I64(b), Value::I64(v)) => push!(b, *v),
            (Builder::U8(b), Value::U8(v)) => push!(b, *v),
            (Builder::U16(b), Value::U16(v)) => push!(b, *v),
            (Builder::U32(b), Value::U32(v)) => push!(b, *v),
            (Builder::U64(b), Value::U64(v)) => push!(b, *v),
            (Builder::F32(b), Value::F32(v)) => push!(b, *v),
            (Builder::F64(b), Value::F64(v)) => push!(b, *v),
            // `Decimal128(38, 0)` is the column of `I128`: its 16 bytes hold every
            // i128, the few past 38 digits included.
            (Builder::Decimal128(b, _, _), Value::I128(v)) => push!(b, *v),
            (Builder::Decimal128(b, scale, precision), Value::Decimal(d)) => {
                let (scale, precision) = (*scale, *precision);
                let m = mantissa128(d.as_str(), scale)
                    .filter(|m| Decimal128Type::is_valid_decimal_precision(*m, precision))
                    .ok_or_else(|| too_wide_decimal(precision, scale))?;
                push!(b, m)
            }
            (Builder::Decimal256(b, scale, precision), Value::Decimal(d)) => {
                let (scale, precision) = (*scale, *precision);
                let m = mantissa256(d.as_str(), scale)
                    .filter(|m| Decimal256Type::is_valid_decimal_precision(*m, precision))
                    .ok_or_else(|| too_wide_decimal(precision, scale))?;
                push!(b, m)
            }
            (Builder::Text(b), Value::Text(v)) => {
                b.append_value(v);
                Ok(v.len())
            }
            (Builder::Text(b), other) => {
                let text = other.to_text_lossless();
                b.append_value(&text);
                Ok(text.len())
            }
            (Builder::Binary(b), Value::Bytes(v)) => {
                b.append_value(v);
                Ok(v.len())
            }
            (Builder::Uuid(b), Value::Uuid(v)) => b
                .append_value(v.as_bytes())
                .map(|()| 0)
                .map_err(|e| e.to_string()),
            (Builder::Date(b), Value::Date(v)) => push!(b, days_since_epoch(v)),
            (Builder::Time(b), Value::Time(v)) => {
                push!(b, time_micros(v).ok_or("a time with nanoseconds")?)
            }
            (Builder::Timestamp(b), Value::Timestamp(v)) => {
                let t = v.and_utc();
                let micros = whole_micros(t.timestamp_subsec_nanos())
                    .and_then(|sub| t.timestamp().checked_mul(1_000_000)?.checked_add(sub))
                    .ok_or("a timestamp with nanoseconds or out of range")?;
                push!(b, micros)
            }
            (Builder::Timestamp(b), Value::TimestampTz(v)) => {
                let micros = whole_micros(v.timestamp_subsec_nanos())
                    .and_then(|sub| v.timestamp().checked_mul(1_000_000)?.checked_add(sub))
                    .ok_or("a timestamp with nanoseconds or out of range")?;
                push!(b, micros)
            }
            (_, other) => Err(format!("a {} value in this column", other.kind())),
        }
    }

    fn append_null(&mut self) {
        match self {
            Builder::Bool(b) => b.append_null(),
            Builder::I8(b) => b.append_null(),
            Builder::I16(b) => b.append_null(),
            Builder::I32(b) => b.append_null(),
            Builder::I64(b) => b.append_null(),
            Builder::U8(b) => b.append_null(),
            Builder::U16(b) => b.append_null(),
            Builder::U32(b) => b.append_null(),
            Builder::U64(b) => b.append_null(),
            Builder::F32(b) => b.append_null(),
            Builder::F64(b) => b.append_null(),
            Builder::Decimal128(b, ..) => b.append_null(),
            Builder::Decimal256(b, ..) => b.append_null(),
            Builder::Text(b) => b.append_null(),
            Builder::Binary(b) => b.append_null(),
            Builder::Uuid(b) => b.append_null(),
            Builder::Date(b) => b.append_null(),
            Builder::Time(b) => b.append_null(),
            Builder::Timestamp(b) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Bool(b) => ArrayBuilder::finish(b),
            Builder::I8(b) => ArrayBuilder::finish(b),
            Builder::I16(b) => ArrayBuilder::finish(b),
            Builder::I32(b) => ArrayBuilder::finish(b),
            Builder::I64(b) => ArrayBuilder::finish(b),
            Builder::U8(b) => ArrayBuilder::finish(b),
            Builder::U16(b) => ArrayBuilder::finish(b),
            Builder::U32(b) => ArrayBuilder::finish(b),
            Builder::U64(b) => ArrayBuilder::finish(b),
            Builder::F32(b) => ArrayBuilder::finish(b),
            Builder::F64(b) => ArrayBuilder::finish(b),
            Builder::Decimal128(b, ..) => ArrayBuilder::finish(b),
            Builder::Decimal256(b, ..) => ArrayBuilder::finish(b),
            Builder::Text(b) => ArrayBuilder::finish(b),
            Builder::Binary(b) => ArrayBuilder::finish(b),
            Builder::Uuid(b) => ArrayBuilder::finish(b),
            Builder::Date(b) => ArrayBuilder::finish(b),
            Builder::Time(b) => ArrayBuilder::finish(b),
            Builder::Timestamp(b) => ArrayBuilder::finish(b),
        }
    }
}

/// One Arrow column built from [`Value`]s, exactly as [`BatchBuilder`] builds that
/// column (the same [`data_type`], the same checks). For a columnar reader that decodes
/// most columns straight into arrays and the rest value by value, and must give the same
/// array either way.
///
/// # Typed appends
///
/// Besides [`push`](Self::push), a reader that decoded a value from its wire format
/// appends it without building a [`Value`]: [`append_null`](Self::append_null),
/// [`append_bool`](Self::append_bool), `append_i8` … `append_u64`,
/// [`append_f32`](Self::append_f32), [`append_f64`](Self::append_f64),
/// [`append_str`](Self::append_str), [`append_bytes`](Self::append_bytes),
/// [`append_uuid`](Self::append_uuid), [`append_decimal`](Self::append_decimal),
/// [`append_date_days`](Self::append_date_days) and
/// [`append_timestamp_micros`](Self::append_timestamp_micros). Each writes straight
/// into the array when the column's Arrow type is the one that value has in the type
/// table (e.g. `append_i64` into an `Int64` column); into any other column it appends
/// exactly what [`push`](Self::push) of the equivalent [`Value`] does — its text in a
/// `Utf8` column, or the same [`extdata_core::ErrorKind::Decode`] error.
pub struct ColumnBuilder {
    name: String,
    builder: Builder,
    len: usize,
    /// Bytes of the text and binary values appended since the last `finish`.
    variable_bytes: usize,
}

impl std::fmt::Debug for ColumnBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColumnBuilder")
            .field("name", &self.name)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// A typed append: straight into the builder of `$variant`, else as `push` of the
/// `Value` of `$value`.
macro_rules! typed_append {
    ($(#[$doc:meta])* $name:ident($ty:ty) => $variant:ident, $value:ident) => {
        $(#[$doc])*
        pub fn $name(&mut self, value: $ty) -> Result<()> {
            if let Builder::$variant(b) = &mut self.builder {
                b.append_value(value);
                self.len += 1;
                Ok(())
            } else {
                self.push(&Value::$value(value))
            }
        }
    };
}

impl ColumnBuilder {
    /// A builder for `column` with room for `capacity` values.
    pub fn new(column: &Column, capacity: usize) -> ColumnBuilder {
        ColumnBuilder::of_type(&column.name, &data_type(column), capacity)
    }

    fn of_type(name: &str, data_type: &DataType, capacity: usize) -> ColumnBuilder {
        ColumnBuilder {
            name: name.to_owned(),
            builder: Builder::new(data_type, capacity),
            len: 0,
            variable_bytes: 0,
        }
    }

    /// Appends one value; a value that does not fit the column is a
    /// [`extdata_core::ErrorKind::Decode`] error naming the column (the text
    /// [`BatchBuilder::push_values`] gives).
    pub fn push(&mut self, value: &Value) -> Result<()> {
        let added = self
            .builder
            .append(value)
            .map_err(|why| Error::decode(format!("arrow column `{}`: {why}", self.name)))?;
        self.variable_bytes = self.variable_bytes.saturating_add(added);
        self.len += 1;
        Ok(())
    }

    /// Appends a NULL (every column takes one).
    pub fn append_null(&mut self) {
        self.builder.append_null();
        self.len += 1;
    }

    typed_append!(
        /// Appends a `bool` (a `Boolean` column).
        append_bool(bool) => Bool, Bool
    );
    typed_append!(
        /// Appends an `i8` (an `Int8` column).
        append_i8(i8) => I8, I8
    );
    typed_append!(
        /// Appends an `i16` (an `Int16` column).
        append_i16(i16) => I16, I16
    );
    typed_append!(
        /// Appends an `i32` (an `Int32` column).
        append_i32(i32) => I32, I32
    );
    typed_append!(
        /// Appends an `i64` (an `Int64` column).
        append_i64(i64) => I64, I64
    );
    typed_append!(
        /// Appends a `u8` (a `UInt8` column).
        append_u8(u8) => U8, U8
    );
    typed_append!(
        /// Appends a `u16` (a `UInt16` column).
        append_u16(u16) => U16, U16
    );
    typed_append!(
        /// Appends a `u32` (a `UInt32` column).
        append_u32(u32) => U32, U32
    );
    typed_append!(
        /// Appends a `u64` (a `UInt64` column).
        append_u64(u64) => U64, U64
    );
    typed_append!(
        /// Appends an `f32` (a `Float32` column).
        append_f32(f32) => F32, F32
    );
    typed_append!(
        /// Appends an `f64` (a `Float64` column).
        append_f64(f64) => F64, F64
    );

    /// Appends text (a `Utf8` column; elsewhere as [`Value::Text`]).
    pub fn append_str(&mut self, value: &str) -> Result<()> {
        if let Builder::Text(b) = &mut self.builder {
            b.append_value(value);
            self.variable_bytes = self.variable_bytes.saturating_add(value.len());
            self.len += 1;
            Ok(())
        } else {
            self.push(&Value::Text(value.to_owned()))
        }
    }

    /// Appends bytes (a `Binary` column; elsewhere as [`Value::Bytes`]).
    pub fn append_bytes(&mut self, value: &[u8]) -> Result<()> {
        if let Builder::Binary(b) = &mut self.builder {
            b.append_value(value);
            self.variable_bytes = self.variable_bytes.saturating_add(value.len());
            self.len += 1;
            Ok(())
        } else {
            self.push(&Value::Bytes(value.to_vec()))
        }
    }

    /// Appends a UUID given as its 16 bytes (a `FixedSizeBinary(16)` column; elsewhere
    /// as [`Value::Uuid`]).
    pub fn append_uuid(&mut self, value: [u8; 16]) -> Result<()> {
        match &mut self.builder {
            Builder::Uuid(b) => {
                b.append_value(value)
                    .map_err(|e| Error::decode(format!("arrow column `{}`: {e}", self.name)))?;
                self.len += 1;
                Ok(())
            }
            _ => self.push(&Value::Uuid(uuid::Uuid::from_bytes(value))),
        }
    }

    /// Appends the decimal `mantissa × 10^-scale`. Into a `Decimal128`/`Decimal256`
    /// column of scale `scale` or more, the mantissa is scaled up to the column's scale;
    /// otherwise (more fraction digits than the column has, more digits than its
    /// precision, a column of another type, a mantissa that overflows) it is [`push`](Self::push) of
    /// [`Decimal::from_mantissa`](extdata_core::Decimal::from_mantissa)`(mantissa, scale)`.
    pub fn append_decimal(&mut self, mantissa: i128, scale: u32) -> Result<()> {
        let appended = match &mut self.builder {
            Builder::Decimal128(b, column_scale, precision) => u32::try_from(*column_scale)
                .ok()
                .and_then(|s| s.checked_sub(scale))
                .and_then(|up| mantissa.checked_mul(10i128.checked_pow(up)?))
                .filter(|m| Decimal128Type::is_valid_decimal_precision(*m, *precision))
                .map(|m| b.append_value(m))
                .is_some(),
            Builder::Decimal256(b, column_scale, precision) => u32::try_from(*column_scale)
                .ok()
                .and_then(|s| s.checked_sub(scale))
                .and_then(|up| {
                    i256::from_i128(mantissa).checked_mul(i256::from_i128(10).checked_pow(up)?)
                })
                .filter(|m| Decimal256Type::is_valid_decimal_precision(*m, *precision))
                .map(|m| b.append_value(m))
                .is_some(),
            _ => false,
        };
        if appended {
            self.len += 1;
            Ok(())
        } else {
            self.push(&Value::Decimal(extdata_core::Decimal::from_mantissa(
                mantissa, scale,
            )))
        }
    }

    /// Appends a date given as days since 1970-01-01 (a `Date32` column; elsewhere as
    /// [`Value::Date`], a decode error when chrono cannot hold the date).
    pub fn append_date_days(&mut self, days: i32) -> Result<()> {
        if let Builder::Date(b) = &mut self.builder {
            b.append_value(days);
            self.len += 1;
            return Ok(());
        }
        const EPOCH_DAYS_FROM_CE: i32 = 719_163;
        match days
            .checked_add(EPOCH_DAYS_FROM_CE)
            .and_then(NaiveDate::from_num_days_from_ce_opt)
        {
            Some(date) => self.push(&Value::Date(date)),
            None => Err(Error::decode(format!(
                "arrow column `{}`: a date out of range",
                self.name
            ))),
        }
    }

    /// Appends a timestamp given as microseconds since 1970-01-01 00:00 UTC (a
    /// `Timestamp(Microsecond, _)` column, with or without its zone; elsewhere as
    /// [`Value::Timestamp`], a decode error when chrono cannot hold it).
    pub fn append_timestamp_micros(&mut self, micros: i64) -> Result<()> {
        if let Builder::Timestamp(b) = &mut self.builder {
            b.append_value(micros);
            self.len += 1;
            return Ok(());
        }
        match chrono::DateTime::from_timestamp_micros(micros) {
            Some(at) => self.push(&Value::Timestamp(at.naive_utc())),
            None => Err(Error::decode(format!(
                "arrow column `{}`: a timestamp out of range",
                self.name
            ))),
        }
    }

    /// Values appended since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no value was appended since the last [`finish`](Self::finish).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The values appended so far as an array; the builder starts over.
    pub fn finish(&mut self) -> ArrayRef {
        self.len = 0;
        self.variable_bytes = 0;
        self.builder.finish()
    }
}

/// Builds [`RecordBatch`]es of one schema from rows, cut at [`BatchLimits`].
pub struct BatchBuilder {
    schema: SchemaRef,
    builders: Vec<ColumnBuilder>,
    rows: usize,
    limits: BatchLimits,
    /// Bytes of one row's fixed-width part (see [`BatchLimits::bytes`]).
    row_width: usize,
}

extdata_core::debug_fields!(BatchBuilder |builder| { schema, rows, limits });

impl BatchBuilder {
    /// A builder for `columns` that fills batches of `batch_rows` rows (and at most
    /// about [`DEFAULT_BATCH_BYTES`]).
    pub fn new(columns: &[Column], batch_rows: usize) -> BatchBuilder {
        BatchBuilder::with_limits(
            columns,
            BatchLimits {
                rows: batch_rows,
                ..BatchLimits::default()
            },
        )
    }

    /// A builder for `columns` that cuts batches at `limits`.
    pub fn with_limits(columns: &[Column], limits: BatchLimits) -> BatchBuilder {
        let schema = schema(columns);
        let limits = BatchLimits {
            rows: limits.rows.max(1),
            bytes: limits.bytes.max(1),
        };
        // Room for the rows the byte bound lets in, not more (a wide row would
        // otherwise reserve `rows` of itself up front).
        let row_width: usize = schema
            .fields()
            .iter()
            .map(|f| Builder::fixed_width(f.data_type()))
            .sum();
        let capacity = limits.rows.min(limits.bytes / row_width.max(1) + 1);
        let builders = schema
            .fields()
            .iter()
            .map(|f| ColumnBuilder::of_type(f.name(), f.data_type(), capacity))
            .collect();
        BatchBuilder {
            schema,
            builders,
            rows: 0,
            limits,
            row_width,
        }
    }

    /// Where batches are cut.
    pub fn limits(&self) -> BatchLimits {
        self.limits
    }

    /// The schema of the batches.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Rows appended since the last batch.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether no row was appended since the last batch.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Bytes of values appended since the last batch, about (see
    /// [`BatchLimits::bytes`]).
    pub fn bytes(&self) -> usize {
        let variable = self
            .builders
            .iter()
            .fold(0usize, |sum, b| sum.saturating_add(b.variable_bytes));
        self.rows
            .saturating_mul(self.row_width)
            .saturating_add(variable)
    }

    /// Appends one row; returns a batch when it is full.
    pub fn push(&mut self, row: &Row) -> Result<Option<RecordBatch>> {
        self.push_values(row.values())
    }

    /// Appends one row given as its values in column order; returns a batch when it
    /// is full (at [`BatchLimits::rows`] rows or about [`BatchLimits::bytes`] bytes).
    /// A value that does not fit its column is a [`extdata_core::ErrorKind::Decode`]
    /// error naming the column; the row is then left half-appended, so the builder
    /// must not be used further.
    pub fn push_values(&mut self, values: &[Value]) -> Result<Option<RecordBatch>> {
        if values.len() != self.builders.len() {
            return Err(Error::decode(format!(
                "a row of {} values for {} columns",
                values.len(),
                self.builders.len()
            )));
        }
        for (builder, value) in self.builders.iter_mut().zip(values) {
            builder.push(value)?;
        }
        self.end_row()
    }

    /// The builders of the columns, in column order, for a reader that appends a row
    /// value by value (with [`ColumnBuilder`]'s typed appends or
    /// [`push`](ColumnBuilder::push)): exactly one value to each column, then
    /// [`end_row`](Self::end_row). A column left with another count of values makes
    /// [`finish`](Self::finish) fail with a decode error.
    pub fn columns_mut(&mut self) -> &mut [ColumnBuilder] {
        &mut self.builders
    }

    /// Counts the row appended through [`columns_mut`](Self::columns_mut); returns a
    /// batch when it is full, as [`push_values`](Self::push_values) does.
    pub fn end_row(&mut self) -> Result<Option<RecordBatch>> {
        self.rows += 1;
        if self.rows >= self.limits.rows || self.bytes() >= self.limits.bytes {
            return self.finish().map(Some);
        }
        Ok(None)
    }

    /// The rows appended so far as a batch (possibly empty).
    pub fn finish(&mut self) -> Result<RecordBatch> {
        let columns: Vec<ArrayRef> = self
            .builders
            .iter_mut()
            .map(ColumnBuilder::finish)
            .collect();
        self.rows = 0;
        RecordBatch::try_new(self.schema.clone(), columns)
            .map_err(|e| Error::decode(format!("arrow batch: {e}")))
    }
}

/// The rows of `stream` as [`RecordBatch`]es of at most `batch_rows` rows, built as the
/// rows arrive (memory holds one batch, not the result). The first error ends it.
pub fn batches(
    stream: RowStream,
    batch_rows: usize,
) -> (SchemaRef, impl Stream<Item = Result<RecordBatch>> + Send) {
    let builder = BatchBuilder::new(stream.columns(), batch_rows);
    let schema = builder.schema().clone();
    let batches = futures::stream::unfold(Some((stream, builder)), |state| async move {
        let (mut stream, mut builder) = state?;
        loop {
            match stream.next().await {
                Some(Ok(row)) => match builder.push(&row) {
                    Ok(Some(batch)) => return Some((Ok(batch), Some((stream, builder)))),
                    Ok(None) => {}
                    Err(e) => return Some((Err(e), None)),
                },
                Some(Err(e)) => return Some((Err(e), None)),
                None if builder.is_empty() => return None,
                None => return Some((builder.finish(), None)),
            }
        }
    });
    (schema, batches)
}

/// A result as a stream of [`RecordBatch`]es: its columns, its Arrow schema
/// ([`schema`] of the columns) and the batches, each of that schema. Built from rows
/// ([`BatchStream::from_rows`]) or by a backend that decodes its wire format straight
/// into Arrow arrays. Like a [`RowStream`], it holds about one batch at a time,
/// dropping it stops the query, and an error ends it.
pub struct BatchStream {
    columns: Columns,
    schema: SchemaRef,
    inner: std::pin::Pin<Box<dyn Stream<Item = Result<RecordBatch>> + Send>>,
}

impl BatchStream {
    /// Wraps `inner`, whose batches have the schema of `columns`.
    pub fn new(
        columns: Columns,
        inner: impl Stream<Item = Result<RecordBatch>> + Send + 'static,
    ) -> BatchStream {
        BatchStream {
            schema: schema(&columns),
            columns,
            inner: Box::pin(inner),
        }
    }

    /// The rows of `stream` gathered into batches cut at `limits` (the row path).
    pub fn from_rows(stream: RowStream, limits: BatchLimits) -> BatchStream {
        let columns = stream.columns().clone();
        let builder = BatchBuilder::with_limits(&columns, limits);
        let batches = futures::stream::unfold(Some((stream, builder)), |state| async move {
            let (mut stream, mut builder) = state?;
            loop {
                match stream.next().await {
                    Some(Ok(row)) => match builder.push(&row) {
                        Ok(Some(batch)) => return Some((Ok(batch), Some((stream, builder)))),
                        Ok(None) => {}
                        Err(e) => return Some((Err(e), None)),
                    },
                    Some(Err(e)) => return Some((Err(e), None)),
                    None if builder.is_empty() => return None,
                    None => return Some((builder.finish(), None)),
                }
            }
        });
        BatchStream::new(columns, batches)
    }

    /// The result's columns.
    pub fn columns(&self) -> &Columns {
        &self.columns
    }

    /// The Arrow schema of every batch.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Reads every batch (the whole result in memory).
    pub async fn collect_all(mut self) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let mut batches = Vec::new();
        while let Some(batch) = self.inner.next().await {
            batches.push(batch?);
        }
        Ok((self.schema, batches))
    }
}

impl Stream for BatchStream {
    type Item = Result<RecordBatch>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl std::fmt::Debug for BatchStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchStream")
            .field("columns", &self.columns)
            .finish_non_exhaustive()
    }
}

/// Reads the whole stream into batches of at most `batch_rows` rows.
pub async fn collect(
    stream: RowStream,
    batch_rows: usize,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let mut stream = stream;
    let mut builder = BatchBuilder::new(stream.columns(), batch_rows);
    let mut out = Vec::new();
    while let Some(row) = stream.next().await {
        if let Some(batch) = builder.push(&row?)? {
            out.push(batch);
        }
    }
    if !builder.is_empty() {
        out.push(builder.finish()?);
    }
    Ok((builder.schema().clone(), out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Decimal128Type, Int32Type, TimestampMicrosecondType};
    use arrow_array::{Array, Decimal256Array};
    use chrono::{DateTime, NaiveDate};
    use extdata_core::{Columns, Decimal};

    fn columns() -> Columns {
        vec![
            Column::new("id", "int4", ValueKind::I32),
            Column::new("amount", "numeric(18,4)", ValueKind::Decimal),
            Column::new("big", "Decimal(50, 2)", ValueKind::Decimal),
            Column::new("free", "numeric", ValueKind::Decimal),
            Column::new("at", "timestamptz", ValueKind::TimestampTz),
            Column::new("day", "date", ValueKind::Date),
            Column::new("name", "text", ValueKind::Text),
        ]
        .into()
    }

    fn row(columns: &Columns, id: i32, amount: &str) -> Row {
        Row::new(
            columns.clone(),
            vec![
                Value::I32(id),
                Value::Decimal(amount.parse().unwrap()),
                Value::Decimal(
                    "123456789012345678901234567890123456789012.25"
                        .parse()
                        .unwrap(),
                ),
                Value::Decimal(Decimal::from_mantissa(-15, 1)),
                Value::TimestampTz(
                    DateTime::parse_from_rfc3339("2020-01-01T02:00:00+02:00").unwrap(),
                ),
                Value::Date(NaiveDate::from_ymd_opt(1970, 1, 11).unwrap()),
                if id % 2 == 0 {
                    Value::Null
                } else {
                    Value::Text(format!("n{id}"))
                },
            ],
        )
    }

    #[test]
    fn schema_keeps_decimals_exact_and_timestamps_zoned() {
        let schema = schema(&columns());
        assert_eq!(schema.field(1).data_type(), &DataType::Decimal128(18, 4));
        assert_eq!(schema.field(2).data_type(), &DataType::Decimal256(50, 2));
        assert_eq!(schema.field(3).data_type(), &DataType::Utf8);
        assert_eq!(
            schema.field(4).data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()))
        );
        assert_eq!(
            precision_and_scale("Nullable(Decimal(38, 10))"),
            Some((38, 10))
        );
        assert_eq!(precision_and_scale("DECIMAL(10) UNSIGNED"), Some((10, 0)));
        assert_eq!(precision_and_scale("numeric"), None);
    }

    #[test]
    fn rows_become_batches_with_exact_values() {
        let columns = columns();
        let mut builder = BatchBuilder::new(&columns, 2);
        assert!(builder.push(&row(&columns, 1, "-12.5")).unwrap().is_none());
        let batch = builder
            .push(&row(&columns, 2, "7"))
            .unwrap()
            .expect("full batch");
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.column(0).as_primitive::<Int32Type>().value(1), 2);
        let amounts = batch.column(1).as_primitive::<Decimal128Type>();
        assert_eq!(amounts.value(0), -125_000);
        assert_eq!(amounts.value(1), 70_000);
        let big = batch
            .column(2)
            .as_any()
            .downcast_ref::<Decimal256Array>()
            .unwrap();
        assert_eq!(
            big.value_as_string(0),
            "123456789012345678901234567890123456789012.25"
        );
        assert_eq!(batch.column(3).as_string::<i32>().value(0), "-1.5");
        let at = batch.column(4).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(at.value(0), 1_577_836_800_000_000);
        assert_eq!(
            batch
                .column(5)
                .as_primitive::<arrow_array::types::Date32Type>()
                .value(0),
            10
        );
        assert!(batch.column(6).is_null(1));
        assert!(builder.is_empty());
    }

    #[test]
    fn a_value_that_would_round_is_an_error() {
        let columns = columns();
        let mut builder = BatchBuilder::new(&columns, 10);
        let err = builder.push(&row(&columns, 1, "1.23456")).unwrap_err();
        assert!(err.to_string().contains("amount"), "{err}");
        assert_eq!(mantissa128("-0.5", 2), Some(-50));
        assert_eq!(mantissa128("0.505", 2), None);
    }

    #[test]
    fn batches_are_cut_by_bytes_before_rows() {
        let columns: Columns = vec![
            Column::new("id", "int4", ValueKind::I32),
            Column::new("name", "text", ValueKind::Text),
        ]
        .into();
        // A row is 4 + 4 fixed bytes and 92 bytes of text: 100 bytes.
        let mut builder = BatchBuilder::with_limits(
            &columns,
            BatchLimits {
                rows: 1000,
                bytes: 250,
            },
        );
        let row = |id| {
            Row::new(
                columns.clone(),
                vec![Value::I32(id), Value::Text("x".repeat(92))],
            )
        };
        assert!(builder.push(&row(1)).unwrap().is_none());
        assert!(builder.push(&row(2)).unwrap().is_none());
        assert_eq!(builder.bytes(), 200);
        let batch = builder.push(&row(3)).unwrap().expect("cut at 300 bytes");
        assert_eq!(batch.num_rows(), 3);
        assert_eq!(builder.bytes(), 0);
        // One value larger than the bound still makes a batch, of one row.
        let huge = Row::new(
            columns.clone(),
            vec![Value::I32(4), Value::Text("y".repeat(1000))],
        );
        assert_eq!(builder.push(&huge).unwrap().expect("a batch").num_rows(), 1);
    }

    /// Typed appends give the arrays and errors `push` gives, and count their bytes.
    #[test]
    fn typed_appends_build_what_push_builds() {
        let columns: Columns = vec![
            Column::new("id", "int4", ValueKind::I32),
            Column::new("amount", "numeric(18,4)", ValueKind::Decimal),
            Column::new("big", "Decimal(50, 2)", ValueKind::Decimal),
            Column::new("day", "date", ValueKind::Date),
            Column::new("at", "timestamptz", ValueKind::TimestampTz),
            Column::new("name", "text", ValueKind::Text),
        ]
        .into();
        let limits = BatchLimits {
            rows: 3,
            bytes: usize::MAX,
        };
        let mut pushed = BatchBuilder::with_limits(&columns, limits);
        let mut typed = BatchBuilder::with_limits(&columns, limits);
        let at = DateTime::parse_from_rfc3339("2020-01-01T00:00:00.000001+00:00").unwrap();
        for id in 1..=2 {
            pushed
                .push(&Row::new(
                    columns.clone(),
                    vec![
                        Value::I32(id),
                        Value::Decimal("-1.5".parse().unwrap()),
                        Value::Decimal("12.3".parse().unwrap()),
                        Value::Date(NaiveDate::from_ymd_opt(1970, 1, 11).unwrap()),
                        Value::TimestampTz(at),
                        if id == 1 {
                            Value::Text("héllo".into())
                        } else {
                            Value::Null
                        },
                    ],
                ))
                .unwrap();
            let row = typed.columns_mut();
            row[0].append_i32(id).unwrap();
            row[1].append_decimal(-15, 1).unwrap();
            row[2].append_decimal(123, 1).unwrap();
            row[3].append_date_days(10).unwrap();
            row[4]
                .append_timestamp_micros(1_577_836_800_000_001)
                .unwrap();
            if id == 1 {
                row[5].append_str("héllo").unwrap();
            } else {
                row[5].append_null();
            }
            assert!(typed.end_row().unwrap().is_none());
        }
        assert_eq!(typed.bytes(), pushed.bytes());
        assert_eq!(typed.finish().unwrap(), pushed.finish().unwrap());
        // Into a column of another type: what `push` of the value does.
        let mut id = ColumnBuilder::new(&columns[0], 1);
        let typed_error = id.append_str("x").unwrap_err().to_string();
        let pushed_error = id.push(&Value::Text("x".into())).unwrap_err().to_string();
        assert_eq!(typed_error, pushed_error);
        assert!(typed_error.contains("arrow column `id`"), "{typed_error}");
        let mut name = ColumnBuilder::new(&columns[5], 1);
        name.append_i64(7).unwrap();
        name.append_decimal(-15, 1).unwrap();
        let names = name.finish();
        assert_eq!(names.as_string::<i32>().value(0), "7");
        assert_eq!(names.as_string::<i32>().value(1), "-1.5");
        // More fraction digits than the column's scale: `push`'s error.
        let mut amount = ColumnBuilder::new(&columns[1], 1);
        let err = amount.append_decimal(123_456, 5).unwrap_err().to_string();
        assert!(
            err.contains("more digits than its column holds (Decimal(18, 4))")
                && err.contains("cast the column in the query"),
            "{err}"
        );
        assert!(
            !err.contains("23456"),
            "the value is not in the error: {err}"
        );
    }

    /// A decimal with more integer digits than its column's precision is an error on
    /// both append paths, never an array that holds more digits than its type says (a
    /// Parquet writer stores `Decimal128(5, 2)` as a 32-bit integer, and would cut it):
    /// what a server may send while a column's cached type is older than the column
    /// (PostgreSQL after `ALTER … TYPE`), or with its overflow checks off (ClickHouse).
    #[test]
    fn decimals_past_their_precision_are_refused() {
        for (type_name, fits, too_wide) in [
            ("numeric(5,2)", "-999.99", "1000.00"),
            ("numeric(5,2)", "999.99", "-1000"),
            (
                "Decimal(40, 0)",
                &*"9".repeat(40),
                &*format!("1{}", "0".repeat(40)),
            ),
            (
                "Decimal(40, 0)",
                &*format!("-{}", "9".repeat(40)),
                &*format!("-1{}", "0".repeat(40)),
            ),
        ] {
            let column = Column::new("d", type_name, ValueKind::Decimal);
            let mut builder = ColumnBuilder::new(&column, 2);
            builder
                .push(&Value::Decimal(fits.parse().unwrap()))
                .unwrap();
            let err = builder
                .push(&Value::Decimal(too_wide.parse().unwrap()))
                .unwrap_err()
                .to_string();
            assert!(err.contains("more digits than its column holds"), "{err}");
            assert_eq!(builder.finish().len(), 1, "{type_name} {fits}");
        }
        let column = Column::new("d", "numeric(5,2)", ValueKind::Decimal);
        let mut builder = ColumnBuilder::new(&column, 2);
        builder.append_decimal(-99_999, 2).unwrap();
        builder.append_decimal(9_999, 1).unwrap();
        let err = builder.append_decimal(100_000, 2).unwrap_err().to_string();
        assert!(err.contains("more digits than its column holds"), "{err}");
        assert!(builder.append_decimal(10_000, 1).is_err());
        let array = builder.finish();
        let values = array.as_primitive::<Decimal128Type>();
        assert_eq!(values.values().to_vec(), [-99_999, 99_990]);
        values.validate_decimal_precision(5).unwrap();
    }

    #[tokio::test]
    async fn a_stream_turns_into_batches_as_it_arrives() {
        let columns = columns();
        let rows: Vec<Result<Row>> = (1..=5).map(|i| Ok(row(&columns, i, "1"))).collect();
        let stream = RowStream::new(columns.clone(), futures::stream::iter(rows));
        let (schema, batches) = batches(stream, 2);
        let sizes: Vec<usize> = batches
            .map(|b| b.unwrap().num_rows())
            .collect::<Vec<_>>()
            .await;
        assert_eq!(sizes, vec![2, 2, 1]);
        assert_eq!(schema.fields().len(), 7);
        let failing = RowStream::new(
            columns.clone(),
            futures::stream::iter(vec![Ok(row(&columns, 1, "1")), Err(Error::decode("boom"))]),
        );
        assert!(collect(failing, 10).await.is_err());
    }
}
