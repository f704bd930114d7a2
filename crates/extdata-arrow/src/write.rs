//! Writing rows as they arrive: an Arrow IPC stream (`IpcStreamWriter`, feature `ipc`)
//! or a Parquet file (`ParquetFileWriter`, feature `parquet`). Both keep one batch of
//! rows in memory (and Parquet one row group), whatever the size of the result.

use std::io::{self, Write};

use arrow_array::RecordBatch;
use extdata_core::{Column, RowStream, Value};
use futures::StreamExt as _;

use crate::{BatchBuilder, BatchLimits, BatchStream};

/// A columnar writer fed one row at a time: it writes a batch each time one fills up
/// ([`BatchLimits`]). Implemented by `IpcStreamWriter` and `ParquetFileWriter`.
///
/// Errors are [`io::Error`]s: the output's own, or [`io::ErrorKind::InvalidData`] for a
/// value that does not fit its Arrow column (its inner error is the
/// [`extdata_core::Error`] naming the column).
pub trait RowSink: Send {
    /// Appends one row, values in column order; writes a batch when it is full.
    fn push(&mut self, values: &[Value]) -> io::Result<()>;

    /// Writes a whole batch (one of a [`BatchStream`] of the same columns), after the
    /// rows pushed so far. A batch of another schema is [`io::ErrorKind::InvalidData`].
    fn push_batch(&mut self, batch: &RecordBatch) -> io::Result<()>;

    /// Pushes out what can be pushed out now, for a reader of a slow result: the Arrow
    /// stream writes the rows so far as a (short) batch; Parquet, whose row groups are
    /// only readable with the footer, flushes its output buffer only.
    fn flush(&mut self) -> io::Result<()>;

    /// Writes the last batch and the end of the stream or file, and flushes. Call it
    /// once; an output not finished is incomplete (an Arrow stream without its end
    /// marker, a Parquet file without its footer).
    fn finish(&mut self) -> io::Result<()>;

    /// Rows pushed so far.
    fn rows(&self) -> u64;
}

/// Writes every row of `stream` to `sink`, then finishes it; returns the row count.
/// A failing row ends it with that error (as [`io::ErrorKind::Other`] wrapping the
/// [`extdata_core::Error`]); the output is then left unfinished.
pub async fn write_stream(mut stream: RowStream, sink: &mut dyn RowSink) -> io::Result<u64> {
    while let Some(row) = stream.next().await {
        let row = row.map_err(io::Error::other)?;
        sink.push(row.values())?;
    }
    sink.finish()?;
    Ok(sink.rows())
}

/// Writes every batch of `stream` to `sink`, then finishes it; returns the row count.
/// A failing batch ends it with that error (as [`io::ErrorKind::Other`] wrapping the
/// [`extdata_core::Error`]); the output is then left unfinished.
pub async fn write_batches(mut stream: BatchStream, sink: &mut dyn RowSink) -> io::Result<u64> {
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(io::Error::other)?;
        sink.push_batch(&batch)?;
    }
    sink.finish()?;
    Ok(sink.rows())
}

