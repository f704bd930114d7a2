//! W1/W2: read the whole standard table with one method, in this (child) process, and
//! report wall time, CPU and peak RSS.
//!
//! Methods: `cli` (the server's command-line client, its CPU measured as a reaped
//! child), `cli-csv` (the same client writing CSV) and `extdata-csv` (the `extdata`
//! command-line program writing CSV, see `csv.rs`), `sqlx`, `tokio-postgres`, `rowbinary` and `native` (the `clickhouse` crate,
//! typed RowBinary and its raw Native blocks), `extdata` (`ExternalSource::stream`).
//! Every method decodes every value (the raw ones into their natural Rust types) and
//! folds it into a checksum, so nothing is skipped.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Instant;

use bigdecimal::BigDecimal;
use chrono::{DateTime, NaiveDate, Utc};
use extdata::{ExternalSource, QueryOptions, Statement, Value};
use futures::{StreamExt, TryStreamExt};
use sqlx::{AssertSqlSafe, ConnectOptions as _, Row as _};

use crate::backend::{Backend, Server, sqlx_options};
use crate::measure::{Cpu, Measurement, peak_rss_kib};

/// What a method read: rows and the bytes of their values (text and bytes by length,
/// fixed-width values by their width, NULL as 0).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Tally {
    pub(crate) rows: u64,
    pub(crate) payload: u64,
}

impl Tally {
    fn value(&mut self, value: &Value) {
        self.payload += value_bytes(value);
    }
}

/// The payload bytes of one value.
pub(crate) fn value_bytes(value: &Value) -> u64 {
    match value {
        Value::Null => 0,
        Value::Bool(_) | Value::I8(_) | Value::U8(_) => 1,
        Value::I16(_) | Value::U16(_) => 2,
        Value::I32(_) | Value::U32(_) | Value::F32(_) | Value::Date(_) => 4,
        Value::I64(_)
        | Value::U64(_)
        | Value::F64(_)
        | Value::Timestamp(_)
        | Value::TimestampTz(_)
        | Value::Decimal(_) => 8,
        Value::I128(_) | Value::U128(_) | Value::Uuid(_) => 16,
        Value::Text(s) => s.len() as u64,
        Value::Bytes(b) => b.len() as u64,
        other => other.to_text_lossless().len() as u64,
    }
}

fn opt<T>(value: &Option<T>, width: u64) -> u64 {
    if value.is_some() { width } else { 0 }
}

fn opt_len(value: &Option<impl AsRef<[u8]>>) -> u64 {
    value.as_ref().map_or(0, |v| v.as_ref().len() as u64)
}

