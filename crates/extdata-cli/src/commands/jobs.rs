//! `import`, `run`, `history`, `segment` and `render`: the jobs of `extdata-jobs`
//! (`[[imports]]`, `[[segments]]`, `[[segment_sync]]`, `[[lookups]]`) from the same file.

use std::io::{self, BufWriter, Read as _, Write as _};
use std::sync::Arc;
use std::time::Instant;

use extdata::Error;
use extdata_jobs::{
    DEFAULT_CACHE_CAPACITY, ImportEvent, ImportSummary, Lookups, RunRecord, RunStatus,
    SchedulerEvent, Stop,
};

use super::Context;
use crate::cli::{
    Command, HistoryArgs, HistoryFormat, ImportArgs, RenderArgs, RunArgs, SegmentArgs,
};
use crate::failure::Failure;
use crate::progress::Progress;

/// Runs one of the jobs commands.
pub(super) async fn run(context: &Context, command: Command) -> Result<(), Failure> {
    match command {
        Command::Import(args) => import(context, args).await,
        Command::Run(args) => daemon(context, &args).await,
        Command::History(args) => history(context, args).await,
        Command::Segment(args) if args.sync => sync(context, args).await,
        Command::Segment(args) => segment(context, args).await,
        Command::Render(args) => render(context, args).await,
        other => Err(Failure::usage(format!("not a jobs command: {other:?}"))),
    }
}

/// A stop signal raised by Ctrl-C or SIGTERM.
fn stop_on_signals() -> Stop {
    let (raise, stop) = Stop::channel();
    tokio::spawn(async move {
        wait_for_signal().await;
        eprintln!("stopping: finishing the batch being committed (Ctrl-C again to abort)");
        let _ = raise.send(true);
        // A second signal ends the process at once; the checkpoint keeps it safe.
        wait_for_signal().await;
        std::process::exit(i32::from(crate::failure::INTERRUPTED));
    });
    stop
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn account(context: &Context) -> Option<&str> {
    context.account.as_deref()
}

/// `extdata import NAME [--once]`.
async fn import(context: &Context, args: ImportArgs) -> Result<(), Failure> {
    let stop = stop_on_signals();
    // The job must exist for this account (and be the only one of its name without
    // `--account`) before anything runs.
    let job = context.jobs.import(account(context), &args.name)?;
    let job_account = job.account.clone();
    if !args.once {
        return schedule(context, Some(args.name), stop).await;
    }
    let progress = Progress::start(!crate::logging::is_enabled());
    let outcome = context
        .jobs
        .run_import(account(context), &args.name, stop, &|event| match event {
            ImportEvent::Rows(rows) => progress.set(*rows),
            ImportEvent::Committed(_) => {}
        })
        .await;
    progress.finish();
    let summary = outcome?;
    if progress.is_shown() {
        progress.summary(summary.counts.read);
    }
    println!(
        "{}",
        safe(&summary_line(&job_account, &args.name, &summary))
    );
    if summary.stopped {
        return Err(Failure::interrupted());
    }
    Ok(())
}

/// `import `NAME` of account `ID``: how an import is named in messages (names are
/// unique within an account only).
/// Names, account ids and values from the config or the data, with control characters
/// escaped before they reach a terminal.
fn safe(text: &str) -> String {
    crate::output::terminal_safe(text).into_owned()
}

fn import_label(account: &str, name: &str) -> String {
    format!("import `{name}` of account `{account}`")
}

fn summary_line(account: &str, name: &str, summary: &ImportSummary) -> String {
    let c = &summary.counts;
    let cursor = summary
        .cursor
        .as_ref()
        .map(|v| format!(", cursor {}", v.to_text_lossless()))
        .unwrap_or_default();
    format!(
        "{} run {}: read {}, inserted {}, updated {}, skipped {}{} in {:.2} s{cursor}{}",
        import_label(account, name),
        summary.run,
        c.read,
        c.inserted,
        c.updated,
        c.skipped,
        missing_text(c, ", missing {}, deleted {}"),
        summary.elapsed.as_secs_f64(),
        if summary.stopped { " (stopped)" } else { "" }
    )
}

/// `extdata run`.
async fn daemon(context: &Context, args: &RunArgs) -> Result<(), Failure> {
    if let Some(addr) = args.metrics_addr {
        serve_metrics(addr)?;
        eprintln!("metrics: serving Prometheus text at http://{addr}/metrics");
    }
    schedule(context, None, stop_on_signals()).await
}

/// Installs the Prometheus recorder with its HTTP listener on `addr` (bound before this
/// returns, so a taken port is an error here). Each call's series carry the account the
/// call was made for (`extdata::for_account`: each job's own), not one global label.
fn serve_metrics(addr: std::net::SocketAddr) -> Result<(), Failure> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .map_err(|e| Failure::runtime(format!("--metrics-addr {addr}: {e}")))
}