/// A value that did not fit its column, as an I/O error.
fn data_error(error: extdata_core::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

/// Where full batches go: the Arrow stream or the Parquet file.
trait Encoder {
    fn encode(&mut self, batch: &RecordBatch) -> io::Result<()>;
}

/// Rows being gathered into batches for an [`Encoder`]: what both writers share.
struct Batches<E> {
    builder: BatchBuilder,
    encoder: E,
    rows: u64,
}

impl<E: Encoder> Batches<E> {
    fn push(&mut self, values: &[Value]) -> io::Result<()> {
        if let Some(batch) = self.builder.push_values(values).map_err(data_error)? {
            self.encoder.encode(&batch)?;
        }
        self.rows += 1;
        Ok(())
    }

    /// Encodes the rows gathered so far, then `batch`, which must have the schema.
    fn push_batch(&mut self, batch: &RecordBatch) -> io::Result<()> {
        if batch.schema().fields() != self.builder.schema().fields() {
            return Err(data_error(extdata_core::Error::decode(
                "a batch whose schema is not the writer's",
            )));
        }
        self.encode_rest()?;
        if batch.num_rows() > 0 {
            self.encoder.encode(batch)?;
        }
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Encodes the rows gathered so far, if any, as a (short) batch.
    fn encode_rest(&mut self) -> io::Result<()> {
        if self.builder.is_empty() {
            return Ok(());
        }
        let batch = self.builder.finish().map_err(data_error)?;
        self.encoder.encode(&batch)
    }
}

extdata_core::debug_fields!(Batches<E> |batches| { builder, rows });

#[cfg(feature = "ipc")]
pub use ipc::IpcStreamWriter;

#[cfg(feature = "ipc")]
mod ipc {
    use super::*;
    use arrow_ipc::writer::StreamWriter;
    use arrow_schema::ArrowError;

    /// Rows as an Arrow IPC **stream** (the schema, then one message per batch, then
    /// the end marker), written to any [`Write`] as batches fill up. Read it back with
    /// `arrow_ipc::reader::StreamReader` (or `pyarrow.ipc.open_stream`).
    pub struct IpcStreamWriter<W: Write>(Batches<StreamWriter<W>>);

    impl<W: Write> std::fmt::Debug for IpcStreamWriter<W> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_tuple("IpcStreamWriter").field(&self.0).finish()
        }
    }

    /// The I/O error inside an Arrow error, so that a closed reader stays recognisable.
    fn arrow_io_error(error: ArrowError) -> io::Error {
        match error {
            ArrowError::IoError(_, error) => error,
            other => io::Error::other(other),
        }
    }

    impl<W: Write> Encoder for StreamWriter<W> {
        fn encode(&mut self, batch: &RecordBatch) -> io::Result<()> {
            self.write(batch).map_err(arrow_io_error)
        }
    }

    impl<W: Write> IpcStreamWriter<W> {
        /// Writes the schema of `columns` to `out` and returns the writer. `out` is
        /// written in one call per message: give it a buffer ([`io::BufWriter`]).
        pub fn try_new(out: W, columns: &[Column], limits: BatchLimits) -> io::Result<Self> {
            let builder = BatchBuilder::with_limits(columns, limits);
            let encoder = StreamWriter::try_new(out, builder.schema()).map_err(arrow_io_error)?;
            Ok(IpcStreamWriter(Batches {
                builder,
                encoder,
                rows: 0,
            }))
        }

        /// Finishes the stream and returns the output.
        pub fn into_inner(mut self) -> io::Result<W> {
            self.0.encode_rest()?;
            self.0.encoder.into_inner().map_err(arrow_io_error)
        }
    }

    impl<W: Write + Send> RowSink for IpcStreamWriter<W> {
        fn push(&mut self, values: &[Value]) -> io::Result<()> {
            self.0.push(values)
        }

        fn push_batch(&mut self, batch: &RecordBatch) -> io::Result<()> {
            self.0.push_batch(batch)
        }

        fn flush(&mut self) -> io::Result<()> {
            self.0.encode_rest()?;
            self.0.encoder.get_mut().flush()
        }

        fn finish(&mut self) -> io::Result<()> {
            self.0.encode_rest()?;
            self.0.encoder.finish().map_err(arrow_io_error)?;
            self.0.encoder.get_mut().flush()
        }

        fn rows(&self) -> u64 {
            self.0.rows
        }
    }
}

#[cfg(feature = "parquet")]
pub use parquet_file::{ParquetFileWriter, ParquetLimits};

#[cfg(feature = "parquet")]
mod parquet_file {
    use super::*;
    use parquet::arrow::ArrowWriter;
    use parquet::basic::Compression;
    use parquet::errors::ParquetError;
    use parquet::file::properties::WriterProperties;

