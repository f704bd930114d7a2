//! Segments: evaluate a query into a de-duplicated list of member keys, cached in the
//! state store for `cache_ttl` (so a second evaluation inside the TTL does not touch
//! the database, from this process or another); and segment sync: statements run on
//! the external database for keys that joined or left.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use extdata::{Error, QueryOptions, Result, Statement};
use futures::StreamExt as _;
use tracing::Instrument as _;

use crate::Jobs;
use crate::config::{SegmentDef, SegmentSyncDef};
use crate::sink::{key_position, key_text};
use crate::state::{CachedSegment, decode_value};

/// Rows between progress callbacks.
const PROGRESS_EVERY: u64 = 256;

/// Slack on top of a sync's `timeout` before the batch call itself is abandoned.
const BATCH_TIMEOUT_MARGIN: Duration = Duration::from_secs(3);

/// The members of a segment.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentMembers {
    /// The segment's account.
    pub account: String,
    /// The segment's name.
    pub segment: String,
    /// Member keys in first-seen order, each once.
    pub keys: Vec<String>,
    /// The key column's value type.
    pub key_kind: String,
    /// When the query ran.
    pub evaluated_at: DateTime<Utc>,
    /// Whether the keys came from the cache (no query ran).
    pub from_cache: bool,
    /// Rows the query returned (0 from the cache).
    pub rows_read: u64,
}

/// What a segment sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncSummary {
    /// Keys that joined (on_add run for each).
    pub added: u64,
    /// Keys that left (on_remove run for each).
    pub removed: u64,
    /// Batches executed.
    pub batches: u64,
}

fn fingerprint(segment: &SegmentDef) -> String {
    format!("{}\n{}\n{}", segment.connector, segment.key, segment.query)
}

