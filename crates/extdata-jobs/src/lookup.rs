//! [`Lookups`]: parametrised queries for dynamic content, with a bounded cache and
//! single-flight, and [`render`]: a minijinja template with a `lookup()` function.

use std::sync::Arc;
use std::time::{Duration, Instant};

use extdata::{Error, ErrorKind, QueryOptions, Result, Statement, Value, closest_match};
use minijinja::value::Kwargs;
use moka::Expiry;
use moka::future::Cache;
use serde_json::{Map, Value as Json};

use crate::Jobs;
use crate::config::{LookupResult, OnError};

/// Entries the cache holds at most by default.
pub const DEFAULT_CACHE_CAPACITY: u64 = 100_000;

/// A cache key: the lookup's account and name, and its bound parameters (canonical
/// JSON): two accounts' lookups of the same name never share a result.
type Key = (String, String, String);

#[derive(Clone)]
struct Cached {
    value: Arc<Json>,
    ttl: Duration,
}

struct PerLookupTtl;

impl Expiry<Key, Cached> for PerLookupTtl {
    fn expire_after_create(
        &self,
        _key: &Key,
        value: &Cached,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Runs `[[lookups]]` for templates.
///
/// Results are cached per lookup (account and name) and parameters for the lookup's `cache_ttl` in a
/// bounded in-memory cache; concurrent identical lookups (same name, same parameters)
/// share one query, also when nothing is cached. Parameters are always bound, never
/// spliced into the SQL. Each lookup is bounded by its `timeout`; a failure or timeout
/// fails the call or, with `on_error = "empty"`, returns nothing.
#[derive(Clone)]
pub struct Lookups {
    jobs: Arc<Jobs>,
    cache: Cache<Key, Cached>,
}

extdata::debug_fields!(Lookups |lookups| {
    lookups: lookups.jobs.config().lookups.keys().collect::<Vec<_>>(),
    cached: lookups.cache.entry_count(),
});

impl Lookups {
    /// A service over the lookups of `jobs`, caching at most `capacity` results.
    pub fn new(jobs: Arc<Jobs>, capacity: u64) -> Self {
        Lookups {
            jobs,
            cache: Cache::builder()
                .max_capacity(capacity)
                .expire_after(PerLookupTtl)
                .build(),
        }
    }

    /// Runs lookup `name` for `account` with `params` (a value for each `:name` of its
    /// query; a missing or unknown parameter is an [`ErrorKind::Parameter`] error).
    /// Returns the first row as an object (`null` when none) or all rows as a list; with
    /// `on_error = "empty"`, a failure returns `null` or an empty list.
    pub async fn get(
        &self,
        account: Option<&str>,
        name: &str,
        params: &Map<String, Json>,
    ) -> Result<Json> {
        Ok(match self.fetch(account, name, params).await? {
            Fetched::Found(json) => json,
            Fetched::Emptied(result) => empty(result),
        })
    }

    /// [`get`](Self::get), telling a failure emptied by `on_error` from a result.
    async fn fetch(
        &self,
        account: Option<&str>,
        name: &str,
        params: &Map<String, Json>,
    ) -> Result<Fetched> {
        let def = self.jobs.lookup(account, name)?;
        let source = self.jobs.source(&def.account, &def.connector)?;
        let mut statement = Statement::new(def.query.clone());
        let wanted = statement.placeholder_names(source.kind().dialect());
        let mut bound = Map::new();
        for param in &wanted {
            let Some(value) = params.get(param) else {
                return Err(Error::parameter(format!(
                    "lookup `{name}` needs the parameter `{param}`"
                )));
            };
            statement.set(param.clone(), json_to_value(value));
            bound.insert(param.clone(), value.clone());
        }
        if let Some(extra) = params.keys().find(|k| !wanted.contains(k)) {
            return Err(Error::parameter(format!(
                "lookup `{name}` has no parameter `{extra}`; its parameters: {}",
                if wanted.is_empty() {
                    "none".to_owned()
                } else {
                    wanted.join(", ")
                }
            )));
        }
        let key = (
            def.account.clone(),
            def.name.clone(),
            Json::Object(bound).to_string(),
        );
        let (result, max_rows, timeout, ttl) =
            (def.result, def.max_rows, def.timeout, def.cache_ttl);
        let load = extdata::for_account(&def.account, async move {
            let options = QueryOptions::default().with_timeout(timeout).with_max_rows(
                if result == LookupResult::Row {
                    1
                } else {
                    max_rows
                },
            );
            let rows = tokio::time::timeout(timeout, source.query(&statement, &options))
                .await
                .map_err(|_| Error::timeout("lookup", timeout))??;
            let value = match result {
                LookupResult::Row => rows.rows.first().map(|r| r.to_json()).unwrap_or(Json::Null),
                LookupResult::Rows => Json::Array(rows.rows.iter().map(|r| r.to_json()).collect()),
            };
            Ok::<_, Error>(Cached {
                value: Arc::new(value),
                ttl,
            })
        });
        match self.cache.try_get_with(key, load).await {
            Ok(cached) => Ok(Fetched::Found((*cached.value).clone())),
            Err(error) => match def.on_error {
                OnError::Fail => Err(copy_error(&error).context(format!("lookup `{name}`"))),
                OnError::Empty => {
                    tracing::warn!(account = %def.account, lookup = name, error = %error, "lookup failed; returning nothing (on_error = empty)");
                    Ok(Fetched::Emptied(def.result))
                }
            },
        }
    }
}

/// A lookup's outcome.
enum Fetched {
    /// Its result (`null` for no row).
    Found(Json),
    /// It failed and its `on_error = "empty"` stands in nothing for the result.
    Emptied(LookupResult),
}

fn empty(result: LookupResult) -> Json {
    match result {
        LookupResult::Row => Json::Null,
        LookupResult::Rows => Json::Array(Vec::new()),
    }
}

/// The shared error of a single-flight load, for one caller.
fn copy_error(error: &Error) -> Error {
    let mut copy =
        Error::new(error.kind(), error.message().to_owned()).with_temporary(error.is_temporary());
    if let Some(connector) = error.connector() {
        copy = copy.with_connector(connector.to_owned());
    }
    copy
}

/// A subscriber's field as a bound value: strings are text, whole numbers integers,
/// other numbers floats; arrays and objects are JSON.
fn json_to_value(json: &Json) -> Value {
    match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => n
            .as_i64()
            .map(Value::I64)
            .or_else(|| n.as_u64().map(Value::U64))
            .or_else(|| n.as_f64().map(Value::F64))
            .unwrap_or(Value::Null),
        Json::String(s) => Value::Text(s.clone()),
        other => Value::Json(other.clone()),
    }
}

/// Renders a minijinja `template` with `subscriber` in its context and a `lookup(name,
/// param=value, …)` function backed by `lookups`, acting for `account`; errors name the
/// template as `template` (see [`render_named`] to name its file).
pub async fn render(
    lookups: Lookups,
    account: Option<String>,
    template: String,
    subscriber: Json,
) -> Result<String> {
    render_named(
        lookups,
        account,
        "template".to_owned(),
        template,
        subscriber,
    )
    .await
}

/// Renders the minijinja template `source`, named `name` in errors (its file), with
/// `subscriber` in its context and a `lookup(name, param=value, …)` function backed by
/// `lookups`, acting for `account`.
///
/// ```text
/// Your last order: {{ lookup("last_order", email=subscriber.email).total }}
/// ```
///
/// Templates are strict: a variable or attribute that does not exist
/// (`subscriber.mail` when the field is `email`) is an [`ErrorKind::Parameter`] error
/// naming the expression, the template and the line — never an empty string. A lookup
/// that finds no row is `none`: test it (`{% if order %}`) or give a default
/// (`order.total | default("–")`). A lookup that fails fails the render with the
/// lookup's error kind, unless it has `on_error = "empty"`, the explicit opt-in: then it
/// renders as nothing, every attribute of it too, and iterates as an empty list.
pub async fn render_named(
    lookups: Lookups,
    account: Option<String>,
    name: String,
    source: String,
    subscriber: Json,
) -> Result<String> {
    let handle = tokio::runtime::Handle::current();
    // minijinja calls functions synchronously: render on a blocking thread and wait for
    // each lookup there, so the runtime's workers stay free.
    tokio::task::spawn_blocking(move || {
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        // Spans of failing expressions, to name them in errors.
        env.set_debug(true);
        env.add_function(
            "lookup",
            move |name: &str,
                  kwargs: Kwargs|
                  -> std::result::Result<minijinja::Value, minijinja::Error> {
                let mut params = Map::new();
                for key in kwargs.args() {
                    let value: minijinja::Value = kwargs.get(key)?;
                    let json = serde_json::to_value(&value).map_err(|e| {
                        minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string())
                    })?;
                    params.insert(key.to_owned(), json);
                }
                match handle.block_on(lookups.fetch(account.as_deref(), name, &params)) {
                    Ok(Fetched::Found(json)) => Ok(minijinja::Value::from_serialize(&json)),
                    Ok(Fetched::Emptied(LookupResult::Row)) => {
                        Ok(minijinja::Value::from_object(Nothing))
                    }
                    Ok(Fetched::Emptied(LookupResult::Rows)) => {
                        Ok(minijinja::Value::from(Vec::<minijinja::Value>::new()))
                    }
                    Err(error) => Err(minijinja::Error::new(
                        minijinja::ErrorKind::InvalidOperation,
                        error.to_string(),
                    )
                    .with_source(error)),
                }
            },
        );
        let context = minijinja::context! { subscriber => subscriber.clone() };
        env.template_from_named_str(&name, &source)
            .and_then(|template| template.render(context))
            .map_err(|error| template_error(&error, &name, &source, &subscriber))
    })
    .await
    .map_err(|e| Error::new(ErrorKind::Internal, format!("the render task failed: {e}")))?
}

