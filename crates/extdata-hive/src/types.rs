//! Hive types ↔ [`Value`]: the type table (read top to bottom), the decoding of the
//! columnar `TRowSet` (with its null bitmaps), and the one literal escaper that renders
//! parameters into HiveQL (HiveServer2 has no server-side binding).
//!
//! | Hive type (`TTypeId`) | wire column | [`Value`] |
//! |---|---|---|
//! | `BOOLEAN` | `boolVal` | `Bool` |
//! | `TINYINT` | `byteVal` | `I8` |
//! | `SMALLINT` | `i16Val` | `I16` |
//! | `INT` | `i32Val` | `I32` |
//! | `BIGINT` | `i64Val` | `I64` |
//! | `FLOAT` | `doubleVal` (widened by the server) | `F32` (narrowed back exactly) |
//! | `DOUBLE` | `doubleVal` | `F64` |
//! | `DECIMAL(p,s)` | `stringVal` | `Decimal`, every digit, scale `s` |
//! | `STRING`, `VARCHAR(n)`, `CHAR(n)` | `stringVal` | `Text` |
//! | `BINARY` | `binaryVal` | `Bytes` |
//! | `DATE` | `stringVal` | `Date` |
//! | `TIMESTAMP` | `stringVal` (session time zone, no offset) | `Timestamp` |
//! | `TIMESTAMP WITH LOCAL TIME ZONE` | `stringVal` | `TimestampTz` when an offset is given, else `Timestamp` |
//! | `INTERVAL …` | `stringVal` | `Text` (the server's rendering) |
//! | `ARRAY`, `MAP`, `STRUCT`, `UNIONTYPE` | `stringVal` (JSON-like text) | `Json` when the text is JSON, else `Text` |
//! | `VOID` (`NULL`) | any | `Null` |
//! | NULL in any column (the `nulls` bitmap) | | `Null` |

use std::sync::Arc;

use chrono::{NaiveDate, NaiveDateTime};
use extdata_core::{Column, Columns, Decimal, Error, Result, Row, Value, ValueKind};
use hive::service::rpc::thrift::{
    TColumn, TColumnDesc, TRowSet, TTableSchema, TTypeEntry, TTypeId, TTypeQualifierValue,
};

/// A result column's Hive type, as far as decoding needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HiveType {
    Boolean,
    TinyInt,
    SmallInt,
    Int,
    BigInt,
    Float,
    Double,
    Decimal { scale: Option<u32> },
    String,
    Binary,
    Date,
    Timestamp,
    TimestampLocalTz,
    Interval,
    Complex,
    Null,
    Other,
}

impl HiveType {
    /// The type table: `TTypeId` → how its values decode.
    fn from_type_id(id: TTypeId, scale: Option<u32>) -> HiveType {
        match id.0 {
            0 => HiveType::Boolean,
            1 => HiveType::TinyInt,
            2 => HiveType::SmallInt,
            3 => HiveType::Int,
            4 => HiveType::BigInt,
            5 => HiveType::Float,
            6 => HiveType::Double,
            7 | 18 | 19 => HiveType::String,
            8 => HiveType::Timestamp,
            9 => HiveType::Binary,
            10..=13 => HiveType::Complex,
            15 => HiveType::Decimal { scale },
            16 => HiveType::Null,
            17 => HiveType::Date,
            20 | 21 => HiveType::Interval,
            22 => HiveType::TimestampLocalTz,
            _ => HiveType::Other,
        }
    }

    /// The [`Value`] variant of its non-NULL values.
    pub(crate) fn value_kind(self) -> ValueKind {
        match self {
            HiveType::Boolean => ValueKind::Bool,
            HiveType::TinyInt => ValueKind::I8,
            HiveType::SmallInt => ValueKind::I16,
            HiveType::Int => ValueKind::I32,
            HiveType::BigInt => ValueKind::I64,
            HiveType::Float => ValueKind::F32,
            HiveType::Double => ValueKind::F64,
            HiveType::Decimal { .. } => ValueKind::Decimal,
            HiveType::String | HiveType::Interval | HiveType::Other => ValueKind::Text,
            HiveType::Binary => ValueKind::Bytes,
            HiveType::Date => ValueKind::Date,
            HiveType::Timestamp => ValueKind::Timestamp,
            HiveType::TimestampLocalTz => ValueKind::TimestampTz,
            HiveType::Complex => ValueKind::Json,
            HiveType::Null => ValueKind::Null,
        }
    }
}

