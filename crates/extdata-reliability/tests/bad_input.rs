//! Hostile input without a server: whole configuration files through the facade's
//! registry (every backend's rules), and Hive's client-side literal escaper. Bounded
//! case counts in CI (`PROPTEST_CASES` raises them); `fuzz/` has the unbounded targets.

use extdata::{Dialect, Registry, Statement, Value};
use extdata_reliability::hostile_string;
use proptest::prelude::*;

/// proptest's defaults, which read `PROPTEST_CASES` (256 cases when it is not set).
fn cases() -> ProptestConfig {
    ProptestConfig {
        // Failures print their minimal input; no regression files in the source tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

const SECRET: &str = "reliability-sentinel-Pw-4242";

/// Fragments that are nearly right, plainly wrong, or hostile.
fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(vec![
            "\"\"", "\"crm\"", "\"postgresql\"", "\"mysql\"", "\"sqlite\"", "\"hive\"",
            "\"clickhouse\"", "\"mssql\"", "\"oracle\"", "\"nosuchdb\"", "\"127.0.0.1\"",
            "\":memory:\"", "\"5s\"", "\"-5s\"", "\"forever\"", "0", "-1", "70000", "5432",
            "true", "\"yes\"", "\"unix\"", "\"udp\"", "\"tcp\"", "1.5", "[]", "{}",
            "\"sslmode=require&application_name=x\"", "\"bogus=1\"", "\"a&&=b\"",
            "{ env = \"EXTDATA_SURELY_UNSET_VAR\" }", "{ file = \"/nonexistent/secret\" }",
            "{ enabled = true, verify = \"maybe\" }", "{ ca = \"not pem\" }",
            "{ max_size = 0, acquire_timeout = \"x\" }", "{ max_size = \"ten\" }",
            "[\"crm\", \"nope\"]", "42",
        ])
        .prop_map(str::to_owned),
        1 => any::<String>().prop_map(|s| format!("{s:?}")),
    ]
}

fn table(keys: Vec<&'static str>, count: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    proptest::collection::btree_map(proptest::sample::select(keys), scalar(), count).prop_map(
        |fields| {
            fields
                .iter()
                .map(|(k, v)| format!("{k} = {v}\n"))
                .collect::<String>()
        },
    )
}

fn document() -> impl Strategy<Value = String> {
    let connector = table(
        vec![
            "name",
            "type",
            "database",
            "host",
            "port",
            "protocol",
            "username",
            "connect_timeout",
            "query_timeout",
            "options",
            "read_only",
            "ssl",
            "pool",
            "hots",
        ],
        1..9,
    );
    let account = table(vec!["id", "connectors", "name"], 0..3);
    (
        proptest::collection::vec(connector, 0..4),
        proptest::collection::vec(account, 0..3),
        proptest::option::of(table(vec!["extra", "imports"], 1..2)),
    )
        .prop_map(|(connectors, accounts, extra)| {
            let mut text = extra.unwrap_or_default();
            for connector in connectors {
                text.push_str(&format!(
                    "[[connectors]]\npassword = \"{SECRET}\"\n{connector}\n"
                ));
            }
            for account in accounts {
                text.push_str(&format!("[[accounts]]\n{account}\n"));
            }
            text
        })
}

proptest! {
    #![proptest_config(cases())]

    /// Any file: the registry answers (a registry or problems), every problem names a
    /// field and says what is wrong, and the password appears in none of it.
    #[test]
    fn every_rejected_file_names_a_field_and_never_the_password(text in document()) {
        match Registry::from_toml_str(&text) {
            Ok(registry) => {
                let debug = format!("{registry:?}");
                prop_assert!(!debug.contains(SECRET));
                for connector in registry.connectors() {
                    let debug = format!("{connector:?}");
                    prop_assert!(!debug.contains(SECRET));
                }
            }
            Err(problems) => {
                prop_assert!(!problems.is_empty());
                for problem in problems.iter() {
                    prop_assert!(!problem.field.trim().is_empty(), "no field: {}", problem);
                    prop_assert!(!problem.message.trim().is_empty(), "no message: {}", problem);
                }
                let text = format!("{problems}\n{problems:?}");
                prop_assert!(!text.contains(SECRET), "{}", text);
            }
        }
    }

    /// Any text at all (TOML or JSON) is an answer, not a panic.
    #[test]
    fn any_text_is_an_answer(text in any::<String>()) {
        let _ = Registry::from_toml_str(&text);
        let _ = Registry::from_json_str(&text);
    }

    /// Hive has no binding: each value becomes a literal. Whatever the value, the
    /// literal ends where the escaper meant it to (the lexer sees the placeholder after
    /// it, and nothing of the value as a placeholder), and no `${` reaches the server's
    /// variable substitution.
    #[test]
    fn no_value_leaves_its_hive_literal(a in hostile_string(), b in hostile_string()) {
        let statement = Statement::new("SELECT :a AS a, ':x' AS b, :b AS c -- :y")
            .bind("a", a.clone())
            .bind("b", b.clone());
        let rendered = statement
            .render_inline(Dialect::Hive, extdata::hive::literal)
            .expect("text renders");
        prop_assert!(!rendered.contains("${"), "{}", rendered);
        let probe = format!("{rendered}\n, :after");
        let names = Statement::new(probe).placeholder_names(Dialect::Hive);
        prop_assert_eq!(names, vec!["after".to_owned()], "{}", rendered);
        prop_assert_eq!(
            extdata::hive::literal(&Value::Text(a.clone())).expect("text"),
            extdata::hive::string_literal(&a)
        );
    }
}
