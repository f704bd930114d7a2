//! The facade: validation of whole files, account scoping, disabled backends, secrets.

use std::sync::{Arc, Mutex};

use extdata::{
    ConfigDocument, ConnectorConfig, DbKind, ErrorKind, QueryOptions, Registry, SecretPolicy,
    SecretSource, Statement,
};
use extdata_conformance::support::mistaken_connectors;

const SENTINEL: &str = "sentinel-pw-7f3a9c";

fn problems_of(text: &str) -> Vec<String> {
    match Registry::from_toml_str(text) {
        Ok(_) => Vec::new(),
        Err(problems) => problems.iter().map(ToString::to_string).collect(),
    }
}

/// A config file of in-memory SQLite connectors named `connectors`, and `accounts`
/// (an id and the connectors it owns).
fn memory_connectors(connectors: &[&str], accounts: &[(&str, &[&str])]) -> String {
    let mut text = String::new();
    for name in connectors {
        text += &format!(
            "[[connectors]]\nname = {name:?}\ntype = \"sqlite\"\ndatabase = \":memory:\"\n"
        );
    }
    for (id, owned) in accounts {
        text += &format!("[[accounts]]\nid = {id:?}\nconnectors = {owned:?}\n");
    }
    text
}

#[test]
fn every_mistake_in_a_file_is_reported_at_once() {
    let crm = r#"options = "application_name=x&colation=utf8"
password = { env = "EXTDATA_SURELY_UNSET_PASSWORD_VAR" }"#;
    let text = format!(
        r#"
        [secrets]
        env_prefixes = ["EXTDATA_SURELY_"]
        {}
        [[connectors]]
        name = "local"
        type = "sqlite"
        database = "other.db"
        hots = "typo"
        {}"#,
        mistaken_connectors(crm),
        memory_connectors(&[], &[("42", &["crm", "missing"])]),
    );
    let problems = problems_of(&text);
    let expect = [
        "crm: port: `70000` is not a port number",
        "crm: options: unknown option `colation`",
        "crm: password: environment variable `EXTDATA_SURELY_UNSET_PASSWORD_VAR` is not set",
        "local: ssl: sqlite connectors do not support SSL",
        "<unnamed>: name: must not be empty",
        "local: name: is used by another connector",
        "local: hots: unknown field; did you mean `host`?",
        "account 42: connectors: unknown connector `missing`",
    ];
    for needle in expect {
        assert!(
            problems.iter().any(|p| p.starts_with(needle)),
            "missing `{needle}` in:\n{}",
            problems.join("\n")
        );
    }
    assert!(
        problems
            .iter()
            .any(|p| p.contains("known options: application_name")),
        "the unknown option's problem lists the known ones:\n{}",
        problems.join("\n")
    );
}

#[test]
fn wrong_value_types_name_their_field() {
    let problems = problems_of(
        r#"
        [[connectors]]
        name = "x"
        type = "sqlite"
        database = ":memory:"
        read_only = "yes"
        pool = { max_size = 5, maximum = 3 }
        "#,
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("x: read_only: must be true or false")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("x: pool: unknown field `maximum`")),
        "{problems:?}"
    );
}

#[test]
fn json_has_the_same_shape() {
    let registry = Registry::from_json_str(
        r#"{"connectors": [{"name": "local", "type": "sqlite", "database": ":memory:"}],
            "accounts": [{"id": 42, "connectors": ["local"]}]}"#,
    )
    .unwrap();
    assert!(registry.is_assigned("42", "local"));
}

/// The empty account id is no account's (the jobs' state keeps rows that belong to no
/// account under it): a program cannot assign a connector to it, blank or not.
#[test]
fn a_blank_account_id_cannot_be_assigned() {
    let mut registry = Registry::from_toml_str(&memory_connectors(&["a"], &[])).unwrap();
    for blank in ["", "  "] {
        let err = registry.assign(blank, "a").unwrap_err();
        assert_eq!(err.kind(), extdata::ErrorKind::Config, "{err}");
        assert!(err.to_string().contains("must not be empty"), "{err}");
    }
    registry.assign("1", "a").unwrap();
    assert!(registry.is_assigned("1", "a"));
    assert!(!registry.is_assigned("", "a"));
}

#[tokio::test]
async fn an_account_reaches_only_its_own_connectors() {
    let config = memory_connectors(&["a", "b"], &[("1", &["a", "b"]), ("2", &["b"])]);
    let registry = Registry::from_toml_str(&config).unwrap();
    for (account, connector, allowed) in [
        ("1", "a", true),
        ("1", "b", true),
        ("2", "b", true),
        ("2", "a", false),
        ("3", "a", false),
        ("1", "nope", false),
    ] {
        match registry.source(account, connector) {
            Ok(source) => {
                assert!(allowed, "account {account} reached {connector}");
                source.ping().await.unwrap();
            }
            Err(err) => {
                assert!(!allowed, "account {account} refused {connector}: {err}");
                assert_eq!(err.kind(), ErrorKind::Forbidden);
            }
        }
    }
    // Sources are shared between accounts: one pool per connector.
    let one = registry.source("1", "b").unwrap();
    let two = registry.source("2", "b").unwrap();
    assert!(Arc::ptr_eq(&one, &two));
}