/// Runs the scheduler for one import (`only`) or all of the account's.
async fn schedule(context: &Context, only: Option<String>, stop: Stop) -> Result<(), Failure> {
    let filter = only.clone();
    let on_event: Arc<dyn Fn(SchedulerEvent) + Send + Sync> = Arc::new(move |event| {
        let line = match event {
            SchedulerEvent::Scheduled { account, job, at } => {
                format!(
                    "{}: next run at {}",
                    import_label(&account, &job),
                    at.to_rfc3339()
                )
            }
            SchedulerEvent::Waiting { holder } => format!(
                "another runner holds the schedule: {holder}; this one waits and takes over when it stops"
            ),
            SchedulerEvent::Holding => "this runner holds the schedule now".to_owned(),
            SchedulerEvent::Started {
                account,
                job,
                takeover: false,
            } => format!("{}: started", import_label(&account, &job)),
            SchedulerEvent::Started {
                account,
                job,
                takeover: true,
            } => format!(
                "{}: started, taking over from a worker that stopped renewing its lease",
                import_label(&account, &job)
            ),
            SchedulerEvent::Finished {
                account,
                job,
                summary,
            } => summary_line(&account, &job, &summary),
            SchedulerEvent::Failed {
                account,
                job,
                error,
            } => format!("{}: failed: {error}", import_label(&account, &job)),
        };
        eprintln!("{}", crate::output::terminal_safe(&line));
    });
    let jobs = context.jobs.clone();
    let count = match filter {
        Some(name) => {
            // One job on its own schedule: a scheduler over just that import.
            let job = jobs.import(account(context), &name)?;
            if job.schedule.is_none() {
                return Err(Failure::usage(format!(
                    "import `{name}` has no schedule; run it with --once"
                )));
            }
            let key = (job.account.clone(), job.name.clone());
            run_one_scheduled(jobs, key, stop, on_event).await?
        }
        None => extdata_jobs::run_scheduler(jobs, context.account.clone(), stop, on_event).await?,
    };
    if count == 0 {
        return Err(Failure::usage(
            "no import has a schedule or run_on_start; nothing to run",
        ));
    }
    eprintln!("stopped");
    Ok(())
}

async fn run_one_scheduled(
    jobs: Arc<extdata_jobs::Jobs>,
    import: extdata_jobs::EntryKey,
    stop: Stop,
    on_event: Arc<dyn Fn(SchedulerEvent) + Send + Sync>,
) -> Result<usize, Failure> {
    // The scheduler filters by account; narrowing it to one import is done by running
    // it over a copy of the config that holds only that import. The state store is
    // opened first with the whole config: a state file of an older version is migrated
    // on opening, and only the whole config says which account owns each name.
    jobs.state().await?;
    let mut config = jobs.config().clone();
    config.imports.retain(|key, _| *key == import);
    let single = Arc::new(extdata_jobs::Jobs::new(jobs.registry().clone(), config));
    let account = Some(import.0);
    let count = extdata_jobs::run_scheduler(single.clone(), account, stop, on_event).await;
    single.close().await;
    Ok(count?)
}

