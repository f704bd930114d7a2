//! [`Registry`]: connectors and accounts loaded from a TOML or JSON file, with the rule
//! that an account reaches only the connectors assigned to it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use extdata_core::{
    ConnectorConfig, DbKind, Error, ErrorKind, ExternalSource, PoolConfig, Problems, Result,
    Scalar, SecretPolicy, SecretSource, SecretString, SslConfig, ValidConfig, did_you_mean,
    unknown_name,
};
use serde::Deserialize;
use serde_json::Value as Json;

/// The file-level name used in problems that belong to no connector.
const FILE: &str = "config";

/// Top-level sections the registry reads itself.
pub const REGISTRY_SECTIONS: &[&str] = &["connectors", "accounts", "secrets"];

/// How the operator of a config file grants secret files and variables, appended to a
/// refusal (a program that adds its own ways says so with
/// [`ConfigDocument::with_secret_policy`] and [`SecretPolicy::with_grant_hint`]).
const FILE_GRANT_HINT: &str =
    "grant it in the config file's [secrets] section (dirs = [...], env_prefixes = [...])";

const SECRETS_FIELDS: &[&str] = &["dirs", "env_prefixes", "max_size"];

/// A parsed configuration document (TOML or JSON), before its sections are read.
///
/// Other crates (e.g. `extdata-jobs`) read their own sections from the same document;
/// [`Registry::from_document`] takes only `connectors` and `accounts`.
#[derive(Debug, Clone)]
pub struct ConfigDocument {
    root: serde_json::Map<String, Json>,
    base_dir: Option<PathBuf>,
    secret_policy: SecretPolicy,
}

