//! Columnar reads (feature `arrow`): each value of the driver's rows decoded from its
//! wire bytes (sqlx's `MySqlValueRef`, text or binary protocol) straight into the Arrow
//! column builders, without a [`Value`](extdata_core::Value) per cell, into the batches
//! the row path gives (`extdata_arrow::BatchStream::from_rows` over
//! [`ExternalSource::stream`]) — the same schema ([`extdata_arrow::schema`] of the same
//! columns), the same values, the same errors.
//!
//! The rows are read by the loop of [`stream`](crate::stream) that the row stream uses
//! too, with its timeouts, `KILL QUERY` and connection recovery; only what a row is
//! appended to differs. A cell is decoded natively when its column is an integer
//! (signed or unsigned, `YEAR`, `BIT`), `FLOAT`/`DOUBLE`, a `DECIMAL` whose column is an
//! Arrow decimal (the protocol names no precision, so today a `DECIMAL` column is text
//! and read by the row decoder), text (`CHAR`, `VARCHAR`, `TEXT`, `ENUM`, `SET`, MariaDB's `JSON`), binary (`BINARY`,
//! `VARBINARY`, `BLOB`, `GEOMETRY`), `DATE`, `DATETIME` or `TIMESTAMP`. Every other cell
//! (`TIME`, MySQL's `JSON`) — and a native one whose value the typed read refuses (a zero
//! date, a `DECIMAL` with more fraction digits than its column) — is decoded by the row
//! decoder and appended with [`ColumnBuilder::push`], which gives the row path's value or
//! error.
//!
//! [`ExternalSource::stream`]: extdata_core::ExternalSource::stream

use arrow_schema::DataType;
use chrono::{NaiveDate, NaiveDateTime, TimeZone};
use extdata_arrow::{BatchBuilder, BatchLimits, BatchStream, ColumnBuilder, RecordBatch};
use extdata_core::driver::Bound;
use extdata_core::{Columns, Decimal, Error, QueryOptions, Result, Statement};
use sqlx::mysql::{MySql, MySqlRow, MySqlValueRef};
use sqlx::{Decode, Row as _, ValueRef as _};

use crate::MySqlSource;
use crate::connect::TimestampMode;
use crate::stream::Sink;
use crate::types::{Native, RowDecoder};

impl MySqlSource {
    /// Runs `statement` like [`stream`](extdata_core::ExternalSource::stream) and reads
    /// its result as Arrow [`RecordBatch`]es, decoding each value straight into the
    /// arrays (see the README's "Columnar reads"). The batches have the schema and the
    /// values the row path gives (`extdata_arrow::BatchStream::from_rows` over
    /// `stream`); each holds `limits.rows` rows, or fewer once its values take about
    /// `limits.bytes` bytes, and the last holds what is left.
    ///
    /// Everything else is as for `stream`: the connector's session and `read_only`,
    /// `options.timeout` bounding the wait for the first row and for each later one
    /// with `KILL QUERY` when it runs out, the statement stopped when the stream is
    /// dropped early, the connection pooled again only once it answers, one batch in
    /// memory at a time, the first error ending the stream, errors without the bound
    /// values.
    pub async fn stream_batches(
        &self,
        statement: &Statement,
        options: &QueryOptions,
        limits: BatchLimits,
    ) -> Result<BatchStream> {
        let timeout = options.timeout_or(self.inner.config.query_timeout);
        let sink = ArrowBatch {
            limits,
            builder: None,
            natives: Vec::new(),
            connector: self.inner.config.name.clone(),
        };
        let (columns, batches) = self
            .inner
            .start(statement, Bound::PerRow(timeout), sink)
            .await?;
        Ok(BatchStream::new(columns, batches))
    }
}

/// How the cells of one column are decoded natively.
#[derive(Debug, Clone, Copy)]
enum Cell {
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
    /// A `DECIMAL` into a decimal column of this scale.
    Decimal(u32),
    /// A `DECIMAL` into a text column (sqlx does not tell a column's precision and
    /// scale, so `extdata_arrow::data_type` makes a MySQL `DECIMAL` text): the server's
    /// text when it is what the row path's `Decimal` keeps.
    DecimalText,
    Text,
    Bytes,
    Date,
    DateTime,
    Timestamp(TimestampMode),
    /// Not natively: the row decoder.
    RowDecoder,
}

