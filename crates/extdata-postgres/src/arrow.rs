//! Columnar reads (feature `arrow`): each value's binary wire bytes decoded straight into
//! the Arrow column builders, without a [`Value`](extdata_core::Value) per cell, into
//! the batches the row path gives (`extdata_arrow::BatchStream::from_rows` over
//! [`ExternalSource::stream`]) — the same schema ([`extdata_arrow::schema`] of the same
//! columns), the same values, the same errors.
//!
//! The rows are read by the generator of [`stream`](crate::stream) that the row stream
//! uses too, with its timeouts, cancel and session reset; only what a row is appended
//! to differs. A cell is decoded natively ([`Native`]) when its column is `bool`,
//! `int2`/`int4`/`int8`, `oid`, `float4`/`float8`, `numeric` with a declared precision
//! of at most 76 (into `Decimal128`/`Decimal256`), text types, `bytea`, `uuid`, `date`,
//! `timestamp` or `timestamptz`. Every other cell — and a native one that meets anything
//! unusual (`±infinity`, a date or timestamp far from today, `NaN`, a numeric with more
//! fraction digits than its column or too many digits, text that is not UTF-8) — is
//! decoded by the row decoder and appended with
//! [`ColumnBuilder::push`](extdata_arrow::ColumnBuilder::push), which gives the row
//! path's value or error.
//!
//! [`ExternalSource::stream`]: extdata_core::ExternalSource::stream

use arrow_schema::DataType;
use extdata_arrow::{BatchBuilder, BatchLimits, BatchStream, ColumnBuilder, RecordBatch};
use extdata_core::{Error, QueryOptions, Result, Statement};
use sqlx::postgres::PgRow;

use crate::stream::{self, Sink};
use crate::types::Decoder;
use crate::{PostgresSource, Shape, decode_cell, raw_bytes};

impl PostgresSource {
    /// Runs `statement` like [`stream`](extdata_core::ExternalSource::stream) and reads
    /// its result as Arrow [`RecordBatch`]es, decoding each value's wire bytes straight
    /// into the arrays (see the README's "Columnar reads"). The batches have the schema
    /// and the values the row path gives (`extdata_arrow::BatchStream::from_rows` over
    /// `stream`); each holds `limits.rows` rows, or fewer once its values take about
    /// `limits.bytes` bytes, and the last holds what is left.
    ///
    /// Everything else is as for `stream`: the connector's settings and `read_only`
    /// transaction, `options.timeout` bounding the wait for the first row and for each
    /// later one with the query cancelled on the server when it runs out, the query
    /// cancelled when the stream is dropped early, the session reset before the
    /// connection returns to the pool, one batch in memory at a time, the first error
    /// ending the stream, errors without the bound values.
    pub async fn stream_batches(
        &self,
        statement: &Statement,
        options: &QueryOptions,
        limits: BatchLimits,
    ) -> Result<BatchStream> {
        let query = self.open_stream(statement, options).await?;
        let columns = query.shape.columns.clone();
        let sink = ArrowBatch::new(&query.shape, limits, &query.connector);
        Ok(BatchStream::new(columns, stream::batches(query, sink)))
    }
}

/// The unix epoch as microseconds from PostgreSQL's (2000-01-01).
const EPOCH_SHIFT_MICROS: i64 = 946_684_800_000_000;
/// The unix epoch as days from PostgreSQL's.
const EPOCH_SHIFT_DAYS: i32 = 10_957;
/// Dates this many days from 2000-01-01 or closer are decoded natively; farther ones
/// (and `±infinity`) by the row decoder, which knows chrono's range.
const NATIVE_DAYS: i32 = 2_000_000;
/// Timestamps this many microseconds from 2000-01-01 or closer (about 3,000 years) are
/// decoded natively; farther ones by the row decoder.
const NATIVE_MICROS: i64 = 100_000_000_000_000_000;

/// How the cells of one column are decoded natively.
#[derive(Debug, Clone, Copy)]
enum Native {
    Bool,
    Int2,
    Int4,
    Int8,
    Oid,
    Float4,
    Float8,
    /// A `numeric` into a decimal column of this scale.
    Numeric(u32),
    Text,
    Bytea,
    Uuid,
    Date,
    Timestamp,
    /// Not natively: the row decoder.
    None,
}

impl Native {
    fn of(decoder: &Decoder, data_type: &DataType) -> Native {
        match (decoder, data_type) {
            (Decoder::Bool, _) => Native::Bool,
            (Decoder::Int2, _) => Native::Int2,
            (Decoder::Int4, _) => Native::Int4,
            (Decoder::Int8, _) => Native::Int8,
            (Decoder::Oid, _) => Native::Oid,
            (Decoder::Float4, _) => Native::Float4,
            (Decoder::Float8, _) => Native::Float8,
            (Decoder::Numeric, DataType::Decimal128(_, scale) | DataType::Decimal256(_, scale)) => {
                u32::try_from(*scale).map_or(Native::None, Native::Numeric)
            }
            (Decoder::Text, _) => Native::Text,
            (Decoder::Bytea, _) => Native::Bytea,
            (Decoder::Uuid, _) => Native::Uuid,
            (Decoder::Date, _) => Native::Date,
            (Decoder::Timestamp | Decoder::TimestampTz, _) => Native::Timestamp,
            _ => Native::None,
        }
    }

