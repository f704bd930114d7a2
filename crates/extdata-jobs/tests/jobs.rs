//! The jobs against real databases: SQLite files always; PostgreSQL, ClickHouse and Hive
//! when their servers are configured (`EXTDATA_TEST_*`, required by `EXTDATA_TEST_REQUIRE`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use extdata::ErrorKind;
use extdata_conformance::require_or_skip;
use extdata_conformance::support::{
    assert_elapsed_below, assert_error_has_no_secret, env, unique_name,
};
use extdata_jobs::{Lookups, Stop};

use serde_json::json;

mod support;
use support::*;

// ------------------------------------------------------------------- imports (generic)

/// How one backend writes the source table of the import tests.
struct SourceKind {
    /// `[[connectors]]` body for the server (name `src`).
    connector: String,
    create: fn(&str) -> String,
    /// The `updated_at` literal of version `n`.
    stamp: fn(u32) -> String,
    initial: &'static str,
}

impl SourceKind {
    /// A source whose `updated_at` is an integer: version `n` is `n`.
    fn integer(connector: String, create: fn(&str) -> String) -> Self {
        SourceKind {
            connector,
            create,
            stamp: |n| n.to_string(),
            initial: "0",
        }
    }
}

/// Imports the source table into four SQLite sink tables (one per mode, one created by
/// the import), changes two rows, imports again: the second run reads only those two.
async fn modes_and_increments(kind: SourceKind) {
    let fixture = Fixture::new();
    let table = unique_name("imp");
    let sink = fixture.path("sink.db");
    let check = sqlite_file(&sink);
    for t in ["upsert", "addonly", "updateonly"] {
        sql(
            check.as_ref(),
            &format!(
                "CREATE TABLE {t} (id INTEGER, email TEXT UNIQUE, name TEXT, updated_at TEXT)"
            ),
        )
        .await;
        sql(
            check.as_ref(),
            &format!("INSERT INTO {t} (email, name) VALUES ('e1','old'),('e2','old'),('e3','old')"),
        )
        .await;
    }
    let mut body = source_account(&kind.connector);
    for (name, mode, sink_table) in [
        ("upsert", "add_and_update", "upsert"),
        ("addonly", "add_only", "addonly"),
        ("updateonly", "update_only", "updateonly"),
        ("fresh", "add_and_update", "fresh"),
    ] {
        body.push_str(&config_entry(
            "imports",
            name,
            SRC,
            &format!("SELECT id, email, name, updated_at FROM {table} WHERE updated_at >= :cursor ORDER BY updated_at"),
            &format!(
                "key = \"email\"\ncursor = {{ column = \"updated_at\", initial = {} }}\nmode = \"{mode}\"\nbatch_size = 2\nsink = {{ type = \"sqlite\", path = \"sink.db\", table = \"{sink_table}\" }}",
                kind.initial
            ),
        ));
    }
    let jobs = fixture.jobs(&body);
    let source = jobs.registry().source("9", "src").unwrap();
    sql(source.as_ref(), &(kind.create)(&table)).await;
    let values: Vec<String> = (1..=6)
        .map(|i| format!("({i}, 'e{i}', 'A{i}', {})", (kind.stamp)(i)))
        .collect();
    sql(
        source.as_ref(),
        &format!("INSERT INTO {table} VALUES {}", values.join(", ")),
    )
    .await;

    for name in ["upsert", "addonly", "updateonly", "fresh"] {
        let summary = import(&jobs, name).await;
        assert_eq!(summary.counts.read, 6, "{name}: first run reads everything");
    }
    // New versions of e2 and a new key e7, later than everything imported.
    sql(
        source.as_ref(),
        &format!(
            "INSERT INTO {table} VALUES (2, 'e2', 'B2', {}), (7, 'e7', 'B7', {})",
            (kind.stamp)(7),
            (kind.stamp)(8)
        ),
    )
    .await;
    for name in ["upsert", "addonly", "updateonly", "fresh"] {
        let summary = import(&jobs, name).await;
        assert_eq!(
            (summary.counts.read, summary.counts.unchanged),
            (3, 1),
            "{name}: the second run reads the changed rows and, again, the row at the saved cursor"
        );
    }
    let names = async |t: &str| {
        rows(
            check.as_ref(),
            &format!("SELECT email, name FROM {t} ORDER BY email"),
        )
        .await
    };
    assert_eq!(
        names("upsert").await,
        [
            "e1|A1", "e2|B2", "e3|A3", "e4|A4", "e5|A5", "e6|A6", "e7|B7"
        ]
    );
    assert_eq!(
        names("addonly").await,
        [
            "e1|old", "e2|old", "e3|old", "e4|A4", "e5|A5", "e6|A6", "e7|B7"
        ]
    );
    assert_eq!(names("updateonly").await, ["e1|A1", "e2|B2", "e3|A3"]);
    assert_eq!(
        names("fresh").await,
        [
            "e1|A1", "e2|B2", "e3|A3", "e4|A4", "e5|A5", "e6|A6", "e7|B7"
        ]
    );
    let history = jobs.history(None, "upsert", 10).await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(
        (
            history[0].counts.read,
            history[0].counts.inserted,
            history[0].counts.updated,
            history[0].counts.unchanged
        ),
        (3, 1, 1, 1)
    );
    assert_eq!(
        (
            history[1].counts.read,
            history[1].counts.inserted,
            history[1].counts.updated
        ),
        (6, 3, 3)
    );
    sql(source.as_ref(), &format!("DROP TABLE {table}")).await;
    jobs.close().await;
    check.close().await;
}

