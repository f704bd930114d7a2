//! An account reaches only its own connectors, imports, segments, segment syncs and
//! lookups — through the registry, the jobs API and every `extdata` command — and the
//! refusal is the same for someone else's entry and for one that does not exist.
//!
//! Builds on the facade's and the jobs crate's own tests (which run the jobs for
//! another account and get `Forbidden`); this file covers every entry point and the
//! command line. SQLite only: isolation is decided before any server is reached.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use extdata::{ErrorKind, Registry};
use extdata_conformance::support::{SQLITE_ACCOUNTS, config_entry};
use extdata_jobs::Jobs;
use support::{exit_and_output, extdata_binary};

/// Account 42's import, segment (with its sync) and lookup over `crm`. Account 7 owns
/// `other` and nothing else. (The connectors and accounts are [`SQLITE_ACCOUNTS`].)
fn jobs_config() -> String {
    let of_42 = ("42", "crm");
    [
        config_entry(
            "imports",
            "imp",
            of_42,
            "SELECT 1 AS id, 'a@x.io' AS email",
            "key = \"email\"\nsink = { type = \"jsonl\", path = \"imp.jsonl\" }",
        ),
        config_entry(
            "segments",
            "vip",
            of_42,
            "SELECT 'a@x.io' AS email",
            "key = \"email\"\ncache_ttl = \"1s\"",
        ),
        "[[segment_sync]]\nsegment = \"vip\"\non_add = \"SELECT :key\"\n".to_owned(),
        config_entry(
            "lookups",
            "last_order",
            of_42,
            "SELECT 1 AS id WHERE :email IS NOT NULL",
            "",
        ),
    ]
    .concat()
}

struct Fixture {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    config: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temporary folder");
    let path = dir.path().to_path_buf();
    let config = path.join("extdata.toml");
    // Connectors open existing files only; an empty file is an empty database.
    for name in ["crm.db", "other.db"] {
        std::fs::write(path.join(name), "").expect("write database");
    }
    std::fs::write(
        &config,
        format!(
            "state = \"{}\"\n{SQLITE_ACCOUNTS}{}",
            path.join("state.db").display(),
            jobs_config()
        ),
    )
    .expect("write config");
    Fixture {
        _dir: dir,
        dir: path,
        config,
    }
}

fn jobs(fixture: &Fixture) -> Jobs {
    // Relative paths resolve against the working directory of the process; the
    // command line resolves them against the file's folder.
    let text = std::fs::read_to_string(&fixture.config).expect("read");
    let text = text
        .replace("\"crm.db\"", &format!("{:?}", fixture.dir.join("crm.db")))
        .replace(
            "\"other.db\"",
            &format!("{:?}", fixture.dir.join("other.db")),
        )
        .replace(
            "\"imp.jsonl\"",
            &format!("{:?}", fixture.dir.join("imp.jsonl")),
        );
    let path = fixture.dir.join("absolute.toml");
    std::fs::write(&path, text).expect("write");
    Jobs::from_path(&path).unwrap_or_else(|p| panic!("valid file: {p}"))
}

#[test]
fn registry_answers_every_pair_by_assignment_only() {
    let fixture = fixture();
    let jobs = jobs(&fixture);
    let registry: &Arc<Registry> = jobs.registry();
    for account in ["42", "7", "nobody", ""] {
        for connector in ["crm", "other", "missing", ""] {
            let allowed = matches!((account, connector), ("42", "crm") | ("7", "other"));
            assert_eq!(registry.is_assigned(account, connector), allowed);
            match registry.source(account, connector) {
                Ok(_) => assert!(allowed, "{account} reached {connector}"),
                Err(error) => {
                    assert!(!allowed, "{account} refused {connector}: {error}");
                    assert_eq!(error.kind(), ErrorKind::Forbidden, "{error}");
                }
            }
        }
        let own: Vec<&str> = registry.connectors_of(account).collect();
        let expected: &[&str] = match account {
            "42" => &["crm"],
            "7" => &["other"],
            _ => &[],
        };
        assert_eq!(own, expected, "connectors of {account}");
    }
}

