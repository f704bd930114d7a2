//! The statement check of Hive connectors: HiveServer2 has no read-only session, so
//! `read_only` is enforced by reading the statement token by token, lexed exactly as
//! Spark's lexer does ([`Statement::hive_tokens`]), and refusing what it cannot be sure
//! of. Independently of `read_only`, statements that run code on the server (script
//! transforms, `reflect`, `java_method`, `ADD JAR`, …) are refused unless the connector
//! allows them (`allow_server_code=true`).

use extdata_core::{HiveToken, HiveTokenKind, Statement};

/// Why a statement was refused (names keywords of the SQL, never a value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// It does something a read-only connector must not do.
    Writes(String),
    /// It runs code on the server.
    RunsCode(String),
    /// Its structure cannot be known with certainty.
    Uncertain(String),
}

/// First words of the statements a read-only connector runs.
const READ_STATEMENTS: &[&str] = &[
    "select", "with", "values", "show", "describe", "desc", "explain",
];

/// Words that never appear in a read-only statement: statement keywords that write,
/// change the session or the cache, or run other SQL. A read-only statement holding
/// one is refused wherever it stands (also as a column name: refusing is safe).
const WRITE_WORDS: &[&str] = &[
    "insert",
    "update",
    "delete",
    "merge",
    "upsert",
    "overwrite",
    "create",
    "drop",
    "alter",
    "truncate",
    "rename",
    "load",
    "add",
    "set",
    "reset",
    "unset",
    "cache",
    "uncache",
    "refresh",
    "clear",
    "msck",
    "repair",
    "analyze",
    "grant",
    "revoke",
    "use",
    "declare",
    "execute",
    "call",
    "commit",
    "rollback",
    "begin",
    "import",
    "export",
    "lock",
    "unlock",
    "compact",
    "archive",
    "unarchive",
    "directory",
    "recordreader",
    "recordwriter",
    "dfs",
];

/// Functions that call any Java method on the server.
const CODE_FUNCTIONS: &[&str] = &["reflect", "java_method", "try_reflect"];

/// Checks `statement` (its SQL with placeholders: values never reach this check).
pub(crate) fn check(
    statement: &Statement,
    read_only: bool,
    allow_server_code: bool,
) -> Result<(), Refusal> {
    if !read_only && allow_server_code {
        return Ok(());
    }
    let tokens = statement
        .hive_tokens()
        .map_err(|error| Refusal::Uncertain(error.message().to_owned()))?;
    if !allow_server_code {
        runs_code(&tokens)?;
    }
    if read_only {
        writes(&tokens)?;
    }
    Ok(())
}

/// Whether `statement` is a plain read — what a read-only connector runs: it leaves
/// the session as it found it. Anything else (`SET`, `USE`, `DECLARE VARIABLE`,
/// `CREATE TEMPORARY VIEW`, writes, several statements) may change the session, which
/// then must serve no other call: a temporary view named like a table would stand in
/// for it in another account's next query.
pub(crate) fn is_plain_read(statement: &Statement) -> bool {
    statement
        .hive_tokens()
        .is_ok_and(|tokens| writes(&tokens).is_ok())
}