#[tokio::test]
async fn sqlite_import_modes_and_second_run_reads_only_changes() {
    modes_and_increments(SourceKind::integer(
        "[[connectors]]\nname = \"src\"\ntype = \"sqlite\"\ndatabase = \"src.db\"\n".into(),
        |t| format!("CREATE TABLE {t} (id INTEGER, email TEXT, name TEXT, updated_at INTEGER)"),
    ))
    .await;
}

#[tokio::test]
async fn postgres_import_into_sqlite_modes_and_increments() {
    let Some(connector) = server_connector("POSTGRES", "postgres", "postgresql", "") else {
        return;
    };
    modes_and_increments(SourceKind {
        connector,
        create: |t| {
            format!("CREATE TABLE {t} (id BIGINT, email TEXT, name TEXT, updated_at TIMESTAMPTZ)")
        },
        stamp: |n| format!("TIMESTAMPTZ '2024-03-31 01:00:{n:02}.5+00'"),
        initial: "\"1970-01-01T00:00:00Z\"",
    })
    .await;
}

/// [`modes_and_increments`] from the server of `kind` (settings `EXTDATA_TEST_<PREFIX>_*`,
/// connector fields `extra`), whose `updated_at` is an integer column of `create`.
async fn integer_server_modes_and_increments(
    (prefix, kind, db_type): (&str, &str, &str),
    extra: &str,
    create: fn(&str) -> String,
) {
    if let Some(connector) = server_connector(prefix, kind, db_type, extra) {
        modes_and_increments(SourceKind::integer(connector, create)).await;
    }
}

#[tokio::test]
async fn clickhouse_import_into_sqlite_modes_and_increments() {
    integer_server_modes_and_increments(("CLICKHOUSE", "clickhouse", "clickhouse"), "", |t| {
        format!("CREATE TABLE {t} (id Int64, email String, name String, updated_at Int64) ENGINE = Memory")
    })
    .await;
}

#[tokio::test]
async fn hive_import_into_sqlite_modes_and_increments() {
    integer_server_modes_and_increments(
        ("HIVE", "hive", "hive"),
        "query_timeout = \"120s\"\noptions = { auth = \"NONE\" }\n",
        |t| format!("CREATE TABLE {t} (id BIGINT, email STRING, name STRING, updated_at BIGINT) USING parquet"),
    )
    .await;
}

