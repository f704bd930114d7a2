//! `extdata query NAME SQL`: run a query and print its rows.
//!
//! `table` and `json` read a bounded result with `query`; `csv`, `jsonl`, `arrow` and
//! `parquet` read with `stream` and write rows as they arrive (the binary formats a
//! batch at a time) — except `arrow` and `parquet` from ClickHouse, which read Arrow
//! batches decoded column by column (`extdata::stream_batches`). Memory stays flat
//! however many rows come back.

use std::io;
use std::time::Duration;

use extdata::arrow::{BatchLimits, BatchStream};
use extdata::{ExternalSource, QueryOptions, RowStream, Statement};
use futures::{FutureExt as _, Stream, StreamExt as _};

use super::Context;
use crate::cli::QueryArgs;
use crate::failure::Failure;
use crate::output::{self, RowWriter};
use crate::progress::Progress;

/// How long written rows may wait in the buffer while the server is slow.
const FLUSH_AFTER: Duration = Duration::from_millis(200);
/// Rows between progress updates (updating on every row costs more than writing it).
const PROGRESS_EVERY: u64 = 1024;

/// Runs the query and prints it in the asked format.
pub(super) async fn run(context: &Context, args: QueryArgs) -> Result<(), Failure> {
    let statement = args.statement.bind()?;
    output::check_target(args.format, args.output.as_deref())?;
    let source = context.source(&args.statement.name)?;
    let mut options = QueryOptions {
        timeout: args.timeout,
        ..QueryOptions::default()
    };
    if args.format.is_binary() && extdata::batches_as_received(source.as_ref()) {
        stream_batches(source.as_ref(), &statement, options, &args).await
    } else if args.format.streams() {
        stream_rows(source.as_ref(), &statement, options, &args).await
    } else {
        options.max_rows = Some(args.max_rows.unwrap_or(QueryOptions::DEFAULT_MAX_ROWS));
        bounded_rows(source.as_ref(), &statement, &options, &args).await
    }
}

/// `table` and `json`: one bounded `query`, then print.
async fn bounded_rows(
    source: &dyn ExternalSource,
    statement: &Statement,
    options: &QueryOptions,
    args: &QueryArgs,
) -> Result<(), Failure> {
    let result = source.query(statement, options).await?;
    let out = output::open(args.output.as_deref())?;
    let written = (|| {
        let mut writer = output::writer(args.format, out);
        writer.begin(&result.columns)?;
        for row in &result.rows {
            writer.row(row.values())?;
        }
        writer.finish()
    })();
    finish_output(written)?;
    if result.truncated {
        eprintln!(
            "warning: the result was cut at {} rows; more rows are available (raise --max-rows, or use --format csv/jsonl to stream them all)",
            result.rows.len()
        );
    }
    Ok(())
}

/// `csv`, `jsonl`, `arrow`, `parquet`: stream the rows, write them as they arrive.
async fn stream_rows(
    source: &dyn ExternalSource,
    statement: &Statement,
    options: QueryOptions,
    args: &QueryArgs,
) -> Result<(), Failure> {
    let mut stream = source.stream(statement, &options).await?;
    // The file is created once the server accepted the query, not before.
    let out = output::open(args.output.as_deref())?;
    let progress = Progress::start(!crate::logging::is_enabled());
    let mut writer = output::writer(args.format, out);
    let outcome = copy_rows(&mut stream, writer.as_mut(), args.max_rows, &progress).await;
    progress.finish();
    finish_copy(outcome, writer.as_mut(), &progress)
}

/// `arrow`, `parquet` from a source whose batches come as the server sends them
/// (ClickHouse, see `extdata::batches_as_received`): stream the result as Arrow
/// batches and write each as it arrives. Other sources keep [`stream_rows`], whose
/// writer also writes a short batch whenever the server makes it wait (their columnar
/// batches, PostgreSQL's and MySQL's, wait to be full).
async fn stream_batches(
    source: &dyn ExternalSource,
    statement: &Statement,
    options: QueryOptions,
    args: &QueryArgs,
) -> Result<(), Failure> {
    let mut batches =
        extdata::stream_batches(source, statement, &options, BatchLimits::default()).await?;
    let out = output::open(args.output.as_deref())?;
    let progress = Progress::start(!crate::logging::is_enabled());
    let mut writer = output::writer(args.format, out);
    let outcome = copy_batches(&mut batches, writer.as_mut(), args.max_rows, &progress).await;
    progress.finish();
    finish_copy(outcome, writer.as_mut(), &progress)
}

