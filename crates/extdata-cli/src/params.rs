//! `--param name=value` and `--param name:type=value`: command-line text → bound [`Value`].
//!
//! A value is text unless a type is given; typed values are parsed here, so a mistake
//! is reported before any connection is made, naming the parameter but not quoting the
//! value (parameter values are personal data). Parsing is bounded: decimals by the
//! core's limits ([`Decimal::MAX_INTEGER_DIGITS`], [`Decimal::MAX_SCALE`]), the other
//! types by their fixed widths; nothing allocates more than the argument's own size.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use extdata::{Decimal, Statement, Value, parse_bool};

/// One parsed `--param`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Param {
    /// The placeholder name, without the leading `:`.
    pub(crate) name: String,
    /// The value to bind.
    pub(crate) value: Value,
}

/// The types a parameter may be given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ParamType {
    Text,
    Int,
    Float,
    Bool,
    Decimal,
    Date,
    Timestamp,
    Bytes,
    Null,
}

/// The names accepted after the `:`, for error messages.
const TYPE_NAMES: &str = "text, int, float, bool, decimal, date, timestamp, bytes, null";

impl FromStr for ParamType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "text" | "string" | "str" => ParamType::Text,
            "int" | "integer" | "i64" | "bigint" => ParamType::Int,
            "float" | "double" | "f64" => ParamType::Float,
            "bool" | "boolean" => ParamType::Bool,
            "decimal" | "numeric" => ParamType::Decimal,
            "date" => ParamType::Date,
            "timestamp" | "datetime" | "timestamptz" => ParamType::Timestamp,
            "bytes" | "base64" => ParamType::Bytes,
            "null" => ParamType::Null,
            _ => return Err(format!("unknown type `{s}`; known types: {TYPE_NAMES}")),
        })
    }
}

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParamType::Text => "text",
            ParamType::Int => "int",
            ParamType::Float => "float",
            ParamType::Bool => "bool",
            ParamType::Decimal => "decimal",
            ParamType::Date => "date",
            ParamType::Timestamp => "timestamp",
            ParamType::Bytes => "bytes",
            ParamType::Null => "null",
        })
    }
}

/// Parses one `--param` argument: `name=value`, `name:type=value`, or `name:null`.
///
/// Used as clap's value parser, so a mistake is a usage error (exit 2) whose message
/// quotes the argument.
pub(crate) fn parse_param(arg: &str) -> Result<Param, String> {
    let (spec, raw) = match arg.split_once('=') {
        Some((spec, raw)) => (spec, Some(raw)),
        None => (arg, None),
    };
    // `:name=…` reads like the placeholder itself; accept it.
    let spec = spec.strip_prefix(':').unwrap_or(spec);
    let (name, kind) = match spec.split_once(':') {
        Some((name, kind)) => (name, Some(kind.trim().parse::<ParamType>()?)),
        None => (spec, None),
    };
    check_name(name)?;
    let value = match (kind, raw) {
        (Some(ParamType::Null), None | Some("")) => Value::Null,
        (Some(ParamType::Null), Some(_)) => {
            return Err(format!(
                "parameter `{name}`: a null parameter takes no value (write `{name}:null`)"
            ));
        }
        (_, None) => {
            return Err(format!(
                "parameter `{name}` has no value; write `{name}=VALUE` or `{name}:TYPE=VALUE`"
            ));
        }
        (kind, Some(raw)) => parse_value(kind.unwrap_or(ParamType::Text), raw)
            .map_err(|why| format!("parameter `{name}`: {why}"))?,
    };
    Ok(Param {
        name: name.to_owned(),
        value,
    })
}

/// A name the statement parser recognises as a placeholder: `[A-Za-z_][A-Za-z0-9_]*`.
fn check_name(name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let valid = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid {
        Ok(())
    } else if name.is_empty() {
        Err("a parameter needs a name: `name=value` or `name:type=value`".to_owned())
    } else {
        Err(format!(
            "`{name}` is not a parameter name (letters, digits and `_`, not starting with a digit)"
        ))
    }
}

fn parse_value(kind: ParamType, raw: &str) -> Result<Value, String> {
    let trimmed = raw.trim();
    let invalid = |what: &str| format!("the value is not {what}");
    Ok(match kind {
        // Text is taken exactly as given: spaces may be meaningful.
        ParamType::Text => Value::Text(raw.to_owned()),
        ParamType::Int => Value::I64(trimmed.parse::<i64>().map_err(|e| {
            use std::num::IntErrorKind::{NegOverflow, PosOverflow};
            match e.kind() {
                PosOverflow | NegOverflow => {
                    "the value does not fit a 64-bit signed integer (use decimal)".to_owned()
                }
                _ => invalid("an integer"),
            }
        })?),
        ParamType::Float => Value::F64(
            trimmed
                .parse::<f64>()
                .map_err(|_| invalid("a floating-point number"))?,
        ),
        ParamType::Bool => Value::Bool(
            parse_bool(trimmed)
                .ok_or_else(|| invalid("a boolean (true/false, 1/0, yes/no, on/off)"))?,
        ),
        // The core's error says which bound was passed, without the text.
        ParamType::Decimal => Value::Decimal(
            trimmed
                .parse::<Decimal>()
                .map_err(|e| e.message().to_owned())?,
        ),
        ParamType::Date => Value::Date(
            NaiveDate::parse_from_str(trimmed, "%Y-%m-%d")
                .map_err(|_| invalid("a date like 2024-03-01"))?,
        ),
        ParamType::Timestamp => parse_timestamp(trimmed).ok_or_else(|| {
            invalid("a timestamp like 2024-03-01T10:00:00 or 2024-03-01T10:00:00+02:00")
        })?,
        ParamType::Bytes => Value::Bytes(decode_base64(trimmed).ok_or_else(|| invalid("base64"))?),
        ParamType::Null => Value::Null,
    })
}

