//! Three `extdata run` workers, separate processes, share one schedule through the
//! PostgreSQL state store while workers are killed (SIGKILL) and started again at random.
//! Checked from the run history and the sink: no fire time taken twice and no two runs
//! of the import at once; every row of the source in the keyed sink once, none lost;
//! every due run started within the lease time + 1 s (a dead worker's run taken over by
//! another, resuming at its checkpoint). The figures are printed (see RELIABILITY.md).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use extdata::{ExternalSource, QueryOptions, Statement};

mod support;
use extdata_conformance::require_or_skip;
use extdata_conformance::support::{config_entry, env, postgres_from_env, server_toml};
use support::{command, start_runner, ticking_folder};

const WORKERS: usize = 3;
/// The state store's lease time (`[state] lease`).
const LEASE: Duration = Duration::from_secs(2);
/// How long workers are killed at random while rows arrive.
const CHAOS: Duration = Duration::from_secs(36);

fn postgres() -> Arc<dyn ExternalSource> {
    let (config, policy) = postgres_from_env("pg");
    extdata::connect_with_policy(&config, &policy).unwrap()
}

async fn exec(db: &dyn ExternalSource, sql: &str) {
    db.execute(&Statement::new(sql), &QueryOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn column(db: &dyn ExternalSource, sql: &str) -> Vec<String> {
    db.query(&Statement::new(sql), &QueryOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .rows
        .iter()
        .map(|row| row.values()[0].to_text_lossless())
        .collect()
}

/// A small xorshift generator (the test needs no cryptographic randomness).
struct Random(u64);

impl Random {
    fn new() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        Random(seed | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

struct Workers {
    dir: PathBuf,
    config: PathBuf,
    slots: Vec<Child>,
    started: usize,
    /// pid → when it was killed.
    killed: HashMap<u32, DateTime<Utc>>,
}

impl Workers {
    fn spawn(&mut self) -> Child {
        self.started += 1;
        let log = self.dir.join(format!("worker-{}.log", self.started));
        start_runner(&self.config, &log)
    }

    fn kill(&mut self, slot: usize) {
        let child = &mut self.slots[slot];
        child.kill().unwrap();
        self.killed.insert(child.id(), Utc::now());
        child.wait().unwrap();
    }

    fn terminate_all(&mut self) {
        for child in &self.slots {
            Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        for child in &mut self.slots {
            while child.try_wait().unwrap().is_none() {
                assert!(
                    Instant::now() < deadline,
                    "a worker did not stop on SIGTERM"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// One run from `extdata history --format json`.
#[derive(Debug)]
struct Run {
    started: DateTime<Utc>,
    ended: Option<DateTime<Utc>>,
    status: String,
    pid: u32,
    fire: Option<String>,
    takeover: bool,
}

fn history(config: &Path) -> Vec<Run> {
    let output = command(config)
        .args([
            "history", "events", "--format", "json", "--limit", "1000000",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let time = |v: &serde_json::Value| {
        v.as_str()
            .map(|t| DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc))
    };
    let mut runs: Vec<Run> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let run: serde_json::Value = serde_json::from_str(line).unwrap();
            let worker = run["worker"].as_str().unwrap();
            Run {
                started: time(&run["started_at"]).unwrap(),
                ended: time(&run["ended_at"]),
                status: run["status"].as_str().unwrap().to_owned(),
                pid: worker.rsplit('/').next().unwrap().parse().unwrap(),
                fire: run["fire_at"].as_str().map(str::to_owned),
                takeover: run["takeover"].as_bool().unwrap(),
            }
        })
        .collect();
    runs.sort_by_key(|r| r.started);
    runs
}

#[test]
fn three_workers_share_the_schedule_through_kills() {
    if env("EXTDATA_TEST_POSTGRES_URL").is_none() {
        return require_or_skip("postgres", "EXTDATA_TEST_POSTGRES_URL is not set").unwrap_or(());
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let db = postgres();
    let schema = format!("extdata_workers_{}", std::process::id());
    runtime.block_on(async {
        exec(
            db.as_ref(),
            &format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
        )
        .await;
        exec(db.as_ref(), &format!("CREATE SCHEMA {schema}")).await;
        exec(
            db.as_ref(),
            &format!("CREATE TABLE {schema}.events (id BIGINT PRIMARY KEY, email TEXT NOT NULL)"),
        )
        .await;
    });
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("extdata.toml");
    // Each row costs the source 0.5 ms (pg_sleep), so that runs last long enough to be
    // killed in the middle; batches of 50 rows are committed one by one.
    std::fs::write(
        &config,
        format!(
            r#"
[secrets]
env_prefixes = ["EXTDATA_TEST_"]

[[connectors]]
name = "src"
{server}password = {{ env = "EXTDATA_TEST_POSTGRES_PASSWORD" }}

[[accounts]]
id = "42"
connectors = ["src"]

[state]
type = "postgresql"
url = {{ env = "EXTDATA_TEST_POSTGRES_URL" }}
schema = "{schema}"
lease = "{lease}s"

{import}
"#,
            server = server_toml("POSTGRES", "postgres", "postgresql").unwrap(),
            import = config_entry(
                "imports",
                "events",
                ("42", "src"),
                &format!("SELECT id, email FROM {schema}.events WHERE id >= :cursor AND pg_sleep(0.0005)::text = '' ORDER BY id"),
                &format!(
                    "key = \"id\"\ncursor = {{ column = \"id\", initial = 0 }}\nbatch_size = 50\n\
                     schedule = {{ cron = \"* * * * * *\", timezone = \"UTC\" }}\n\
                     sink = {{ type = \"postgresql\", url = {{ env = \"EXTDATA_TEST_POSTGRES_URL\" }}, table = \"{schema}.profiles\" }}"
                ),
            ),
            lease = LEASE.as_secs(),
        ),
    )
    .unwrap();

    // Rows arrive all along: ~200 a second, in order of id.
    let inserted = Arc::new(AtomicI64::new(0));
    let inserting = Arc::new(AtomicBool::new(true));
    let inserter = {
        let (db, inserted, inserting, schema) = (
            db.clone(),
            inserted.clone(),
            inserting.clone(),
            schema.clone(),
        );
        runtime.spawn(async move {
            while inserting.load(Ordering::SeqCst) {
                let from = inserted.load(Ordering::SeqCst) + 1;
                let to = from + 9;
                exec(
                    db.as_ref(),
                    &format!(
                        "INSERT INTO {schema}.events SELECT g, 'u' || g || '@x.io' FROM generate_series({from}, {to}) g"
                    ),
                )
                .await;
                inserted.store(to, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    let mut workers = Workers {
        dir: dir.path().to_path_buf(),
        config: config.clone(),
        slots: Vec::new(),
        started: 0,
        killed: HashMap::new(),
    };
    for _ in 0..WORKERS {
        let child = workers.spawn();
        workers.slots.push(child);
    }
    let began = Utc::now();
    let start = Instant::now();
    let mut random = Random::new();
    let mut kills = 0;
    let mut aimed = 0;
    while start.elapsed() < CHAOS {
        std::thread::sleep(Duration::from_millis(1000 + random.below(2000)));
        // Half the kills aim at the worker holding the lease (so that runs are cut in
        // the middle), the others at any worker.
        let holder = if random.below(2) == 0 {
            let owner = runtime.block_on(column(
                db.as_ref(),
                &format!("SELECT COALESCE(MAX(owner), '') FROM {schema}.import_lease"),
            ));
            let pid = owner[0]
                .rsplit('/')
                .next()
                .and_then(|p| p.parse::<u32>().ok());
            workers.slots.iter().position(|c| Some(c.id()) == pid)
        } else {
            None
        };
        aimed += usize::from(holder.is_some());
        let slot = holder.unwrap_or_else(|| random.below(WORKERS as u64) as usize);
        workers.kill(slot);
        kills += 1;
        std::thread::sleep(Duration::from_millis(200 + random.below(800)));
        workers.slots[slot] = workers.spawn();
    }
    let chaos_end = Utc::now();
    inserting.store(false, Ordering::SeqCst);
    runtime.block_on(inserter).unwrap();
    let total = inserted.load(Ordering::SeqCst);
    // The workers catch up with the last rows.
    let caught_up = Instant::now();
    loop {
        let count = runtime.block_on(column(
            db.as_ref(),
            &format!("SELECT COUNT(*) FROM {schema}.profiles"),
        ));
        if count[0] == total.to_string() {
            break;
        }
        assert!(
            caught_up.elapsed() < Duration::from_secs(15),
            "the sink has {} rows of {total} after 15 s",
            count[0]
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    workers.terminate_all();

    // Rows: every id once, with its values.
    let (missing, extra, duplicated, wrong) = runtime.block_on(async {
        let q = |sql: String| {
            let db = db.clone();
            async move { column(db.as_ref(), &sql).await[0].clone() }
        };
        (
            q(format!(
                "SELECT COUNT(*) FROM (SELECT id FROM {schema}.events EXCEPT SELECT id FROM {schema}.profiles) m"
            ))
            .await,
            q(format!(
                "SELECT COUNT(*) FROM (SELECT id FROM {schema}.profiles EXCEPT SELECT id FROM {schema}.events) m"
            ))
            .await,
            q(format!(
                "SELECT COUNT(*) - COUNT(DISTINCT id) FROM {schema}.profiles"
            ))
            .await,
            q(format!(
                "SELECT COUNT(*) FROM {schema}.profiles p JOIN {schema}.events e USING (id) WHERE p.email <> e.email"
            ))
            .await,
        )
    });

    // Runs: from the history.
    let runs = history(&config);
    let during: Vec<&Run> = runs.iter().filter(|r| r.started >= began).collect();
    let mut fires: BTreeMap<&str, usize> = BTreeMap::new();
    for run in &runs {
        if let Some(fire) = &run.fire {
            *fires.entry(fire).or_default() += 1;
        }
    }
    let fires_twice = fires.values().filter(|n| **n > 1).count();
    // No two runs at once: each starts after the one before ended, or after the
    // worker of an unfinished one was killed (then it is a takeover).
    let mut overlaps = Vec::new();
    let mut takeovers = Vec::new();
    for pair in runs.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        match before.ended {
            Some(ended) if after.started < ended => {
                overlaps.push(format!("{before:?} / {after:?}"))
            }
            Some(_) => {}
            None => {
                let killed = workers.killed.get(&before.pid).copied();
                match killed {
                    Some(killed) if after.started >= killed && after.takeover => {
                        takeovers.push((after.started - killed).to_std().unwrap());
                    }
                    _ => overlaps.push(format!("unfinished {before:?} / {after:?}")),
                }
            }
        }
    }
    // Every fire time due during the chaos was taken within the lease time + 1 s: a fire
    // time is due unless a run by a live worker was going on then.
    let mut waits = Vec::new();
    let mut fire = DateTime::from_timestamp(began.timestamp() + 3, 0).unwrap();
    while fire < chaos_end - chrono::Duration::seconds(1) {
        let covered = runs.iter().any(|r| {
            r.started <= fire
                && match r.ended {
                    Some(ended) => ended >= fire,
                    None => workers.killed.get(&r.pid).is_some_and(|k| *k > fire),
                }
        });
        if !covered {
            let next = runs.iter().find(|r| r.started >= fire);
            let wait = next.map_or(Duration::MAX, |r| (r.started - fire).to_std().unwrap());
            waits.push((fire, wait));
        }
        fire += chrono::Duration::seconds(1);
    }
    let late: Vec<_> = waits
        .iter()
        .filter(|(_, wait)| *wait > LEASE + Duration::from_secs(1))
        .collect();
    let longest_wait = waits.iter().map(|(_, w)| *w).max().unwrap_or_default();
    let statuses: BTreeSet<&str> = runs.iter().map(|r| r.status.as_str()).collect();
    let unfinished = runs.iter().filter(|r| r.ended.is_none()).count();
    let workers_seen: BTreeSet<u32> = during.iter().map(|r| r.pid).collect();
    takeovers.sort();
    let lengths: Vec<Duration> = runs
        .iter()
        .filter_map(|r| {
            r.ended
                .map(|e| (e - r.started).to_std().unwrap_or_default())
        })
        .collect();
    let mean_length = lengths.iter().sum::<Duration>() / lengths.len().max(1) as u32;
    eprintln!(
        "figures: {} runs ({} during the chaos, by {} worker processes; statuses {statuses:?}; \
         {mean_length:?} long on average), \
         {} fire times taken, {fires_twice} taken twice, {} overlapping runs; \
         {kills} kills ({aimed} aimed at the lease holder, {unfinished} in the middle of a run), \
         {} takeovers in {:?} \
         (lease {LEASE:?}); {} due fire times, longest wait {longest_wait:?}, {} late; \
         rows: {total} inserted, missing {missing}, extra {extra}, duplicated {duplicated}, \
         changed {wrong}",
        runs.len(),
        during.len(),
        workers_seen.len(),
        fires.len(),
        overlaps.len(),
        takeovers.len(),
        takeovers,
        waits.len(),
        late.len(),
    );

    for (fire, wait) in &late {
        let near = |t: &DateTime<Utc>| (*t - *fire).num_seconds().abs() <= 6;
        for run in runs.iter().filter(|r| near(&r.started)) {
            eprintln!("  run {run:?}");
        }
        for (pid, at) in workers.killed.iter().filter(|(_, at)| near(at)) {
            eprintln!("  killed {pid} at {at}");
        }
        eprintln!(
            "late: {fire} waited {wait:?}; logs in {}",
            dir.path().display()
        );
    }
    if !late.is_empty() || !overlaps.is_empty() {
        let _ = dir.keep();
    }
    runtime.block_on(async {
        exec(db.as_ref(), &format!("DROP SCHEMA {schema} CASCADE")).await;
        db.close().await;
    });
    assert_eq!(fires_twice, 0, "fire times taken twice");
    assert!(overlaps.is_empty(), "runs at once: {overlaps:#?}");
    assert_eq!(
        (
            missing.as_str(),
            extra.as_str(),
            duplicated.as_str(),
            wrong.as_str()
        ),
        ("0", "0", "0", "0"),
        "rows missing, extra, duplicated, changed"
    );
    assert!(late.is_empty(), "due runs taken late: {late:?}");
    assert!(kills >= 8, "only {kills} kills");
    assert!(
        takeovers.len() >= 2,
        "only {} takeovers: kills missed the runs",
        takeovers.len()
    );
    assert!(
        takeovers
            .iter()
            .all(|t| *t <= LEASE + Duration::from_secs(1)),
        "takeovers {takeovers:?}"
    );
    assert!(
        workers_seen.len() >= WORKERS,
        "runs were taken by {} worker processes only",
        workers_seen.len()
    );
}

fn stderr_of(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Two runners on one SQLite state file: the second says once that the first holds the
/// schedule, runs nothing while it does, and takes over when it stops.
#[test]
fn a_second_runner_on_sqlite_waits_and_says_so_once() {
    let folder = ticking_folder("SELECT 1 AS id");
    let config = folder.config.clone();
    let start = |name: &str| {
        let log = folder.dir.join(name);
        (start_runner(&config, &log), log)
    };
    let wait_for = |log: &Path, text: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !stderr_of(log).contains(text) {
            assert!(
                Instant::now() < deadline,
                "no `{text}` in {}",
                stderr_of(log)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let (mut first, first_log) = start("first.log");
    wait_for(&first_log, "import `ticks` of account `42`: started");
    let (mut second, second_log) = start("second.log");
    wait_for(&second_log, "another runner holds the schedule");
    std::thread::sleep(Duration::from_millis(3500));
    let said = stderr_of(&second_log);
    assert_eq!(
        said.matches("another runner holds the schedule").count(),
        1,
        "{said}"
    );
    assert!(!said.contains("started"), "{said}");
    assert!(
        said.contains(&format!("/{}", first.id())),
        "names the holder: {said}"
    );
    Command::new("kill")
        .args(["-TERM", &first.id().to_string()])
        .status()
        .unwrap();
    first.wait().unwrap();
    wait_for(&second_log, "this runner holds the schedule now");
    wait_for(&second_log, "import `ticks` of account `42`: started");
    second.kill().unwrap();
    second.wait().unwrap();
}
