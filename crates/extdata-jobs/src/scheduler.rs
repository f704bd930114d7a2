//! The scheduler daemon behind `extdata run`: each scheduled import in its own task,
//! runs of one job never overlapping (a run that outlasts its interval makes the
//! missed fire times be skipped, not queued; the job lock also keeps out a manual run
//! in another process), and a stop request ending each task after its current batch.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::Jobs;
use crate::import::{ImportSummary, Stop};

/// What the scheduler reports.
#[derive(Debug, Clone)]
pub enum SchedulerEvent {
    /// The next run of `job` is at `at`.
    Scheduled {
        /// The import.
        job: String,
        /// When it runs next.
        at: DateTime<Utc>,
    },
    /// A run started.
    Started {
        /// The import.
        job: String,
    },
    /// A run ended.
    Finished {
        /// The import.
        job: String,
        /// What it did.
        summary: ImportSummary,
    },
    /// A run failed (the scheduler goes on with the next fire time).
    Failed {
        /// The import.
        job: String,
        /// Why.
        error: String,
    },
}

/// Runs every import of `account` (all imports for `None`) that has a schedule or
/// `run_on_start`, until `stop` is raised; returns when every task has ended.
pub async fn run_scheduler(
    jobs: Arc<Jobs>,
    account: Option<String>,
    stop: Stop,
    on_event: Arc<dyn Fn(SchedulerEvent) + Send + Sync>,
) -> usize {
    let names: Vec<String> = jobs
        .config()
        .imports
        .values()
        .filter(|job| account.as_deref().is_none_or(|a| a == job.account))
        .filter(|job| job.schedule.is_some() || job.run_on_start)
        .map(|job| job.name.clone())
        .collect();
    let count = names.len();
    let mut tasks = Vec::new();
    for name in names {
        let jobs = jobs.clone();
        let account = account.clone();
        let mut stop = stop.clone();
        let on_event = on_event.clone();
        tasks.push(tokio::spawn(async move {
            let Ok(job) = jobs.import(account.as_deref(), &name) else {
                return;
            };
            let (schedule, run_on_start) = (job.schedule.clone(), job.run_on_start);
            let run = |jobs: Arc<Jobs>, stop: Stop| {
                let on_event = on_event.clone();
                let (name, account) = (name.clone(), account.clone());
                async move {
                    on_event(SchedulerEvent::Started { job: name.clone() });
                    match jobs
                        .run_import(account.as_deref(), &name, stop, &|_| {})
                        .await
                    {
                        Ok(summary) => on_event(SchedulerEvent::Finished { job: name, summary }),
                        Err(error) => on_event(SchedulerEvent::Failed {
                            job: name,
                            error: error.to_string(),
                        }),
                    }
                }
            };
            if run_on_start && !stop.is_stopped() {
                run(jobs.clone(), stop.clone()).await;
            }
            let Some(schedule) = schedule else { return };
            while !stop.is_stopped() {
                let Some(at) = schedule.next_after(Utc::now()) else {
                    return;
                };
                on_event(SchedulerEvent::Scheduled {
                    job: name.clone(),
                    at,
                });
                let wait = (at - Utc::now()).to_std().unwrap_or_default();
                tokio::select! {
                    _ = stop.stopped() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                run(jobs.clone(), stop.clone()).await;
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    count
}
