//! Keeps bound values out of errors: ClickHouse quotes the query (syntax errors echo
//! it from the failing position on) and offending values (`Cannot parse string '…'`) in
//! its messages, and values rendered client-side are part of the query.

use extdata_core::{Error, Statement, Value};

use extdata_core::driver::ScrubbedError;

/// Values shorter than this are left alone when they appear on their own (as in
/// [`Error::redact_parameters`]): they identify nobody, and blanking them would garble
/// the message. Rendered literals are always replaced.
const MIN_CHARS: usize = 4;

/// The texts to remove from the errors of one call, with their replacements.
#[derive(Debug)]
pub(crate) struct Redactor {
    statement: Statement,
    needles: Vec<(String, String)>,
    /// Each value's text (and its parts' texts), with its parameter's name: a quoted
    /// piece of a message that is part of one is a cut-off value (`parsed just '…'`).
    texts: Vec<(String, String)>,
}

impl Redactor {
    /// For a call with `statement`, whose values were rendered by `render` or sent as
    /// the server parameters that `parameter(name, value)` names (`{name:Type}`, shown
    /// as `:name`) with their texts (an array's `['a\'b',NULL]`, which the server may
    /// quote back); `None` when it binds nothing.
    pub(crate) fn new(
        statement: &Statement,
        render: impl Fn(&Value) -> Option<String>,
        parameter: impl Fn(&str, &Value) -> Option<(String, String)>,
    ) -> Option<Self> {
        if statement.params().is_empty() {
            return None;
        }
        let mut needles = Vec::new();
        for (name, value) in statement.params() {
            if value.is_null() {
                continue;
            }
            if let Some((placeholder, text)) = parameter(name, value) {
                needles.push((placeholder, format!(":{name}")));
                if text.chars().count() >= MIN_CHARS {
                    needles.push((text, format!("<value of :{name}>")));
                }
            }
            if let Some(literal) = render(value) {
                // What was between quotes in the literal (hex digits, dates, decimals…).
                for (i, part) in literal.split('\'').enumerate() {
                    if i % 2 == 1 && part.len() >= MIN_CHARS {
                        needles.push((part.to_owned(), format!("<value of :{name}>")));
                    }
                }
                needles.push((literal, format!(":{name}")));
            }
            if let Value::Text(text) = value {
                // As the server quotes it: `'a\'b'`.
                let quoted = crate::types::quote_string(text);
                let inner = &quoted[1..quoted.len() - 1];
                if inner != text && inner.chars().count() >= MIN_CHARS {
                    needles.push((inner.to_owned(), format!("<value of :{name}>")));
                }
            }
        }
        // Longest first, so that a literal holding another needle is replaced whole.
        needles.sort_by_key(|(needle, _)| std::cmp::Reverse(needle.len()));
        let mut texts = Vec::new();
        for (name, value) in statement.params() {
            collect_texts(value, &mut |text| texts.push((text, name.clone())));
        }
        Some(Redactor {
            statement: statement.clone(),
            needles,
            texts,
        })
    }

    /// `text` without the call's values.
    pub(crate) fn text(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (needle, replacement) in &self.needles {
            if out.contains(needle.as_str()) {
                out = out.replace(needle.as_str(), replacement);
            }
        }
        self.without_quoted_parts(&without_cast_literals(&without_hex_literals(&out)))
    }

