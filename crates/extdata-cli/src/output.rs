//! Output formats: `table`, `csv`, `json`, `jsonl`, and the binary `arrow` and
//! `parquet`.
//!
//! Values are rendered by the core ([`Value::to_json`] for JSON, [`Value::to_text_lossless`]
//! for CSV and tables) so that every front end prints a value the same way; `arrow` and
//! `parquet` keep them typed, as `extdata-arrow` maps them. `csv`, `jsonl`, `arrow` and
//! `parquet` write rows as they arrive; `table` and `json` need the whole (bounded)
//! result.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufWriter, IsTerminal as _, Write};
use std::path::Path;

use clap::ValueEnum;
use comfy_table::{CellAlignment, ContentArrangement, Table, presets};
use extdata::arrow::RecordBatch;
use extdata::{Column, Value, ValueKind};
use extdata_arrow::{BatchLimits, IpcStreamWriter, ParquetFileWriter, ParquetLimits, RowSink};

use crate::failure::Failure;

/// How rows are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub(crate) enum Format {
    /// A table for reading (bounded by `--max-rows`, default 10000).
    #[default]
    Table,
    /// Comma-separated values with a header row; streamed. NULL is an empty field.
    Csv,
    /// One JSON array of objects (bounded by `--max-rows`, default 10000).
    Json,
    /// One JSON object per line; streamed.
    Jsonl,
    /// An Arrow IPC stream (binary; not to a terminal); streamed in batches.
    Arrow,
    /// A Parquet file (binary; not to a terminal); streamed in row groups.
    Parquet,
}

impl Format {
    /// Whether rows are written as they arrive, with no bound unless one is asked for.
    pub(crate) fn streams(self) -> bool {
        matches!(
            self,
            Format::Csv | Format::Jsonl | Format::Arrow | Format::Parquet
        )
    }

    /// Whether the output is binary (never written to a terminal).
    pub(crate) fn is_binary(self) -> bool {
        matches!(self, Format::Arrow | Format::Parquet)
    }

    fn name(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Jsonl => "jsonl",
            Format::Arrow => "arrow",
            Format::Parquet => "parquet",
        }
    }
}

/// Output buffer: large writes for millions of rows.
const BUFFER: usize = 64 * 1024;

/// Where the output goes: `--output FILE`, or stdout.
pub(crate) type Output = BufWriter<Box<dyn Write + Send>>;

/// Refuses binary output to a terminal (exit 2), as other tools do: it would garble
/// the screen and help no one. Checked before anything runs.
pub(crate) fn check_target(format: Format, file: Option<&Path>) -> Result<(), Failure> {
    if format.is_binary() && file.is_none() && io::stdout().is_terminal() {
        return Err(Failure::usage(format!(
            "refusing to write {} output to a terminal; redirect stdout (`> result.{}`, `| …`) or use --output FILE",
            format.name(),
            if format == Format::Arrow {
                "arrows"
            } else {
                "parquet"
            }
        )));
    }
    Ok(())
}

/// Opens the output: `file` (created or truncated) or stdout, buffered.
pub(crate) fn open(file: Option<&Path>) -> Result<Output, Failure> {
    let Some(path) = file else {
        return Ok(stdout());
    };
    let file = File::create(path).map_err(|error| {
        Failure::runtime(format!("cannot create `{}`: {error}", path.display()))
    })?;
    Ok(BufWriter::with_capacity(BUFFER, Box::new(file)))
}

/// Stdout, buffered.
pub(crate) fn stdout() -> Output {
    BufWriter::with_capacity(BUFFER, Box::new(io::stdout()))
}

/// Text from the data or a server made harmless for a terminal: control characters
/// (C0 but the line feed, DEL, C1) and the bidirectional overrides and isolates
/// (U+202A–U+202E, U+2066–U+2069, and the marks U+200E, U+200F, U+061C) are written as
/// visible escapes (`\x1b`, `\r`, `\t`, `\u{202e}`), so a value cannot move the cursor,
/// recolour or retitle the terminal, or make text read in another order than it is.
///
/// Used for tables and messages; `csv`, `json` and `jsonl` keep the data exact (JSON
/// escapes control characters itself).
pub(crate) fn terminal_safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut safe = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !needs_escape(c) {
            safe.push(c);
            continue;
        }
        let _ = match c {
            '\t' => write!(safe, "\\t"),
            '\r' => write!(safe, "\\r"),
            c if u32::from(c) <= 0xff => write!(safe, "\\x{:02x}", u32::from(c)),
            c => write!(safe, "\\u{{{:04x}}}", u32::from(c)),
        };
    }
    Cow::Owned(safe)
}

