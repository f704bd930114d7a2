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
        Acquired, BatchCommit, Checkpoint, Claim, PostgresStateStore, RunCounts, StateStore,
    };
    use std::time::Duration;

    let Some(url) = env("EXTDATA_TEST_POSTGRES_URL") else {
        return require_or_skip("postgres", "EXTDATA_TEST_POSTGRES_URL is not set").unwrap_or(());
    };
    let url = extdata::SecretSource::literal(url);
    let schema = format!("extdata_leases_{}", std::process::id());
    let lease = Duration::from_secs(1);
    let a = PostgresStateStore::open(&url, Some(&schema), lease)
        .await
        .unwrap();
    let b = PostgresStateStore::open(&url, Some(&schema), lease)
        .await
        .unwrap();
    let fire = chrono::DateTime::from_timestamp(1_900_000_000, 0).unwrap();
    let taken = |acquired: Acquired| match acquired {
        Acquired::Taken(lease) => lease,
        other => panic!("not taken: {other:?}"),
    };

    // A fire time: taken by one, then nothing for the other.
    let first = taken(a.acquire("orders", Claim::Fire(fire)).await.unwrap());
    assert_eq!((first.fire(), first.takeover()), (Some(fire), false));
    match b.acquire("orders", Claim::Fire(fire)).await.unwrap() {
        Acquired::Busy { expires_in, .. } => assert!(expires_in.unwrap() <= lease),
        other => panic!("{other:?}"),
    }
    a.release(first).await.unwrap();
    assert!(matches!(
        b.acquire("orders", Claim::Fire(fire)).await.unwrap(),
        Acquired::Nothing
    ));
    assert!(matches!(
        b.acquire("orders", Claim::Abandoned).await.unwrap(),
        Acquired::Nothing
    ));

    // A lease left to expire is taken over; the old holder is fenced.
    let old = taken(a.acquire("orders", Claim::Now).await.unwrap());
    let old_run = a.begin_run(&old).await.unwrap();
    tokio::time::sleep(lease + Duration::from_millis(200)).await;
    let new = taken(b.acquire("orders", Claim::Abandoned).await.unwrap());
    assert!(new.takeover());
    assert!(new.token() > old.token());
    let new_run = b.begin_run(&new).await.unwrap();
    assert_ne!(old_run, new_run);
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
    };
    let (stale, fresh) = (checkpoint(99), checkpoint(7));
    let refused = a
        .commit_batch(&old, old_run, batch(&stale))
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("lost its lease"), "{refused}");
    assert!(!a.renew("orders", old.token()).await.unwrap());
    b.commit_batch(&new, new_run, batch(&fresh)).await.unwrap();
    assert_eq!(
        a.checkpoint("orders").await.unwrap().unwrap().cursor,
        Some(extdata::Value::I64(7))
    );
    let history = a.history("orders", 10).await.unwrap();
    assert_eq!(history.len(), 3, "{history:?}");
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
    let lease = match store.acquire("keys", Claim::Now).await.unwrap() {
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
        };
        store.commit_batch(&lease, run, batch).await.unwrap();
    }
    let asked: Vec<String> = (0..2_100).map(|i| format!("k{i}")).collect();
    let found = store.existing_keys("keys", &asked).await.unwrap();
    assert_eq!(found.len(), 2_003, "k0..k2002 stored once each");
    assert!(found.contains("k0") && found.contains("k2002") && !found.contains("k2003"));
    store.release(lease).await.unwrap();

    let members: Vec<String> = (0..1_100).map(|i| format!("m{i}")).collect();
    store.record_sync("sync", &members, &[]).await.unwrap();
    store
        .record_sync("sync", &members[..600], &members[1_000..])
        .await
        .unwrap();
    let synced = store.synced_members("sync").await.unwrap();
    assert_eq!(synced.len(), 1_000);
    assert!(synced.contains("m999") && !synced.contains("m1000"));
}

#[tokio::test]
async fn sqlite_store_writes_large_key_batches_once() {
    let fixture = Fixture::new();
    let store = extdata_jobs::SqliteStateStore::open(fixture.path("keys-state.db"))
        .await
        .unwrap();
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
    )
    .await
    .unwrap();
    check_key_batches(&store).await;
    extdata_jobs::StateStore::close(&store).await;
    let admin = test_postgres();
    sql(admin.as_ref(), &format!("DROP SCHEMA {schema} CASCADE")).await;
    admin.close().await;
}