impl ConfigDocument {
    /// Reads a file; `.json` files are JSON, everything else TOML.
    pub fn from_path(path: impl AsRef<Path>) -> std::result::Result<Self, Problems> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            problem(
                FILE,
                "file",
                format!("cannot read `{}`: {e}", path.display()),
            )
        })?;
        let is_json = path
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("json"));
        let mut doc = if is_json {
            Self::from_json_str(&text)?
        } else {
            Self::from_toml_str(&text)?
        };
        doc.base_dir = path
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .map(Path::to_path_buf);
        Ok(doc)
    }

    /// Parses TOML text.
    pub fn from_toml_str(text: &str) -> std::result::Result<Self, Problems> {
        let table: toml::Table = toml::from_str(text).map_err(|e| {
            problem(
                FILE,
                "syntax",
                format!("not valid TOML: {}", e.message().trim()),
            )
            .with_toml_span(text, &e)
        })?;
        let root = serde_json::to_value(table)
            .map_err(|e| problem(FILE, "syntax", format!("unsupported TOML value: {e}")))?;
        Self::from_json_value(root)
    }

    /// Parses JSON text.
    pub fn from_json_str(text: &str) -> std::result::Result<Self, Problems> {
        let root: Json = serde_json::from_str(text).map_err(|e| {
            problem(
                FILE,
                "syntax",
                format!(
                    "not valid JSON (line {}, column {}): {e}",
                    e.line(),
                    e.column()
                ),
            )
        })?;
        Self::from_json_value(root)
    }

    fn from_json_value(root: Json) -> std::result::Result<Self, Problems> {
        match root {
            Json::Object(root) => Ok(ConfigDocument {
                root,
                base_dir: None,
                secret_policy: SecretPolicy::deny_all().with_grant_hint(FILE_GRANT_HINT),
            }),
            _ => Err(problem(
                FILE,
                "syntax",
                "the document must be a table/object",
            )),
        }
    }

    /// Resolves relative file paths against `dir` (by default the config file's folder).
    pub fn with_base_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.base_dir = Some(dir.into());
        self
    }

    /// The folder relative paths are resolved against, when known.
    pub fn base_dir(&self) -> Option<&Path> {
        self.base_dir.as_deref()
    }

    /// Sets what the program grants connectors of this document (directories, variable
    /// prefixes, size bound) before the file's own `[secrets]` section adds to it.
    /// Without this call the program grants nothing.
    pub fn with_secret_policy(mut self, policy: SecretPolicy) -> Self {
        self.secret_policy = policy;
        self
    }

    /// The secret policy connectors of this document are validated with: the program's
    /// ([`with_secret_policy`](Self::with_secret_policy)) plus what the file's
    /// `[secrets]` section grants:
    ///
    /// ```toml
    /// [secrets]
    /// dirs = ["/run/secrets/extdata"]   # relative paths: relative to the config file
    /// env_prefixes = ["EXTDATA_"]
    /// max_size = 65536                  # bytes; default 64 KiB
    /// ```
    ///
    /// The config file is the operator's, so what it grants is granted. Problems with
    /// the section are returned as such.
    pub fn secret_policy(&self) -> std::result::Result<SecretPolicy, Problems> {
        let mut policy = self.secret_policy.clone();
        let mut problems = Problems::default();
        let strings = |value: &Json| -> Option<Vec<String>> {
            value
                .as_array()?
                .iter()
                .map(|v| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned))
                .collect()
        };
        match self.section("secrets") {
            None => {}
            Some(Json::Object(map)) => {
                for (key, value) in map {
                    match key.as_str() {
                        "dirs" => match strings(value) {
                            Some(dirs) => {
                                for dir in dirs {
                                    policy = policy.with_file_root(self.resolve_path(&dir));
                                }
                            }
                            None => problems.push(
                                FILE,
                                "secrets.dirs",
                                "must be a list of directory paths (non-empty strings)",
                            ),
                        },
                        "env_prefixes" => match strings(value) {
                            Some(prefixes) => {
                                for prefix in prefixes {
                                    policy = policy.with_env_prefix(prefix);
                                }
                            }
                            None => problems.push(
                                FILE,
                                "secrets.env_prefixes",
                                "must be a list of variable-name prefixes (non-empty strings)",
                            ),
                        },
                        "max_size" => match value.as_u64().and_then(|n| usize::try_from(n).ok()) {
                            Some(bytes) if bytes > 0 => policy = policy.with_max_size(bytes),
                            _ => problems.push(
                                FILE,
                                "secrets.max_size",
                                "must be a whole number of bytes greater than zero",
                            ),
                        },
                        other => problems.push_unknown_field(
                            FILE,
                            format!("secrets.{other}"),
                            SECRETS_FIELDS,
                        ),
                    }
                }
            }
            Some(_) => problems.push(FILE, "secrets", "must be a table ([secrets])"),
        }
        if problems.is_empty() {
            Ok(policy)
        } else {
            Err(problems)
        }
    }

    /// A top-level section, e.g. `"imports"`.
    pub fn section(&self, name: &str) -> Option<&Json> {
        self.root.get(name)
    }

    /// The names of the `[[connectors]]` entries as written, valid or not: what the
    /// other sections' names are checked against while the connectors have problems.
    pub fn declared_connectors(&self) -> BTreeSet<String> {
        self.declared_names("connectors")
    }

    /// Each `[[accounts]]` entry's `connectors` as written (ids as text), valid or not.
    pub fn declared_assignments(&self) -> BTreeMap<String, BTreeSet<String>> {
        let Some(Json::Array(accounts)) = self.section("accounts") else {
            return BTreeMap::new();
        };
        accounts
            .iter()
            .filter_map(|account| {
                let id = match account.get("id")? {
                    Json::String(id) => id.clone(),
                    Json::Number(id) => id.to_string(),
                    _ => return None,
                };
                let connectors = match account.get("connectors") {
                    Some(Json::Array(names)) => names
                        .iter()
                        .filter_map(Json::as_str)
                        .map(str::to_owned)
                        .collect(),
                    _ => BTreeSet::new(),
                };
                Some((id, connectors))
            })
            .collect()
    }

    /// The `name` of every table of the list `section` (e.g. `"segments"`) as written,
    /// valid or not.
    pub fn declared_names(&self, section: &str) -> BTreeSet<String> {
        match self.section(section) {
            Some(Json::Array(entries)) => entries
                .iter()
                .filter_map(|entry| entry.get("name")?.as_str())
                .map(str::to_owned)
                .collect(),
            _ => BTreeSet::new(),
        }
    }

    /// Top-level keys not in `known`, each reported as a problem.
    pub fn unknown_sections(&self, known: &[&str]) -> Problems {
        let mut problems = Problems::default();
        for key in self.root.keys() {
            if !known.contains(&key.as_str()) {
                problems.push(
                    FILE,
                    key.clone(),
                    format!(
                        "unknown section;{} known sections: {}",
                        did_you_mean(key, known.iter().copied()),
                        known.join(", ")
                    ),
                );
            }
        }
        problems
    }

    /// The entries of a top-level list (`[[section]]`); a section that is not a list is
    /// reported and read as empty.
    pub fn list(&self, section: &str, problems: &mut Problems) -> &[Json] {
        match self.section(section) {
            None => &[],
            Some(Json::Array(items)) => items,
            Some(_) => {
                problems.push(
                    FILE,
                    section,
                    format!("must be a list of tables ([[{section}]])"),
                );
                &[]
            }
        }
    }

    /// The tables of a `[[section]]` list, each with the label its problems carry; an
    /// entry that is not a table is reported and left out.
    pub fn tables(&self, section: &str, problems: &mut Problems) -> Vec<ConfigTable<'_>> {
        let mut tables = Vec::new();
        for (index, entry) in self.list(section, problems).iter().enumerate() {
            let Json::Object(fields) = entry else {
                problems.push(format!("{section}[{index}]"), "", "must be a table");
                continue;
            };
            let label = fields
                .get("name")
                .and_then(Json::as_str)
                .filter(|n| !n.trim().is_empty())
                .map(str::to_owned)
                .unwrap_or_else(|| format!("{section}[{index}]"));
            tables.push(ConfigTable { label, fields });
        }
        tables
    }

    /// Reads a secret written in the document: `"literal"`, `{ env = "VAR" }` or
    /// `{ file = "path" }` (relative to the document's folder), under
    /// [`secret_policy`](Self::secret_policy) (nothing granted while the `[secrets]`
    /// section has problems). The error says what is wrong, never the secret.
    pub fn read_secret(&self, value: &Json) -> std::result::Result<SecretString, String> {
        let mut source = serde_json::from_value::<SecretSource>(value.clone())
            .map_err(|_| format!("must be {SECRET_SHAPE}"))?;
        self.resolve_secret_file(&mut source);
        source.resolve(&self.secret_policy().unwrap_or_default())
    }

    fn resolve_secret_file(&self, source: &mut SecretSource) {
        if let SecretSource::File { file } = source {
            *file = self.resolve_path(file);
        }
    }

    /// Resolves a possibly relative path against the base folder.
    pub fn resolve_path(&self, path: &str) -> String {
        match &self.base_dir {
            Some(dir) if Path::new(path).is_relative() => {
                dir.join(path).to_string_lossy().into_owned()
            }
            _ => path.to_owned(),
        }
    }
}