#[tokio::test]
async fn postgres_sink_applies_the_modes_in_its_own_table() {
    let Some(url) = env("EXTDATA_TEST_POSTGRES_URL") else {
        require_or_skip::<()>("postgres", "EXTDATA_TEST_POSTGRES_URL is not set");
        return;
    };
    let _ = url;
    let table = unique_name("sink");
    let (_fixture, jobs) =
        seeded_import("to-pg", "id, email, total, created_at", &pg_sink(&table)).await;
    let summary = import(&jobs, "to-pg").await;
    assert_eq!((summary.counts.read, summary.counts.inserted), (4, 4));
    let crm = jobs.registry().source("42", "crm").unwrap();
    sql(crm.as_ref(), "INSERT INTO orders VALUES (3,'b@x.io',150,5)").await;
    let summary = import(&jobs, "to-pg").await;
    let c = &summary.counts;
    assert_eq!((c.read, c.updated, c.unchanged), (2, 1, 1));
    let pg = test_postgres();
    assert_eq!(
        rows(
            pg.as_ref(),
            &format!("SELECT id, total FROM {table} ORDER BY id")
        )
        .await,
        ["1|500", "2|700", "3|150", "4|2000"]
    );
    sql(pg.as_ref(), &format!("DROP TABLE {table}")).await;
    pg.close().await;
    jobs.close().await;
}

/// `add_only` inserts the keys the existing PostgreSQL table lacks and leaves the others
/// as they are; `update_only` updates the keys it has and inserts none.
#[tokio::test]
async fn postgres_sink_add_only_and_update_only_keep_to_their_keys() {
    if env("EXTDATA_TEST_POSTGRES_URL").is_none() {
        require_or_skip::<()>("postgres", "EXTDATA_TEST_POSTGRES_URL is not set");
        return;
    }
    let fixture = Fixture::new();
    let pg = test_postgres();
    let mut body = String::new();
    let mut tables = Vec::new();
    for mode in ["add_only", "update_only"] {
        let table = unique_name(mode);
        // An existing table is used as it is: keys 1 and 3 are there already.
        sql(
            pg.as_ref(),
            &format!(
                "CREATE TABLE {table} (id int8 PRIMARY KEY, email text, total int8, created_at int8)"
            ),
        )
        .await;
        sql(
            pg.as_ref(),
            &format!("INSERT INTO {table} VALUES (1, 'old', 0, 0), (3, 'old', 0, 0)"),
        )
        .await;
        body.push_str(&orders_import(
            mode,
            "id, email, total, created_at",
            &format!("mode = \"{mode}\"\n{}", pg_sink(&table)),
        ));
        tables.push(table);
    }
    let jobs = fixture.seeded(&body).await;
    // Each mode's (read, inserted, updated, skipped) and its table's rows after the run.
    let expected = [
        (
            "add_only",
            (4, 2, 0, 2),
            &["1|old|0", "2|a@x.io|700", "3|old|0", "4|c@x.io|2000"][..],
        ),
        (
            "update_only",
            (4, 0, 2, 2),
            &["1|a@x.io|500", "3|b@x.io|100"],
        ),
    ];
    for ((mode, counts, table_rows), table) in expected.into_iter().zip(&tables) {
        let c = import(&jobs, mode).await.counts;
        assert_eq!((c.read, c.inserted, c.updated, c.skipped), counts, "{mode}");
        let written = rows(
            pg.as_ref(),
            &format!("SELECT id, email, total FROM {table} ORDER BY id"),
        )
        .await;
        assert_eq!(written, table_rows, "{mode}");
    }
    for table in &tables {
        sql(pg.as_ref(), &format!("DROP TABLE {table}")).await;
    }
    pg.close().await;
    jobs.close().await;
}

