//! `extdata import`, `history`, `segment` and `render`, run for real: a SIGKILL in the
//! middle of an import loses and duplicates nothing; progress bars appear on a terminal
//! and not in pipes.

use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use assert_cmd::assert::Assert;
use extdata::{QueryOptions, Statement};
use extdata_conformance::support::{CRM_ACCOUNT, config_entry};

mod support;
use support::*;

const ROWS: u64 = 300_000;

/// `crm.db` and a config with a table import, a JSONL import, a segment and a lookup.
struct Fixture {
    folder: Folder,
    dir: PathBuf,
    config: PathBuf,
}

fn scalar(path: &Path, sql: &str) -> String {
    block_on(async {
        let source = sqlite(path);
        let result = source
            .query(&Statement::new(sql), &QueryOptions::default())
            .await;
        source.close().await;
        result
            .map(|r| {
                r.rows
                    .first()
                    .map(|row| row.values()[0].to_text_lossless())
                    .unwrap_or_default()
            })
            .unwrap_or_default()
    })
}

impl Fixture {
    /// `crm.db` with `rows` customers (unique emails, `updated_at` = id) and a config
    /// with a table import, a JSONL import, a segment and a lookup.
    fn new(rows: u64) -> Self {
        let folder = Folder::new("");
        block_on(async {
            let source = sqlite(&folder.dir.join("crm.db"));
            for sql in [
                "CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT, name TEXT, updated_at INTEGER)".to_owned(),
                format!(
                    "INSERT INTO customers WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows}) \
                     SELECT i, 'u' || i || '@x.io', 'n' || i, i FROM n"
                ),
            ] {
                source.execute(&Statement::new(sql), &QueryOptions::default()).await.unwrap();
            }
            source.close().await;
        });
        let import = |name: &str, sink: &str| {
            config_entry(
                "imports",
                name,
                ("42", "crm"),
                "SELECT id, email, name, updated_at FROM customers WHERE updated_at >= :cursor ORDER BY updated_at",
                &format!(
                    "key = \"email\"\ncursor = {{ column = \"updated_at\", initial = 0 }}\nbatch_size = 2000\nsink = {sink}"
                ),
            )
        };
        folder.write(
            "extdata.toml",
            &format!(
                r#"{CRM_ACCOUNT}
[[accounts]]
id = "7"
connectors = []
{}{}
[[segments]]
name = "tens"
account = "42"
connector = "crm"
query = "SELECT email FROM customers WHERE id % 10 = 0"
key = "email"
cache_ttl = "10m"

[[lookups]]
name = "customer"
account = "42"
connector = "crm"
query = "SELECT name FROM customers WHERE email = :email"
"#,
                import(
                    "table",
                    r#"{ type = "sqlite", path = "profiles.db", table = "profiles" }"#
                ),
                import("file", r#"{ type = "jsonl", path = "profiles.jsonl" }"#),
            ),
        );
        Fixture {
            dir: folder.dir.clone(),
            config: folder.config.clone(),
            folder,
        }
    }

    fn cmd(&self) -> Command {
        self.folder.cmd()
    }

    /// `import JOB --once`, which must succeed.
    fn import_once(&self, job: &str) {
        self.cmd().args(["import", job, "--once"]).assert().code(0);
    }

    /// `--account ACCOUNT render TEMPLATE --subscriber SUBSCRIBER`, run.
    fn render(&self, account: &str, template: &Path, subscriber: &Path) -> Assert {
        self.cmd()
            .args(["--account", account, "render"])
            .arg(template)
            .arg("--subscriber")
            .arg(subscriber)
            .assert()
    }

    fn rows_committed(&self, job: &str) -> u64 {
        scalar(
            &self.dir.join("extdata-state.db"),
            &format!("SELECT COALESCE(MAX(rows_read), 0) FROM import_run WHERE job = '{job}'"),
        )
        .parse()
        .unwrap_or(0)
    }

    /// Starts `import JOB --once`, SIGKILLs it after some committed batches, returns
    /// the rows committed when it died.
    fn kill_mid_import(&self, job: &str) -> u64 {
        let mut child = command(&self.config)
            .args(["import", job, "--once"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.rows_committed(job) < 10_000 {
            assert!(Instant::now() < deadline, "the import made no progress");
            assert!(
                child.try_wait().unwrap().is_none(),
                "the import ended before it was killed"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(!status.success());
        let committed = self.rows_committed(job);
        assert!(
            committed < ROWS,
            "killed too late: {committed} rows were already committed"
        );
        committed
    }
}

#[test]
fn sigkill_mid_import_loses_and_duplicates_nothing() {
    let fixture = Fixture::new(ROWS);

    let committed = fixture.kill_mid_import("table");
    fixture.import_once("table");
    let profiles = fixture.dir.join("profiles.db");
    assert_eq!(
        scalar(
            &profiles,
            "SELECT COUNT(*) || '/' || COUNT(DISTINCT email) FROM profiles"
        ),
        format!("{ROWS}/{ROWS}"),
        "killed after {committed} rows"
    );
    assert_eq!(
        scalar(
            &profiles,
            "SELECT COUNT(*) FROM profiles p WHERE name <> 'n' || id OR updated_at <> id"
        ),
        "0"
    );

    let committed = fixture.kill_mid_import("file");
    fixture.import_once("file");
    let text = std::fs::read_to_string(fixture.dir.join("profiles.jsonl")).unwrap();
    let mut ids: Vec<u64> = text
        .lines()
        .map(|line| {
            let row: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            row["id"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(
        ids.len() as u64,
        ROWS,
        "killed after {committed} rows: no line twice"
    );
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len() as u64, ROWS, "no key missing");

    // History: newest first; the killed run has no end.
    let output = fixture.cmd().args(["history", "file"]).output().unwrap();
    let history = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(lines.len(), 2, "{history}");
    assert!(
        lines[0].contains(" ok") && lines[1].contains("running or killed"),
        "{history}"
    );
    let id = |line: &str| {
        line.split_whitespace()
            .next()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert!(id(lines[0]) > id(lines[1]));

    // The same history as JSON lines, for scripts.
    let output = fixture
        .cmd()
        .args(["history", "file", "--format", "json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let runs: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(runs[0]["status"], "ok", "{runs:?}");
    // The resumed run reads what the killed one did not commit (and the rows at the
    // saved cursor value again).
    let read = runs[0]["read"].as_u64().unwrap();
    assert!(read >= ROWS - committed && read <= ROWS, "{runs:?}");
    assert_eq!(runs[0]["error"], serde_json::Value::Null, "{runs:?}");
    assert_eq!(runs[1]["status"], "unfinished", "{runs:?}");
    assert_eq!(runs[1]["ended_at"], serde_json::Value::Null, "{runs:?}");
    assert!(runs[0]["id"].as_i64() > runs[1]["id"].as_i64(), "{runs:?}");
}

/// Runs the command on a pseudo-terminal (`script`), returns everything it printed.
fn on_terminal(fixture: &Fixture, args: &str) -> String {
    let command = format!("{BIN} --config {} {args}", fixture.config.display());
    let output = succeeded(
        StdCommand::new("script")
            .args(["-qec", &command, "/dev/null"])
            .env_remove("EXTDATA_LOG"),
        "`script` (util-linux), which runs commands on a pseudo-terminal,",
    );
    stdout_of(&output)
}

#[test]
fn progress_bars_appear_on_a_terminal_and_not_in_pipes() {
    let fixture = Fixture::new(50_000);
    let terminal = on_terminal(&fixture, "import table --once");
    assert!(terminal.contains("50000 rows in "), "{terminal}");
    assert!(terminal.contains("rows/s"), "{terminal}");

    let fixture = Fixture::new(50_000);
    let output = fixture
        .cmd()
        .args(["import", "table", "--once"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        !stderr.contains("rows/s") && !stderr.contains('\u{1b}'),
        "{stderr:?}"
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("read 50000, inserted 50000"));

    let keys = fixture.dir.join("tens.txt");
    let terminal = on_terminal(
        &fixture,
        &format!("segment tens --refresh --output {}", keys.display()),
    );
    assert_eq!(
        std::fs::read_to_string(&keys).unwrap().lines().count(),
        5000
    );
    assert!(
        terminal.contains("rows in ") && terminal.contains("5000 members"),
        "{terminal}"
    );
    let output = fixture.cmd().args(["segment", "tens"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("rows/s"), "{stderr}");
    assert!(stderr.contains("5000 members (from the cache"), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).lines().count(),
        5000
    );
}

#[test]
fn render_check_and_accounts_through_the_command() {
    let fixture = Fixture::new(10);
    check(&fixture.config)
        .code(0)
        .stdout(predicates::str::contains("2 imports, 1 segment, 1 lookup"));
    std::fs::write(
        fixture.dir.join("t.j2"),
        "Hello {{ lookup('customer', email=subscriber.email).name }}!",
    )
    .unwrap();
    std::fs::write(fixture.dir.join("s.json"), r#"{"email": "u3@x.io"}"#).unwrap();
    let t = fixture.dir.join("t.j2");
    let s = fixture.dir.join("s.json");
    fixture.render("42", &t, &s).code(0).stdout("Hello n3!\n");
    for args in [
        vec!["--account", "7", "import", "table", "--once"],
        vec!["--account", "7", "history", "table"],
        vec!["--account", "7", "segment", "tens"],
    ] {
        fixture
            .cmd()
            .args(&args)
            .assert()
            .code(1)
            .stderr(predicates::str::contains("is not available to account `7`"));
    }
    fixture
        .render("7", &t, &s)
        .code(1)
        .stderr(predicates::str::contains(
            "lookup `customer` is not available to account `7`",
        ));
    // A mistake in a jobs section fails `check`, naming the entry and field.
    let bad = fixture.dir.join("bad.toml");
    let text = std::fs::read_to_string(&fixture.config)
        .unwrap()
        .replace("cache_ttl = \"10m\"", "cache_ttl = \"often\"");
    std::fs::write(&bad, format!("{text}\n[[extras]]\n")).unwrap();
    check(&bad)
        .code(2)
        .stdout(predicates::str::contains(
            "tens: cache_ttl: `often` is not a duration",
        ))
        .stdout(predicates::str::contains("config: extras: unknown section"));

    // A template that names a field the subscriber lacks fails, naming the file and line.
    let typo = fixture.dir.join("typo.j2");
    std::fs::write(&typo, "Hello\n{{ subscriber.mail }}!").unwrap();
    fixture
        .render("42", &typo, &s)
        .code(2)
        .stdout("")
        .stderr(predicates::str::contains(format!(
            "template `{}` line 2: `subscriber.mail` is undefined (did you mean `subscriber.email`?)",
            typo.display()
        )));

    // An import that compares with `> :cursor` can lose rows: `check` warns.
    let loose = fixture.dir.join("loose.toml");
    let text = std::fs::read_to_string(&fixture.config)
        .unwrap()
        .replace(">= :cursor", "> :cursor");
    std::fs::write(&loose, text).unwrap();
    check(&loose).code(0).stdout(predicates::str::contains(
        "warning: import `table` of account `42`: query: compares with `> :cursor`",
    ));
}

/// Accounts 42 (`crm.db`) and 7 (`other.db`), each with an import `orders` of its own
/// orders (`rows` of them) into `orders-<account>.jsonl`.
fn two_accounts_folder(schedule: &str) -> Folder {
    let mut config = String::from(
        "[[connectors]]\nname = \"crm\"\ntype = \"sqlite\"\ndatabase = \"crm.db\"\n\n\
         [[connectors]]\nname = \"other\"\ntype = \"sqlite\"\ndatabase = \"other.db\"\n\n\
         [[accounts]]\nid = \"42\"\nconnectors = [\"crm\"]\n\n\
         [[accounts]]\nid = \"7\"\nconnectors = [\"other\"]\n",
    );
    for (account, connector) in [("42", "crm"), ("7", "other")] {
        config += &config_entry(
            "imports",
            "orders",
            (account, connector),
            "SELECT id, created_at FROM orders WHERE created_at >= :cursor ORDER BY created_at",
            &format!(
                "key = \"id\"\ncursor = {{ column = \"created_at\", initial = 0 }}\n{schedule}\
                 sink = {{ type = \"jsonl\", path = \"orders-{account}.jsonl\" }}"
            ),
        );
    }
    let folder = Folder::new(&config);
    for (file, rows) in [("crm.db", 3), ("other.db", 2)] {
        block_on(async {
            let source = sqlite(&folder.dir.join(file));
            for sql in [
                "CREATE TABLE orders (id INTEGER, created_at INTEGER)".to_owned(),
                format!(
                    "INSERT INTO orders WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows}) SELECT i, i FROM n"
                ),
            ] {
                source
                    .execute(&Statement::new(sql), &QueryOptions::default())
                    .await
                    .unwrap();
            }
            source.close().await;
        });
    }
    folder
}

#[test]
fn two_accounts_run_imports_of_the_same_name_each_counting_its_own_runs() {
    let folder = two_accounts_folder("");
    // Without --account the name is ambiguous: usage error naming both accounts.
    folder
        .cmd()
        .args(["import", "orders", "--once"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "import `orders` exists in several accounts (`42`, `7`); name the account",
        ));
    let import = |account: &str| {
        let output = succeeded(
            command(&folder.config).args(["--account", account, "import", "orders", "--once"]),
            "import",
        );
        stdout_of(&output)
    };
    assert_contains_all(
        &import("42"),
        &["import `orders` of account `42` run 1: read 3, inserted 3"],
    );
    assert_contains_all(
        &import("7"),
        &["import `orders` of account `7` run 1: read 2, inserted 2"],
    );
    // Inclusive cursor: 42's second run reads its row at the saved value again only.
    assert_contains_all(
        &import("42"),
        &["import `orders` of account `42` run 2: read 1, inserted 0"],
    );
    let lines = |file: &str| {
        std::fs::read_to_string(folder.dir.join(file))
            .unwrap()
            .lines()
            .count()
    };
    assert_eq!((lines("orders-42.jsonl"), lines("orders-7.jsonl")), (3, 2));

    // History: per account, the runs numbered from 1, the account named.
    let history = succeeded(
        command(&folder.config).args(["--account", "42", "history", "orders"]),
        "history",
    );
    let text = stdout_of(&history);
    let ids: Vec<&str> = text
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert_eq!(ids, ["2", "1"], "{text}");
    assert_contains_all(
        &stderr_of(&history),
        &["import `orders` of account `42`: 2 runs, newest first"],
    );
    let json = succeeded(
        command(&folder.config).args(["--account", "7", "history", "orders", "--format", "json"]),
        "history --format json",
    );
    let runs: Vec<serde_json::Value> = stdout_of(&json)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(
        (
            &runs[0]["account"],
            &runs[0]["import"],
            &runs[0]["id"],
            &runs[0]["read"]
        ),
        (
            &serde_json::json!("7"),
            &serde_json::json!("orders"),
            &serde_json::json!(1),
            &serde_json::json!(2)
        )
    );
    folder
        .cmd()
        .args(["history", "orders"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("exists in several accounts"));
}
