//! Property tests of the parts that take untrusted text: the connector validator and
//! the `:name` statement lexer and renderers. They run in CI with a bounded number of
//! cases (`PROPTEST_CASES` raises it); the same inputs are fuzzed without bound by the
//! targets in `fuzz/` (see RELIABILITY.md).

use std::collections::BTreeMap;

use extdata_core::{
    BackendSpec, ConnectorConfig, DbKind, Dialect, OptionCheck, OptionSpec, Support, Value,
};
use proptest::prelude::*;

/// proptest's defaults, which read `PROPTEST_CASES` (256 cases when it is not set).
fn cases() -> ProptestConfig {
    ProptestConfig::default()
}

fn dialect() -> impl Strategy<Value = Dialect> {
    proptest::sample::select(DbKind::ALL.map(DbKind::dialect).to_vec())
}

/// Text made of the characters that matter to the lexer, and any character at all.
fn sql_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            4 => proptest::sample::select(vec![
                ":", "::", ":=", ":a", ":b1", ":_x", "'", "''", "\"", "`", "[", "]", "\\",
                "--", "#", "/*", "*/", "\n", "$", "$$", "$t$", "$1", "E'", "e", "?", " ",
                "a", "1", ",",
            ])
            .prop_map(str::to_owned),
            1 => any::<char>().prop_map(String::from),
        ],
        0..40,
    )
    .prop_map(|parts| parts.concat())
}

fn names(sql: &str, dialect: Dialect) -> Vec<String> {
    extdata_core::Statement::new(sql).placeholder_names(dialect)
}

// ------------------------------------------------------------------ statement lexer

proptest! {
    #![proptest_config(cases())]

    /// Any SQL, any dialect, any bindings: rendering returns (Ok or a `Parameter`
    /// error), never panics.
    #[test]
    fn rendering_never_panics(
        sql in sql_text(),
        dialect in dialect(),
        bound in proptest::collection::btree_map("[a-z_][a-z0-9_]{0,3}", any::<i64>(), 0..4),
    ) {
        let mut statement = extdata_core::Statement::new(sql);
        for (name, value) in &bound {
            statement.set(name.clone(), *value);
        }
        for result in [
            statement.render(dialect).map(|_| ()),
            statement.render_inline(dialect, |_| Ok("0".to_owned())).map(|_| ()),
        ] {
            if let Err(error) = result {
                prop_assert_eq!(error.kind(), extdata_core::ErrorKind::Parameter, "{}", error);
            }
        }
    }

    /// Putting each placeholder's own text back gives the SQL as written: the lexer
    /// loses and invents nothing.
    #[test]
    fn lexing_round_trips(sql in sql_text(), dialect in dialect()) {
        let mut statement = extdata_core::Statement::new(sql.clone());
        for name in names(&sql, dialect) {
            statement.set(name.clone(), Value::Text(format!(":{name}")));
        }
        let rendered = statement.render_inline(dialect, |value| {
            Ok(value.as_str().unwrap_or_default().to_owned())
        });
        // ClickHouse and Hive refuse what they cannot lex with certainty (ClickHouse: what
        // its server versions lex differently, nested `/*`, `$`; both: unterminated
        // pieces) rather than guess.
        if let Err(error) = &rendered
            && matches!(dialect, Dialect::ClickHouse | Dialect::Hive)
            && error.message().contains("with certainty")
        {
            return Ok(());
        }
        prop_assert_eq!(rendered.ok(), Some(sql));
    }

    /// Positional rendering: `?` dialects bind every occurrence, numbered dialects each
    /// name once; the placeholder count in the SQL matches the values.
    #[test]
    fn positional_rendering_matches_its_values(
        segments in proptest::collection::vec(segment(), 0..12),
        dialect in dialect(),
    ) {
        let segments: Vec<Segment> =
            segments.into_iter().map(|s| s.for_dialect(dialect)).collect();
        let sql = join(&segments, dialect);
        let occurrences: Vec<&str> = segments
            .iter()
            .filter_map(|s| match s {
                Segment::Param(name) => Some(name.as_str()),
                _ => None,
            })
            .collect();
        let mut statement = extdata_core::Statement::new(sql);
        for (i, name) in occurrences.iter().enumerate() {
            statement.set(*name, i as i64);
        }
        let rendered = statement.render(dialect).expect("every name is bound");
        let mut distinct: Vec<&str> = Vec::new();
        for name in &occurrences {
            if !distinct.contains(name) {
                distinct.push(name);
            }
        }
        let expected = match dialect {
            Dialect::MySql | Dialect::ClickHouse | Dialect::Hive => occurrences.len(),
            _ => distinct.len(),
        };
        prop_assert_eq!(rendered.params.len(), expected, "{}", rendered.sql);
    }

    /// Literals, quoted identifiers, comments and casts come out verbatim, whatever
    /// `:name`-like text they hold; only the real placeholders are replaced.
    #[test]
    fn no_placeholder_inside_a_literal_or_comment_is_replaced(
        segments in proptest::collection::vec(segment(), 0..12),
        dialect in dialect(),
    ) {
        let segments: Vec<Segment> =
            segments.into_iter().map(|s| s.for_dialect(dialect)).collect();
        let sql = join(&segments, dialect);
        let mut statement = extdata_core::Statement::new(sql.clone());
        let mut expected = Vec::new();
        for segment in &segments {
            match segment {
                Segment::Param(name) => {
                    statement.set(name.clone(), Value::Text(name.clone()));
                    expected.push(format!("<{name}>"));
                }
                other => expected.push(other.render(dialect)),
            }
        }
        let rendered = statement
            .render_inline(dialect, |value| Ok(format!("<{}>", value.as_str().unwrap_or_default())))
            .expect("every name is bound");
        prop_assert_eq!(rendered, expected.join(" "), "from {}", sql);
    }
}

