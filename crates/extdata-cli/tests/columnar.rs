//! `query --format arrow` and `--format parquet`, run for real: the output is read back
//! with the `arrow-ipc` and `parquet` readers and compared, value by value, with the
//! `--format jsonl` output of the same query — on SQLite (a file in a temporary folder)
//! and on the live PostgreSQL of `EXTDATA_TEST_POSTGRES_*`. A million-row result is
//! written with a peak RSS that does not grow with the result (GNU time's `%M`).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    Time64MicrosecondType, TimestampMicrosecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, Schema, SchemaRef, TimeUnit};
use base64::Engine as _;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime};
use extdata_conformance::require_or_skip;
use extdata_conformance::support::env;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value as J;
use tempfile::TempDir;

mod support;
use support::{BIN, command, succeeded};

/// A temporary folder with `extdata.toml`: a SQLite connector `local` on `local.db`
/// and, when the settings are there, `postgres` on the test server.
struct Fixture {
    dir: TempDir,
    config: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary folder");
        let mut config = String::from(
            "[secrets]\nenv_prefixes = [\"EXTDATA_TEST_\"]\n\n\
             [[connectors]]\nname = \"local\"\ntype = \"sqlite\"\ndatabase = \"local.db\"\n\
             query_timeout = \"300s\"\n",
        );
        let setting = |name: &str| env(&format!("EXTDATA_TEST_POSTGRES_{name}"));
        if let (Some(host), Some(port), Some(database), Some(user)) = (
            setting("HOST"),
            setting("PORT"),
            setting("DATABASE"),
            setting("USER"),
        ) {
            config.push_str(&format!(
                "\n[[connectors]]\nname = \"postgres\"\ntype = \"postgresql\"\nhost = \"{host}\"\n\
                 port = {port}\ndatabase = \"{database}\"\nusername = \"{user}\"\n\
                 password = {{ env = \"EXTDATA_TEST_POSTGRES_PASSWORD\" }}\nconnect_timeout = \"5s\"\n"
            ));
        }
        for (name, prefix) in [
            ("clickhouse", "EXTDATA_TEST_CLICKHOUSE"),
            ("clickhouse26", "EXTDATA_TEST_CLICKHOUSE26"),
        ] {
            let setting = |key: &str| env(&format!("{prefix}_{key}"));
            if let (Some(host), Some(port), Some(database), Some(user)) = (
                setting("HOST"),
                setting("PORT"),
                setting("DATABASE"),
                setting("USER"),
            ) {
                config.push_str(&format!(
                    "\n[[connectors]]\nname = \"{name}\"\ntype = \"clickhouse\"\nhost = \"{host}\"\n\
                     port = {port}\ndatabase = \"{database}\"\nusername = \"{user}\"\n\
                     password = {{ env = \"{prefix}_PASSWORD\" }}\nconnect_timeout = \"5s\"\n"
                ));
            }
        }
        let path = dir.path().join("extdata.toml");
        std::fs::write(&path, config).expect("write config");
        // Connectors open existing files only; an empty file is an empty database.
        std::fs::write(dir.path().join("local.db"), "").expect("write local.db");
        Fixture { dir, config: path }
    }

    /// A fixture with the `postgres` connector, or `None` (skip; a failure when
    /// `EXTDATA_TEST_REQUIRE` names postgres) when its settings are not there.
    fn with_postgres() -> Option<Self> {
        let fixture = Fixture::new();
        if fixture.has_postgres() {
            return Some(fixture);
        }
        require_or_skip(
            "postgres",
            "EXTDATA_TEST_POSTGRES_HOST/PORT/DATABASE/USER are not set",
        )
    }

    fn has_postgres(&self) -> bool {
        self.has("postgres")
    }

    fn has(&self, connector: &str) -> bool {
        std::fs::read_to_string(&self.config)
            .expect("config")
            .contains(&format!("name = \"{connector}\""))
    }

    /// A fixture with the ClickHouse connector `connector` (`clickhouse` for 18.16,
    /// `clickhouse26`), or `None` (skip; a failure when `EXTDATA_TEST_REQUIRE` names it).
    fn with_clickhouse(connector: &str) -> Option<Self> {
        let fixture = Fixture::new();
        if fixture.has(connector) {
            return Some(fixture);
        }
        require_or_skip(
            connector,
            format!("the settings of the `{connector}` test server are not set"),
        )
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self, connector: &str, sql: &str, format: &str) -> Command {
        let mut command = command(&self.config);
        command.args(["query", connector, sql, "--format", format]);
        command
    }

    /// Runs the query; asserts it succeeded.
    fn run(&self, connector: &str, sql: &str, format: &str, extra: &[&str]) -> Output {
        succeeded(self.command(connector, sql, format).args(extra), format)
    }

    /// Runs a statement that returns no rows (setup).
    fn execute(&self, sql: &str) {
        self.run("local", sql, "jsonl", &[]);
    }
}

