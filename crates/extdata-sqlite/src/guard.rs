//! The check every statement passes before SQLite sees it (prepared or run): one
//! statement per call, and nothing that reaches outside the database file or leaves
//! state on the pooled connection for the next call.
//!
//! sqlx runs every statement of a string one after the other (`VirtualStatement`), and
//! SQLite applies some `PRAGMA`s while it *prepares* them (`EXPLAIN PRAGMA query_only=OFF`
//! turns `query_only` off without running anything), so the check must come before the
//! driver is called. sqlx has no safe way to ask SQLite where the first statement ends
//! (`sqlite3_prepare_v3`'s tail is internal to the driver), so the check reads the SQL
//! with extdata-core's lexer ([`Dialect::code_ranges`]) and refuses what that lexer and
//! SQLite's tokenizer could read differently: SQLite's own parameter markers (`$x(…)`,
//! `@x(…)`, `#x(…)`, `:x(…)` swallow quotes and `;` up to the `)` in SQLite's tokenizer)
//! and NUL bytes (SQLite stops reading there). With those gone, both agree on every
//! literal, quoted identifier (`"…"`, `` `…` ``, `[…]`) and comment (`--`, `/* */`).

use extdata_core::{Dialect, Error, ErrorKind, Result};

/// `PRAGMA`s that only read, also when given an argument (a table, an index, a row
/// limit): every other `PRAGMA` with a value changes a setting of the connection.
const READING_PRAGMAS: &[&str] = &[
    "foreign_key_check",
    "foreign_key_list",
    "index_info",
    "index_list",
    "index_xinfo",
    "integrity_check",
    "quick_check",
    "table_info",
    "table_list",
    "table_xinfo",
];

/// Functions refused wherever they appear: where SQLite is built with
/// `SQLITE_ENABLE_FTS3_TOKENIZER` (e.g. Debian's library, linked when sqlx is built
/// unbundled), `fts3_tokenizer()` returns a pointer into the process, or installs one.
const REFUSED_FUNCTIONS: &[&str] = &["fts3_tokenizer"];

