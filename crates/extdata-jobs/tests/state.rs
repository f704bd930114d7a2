//! The state store opens files written by older versions; PostgreSQL leases and fencing.

use extdata_conformance::require_or_skip;
use extdata_conformance::support::env;

mod support;
use support::*;

/// A state file from before `unchanged` and `attempts` keeps its history and gains both.
#[tokio::test]
async fn an_older_state_file_gains_the_new_history_columns() {
    let fixture = Fixture::new();
    let old = sqlite_file(&fixture.path("extdata-state.db"));
    sql(
        old.as_ref(),
        "CREATE TABLE import_run (
            id INTEGER PRIMARY KEY AUTOINCREMENT, job TEXT NOT NULL, started_at TEXT NOT NULL,
            ended_at TEXT, rows_read INTEGER NOT NULL DEFAULT 0, inserted INTEGER NOT NULL DEFAULT 0,
            updated INTEGER NOT NULL DEFAULT 0, skipped INTEGER NOT NULL DEFAULT 0, error TEXT)",
    )
    .await;
    sql(
        old.as_ref(),
        "INSERT INTO import_run (job, started_at, ended_at, rows_read, inserted)
         VALUES ('orders', '2024-01-01T00:00:00+00:00', '2024-01-01T00:00:01+00:00', 7, 7)",
    )
    .await;
    old.close().await;
    let jobs = fixture
        .seeded(&orders_import(
            "orders",
            "id, email, created_at",
            r#"sink = { type = "csv", path = "orders.csv" }"#,
        ))
        .await;
    import(&jobs, "orders").await;
    let history = jobs.history(None, "orders", 10).await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!((history[0].counts.inserted, history[0].attempts), (4, 1));
    let before = &history[1];
    assert_eq!(
        (before.counts.read, before.counts.unchanged, before.attempts),
        (7, 0, 1)
    );
    jobs.close().await;
}

/// Two workers on the PostgreSQL state store, in one process: a fire time is taken
/// once; a held lease is busy for the other; once it expires unrenewed the other takes
/// the import over, and the first one's checkpoint is refused (fencing) while the new
/// holder's is saved.
#[tokio::test]
async fn postgres_leases_take_a_fire_time_once_and_fence_a_lost_lease() {
    use extdata_jobs::{
        Acquired, BatchCommit, Checkpoint, Claim, LegacyOwners, PostgresStateStore, RunCounts,
        StateStore,
    };
    use std::time::Duration;

    let Some(url) = env("EXTDATA_TEST_POSTGRES_URL") else {
        return require_or_skip("postgres", "EXTDATA_TEST_POSTGRES_URL is not set").unwrap_or(());
    };
    let url = extdata::SecretSource::literal(url);
    let schema = format!("extdata_leases_{}", std::process::id());
    let lease = Duration::from_secs(1);
    let owners = LegacyOwners::default();
    let a = PostgresStateStore::open(&url, Some(&schema), lease, &owners)
        .await
        .unwrap();
    let b = PostgresStateStore::open(&url, Some(&schema), lease, &owners)
        .await
        .unwrap();
    let fire = chrono::DateTime::from_timestamp(1_900_000_000, 0).unwrap();
    let taken = |acquired: Acquired| match acquired {
        Acquired::Taken(lease) => lease,
        other => panic!("not taken: {other:?}"),
    };

    // A fire time: taken by one, then nothing for the other.
    let first = taken(a.acquire("42", "orders", Claim::Fire(fire)).await.unwrap());
    assert_eq!((first.fire(), first.takeover()), (Some(fire), false));
    match b.acquire("42", "orders", Claim::Fire(fire)).await.unwrap() {
        Acquired::Busy { expires_in, .. } => assert!(expires_in.unwrap() <= lease),
        other => panic!("{other:?}"),
    }
    a.release(first).await.unwrap();
    assert!(matches!(
        b.acquire("42", "orders", Claim::Fire(fire)).await.unwrap(),
        Acquired::Nothing
    ));
    assert!(matches!(
        b.acquire("42", "orders", Claim::Abandoned).await.unwrap(),
        Acquired::Nothing
    ));

    // A lease left to expire is taken over; the old holder is fenced.
    let old = taken(a.acquire("42", "orders", Claim::Now).await.unwrap());
    let old_run = a.begin_run(&old).await.unwrap();
    // The take of the fire time above recorded run 1.
    assert_eq!(old_run.number, 2);
    tokio::time::sleep(lease + Duration::from_millis(200)).await;
    let new = taken(b.acquire("42", "orders", Claim::Abandoned).await.unwrap());
    assert!(new.takeover());
    assert!(new.token() > old.token());
    let new_run = b.begin_run(&new).await.unwrap();
    assert_ne!(old_run, new_run);
    assert_eq!(new_run.number, 3);
    // The same name in another account is another import: its own lease and numbers.
    let other = taken(a.acquire("7", "orders", Claim::Now).await.unwrap());
    assert_eq!(a.begin_run(&other).await.unwrap().number, 1);
    a.release(other).await.unwrap();
    let checkpoint = |cursor: i64| Checkpoint {
        cursor: Some(extdata::Value::I64(cursor)),
        position: None,
    };
    let counts = RunCounts::default();
    let batch = |checkpoint| BatchCommit {
        checkpoint,
        boundary: None,
        counts: &counts,
        new_keys: &[],
        seen_keys: &[],
    };
    let (stale, fresh) = (checkpoint(99), checkpoint(7));
    let refused = a
        .commit_batch(&old, old_run.id, batch(&stale))
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("lost its lease"), "{refused}");
    assert!(!a.renew("42", "orders", old.token()).await.unwrap());
    b.commit_batch(&new, new_run.id, batch(&fresh))
        .await
        .unwrap();
    assert_eq!(
        a.checkpoint("42", "orders").await.unwrap().unwrap().cursor,
        Some(extdata::Value::I64(7))
    );
    assert_eq!(a.checkpoint("7", "orders").await.unwrap(), None);
    let history = a.history("42", "orders", 10).await.unwrap();
    assert_eq!(history.len(), 3, "{history:?}");
    assert_eq!(
        history.iter().map(|run| run.id).collect::<Vec<_>>(),
        [3, 2, 1],
        "{history:?}"
    );
    assert!(history[0].takeover && history[0].worker.is_some());
    b.release(new).await.unwrap();

    let admin = test_postgres();
    sql(admin.as_ref(), &format!("DROP SCHEMA {schema} CASCADE")).await;
    admin.close().await;
    a.close().await;
    b.close().await;
}