/// The columns of a result and how to decode each.
#[derive(Debug, Clone)]
pub(crate) struct Schema {
    pub(crate) columns: Columns,
    pub(crate) types: Arc<[HiveType]>,
}

/// Reads a `TTableSchema` into our columns.
pub(crate) fn schema(table: &TTableSchema) -> Schema {
    let mut described: Vec<&TColumnDesc> = table.columns.iter().collect();
    described.sort_by_key(|c| c.position);
    let mut columns = Vec::with_capacity(described.len());
    let mut types = Vec::with_capacity(described.len());
    for desc in described {
        let (hive_type, name) = match desc.type_desc.types.first() {
            Some(TTypeEntry::PrimitiveEntry(entry)) => {
                let qualifiers = entry.type_qualifiers.as_ref().map(|q| &q.qualifiers);
                let int_qualifier = |key: &str| match qualifiers.and_then(|q| q.get(key)) {
                    Some(TTypeQualifierValue::I32Value(v)) => Some(*v),
                    _ => None,
                };
                let scale = int_qualifier("scale").and_then(|s| u32::try_from(s).ok());
                let hive_type = HiveType::from_type_id(entry.type_, scale);
                let base = type_name(entry.type_);
                let name = match (entry.type_.0, int_qualifier("precision"), scale) {
                    (15, Some(p), Some(s)) => format!("DECIMAL({p},{s})"),
                    (18 | 19, _, _) => match int_qualifier("characterMaximumLength") {
                        Some(n) => format!("{base}({n})"),
                        None => base.to_owned(),
                    },
                    _ => base.to_owned(),
                };
                (hive_type, name)
            }
            Some(TTypeEntry::ArrayEntry(_)) => (HiveType::Complex, "ARRAY".to_owned()),
            Some(TTypeEntry::MapEntry(_)) => (HiveType::Complex, "MAP".to_owned()),
            Some(TTypeEntry::StructEntry(_)) => (HiveType::Complex, "STRUCT".to_owned()),
            Some(TTypeEntry::UnionEntry(_)) => (HiveType::Complex, "UNIONTYPE".to_owned()),
            Some(TTypeEntry::UserDefinedTypeEntry(u)) => {
                (HiveType::Other, u.type_class_name.clone())
            }
            None => (HiveType::Other, "UNKNOWN".to_owned()),
        };
        // Complex types come with their full spelling in the comment on Spark.
        let database_type = match (&desc.comment, hive_type) {
            (Some(comment), HiveType::Complex) if !comment.is_empty() => comment.clone(),
            _ => name,
        };
        columns.push(
            Column::new(
                desc.column_name.clone(),
                database_type,
                hive_type.value_kind(),
            )
            .with_nullable(None),
        );
        types.push(hive_type);
    }
    Schema {
        columns: columns.into(),
        types: types.into(),
    }
}

fn type_name(id: TTypeId) -> &'static str {
    match id.0 {
        0 => "BOOLEAN",
        1 => "TINYINT",
        2 => "SMALLINT",
        3 => "INT",
        4 => "BIGINT",
        5 => "FLOAT",
        6 => "DOUBLE",
        7 => "STRING",
        8 => "TIMESTAMP",
        9 => "BINARY",
        10 => "ARRAY",
        11 => "MAP",
        12 => "STRUCT",
        13 => "UNIONTYPE",
        14 => "USER_DEFINED",
        15 => "DECIMAL",
        16 => "VOID",
        17 => "DATE",
        18 => "VARCHAR",
        19 => "CHAR",
        20 => "INTERVAL_YEAR_MONTH",
        21 => "INTERVAL_DAY_TIME",
        22 => "TIMESTAMP WITH LOCAL TIME ZONE",
        _ => "UNKNOWN",
    }
}

fn is_null(nulls: &[u8], row: usize) -> bool {
    nulls
        .get(row / 8)
        .is_some_and(|byte| byte & (1 << (row % 8)) != 0)
}