/// Runs `method` against `backend`'s table of `rows` rows and measures it.
pub(crate) fn measure(backend: Backend, method: &str, rows: u64) -> Result<Measurement, String> {
    if let Some(partitions) = method.strip_prefix("connectorx-") {
        return connectorx(backend, &backend.select_all(rows), partitions);
    }
    let base_kib = crate::measure::rss_kib();
    // EXTDATA_BENCH_RUNTIME=current-thread: one thread, no hand-over between threads
    // (a diagnostic: shows what cross-thread wake-ups cost).
    let runtime = match std::env::var("EXTDATA_BENCH_RUNTIME").as_deref() {
        Ok("current-thread") => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        _ => tokio::runtime::Runtime::new(),
    }
    .map_err(|e| format!("runtime: {e}"))?;
    let server = backend.server()?;
    let sql = backend.select_all(rows);
    let (tally, wall, cpu) = runtime.block_on(async {
        match method {
            "cli" => cli(backend, &server, &sql, ClientOutput::Native),
            "cli-csv" => cli(backend, &server, &sql, ClientOutput::Csv),
            "extdata-csv" => crate::csv::extdata_cli(backend, &server, &sql),
            "sqlx" => match backend {
                Backend::Postgres => sqlx_postgres(&server, &sql).await,
                Backend::Mysql => sqlx_mysql(&server, &sql).await,
                _ => Err(format!("sqlx does not reach {}", backend.name())),
            },
            "tokio-postgres" if backend == Backend::Postgres => {
                tokio_postgres_read(&server, &sql).await
            }
            "rowbinary" if backend == Backend::ClickHouse => rowbinary(&server, &sql).await,
            "native" if backend == Backend::ClickHouse => native(&server, &sql).await,
            "extdata" => extdata_read(backend, &sql, None).await,
            "arrow-rows" | "arrow-columnar" => {
                let sql = format!("SELECT * FROM {}", backend.arrow_table(rows));
                arrow_stream(backend, &sql, method == "arrow-columnar").await
            }
            m if m.starts_with("arrow-columnar-") => {
                let partitions = m["arrow-columnar-".len()..]
                    .parse()
                    .map_err(|_| format!("`{m}`: arrow-columnar-N needs a number"))?;
                arrow_load(backend, &sql, partitions, true).await
            }
            m if m.starts_with("arrow-") => {
                let partitions = m["arrow-".len()..]
                    .parse()
                    .map_err(|_| format!("`{m}`: arrow-N needs a number"))?;
                arrow_load(backend, &sql, partitions, false).await
            }
            m if m.starts_with("partitioned-") => {
                let partitions = m["partitioned-".len()..]
                    .parse()
                    .map_err(|_| format!("`{m}`: partitioned-N needs a number"))?;
                extdata_read(backend, &sql, Some(partitions)).await
            }
            other => Err(format!("no method `{other}` for {}", backend.name())),
        }
    })?;
    let mut tally = tally;
    if matches!(method, "cli" | "cli-csv" | "extdata-csv") {
        // The client's output is not parsed: its row count is the table's.
        tally.rows = rows;
    } else if tally.rows != rows {
        return Err(format!(
            "{method} read {} rows, the table has {rows}",
            tally.rows
        ));
    }
    let mut m = Measurement::default();
    m.set("backend", backend.name())
        .set("method", method)
        .set("rows", tally.rows)
        .set("payload", tally.payload)
        .set("wall", format!("{wall:.4}"))
        .set("cpu", format!("{cpu:.3}"))
        .set("hwm_kib", peak_rss_kib())
        .set("base_kib", base_kib);
    Ok(m)
}

pub(crate) type Outcome = Result<(Tally, f64, f64), String>;

/// Wall seconds and own CPU seconds since `started`/`cpu`.
/// The CPU and the time at the start of a read, and its empty tally.
fn start() -> (Cpu, Instant, Tally) {
    (Cpu::now(), Instant::now(), Tally::default())
}

fn finish(tally: Tally, started: Instant, cpu: Cpu) -> Outcome {
    Ok((
        tally,
        started.elapsed().as_secs_f64(),
        Cpu::now().since(cpu).own,
    ))
}

/// What the server's command-line client writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientOutput {
    /// Its fastest whole-table output: PostgreSQL binary `COPY`, MariaDB `--batch`
    /// (tab-separated), ClickHouse `FORMAT Native`.
    Native,
    /// CSV: PostgreSQL `COPY … (FORMAT csv)`, ClickHouse `FORMAT CSV`; MariaDB's client
    /// has no CSV output, so `--batch` (tab-separated, escaped) stands in for it.
    Csv,
}

/// The command-line client writes the result to a pipe this process drains; the CPU
/// is the client's (a reaped child), the payload the bytes it wrote.
fn cli(backend: Backend, server: &Server, sql: &str, output: ClientOutput) -> Outcome {
    let command = match backend {
        Backend::Postgres => {
            let mut c = Command::new("psql");
            c.args([
                "-X",
                "-q",
                "-h",
                &server.host,
                "-p",
                &server.port.to_string(),
            ])
            .args(["-U", &server.user, "-d", &server.database, "-c"])
            .arg(match output {
                ClientOutput::Native => format!("COPY ({sql}) TO STDOUT (FORMAT binary)"),
                ClientOutput::Csv => format!("COPY ({sql}) TO STDOUT (FORMAT csv)"),
            })
            .env("PGPASSWORD", &server.password);
            c
        }
        Backend::Mysql => {
            let mut c = Command::new("mariadb");
            c.args(["--quick", "--batch", "--skip-column-names", "--ssl=0"])
                .args(["-h", &server.host, "-P", &server.port.to_string()])
                .args(["-u", &server.user, &server.database, "-e", sql])
                .env("MYSQL_PWD", &server.password);
            c
        }
        Backend::ClickHouse => {
            // The native TCP port, which clickhouse-client speaks.
            let format = match output {
                ClientOutput::Native => "Native",
                ClientOutput::Csv => "CSV",
            };
            let mut c = Command::new("clickhouse-client");
            c.args(["--host", &server.host, "--user", &server.user])
                .args(["--port", &backend.native_tcp_port()?.to_string()])
                .args([
                    "--password",
                    &server.password,
                    "--database",
                    &server.database,
                ])
                .args(["--query", &format!("{sql} FORMAT {format}")]);
            c
        }
        Backend::Hive => {
            let beeline = hive_beeline()?;
            let mut c = Command::new(beeline);
            c.args([
                "-u",
                &format!(
                    "jdbc:hive2://{}:{}/{}",
                    server.host, server.port, server.database
                ),
            ])
            .args(["-n", &server.user, "-p", &server.password])
            .args(["--outputformat=tsv2", "--silent=true", "--showHeader=false"])
            .args(["--incremental=true", "-e"])
            .arg(format!(
                "SET spark.sql.thriftServer.incrementalCollect=true; {sql}"
            ));
            c
        }
    };
    drain(command, &format!("the {} client", backend.name()))
}