    /// Where a `ParquetFileWriter` cuts its batches and row groups.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct ParquetLimits {
        /// The batches handed to the Parquet encoder.
        pub batch: BatchLimits,
        /// Rows per row group at most.
        pub row_group_rows: usize,
        /// A row group is closed once the encoder holds about this many bytes for it.
        pub row_group_bytes: usize,
    }

    impl Default for ParquetLimits {
        /// Default batches, row groups of at most 128 Ki rows and 64 MiB.
        fn default() -> Self {
            ParquetLimits {
                batch: BatchLimits::default(),
                row_group_rows: 128 * 1024,
                row_group_bytes: 64 * 1024 * 1024,
            }
        }
    }

    /// Rows as a Parquet file (Snappy-compressed, with the Arrow schema embedded so
    /// that readers get the exact Arrow types back), written to any [`Write`] — no
    /// seeking, so stdout works — one row group at a time.
    pub struct ParquetFileWriter<W: Write + Send>(Batches<RowGroups<W>>);

    impl<W: Write + Send> std::fmt::Debug for ParquetFileWriter<W> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_tuple("ParquetFileWriter").field(&self.0).finish()
        }
    }

    /// The Parquet encoder, closing a row group once it holds `row_group_bytes`.
    struct RowGroups<W: Write + Send> {
        writer: ArrowWriter<W>,
        row_group_bytes: usize,
    }

    /// The I/O error inside a Parquet error, so that a closed reader stays recognisable.
    fn parquet_io_error(error: ParquetError) -> io::Error {
        match error {
            ParquetError::External(inner) => match inner.downcast::<io::Error>() {
                Ok(error) => *error,
                Err(other) => io::Error::other(other),
            },
            other => io::Error::other(other),
        }
    }

    impl<W: Write + Send> Encoder for RowGroups<W> {
        fn encode(&mut self, batch: &RecordBatch) -> io::Result<()> {
            self.writer.write(batch).map_err(parquet_io_error)?;
            if self.writer.memory_size() >= self.row_group_bytes {
                self.writer.flush().map_err(parquet_io_error)?;
            }
            Ok(())
        }
    }

    impl<W: Write + Send> ParquetFileWriter<W> {
        /// Writes the file's magic bytes to `out` and returns the writer.
        pub fn try_new(out: W, columns: &[Column], limits: ParquetLimits) -> io::Result<Self> {
            let builder = BatchBuilder::with_limits(columns, limits.batch);
            let properties = WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_max_row_group_size(limits.row_group_rows.max(1))
                .build();
            let writer = ArrowWriter::try_new(out, builder.schema().clone(), Some(properties))
                .map_err(parquet_io_error)?;
            Ok(ParquetFileWriter(Batches {
                builder,
                encoder: RowGroups {
                    writer,
                    row_group_bytes: limits.row_group_bytes.max(1),
                },
                rows: 0,
            }))
        }

        /// Finishes the file and returns the output.
        pub fn into_inner(mut self) -> io::Result<W> {
            self.0.encode_rest()?;
            // Flushes the last row group and writes the footer.
            self.0.encoder.writer.into_inner().map_err(parquet_io_error)
        }
    }

    impl<W: Write + Send> RowSink for ParquetFileWriter<W> {
        fn push(&mut self, values: &[Value]) -> io::Result<()> {
            self.0.push(values)
        }

        fn push_batch(&mut self, batch: &RecordBatch) -> io::Result<()> {
            self.0.push_batch(batch)
        }

        fn flush(&mut self) -> io::Result<()> {
            self.0.encoder.writer.sync()
        }

        fn finish(&mut self) -> io::Result<()> {
            self.0.encode_rest()?;
            let writer = &mut self.0.encoder.writer;
            writer.finish().map_err(parquet_io_error)?;
            writer.inner_mut().flush()
        }

        fn rows(&self) -> u64 {
            self.0.rows
        }
    }
}

#[cfg(all(test, feature = "ipc", feature = "parquet"))]
mod tests {
    use super::*;
    use arrow_schema::{DataType, TimeUnit};
    use chrono::DateTime;
    use extdata_core::{Columns, Row, ValueKind};

    fn columns() -> Columns {
        vec![
            Column::new("id", "int8", ValueKind::I64),
            Column::new("amount", "numeric(20,3)", ValueKind::Decimal),
            Column::new("at", "timestamptz", ValueKind::TimestampTz),
            Column::new("note", "text", ValueKind::Text),
        ]
        .into()
    }

    fn values(id: i64) -> Vec<Value> {
        vec![
            Value::I64(id),
            Value::Decimal(format!("{id}.125").parse().unwrap()),
            Value::TimestampTz(DateTime::parse_from_rfc3339("2024-03-01T10:00:00+02:00").unwrap()),
            if id % 3 == 0 {
                Value::Null
            } else {
                Value::Text(format!("line {id}\nsecond line"))
            },
        ]
    }

