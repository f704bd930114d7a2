//! What a platform scrapes and collects from `extdata`: the Prometheus endpoint of
//! `extdata run --metrics-addr` and JSON log lines (`--log-format json`), run as the
//! real binary against a SQLite connector.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::{Folder, command, ticking_folder};

/// A subscriber's e-mail address: personal data that must never reach a log line.
const SECRET_VALUE: &str = "private.subscriber.4711@example.org";

/// A folder with `crm.db` (an empty SQLite database) and `extdata.toml`: connector
/// `crm`, account `42` and an import `ticks` due every second.
fn folder() -> Folder {
    ticking_folder("SELECT 1 AS id UNION ALL SELECT 2")
}

/// A loopback port nothing listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The body of `GET /metrics`, or `None` while nothing answers.
fn scrape(port: u16) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
}

/// Kills the child when the test ends, whatever happened.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `extdata <flags> run --metrics-addr 127.0.0.1:<a free port>` on `folder`'s
/// config, its log written to `run.log` in the folder: the runner (killed when dropped),
/// the port and the log's path.
fn run_with_metrics(folder: &Folder, flags: &[&str]) -> (Running, u16, PathBuf) {
    let port = free_port();
    let log = folder.dir.join("run.log");
    let child = command(&folder.config)
        .args(flags)
        .args(["run", "--metrics-addr"])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
        .spawn()
        .unwrap();
    (Running(child), port, log)
}