/// Decodes a columnar row set into rows.
pub(crate) fn rows(schema: &Schema, set: TRowSet) -> Result<Vec<Row>> {
    let Some(columns) = set.columns else {
        if set.rows.is_empty() {
            return Ok(Vec::new());
        }
        return Err(Error::unsupported(
            "the server sent a row-based result set; HiveServer2 protocol V6 or later \
             (columnar results) is required",
        ));
    };
    if columns.len() != schema.types.len() {
        return Err(Error::decode(format!(
            "the server sent {} columns for a result of {}",
            columns.len(),
            schema.types.len()
        )));
    }
    let count = columns.first().map_or(0, column_len);
    let mut decoded: Vec<std::vec::IntoIter<Value>> = Vec::with_capacity(columns.len());
    for (index, (column, hive_type)) in columns.into_iter().zip(schema.types.iter()).enumerate() {
        if column_len(&column) != count {
            return Err(Error::decode(format!(
                "column {} has {} values, the first column {count}",
                index + 1,
                column_len(&column)
            )));
        }
        let values = decode_column(column, *hive_type).map_err(|e| {
            e.context(format!(
                "column `{}` ({})",
                schema.columns[index].name, schema.columns[index].database_type
            ))
        })?;
        decoded.push(values.into_iter());
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let values: Vec<Value> = decoded
            .iter_mut()
            .map(|column| column.next().unwrap_or(Value::Null))
            .collect();
        out.push(Row::new(schema.columns.clone(), values));
    }
    Ok(out)
}

fn column_len(column: &TColumn) -> usize {
    match column {
        TColumn::BoolVal(c) => c.values.len(),
        TColumn::ByteVal(c) => c.values.len(),
        TColumn::I16Val(c) => c.values.len(),
        TColumn::I32Val(c) => c.values.len(),
        TColumn::I64Val(c) => c.values.len(),
        TColumn::DoubleVal(c) => c.values.len(),
        TColumn::StringVal(c) => c.values.len(),
        TColumn::BinaryVal(c) => c.values.len(),
    }
}

fn with_nulls<T>(
    values: Vec<T>,
    nulls: &[u8],
    mut convert: impl FnMut(T) -> Result<Value>,
) -> Result<Vec<Value>> {
    values
        .into_iter()
        .enumerate()
        .map(|(row, v)| {
            if is_null(nulls, row) {
                Ok(Value::Null)
            } else {
                convert(v)
            }
        })
        .collect()
}

/// One column's values, by the wire column and the declared type.
pub(crate) fn decode_column(column: TColumn, hive_type: HiveType) -> Result<Vec<Value>> {
    if hive_type == HiveType::Null {
        return Ok(vec![Value::Null; column_len(&column)]);
    }
    match column {
        TColumn::BoolVal(c) => with_nulls(c.values, &c.nulls, |v| Ok(Value::Bool(v))),
        TColumn::ByteVal(c) => with_nulls(c.values, &c.nulls, |v| Ok(Value::I8(v))),
        TColumn::I16Val(c) => with_nulls(c.values, &c.nulls, |v| Ok(Value::I16(v))),
        TColumn::I32Val(c) => with_nulls(c.values, &c.nulls, |v| Ok(Value::I32(v))),
        TColumn::I64Val(c) => with_nulls(c.values, &c.nulls, |v| Ok(Value::I64(v))),
        TColumn::DoubleVal(c) => with_nulls(c.values, &c.nulls, |v| {
            let v = v.into_inner();
            Ok(if hive_type == HiveType::Float {
                // The server widened the FLOAT; narrowing gives back the exact f32.
                Value::F32(v as f32)
            } else {
                Value::F64(v)
            })
        }),
        TColumn::BinaryVal(c) => with_nulls(c.values, &c.nulls, |v| Ok(Value::Bytes(v))),
        TColumn::StringVal(c) => {
            with_nulls(c.values, &c.nulls, |text| decode_text(text, hive_type))
        }
    }
}