impl Jobs {
    /// The members of segment `name`: from the cache while it is fresh (unless
    /// `refresh`), else by running its query. `on_rows` hears the rows read so far.
    pub async fn evaluate_segment(
        &self,
        account: Option<&str>,
        name: &str,
        refresh: bool,
        on_rows: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<SegmentMembers> {
        let segment = self.segment(account, name)?;
        let span = tracing::info_span!("extdata.segment", account = %segment.account, segment = %segment.name);
        let evaluation = self.evaluate(segment, refresh, on_rows);
        extdata::for_account(&segment.account, evaluation)
            .instrument(span)
            .await
    }

    async fn evaluate(
        &self,
        segment: &SegmentDef,
        refresh: bool,
        on_rows: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<SegmentMembers> {
        let source = self.source(&segment.account, &segment.connector)?;
        let state = self.state().await?;
        let fingerprint = fingerprint(segment);
        let now = Utc::now();
        if !refresh
            && !segment.cache_ttl.is_zero()
            && let Some(cached) = state
                .cached_segment(&segment.account, &segment.name, &fingerprint, now)
                .await?
        {
            return Ok(SegmentMembers {
                account: segment.account.clone(),
                segment: segment.name.clone(),
                keys: cached.keys,
                key_kind: cached.key_kind,
                evaluated_at: cached.evaluated_at,
                from_cache: true,
                rows_read: 0,
            });
        }
        let options = QueryOptions {
            timeout: segment.timeout,
            ..QueryOptions::default()
        };
        let mut stream = source
            .stream(&Statement::new(segment.query.clone()), &options)
            .await?;
        let key_index = key_position(stream.columns(), &segment.key)?;
        let key_kind = stream.columns()[key_index].value_kind.as_str().to_owned();
        let mut seen = HashSet::new();
        let mut keys = Vec::new();
        let mut rows: u64 = 0;
        while let Some(row) = stream.next().await {
            let row = row?;
            rows += 1;
            if rows.is_multiple_of(PROGRESS_EVERY) {
                on_rows(rows);
            }
            let value = &row.values()[key_index];
            if value.is_null() {
                continue;
            }
            let key = key_text(value);
            if seen.insert(key.clone()) {
                keys.push(key);
            }
        }
        on_rows(rows);
        let cached = CachedSegment {
            keys,
            key_kind,
            evaluated_at: now,
        };
        if !segment.cache_ttl.is_zero() {
            let ttl =
                chrono::Duration::from_std(segment.cache_ttl).unwrap_or(chrono::Duration::MAX);
            let expires = now
                .checked_add_signed(ttl)
                .unwrap_or(DateTime::<Utc>::MAX_UTC);
            state
                .store_segment(
                    &segment.account,
                    &segment.name,
                    &fingerprint,
                    &cached,
                    expires,
                )
                .await?;
        }
        Ok(SegmentMembers {
            account: segment.account.clone(),
            segment: segment.name.clone(),
            keys: cached.keys,
            key_kind: cached.key_kind,
            evaluated_at: now,
            from_cache: false,
            rows_read: rows,
        })
    }

    /// Runs segment sync `name`: evaluates its segment (the cache applies), then runs
    /// `on_add` for each key that joined since the last sync and `on_remove` for each
    /// that left, `batch_size` statements per [`ExternalSource::execute_batch`] call
    /// (one transaction where the backend has them). Each applied batch is recorded, so
    /// a failed sync resumes with the batches that did not apply; the statements
    /// should be idempotent (a batch may run again after a crash).
    ///
    /// [`ExternalSource::execute_batch`]: extdata::ExternalSource::execute_batch
    pub async fn sync_segment(&self, account: Option<&str>, name: &str) -> Result<SyncSummary> {
        let sync = self.segment_sync(account, name)?;
        let span =
            tracing::info_span!("extdata.segment_sync", account = %sync.account, sync = %sync.name);
        extdata::for_account(&sync.account, self.sync(sync))
            .instrument(span)
            .await
    }

    async fn sync(&self, sync: &SegmentSyncDef) -> Result<SyncSummary> {
        let members = self
            .evaluate_segment(Some(&sync.account), &sync.segment, false, &|_| {})
            .await?;
        let source = self.source(&sync.account, &sync.connector)?;
        let state = self.state().await?;
        let previous = state.synced_members(&sync.account, &sync.name).await?;
        let current: HashSet<&String> = members.keys.iter().collect();
        let added: Vec<String> = members
            .keys
            .iter()
            .filter(|k| !previous.contains(*k))
            .cloned()
            .collect();
        let mut removed: Vec<String> = previous
            .iter()
            .filter(|k| !current.contains(k))
            .cloned()
            .collect();
        removed.sort();
        let options = QueryOptions {
            timeout: sync.timeout,
            ..QueryOptions::default()
        };
        let mut summary = SyncSummary::default();
        for (keys, sql, joining) in [
            (&added, &sync.on_add, true),
            (&removed, &sync.on_remove, false),
        ] {
            for chunk in keys.chunks(sync.batch_size) {
                if let Some(sql) = sql {
                    let statements = chunk
                        .iter()
                        .map(|key| {
                            Ok(Statement::new(sql.clone())
                                .bind("key", decode_value(&members.key_kind, key)?))
                        })
                        .collect::<Result<Vec<_>>>()?;
                    let batch = source.execute_batch(&statements, &options);
                    match sync.timeout {
                        // The backend bounds the batch itself (and cancels it on the
                        // server); this only guards against one that does not, with room
                        // for the backend's own cancel and rollback to finish first.
                        Some(limit) => tokio::time::timeout(limit + BATCH_TIMEOUT_MARGIN, batch)
                            .await
                            .map_err(|_| Error::timeout("segment sync batch", limit))??,
                        None => batch.await?,
                    };
                    summary.batches += 1;
                }
                if joining {
                    state
                        .record_sync(&sync.account, &sync.name, chunk, &[])
                        .await?;
                    summary.added += chunk.len() as u64;
                } else {
                    state
                        .record_sync(&sync.account, &sync.name, &[], chunk)
                        .await?;
                    summary.removed += chunk.len() as u64;
                }
            }
        }
        Ok(summary)
    }
}
