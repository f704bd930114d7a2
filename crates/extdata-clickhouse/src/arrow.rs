//! Columnar reads (feature `arrow`): each Native block decoded column by column straight
//! into Arrow arrays, without a [`Value`] per cell, into the batches the row path gives
//! (`extdata_arrow::BatchStream::from_rows` over [`ExternalSource::stream`]) — the same
//! schema ([`extdata_arrow::schema`] of the same columns) and the same values.
//!
//! A column is decoded natively when its ClickHouse type and its Arrow type are a pair of
//! [`Native`] (integers, floats, `Bool`, `Int128`, decimals, `String`/`FixedString`,
//! `UUID`, `Date`/`Date32`, `DateTime`/`DateTime64` with or without a known zone, each
//! also `Nullable` or `LowCardinality`). Every other column (arrays, tuples, maps,
//! `JSON`, enums, IP addresses, `Time`, intervals, `UInt128`/`Int256`/`UInt256`, types
//! without a reader) is decoded by the row decoder into values and built into its array
//! with `extdata_arrow::ColumnBuilder`, exactly as the row path builds it. A native
//! decoder that meets anything unusual in a block (text that is not UTF-8, a timestamp
//! with nanoseconds or out of range, a date out of range) gives that column of that
//! block to the row decoder too, which gives the row path's value or error.
//!
//! [`ExternalSource::stream`]: extdata_core::ExternalSource::stream

use std::collections::VecDeque;
use std::sync::Arc;