    /// `text` with every `'…'` piece that is part of a value's text (at least
    /// [`MIN_CHARS`] long) replaced by `<part of :name>`.
    fn without_quoted_parts(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(open) = rest.find('\'') {
            out.push_str(&rest[..=open]);
            rest = &rest[open + 1..];
            let Some(close) = rest.find('\'') else {
                break;
            };
            let piece = &rest[..close];
            let owner = (piece.chars().count() >= MIN_CHARS)
                .then(|| self.texts.iter().find(|(text, _)| text.contains(piece)))
                .flatten();
            match owner {
                Some((_, name)) => out.push_str(&format!("<part of :{name}>")),
                None => out.push_str(piece),
            }
            out.push('\'');
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        out
    }

    /// `error` without the call's values in its message and source; kind, code,
    /// connector and whether it is temporary stay.
    pub(crate) fn error(&self, error: Error) -> Error {
        let mut source_text = None;
        if let Some(source) = std::error::Error::source(&error) {
            let mut chain = source.to_string();
            let mut next = source.source();
            while let Some(cause) = next {
                chain.push_str(": ");
                chain.push_str(&cause.to_string());
                next = cause.source();
            }
            source_text = Some(self.text(&chain));
        }
        let mut redacted = Error::new(error.kind(), self.text(error.message()))
            .with_temporary(error.is_temporary());
        if let Some(connector) = error.connector() {
            redacted = redacted.with_connector(connector.to_owned());
        }
        if let Some(state) = error.sql_state() {
            redacted = redacted.with_sql_state(state.to_owned());
        }
        if let Some(text) = source_text {
            redacted = redacted.with_source(ScrubbedError::from_text(text));
        }
        redacted.redact_parameters(&self.statement)
    }
}

/// The texts a value may be quoted with in a message: its own and, for strings, as
/// ClickHouse escapes it; for arrays and the like, each element's.
fn collect_texts(value: &Value, found: &mut impl FnMut(String)) {
    match value {
        Value::Null => {}
        Value::Text(text) => {
            let quoted = crate::types::quote_string(text);
            found(quoted[1..quoted.len() - 1].to_owned());
            found(text.clone());
        }
        Value::Bytes(bytes) => found(String::from_utf8_lossy(bytes).into_owned()),
        Value::Array(items) | Value::Tuple(items) => {
            for item in items {
                collect_texts(item, found);
            }
        }
        Value::Map(entries) => {
            for (key, item) in entries {
                collect_texts(key, found);
                collect_texts(item, found);
            }
        }
        other => found(other.to_text_lossless()),
    }
}

/// Replaces the hex digits of every `unhex('…` in `text` (a rendered string, also when
/// the server cut the echoed query short inside it) with `…`.
fn without_hex_literals(text: &str) -> String {
    without_literals_after(text, "unhex('", |rest| {
        let digits = rest.bytes().take_while(u8::is_ascii_hexdigit).count();
        (digits > 0).then_some(digits)
    })
}

/// Replaces the text of every `_CAST('…'` in `text` with `…`: newer servers put each
/// server parameter's value into the query they echo in an error as
/// `_CAST('value', 'Type')` (a timestamp as its epoch seconds, which no text of the
/// bound value matches). The quoted text ends at the first `'` that no backslash
/// escapes, or at the end of `text` when the server cut it short.
fn without_cast_literals(text: &str) -> String {
    without_literals_after(text, "_CAST('", |rest| {
        let mut escaped = false;
        for (i, c) in rest.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '\'' => return Some(i),
                _ => {}
            }
        }
        Some(rest.len())
    })
}

/// `text` with the literal after each `open` replaced by `…`: `literal` gives its length
/// in bytes at the start of the text that follows `open` (`None`: there is none).
fn without_literals_after(
    text: &str,
    open: &str,
    literal: impl Fn(&str) -> Option<usize>,
) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(open) {
        out.push_str(&rest[..at + open.len()]);
        rest = &rest[at + open.len()..];
        if let Some(len) = literal(rest) {
            out.push('…');
            rest = &rest[len..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{ServerFeatures, literal};

    #[test]
    fn literals_and_values_leave_messages() {
        let statement = Statement::new("SELECT toUInt64(:email), :n")
            .bind("email", "bob'o@example.com")
            .bind("n", 7_i64);
        let features = ServerFeatures {
            modern_types: false,
        };
        let redactor =
            Redactor::new(&statement, |v| literal(v, features).ok(), |_, _| None).unwrap();
        let message = "Code: 6, e.displayText() = DB::Exception: Cannot parse string \
                       'bob\\'o@example.com' as UInt64, query: SELECT \
                       toUInt64(unhex('626F62276F406578616D706C652E636F6D')), toInt64(7); \
                       cut: unhex('626F6227";
        let text = redactor.text(message);
        assert!(!text.contains("bob"), "{text}");
        assert!(!text.contains("626F"), "{text}");
        assert!(text.contains("toUInt64(:email), :n"), "{text}");
        assert!(text.contains("unhex('…"), "{text}");
    }

    #[test]
    fn values_the_server_put_into_casts_leave_messages() {
        let statement = Statement::new("SELECT toIPv4(toString(:t)), :s")
            .bind("t", 1_i64)
            .bind("s", "x");
        let redactor = Redactor::new(
            &statement,
            |_| None,
            |name, _| Some((format!("{{{name}:String}}"), String::new())),
        )
        .unwrap();
        let message = "DB::Exception: Invalid IPv4 value: In scope SELECT \
                       toIPv4(toString(_CAST('1704164645.678', 'DateTime64(3)'))), \
                       _CAST('it\\'s a \\\\ secret', 'String'), _CAST('cut sh";
        let text = redactor.text(message);
        assert!(!text.contains("1704164645"), "{text}");
        assert!(!text.contains("secret"), "{text}");
        assert!(!text.contains("cut sh"), "{text}");
        assert!(
            text.contains("_CAST('…', 'DateTime64(3)'))), _CAST('…', 'String'), _CAST('…"),
            "{text}"
        );
        // The placeholders of a syntax error's echo read as the template's names.
        assert_eq!(redactor.text("near {s:String} AS"), "near :s AS");
    }
}