/// Runs `command` (`what` names it in errors), drains what it writes to stdout and
/// counts it as the payload; the CPU is the child's.
pub(crate) fn drain(mut command: Command, what: &str) -> Outcome {
    let cpu = Cpu::now();
    let started = Instant::now();
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("start {what}: {e}"))?;
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let mut buffer = vec![0u8; 1 << 16];
    let mut tally = Tally::default();
    loop {
        match stdout.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => tally.payload += n as u64,
            Err(e) => return Err(format!("read the client's output: {e}")),
        }
    }
    let output = child.wait_with_output().map_err(|e| format!("wait: {e}"))?;
    let wall = started.elapsed().as_secs_f64();
    if !output.status.success() {
        return Err(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok((tally, wall, Cpu::now().since(cpu).children))
}

/// beeline of the pyspark venv that `scripts/services.sh` installs.
pub(crate) fn hive_beeline() -> Result<String, String> {
    let lib = "/opt/extdata-hive/venv/lib";
    let entries = std::fs::read_dir(lib).map_err(|e| format!("{lib}: {e}"))?;
    for entry in entries.flatten() {
        let path = entry.path().join("site-packages/pyspark/bin/beeline");
        if path.exists() {
            return Ok(path.to_string_lossy().into_owned());
        }
    }
    Err(format!("no pyspark beeline under {lib}"))
}

/// Decodes every column of a standard-table row (`$row`, a sqlx or tokio-postgres row)
/// with `$numeric` and `$uuid` for the driver's decimal and UUID types; returns its
/// payload (`$uuid_size` of the UUID).
macro_rules! standard_payload {
    ($row:expr, $numeric:ty, $uuid:ty, $uuid_size:expr) => {{
        let row = $row;
        let id: i32 = row.try_get(0)?;
        let c_int8: Option<i64> = row.try_get(1)?;
        let c_float8: Option<f64> = row.try_get(2)?;
        let c_numeric: Option<$numeric> = row.try_get(3)?;
        let c_short: Option<String> = row.try_get(4)?;
        let c_long: Option<String> = row.try_get(5)?;
        let c_bool: Option<bool> = row.try_get(6)?;
        let c_date: Option<NaiveDate> = row.try_get(7)?;
        let c_ts: Option<DateTime<Utc>> = row.try_get(8)?;
        let c_uuid: Option<$uuid> = row.try_get(9)?;
        std::hint::black_box((id, &c_numeric));
        Ok(4 + opt(&c_int8, 8)
            + opt(&c_float8, 8)
            + opt(&c_numeric, 8)
            + opt_len(&c_short)
            + opt_len(&c_long)
            + opt(&c_bool, 1)
            + opt(&c_date, 4)
            + opt(&c_ts, 8)
            + $uuid_size(&c_uuid))
    }};
}

/// Decodes every column of a standard-table row read by sqlx; returns its payload.
pub(crate) fn sqlx_postgres_payload(row: &sqlx::postgres::PgRow) -> Result<u64, sqlx::Error> {
    standard_payload!(row, BigDecimal, uuid::Uuid, |u| opt(u, 16))
}

/// Decodes every column of a standard-table row read by sqlx; returns its payload.
pub(crate) fn sqlx_mysql_payload(row: &sqlx::mysql::MySqlRow) -> Result<u64, sqlx::Error> {
    standard_payload!(row, BigDecimal, Vec<u8>, opt_len)
}

/// Streams `$sql` over one sqlx connection of `$options`, each row decoded by `$payload`.
macro_rules! sqlx_read {
    ($options:expr, $sql:expr, $payload:path) => {{
        let mut conn = $options.connect().await.map_err(|e| e.to_string())?;
        let (cpu, started, mut tally) = start();
        let mut rows = sqlx::query(AssertSqlSafe($sql.to_owned())).fetch(&mut conn);
        while let Some(row) = rows.try_next().await.map_err(|e| e.to_string())? {
            tally.rows += 1;
            tally.payload += $payload(&row).map_err(|e| e.to_string())?;
        }
        finish(tally, started, cpu)
    }};
}

async fn sqlx_postgres(server: &Server, sql: &str) -> Outcome {
    use sqlx::postgres::{PgConnectOptions, PgSslMode};
    sqlx_read!(
        sqlx_options!(PgConnectOptions, server, PgSslMode::Disable),
        sql,
        sqlx_postgres_payload
    )
}

async fn sqlx_mysql(server: &Server, sql: &str) -> Outcome {
    use sqlx::mysql::{MySqlConnectOptions, MySqlSslMode};
    sqlx_read!(
        sqlx_options!(MySqlConnectOptions, server, MySqlSslMode::Disabled),
        sql,
        sqlx_mysql_payload
    )
}

/// PostgreSQL `numeric` in binary form as an exact mantissa and scale (tokio-postgres
/// has no numeric type of its own without an extra crate).
#[derive(Debug)]
#[allow(
    dead_code,
    reason = "decoded to be paid for; read through black_box only"
)]
struct PgNumeric {
    mantissa: i128,
    scale: u16,
}

