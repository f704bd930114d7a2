//! The checks the fuzz targets run on each input. Each panics when an invariant breaks
//! (that is what libFuzzer reports); none panics on merely bad input.
//!
//! This file is also compiled on stable by `crates/extdata-reliability/tests/fuzz_checks.rs`
//! (through `#[path]`), which runs it on random inputs in CI, so it depends on the
//! `extdata` facade only.

use extdata::{DbKind, Decimal, Dialect, ErrorKind, Registry, Statement, Value};

/// A password written into every input, which must not come back in any problem.
pub const SENTINEL: &str = "fuzz-sentinel-Pw-0451";

/// A configuration file (TOML, then JSON): the registry answers with a registry or with
/// problems, each naming a field (except the known gap of `[[accounts]]` entries of the
/// wrong shape, see RELIABILITY.md) and none holding the password.
pub fn config_file(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    // Most inputs get the password line, so the secret reaches the validator.
    let with_password = format!("{text}\npassword = \"{SENTINEL}\"\n");
    for text in [text.as_ref(), with_password.as_str()] {
        for result in [Registry::from_toml_str(text), Registry::from_json_str(text)] {
            match result {
                Ok(registry) => {
                    let debug = format!("{registry:?}");
                    assert!(!debug.contains(SENTINEL), "password in a registry's Debug");
                    for connector in registry.connectors() {
                        let debug = format!("{connector:?}");
                        assert!(!debug.contains(SENTINEL), "password in a connector's Debug");
                    }
                }
                Err(problems) => {
                    assert!(!problems.is_empty(), "a rejection without a problem");
                    for problem in problems.iter() {
                        let known_gap =
                            problem.connector.starts_with("accounts[") && problem.field.is_empty();
                        assert!(
                            known_gap || !problem.field.trim().is_empty(),
                            "a problem without a field: {problem}"
                        );
                        assert!(
                            !problem.message.trim().is_empty(),
                            "a problem without a message"
                        );
                    }
                    let text = format!("{problems}\n{problems:?}");
                    assert!(!text.contains(SENTINEL), "password in a problem");
                }
            }
        }
    }
}

/// SQL in a dialect chosen by the first byte: with every placeholder bound, rendering
/// succeeds, and putting each placeholder's own text back gives the SQL as written.
pub fn statement(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let dialect = DbKind::ALL[usize::from(selector) % DbKind::ALL.len()].dialect();
    let sql = String::from_utf8_lossy(rest).into_owned();
    let names = Statement::new(sql.clone()).placeholder_names(dialect);
    let mut statement = Statement::new(sql.clone());
    for name in &names {
        statement.set(name.clone(), Value::Text(format!(":{name}")));
    }
    let rendered = match statement.render(dialect) {
        Ok(rendered) => rendered,
        // ClickHouse and Hive refuse placeholders their lexer cannot place with certainty.
        Err(error)
            if matches!(dialect, Dialect::ClickHouse | Dialect::Hive)
                && error.kind() == ErrorKind::Parameter
                && error.message().contains("with certainty") =>
        {
            return;
        }
        Err(error) => panic!("rendering with every name bound failed: {error}"),
    };
    assert!(
        rendered.params.len() >= names.len(),
        "fewer values than names"
    );
    let back = statement
        .render_inline(dialect, |value| {
            Ok(value.as_str().unwrap_or_default().to_owned())
        })
        .unwrap_or_else(|error| panic!("inline rendering failed: {error}"));
    assert_eq!(back, sql, "the lexer lost or invented text");
    // Unbound or extra names are `Parameter` errors, never panics.
    let extra = Statement::new(sql).bind("surely_unused_name", 1_i64);
    if let Err(error) = extra.render(dialect) {
        assert_eq!(error.kind(), extdata::ErrorKind::Parameter, "{error}");
    }
}