/// One table of a `[[section]]` list ([`ConfigDocument::tables`]).
#[derive(Debug, Clone)]
pub struct ConfigTable<'d> {
    /// How problems name the entry: its `name`, or `section[index]` without one.
    pub label: String,
    /// Its fields as written.
    pub fields: &'d serde_json::Map<String, Json>,
}

impl ConfigTable<'_> {
    /// Reports every field not in `known` (with the field probably meant); whether
    /// there was none.
    pub fn check_fields(&self, known: &[&str], problems: &mut Problems) -> bool {
        let mut clean = true;
        for key in self.fields.keys() {
            if !known.contains(&key.as_str()) {
                problems.push_unknown_field(&self.label, key.clone(), known);
                clean = false;
            }
        }
        clean
    }
}

/// How a secret may be written.
const SECRET_SHAPE: &str = "a string, { env = \"VAR\" } or { file = \"path\" }";

fn problem(connector: &str, field: impl Into<String>, message: impl Into<String>) -> Problems {
    let mut p = Problems::default();
    p.push(connector, field, message);
    p
}

trait WithTomlSpan {
    fn with_toml_span(self, text: &str, err: &toml::de::Error) -> Self;
}

impl WithTomlSpan for Problems {
    fn with_toml_span(mut self, text: &str, err: &toml::de::Error) -> Self {
        if let (Some(span), Some(p)) = (err.span(), self.0.first_mut()) {
            let line = text[..span.start.min(text.len())].lines().count().max(1);
            p.message = format!("{} (line {line})", p.message);
        }
        self
    }
}

/// What a field must look like, for type errors.
fn expected(field: &str) -> String {
    match field {
        "port" => "a port number".into(),
        "password" => SECRET_SHAPE.into(),
        "options" => "a string like \"a=1&b=2\" or a table".into(),
        "read_only" => "true or false".into(),
        "ssl" => format!("a table with {}", SslConfig::field_names().join(", ")),
        "pool" => format!("a table with {}", PoolConfig::field_names().join(", ")),
        _ => "a string".into(),
    }
}

