//! The columnar read path (feature `arrow`) against the real server:
//! `MySqlSource::stream_batches` gives exactly the record batches the row path gives
//! (`BatchStream::from_rows` over `stream`) for every type of the backend's type table
//! and their edge values, or the same error; it cuts batches at the limits, keeps
//! `read_only`, stops the statement on timeout and on drop.

mod support;

use std::time::{Duration, Instant};

use extdata_arrow::BatchLimits;
use extdata_conformance::columnar::{ONE_ROW, Paths};
use extdata_conformance::support::{expect_kind, unique_name};
use extdata_core::{ErrorKind, PoolConfig, QueryOptions, Scalar, Statement};
use extdata_mysql::MySqlSource;
use futures::StreamExt;

use support::{assert_locks_freed, execute_sql, scalar, source, time_until_gone};

/// The source read both ways: by its rows and by `stream_batches`.
fn paths(my: &MySqlSource) -> Paths<'_, MySqlSource> {
    Paths::new(my, |source, statement, options, limits| {
        Box::pin(source.stream_batches(statement, options, limits))
    })
}

/// Every type of the type table, in a table and as literals, with NULLs and edge values
/// (extremes of every integer, unsigned, BIT, YEAR, JSON, ENUM/SET, empty and non-ASCII
/// text, binary, far dates, fractional seconds).
#[tokio::test]
async fn every_type_reads_as_the_row_path_reads_it() {
    let server = server!();
    let my = source(server.tcp());
    let table = unique_name("columnar_types");
    execute_sql(
        &my,
        &format!(
            "CREATE TABLE {table} (id INT,
                t_tiny TINYINT, t_utiny TINYINT UNSIGNED, t_bool BOOL,
                t_small SMALLINT, t_usmall SMALLINT UNSIGNED,
                t_medium MEDIUMINT, t_umedium MEDIUMINT UNSIGNED,
                t_int INT, t_uint INT UNSIGNED, t_big BIGINT, t_ubig BIGINT UNSIGNED,
                t_dec DECIMAL(65,30), t_dec12 DECIMAL(12,4), t_dec0 DECIMAL(20,0),
                t_float FLOAT, t_double DOUBLE, t_bit BIT(12), t_bit64 BIT(64),
                t_char CHAR(5), t_varchar VARCHAR(50), t_text TEXT,
                t_bin_text VARCHAR(20) COLLATE utf8mb4_bin,
                t_binary BINARY(4), t_varbinary VARBINARY(20), t_blob BLOB,
                t_date DATE, t_time TIME(6), t_datetime DATETIME(6), t_datetime0 DATETIME,
                t_timestamp TIMESTAMP(6) NULL, t_year YEAR, t_json JSON,
                t_enum ENUM('red','green'), t_set SET('a','b','c'), t_null INT)"
        ),
    )
    .await;
    execute_sql(
        &my,
        &format!(
            "INSERT INTO {table} VALUES
             (1, -128, 255, 1, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295,
              -9223372036854775808, 18446744073709551615,
              '-12345678901234567890123456789012345.123456789012345678901234567890',
              -12345678.1234, 99999999999999999999, -1.5e38, 1.7976931348623157e308,
              b'101010101010', b'1111111111111111111111111111111111111111111111111111111111111111',
              'héllo', 'ünï ✓', 'Ω', 'Abc', x'00ff0102', x'', x'deadbeef',
              '1000-01-01', '-838:59:59', '9999-12-31 23:59:59.999999', '1000-01-01 00:00:00',
              '2038-01-19 03:14:07.999999', 2155, '{{\"a\": [1, 2.5, \"x\"], \"b\": null}}',
              'green', 'a,c', NULL),
             (2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, b'0', b'0',
              '', '', '', '', x'00000000', x'00', x'',
              '2024-02-29', '00:00:00', '1970-01-01 00:00:00', '2024-02-29 12:34:56',
              '1970-01-01 00:00:01', 1901, '[]', 'red', '', 0),
             (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
              NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
              NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"
        ),
    )
    .await;
    let rows = paths(&my)
        .assert_same(&format!("SELECT * FROM {table} ORDER BY id"))
        .await;
    assert_eq!(rows, 3);
    // Literals and computed columns: decimals without a table's precision, JSON
    // functions, NULL columns, zero dates (NULL on the row path).
    paths(&my)
        .assert_same(
            "SELECT 1.50 * 2 AS n, CAST(1 AS DECIMAL(5,2)) / 3 AS q, JSON_OBJECT('k', 1) AS j, \
         NULL AS nothing, CAST('2024-02-29 12:00:00.5' AS DATETIME(3)) AS dt3, \
         CAST('0000-00-00' AS DATE) AS zero, 'x' COLLATE utf8mb4_bin AS b, \
         CAST(-5 AS UNSIGNED) AS u, YEAR('2024-01-01') AS y",
        )
        .await;
    let many = paths(&my)
        .assert_same(
            "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 1000), \
         s(g) AS (SELECT (a.n - 1) * 20 + b.n FROM c a, c b WHERE b.n <= 20) \
         SELECT g, g * 1000003, g % 7 = 0, g / 3e0, MD5(g), CAST(g / 100 AS DECIMAL(12,4)), \
         IF(g % 5 = 0, NULL, g), DATE_ADD('2000-01-01', INTERVAL g DAY), \
         TIMESTAMP('2000-01-01 00:00:00') + INTERVAL g SECOND FROM s",
        )
        .await;
    assert_eq!(many, 20000);
    execute_sql(&my, &format!("DROP TABLE {table}")).await;
}

