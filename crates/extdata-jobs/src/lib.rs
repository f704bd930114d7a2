#![doc = include_str!("../README.md")]

mod config;
mod import;
mod lookup;
mod schedule;
mod scheduler;
mod segment;
mod sink;
mod state;

use std::path::Path;
use std::sync::Arc;

use extdata::{
    ConfigDocument, Error, ErrorKind, ExternalSource, Problems, REGISTRY_SECTIONS, Registry, Result,
};
use tokio::sync::OnceCell;

pub use config::{
    CursorSpec, DEFAULT_BATCH_SIZE, DEFAULT_LEASE, DEFAULT_LOOKUP_MAX_ROWS, DEFAULT_LOOKUP_TIMEOUT,
    DEFAULT_STATE_FILE, DEFAULT_SYNC_BATCH_SIZE, EntryKey, ImportJob, ImportMode, JOBS_SECTIONS,
    JobsConfig, LookupDef, LookupResult, OnError, SegmentDef, SegmentSyncDef, SinkConfig,
    StateConfig,
};
pub use import::{ImportEvent, ImportSummary, RetryPolicy, Stop};
pub use lookup::{DEFAULT_CACHE_CAPACITY, Lookups, render, render_named};
pub use schedule::{NEVER_FIRES_YEARS, Schedule};
pub use scheduler::{SchedulerEvent, run_scheduler};
pub use segment::{SegmentMembers, SyncSummary};
pub use sink::{FileSink, Sink, TableSink, WriteOutcome, build as build_sink};
pub use state::{
    Acquired, BatchCommit, BoundaryUpdate, CachedSegment, Checkpoint, Claim, Lease, LegacyOwners,
    PostgresStateStore, RunCounts, RunRecord, RunStatus, ScheduleGuard, SqliteStateStore,
    StartedRun, StateStore, open_state_store,
};

/// Every top-level section of a file that holds connectors, accounts and jobs.
pub fn known_sections() -> Vec<&'static str> {
    REGISTRY_SECTIONS
        .iter()
        .chain(JOBS_SECTIONS)
        .copied()
        .collect()
}

/// The registry and the jobs of one configuration file, with the state store opened on
/// first use.
///
/// Accounts are namespaces: every import, segment, sync and lookup is known by its
/// account and its name, and two accounts may use the same names; their state, run
/// numbers, caches and metrics are kept apart.
///
/// Every entry point takes the account the caller acts for: `Some(id)` may use only that
/// account's imports, segments, syncs and lookups (anything else is
/// [`ErrorKind::Forbidden`], with the same answer for an unknown name so that the answer
/// does not reveal what exists); `None` is an administrator acting for the entry's own
/// account, which works while one account has an entry of that name (a name several
/// accounts use is a [`ErrorKind::Config`] error listing them).
pub struct Jobs {
    registry: Arc<Registry>,
    config: JobsConfig,
    state: OnceCell<Arc<dyn StateStore>>,
    layer: Option<SourceLayer>,
}

/// Wraps every source the jobs use (metrics, tracing, tests that count queries).
pub type SourceLayer =
    Arc<dyn Fn(Arc<dyn ExternalSource>) -> Arc<dyn ExternalSource> + Send + Sync>;

extdata::debug_fields!(Jobs |jobs| { registry, config, layered: jobs.layer.is_some() });

impl Jobs {
    /// Loads a file: connectors, accounts and jobs, every problem at once (unknown
    /// top-level sections included). See [`load`](Self::load).
    pub fn from_path(path: impl AsRef<Path>) -> std::result::Result<Self, Problems> {
        Self::load(&ConfigDocument::from_path(path)?)
    }