/// `extdata history NAME`.
async fn history(context: &Context, args: HistoryArgs) -> Result<(), Failure> {
    let job = context.jobs.import(account(context), &args.name)?;
    let runs = context
        .jobs
        .history(Some(&job.account), &job.name, args.limit)
        .await?;
    if args.format == HistoryFormat::Text && !runs.is_empty() {
        // On stderr, so that stdout holds one line per run.
        eprintln!(
            "{}: {} runs, newest first",
            safe(&import_label(&job.account, &job.name)),
            runs.len()
        );
    }
    let mut out = io::stdout().lock();
    for run in &runs {
        let line = match args.format {
            HistoryFormat::Text => history_line(run),
            HistoryFormat::Json => history_json(&job.account, &job.name, run).to_string(),
        };
        let _ = writeln!(out, "{line}");
    }
    if runs.is_empty() {
        eprintln!(
            "{} has not run yet",
            safe(&import_label(&job.account, &job.name))
        );
    }
    Ok(())
}

/// The keys a `full_refresh` run found missing and deleted, in `pattern` (two `{}`),
/// when it found any.
fn missing_text(counts: &extdata_jobs::RunCounts, pattern: &str) -> String {
    if counts.missing == 0 && counts.deleted == 0 {
        return String::new();
    }
    pattern
        .replacen("{}", &counts.missing.to_string(), 1)
        .replacen("{}", &counts.deleted.to_string(), 1)
}

/// One run: its number within the import, start, end, duration, counts and status.
fn history_line(run: &RunRecord) -> String {
    let c = &run.counts;
    let (ended, took) = match run.ended_at {
        Some(end) => (
            end.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            format!(
                "{:.2}s",
                (end - run.started_at).num_milliseconds() as f64 / 1000.0
            ),
        ),
        None => ("-".to_owned(), "unfinished".to_owned()),
    };
    let status = match (run.status(), &run.error) {
        (RunStatus::Failed, Some(error)) => {
            format!("error: {}", crate::output::terminal_safe(error))
        }
        (RunStatus::Stopped, _) => {
            "stopped (the next run resumes at the last checkpoint)".to_owned()
        }
        (RunStatus::Unfinished, _) => "running or killed".to_owned(),
        (status, _) => status.as_str().to_owned(),
    };
    format!(
        "{}  {}  {ended}  {took}  read={} inserted={} updated={} skipped={}{}  {status}",
        run.id,
        run.started_at.format("%Y-%m-%dT%H:%M:%SZ"),
        c.read,
        c.inserted,
        c.updated,
        c.skipped,
        missing_text(c, " missing={} deleted={}")
    )
}

/// One run as a JSON object: the `account` and `import`, its `id` (its number within
/// the import, from 1), times in RFC 3339 (UTC), counts, attempts, `status` (`ok`,
/// `stopped`, `failed`, `unfinished`), `error` (null unless failed), the `worker`
/// (`host/pid`) that ran it, the `fire_at` time it was taken for (null on demand) and
/// whether it was a `takeover` of a run whose worker died.
fn history_json(account: &str, import: &str, run: &RunRecord) -> serde_json::Value {
    let c = &run.counts;
    serde_json::json!({
        "account": account,
        "import": import,
        "id": run.id,
        "started_at": run.started_at.to_rfc3339(),
        "ended_at": run.ended_at.map(|t| t.to_rfc3339()),
        "status": run.status().as_str(),
        "read": c.read,
        "inserted": c.inserted,
        "updated": c.updated,
        "skipped": c.skipped,
        "unchanged": c.unchanged,
        "missing": c.missing,
        "deleted": c.deleted,
        "attempts": run.attempts,
        "error": run.error,
        "worker": run.worker,
        "fire_at": run.fire_at.map(|t| t.to_rfc3339()),
        "takeover": run.takeover,
    })
}