/// The first body `GET /metrics` on `port` answers for which `done` holds, scraped every
/// 200 ms; fails, with the last scrape and the runner's `log`, when there is no `what`
/// within `within`.
fn scrape_until(
    port: u16,
    log: &Path,
    within: Duration,
    what: &str,
    done: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + within;
    loop {
        if let Some(body) = scrape(port)
            && done(&body)
        {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "no {what} in the metrics after {within:?}; last scrape: {:?}; stderr: {}",
            scrape(port),
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The sample lines of `metric` (`name{labels} value`).
fn samples<'a>(body: &'a str, metric: &str) -> Vec<&'a str> {
    body.lines()
        .filter(|line| line.starts_with(&format!("{metric}{{")))
        .collect()
}

#[test]
fn run_serves_prometheus_metrics_labelled_with_the_account() {
    let folder = folder();
    let (_running, port, log) = run_with_metrics(&folder, &["--account", "42"]);

    // Two runs of `ticks` (each reads its 2 rows) show up as labelled series.
    let body = scrape_until(port, &log, Duration::from_secs(20), "two runs", |body| {
        let runs: f64 = samples(body, "extdata_rows_total")
            .iter()
            .filter(|l| l.contains(r#"operation="stream""#))
            .map(|l| value(l))
            .sum();
        runs >= 4.0
    });
    let calls = samples(&body, "extdata_calls_total");
    assert!(!calls.is_empty(), "{body}");
    for line in calls
        .iter()
        .chain(&samples(&body, "extdata_rows_total"))
        .chain(&samples(&body, "extdata_call_duration_seconds"))
    {
        for label in [r#"account="42""#, r#"connector="crm""#, r#"type="sqlite""#] {
            assert!(line.contains(label), "{label} missing in `{line}`");
        }
    }
    assert!(
        calls
            .iter()
            .any(|l| l.contains(r#"operation="stream""#) && l.contains(r#"outcome="ok""#)),
        "{body}"
    );
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(
        said.contains(&format!("http://127.0.0.1:{port}/metrics")),
        "{said}"
    );
}

/// Accounts 42 (`crm`) and 7 (`other`) each with an import `ticks` due every second:
/// the same name, each account's own query (2 rows for 42, 3 for 7).
fn two_accounts_folder() -> Folder {
    let mut config = String::from(extdata_conformance::support::SQLITE_ACCOUNTS);
    for (account, connector, query) in [
        ("42", "crm", "SELECT 1 AS id UNION ALL SELECT 2"),
        (
            "7",
            "other",
            "SELECT 1 AS id UNION ALL SELECT 2 UNION ALL SELECT 3",
        ),
    ] {
        config += &extdata_conformance::support::config_entry(
            "imports",
            "ticks",
            (account, connector),
            query,
            &format!(
                "key = \"id\"\nschedule = {{ cron = \"* * * * * *\", timezone = \"UTC\" }}\n\
                 sink = {{ type = \"jsonl\", path = \"ticks-{account}.jsonl\" }}"
            ),
        );
    }
    let folder = Folder::new(&config);
    folder.write("crm.db", "");
    folder.write("other.db", "");
    folder
}

/// The value of a sample line (`name{labels} value`).
fn value(line: &str) -> f64 {
    line.rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn one_worker_labels_each_call_with_the_account_of_its_import() {
    let folder = two_accounts_folder();
    let (running, port, log) = run_with_metrics(&folder, &["-v", "--log-format", "json"]);

    // Both imports ran twice: 42's rows (2 a run) and 7's (3 a run) in series of their own.
    let rows = |body: &str, account: &str, connector: &str| -> f64 {
        samples(body, "extdata_rows_total")
            .iter()
            .filter(|l| l.contains(r#"operation="stream""#))
            .filter(|l| l.contains(&format!(r#"account="{account}""#)))
            .filter(|l| l.contains(&format!(r#"connector="{connector}""#)))
            .map(|l| value(l))
            .sum()
    };
    let body = scrape_until(
        port,
        &log,
        Duration::from_secs(30),
        "two runs of each account",
        |body| rows(body, "42", "crm") >= 4.0 && rows(body, "7", "other") >= 6.0,
    );
    drop(running);
    // Every series names its account, and each account only its own connector.
    for metric in [
        "extdata_calls_total",
        "extdata_rows_total",
        "extdata_call_duration_seconds",
    ] {
        let lines = samples(&body, metric);
        assert!(!lines.is_empty(), "{metric}: {body}");
        for line in lines {
            assert!(
                (line.contains(r#"account="42""#) && line.contains(r#"connector="crm""#))
                    || (line.contains(r#"account="7""#) && line.contains(r#"connector="other""#)),
                "{line}"
            );
        }
    }
    // 7's runs read 3 rows each, 42's 2: counted apart, not mixed.
    assert_eq!(rows(&body, "7", "other") % 3.0, 0.0, "{body}");
    assert_eq!(rows(&body, "42", "crm") % 2.0, 0.0, "{body}");

    // The JSON logs carry the account on the import's span and on each call's span.
    let said = std::fs::read_to_string(&log).unwrap();
    let events: Vec<serde_json::Value> = said
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    for (account, connector) in [("42", "crm"), ("7", "other")] {
        let call = events.iter().find(|e| {
            e["fields"]["message"] == "extdata call finished" && e["span"]["connector"] == connector
        });
        let call = call.unwrap_or_else(|| panic!("no call of {connector} in {said}"));
        assert_eq!(call["span"]["account"], account, "{call}");
        let spans = call["spans"].as_array().unwrap_or_else(|| panic!("{call}"));
        assert!(
            spans.iter().any(|s| s["name"] == "extdata.import"
                && s["account"] == account
                && s["import"] == "ticks"),
            "{call}"
        );
    }
}

#[test]
fn a_taken_metrics_port_fails_before_anything_runs() {
    let folder = folder();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let output = command(&folder.config)
        .args(["run", "--metrics-addr"])
        .arg(format!("127.0.0.1:{port}"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("--metrics-addr 127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(!stderr.contains("started"), "{stderr}");
    assert!(!folder.dir.join("ticks.jsonl").exists());
}

#[test]
fn json_logs_are_one_object_per_line_and_hold_no_parameter_value() {
    let folder = folder();
    let output = command(&folder.config)
        .args(["-v", "--log-format", "json", "query", "crm"])
        .arg("SELECT :email AS email, length(:email) AS n")
        .args(["--format", "json", "--param"])
        .arg(format!("email={SECRET_VALUE}"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    // The value is the query's result, on stdout, and nowhere in the logs.
    assert!(stdout.contains(SECRET_VALUE), "{stdout}");
    assert!(!stderr.contains(SECRET_VALUE), "{stderr}");

    let events: Vec<serde_json::Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let finished = events
        .iter()
        .find(|e| e["fields"]["message"] == "extdata call finished")
        .unwrap_or_else(|| panic!("no `extdata call finished` event in {stderr}"));
    assert!(finished["level"].is_string(), "{finished}");
    assert!(finished["timestamp"].is_string(), "{finished}");
    assert_eq!(finished["span"]["name"], "extdata.call", "{finished}");
    assert_eq!(finished["span"]["connector"], "crm", "{finished}");
    assert_eq!(finished["span"]["operation"], "query", "{finished}");

    // The default stays text: the same call without the flag writes no JSON.
    let text = command(&folder.config)
        .args(["-v", "query", "crm", "SELECT 1 AS one"])
        .output()
        .unwrap();
    let text_stderr = String::from_utf8_lossy(&text.stderr);
    assert!(
        text_stderr.contains("extdata call finished"),
        "{text_stderr}"
    );
    assert!(
        text_stderr
            .lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_err()),
        "{text_stderr}"
    );
}

#[test]
fn an_unknown_log_format_names_the_choices() {
    let folder = folder();
    let output = command(&folder.config)
        .args(["--log-format", "xml", "check"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("text") && stderr.contains("json"),
        "{stderr}"
    );
}