/// RFC 3339 with an offset (`Z` included) is an instant; without one, a wall-clock time.
fn parse_timestamp(text: &str) -> Option<Value> {
    if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
        return Some(Value::TimestampTz(instant));
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .map(Value::Timestamp)
}

/// Standard base64, with or without padding.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
    STANDARD
        .decode(text)
        .or_else(|_| STANDARD_NO_PAD.decode(text))
        .ok()
}

/// Builds the statement with every parameter bound; a name given twice is an error.
pub(crate) fn bind_all(sql: &str, params: &[Param]) -> Result<Statement, String> {
    let mut statement = Statement::new(sql);
    for param in params {
        if statement.params().contains_key(&param.name) {
            return Err(format!(
                "parameter `{}` is given more than once",
                param.name
            ));
        }
        statement.set(param.name.clone(), param.value.clone());
    }
    Ok(statement)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{FixedOffset, NaiveTime, TimeZone as _};

    fn value(arg: &str) -> Value {
        parse_param(arg)
            .unwrap_or_else(|e| panic!("{arg}: {e}"))
            .value
    }

    fn error(arg: &str) -> String {
        match parse_param(arg) {
            Ok(p) => panic!("{arg} was accepted as {p:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn untyped_value_is_text_taken_verbatim() {
        assert_eq!(
            value("email=ann@example.com"),
            Value::Text("ann@example.com".into())
        );
        assert_eq!(value("s= padded "), Value::Text(" padded ".into()));
        assert_eq!(value("empty="), Value::Text(String::new()));
        // Only the first `=` separates: the value keeps the rest.
        assert_eq!(value("q=a=b=="), Value::Text("a=b==".into()));
        assert_eq!(value("t:text=42"), Value::Text("42".into()));
        assert_eq!(value("n=42"), Value::Text("42".into()));
    }

    #[test]
    fn leading_colon_on_the_name_is_accepted() {
        let p = parse_param(":id:int=7").unwrap();
        assert_eq!(p.name, "id");
        assert_eq!(p.value, Value::I64(7));
    }

    #[test]
    fn int_is_i64_in_full_range() {
        assert_eq!(value("a:int=-9223372036854775808"), Value::I64(i64::MIN));
        assert_eq!(value("a:int=9223372036854775807"), Value::I64(i64::MAX));
        assert_eq!(value("a:INT= 5 "), Value::I64(5));
        let e = error("a:int=9223372036854775808");
        assert!(e.contains("does not fit"), "{e}");
        let e = error("age:int=12x");
        assert!(
            e.contains("parameter `age`") && e.contains("the value is not an integer"),
            "{e}"
        );
        assert!(!e.contains("12x"), "the value is quoted: {e}");
    }

    #[test]
    fn float_bool_and_decimal() {
        assert_eq!(value("f:float=1.5"), Value::F64(1.5));
        assert_eq!(value("b:bool=true"), Value::Bool(true));
        assert_eq!(value("b:bool=off"), Value::Bool(false));
        let long = "12345678901234567890.123456789012345678901";
        assert_eq!(
            value(&format!("d:decimal={long}")),
            Value::Decimal(long.parse().unwrap())
        );
        if let Value::Decimal(d) = value("d:decimal=10.50") {
            assert_eq!(d.as_str(), "10.50");
        } else {
            panic!("not a decimal");
        }
        assert!(error("b:bool=maybe").contains("not a boolean"));
        assert!(error("d:decimal=1.2.3").contains("not a decimal"));
        assert!(error("f:float=abc").contains("not a floating-point"));
    }

    #[test]
    fn a_huge_decimal_exponent_is_refused_at_once() {
        let started = std::time::Instant::now();
        for arg in [
            "x:decimal=1e-4000000000",
            "x:decimal=1e4000000000",
            "x:decimal=-1e-9223372036854775808",
            "x:numeric=1e1001",
        ] {
            let e = error(arg);
            assert!(
                e.starts_with("parameter `x`: decimal has more than 1000 digits"),
                "{arg}: {e}"
            );
        }
        let e = error(&format!("x:decimal=1.{}", "5".repeat(1001)));
        assert!(
            e.contains("more than 1000 digits after the decimal point"),
            "{e}"
        );
        let e = error(&format!("x:decimal={}", "5".repeat(5000)));
        assert!(e.contains("longer than 4096 bytes"), "{e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        // Decimal256 precision fits.
        let d256 = "9".repeat(76);
        assert_eq!(
            value(&format!("x:decimal={d256}")),
            Value::Decimal(d256.parse().unwrap())
        );
    }

    #[test]
    fn errors_name_the_parameter_but_never_quote_its_value() {
        let secret = "ann.secret@example.com";
        for kind in [
            "int",
            "float",
            "bool",
            "decimal",
            "date",
            "timestamp",
            "bytes",
        ] {
            let e = error(&format!("p:{kind}={secret}"));
            assert!(e.starts_with("parameter `p`: "), "{kind}: {e}");
            assert!(!e.contains(secret), "{kind}: the value is quoted: {e}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 512,
            failure_persistence: None,
            ..Default::default()
        })]

        /// Any argument parses or fails with a message; typed values that fail are never
        /// quoted, and a decimal is parsed to its canonical form or refused.
        #[test]
        fn any_argument_parses_or_fails_without_quoting_the_value(
            kind in proptest::sample::select(vec![
                "text", "int", "float", "bool", "decimal", "date", "timestamp", "bytes", "null",
            ]),
            raw in "([0-9eE+\\-. ]{0,24}|[\\PC]{0,24})",
            exponent in proptest::prelude::any::<i64>(),
        ) {
            for text in [raw.clone(), format!("{raw}e{exponent}"), format!("1e{exponent}")] {
                match parse_param(&format!("p:{kind}={text}")) {
                    Ok(param) => {
                        if let Value::Decimal(d) = &param.value {
                            proptest::prop_assert!(d.as_str().len() <= 2 * 1000 + 2);
                        }
                    }
                    Err(e) => {
                        proptest::prop_assert!(e.starts_with("parameter `p`: "), "{}", e);
                        if text.trim().len() >= 4 {
                            proptest::prop_assert!(!e.contains(text.trim()), "{}", e);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn dates_and_timestamps() {
        assert_eq!(
            value("d:date=2024-02-29"),
            Value::Date(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap())
        );
        assert!(error("d:date=2023-02-29").contains("not a date"));
        let naive = NaiveDate::from_ymd_opt(2024, 3, 1)
            .unwrap()
            .and_time(NaiveTime::from_hms_micro_opt(10, 0, 0, 250_000).unwrap());
        assert_eq!(
            value("t:timestamp=2024-03-01T10:00:00.25"),
            Value::Timestamp(naive)
        );
        assert_eq!(
            value("t:timestamp=2024-03-01 10:00:00.25"),
            Value::Timestamp(naive)
        );
        let zoned = FixedOffset::east_opt(2 * 3600)
            .unwrap()
            .with_ymd_and_hms(2024, 3, 1, 10, 0, 0)
            .unwrap();
        assert_eq!(
            value("t:timestamp=2024-03-01T10:00:00+02:00"),
            Value::TimestampTz(zoned)
        );
        match value("t:timestamp=2024-03-01T10:00:00Z") {
            Value::TimestampTz(ts) => assert_eq!(ts.offset().local_minus_utc(), 0),
            other => panic!("{other:?}"),
        }
        assert!(error("t:timestamp=yesterday").contains("not a timestamp"));
    }

    #[test]
    fn bytes_are_base64_with_or_without_padding() {
        assert_eq!(value("b:bytes=AP8="), Value::Bytes(vec![0, 255]));
        assert_eq!(value("b:bytes=AP8"), Value::Bytes(vec![0, 255]));
        assert_eq!(value("b:bytes="), Value::Bytes(vec![]));
        assert!(error("b:bytes=%%%").contains("not base64"));
    }

    #[test]
    fn null_takes_no_value() {
        assert_eq!(value("x:null"), Value::Null);
        assert_eq!(value("x:null="), Value::Null);
        assert!(error("x:null=5").contains("takes no value"));
    }

    #[test]
    fn bad_syntax_names_the_parameter_or_the_problem() {
        assert!(error("novalue").contains("parameter `novalue` has no value"));
        assert!(error("=5").contains("needs a name"));
        assert!(error("1abc=5").contains("not a parameter name"));
        assert!(error("a-b=5").contains("not a parameter name"));
        let e = error("a:uint=5");
        assert!(
            e.contains("unknown type `uint`") && e.contains("decimal"),
            "{e}"
        );
    }

    #[test]
    fn bind_all_refuses_duplicates() {
        let params = [parse_param("a=1").unwrap(), parse_param("a:int=2").unwrap()];
        let e = bind_all("SELECT :a", &params).unwrap_err();
        assert!(e.contains("`a` is given more than once"), "{e}");
        let ok = bind_all(
            "SELECT :a, :b",
            &[parse_param("a=1").unwrap(), parse_param("b:null").unwrap()],
        )
        .unwrap();
        assert_eq!(ok.params().len(), 2);
        assert_eq!(ok.params()["b"], Value::Null);
    }
}