impl<'a> tokio_postgres::types::FromSql<'a> for PgNumeric {
    fn from_sql(
        _: &tokio_postgres::types::Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let word = |i: usize| -> Result<u16, Box<dyn std::error::Error + Sync + Send>> {
            raw.get(i * 2..i * 2 + 2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
                .ok_or_else(|| "short numeric".into())
        };
        let ndigits = word(0)? as usize;
        let weight = word(1)? as i16 as i64;
        let sign = word(2)?;
        let scale = word(3)?;
        let mut mantissa: i128 = 0;
        for k in 0..ndigits {
            mantissa = mantissa * 10_000 + i128::from(word(4 + k)?);
        }
        // `mantissa` is the value times 10^exponent; bring it to 10^scale.
        let exponent = 4 * (ndigits as i64 - 1 - weight);
        let shift = i64::from(scale) - exponent;
        if shift >= 0 {
            mantissa *= 10i128.pow(shift as u32);
        } else {
            mantissa /= 10i128.pow((-shift) as u32);
        }
        if sign == 0x4000 {
            mantissa = -mantissa;
        }
        Ok(PgNumeric { mantissa, scale })
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        *ty == tokio_postgres::types::Type::NUMERIC
    }
}

/// Decodes every column of a standard-table row read by tokio-postgres; returns its
/// payload.
pub(crate) fn tokio_postgres_payload(
    row: &tokio_postgres::Row,
) -> Result<u64, tokio_postgres::Error> {
    standard_payload!(row, PgNumeric, uuid::Uuid, |u| opt(u, 16))
}

/// A tokio-postgres client of `server`, TLS off, its connection task spawned.
pub(crate) async fn tokio_postgres_connect(
    server: &Server,
) -> Result<tokio_postgres::Client, String> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(&server.host)
        .port(server.port)
        .user(&server.user)
        .password(&server.password)
        .dbname(&server.database);
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    Ok(client)
}

async fn tokio_postgres_read(server: &Server, sql: &str) -> Outcome {
    let client = tokio_postgres_connect(server).await?;
    let (cpu, started, mut tally) = start();
    let rows = client
        .query_raw(sql, std::iter::empty::<i32>())
        .await
        .map_err(|e| e.to_string())?;
    futures::pin_mut!(rows);
    while let Some(row) = rows.try_next().await.map_err(|e| e.to_string())? {
        tally.rows += 1;
        tally.payload += tokio_postgres_payload(&row).map_err(|e| e.to_string())?;
    }
    finish(tally, started, cpu)
}

