//! The PostgreSQL backend against a real server: transports, TLS, errors, timeouts with
//! server-side cancel, read-only sessions, options, types and streaming.

mod support;

use std::time::{Duration, Instant};

use extdata_conformance::support::{
    Call, SENTINEL_PASSWORD, assert_error_has_no_secret, call_error, expect_kind, timed_out,
};
use extdata_core::{Decimal, ErrorKind, ExternalSource, Interval, QueryOptions, Statement, Value};
use futures::StreamExt;

use support::{bounded_pool, first_row, one_connection, scalar, source, time_until_gone};

const SESSION_TLS: &str = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";

#[tokio::test]
async fn connects_over_tcp_unix_socket_and_verified_tls() {
    let server = server!();
    let tcp = source(server.tcp());
    let info = tcp.ping().await.expect("tcp ping");
    assert!(info.version.starts_with("15") || !info.version.is_empty());
    assert_eq!(scalar(&tcp, SESSION_TLS).await, Value::Bool(false));

    let unix = source(server.unix());
    unix.ping().await.expect("unix ping");
    // Over the socket pg_stat_activity has no client address.
    assert_eq!(
        scalar(
            &unix,
            "SELECT client_addr IS NULL FROM pg_stat_activity WHERE pid = pg_backend_pid()"
        )
        .await,
        Value::Bool(true)
    );

    let tls = source(server.tls());
    tls.ping().await.expect("tls ping");
    assert_eq!(scalar(&tls, SESSION_TLS).await, Value::Bool(true));
}

#[tokio::test]
async fn socket_path_instead_of_directory_works() {
    let server = server!();
    let path = format!("{}/.s.PGSQL.{}", server.socket, server.port);
    let unix = source(server.unix().with_host(path));
    assert_eq!(scalar(&unix, "SELECT 1").await, Value::I32(1));
}

#[tokio::test]
async fn certificate_only_user_connects_with_pem_text() {
    let server = server!();
    let cert = source(server.cert_user());
    assert_eq!(
        scalar(&cert, "SELECT current_user::text").await,
        Value::Text(server.cert_user.clone())
    );
    assert_eq!(scalar(&cert, SESSION_TLS).await, Value::Bool(true));
}

#[tokio::test]
async fn wrong_ca_is_a_tls_error() {
    let server = server!();
    let mut config = server.tls();
    if let Some(ssl) = config.ssl.as_mut() {
        ssl.ca = Some(server.wrong_ca_pem.clone());
    }
    let err = expect_kind(
        source(config).ping().await,
        ErrorKind::Tls,
        "wrong CA must fail",
    );
    assert_error_has_no_secret(&err, &server.password, "wrong-CA error");
}

/// A name of this machine that reaches the server (127.0.0.1) but is not in the server
/// certificate (which names localhost, 127.0.0.1 and ::1).
fn alias_of_loopback() -> Option<String> {
    let hosts = std::fs::read_to_string("/etc/hosts").ok()?;
    hosts.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next()? == "127.0.0.1")
            .then(|| words.find(|w| *w != "localhost" && !w.starts_with('#')))
            .flatten()
            .map(str::to_owned)
    })
}

#[tokio::test]
async fn host_name_mismatch_fails_full_verification_but_passes_ca_mode() {
    let server = server!();
    let Some(alias) = alias_of_loopback() else {
        eprintln!("skipped: /etc/hosts has no other name for 127.0.0.1");
        return;
    };
    let mut config = server.tls().with_host(alias.clone());
    expect_kind(
        source(config.clone()).ping().await,
        ErrorKind::Tls,
        &format!("wrong host name {alias}"),
    );
    if let Some(ssl) = config.ssl.as_mut() {
        ssl.verify = Some("ca".into());
    }
    source(config)
        .ping()
        .await
        .expect("verify = ca ignores the host name");
}