/// The PostgreSQL sink carries the platform's own password: with no `sslmode` in its URL
/// it verifies the server's certificate in full, so a server whose certificate it cannot
/// verify (here: signed by the test CA, which the URL does not name) is refused instead
/// of being sent the password over an unverified (or, with `prefer`, plaintext) link.
#[tokio::test]
async fn postgres_sink_verifies_the_servers_certificate_by_default() {
    let (Some(port), Some(user), Some(password), Some(database), Some(ca)) = (
        env("EXTDATA_TEST_POSTGRES_PORT"),
        env("EXTDATA_TEST_POSTGRES_USER"),
        env("EXTDATA_TEST_POSTGRES_PASSWORD"),
        env("EXTDATA_TEST_POSTGRES_DATABASE"),
        env("EXTDATA_TEST_CA"),
    ) else {
        require_or_skip::<()>("postgres", "EXTDATA_TEST_POSTGRES_* is not set");
        return;
    };
    let base = format!("postgresql://{user}:{password}@localhost:{port}/{database}");
    for (url, verified) in [
        (base.clone(), false),
        (format!("{base}?sslmode=prefer"), false),
        (format!("{base}?sslrootcert={ca}"), true),
    ] {
        let table = unique_name("sink_tls");
        let sink =
            format!("sink = {{ type = \"postgresql\", url = \"{url}\", table = \"{table}\" }}");
        let (_fixture, jobs) = seeded_import("to-pg", "id, email, created_at", &sink).await;
        let outcome = try_import(&jobs, "to-pg").await;
        let shown = url.replace(&password, "***");
        match (outcome, verified) {
            (Ok(summary), true) => assert!(summary.counts.read > 0, "{shown}: {summary:?}"),
            (Err(error), false) => {
                assert!(
                    matches!(error.kind(), ErrorKind::Tls | ErrorKind::Config),
                    "{shown}: {error}"
                );
                assert_error_has_no_secret(&error, &password, "the sink's TLS error");
            }
            (outcome, _) => panic!("{shown}: {outcome:?}"),
        }
        jobs.close().await;
    }
}

