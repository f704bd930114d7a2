//! What `check` reports about the jobs sections: cursor comparisons, cron expressions.

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
    assert!(warnings[0].starts_with("import `gt`: query: compares with `> :cursor`"));
    assert!(warnings[1].starts_with("import `lt`: query:"));
    assert!(warnings.iter().all(|w| w.contains("use `>= :cursor`")));
}