    /// Appends the value of `bytes` to `column`; `Ok(false)` when this value is left to
    /// the row decoder (nothing was appended).
    fn append(self, bytes: &[u8], column: &mut ColumnBuilder) -> Result<bool> {
        match self {
            Native::Bool => match bytes {
                [byte] => column.append_bool(*byte != 0)?,
                _ => return Ok(false),
            },
            Native::Int2 => match bytes.try_into() {
                Ok(b) => column.append_i16(i16::from_be_bytes(b))?,
                Err(_) => return Ok(false),
            },
            Native::Int4 => match bytes.try_into() {
                Ok(b) => column.append_i32(i32::from_be_bytes(b))?,
                Err(_) => return Ok(false),
            },
            Native::Int8 => match bytes.try_into() {
                Ok(b) => column.append_i64(i64::from_be_bytes(b))?,
                Err(_) => return Ok(false),
            },
            Native::Oid => match bytes.try_into() {
                Ok(b) => column.append_u32(u32::from_be_bytes(b))?,
                Err(_) => return Ok(false),
            },
            Native::Float4 => match bytes.try_into() {
                Ok(b) => column.append_f32(f32::from_be_bytes(b))?,
                Err(_) => return Ok(false),
            },
            Native::Float8 => match bytes.try_into() {
                Ok(b) => column.append_f64(f64::from_be_bytes(b))?,
                Err(_) => return Ok(false),
            },
            Native::Numeric(column_scale) => match numeric_mantissa(bytes) {
                Some((mantissa, scale)) if scale <= column_scale => {
                    column.append_decimal(mantissa, scale)?
                }
                _ => return Ok(false),
            },
            Native::Text => match std::str::from_utf8(bytes) {
                Ok(text) => column.append_str(text)?,
                Err(_) => return Ok(false),
            },
            Native::Bytea => column.append_bytes(bytes)?,
            Native::Uuid => match bytes.try_into() {
                Ok(b) => column.append_uuid(b)?,
                Err(_) => return Ok(false),
            },
            Native::Date => match bytes.try_into().map(i32::from_be_bytes) {
                Ok(days) if (-NATIVE_DAYS..=NATIVE_DAYS).contains(&days) => {
                    column.append_date_days(days + EPOCH_SHIFT_DAYS)?
                }
                _ => return Ok(false),
            },
            Native::Timestamp => match bytes.try_into().map(i64::from_be_bytes) {
                Ok(micros) if (-NATIVE_MICROS..=NATIVE_MICROS).contains(&micros) => {
                    column.append_timestamp_micros(micros + EPOCH_SHIFT_MICROS)?
                }
                _ => return Ok(false),
            },
            Native::None => return Ok(false),
        }
        Ok(true)
    }
}

/// A finite `numeric`'s wire bytes as `(mantissa, scale)` at its display scale;
/// `None` for `NaN`/`±Infinity`, a value whose mantissa does not fit 128 bits, nonzero
/// digits past the display scale, or bytes that are not a `numeric`.
fn numeric_mantissa(bytes: &[u8]) -> Option<(i128, u32)> {
    let header = bytes.get(..8)?;
    let ndigits = usize::try_from(i16::from_be_bytes([header[0], header[1]])).ok()?;
    let weight = i64::from(i16::from_be_bytes([header[2], header[3]]));
    let sign = u16::from_be_bytes([header[4], header[5]]);
    let dscale = u32::from(u16::from_be_bytes([header[6], header[7]]));
    let negative = match sign {
        0x0000 => false,
        0x4000 => true,
        _ => return None,
    };
    let digits = bytes.get(8..)?;
    if digits.len() != 2 * ndigits {
        return None;
    }
    // The digits as one base-10000 integer, worth 10000^(weight + 1 - ndigits) per unit.
    let mut mantissa: i128 = 0;
    for pair in digits.chunks_exact(2) {
        let digit = i16::from_be_bytes([pair[0], pair[1]]);
        if !(0..10_000).contains(&digit) {
            return None;
        }
        mantissa = mantissa
            .checked_mul(10_000)?
            .checked_add(i128::from(digit))?;
    }
    // The scale of that integer, in decimal digits (negative: trailing zero groups).
    let scale = 4 * (i64::try_from(ndigits).ok()? - weight - 1);
    let dscale_i = i64::from(dscale);
    if scale > dscale_i {
        let divisor = 10i128.checked_pow(u32::try_from(scale - dscale_i).ok()?)?;
        if mantissa % divisor != 0 {
            return None;
        }
        mantissa /= divisor;
    } else {
        let factor = 10i128.checked_pow(u32::try_from(dscale_i - scale).ok()?)?;
        mantissa = mantissa.checked_mul(factor)?;
    }
    Some((if negative { -mantissa } else { mantissa }, dscale))
}