impl Cell {
    fn of(native: Native, data_type: &DataType, timestamps: TimestampMode) -> Cell {
        match (native, data_type) {
            (Native::I8, _) => Cell::I8,
            (Native::I16, _) => Cell::I16,
            (Native::I32, _) => Cell::I32,
            (Native::I64, _) => Cell::I64,
            (Native::U8, _) => Cell::U8,
            (Native::U16 | Native::Year, _) => Cell::U16,
            (Native::U32, _) => Cell::U32,
            (Native::U64 | Native::Bit, _) => Cell::U64,
            (Native::F32, _) => Cell::F32,
            (Native::F64, _) => Cell::F64,
            (Native::Decimal, DataType::Decimal128(_, scale) | DataType::Decimal256(_, scale)) => {
                u32::try_from(*scale).map_or(Cell::RowDecoder, Cell::Decimal)
            }
            (Native::Decimal, DataType::Utf8) => Cell::DecimalText,
            (Native::Text, _) => Cell::Text,
            (Native::Bytes, _) => Cell::Bytes,
            (Native::Date, _) => Cell::Date,
            (Native::DateTime, _) => Cell::DateTime,
            (Native::Timestamp, _) => Cell::Timestamp(timestamps),
            _ => Cell::RowDecoder,
        }
    }

    /// Appends the value of `raw` (not NULL) to `column`; `Ok(false)` when this value is
    /// left to the row decoder (nothing was appended).
    fn append(self, raw: MySqlValueRef<'_>, column: &mut ColumnBuilder) -> Result<bool> {
        macro_rules! get {
            ($t:ty) => {
                match <$t as Decode<MySql>>::decode(raw) {
                    Ok(value) => value,
                    Err(_) => return Ok(false),
                }
            };
        }
        match self {
            Cell::I8 => column.append_i8(get!(i8))?,
            Cell::I16 => column.append_i16(get!(i16))?,
            Cell::I32 => column.append_i32(get!(i32))?,
            Cell::I64 => column.append_i64(get!(i64))?,
            Cell::U8 => column.append_u8(get!(u8))?,
            Cell::U16 => column.append_u16(get!(u16))?,
            Cell::U32 => column.append_u32(get!(u32))?,
            Cell::U64 => column.append_u64(get!(u64))?,
            Cell::F32 => column.append_f32(get!(f32))?,
            Cell::F64 => column.append_f64(get!(f64))?,
            Cell::Decimal(column_scale) => match decimal_mantissa(get!(&str)) {
                Some((mantissa, scale)) if scale <= column_scale => {
                    column.append_decimal(mantissa, scale)?
                }
                _ => return Ok(false),
            },
            Cell::DecimalText => match get!(&str) {
                text if Decimal::is_canonical(text) => column.append_str(text)?,
                _ => return Ok(false),
            },
            Cell::Text => column.append_str(get!(&str))?,
            Cell::Bytes => column.append_bytes(get!(&[u8]))?,
            Cell::Date => column.append_date_days(days_since_epoch(get!(NaiveDate)))?,
            Cell::DateTime => match micros_since_epoch(get!(NaiveDateTime)) {
                Some(micros) => column.append_timestamp_micros(micros)?,
                None => return Ok(false),
            },
            Cell::Timestamp(timestamps) => {
                let naive = get!(NaiveDateTime);
                let micros = match timestamps {
                    TimestampMode::Offset(offset) => offset
                        .from_local_datetime(&naive)
                        .single()
                        .map(|instant| instant.timestamp_micros()),
                    TimestampMode::WallClock => micros_since_epoch(naive),
                };
                match micros {
                    Some(micros) => column.append_timestamp_micros(micros)?,
                    None => return Ok(false),
                }
            }
            Cell::RowDecoder => return Ok(false),
        }
        Ok(true)
    }
}

fn days_since_epoch(date: NaiveDate) -> i32 {
    // The unix epoch as days from 0001-01-01 (chrono's day count).
    const EPOCH_DAYS_FROM_CE: i32 = 719_163;
    chrono::Datelike::num_days_from_ce(&date) - EPOCH_DAYS_FROM_CE
}

/// Microseconds since the unix epoch of a wall-clock time read as UTC; `None` when it
/// has digits below the microsecond (the row path's error then).
fn micros_since_epoch(at: NaiveDateTime) -> Option<i64> {
    let at = at.and_utc();
    at.timestamp_subsec_nanos()
        .is_multiple_of(1000)
        .then(|| at.timestamp_micros())
}