/// A value the server sent as text, by its declared type.
pub(crate) fn decode_text(text: String, hive_type: HiveType) -> Result<Value> {
    let bad = |what: &str, text: &str| {
        Error::decode(format!("`{}` is not a valid {what}", truncate(text)))
    };
    Ok(match hive_type {
        HiveType::Decimal { scale } => {
            let decimal: Decimal = text.trim().parse().map_err(|_| bad("DECIMAL", &text))?;
            Value::Decimal(match scale {
                // A declared scale past MAX_SCALE (only a broken or hostile server
                // declares one) leaves the value as sent instead of padding it.
                Some(s)
                    if decimal.scale() < s && s <= Decimal::MAX_SCALE && !decimal.is_special() =>
                {
                    rescale(&decimal, s)
                }
                _ => decimal,
            })
        }
        HiveType::Date => Value::Date(
            NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| bad("DATE", &text))?,
        ),
        HiveType::Timestamp => {
            Value::Timestamp(parse_timestamp(&text).ok_or_else(|| bad("TIMESTAMP", &text))?)
        }
        HiveType::TimestampLocalTz => {
            let trimmed = text.trim();
            match chrono::DateTime::parse_from_str(trimmed, "%Y-%m-%d %H:%M:%S%.f%:z")
                .or_else(|_| chrono::DateTime::parse_from_str(trimmed, "%Y-%m-%d %H:%M:%S%.f%z"))
            {
                Ok(ts) => Value::TimestampTz(ts),
                Err(_) => Value::Timestamp(
                    parse_timestamp(trimmed).ok_or_else(|| bad("TIMESTAMP", &text))?,
                ),
            }
        }
        HiveType::TinyInt => Value::I8(text.trim().parse().map_err(|_| bad("TINYINT", &text))?),
        HiveType::SmallInt => Value::I16(text.trim().parse().map_err(|_| bad("SMALLINT", &text))?),
        HiveType::Int => Value::I32(text.trim().parse().map_err(|_| bad("INT", &text))?),
        HiveType::BigInt => Value::I64(text.trim().parse().map_err(|_| bad("BIGINT", &text))?),
        HiveType::Boolean => match text.trim() {
            "true" | "TRUE" => Value::Bool(true),
            "false" | "FALSE" => Value::Bool(false),
            _ => return Err(bad("BOOLEAN", &text)),
        },
        HiveType::Float => {
            Value::F32(parse_float(&text).ok_or_else(|| bad("FLOAT", &text))? as f32)
        }
        HiveType::Double => Value::F64(parse_float(&text).ok_or_else(|| bad("DOUBLE", &text))?),
        HiveType::Complex => match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(json) => Value::Json(json),
            // Spark does not escape quotes inside nested strings and writes map keys
            // unquoted: such text is not JSON and is kept as the server wrote it.
            Err(_) => Value::Text(text),
        },
        HiveType::Binary => Value::Bytes(text.into_bytes()),
        HiveType::Null => Value::Null,
        HiveType::String | HiveType::Interval | HiveType::Other => Value::Text(text),
    })
}

fn parse_float(text: &str) -> Option<f64> {
    match text.trim() {
        "NaN" => Some(f64::NAN),
        "Infinity" | "inf" => Some(f64::INFINITY),
        "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
        other => other.parse().ok(),
    }
}