fn runs_code(tokens: &[HiveToken<'_>]) -> Result<(), Refusal> {
    for (i, token) in tokens.iter().enumerate() {
        let next = tokens.get(i + 1);
        if let Some(name) = token.identifier()
            && CODE_FUNCTIONS.contains(&name.as_str())
        {
            return Err(Refusal::RunsCode(format!(
                "`{name}` calls Java methods on the server"
            )));
        }
        if token.kind != HiveTokenKind::Word {
            continue;
        }
        let next_is = |word: &str| next.is_some_and(|n| n.is_word(word));
        if token.is_word("using") && next.is_some_and(|n| n.kind == HiveTokenKind::String) {
            return Err(Refusal::RunsCode(
                "`USING '<command>'` (TRANSFORM/MAP/REDUCE) runs a program on the server"
                    .to_owned(),
            ));
        }
        if (token.is_word("using") || token.is_word("add"))
            && ["jar", "jars", "file", "files", "archive", "archives"]
                .iter()
                .any(|w| next_is(w))
        {
            return Err(Refusal::RunsCode(format!(
                "`{} {}` loads code or files onto the server",
                token.text.to_ascii_uppercase(),
                next.map_or("", |n| n.text).to_ascii_uppercase()
            )));
        }
        if token.is_word("execute") && next_is("immediate") {
            return Err(Refusal::RunsCode(
                "`EXECUTE IMMEDIATE` runs SQL that this check cannot see".to_owned(),
            ));
        }
        if token.is_word("identifier") && next.is_some_and(|n| n.text == "(") {
            return Err(Refusal::RunsCode(
                "`IDENTIFIER(…)` names a function or table by a string this check cannot \
                 see"
                .to_owned(),
            ));
        }
        if token.is_word("language") && !next_is("sql") {
            return Err(Refusal::RunsCode(
                "a function in a language other than SQL runs code on the server".to_owned(),
            ));
        }
    }
    Ok(())
}

fn writes(tokens: &[HiveToken<'_>]) -> Result<(), Refusal> {
    let first = tokens.iter().find(|t| t.text != "(");
    let Some(first) = first else {
        return Err(Refusal::Writes("the statement is empty".to_owned()));
    };
    let word = first
        .identifier()
        .filter(|_| first.kind == HiveTokenKind::Word);
    match word {
        Some(word) if READ_STATEMENTS.contains(&word.as_str()) => {}
        _ => {
            return Err(Refusal::Writes(format!(
                "it starts with `{}`; only SELECT, WITH, VALUES, SHOW, DESCRIBE and EXPLAIN \
                 run",
                first.text.to_ascii_uppercase()
            )));
        }
    }
    for (i, token) in tokens.iter().enumerate() {
        if token.text == ";" && tokens[i + 1..].iter().any(|t| t.text != ";") {
            return Err(Refusal::Writes(
                "it holds more than one statement".to_owned(),
            ));
        }
        if token.kind == HiveTokenKind::Word
            && let Some(word) = WRITE_WORDS
                .iter()
                .find(|w| token.text.eq_ignore_ascii_case(w))
        {
            return Err(Refusal::Writes(format!(
                "it holds the keyword `{}`",
                word.to_ascii_uppercase()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(sql: &str, read_only: bool) -> Option<Refusal> {
        check(&Statement::new(sql), read_only, false).err()
    }

    #[test]
    fn only_plain_reads_keep_their_session() {
        for sql in [
            "SELECT 1",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "SHOW TABLES",
        ] {
            assert!(is_plain_read(&Statement::new(sql)), "{sql}");
        }
        for sql in [
            "SET spark.sql.session.timeZone=UTC",
            "USE other",
            "DECLARE VARIABLE v STRING",
            "CREATE TEMPORARY VIEW t AS SELECT 1",
            "INSERT INTO t VALUES (1)",
            "SELECT 1; SET x=1",
            "CACHE TABLE t",
        ] {
            assert!(!is_plain_read(&Statement::new(sql)), "{sql}");
        }
    }

    #[test]
    fn reads_pass() {
        for sql in [
            "SELECT 1",
            "  -- note\n select * from t",
            "/* x /* nested */ */ WITH a AS (SELECT 1) SELECT * FROM a",
            "(SELECT 1) UNION ALL (SELECT 2)",
            "show tables",
            "DESCRIBE t",
            "VALUES (1), (2)",
            "EXPLAIN SELECT 1",
            "SELECT a FROM t JOIN u USING (id)",
            "SELECT transform(array(1, 2), x -> x + 1)",
            "SELECT :v, map('k', :w) FROM t WHERE x = :x;",
            "SELECT 'insert', `set`, \"reflect\" -- drop\n",
            // For Spark, the backslash continues the comment over the `INSERT`.
            "SELECT 1 -- a \\\n; INSERT INTO t VALUES (1)",
        ] {
            assert_eq!(refusal(sql, true), None, "{sql}");
        }
    }

    #[test]
    fn writes_and_session_changes_are_refused_on_read_only() {
        for sql in [
            "INSERT INTO t VALUES (1)",
            "WITH a AS (SELECT 1) INSERT INTO t SELECT * FROM a",
            "FROM t INSERT INTO u SELECT *",
            "SELECT 1; INSERT INTO t VALUES (1)",
            "SELECT 1 -- a\r INSERT INTO t VALUES (1)",
            "/* a /* b */ */ INSERT INTO t VALUES (1)",
            "/* a /*+ b */ INSERT INTO t VALUES (1) */",
            "SELECT 1 -- a \\\r\n; INSERT INTO t VALUES (1)",
            "CACHE TABLE c AS SELECT 1",
            "SELECT 1 FROM t; CACHE TABLE t",
            "SET spark.sql.ansi.enabled=false",
            "RESET",
            "USE other",
            "LOAD DATA INPATH '/x' INTO TABLE t",
            "INSERT OVERWRITE DIRECTORY '/tmp/x' SELECT 1",
            "MSCK REPAIR TABLE t",
            "ANALYZE TABLE t COMPUTE STATISTICS",
            "REFRESH TABLE t",
            "UNCACHE TABLE t",
            "CREATE TABLE t (a INT)",
            "DECLARE VARIABLE v INT",
            "SELECT * FROM t WHERE '${x}' = ''",
            "SELECT 1 /* open",
            "",
        ] {
            assert!(refusal(sql, true).is_some(), "{sql}");
        }
    }

    #[test]
    fn server_code_is_refused_on_every_connector() {
        for sql in [
            "SELECT reflect('java.lang.Runtime', 'getRuntime')",
            "SELECT java_method('java.lang.System', 'exit', 1)",
            "SELECT `JAVA_METHOD`('java.lang.System', 'exit', 1)",
            "SELECT system.builtin.try_reflect('a', 'b')",
            "SELECT TRANSFORM(a) USING 'sh -c id' FROM t",
            "SELECT TRANSFORM(a) USING r\"cat\" AS (b) FROM t",
            "FROM t MAP a USING 'cat'",
            "FROM t REDUCE a USING 'cat'",
            "ADD JAR '/tmp/x.jar'",
            "CREATE TEMPORARY FUNCTION f AS 'x.Y' USING JAR '/tmp/x.jar'",
            "EXECUTE IMMEDIATE 'SELECT 1'",
            "SELECT IDENTIFIER('java' || '_method')('a', 'b')",
            "CREATE FUNCTION f() RETURNS INT LANGUAGE PYTHON AS 'x'",
        ] {
            for read_only in [false, true] {
                assert!(refusal(sql, read_only).is_some(), "{sql}");
            }
            assert!(
                matches!(refusal(sql, false), Some(Refusal::RunsCode(_))),
                "{sql}"
            );
            assert_eq!(check(&Statement::new(sql), false, true), Ok(()), "{sql}");
        }
    }

    #[test]
    fn writable_connectors_run_writes() {
        for sql in [
            "INSERT INTO t VALUES (1)",
            "SET x=1",
            "CREATE TABLE t (a INT)",
        ] {
            assert_eq!(refusal(sql, false), None, "{sql}");
        }
    }
}