/// Reads one `[[connectors]]` entry, field by field: each field is read on its own
/// (as a [`ConnectorConfig`] of that one field, the others at their defaults), so that
/// every mistake is reported; then the fields that read are read together. A JSON
/// `null` is a field left out.
fn read_connector(table: &ConfigTable<'_>, problems: &mut Problems) -> ConnectorConfig {
    let label = &table.label;
    let mut readable = serde_json::Map::new();
    for (key, value) in table.fields {
        if !ConnectorConfig::field_names().contains(&key.as_str()) || value.is_null() {
            continue;
        }
        let single = Json::Object([(key.clone(), value.clone())].into_iter().collect());
        match serde_json::from_value::<ConnectorConfig>(single) {
            Ok(_) => {
                readable.insert(key.clone(), value.clone());
            }
            Err(e) => {
                let detail = e.to_string();
                // Nested tables (ssl, pool) name their own unknown fields: keep serde's words.
                let message = if detail.starts_with("unknown field") {
                    detail
                } else {
                    format!("must be {} ({detail})", expected(key))
                };
                problems.push(label, key.clone(), message);
            }
        }
    }
    if !readable.contains_key("type") {
        problems.push(
            label,
            "type",
            format!(
                "is missing; one of: {}",
                DbKind::ALL.map(DbKind::as_str).join(", ")
            ),
        );
    }
    if !readable.contains_key("name") {
        problems.push(label, "name", "is missing");
    }
    // Fields that read alone read together; even with field errors, what read is
    // returned so that validation reports the rest.
    serde_json::from_value(Json::Object(readable)).unwrap_or_else(|e| {
        problems.push(label, "", format!("cannot be read: {e}"));
        ConnectorConfig::default()
    })
}

/// Makes the relative file paths of a connector relative to the config file's folder.
fn resolve_paths(config: &mut ConnectorConfig, doc: &ConfigDocument) {
    let secrets = [
        config.password.as_mut(),
        config.ssl.as_mut().and_then(|ssl| ssl.key.as_mut()),
    ];
    for source in secrets.into_iter().flatten() {
        doc.resolve_secret_file(source);
    }
    if let Some(ssl) = &mut config.ssl {
        for file in [&mut ssl.ca_file, &mut ssl.cert_file, &mut ssl.key_file]
            .into_iter()
            .flatten()
        {
            *file = doc.resolve_path(file);
        }
    }
    let is_sqlite = config.kind.parse::<DbKind>().ok() == Some(DbKind::Sqlite);
    if is_sqlite
        && let Some(db) = &mut config.database
        && db != ":memory:"
        && !db.starts_with("file:")
    {
        *db = doc.resolve_path(db);
    }
}

/// One `[[accounts]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountEntry {
    id: Scalar,
    #[serde(default)]
    connectors: Vec<String>,
}

/// The field of an `[[accounts]]` entry that failed to parse, for its problem line.
fn account_field(entry: &Json) -> &'static str {
    match entry {
        Json::Object(map) if map.keys().all(|k| k == "id" || k == "connectors") => {
            match map.get("id") {
                None | Some(Json::Null | Json::Array(_) | Json::Object(_)) => "id",
                _ => "connectors",
            }
        }
        // Not a table, or an unknown key (serde's message names it).
        _ => "accounts",
    }
}

/// Connectors and the accounts they are assigned to.
///
/// One account may have several connectors; a connector may serve several accounts and
/// its source (and pool) is then shared. [`Registry::source`] refuses, with
/// [`ErrorKind::Forbidden`], a connector that is not assigned to the asking account.
///
/// ```
/// let registry = extdata::Registry::from_toml_str(r#"
///     [[connectors]]
///     name = "local"
///     type = "sqlite"
///     database = ":memory:"
///
///     [[accounts]]
///     id = "42"
///     connectors = ["local"]
/// "#).unwrap();
/// assert!(registry.source("42", "local").is_ok());
/// let err = registry.source("7", "local").unwrap_err();
/// assert_eq!(err.kind(), extdata::ErrorKind::Forbidden);
/// ```
pub struct Registry {
    connectors: BTreeMap<String, ValidConfig>,
    accounts: BTreeMap<String, BTreeSet<String>>,
    sources: Mutex<HashMap<String, Arc<dyn ExternalSource>>>,
    secret_policy: SecretPolicy,
}