fn needs_escape(c: char) -> bool {
    (c.is_control() && c != '\n')
        || matches!(
            c,
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}'
        )
}

/// Writes rows in one format.
pub(crate) trait RowWriter {
    /// Called once, before any row (also for an empty result).
    fn begin(&mut self, columns: &[Column]) -> io::Result<()>;
    /// One row, values in column order.
    fn row(&mut self, values: &[Value]) -> io::Result<()>;
    /// Called once after the last row; flushes.
    fn finish(&mut self) -> io::Result<()>;
    /// Pushes buffered output to the reader (for slow streams).
    fn flush(&mut self) -> io::Result<()>;
    /// A whole Arrow batch of rows (after `begin`): for the binary formats, which write
    /// it as it is; the text formats do not take batches.
    fn batch(&mut self, _batch: &RecordBatch) -> io::Result<()> {
        Err(io::Error::other("this format is written row by row"))
    }
}

/// A writer for `format` over `out`.
pub(crate) fn writer<'a, W: Write + Send + 'a>(format: Format, out: W) -> Box<dyn RowWriter + 'a> {
    match format {
        Format::Table => Box::new(TableWriter::new(out)),
        Format::Csv => Box::new(CsvWriter::new(out)),
        Format::Json => Box::new(JsonWriter::new(out, JsonLayout::Array)),
        Format::Jsonl => Box::new(JsonWriter::new(out, JsonLayout::Lines)),
        Format::Arrow | Format::Parquet => Box::new(ColumnarWriter {
            format,
            out: Some(out),
            sink: None,
        }),
    }
}

/// `arrow` and `parquet`: rows go into `extdata-arrow`'s writers, which write a batch
/// (a row group for Parquet) each time one fills up, so memory holds one batch.
struct ColumnarWriter<'a, W> {
    format: Format,
    /// The output until `begin` hands it to the sink.
    out: Option<W>,
    sink: Option<Box<dyn RowSink + 'a>>,
}

impl<'a, W: Write + Send + 'a> ColumnarWriter<'a, W> {
    fn sink(&mut self) -> io::Result<&mut (dyn RowSink + 'a)> {
        match self.sink.as_deref_mut() {
            Some(sink) => Ok(sink),
            None => Err(io::Error::other("rows written before the columns")),
        }
    }
}

impl<'a, W: Write + Send + 'a> RowWriter for ColumnarWriter<'a, W> {
    fn begin(&mut self, columns: &[Column]) -> io::Result<()> {
        let out = self
            .out
            .take()
            .ok_or_else(|| io::Error::other("the output was begun twice"))?;
        self.sink = Some(if self.format == Format::Arrow {
            Box::new(IpcStreamWriter::try_new(
                out,
                columns,
                BatchLimits::default(),
            )?)
        } else {
            Box::new(ParquetFileWriter::try_new(
                out,
                columns,
                ParquetLimits::default(),
            )?)
        });
        Ok(())
    }

    fn row(&mut self, values: &[Value]) -> io::Result<()> {
        self.sink()?.push(values)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.sink()?.finish()
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sink()?.flush()
    }

    fn batch(&mut self, batch: &RecordBatch) -> io::Result<()> {
        self.sink()?.push_batch(batch)
    }
}

/// JSON object keys for `columns`: the column names, with a repeated name made unique
/// (`id`, `id_2`) so that no value is lost when two columns share a name.
pub(crate) fn json_keys(columns: &[Column]) -> Vec<String> {
    let mut used: HashSet<String> = HashSet::with_capacity(columns.len());
    let mut keys = Vec::with_capacity(columns.len());
    for column in columns {
        let mut key = column.name.clone();
        let mut n = 1;
        while used.contains(&key) {
            n += 1;
            key = format!("{}_{n}", column.name);
        }
        used.insert(key.clone());
        keys.push(key);
    }
    keys
}