#[tokio::test]
async fn file_sinks_apply_modes_with_the_key_index() {
    let fixture = Fixture::new();
    let by_id = |name: &str, fields: &str| {
        config_entry(
            "imports",
            name,
            CRM,
            "SELECT id, email, total FROM orders WHERE id >= :cursor ORDER BY id",
            &format!("key = \"email\"\ncursor = {{ column = \"id\", initial = 0 }}\n{fields}"),
        )
    };
    let jobs = fixture
        .seeded(&format!(
            "{}{}",
            by_id("all", r#"sink = { type = "jsonl", path = "all.jsonl" }"#),
            by_id(
                "first",
                "mode = \"add_only\"\nbatch_size = 1\nsink = { type = \"csv\", path = \"first.csv\" }"
            ),
        ))
        .await;
    import(&jobs, "all").await;
    let summary = import(&jobs, "first").await;
    assert_eq!((summary.counts.inserted, summary.counts.skipped), (3, 1));
    let all = std::fs::read_to_string(fixture.path("all.jsonl")).unwrap();
    // One batch: a@x.io's two versions collapse to the last.
    assert_eq!(all.lines().count(), 3, "{all}");
    assert!(
        all.contains(r#"{"id":2,"email":"a@x.io","total":700}"#),
        "{all}"
    );
    let first = std::fs::read_to_string(fixture.path("first.csv")).unwrap();
    assert_eq!(
        first,
        "id,email,total\n1,a@x.io,500\n3,b@x.io,100\n4,c@x.io,2000\n"
    );
    jobs.close().await;
}

// ----------------------------------------------------------------------------- segments

/// Segment `vip`: the emails of orders of 500 or more, cached for 700 ms.
fn segment() -> String {
    config_entry(
        "segments",
        "vip",
        CRM,
        "SELECT email FROM orders WHERE total >= 500 ORDER BY id",
        "key = \"email\"\ncache_ttl = \"700ms\"",
    )
}

#[tokio::test]
async fn segment_is_cached_across_instances_until_the_ttl() {
    let fixture = Fixture::new();
    let (jobs, queries) = counting(fixture.jobs(&segment()), Duration::ZERO);
    seed_orders(&jobs).await;
    let first = jobs
        .evaluate_segment(Some("42"), "vip", false, &|_| {})
        .await
        .unwrap();
    assert_eq!(
        first.keys,
        ["a@x.io", "c@x.io"],
        "streamed and de-duplicated"
    );
    assert!(!first.from_cache);
    assert_eq!(queries.load(Ordering::SeqCst), 1);
    let second = jobs
        .evaluate_segment(Some("42"), "vip", false, &|_| {})
        .await
        .unwrap();
    assert!(second.from_cache);
    assert_eq!(
        queries.load(Ordering::SeqCst),
        1,
        "inside the TTL: no query"
    );
    // Another process: a new instance over the same state store file.
    let (other, other_queries) = counting(fixture.jobs(&segment()), Duration::ZERO);
    let third = other
        .evaluate_segment(None, "vip", false, &|_| {})
        .await
        .unwrap();
    assert_eq!((third.from_cache, third.keys.len()), (true, 2));
    assert_eq!(
        other_queries.load(Ordering::SeqCst),
        0,
        "the cache is in the state store"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let fourth = jobs
        .evaluate_segment(Some("42"), "vip", false, &|_| {})
        .await
        .unwrap();
    assert!(!fourth.from_cache);
    assert_eq!(queries.load(Ordering::SeqCst), 2, "after the TTL: a query");
    jobs.evaluate_segment(None, "vip", true, &|_| {})
        .await
        .unwrap();
    assert_eq!(queries.load(Ordering::SeqCst), 3, "refresh always queries");
    jobs.close().await;
    other.close().await;
}

#[tokio::test]
async fn segment_sync_adds_and_removes_in_batches() {
    let fixture = Fixture::new();
    let jobs = fixture.jobs(&format!(
        "{}\n[[segment_sync]]\nsegment = \"vip\"\non_add = \"INSERT INTO vip_flags (email) VALUES (:key)\"\non_remove = \"DELETE FROM vip_flags WHERE email = :key\"\nbatch_size = 1\n",
        segment()
    ));
    seed_orders(&jobs).await;
    let crm = jobs.registry().source("42", "crm").unwrap();
    sql(
        crm.as_ref(),
        "CREATE TABLE vip_flags (email TEXT PRIMARY KEY)",
    )
    .await;
    let summary = jobs.sync_segment(Some("42"), "vip").await.unwrap();
    assert_eq!((summary.added, summary.removed, summary.batches), (2, 0, 2));
    assert_eq!(
        rows(crm.as_ref(), "SELECT email FROM vip_flags ORDER BY email").await,
        ["a@x.io", "c@x.io"]
    );
    sql(
        crm.as_ref(),
        "UPDATE orders SET total = 1 WHERE email = 'c@x.io'",
    )
    .await;
    sql(
        crm.as_ref(),
        "UPDATE orders SET total = 900 WHERE email = 'b@x.io'",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let summary = jobs.sync_segment(None, "vip").await.unwrap();
    assert_eq!((summary.added, summary.removed), (1, 1));
    assert_eq!(
        rows(crm.as_ref(), "SELECT email FROM vip_flags ORDER BY email").await,
        ["a@x.io", "b@x.io"]
    );
    let nothing = jobs.sync_segment(None, "vip").await.unwrap();
    assert_eq!((nothing.added, nothing.removed, nothing.batches), (0, 0, 0));
    jobs.close().await;
}

// ------------------------------------------------------------------------------ lookups

fn lookup_config(ttl: &str, timeout: &str, on_error: &str) -> String {
    format!(
        r#"
[[lookups]]
name = "last_order"
account = "42"
connector = "crm"
query = "SELECT id, total, created_at FROM orders WHERE email = :email ORDER BY created_at DESC LIMIT 1"
cache_ttl = "{ttl}"
timeout = "{timeout}"
on_error = "{on_error}"

[[lookups]]
name = "orders"
account = "42"
connector = "crm"
query = "SELECT id FROM orders WHERE email = :email ORDER BY id"
result = "rows"
max_rows = 1
"#
    )
}

fn email(value: &str) -> serde_json::Map<String, serde_json::Value> {
    json!({ "email": value }).as_object().unwrap().clone()
}

#[tokio::test]
async fn hundred_concurrent_identical_lookups_make_one_query() {
    let fixture = Fixture::new();
    // No cache: only single-flight can keep the 100 calls to one query.
    let (jobs, queries) = counting(
        fixture.jobs(&lookup_config("0s", "5s", "fail")),
        Duration::from_millis(300),
    );
    seed_orders(&jobs).await;
    let lookups = Lookups::new(Arc::new(jobs), 1000);
    let calls = (0..100).map(|_| {
        let lookups = lookups.clone();
        tokio::spawn(async move {
            lookups
                .get(Some("42"), "last_order", &email("a@x.io"))
                .await
        })
    });
    let results = futures::future::join_all(calls).await;
    for result in results {
        assert_eq!(
            result.unwrap().unwrap(),
            json!({"id": 2, "total": 700, "created_at": 2})
        );
    }
    assert_eq!(queries.load(Ordering::SeqCst), 1);
    let many = lookups.get(None, "orders", &email("a@x.io")).await.unwrap();
    assert_eq!(many, json!([{ "id": 1 }]), "rows, capped at max_rows");
}

#[tokio::test]
async fn lookup_runs_a_new_query_once_its_cache_ttl_has_passed() {
    let fixture = Fixture::new();
    let (jobs, queries) = counting(
        fixture.jobs(&lookup_config("1s", "5s", "fail")),
        Duration::ZERO,
    );
    seed_orders(&jobs).await;
    let crm = jobs.registry().source("42", "crm").unwrap();
    let lookups = Lookups::new(Arc::new(jobs), 1000);
    let first = lookups
        .get(Some("42"), "last_order", &email("a@x.io"))
        .await
        .unwrap();
    assert_eq!(first["total"], json!(700));
    sql(crm.as_ref(), "UPDATE orders SET total = 701 WHERE id = 2").await;
    let cached = lookups
        .get(Some("42"), "last_order", &email("a@x.io"))
        .await
        .unwrap();
    assert_eq!(
        cached["total"],
        json!(700),
        "inside the TTL: the cached row"
    );
    assert_eq!(
        queries.load(Ordering::SeqCst),
        1,
        "inside the TTL: no query"
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let fresh = lookups
        .get(Some("42"), "last_order", &email("a@x.io"))
        .await
        .unwrap();
    assert_eq!(
        queries.load(Ordering::SeqCst),
        2,
        "after the TTL: a new query"
    );
    assert_eq!(fresh["total"], json!(701), "after the TTL: the current row");
}

#[tokio::test]
async fn lookup_over_its_timeout_follows_on_error() {
    for (on_error, expect_empty) in [("empty", true), ("fail", false)] {
        let fixture = Fixture::new();
        let (jobs, _) = counting(
            fixture.jobs(&lookup_config("1m", "100ms", on_error)),
            Duration::from_millis(400),
        );
        seed_orders(&jobs).await;
        let lookups = Lookups::new(Arc::new(jobs), 1000);
        let started = std::time::Instant::now();
        let result = lookups
            .get(Some("42"), "last_order", &email("a@x.io"))
            .await;
        assert_elapsed_below(started, Duration::from_millis(350), "the lookup");
        if expect_empty {
            assert_eq!(result.unwrap(), serde_json::Value::Null);
        } else {
            assert_eq!(result.unwrap_err().kind(), ErrorKind::Timeout);
        }
    }
}

#[tokio::test]
async fn hostile_subscriber_field_is_bound_not_injected() {
    let fixture = Fixture::new();
    let jobs = Arc::new(fixture.jobs(&lookup_config("1m", "5s", "fail")));
    seed_orders(&jobs).await;
    let lookups = Lookups::new(jobs.clone(), 1000);
    for hostile in [
        "' OR '1'='1",
        "a@x.io'; DROP TABLE orders; --",
        "\" OR 1=1 --",
    ] {
        let found = lookups
            .get(Some("42"), "last_order", &email(hostile))
            .await
            .unwrap();
        assert_eq!(found, serde_json::Value::Null, "{hostile}");
        let rendered = extdata_jobs::render(
            lookups.clone(),
            Some("42".into()),
            "[{{ lookup('last_order', email=subscriber.email).total | default('') }}]".into(),
            json!({ "email": hostile }),
        )
        .await
        .unwrap();
        assert_eq!(rendered, "[]");
    }
    let crm = jobs.registry().source("42", "crm").unwrap();
    assert_eq!(
        rows(crm.as_ref(), "SELECT COUNT(*) FROM orders").await,
        ["4"]
    );
}

#[tokio::test]
async fn template_prints_lookup_fields() {
    let fixture = Fixture::new();
    let jobs = Arc::new(fixture.jobs(&lookup_config("1m", "5s", "fail")));
    seed_orders(&jobs).await;
    let lookups = Lookups::new(jobs, 1000);
    let rendered = extdata_jobs::render(
        lookups.clone(),
        Some("42".into()),
        "Hi {{ subscriber.name }}, your last order: {{ lookup(\"last_order\", email=subscriber.email).total }}".into(),
        json!({ "name": "Ann", "email": "a@x.io" }),
    )
    .await
    .unwrap();
    assert_eq!(rendered, "Hi Ann, your last order: 700");
    // A misnamed lookup parameter, and another account's lookup.
    for (account, parameter, kind) in [
        ("42", "mail", ErrorKind::Parameter),
        ("7", "email", ErrorKind::Forbidden),
    ] {
        let error = extdata_jobs::render(
            lookups.clone(),
            Some(account.into()),
            format!("{{{{ lookup(\"last_order\", {parameter}=subscriber.email) }}}}"),
            json!({ "email": "a@x.io" }),
        )
        .await
        .unwrap_err();
        assert_eq!(error.kind(), kind, "{account}, {parameter}: {error}");
    }
}

// ----------------------------------------------------------------- accounts, validation

#[tokio::test]
async fn an_account_reaches_only_its_own_jobs() {
    let fixture = Fixture::new();
    let jobs = Arc::new(fixture.jobs(&format!(
        "{}\n{}\n[[segment_sync]]\nsegment = \"vip\"\non_add = \"SELECT :key\"\n\n[[imports]]\nname = \"imp\"\naccount = \"42\"\nconnector = \"crm\"\nquery = \"SELECT id, email FROM orders\"\nkey = \"email\"\nsink = {{ type = \"jsonl\", path = \"x.jsonl\" }}\n",
        segment(),
        lookup_config("1m", "5s", "fail")
    )));
    seed_orders(&jobs).await;
    let forbidden = |r: std::result::Result<(), extdata::Error>| {
        assert_eq!(r.unwrap_err().kind(), ErrorKind::Forbidden)
    };
    forbidden(
        jobs.run_import(Some("7"), "imp", Stop::never(), &|_| {})
            .await
            .map(drop),
    );
    forbidden(jobs.history(Some("7"), "imp", 5).await.map(drop));
    forbidden(
        jobs.evaluate_segment(Some("7"), "vip", false, &|_| {})
            .await
            .map(drop),
    );
    forbidden(jobs.sync_segment(Some("7"), "vip").await.map(drop));
    let lookups = Lookups::new(jobs.clone(), 10);
    forbidden(
        lookups
            .get(Some("7"), "last_order", &email("a@x.io"))
            .await
            .map(drop),
    );
    // An unknown name gets the same answer as someone else's.
    forbidden(
        jobs.evaluate_segment(Some("7"), "nope", false, &|_| {})
            .await
            .map(drop),
    );
    assert!(
        jobs.run_import(Some("42"), "imp", Stop::never(), &|_| {})
            .await
            .is_ok()
    );
}

#[test]
fn a_name_used_twice_is_reported_once() {
    let problems = config_problems(&format!(
        r#"{SQLITE_CONNECTORS}

[[segments]]
name = "vip"
account = "42"
connector = "crm"
query = "SELECT email FROM t"
key = "email"

[[segments]]
name = "vip"
account = "42"
connector = "crm"
query = "SELECT email FROM t WHERE x = :x"
key = "email"

[[segment_sync]]
segment = "vip"
on_add = "INSERT INTO a VALUES (:key)"

[[segment_sync]]
segment = "vip"
on_remove = "DELETE FROM a WHERE email = :key"

[[segment_sync]]
name = "s"
segment = "vip"
on_add = "INSERT INTO b VALUES (:key)"

[[segment_sync]]
name = "s"
segment = "vip"
on_add = "INSERT INTO c VALUES (:key)"
"#
    ));
    let count = |start: &str| problems.lines().filter(|l| l.starts_with(start)).count();
    // Written twice (the second segment is invalid as well), named after the same
    // segment, and written twice among syncs: each reported once.
    assert_eq!(
        count("vip: name: is used by another segment of account `42`;"),
        1,
        "{problems}"
    );
    assert_eq!(
        count("vip: query: uses parameters that nothing binds: :x"),
        1,
        "{problems}"
    );
    assert_eq!(
        count("vip: name: is used by another segment sync of account `42`;"),
        1,
        "{problems}"
    );
    assert_eq!(
        count("s: name: is used by another segment sync of account `42`;"),
        1,
        "{problems}"
    );
    assert_eq!(problems.lines().count(), 4, "{problems}");
}

#[test]
fn validation_reports_every_problem_at_once() {
    let problems = config_problems(&format!(
        r#"state = 5
{SQLITE_CONNECTORS}

[[imports]]
name = "a"
account = "7"
connector = "crm"
query = "SELECT * FROM t WHERE x > :since"
key = "email"
cursor = {{ column = "x", initial = [1] }}
mode = "upsert"
schedule = {{ cron = "0 61 * * *", timezone = "Mars/Base" }}
batch_size = 0
sink = {{ type = "parquet" }}
colour = "red"

[[segments]]
name = "bad name!"
account = "42"
connector = "crm"
query = "SELECT email FROM t"
cache_ttl = "soon"

[[segment_sync]]
segment = "ghost"
on_add = "INSERT INTO t VALUES (:email)"

[[lookups]]
name = "l"
account = "42"
connector = "nope"
query = "SELECT 1"
result = "all"
on_error = "ignore"
timeout = "0s"

[[lookups]]
name = "l"
account = "42"
connector = "crm"
query = "SELECT 1"
"#
    ));
    assert_contains_all(
        &problems,
        &[
            "config: state: ",
            "a: colour: unknown field",
            "a: connector: connector `crm` is not assigned to account `7`",
            "a: query: has a cursor but does not use `:cursor`",
            "a: query: uses parameters that nothing binds: :since",
            "a: cursor.initial: must be",
            "a: mode: `upsert` is not a mode",
            "a: schedule.cron: ",
            "a: batch_size: must be a whole number from 1",
            "a: sink.type: `parquet` is not a sink type",
            "bad name!: name: must be a short name",
            "bad name!: key: is missing",
            "bad name!: cache_ttl: ",
            "segment_sync[0]: segment: unknown segment `ghost`",
            "segment_sync[0]: on_add: must use the parameter `:key`",
            "l: connector: unknown connector `nope`",
            "l: result: `all` is not a result",
            "l: on_error: `ignore` is not allowed",
            "l: timeout: must be greater than zero",
            "l: name: is used by another lookup",
        ],
    );
    // The timezone is a second problem of the same schedule: reported once the cron is
    // fixed, since the schedule cannot be read without both.
    assert!(problems.lines().count() >= 20, "{problems}");
}
