//! Which statements a call may run, and what they may leave on their connection.
//!
//! The server holds a read-only call by itself only while the call cannot leave the
//! `START TRANSACTION READ ONLY` it runs in. MariaDB 10.11 prepares compound statements
//! (`BEGIN NOT ATOMIC … END`, `IF`, `FOR`, `LOOP`, `WHILE`, `REPEAT`, `CASE`) and
//! `CALL`, and a `COMMIT` inside one ends that transaction, after which the rest writes
//! (tested). So the first word of each statement is checked here, with MySQL's own
//! comment rules: a read-only connector runs only the [`PLAIN`] statements, which cannot
//! end a transaction (stored functions and triggers may not commit either); every other
//! statement is refused before it reaches the server. On any connector, a statement that
//! is not plain may change its session in ways the reset after each call does not undo
//! (temporary tables, `SET ROLE`, prepared statements, …): its connection is closed
//! instead of pooled.

use extdata_core::{Dialect, Statement};

/// First words of the statements that can neither end the call's transaction nor
/// change the session except through expressions (user variables, named locks), which
/// the reset after each call covers. On a read-only connector the writes among them are
/// refused by the server's read-only transaction.
const PLAIN: &[&str] = &[
    "select", "with", "values", "show", "describe", "desc", "explain", "insert", "update",
    "delete", "replace",
];

/// What a statement admitted to run may leave on its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Nothing the reset after the call does not undo: the connection is pooled again.
    Plain,
    /// Possibly session state the reset does not know: the connection is closed.
    Session,
}

/// Checks a statement before it runs: `Err` (the reason, for a `ReadOnly` error) when a
/// read-only connector must not run it, else what it may leave on its connection.
pub(crate) fn admit(statement: &Statement, read_only: bool) -> Result<Effect, String> {
    let word = first_word(statement);
    let plain = word.as_deref().is_some_and(|word| PLAIN.contains(&word));
    if read_only {
        if !plain {
            let what = match word.as_deref() {
                Some("") | None => "something this check cannot read (an executable \
                    `/*! */` comment, an unterminated comment or no keyword)"
                    .to_owned(),
                Some(word) => format!("`{}`", word.to_ascii_uppercase()),
            };
            return Err(format!(
                "a read-only connector runs only SELECT, WITH, VALUES, SHOW, DESCRIBE and \
                 EXPLAIN statements (INSERT, UPDATE, DELETE and REPLACE reach the server, \
                 whose read-only transaction refuses them); this statement starts with {what}"
            ));
        }
        if writes_a_file(statement.sql()) {
            return Err(
                "`INTO OUTFILE` and `INTO DUMPFILE` write files on the database \
                        server: refused on a read-only connector (the words are refused \
                        anywhere in the statement, comments and strings included)"
                    .to_owned(),
            );
        }
    }
    // A sequence's `LASTVAL` is session state no statement resets: a call that touched
    // a sequence closes its connection.
    Ok(if plain && !uses_a_sequence(statement.sql()) {
        Effect::Plain
    } else {
        Effect::Session
    })
}

