//! The secret policy: what files and environment variables a connector may make the
//! process read, attacked as a connector from an untrusted source would; and `Debug`
//! of configs, which must not show option values.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use extdata_core::{
    BackendSpec, ConnectorConfig, DbKind, DsnOptions, ExposeSecret as _, Problems, Scalar,
    SecretPolicy, SecretSource, SslConfig, Support,
};

/// What every secret file of these tests holds; it must appear in no problem.
const SENTINEL: &str = "sentinel-secret-Zq81";

const SPEC: BackendSpec = BackendSpec {
    udp: Support::No("not here"),
    option_prefixes: &["ssl", "application_name"],
    ..BackendSpec::server(DbKind::Postgres, 5432)
};

fn connector(password: SecretSource) -> ConnectorConfig {
    ConnectorConfig::new("crm", DbKind::Postgres)
        .with_host("db.example.com")
        .with_password(password)
}

/// The password as validation read it, or the problems (checked to hold no secret).
fn password(source: SecretSource, policy: &SecretPolicy) -> Result<String, String> {
    match connector(source).validate_with_policy(Some(&SPEC), policy) {
        Ok(valid) => Ok(valid.password_text().unwrap_or_default().to_owned()),
        Err(problems) => Err(checked(problems)),
    }
}

fn checked(problems: Problems) -> String {
    let text = format!("{problems}\n{problems:?}");
    assert!(!text.contains(SENTINEL), "a secret in a problem: {text}");
    problems.to_string()
}

fn file(path: &Path) -> SecretSource {
    SecretSource::File {
        file: path.to_string_lossy().into_owned(),
    }
}

/// `<tmp>/granted/secret` and `<tmp>/outside/secret`, both holding the sentinel.
struct Dirs {
    _tmp: tempfile::TempDir,
    granted: PathBuf,
    outside: PathBuf,
}

impl Dirs {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let granted = tmp.path().join("granted");
        let outside = tmp.path().join("outside");
        for dir in [&granted, &outside] {
            std::fs::create_dir(dir).unwrap();
            std::fs::write(dir.join("secret"), format!("{SENTINEL}\n")).unwrap();
        }
        Dirs {
            _tmp: tmp,
            granted,
            outside,
        }
    }

    fn policy(&self) -> SecretPolicy {
        SecretPolicy::deny_all().with_file_root(&self.granted)
    }
}

/// Asserts that the error text `error` says `text`.
fn assert_says(error: &str, text: &str) {
    assert!(error.contains(text), "`{text}` missing from: {error}");
}

#[test]
fn a_file_in_a_granted_directory_is_read_without_its_trailing_newline() {
    let dirs = Dirs::new();
    let read = password(file(&dirs.granted.join("secret")), &dirs.policy()).unwrap();
    assert_eq!(read, SENTINEL);
    // Subdirectories of a granted directory are granted too.
    std::fs::create_dir(dirs.granted.join("crm")).unwrap();
    std::fs::write(dirs.granted.join("crm/password"), "pw").unwrap();
    assert_eq!(
        password(file(&dirs.granted.join("crm/password")), &dirs.policy()).unwrap(),
        "pw"
    );
}

#[test]
fn a_file_outside_every_granted_directory_is_refused_naming_field_and_policy() {
    let dirs = Dirs::new();
    let error = password(file(&dirs.outside.join("secret")), &dirs.policy()).unwrap_err();
    assert!(
        error.contains("crm: password: file `")
            && error.contains("is outside the directories granted for secret files")
            && error.contains(&format!("(granted: {})", dirs.granted.display())),
        "{error}"
    );
}

#[test]
fn nothing_granted_refuses_every_file_and_variable_and_reveals_no_existence() {
    let dirs = Dirs::new();
    let policy = SecretPolicy::deny_all();
    let existing = password(file(&dirs.granted.join("secret")), &policy).unwrap_err();
    let missing = password(file(Path::new("/surely/not/here")), &policy).unwrap_err();
    for error in [&existing, &missing] {
        assert_says(error, "(granted: none)");
        assert!(
            !error.to_lowercase().contains("no such file"),
            "existence leaked: {error}"
        );
    }
    let env = password(
        SecretSource::Env {
            env: "CARGO_PKG_NAME".into(),
        },
        &policy,
    )
    .unwrap_err();
    assert!(
        env.contains("environment variable `CARGO_PKG_NAME` is outside the prefixes granted")
            && env.contains("(granted: none)"),
        "{env}"
    );
    // Literal secrets need no grant.
    assert_eq!(
        password(SecretSource::literal("lit"), &policy).unwrap(),
        "lit"
    );
}