    fn limits(rows: usize) -> BatchLimits {
        BatchLimits {
            rows,
            bytes: usize::MAX,
        }
    }

    /// The batches the plain builder makes of rows `1..=n`: what both files must hold.
    fn expected(n: i64) -> RecordBatch {
        let mut builder = BatchBuilder::new(&columns(), 1000);
        for id in 1..=n {
            assert!(builder.push_values(&values(id)).unwrap().is_none());
        }
        builder.finish().unwrap()
    }

    /// Asserts that `batches`, one after the other, hold exactly `expected`.
    fn assert_holds(batches: &[RecordBatch], expected: &RecordBatch) {
        let mut offset = 0;
        for batch in batches {
            assert_eq!(batch, &expected.slice(offset, batch.num_rows()));
            offset += batch.num_rows();
        }
        assert_eq!(offset, expected.num_rows());
    }

    #[test]
    fn an_ipc_stream_reads_back_exactly_in_bounded_batches() {
        let mut writer = IpcStreamWriter::try_new(Vec::new(), &columns(), limits(2)).unwrap();
        for id in 1..=5 {
            writer.push(&values(id)).unwrap();
        }
        assert_eq!(writer.rows(), 5);
        let bytes = writer.into_inner().unwrap();
        let reader = arrow_ipc::reader::StreamReader::try_new(bytes.as_slice(), None).unwrap();
        let schema = reader.schema();
        let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        assert_eq!(
            batches
                .iter()
                .map(RecordBatch::num_rows)
                .collect::<Vec<_>>(),
            [2, 2, 1]
        );
        assert_eq!(schema.field(1).data_type(), &DataType::Decimal128(20, 3));
        assert_eq!(
            schema.field(2).data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()))
        );
        assert_holds(&batches, &expected(5));
    }

    #[test]
    fn ipc_flush_writes_the_rows_so_far_as_a_batch() {
        let mut writer = IpcStreamWriter::try_new(Vec::new(), &columns(), limits(100)).unwrap();
        writer.push(&values(1)).unwrap();
        RowSink::flush(&mut writer).unwrap();
        writer.push(&values(2)).unwrap();
        RowSink::finish(&mut writer).unwrap();
        let bytes = writer.into_inner().unwrap();
        let reader = arrow_ipc::reader::StreamReader::try_new(bytes.as_slice(), None).unwrap();
        let sizes: Vec<usize> = reader.map(|b| b.unwrap().num_rows()).collect();
        assert_eq!(sizes, [1, 1]);
    }

    #[test]
    fn a_parquet_file_reads_back_exactly_with_bounded_row_groups() {
        let file = tempfile::tempfile().unwrap();
        let mut writer = ParquetFileWriter::try_new(
            file.try_clone().unwrap(),
            &columns(),
            ParquetLimits {
                batch: limits(2),
                row_group_rows: 3,
                row_group_bytes: usize::MAX,
            },
        )
        .unwrap();
        for id in 1..=7 {
            writer.push(&values(id)).unwrap();
        }
        RowSink::finish(&mut writer).unwrap();
        let builder =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        let groups: Vec<usize> = builder
            .metadata()
            .row_groups()
            .iter()
            .map(|g| usize::try_from(g.num_rows()).unwrap())
            .collect();
        assert_eq!(groups, [3, 3, 1]);
        let batches: Vec<RecordBatch> = builder.build().unwrap().map(|b| b.unwrap()).collect();
        assert_holds(&batches, &expected(7));
    }

    #[test]
    fn parquet_row_groups_are_cut_by_bytes_too() {
        let file = tempfile::tempfile().unwrap();
        let mut writer = ParquetFileWriter::try_new(
            file.try_clone().unwrap(),
            &columns(),
            ParquetLimits {
                batch: limits(10),
                row_group_rows: usize::MAX,
                row_group_bytes: 1,
            },
        )
        .unwrap();
        for id in 1..=30 {
            writer.push(&values(id)).unwrap();
        }
        writer.into_inner().unwrap();
        let builder =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        assert_eq!(builder.metadata().num_row_groups(), 3);
    }

    /// An output whose reader went away.
    struct Closed;

    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_output_and_a_value_that_does_not_fit_keep_their_kinds() {
        let error = IpcStreamWriter::try_new(Closed, &columns(), limits(1)).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::BrokenPipe);
        let mut parquet =
            ParquetFileWriter::try_new(Closed, &columns(), ParquetLimits::default()).unwrap();
        parquet.push(&values(1)).unwrap();
        assert_eq!(
            RowSink::finish(&mut parquet).unwrap_err().kind(),
            io::ErrorKind::BrokenPipe
        );
        let mut ipc = IpcStreamWriter::try_new(Vec::new(), &columns(), limits(1)).unwrap();
        let mut bad = values(1);
        bad[1] = Value::Decimal("1.0001".parse().unwrap());
        let error = ipc.push(&bad).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(error.to_string().contains("amount"), "{error}");
    }

    #[tokio::test]
    async fn whole_batches_follow_the_rows_and_keep_the_schema() {
        let columns = columns();
        // Rows 1–2 pushed as rows, 3–6 as a batch stream of the row path's batches.
        let rows: Vec<extdata_core::Result<Row>> = (3..=6)
            .map(|id| Ok(Row::new(columns.clone(), values(id))))
            .collect();
        let stream = BatchStream::from_rows(
            RowStream::new(columns.clone(), futures::stream::iter(rows)),
            limits(3),
        );
        assert_eq!(stream.schema(), &crate::schema(&columns));
        let mut writer = IpcStreamWriter::try_new(Vec::new(), &columns, limits(100)).unwrap();
        writer.push(&values(1)).unwrap();
        writer.push(&values(2)).unwrap();
        assert_eq!(write_batches(stream, &mut writer).await.unwrap(), 6);
        let bytes = writer.into_inner().unwrap();
        let reader = arrow_ipc::reader::StreamReader::try_new(bytes.as_slice(), None).unwrap();
        let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        let sizes: Vec<usize> = batches.iter().map(RecordBatch::num_rows).collect();
        assert_eq!(sizes, [2, 3, 1]);
        assert_holds(&batches, &expected(6));
        // A batch of other columns is refused, not written.
        let other: Columns = vec![Column::new("x", "int4", ValueKind::I32)].into();
        let mut builder = BatchBuilder::new(&other, 10);
        builder.push_values(&[Value::I32(1)]).unwrap();
        let foreign = builder.finish().unwrap();
        let mut writer =
            ParquetFileWriter::try_new(Vec::new(), &columns, ParquetLimits::default()).unwrap();
        let error = writer.push_batch(&foreign).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert_eq!(writer.rows(), 0);
    }

    #[test]
    fn a_column_builder_builds_the_batch_builders_column() {
        let columns = columns();
        let mut batch = BatchBuilder::new(&columns, 100);
        let mut column = crate::ColumnBuilder::new(&columns[1], 4);
        for id in 1..=4 {
            batch.push_values(&values(id)).unwrap();
            column.push(&values(id)[1]).unwrap();
        }
        assert_eq!(column.len(), 4);
        assert_eq!(&column.finish(), batch.finish().unwrap().column(1));
        assert!(column.is_empty());
        let error = column
            .push(&Value::Decimal("1.0001".parse().unwrap()))
            .unwrap_err();
        assert!(
            error.to_string().contains("arrow column `amount`"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn write_stream_writes_every_row_and_finishes() {
        let columns = columns();
        let rows: Vec<extdata_core::Result<Row>> = (1..=4)
            .map(|id| Ok(Row::new(columns.clone(), values(id))))
            .collect();
        let stream = RowStream::new(columns.clone(), futures::stream::iter(rows));
        let mut writer = IpcStreamWriter::try_new(Vec::new(), &columns, limits(3)).unwrap();
        assert_eq!(write_stream(stream, &mut writer).await.unwrap(), 4);
        let bytes = writer.into_inner().unwrap();
        let reader = arrow_ipc::reader::StreamReader::try_new(bytes.as_slice(), None).unwrap();
        let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        assert_holds(&batches, &expected(4));
    }
}