#[tokio::test]
async fn wrong_password_is_auth_error_without_the_password() {
    let server = server!();
    let err = expect_kind(
        source(server.tcp().with_password(SENTINEL_PASSWORD))
            .ping()
            .await,
        ErrorKind::Auth,
        "wrong password must fail",
    );
    assert_eq!(err.sql_state(), Some("28P01"));
    assert_error_has_no_secret(&err, SENTINEL_PASSWORD, "wrong-password error");
    let debug = format!(
        "{:?}",
        source(server.tcp().with_password(SENTINEL_PASSWORD))
    );
    assert!(!debug.contains(SENTINEL_PASSWORD));
}

#[tokio::test]
async fn closed_port_is_connect_error() {
    let server = server!();
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let started = Instant::now();
    let err = expect_kind(
        source(
            server
                .tcp()
                .with_host("127.0.0.1")
                .with_port(port)
                .with_password(SENTINEL_PASSWORD),
        )
        .ping()
        .await,
        ErrorKind::Connect,
        "closed port",
    );
    assert!(err.is_temporary());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a refused connection must fail at once, took {:?}",
        started.elapsed()
    );
    assert_error_has_no_secret(&err, SENTINEL_PASSWORD, "closed-port error");
}

#[tokio::test]
async fn unknown_database_is_database_error() {
    let server = server!();
    expect_kind(
        source(server.tcp().with_database("extdata_no_such_db"))
            .ping()
            .await,
        ErrorKind::Database,
        "missing database",
    );
}

#[tokio::test]
async fn syntax_error_is_query_error_without_the_password() {
    let server = server!();
    let pg = source(server.tcp());
    let err = call_error(&pg, Call::Query, "SELEKT 1", ErrorKind::Query).await;
    assert_eq!(err.sql_state(), Some("42601"));
    assert_eq!(err.connector(), Some("pg-test"));
    assert_error_has_no_secret(&err, &server.password, "syntax error");
    let err = call_error(
        &pg,
        Call::Query,
        "SELECT * FROM extdata_no_such_table",
        ErrorKind::Query,
    )
    .await;
    assert_eq!(err.sql_state(), Some("42P01"));
    // The connection is still good after server errors.
    assert_eq!(scalar(&pg, "SELECT 2").await, Value::I32(2));
}

#[tokio::test]
async fn timeout_cancels_query_on_server() {
    let server = server!();
    let pg = source(server.tcp());
    let observer = source(server.tcp());
    let marker = format!("SELECT pg_sleep(30) /* {} */", std::process::id());
    let started = Instant::now();
    timed_out(&pg, Call::Query, &marker, Duration::from_secs(1)).await;
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
    let gone = time_until_gone(&observer, &marker, Duration::from_secs(5))
        .await
        .expect("the query still runs on the server 5 s after the timeout");
    eprintln!(
        "timeout returned after {elapsed:?}; query gone from pg_stat_activity after {gone:?}"
    );
    assert!(gone < Duration::from_secs(1), "gone after {gone:?}");
    // The source serves again.
    assert_eq!(scalar(&pg, "SELECT 1").await, Value::I32(1));
}

#[tokio::test]
async fn fifty_timeouts_in_a_row_leave_the_pool_serving() {
    let server = server!();
    let pg = bounded_pool(server.tcp(), 2, "2s");
    let observer = source(server.tcp());
    let marker = format!("SELECT pg_sleep(30) /* fifty {} */", std::process::id());
    let options = QueryOptions::default().with_timeout(Duration::from_millis(500));
    let started = Instant::now();
    for i in 0..50 {
        expect_kind(
            pg.query(&Statement::new(marker.clone()), &options).await,
            ErrorKind::Timeout,
            &format!("timeout {i}"),
        );
    }
    let total = started.elapsed();
    let state = pg.pool_state().expect("pool in use");
    eprintln!("50 timeouts took {total:?}; pool afterwards: {state:?}");
    assert_eq!(state.in_use, 0, "{state:?}");
    assert!(state.open <= 2, "{state:?}");
    assert_eq!(scalar(&pg, "SELECT 42").await, Value::I32(42));
    assert!(
        time_until_gone(&observer, &marker, Duration::from_secs(2))
            .await
            .is_some(),
        "cancelled queries still running"
    );
}