#[test]
fn a_backend_whose_feature_is_off_names_the_feature() {
    // Oracle and MSSQL are opt-in: whichever this build leaves out plays the part.
    let Some(kind) = DbKind::ALL
        .into_iter()
        .find(|kind| extdata::spec(*kind).is_none())
    else {
        eprintln!("a_backend_whose_feature_is_off_names_the_feature: every backend is compiled in");
        return;
    };
    let config = ConnectorConfig::new("erp", kind).with_host("db");
    let err = extdata::connect(&config).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(
        err.to_string()
            .contains(&format!("feature `{}`", kind.feature())),
        "{err}"
    );
}

#[test]
fn connect_does_no_io() {
    // Nothing listens on port 1; building the source must still succeed.
    let config = ConnectorConfig::new("later", DbKind::Postgres)
        .with_host("127.0.0.1")
        .with_port(1)
        .with_password(SENTINEL);
    let source = extdata::connect(&config).unwrap();
    assert!(!format!("{source:?}").contains(SENTINEL));
}

/// Collects every log line, at every level, to look for secrets in them.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_failing_connectors_password_is_in_no_error_debug_or_log_line() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let config = ConnectorConfig::new("crm", DbKind::Postgres)
        .with_host("127.0.0.1")
        .with_port(1)
        .with_username("reader")
        .with_password(SENTINEL)
        .with_connect_timeout(std::time::Duration::from_secs(2));
    let source = extdata::connect(&config).unwrap();
    let err = source.ping().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect, "{err:?}");
    let err2 = source
        .query(&Statement::new("SELECT 1"), &QueryOptions::default())
        .await
        .unwrap_err();

    let mut texts = vec![
        err.to_string(),
        format!("{err:?}"),
        err2.to_string(),
        format!("{err2:?}"),
        format!("{source:?}"),
        format!("{config:?}"),
    ];
    let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(&err);
    while let Some(c) = cause {
        texts.push(c.to_string());
        texts.push(format!("{c:?}"));
        cause = c.source();
    }
    texts.push(String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned());
    for text in &texts {
        assert!(!text.contains(SENTINEL), "password leaked: {text}");
    }
    let logs = texts.last().unwrap();
    assert!(
        logs.contains("extdata.call"),
        "the call was not logged: {logs}"
    );
    assert!(
        logs.contains("error_kind"),
        "the error kind was not logged: {logs}"
    );
}

// ------------------------------------------------------------------ secret policy

/// A file reading `secrets/crm`.
const FROM_SECRETS: &str = r#"{ file = "secrets/crm" }"#;
/// A file reading `elsewhere/crm`.
const FROM_ELSEWHERE: &str = r#"{ file = "elsewhere/crm" }"#;
/// A password read from `CARGO_PKG_NAME`.
const FROM_ENV: &str = r#"{ env = "CARGO_PKG_NAME" }"#;

/// A folder with `secrets/crm` and `elsewhere/crm`, both files holding the sentinel,
/// and `extdata.toml`: the text `secrets` (its `[secrets]` section), then one
/// PostgreSQL connector per `(name, password)` of `connectors`.
fn secret_fixture(
    secrets: &str,
    connectors: &[(&str, &str)],
) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["secrets", "elsewhere"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
        std::fs::write(dir.path().join(sub).join("crm"), format!("{SENTINEL}\n")).unwrap();
    }
    let mut config = format!("{secrets}\n");
    for (name, password) in connectors {
        config += &postgres_with_password(name, password);
    }
    let path = dir.path().join("extdata.toml");
    std::fs::write(&path, config).unwrap();
    (dir, path)
}

fn postgres_with_password(name: &str, password: &str) -> String {
    format!(
        "[[connectors]]\nname = \"{name}\"\ntype = \"postgresql\"\nhost = \"db.example.com\"\n\
         password = {password}\n\n"
    )
}

/// The problems of the [`secret_fixture`] of `secrets` and `connectors`, which must
/// have some, none of them showing the sentinel.
fn secret_problems(secrets: &str, connectors: &[(&str, &str)]) -> String {
    let (_dir, path) = secret_fixture(secrets, connectors);
    let problems = Registry::from_path(&path).unwrap_err().to_string();
    assert_no_sentinel(&problems);
    problems
}

/// Asserts that `problems` mentions every one of `expected`.
#[track_caller]
fn assert_mentions(problems: &str, expected: &[&str]) {
    for expected in expected {
        assert!(
            problems.contains(expected),
            "missing {expected:?} in:\n{problems}"
        );
    }
}