#[test]
fn a_missing_file_outside_the_granted_directories_is_refused_as_outside() {
    let dirs = Dirs::new();
    let error = password(file(Path::new("/surely/not/here/x")), &dirs.policy()).unwrap_err();
    assert_says(&error, "is outside the directories granted");
    // Inside a granted directory, a missing file is reported as such.
    let error = password(file(&dirs.granted.join("missing")), &dirs.policy()).unwrap_err();
    assert_says(&error, "cannot read file");
}

#[test]
fn dot_dot_cannot_leave_a_granted_directory() {
    let dirs = Dirs::new();
    let escape = dirs.granted.join("../outside/secret");
    let error = password(file(&escape), &dirs.policy()).unwrap_err();
    assert_says(&error, "is outside the directories granted");
    let deep = dirs.granted.join("../../../../../../../../etc/passwd");
    let error = password(file(&deep), &dirs.policy()).unwrap_err();
    assert_says(&error, "is outside the directories granted");
}

#[test]
fn a_symlink_in_a_granted_directory_cannot_point_outside_it() {
    let dirs = Dirs::new();
    let link = dirs.granted.join("link");
    std::os::unix::fs::symlink(dirs.outside.join("secret"), &link).unwrap();
    let error = password(file(&link), &dirs.policy()).unwrap_err();
    assert_says(&error, "is outside the directories granted");
    // A linked directory too.
    let dir_link = dirs.granted.join("dir");
    std::os::unix::fs::symlink(&dirs.outside, &dir_link).unwrap();
    let error = password(file(&dir_link.join("secret")), &dirs.policy()).unwrap_err();
    assert_says(&error, "is outside the directories granted");
    // A link that stays inside is fine.
    let inner = dirs.granted.join("inner");
    std::os::unix::fs::symlink(dirs.granted.join("secret"), &inner).unwrap();
    assert_eq!(password(file(&inner), &dirs.policy()).unwrap(), SENTINEL);
}

#[test]
fn a_granted_directory_given_through_a_symlink_still_grants_its_files() {
    let dirs = Dirs::new();
    let alias = dirs.granted.parent().unwrap().join("alias");
    std::os::unix::fs::symlink(&dirs.granted, &alias).unwrap();
    let policy = SecretPolicy::deny_all().with_file_root(&alias);
    assert_eq!(
        password(file(&alias.join("secret")), &policy).unwrap(),
        SENTINEL
    );
    assert_eq!(
        password(file(&dirs.granted.join("secret")), &policy).unwrap(),
        SENTINEL
    );
    assert!(password(file(&dirs.outside.join("secret")), &policy).is_err());
}

#[test]
fn dev_zero_is_refused_without_reading_it() {
    let policy = SecretPolicy::deny_all().with_file_root("/dev");
    let started = Instant::now();
    let error = password(file(Path::new("/dev/zero")), &policy).unwrap_err();
    assert_says(&error, "is not a regular file");
    // Refused without outside access too.
    let error = password(file(Path::new("/dev/zero")), &SecretPolicy::deny_all()).unwrap_err();
    assert_says(&error, "is outside");
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn a_fifo_is_refused_without_blocking() {
    let dirs = Dirs::new();
    let fifo = dirs.granted.join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success(), "mkfifo failed");
    let policy = dirs.policy();
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = send.send(password(file(&fifo), &policy));
    });
    let outcome = receive
        .recv_timeout(Duration::from_secs(5))
        .expect("reading a FIFO blocked");
    let error = outcome.unwrap_err();
    assert_says(&error, "is not a regular file");
}