/// Keys written in batches larger than one multi-row `INSERT` (500 rows), with keys
/// already stored among them, all land once, on both stores; synced members likewise.
async fn check_key_batches(store: &dyn extdata_jobs::StateStore) {
    use extdata_jobs::{BatchCommit, Checkpoint, Claim, RunCounts};
    let lease = match store.acquire("42", "keys", Claim::Now).await.unwrap() {
        extdata_jobs::Acquired::Taken(lease) => lease,
        other => panic!("not taken: {other:?}"),
    };
    let run = store.begin_run(&lease).await.unwrap();
    let counts = RunCounts::default();
    let checkpoint = Checkpoint {
        cursor: None,
        position: None,
    };
    let first: Vec<String> = (0..1_201).map(|i| format!("k{i}")).collect();
    // Overlaps the first batch by 201 keys, and repeats a key within itself.
    let mut second: Vec<String> = (1_000..2_003).map(|i| format!("k{i}")).collect();
    second.push("k1500".to_owned());
    for keys in [&first, &second] {
        let batch = BatchCommit {
            checkpoint: &checkpoint,
            boundary: None,
            counts: &counts,
            new_keys: keys,
            seen_keys: &[],
        };
        store.commit_batch(&lease, run.id, batch).await.unwrap();
    }
    let asked: Vec<String> = (0..2_100).map(|i| format!("k{i}")).collect();
    let found = store.existing_keys("42", "keys", &asked).await.unwrap();
    assert_eq!(found.len(), 2_003, "k0..k2002 stored once each");
    assert!(found.contains("k0") && found.contains("k2002") && !found.contains("k2003"));
    // Another account's import of the same name has its own key index.
    assert!(
        store
            .existing_keys("7", "keys", &asked)
            .await
            .unwrap()
            .is_empty()
    );
    store.release(lease).await.unwrap();

    let members: Vec<String> = (0..1_100).map(|i| format!("m{i}")).collect();
    store
        .record_sync("42", "sync", &members, &[])
        .await
        .unwrap();
    store
        .record_sync("42", "sync", &members[..600], &members[1_000..])
        .await
        .unwrap();
    store
        .record_sync("7", "sync", &members[..1], &[])
        .await
        .unwrap();
    assert_eq!(store.synced_members("7", "sync").await.unwrap().len(), 1);
    let synced = store.synced_members("42", "sync").await.unwrap();
    assert_eq!(synced.len(), 1_000);
    assert!(synced.contains("m999") && !synced.contains("m1000"));
}

