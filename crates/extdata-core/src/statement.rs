//! [`Statement`]: SQL with named `:name` parameters, rendered per dialect.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::value::Value;

mod clickhouse;
mod hive;
pub use hive::{HiveToken, HiveTokenKind};

/// The SQL dialect a statement is rendered for: decides how the SQL is lexed (which
/// quotes and comments exist) and how placeholders are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Dialect {
    /// PostgreSQL: `$1`, `$$dollar quotes$$`, `E'…'` strings, nested block comments.
    Postgres,
    /// MySQL and MariaDB: `?`, backtick identifiers, backslash escapes in strings, `#`
    /// comments.
    MySql,
    /// SQLite: `?NNN` (numbered, so a repeated name binds once).
    Sqlite,
    /// Microsoft SQL Server: `@P1`, `[bracket]` identifiers.
    MsSql,
    /// Oracle: `:1`.
    Oracle,
    /// ClickHouse: `?` (client-side binding), backtick identifiers, backslash escapes.
    ClickHouse,
    /// HiveQL and Spark SQL: no server-side binding; literals are rendered client-side.
    /// Lexed exactly as Spark's lexer does (nested comments, raw strings, line-comment
    /// continuation); a statement whose placeholders cannot be placed with certainty is
    /// refused by [`Statement::render_inline`] (see [`Statement::hive_tokens`]).
    Hive,
}

impl Dialect {
    fn backslash_escapes(self) -> bool {
        matches!(self, Dialect::MySql | Dialect::ClickHouse | Dialect::Hive)
    }
    fn backtick_identifiers(self) -> bool {
        matches!(
            self,
            Dialect::MySql | Dialect::ClickHouse | Dialect::Hive | Dialect::Sqlite
        )
    }
    fn bracket_identifiers(self) -> bool {
        matches!(self, Dialect::MsSql | Dialect::Sqlite)
    }
    fn hash_comments(self) -> bool {
        matches!(self, Dialect::MySql | Dialect::ClickHouse)
    }

    /// The byte ranges of `sql` that are code — outside string literals, quoted
    /// identifiers and comments — as this dialect's lexer (the one placeholders are found
    /// with) sees them.
    ///
    /// Between two consecutive ranges lies exactly one literal, quoted identifier or
    /// comment (two that touch are separated by an empty range), so its first byte tells
    /// what it is: a quote (`'`, `"`, `` ` ``, `[`, PostgreSQL's `$`) or a comment marker
    /// (`-`, `/`, `#`). There is always one range more than such pieces. Backends use it
    /// for checks that a keyword or `;` inside a literal or comment must not fool.
    ///
    /// ```
    /// use extdata_core::Dialect;
    /// let sql = "SELECT ';' /* ; */; x";
    /// let code: Vec<&str> = Dialect::Sqlite.code_ranges(sql).into_iter().map(|r| &sql[r]).collect();
    /// assert_eq!(code, ["SELECT ", " ", "; x"]);
    /// ```
    pub fn code_ranges(self, sql: &str) -> Vec<std::ops::Range<usize>> {
        let bytes = sql.as_bytes();
        let mut ranges = Vec::new();
        let (mut start, mut i) = (0, 0);
        while i < bytes.len() {
            match skip_piece(bytes, i, self) {
                Some(end) => {
                    ranges.push(start..i);
                    i = end;
                    start = end;
                }
                None => i += 1,
            }
        }
        ranges.push(start..bytes.len());
        ranges
    }
}

/// A statement: SQL text with named parameters (`:name`) and their bound values.
///
/// The parser skips string literals, quoted identifiers, comments and `::` casts, so
/// only real placeholders are replaced; values are always sent as bound parameters (or,
/// for servers without binding, rendered by the backend's literal escaper).
///
/// ```
/// use extdata_core::{Dialect, Statement};
/// let stmt = Statement::new("SELECT * FROM t WHERE a = :a AND b::text = ':a' OR c = :a")
///     .bind("a", 7_i64);
/// let rendered = stmt.render(Dialect::Postgres).unwrap();
/// assert_eq!(rendered.sql, "SELECT * FROM t WHERE a = $1 AND b::text = ':a' OR c = $1");
/// assert_eq!(rendered.params.len(), 1);
/// ```
#[derive(Clone, PartialEq)]
pub struct Statement {
    sql: String,
    params: BTreeMap<String, Value>,
}