/// The standard table as the `clickhouse` crate's typed RowBinary reads it.
#[derive(Debug, clickhouse::Row, serde::Deserialize)]
pub(crate) struct ClickHouseRow {
    id: i32,
    c_int8: Option<i64>,
    c_float8: Option<f64>,
    /// `Decimal(18, 4)`: the mantissa.
    c_numeric: Option<i64>,
    c_short: Option<String>,
    c_long: Option<String>,
    c_bool: Option<u8>,
    /// Days since 1970-01-01.
    c_date: Option<u16>,
    /// Seconds since the epoch.
    c_ts: Option<u32>,
    #[serde(with = "clickhouse::serde::uuid::option")]
    c_uuid: Option<uuid::Uuid>,
}

pub(crate) fn clickhouse_client(server: &Server) -> clickhouse::Client {
    // The same settings as extdata's client: HTTP, no compression, no validation
    // (18.16 lacks RowBinaryWithNamesAndTypes).
    clickhouse::Client::default()
        .with_url(format!("http://{}:{}", server.host, server.port))
        .with_user(server.user.clone())
        .with_password(server.password.clone())
        .with_database(server.database.clone())
        .with_validation(false)
        .with_compression(clickhouse::Compression::None)
}

async fn rowbinary(server: &Server, sql: &str) -> Outcome {
    let client = clickhouse_client(server);
    let (cpu, started, mut tally) = start();
    let mut cursor = client
        .query(sql)
        .fetch::<ClickHouseRow>()
        .map_err(|e| e.to_string())?;
    while let Some(row) = cursor.next().await.map_err(|e| e.to_string())? {
        tally.rows += 1;
        tally.payload += 4
            + opt(&row.c_int8, 8)
            + opt(&row.c_float8, 8)
            + opt(&row.c_numeric, 8)
            + opt_len(&row.c_short)
            + opt_len(&row.c_long)
            + opt(&row.c_bool, 1)
            + opt(&row.c_date, 4)
            + opt(&row.c_ts, 8)
            + opt(&row.c_uuid, 16);
        std::hint::black_box(row.id);
    }
    finish(tally, started, cpu)
}

/// The crate's Native cursor, blocks as it parses them: the layer extdata decodes.
async fn native(server: &Server, sql: &str) -> Outcome {
    let client = clickhouse_client(server);
    let (cpu, started, mut tally) = start();
    let mut cursor = client
        .query(sql)
        .fetch_native()
        .map_err(|e| e.to_string())?;
    while let Some(block) = cursor.next().await.map_err(|e| e.to_string())? {
        tally.rows += block.num_rows() as u64;
        std::hint::black_box(&block);
    }
    finish(tally, started, cpu)
}

/// `partitions`: read with `extdata::stream_partitioned` on `id`, one pooled connection
/// per partition.
async fn extdata_read(backend: Backend, sql: &str, partitions: Option<usize>) -> Outcome {
    let config = backend.connector(partitions.unwrap_or(1) as i64)?;
    let source = extdata::connect(&config).map_err(|e| e.to_string())?;
    source.ping().await.map_err(|e| e.to_string())?;
    let options = QueryOptions::default();
    let (cpu, started, mut tally) = start();
    let statement = Statement::new(sql);
    let mut stream = match partitions {
        None => source.stream(&statement, &options).await,
        Some(n) => extdata::stream_partitioned(&source, &statement, "id", n, &options).await,
    }
    .map_err(|e| e.to_string())?;
    while let Some(row) = stream.next().await {
        let row = row.map_err(|e| e.to_string())?;
        for value in row.values() {
            tally.value(value);
        }
        tally.rows += 1;
    }
    let outcome = finish(tally, started, cpu);
    source.close().await;
    outcome
}

/// Streams with extdata only and returns the source, for the other workloads.
pub(crate) async fn connect(
    backend: Backend,
    pool: i64,
) -> Result<std::sync::Arc<dyn ExternalSource>, String> {
    let config = backend.connector(pool)?;
    let source = extdata::connect(&config).map_err(|e| e.to_string())?;
    source.ping().await.map_err(|e| e.to_string())?;
    Ok(source)
}

