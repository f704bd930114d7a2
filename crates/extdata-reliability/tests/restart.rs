//! Restart under load: tasks query continuously while the server is stopped and started
//! again. The first call succeeds within 5 s of the server accepting connections, no
//! call that starts after that fails, and the pool ends at its normal size (every slot
//! usable, no extra sessions on the server).
//!
//! PostgreSQL, MariaDB and ClickHouse. Only the dedicated instances of
//! `scripts/reliability.sh` are restarted (settings
//! `EXTDATA_TEST_RELIABILITY_*`, written by `scripts/services.sh reliability`): the
//! shared servers serve other tests at the same time.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use extdata::{ConnectorConfig, DbKind, PoolConfig, QueryOptions, Statement};
use extdata_conformance::require_or_skip;
use extdata_conformance::support::{block_on, env, int_of, ok};
use extdata_reliability::source;

const POOL_SIZE: i64 = 4;
const WORKERS: usize = 6;

struct Instance {
    name: &'static str,
    ctl: String,
    address: SocketAddr,
    config: ConnectorConfig,
    /// Sessions of the test user on the server, other than the asking one.
    sessions_sql: &'static str,
    hold_sql: &'static str,
}

fn instance(name: &'static str, kind: DbKind) -> Option<Instance> {
    let prefix = format!("EXTDATA_TEST_RELIABILITY_{}", name.to_uppercase());
    let (Some(ctl), Some(host), Some(port)) = (
        env("EXTDATA_TEST_RELIABILITY_CTL"),
        env(&format!("{prefix}_HOST")),
        env(&format!("{prefix}_PORT")).and_then(|p| p.parse::<u16>().ok()),
    ) else {
        return require_or_skip(
            "reliability",
            format!("{prefix}_* is not set (run scripts/services.sh reliability)"),
        );
    };
    let address: SocketAddr = format!("{host}:{port}").parse().ok()?;
    assert!(address.ip().is_loopback(), "{address} is not loopback");
    let mut config = ConnectorConfig::new(format!("rel-restart-{name}"), kind)
        .with_host(host)
        .with_port(port)
        .with_connect_timeout(Duration::from_secs(2))
        .with_query_timeout(Duration::from_secs(2))
        .with_pool(PoolConfig {
            max_size: Some(POOL_SIZE.into()),
            acquire_timeout: Some("2s".into()),
            ..PoolConfig::default()
        });
    if let Some(database) = env(&format!("{prefix}_DATABASE")) {
        config = config.with_database(database);
    }
    if let Some(user) = env(&format!("{prefix}_USER")) {
        config = config.with_username(user);
    }
    if let Some(password) = env(&format!("{prefix}_PASSWORD")) {
        config = config.with_password(password);
    }
    let (sessions_sql, hold_sql) = match kind {
        DbKind::Postgres => (
            "SELECT count(*) FROM pg_stat_activity \
             WHERE usename = current_user AND pid <> pg_backend_pid()",
            "SELECT pg_sleep(0.5)",
        ),
        // HTTP has no sessions: the queries still running on the server instead.
        DbKind::ClickHouse => (
            "SELECT count() FROM system.processes WHERE query NOT LIKE '%system.processes%'",
            "SELECT sleep(0.5)",
        ),
        _ => (
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
             WHERE USER = SUBSTRING_INDEX(CURRENT_USER(), '@', 1) AND ID <> CONNECTION_ID()",
            "SELECT SLEEP(0.5)",
        ),
    };
    Some(Instance {
        name,
        ctl,
        address,
        config,
        sessions_sql,
        hold_sql,
    })
}

fn control(instance: &Instance, action: &str) {
    let status = std::process::Command::new("bash")
        .args([&instance.ctl, action, instance.name])
        .status()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", instance.ctl));
    assert!(
        status.success(),
        "`{} {action} {}` failed",
        instance.ctl,
        instance.name
    );
}

/// Starts the instance again if a test stops half-way.
struct StartOnDrop<'a>(&'a Instance);

impl Drop for StartOnDrop<'_> {
    fn drop(&mut self) {
        control(self.0, "start");
    }
}

#[derive(Debug, Clone, Copy)]
struct Call {
    started: Instant,
    ended: Instant,
    ok: bool,
}

