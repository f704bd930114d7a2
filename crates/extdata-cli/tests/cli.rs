//! The `extdata` binary, run for real against SQLite files in a temporary folder (and a
//! PostgreSQL connector pointed at a closed port for the failure paths).

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use extdata::{QueryOptions, Statement};
use extdata_conformance::support::{
    SENTINEL_PASSWORD as SENTINEL, assert_elapsed_below, mistaken_connectors, server_toml,
};
use predicates::prelude::*;

mod support;
use support::*;

/// A folder with a SQLite database `crm.db` (table `customers`) and `extdata.toml`.
type Fixture = Folder;

/// The connectors and accounts of every test's `extdata.toml`.
fn fixture() -> Fixture {
    let folder = Folder::new(&format!(
        r#"
[[connectors]]
name = "local"
type = "sqlite"
database = "crm.db"
query_timeout = "20s"

[[connectors]]
name = "other"
type = "sqlite"
database = ":memory:"

[[connectors]]
name = "pg"
type = "postgresql"
host = "127.0.0.1"
port = 1
database = "crm"
username = "reader"
password = "{SENTINEL}"
connect_timeout = "3s"

[[accounts]]
id = "42"
connectors = ["local", "pg"]

[[accounts]]
id = "7"
connectors = ["other"]
"#
    ));
    create_database(&folder.dir.join("crm.db"));
    folder
}

/// Creates the demo table through the library itself.
fn create_database(path: &Path) {
    block_on(async {
        let source = sqlite(path);
        let options = QueryOptions::default();
        source
            .execute(
                &Statement::new(
                    "CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT NOT NULL, \
                     city TEXT, balance TEXT, photo BLOB)",
                ),
                &options,
            )
            .await
            .expect("create table");
        for (id, email, city) in [
            (1, "ann@example.com", Some("Oslo")),
            (2, "bob@example.com", None),
            (3, "cy@example.com", Some("Lyon")),
        ] {
            source
                .execute(
                    &Statement::new(
                        "INSERT INTO customers (id, email, city, photo) VALUES (:id, :email, :city, x'00ff10')",
                    )
                    .bind("id", id as i64)
                    .bind("email", email)
                    .bind("city", city),
                    &options,
                )
                .await
                .expect("insert");
        }
        source.close().await;
    });
}

impl Folder {
    /// Runs the binary with `args`; asserts that it succeeded and returns its output.
    fn ok(&self, args: &[&str]) -> std::process::Output {
        let output = self.cmd().args(args).output().unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}: {}",
            stderr_of(&output)
        );
        output
    }
}

// ---------------------------------------------------------------------------- check

#[test]
fn check_reports_every_mistake_in_one_run() {
    let fixture = fixture();
    let crm = r#"database = "crm"
username = "reader"
password = { env = "EXTDATA_CLI_TEST_UNSET_PASSWORD" }
options = { colation = "utf8" }"#;
    let duplicates = r#"
[[connectors]]
name = "dup"
type = "sqlite"
database = ":memory:"

[[connectors]]
name = "dup"
type = "sqlite"
database = ":memory:"
"#;
    let bad = fixture.write(
        "bad.toml",
        &format!("{}{duplicates}", mistaken_connectors(crm)),
    );
    let output = Command::new(BIN)
        .env_remove("EXTDATA_CLI_TEST_UNSET_PASSWORD")
        .args(["--secrets-env-prefix", "EXTDATA_CLI_TEST_", "--config"])
        .arg(&bad)
        .arg("check")
        .output()
        .unwrap();
    let stdout = stdout_of(&output);
    assert_eq!(output.status.code(), Some(2), "stdout:\n{stdout}");
    assert_contains_all(
        &stdout,
        &[
            "crm: port: ",
            "crm: options",
            "colation",
            "local: ssl",
            "name: must not be empty",
            "dup: name: is used by another connector",
            "crm: password: environment variable `EXTDATA_CLI_TEST_UNSET_PASSWORD` is not set",
        ],
    );
    // One problem per line, each `<connector>: <field>: <problem>`.
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.len() >= 6, "{stdout}");
    assert!(
        lines.iter().all(|l| l.splitn(3, ": ").count() == 3),
        "{stdout}"
    );
    assert!(stderr_of(&output).contains("problems"));
}

// -------------------------------------------------------------------------- secrets

