//! What a read-only connector refuses before sending anything, on top of the server's
//! `readonly = 2`: newer servers (seen on 26.9; 18.16 refuses it itself) let
//! `readonly = 2` write through table functions — `INSERT INTO FUNCTION url(…)` sends
//! data to any address the server reaches, `file(…)` writes into its `user_files`.
//! `readonly = 1` would stop that, but also every `SETTINGS` clause in a query.
//!
//! So the statement's first word is read as the server's lexer reads it, and `INSERT`
//! is refused; so is a start that cannot be read with certainty (a `/*` inside a block
//! comment, which 18.16 does not nest and newer servers do, or a first character that
//! starts no statement), rather than guessed.

use extdata_core::{Error, ErrorKind, Result};

/// `Err(ReadOnly)` when `sql` (a template, placeholders and all) may write or cannot be
/// read with certainty.
pub(crate) fn check(sql: &str) -> Result<()> {
    match leading_word(sql) {
        Some(word) if word.eq_ignore_ascii_case("insert") => Err(Error::new(
            ErrorKind::ReadOnly,
            "a read-only connector does not run INSERT (the server's readonly = 2 lets \
             INSERT INTO FUNCTION write through url(), file() and other table functions)",
        )),
        Some(_) => Ok(()),
        None => Err(Error::new(
            ErrorKind::ReadOnly,
            "a read-only connector runs only statements whose first word can be read with \
             certainty: this one starts with a nested comment or a character that starts \
             no statement",
        )),
    }
}

/// The first word of `sql` after whitespace and comments, as ClickHouse's lexer skips
/// them (whitespace includes `\v` and `\f`; `--`, `#` and `//` comments end at `\n`
/// only); empty for a statement that is empty or starts with `(`. `None` when that is
/// not certain: a block comment holding `/*`, or any other first character.
fn leading_word(sql: &str) -> Option<&str> {
    let bytes = sql.as_bytes();
    let mut i = 0;
    loop {
        match (bytes.get(i), bytes.get(i + 1)) {
            (None, _) => return Some(""),
            (Some(b' ' | b'\t' | b'\n' | b'\r' | 0x0B | 0x0C), _) => i += 1,
            (Some(b'-'), Some(b'-')) | (Some(b'/'), Some(b'/')) | (Some(b'#'), _) => {
                match bytes[i..].iter().position(|&b| b == b'\n') {
                    Some(end) => i += end + 1,
                    None => return Some(""),
                }
            }
            (Some(b'/'), Some(b'*')) => {
                let body = &sql[i + 2..];
                let end = body.find("*/")?;
                if body[..end].contains("/*") {
                    return None;
                }
                i += 2 + end + 2;
            }
            (Some(b'('), _) => return Some(""),
            (Some(b), _) if b.is_ascii_alphabetic() => {
                let len = bytes[i..]
                    .iter()
                    .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                    .count();
                return Some(&sql[i..i + len]);
            }
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_is_refused_however_it_is_hidden() {
        for sql in [
            "INSERT INTO FUNCTION url('http://127.0.0.1:9/', TSV, 'a String') VALUES ('x')",
            "insert into t values (1)",
            "  /* c */ -- c\n # c\n // c\n\x0b\x0cInSeRt INTO t SELECT 1",
            "--\rINSERT\nINSERT INTO t VALUES (1)",
        ] {
            let error = check(sql).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::ReadOnly, "{sql:?}");
            assert!(error.message().contains("INSERT"), "{sql:?}");
        }
    }

    #[test]
    fn doubtful_starts_are_refused() {
        // Newer servers nest comments: `/* /* */ x */` is one comment there, and the
        // INSERT after it would run; 18.16 would see `x */ INSERT …`.
        for sql in [
            "/* /* */ x */ INSERT INTO t VALUES (1)",
            "/* unterminated",
            "\u{feff}INSERT INTO t VALUES (1)",
            "`x`",
            "'x'",
        ] {
            assert!(check(sql).is_err(), "{sql:?}");
        }
    }

    #[test]
    fn reads_pass() {
        for sql in [
            "SELECT 1",
            "  with x AS (SELECT 1) SELECT * FROM x",
            "(SELECT 1)",
            "/* insert */ SELECT 'INSERT'",
            "-- insert\nSHOW TABLES",
            "DESCRIBE TABLE t",
            "EXPLAIN SELECT 1",
            "",
        ] {
            check(sql).unwrap_or_else(|e| panic!("{sql:?}: {e}"));
        }
    }
}