/// What [`check`] learned about a statement that passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Checked {
    /// The statement is a `PRAGMA` (possibly under `EXPLAIN`).
    pub(crate) pragma: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    /// A keyword or an unquoted name (or a number).
    Word(&'a str),
    /// A string literal or quoted identifier, quotes included.
    Quoted(&'a str),
    /// Any other byte of code: `;`, `.`, `(`, `=`, …
    Punct(u8),
}

impl Token<'_> {
    /// The name this token spells, unquoted (SQLite accepts a string literal where a name
    /// is expected), if it is a word or a quoted name.
    fn name(&self) -> Option<String> {
        match *self {
            Token::Word(word) => Some(word.to_ascii_lowercase()),
            Token::Quoted(quoted) => {
                let (open, close) = match quoted.as_bytes()[0] {
                    b'[' => ('[', ']'),
                    q => (char::from(q), char::from(q)),
                };
                let inner = quoted.strip_prefix(open)?.strip_suffix(close)?;
                let inner = if open == '[' {
                    inner.to_owned()
                } else {
                    inner.replace(&format!("{open}{open}"), &open.to_string())
                };
                Some(inner.to_ascii_lowercase())
            }
            Token::Punct(_) => None,
        }
    }

    /// Whether this token spells `name` (lower case), unquoted; allocates only for a
    /// quoted token.
    fn is_name(&self, name: &str) -> bool {
        match self {
            Token::Word(word) => word.eq_ignore_ascii_case(name),
            Token::Quoted(_) => self.name().as_deref() == Some(name),
            Token::Punct(_) => false,
        }
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(self, Token::Word(w) if w.eq_ignore_ascii_case(word))
    }
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// Splits `sql` into tokens, comments left out; refuses bytes whose reading SQLite and
/// the lexer might not share.
fn tokens(sql: &str) -> Result<Vec<(usize, Token<'_>)>> {
    if sql.contains('\0') {
        return Err(Error::new(
            ErrorKind::Query,
            "the SQL contains a NUL character (SQLite would ignore everything after it)",
        ));
    }
    let bytes = sql.as_bytes();
    let ranges = Dialect::Sqlite.code_ranges(sql);
    let mut tokens = Vec::with_capacity(sql.len() / 4);
    for (index, range) in ranges.iter().enumerate() {
        let mut i = range.start;
        while i < range.end {
            let b = bytes[i];
            if b.is_ascii_whitespace() {
                i += 1;
            } else if is_word_byte(b) {
                let start = i;
                while i < range.end && is_word_byte(bytes[i]) {
                    i += 1;
                }
                tokens.push((start, Token::Word(&sql[start..i])));
            } else if matches!(b, b'$' | b'@' | b'#' | b':') {
                return Err(Error::new(
                    ErrorKind::Query,
                    format!(
                        "`{}` at byte {i} outside quotes: SQLite reads it as a parameter \
                         marker of its own, whose rules differ from extdata's; write \
                         placeholders as `:name` and quote text that holds `{}`",
                        char::from(b),
                        char::from(b)
                    ),
                ));
            } else {
                tokens.push((i, Token::Punct(b)));
                i += 1;
            }
        }
        // The piece between this range and the next: a comment or a quoted token.
        if let Some(next) = ranges.get(index + 1) {
            let piece = &sql[range.end..next.start];
            if !matches!(piece.as_bytes().first(), Some(b'-' | b'/')) {
                tokens.push((range.end, Token::Quoted(piece)));
            }
        }
    }
    Ok(tokens)
}

/// Checks one rendered statement; see the module's documentation. The error carries no
/// connector name (the caller adds it) and no parameter value (there is none in `sql`).
pub(crate) fn check(sql: &str) -> Result<Checked> {
    let tokens = tokens(sql)?;

    // One statement: after the first `;`, nothing but more `;` (comments are gone).
    let end = tokens
        .iter()
        .position(|(_, t)| *t == Token::Punct(b';'))
        .unwrap_or(tokens.len());
    if let Some((at, _)) = tokens[end..].iter().find(|(_, t)| *t != Token::Punct(b';')) {
        return Err(Error::new(
            ErrorKind::Query,
            format!(
                "the SQL holds more than one statement (another begins at byte {at}, after \
                 a `;`); run one statement per call (a CREATE TRIGGER with a body is \
                 refused for the same reason)"
            ),
        ));
    }
    let statement = &tokens[..end];

    if let Some((_, function)) = statement
        .iter()
        .find(|(_, t)| REFUSED_FUNCTIONS.iter().any(|f| t.is_name(f)))
    {
        return Err(forbidden(format!(
            "{}() is refused on SQLite connectors",
            function.name().unwrap_or_default()
        )));
    }

    // The statement's kind: its first keyword after `EXPLAIN [QUERY PLAN]` (SQLite
    // prepares, and so applies pragmas of, an explained statement too).
    let mut rest = statement;
    if rest.first().is_some_and(|(_, t)| t.is_word("explain")) {
        rest = &rest[1..];
        if rest.first().is_some_and(|(_, t)| t.is_word("query"))
            && rest.get(1).is_some_and(|(_, t)| t.is_word("plan"))
        {
            rest = &rest[2..];
        }
    }
    let first = rest.first().map(|(_, t)| *t);
    let is = |keyword: &str| first.is_some_and(|t| t.is_word(keyword));
    if !(is("attach") || is("detach") || is("vacuum") || is("pragma") || is("create")) {
        return Ok(Checked { pragma: false });
    }
    let tokens: Vec<Token<'_>> = rest.iter().map(|(_, t)| *t).collect();
    let keyword = match tokens.first() {
        Some(Token::Word(word)) => word.to_ascii_lowercase(),
        _ => String::new(),
    };
    match keyword.as_str() {
        "attach" | "detach" => Err(forbidden(format!(
            "{} is refused on SQLite connectors: it would open (or create) another \
             database file, outside the connector's database",
            keyword.to_ascii_uppercase()
        ))),
        "vacuum" if tokens.iter().any(|t| t.is_word("into")) => Err(forbidden(
            "VACUUM INTO is refused on SQLite connectors: it writes a copy of the database \
             to a file of the statement's choosing"
                .to_owned(),
        )),
        "pragma" => check_pragma(&tokens[1..]).map(|()| Checked { pragma: true }),
        "create" => check_create(&tokens[1..]).map(|()| Checked { pragma: false }),
        _ => Ok(Checked { pragma: false }),
    }
}

/// `PRAGMA [schema.]name [= value | (value)]`: a value is allowed only for the pragmas
/// that read.
fn check_pragma(tokens: &[Token<'_>]) -> Result<()> {
    let (name, value) = match tokens {
        [schema, Token::Punct(b'.'), name, value @ ..] if schema.name().is_some() => (name, value),
        [name, value @ ..] => (name, value),
        [] => return Ok(()),
    };
    let name = name.name().unwrap_or_default();
    if value.is_empty() || READING_PRAGMAS.contains(&name.as_str()) {
        return Ok(());
    }
    Err(forbidden(format!(
        "PRAGMA {name} with a value is refused on SQLite connectors: it would change a \
         setting of the pooled connection that outlives the call (or reach outside the \
         database); pragmas that read, such as table_info(t), are allowed"
    )))
}

/// `CREATE …`: no temporary objects, which live on the pooled connection after the call.
fn check_create(tokens: &[Token<'_>]) -> Result<()> {
    // The header, up to the column list or `AS`: where TEMP and a schema name can be.
    let header = tokens
        .iter()
        .position(|t| *t == Token::Punct(b'(') || t.is_word("as"))
        .map_or(tokens, |end| &tokens[..end]);
    let temp_keyword = header
        .iter()
        .any(|t| t.is_word("temp") || t.is_word("temporary"));
    let temp_schema = header
        .windows(2)
        .any(|pair| pair[1] == Token::Punct(b'.') && pair[0].name().as_deref() == Some("temp"));
    if temp_keyword || temp_schema {
        return Err(forbidden(
            "CREATE TEMP is refused on SQLite connectors: a temporary table, view, index or \
             trigger lives on the pooled connection, and the next call (perhaps another \
             account's) would see it"
                .to_owned(),
        ));
    }
    Ok(())
}

fn forbidden(message: String) -> Error {
    Error::new(ErrorKind::Forbidden, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(sql: &str) -> ErrorKind {
        match check(sql) {
            Ok(_) => panic!("passed: {sql}"),
            Err(e) => e.kind(),
        }
    }

    #[test]
    fn single_statements_pass_with_trailing_semicolons_and_comments() {
        for sql in [
            "SELECT 1",
            "SELECT 1;",
            "SELECT 1 ;; -- done\n /* really */ ;",
            "SELECT ';' AS \"a;b\", [c;d], `e;f` FROM t -- ; ATTACH",
            "SELECT x'3b' /* ; */",
            "INSERT INTO t VALUES (?1) RETURNING id",
            "PRAGMA table_info(t)",
            "PRAGMA main.table_info('t')",
            "PRAGMA foreign_keys",
            "EXPLAIN QUERY PLAN SELECT * FROM t",
            "CREATE TABLE t (temp REAL, \"temp\" TEXT)",
            "CREATE TABLE \"temporary\" (a)",
            "CREATE VIEW v AS SELECT temp FROM t",
            "VACUUM",
            "SELECT 'a$b', \"@c\", [#d], ':e'",
        ] {
            check(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }

    /// Statements the guard refuses, by what is refused and the kind of the error.
    const REFUSED: &[(&str, ErrorKind, &[&str])] = &[
        (
            "more than one statement is refused",
            ErrorKind::Query,
            &[
                "PRAGMA query_only=OFF; INSERT INTO t VALUES (1)",
                "SELECT 1;SELECT 2",
                "SELECT 1; 'x'",
                "SELECT 1; /* c */ \"x\"",
                ";ATTACH 'x' AS y",
                "SELECT 1 -- c\n; DELETE FROM t",
                "CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END",
            ],
        ),
        (
            "sqlite parameter markers and nul are refused",
            ErrorKind::Query,
            &[
                // SQLite reads `$a(')` as one parameter token; a lexer that saw a string there
                // would miss the `;`.
                "SELECT $a(') ; ATTACH 'x' AS y --'",
                "SELECT @a(')",
                "SELECT #a(')",
                "SELECT ?1, :1(')",
                "SELECT a::text",
                "SELECT 1\0; ATTACH 'x' AS y",
            ],
        ),
        (
            "attach detach and vacuum into are refused in every spelling",
            ErrorKind::Forbidden,
            &[
                "ATTACH '/etc/passwd' AS x",
                "attach database 'file:/tmp/x.db?mode=rwc' as x",
                "  /* hi */ -- there\n\tAtTaCh 'x' AS y",
                "EXPLAIN ATTACH 'x' AS y",
                "EXPLAIN QUERY PLAN ATTACH 'x' AS y",
                "DETACH x",
                "VACUUM INTO '/tmp/copy.db'",
                "vacuum main /* c */ into '/tmp/copy.db'",
                "EXPLAIN VACUUM INTO '/tmp/copy.db'",
            ],
        ),
        (
            "pragmas that set are refused in every spelling",
            ErrorKind::Forbidden,
            &[
                "PRAGMA query_only=OFF",
                "PRAGMA query_only = 0",
                "pragma QUERY_ONLY(false)",
                "PRAGMA main.writable_schema=ON",
                "PRAGMA \"case_sensitive_like\"=ON",
                "PRAGMA [foreign_keys] = OFF",
                "PRAGMA 'recursive_triggers'(1)",
                "EXPLAIN PRAGMA query_only=OFF",
                "PRAGMA temp_store_directory = '/tmp'",
                "PRAGMA journal_mode = OFF",
                "PRAGMA busy_timeout=0",
            ],
        ),
        (
            "temporary objects are refused in every spelling",
            ErrorKind::Forbidden,
            &[
                "CREATE TEMP TABLE x (a)",
                "create temporary view v as select 1",
                "CREATE TABLE temp.x (a)",
                "CREATE TABLE \"TEMP\" . x AS SELECT 1",
                "CREATE TABLE [temp].x (a)",
                "CREATE TABLE 'temp'.x (a)",
                "CREATE INDEX IF NOT EXISTS temp.i ON x (a)",
                "CREATE VIRTUAL TABLE temp.f USING fts5(a)",
            ],
        ),
        (
            "fts3 tokenizer is refused however quoted",
            ErrorKind::Forbidden,
            &[
                "SELECT fts3_tokenizer('simple')",
                "SELECT \"FTS3_TOKENIZER\"('simple')",
            ],
        ),
    ];

    #[test]
    fn refused_statements_fail_with_the_kind_that_says_why() {
        for (what, kind, statements) in REFUSED {
            for sql in *statements {
                assert_eq!(refused(sql), *kind, "{what}: {sql:?}");
            }
        }
    }
}