/// A file with one connector reading `secrets/pw` (holding the sentinel) and one
/// reading the variable `EXTDATA_CLI_GRANTED_PW` (set to the sentinel).
fn secret_config(fixture: &Fixture, extra: &str) -> PathBuf {
    std::fs::create_dir_all(fixture.dir.join("secrets")).unwrap();
    fixture.write("secrets/pw", &format!("{SENTINEL}\n"));
    fixture.write(
        "secret.toml",
        &format!(
            "{extra}\n[[connectors]]\nname = \"byfile\"\ntype = \"postgresql\"\nhost = \"127.0.0.1\"\n\
             password = {{ file = \"secrets/pw\" }}\n\n\
             [[connectors]]\nname = \"byenv\"\ntype = \"postgresql\"\nhost = \"127.0.0.1\"\n\
             password = {{ env = \"EXTDATA_CLI_GRANTED_PW\" }}\n"
        ),
    )
}

fn check_with(config: &Path, flags: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .env("EXTDATA_CLI_GRANTED_PW", SENTINEL)
        .args(flags)
        .arg("--config")
        .arg(config)
        .arg("check")
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap()
}

#[test]
fn secret_files_and_variables_are_refused_until_granted() {
    let fixture = fixture();
    let config = secret_config(&fixture, "");
    let output = check_with(&config, &[]);
    let (stdout, stderr) = (stdout_of(&output), stderr_of(&output));
    assert_eq!(output.status.code(), Some(2), "{stdout}{stderr}");
    assert!(!stdout.contains(SENTINEL) && !stderr.contains(SENTINEL));
    assert!(
        stdout.contains("byfile: password: file `")
            && stdout
                .contains("is outside the directories granted for secret files (granted: none)")
            && stdout.contains("grant it with --secrets-dir"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "byenv: password: environment variable `EXTDATA_CLI_GRANTED_PW` is outside the prefixes"
        ),
        "{stdout}"
    );
    // A neighbouring prefix or folder is not enough.
    std::fs::create_dir_all(fixture.dir.join("secrets2")).unwrap();
    let neighbour = fixture.dir.join("secrets2");
    let output = check_with(
        &config,
        &[
            "--secrets-env-prefix",
            "EXTDATA_CLI_GRANTED_PWX",
            "--secrets-dir",
            neighbour.to_str().unwrap(),
        ],
    );
    let stdout = stdout_of(&output);
    assert_eq!(output.status.code(), Some(2), "{stdout}");
    assert_eq!(stdout.matches("is outside the").count(), 2, "{stdout}");
    let secrets = fixture.dir.join("secrets");
    let secrets = secrets.to_str().unwrap();
    let output = check_with(
        &config,
        &[
            "--secrets-dir",
            secrets,
            "--secrets-env-prefix",
            "EXTDATA_CLI_GRANTED_",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stdout_of(&output));
    assert!(!stdout_of(&output).contains(SENTINEL));
}

#[test]
fn the_secrets_section_of_the_file_grants_too() {
    let fixture = fixture();
    let config = secret_config(
        &fixture,
        "[secrets]\ndirs = [\"secrets\"]\nenv_prefixes = [\"EXTDATA_CLI_GRANTED_\"]\n",
    );
    let output = check_with(&config, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout_of(&output));
}

#[test]
fn dev_zero_as_a_secret_is_refused_at_once() {
    let fixture = fixture();
    let config = fixture.write(
        "zero.toml",
        "[[connectors]]\nname = \"z\"\ntype = \"postgresql\"\nhost = \"127.0.0.1\"\n\
         password = { file = \"/dev/zero\" }\n",
    );
    let started = Instant::now();
    let output = check_with(&config, &["--secrets-dir", "/dev"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stdout_of(&output).contains("z: password: `/dev/zero` is not a regular file"),
        "{}",
        stdout_of(&output)
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

// ---------------------------------------------------------------- hostile values

/// Clears the screen, retitles the window, returns to the line start and reverses
/// what follows.
const HOSTILE: &str = "ok\x1b[2J\x1b]0;pwned\x07\rfake\u{202e}gnp.exe";

#[test]
fn a_hostile_value_reaches_a_table_escaped_and_csv_exact() {
    let fixture = fixture();
    let param = format!("v={HOSTILE}");
    let output = fixture
        .cmd()
        .args(["query", "local", "SELECT :v AS v", "--param", &param])
        .output()
        .unwrap();
    let stdout = stdout_of(&output);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        stderr_of(&output)
    );
    for raw in ['\x1b', '\x07', '\r', '\u{202e}'] {
        assert!(
            !stdout.contains(raw),
            "{raw:?} reached the terminal:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("ok\\x1b[2J\\x1b]0;pwned\\x07\\rfake\\u{202e}gnp.exe"),
        "{stdout}"
    );
    let output = fixture
        .cmd()
        .args([
            "query",
            "local",
            "SELECT :v AS v",
            "--param",
            &param,
            "--format",
            "csv",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let mut reader = csv::Reader::from_reader(output.stdout.as_slice());
    assert_eq!(&reader.records().next().unwrap().unwrap()[0], HOSTILE);
}

#[test]
fn a_huge_decimal_exponent_is_a_usage_error_at_once() {
    let fixture = fixture();
    let started = Instant::now();
    let output = fixture
        .cmd()
        .args([
            "query",
            "local",
            "SELECT :x AS x",
            "--param",
            "x:decimal=1e-4000000000",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("parameter `x`: decimal has more than 1000 digits after the decimal point"),
        "{stderr}"
    );
    // (clap's usage line repeats the argument as typed; the parser's own words do not.)
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// `check` of a config file holding `text`.
fn check_text(text: &str) -> assert_cmd::assert::Assert {
    check(&fixture().write("check.toml", text))
}

#[test]
fn check_accepts_a_valid_file() {
    let fixture = fixture();
    check(&fixture.config)
        .code(0)
        .stdout(predicate::str::contains("3 connectors, 2 accounts"));
}

#[test]
fn check_prints_warnings_without_failing() {
    check_text(
        "[[connectors]]\nname = \"w\"\ntype = \"sqlite\"\ndatabase = \":memory:\"\nusername = \"nobody\"\n",
    )
    .code(0)
        .stdout(predicate::str::contains("warning: w: username: "))
        .stdout(predicate::str::contains("ok: "));
}

#[test]
fn check_refuses_unknown_section_and_missing_file() {
    check_text("[[connector]]\nname = \"x\"\ntype = \"sqlite\"\ndatabase = \":memory:\"\n")
        .code(2)
        .stdout(predicate::str::contains(
            "config: connector: unknown section",
        ));
    check(&fixture().dir.join("absent.toml"))
        .code(2)
        .stdout(predicate::str::contains("cannot read"));
}

#[test]
fn config_comes_from_the_environment() {
    let fixture = fixture();
    Command::new(BIN)
        .env("EXTDATA_CONFIG", &fixture.config)
        .arg("check")
        .assert()
        .code(0)
        .stdout(predicate::str::contains("ok:"));
}

#[test]
fn invalid_config_stops_other_commands_with_exit_2() {
    let fixture = fixture();
    let bad = fixture.write(
        "bad.toml",
        "[[connectors]]\nname = \"local\"\ntype = \"sqlite\"\ndatabase = \":memory:\"\nport = 0\n",
    );
    extdata(&bad)
        .args(["query", "local", "SELECT 1"])
        .assert()
        .code(2)
        .stderr(predicate::str::starts_with("error: "))
        .stderr(predicate::str::contains("local: port"));
}

// ---------------------------------------------------------------------------- query

/// Typed parameters echoed back, so that every format shows the same exact values.
const ECHO_SQL: &str = "SELECT 9223372036854775807 AS max_i64, -9223372036854775807 - 1 AS min_i64, \
     :d AS amount, NULL AS no_value, x'00ff10' AS raw, :day AS day, :n AS n, :flag AS flag, \
     :blob AS blob";

/// Runs [`ECHO_SQL`] on `local` with `flags` and its typed parameters; returns what it
/// printed.
fn echo(fixture: &Fixture, flags: &[&str]) -> String {
    let mut args = vec!["query", "local", ECHO_SQL];
    args.extend(flags);
    args.extend([
        "--param",
        "d:decimal=12345678901234567890.000000000000000001",
        "--param",
        "day:date=2024-02-29",
        "--param",
        "n:int=-42",
        "--param",
        "flag:bool=true",
        "--param",
        "blob:bytes=AP8Q",
    ]);
    stdout_of(&fixture.ok(&args))
}

#[test]
fn query_jsonl_prints_exact_values() {
    let fixture = fixture();
    let stdout = echo(&fixture, &["--format", "jsonl"]);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    // Extremes in full, as numbers; decimals with every digit; NULL; base64; dates.
    assert_contains_all(
        &stdout,
        &[
            "\"max_i64\":9223372036854775807",
            "\"min_i64\":-9223372036854775808",
            "\"amount\":\"12345678901234567890.000000000000000001\"",
            "\"no_value\":null",
            "\"raw\":\"AP8Q\"",
            "\"day\":\"2024-02-29\"",
            "\"blob\":\"AP8Q\"",
        ],
    );
    let row: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(row["max_i64"].as_i64(), Some(i64::MAX));
    assert_eq!(row["min_i64"].as_i64(), Some(i64::MIN));
    assert_eq!(row["n"].as_i64(), Some(-42));
    // Columns keep their order.
    let keys: Vec<&str> = row
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let max_at = stdout.find("max_i64").unwrap();
    let blob_at = stdout.find("\"blob\"").unwrap();
    assert!(max_at < blob_at, "{keys:?}");
}

#[test]
fn query_json_prints_one_array_of_objects() {
    let fixture = fixture();
    let sql = "SELECT id, email, city FROM customers ORDER BY id";
    let output = fixture.ok(&["query", "local", sql, "--format", "json"]);
    let rows: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        rows,
        serde_json::json!([
            {"id": 1, "email": "ann@example.com", "city": "Oslo"},
            {"id": 2, "email": "bob@example.com", "city": null},
            {"id": 3, "email": "cy@example.com", "city": "Lyon"},
        ])
    );
}

#[test]
fn query_csv_and_table_render_text() {
    let fixture = fixture();
    fixture
        .cmd()
        .args([
            "query",
            "local",
            "SELECT id, city, photo FROM customers ORDER BY id",
            "--format",
            "csv",
        ])
        .assert()
        .code(0)
        .stdout("id,city,photo\n1,Oslo,AP8Q\n2,,AP8Q\n3,Lyon,AP8Q\n");
    let stdout = echo(&fixture, &[]);
    assert_contains_all(
        &stdout,
        &[
            "max_i64",
            "9223372036854775807",
            "-9223372036854775808",
            "12345678901234567890.000000000000000001",
            "2024-02-29",
            "AP8Q",
            "(1 row)",
        ],
    );
}

#[test]
fn hostile_parameter_is_bound_not_spliced() {
    let fixture = fixture();
    let hostile = "x'); DROP TABLE customers; --";
    // Bound in a WHERE clause it matches nothing; echoed back it is the very text given,
    // and the table is still there.
    for (sql, name, expected) in [
        (
            "SELECT count(*) AS n FROM customers WHERE email = :email OR city = :email",
            "email",
            "{\"n\":0}\n".to_owned(),
        ),
        (
            "SELECT :v AS v, (SELECT count(*) FROM customers) AS n",
            "v",
            format!("{{\"v\":{},\"n\":3}}\n", serde_json::json!(hostile)),
        ),
    ] {
        let param = format!("{name}={hostile}");
        let output = fixture.ok(&["query", "local", sql, "-f", "jsonl", "-p", &param]);
        assert_eq!(stdout_of(&output), expected, "{sql}");
    }
}

#[test]
fn bad_parameters_are_usage_errors_naming_the_parameter() {
    let fixture = fixture();
    // The arguments after `query local`, and what the error names. The last: a
    // placeholder without a value is caught before the query runs.
    for (args, expected) in [
        (
            &["SELECT :age", "--param", "age:int=abc"][..],
            &["age", "not an integer"][..],
        ),
        (
            &["SELECT :a", "--param", "a:uint=1"],
            &["unknown type `uint`"],
        ),
        (
            &["SELECT :a", "-p", "a=1", "-p", "a=2"],
            &["error: parameter `a` is given more than once"],
        ),
        (&["SELECT :missing"], &["missing"]),
    ] {
        let output = fixture
            .cmd()
            .args(["query", "local"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert_contains_all(&stderr_of(&output), expected);
    }
}

#[test]
fn unknown_connector_is_a_usage_error_and_sql_error_a_runtime_one() {
    let fixture = fixture();
    for (args, code, stderr) in [
        (
            ["query", "nope", "SELECT 1"],
            2,
            predicate::str::contains("no connector named `nope`")
                .and(predicate::str::contains("local"))
                .boxed(),
        ),
        (
            ["query", "local", "SELECT * FROM no_such_table"],
            1,
            predicate::str::starts_with("error: ")
                .and(predicate::str::contains("no_such_table"))
                .boxed(),
        ),
    ] {
        fixture.cmd().args(args).assert().code(code).stderr(stderr);
    }
}

#[test]
fn max_rows_cuts_and_says_so() {
    let fixture = fixture();
    for format in ["table", "json", "csv", "jsonl"] {
        let output = fixture.ok(&[
            "query",
            "local",
            "SELECT id FROM customers ORDER BY id",
            "--max-rows",
            "2",
            "--format",
            format,
        ]);
        let stdout = stdout_of(&output);
        assert!(
            stdout.contains('2') && !stdout.contains('3'),
            "{format}: {stdout}"
        );
        assert!(
            stderr_of(&output).contains("cut at 2 rows"),
            "{format}: {}",
            stderr_of(&output)
        );
    }
    // Exactly as many rows as allowed is not a cut result.
    fixture
        .cmd()
        .args([
            "query",
            "local",
            "SELECT id FROM customers",
            "--max-rows",
            "3",
            "-f",
            "csv",
        ])
        .assert()
        .code(0)
        .stderr("");
}

#[test]
fn query_timeout_stops_a_runaway_query() {
    let fixture = fixture();
    let started = Instant::now();
    fixture
        .cmd()
        .args([
            "query",
            "local",
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
            "--timeout",
            "1s",
        ])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("timed out"));
    assert_elapsed_below(started, Duration::from_secs(10), "the timed-out query");
}

/// Starts `query local <sql> --format <format>` with its output piped.
fn spawn_query(fixture: &Fixture, sql: &str, format: &str) -> Child {
    StdCommand::new(BIN)
        .env_remove("EXTDATA_CONFIG")
        .env_remove("EXTDATA_LOG")
        .arg("--config")
        .arg(&fixture.config)
        .args(["query", "local", sql, "--format", format])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Counts from 1 for ever: a query that runs until it is stopped.
const ENDLESS: &str =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c";

/// Starts [`ENDLESS`] in `format`; asserts that its first line is `first` and returns
/// the child and its output, read up to there.
fn start_endless(fixture: &Fixture, format: &str, first: &str) -> (Child, BufReader<ChildStdout>) {
    let mut child = spawn_query(fixture, ENDLESS, format);
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, first, "{format}");
    (child, reader)
}

/// Runs a streaming query and counts the lines of its output as they come.
fn count_streamed_lines(fixture: &Fixture, format: &str) -> (u64, String) {
    let mut child = spawn_query(
        fixture,
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000) \
         SELECT x, 'row ' || x AS label FROM c",
        format,
    );
    let mut lines = 0;
    let mut last = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        last = line.unwrap();
        lines += 1;
    }
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    (lines, last)
}

#[test]
fn csv_streams_a_million_rows() {
    let fixture = fixture();
    let (lines, last) = count_streamed_lines(&fixture, "csv");
    assert_eq!(lines, 1_000_001);
    assert_eq!(last, "1000000,row 1000000");
}

#[test]
fn jsonl_streams_a_million_rows() {
    let fixture = fixture();
    let (lines, last) = count_streamed_lines(&fixture, "jsonl");
    assert_eq!(lines, 1_000_000);
    assert_eq!(last, r#"{"x":1000000,"label":"row 1000000"}"#);
}

#[test]
fn a_closed_reader_stops_the_stream_quietly() {
    let fixture = fixture();
    let (child, reader) = start_endless(&fixture, "csv", "x\n");
    drop(reader);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
}

#[test]
fn ctrl_c_stops_a_running_query_with_exit_130() {
    let fixture = fixture();
    // Rows are flowing: the query is running.
    let (child, mut reader) = start_endless(&fixture, "jsonl", "{\"x\":1}\n");
    let interrupted = Instant::now();
    let status = StdCommand::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Keep reading so that a full pipe cannot hold the command up.
    let drained = std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    let output = child.wait_with_output().unwrap();
    let _ = drained.join();
    assert_eq!(output.status.code(), Some(130), "{}", stderr_of(&output));
    assert!(stderr_of(&output).contains("error: interrupted"));
    assert!(
        interrupted.elapsed() < Duration::from_secs(5),
        "{:?}",
        interrupted.elapsed()
    );
}

// ---------------------------------------------------------------------------- describe

#[test]
fn describe_lists_columns_without_rows() {
    let fixture = fixture();
    let output = fixture.ok(&[
        "describe",
        "local",
        "SELECT id, email, photo FROM customers WHERE id = :id",
    ]);
    let stdout = stdout_of(&output);
    assert_contains_all(
        &stdout,
        &[
            "name",
            "database type",
            "value type",
            "nullable",
            "email",
            "photo",
            "(3 columns)",
        ],
    );
    assert!(!stdout.contains("ann@example.com"), "{stdout}");

    let output = fixture.ok(&[
        "describe",
        "local",
        "SELECT id, email FROM customers",
        "--format",
        "json",
    ]);
    let columns: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let columns = columns.as_array().unwrap();
    assert_eq!(columns.len(), 2);
    assert_eq!(columns[0]["name"], "id");
    assert_eq!(columns[0]["value_type"], "i64");
    assert_eq!(columns[1]["name"], "email");
    assert_eq!(columns[1]["value_type"], "text");
    for column in columns {
        let keys: Vec<&String> = column.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 4, "{column}");
    }
}

// ---------------------------------------------------------------------------- accounts

#[test]
fn account_reaches_only_its_connectors() {
    let fixture = fixture();
    fixture
        .cmd()
        .args([
            "--account",
            "42",
            "query",
            "local",
            "SELECT count(*) AS n FROM customers",
            "-f",
            "jsonl",
        ])
        .assert()
        .code(0)
        .stdout("{\"n\":3}\n");
    for args in [
        &["--account", "42", "query", "other", "SELECT 1"][..],
        &["--account", "42", "describe", "other", "SELECT 1"][..],
        &["--account", "42", "ping", "other"][..],
        &["--account", "nobody", "query", "local", "SELECT 1"][..],
    ] {
        fixture
            .cmd()
            .args(args)
            .assert()
            .code(1)
            .stdout("")
            .stderr(predicate::str::contains("is not assigned to account"));
    }
}

// ---------------------------------------------------------------------------- ping

#[test]
fn ping_prints_version_and_time() {
    let fixture = fixture();
    let output = fixture.ok(&["ping", "local"]);
    let stdout = stdout_of(&output);
    let version = stdout
        .lines()
        .find_map(|l| l.strip_prefix("server version: "))
        .unwrap_or_else(|| panic!("no version in\n{stdout}"));
    assert!(
        version.chars().next().is_some_and(|c| c.is_ascii_digit()),
        "{version}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("time: ") && l.ends_with(" ms")),
        "{stdout}"
    );
}

#[test]
fn ping_of_a_misspelt_sqlite_path_fails_and_creates_no_file() {
    let folder = Folder::new(
        "[[connectors]]\nname = \"local\"\ntype = \"sqlite\"\ndatabase = \"crm.bd\"\n\n\
         [[connectors]]\nname = \"scratch\"\ntype = \"sqlite\"\ndatabase = \"scratch.db\"\n\
         options = \"mode=rwc\"\n",
    );
    let output = folder.cmd().args(["ping", "local"]).output().unwrap();
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let typo = folder.dir.join("crm.bd");
    assert_contains_all(
        &stderr,
        &[
            "(stage: database)",
            "connector `local`",
            "no such database file",
            &format!("`{}`", typo.display()),
            "field `database`",
            "mode=rwc",
        ],
    );
    assert!(!typo.exists(), "ping created {}", typo.display());
    // The connector that asks to create its file does.
    folder.cmd().args(["ping", "scratch"]).assert().success();
    assert!(folder.dir.join("scratch.db").exists());
}

#[test]
fn ping_failure_names_the_stage_and_never_the_password() {
    let fixture = fixture();
    for verbosity in [None, Some("-v"), Some("-vv")] {
        let mut cmd = fixture.cmd();
        if let Some(flag) = verbosity {
            cmd.arg(flag);
        }
        let output = cmd
            .args(["--account", "42", "ping", "pg"])
            .output()
            .unwrap();
        let (stdout, stderr) = (stdout_of(&output), stderr_of(&output));
        assert_eq!(output.status.code(), Some(1), "{verbosity:?}: {stderr}");
        assert!(stderr.contains("error: ping failed"), "{stderr}");
        assert!(
            stderr.contains("(stage: connect)"),
            "{verbosity:?}: {stderr}"
        );
        assert!(
            !stdout.contains(SENTINEL) && !stderr.contains(SENTINEL),
            "{verbosity:?}: password leaked:\n{stdout}\n{stderr}"
        );
        if verbosity.is_some() {
            // The logs were on: the failed call was logged, still without the secret.
            assert!(
                stderr.contains("extdata call failed"),
                "{verbosity:?}: {stderr}"
            );
        }
    }
}

#[test]
fn verbose_logs_calls_without_parameter_values() {
    let fixture = fixture();
    let output = fixture
        .cmd()
        .args([
            "-v",
            "query",
            "local",
            "SELECT count(*) AS n FROM customers WHERE email = :email",
            "-f",
            "jsonl",
            "-p",
        ])
        .arg(format!("email={SENTINEL}"))
        .output()
        .unwrap();
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("extdata call finished") && stderr.contains("operation=\"stream\""),
        "no log line for the call in {stderr:?}"
    );
    assert!(
        !stderr.contains(SENTINEL),
        "parameter value logged:\n{stderr}"
    );
}

// ---------------------------------------------------------------------------- servers

/// A config file for the local server of `kind` from the `EXTDATA_TEST_<KIND>_*`
/// settings, with a second connector `<kind>_bad` whose password is the sentinel.
fn server_config(fixture: &Fixture, kind: &str, prefix: &str, db_type: &str) -> Option<PathBuf> {
    let common = format!(
        "{}connect_timeout = \"5s\"\n",
        server_toml(prefix, kind, db_type)?
    );
    Some(fixture.write(
        &format!("{kind}.toml"),
        &format!(
            "[secrets]\nenv_prefixes = [\"EXTDATA_TEST_\"]\n\n\
             [[connectors]]\nname = \"{kind}\"\n{common}password = {{ env = \"EXTDATA_TEST_{prefix}_PASSWORD\" }}\n\n\
             [[connectors]]\nname = \"{kind}_bad\"\n{common}password = \"{SENTINEL}\"\n"
        ),
    ))
}

#[test]
fn mysql_u64_and_i64_extremes_print_in_full() {
    let fixture = fixture();
    let Some(config) = server_config(&fixture, "mysql", "MYSQL", "mysql") else {
        return;
    };
    for format in ["jsonl", "json"] {
        let output = extdata(&config)
            .args([
                "query",
                "mysql",
                "SELECT CAST(18446744073709551615 AS UNSIGNED) AS u, \
                 CAST(-9223372036854775808 AS SIGNED) AS i, \
                 CAST(:d AS DECIMAL(40,20)) AS d",
                "-p",
                "d:decimal=12345678901234567890.00000000000000000001",
                "-f",
                format,
            ])
            .output()
            .unwrap();
        let stdout = stdout_of(&output);
        assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
        assert!(
            stdout.contains(
                r#"{"u":18446744073709551615,"i":-9223372036854775808,"d":"12345678901234567890.00000000000000000001"}"#
            ),
            "{format}: {stdout}"
        );
    }
}

#[test]
fn postgres_ping_reports_version_and_wrong_password_is_the_authentication_stage() {
    let fixture = fixture();
    let Some(config) = server_config(&fixture, "postgres", "POSTGRES", "postgresql") else {
        return;
    };
    let output = extdata(&config)
        .args(["ping", "postgres"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert!(
        stdout_of(&output).contains("server version: 1"),
        "{}",
        stdout_of(&output)
    );

    let output = extdata(&config)
        .args(["-v", "ping", "postgres_bad"])
        .output()
        .unwrap();
    let (stdout, stderr) = (stdout_of(&output), stderr_of(&output));
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("(stage: authentication)"), "{stderr}");
    assert!(stderr.contains("extdata call failed"), "{stderr}");
    assert!(
        !stdout.contains(SENTINEL) && !stderr.contains(SENTINEL),
        "password leaked:\n{stdout}\n{stderr}"
    );
}