/// A new SQLite state store `file` in a new folder (kept while the folder lives).
async fn sqlite_store(file: &str) -> (Fixture, extdata_jobs::SqliteStateStore) {
    let fixture = Fixture::new();
    let owners = extdata_jobs::LegacyOwners::default();
    let store = extdata_jobs::SqliteStateStore::open(fixture.path(file), &owners)
        .await
        .unwrap();
    (fixture, store)
}

#[tokio::test]
async fn sqlite_store_writes_large_key_batches_once() {
    let (_fixture, store) = sqlite_store("keys-state.db").await;
    check_key_batches(&store).await;
    extdata_jobs::StateStore::close(&store).await;
}

#[tokio::test]
async fn postgres_store_writes_large_key_batches_once() {
    let Some(url) = env("EXTDATA_TEST_POSTGRES_URL") else {
        return require_or_skip("postgres", "EXTDATA_TEST_POSTGRES_URL is not set").unwrap_or(());
    };
    let url = extdata::SecretSource::literal(url);
    let schema = format!("extdata_keys_{}", std::process::id());
    let store = extdata_jobs::PostgresStateStore::open(
        &url,
        Some(&schema),
        std::time::Duration::from_secs(5),
        &extdata_jobs::LegacyOwners::default(),
    )
    .await
    .unwrap();
    check_key_batches(&store).await;
    extdata_jobs::StateStore::close(&store).await;
    let admin = test_postgres();
    sql(admin.as_ref(), &format!("DROP SCHEMA {schema} CASCADE")).await;
    admin.close().await;
}

/// The tables of a state store from before names were per account, as the older version
/// created them (with the columns it had added to `import_run`); `{t}` is the schema
/// prefix of each table, `{id}` the run id column.
const OLD_TABLES: &[&str] = &[
    "CREATE TABLE {t}import_checkpoint (
        job TEXT PRIMARY KEY, cursor_kind TEXT, cursor_text TEXT, position BIGINT,
        updated_at TEXT NOT NULL)",
    "CREATE TABLE {t}import_run (
        id {id}, job TEXT NOT NULL, started_at TEXT NOT NULL,
        ended_at TEXT, rows_read BIGINT NOT NULL DEFAULT 0, inserted BIGINT NOT NULL DEFAULT 0,
        updated BIGINT NOT NULL DEFAULT 0, skipped BIGINT NOT NULL DEFAULT 0, error TEXT,
        unchanged BIGINT NOT NULL DEFAULT 0, attempts BIGINT NOT NULL DEFAULT 1,
        stopped BIGINT NOT NULL DEFAULT 0, worker TEXT, fire_at TEXT,
        takeover BIGINT NOT NULL DEFAULT 0, token BIGINT)",
    "CREATE INDEX import_run_job ON {t}import_run (job, id)",
    "CREATE TABLE {t}import_boundary (job TEXT NOT NULL, key TEXT NOT NULL,
        digest TEXT NOT NULL, PRIMARY KEY (job, key))",
    "CREATE TABLE {t}file_sink_key (job TEXT NOT NULL, key TEXT NOT NULL,
        PRIMARY KEY (job, key))",
    "CREATE TABLE {t}segment_cache (
        segment TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, key_kind TEXT NOT NULL,
        keys TEXT NOT NULL, evaluated_at TEXT NOT NULL, expires_at_ms BIGINT NOT NULL)",
    "CREATE TABLE {t}segment_sync_member (sync TEXT NOT NULL, key TEXT NOT NULL,
        PRIMARY KEY (sync, key))",
    "CREATE TABLE {t}import_lease (job TEXT PRIMARY KEY, owner TEXT,
        token BIGINT NOT NULL DEFAULT 0, expires_at_ms BIGINT NOT NULL DEFAULT 0,
        fire_ms BIGINT NOT NULL DEFAULT 0)",
    // Run ids were global: `orders` ran as 1 and 3, `gone` (no longer in the file) as 2.
    "INSERT INTO {t}import_run (id, job, started_at, ended_at, rows_read, inserted) VALUES
        (1, 'orders', '2024-01-01T00:00:00+00:00', '2024-01-01T00:00:01+00:00', 2, 2),
        (2, 'gone', '2024-01-01T00:00:02+00:00', '2024-01-01T00:00:03+00:00', 9, 9),
        (3, 'orders', '2024-01-01T00:00:04+00:00', '2024-01-01T00:00:05+00:00', 1, 0)",
    "INSERT INTO {t}import_checkpoint VALUES
        ('orders', 'i64', '2', NULL, '2024-01-01T00:00:05+00:00')",
    "INSERT INTO {t}import_boundary VALUES ('orders', '2', 'an old digest')",
    "INSERT INTO {t}file_sink_key VALUES ('orders', '1'), ('orders', '2'), ('gone', '9')",
    "INSERT INTO {t}segment_cache VALUES ('vip', 'crm