impl Statement {
    /// A statement with no parameters bound yet.
    pub fn new(sql: impl Into<String>) -> Self {
        Statement {
            sql: sql.into(),
            params: BTreeMap::new(),
        }
    }

    /// Binds `value` to `:name` (replacing an earlier value).
    pub fn bind(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.params.insert(name.into(), value.into());
        self
    }

    /// Binds `value` to `:name` in place.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<Value>) {
        self.params.insert(name.into(), value.into());
    }

    /// The SQL as written, with `:name` placeholders.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The bound values by name.
    pub fn params(&self) -> &BTreeMap<String, Value> {
        &self.params
    }

    /// The parameter names the SQL uses, in order of first appearance.
    pub fn placeholder_names(&self, dialect: Dialect) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for token in lex(&self.sql, dialect) {
            if let Token::Param(name) = token
                && !names.iter().any(|n| n == name)
            {
                names.push(name.to_owned());
            }
        }
        names
    }

    /// The first keyword of the SQL in lower case, after leading whitespace and comments
    /// (`--`, `/* */`, and `#` where the dialect has it); empty when there is none.
    ///
    /// Backends use it to refuse statements that would break their own handling of a
    /// call, e.g. a `COMMIT` inside a batch they run in one transaction.
    ///
    /// ```
    /// use extdata_core::{Dialect, Statement};
    /// let stmt = Statement::new("/* sync */ -- why\n  Commit;");
    /// assert_eq!(stmt.leading_keyword(Dialect::Postgres), "commit");
    /// ```
    pub fn leading_keyword(&self, dialect: Dialect) -> String {
        let bytes = self.sql.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b if b.is_ascii_whitespace() => i += 1,
                b'-' if bytes.get(i + 1) == Some(&b'-') => i = skip_until(bytes, i, b"\n"),
                b'#' if dialect.hash_comments() => i = skip_until(bytes, i, b"\n"),
                b'/' if bytes.get(i + 1) == Some(&b'*') => {
                    i = skip_block_comment(bytes, i, dialect == Dialect::Postgres)
                }
                _ => break,
            }
        }
        bytes[i.min(bytes.len())..]
            .iter()
            .take_while(|b| b.is_ascii_alphabetic())
            .map(|b| char::from(b.to_ascii_lowercase()))
            .collect()
    }

    /// Refuses a batch (for [`ExternalSource::execute_batch`]) in which a statement
    /// starts with one of `transaction_control` (lower case): a backend that runs a batch
    /// in one transaction lists the keywords that would end or nest it, so that the
    /// statements after them would no longer be all-or-nothing.
    ///
    /// The error is [`ErrorKind::Unsupported`] and names the statement's place.
    ///
    /// ```
    /// use extdata_core::{Dialect, ErrorKind, Statement};
    /// let batch = [Statement::new("INSERT INTO t VALUES (1)"), Statement::new("COMMIT")];
    /// let error = Statement::refuse_transaction_control(&batch, Dialect::Postgres, &["commit"])
    ///     .unwrap_err();
    /// assert_eq!(error.kind(), ErrorKind::Unsupported);
    /// assert!(error.message().contains("statement 2 of the batch"));
    /// ```
    ///
    /// [`ExternalSource::execute_batch`]: crate::ExternalSource::execute_batch
    /// [`ErrorKind::Unsupported`]: crate::ErrorKind::Unsupported
    pub fn refuse_transaction_control(
        batch: &[Statement],
        dialect: Dialect,
        transaction_control: &[&str],
    ) -> Result<()> {
        for (index, statement) in batch.iter().enumerate() {
            let keyword = statement.leading_keyword(dialect);
            if transaction_control.contains(&keyword.as_str()) {
                return Err(Error::unsupported(format!(
                    "statement {} of the batch is transaction control ({}): a batch already \
                     runs in one transaction",
                    index + 1,
                    keyword.to_ascii_uppercase()
                )));
            }
        }
        Ok(())
    }

    /// The statement's tokens as Spark's lexer splits them (comments and whitespace
    /// left out), for backends that check a Hive/Spark statement before sending it.
    ///
    /// Fails with [`ErrorKind::Parameter`](crate::ErrorKind::Parameter) when the text's
    /// structure cannot be known with certainty (`${` variable substitution, an
    /// unterminated string or comment, a non-ASCII character in code, a URI-like
    /// identifier); the message names the construct, never the text.
    ///
    /// ```
    /// use extdata_core::{HiveTokenKind, Statement};
    /// let stmt = Statement::new("SELECT /* a /* nested */ :no */ r'\\', :yes");
    /// let tokens = stmt.hive_tokens().unwrap();
    /// assert!(tokens[0].is_word("select"));
    /// assert_eq!(tokens[1].kind, HiveTokenKind::String);
    /// assert_eq!(tokens[3].text, ":yes");
    /// ```
    pub fn hive_tokens(&self) -> Result<Vec<HiveToken<'_>>> {
        hive::tokenize(&self.sql).map_err(|why| {
            Error::parameter(format!(
                "the statement cannot be lexed with certainty for Hive/Spark: {why}"
            ))
        })
    }

    /// [`lex`], except that for Hive a statement whose placeholders cannot be placed
    /// with certainty is an error (unless it has no placeholders and no values).
    fn checked_lex(&self, dialect: Dialect) -> Result<Vec<Token<'_>>> {
        if dialect == Dialect::ClickHouse {
            return self.clickhouse_checked_lex();
        }
        if dialect != Dialect::Hive {
            return Ok(lex(&self.sql, dialect));
        }
        match self.hive_tokens() {
            Ok(tokens) => Ok(hive_placeholders(&self.sql, &tokens)),
            Err(error) => {
                let generic = lex_generic(&self.sql, dialect);
                if self.params.is_empty() && !generic.iter().any(|t| matches!(t, Token::Param(_))) {
                    Ok(generic)
                } else {
                    Err(error)
                }
            }
        }
    }

    /// [`lex`] for ClickHouse, refusing a statement with placeholders or values whose
    /// placeholders cannot be placed with certainty (see `statement/clickhouse.rs`).
    fn clickhouse_checked_lex(&self) -> Result<Vec<Token<'_>>> {
        let tokens = lex(&self.sql, Dialect::ClickHouse);
        if let Some(doubt) = clickhouse::doubt(&self.sql)
            && (!self.params.is_empty() || tokens.iter().any(|t| matches!(t, Token::Param(_))))
        {
            return Err(Error::parameter(format!(
                "the statement cannot be lexed with certainty for ClickHouse, so its \
                 placeholders are not bound: {doubt}"
            )));
        }
        Ok(tokens)
    }

    /// Renders the SQL for `dialect` with positional placeholders, and the values in
    /// placeholder order.
    ///
    /// Fails with [`ErrorKind::Parameter`](crate::ErrorKind::Parameter) when a
    /// placeholder has no value or a bound value is not used (a likely typo).
    pub fn render(&self, dialect: Dialect) -> Result<RenderedStatement> {
        let mut order: Vec<&str> = Vec::new();
        let mut params: Vec<Value> = Vec::new();
        let sql = self.substitute(dialect, 8, |sql, name, value| {
            let position = match dialect {
                // `?` cannot refer back: a name used twice is bound twice.
                Dialect::MySql | Dialect::ClickHouse | Dialect::Hive => None,
                _ => order.iter().position(|n| *n == name).map(|i| i + 1),
            };
            let position = position.unwrap_or_else(|| {
                order.push(name);
                params.push(value.clone());
                order.len()
            });
            match dialect {
                Dialect::Postgres => sql.push_str(&format!("${position}")),
                Dialect::Sqlite => sql.push_str(&format!("?{position}")),
                Dialect::MsSql => sql.push_str(&format!("@P{position}")),
                Dialect::Oracle => sql.push_str(&format!(":{position}")),
                _ => sql.push('?'),
            }
            Ok(())
        })?;
        Ok(RenderedStatement { sql, params })
    }

    /// Renders the SQL with every placeholder replaced by a literal produced by
    /// `literal` — for servers without parameter binding. `literal` must escape so that
    /// no value can leave its literal.
    pub fn render_inline(
        &self,
        dialect: Dialect,
        mut literal: impl FnMut(&Value) -> Result<String>,
    ) -> Result<String> {
        self.substitute(dialect, 16, |sql, _, value| {
            sql.push_str(&literal(value)?);
            Ok(())
        })
    }

    /// The SQL for `dialect` with each placeholder written by `place` (given the SQL so
    /// far, the placeholder's name and its value), after checking that every
    /// placeholder has a value and every value a placeholder: what [`render`](Self::render)
    /// and [`render_inline`](Self::render_inline) share.
    fn substitute<'s>(
        &'s self,
        dialect: Dialect,
        room: usize,
        mut place: impl FnMut(&mut String, &'s str, &'s Value) -> Result<()>,
    ) -> Result<String> {
        let mut sql = String::with_capacity(self.sql.len() + room);
        let mut seen: Vec<&str> = Vec::new();
        for token in self.checked_lex(dialect)? {
            match token {
                Token::Text(text) => sql.push_str(text),
                Token::Param(name) => {
                    let value = self.params.get(name).ok_or_else(|| {
                        Error::parameter(format!("parameter `:{name}` has no value"))
                    })?;
                    if !seen.contains(&name) {
                        seen.push(name);
                    }
                    place(&mut sql, name, value)?;
                }
            }
        }
        if seen.len() != self.params.len()
            && let Some(unused) = self.params.keys().find(|k| !seen.contains(&k.as_str()))
        {
            return Err(Error::parameter(format!(
                "parameter `:{unused}` is bound but the statement does not use it"
            )));
        }
        Ok(sql)
    }
}