/// The types only the row decoder reads give the row path's arrays, and a statement
/// that fails mid-result fails both paths with the same error.
#[tokio::test]
async fn row_decoder_types_and_mid_result_errors_are_the_row_paths() {
    let server = server!();
    let my = source(server.tcp());
    paths(&my)
        .assert_same(
            "SELECT CAST('-838:59:59' AS TIME(6)) AS t, JSON_ARRAY(1, 'ü') AS j, \
         CAST('12:00' AS TIME) AS noon",
        )
        .await;
    // A TIME past the range sqlx reads: the row decoder's error, also when an earlier
    // natively decoded cell is fine.
    let error = paths(&my)
        .assert_same_error("SELECT 1 AS one, CAST('-838:59:59.000001' AS TIME(6)) AS t")
        .await;
    assert!(error.contains("838:59:59"), "{error}");
    let error = paths(&my)
        .assert_same_error(
            "WITH RECURSIVE c(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM c WHERE g < 5) \
         SELECT g, IF(g = 3, (SELECT 1 UNION SELECT 2), g) AS bad FROM c",
        )
        .await;
    assert!(error.contains("more than 1 row"), "{error}");
}

/// Batches hold `limits.rows` rows, or fewer once their values take about
/// `limits.bytes`; the last holds the rest; an empty result has the schema and no batch.
#[tokio::test]
async fn batches_are_cut_at_the_row_and_byte_limits() {
    let server = server!();
    let my = source(server.tcp());
    // A row is 8 + 4 fixed bytes and 92 bytes of text: 104 bytes.
    paths(&my)
        .assert_cut_at_the_limits(
            "WITH RECURSIVE c(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM c WHERE g < 10) \
             SELECT CAST(g AS SIGNED INT) AS g, REPEAT('x', 92) AS t FROM c",
            "SELECT 1 AS one FROM DUAL WHERE FALSE",
        )
        .await;
}

/// On a `read_only` connector a write through `stream_batches` fails and writes nothing.
#[tokio::test]
async fn read_only_holds_for_stream_batches() {
    let server = server!();
    let rw = source(server.tcp());
    let table = unique_name("columnar_ro");
    execute_sql(&rw, &format!("CREATE TABLE {table} (id INT)")).await;
    let ro = source(server.tcp().with_read_only(true));
    for sql in [
        format!("INSERT INTO {table} VALUES (1)"),
        format!("INSERT INTO {table} VALUES (1) RETURNING id"),
    ] {
        let outcome = paths(&ro)
            .columnar(
                &Statement::new(sql.as_str()),
                &QueryOptions::default(),
                BatchLimits::default(),
            )
            .await;
        expect_kind(outcome, ErrorKind::ReadOnly, &sql);
    }
    assert_eq!(
        scalar(&rw, &format!("SELECT COUNT(*) FROM {table}"))
            .await
            .as_i64(),
        Some(0)
    );
    execute_sql(&rw, &format!("DROP TABLE {table}")).await;
}

/// The wait for the first row, and for each later one, is bounded by the timeout; when
/// it runs out the statement is stopped on the server and the source serves again.
#[tokio::test]
async fn timeout_stops_the_statement_on_the_server() {
    let server = server!();
    // The server-side guard is off here, so only KILL QUERY can stop the statement.
    let my = source(server.tcp().with_option("max_statement_time", "off"));
    let observer = source(server.tcp());
    let options = QueryOptions::default().with_timeout(Duration::from_secs(1));
    let marker = format!("SELECT SLEEP(30) /* columnar {} */", std::process::id());
    let started = Instant::now();
    let outcome = paths(&my)
        .columnar(&Statement::new(marker.as_str()), &options, ONE_ROW)
        .await;
    expect_kind(outcome, ErrorKind::Timeout, "a slow first row");
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    let gone = time_until_gone(&observer, &marker, Duration::from_secs(5))
        .await
        .expect("the statement still runs on the server");
    assert!(gone < Duration::from_secs(1), "gone after {gone:?}");
    assert_eq!(scalar(&my, "SELECT 1").await.as_i64(), Some(1));
}