email
SELECT email FROM orders WHERE total > 1000', 'text', '[\"old@x.io\"]',
        '2024-01-01T00:00:00+00:00', 99999999999999)",
    "INSERT INTO {t}segment_sync_member VALUES ('vip', 'old@x.io'), ('vip', 'older@x.io')",
    "INSERT INTO {t}import_lease (job, token) VALUES ('orders', 4)",
];

/// The strings of `set`, sorted.
fn sorted(set: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut sorted: Vec<String> = set.into_iter().collect();
    sorted.sort();
    sorted
}

/// The old state of [`OLD_TABLES`] read back from `store` under the accounts that own
/// its names: `orders`, `vip` (segment and sync) of account 42; `gone` of nobody.
async fn check_moved_to_owners(store: &dyn extdata_jobs::StateStore) {
    use extdata::Value;
    let checkpoint = store.checkpoint("42", "orders").await.unwrap().unwrap();
    assert_eq!(checkpoint.cursor, Some(Value::I64(2)));
    assert_eq!(store.checkpoint("", "orders").await.unwrap(), None);
    let boundary = store.boundary("42", "orders").await.unwrap();
    assert_eq!(boundary.get("2").map(String::as_str), Some("an old digest"));
    let asked = ["1", "2", "9"].map(str::to_owned);
    let known = sorted(store.existing_keys("42", "orders", &asked).await.unwrap());
    assert_eq!(known, ["1", "2"]);
    let members = sorted(store.synced_members("42", "vip").await.unwrap());
    assert_eq!(members, ["old@x.io", "older@x.io"]);
    // Runs are numbered per import, in the order they started.
    let history = store.history("42", "orders", 10).await.unwrap();
    let runs: Vec<(i64, u64)> = history.iter().map(|r| (r.id, r.counts.read)).collect();
    assert_eq!(runs, [(2, 1), (1, 2)]);
    // A name no account has is kept under the account "", read by no job.
    assert!(store.history("42", "gone", 10).await.unwrap().is_empty());
    let gone = store.history("", "gone", 10).await.unwrap();
    assert_eq!(gone.iter().map(|r| r.id).collect::<Vec<_>>(), [1]);
    assert_eq!(
        store.existing_keys("", "gone", &asked).await.unwrap().len(),
        1
    );
}

#[tokio::test]
async fn an_old_state_file_moves_to_the_accounts_that_own_its_names() {
    let fixture = Fixture::new();
    let old = sqlite_file(&fixture.path("extdata-state.db"));
    for statement in OLD_TABLES {
        let statement = statement
            .replace("{t}", "")
            .replace("{id}", "INTEGER PRIMARY KEY AUTOINCREMENT");
        sql(old.as_ref(), &statement).await;
    }
    old.close().await;
    let body = format!(
        "{}{}\n[[segment_sync]]\nsegment = \"vip\"\non_add = \"INSERT INTO vip_flags VALUES (:key)\"\n{}",
        orders_import(
            "orders",
            "id, email, created_at",
            r#"sink = { type = "csv", path = "orders.csv" }"#,
        ),
        config_entry(
            "segments",
            "vip",
            CRM,
            "SELECT email FROM orders WHERE total > 1000",
            "key = \"email\"\ncache_ttl = \"10m\"",
        ),
        // Account 7 has an import of its own; the old rows are not its.
        orders_import_of(
            OTHER,
            "mine",
            "id, created_at",
            r#"sink = { type = "csv", path = "mine.csv" }"#
        ),
    );
    let jobs = fixture.seeded(&body).await;
    seed_orders_of(&jobs, OTHER, "(1,'z@x.io',5,1)").await;
    check_moved_to_owners(jobs.state().await.unwrap().as_ref()).await;

    // The segment is served from the migrated cache (no query runs).
    let members = jobs
        .evaluate_segment(Some("42"), "vip", false, &|_| {})
        .await
        .unwrap();
    assert!(members.from_cache, "{members:?}");
    assert_eq!(members.keys, ["old@x.io"]);
    // The import resumes at its migrated cursor (rows at 2 and after), as run 3.
    let summary = import(&jobs, "orders").await;
    assert_eq!((summary.run, summary.counts.read), (3, 3));
    // Account 7's import counts its own runs from 1.
    assert_eq!(
        jobs.run_import(Some("7"), "mine", extdata_jobs::Stop::never(), &|_| {})
            .await
            .unwrap()
            .run,
        1
    );
    jobs.close().await;

    // Opened again, the file is not moved twice.
    let again = fixture.jobs(&body);
    let history = again.history(Some("42"), "orders", 10).await.unwrap();
    assert_eq!(history.iter().map(|r| r.id).collect::<Vec<_>>(), [3, 2, 1]);
    again.close().await;
}