    /// Reads everything `doc` holds: connectors, accounts and jobs, every problem at
    /// once (unknown top-level sections included). Secrets are read under the
    /// document's [`secret_policy`](ConfigDocument::secret_policy); jobs are checked
    /// even when connectors have problems, so that one run reports all.
    pub fn load(doc: &ConfigDocument) -> std::result::Result<Self, Problems> {
        let mut problems = doc.unknown_sections(&known_sections());
        let registry = match Registry::from_document(doc) {
            Ok(registry) => Some(registry),
            Err(found) => {
                problems.extend(found);
                None
            }
        };
        let jobs = JobsConfig::from_document(doc, registry.as_ref());
        match (registry, jobs) {
            (Some(registry), Ok(config)) if problems.is_empty() => {
                Ok(Jobs::new(Arc::new(registry), config))
            }
            (_, Ok(_)) => Err(problems),
            (_, Err(found)) => {
                problems.extend(found);
                Err(problems)
            }
        }
    }

    /// Reads the jobs sections of `doc` against an already loaded registry.
    pub fn from_document(
        doc: &ConfigDocument,
        registry: Arc<Registry>,
    ) -> std::result::Result<Self, Problems> {
        let config = JobsConfig::from_document(doc, Some(&registry))?;
        Ok(Jobs::new(registry, config))
    }

    /// Jobs from parts.
    pub fn new(registry: Arc<Registry>, config: JobsConfig) -> Self {
        Jobs {
            registry,
            config,
            state: OnceCell::new(),
            layer: None,
        }
    }

    /// Wraps every source the jobs use with `layer`.
    pub fn with_source_layer(mut self, layer: SourceLayer) -> Self {
        self.layer = Some(layer);
        self
    }

    /// The registry.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The validated jobs sections.
    pub fn config(&self) -> &JobsConfig {
        &self.config
    }

    /// The state store, opened (and created) on first use.
    pub async fn state(&self) -> Result<&Arc<dyn StateStore>> {
        self.state
            .get_or_try_init(|| async {
                open_state_store(&self.config.state, &self.config.legacy_owners()).await
            })
            .await
    }

    /// The import `name` for `account`.
    pub fn import(&self, account: Option<&str>, name: &str) -> Result<&ImportJob> {
        owned(&self.config.imports, account, "import", name)
    }

    /// The segment `name` for `account`.
    pub fn segment(&self, account: Option<&str>, name: &str) -> Result<&SegmentDef> {
        owned(&self.config.segments, account, "segment", name)
    }

    /// The segment sync `name` for `account`.
    pub fn segment_sync(&self, account: Option<&str>, name: &str) -> Result<&SegmentSyncDef> {
        owned(&self.config.segment_syncs, account, "segment sync", name)
    }

    /// The lookup `name` for `account`.
    pub fn lookup(&self, account: Option<&str>, name: &str) -> Result<&LookupDef> {
        owned(&self.config.lookups, account, "lookup", name)
    }

    /// The source of an entry's connector, checked against the entry's account.
    pub(crate) fn source(&self, account: &str, connector: &str) -> Result<Arc<dyn ExternalSource>> {
        let source = self.registry.source(account, connector)?;
        Ok(match &self.layer {
            Some(layer) => layer(source),
            None => source,
        })
    }

    /// Closes the sources and the state store.
    pub async fn close(&self) {
        self.registry.close().await;
        if let Some(state) = self.state.get() {
            state.close().await;
        }
    }
}

/// The entry `name` of `account`; without an account, the one entry of that name.
fn owned<'a, T>(
    map: &'a std::collections::BTreeMap<EntryKey, T>,
    account: Option<&str>,
    what: &str,
    name: &str,
) -> Result<&'a T> {
    if let Some(account) = account {
        return map
            .get(&(account.to_owned(), name.to_owned()))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Forbidden,
                    format!("{what} `{name}` is not available to account `{account}`"),
                )
            });
    }
    let found: Vec<(&EntryKey, &T)> = map.iter().filter(|((_, n), _)| n == name).collect();
    match found.as_slice() {
        [(_, entry)] => Ok(entry),
        [] => Err(Error::config(format!(
            "no {what} named `{name}`; known: {}",
            config::names(map)
        ))),
        several => {
            let accounts: Vec<String> = several
                .iter()
                .map(|((account, _), _)| format!("`{account}`"))
                .collect();
            Err(Error::config(format!(
                "{what} `{name}` exists in several accounts ({}); name the account",
                accounts.join(", ")
            )))
        }
    }
}