#[test]
fn jobs_entries_belong_to_their_account_and_unknown_names_get_the_same_answer() {
    let fixture = fixture();
    let jobs = jobs(&fixture);
    type Getter = fn(&Jobs, Option<&str>, &str) -> extdata::Result<()>;
    let getters: [(&str, &str, Getter); 4] = [
        ("import", "imp", |j, a, n| j.import(a, n).map(drop)),
        ("segment", "vip", |j, a, n| j.segment(a, n).map(drop)),
        ("segment sync", "vip", |j, a, n| {
            j.segment_sync(a, n).map(drop)
        }),
        ("lookup", "last_order", |j, a, n| j.lookup(a, n).map(drop)),
    ];
    for (what, name, get) in getters {
        get(&jobs, Some("42"), name).unwrap_or_else(|e| panic!("42's own {what}: {e}"));
        get(&jobs, None, name).unwrap_or_else(|e| panic!("administrator, {what}: {e}"));
        let theirs = get(&jobs, Some("7"), name).expect_err("someone else's entry");
        let missing = get(&jobs, Some("7"), "no_such_entry").expect_err("a missing entry");
        assert_eq!(theirs.kind(), ErrorKind::Forbidden, "{what}: {theirs}");
        assert_eq!(missing.kind(), ErrorKind::Forbidden, "{what}: {missing}");
        // The answers differ only by the name asked for: nothing reveals what exists.
        assert_eq!(
            theirs.to_string().replace(&format!("`{name}`"), "`NAME`"),
            missing.to_string().replace("`no_such_entry`", "`NAME`"),
            "{what}"
        );
    }
}

fn run(binary: &Path, fixture: &Fixture, args: &[&str]) -> (Option<i32>, String) {
    exit_and_output(
        std::process::Command::new(binary)
            .env_remove("EXTDATA_CONFIG")
            .env_remove("EXTDATA_LOG")
            .current_dir(&fixture.dir)
            .arg("--config")
            .arg(&fixture.config)
            .args(args),
    )
}

#[test]
fn every_command_refuses_another_accounts_entries() {
    let Some(binary) = extdata_binary() else {
        return;
    };
    let fixture = fixture();
    let template = fixture.dir.join("t.j2");
    std::fs::write(
        &template,
        "{{ lookup(\"last_order\", email=subscriber.email) }}",
    )
    .expect("write");
    let subscriber = fixture.dir.join("s.json");
    std::fs::write(&subscriber, r#"{"email": "a@x.io"}"#).expect("write");
    let (template, subscriber) = (
        template.to_string_lossy().into_owned(),
        subscriber.to_string_lossy().into_owned(),
    );
    let commands: Vec<Vec<&str>> = vec![
        vec!["query", "crm", "SELECT 1"],
        vec!["describe", "crm", "SELECT 1"],
        vec!["ping", "crm"],
        vec!["import", "imp", "--once"],
        vec!["history", "imp"],
        vec!["segment", "vip"],
        vec!["segment", "vip", "--sync"],
        vec!["render", &template, "--subscriber", &subscriber],
    ];
    // Account 7 is refused every command; the owner, 42, gets through on the same ones.
    for (account, refused) in [("7", true), ("42", false)] {
        for command in &commands {
            let mut args = vec!["--account", account];
            args.extend(command);
            let (code, text) = run(&binary, &fixture, &args);
            let what = format!("`{}` as account {account}", command.join(" "));
            assert_eq!(code, Some(if refused { 1 } else { 0 }), "{what}: {text}");
            if refused {
                assert!(
                    text.contains("not assigned") || text.contains("not available"),
                    "{what} does not say it is refused: {text}"
                );
            }
        }
    }
}
