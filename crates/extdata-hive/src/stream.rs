//! `stream` (and `query` through it): a task fetches a statement's result in batches of
//! `fetch_size` rows, one batch in flight and one queued; a reader that goes away
//! cancels the operation on the server.

use std::time::Duration;

use extdata_core::{Result, Row, RowStream};
use futures::StreamExt;
use hive::service::rpc::thrift::TOperationHandle;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::HiveSource;
use crate::error::withhold_if;
use crate::pool::Lease;
use crate::types::{self, Schema};

/// A started statement whose session is on loan.
pub(crate) struct Running {
    pub(crate) lease: Lease,
    pub(crate) operation: TOperationHandle,
    pub(crate) has_result_set: bool,
    pub(crate) modified_rows: Option<i64>,
}

impl HiveSource {
    /// The rows of `running`, whose result has `schema`; each fetch is bounded by
    /// `timeout`. `has_params`: a server error's text is withheld.
    pub(crate) fn rows(
        &self,
        running: Running,
        schema: Schema,
        has_params: bool,
        timeout: Duration,
    ) -> RowStream {
        let fetch_size = self.settings().fetch_size;
        let grace = self.grace();
        let connector = self.settings().name.clone();
        let columns = schema.columns.clone();
        // One batch in flight and one queued: memory stays at two batches however
        // long the result.
        let (sender, receiver) = mpsc::channel::<Result<Vec<Row>>>(1);
        tokio::spawn(async move {
            let Running {
                mut lease,
                operation,
                ..
            } = running;
            loop {
                let deadline = Instant::now() + timeout;
                let batch = tokio::select! {
                    batch = lease.fetch(&operation, fetch_size, deadline, timeout) => batch,
                    // The reader went away: stop the query.
                    () = sender.closed() => {
                        lease.abandon(&operation, grace).await;
                        return;
                    }
                };
                let rows = batch.and_then(|set| {
                    types::rows(&schema, set).map_err(|e| e.with_connector(connector.clone()))
                });
                match rows {
                    Ok(rows) if rows.is_empty() => {
                        let _ = lease
                            .close_operation(&operation, Instant::now() + grace, grace)
                            .await;
                        return;
                    }
                    Ok(rows) => {
                        if sender.send(Ok(rows)).await.is_err() {
                            lease.abandon(&operation, grace).await;
                            return;
                        }
                    }
                    Err(error) => {
                        if !lease.broken {
                            let until = Instant::now() + grace;
                            let _ = lease.close_operation(&operation, until, grace).await;
                        }
                        let error = withhold_if(has_params, &connector, error);
                        let _ = sender.send(Err(error)).await;
                        return;
                    }
                }
            }
        });
        let rows = futures::stream::unfold(receiver, |mut receiver| async move {
            let batch = receiver.recv().await?;
            Some((batch, receiver))
        })
        .flat_map(|batch| {
            let items: Vec<Result<Row>> = match batch {
                Ok(rows) => rows.into_iter().map(Ok).collect(),
                Err(error) => vec![Err(error)],
            };
            futures::stream::iter(items)
        });
        RowStream::new(columns, rows)
    }
}