/// Asserts that connector `name` of `registry` has the password `expected`.
fn assert_password(registry: &Registry, name: &str, expected: Option<&str>) {
    assert_eq!(
        registry.connector(name).unwrap().password_text(),
        expected,
        "password of {name}"
    );
}

fn assert_no_sentinel(text: &str) {
    assert!(!text.contains(SENTINEL), "the secret in: {text}");
}

#[test]
fn a_config_file_grants_nothing_without_a_secrets_section() {
    let problems = secret_problems("", &[("crm", FROM_SECRETS), ("env", FROM_ENV)]);
    assert_mentions(
        &problems,
        &[
            "crm: password: file `",
            "is outside the directories granted for secret files (granted: none)",
            "grant it in the config file's [secrets] section",
            "env: password: environment variable `CARGO_PKG_NAME` is outside",
        ],
    );
}

#[test]
fn the_secrets_section_grants_folders_relative_to_the_file_and_variable_prefixes() {
    let (_dir, path) = secret_fixture(
        "[secrets]\ndirs = [\"secrets\"]\nenv_prefixes = [\"CARGO_PKG_\"]",
        &[("crm", FROM_SECRETS), ("env", FROM_ENV)],
    );
    let registry = Registry::from_path(&path).unwrap_or_else(|p| panic!("{p}"));
    assert_password(&registry, "crm", Some(SENTINEL));
    assert_password(&registry, "env", Some(env!("CARGO_PKG_NAME")));
    let debug = format!("{registry:?}");
    assert_no_sentinel(&debug);
}

#[test]
fn the_secrets_section_does_not_grant_the_folder_beside_it() {
    let problems = secret_problems(
        "[secrets]\ndirs = [\"secrets\"]",
        &[
            ("crm", FROM_ELSEWHERE),
            ("dots", r#"{ file = "secrets/../elsewhere/crm" }"#),
        ],
    );
    for name in ["crm", "dots"] {
        assert!(
            problems.contains(&format!("{name}: password: file `"))
                && problems.contains("is outside the directories granted"),
            "{name}: {problems}"
        );
    }
}

#[test]
fn mistakes_in_the_secrets_section_are_reported_with_the_rest() {
    let text = format!(
        "[secrets]\ndirs = \"/run/secrets\"\nenv_prefixes = [\"\"]\nmax_size = 0\nroots = []\n\n{}",
        postgres_with_password("crm", "\"literal\"").replace("db.example.com", "")
    );
    let problems = problems_of(&text).join("\n");
    assert_mentions(
        &problems,
        &[
            "config: secrets.dirs: must be a list of directory paths",
            "config: secrets.env_prefixes: must be a list of variable-name prefixes",
            "config: secrets.max_size: must be a whole number of bytes greater than zero",
            "config: secrets.roots: unknown field; known fields: dirs, env_prefixes, max_size",
            "crm: host: must not be empty",
        ],
    );
    let problems = problems_of("secrets = 5\n").join("\n");
    assert_mentions(&problems, &["config: secrets: must be a table"]);
}

#[test]
fn the_programs_policy_and_the_files_section_add_up() {
    let (dir, path) = secret_fixture(
        "[secrets]\ndirs = [\"secrets\"]\nmax_size = 4096",
        &[("crm", FROM_SECRETS), ("other", FROM_ELSEWHERE)],
    );
    let doc = ConfigDocument::from_path(&path)
        .unwrap()
        .with_secret_policy(SecretPolicy::deny_all().with_file_root(dir.path().join("elsewhere")));
    let policy = doc.secret_policy().unwrap();
    assert_eq!(policy.file_roots().len(), 2);
    assert_eq!(policy.max_size(), 4096);
    let registry = Registry::from_document(&doc).unwrap_or_else(|p| panic!("{p}"));
    assert_password(&registry, "other", Some(SENTINEL));
    // The registry keeps the policy for connectors added later.
    assert_eq!(registry.secret_policy(), &policy);
}

#[test]
fn connectors_added_in_code_get_the_registrys_policy() {
    let config = ConnectorConfig::new("crm", DbKind::Postgres)
        .with_host("db.example.com")
        .with_password(SecretSource::Env {
            env: "CARGO_PKG_NAME".into(),
        });
    let problems = Registry::new()
        .add_connector(&config)
        .unwrap_err()
        .to_string();
    assert!(problems.contains("(granted: none)"), "{problems}");
    assert!(extdata::connect(&config).is_err());
    let policy = SecretPolicy::deny_all().with_env_prefix("CARGO_PKG_");
    let mut registry = Registry::new().with_secret_policy(policy.clone());
    registry.add_connector(&config).unwrap();
    assert_password(&registry, "crm", Some(env!("CARGO_PKG_NAME")));
    assert!(extdata::connect_with_policy(&config, &policy).is_ok());
}