/// Streams the result as Arrow record batches of 8,192 rows, each dropped once counted:
/// through the rows (`ExternalSource::stream` gathered by `BatchStream::from_rows`), or
/// `columnar` through `extdata::stream_batches` (ClickHouse: Native blocks decoded
/// column by column).
async fn arrow_stream(backend: Backend, sql: &str, columnar: bool) -> Outcome {
    let source = connect(backend, 1).await?;
    let options = QueryOptions::default();
    let limits = extdata::arrow::BatchLimits::default();
    let (cpu, started, mut tally) = start();
    let statement = Statement::new(sql);
    let mut batches = if columnar {
        extdata::stream_batches(source.as_ref(), &statement, &options, limits)
            .await
            .map_err(|e| e.to_string())?
    } else {
        let rows = source
            .stream(&statement, &options)
            .await
            .map_err(|e| e.to_string())?;
        extdata::arrow::BatchStream::from_rows(rows, limits)
    };
    while let Some(batch) = batches.next().await {
        let batch = batch.map_err(|e| e.to_string())?;
        tally.rows += batch.num_rows() as u64;
        tally.payload += batch.get_array_memory_size() as u64;
    }
    let outcome = finish(tally, started, cpu);
    source.close().await;
    outcome
}

/// Loads the whole result into Arrow record batches (kept until the end, as a data
/// frame would be), partitioned on `id` into `partitions`: through the rows
/// (`collect` over `stream_partitioned`), or `columnar` through
/// `extdata::stream_batches_partitioned` (PostgreSQL, MySQL and ClickHouse decode their
/// wire values straight into the arrays).
async fn arrow_load(backend: Backend, sql: &str, partitions: usize, columnar: bool) -> Outcome {
    let source = connect(backend, partitions as i64).await?;
    let options = QueryOptions::default();
    let cpu = Cpu::now();
    let started = Instant::now();
    let statement = Statement::new(sql);
    let batches = if columnar {
        extdata::stream_batches_partitioned(
            &source,
            &statement,
            "id",
            partitions,
            &options,
            extdata::arrow::BatchLimits::default(),
        )
        .await
        .map_err(|e| e.to_string())?
        .collect_all()
        .await
    } else {
        let stream = extdata::stream_partitioned(&source, &statement, "id", partitions, &options)
            .await
            .map_err(|e| e.to_string())?;
        extdata_arrow::collect(stream, extdata_arrow::DEFAULT_BATCH_ROWS).await
    };
    let (_, batches) = batches.map_err(|e| e.to_string())?;
    let tally = Tally {
        rows: batches.iter().map(|b| b.num_rows() as u64).sum(),
        payload: batches
            .iter()
            .map(|b| b.get_array_memory_size() as u64)
            .sum(),
    };
    let outcome = finish(tally, started, cpu);
    drop(batches);
    source.close().await;
    outcome
}

/// ConnectorX (`read_sql(…, return_type="arrow")`) in a Python child: the script prints
/// its own wall time, CPU and peak RSS. Python: `EXTDATA_BENCH_PYTHON` (default
/// `python3`), with `connectorx` and `pyarrow` installed.
fn connectorx(backend: Backend, sql: &str, partitions: &str) -> Result<Measurement, String> {
    let server = backend.server()?;
    let conn = match backend {
        Backend::Postgres => format!(
            "postgresql://{}:{}@{}:{}/{}?sslmode=disable",
            server.user, server.password, server.host, server.port, server.database
        ),
        Backend::Mysql => format!(
            "mysql://{}:{}@{}:{}/{}",
            server.user, server.password, server.host, server.port, server.database
        ),
        _ => return Err(format!("no ConnectorX comparison for {}", backend.name())),
    };
    let python = std::env::var("EXTDATA_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let output = Command::new(python)
        .args(["-c", include_str!("connectorx_load.py"), sql, partitions])
        .env("CX_CONN", conn)
        .output()
        .map_err(|e| format!("run python: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "connectorx failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let mut m = Measurement::parse(&String::from_utf8_lossy(&output.stdout))
        .ok_or("connectorx printed no RESULT line")?;
    m.set("backend", backend.name());
    Ok(m)
}
