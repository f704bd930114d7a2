//! Parameter values are subscribers' personal data: they must not reach errors or logs,
//! even when the server quotes them. Each live backend is made to fail on a bound value
//! in the ways servers echo it — a failed cast (`invalid input syntax …: "value"`,
//! `Cannot parse string 'value'`), a duplicate key (`Duplicate entry 'value'`, or
//! PostgreSQL's `DETAIL: Key (k)=(value)`) — and the value must be in no `Display`,
//! `Debug` or error chain, nor in any log line of the process (all tracing events at
//! TRACE level, the drivers' included), while the error keeps its kind and says where
//! the value was (`<value of :name>`).

use std::sync::Arc;

use extdata::{Error, ErrorKind, ExternalSource, QueryOptions, Statement};
use extdata_conformance::support::{
    assert_no_secret, block_on, captured_logs, error_texts, unique_name,
};
use extdata_reliability::{Backend, source};

/// A value nobody else uses, per backend and case.
fn subscriber_value(backend: Backend, case: &str) -> String {
    format!("subscriber-{}-{case}-5f3a9c@example.com", backend.kind())
}

/// `error` must not hold `value` anywhere; where the server is known to quote the
/// value (`quoted`), the error says which parameter was redacted instead.
fn assert_value_hidden(error: &Error, value: &str, quoted: bool, what: &str) {
    let texts = error_texts(error);
    for (i, text) in texts.iter().enumerate() {
        assert_no_secret(text, value, &format!("{what}, error text #{i}"));
    }
    if quoted {
        assert!(
            texts.iter().any(|t| t.contains("<value of :v>")),
            "{what}: the server quoted no value? {texts:?}"
        );
    }
}

/// [`assert_value_hidden`], and no log line holds `value` either.
fn assert_hidden_in_error_and_log(error: &Error, value: &str, quoted: bool, what: &str) {
    assert_value_hidden(error, value, quoted, what);
    assert_no_secret(&captured_logs(), value, "the log");
}

/// A cast of a bound text to an integer fails on the server, which quotes the value.
async fn failed_cast(backend: Backend, db: &Arc<dyn ExternalSource>) {
    let value = subscriber_value(backend, "cast");
    let sql = match backend {
        Backend::ClickHouse | Backend::ClickHouse26 => "SELECT toInt32(:v) AS n",
        _ => "SELECT CAST(:v AS INTEGER) AS n",
    };
    let statement = Statement::new(sql).bind("v", value.as_str());
    let error = db
        .query(&statement, &QueryOptions::default())
        .await
        .expect_err("a cast of an e-mail address to an integer fails");
    eprintln!("{}: {error}", backend.kind());
    assert!(
        matches!(error.kind(), ErrorKind::Query | ErrorKind::Parameter),
        "{error}"
    );
    // PostgreSQL quotes the text it could not cast.
    let quoted = matches!(backend, Backend::Postgres);
    let what = format!("{}: failed cast", backend.kind());
    assert_hidden_in_error_and_log(&error, &value, quoted, &what);
}

/// A second insert of the same key fails; servers quote the key.
async fn duplicate_key(backend: Backend, db: &Arc<dyn ExternalSource>) {
    let value = subscriber_value(backend, "dup");
    let table = unique_name("values_in_errors");
    let create = match backend {
        Backend::Postgres => format!("CREATE TABLE {table} (email text PRIMARY KEY)"),
        Backend::MySql => format!("CREATE TABLE {table} (email varchar(200) PRIMARY KEY, n int)"),
        _ => unreachable!("only servers with unique keys"),
    };
    let options = QueryOptions::default();
    db.execute(&Statement::new(create), &options)
        .await
        .expect("create the table");
    let insert = Statement::new(format!("INSERT INTO {table} (email) VALUES (:v)"))
        .bind("v", value.as_str());
    db.execute(&insert, &options).await.expect("first insert");
    if backend == Backend::MySql {
        // MariaDB casts text to a number with a warning; storing it in a strict table
        // is the error that quotes it.
        let value = subscriber_value(backend, "int");
        let into_number =
            Statement::new(format!("INSERT INTO {table} (email, n) VALUES ('x', :v)"))
                .bind("v", value.as_str());
        let error = db
            .execute(&into_number, &options)
            .await
            .expect_err("an e-mail address is no integer");
        eprintln!("{}: {error}", backend.kind());
        assert_value_hidden(&error, &value, true, "mysql: incorrect integer value");
    }
    let error = db
        .execute(&insert, &options)
        .await
        .expect_err("the second insert of one key fails");
    eprintln!("{}: {error}", backend.kind());
    assert_eq!(error.kind(), ErrorKind::Query, "{error}");
    let what = format!("{}: duplicate key", backend.kind());
    assert_hidden_in_error_and_log(&error, &value, true, &what);
    db.execute(&Statement::new(format!("DROP TABLE {table}")), &options)
        .await
        .expect("drop the table");
}