/// Any text as a Hive literal: it ends where the escaper meant it to (the lexer sees
/// the placeholder after it and none inside it), and no `${` reaches the server.
pub fn hive_literal(data: &[u8]) {
    let text = String::from_utf8_lossy(data).into_owned();
    let statement = Statement::new("SELECT :a AS a, ':x' AS b, :a AS c -- :y").bind("a", text);
    let rendered = statement
        .render_inline(Dialect::Hive, extdata::hive::literal)
        .unwrap_or_else(|error| panic!("a text value must render: {error}"));
    assert!(
        !rendered.contains("${"),
        "variable substitution opener in {rendered:?}"
    );
    let probe = format!("{rendered}\n, :after");
    assert_eq!(
        Statement::new(probe).placeholder_names(Dialect::Hive),
        ["after"],
        "a value left its literal: {rendered:?}"
    );
}

/// Any text as a decimal: parsing is bounded (digits, scale, length; never memory that
/// grows with an exponent), a success is canonical and parses back to itself, and a
/// refusal is a `Parameter` error with one of the fixed messages (never the text).
pub fn decimal(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    // Half the inputs get an exponent from their first bytes, to reach the bounds.
    let with_exponent = match data.first() {
        Some(&b) if b % 2 == 0 && data.len() >= 9 => {
            let exponent = i64::from_le_bytes(data[1..9].try_into().unwrap_or_default());
            format!("{}e{exponent}", String::from_utf8_lossy(&data[9..]))
        }
        _ => text.clone().into_owned(),
    };
    for text in [text.as_ref(), with_exponent.as_str()] {
        match text.parse::<Decimal>() {
            Ok(decimal) => {
                let canonical = decimal.as_str();
                assert!(
                    canonical.len()
                        <= Decimal::MAX_INTEGER_DIGITS + Decimal::MAX_SCALE as usize + 3,
                    "a decimal beyond the bounds: {} bytes",
                    canonical.len()
                );
                assert!(
                    decimal.scale() <= Decimal::MAX_SCALE,
                    "scale beyond the bound"
                );
                let again: Decimal = canonical
                    .parse()
                    .unwrap_or_else(|e| panic!("canonical {canonical:?} does not parse: {e}"));
                assert_eq!(again, decimal, "not canonical: {canonical:?}");
            }
            Err(error) => {
                assert_eq!(error.kind(), ErrorKind::Parameter, "{error}");
                let message = error.message();
                assert!(
                    message == "not a decimal number"
                        || message.starts_with("decimal has more than ")
                        || message.starts_with("decimal text is longer than "),
                    "unexpected message: {message}"
                );
            }
        }
    }
}

/// Any bytes as a ClickHouse value rendered client-side (text, bytes, a float from the
/// first 8 bytes, all in an array): the rendered SQL holds none of the value's text —
/// only the renderer's words, digits and hex digits — so the lexer sees the placeholder
/// after it and none inside it, in a template full of strings and comments.
pub fn clickhouse_literal(data: &[u8]) {
    let float = f64::from_le_bytes(
        data.get(..8)
            .and_then(|b| b.try_into().ok())
            .unwrap_or_default(),
    );
    let text = String::from_utf8_lossy(data).into_owned();
    let value = Value::Array(vec![
        Value::Text(text.clone()),
        Value::Bytes(data.to_vec()),
        Value::F64(float),
        Value::Null,
    ]);
    for modern in [false, true] {
        let literal = extdata::clickhouse::literal(&value, modern)
            .unwrap_or_else(|error| panic!("text, bytes and floats must render: {error}"));
        assert!(
            literal
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b" '()[],.-*/_".contains(&b)),
            "a value's own characters in {literal:?}"
        );
        for marker in ["--", "/*", "*/", "`", "\"", "\\", "#", "$"] {
            assert!(!literal.contains(marker), "{marker} in {literal:?}");
        }
        let statement = Statement::new(r"SELECT :a AS `a\` :x`, 'b\' :x' AS b, :a /* :y */ -- :y")
            .bind("a", value.clone());
        let rendered = statement
            .render_inline(Dialect::ClickHouse, |v| {
                extdata::clickhouse::literal(v, modern)
            })
            .unwrap_or_else(|error| panic!("the template must render: {error}"));
        let probe = format!("{rendered}\n, :after");
        assert_eq!(
            Statement::new(probe).placeholder_names(Dialect::ClickHouse),
            ["after"],
            "a value left its literal: {rendered:?}"
        );
    }
}