#[tokio::test]
async fn connector_query_timeout_applies_and_statement_timeout_guards_the_server() {
    let server = server!();
    let pg = source(server.tcp().with_query_timeout(Duration::from_secs(3)));
    // The server-side guard is the query timeout plus one second.
    assert_eq!(
        scalar(&pg, "SELECT current_setting('statement_timeout')").await,
        Value::Text("4s".into())
    );
    let started = Instant::now();
    call_error(
        &pg,
        Call::Execute,
        "SELECT pg_sleep(10)",
        ErrorKind::Timeout,
    )
    .await;
    assert!(started.elapsed() < Duration::from_millis(3900));
}

#[tokio::test]
async fn read_only_connector_refuses_writes_with_the_servers_error() {
    let server = server!();
    let rw = source(server.tcp());
    let table = format!("ro_{}", std::process::id());
    rw.execute(
        &Statement::new(format!("CREATE TABLE IF NOT EXISTS {table} (id int)")),
        &QueryOptions::default(),
    )
    .await
    .expect("create");
    let ro = source(server.tcp().with_read_only(true));
    let err = call_error(
        &ro,
        Call::Execute,
        format!("INSERT INTO {table} VALUES (1)"),
        ErrorKind::ReadOnly,
    )
    .await;
    assert_eq!(err.sql_state(), Some("25006"));
    assert_eq!(
        scalar(&ro, format!("SELECT count(*) FROM {table}").as_str()).await,
        Value::I64(0)
    );
    rw.execute(
        &Statement::new(format!("DROP TABLE {table}")),
        &QueryOptions::default(),
    )
    .await
    .expect("drop");
}

#[tokio::test]
async fn options_set_the_session() {
    let server = server!();
    let pg = source(server.tcp().with_options(
        "application_name=crm-import&search_path=pg_catalog,public&timezone=Asia/Tokyo\
         &lock_timeout=1500ms&statement_cache_capacity=5&options=-c%20work_mem%3D7MB%20--geqo%3Doff",
    ));
    let row = first_row(
        &pg,
        &Statement::new(
            "SELECT current_setting('application_name'), current_setting('search_path'), \
                 current_setting('TimeZone'), current_setting('lock_timeout'), \
                 current_setting('work_mem'), current_setting('geqo')",
        ),
    )
    .await;
    let text = |s: &str| Value::Text(s.to_owned());
    assert_eq!(
        row,
        vec![
            text("crm-import"),
            text("pg_catalog,public"),
            text("Asia/Tokyo"),
            text("1500ms"),
            text("7MB"),
            text("off"),
        ]
    );
}