/// What a lookup that failed with `on_error = "empty"` is in a template: it renders as
/// nothing, so does each of its attributes, and it is false and empty.
#[derive(Debug)]
struct Nothing;

impl minijinja::value::Object for Nothing {
    fn get_value(self: &Arc<Self>, _key: &minijinja::Value) -> Option<minijinja::Value> {
        Some(minijinja::Value::from_object(Nothing))
    }

    fn enumerate(self: &Arc<Self>) -> minijinja::value::Enumerator {
        minijinja::value::Enumerator::Empty
    }

    fn is_true(self: &Arc<Self>) -> bool {
        false
    }

    fn render(self: &Arc<Self>, _f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Ok(())
    }
}

/// The lookup's own error when a lookup failed, else a template error naming the
/// template, the line and, for an undefined value, the expression (with the closest
/// subscriber field when it is one). Field names only: never a subscriber's value.
fn template_error(error: &minijinja::Error, name: &str, source: &str, subscriber: &Json) -> Error {
    let mut cause = std::error::Error::source(error);
    while let Some(inner) = cause {
        if let Some(found) = inner.downcast_ref::<Error>() {
            return copy_error(found);
        }
        cause = inner.source();
    }
    let place = match error.line() {
        Some(line) => format!("template `{name}` line {line}"),
        None => format!("template `{name}`"),
    };
    let expression = error
        .range()
        .and_then(|range| {
            // A call's span starts at its `(`: take in the name before it.
            let before = source.get(..range.start)?;
            let name = before
                .char_indices()
                .rev()
                .take_while(|(_, c)| c.is_alphanumeric() || *c == '_' || *c == '.')
                .last()
                .map_or(range.start, |(i, _)| i);
            let start = if source.get(range.clone())?.starts_with('(') {
                name
            } else {
                range.start
            };
            source.get(start..range.end)
        })
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty() && text.len() <= 200);
    let message = match (error.kind(), expression) {
        (minijinja::ErrorKind::UndefinedError, Some(expression)) => {
            let mut message = format!("{place}: `{expression}` is undefined");
            if let Some(hint) = field_hint(&expression, subscriber) {
                message.push_str(&format!(" ({hint})"));
            } else if expression.starts_with("lookup(") {
                message.push_str(
                    " (a lookup that finds no row is none: test it with `{% if %}` or add `| default(\"\")`)",
                );
            }
            message
        }
        (kind, _) => {
            let detail = error.detail().map(|d| format!(": {d}")).unwrap_or_default();
            format!("{place}: {kind}{detail}")
        }
    };
    Error::new(ErrorKind::Parameter, message)
}

/// For `subscriber.<field>` that the subscriber lacks: the closest field, or the fields.
fn field_hint(expression: &str, subscriber: &Json) -> Option<String> {
    let field = expression.strip_prefix("subscriber.")?;
    if !field.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return None;
    }
    let Json::Object(fields) = subscriber else {
        return Some("the subscriber has no fields".to_owned());
    };
    if fields.contains_key(field) {
        return None;
    }
    Some(
        match closest_match(field, fields.keys().map(String::as_str)) {
            Some(known) => format!("did you mean `subscriber.{known}`?"),
            None => format!(
                "the subscriber's fields: {}",
                fields.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        },
    )
}