/// A stream dropped early stops its statement and leaves the source serving.
#[tokio::test]
async fn a_dropped_stream_stops_the_statement() {
    let server = server!();
    let my = source(server.tcp());
    let observer = source(server.tcp());
    let marker = format!(
        "SELECT a.ORDINAL_POSITION FROM information_schema.COLUMNS a, \
         information_schema.COLUMNS b, information_schema.COLUMNS c /* columnar drop {} */",
        std::process::id()
    );
    let mut batches = my
        .stream_batches(
            &Statement::new(marker.as_str()),
            &QueryOptions::default(),
            BatchLimits {
                rows: 100,
                bytes: usize::MAX,
            },
        )
        .await
        .expect("stream_batches");
    let first = batches.next().await.expect("a batch").expect("ok");
    assert_eq!(first.num_rows(), 100);
    drop(batches);
    time_until_gone(&observer, &marker, Duration::from_secs(10))
        .await
        .expect("the statement still runs after the stream was dropped");
    assert_eq!(scalar(&my, "SELECT 3").await.as_i64(), Some(3));
}

/// On a `read_only` connector whose pool holds one connection, what a statement leaves
/// in its session through `stream_batches` — a user variable, a named lock — does not
/// reach the next call, whether the stream was dropped early or read to its end.
///
/// Named locks are server-wide: a connection that could not be reset is closed, and
/// the server frees its locks when that connection's thread ends, which may be a moment
/// after the next call started on a new connection (seen once under CI load). So the
/// next call's own session is checked at once, and the lock must be free within
/// seconds.
#[tokio::test]
async fn read_only_streams_leave_no_session_state() {
    let server = server!();
    let ro = source(server.tcp().with_read_only(true).with_pool(PoolConfig {
        max_size: Some(Scalar::Int(1)),
        ..Default::default()
    }));
    let lock = unique_name("columnar_lock");
    let dirty = |from: &str| {
        format!(
            "SELECT @columnar_dirty := 7 AS a, GET_LOCK('{lock}', 0) AS l, \
             x.ORDINAL_POSITION AS p FROM {from}"
        )
    };
    let clean = format!(
        "SELECT @columnar_dirty IS NULL AND NOT (IS_USED_LOCK('{lock}') <=> CONNECTION_ID())"
    );
    let limits = BatchLimits {
        rows: 10,
        bytes: usize::MAX,
    };
    // Dropped after its first batch.
    let mut batches = ro
        .stream_batches(
            &Statement::new(dirty(
                "information_schema.COLUMNS x, information_schema.COLUMNS y",
            )),
            &QueryOptions::default(),
            limits,
        )
        .await
        .expect("stream_batches");
    assert_eq!(
        batches
            .next()
            .await
            .expect("a batch")
            .expect("ok")
            .num_rows(),
        10
    );
    drop(batches);
    assert_eq!(scalar(&ro, &clean).await.as_i64(), Some(1));
    assert_locks_freed(&ro, &[&lock], Duration::from_secs(10)).await;
    // Read to its end.
    let read = paths(&ro)
        .sizes(
            &format!("{} LIMIT 25", dirty("information_schema.COLUMNS x")),
            limits,
        )
        .await;
    assert_eq!(read.iter().sum::<usize>(), 25);
    assert_eq!(scalar(&ro, &clean).await.as_i64(), Some(1));
    assert_locks_freed(&ro, &[&lock], Duration::from_secs(10)).await;
}

/// A hostile result of large cells is cut into batches of one row each once a row
/// passes `limits.bytes`, and a result of many tiny rows at `limits.rows`.
#[tokio::test]
async fn large_cells_and_tiny_rows_stay_within_the_batch_limits() {
    let server = server!();
    let my = source(server.tcp());
    paths(&my)
        .assert_large_and_tiny_rows_bounded(
            "SELECT n, REPEAT('x', 4000000) AS t FROM (SELECT 1 AS n UNION ALL SELECT 2 \
             UNION ALL SELECT 3) s",
            "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 250) \
             SELECT NULL AS z FROM c a, (SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 \
             UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 \
             UNION ALL SELECT 8 UNION ALL SELECT 9 UNION ALL SELECT 10) b",
        )
        .await;
}
