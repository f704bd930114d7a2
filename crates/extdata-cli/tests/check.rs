//! `extdata check` reports every problem of the whole file in one run, with what was
//! probably meant: the jobs' problems too while the connectors and accounts have
//! problems of their own.

mod support;
use extdata_conformance::support::{CRM_ACCOUNT, config_entry};
use support::{Folder, assert_contains_all, command};

/// `extdata check` on `toml`: its exit code, and its stdout (the problems) followed by
/// its stderr (the count).
fn check(toml: &str) -> (Option<i32>, String) {
    let folder = Folder::new(toml);
    let output = command(&folder.config).arg("check").output().unwrap();
    (
        output.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

/// One misspelt or unknown name in every place a name is looked up, and a broken
/// connector: each is reported, in one run.
fn every_mistake() -> String {
    let [customers, invoices] =
        [("customers", "crmm"), ("invoices", "billing")].map(|(name, connector)| {
            config_entry(
                "imports",
                name,
                ("42", connector),
                "SELECT 1 AS id",
                &format!("key = \"id\"\nsink = {{ type = \"jsonl\", path = \"{name}.jsonl\" }}"),
            )
        });
    let buyers = config_entry(
        "segments",
        "buyers",
        ("42", "warehouse"),
        "SELECT 'a' AS email",
        "key = \"email\"",
    );
    format!(
        r#"
[[connectors]]
name = "crm"
type = "sqlite"
database = "crm.db"

[[connectors]]
name = "billing"
type = "postgresql"
host = "db.example.com"
port = 99999

[[accounts]]
id = "42"
connectors = ["crm", "biling"]
{customers}{invoices}{buyers}
[[segments]]
name = "broken"
account = "42"
connector = "crm"
key = "email"

[[segment_sync]]
name = "to-crm"
segment = "buyer"
on_add = "SELECT 1"

[[segment_sync]]
name = "from-broken"
segment = "broken"
on_add = "SELECT 1"

[[lookups]]
name = "customer"
account = "42"
connector = "crn"
query = "SELECT 1"

[[segmnts]]
name = "s"
"#
    )
}

#[test]
fn every_problem_of_the_file_in_one_run_with_what_was_meant() {
    let (code, said) = check(&every_mistake());
    assert_eq!(code, Some(2), "{said}");
    assert_contains_all(
        &said,
        &[
            "segmnts: unknown section; did you mean `segments`?",
            "billing: port:",
            "account 42: connectors: unknown connector `biling`; did you mean `billing`?",
            // The jobs are checked although the connectors and accounts have problems.
            "customers: connector: unknown connector `crmm`; did you mean `crm`?",
            "invoices: connector: connector `billing` is not assigned to account `42`",
            "buyers: connector: unknown connector `warehouse`",
            "broken: query: is missing",
            "to-crm: segment: unknown segment `buyer`; did you mean `buyers`?",
            "customer: connector: unknown connector `crn`; did you mean `crm`?",
        ],
    );
    // No suggestion that nothing is close to, and no "unknown" for a segment that is
    // declared but has problems of its own (those are reported on the segment).
    assert!(!said.contains("warehouse`; did you mean"), "{said}");
    assert!(!said.contains("unknown segment `broken`"), "{said}");
}

#[test]
fn a_valid_file_still_checks_clean() {
    let valid = format!(
        r#"{CRM_ACCOUNT}
[[segments]]
name = "buyers"
account = "42"
connector = "crm"
query = "SELECT 'a' AS email"
key = "email"

[[segment_sync]]
segment = "buyers"
on_add = "INSERT INTO vip (email) VALUES (:key)"
"#
    );
    let (code, said) = check(&valid);
    assert_eq!(code, Some(0), "{said}");
}