#[tokio::test]
async fn server_values_of_every_type_decode_exactly() {
    let server = server!();
    let pg = source(server.tcp());
    let forty = "1234567890123456789012345678901234567890.0123456789";
    let row = first_row(
        &pg,
        &Statement::new(format!(
            "SELECT true, 32767::int2, (-2147483648)::int4, 9223372036854775807::int8, \
                 1.5::float4, 'NaN'::float8, '{forty}'::numeric, 'NaN'::numeric, \
                 'abc'::varchar(5), 'ab'::char(4), 'x'::name, '\\x00ff'::bytea, \
                 '2024-02-29'::date, '23:59:59.999999'::time, '10:00:00+05:30'::timetz, \
                 '2024-02-29 12:34:56.789012'::timestamp, \
                 '2024-02-29 12:34:56.789012+03'::timestamptz, \
                 '1 year 2 mons 3 days 04:05:06.5'::interval, \
                 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, '{{\"a\": [1, 2.5]}}'::json, \
                 '{{\"b\": null}}'::jsonb, '10.1.2.3'::inet, '10.0.0.0/8'::cidr, \
                 ARRAY[1, NULL, 3]::int4[], ARRAY['x', 'y']::text[], \
                 ARRAY[[1, 2], [3, 4]]::int8[], '12.34'::money, point(1, 2), \
                 'infinity'::timestamp, 'Infinity'::numeric"
        )),
    )
    .await;
    let date = chrono::NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
    let expected = vec![
        Value::Bool(true),
        Value::I16(32767),
        Value::I32(i32::MIN),
        Value::I64(i64::MAX),
        Value::F32(1.5),
        Value::F64(f64::NAN),
        Value::Decimal(forty.parse::<Decimal>().unwrap()),
        Value::Decimal("NaN".parse().unwrap()),
        Value::Text("abc".into()),
        Value::Text("ab  ".into()),
        Value::Text("x".into()),
        Value::Bytes(vec![0, 255]),
        Value::Date(date),
        Value::Time(chrono::NaiveTime::from_hms_micro_opt(23, 59, 59, 999_999).unwrap()),
        Value::TimeTz(
            chrono::NaiveTime::from_hms_opt(10, 0, 0).unwrap(),
            chrono::FixedOffset::east_opt(5 * 3600 + 1800).unwrap(),
        ),
        Value::Timestamp(date.and_hms_micro_opt(12, 34, 56, 789_012).unwrap()),
        Value::TimestampTz(
            chrono::DateTime::parse_from_rfc3339("2024-02-29T12:34:56.789012+03:00").unwrap(),
        ),
        Value::Interval(Interval {
            months: 14,
            days: 3,
            microseconds: 4 * 3_600_000_000 + 5 * 60_000_000 + 6_500_000,
        }),
        Value::Uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".parse().unwrap()),
        Value::Json(serde_json_value(r#"{"a": [1, 2.5]}"#)),
        Value::Json(serde_json_value(r#"{"b": null}"#)),
        Value::Ip("10.1.2.3".parse().unwrap()),
        Value::IpNetwork("10.0.0.0".parse().unwrap(), 8),
        Value::Array(vec![Value::I32(1), Value::Null, Value::I32(3)]),
        Value::Array(vec![Value::Text("x".into()), Value::Text("y".into())]),
        Value::Array(vec![
            Value::Array(vec![Value::I64(1), Value::I64(2)]),
            Value::Array(vec![Value::I64(3), Value::I64(4)]),
        ]),
        Value::Text("$12.34".into()),
        Value::Text("(1,2)".into()),
        Value::Text("infinity".into()),
        Value::Decimal("Infinity".parse().unwrap()),
    ];
    assert_eq!(row.len(), expected.len());
    for (i, (got, want)) in row.iter().zip(&expected).enumerate() {
        match (got, want) {
            (Value::F64(a), Value::F64(b)) if a.is_nan() && b.is_nan() => {}
            _ => assert_eq!(got, want, "column {i}"),
        }
    }
}

fn serde_json_value(text: &str) -> serde_json::Value {
    serde_json::from_str(text).expect("json")
}

#[tokio::test]
async fn enum_and_unknown_types_come_back_as_text() {
    let server = server!();
    let pg = source(server.tcp());
    let mood = format!("mood_{}", std::process::id());
    let run = |sql: String| {
        let pg = &pg;
        async move {
            pg.execute(&Statement::new(sql.clone()), &QueryOptions::default())
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
        }
    };
    run(format!("DROP TYPE IF EXISTS {mood} CASCADE")).await;
    run(format!("CREATE TYPE {mood} AS ENUM ('sad', 'happy')")).await;
    let result = pg
        .query(
            &Statement::new(format!(
                "SELECT 'happy'::{mood} AS m, ARRAY['sad', 'happy']::{mood}[] AS ms, \
                 int4range(1, 5) AS r, B'101' AS b"
            )),
            &QueryOptions::default(),
        )
        .await
        .expect("select");
    assert_eq!(
        result.rows[0].values(),
        &[
            Value::Text("happy".into()),
            Value::Array(vec![Value::Text("sad".into()), Value::Text("happy".into())]),
            Value::Text("[1,5)".into()),
            Value::Text("101".into()),
        ]
    );
    assert_eq!(result.columns[2].database_type, "INT4RANGE");
    // Binding into an enum column works through the text parameter.
    let table = format!("moods_{}", std::process::id());
    run(format!("CREATE TABLE {table} (m {mood})")).await;
    let affected = pg
        .execute(
            &Statement::new(format!("INSERT INTO {table} VALUES (:m::{mood})")).bind("m", "sad"),
            &QueryOptions::default(),
        )
        .await
        .expect("insert enum");
    assert_eq!(affected, 1);
    run(format!("DROP TABLE {table}")).await;
    run(format!("DROP TYPE {mood}")).await;
}

#[tokio::test]
async fn bound_values_round_trip_exactly() {
    let server = server!();
    let pg = source(server.tcp());
    let big = "-98765432109876543210987654321098765432109876543210.000000000000000000001";
    let ts = chrono::DateTime::parse_from_rfc3339("1999-12-31T23:59:59.999999-08:00").unwrap();
    let values = vec![
        Value::Bool(false),
        Value::I16(i16::MIN),
        Value::I32(i32::MAX),
        Value::I64(i64::MIN),
        Value::F32(-0.25),
        Value::F64(1e300),
        Value::Decimal(big.parse().unwrap()),
        Value::Decimal("NaN".parse().unwrap()),
        Value::Decimal("0.000".parse().unwrap()),
        Value::Text("héllo 'world' \" ; --".into()),
        Value::Bytes(vec![0, 1, 2, 255]),
        Value::Date(chrono::NaiveDate::from_ymd_opt(1, 1, 1).unwrap()),
        Value::Time(chrono::NaiveTime::from_hms_micro_opt(0, 0, 0, 1).unwrap()),
        Value::TimeTz(
            chrono::NaiveTime::from_hms_opt(1, 2, 3).unwrap(),
            chrono::FixedOffset::west_opt(7 * 3600).unwrap(),
        ),
        Value::Timestamp(
            chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
                .unwrap()
                .and_hms_micro_opt(0, 0, 0, 123_456)
                .unwrap(),
        ),
        Value::TimestampTz(ts),
        Value::Interval(Interval {
            months: -1,
            days: 40,
            microseconds: -1,
        }),
        Value::Uuid(uuid::Uuid::nil()),
        Value::Json(serde_json_value(r#"{"k": [true, null, "x"]}"#)),
        Value::Ip("::1".parse().unwrap()),
        Value::IpNetwork("192.168.0.0".parse().unwrap(), 16),
        Value::Array(vec![Value::I64(1), Value::Null]),
        Value::Array(vec![Value::Text("a".into()), Value::Text("b c".into())]),
    ];
    let mut statement_sql = String::from("SELECT ");
    let mut statement = Statement::new("");
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            statement_sql.push_str(", ");
        }
        statement_sql.push_str(&format!(":v{i}"));
        statement.set(format!("v{i}"), value.clone());
    }
    let mut bound = Statement::new(statement_sql);
    for (name, value) in statement.params() {
        bound.set(name.clone(), value.clone());
    }
    let row = first_row(&pg, &bound).await;
    assert_eq!(row, values);
    // u64::MAX does not fit int8: it is sent as numeric and comes back exactly.
    assert_eq!(
        scalar(&pg, Statement::new("SELECT :v").bind("v", u64::MAX)).await,
        Value::Decimal(u64::MAX.to_string().parse().unwrap())
    );
}

#[tokio::test]
async fn same_sql_with_other_parameter_types_is_not_confused() {
    let server = server!();
    let pg = one_connection(server.tcp());
    let sql = "SELECT :v::text IS NULL";
    for value in [
        Value::I64(5),
        Value::Null,
        Value::Text("x".into()),
        Value::I16(1),
        Value::Null,
    ] {
        let expected = Value::Bool(value.is_null());
        assert_eq!(
            scalar(&pg, Statement::new(sql).bind("v", value.clone())).await,
            expected,
            "{value:?}"
        );
    }
}

#[tokio::test]
async fn execute_returns_rows_affected_and_describe_does_not_run() {
    let server = server!();
    let pg = source(server.tcp());
    let table = format!("exec_{}", std::process::id());
    let opts = QueryOptions::default();
    pg.execute(
        &Statement::new(format!("CREATE TABLE {table} (id int8, name text)")),
        &opts,
    )
    .await
    .expect("create");
    let affected = pg
        .execute(
            &Statement::new(format!(
                "INSERT INTO {table} SELECT g, 'n' || g FROM generate_series(1, 7) g"
            )),
            &opts,
        )
        .await
        .expect("insert");
    assert_eq!(affected, 7);
    let started = Instant::now();
    let columns = pg
        .describe(
            &Statement::new(format!(
                "SELECT id, name, pg_sleep(5) AS s FROM {table} WHERE id = :id"
            ))
            .bind("id", 1_i64),
            &opts,
        )
        .await
        .expect("describe");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "describe ran the query"
    );
    let names: Vec<_> = columns
        .iter()
        .map(|c| (c.name.as_str(), c.value_kind))
        .collect();
    assert_eq!(
        names,
        vec![
            ("id", extdata_core::ValueKind::I64),
            ("name", extdata_core::ValueKind::Text),
            ("s", extdata_core::ValueKind::Null),
        ]
    );
    let deleted = pg
        .execute(
            &Statement::new(format!("DELETE FROM {table} WHERE id > :n")).bind("n", 3_i64),
            &opts,
        )
        .await
        .expect("delete");
    assert_eq!(deleted, 4);
    pg.execute(&Statement::new(format!("DROP TABLE {table}")), &opts)
        .await
        .expect("drop");
}

#[tokio::test]
async fn stream_is_back_pressured_and_dropping_it_stops_the_query() {
    let server = server!();
    let pg = source(server.tcp());
    let observer = source(server.tcp());
    // A set-returning function in the select list streams (one in FROM is materialized).
    let marker = format!(
        "SELECT generate_series(1, 1000000000) AS g /* stream {} */",
        std::process::id()
    );
    let sql = marker.clone();
    let started = Instant::now();
    let mut stream = pg
        .stream(&Statement::new(sql), &QueryOptions::default())
        .await
        .expect("stream");
    assert_eq!(stream.columns()[0].name, "g");
    for expected in 1..=1000_i32 {
        let row = stream.next().await.expect("row").expect("ok");
        assert_eq!(row.values()[0], Value::I32(expected));
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "first rows of a billion-row series took {:?}",
        started.elapsed()
    );
    drop(stream);
    let gone = time_until_gone(&observer, &marker, Duration::from_secs(5))
        .await
        .expect("query still running after the stream was dropped");
    eprintln!("dropped stream: query gone after {gone:?}");
    assert_eq!(scalar(&pg, "SELECT 3").await, Value::I32(3));
    let state = pg.pool_state().expect("pool");
    assert_eq!(state.in_use, 0, "{state:?}");
}

#[tokio::test]
async fn stream_delivers_every_row_then_ends() {
    let server = server!();
    let pg = source(server.tcp());
    let stream = pg
        .stream(
            &Statement::new("SELECT g, md5(g::text) FROM generate_series(1, :n) g")
                .bind("n", 50_000_i32),
            &QueryOptions::default(),
        )
        .await
        .expect("stream");
    let rows: Vec<_> = stream.collect().await;
    assert_eq!(rows.len(), 50_000);
    for (i, row) in rows.into_iter().enumerate() {
        assert_eq!(row.expect("row").values()[0], Value::I32(i as i32 + 1));
    }
}

#[tokio::test]
async fn transaction_control_is_refused_not_leaked_into_the_pool() {
    let server = server!();
    let pg = one_connection(server.tcp());
    for sql in [
        "BEGIN",
        "  /* c */ start transaction",
        "-- x\nBegin Isolation Level Serializable",
    ] {
        call_error(&pg, Call::Execute, sql, ErrorKind::Unsupported).await;
    }
    // Nothing was started, so the single connection still autocommits: a write
    // from one call is visible to the next connection.
    assert_eq!(scalar(&pg, "SELECT 1").await, Value::I32(1));
}

#[tokio::test]
async fn query_max_rows_truncates_and_the_source_stays_usable() {
    let server = server!();
    let pg = source(server.tcp());
    let result = pg
        .query(
            &Statement::new("SELECT g FROM generate_series(1, 100000) g"),
            &QueryOptions::default().with_max_rows(10),
        )
        .await
        .expect("query");
    assert_eq!(result.rows.len(), 10);
    assert!(result.truncated);
    assert_eq!(scalar(&pg, "SELECT 5").await, Value::I32(5));
}

#[tokio::test]
async fn closed_source_refuses_calls() {
    let server = server!();
    let pg = source(server.tcp());
    pg.ping().await.expect("ping");
    pg.close().await;
    expect_kind(pg.ping().await, ErrorKind::Closed, "closed");
}

/// A `numeric(p,s)` column read straight from a table or view is named with its
/// declared precision and scale (`NUMERIC(20,4)`), by `query`, `stream` and `describe`
/// alike, so that columnar writers can give it a decimal type; computed columns (casts,
/// arithmetic, `UNION`s) and plain `numeric` stay `NUMERIC`.
#[tokio::test]
async fn numeric_table_columns_carry_their_precision_and_scale() {
    let server = server!();
    let pg = source(server.tcp());
    let table = extdata_conformance::support::unique_name("typmod");
    let view = format!("{table}_v");
    let run = |sql: String| {
        let pg = &pg;
        async move {
            pg.execute(&Statement::new(sql.as_str()), &QueryOptions::default())
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    };
    run(format!(
        "CREATE TABLE {table} (id int, a numeric(20,4), b numeric, c numeric(5,-2), \
         d numeric(60,10), e numeric(2,5))"
    ))
    .await;
    run(format!(
        "CREATE VIEW {view} AS SELECT a AS va, b AS vb FROM {table}"
    ))
    .await;
    run(format!(
        "INSERT INTO {table} VALUES (1, -9999999999999999.9999, 1.5, 12300, 0.5, 0.00042), \
         (2, NULL, NULL, NULL, NULL, NULL)"
    ))
    .await;
    let cases = [
        (
            format!("SELECT a, b, c, d, e, a AS renamed FROM {table} WHERE id = :id"),
            vec![
                "NUMERIC(20,4)",
                "NUMERIC",
                "NUMERIC(5,-2)",
                "NUMERIC(60,10)",
                "NUMERIC(2,5)",
                "NUMERIC(20,4)",
            ],
        ),
        (
            format!(
                "SELECT v.va, s.a, w.a FROM {view} v, (SELECT a FROM {table}) s, \
                 (WITH q AS (SELECT a FROM {table}) SELECT a FROM q) w WHERE :id > 0 LIMIT 1"
            ),
            vec!["NUMERIC(20,4)"; 3],
        ),
        (
            format!(
                "SELECT a::numeric(30,2) AS cast, a + 1 AS sum, vb FROM {table}, {view} \
                 WHERE id = :id LIMIT 1"
            ),
            vec!["NUMERIC", "NUMERIC", "NUMERIC"],
        ),
        (
            format!("SELECT a FROM {table} WHERE id = :id UNION ALL SELECT d FROM {table}"),
            vec!["NUMERIC"],
        ),
    ];
    for (sql, expected) in cases {
        let statement = Statement::new(sql.as_str()).bind("id", 1_i32);
        let result = pg
            .query(&statement, &QueryOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let types = |columns: &[extdata_core::Column]| -> Vec<String> {
            columns.iter().map(|c| c.database_type.clone()).collect()
        };
        assert_eq!(types(&result.columns), expected, "{sql}");
        let described = pg
            .describe(&statement, &QueryOptions::default())
            .await
            .unwrap();
        assert_eq!(types(&described), expected, "describe {sql}");
        let stream = pg
            .stream(&statement, &QueryOptions::default())
            .await
            .unwrap();
        assert_eq!(types(stream.columns()), expected, "stream {sql}");
    }
    // The values themselves are as before: every digit.
    let row = pg
        .query(
            &Statement::new(format!("SELECT a, c, e FROM {table} WHERE id = 1")),
            &QueryOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        row.rows[0].values(),
        [
            Value::Decimal("-9999999999999999.9999".parse().unwrap()),
            Value::Decimal("12300".parse().unwrap()),
            Value::Decimal("0.00042".parse().unwrap()),
        ]
    );
    run(format!("DROP VIEW {view}")).await;
    run(format!("DROP TABLE {table}")).await;
}