/// Whitespace as MySQL's lexer has it (vertical tab included).
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// A byte that continues an identifier (MySQL allows `$` and any non-ASCII letter).
fn is_identifier_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// The statement's first keyword in lower case, after whitespace, comments and opening
/// parentheses, read with MySQL's rules; `None` when the start is something this check
/// does not interpret: an executable comment (`/*! … */`, `/*M! … */`: code to the
/// server), an unterminated comment, or a word that the shared lexer
/// ([`Statement::leading_keyword`]) reads differently.
fn first_word(statement: &Statement) -> Option<String> {
    let sql = statement.sql();
    let bytes = sql.as_bytes();
    let mut i = 0;
    let mut parens = false;
    loop {
        match *bytes.get(i)? {
            b if is_space(b) => i += 1,
            b'#' => i = line_end(bytes, i),
            // `--` starts a comment only before whitespace or a control character.
            b'-' if bytes.get(i + 1) == Some(&b'-')
                && bytes
                    .get(i + 2)
                    .is_none_or(|b| is_space(*b) || b.is_ascii_control()) =>
            {
                i = line_end(bytes, i)
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let body = &bytes[i + 2..];
                if body.starts_with(b"!") || body.starts_with(b"M!") {
                    return None;
                }
                let end = body.windows(2).position(|w| w == b"*/")?;
                i += 2 + end + 2;
            }
            b'(' => {
                parens = true;
                i += 1;
            }
            _ => break,
        }
    }
    let rest = &bytes[i..];
    let length = rest.iter().take_while(|b| b.is_ascii_alphabetic()).count();
    if length == 0 || rest.get(length).is_some_and(|b| is_identifier_byte(*b)) {
        return None;
    }
    let word = String::from_utf8_lossy(&rest[..length]).to_ascii_lowercase();
    // The shared lexer skips the same comments; where it reads another word (it does
    // not look past parentheses), the start is ambiguous and refused.
    if !parens && statement.leading_keyword(Dialect::MySql) != word {
        return None;
    }
    Some(word)
}

/// The index after the end of the line comment starting at `from` (MySQL ends it at
/// `\n` only).
fn line_end(bytes: &[u8], from: usize) -> usize {
    bytes[from..]
        .iter()
        .position(|b| *b == b'\n')
        .map_or(bytes.len(), |p| from + p + 1)
}

/// Whether `OUTFILE` or `DUMPFILE` appears as a word anywhere in the SQL. Deliberately
/// blind to strings and comments: a lexer that disagreed with the server about one
/// (`NO_BACKSLASH_ESCAPES` changes how strings end) could be led to miss the clause.
fn writes_a_file(sql: &str) -> bool {
    has_word(sql, &["outfile", "dumpfile"])
}

/// Whether the SQL may touch a sequence (`NEXTVAL`, `LASTVAL`, `SETVAL`, `NEXT VALUE
/// FOR`, `PREVIOUS VALUE FOR`), strings and comments included.
fn uses_a_sequence(sql: &str) -> bool {
    has_word(sql, &["nextval", "lastval", "setval"])
        || (has_word(sql, &["value"]) && has_word(sql, &["next", "previous"]))
}

