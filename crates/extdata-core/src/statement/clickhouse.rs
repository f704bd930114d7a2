//! ClickHouse's lexer (`src/Parsers/Lexer.cpp`), as far as placing `:name` placeholders
//! needs it: where string literals, quoted identifiers and comments begin and end, and
//! which constructs different server versions read differently.
//!
//! Checked against the 18.16 server and the lexer of current servers:
//! - `'…'`, `"…"` and `` `…` `` all take backslash escapes and doubled quotes
//!   (`` `a\`b` `` is one identifier);
//! - `--`, `//` and `#` comments end at `\n` only (`\r` does not end them); `#` is a
//!   comment on newer servers (`# ` and `#!`) and an error everywhere else, so wherever a
//!   query runs at all it is a comment;
//! - `/* … */` does **not** nest on 18.16 (`/* /* */` is a whole comment) but nests on
//!   newer servers: a `/*` inside a comment is a doubt;
//! - a number's exponent takes a sign, so `1e--5` is the number `1e-` and a minus, not a
//!   comment: `--` right after such an exponent is a doubt;
//! - `$` starts a heredoc (`$tag$…$tag$`) or is part of a word on newer servers and is an
//!   error on 18.16: any `$` outside quotes and comments is a doubt.
//!
//! A doubt makes [`super::Statement::render_inline`] refuse a statement that has
//! placeholders, instead of guessing where they are.

/// A string literal, quoted identifier or comment.
pub(super) struct Piece {
    /// The index after its end (the end of the text when it is not closed).
    pub(super) end: usize,
    /// Why its extent is not certain for every server version, if it is not.
    pub(super) doubt: Option<&'static str>,
}

/// The string literal, quoted identifier or comment that starts at `i`, if one does.
pub(super) fn piece(bytes: &[u8], i: usize) -> Option<Piece> {
    let next = bytes.get(i + 1).copied();
    Some(match (bytes[i], next) {
        (b'\'', _) => quoted(bytes, i, "an unterminated string literal"),
        (b'"', _) => quoted(bytes, i, "an unterminated \"quoted\" identifier"),
        (b'`', _) => quoted(bytes, i, "an unterminated `quoted` identifier"),
        (b'-', Some(b'-')) => Piece {
            end: line_end(bytes, i),
            doubt: after_exponent(bytes, i).then_some(
                "`--` right after a number's exponent (ClickHouse reads `1e--2` as `1e-` minus 2, \
                 not as a comment)",
            ),
        },
        (b'/', Some(b'/')) | (b'#', _) => Piece {
            end: line_end(bytes, i),
            doubt: None,
        },
        (b'/', Some(b'*')) => block_comment(bytes, i),
        _ => return None,
    })
}

/// The first doubt about the extent of any piece of `sql`, or about code that server
/// versions lex differently.
pub(super) fn doubt(sql: &str) -> Option<&'static str> {
    let bytes = sql.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if let Some(piece) = piece(bytes, i) {
            if piece.doubt.is_some() {
                return piece.doubt;
            }
            i = piece.end;
        } else if bytes[i] == b'$' {
            return Some(
                "a `$` outside quotes and comments (a heredoc or part of a name on newer \
                 servers, an error on older ones)",
            );
        } else {
            i += 1;
        }
    }
    None
}

/// A quoted piece opened at `open`: backslash escapes the next byte, a doubled quote is
/// one quote.
fn quoted(bytes: &[u8], open: usize, unterminated: &'static str) -> Piece {
    let quote = bytes[open];
    let mut i = open + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b if b == quote => {
                if bytes.get(i + 1) == Some(&quote) {
                    i += 2;
                } else {
                    return Piece {
                        end: i + 1,
                        doubt: None,
                    };
                }
            }
            _ => i += 1,
        }
    }
    Piece {
        end: bytes.len(),
        doubt: Some(unterminated),
    }
}

fn line_end(bytes: &[u8], from: usize) -> usize {
    bytes[from..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |p| from + p + 1)
}

/// A block comment opened at `open`, read as 18.16 reads it (the first `*/` ends it).
fn block_comment(bytes: &[u8], open: usize) -> Piece {
    let mut i = open + 2;
    let mut nested = false;
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'*', b'/') => {
                return Piece {
                    end: i + 2,
                    doubt: nested.then_some(
                        "a `/*` inside a block comment (newer ClickHouse servers nest comments, \
                         18.x does not)",
                    ),
                };
            }
            (b'/', b'*') => {
                // One step only: 18.16 looks for `*/` alone, so `/*/` holds its end.
                nested = true;
                i += 1;
            }
            _ => i += 1,
        }
    }
    Piece {
        end: bytes.len(),
        doubt: Some("an unterminated block comment"),
    }
}