/// Servers quote pieces of values too: MariaDB cuts a long duplicate key to 64
/// characters, PostgreSQL's JSON parser names the bad token and its `where` holds the
/// start of the text.
async fn pieces_of_values(backend: Backend, db: &Arc<dyn ExternalSource>) {
    let options = QueryOptions::default();
    let (value, error) = match backend {
        Backend::Postgres => {
            let value = r#"{"email": secretTokenValue123, "x": 1}"#.to_owned();
            let statement =
                Statement::new("SELECT CAST(:v AS jsonb)::text AS j").bind("v", value.as_str());
            let error = db.query(&statement, &options).await.expect_err("not JSON");
            (value, error)
        }
        Backend::MySql => {
            let table = unique_name("values_in_errors");
            db.execute(
                &Statement::new(format!("CREATE TABLE {table} (k varchar(700) PRIMARY KEY)")),
                &options,
            )
            .await
            .expect("create the table");
            let value = format!("SECRETPREFIX-{}", "a".repeat(300));
            let insert = Statement::new(format!("INSERT INTO {table} (k) VALUES (:v)"))
                .bind("v", value.as_str());
            db.execute(&insert, &options).await.expect("first insert");
            let error = db.execute(&insert, &options).await.expect_err("duplicate");
            db.execute(&Statement::new(format!("DROP TABLE {table}")), &options)
                .await
                .expect("drop the table");
            (value, error)
        }
        _ => return,
    };
    eprintln!("{}: {error}", backend.kind());
    let secret = if backend == Backend::Postgres {
        "secretTokenValue123"
    } else {
        "SECRETPREFIX"
    };
    for (i, text) in error_texts(&error).iter().enumerate() {
        assert_no_secret(
            text,
            secret,
            &format!("{}: piece, error text #{i}", backend.kind()),
        );
    }
    assert!(
        error_texts(&error)
            .iter()
            .any(|t| t.contains("<part of :v>")),
        "{}: no piece was redacted: {error:?}",
        backend.kind()
    );
    assert_no_secret(&captured_logs(), secret, "the log");
    let _ = value;
}

fn run(backend: Backend) {
    captured_logs();
    let Some(server) = backend.server() else {
        return;
    };
    block_on(async {
        let db = source(&server.config());
        if backend != Backend::MySql {
            failed_cast(backend, &db).await;
        }
        if matches!(backend, Backend::Postgres | Backend::MySql) {
            duplicate_key(backend, &db).await;
            pieces_of_values(backend, &db).await;
        }
        db.close().await;
    });
}

#[test]
fn postgres_errors_quote_no_parameter_value() {
    run(Backend::Postgres);
}

#[test]
fn mysql_errors_quote_no_parameter_value() {
    run(Backend::MySql);
}

#[test]
fn clickhouse_errors_quote_no_parameter_value() {
    run(Backend::ClickHouse);
}

#[test]
fn clickhouse26_errors_quote_no_parameter_value() {
    run(Backend::ClickHouse26);
}

#[test]
fn hive_errors_quote_no_parameter_value() {
    run(Backend::Hive);
}
