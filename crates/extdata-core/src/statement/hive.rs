//! Lexing of Spark SQL / HiveQL exactly as Spark's `SqlBaseLexer.g4` splits text, for
//! [`Dialect::Hive`](super::Dialect::Hive): placeholders are only replaced where Spark
//! will see them as code, and backends can check a statement token by token.
//!
//! The rules (each checked against a live Spark 4 Thrift server):
//! - `'…'` and `"…"` strings: a backslash protects the next character (any character,
//!   a newline too); `r'…'`/`R"…"` raw strings have no escapes at all. `r` starts a raw
//!   string only where a token starts (after a character that cannot continue an
//!   identifier).
//! - `` `…` `` identifiers: a doubled backtick is a backtick; no backslash escapes.
//! - `--` comments end at `\r` or `\n`, but a backslash right before `\n` continues the
//!   comment on the next line (`\` before `\r\n` does not).
//! - `/* … */` comments nest; `/*+` opens a hint (its contents are code), and inside a
//!   comment `/*+` does not open a nested level. `*/` outside a comment is one token.
//!
//! What cannot be placed with certainty is an error, never a guess: `${` anywhere
//! (Spark substitutes variables in the whole text before it lexes it), an unterminated
//! string, identifier or comment, a non-ASCII character in code (Spark's identifiers use
//! Unicode letter classes this lexer does not model), and a URI-like identifier
//! (`scheme://…`, one token for Spark whatever `--` or `/*` it holds).

/// What a [`HiveToken`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HiveTokenKind {
    /// A run of ASCII letters, digits and `_`: a keyword, an identifier or a number.
    Word,
    /// A string literal (`'…'`, `"…"`, `r'…'`, `R"…"`), quotes included.
    String,
    /// A backquoted identifier, backquotes included.
    QuotedIdentifier,
    /// A `:name` placeholder (the text includes the colon).
    Parameter,
    /// Anything else: one punctuation character, or `::`, `/*+` and `*/`.
    Symbol,
}

/// One token of a Spark SQL / HiveQL statement (comments and whitespace are not
/// tokens), as [`Statement::hive_tokens`](super::Statement::hive_tokens) returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HiveToken<'a> {
    /// What the token is.
    pub kind: HiveTokenKind,
    /// Its text as written.
    pub text: &'a str,
    /// Its byte offset in the statement.
    pub start: usize,
}

impl HiveToken<'_> {
    /// Whether this is the word `keyword` (ASCII, any case).
    pub fn is_word(&self, keyword: &str) -> bool {
        self.kind == HiveTokenKind::Word && self.text.eq_ignore_ascii_case(keyword)
    }

    /// The name a word or backquoted identifier stands for (backquotes removed,
    /// doubled backquotes undoubled), in lower case; `None` for other tokens.
    pub fn identifier(&self) -> Option<String> {
        match self.kind {
            HiveTokenKind::Word => Some(self.text.to_ascii_lowercase()),
            HiveTokenKind::QuotedIdentifier => {
                let inner = &self.text[1..self.text.len() - 1];
                Some(inner.replace("``", "`").to_lowercase())
            }
            _ => None,
        }
    }
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Splits `sql` into tokens, or says (without quoting the text) why its structure
/// cannot be known with certainty.
pub(crate) fn tokenize<'a>(sql: &'a str) -> Result<Vec<HiveToken<'a>>, &'static str> {
    if sql.contains("${") {
        return Err(
            "it contains `${`, which Spark's variable substitution rewrites before \
                    lexing",
        );
    }
    let bytes = sql.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    let push = |kind, start: usize, end: usize, tokens: &mut Vec<HiveToken<'a>>| {
        tokens.push(HiveToken {
            kind,
            text: &sql[start..end],
            start,
        });
    };
    while i < bytes.len() {
        let b = bytes[i];
        let next = bytes.get(i + 1).copied();
        match b {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0B | 0x0C => i += 1,
            b'-' if next == Some(b'-') => i = line_comment_end(bytes, i + 2),
            b'/' if next == Some(b'*') && bytes.get(i + 2) == Some(&b'+') => {
                push(HiveTokenKind::Symbol, i, i + 3, &mut tokens);
                i += 3;
            }
            b'/' if next == Some(b'*') => i = block_comment_end(bytes, i)?,
            b'*' if next == Some(b'/') => {
                push(HiveTokenKind::Symbol, i, i + 2, &mut tokens);
                i += 2;
            }
            b'\'' | b'"' => {
                let end = escaped_string_end(bytes, i)?;
                push(HiveTokenKind::String, i, end, &mut tokens);
                i = end;
            }
            b'r' | b'R'
                if matches!(next, Some(b'\'' | b'"'))
                    && (i == 0 || !is_word_byte(bytes[i - 1])) =>
            {
                let quote = bytes[i + 1];
                let Some(close) = bytes[i + 2..].iter().position(|&c| c == quote) else {
                    return Err("it has an unterminated raw string");
                };
                let end = i + 2 + close + 1;
                push(HiveTokenKind::String, i, end, &mut tokens);
                i = end;
            }
            b'`' => {
                let end = backquoted_end(bytes, i)?;
                push(HiveTokenKind::QuotedIdentifier, i, end, &mut tokens);
                i = end;
            }
            b':' if next == Some(b':') => {
                push(HiveTokenKind::Symbol, i, i + 2, &mut tokens);
                i += 2;
            }
            b':' if next.is_some_and(|c| c.is_ascii_alphabetic() || c == b'_') => {
                let mut end = i + 1;
                while end < bytes.len() && is_word_byte(bytes[end]) {
                    end += 1;
                }
                push(HiveTokenKind::Parameter, i, end, &mut tokens);
                i = end;
            }
            b if is_word_byte(b) => {
                let mut end = i;
                while end < bytes.len() && is_word_byte(bytes[end]) {
                    end += 1;
                }
                if bytes[end..].starts_with(b"://") {
                    return Err("it has a URI-like identifier (`scheme://…`)");
                }
                push(HiveTokenKind::Word, i, end, &mut tokens);
                i = end;
            }
            b if b >= 0x80 => {
                return Err(
                    "it has a non-ASCII character outside strings, comments and quoted \
                     identifiers",
                );
            }
            _ => {
                push(HiveTokenKind::Symbol, i, i + 1, &mut tokens);
                i += 1;
            }
        }
    }
    Ok(tokens)
}