use arrow_array::builder::{ArrayBuilder, BooleanBuilder, FixedSizeBinaryBuilder, StringBuilder};
use arrow_array::types::DecimalType as _;
use arrow_array::types::{
    Date32Type, Decimal128Type, Decimal256Type, Float32Type, Float64Type, Int8Type, Int16Type,
    Int32Type, Int64Type, TimestampMicrosecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{ArrayRef, ArrowPrimitiveType, PrimitiveArray, RecordBatch, RecordBatchOptions};
use arrow_buffer::{BooleanBufferBuilder, NullBuffer, i256};
use arrow_schema::{DataType, SchemaRef, TimeUnit};
use chrono::{DateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use clickhouse::native::{Block, DataTypeNode};
use clickhouse_types::data_types::DecimalType;
use extdata_arrow::{BatchLimits, BatchStream, ColumnBuilder};
use extdata_core::{Column, Columns, Error, QueryOptions, Result, Statement};

use crate::stream::Producer;
use crate::types::{self, ColumnReader, Raw};
use crate::{Call, ClickHouseSource, Opened, parse_json};

impl ClickHouseSource {
    /// Runs `statement` like [`stream`](extdata_core::ExternalSource::stream) and reads
    /// its result as Arrow [`RecordBatch`]es, decoding each Native block column by column
    /// straight into arrays (see the README's "Columnar reads"). The batches have the
    /// schema and the values the row path gives (`extdata_arrow::BatchStream::from_rows`
    /// over `stream`); they hold at most `limits.rows` rows and about `limits.bytes`
    /// bytes, and never span two blocks.
    ///
    /// Everything else is as for `stream`: the connector's settings and `read_only`,
    /// server-side parameters where the server has them, `options.timeout` bounding the
    /// wait for each block (the first included) with the query killed on the server when
    /// it runs out, the query killed when the stream is dropped early, one block in
    /// memory at a time, errors without the bound values. A first block that cannot be
    /// decoded fails the call; a later one ends the stream with its error.
    pub async fn stream_batches(
        &self,
        statement: &Statement,
        options: &QueryOptions,
        limits: BatchLimits,
    ) -> Result<BatchStream> {
        let timeout = options.timeout_or(self.config.query_timeout);
        let opened = self
            .open(statement, Call::Stream, timeout, None, Self::new_query_id())
            .await
            .map_err(|e| self.redacted(e, statement))?;
        match opened {
            Opened::Empty(columns) => Ok(BatchStream::new(columns, futures::stream::empty())),
            Opened::Blocks { producer, first } => Batches::start(*producer, first, limits).await,
        }
    }
}

/// The state of a batch stream: the producer that reads blocks (with its kill guard and
/// timeout), the decoder, and the batches of the last block not handed out yet.
struct Batches {
    producer: Producer,
    decoder: BlockDecoder,
    pending: VecDeque<RecordBatch>,
    limits: BatchLimits,
}

impl Batches {
    async fn start(producer: Producer, first: Block, limits: BatchLimits) -> Result<BatchStream> {
        let decoder = BlockDecoder::new(
            producer.columns.clone(),
            producer.json_columns.clone(),
            producer.zoned.clone(),
            producer.zone,
        );
        let mut state = Batches {
            producer,
            decoder,
            pending: VecDeque::new(),
            limits: BatchLimits {
                rows: limits.rows.max(1),
                bytes: limits.bytes.max(1),
            },
        };
        if let Err(error) = state.take(&first) {
            state.producer.guard.kill().await;
            return Err(state.producer.failed(error));
        }
        drop(first);
        let columns = state.producer.columns.clone();
        Ok(BatchStream::new(
            columns,
            futures::stream::unfold(Some(state), Batches::next),
        ))
    }

    /// Decodes `block` into the pending batches, cut at the limits.
    fn take(&mut self, block: &Block) -> Result<()> {
        let batch = self.decoder.decode(block)?;
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        let bytes = batch.get_array_memory_size().max(1);
        let by_bytes = (rows as u128 * self.limits.bytes as u128 / bytes as u128) as usize;
        let step = self.limits.rows.min(by_bytes).max(1);
        let mut offset = 0;
        while offset < rows {
            let len = step.min(rows - offset);
            self.pending.push_back(batch.slice(offset, len));
            offset += len;
        }
        Ok(())
    }

    async fn next(state: Option<Batches>) -> Option<(Result<RecordBatch>, Option<Batches>)> {
        let mut state = state?;
        loop {
            if let Some(batch) = state.pending.pop_front() {
                return Some((Ok(batch), Some(state)));
            }
            match state.producer.next_block().await {
                Ok(Some(block)) => {
                    if let Err(error) = state.take(&block) {
                        state.producer.guard.kill().await;
                        return Some((Err(state.producer.failed(error)), None));
                    }
                }
                Ok(None) => return None,
                Err(error) => return Some((Err(state.producer.failed(error)), None)),
            }
        }
    }
}

/// Decodes the blocks of one result into [`RecordBatch`]es of its schema.
pub(crate) struct BlockDecoder {
    columns: Columns,
    schema: SchemaRef,
    /// By column, whether it is a `JSON` column read as its text.
    json: Vec<bool>,
    /// By column, the zoned type of a `DateTime` the header names without its zone.
    zoned: Vec<Option<DataTypeNode>>,
    /// The server's zone: the wall clock of `DateTime`s without one.
    zone: Tz,
}

impl BlockDecoder {
    /// A decoder for a result of `columns` (as the row path names them), whose `json`
    /// columns are read as text and `zoned` columns with the zone their header left out.
    pub(crate) fn new(
        columns: Columns,
        json: Vec<usize>,
        zoned: Vec<Option<DataTypeNode>>,
        zone: Tz,
    ) -> BlockDecoder {
        let json = (0..columns.len()).map(|i| json.contains(&i)).collect();
        BlockDecoder {
            schema: extdata_arrow::schema(&columns),
            columns,
            json,
            zoned,
            zone,
        }
    }

    /// The whole of `block` as one batch.
    pub(crate) fn decode(&self, block: &Block) -> Result<RecordBatch> {
        let width = self.columns.len();
        if block.columns().len() != width {
            return Err(Error::decode(format!(
                "a block has {} columns, the first had {width}",
                block.columns().len(),
            )));
        }
        let rows = block.num_rows();
        let arrays = block
            .columns()
            .iter()
            .enumerate()
            .map(|(i, column)| self.decode_column(i, column, rows))
            .collect::<Result<Vec<ArrayRef>>>()?;
        RecordBatch::try_new_with_options(
            self.schema.clone(),
            arrays,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )
        .map_err(|e| Error::decode(format!("arrow batch: {e}")))
    }

    fn decode_column(
        &self,
        index: usize,
        column: &clickhouse::native::Column,
        rows: usize,
    ) -> Result<ArrayRef> {
        let zoned = self.zoned.get(index).and_then(Option::as_ref);
        let target = &self.columns[index];
        let data_type = self.schema.field(index).data_type();
        let json = self.json[index];
        if !json
            && let Some(native) = Native::of(
                types::unwrap_type(zoned.unwrap_or(column.data_type())),
                data_type,
                self.zone,
            )
            && let Some(array) = native.decode(column, rows, data_type)
        {
            return Ok(array);
        }
        by_values(column, zoned, target, json, rows, self.zone)
    }
}

/// The row path for one column: the row decoder's values built into the array as
/// `extdata_arrow` builds them.
fn by_values(
    column: &clickhouse::native::Column,
    zoned: Option<&DataTypeNode>,
    target: &Column,
    json: bool,
    rows: usize,
    zone: Tz,
) -> Result<ArrayRef> {
    let mut reader = ColumnReader::new(column, zoned)?;
    let mut builder = ColumnBuilder::new(target, rows);
    types::with_server_zone(zone, || {
        for _ in 0..rows {
            let mut value = reader.next_value()?;
            if json {
                parse_json(&mut value)?;
            }
            builder.push(&value)?;
        }
        Ok(builder.finish())
    })
}

/// A column decoded straight from its Native bytes into its Arrow array: the pairs of
/// (ClickHouse type without `Nullable`/`LowCardinality`, Arrow type) that
/// [`extdata_arrow::data_type`] gives and that need no [`Value`](extdata_core::Value).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Native {
    Bool,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    F32,
    F64,
    BFloat16,
    /// `Int128` → `Decimal128(38, 0)`.
    I128,
    /// `Decimal32/64/128` (the mantissa's bytes) → `Decimal128` of the same scale.
    Decimal128(usize),
    /// `Decimal256` → `Decimal256` of the same scale.
    Decimal256,
    Text,
    Uuid,
    Date,
    Date32,
    /// `DateTime`: `wall` is the server's zone for a type without one (the row path's
    /// wall clock), `None` for a zoned one (the instant).
    DateTime {
        wall: Option<Tz>,
    },
    /// `DateTime64(digits)`, `wall` as for [`Native::DateTime`].
    DateTime64 {
        digits: u32,
        wall: Option<Tz>,
    },
}

/// The largest |seconds| a native timestamp decoder takes (year ~5100); anything
/// further goes to the row decoder, which has chrono's exact bounds.
const MAX_SECONDS: i64 = 100_000_000_000;

/// The widest |days| a native date decoder takes; further goes to the row decoder.
const MAX_DAYS: i64 = 1_000_000;

impl Native {
    /// The native decoding of a column of ClickHouse type `t` (unwrapped) whose Arrow
    /// type is `data_type`, or `None` when the row decoder must do it.
    pub(crate) fn of(t: &DataTypeNode, data_type: &DataType, server_zone: Tz) -> Option<Native> {
        use DataTypeNode as T;
        let known_zone = |zone: &str| types::parse_zone(zone).is_some();
        // The wall clock's zone of a timestamp without one; `None`: an instant.
        let wall = |arrow_zone: &Option<Arc<str>>| arrow_zone.is_none().then_some(server_zone);
        Some(match (t, data_type) {
            (T::Bool, DataType::Boolean) => Native::Bool,
            (T::Int8, DataType::Int8) => Native::I8,
            (T::Int16, DataType::Int16) => Native::I16,
            (T::Int32, DataType::Int32) => Native::I32,
            (T::Int64, DataType::Int64) => Native::I64,
            (T::UInt8, DataType::UInt8) => Native::U8,
            (T::UInt16, DataType::UInt16) => Native::U16,
            (T::UInt32, DataType::UInt32) => Native::U32,
            (T::UInt64, DataType::UInt64) => Native::U64,
            (T::Float32, DataType::Float32) => Native::F32,
            (T::Float64, DataType::Float64) => Native::F64,
            (T::BFloat16, DataType::Float32) => Native::BFloat16,
            (T::Int128, DataType::Decimal128(38, 0)) => Native::I128,
            (T::Decimal(_, scale, width), DataType::Decimal128(_, arrow_scale))
                if i16::from(*scale) == i16::from(*arrow_scale) =>
            {
                match width {
                    DecimalType::Decimal32 => Native::Decimal128(4),
                    DecimalType::Decimal64 => Native::Decimal128(8),
                    DecimalType::Decimal128 => Native::Decimal128(16),
                    DecimalType::Decimal256 => return None,
                }
            }
            (
                T::Decimal(_, scale, DecimalType::Decimal256),
                DataType::Decimal256(_, arrow_scale),
            ) if i16::from(*scale) == i16::from(*arrow_scale) => Native::Decimal256,
            (T::String | T::FixedString(_), DataType::Utf8) => Native::Text,
            (T::UUID, DataType::FixedSizeBinary(16)) => Native::Uuid,
            (T::Date, DataType::Date32) => Native::Date,
            (T::Date32, DataType::Date32) => Native::Date32,
            (T::DateTime(zone), DataType::Timestamp(TimeUnit::Microsecond, arrow_zone))
                if zone.is_none() == arrow_zone.is_none()
                    && zone.as_deref().is_none_or(known_zone) =>
            {
                Native::DateTime {
                    wall: wall(arrow_zone),
                }
            }
            (
                T::DateTime64(precision, zone),
                DataType::Timestamp(TimeUnit::Microsecond, arrow_zone),
            ) if zone.is_none() == arrow_zone.is_none()
                && zone.as_deref().is_none_or(known_zone) =>
            {
                Native::DateTime64 {
                    digits: types::precision_digits(precision).min(9),
                    wall: wall(arrow_zone),
                }
            }
            _ => return None,
        })
    }

    /// The column's `rows` values as an array of `data_type`; `None` when a value needs
    /// the row decoder (see the module's doc).
    pub(crate) fn decode(
        self,
        column: &clickhouse::native::Column,
        rows: usize,
        data_type: &DataType,
    ) -> Option<ArrayRef> {
        let raw = column.iter::<Raw<'_>>().ok()?;
        let values = raw.map(|item| item.ok().map(|raw| raw.0));
        decode_values(self, values, rows, data_type)
    }
}

/// Decodes `values` (each `None` when the crate could not read it, `Some(None)` for a
/// NULL, `Some(Some(bytes))` for a value's Native bytes) as `native` into an array of
/// `rows` values of `data_type`; `None` when any value needs the row decoder.
pub(crate) fn decode_values<'a>(
    native: Native,
    values: impl Iterator<Item = Option<Option<&'a [u8]>>>,
    rows: usize,
    data_type: &DataType,
) -> Option<ArrayRef> {
    fn le<const N: usize>(bytes: &[u8]) -> Option<[u8; N]> {
        bytes.try_into().ok()
    }
    macro_rules! primitive {
        ($type:ty, $convert:expr) => {
            primitive::<$type>(values, rows, data_type, $convert)
        };
    }
    // A decimal with more digits than the column's precision (a server with its
    // overflow checks off can send one) goes to the row decoder, whose error it is.
    let precision = match data_type {
        DataType::Decimal128(p, _) | DataType::Decimal256(p, _) => *p,
        _ => 0,
    };
    let within128 = |m: i128| Decimal128Type::is_valid_decimal_precision(m, precision).then_some(m);
    let within256 = |m: i256| Decimal256Type::is_valid_decimal_precision(m, precision).then_some(m);
    match native {
        Native::Bool => {
            let mut builder = BooleanBuilder::with_capacity(rows);
            for value in values {
                match value? {
                    Some(bytes) => builder.append_value(le::<1>(bytes)?[0] != 0),
                    None => builder.append_null(),
                }
            }
            (builder.len() == rows).then(|| Arc::new(builder.finish()) as ArrayRef)
        }
        Native::I8 => primitive!(Int8Type, |b| le(b).map(i8::from_le_bytes)),
        Native::I16 => primitive!(Int16Type, |b| le(b).map(i16::from_le_bytes)),
        Native::I32 => primitive!(Int32Type, |b| le(b).map(i32::from_le_bytes)),
        Native::I64 => primitive!(Int64Type, |b| le(b).map(i64::from_le_bytes)),
        Native::U8 => primitive!(UInt8Type, |b| le(b).map(u8::from_le_bytes)),
        Native::U16 => primitive!(UInt16Type, |b| le(b).map(u16::from_le_bytes)),
        Native::U32 => primitive!(UInt32Type, |b| le(b).map(u32::from_le_bytes)),
        Native::U64 => primitive!(UInt64Type, |b| le(b).map(u64::from_le_bytes)),
        Native::F32 => primitive!(Float32Type, |b| le(b).map(f32::from_le_bytes)),
        Native::F64 => primitive!(Float64Type, |b| le(b).map(f64::from_le_bytes)),
        Native::BFloat16 => primitive!(Float32Type, |b| le(b)
            .map(u16::from_le_bytes)
            .map(|bits| f32::from_bits(u32::from(bits) << 16))),
        Native::I128 => primitive!(Decimal128Type, |b| le(b).map(i128::from_le_bytes)),
        Native::Decimal128(4) => primitive!(Decimal128Type, |b| le(b)
            .map(i32::from_le_bytes)
            .and_then(|m| within128(i128::from(m)))),
        Native::Decimal128(8) => primitive!(Decimal128Type, |b| le(b)
            .map(i64::from_le_bytes)
            .and_then(|m| within128(i128::from(m)))),
        Native::Decimal128(_) => primitive!(Decimal128Type, |b| le(b)
            .map(i128::from_le_bytes)
            .and_then(within128)),
        Native::Decimal256 => primitive!(Decimal256Type, |b| le(b)
            .map(i256::from_le_bytes)
            .and_then(within256)),
        Native::Text => {
            let mut builder = StringBuilder::with_capacity(rows, rows.saturating_mul(8));
            for value in values {
                match value? {
                    Some(bytes) => builder.append_value(std::str::from_utf8(bytes).ok()?),
                    None => builder.append_null(),
                }
            }
            (builder.len() == rows).then(|| Arc::new(builder.finish()) as ArrayRef)
        }
        Native::Uuid => {
            let mut builder = FixedSizeBinaryBuilder::with_capacity(rows, 16);
            for value in values {
                match value? {
                    Some(bytes) => {
                        // Two little-endian halves on the wire; big-endian in Arrow.
                        let wire = le::<16>(bytes)?;
                        let mut canonical = [0u8; 16];
                        for (i, byte) in canonical.iter_mut().enumerate() {
                            *byte = if i < 8 { wire[7 - i] } else { wire[23 - i] };
                        }
                        builder.append_value(canonical).ok()?;
                    }
                    None => builder.append_null(),
                }
            }
            (builder.len() == rows).then(|| Arc::new(builder.finish()) as ArrayRef)
        }
        Native::Date => primitive!(Date32Type, |b| le(b).map(u16::from_le_bytes).map(i32::from)),
        Native::Date32 => primitive!(Date32Type, |b| le(b)
            .map(i32::from_le_bytes)
            .filter(|days| i64::from(*days).abs() <= MAX_DAYS)),
        Native::DateTime { wall } => primitive!(TimestampMicrosecondType, |b| {
            let seconds = i64::from(u32::from_le_bytes(le(b)?));
            micros(seconds, 0, wall)
        }),
        Native::DateTime64 { digits, wall } => {
            let per_second = 10_i64.pow(digits);
            let to_nanos = 10_i64.pow(9 - digits);
            primitive!(TimestampMicrosecondType, |b| {
                let ticks = i64::from_le_bytes(le(b)?);
                let nanos = ticks.rem_euclid(per_second) * to_nanos;
                micros(ticks.div_euclid(per_second), nanos, wall)
            })
        }
    }
}