/// The rows of `--format jsonl`, each an array of values in column order.
fn jsonl_rows(stdout: &[u8]) -> Vec<Vec<J>> {
    String::from_utf8(stdout.to_vec())
        .expect("UTF-8")
        .lines()
        .map(|line| {
            let J::Object(object) = serde_json::from_str(line).expect("a JSON object") else {
                panic!("not an object: {line}")
            };
            object.into_iter().map(|(_, value)| value).collect()
        })
        .collect()
}

fn ipc_batches(bytes: &[u8]) -> (SchemaRef, Vec<RecordBatch>) {
    let reader = arrow_ipc::reader::StreamReader::try_new(bytes, None).expect("an Arrow stream");
    let schema = reader.schema();
    let batches = reader.map(|b| b.expect("a batch")).collect();
    (schema, batches)
}

fn parquet_batches(path: &Path) -> (SchemaRef, Vec<RecordBatch>) {
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path).expect("the file"))
        .expect("a Parquet file");
    let schema = builder.schema().clone();
    let batches = builder
        .build()
        .expect("a reader")
        .map(|b| b.expect("a batch"))
        .collect();
    (schema, batches)
}

/// A decimal's text without trailing fraction zeros (`12.500` → `12.5`, `3.0` → `3`):
/// Arrow prints the column's scale, the server may not.
fn decimal_value(text: &str) -> String {
    if !text.contains('.') {
        return text.to_owned();
    }
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// The JSON of one Arrow cell, in the CLI's JSON conventions (timestamps with a zone in
/// UTC, decimals without trailing zeros: see [`normalise`]).
fn cell(array: &dyn Array, row: usize) -> J {
    if array.is_null(row) {
        return J::Null;
    }
    let micros_time = |micros: i64| {
        NaiveTime::from_num_seconds_from_midnight_opt(
            u32::try_from(micros / 1_000_000).unwrap(),
            u32::try_from(micros % 1_000_000).unwrap() * 1000,
        )
        .unwrap()
    };
    match array.data_type() {
        DataType::Boolean => J::Bool(array.as_boolean().value(row)),
        DataType::Int8 => J::from(array.as_primitive::<Int8Type>().value(row)),
        DataType::Int16 => J::from(array.as_primitive::<Int16Type>().value(row)),
        DataType::Int32 => J::from(array.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => J::from(array.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => J::from(array.as_primitive::<UInt8Type>().value(row)),
        DataType::UInt16 => J::from(array.as_primitive::<UInt16Type>().value(row)),
        DataType::UInt32 => J::from(array.as_primitive::<UInt32Type>().value(row)),
        DataType::UInt64 => J::from(array.as_primitive::<UInt64Type>().value(row)),
        DataType::Float32 => J::from(f64::from(array.as_primitive::<Float32Type>().value(row))),
        DataType::Float64 => J::from(array.as_primitive::<Float64Type>().value(row)),
        DataType::Decimal128(_, _) => J::String(decimal_value(
            &array
                .as_primitive::<arrow_array::types::Decimal128Type>()
                .value_as_string(row),
        )),
        DataType::Decimal256(_, _) => J::String(decimal_value(
            &array
                .as_primitive::<arrow_array::types::Decimal256Type>()
                .value_as_string(row),
        )),
        DataType::Utf8 => J::String(array.as_string::<i32>().value(row).to_owned()),
        DataType::Binary => J::String(
            base64::engine::general_purpose::STANDARD.encode(array.as_binary::<i32>().value(row)),
        ),
        DataType::FixedSizeBinary(16) => {
            let hex: String = array
                .as_fixed_size_binary()
                .value(row)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            J::String(format!(
                "{}-{}-{}-{}-{}",
                &hex[..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..]
            ))
        }
        DataType::Date32 => {
            let days = array.as_primitive::<Date32Type>().value(row);
            let date = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()
                + chrono::Duration::days(i64::from(days));
            J::String(date.format("%Y-%m-%d").to_string())
        }
        DataType::Time64(TimeUnit::Microsecond) => J::String(
            micros_time(array.as_primitive::<Time64MicrosecondType>().value(row))
                .format("%H:%M:%S%.f")
                .to_string(),
        ),
        DataType::Timestamp(TimeUnit::Microsecond, zone) => {
            let micros = array.as_primitive::<TimestampMicrosecondType>().value(row);
            let at = DateTime::from_timestamp_micros(micros).unwrap();
            J::String(match zone {
                Some(zone) => {
                    assert_eq!(zone.as_ref(), "+00:00", "instants are kept in UTC");
                    at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                }
                None => at.naive_utc().format("%Y-%m-%dT%H:%M:%S%.f").to_string(),
            })
        }
        other => panic!("no JSON form for {other} in this test"),
    }
}

/// The JSON output's value in the form [`cell`] gives: decimals without trailing zeros,
/// timestamps with a zone as the same instant in UTC.
fn normalise(value: J, data_type: &DataType) -> J {
    match (value, data_type) {
        (J::String(text), DataType::Decimal128(_, _) | DataType::Decimal256(_, _)) => {
            J::String(decimal_value(&text))
        }
        (J::String(text), DataType::Timestamp(_, Some(_))) => J::String(
            DateTime::parse_from_rfc3339(&text)
                .unwrap_or_else(|e| panic!("{text}: {e}"))
                .to_utc()
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        ),
        (J::String(text), DataType::Timestamp(_, None)) => {
            // Same wall clock, printed the same way.
            let at = NaiveDateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M:%S%.f")
                .unwrap_or_else(|e| panic!("{text}: {e}"));
            J::String(at.format("%Y-%m-%dT%H:%M:%S%.f").to_string())
        }
        (value, _) => value,
    }
}

/// Asserts that `batches` hold exactly the rows of the JSON output.
fn assert_rows_match(what: &str, schema: &Schema, batches: &[RecordBatch], json: &[Vec<J>]) {
    let mut row_index = 0;
    for batch in batches {
        assert_eq!(batch.schema().as_ref(), schema, "{what}: batch schema");
        for row in 0..batch.num_rows() {
            let expected = &json[row_index];
            assert_eq!(expected.len(), batch.num_columns(), "{what}: width");
            for (column, expected) in expected.iter().enumerate() {
                let field = schema.field(column);
                let got = cell(batch.column(column).as_ref(), row);
                let expected = normalise(expected.clone(), field.data_type());
                assert_eq!(
                    got,
                    expected,
                    "{what}: row {row_index}, column `{}` ({})",
                    field.name(),
                    field.data_type()
                );
            }
            row_index += 1;
        }
    }
    assert_eq!(row_index, json.len(), "{what}: row count");
}

/// Runs `sql` as jsonl, arrow (stdout) and parquet (`--output`); asserts the three
/// agree and returns the Arrow schema (the same for both binary formats).
fn assert_formats_agree(fixture: &Fixture, connector: &str, sql: &str) -> SchemaRef {
    let json = jsonl_rows(&fixture.run(connector, sql, "jsonl", &[]).stdout);
    assert!(!json.is_empty(), "no rows to compare");
    let arrow = fixture.run(connector, sql, "arrow", &[]);
    let (schema, batches) = ipc_batches(&arrow.stdout);
    assert_rows_match("arrow", &schema, &batches, &json);

    let file = fixture.path(&format!("{connector}.parquet"));
    let parquet = fixture.run(
        connector,
        sql,
        "parquet",
        &["--output", file.to_str().unwrap()],
    );
    assert!(parquet.stdout.is_empty(), "--output leaves stdout empty");
    let (parquet_schema, batches) = parquet_batches(&file);
    assert_eq!(
        parquet_schema.fields(),
        schema.fields(),
        "parquet keeps the Arrow types"
    );
    assert_rows_match("parquet", &schema, &batches, &json);
    schema
}

fn field_type(schema: &Schema, name: &str) -> DataType {
    schema
        .field_with_name(name)
        .unwrap_or_else(|_| panic!("no column {name}"))
        .data_type()
        .clone()
}

fn utc() -> Option<Arc<str>> {
    Some("+00:00".into())
}

#[test]
fn sqlite_arrow_and_parquet_hold_what_jsonl_prints() {
    let fixture = Fixture::new();
    fixture.execute(
        "CREATE TABLE t (id INTEGER, r REAL, d DECIMAL(12,3), wide DECIMAL(60,1), \
         ts TIMESTAMP, tz TIMESTAMPTZ, day DATE, b BLOB, s TEXT, ok BOOLEAN)",
    );
    fixture.execute(
        "INSERT INTO t VALUES \
         (1, 1.5, '12.5', '-7.5', '2024-03-01 10:00:00', '2024-03-01T10:00:00+02:00', '2024-02-29', \
          x'00ff10', 'two\nlines, \"quoted\"', 1), \
         (2, -0.25, '-123456789.001', '0', '1969-12-31 23:59:59.123456', '1900-01-01T00:00:00Z', \
          '0001-01-01', x'', 'Zoë ✓ 日本\r\n\ttab', 0), \
         (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    );
    let schema = assert_formats_agree(&fixture, "local", "SELECT * FROM t ORDER BY id");
    assert_eq!(field_type(&schema, "id"), DataType::Int64);
    assert_eq!(field_type(&schema, "d"), DataType::Decimal128(12, 3));
    assert_eq!(field_type(&schema, "wide"), DataType::Decimal256(60, 1));
    assert_eq!(
        field_type(&schema, "ts"),
        DataType::Timestamp(TimeUnit::Microsecond, None)
    );
    assert_eq!(
        field_type(&schema, "tz"),
        DataType::Timestamp(TimeUnit::Microsecond, utc())
    );
    assert_eq!(field_type(&schema, "day"), DataType::Date32);
    assert_eq!(field_type(&schema, "b"), DataType::Binary);
    assert_eq!(field_type(&schema, "ok"), DataType::Boolean);
}

/// SQLite does not enforce a declared `DECIMAL(5,2)`: a value with more digits than the
/// column's type makes `--format parquet` (and `arrow`) fail with an error naming the
/// column, rather than write it into a 32-bit Parquet decimal that would cut it; the
/// text formats print it as stored.
#[test]
fn sqlite_decimals_wider_than_their_declared_type_are_refused_not_cut() {
    let fixture = Fixture::new();
    fixture.execute("CREATE TABLE t (d DECIMAL(5,2))");
    fixture.execute("INSERT INTO t VALUES ('1.5'), ('123456789012.50')");
    let sql = "SELECT d FROM t ORDER BY rowid";
    for format in ["parquet", "arrow"] {
        let output = fixture
            .command("local", sql, format)
            .args(["--output", &fixture.path("out.bin").to_string_lossy()])
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{format}: {stderr}");
        assert!(
            stderr.contains("arrow column `d`")
                && stderr.contains("more digits than its column holds (Decimal(5, 2))")
                && stderr.contains("cast the column in the query to text"),
            "{format}: {stderr}"
        );
    }
    let csv = fixture.run("local", sql, "csv", &[]);
    assert_eq!(
        String::from_utf8_lossy(&csv.stdout),
        "d\n1.5\n123456789012.5\n"
    );
}

#[test]
fn max_rows_cuts_a_binary_result_and_says_so() {
    let fixture = Fixture::new();
    let sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50) \
               SELECT x FROM c";
    let output = fixture.run("local", sql, "arrow", &["--max-rows", "7"]);
    let (_, batches) = ipc_batches(&output.stdout);
    assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 7);
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("cut at 7 rows"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn binary_formats_are_refused_on_a_terminal() {
    let fixture = Fixture::new();
    for format in ["arrow", "parquet"] {
        // `script` gives the command a pseudo-terminal as stdout.
        let command = format!(
            "{BIN} --config {} query local 'SELECT 1' --format {format}",
            fixture.config.display()
        );
        let output = Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .stdin(Stdio::null())
            .output()
            .expect("script (util-linux) runs");
        let text = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(2), "{format}: {text}");
        assert!(
            text.contains(&format!(
                "error: refusing to write {format} output to a terminal"
            )) && text.contains("--output FILE"),
            "{format}: {text}"
        );
    }
    // With --output, a terminal on stdout is fine.
    let file = fixture.path("one.parquet");
    let command = format!(
        "{BIN} --config {} query local 'SELECT 1 AS one' --format parquet --output {}",
        fixture.config.display(),
        file.display()
    );
    let output = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script runs");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let (_, batches) = parquet_batches(&file);
    assert_eq!(batches[0].num_rows(), 1);
}

#[test]
fn postgres_arrow_and_parquet_hold_what_jsonl_prints() {
    let Some(fixture) = Fixture::with_postgres() else {
        return;
    };
    let sql = "SELECT i::int4 AS id, \
         (i * 1000)::int8 AS big, \
         (i - 2)::int2 AS small, \
         CASE WHEN i = 2 THEN NULL ELSE i * 1.25 END::float8 AS f8, \
         (i * 0.5)::float4 AS f4, \
         CASE WHEN i = 3 THEN NULL ELSE (i * 1234567.8912 - 5000000)::numeric(20,4) END AS amount, \
         ('123456789012345678901234567890123456789.' || i)::numeric(60,1) AS huge, \
         (i / 3.0)::numeric AS free, \
         CASE WHEN i = 2 THEN NULL ELSE TIMESTAMPTZ '2024-03-31 01:30:00.123456+02' + i * INTERVAL '1 day' END AS at, \
         TIMESTAMP '1999-12-31 23:59:59.999999' + i * INTERVAL '1 hour' AS wall, \
         DATE '2024-02-28' + i AS day, \
         TIME '23:59:59.5' - i * INTERVAL '1 minute' AS clock, \
         ('00000000-0000-0000-0000-00000000000' || i)::uuid AS uid, \
         decode(repeat('ff00', i), 'hex') AS raw, \
         CASE WHEN i = 3 THEN NULL ELSE 'line ' || i || E'\\nnext \"line\", tab\\t' END AS note, \
         i % 2 = 0 AS even \
         FROM generate_series(1, 4) AS s(i) ORDER BY i";
    let schema = assert_formats_agree(&fixture, "postgres", sql);
    for (name, expected) in [
        ("id", DataType::Int32),
        ("big", DataType::Int64),
        ("small", DataType::Int16),
        ("f8", DataType::Float64),
        ("f4", DataType::Float32),
        // Computed numerics (casts included) have no declared precision in a result:
        // the PostgreSQL backend names them `NUMERIC`, so they keep their exact digits
        // as text (the extdata-arrow type table's "decimal without declared
        // precision"); table columns: see the next test.
        ("amount", DataType::Utf8),
        ("huge", DataType::Utf8),
        ("free", DataType::Utf8),
        ("at", DataType::Timestamp(TimeUnit::Microsecond, utc())),
        ("wall", DataType::Timestamp(TimeUnit::Microsecond, None)),
        ("day", DataType::Date32),
        ("clock", DataType::Time64(TimeUnit::Microsecond)),
        ("uid", DataType::FixedSizeBinary(16)),
        ("raw", DataType::Binary),
        ("note", DataType::Utf8),
        ("even", DataType::Boolean),
    ] {
        assert_eq!(field_type(&schema, name), expected, "{name}");
    }
}

/// `numeric(p,s)` table and view columns are read back from `--format arrow` and
/// `--format parquet` as `Decimal128(p, s)` / `Decimal256(p, s)` with every digit
/// (negative, zero, NULL, the largest values); plain `numeric` and computed columns as
/// their exact text.
#[test]
fn postgres_numeric_columns_are_decimals_in_arrow_and_parquet() {
    let Some(fixture) = Fixture::with_postgres() else {
        return;
    };
    let table = extdata_conformance::support::unique_name("columnar_numeric");
    let run = |sql: &str| {
        fixture.run("postgres", sql, "jsonl", &[]);
    };
    run(&format!(
        "CREATE TABLE {table} (id int, amount numeric(20,4), wide numeric(60,10), \
         whole numeric(38,0), free numeric)"
    ));
    run(&format!(
        "CREATE VIEW {table}_v AS SELECT id, amount AS view_amount FROM {table}"
    ));
    run(&format!(
        "INSERT INTO {table} VALUES \
         (1, 1234567890123456.7890, 12345678901234567890123456789012345678901234567890.0123456789, \
          99999999999999999999999999999999999999, 1.5), \
         (2, -9999999999999999.9999, -0.0000000001, -99999999999999999999999999999999999999, -2), \
         (3, 0, 0, 0, 0), \
         (4, 0.0001, 1, 1, 123456789012345678901234567890.123456789), \
         (5, NULL, NULL, NULL, NULL)"
    ));
    let sql = format!(
        "SELECT t.id, amount, wide, whole, free, view_amount, amount * 2 AS doubled \
         FROM {table} t JOIN {table}_v v ON v.id = t.id ORDER BY t.id"
    );
    let schema = assert_formats_agree(&fixture, "postgres", &sql);
    for (name, expected) in [
        ("amount", DataType::Decimal128(20, 4)),
        ("wide", DataType::Decimal256(60, 10)),
        ("whole", DataType::Decimal128(38, 0)),
        ("free", DataType::Utf8),
        ("view_amount", DataType::Decimal128(20, 4)),
        ("doubled", DataType::Utf8),
    ] {
        assert_eq!(field_type(&schema, name), expected, "{name}");
    }
    // The digits themselves, not only their agreement with the JSON output.
    let arrow = fixture.run("postgres", &sql, "arrow", &[]);
    let (_, batches) = ipc_batches(&arrow.stdout);
    let amounts: Vec<J> = batches
        .iter()
        .flat_map(|batch| {
            let column = batch.column_by_name("amount").unwrap().clone();
            (0..batch.num_rows()).map(move |row| cell(column.as_ref(), row))
        })
        .collect();
    assert_eq!(
        amounts,
        [
            J::from("1234567890123456.789"),
            J::from("-9999999999999999.9999"),
            J::from("0"),
            J::from("0.0001"),
            J::Null
        ]
    );
    run(&format!("DROP VIEW {table}_v"));
    run(&format!("DROP TABLE {table}"));
}

/// Peak RSS of `extdata query local SQL --format FORMAT [extra]` in KiB (GNU time's
/// `%M`, the child's `ru_maxrss`), with what it wrote to stdout.
fn peak_rss_kib(fixture: &Fixture, sql: &str, format: &str, extra: &[&str]) -> (u64, Vec<u8>) {
    let report = fixture.path("time.txt");
    let output = succeeded(
        Command::new("/usr/bin/time")
            .arg("-o")
            .arg(&report)
            .args(["-f", "%M", BIN, "--config"])
            .arg(&fixture.config)
            .args(["query", "local", sql, "--format", format])
            .args(extra)
            .env_remove("EXTDATA_LOG"),
        &format!("GNU time (Debian package `time`) with {format}"),
    );
    let text = std::fs::read_to_string(&report).expect("time's report");
    let kib = text
        .lines()
        .last()
        .and_then(|line| line.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in {text:?}"));
    (kib, output.stdout)
}

fn numbered_rows(n: u64) -> String {
    // 80 random hex characters a row: ~90 MB of values for a million rows, which a
    // writer holding the result would have to keep.
    format!(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {n}) \
         SELECT x, hex(randomblob(40)) AS noise FROM c"
    )
}

#[test]
fn a_million_rows_are_written_with_bounded_memory() {
    let fixture = Fixture::new();
    let small = numbered_rows(100_000);
    let large = numbered_rows(1_000_000);

    let (arrow_small, _) = peak_rss_kib(&fixture, &small, "arrow", &[]);
    let (arrow_large, stdout) = peak_rss_kib(&fixture, &large, "arrow", &[]);
    let mut rows = 0;
    let mut largest_batch = 0;
    let mut last = 0;
    for batch in arrow_ipc::reader::StreamReader::try_new(stdout.as_slice(), None).unwrap() {
        let batch = batch.unwrap();
        rows += batch.num_rows();
        largest_batch = largest_batch.max(batch.num_rows());
        last = batch
            .column(0)
            .as_primitive::<Int64Type>()
            .value(batch.num_rows() - 1);
    }
    assert_eq!((rows, last), (1_000_000, 1_000_000));
    assert!(largest_batch <= 8192, "batches of {largest_batch} rows");

    let file = fixture.path("large.parquet");
    let path = file.to_str().unwrap();
    let (parquet_small, _) = peak_rss_kib(&fixture, &small, "parquet", &["--output", path]);
    let (parquet_large, _) = peak_rss_kib(&fixture, &large, "parquet", &["--output", path]);
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(&file).unwrap()).unwrap();
    let metadata = builder.metadata();
    assert_eq!(metadata.file_metadata().num_rows(), 1_000_000);
    assert!(
        metadata
            .row_groups()
            .iter()
            .all(|group| group.num_rows() <= 128 * 1024),
        "row groups are bounded"
    );

    eprintln!(
        "peak RSS (KiB): arrow 100k {arrow_small}, 1M {arrow_large}; parquet 100k {parquet_small}, 1M {parquet_large}"
    );
    // Ten times the rows (~80 MB more values) may not cost more than 24 MiB more.
    for (format, small, large) in [
        ("arrow", arrow_small, arrow_large),
        ("parquet", parquet_small, parquet_large),
    ] {
        assert!(
            large < small + 24 * 1024,
            "{format}: peak RSS {large} KiB for 1M rows against {small} KiB for 100k"
        );
        assert!(large < 128 * 1024, "{format}: peak RSS {large} KiB");
    }
}

#[test]
fn an_arrow_reader_gets_the_first_rows_while_the_server_is_still_busy() {
    let fixture = Fixture::new();
    // Two rows at once, then a count that keeps SQLite busy for many seconds.
    let sql = "SELECT 1 AS x UNION ALL SELECT 2 UNION ALL SELECT count(*) FROM \
               (WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c \
               WHERE n < 2000000000) SELECT n FROM c)";
    let mut child = fixture
        .command("local", sql, "arrow")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("extdata starts");
    let stdout = child.stdout.take().expect("stdout");
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let first = arrow_ipc::reader::StreamReader::try_new(stdout, None)
            .map(|mut reader| reader.next())
            .map_err(|e| e.to_string());
        let _ = sender.send(first);
    });
    let first = receiver.recv_timeout(std::time::Duration::from_secs(60));
    let still_running = matches!(child.try_wait(), Ok(None));
    // Stopped before any assertion, so that a failure leaves no query running.
    let _ = child.kill();
    let _ = child.wait();
    let batch = first
        .expect("the first batch within 60 s")
        .expect("an Arrow stream")
        .expect("a first batch")
        .expect("a readable batch");
    let values: Vec<i64> = batch
        .column(0)
        .as_primitive::<Int64Type>()
        .values()
        .to_vec();
    assert_eq!(
        values,
        [1, 2],
        "the rows ready before the wait, as one batch"
    );
    assert!(still_running, "the batch came only when the query ended");
}

