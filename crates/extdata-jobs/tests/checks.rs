//! What `check` reports about the jobs sections: cursor comparisons, cron expressions,
//! the state store.

mod support;
use support::*;

fn import(name: &str, query: &str) -> String {
    format!(
        r#"
[[imports]]
name = "{name}"
account = "42"
connector = "crm"
query = "{query}"
key = "id"
cursor = {{ column = "created_at", initial = 0 }}
sink = {{ type = "jsonl", path = "{name}.jsonl" }}
"#
    )
}

#[test]
fn a_strict_cursor_comparison_is_named_with_its_fix() {
    let fixture = Fixture::new();
    let mut body = String::new();
    for (name, query) in [
        (
            "gt",
            "SELECT * FROM orders WHERE created_at > :cursor ORDER BY created_at",
        ),
        (
            "lt",
            "SELECT * FROM orders WHERE :cursor<created_at ORDER BY created_at",
        ),
        (
            "ge",
            "SELECT * FROM orders WHERE created_at >= :cursor ORDER BY created_at",
        ),
        (
            "le",
            "SELECT * FROM orders WHERE :cursor <= created_at ORDER BY created_at",
        ),
        (
            "ne",
            "SELECT * FROM orders WHERE created_at >= :cursor AND 0 <> :cursor ORDER BY created_at",
        ),
    ] {
        body.push_str(&import(name, query));
    }
    let config = fixture.jobs(&body);
    let warnings = config.config().warnings();
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    assert!(
        warnings[0].starts_with("import `gt` of account `42`: query: compares with `> :cursor`")
    );
    assert!(warnings[1].starts_with("import `lt` of account `42`: query:"));
    assert!(warnings.iter().all(|w| w.contains("use `>= :cursor`")));
}

#[test]
fn cron_problems_name_the_import_the_field_and_the_cron_field() {
    let fixture = Fixture::new();
    let mut body = String::new();
    for (name, cron) in [
        ("minute", "61 * * * *"),
        ("never", "0 0 30 2 *"),
        ("hourly", "0 * * * *"),
    ] {
        body.push_str(&import(
            name,
            "SELECT * FROM orders WHERE created_at >= :cursor ORDER BY created_at",
        ));
        body.push_str(&format!("schedule = {{ cron = \"{cron}\" }}\n"));
    }
    let config = fixture.dir.join("crons.toml");
    std::fs::write(&config, format!("{SQLITE_CONNECTORS}\n{body}")).unwrap();
    let problems = extdata_jobs::Jobs::from_path(&config)
        .unwrap_err()
        .to_string();
    assert!(
        problems.contains("minute: schedule.cron: minute: 61 is out of range 0–59"),
        "{problems}"
    );
    assert!(
        problems.contains(
            "never: schedule.cron: `0 0 30 2 *` never fires in the next 5 years: day of month 30 never comes in February"
        ),
        "{problems}"
    );
    assert!(!problems.contains("hourly"), "{problems}");
    assert!(!problems.contains("Number out of bounds"), "{problems}");
}

#[test]
fn state_sections_are_checked_and_never_print_the_url() {
    let fixture = Fixture::new();
    let problems = |state: &str| {
        let config = fixture.dir.join("state.toml");
        std::fs::write(&config, format!("{state}\n{SQLITE_CONNECTORS}")).unwrap();
        extdata_jobs::Jobs::from_path(&config)
            .map(|jobs| format!("{:?}", jobs.config().state))
            .unwrap_or_else(|p| p.to_string())
    };
    let text = problems("[state]\ntype = \"mongodb\"\n");
    assert!(
        text.contains("state.type: `mongodb` is not a state store type"),
        "{text}"
    );
    let text = problems("[state]\ntype = \"postgresql\"\n");
    assert!(text.contains("state.url: is missing"), "{text}");
    let text = problems(
        "[state]\ntype = \"postgresql\"\nurl = \"postgres://u:s3cret-state-pw@db/x\"\nlease = \"10ms\"\nttl = 1\n",
    );
    assert!(text.contains("state.lease: must be at least 1s"), "{text}");
    assert!(text.contains("state.ttl: unknown field"), "{text}");
    // A valid one: the URL is held, never printed.
    let text = problems(
        "[state]\ntype = \"postgresql\"\nurl = \"postgres://u:s3cret-state-pw@db/x\"\nschema = \"jobs\"\nlease = \"5s\"\n",
    );
    assert!(text.starts_with("Postgres"), "{text}");
    assert!(
        text.contains("5s") && !text.contains("s3cret-state-pw"),
        "{text}"
    );
    let text = problems("state = \"elsewhere.db\"\n");
    assert!(text.contains("elsewhere.db"), "{text}");
}