#[test]
fn a_directory_is_refused() {
    let dirs = Dirs::new();
    let error = password(file(&dirs.granted), &dirs.policy()).unwrap_err();
    assert_says(&error, "is not a regular file");
}

#[test]
fn a_file_larger_than_the_limit_is_refused() {
    let dirs = Dirs::new();
    let policy = dirs.policy().with_max_size(16);
    std::fs::write(dirs.granted.join("exact"), "x".repeat(16)).unwrap();
    std::fs::write(dirs.granted.join("over"), "x".repeat(17)).unwrap();
    assert_eq!(
        password(file(&dirs.granted.join("exact")), &policy).unwrap(),
        "x".repeat(16)
    );
    let error = password(file(&dirs.granted.join("over")), &policy).unwrap_err();
    assert_says(&error, "is larger than the limit of 16 bytes");
    // The default bound: 64 KiB.
    assert_eq!(SecretPolicy::deny_all().max_size(), 64 * 1024);
    std::fs::write(dirs.granted.join("big"), vec![b'x'; 64 * 1024 + 1]).unwrap();
    let error = password(file(&dirs.granted.join("big")), &dirs.policy()).unwrap_err();
    assert_says(&error, "is larger than the limit");
}

#[test]
fn a_file_that_is_not_utf8_is_refused_without_its_content() {
    let dirs = Dirs::new();
    let mut bytes = SENTINEL.as_bytes().to_vec();
    bytes.push(0xff);
    std::fs::write(dirs.granted.join("binary"), bytes).unwrap();
    let error = password(file(&dirs.granted.join("binary")), &dirs.policy()).unwrap_err();
    assert_says(&error, "is not valid UTF-8");
}

#[test]
fn an_environment_variable_outside_the_granted_prefixes_is_refused() {
    // Cargo sets CARGO_PKG_NAME for the test binary; its value plays the secret.
    let secret = env!("CARGO_PKG_NAME");
    let source = || SecretSource::Env {
        env: "CARGO_PKG_NAME".into(),
    };
    let policy = SecretPolicy::deny_all()
        .with_env_prefix("EXTDATA_")
        .with_grant_hint("grant it with --secrets-env-prefix");
    let error = password(source(), &policy).unwrap_err();
    assert!(
        error.contains("crm: password: environment variable `CARGO_PKG_NAME` is outside")
            && error.contains("(granted: `EXTDATA_`)")
            && error.ends_with("; grant it with --secrets-env-prefix"),
        "{error}"
    );
    assert!(!error.contains(secret), "{error}");
    // Case-sensitive: `cargo_` does not grant `CARGO_`.
    let lower = SecretPolicy::deny_all().with_env_prefix("cargo_");
    assert!(password(source(), &lower).is_err());
    let granted = SecretPolicy::deny_all().with_env_prefix("CARGO_PKG_");
    assert_eq!(password(source(), &granted).unwrap(), secret);
    // The size bound holds for variables too.
    let small = granted.clone().with_max_size(3);
    let error = password(source(), &small).unwrap_err();
    assert_says(&error, "is longer than the limit of 3 bytes");
    assert!(!error.contains(secret), "{error}");
    // Names a variable cannot have.
    for bad in ["", "A=B", "A\0B"] {
        let policy = SecretPolicy::deny_all().with_env_prefix("");
        let error = password(SecretSource::Env { env: bad.into() }, &policy).unwrap_err();
        assert_says(&error, "is not an environment variable name");
    }
}