impl Registry {
    /// Loads a TOML or JSON file (`.json` is JSON). Unknown top-level sections are errors.
    pub fn from_path(path: impl AsRef<Path>) -> std::result::Result<Self, Problems> {
        let doc = ConfigDocument::from_path(path)?;
        let mut problems = doc.unknown_sections(REGISTRY_SECTIONS);
        match Self::from_document(&doc) {
            Ok(registry) if problems.is_empty() => Ok(registry),
            Ok(_) => Err(problems),
            Err(more) => {
                problems.extend(more);
                Err(problems)
            }
        }
    }

    /// Parses TOML text (relative paths stay relative to the working directory).
    pub fn from_toml_str(text: &str) -> std::result::Result<Self, Problems> {
        Self::from_document(&ConfigDocument::from_toml_str(text)?)
    }

    /// Parses JSON text with the same shape as the TOML file.
    pub fn from_json_str(text: &str) -> std::result::Result<Self, Problems> {
        Self::from_document(&ConfigDocument::from_json_str(text)?)
    }

    /// Reads the `connectors` and `accounts` sections of a document, validating every
    /// connector with its backend's rules and reporting every problem at once.
    ///
    /// Secrets are read under [`ConfigDocument::secret_policy`]; the registry keeps
    /// that policy for [`add_connector`](Self::add_connector).
    pub fn from_document(doc: &ConfigDocument) -> std::result::Result<Self, Problems> {
        let mut problems = Problems::default();
        let secret_policy = doc.secret_policy().unwrap_or_else(|found| {
            problems.extend(found);
            doc.secret_policy.clone()
        });
        let (connectors, names) = read_connectors(doc, &secret_policy, &mut problems);
        let accounts = read_accounts(doc, &names, &mut problems);
        if problems.is_empty() {
            Ok(Registry {
                connectors,
                accounts,
                sources: Mutex::new(HashMap::new()),
                secret_policy,
            })
        } else {
            Err(problems)
        }
    }

    /// Builds a registry in code. Its secret policy grants nothing
    /// ([`SecretPolicy::deny_all`]) until [`with_secret_policy`](Self::with_secret_policy).
    pub fn new() -> Self {
        Registry {
            connectors: BTreeMap::new(),
            accounts: BTreeMap::new(),
            sources: Mutex::new(HashMap::new()),
            secret_policy: SecretPolicy::deny_all(),
        }
    }

    /// Sets the policy [`add_connector`](Self::add_connector) reads secrets under.
    pub fn with_secret_policy(mut self, policy: SecretPolicy) -> Self {
        self.secret_policy = policy;
        self
    }

    /// The policy [`add_connector`](Self::add_connector) reads secrets under.
    pub fn secret_policy(&self) -> &SecretPolicy {
        &self.secret_policy
    }

    /// Adds a connector (validated with its backend's rules; its `{ file }` and
    /// `{ env }` secrets read only as the registry's [`SecretPolicy`] grants).
    pub fn add_connector(&mut self, config: &ConnectorConfig) -> std::result::Result<(), Problems> {
        let valid = crate::validate_with_policy(config, &self.secret_policy)?;
        if self.connectors.contains_key(&valid.name) {
            return Err(problem(
                &valid.name,
                "name",
                "is used by another connector; names must be unique",
            ));
        }
        self.connectors.insert(valid.name.clone(), valid);
        Ok(())
    }

    /// Assigns a connector to an account (creating the account when new). A blank
    /// account id or an unknown connector is a [`ErrorKind::Config`] error.
    pub fn assign(
        &mut self,
        account: impl Into<String>,
        connector: impl Into<String>,
    ) -> Result<()> {
        let (account, connector) = (account.into(), connector.into());
        // The empty id is no account's: state kept for no account is stored under it.
        if account.trim().is_empty() {
            return Err(Error::config("an account id must not be empty"));
        }
        if !self.connectors.contains_key(&connector) {
            return Err(Error::config(format!("unknown connector `{connector}`")));
        }
        self.accounts.entry(account).or_default().insert(connector);
        Ok(())
    }