/// The end of a `--` comment whose text starts at `from`.
fn line_comment_end(bytes: &[u8], from: usize) -> usize {
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if bytes.get(i + 1) == Some(&b'\n') => i += 2,
            b'\r' | b'\n' => break,
            _ => i += 1,
        }
    }
    if bytes.get(i) == Some(&b'\r') {
        i += 1;
    }
    if bytes.get(i) == Some(&b'\n') {
        i += 1;
    }
    i
}

/// The end of a (nested) `/* */` comment opened at `open`.
fn block_comment_end(bytes: &[u8], open: usize) -> Result<usize, &'static str> {
    let mut depth = 1usize;
    let mut i = open + 2;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"*/") {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return Ok(i);
            }
        } else if bytes[i..].starts_with(b"/*") && bytes.get(i + 2) != Some(&b'+') {
            depth += 1;
            i += 2;
        } else {
            i += 1;
        }
    }
    Err("it has an unterminated `/*` comment")
}

/// The end of a `'…'` or `"…"` string (backslash escapes) opened at `open`.
fn escaped_string_end(bytes: &[u8], open: usize) -> Result<usize, &'static str> {
    let quote = bytes[open];
    let mut i = open + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            c if c == quote => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err("it has an unterminated string")
}

/// The end of a backquoted identifier opened at `open` (` `` ` is a backquote).
fn backquoted_end(bytes: &[u8], open: usize) -> Result<usize, &'static str> {
    let mut i = open + 1;
    while i < bytes.len() {
        if bytes[i] == b'`' {
            if bytes.get(i + 1) == Some(&b'`') {
                i += 2;
            } else {
                return Ok(i + 1);
            }
        } else {
            i += 1;
        }
    }
    Err("it has an unterminated backquoted identifier")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(sql: &str) -> Result<Vec<&str>, &'static str> {
        Ok(tokenize(sql)?
            .into_iter()
            .filter(|t| t.kind == HiveTokenKind::Parameter)
            .map(|t| t.text)
            .collect())
    }

    #[test]
    fn comments_follow_spark() {
        // Nested comments, as Spark has them.
        assert_eq!(params("/* a /* b */ :no */ :yes"), Ok(vec![":yes"]));
        // `/*+` inside a comment does not nest: the comment ends at the first `*/`.
        assert_eq!(params("/* a /*+ b */ :yes */"), Ok(vec![":yes"]));
        assert_eq!(params("/*/**/ :no */ :yes"), Ok(vec![":yes"]));
        // A hint's contents are code.
        assert_eq!(params("SELECT /*+ :yes */ 1"), Ok(vec![":yes"]));
        // `\r` ends a line comment; `\` before `\n` continues it; before `\r\n` not.
        assert_eq!(params("-- a\r:yes"), Ok(vec![":yes"]));
        assert_eq!(params("-- a \\\n:no\n:yes"), Ok(vec![":yes"]));
        assert_eq!(params("-- a \\\r\n:yes"), Ok(vec![":yes"]));
        assert_eq!(params("-- a \\\\\n:no\n:yes"), Ok(vec![":yes"]));
        // `*/` outside a comment is one token, so `**/*` opens no comment.
        assert_eq!(params("SELECT 2**/* :yes"), Ok(vec![":yes"]));
        assert!(params("/* a /* b */").is_err());
    }

    #[test]
    fn strings_and_identifiers_follow_spark() {
        assert_eq!(params(r"SELECT 'a\' :no', :yes"), Ok(vec![":yes"]));
        assert_eq!(params(r#"SELECT "a\" :no", :yes"#), Ok(vec![":yes"]));
        // Raw strings have no escapes: the literal ends at the first quote.
        assert_eq!(params(r"SELECT r'a\', :yes"), Ok(vec![":yes"]));
        assert_eq!(params(r#"SELECT R"a\", :yes"#), Ok(vec![":yes"]));
        // ... but `r` inside a word is no prefix.
        assert_eq!(params(r"SELECT xr'a\' :no', :yes"), Ok(vec![":yes"]));
        assert_eq!(params("SELECT `a``:no`, :yes, a::int"), Ok(vec![":yes"]));
    }

    #[test]
    fn uncertain_statements_are_errors() {
        for sql in [
            "SELECT '${x}', :p",
            "SELECT 'open",
            "SELECT r'open",
            "SELECT `open",
            "SELECT 1 /* open",
            "SELECT a://b--c, :p",
            "SELECT 1 AS é, :p",
        ] {
            assert!(tokenize(sql).is_err(), "{sql}");
        }
        assert!(tokenize("SELECT 'é', `é` -- é\n, :p /* é */").is_ok());
    }

    #[test]
    fn quoted_identifiers_name_their_text() {
        let tokens = tokenize("SELECT `Java``Method`, reflect").unwrap();
        assert_eq!(tokens[1].identifier().as_deref(), Some("java`method"));
        assert!(tokens[3].is_word("REFLECT"));
    }
}