/// Microseconds since the epoch of the instant `seconds` + `nanos` — on the wall clock of
/// `wall` when given (the row path's `Timestamp`), as the instant otherwise; `None` for
/// sub-microsecond digits or far dates (the row decoder then gives its error or value).
fn micros(seconds: i64, nanos: i64, wall: Option<Tz>) -> Option<i64> {
    if nanos % 1000 != 0 || seconds.abs() > MAX_SECONDS {
        return None;
    }
    let seconds = match wall {
        None | Some(Tz::UTC) => seconds,
        Some(zone) => {
            let utc = DateTime::<Utc>::from_timestamp(seconds, 0)?;
            let offset = zone.offset_from_utc_datetime(&utc.naive_utc()).fix();
            seconds + i64::from(offset.local_minus_utc())
        }
    };
    seconds.checked_mul(1_000_000)?.checked_add(nanos / 1000)
}

/// A primitive array of `rows` values of `data_type` from `values` (see
/// [`decode_values`]), each converted by `convert` (`None`: the row decoder must do it).
fn primitive<'a, T: ArrowPrimitiveType>(
    values: impl Iterator<Item = Option<Option<&'a [u8]>>>,
    rows: usize,
    data_type: &DataType,
    convert: impl Fn(&[u8]) -> Option<T::Native>,
) -> Option<ArrayRef> {
    if !PrimitiveArray::<T>::is_compatible(data_type) {
        return None;
    }
    let mut data: Vec<T::Native> = Vec::with_capacity(rows);
    // Made at the first NULL: a column without one has no null buffer, as the row
    // path's builders make it.
    let mut nulls: Option<BooleanBufferBuilder> = None;
    for value in values {
        match value? {
            Some(bytes) => {
                data.push(convert(bytes)?);
                if let Some(nulls) = nulls.as_mut() {
                    nulls.append(true);
                }
            }
            None => {
                let before = data.len();
                nulls
                    .get_or_insert_with(|| {
                        let mut nulls = BooleanBufferBuilder::new(rows);
                        nulls.append_n(before, true);
                        nulls
                    })
                    .append(false);
                data.push(T::Native::default());
            }
        }
    }
    if data.len() != rows {
        return None;
    }
    let nulls = nulls.map(|mut nulls| NullBuffer::new(nulls.finish()));
    let array = PrimitiveArray::<T>::try_new(data.into(), nulls)
        .ok()?
        .with_data_type(data_type.clone());
    Some(Arc::new(array))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;
    use extdata_core::{Value, ValueKind};
    use proptest::prelude::*;

    /// `values` through the row path's `Scalar` decoding and `ColumnBuilder`: the array
    /// the native decoder must equal (or `Err` when the row path fails).
    fn by_rows(type_name: &str, values: &[Option<Vec<u8>>], zone: Tz) -> Result<ArrayRef> {
        let data_type = DataTypeNode::new(type_name).unwrap();
        let (kind, nullable) = types::value_kind(&data_type);
        let column = Column::new("c", type_name, kind).with_nullable(Some(nullable));
        let mut builder = ColumnBuilder::new(&column, values.len());
        types::with_server_zone(zone, || {
            for value in values {
                let value = match value {
                    Some(bytes) => types::decode_scalar(&data_type, bytes)?,
                    None => Value::Null,
                };
                builder.push(&value)?;
            }
            Ok(builder.finish())
        })
    }

    /// `values` through the native decoder, when it takes them.
    fn natively(type_name: &str, values: &[Option<Vec<u8>>], zone: Tz) -> Option<ArrayRef> {
        let data_type = DataTypeNode::new(type_name).unwrap();
        let (kind, nullable) = types::value_kind(&data_type);
        let column = Column::new("c", type_name, kind).with_nullable(Some(nullable));
        let arrow_type = extdata_arrow::data_type(&column);
        let native = Native::of(types::unwrap_type(&data_type), &arrow_type, zone)
            .unwrap_or_else(|| panic!("{type_name} has a native decoder"));
        let items = values.iter().map(|v| Some(v.as_deref()));
        decode_values(native, items, values.len(), &arrow_type)
    }

    /// The native array equals the row path's whenever the native decoder takes the
    /// values, and when it does not the row path fails or the value is one it leaves
    /// to the row decoder.
    fn agree(type_name: &str, values: &[Option<Vec<u8>>], zone: Tz) {
        let rows = by_rows(type_name, values, zone);
        match (natively(type_name, values, zone), rows) {
            (Some(native), Ok(rows)) => {
                assert_eq!(native.data_type(), rows.data_type(), "{type_name}");
                assert_eq!(&native, &rows, "{type_name}: {values:?}");
            }
            (Some(native), Err(e)) => panic!("{type_name}: native {native:?}, rows fail: {e}"),
            (None, _) => {}
        }
    }

    const TYPES: &[(&str, usize)] = &[
        ("Bool", 1),
        ("Int8", 1),
        ("Int16", 2),
        ("Int32", 4),
        ("Nullable(Int64)", 8),
        ("UInt8", 1),
        ("UInt16", 2),
        ("Nullable(UInt32)", 4),
        ("UInt64", 8),
        ("Float32", 4),
        ("Nullable(Float64)", 8),
        ("BFloat16", 2),
        ("Int128", 16),
        ("Decimal(9, 2)", 4),
        ("Nullable(Decimal(18, 4))", 8),
        ("Decimal(38, 10)", 16),
        ("Decimal(76, 30)", 32),
        ("UUID", 16),
        ("Nullable(Date)", 2),
        ("Date32", 4),
        ("DateTime", 4),
        ("DateTime('Asia/Tokyo')", 4),
        ("Nullable(DateTime('UTC'))", 4),
        ("DateTime64(3)", 8),
        ("DateTime64(6, 'Europe/Moscow')", 8),
        ("Nullable(DateTime64(9, 'UTC'))", 8),
        ("DateTime64(0)", 8),
    ];

    #[test]
    fn native_arrays_equal_the_row_paths_on_edge_values() {
        let zones: [Tz; 2] = [Tz::UTC, "Europe/Berlin".parse().unwrap()];
        for (type_name, width) in TYPES {
            let mut values: Vec<Option<Vec<u8>>> = vec![
                Some(vec![0; *width]),
                Some(vec![0xFF; *width]),
                None,
                Some((0..*width as u8).collect()),
            ];
            let mut max = vec![0xFF; *width];
            max[*width - 1] = 0x7F;
            values.push(Some(max));
            assert!(
                natively(type_name, &values[..1], Tz::UTC).is_some(),
                "{type_name} is decoded natively"
            );
            for zone in zones {
                agree(type_name, &values, zone);
                agree(type_name, &values[..0], zone);
                agree(type_name, &values[2..3], zone);
            }
        }
        // Text: UTF-8, NUL padding, and bytes that are not UTF-8 (the row decoder's).
        let text = [
            Some(b"ab\0".to_vec()),
            None,
            Some("Zoë ✓".as_bytes().to_vec()),
            Some(Vec::new()),
        ];
        agree("Nullable(String)", &text, Tz::UTC);
        assert!(natively("String", &[Some(vec![0xFF])], Tz::UTC).is_none());
    }

    /// `Decimal32(2)` is `Decimal(9, 2)` stored in 32 bits, which hold ten digits: a
    /// value past nine (made with `decimal_check_overflow = 0`) goes to the row decoder,
    /// which refuses it rather than make an array with more digits than its type.
    #[test]
    fn decimals_past_their_precision_go_to_the_row_decoder_which_refuses_them() {
        for (type_name, fits, too_wide) in [
            (
                "Decimal(9, 2)",
                999_999_999_i32.to_le_bytes().to_vec(),
                1_000_000_000_i32.to_le_bytes().to_vec(),
            ),
            (
                "Decimal(18, 4)",
                (-999_999_999_999_999_999_i64).to_le_bytes().to_vec(),
                (-1_000_000_000_000_000_000_i64).to_le_bytes().to_vec(),
            ),
            (
                "Decimal(38, 10)",
                (10_i128.pow(38) - 1).to_le_bytes().to_vec(),
                10_i128.pow(38).to_le_bytes().to_vec(),
            ),
            (
                "Decimal(76, 30)",
                (i256::from_i128(10).wrapping_pow(76) - i256::ONE)
                    .to_le_bytes()
                    .to_vec(),
                i256::from_i128(10).wrapping_pow(76).to_le_bytes().to_vec(),
            ),
        ] {
            let fits = [Some(fits)];
            assert!(natively(type_name, &fits, Tz::UTC).is_some(), "{type_name}");
            agree(type_name, &fits, Tz::UTC);
            let too_wide = [Some(too_wide)];
            assert!(
                natively(type_name, &too_wide, Tz::UTC).is_none(),
                "{type_name}"
            );
            let error = by_rows(type_name, &too_wide, Tz::UTC).unwrap_err();
            assert!(
                error
                    .message()
                    .contains("more digits than its column holds"),
                "{type_name}: {error}"
            );
        }
    }

    #[test]
    fn timestamps_with_nanoseconds_go_to_the_row_decoder_which_refuses_them() {
        let nanos = Some(1_i64.to_le_bytes().to_vec());
        assert!(natively("DateTime64(9)", std::slice::from_ref(&nanos), Tz::UTC).is_none());
        let error = by_rows("DateTime64(9)", &[nanos], Tz::UTC).unwrap_err();
        assert!(error.message().contains("nanoseconds"), "{error}");
        // Whole microseconds at precision 9 stay native.
        let micros = Some(1_000_i64.to_le_bytes().to_vec());
        assert!(natively("DateTime64(9)", &[micros], Tz::UTC).is_some());
    }

    #[test]
    fn types_without_a_native_decoder_go_to_the_row_decoder() {
        for type_name in [
            "UInt128",
            "Int256",
            "UInt256",
            "IPv4",
            "Enum8('a' = 1)",
            "Array(UInt8)",
            "Map(String, UInt8)",
            "Time",
            "DateTime('Nowhere/Atlantis')",
        ] {
            let data_type = DataTypeNode::new(type_name).unwrap();
            let (kind, _) = types::value_kind(&data_type);
            let column = Column::new("c", type_name, kind);
            let arrow_type = extdata_arrow::data_type(&column);
            assert_eq!(
                Native::of(types::unwrap_type(&data_type), &arrow_type, Tz::UTC),
                None,
                "{type_name}"
            );
        }
        // A decimal whose Arrow type is text (no precision in its name) is not native.
        let column = Column::new("c", "Decimal", ValueKind::Decimal);
        let t = DataTypeNode::new("Decimal(18, 4)").unwrap();
        assert_eq!(
            Native::of(&t, &extdata_arrow::data_type(&column), Tz::UTC),
            None
        );
    }

    fn column_values(width: usize) -> impl Strategy<Value = Vec<Option<Vec<u8>>>> {
        proptest::collection::vec(
            proptest::option::weighted(0.8, proptest::collection::vec(any::<u8>(), width)),
            0..40,
        )
    }

    proptest! {
        /// Generated columns of every native type: the native array equals the row
        /// path's whenever the native decoder takes the column.
        #[test]
        fn generated_columns_decode_as_the_row_path_does(
            (type_name, values) in proptest::sample::select(TYPES)
                .prop_flat_map(|(name, width)| (Just(name), column_values(width))),
            berlin in any::<bool>(),
        ) {
            let zone: Tz = if berlin { "Europe/Berlin".parse().unwrap() } else { Tz::UTC };
            agree(type_name, &values, zone);
        }

        /// Timestamps in the range servers hold are always decoded natively.
        #[test]
        fn timestamps_in_range_stay_native(
            seconds in -2_208_988_800_i64..10_413_792_000,
            micros in 0_i64..1_000_000,
        ) {
            let ticks = seconds * 1_000_000 + micros;
            let values = [Some(ticks.to_le_bytes().to_vec())];
            prop_assert!(natively("DateTime64(6, 'Asia/Tokyo')", &values, Tz::UTC).is_some());
            agree("DateTime64(6)", &values, "America/New_York".parse().unwrap());
        }
    }
}