    /// The source of `connector` for `account`: [`ErrorKind::Forbidden`] unless the
    /// connector is assigned to the account (an unknown account or connector gets the
    /// same answer, so the answer does not reveal which connectors exist).
    pub fn source(&self, account: &str, connector: &str) -> Result<Arc<dyn ExternalSource>> {
        let allowed = self
            .accounts
            .get(account)
            .is_some_and(|assigned| assigned.contains(connector));
        if !allowed {
            return Err(Error::new(
                ErrorKind::Forbidden,
                format!("connector `{connector}` is not assigned to account `{account}`"),
            ));
        }
        self.source_unchecked(connector)
    }

    /// The source of `connector` regardless of accounts (for administrators' tools).
    pub fn source_unchecked(&self, connector: &str) -> Result<Arc<dyn ExternalSource>> {
        let mut sources = self
            .sources
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(source) = sources.get(connector) {
            return Ok(source.clone());
        }
        let config = self
            .connectors
            .get(connector)
            .ok_or_else(|| Error::config(format!("unknown connector `{connector}`")))?;
        let source = crate::connect_valid(config.clone())?;
        sources.insert(connector.to_owned(), source.clone());
        Ok(source)
    }

    /// Whether `account` may use `connector`.
    pub fn is_assigned(&self, account: &str, connector: &str) -> bool {
        self.accounts
            .get(account)
            .is_some_and(|assigned| assigned.contains(connector))
    }

    /// The validated connectors by name.
    pub fn connectors(&self) -> impl Iterator<Item = &ValidConfig> {
        self.connectors.values()
    }

    /// A connector's validated config.
    pub fn connector(&self, name: &str) -> Option<&ValidConfig> {
        self.connectors.get(name)
    }

    /// The account ids.
    pub fn accounts(&self) -> impl Iterator<Item = &str> {
        self.accounts.keys().map(String::as_str)
    }

    /// The connectors assigned to `account`.
    pub fn connectors_of(&self, account: &str) -> impl Iterator<Item = &str> {
        self.accounts
            .get(account)
            .into_iter()
            .flat_map(|set| set.iter().map(String::as_str))
    }

    /// Closes every source opened so far.
    pub async fn close(&self) {
        let sources: Vec<_> = {
            let mut map = self
                .sources
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            map.drain().map(|(_, s)| s).collect()
        };
        for source in sources {
            source.close().await;
        }
    }
}

/// The valid `[[connectors]]` (each validated with its backend's rules) by name, and
/// the names of all of them, valid or not. A name used twice is reported (validated
/// all the same); the first keeps it.
fn read_connectors(
    doc: &ConfigDocument,
    secret_policy: &SecretPolicy,
    problems: &mut Problems,
) -> (BTreeMap<String, ValidConfig>, BTreeSet<String>) {
    let mut connectors = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for table in doc.tables("connectors", problems) {
        table.check_fields(ConnectorConfig::field_names(), problems);
        let mut config = read_connector(&table, problems);
        if !config.name.is_empty() && !seen.insert(config.name.clone()) {
            problems.push(
                &config.name,
                "name",
                "is used by another connector; names must be unique",
            );
        }
        resolve_paths(&mut config, doc);
        match crate::validate_with_policy(&config, secret_policy) {
            Ok(valid) => {
                connectors.entry(valid.name.clone()).or_insert(valid);
            }
            Err(found) => problems.extend(found),
        }
    }
    (connectors, seen)
}