/// Ends a copy: finishes the output and reports the rows, or the error.
fn finish_copy(
    outcome: Result<Copied, CopyError>,
    writer: &mut dyn RowWriter,
    progress: &Progress,
) -> Result<(), Failure> {
    match outcome {
        Ok(Copied { rows, truncated }) => {
            finish_output(writer.finish())?;
            progress.summary(rows);
            if truncated {
                eprintln!(
                    "warning: the result was cut at {rows} rows (--max-rows); more rows are available"
                );
            }
            Ok(())
        }
        Err(CopyError::Output(error)) => finish_output(Err(error)),
        Err(CopyError::Source(error)) => {
            // Rows written so far stay written; the error says the result is incomplete.
            let _ = writer.flush();
            Err(Failure::from(error.context("the result is incomplete")))
        }
    }
}

/// Writes batches until the stream ends or `max_rows` were written (a batch past the
/// bound is cut; then one more batch is peeked to tell whether the result was cut).
async fn copy_batches(
    stream: &mut BatchStream,
    writer: &mut dyn RowWriter,
    max_rows: Option<usize>,
    progress: &Progress,
) -> Result<Copied, CopyError> {
    writer.begin(stream.columns()).map_err(CopyError::Output)?;
    let max_rows = max_rows.map(|n| n as u64);
    let mut rows: u64 = 0;
    let mut dirty = false;
    loop {
        let Some(batch) = next_flushing(stream, writer, &mut dirty).await? else {
            return Ok(Copied {
                rows,
                truncated: false,
            });
        };
        let batch = batch.map_err(CopyError::Source)?;
        let len = batch.num_rows() as u64;
        if len == 0 {
            continue;
        }
        let room = max_rows.map_or(len, |max| max.saturating_sub(rows));
        if room == 0 {
            return Ok(Copied {
                rows,
                truncated: true,
            });
        }
        let take = room.min(len);
        let written = if take < len {
            writer.batch(&batch.slice(0, take as usize))
        } else {
            writer.batch(&batch)
        };
        written.map_err(CopyError::Output)?;
        rows += take;
        dirty = true;
        progress.set(rows);
        if take < len {
            return Ok(Copied {
                rows,
                truncated: true,
            });
        }
    }
}

/// The stream's next item. What is ready is taken at once; when the server makes us
/// wait and something was written since the last flush (`dirty`), the output is flushed
/// after [`FLUSH_AFTER`], so that a reader of a slow query sees what came so far.
async fn next_flushing<S: Stream + Unpin>(
    stream: &mut S,
    writer: &mut dyn RowWriter,
    dirty: &mut bool,
) -> Result<Option<S::Item>, CopyError> {
    if let Some(next) = stream.next().now_or_never() {
        return Ok(next);
    }
    if *dirty {
        if let Ok(next) = tokio::time::timeout(FLUSH_AFTER, stream.next()).await {
            return Ok(next);
        }
        writer.flush().map_err(CopyError::Output)?;
        *dirty = false;
    }
    Ok(stream.next().await)
}

struct Copied {
    rows: u64,
    truncated: bool,
}

enum CopyError {
    Output(io::Error),
    Source(extdata::Error),
}

/// Writes rows until the stream ends or `max_rows` were written (then peeks one more
/// row to tell whether the result was cut).
async fn copy_rows(
    stream: &mut RowStream,
    writer: &mut dyn RowWriter,
    max_rows: Option<usize>,
    progress: &Progress,
) -> Result<Copied, CopyError> {
    writer.begin(stream.columns()).map_err(CopyError::Output)?;
    let max_rows = max_rows.map(|n| n as u64);
    let mut rows: u64 = 0;
    let mut dirty = false;
    loop {
        let Some(row) = next_flushing(stream, writer, &mut dirty).await? else {
            return Ok(Copied {
                rows,
                truncated: false,
            });
        };
        let row = row.map_err(CopyError::Source)?;
        if max_rows.is_some_and(|max| rows >= max) {
            return Ok(Copied {
                rows,
                truncated: true,
            });
        }
        writer.row(row.values()).map_err(CopyError::Output)?;
        rows += 1;
        dirty = true;
        if rows.is_multiple_of(PROGRESS_EVERY) {
            progress.set(rows);
        }
    }
}

/// Ends the output; a reader that went away (`| head`) is not a failure.
fn finish_output(written: io::Result<()>) -> Result<(), Failure> {
    match written {
        Ok(()) => Ok(()),
        Err(error) if output::is_broken_pipe(&error) => Ok(()),
        Err(error) => Err(Failure::output(&error)),
    }
}