/// One lexeme of a generated statement.
#[derive(Debug, Clone)]
enum Segment {
    Plain(String),
    Param(String),
    /// A `'…'` literal holding this text (escaped per dialect when joined).
    Literal(String),
    /// A `"…"` quoted identifier.
    DoubleQuoted(String),
    /// A backtick identifier (dialects that have them).
    Backtick(String),
    /// `-- …` to the end of the line.
    LineComment(String),
    /// `/* … */`.
    BlockComment(String),
    /// `::type`.
    Cast(String),
    /// PostgreSQL `$tag$…$tag$`.
    DollarQuoted(String),
}

/// Content that tries to look like placeholders, quotes and comment ends.
fn tricky() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            3 => proptest::sample::select(vec![
                ":a", ":zz", "::", "'", "\"", "`", "\\", "--", "/*", "*/", "#", "$", "$1",
                "?", "@P1", ":1", " ", "x", "\r", "é", "🦀",
            ])
            .prop_map(str::to_owned),
            1 => any::<char>().prop_map(String::from),
        ],
        0..10,
    )
    .prop_map(|parts| parts.concat())
}

fn segment() -> impl Strategy<Value = Segment> {
    prop_oneof![
        proptest::sample::select(vec!["SELECT", "1", ",", "=", "(", ")", "FROM t", "AS x"])
            .prop_map(|s| Segment::Plain(s.to_owned())),
        "[a-z_][a-z0-9_]{0,4}".prop_map(Segment::Param),
        tricky().prop_map(Segment::Literal),
        tricky().prop_map(Segment::DoubleQuoted),
        tricky().prop_map(Segment::Backtick),
        tricky().prop_map(Segment::LineComment),
        tricky().prop_map(Segment::BlockComment),
        "[a-z]{1,8}".prop_map(Segment::Cast),
        tricky().prop_map(Segment::DollarQuoted),
    ]
}

fn backslash_escapes(dialect: Dialect) -> bool {
    matches!(
        dialect,
        Dialect::MySql | Dialect::ClickHouse | Dialect::Hive
    )
}

/// `body` between `quote`s: the quote doubled, and backslashes doubled where they
/// escape.
fn quoted(body: &str, quote: char, backslash: bool) -> String {
    let mut out = String::from(quote);
    for c in body.chars() {
        if c == quote || (backslash && c == '\\') {
            out.push(c);
        }
        out.push(c);
    }
    out.push(quote);
    out
}

