//! [`Harness`]: one backend's source, its capabilities, and a way to build variants.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use extdata_core::{
    ConnectorConfig, ExternalSource, QueryOptions, Result, SecretSource, Statement, expose,
};
use futures::FutureExt;

use crate::capabilities::Capabilities;
use crate::support;

/// Builds a source from a config: validate with the backend's `SPEC`, then `build`
/// (no I/O). The conformance cases use it for read-only, wrong-password, timeout and
/// small-pool variants of the harness's config.
pub type SourceFactory =
    Arc<dyn Fn(&ConnectorConfig) -> Result<Arc<dyn ExternalSource>> + Send + Sync>;

/// What one backend's conformance tests run against: a source, the config it came
/// from, its [`Capabilities`], and the factory that builds variants.
///
/// Tables made with [`Harness::create_table`] get unique names (tests run in
/// parallel) and are dropped after the case, whether it passed or not.
pub struct Harness {
    source: Arc<dyn ExternalSource>,
    config: ConnectorConfig,
    capabilities: Capabilities,
    factory: SourceFactory,
    tables: Mutex<Vec<String>>,
    guards: Vec<Box<dyn Any + Send + Sync>>,
}

impl Harness {
    /// Builds the main source from `config` with `factory`.
    ///
    /// ```no_run
    /// # use std::sync::Arc;
    /// # use extdata_conformance::{Capabilities, Harness};
    /// # use extdata_core::{ConnectorConfig, DbKind, ExternalSource, Result};
    /// # fn build(_: &ConnectorConfig) -> Result<Arc<dyn ExternalSource>> {
    /// #     Err(extdata_core::Error::unsupported("the backend's build function goes here"))
    /// # }
    /// let config = ConnectorConfig::new("pg-conformance", DbKind::Postgres).with_host("127.0.0.1");
    /// let harness = Harness::new(config, Capabilities::new(), build).expect("valid config");
    /// ```
    pub fn new<F>(config: ConnectorConfig, capabilities: Capabilities, factory: F) -> Result<Self>
    where
        F: Fn(&ConnectorConfig) -> Result<Arc<dyn ExternalSource>> + Send + Sync + 'static,
    {
        let factory: SourceFactory = Arc::new(factory);
        let source = factory(&config)?;
        Ok(Harness {
            source,
            config,
            capabilities,
            factory,
            tables: Mutex::new(Vec::new()),
            guards: Vec::new(),
        })
    }

    /// Keeps `guard` alive as long as the harness (e.g. the temporary directory of an
    /// SQLite file).
    pub fn with_guard(mut self, guard: impl Any + Send + Sync) -> Self {
        self.guards.push(Box::new(guard));
        self
    }

    /// The main source.
    pub fn source(&self) -> &Arc<dyn ExternalSource> {
        &self.source
    }

    /// The config of the main source.
    pub fn config(&self) -> &ConnectorConfig {
        &self.config
    }

    /// The backend's capabilities.
    pub fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    /// The password of the main config, when it has one that can be read.
    pub fn password(&self) -> Option<String> {
        let secret = self
            .config
            .password
            .as_ref()?
            .resolve(&extdata_core::SecretPolicy::deny_all())
            .ok()?;
        Some(expose(&secret).to_owned()).filter(|p| !p.is_empty())
    }

    /// A new source from the main config changed by `change`.
    pub fn variant(
        &self,
        change: impl FnOnce(ConnectorConfig) -> ConnectorConfig,
    ) -> Result<Arc<dyn ExternalSource>> {
        (self.factory)(&change(self.config.clone()))
    }

    /// A new source from the main config with its password replaced by `password`.
    pub fn variant_with_password(&self, password: &str) -> Result<Arc<dyn ExternalSource>> {
        self.variant(|config| config.with_password(SecretSource::literal(password)))
    }

    /// A unique table name, dropped by [`cleanup`](Harness::cleanup).
    pub fn unique_table(&self, hint: &str) -> String {
        let name = support::unique_name(hint);
        self.tables
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(name.clone());
        name
    }

    /// Creates a table with a unique name and `columns` (`(name, type)`); panics when
    /// the server refuses.
    pub async fn create_table(&self, hint: &str, columns: &[(&str, &str)]) -> String {
        let table = self.unique_table(hint);
        let sql = (self.capabilities.create_table)(&table, columns);
        support::ok(
            self.source
                .execute(&Statement::new(sql.clone()), &QueryOptions::default())
                .await,
            &format!("creating a table with `{sql}`"),
        );
        table
    }

    /// `SELECT <list>` in the backend's spelling.
    pub fn select(&self, list: &str) -> String {
        (self.capabilities.select)(list)
    }

    /// The select-list expression of the text parameter `name`.
    pub fn text_parameter(&self, name: &str) -> String {
        (self.capabilities.text_parameter)(name)
    }

    /// Drops every table this harness created (errors are printed, not raised: the
    /// case's own outcome is what the test reports).
    pub async fn cleanup(&self) {
        let tables = std::mem::take(
            &mut *self
                .tables
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        for table in tables {
            let sql = (self.capabilities.drop_table)(&table);
            if let Err(error) = self
                .source
                .execute(&Statement::new(sql), &QueryOptions::default())
                .await
            {
                eprintln!("cleanup: could not drop `{table}`: {error}");
            }
        }
    }
}

extdata_core::debug_fields!(Harness |harness| { source, config, capabilities, .. });

/// Runs one case against `harness`, then drops its tables even when the case
/// panicked, then re-raises the panic.
#[doc(hidden)]
pub async fn run_case(harness: &Harness, case: impl Future<Output = ()>) {
    let outcome = AssertUnwindSafe(case).catch_unwind().await;
    harness.cleanup().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
