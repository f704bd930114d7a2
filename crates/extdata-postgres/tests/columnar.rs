//! The columnar read path (feature `arrow`) against the real server:
//! `PostgresSource::stream_batches` gives exactly the record batches the row path gives
//! (`BatchStream::from_rows` over `stream`) for every type of the backend's type table
//! and their edge values, or the same error; it cuts batches at the limits, keeps the
//! read-only transaction, cancels on timeout and on drop, and resets the session.

mod support;

use std::time::{Duration, Instant};

use extdata_arrow::BatchLimits;
use extdata_conformance::columnar::{ONE_ROW, Paths};
use extdata_conformance::support::{expect_kind, unique_name};
use extdata_core::{ErrorKind, ExternalSource, QueryOptions, Statement, Value};
use extdata_postgres::PostgresSource;
use futures::StreamExt;

use support::{one_connection, scalar, source, time_until_gone};

/// The source read both ways: by its rows and by `stream_batches`.
fn paths(pg: &PostgresSource) -> Paths<'_, PostgresSource> {
    Paths::new(pg, |source, statement, options, limits| {
        Box::pin(source.stream_batches(statement, options, limits))
    })
}

async fn run(pg: &PostgresSource, sql: &str) {
    pg.execute(&Statement::new(sql), &QueryOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Every type of the type table, in a table (so `numeric(p,s)` columns carry their
/// precision and scale) and as computed columns, with NULLs and edge values.
#[tokio::test]
async fn every_type_reads_as_the_row_path_reads_it() {
    let server = server!();
    let pg = source(server.tcp());
    let table = unique_name("columnar_types");
    let mood = format!("{table}_mood");
    run(&pg, &format!("CREATE TYPE {mood} AS ENUM ('sad', 'happy')")).await;
    run(
        &pg,
        &format!(
            "CREATE TABLE {table} (id int, b bool, i2 int2, i4 int4, i8 int8, o oid, \
             f4 float4, f8 float8, n numeric, n12 numeric(12,4), n38 numeric(38,10), \
             n60 numeric(60,20), nneg numeric(5,-2), t text, v varchar(5), c char(4), \
             nm name, ch \"char\", x xml, by bytea, d date, tm time, ttz timetz, \
             ts timestamp, tstz timestamptz, iv interval, u uuid, j json, jb jsonb, \
             ip inet, cd cidr, ai int4[], at text[], m money, md {mood}, r int4range)"
        ),
    )
    .await;
    run(
        &pg,
        &format!(
            "INSERT INTO {table} VALUES \
             (1, true, 32767, -2147483648, 9223372036854775807, 4294967295, \
              1.5, 'NaN', '1234567890123456789012345678901234567890.0123456789', \
              -12345678.1234, 1234567890123456789012345678.0123456789, \
              -1234567890123456789012345678901234567890.01234567890123456789, 12300, \
              'héllo ✓', 'abc', 'ab', 'x', 'y', '<a/>', '\\x00ff', '2024-02-29', \
              '23:59:59.999999', '10:00:00+05:30', '2024-02-29 12:34:56.789012', \
              '2024-02-29 12:34:56.789012+03', '1 year 2 mons 3 days 04:05:06.5', \
              'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{{\"a\": [1, 2.5]}}', \
              '{{\"b\": null}}', '10.1.2.3', '10.0.0.0/8', '{{1,NULL,3}}', '{{x,y}}', \
              12.34, 'happy', '[1,5)'), \
             (2, false, -32768, 0, -9223372036854775808, 0, '-Infinity', 'Infinity', \
              'NaN', 0, 0.0000000001, 0, -100, '', '', '', '', '', '<c/>', '', \
              '4713-01-01 BC', '00:00', '00:00+00', '0001-01-01 00:00:00', \
              '1970-01-01 00:00:00+00', '0', '00000000-0000-0000-0000-000000000000', \
              'null', '[]', '::1', '::/0', '{{}}', '{{}}', -0.01, 'sad', 'empty'), \
             (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
              NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
              NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL), \
             (4, true, 1, 1, 1, 1, 3.4028235e38, 1e-320, 1.5, 9999.9999, -0.5, \
              -0.00000000000000000001, 0, 'Ω', 'ünï', 'ö', 'ä', 'é', '<b>ü</b>', \
              '\\x', '200000-12-31', '24:00', '12:00-12', '200000-12-31 23:59:59.999999', \
              '1900-01-01 00:00:00.000001+00', '-177000000 years', \
              'ffffffff-ffff-ffff-ffff-ffffffffffff', '\"ü\"', '{{\"k\": 1.5}}', \
              '255.255.255.255/32', '192.168.0.0/16', '{{2147483647}}', '{{NULL}}', \
              -92233720368547758.08, 'happy', '(,)')"
        ),
    )
    .await;
    let rows = paths(&pg)
        .assert_same(&format!("SELECT * FROM {table} ORDER BY id"))
        .await;
    assert_eq!(rows, 4);
    // Computed columns: plain `numeric` (also `NaN`, `-Infinity`), arrays of several
    // dimensions, geometry, `void`, bits, and far dates/timestamps past the native
    // ranges (`±infinity` fails both paths: see the next test).
    paths(&pg)
        .assert_same(
            "SELECT 1.50::numeric(10,2) * 2 AS n, 'NaN'::numeric AS nan, \
         '-Infinity'::numeric AS ninf, ARRAY[[1, 2], [3, 4]]::int8[] AS a2, \
         point(1, 2) AS p, '8000-01-01'::date AS d8000, '-infinity'::numeric AS m, \
         '3000-06-01 00:00:00'::timestamp AS ts3000, \
         '1000-06-01 00:00:00+00'::timestamptz AS tz1000, pg_sleep(0) AS v, \
         B'101' AS bits, '12:00'::time AS t, 'x'::unknown AS unk",
        )
        .await;
    // Many rows of mixed native columns, cut into several default-limit batches.
    let many = paths(&pg)
        .assert_same(
            "SELECT g, g::int8 * 1000003, (g % 7 = 0), g::float8 / 3, md5(g::text), \
         (g / 100.0)::numeric(12,4), CASE WHEN g % 5 = 0 THEN NULL ELSE g END, \
         date '2000-01-01' + g, timestamptz '2000-01-01 00:00:00+00' + g * interval '1 s' \
         FROM generate_series(1, 20000) g",
        )
        .await;
    assert_eq!(many, 20000);
    run(&pg, &format!("DROP TABLE {table}")).await;
    run(&pg, &format!("DROP TYPE {mood}")).await;
}

/// A value the Arrow column cannot hold (a `NaN` in a `numeric(p,s)` column, more
/// fraction digits than declared, `infinity` in a timestamp column, a year chrono
/// cannot hold) fails both paths with the same error after the same rows.
#[tokio::test]
async fn values_arrow_cannot_hold_fail_as_on_the_row_path() {
    let server = server!();
    let pg = source(server.tcp());
    let table = unique_name("columnar_edges");
    run(
        &pg,
        &format!("CREATE TABLE {table} (id int, n numeric(10,2), ts timestamp, d date)"),
    )
    .await;
    run(
        &pg,
        &format!(
            "INSERT INTO {table} VALUES (1, 1.25, '2020-01-01', '2020-01-01'), \
             (2, 'NaN', '2020-01-01', '2020-01-01'), (3, 1, 'infinity', '2020-01-01'), \
             (4, 1, '2020-01-01', '5874897-12-31')"
        ),
    )
    .await;
    for id in [2, 3] {
        let error = paths(&pg)
            .assert_same_error(&format!(
                "SELECT * FROM {table} WHERE id IN (1, {id}) ORDER BY id"
            ))
            .await;
        assert!(error.contains("arrow column"), "{error}");
    }
    // A date chrono cannot hold: the row decoder's error.
    let error = paths(&pg)
        .assert_same_error(&format!("SELECT * FROM {table} WHERE id = 4"))
        .await;
    assert!(error.contains("out of range"), "{error}");
    // A later cell the row decoder refuses is the error, as on the row path, also
    // when an earlier cell does not fit its Arrow column.
    let error = paths(&pg)
        .assert_same_error("SELECT 'infinity'::timestamp AS ts, '5874897-12-31'::date AS d")
        .await;
    assert!(!error.contains("arrow column"), "{error}");
    run(&pg, &format!("DROP TABLE {table}")).await;
}

/// Batches hold `limits.rows` rows, or fewer once their values take about
/// `limits.bytes`; the last holds the rest; an empty result has the schema and no batch.
#[tokio::test]
async fn batches_are_cut_at_the_row_and_byte_limits() {
    let server = server!();
    let pg = source(server.tcp());
    // A row is 4 + 4 fixed bytes and 92 bytes of text: 100 bytes.
    paths(&pg)
        .assert_cut_at_the_limits(
            "SELECT g, repeat('x', 92) AS t FROM generate_series(1, 10) g",
            "SELECT 1 AS one WHERE false",
        )
        .await;
}

/// On a `read_only` connector a write through `stream_batches` fails with the
/// server's read-only error and writes nothing.
#[tokio::test]
async fn read_only_holds_for_stream_batches() {
    let server = server!();
    let rw = source(server.tcp());
    let table = unique_name("columnar_ro");
    run(&rw, &format!("CREATE TABLE {table} (id int)")).await;
    let ro = source(server.tcp().with_read_only(true));
    let statement = Statement::new(format!("INSERT INTO {table} VALUES (1) RETURNING id"));
    let outcome = paths(&ro)
        .columnar(&statement, &QueryOptions::default(), BatchLimits::default())
        .await;
    let err = expect_kind(
        outcome,
        ErrorKind::ReadOnly,
        "insert through stream_batches",
    );
    assert_eq!(err.sql_state(), Some("25006"));
    assert_eq!(
        scalar(&rw, format!("SELECT count(*) FROM {table}").as_str()).await,
        Value::I64(0)
    );
    run(&rw, &format!("DROP TABLE {table}")).await;
}

/// The wait for the first row, and for each later one, is bounded by the timeout; when
/// it runs out the query is cancelled on the server and the source serves again.
#[tokio::test]
async fn timeout_cancels_the_query_on_the_server() {
    let server = server!();
    let pg = one_connection(server.tcp());
    let observer = source(server.tcp());
    let options = QueryOptions::default().with_timeout(Duration::from_secs(1));
    for (what, marker) in [
        (
            "first row",
            format!(
                "SELECT pg_sleep(30) /* columnar first {} */",
                std::process::id()
            ),
        ),
        (
            "later row",
            format!(
                "SELECT g, repeat('x', 1000), pg_sleep(CASE WHEN g = 100 THEN 30 ELSE 0 END) \
                 FROM generate_series(1, 200) g /* columnar later {} */",
                std::process::id()
            ),
        ),
    ] {
        let started = Instant::now();
        let outcome = match pg
            .stream_batches(&Statement::new(marker.as_str()), &options, ONE_ROW)
            .await
        {
            Ok(mut batches) => {
                let mut rows = 0;
                loop {
                    match batches.next().await {
                        Some(Ok(batch)) => rows += batch.num_rows(),
                        Some(Err(err)) => break Err((rows, err)),
                        None => break Ok(rows),
                    }
                }
            }
            Err(err) => Err((0, err)),
        };
        let (rows, err) = outcome.expect_err(what);
        assert_eq!(err.kind(), ErrorKind::Timeout, "{what}: {err}");
        // The server sends rows as its output buffer fills: some of the 99 before the
        // slow one came, so the timeout bounded the wait for a later row.
        assert_eq!(rows > 0, what == "later row", "{what}: {rows} rows");
        let elapsed = started.elapsed();
        assert!(elapsed < Duration::from_secs(3), "{what}: took {elapsed:?}");
        let gone = time_until_gone(&observer, &marker, Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("{what}: the query still runs on the server"));
        assert!(gone < Duration::from_secs(1), "{what}: gone after {gone:?}");
        assert_eq!(scalar(&pg, "SELECT 1").await, Value::I32(1));
    }
}

/// A stream dropped early cancels its query and leaves the pool serving; a stream read
/// to its end resets the session before the connection serves the next call.
#[tokio::test]
async fn dropped_or_finished_streams_leave_a_clean_pool() {
    let server = server!();
    let pg = one_connection(server.tcp());
    let observer = source(server.tcp());
    let marker = format!(
        "SELECT set_config('application_name', 'columnar-dirty', false) AS a, \
         generate_series(1, 1000000000) AS g /* columnar drop {} */",
        std::process::id()
    );
    let mut batches = pg
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
    time_until_gone(&observer, &marker, Duration::from_secs(5))
        .await
        .expect("the query still runs after the stream was dropped");
    let clean = "SELECT current_setting('application_name') <> 'columnar-dirty'";
    assert_eq!(scalar(&pg, clean).await, Value::Bool(true));
    let finished = paths(&pg)
        .sizes(
            "SELECT set_config('application_name', 'columnar-dirty', false) AS a",
            BatchLimits::default(),
        )
        .await;
    assert_eq!(finished, [1]);
    assert_eq!(scalar(&pg, clean).await, Value::Bool(true));
    let state = pg.pool_state().expect("pool");
    assert_eq!(state.in_use, 0, "{state:?}");
}

/// On a `read_only` connector (whose calls end with a rollback rather than the full
/// reset), what a hostile statement sets through `stream_batches` — a session setting,
/// a session advisory lock — does not reach the next call on the same connection,
/// whether the stream was dropped early or read to its end; a data-modifying CTE
/// writes nothing.
#[tokio::test]
async fn read_only_streams_leave_no_session_state() {
    let server = server!();
    let rw = source(server.tcp());
    let table = unique_name("columnar_ro_state");
    run(&rw, &format!("CREATE TABLE {table} (id int)")).await;
    run(&rw, &format!("INSERT INTO {table} VALUES (1)")).await;
    let ro = one_connection(server.tcp().with_read_only(true));
    let dirty = "SELECT set_config('application_name', 'columnar-ro-dirty', false) AS a, \
                 pg_advisory_lock(424242) AS l, g FROM generate_series(1, 100000) g";
    let limits = BatchLimits {
        rows: 10,
        bytes: usize::MAX,
    };
    let clean = "SELECT current_setting('application_name') <> 'columnar-ro-dirty' \
                 AND NOT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' \
                 AND pid = pg_backend_pid())";
    // Dropped after its first batch.
    let mut batches = ro
        .stream_batches(&Statement::new(dirty), &QueryOptions::default(), limits)
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
    assert_eq!(scalar(&ro, clean).await, Value::Bool(true));
    // Read to its end.
    let read = paths(&ro)
        .sizes(&dirty.replace("100000", "25"), limits)
        .await;
    assert_eq!(read.iter().sum::<usize>(), 25);
    assert_eq!(scalar(&ro, clean).await, Value::Bool(true));
    // A write hidden in a CTE.
    let delete = Statement::new(format!(
        "WITH d AS (DELETE FROM {table} RETURNING id) SELECT id FROM d"
    ));
    let outcome = paths(&ro)
        .columnar(&delete, &QueryOptions::default(), limits)
        .await;
    expect_kind(outcome, ErrorKind::ReadOnly, "delete in a CTE");
    assert_eq!(
        scalar(&rw, format!("SELECT count(*) FROM {table}").as_str()).await,
        Value::I64(1)
    );
    run(&rw, &format!("DROP TABLE {table}")).await;
}

/// A hostile result of large cells is cut into batches of one row each once a row
/// passes `limits.bytes`, and a result of many tiny rows at `limits.rows`: no batch
/// holds more than the limits allow (one row past the bytes, at most).
#[tokio::test]
async fn large_cells_and_tiny_rows_stay_within_the_batch_limits() {
    let server = server!();
    let pg = source(server.tcp());
    paths(&pg)
        .assert_large_and_tiny_rows_bounded(
            "SELECT g, repeat('x', 8000000) AS t FROM generate_series(1, 3) g",
            "SELECT NULL::int AS n FROM generate_series(1, 2500)",
        )
        .await;
}