#[tokio::test]
async fn an_old_postgres_state_store_moves_to_the_accounts_that_own_its_names() {
    let Some(url) = env("EXTDATA_TEST_POSTGRES_URL") else {
        return require_or_skip("postgres", "EXTDATA_TEST_POSTGRES_URL is not set").unwrap_or(());
    };
    let schema = format!("extdata_old_{}", std::process::id());
    let admin = test_postgres();
    sql(admin.as_ref(), &format!("CREATE SCHEMA {schema}")).await;
    for statement in OLD_TABLES {
        let statement = statement.replace("{t}", &format!("{schema}.")).replace(
            "{id}",
            "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
        );
        sql(admin.as_ref(), &statement).await;
    }
    let owners = extdata_jobs::LegacyOwners {
        imports: [("orders".to_owned(), ["42".to_owned()].into())].into(),
        segments: [("vip".to_owned(), ["42".to_owned()].into())].into(),
        segment_syncs: [("vip".to_owned(), ["42".to_owned()].into())].into(),
    };
    let url = extdata::SecretSource::literal(url);
    let open = || {
        extdata_jobs::PostgresStateStore::open(
            &url,
            Some(&schema),
            std::time::Duration::from_secs(5),
            &owners,
        )
    };
    let store = open().await.unwrap();
    check_moved_to_owners(&store).await;
    extdata_jobs::StateStore::close(&store).await;
    // Opened again: nothing to move.
    let store = open().await.unwrap();
    check_moved_to_owners(&store).await;
    // New runs get new ids (after the copied ones) and the next numbers.
    let lease =
        match extdata_jobs::StateStore::acquire(&store, "42", "orders", extdata_jobs::Claim::Now)
            .await
            .unwrap()
        {
            extdata_jobs::Acquired::Taken(lease) => lease,
            other => panic!("not taken: {other:?}"),
        };
    assert_eq!(lease.token(), 5, "the old lease's token goes on");
    let run = extdata_jobs::StateStore::begin_run(&store, &lease)
        .await
        .unwrap();
    assert!(run.id > 3 && run.number == 3, "{run:?}");
    extdata_jobs::StateStore::release(&store, lease)
        .await
        .unwrap();
    extdata_jobs::StateStore::close(&store).await;
    sql(admin.as_ref(), &format!("DROP SCHEMA {schema} CASCADE")).await;
    admin.close().await;
}

/// Account ids and import names that differ only in characters a file name cannot hold
/// as they are (`.`, `_`, a space, non-ASCII letters of the same length) are different
/// imports: each takes its own lock while the others hold theirs.
#[tokio::test]
async fn sqlite_store_locks_imports_whose_names_differ_only_in_odd_characters_apart() {
    use extdata_jobs::{Acquired, Claim, StateStore};
    let (_fixture, store) = sqlite_store("locks-state.db").await;
    let pairs = [
        ("acme.corp", "orders"),
        ("acme_corp", "orders"),
        ("acme corp", "orders"),
        ("acme_2ecorp", "orders"),
        ("acme", "corp.orders"),
        ("acme.corp.orders", ""),
        ("é", "orders"),
        ("ü", "orders"),
    ];
    let mut held = Vec::new();
    for (account, job) in pairs {
        match store.acquire(account, job, Claim::Now).await.unwrap() {
            Acquired::Taken(lease) => held.push(lease),
            other => {
                panic!("`{account}`/`{job}` is not taken while the others are held: {other:?}")
            }
        }
    }
    // The same pair again is busy: the lock still excludes.
    assert!(
        matches!(
            store
                .acquire("acme.corp", "orders", Claim::Now)
                .await
                .unwrap(),
            Acquired::Busy { .. }
        ),
        "a held lock is taken twice"
    );
    for lease in held {
        store.release(lease).await.unwrap();
    }
    store.close().await;
}
