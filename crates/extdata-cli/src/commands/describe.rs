//! `extdata describe NAME SQL`: a query's columns without its rows.

use std::io::{self, Write as _};

use extdata::{Column, QueryOptions, Value, ValueKind};

use super::Context;
use crate::cli::DescribeArgs;
use crate::failure::Failure;
use crate::output::{self, Format, new_table};

/// Prints name, database type, value type and nullability of each column.
pub(super) async fn run(context: &Context, args: DescribeArgs) -> Result<(), Failure> {
    let mut statement = args.statement.bind()?;
    output::check_target(args.format, None)?;
    let source = context.source(&args.statement.name)?;
    // The columns do not depend on the parameters' values: NULL stands in for those not
    // given, so that `describe` works on a lookup query as written.
    for name in statement.placeholder_names(source.kind().dialect()) {
        if !statement.params().contains_key(&name) {
            statement.set(name, Value::Null);
        }
    }
    let options = QueryOptions {
        timeout: args.timeout,
        ..QueryOptions::default()
    };
    let columns = source.describe(&statement, &options).await?;
    let written = match args.format {
        Format::Table => print_table(&columns),
        format => print_records(format, &columns),
    };
    match written {
        Err(error) if !output::is_broken_pipe(&error) => Err(Failure::output(&error)),
        _ => Ok(()),
    }
}

fn nullable_text(nullable: Option<bool>) -> &'static str {
    match nullable {
        Some(true) => "yes",
        Some(false) => "no",
        None => "unknown",
    }
}

fn print_table(columns: &[Column]) -> io::Result<()> {
    let mut table = new_table();
    table.set_header(["name", "database type", "value type", "nullable"]);
    for column in columns {
        table.add_row([
            output::terminal_safe(&column.name),
            output::terminal_safe(&column.database_type),
            column.value_kind.as_str().into(),
            nullable_text(column.nullable).into(),
        ]);
    }
    let mut out = io::stdout().lock();
    writeln!(out, "{table}")?;
    writeln!(
        out,
        "({} column{})",
        columns.len(),
        if columns.len() == 1 { "" } else { "s" }
    )?;
    out.flush()
}

/// csv, json, jsonl, arrow and parquet: one record per column, `nullable` as true,
/// false or null.
fn print_records(format: Format, columns: &[Column]) -> io::Result<()> {
    let header = [
        Column::new("name", "", ValueKind::Text),
        Column::new("database_type", "", ValueKind::Text),
        Column::new("value_type", "", ValueKind::Text),
        Column::new("nullable", "", ValueKind::Bool),
    ];
    let mut writer = output::writer(format, output::stdout());
    writer.begin(&header)?;
    for column in columns {
        writer.row(&[
            Value::Text(column.name.clone()),
            Value::Text(column.database_type.clone()),
            Value::Text(column.value_kind.as_str().to_owned()),
            column.nullable.map_or(Value::Null, Value::Bool),
        ])?;
    }
    writer.finish()
}