/// Whether one of `words` (lower-case) appears as a whole word anywhere in `sql`.
fn has_word(sql: &str, words: &[&str]) -> bool {
    let lower = sql.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    words.iter().any(|word| {
        lower.match_indices(word).any(|(at, _)| {
            let before = at.checked_sub(1).map(|i| bytes[i]);
            let after = bytes.get(at + word.len()).copied();
            !before.is_some_and(is_identifier_byte) && !after.is_some_and(is_identifier_byte)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(sql: &str) -> Option<String> {
        first_word(&Statement::new(sql))
    }

    fn read_only(sql: &str) -> Result<Effect, String> {
        admit(&Statement::new(sql), true)
    }

    #[test]
    fn first_word_follows_mysql_comment_rules() {
        assert_eq!(word("  select 1").as_deref(), Some("select"));
        assert_eq!(
            word("/* x */ -- y\n# z\n\tSELECT 1").as_deref(),
            Some("select")
        );
        assert_eq!(
            word("((SELECT 1)) UNION (SELECT 2)").as_deref(),
            Some("select")
        );
        assert_eq!(word("--\tSELECT\nCALL p()").as_deref(), Some("call"));
        // `--x` is not a comment to MySQL.
        assert_eq!(word("--x\nSELECT 1"), None);
        // Executable comments are code.
        assert_eq!(word("/*!BEGIN NOT ATOMIC*/ SELECT 1; COMMIT; END"), None);
        assert_eq!(word("/*M!100000 BEGIN NOT ATOMIC*/ SELECT 1"), None);
        assert_eq!(word("/* unterminated SELECT 1"), None);
        // A word that goes on as an identifier is no keyword.
        assert_eq!(word("select_x: BEGIN END"), None);
        assert_eq!(word("selectß"), None);
        assert_eq!(word(""), None);
        assert_eq!(word("   -- only a comment"), None);
        // Vertical tab: whitespace to MySQL, not to the shared lexer: refused.
        assert_eq!(word("\x0bSELECT 1"), None);
    }

    #[test]
    fn read_only_refuses_everything_that_can_leave_the_transaction() {
        for sql in [
            "BEGIN NOT ATOMIC COMMIT; INSERT INTO t VALUES (1); END",
            "begin",
            "START TRANSACTION READ WRITE",
            "COMMIT",
            "ROLLBACK",
            "SET SESSION TRANSACTION READ WRITE",
            "SET autocommit = 1",
            "SET STATEMENT max_statement_time = 1 FOR SELECT 1",
            "CALL p()",
            "IF 1 THEN SELECT 1; END IF",
            "FOR i IN 1..3 DO SELECT 1; END FOR",
            "LOOP LEAVE; END LOOP",
            "WHILE 1 DO SELECT 1; END WHILE",
            "REPEAT SELECT 1; UNTIL 1 END REPEAT",
            "CASE WHEN 1 THEN SELECT 1; END CASE",
            "CREATE TEMPORARY TABLE t (a INT)",
            "CREATE TABLE t (a INT)",
            "DO GET_LOCK('x', 0)",
            "XA START 'x'",
            "LOCK TABLES t READ",
            "HANDLER t OPEN",
            "LOAD DATA INFILE '/tmp/x' INTO TABLE t",
            "/*!COMMIT*/",
            "/*! BEGIN NOT ATOMIC */ SELECT 1; COMMIT; END",
            "SELECT 1 INTO OUTFILE '/tmp/x'",
            "SELECT 1 /*!INTO DUMPFILE '/tmp/x'*/",
            "SELECT 'a\\' INTO OUTFILE '/tmp/x' -- '",
        ] {
            let refused = read_only(sql);
            assert!(refused.is_err(), "{sql}: {refused:?}");
        }
    }

    #[test]
    fn read_only_admits_queries_and_lets_the_server_refuse_writes() {
        for sql in [
            "SELECT 1",
            "WITH a AS (SELECT 1) SELECT * FROM a",
            "(SELECT 1) UNION (SELECT 2)",
            "VALUES (1)",
            "SHOW TABLES",
            "DESCRIBE t",
            "EXPLAIN SELECT 1",
            "INSERT INTO t VALUES (1) RETURNING a",
            "SELECT outfile_count, 'dumpfiles' FROM t",
        ] {
            assert_eq!(read_only(sql), Ok(Effect::Plain), "{sql}");
        }
    }

    #[test]
    fn statements_that_are_not_plain_mark_their_connection_for_closing() {
        let effect = |sql: &str| admit(&Statement::new(sql), false);
        assert_eq!(effect("SELECT GET_LOCK('x', 0)"), Ok(Effect::Plain));
        assert_eq!(effect("UPDATE t SET a = 1"), Ok(Effect::Plain));
        for sql in [
            "SELECT NEXTVAL(s)",
            "SELECT LASTVAL(s)",
            "SELECT SETVAL(s, 5)",
            "SELECT NEXT VALUE FOR s",
            "SELECT PREVIOUS VALUE FOR s",
            "INSERT INTO t VALUES (nextval(s))",
        ] {
            assert_eq!(effect(sql), Ok(Effect::Session), "{sql}");
        }
        for sql in [
            "SET @x = 1",
            "SET ROLE NONE",
            "CREATE TEMPORARY TABLE t (a INT)",
            "DO GET_LOCK('x', 0)",
            "PREPARE s FROM 'SELECT 1'",
            "/*!SET @x = 1*/",
            "SELECT 1 INTO OUTFILE '/tmp/x'",
        ] {
            let expected = if sql.starts_with("SELECT") {
                Effect::Plain
            } else {
                Effect::Session
            };
            assert_eq!(effect(sql), Ok(expected), "{sql}");
        }
    }
}
