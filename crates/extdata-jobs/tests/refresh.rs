//! `full_refresh` imports and table sinks that follow the query's columns, into SQLite
//! tables always and PostgreSQL tables when the server is configured.

use extdata::ErrorKind;
use extdata_conformance::require_or_skip;
use extdata_conformance::support::{env, unique_name};
use extdata_jobs::{ImportSummary, Jobs};

mod support;
use support::*;

/// Where the tests write: a SQLite table in the fixture's `sink.db`, or a table of the
/// PostgreSQL test server.
#[derive(Clone, Copy, Debug)]
enum Target {
    Sqlite,
    Postgres,
}

impl Target {
    /// Both targets, PostgreSQL when configured (a failure when it is required).
    fn all() -> Vec<Target> {
        let mut targets = vec![Target::Sqlite];
        match env("EXTDATA_TEST_POSTGRES_URL") {
            Some(_) => targets.push(Target::Postgres),
            None => require_or_skip::<()>("postgres", "EXTDATA_TEST_POSTGRES_URL is not set")
                .unwrap_or(()),
        }
        targets
    }

    fn sink(self, table: &str) -> String {
        match self {
            Target::Sqlite => {
                format!("sink = {{ type = \"sqlite\", path = \"sink.db\", table = \"{table}\" }}")
            }
            Target::Postgres => pg_sink(table),
        }
    }

    fn reader(self, fixture: &Fixture) -> std::sync::Arc<dyn extdata::ExternalSource> {
        match self {
            Target::Sqlite => sqlite_file(&fixture.path("sink.db")),
            Target::Postgres => test_postgres(),
        }
    }
}

/// A full_refresh import `name` of the seeded orders reading `columns`, keyed by `id`;
/// `fields` are its other lines (at least its sink).
fn refresh_import(name: &str, columns: &str, fields: &str) -> String {
    config_entry(
        "imports",
        name,
        CRM,
        &format!("SELECT {columns} FROM orders ORDER BY id"),
        &format!("key = \"id\"\nmode = \"full_refresh\"\nbatch_size = 2\n{fields}"),
    )
}

/// Two full_refresh imports of the seeded orders per target, one with
/// `delete_missing`: orders that disappear from the source are counted by both, once,
/// and deleted only by the one that asks; an order that comes back is imported again.
#[tokio::test]
async fn full_refresh_counts_missing_keys_once_and_deletes_them_only_when_asked() {
    for target in Target::all() {
        let fixture = Fixture::new();
        let (kept, pruned) = (unique_name("kept"), unique_name("pruned"));
        let body = format!(
            "{}{}{}",
            refresh_import("kept", "id, email, total", &target.sink(&kept)),
            refresh_import(
                "pruned",
                "id, email, total",
                &format!("delete_missing = true\n{}", target.sink(&pruned))
            ),
            refresh_import(
                "log",
                "id, email, total",
                "sink = { type = \"jsonl\", path = \"orders.jsonl\" }"
            ),
        );
        let jobs = fixture.seeded(&body).await;
        for name in ["kept", "pruned", "log"] {
            let c = import(&jobs, name).await.counts;
            assert_eq!(
                (c.read, c.inserted, c.missing, c.deleted),
                (4, 4, 0, 0),
                "{target:?} {name}"
            );
        }
        let crm = jobs.registry().source("42", "crm").unwrap();
        sql(crm.as_ref(), "DELETE FROM orders WHERE id IN (2, 3)").await;
        sql(crm.as_ref(), "UPDATE orders SET total = 501 WHERE id = 1").await;
        let expected = [("kept", 0), ("pruned", 2), ("log", 0)];
        for (name, deleted) in expected {
            let c = import(&jobs, name).await.counts;
            assert_eq!(
                (c.read, c.updated, c.missing, c.deleted),
                (2, 2, 2, deleted),
                "{target:?} {name}"
            );
            let history = jobs.history(None, name, 1).await.unwrap();
            assert_eq!(
                (history[0].counts.missing, history[0].counts.deleted),
                (2, deleted),
                "{target:?} {name}: the history keeps the counts"
            );
        }
        let reader = target.reader(&fixture);
        let contents = async |table: String| {
            rows(
                reader.as_ref(),
                &format!("SELECT id, total FROM {table} ORDER BY id"),
            )
            .await
        };
        assert_eq!(
            contents(kept.clone()).await,
            ["1|501", "2|700", "3|100", "4|2000"],
            "{target:?}: without delete_missing the rows stay"
        );
        assert_eq!(
            contents(pruned.clone()).await,
            ["1|501", "4|2000"],
            "{target:?}"
        );

        // Reported once: the next run finds nothing missing. An order that comes back is
        // imported again (into the table that deleted it, as a new row).
        for name in ["kept", "pruned"] {
            assert_eq!(import(&jobs, name).await.counts.missing, 0, "{target:?}");
        }
        sql(crm.as_ref(), "INSERT INTO orders VALUES (2,'a@x.io',702,9)").await;
        let c = import(&jobs, "pruned").await.counts;
        assert_eq!((c.read, c.inserted, c.updated, c.missing), (3, 1, 2, 0));
        assert_eq!(
            contents(pruned.clone()).await,
            ["1|501", "2|702", "4|2000"],
            "{target:?}"
        );
        if let Target::Postgres = target {
            for table in [&kept, &pruned] {
                sql(reader.as_ref(), &format!("DROP TABLE {table}")).await;
            }
        }
        reader.close().await;
        jobs.close().await;
    }
}