/// A `DECIMAL`'s digits (`-123.4500`) as `(mantissa, fraction digits)`; `None` for
/// anything else or a mantissa that does not fit 128 bits.
fn decimal_mantissa(text: &str) -> Option<(i128, u32)> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut mantissa: i128 = 0;
    for byte in int.bytes().chain(frac.bytes()) {
        if !byte.is_ascii_digit() {
            return None;
        }
        mantissa = mantissa
            .checked_mul(10)?
            .checked_add(i128::from(byte - b'0'))?;
    }
    let scale = u32::try_from(frac.len()).ok()?;
    Some((if negative { -mantissa } else { mantissa }, scale))
}

/// The batch stream's sink: the Arrow column builders of the result (made once its
/// columns are known), filled up to the batch limits.
struct ArrowBatch {
    limits: BatchLimits,
    builder: Option<BatchBuilder>,
    /// By column, how it is decoded; worked out from the first row's decoder.
    natives: Vec<Cell>,
    /// Named in the row decoder's errors, as the row path names it.
    connector: String,
}

impl ArrowBatch {
    /// Appends the cells of `row`. `Err` carries the error and whether it came from the
    /// row decoder (the row path names the connector in those).
    fn append_cells(
        &mut self,
        row: &MySqlRow,
        decoder: &mut RowDecoder,
    ) -> std::result::Result<(), (Error, bool)> {
        let Some(builder) = self.builder.as_mut() else {
            return Err((Error::decode("a row before the result's columns"), false));
        };
        let width = builder.columns_mut().len();
        if row.len() != width {
            // The row path's decoder reads the row first (a later result set of
            // `CALL`), then the batch refuses its width.
            decoder.decode_row(row).map_err(|e| (e, true))?;
            return Err((
                Error::decode(format!("a row of {} values for {width} columns", row.len())),
                false,
            ));
        }
        if self.natives.is_empty() {
            let timestamps = decoder.timestamps();
            self.natives = decoder
                .natives()
                .iter()
                .zip(builder.schema().fields())
                .map(|(native, field)| Cell::of(*native, field.data_type(), timestamps))
                .collect();
        }
        let columns = builder.columns_mut();
        for (index, (column, cell)) in columns.iter_mut().zip(&self.natives).enumerate() {
            let raw = row
                .try_get_raw(index)
                .map_err(|e| (Error::decode(format!("column {index}: {e}")), true))?;
            if raw.is_null() {
                column.append_null();
                continue;
            }
            let appended = match cell.append(raw, column) {
                Ok(true) => Ok(()),
                Ok(false) => match decoder.decode_cell(row, index) {
                    Ok(value) => column.push(&value),
                    Err(err) => return Err((err, true)),
                },
                Err(err) => Err(err),
            };
            if let Err(err) = appended {
                // The row path decodes the whole row before building it: a later cell
                // the row decoder refuses is the error it reports.
                for later in index + 1..width {
                    decoder
                        .decode_cell(row, later)
                        .map_err(|later_err| (later_err, true))?;
                }
                return Err((err, false));
            }
        }
        Ok(())
    }
}

impl Sink for ArrowBatch {
    type Item = RecordBatch;

    fn start(&mut self, columns: &Columns) {
        self.builder = Some(BatchBuilder::with_limits(columns, self.limits));
    }

    fn append(
        &mut self,
        row: &MySqlRow,
        _columns: &Columns,
        decoder: &mut RowDecoder,
    ) -> Result<Option<RecordBatch>> {
        match self.append_cells(row, decoder) {
            Ok(()) => match self.builder.as_mut() {
                Some(builder) => builder.end_row(),
                None => Ok(None),
            },
            Err((err, true)) => Err(err.with_connector(self.connector.clone())),
            Err((err, false)) => Err(err),
        }
    }

    fn finish(&mut self) -> Option<Result<RecordBatch>> {
        let builder = self.builder.as_mut()?;
        (!builder.is_empty()).then(|| builder.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_digits_become_exact_mantissas() {
        assert_eq!(decimal_mantissa("-123.4500"), Some((-1_234_500, 4)));
        assert_eq!(decimal_mantissa("0"), Some((0, 0)));
        assert_eq!(decimal_mantissa(".5"), Some((5, 1)));
        assert_eq!(decimal_mantissa("1e5"), None);
        assert_eq!(decimal_mantissa("-"), None);
        assert_eq!(decimal_mantissa(&"9".repeat(40)), None);
    }
}