/// The `[[accounts]]` and the connectors assigned to each (every name must be one of
/// `connector_names`).
fn read_accounts(
    doc: &ConfigDocument,
    connector_names: &BTreeSet<String>,
    problems: &mut Problems,
) -> BTreeMap<String, BTreeSet<String>> {
    let mut accounts: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (index, entry) in doc.list("accounts", problems).iter().enumerate() {
        let label = format!("accounts[{index}]");
        let account: AccountEntry = match serde_json::from_value(entry.clone()) {
            Ok(a) => a,
            Err(e) => {
                problems.push(label, account_field(entry), e.to_string());
                continue;
            }
        };
        let id = account.id.to_string();
        let label = format!("account {id}");
        if id.trim().is_empty() {
            problems.push(&label, "id", "must not be empty");
        }
        if accounts.contains_key(&id) {
            problems.push(
                &label,
                "id",
                "is used by another account; ids must be unique",
            );
            continue;
        }
        let mut assigned = BTreeSet::new();
        for name in account.connectors {
            if !connector_names.contains(&name) {
                problems.push(
                    &label,
                    "connectors",
                    unknown_name(
                        "connector",
                        &name,
                        connector_names.iter().map(String::as_str),
                    ),
                );
            }
            assigned.insert(name);
        }
        accounts.insert(id, assigned);
    }
    accounts
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

extdata_core::debug_fields!(Registry |registry| {
    connectors: registry.connectors.keys().collect::<Vec<_>>(),
    accounts,
});

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use extdata_core::Protocol;

    use super::*;

    /// A value for every connector field, none of them the default.
    fn every_field() -> serde_json::Map<String, Json> {
        let sample = serde_json::json!({
            "name": "crm",
            "type": "postgresql",
            "database": "crm",
            "host": "db",
            "port": 6432,
            "protocol": "tcp",
            "username": "reader",
            "password": { "env": "CRM_PASSWORD" },
            "connect_timeout": "3s",
            "query_timeout": "7s",
            "options": "application_name=x",
            "read_only": true,
            "ssl": { "verify": "ca", "ca_file": "ca.pem" },
            "pool": { "max_size": 3 },
        });
        let Json::Object(map) = sample else {
            unreachable!("a JSON object literal")
        };
        map
    }

    fn read(fields: &serde_json::Map<String, Json>) -> (ConnectorConfig, Problems) {
        let mut problems = Problems::default();
        let table = ConfigTable {
            label: "crm".into(),
            fields,
        };
        let config = read_connector(&table, &mut problems);
        (config, problems)
    }

    #[test]
    fn every_field_reads_into_the_connector() {
        let fields = every_field();
        let names: Vec<&str> = fields.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            ConnectorConfig::field_names(),
            "the sample covers every field"
        );
        let (config, problems) = read(&fields);
        assert!(problems.is_empty(), "{problems}");
        let expected = ConnectorConfig::new("crm", DbKind::Postgres)
            .with_database("crm")
            .with_host("db")
            .with_port(6432)
            .with_protocol(Protocol::Tcp)
            .with_username("reader")
            .with_password(SecretSource::Env {
                env: "CRM_PASSWORD".into(),
            })
            .with_connect_timeout(Duration::from_secs(3))
            .with_query_timeout(Duration::from_secs(7))
            .with_options("application_name=x")
            .with_read_only(true)
            .with_ssl(SslConfig {
                verify: Some("ca".into()),
                ca_file: Some("ca.pem".into()),
                ..SslConfig::default()
            })
            .with_pool(PoolConfig {
                max_size: Some(Scalar::Int(3)),
                ..PoolConfig::default()
            });
        assert_eq!(format!("{config:?}"), format!("{expected:?}"));
    }

    #[test]
    fn each_field_reads_on_its_own() {
        let default = format!("{:?}", ConnectorConfig::default());
        for (key, value) in every_field() {
            let single = [(key.clone(), value)].into_iter().collect();
            let (config, _) = read(&single);
            assert_ne!(format!("{config:?}"), default, "`{key}` was not read");
        }
    }

    #[test]
    fn each_field_of_the_wrong_type_is_named_and_the_others_still_read() {
        for field in ConnectorConfig::field_names() {
            let mut fields = every_field();
            fields.insert((*field).to_owned(), serde_json::json!([{}]));
            let (config, problems) = read(&fields);
            let named: Vec<_> = problems.iter().filter(|p| p.field == *field).collect();
            assert!(
                named.iter().any(|p| p.message.starts_with("must be ")),
                "`{field}`: {problems}"
            );
            assert!(
                problems.iter().all(|p| p.field == *field),
                "only `{field}` is wrong: {problems}"
            );
            if *field != "host" {
                assert_eq!(config.host.as_deref(), Some("db"), "`{field}`");
            }
        }
    }

    #[test]
    fn a_json_null_is_a_field_left_out() {
        let mut fields = every_field();
        for key in ["database", "options", "read_only", "ssl", "pool"] {
            fields.insert(key.into(), Json::Null);
        }
        let (config, problems) = read(&fields);
        assert!(problems.is_empty(), "{problems}");
        assert!(config.database.is_none() && config.ssl.is_none() && !config.read_only);
        fields.insert("name".into(), Json::Null);
        let (_, problems) = read(&fields);
        assert_eq!(problems.to_string(), "crm: name: is missing");
    }
}