#[test]
fn full_refresh_options_are_checked() {
    let problems = config_problems(&format!(
        "{SQLITE_CONNECTORS}{}{}{}",
        config_entry(
            "imports",
            "a",
            CRM,
            "SELECT id FROM orders",
            "key = \"id\"\ndelete_missing = true\nsink = { type = \"sqlite\", path = \"s.db\", table = \"t\" }",
        ),
        config_entry(
            "imports",
            "b",
            CRM,
            "SELECT id FROM orders",
            "key = \"id\"\nmode = \"full_refresh\"\ndelete_missing = true\nsink = { type = \"csv\", path = \"b.csv\" }",
        ),
        config_entry(
            "imports",
            "c",
            CRM,
            "SELECT id, at FROM orders WHERE at >= :cursor ORDER BY at",
            "key = \"id\"\nmode = \"full_refresh\"\ncursor = { column = \"at\", initial = 0 }\nsink = { type = \"jsonl\", path = \"c.jsonl\" }",
        ),
    ));
    assert_contains_all(
        &problems,
        &[
            "a: delete_missing: applies to `mode = \"full_refresh\"` only",
            "b: delete_missing: a jsonl or csv sink cannot delete rows",
            "c: cursor: a full_refresh import reads the whole result on every run",
        ],
    );
}

/// A new folder whose import `name` into a new table of `target` ran once with the
/// query columns `before`: the folder, the table, that run's summary, and the jobs of the
/// same import now reading the columns `after`.
async fn changed_query(
    target: Target,
    name: &str,
    before: &str,
    after: &str,
) -> (Fixture, String, ImportSummary, Jobs) {
    let fixture = Fixture::new();
    let table = unique_name("profiles");
    let jobs = fixture
        .seeded(&orders_import(name, before, &target.sink(&table)))
        .await;
    let first = import(&jobs, name).await;
    jobs.close().await;
    let jobs = fixture.jobs(&orders_import(name, after, &target.sink(&table)));
    (fixture, table, first, jobs)
}

/// A query that gains a column: the table sink adds it (nullable), fills it for the
/// rows written, and leaves it NULL for the rows not written since.
#[tokio::test]
async fn table_sinks_add_the_columns_the_query_gains() {
    for target in Target::all() {
        // The query then also reads `total` and a computed `balance`. The run reads the
        // row at the saved cursor again (changed: it has more columns) and writes it.
        let (fixture, table, first, jobs) = changed_query(
            target,
            "grow",
            "id, email, created_at",
            "id, email, created_at, total, total * 2 AS balance",
        )
        .await;
        assert_eq!(first.counts.inserted, 4);
        let c = import(&jobs, "grow").await.counts;
        assert_eq!((c.read, c.updated), (1, 1), "{target:?}");
        let reader = target.reader(&fixture);
        let null = extdata::Value::Null.to_text_lossless();
        assert_eq!(
            rows(
                reader.as_ref(),
                &format!("SELECT id, total, balance FROM {table} ORDER BY id")
            )
            .await,
            ["1|-|-", "2|-|-", "3|-|-", "4|2000|4000"].map(|r| r.replace('-', &null)),
            "{target:?}"
        );
        if let Target::Postgres = target {
            sql(reader.as_ref(), &format!("DROP TABLE {table}")).await;
        }
        reader.close().await;
        jobs.close().await;
    }
}

/// What a table sink cannot follow fails the run before anything is written, naming the
/// column and what to do: a column whose type no longer takes the query's values, a
/// NOT NULL column the query no longer gives.
#[tokio::test]
async fn table_sinks_refuse_a_type_change_or_a_dropped_required_column_by_name() {
    for target in Target::all() {
        // `total` was an integer column; the query then gives text.
        let (fixture, table, _, jobs) = changed_query(
            target,
            "shape",
            "id, email, total, created_at",
            "id, email, 'EUR ' || total AS total, created_at",
        )
        .await;
        let error = try_import(&jobs, "shape").await.expect_err("a type change");
        assert_eq!(error.kind(), ErrorKind::Query, "{target:?}: {error}");
        let mut expected = vec![
            "column `total`",
            "text values",
            "cast the column in the query",
        ];
        expected.push(match target {
            Target::Sqlite => "SQLite cannot change a column's type",
            Target::Postgres => "ALTER COLUMN \"total\" TYPE text",
        });
        assert_contains_all(&error.to_string(), &expected);
        jobs.close().await;

        // A table with a NOT NULL column without a default that the query does not give.
        let strict = unique_name("strict");
        let reader = target.reader(&fixture);
        sql(
            reader.as_ref(),
            &format!(
                "CREATE TABLE {strict} (id BIGINT UNIQUE, email TEXT, total BIGINT, \
                 created_at BIGINT, region TEXT NOT NULL)"
            ),
        )
        .await;
        let jobs = fixture.jobs(&orders_import(
            "strict",
            "id, email, total, created_at",
            &target.sink(&strict),
        ));
        let error = try_import(&jobs, "strict")
            .await
            .expect_err("a required column");
        assert_contains_all(
            &error.to_string(),
            &[
                "column `region`",
                "NOT NULL without a default",
                "does not drop columns",
            ],
        );
        assert_eq!(
            rows(reader.as_ref(), &format!("SELECT count(*) FROM {strict}")).await,
            ["0"],
            "{target:?}"
        );
        if let Target::Postgres = target {
            for table in [&table, &strict] {
                sql(reader.as_ref(), &format!("DROP TABLE {table}")).await;
            }
        }
        reader.close().await;
        jobs.close().await;
    }
}