async fn restart_under_load(name: &'static str, kind: DbKind) {
    let Some(instance) = instance(name, kind) else {
        return;
    };
    control(&instance, "start");
    let source = source(&instance.config);
    ok(
        source.ping().await,
        "the instance answers before the restart",
    );

    let calls = Arc::new(Mutex::new(Vec::<Call>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let (source, calls, stop) = (Arc::clone(&source), Arc::clone(&calls), Arc::clone(&stop));
        workers.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let started = Instant::now();
                let outcome = source
                    .query(&Statement::new("SELECT 1"), &QueryOptions::default())
                    .await;
                let ended = Instant::now();
                calls.lock().unwrap().push(Call {
                    started,
                    ended,
                    ok: outcome.is_ok(),
                });
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }

    tokio::time::sleep(Duration::from_secs(2)).await;
    let guard = StartOnDrop(&instance);
    let stopping = Instant::now();
    tokio::task::block_in_place(|| control(&instance, "stop"));
    let stopped = Instant::now();
    // The moment the server accepts TCP connections again, watched from before the
    // start (the script returns only once the server also answers queries).
    let watcher = tokio::spawn({
        let address = instance.address;
        async move {
            let watching = Instant::now();
            loop {
                if tokio::net::TcpStream::connect(address).await.is_ok() {
                    return Some(Instant::now());
                }
                if watching.elapsed() > Duration::from_secs(30) {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    tokio::task::block_in_place(|| control(&instance, "start"));
    std::mem::forget(guard);
    let accepting = watcher
        .await
        .expect("watcher")
        .expect("the server did not come back within 30 s");
    tokio::time::sleep(Duration::from_secs(6)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for worker in workers {
        worker.await.expect("worker");
    }

    let calls = calls.lock().unwrap().clone();
    let before = calls.iter().filter(|c| c.ended < stopping).count();
    let failed_before = calls.iter().filter(|c| c.ended < stopping && !c.ok).count();
    assert!(before > 0, "no call before the restart");
    assert_eq!(failed_before, 0, "calls failed before the restart");
    let failed_while_down = calls.iter().filter(|c| !c.ok).count();
    let first_success = calls
        .iter()
        .filter(|c| c.ok && c.started >= stopped)
        .map(|c| c.ended)
        .min()
        .expect("no call succeeded after the restart");
    let recovery = first_success.saturating_duration_since(accepting);
    assert!(
        first_success <= accepting + Duration::from_secs(5),
        "first success {recovery:?} after the server accepted again"
    );
    let failed_after: Vec<_> = calls
        .iter()
        .filter(|c| c.started >= first_success && !c.ok)
        .collect();
    let after = calls.iter().filter(|c| c.started >= first_success).count();
    assert!(after > 0, "no call after the recovery");
    assert!(
        failed_after.is_empty(),
        "{} of {after} calls failed after the first success",
        failed_after.len()
    );

    // Every slot usable: POOL_SIZE calls holding a connection for 0.5 s all finish
    // within 1.5 s (a leaked slot would queue one behind the others).
    let held = Instant::now();
    let holders: Vec<_> = (0..POOL_SIZE)
        .map(|_| {
            let source = Arc::clone(&source);
            let sql = instance.hold_sql;
            tokio::spawn(async move {
                source
                    .query(&Statement::new(sql), &QueryOptions::default())
                    .await
            })
        })
        .collect();
    for holder in holders {
        ok(holder.await.expect("holder"), "a call holding a slot");
    }
    let all_slots = held.elapsed();
    assert!(
        all_slots < Duration::from_millis(1_500),
        "{POOL_SIZE} concurrent calls took {all_slots:?}: a pool slot is missing"
    );
    let sessions = ok(
        source
            .query(
                &Statement::new(instance.sessions_sql),
                &QueryOptions::default(),
            )
            .await,
        "sessions on the server",
    );
    let others = sessions.rows[0].get(0).and_then(int_of).unwrap_or(-1);
    assert!(
        (0..POOL_SIZE as i128).contains(&others),
        "{others} other sessions of the test user on the server; the pool holds at most {POOL_SIZE}"
    );
    eprintln!(
        "measured: {name} restart: {} calls ({before} before the stop, {failed_while_down} failed while down), \
         stop took {:?}, down {:?}, first success {recovery:?} after the server accepted again, \
         0 of {after} later calls failed, {POOL_SIZE} slots usable in {all_slots:?}, \
         {others} other sessions of the test user on the server (ClickHouse: other running \
         queries; pool max {POOL_SIZE})",
        calls.len(),
        stopped - stopping,
        accepting - stopped,
    );
}

#[test]
fn postgres_restart_under_load_recovers_without_leaks() {
    block_on(restart_under_load("postgres", DbKind::Postgres));
}

#[test]
fn mariadb_restart_under_load_recovers_without_leaks() {
    block_on(restart_under_load("mysql", DbKind::MySql));
}

#[test]
fn clickhouse_restart_under_load_recovers_without_leaks() {
    block_on(restart_under_load("clickhouse", DbKind::ClickHouse));
}