impl From<&str> for Statement {
    fn from(sql: &str) -> Self {
        Statement::new(sql)
    }
}

impl From<String> for Statement {
    fn from(sql: String) -> Self {
        Statement::new(sql)
    }
}

// Values are left out: they may be personal data of a subscriber.
crate::debug_fields!(Statement |statement| {
    sql,
    params: statement.params.keys().collect::<Vec<_>>(),
});

/// A statement rendered for one dialect: SQL with positional placeholders and the
/// values in placeholder order.
#[derive(Clone, PartialEq)]
pub struct RenderedStatement {
    /// SQL with the dialect's placeholders.
    pub sql: String,
    /// Values in placeholder order.
    pub params: Vec<Value>,
}

crate::debug_fields!(RenderedStatement |rendered| { sql, params: rendered.params.len() });

#[derive(Debug, PartialEq)]
enum Token<'a> {
    Text(&'a str),
    Param(&'a str),
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_ident_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Splits SQL into text runs and `:name` placeholders.
fn lex(sql: &str, dialect: Dialect) -> Vec<Token<'_>> {
    if dialect == Dialect::Hive
        && let Ok(tokens) = hive::tokenize(sql)
    {
        return hive_placeholders(sql, &tokens);
    }
    lex_generic(sql, dialect)
}

/// Text runs and placeholders from Hive tokens.
fn hive_placeholders<'a>(sql: &'a str, tokens: &[HiveToken<'a>]) -> Vec<Token<'a>> {
    let mut out = Vec::new();
    let mut start = 0;
    for token in tokens.iter().filter(|t| t.kind == HiveTokenKind::Parameter) {
        if start < token.start {
            out.push(Token::Text(&sql[start..token.start]));
        }
        out.push(Token::Param(&token.text[1..]));
        start = token.start + token.text.len();
    }
    if start < sql.len() {
        out.push(Token::Text(&sql[start..]));
    }
    out
}

/// The lexer of every dialect but Hive (and Hive's fallback for
/// [`Statement::placeholder_names`] when its structure is uncertain).
fn lex_generic(sql: &str, dialect: Dialect) -> Vec<Token<'_>> {
    let bytes = sql.as_bytes();
    let mut tokens = Vec::new();
    let mut start = 0; // start of the current text run
    let mut i = 0;
    while i < bytes.len() {
        if let Some(end) = skip_piece(bytes, i, dialect) {
            i = end;
            continue;
        }
        match bytes[i] {
            b':' => {
                let next = bytes.get(i + 1).copied();
                if next == Some(b':') || next == Some(b'=') {
                    // `::type` cast or `:=` assignment.
                    i += 2;
                } else if i > 0 && bytes[i - 1] == b':' {
                    i += 1;
                } else if next.is_some_and(is_ident_start) {
                    let name_start = i + 1;
                    let mut end = name_start;
                    while end < bytes.len() && is_ident_char(bytes[end]) {
                        end += 1;
                    }
                    if start < i {
                        tokens.push(Token::Text(&sql[start..i]));
                    }
                    tokens.push(Token::Param(&sql[name_start..end]));
                    i = end;
                    start = end;
                } else {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    if start < bytes.len() {
        tokens.push(Token::Text(&sql[start..]));
    }
    tokens
}

/// The end of the string literal, quoted identifier or comment that starts at `i`, or
/// `None` when none starts there: the one place that knows the dialect's quotes and
/// comments, for [`lex`] and [`Dialect::code_ranges`].
fn skip_piece(bytes: &[u8], i: usize, dialect: Dialect) -> Option<usize> {
    if dialect == Dialect::ClickHouse {
        return clickhouse::piece(bytes, i).map(|piece| piece.end);
    }
    let end = match bytes[i] {
        b'\'' => {
            let backslash = dialect.backslash_escapes()
                || (dialect == Dialect::Postgres
                    && i > 0
                    && matches!(bytes[i - 1], b'E' | b'e')
                    && (i < 2 || !is_ident_char(bytes[i - 2])));
            skip_quoted(bytes, i, b'\'', backslash)
        }
        b'"' => skip_quoted(bytes, i, b'"', dialect.backslash_escapes()),
        b'`' if dialect.backtick_identifiers() => skip_quoted(bytes, i, b'`', false),
        b'[' if dialect.bracket_identifiers() => skip_until(bytes, i + 1, b"]"),
        b'-' if bytes.get(i + 1) == Some(&b'-') => skip_until(bytes, i, b"\n"),
        b'#' if dialect.hash_comments() => skip_until(bytes, i, b"\n"),
        b'/' if bytes.get(i + 1) == Some(&b'*') => {
            skip_block_comment(bytes, i, dialect == Dialect::Postgres)
        }
        b'$' if dialect == Dialect::Postgres => {
            let end = skip_dollar_quoted(bytes, i);
            if end == i + 1 {
                return None;
            }
            end
        }
        _ => return None,
    };
    Some(end)
}

/// Skips a literal opened at `open` by `quote`; a doubled quote is an escaped quote.
/// Returns the index after the closing quote (or the end for an unterminated one).
fn skip_quoted(bytes: &[u8], open: usize, quote: u8, backslash: bool) -> usize {
    let mut i = open + 1;
    while i < bytes.len() {
        let b = bytes[i];
        if backslash && b == b'\\' {
            i += 2;
        } else if b == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return i + 1;
            }
        } else {
            i += 1;
        }
    }
    bytes.len()
}

fn skip_until(bytes: &[u8], from: usize, end: &[u8]) -> usize {
    let mut i = from;
    while i < bytes.len() {
        if bytes[i..].starts_with(end) {
            return i + end.len();
        }
        i += 1;
    }
    bytes.len()
}

fn skip_block_comment(bytes: &[u8], open: usize, nested: bool) -> usize {
    let mut depth = 0usize;
    let mut i = open;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"/*") && (nested || depth == 0) {
            depth += 1;
            i += 2;
        } else if bytes[i..].starts_with(b"*/") {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// Skips a PostgreSQL dollar-quoted string (`$$…$$`, `$tag$…$tag$`); a `$1`-style or
/// lone `$` is left as text.
fn skip_dollar_quoted(bytes: &[u8], open: usize) -> usize {
    let mut j = open + 1;
    while j < bytes.len() && is_ident_char(bytes[j]) {
        j += 1;
    }
    let tag_is_valid = bytes.get(j) == Some(&b'$')
        && (j == open + 1 || !bytes[open + 1].is_ascii_digit())
        && (open == 0 || !is_ident_char(bytes[open - 1]));
    if !tag_is_valid {
        return open + 1;
    }
    let tag = &bytes[open..=j];
    skip_until(bytes, j + 1, tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(sql: &str, dialect: Dialect) -> Vec<String> {
        Statement::new(sql).placeholder_names(dialect)
    }

    #[test]
    fn skips_literals_identifiers_comments_and_casts() {
        let sql = r#"SELECT ':a', ":b", x::int, /* :c */ y -- :d
            FROM t WHERE z = :real"#;
        assert_eq!(names(sql, Dialect::Postgres), ["real"]);
    }

    #[test]
    fn doubled_quotes_stay_inside_the_literal() {
        let sql = "SELECT 'it''s :not' , :yes";
        assert_eq!(names(sql, Dialect::Postgres), ["yes"]);
        assert_eq!(names(sql, Dialect::MySql), ["yes"]);
    }

    #[test]
    fn backslash_escapes_follow_the_dialect() {
        // In MySQL `\'` escapes the quote, so `:no` is still inside the literal.
        let sql = r"SELECT 'a\' :no', :yes";
        assert_eq!(names(sql, Dialect::MySql), ["yes"]);
        // In standard PostgreSQL strings a backslash is an ordinary character: the
        // literal ends at `\'`, so `:no` is a parameter and `', :yes` opens a literal.
        assert_eq!(names(sql, Dialect::Postgres), ["no"]);
        // ... but not in E'' strings.
        assert_eq!(
            names(r"SELECT E'a\' :no', :yes", Dialect::Postgres),
            ["yes"]
        );
    }

    #[test]
    fn dialect_specific_quotes_and_comments() {
        assert_eq!(names("SELECT `:no`, :yes # :no\n", Dialect::MySql), ["yes"]);
        assert_eq!(names("SELECT [:no], :yes", Dialect::MsSql), ["yes"]);
        assert_eq!(
            names("SELECT $$ :no $$, $tag$ :no $tag$, :yes", Dialect::Postgres),
            ["yes"]
        );
        assert_eq!(
            names(
                "SELECT /* a /* nested :no */ :no */ :yes",
                Dialect::Postgres
            ),
            ["yes"]
        );
    }

    #[test]
    fn assignment_and_time_literals_are_not_parameters() {
        assert_eq!(names("SET @x := 1; SELECT :yes", Dialect::MySql), ["yes"]);
        assert_eq!(names("SELECT '12:30:00', :yes", Dialect::MySql), ["yes"]);
        assert_eq!(names("SELECT a ::text, :yes", Dialect::Postgres), ["yes"]);
    }

    #[test]
    fn renders_each_dialect() {
        let stmt = Statement::new("SELECT :a, :b, :a")
            .bind("a", 1_i32)
            .bind("b", "x");
        let cases = [
            (Dialect::Postgres, "SELECT $1, $2, $1", 2),
            (Dialect::Sqlite, "SELECT ?1, ?2, ?1", 2),
            (Dialect::MsSql, "SELECT @P1, @P2, @P1", 2),
            (Dialect::Oracle, "SELECT :1, :2, :1", 2),
            (Dialect::MySql, "SELECT ?, ?, ?", 3),
        ];
        for (dialect, sql, count) in cases {
            let r = stmt.render(dialect).unwrap();
            assert_eq!(r.sql, sql, "{dialect:?}");
            assert_eq!(r.params.len(), count, "{dialect:?}");
        }
        let mysql = stmt.render(Dialect::MySql).unwrap();
        assert_eq!(
            mysql.params,
            [Value::I32(1), Value::Text("x".into()), Value::I32(1)]
        );
    }

    #[test]
    fn missing_and_unused_parameters_are_errors() {
        let err = Statement::new("SELECT :a")
            .render(Dialect::Postgres)
            .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Parameter);
        assert!(err.to_string().contains(":a"));
        let err = Statement::new("SELECT 1")
            .bind("typo", 1_i32)
            .render(Dialect::Postgres)
            .unwrap_err();
        assert!(err.to_string().contains(":typo"));
    }

    #[test]
    fn render_inline_uses_the_escaper() {
        let stmt = Statement::new("SELECT :s, ':s'").bind("s", "o'k");
        let sql = stmt
            .render_inline(Dialect::Hive, |v| {
                Ok(format!("'{}'", v.as_str().unwrap().replace('\'', "\\'")))
            })
            .unwrap();
        assert_eq!(sql, r"SELECT 'o\'k', ':s'");
    }

    #[test]
    fn leading_keyword_skips_whitespace_and_comments() {
        let word = |sql: &str, dialect| Statement::new(sql).leading_keyword(dialect);
        assert_eq!(word("  COMMIT", Dialect::Postgres), "commit");
        assert_eq!(
            word("-- a\n/* b /* nested */ */ end", Dialect::Postgres),
            "end"
        );
        assert_eq!(word("# c\nRollback", Dialect::MySql), "rollback");
        assert_eq!(word("# c\nRollback", Dialect::Postgres), "");
        assert_eq!(word("beginx(1)", Dialect::Sqlite), "beginx");
        assert_eq!(word("(SELECT 1)", Dialect::Sqlite), "");
        assert_eq!(word("/* unterminated", Dialect::Postgres), "");
        assert_eq!(word("", Dialect::MySql), "");
    }

    #[test]
    fn unterminated_constructs_do_not_panic() {
        for sql in [
            "'", "\"", "/*", "$$", "$a", "[", "`", ":", "::", "--", "E'\\",
        ] {
            for dialect in [
                Dialect::Postgres,
                Dialect::MySql,
                Dialect::MsSql,
                Dialect::Sqlite,
            ] {
                let _ = Statement::new(sql).placeholder_names(dialect);
            }
        }
    }

    #[test]
    fn code_ranges_leave_out_exactly_one_piece_between_them() {
        let code = |sql: &str, dialect: Dialect| -> Vec<String> {
            dialect
                .code_ranges(sql)
                .into_iter()
                .map(|r| sql[r].to_owned())
                .collect()
        };
        assert_eq!(
            code("a'b'/*c*/[d]; e", Dialect::Sqlite),
            ["a", "", "", "; e"]
        );
        assert_eq!(code("", Dialect::Sqlite), [""]);
        assert_eq!(code("x $$;$$ y", Dialect::Postgres), ["x ", " y"]);
        assert_eq!(code("x $1;", Dialect::Postgres), ["x $1;"]);
        assert_eq!(code("# c\n;", Dialect::MySql), ["", ";"]);
        assert_eq!(code("# c\n;", Dialect::Sqlite), ["# c\n;"]);
        assert_eq!(code("'unterminated ;", Dialect::Sqlite), ["", ""]);
    }

    #[test]
    fn lexing_round_trips_the_text() {
        let sql = "SELECT 'a', :b, \"c\" -- d\n /* e */ $$f$$ :g::int";
        let joined: String = lex(sql, Dialect::Postgres)
            .into_iter()
            .map(|t| match t {
                Token::Text(t) => t.to_owned(),
                Token::Param(p) => format!(":{p}"),
            })
            .collect();
        assert_eq!(joined, sql);
    }
}
