//! The scheduler daemon behind `extdata run`: each scheduled import in its own task,
//! runs of one job never overlapping (a run that outlasts its interval makes the
//! missed fire times be skipped, not queued), and a stop request ending each task after
//! its current batch.
//!
//! Who runs what is the state store's business ([`StateStore`]): with SQLite one runner
//! holds the whole schedule (a second one says once that it waits, and takes over when
//! the first stops); with PostgreSQL every worker follows every schedule and each due run
//! is taken by one of them through a lease, a run whose worker died being taken over
//! once its lease expires.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use extdata::Result;

use crate::Jobs;
use crate::import::{ImportSummary, Stop};
use crate::state::{Acquired, Claim, Lease, StateStore};

/// How often a runner waiting for the schedule of a one-runner store tries again.
const SCHEDULE_POLL: Duration = Duration::from_secs(1);

/// Looked again this long after another worker's lease was due to expire.
const RECHECK_MARGIN: Duration = Duration::from_millis(50);

/// What the scheduler reports.
#[derive(Debug, Clone)]
pub enum SchedulerEvent {
    /// Another runner holds the schedule of this (one-runner) state store; said once.
    /// This runner waits and takes over when the other stops.
    Waiting {
        /// Who holds it.
        holder: String,
    },
    /// This runner holds the schedule now, after [`SchedulerEvent::Waiting`].
    Holding,
    /// The next run of `job` is at `at`.
    Scheduled {
        /// The import's account.
        account: String,
        /// The import.
        job: String,
        /// When it runs next.
        at: DateTime<Utc>,
    },
    /// A run started.
    Started {
        /// The import's account.
        account: String,
        /// The import.
        job: String,
        /// Whether it takes over from a worker that died (resuming at its checkpoint).
        takeover: bool,
    },
    /// A run ended.
    Finished {
        /// The import's account.
        account: String,
        /// The import.
        job: String,
        /// What it did.
        summary: ImportSummary,
    },
    /// A run failed (the scheduler goes on with the next fire time).
    Failed {
        /// The import's account.
        account: String,
        /// The import.
        job: String,
        /// Why.
        error: String,
    },
}

/// Runs every import of `account` (all imports for `None`) that has a schedule or
/// `run_on_start`, until `stop` is raised; returns how many imports it followed when
/// every task has ended. Fails when the state store cannot be opened.
pub async fn run_scheduler(
    jobs: Arc<Jobs>,
    account: Option<String>,
    mut stop: Stop,
    on_event: Arc<dyn Fn(SchedulerEvent) + Send + Sync>,
) -> Result<usize> {
    let names: Vec<(String, String)> = jobs
        .config()
        .imports
        .values()
        .filter(|job| account.as_deref().is_none_or(|a| a == job.account))
        .filter(|job| job.schedule.is_some() || job.run_on_start)
        .map(|job| (job.account.clone(), job.name.clone()))
        .collect();
    let count = names.len();
    if count == 0 {
        return Ok(0);
    }
    let state = jobs.state().await?.clone();
    let mut waited = false;
    let _schedule = loop {
        match state.hold_schedule().await? {
            Ok(guard) => break guard,
            Err(holder) => {
                if !waited {
                    on_event(SchedulerEvent::Waiting { holder });
                    waited = true;
                }
                tokio::select! {
                    _ = stop.stopped() => return Ok(count),
                    _ = tokio::time::sleep(SCHEDULE_POLL) => {}
                }
            }
        }
    };
    if waited {
        on_event(SchedulerEvent::Holding);
    }
    let mut tasks = Vec::new();
    for (account, name) in names {
        let task = JobTask {
            jobs: jobs.clone(),
            state: state.clone(),
            account,
            name,
            stop: stop.clone(),
            on_event: on_event.clone(),
        };
        tasks.push(tokio::spawn(task.follow()));
    }
    for task in tasks {
        let _ = task.await;
    }
    Ok(count)
}

/// One import followed by the scheduler.
struct JobTask {
    jobs: Arc<Jobs>,
    state: Arc<dyn StateStore>,
    /// The import's own account.
    account: String,
    name: String,
    stop: Stop,
    on_event: Arc<dyn Fn(SchedulerEvent) + Send + Sync>,
}

impl JobTask {
    async fn follow(mut self) {
        let Ok(job) = self.jobs.import(Some(&self.account), &self.name) else {
            return;
        };
        let (schedule, run_on_start) = (job.schedule.clone(), job.run_on_start);
        if run_on_start && !self.stop.is_stopped() {
            self.take(Claim::Now).await;
        }
        let Some(schedule) = schedule else { return };
        // When to look again at a lease another worker holds (it may die).
        let mut recheck: Option<tokio::time::Instant> = None;
        let mut last_fire: Option<DateTime<Utc>> = None;
        let mut announced: Option<DateTime<Utc>> = None;
        while !self.stop.is_stopped() {
            let now = Utc::now();
            let after = last_fire.map_or(now, |fire| fire.max(now));
            let Some(at) = schedule.next_after(after) else {
                return;
            };
            if announced != Some(at) {
                (self.on_event)(SchedulerEvent::Scheduled {
                    account: self.account.clone(),
                    job: self.name.clone(),
                    at,
                });
                announced = Some(at);
            }
            let fire = tokio::time::Instant::now() + (at - now).to_std().unwrap_or_default();
            let wake = recheck.map_or(fire, |r| r.min(fire));
            tokio::select! {
                _ = self.stop.stopped() => return,
                _ = tokio::time::sleep_until(wake) => {}
            }
            let claim = if tokio::time::Instant::now() >= fire {
                last_fire = Some(at);
                Claim::Fire(at)
            } else {
                Claim::Abandoned
            };
            recheck = self
                .take(claim)
                .await
                .map(|d| tokio::time::Instant::now() + d + RECHECK_MARGIN);
        }
    }

    /// Tries to take the import and runs it when taken; returns when to look again when
    /// another worker holds it under a lease.
    async fn take(&self, claim: Claim) -> Option<Duration> {
        match self.state.acquire(&self.account, &self.name, claim).await {
            Ok(Acquired::Taken(lease)) => {
                self.run(lease).await;
                None
            }
            Ok(Acquired::Busy { holder, expires_in }) => {
                tracing::debug!(account = %self.account, import = %self.name, ?claim, "held by {holder}");
                expires_in
            }
            Ok(Acquired::Nothing) => None,
            Err(error) => {
                (self.on_event)(SchedulerEvent::Failed {
                    account: self.account.clone(),
                    job: self.name.clone(),
                    error: error.to_string(),
                });
                None
            }
        }
    }

    async fn run(&self, lease: Lease) {
        let Ok(job) = self.jobs.import(Some(&self.account), &self.name) else {
            return;
        };
        (self.on_event)(SchedulerEvent::Started {
            account: self.account.clone(),
            job: self.name.clone(),
            takeover: lease.takeover(),
        });
        let event = match self
            .jobs
            .run_leased(job, lease, self.stop.clone(), &|_| {})
            .await
        {
            Ok(summary) => SchedulerEvent::Finished {
                account: self.account.clone(),
                job: self.name.clone(),
                summary,
            },
            Err(error) => SchedulerEvent::Failed {
                account: self.account.clone(),
                job: self.name.clone(),
                error: error.to_string(),
            },
        };
        (self.on_event)(event);
    }
}