#[test]
fn pem_files_and_the_key_file_are_governed_by_the_policy() {
    let dirs = Dirs::new();
    let outside = dirs.outside.join("secret").to_string_lossy().into_owned();
    let config = ConnectorConfig::new("crm", DbKind::Postgres)
        .with_host("db.example.com")
        .with_ssl(SslConfig {
            ca_file: Some(outside.clone()),
            cert_file: Some(outside.clone()),
            key_file: Some(outside.clone()),
            ..SslConfig::default()
        });
    let error = checked(
        config
            .validate_with_policy(Some(&SPEC), &dirs.policy())
            .unwrap_err(),
    );
    for field in ["ssl.ca_file", "ssl.cert_file", "ssl.key_file"] {
        assert!(
            error.contains(&format!("crm: {field}: file `{outside}` is outside")),
            "{field}: {error}"
        );
    }
    let key = ConnectorConfig::new("crm", DbKind::Postgres)
        .with_host("db.example.com")
        .with_ssl(SslConfig {
            key: Some(file(&dirs.outside.join("secret"))),
            ..SslConfig::default()
        });
    let error = checked(
        key.validate_with_policy(Some(&SPEC), &dirs.policy())
            .unwrap_err(),
    );
    assert_says(&error, "crm: ssl.key: file `");
    // Inside the granted directory the PEM is read (and then judged as PEM).
    let inside = ConnectorConfig::new("crm", DbKind::Postgres)
        .with_host("db.example.com")
        .with_ssl(SslConfig {
            ca_file: Some(dirs.granted.join("secret").to_string_lossy().into_owned()),
            ..SslConfig::default()
        });
    let error = checked(
        inside
            .validate_with_policy(Some(&SPEC), &dirs.policy())
            .unwrap_err(),
    );
    assert_says(&error, "crm: ssl.ca: contains no PEM certificate");
}

#[test]
fn validate_with_grants_nothing() {
    let dirs = Dirs::new();
    let problems = connector(file(&dirs.granted.join("secret")))
        .validate_with(Some(&SPEC))
        .unwrap_err();
    assert!(checked(problems).contains("(granted: none)"));
}

#[test]
fn resolve_reads_through_the_policy() {
    let dirs = Dirs::new();
    let source = file(&dirs.granted.join("secret"));
    assert_eq!(
        source.resolve(&dirs.policy()).unwrap().expose_secret(),
        SENTINEL
    );
    assert!(source.resolve(&SecretPolicy::default()).is_err());
}

#[test]
fn debug_of_configs_shows_option_keys_but_no_values() {
    let hidden = "Hunter2-option-value";
    let query = ConnectorConfig::new("crm", DbKind::Postgres)
        .with_host("db.example.com")
        .with_options(
            format!("sslpassword={hidden}&application_name={hidden}x&{hidden}y").as_str(),
        );
    let debug = format!("{query:?}");
    assert!(!debug.contains(hidden), "{debug}");
    assert!(
        debug.contains("\"sslpassword\": \"***\"") && debug.contains("\"application_name\""),
        "{debug}"
    );
    let table = ConnectorConfig::new("crm", DbKind::Postgres)
        .with_host("db.example.com")
        .with_option("sslpassword", hidden)
        .with_option("application_name", Scalar::Text(hidden.into()));
    let debug = format!("{table:?}");
    assert!(!debug.contains(hidden), "{debug}");
    assert!(debug.contains("\"sslpassword\": \"***\""), "{debug}");
    let valid = table.validate_with(Some(&SPEC)).unwrap();
    let debug = format!("{valid:?} {:?}", valid.options);
    assert!(!debug.contains(hidden), "{debug}");
    assert!(debug.contains("\"sslpassword\": \"***\""), "{debug}");
    // The values are still there for the backend.
    assert_eq!(valid.options.get("sslpassword"), Some(hidden));
    assert_eq!(format!("{:?}", DsnOptions::None), "None");
}

#[test]
fn a_malformed_option_string_is_reported_without_its_text() {
    let hidden = "Hunter2-option-value";
    let config = ConnectorConfig::new("crm", DbKind::Postgres)
        .with_host("db.example.com")
        .with_options(format!("application_name=x&{hidden}").as_str());
    let problems = config.validate_with(Some(&SPEC)).unwrap_err();
    let text = format!("{problems} {problems:?}");
    assert!(!text.contains(hidden), "{text}");
    assert_says(&text, "part 2 is not of the form key=value");
    let bad_value = ConnectorConfig::new("crm", DbKind::Postgres)
        .with_host("db.example.com")
        .with_options(format!("sslpassword={hidden}%ff").as_str());
    let text = bad_value
        .validate_with(Some(&SPEC))
        .unwrap_err()
        .to_string();
    assert!(!text.contains(hidden), "{text}");
    assert_says(&text, "the value of `sslpassword`");
}