impl Segment {
    fn render(&self, dialect: Dialect) -> String {
        let backtick = matches!(
            dialect,
            Dialect::MySql | Dialect::ClickHouse | Dialect::Hive | Dialect::Sqlite
        );
        match self {
            Segment::Plain(text) => text.clone(),
            Segment::Param(name) => format!(":{name}"),
            Segment::Literal(body) => quoted(body, '\'', backslash_escapes(dialect)),
            Segment::DoubleQuoted(body) => quoted(body, '"', backslash_escapes(dialect)),
            // ClickHouse takes backslash escapes in backtick identifiers too.
            Segment::Backtick(body) if backtick => {
                quoted(body, '`', dialect == Dialect::ClickHouse)
            }
            Segment::Backtick(body) => quoted(body, '"', backslash_escapes(dialect)),
            // Spark continues a `--` comment after a backslash at the end of the line.
            Segment::LineComment(body) if dialect == Dialect::Hive => {
                format!("--{} \n", body.replace(['\n', '\r'], " "))
            }
            Segment::LineComment(body) => format!("--{}\n", body.replace(['\n', '\r'], " ")),
            Segment::BlockComment(body) => {
                let mut body = body.clone();
                let nested = matches!(
                    dialect,
                    Dialect::Postgres | Dialect::Hive | Dialect::ClickHouse
                );
                while body.contains("*/") || (nested && body.contains("/*")) {
                    // PostgreSQL and Spark block comments nest: no opener inside either
                    // (nor for ClickHouse, whose versions disagree on nesting).
                    body = body.replace("*/", "* /").replace("/*", "/ *");
                }
                // A trailing `*` or a leading `/` would join the delimiters.
                format!("/* {body} */")
            }
            Segment::Cast(name) => format!("x::{name}"),
            Segment::DollarQuoted(body) if dialect == Dialect::Postgres => {
                let mut body = body.clone();
                while body.contains("$q$") {
                    body = body.replace("$q$", "$ q$");
                }
                format!("$q$ {body} $q$")
            }
            Segment::DollarQuoted(body) => quoted(body, '\'', backslash_escapes(dialect)),
        }
    }
}

/// The segments separated by spaces (so no segment changes how its neighbour lexes,
/// e.g. a `E` before a PostgreSQL literal).
fn join(segments: &[Segment], dialect: Dialect) -> String {
    segments
        .iter()
        .map(|segment| segment.render(dialect))
        .collect::<Vec<_>>()
        .join(" ")
}

impl Segment {
    /// The segment without `${` for Hive: Spark substitutes variables before lexing, so
    /// a Hive statement holding one is refused rather than rendered.
    fn for_dialect(self, dialect: Dialect) -> Segment {
        if dialect != Dialect::Hive {
            return self;
        }
        let clean = |text: String| text.replace("${", "$ {");
        match self {
            Segment::Literal(t) => Segment::Literal(clean(t)),
            Segment::DoubleQuoted(t) => Segment::DoubleQuoted(clean(t)),
            Segment::Backtick(t) => Segment::Backtick(clean(t)),
            Segment::LineComment(t) => Segment::LineComment(clean(t)),
            Segment::BlockComment(t) => Segment::BlockComment(clean(t)),
            Segment::DollarQuoted(t) => Segment::DollarQuoted(clean(t)),
            other => other,
        }
    }
}

// ------------------------------------------------------------- config validation

fn spec() -> BackendSpec {
    const OPTIONS: &[OptionSpec] = &[
        OptionSpec::new("flag", OptionCheck::Bool, "a boolean"),
        OptionSpec::new("count", OptionCheck::UInt, "a number"),
        OptionSpec::new("wait", OptionCheck::Duration, "a duration"),
        OptionSpec::new("mode", OptionCheck::OneOf(&["a", "b"]), "a word"),
    ];
    BackendSpec {
        udp: Support::No("no UDP here"),
        options: OPTIONS,
        ..BackendSpec::server(DbKind::Postgres, 5432)
    }
}

/// A TOML value of any shape, biased towards the ones that look almost right.
fn toml_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        proptest::sample::select(vec![
            "\"\"",
            "\"5s\"",
            "\"-1s\"",
            "\"10 years\"",
            "\"0s\"",
            "0",
            "-1",
            "65536",
            "5432",
            "true",
            "\"tcp\"",
            "\"udp\"",
            "\"unix\"",
            "\"full\"",
            "\"none\"",
            "\"-----BEGIN CERTIFICATE-----\\nAAAA\\n-----END CERTIFICATE-----\"",
            "\"a=1&b\"",
            "\"flag=maybe&count=-2&wait=x&mode=c&zz=1\"",
            "1.5",
            "[]",
            "{}",
            "{ env = \"EXTDATA_SURELY_UNSET_X\" }",
            "{ file = \"/nonexistent/x\" }",
            "{ flag = \"yes\", count = 3 }",
        ])
        .prop_map(str::to_owned),
        tricky().prop_map(|s| format!("{:?}", s)),
        any::<i64>().prop_map(|n| n.to_string()),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        proptest::collection::btree_map(
            proptest::sample::select(vec![
                "enabled",
                "ca",
                "cert",
                "key",
                "verify",
                "max_size",
                "acquire_timeout",
                "idle_timeout",
                "ca_file",
                "bogus",
            ]),
            inner,
            0..4,
        )
        .prop_map(|table| {
            let fields: Vec<String> = table.iter().map(|(k, v)| format!("{k} = {v}")).collect();
            format!("{{ {} }}", fields.join(", "))
        })
    })
}