fn parse_timestamp(text: &str) -> Option<NaiveDateTime> {
    let trimmed = text.trim();
    NaiveDateTime::parse_from_str(trimmed, "%Y-%m-%d %H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(trimmed, "%Y-%m-%dT%H:%M:%S%.f"))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(trimmed, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
}

/// Pads the fraction with zeros to `scale` (servers may drop trailing zeros; the column
/// declares the scale).
fn rescale(decimal: &Decimal, scale: u32) -> Decimal {
    match decimal.mantissa_digits() {
        Some((digits, current)) => {
            let padded = format!("{digits}{}", "0".repeat((scale - current) as usize));
            Decimal::from_digits(decimal.is_negative(), &padded, scale)
        }
        None => decimal.clone(),
    }
}

fn truncate(text: &str) -> String {
    let mut out: String = text.chars().take(60).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

/// Renders `value` as a HiveQL expression: the one escaper every parameter goes
/// through.
///
/// No value's own text can close a string, comment or quoted identifier in any lexer
/// state: text is written as hex digits (`CAST(unhex('…') AS STRING)`), bytes as
/// `unhex('…')`, numbers, dates and timestamps from digits, signs, `.`, `:` and `-`
/// only. So neither a quote, a backslash, `*/`, a newline, a backtick nor `${` of a
/// value ever reaches the server, whatever the template and whatever session settings
/// (`spark.sql.parser.escapedStringLiterals`) are in force. Every rendering starts with
/// a letter and has the same shape for every value of a kind. Other values get an
/// explicit type (a `CAST` or a typed literal) so that they keep their width.
///
/// Timestamps: Spark keeps microseconds; a value with a finer fraction is a
/// [`Parameter`](extdata_core::ErrorKind::Parameter) error, not silently cut. A
/// `TimestampTz` is the instant it names (`TIMESTAMP '… +hh:mm'`): Spark has no type
/// that keeps an offset, and returns the column as a `Timestamp` in the session time
/// zone (`spark.sql.session.timeZone`).
pub fn literal(value: &Value) -> Result<String> {
    Ok(match value {
        Value::Null => "NULL".to_owned(),
        Value::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_owned(),
        Value::I8(v) => format!("CAST({v} AS TINYINT)"),
        Value::I16(v) => format!("CAST({v} AS SMALLINT)"),
        Value::I32(v) => format!("CAST({v} AS INT)"),
        Value::I64(v) => format!("CAST({v} AS BIGINT)"),
        Value::U8(v) => format!("CAST({v} AS SMALLINT)"),
        Value::U16(v) => format!("CAST({v} AS INT)"),
        Value::U32(v) => format!("CAST({v} AS BIGINT)"),
        Value::U64(v) => format!("CAST({v} AS DECIMAL(20,0))"),
        Value::I128(v) => integer_decimal(&v.to_string())?,
        Value::U128(v) => integer_decimal(&v.to_string())?,
        Value::F32(v) => format!(
            "CAST({} AS FLOAT)",
            float_text(f64::from(*v), &v.to_string())
        ),
        Value::F64(v) => format!("CAST({} AS DOUBLE)", float_text(*v, &v.to_string())),
        Value::Decimal(d) => {
            let Some((digits, scale)) = d.mantissa_digits() else {
                return Err(Error::parameter(format!("Hive DECIMAL has no `{d}`")));
            };
            let precision = digits
                .trim_start_matches('0')
                .len()
                .max(scale as usize)
                .max(1);
            if precision > 38 {
                return Err(Error::parameter(format!(
                    "decimal `{d}` has {precision} digits; Hive DECIMAL holds at most 38"
                )));
            }
            format!("CAST('{d}' AS DECIMAL({precision},{scale}))")
        }
        Value::Text(s) => string_literal(s),
        Value::Bytes(b) => {
            let hex: String = b.iter().map(|byte| format!("{byte:02X}")).collect();
            format!("unhex('{hex}')")
        }
        Value::Date(d) => format!("DATE '{}'", d.format("%Y-%m-%d")),
        Value::Timestamp(ts) => {
            micros_only(ts.and_utc().timestamp_subsec_nanos())?;
            format!("TIMESTAMP '{}'", ts.format("%Y-%m-%d %H:%M:%S%.6f"))
        }
        Value::TimestampTz(ts) => {
            micros_only(ts.timestamp_subsec_nanos())?;
            format!("TIMESTAMP '{}'", ts.format("%Y-%m-%d %H:%M:%S%.6f%:z"))
        }
        Value::Time(t) => string_literal(&t.format("%H:%M:%S%.f").to_string()),
        Value::TimeTz(t, offset) => string_literal(&format!("{}{offset}", t.format("%H:%M:%S%.f"))),
        Value::Uuid(u) => string_literal(&u.hyphenated().to_string()),
        Value::Json(j) => string_literal(&j.to_string()),
        Value::Ip(ip) => string_literal(&ip.to_string()),
        Value::IpNetwork(ip, prefix) => string_literal(&format!("{ip}/{prefix}")),
        Value::Interval(i) => {
            return Err(Error::parameter(format!(
                "an interval parameter (`{i}`) cannot be rendered for Hive; bind its parts \
                 as numbers"
            )));
        }
        Value::Array(items) => format!("array({})", list(items)?),
        Value::Tuple(items) => format!("struct({})", list(items)?),
        Value::Map(entries) => {
            let mut parts = Vec::with_capacity(entries.len() * 2);
            for (k, v) in entries {
                parts.push(literal(k)?);
                parts.push(literal(v)?);
            }
            format!("map({})", parts.join(", "))
        }
        other => {
            return Err(Error::parameter(format!(
                "a `{}` parameter cannot be rendered for Hive",
                other.kind()
            )));
        }
    })
}

/// Spark's TIMESTAMP holds microseconds: a finer fraction would be cut silently.
fn micros_only(nanos: u32) -> Result<()> {
    if !nanos.is_multiple_of(1000) {
        return Err(Error::parameter(
            "a timestamp parameter has a fraction finer than microseconds; Spark keeps \
             microseconds only (round it first)",
        ));
    }
    Ok(())
}

fn list(items: &[Value]) -> Result<String> {
    Ok(items
        .iter()
        .map(literal)
        .collect::<Result<Vec<_>>>()?
        .join(", "))
}

fn integer_decimal(digits: &str) -> Result<String> {
    let width = digits.trim_start_matches('-').len();
    if width > 38 {
        return Err(Error::parameter(format!(
            "integer `{digits}` has {width} digits; Hive DECIMAL holds at most 38"
        )));
    }
    Ok(format!("CAST('{digits}' AS DECIMAL(38,0))"))
}

fn float_text(v: f64, text: &str) -> String {
    if v.is_nan() {
        "'NaN'".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "'Infinity'" } else { "'-Infinity'" }.to_owned()
    } else {
        format!("'{text}'")
    }
}

/// A HiveQL expression whose value is exactly the text `s`:
/// `CAST(unhex('<UTF-8 bytes as hex>') AS STRING)` (foldable, so it works in `VALUES`
/// too).
///
/// Only hex digits of the value reach the statement, so no lexer state (a string, a
/// comment, a quoted identifier, variable substitution) can be left by it. Works on
/// Hive and Spark alike.
///
/// ```
/// assert_eq!(extdata_hive::string_literal("a'"), "CAST(unhex('6127') AS STRING)");
/// ```
pub fn string_literal(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len() * 2 + 30);
    out.push_str("CAST(unhex('");
    for byte in s.bytes() {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0F)]));
    }
    out.push_str("') AS STRING)");
    out
}