/// ClickHouse decodes `--format arrow` and `--format parquet` column by column from its
/// Native blocks (`extdata::stream_batches`); the files hold exactly what `--format jsonl`
/// prints (through the row path), over several blocks, NULLs and zoned timestamps
/// included, on 18.16 and on 26.x.
#[test]
fn clickhouse_arrow_and_parquet_hold_what_jsonl_prints() {
    for connector in ["clickhouse", "clickhouse26"] {
        let Some(fixture) = Fixture::with_clickhouse(connector) else {
            continue;
        };
        let sql = "SELECT number AS n, toInt64(number) - 5 AS i, number / 4 AS f, \
             toDecimal64(number, 4) / 7 AS d, concat('line ', toString(number), '\\n\"q\", ✓') AS s, \
             if(number % 3 = 0, NULL, toString(number)) AS ns, \
             toDateTime(1700000000 + number * 61, 'Asia/Tokyo') AS tz, \
             toDateTime(1700000000 + number * 61) AS wall, toDate(17000 + number % 1000) AS day, \
             toUUID(UUIDNumToString(MD5(toString(number)))) AS u, \
             if(number % 5 = 0, NULL, toDecimal128(number, 10)) AS big \
             FROM numbers(20000) SETTINGS max_block_size = 7000";
        let schema = assert_formats_agree(&fixture, connector, sql);
        for (name, expected) in [
            ("n", DataType::UInt64),
            ("i", DataType::Int64),
            ("f", DataType::Float64),
            ("d", DataType::Decimal128(18, 4)),
            ("s", DataType::Utf8),
            ("ns", DataType::Utf8),
            ("tz", DataType::Timestamp(TimeUnit::Microsecond, utc())),
            ("wall", DataType::Timestamp(TimeUnit::Microsecond, None)),
            ("day", DataType::Date32),
            ("u", DataType::FixedSizeBinary(16)),
            ("big", DataType::Decimal128(38, 10)),
        ] {
            assert_eq!(field_type(&schema, name), expected, "{connector}: {name}");
        }
        let output = fixture.run(connector, sql, "arrow", &["--max-rows", "7001"]);
        let (_, batches) = ipc_batches(&output.stdout);
        assert_eq!(
            batches.iter().map(RecordBatch::num_rows).sum::<usize>(),
            7001,
            "{connector}"
        );
        assert!(
            batches.iter().all(|batch| batch.num_rows() <= 8192),
            "{connector}: bounded batches"
        );
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("cut at 7001 rows"),
            "{connector}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// PostgreSQL decodes columnar, but its batches wait to be full: `--format arrow` keeps
/// its rows, so a slow result's first rows are written (a short batch) while the server
/// makes the command wait, not only when the query ends.
#[test]
fn postgres_arrow_writes_a_slow_results_first_rows_while_it_waits() {
    let Some(fixture) = Fixture::with_postgres() else {
        return;
    };
    // 100 rows of 1000 bytes fill the server's output buffer before the slow row.
    let sql = "SELECT g, repeat('x', 1000) AS pad, \
               CASE WHEN g = 101 THEN pg_sleep(4) END AS slow FROM generate_series(1, 101) g";
    let started = std::time::Instant::now();
    let mut child = fixture
        .command("postgres", sql, "arrow")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start");
    let stdout = child.stdout.take().expect("stdout");
    let mut reader = arrow_ipc::reader::StreamReader::try_new(stdout, None).expect("a stream");
    let first = reader.next().expect("a batch").expect("readable");
    let waited = started.elapsed();
    assert!(first.num_rows() > 0 && first.num_rows() < 101);
    assert!(
        waited < std::time::Duration::from_secs(3),
        "the first rows came after {waited:?}"
    );
    let rest: usize = reader.map(|b| b.expect("a batch").num_rows()).sum();
    assert_eq!(first.num_rows() + rest, 101);
    assert!(child.wait().expect("wait").success());
}

/// How many queries of the server's other sessions contain `marker` (the text is built
/// on the server, so that this query does not count itself).
fn running_with(fixture: &Fixture, marker: &str) -> u64 {
    let (head, tail) = marker.split_at(marker.len() / 2);
    let sql = format!(
        "SELECT count(*) AS n FROM pg_stat_activity \
         WHERE pid <> pg_backend_pid() AND query LIKE '%' || '{head}' || '{tail}' || '%'"
    );
    let output = fixture.run("postgres", &sql, "jsonl", &[]);
    let rows = jsonl_rows(&output.stdout);
    rows[0][0].as_u64().expect("a count")
}

/// Ctrl-C stops a running query on the server too, not only the command: the dropped
/// stream's cancel reaches PostgreSQL before the program exits.
#[test]
fn ctrl_c_stops_the_query_on_the_server() {
    let Some(fixture) = Fixture::with_postgres() else {
        return;
    };
    let marker = format!("ctrl_c_marker_{}", std::process::id());
    let sql = format!("SELECT pg_sleep(60) AS {marker}");
    let mut child = fixture
        .command("postgres", &sql, "csv")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start");
    let started = std::time::Instant::now();
    while running_with(&fixture, &marker) == 0 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the query never showed up on the server"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exited = child.wait().expect("wait");
    assert_eq!(exited.code(), Some(130));
    // The cancel was sent before the exit; the server ends the backend's query at once.
    let stopped = std::time::Instant::now();
    while running_with(&fixture, &marker) > 0 {
        assert!(
            stopped.elapsed() < std::time::Duration::from_secs(2),
            "the query still runs on the server after the command exited"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