fn connector_fields() -> impl Strategy<Value = BTreeMap<&'static str, String>> {
    let name = prop_oneof![
        proptest::sample::select(vec!["\"crm\"", "\"\"", "\"a b\"", "\"x\\ty\""])
            .prop_map(str::to_owned),
        tricky().prop_map(|s| format!("{s:?}")),
    ];
    let kind = prop_oneof![
        4 => proptest::sample::select(vec![
            "\"postgresql\"", "\"mysql\"", "\"sqlite\"", "\"hive\"", "\"clickhouse\"",
            "\"mssql\"", "\"oracle\"",
        ])
        .prop_map(str::to_owned),
        1 => toml_value(),
    ];
    let others = proptest::collection::btree_map(
        proptest::sample::select(vec![
            "database",
            "host",
            "port",
            "protocol",
            "username",
            "password",
            "connect_timeout",
            "query_timeout",
            "options",
            "read_only",
            "ssl",
            "pool",
            "hots",
        ]),
        toml_value(),
        0..8,
    );
    (name, kind, others).prop_map(|(name, kind, mut fields)| {
        // Mostly present, so that most tables reach the validator.
        fields.insert("name", name);
        fields.insert("type", kind);
        fields
    })
}

fn to_toml(fields: &BTreeMap<&str, String>) -> String {
    fields.iter().map(|(k, v)| format!("{k} = {v}\n")).collect()
}

fn connector_toml() -> impl Strategy<Value = String> {
    connector_fields().prop_map(|fields| to_toml(&fields))
}

proptest! {
    #![proptest_config(cases())]

    /// Any connector table: deserializing and validating never panics, and every
    /// problem names a field and says something.
    #[test]
    fn every_rejection_names_a_field(text in connector_toml()) {
        let Ok(config) = toml::from_str::<ConnectorConfig>(&text) else {
            // Shape errors are reported by the registry with their field; see the
            // facade's property test.
            return Ok(());
        };
        for spec in [None, Some(spec())] {
            if let Err(problems) = config.validate_with(spec.as_ref()) {
                prop_assert!(!problems.is_empty());
                for problem in problems.iter() {
                    prop_assert!(!problem.field.trim().is_empty(), "no field: {}", problem);
                    prop_assert!(!problem.message.trim().is_empty(), "no message: {}", problem);
                    prop_assert!(!problem.connector.is_empty(), "no connector: {}", problem);
                }
            }
        }
    }

    /// A password never shows up in problems or in the config's `Debug`.
    #[test]
    fn the_password_is_in_no_problem(mut fields in connector_fields()) {
        const SECRET: &str = "prop-sentinel-Pw-31337";
        fields.insert("password", format!("\"{SECRET}\""));
        let Ok(config) = toml::from_str::<ConnectorConfig>(&to_toml(&fields)) else {
            return Ok(());
        };
        let debug = format!("{config:?}");
        prop_assert!(!debug.contains(SECRET));
        for spec in [None, Some(spec())] {
            match config.validate_with(spec.as_ref()) {
                Ok(valid) => {
                    let debug = format!("{valid:?}");
                    prop_assert!(!debug.contains(SECRET));
                }
                Err(problems) => {
                    prop_assert!(!problems.to_string().contains(SECRET));
                    let debug = format!("{problems:?}");
                    prop_assert!(!debug.contains(SECRET));
                }
            }
        }
    }
}

#[test]
fn a_literal_ending_in_a_backslash_does_not_swallow_the_next_placeholder() {
    // The generator's escaping, checked once by hand for the dialects that differ.
    let sql = format!("SELECT {} , :next", quoted("a\\", '\'', true));
    assert_eq!(names(&sql, Dialect::MySql), ["next"]);
    let sql = format!("SELECT {} , :next", quoted("a\\", '\'', false));
    assert_eq!(names(&sql, Dialect::Postgres), ["next"]);
}