/// Decodes one value the server sent as text, for the Thrift type id `type_id`: the
/// per-value conversion without a server, for the benchmarks
/// (`benches/benches/convert.rs`). Not API.
#[doc(hidden)]
pub fn decode_text_for_bench(type_id: i32, scale: Option<u32>, text: String) -> Result<Value> {
    decode_text(text, HiveType::from_type_id(TTypeId(type_id), scale))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hive::service::rpc::thrift::{TI32Column, TStringColumn};

    /// The text a `string_literal` rendering stands for, and the bytes it spans; `None`
    /// when anything but hex digits sits between its fixed parts.
    pub(crate) fn read_literal(sql: &str) -> Option<(String, usize)> {
        let rest = sql.strip_prefix("CAST(unhex('")?;
        let hex_len = rest.find('\'')?;
        let hex = &rest[..hex_len];
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) || hex.len() % 2 != 0 {
            return None;
        }
        let tail = rest[hex_len..].strip_prefix("') AS STRING)")?;
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
            .collect::<Option<_>>()?;
        Some((String::from_utf8(bytes).ok()?, sql.len() - tail.len()))
    }

    #[test]
    fn hostile_strings_stay_inside_their_literal() {
        for hostile in [
            "plain",
            "o'clock",
            "back\\slash",
            "\\'; DROP TABLE t; --",
            "trailing\\",
            "${env:HOME}",
            "*/ SELECT 1 /*",
            "line\nbreak\r\n",
            "nul\0byte",
            "unicode ✓ 日本語 🦀",
            "'\"`",
            "",
        ] {
            let rendered = string_literal(hostile);
            let (value, consumed) = read_literal(&rendered).expect("a closed literal");
            assert_eq!(consumed, rendered.len(), "the literal ends where it should");
            assert_eq!(value, hostile);
        }
    }

    proptest::proptest! {
        #[test]
        fn any_string_renders_as_hex_digits_only(value in "\\PC*|[\\\\'$\\{\\}\\x00-\\x1f\"`;*/-]*") {
            let rendered = string_literal(&value);
            let (decoded, consumed) = read_literal(&rendered).expect("a closed literal");
            proptest::prop_assert_eq!(consumed, rendered.len());
            proptest::prop_assert_eq!(decoded, value);
        }
    }

    #[test]
    fn typed_literals_keep_their_width() {
        assert_eq!(literal(&Value::I8(-128)).unwrap(), "CAST(-128 AS TINYINT)");
        assert_eq!(
            literal(&Value::I64(i64::MIN)).unwrap(),
            "CAST(-9223372036854775808 AS BIGINT)"
        );
        let d: Decimal = "-1234567890123456789012345678.1234567890".parse().unwrap();
        assert_eq!(
            literal(&Value::Decimal(d)).unwrap(),
            "CAST('-1234567890123456789012345678.1234567890' AS DECIMAL(38,10))"
        );
        assert_eq!(
            literal(&Value::Bytes(vec![0, 255])).unwrap(),
            "unhex('00FF')"
        );
        assert_eq!(
            literal(&Value::F64(f64::NAN)).unwrap(),
            "CAST('NaN' AS DOUBLE)"
        );
        assert_eq!(literal(&Value::Null).unwrap(), "NULL");
        let too_wide: Decimal = "1234567890123456789012345678901234567890".parse().unwrap();
        assert!(literal(&Value::Decimal(too_wide)).is_err());
    }

    #[test]
    fn null_bitmap_marks_rows_lsb_first() {
        let column = TColumn::I32Val(TI32Column::new(
            vec![1, 0, 3, 0, 5, 6, 7, 8, 0],
            vec![0b0000_1010, 0b0000_0001],
        ));
        let values = decode_column(column, HiveType::Int).unwrap();
        assert_eq!(values[0], Value::I32(1));
        assert_eq!(values[1], Value::Null);
        assert_eq!(values[3], Value::Null);
        assert_eq!(values[7], Value::I32(8));
        assert_eq!(values[8], Value::Null);
    }

    #[test]
    fn text_values_decode_by_declared_type() {
        let column = TColumn::StringVal(TStringColumn::new(
            vec!["1.5".to_owned(), String::new(), "-0.0000000001".to_owned()],
            vec![0b010],
        ));
        let values = decode_column(column, HiveType::Decimal { scale: Some(10) }).unwrap();
        assert_eq!(values[0], Value::Decimal("1.5000000000".parse().unwrap()));
        assert_eq!(values[1], Value::Null);
        assert_eq!(values[2], Value::Decimal("-0.0000000001".parse().unwrap()));
        // A declared scale no type system has (a broken or hostile server) is not
        // padded to: the value stays as sent instead of a 4 GiB string.
        for scale in [Decimal::MAX_SCALE + 1, u32::MAX] {
            assert_eq!(
                decode_text("1.5".into(), HiveType::Decimal { scale: Some(scale) }).unwrap(),
                Value::Decimal("1.5".parse().unwrap()),
                "scale {scale}"
            );
        }
        assert_eq!(
            decode_text("2024-02-29 23:59:59.123456".into(), HiveType::Timestamp).unwrap(),
            Value::Timestamp(
                NaiveDate::from_ymd_opt(2024, 2, 29)
                    .unwrap()
                    .and_hms_micro_opt(23, 59, 59, 123_456)
                    .unwrap()
            )
        );
        assert_eq!(
            decode_text("[1,2]".into(), HiveType::Complex).unwrap(),
            Value::Json(serde_json::json!([1, 2]))
        );
        assert_eq!(
            decode_text("{1:\"a\"}".into(), HiveType::Complex).unwrap(),
            Value::Text("{1:\"a\"}".into())
        );
        assert!(decode_text("yesterday".into(), HiveType::Date).is_err());
    }
}