/// Writes `{"key":value,...}` in column order (a JSON map type would sort the keys).
fn write_object(out: &mut impl Write, keys: &[String], values: &[Value]) -> io::Result<()> {
    out.write_all(b"{")?;
    for (i, (key, value)) in keys.iter().zip(values).enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        serde_json::to_writer(&mut *out, key)?;
        out.write_all(b":")?;
        serde_json::to_writer(&mut *out, &value.to_json())?;
    }
    out.write_all(b"}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JsonLayout {
    /// `[` + one object per line + `]`.
    Array,
    /// One object per line.
    Lines,
}

struct JsonWriter<W: Write> {
    out: W,
    layout: JsonLayout,
    keys: Vec<String>,
    rows: u64,
}

impl<W: Write> JsonWriter<W> {
    fn new(out: W, layout: JsonLayout) -> Self {
        JsonWriter {
            out,
            layout,
            keys: Vec::new(),
            rows: 0,
        }
    }
}

impl<W: Write> RowWriter for JsonWriter<W> {
    fn begin(&mut self, columns: &[Column]) -> io::Result<()> {
        self.keys = json_keys(columns);
        if self.layout == JsonLayout::Array {
            self.out.write_all(b"[")?;
        }
        Ok(())
    }

    fn row(&mut self, values: &[Value]) -> io::Result<()> {
        if self.layout == JsonLayout::Array {
            self.out
                .write_all(if self.rows == 0 { b"\n" } else { b",\n" })?;
        }
        write_object(&mut self.out, &self.keys, values)?;
        if self.layout == JsonLayout::Lines {
            self.out.write_all(b"\n")?;
        }
        self.rows += 1;
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        if self.layout == JsonLayout::Array {
            self.out
                .write_all(if self.rows == 0 { b"]\n" } else { b"\n]\n" })?;
        }
        self.out.flush()
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

struct CsvWriter<W: Write> {
    out: csv::Writer<W>,
    /// The text of each field of the row being written.
    record: Vec<String>,
}

impl<W: Write> CsvWriter<W> {
    fn new(out: W) -> Self {
        CsvWriter {
            out: csv::WriterBuilder::new().from_writer(out),
            record: Vec::new(),
        }
    }
}

impl<W: Write> RowWriter for CsvWriter<W> {
    fn begin(&mut self, columns: &[Column]) -> io::Result<()> {
        self.out
            .write_record(columns.iter().map(|c| c.name.as_str()))
            .map_err(csv_io_error)
    }

    fn row(&mut self, values: &[Value]) -> io::Result<()> {
        // One buffer per column, reused from row to row.
        self.record.resize_with(values.len(), String::new);
        for (field, value) in self.record.iter_mut().zip(values) {
            field.clear();
            value.write_text_lossless(field);
        }
        self.out.write_record(&self.record).map_err(csv_io_error)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// The I/O error inside a CSV error, so that a closed reader is recognised as such
/// (csv's own conversion wraps it in `ErrorKind::Other`).
fn csv_io_error(error: csv::Error) -> io::Error {
    if !error.is_io_error() {
        return io::Error::other(error);
    }
    match error.into_kind() {
        csv::ErrorKind::Io(error) => error,
        other => io::Error::other(format!("{other:?}")),
    }
}

/// Collects the rows, then prints them as a table with a row count.
struct TableWriter<W: Write> {
    out: W,
    table: Table,
    rows: usize,
}

impl<W: Write> TableWriter<W> {
    fn new(out: W) -> Self {
        TableWriter {
            out,
            table: new_table(),
            rows: 0,
        }
    }
}

/// A table styled for a terminal when stdout is one, plain ASCII otherwise.
pub(crate) fn new_table() -> Table {
    let mut table = Table::new();
    if io::stdout().is_terminal() {
        table
            .load_preset(presets::UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic);
    } else {
        table.load_preset(presets::ASCII_FULL_CONDENSED);
    }
    table
}

fn is_numeric(kind: ValueKind) -> bool {
    use ValueKind as K;
    matches!(
        kind,
        K::I8
            | K::I16
            | K::I32
            | K::I64
            | K::I128
            | K::U8
            | K::U16
            | K::U32
            | K::U64
            | K::U128
            | K::F32
            | K::F64
            | K::Decimal
    )
}

impl<W: Write> RowWriter for TableWriter<W> {
    fn begin(&mut self, columns: &[Column]) -> io::Result<()> {
        self.table
            .set_header(columns.iter().map(|c| terminal_safe(&c.name).into_owned()));
        for (index, column) in columns.iter().enumerate() {
            if is_numeric(column.value_kind)
                && let Some(col) = self.table.column_mut(index)
            {
                col.set_cell_alignment(CellAlignment::Right);
            }
        }
        Ok(())
    }

    fn row(&mut self, values: &[Value]) -> io::Result<()> {
        self.table.add_row(
            values
                .iter()
                .map(|v| terminal_safe(&v.to_text_lossless()).into_owned()),
        );
        self.rows += 1;
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        writeln!(self.out, "{}", self.table)?;
        writeln!(
            self.out,
            "({} row{})",
            self.rows,
            if self.rows == 1 { "" } else { "s" }
        )?;
        self.out.flush()
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Whether an I/O error means the reader went away (`extdata … | head`): not a failure.
pub(crate) fn is_broken_pipe(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::BrokenPipe
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, NaiveDate};

    fn columns(names: &[(&str, ValueKind)]) -> Vec<Column> {
        names
            .iter()
            .map(|(n, k)| Column::new(*n, "t", *k))
            .collect()
    }

    fn render(format: Format, cols: &[Column], rows: &[Vec<Value>]) -> String {
        let mut buf = Vec::new();
        {
            let mut w = writer(format, &mut buf);
            w.begin(cols).unwrap();
            for row in rows {
                w.row(row).unwrap();
            }
            w.finish().unwrap();
        }
        String::from_utf8(buf).unwrap()
    }

    fn sample() -> (Vec<Column>, Vec<Vec<Value>>) {
        let cols = columns(&[
            ("u", ValueKind::U64),
            ("i", ValueKind::I64),
            ("d", ValueKind::Decimal),
            ("n", ValueKind::Text),
            ("b", ValueKind::Bytes),
            ("day", ValueKind::Date),
            ("ts", ValueKind::TimestampTz),
        ]);
        let rows = vec![vec![
            Value::U64(u64::MAX),
            Value::I64(i64::MIN),
            Value::Decimal("12345678901234567890.000000000000000001".parse().unwrap()),
            Value::Null,
            Value::Bytes(vec![0, 255, 16]),
            Value::Date(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()),
            Value::TimestampTz(DateTime::parse_from_rfc3339("2024-03-01T10:00:00+02:00").unwrap()),
        ]];
        (cols, rows)
    }

    #[test]
    fn jsonl_is_exact_and_keeps_column_order() {
        let (cols, rows) = sample();
        assert_eq!(
            render(Format::Jsonl, &cols, &rows),
            "{\"u\":18446744073709551615,\"i\":-9223372036854775808,\
             \"d\":\"12345678901234567890.000000000000000001\",\"n\":null,\"b\":\"AP8Q\",\
             \"day\":\"2024-02-29\",\"ts\":\"2024-03-01T10:00:00+02:00\"}\n"
        );
    }

    #[test]
    fn json_is_one_array_and_empty_result_is_empty_array() {
        let (cols, rows) = sample();
        let text = render(Format::Json, &cols, &[rows[0].clone(), rows[0].clone()]);
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        let array = parsed.as_array().unwrap();
        assert_eq!(array.len(), 2);
        assert_eq!(array[0]["u"].as_u64(), Some(u64::MAX));
        assert_eq!(array[1]["i"].as_i64(), Some(i64::MIN));
        assert_eq!(render(Format::Json, &cols, &[]), "[]\n");
        assert_eq!(render(Format::Jsonl, &cols, &[]), "");
    }

    #[test]
    fn csv_quotes_and_renders_null_as_empty() {
        let cols = columns(&[
            ("a", ValueKind::Text),
            ("b", ValueKind::Text),
            ("c", ValueKind::I64),
        ]);
        let rows = vec![
            vec![
                Value::Text("x,\"y\"\nz".into()),
                Value::Null,
                Value::I64(-1),
            ],
            vec![
                Value::Text(String::new()),
                Value::Text("plain".into()),
                Value::I64(2),
            ],
        ];
        assert_eq!(
            render(Format::Csv, &cols, &rows),
            "a,b,c\n\"x,\"\"y\"\"\nz\",,-1\n,plain,2\n"
        );
    }

    #[test]
    fn table_shows_header_values_and_count() {
        let (cols, rows) = sample();
        let text = render(Format::Table, &cols, &rows);
        for needle in [
            "u",
            "18446744073709551615",
            "-9223372036854775808",
            "AP8Q",
            "2024-02-29",
            "(1 row)",
        ] {
            assert!(text.contains(needle), "{needle} missing in\n{text}");
        }
    }

    /// A value that would clear the screen, retitle the window, ring, return to the
    /// line start, hide itself and reverse the text after it.
    const HOSTILE: &str =
        "ok\x1b[2J\x1b]0;pwned\x07\rfake\u{9b}31m\u{202e}gnp.exe\u{2066}x\u{7f}\u{0}";

    #[test]
    fn table_escapes_control_characters_from_data_and_column_names() {
        let cols = columns(&[("t", ValueKind::Text), ("n\x1b[31m", ValueKind::Text)]);
        let rows = vec![vec![
            Value::Text(HOSTILE.into()),
            Value::Text("a\nb\tc".into()),
        ]];
        let text = render(Format::Table, &cols, &rows);
        for forbidden in [
            '\x1b', '\x07', '\r', '\u{9b}', '\u{202e}', '\u{2066}', '\u{7f}', '\u{0}', '\t',
        ] {
            assert!(
                !text.contains(forbidden),
                "{forbidden:?} reached the table:\n{text}"
            );
        }
        for visible in [
            "ok\\x1b[2J\\x1b]0;pwned\\x07\\rfake\\x9b31m\\u{202e}gnp.exe\\u{2066}x\\x7f\\x00",
            "n\\x1b[31m",
            "b\\tc",
        ] {
            assert!(text.contains(visible), "{visible} missing in\n{text}");
        }
    }

    #[test]
    fn csv_and_json_keep_hostile_values_exact() {
        let cols = columns(&[("t", ValueKind::Text)]);
        let rows = vec![vec![Value::Text(HOSTILE.into())]];
        let jsonl = render(Format::Jsonl, &cols, &rows);
        let parsed: serde_json::Value = serde_json::from_str(jsonl.trim_end()).unwrap();
        assert_eq!(parsed["t"].as_str(), Some(HOSTILE));
        // JSON escapes the C0 controls itself: none reaches the terminal raw.
        assert!(!jsonl.contains('\x1b') && !jsonl.contains('\r'), "{jsonl}");
        let csv = render(Format::Csv, &cols, &rows);
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        let record = reader.records().next().unwrap().unwrap();
        assert_eq!(&record[0], HOSTILE);
    }

    #[test]
    fn terminal_safe_leaves_ordinary_text_alone() {
        for text in [
            "",
            "plain",
            "multi\nline",
            "Zoë — ünïcode ✓ 日本",
            "C:\\path",
        ] {
            assert!(matches!(terminal_safe(text), Cow::Borrowed(t) if t == text));
        }
        assert_eq!(terminal_safe("\u{200f}\u{061c}"), "\\u{200f}\\u{061c}");
    }

    #[test]
    fn repeated_column_names_get_unique_keys() {
        let cols = columns(&[
            ("id", ValueKind::I64),
            ("id", ValueKind::I64),
            ("id_2", ValueKind::I64),
        ]);
        assert_eq!(json_keys(&cols), ["id", "id_2", "id_2_2"]);
        let text = render(
            Format::Jsonl,
            &cols,
            &[vec![Value::I64(1), Value::I64(2), Value::I64(3)]],
        );
        assert_eq!(text, "{\"id\":1,\"id_2\":2,\"id_2_2\":3}\n");
    }

    #[test]
    fn streaming_formats_are_the_line_formats() {
        assert!(Format::Csv.streams() && Format::Jsonl.streams());
        assert!(!Format::Table.streams() && !Format::Json.streams());
    }
}