/// `extdata segment NAME [--output FILE] [--refresh]`.
async fn segment(context: &Context, args: SegmentArgs) -> Result<(), Failure> {
    let progress = Progress::start(!crate::logging::is_enabled());
    let started = Instant::now();
    let outcome = context
        .jobs
        .evaluate_segment(account(context), &args.name, args.refresh, &|rows| {
            progress.set(rows)
        })
        .await;
    progress.finish();
    let members = outcome?;
    if progress.is_shown() && !members.from_cache {
        progress.summary(members.rows_read);
    }
    let written = match &args.output {
        Some(path) => std::fs::File::create(path)
            .and_then(|file| write_keys(BufWriter::new(file), &members.keys))
            .map_err(|e| Failure::runtime(format!("cannot write `{}`: {e}", path.display()))),
        None => match write_keys(BufWriter::new(io::stdout().lock()), &members.keys) {
            Err(e) if crate::output::is_broken_pipe(&e) => Ok(()),
            other => other.map_err(|e| Failure::output(&e)),
        },
    };
    written?;
    let origin = if members.from_cache {
        format!(
            "from the cache, evaluated at {}",
            members.evaluated_at.format("%Y-%m-%dT%H:%M:%SZ")
        )
    } else {
        format!(
            "queried: {} rows in {:.2} s",
            members.rows_read,
            started.elapsed().as_secs_f64()
        )
    };
    eprintln!(
        "segment `{}` of account `{}`: {} members ({origin})",
        safe(&members.segment),
        safe(&members.account),
        members.keys.len()
    );
    Ok(())
}

fn write_keys(mut out: impl io::Write, keys: &[String]) -> io::Result<()> {
    for key in keys {
        out.write_all(key.as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// `extdata segment NAME --sync`.
async fn sync(context: &Context, args: SegmentArgs) -> Result<(), Failure> {
    let sync = context.jobs.segment_sync(account(context), &args.name)?;
    let summary = context
        .jobs
        .sync_segment(Some(&sync.account), &sync.name)
        .await?;
    println!(
        "segment sync `{}` of account `{}`: {} added, {} removed in {} batches",
        safe(&sync.name),
        safe(&sync.account),
        summary.added,
        summary.removed,
        summary.batches
    );
    Ok(())
}

/// `extdata render TEMPLATE --subscriber FILE`.
async fn render(context: &Context, args: RenderArgs) -> Result<(), Failure> {
    let template = std::fs::read_to_string(&args.template)
        .map_err(|e| Failure::usage(format!("cannot read `{}`: {e}", args.template.display())))?;
    let text = if args.subscriber.as_os_str() == "-" {
        let mut text = String::new();
        io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Failure::usage(format!("cannot read the subscriber from stdin: {e}")))?;
        text
    } else {
        std::fs::read_to_string(&args.subscriber).map_err(|e| {
            Failure::usage(format!("cannot read `{}`: {e}", args.subscriber.display()))
        })?
    };
    let subscriber: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Failure::usage(format!("the subscriber is not valid JSON: {e}")))?;
    if !subscriber.is_object() {
        return Err(Failure::usage("the subscriber must be a JSON object"));
    }
    let lookups = Lookups::new(context.jobs.clone(), DEFAULT_CACHE_CAPACITY);
    // Errors name the template file and line.
    let name = args.template.display().to_string();
    let rendered =
        extdata_jobs::render_named(lookups, context.account.clone(), name, template, subscriber)
            .await
            .map_err(|e: Error| Failure::from(e))?;
    let mut out = io::stdout().lock();
    let _ = out.write_all(rendered.as_bytes());
    if !rendered.ends_with('\n') {
        let _ = out.write_all(b"\n");
    }
    Ok(())
}