/// The batch stream's sink: the Arrow column builders of the result, filled up to the
/// batch limits.
struct ArrowBatch {
    builder: BatchBuilder,
    natives: Vec<Native>,
    /// Named in the row decoder's errors, as the row path names it.
    connector: String,
}

impl ArrowBatch {
    fn new(shape: &Shape, limits: BatchLimits, connector: &str) -> ArrowBatch {
        let builder = BatchBuilder::with_limits(&shape.columns, limits);
        let natives = shape
            .decoders
            .iter()
            .zip(builder.schema().fields())
            .map(|(decoder, field)| Native::of(decoder, field.data_type()))
            .collect();
        ArrowBatch {
            builder,
            natives,
            connector: connector.to_owned(),
        }
    }

    /// Appends the cells of `row` to the column builders. `Err` carries the error and
    /// whether it came from the row decoder (the row path names the connector in those).
    fn append_cells(&mut self, row: &PgRow, shape: &Shape) -> Result<(), (Error, bool)> {
        let columns = self.builder.columns_mut();
        for (index, (column, native)) in columns.iter_mut().zip(&self.natives).enumerate() {
            let bytes = raw_bytes(row, index).map_err(|e| (e, true))?;
            let Some(bytes) = bytes else {
                column.append_null();
                continue;
            };
            let appended = match native.append(bytes, column) {
                Ok(true) => Ok(()),
                Ok(false) => match decode_cell(shape, index, Some(bytes)) {
                    Ok(value) => column.push(&value),
                    Err(err) => return Err((err, true)),
                },
                Err(err) => Err(err),
            };
            if let Err(err) = appended {
                // The row path decodes the whole row before building it: a later cell
                // the row decoder refuses is the error it reports.
                for later in index + 1..shape.decoders.len() {
                    if let Err(err) =
                        raw_bytes(row, later).and_then(|bytes| decode_cell(shape, later, bytes))
                    {
                        return Err((err, true));
                    }
                }
                return Err((err, false));
            }
        }
        Ok(())
    }
}

impl Sink for ArrowBatch {
    type Batch = RecordBatch;
    const YIELD_WHEN_WAITING: bool = false;

    fn append(&mut self, row: &PgRow, shape: &Shape) -> Result<Option<RecordBatch>> {
        match self.append_cells(row, shape) {
            Ok(()) => self.builder.end_row(),
            Err((err, true)) => Err(err.with_connector(&self.connector)),
            Err((err, false)) => Err(err),
        }
    }

    fn is_empty(&self) -> bool {
        self.builder.is_empty()
    }

    fn take(&mut self, failed: bool) -> Option<Result<RecordBatch>> {
        // Like the row path's batches, an error drops the rows of the unfinished batch
        // (the last of them may be half-appended).
        (!failed && !self.builder.is_empty()).then(|| self.builder.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(ndigits: i16, weight: i16, sign: u16, dscale: u16, digits: &[i16]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for part in [ndigits, weight] {
            bytes.extend(part.to_be_bytes());
        }
        bytes.extend(sign.to_be_bytes());
        bytes.extend(dscale.to_be_bytes());
        for digit in digits {
            bytes.extend(digit.to_be_bytes());
        }
        bytes
    }

    #[test]
    fn numeric_mantissas_are_exact_at_the_display_scale() {
        // 12345.678: digits 1, 2345, 6780, weight 1, dscale 3.
        assert_eq!(
            numeric_mantissa(&numeric(3, 1, 0, 3, &[1, 2345, 6780])),
            Some((12_345_678, 3))
        );
        // -20000 (trailing zero group left out): digits 2, weight 1, dscale 2.
        assert_eq!(
            numeric_mantissa(&numeric(1, 1, 0x4000, 2, &[2])),
            Some((-2_000_000, 2))
        );
        // 0.0005: digit 5, weight -1, dscale 4.
        assert_eq!(numeric_mantissa(&numeric(1, -1, 0, 4, &[5])), Some((5, 4)));
        assert_eq!(numeric_mantissa(&numeric(0, 0, 0, 0, &[])), Some((0, 0)));
        // NaN, digits past the display scale, a 40-digit mantissa: the row decoder's.
        assert_eq!(numeric_mantissa(&numeric(0, 0, 0xC000, 0, &[])), None);
        assert_eq!(numeric_mantissa(&numeric(1, -1, 0, 2, &[5])), None);
        assert_eq!(numeric_mantissa(&numeric(10, 9, 0, 0, &[9999; 10])), None);
        assert_eq!(numeric_mantissa(&[0, 1]), None);
    }
}