/// Whether the `--` at `i` follows a number's exponent letter (`1e`, `.5E`, `0x1p`):
/// the word before it starts like a number and ends in `e`, `E`, `p` or `P`.
fn after_exponent(bytes: &[u8], i: usize) -> bool {
    if i == 0 || !matches!(bytes[i - 1], b'e' | b'E' | b'p' | b'P') {
        return false;
    }
    let mut start = i - 1;
    while start > 0
        && (bytes[start - 1].is_ascii_alphanumeric() || matches!(bytes[start - 1], b'_' | b'.'))
    {
        start -= 1;
    }
    bytes[start].is_ascii_digit() || bytes[start] == b'.'
}

#[cfg(test)]
mod tests {
    use crate::{Dialect, ErrorKind, Statement, Value};

    fn names(sql: &str) -> Vec<String> {
        Statement::new(sql).placeholder_names(Dialect::ClickHouse)
    }

    fn refusal(sql: &str) -> String {
        let statement = Statement::new(sql).bind("p", 1_i32);
        let error = statement
            .render_inline(Dialect::ClickHouse, |_| Ok("1".into()))
            .expect_err(sql);
        assert_eq!(error.kind(), ErrorKind::Parameter, "{sql}");
        error.message().to_owned()
    }

    #[test]
    fn backslash_escapes_hold_in_strings_and_both_identifier_quotes() {
        // `a\`b` is one identifier for ClickHouse: `:no` is inside it.
        assert_eq!(names(r"SELECT `a\` :no `, :p"), ["p"]);
        assert_eq!(names(r#"SELECT "a\" :no ", :p"#), ["p"]);
        assert_eq!(names(r"SELECT 'a\' :no ', :p"), ["p"]);
        assert_eq!(names("SELECT `a`` :no `, 'b'' :no ', :p"), ["p"]);
    }

    #[test]
    fn line_comments_end_at_newline_only() {
        assert_eq!(names("SELECT 1 -- :no\r :no\n, :p"), ["p"]);
        assert_eq!(names("SELECT 1 --:no\n, :p"), ["p"]);
        assert_eq!(names("SELECT 1 // :no\n, :p"), ["p"]);
        assert_eq!(names("SELECT 1 # :no\n, :p"), ["p"]);
        assert_eq!(names("SELECT 1 #! :no\n, :p"), ["p"]);
        assert_eq!(names("SELECT 1 /*/ :no */, :p"), ["p"]);
    }

    #[test]
    fn constructs_versions_read_differently_are_refused_with_placeholders() {
        for sql in [
            "SELECT 1 /* /* */ :p */",
            "SELECT 1 /* /* */, :p",
            "SELECT 1e--1, :p",
            "SELECT 0x1p-- x\n, :p",
            "SELECT .5E-- x\n, :p",
            "SELECT $$ :p $$",
            "SELECT :p, $a$x$a$",
            "SELECT :p, 'unterminated",
            "SELECT :p, `unterminated\\`",
            "SELECT :p, \"unterminated",
            "SELECT :p /* unterminated",
        ] {
            let message = refusal(sql);
            assert!(message.contains("with certainty"), "{sql}: {message}");
        }
        // Without placeholders or values there is nothing to place.
        assert!(
            Statement::new("SELECT 1 /* /* */")
                .render_inline(Dialect::ClickHouse, |_| Ok(String::new()))
                .is_ok()
        );
        // A word that only looks like an exponent is not a number.
        let ok = Statement::new("SELECT x1e-- c\n, :p").bind("p", 1_i32);
        assert_eq!(
            ok.render_inline(Dialect::ClickHouse, |_| Ok("1".into()))
                .unwrap(),
            "SELECT x1e-- c\n, 1"
        );
    }

    #[test]
    fn a_refusal_names_the_construct_not_the_values() {
        let statement =
            Statement::new("SELECT :p /* /* */").bind("p", Value::Text("secret-value".into()));
        let error = statement
            .render_inline(Dialect::ClickHouse, |_| Ok("x".into()))
            .unwrap_err();
        assert!(error.message().contains("block comment"), "{error}");
        assert!(!format!("{error} {error:?}").contains("secret-value"));
    }
}
