//! [`ValidConfig`] → connection settings → tiberius [`Config`], and opening one
//! connection (a named instance's port is asked from the Browser, `browser.rs`).
//!
//! The settings are plain data ([`Settings`]) so that every field of the form can be
//! tested without a server; [`Settings::tiberius_config`] is the only place that talks
//! to tiberius' builder. tiberius' `Config` derives `Debug` and is never formatted here.

use std::net::SocketAddr;
use std::time::Duration;

use extdata_core::driver::{host_port, timeout_error};
use extdata_core::{
    Endpoint, Error, ErrorKind, ExposeSecret, OptionCheck, OptionSpec, SecretString, TlsVerify,
    ValidConfig,
};
use tiberius::{AuthMethod, Client, Config, EncryptionLevel};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};

use crate::browser;
use crate::error::{Stage, map_error};

/// A connection to SQL Server as tiberius drives it.
pub(crate) type Connection = Client<Compat<TcpStream>>;

/// The UDP port of the SQL Server Browser.
pub(crate) const DEFAULT_BROWSER_PORT: u16 = 1434;

/// The DSN options this backend understands (see the README's options table).
pub(crate) const OPTIONS: &[OptionSpec] = &[
    OptionSpec::new(
        "instance",
        OptionCheck::Custom(check_instance),
        "named instance (e.g. SQLEXPRESS): sent in the prelogin so the server checks it; with protocol = udp its TCP port is asked from the SQL Server Browser",
    ),
    OptionSpec::new(
        "encrypt",
        OptionCheck::OneOf(&["off", "on", "required", "not_supported", "strict"]),
        "TDS encryption level: off (only the login is encrypted), on, required, not_supported (nothing, not even the password), strict (TDS 8.0, TLS before the prelogin); default: required with ssl, off without",
    ),
    OptionSpec::new(
        "trust_server_certificate",
        OptionCheck::Bool,
        "accept any server certificate (like ssl.verify = none); default false",
    ),
    OptionSpec::new(
        "hostname_in_certificate",
        OptionCheck::Custom(check_host_name),
        "host name the server certificate must carry when it differs from host (IP address, tunnel, listener)",
    ),
    OptionSpec::new(
        "application_name",
        OptionCheck::Custom(check_application_name),
        "name shown by APP_NAME() and in sys.dm_exec_sessions; default extdata",
    ),
    OptionSpec::new(
        "application_intent",
        OptionCheck::OneOf(&["ReadWrite", "ReadOnly"]),
        "ApplicationIntent: ReadOnly routes to a readable secondary of an availability group (it does not make the session read-only); default ReadOnly when read_only = true, else ReadWrite",
    ),
    OptionSpec::new(
        "workstation_id",
        OptionCheck::Custom(check_application_name),
        "client name shown by HOST_NAME(); default the machine's host name",
    ),
    OptionSpec::new(
        "packet_size",
        OptionCheck::Range(512, 32767),
        "TDS packet size in bytes, 512 to 32767; default 4096",
    ),
    OptionSpec::new(
        "multi_subnet_failover",
        OptionCheck::Bool,
        "connect to every address of the host at once and keep the first that answers (availability group listeners); default false",
    ),
    OptionSpec::new(
        "browser_port",
        OptionCheck::Range(1, 65535),
        "UDP port of the SQL Server Browser for protocol = udp; default 1434",
    ),
];

/// Whether `value` is 1 to `max_len` bytes, each an ASCII letter, digit or one of `marks`.
fn is_name(value: &str, max_len: usize, marks: &[u8]) -> bool {
    (1..=max_len).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || marks.contains(&b))
}

fn check_instance(value: &str) -> Result<(), String> {
    // SQL Server instance names: at most 16 characters, a letter, digit, `_`, `$` or
    // `#` each (the name travels as a NUL-terminated byte string in the Browser
    // request, so anything else could not be matched anyway).
    if is_name(value, 16, b"_$#") {
        Ok(())
    } else {
        Err(format!(
            "`{value}` is not an instance name (1 to 16 letters, digits, _, $ or #)"
        ))
    }
}

fn check_host_name(value: &str) -> Result<(), String> {
    if is_name(value, 253, b".-_:") {
        Ok(())
    } else {
        Err(format!("`{value}` is not a host name"))
    }
}

fn check_application_name(value: &str) -> Result<(), String> {
    if value.chars().count() <= 128 && !value.chars().any(char::is_control) {
        Ok(())
    } else {
        Err("must be at most 128 characters without control characters".to_owned())
    }
}

/// The TDS encryption level (tiberius' [`EncryptionLevel`], kept as our own enum so the
/// mapping is testable and printable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encryption {
    /// Only the login packet is encrypted.
    Off,
    /// Everything, if the server can.
    On,
    /// Everything, or fail.
    Required,
    /// Nothing, the login included.
    NotSupported,
    /// TDS 8.0: TLS before the prelogin.
    Strict,
}

impl Encryption {
    fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "off" => Some(Encryption::Off),
            "on" => Some(Encryption::On),
            "required" => Some(Encryption::Required),
            "not_supported" => Some(Encryption::NotSupported),
            "strict" => Some(Encryption::Strict),
            _ => None,
        }
    }

    fn level(self) -> EncryptionLevel {
        match self {
            Encryption::Off => EncryptionLevel::Off,
            Encryption::On => EncryptionLevel::On,
            Encryption::Required => EncryptionLevel::Required,
            Encryption::NotSupported => EncryptionLevel::NotSupported,
            Encryption::Strict => EncryptionLevel::Strict,
        }
    }
}

/// How the server's certificate is trusted.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Trust {
    /// Any certificate (tiberius' `trust_cert`).
    Any,
    /// Chain and host name, against the system's roots plus these PEM CAs.
    Verify {
        /// CA certificates from `ssl.ca` (PEM).
        ca_pem: Option<String>,
    },
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Trust::Any => f.write_str("Any"),
            Trust::Verify { ca_pem } => f
                .debug_struct("Verify")
                .field("ca", &ca_pem.is_some())
                .finish(),
        }
    }
}

/// Where the server's TCP port comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Port {
    /// This port.
    Fixed(u16),
    /// Asked from the SQL Server Browser on this UDP port for `instance`.
    Browser {
        /// UDP port of the Browser.
        browser_port: u16,
    },
}

/// Everything needed to open a connection, taken from the validated config. Plain data:
/// no I/O, nothing of tiberius yet.
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) host: String,
    pub(crate) port: Port,
    pub(crate) instance: Option<String>,
    pub(crate) database: Option<String>,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<SecretString>,
    pub(crate) application_name: String,
    pub(crate) workstation_id: Option<String>,
    pub(crate) read_only_intent: bool,
    pub(crate) encryption: Encryption,
    pub(crate) trust: Trust,
    pub(crate) hostname_in_certificate: Option<String>,
    /// Client certificate and key (PEM), written to private files on first connect.
    pub(crate) client_identity: Option<(String, SecretString)>,
    pub(crate) packet_size: Option<u32>,
    pub(crate) multi_subnet_failover: bool,
    pub(crate) connect_timeout: Duration,
}

extdata_core::debug_fields!(Settings |settings| {
    host, port, instance, database, username,
    password: secret,
    application_name, read_only_intent, encryption, trust,
    client_identity: settings.client_identity.is_some(),
    ..
});

impl Settings {
    /// Reads the validated config. Fails only on what validation cannot see (a unix
    /// endpoint reaching `build` without `SPEC`).
    pub(crate) fn from_config(config: &ValidConfig) -> Result<Self, Error> {
        let options = &config.options;
        let (host, port) = match &config.endpoint {
            Endpoint::Tcp { host, port } => (host.clone(), Port::Fixed(*port)),
            Endpoint::Udp { host, .. } => (
                host.clone(),
                Port::Browser {
                    browser_port: options
                        .get("browser_port")
                        .and_then(|p| p.trim().parse().ok())
                        .unwrap_or(DEFAULT_BROWSER_PORT),
                },
            ),
            Endpoint::Unix { .. } | Endpoint::Embedded => {
                return Err(config.error(ErrorKind::Config, UNIX_REASON));
            }
        };
        let trust_any_option = options.get_bool("trust_server_certificate") == Some(true);
        let (encryption, trust) = match &config.tls {
            Some(tls) => {
                let encryption = options
                    .get("encrypt")
                    .and_then(Encryption::parse)
                    .unwrap_or(Encryption::Required);
                let trust = if tls.verify == TlsVerify::None || trust_any_option {
                    Trust::Any
                } else {
                    Trust::Verify {
                        ca_pem: tls.ca_pem.clone(),
                    }
                };
                (encryption, trust)
            }
            None => match options.get("encrypt").and_then(Encryption::parse) {
                // Without `ssl` the login packet is still encrypted (as Microsoft's
                // drivers do with Encrypt=no) and, like them, the certificate of that
                // login-only handshake is not checked: there is nothing to check it with.
                None | Some(Encryption::Off) => (Encryption::Off, Trust::Any),
                Some(Encryption::NotSupported) => (Encryption::NotSupported, Trust::Any),
                Some(level) if trust_any_option => (level, Trust::Any),
                Some(level) => (level, Trust::Verify { ca_pem: None }),
            },
        };
        let read_only_intent = match options.get("application_intent") {
            Some(intent) => intent.eq_ignore_ascii_case("ReadOnly"),
            None => config.read_only,
        };
        let client_identity = config
            .tls
            .as_ref()
            .and_then(|tls| Some((tls.cert_pem.clone()?, tls.key_pem.clone()?)));
        Ok(Settings {
            host,
            port,
            instance: options.get("instance").map(str::to_owned),
            database: config.database.clone(),
            username: config.username.clone(),
            password: config.password.clone(),
            application_name: options
                .get("application_name")
                .unwrap_or("extdata")
                .to_owned(),
            workstation_id: options.get("workstation_id").map(str::to_owned),
            read_only_intent,
            encryption,
            trust,
            hostname_in_certificate: options.get("hostname_in_certificate").map(str::to_owned),
            client_identity,
            packet_size: options.get_u64("packet_size").map(|v| v as u32),
            multi_subnet_failover: options.get_bool("multi_subnet_failover") == Some(true),
            connect_timeout: config.connect_timeout,
        })
    }

    /// `host:port`, `host\instance` or `host\instance (Browser on UDP 1434)`, for
    /// messages.
    pub(crate) fn endpoint_text(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match (&self.port, &self.instance) {
            (Port::Fixed(port), None) => host_port(&self.host, *port),
            (Port::Fixed(port), Some(instance)) => format!("{host}\\{instance} (port {port})"),
            (Port::Browser { browser_port }, instance) => format!(
                "{host}\\{} (SQL Server Browser on UDP {browser_port})",
                instance.as_deref().unwrap_or("?")
            ),
        }
    }

    /// tiberius' config for a connection to `host:port` (the port after Browser
    /// resolution, the host after a routing redirect). `files` holds the client
    /// certificate and key files when the settings have an identity.
    pub(crate) fn tiberius_config(
        &self,
        host: &str,
        port: u16,
        files: Option<&TlsFiles>,
    ) -> Config {
        let mut config = Config::new();
        config.host(host);
        config.port(port);
        if let Some(database) = &self.database {
            config.database(database);
        }
        if let Some(instance) = &self.instance {
            config.instance_name(instance);
        }
        config.application_name(&self.application_name);
        if let Some(name) = &self.workstation_id {
            config.client_name(name);
        }
        config.authentication(match (&self.username, &self.password) {
            (Some(user), password) => AuthMethod::sql_server(
                user,
                password.as_ref().map(|p| p.expose_secret()).unwrap_or(""),
            ),
            (None, _) => AuthMethod::None,
        });
        config.readonly(self.read_only_intent);
        config.encryption(self.encryption.level());
        match &self.trust {
            Trust::Any => config.trust_cert(),
            Trust::Verify { ca_pem } => {
                if let Some(pem) = ca_pem {
                    config.trust_cert_ca_bundle(pem.as_bytes().to_vec());
                }
            }
        }
        if let Some(name) = &self.hostname_in_certificate {
            config.hostname_in_certificate(name);
        }
        if let Some(files) = files {
            config.client_certificate(files.cert.path(), files.key.path());
        }
        if let Some(size) = self.packet_size {
            config.packet_size(size);
        }
        config.multi_subnet_failover(self.multi_subnet_failover);
        // The whole connect is bounded by our own timer; tiberius' own bound covers the
        // handshake alone, set to the same value as a second line.
        config.handshake_timeout(Some(self.connect_timeout));
        // Calls are bounded (and cancelled) by the backend; tiberius' per-response timer
        // would cut long `stream` reads short and leave the connection unusable.
        config.command_timeout(None);
        config
    }
}

/// Why unix sockets are refused (shown by validation).
pub(crate) const UNIX_REASON: &str = "SQL Server listens on TCP only (named pipes and shared memory are Windows transports); use protocol = \"tcp\", or \"udp\" to find a named instance through the SQL Server Browser";

/// The client certificate and key written to private temporary files (tiberius reads
/// them by path). Owned by the source; deleted when it is dropped.
#[derive(Debug)]
pub(crate) struct TlsFiles {
    cert: tempfile::NamedTempFile,
    key: tempfile::NamedTempFile,
}

impl TlsFiles {
    /// Writes the PEM texts to files only this user can read.
    pub(crate) fn write(cert_pem: &str, key_pem: &SecretString) -> std::io::Result<Self> {
        use std::io::Write as _;
        // tiberius picks the parser by extension: `.pem` for both.
        let file = |text: &[u8]| -> std::io::Result<tempfile::NamedTempFile> {
            let mut file = tempfile::Builder::new()
                .prefix("extdata-mssql-")
                .suffix(".pem")
                .tempfile()?;
            file.write_all(text)?;
            file.flush()?;
            Ok(file)
        };
        Ok(TlsFiles {
            cert: file(cert_pem.as_bytes())?,
            key: file(key_pem.expose_secret().as_bytes())?,
        })
    }
}

/// Checks on the whole config (part of `SPEC`).
pub(crate) fn check(config: &ValidConfig, problems: &mut Vec<(String, String)>) {
    let options = &config.options;
    let encrypt = options.get("encrypt").and_then(Encryption::parse);
    if let Endpoint::Udp { port, .. } = &config.endpoint {
        if options.get("instance").is_none() {
            problems.push((
                "options.instance".into(),
                "protocol = udp asks the SQL Server Browser for a named instance's port: give the instance name".into(),
            ));
        }
        if *port != crate::DEFAULT_PORT {
            problems.push((
                "port".into(),
                format!(
                    "with protocol = udp the TCP port comes from the SQL Server Browser; leave port empty (the Browser's UDP port is options.browser_port, default {DEFAULT_BROWSER_PORT})"
                ),
            ));
        }
    } else if options.get("browser_port").is_some() {
        problems.push((
            "options.browser_port".into(),
            "is only used with protocol = udp".into(),
        ));
    }
    if let Some(tls) = &config.tls {
        if matches!(encrypt, Some(Encryption::Off | Encryption::NotSupported)) {
            problems.push((
                "options.encrypt".into(),
                "ssl is enabled but encrypt says not to encrypt the session: use on, required or strict, or drop ssl".into(),
            ));
        }
        if options.get_bool("trust_server_certificate") == Some(true) && tls.ca_pem.is_some() {
            problems.push((
                "options.trust_server_certificate".into(),
                "trusting any certificate contradicts ssl.ca: drop one of them".into(),
            ));
        }
    }
}

/// Warnings on the whole config (part of `SPEC`).
pub(crate) fn warn(config: &ValidConfig, warnings: &mut Vec<(String, String)>) {
    let options = &config.options;
    if config.read_only {
        warnings.push((
            "read_only".into(),
            "SQL Server has no read-only session: read_only runs only statements that start with SELECT or WITH and hold no reserved word that writes, runs code or changes the session (INSERT, EXEC, COMMIT, SET, INTO, …), and sends ApplicationIntent=ReadOnly (which routes to a readable secondary); functions an administrator defined can still write: give this connector a login that may only read (e.g. db_datareader)".into(),
        ));
    }
    let trust_any = options.get_bool("trust_server_certificate") == Some(true)
        || config
            .tls
            .as_ref()
            .is_some_and(|t| t.verify == TlsVerify::None);
    if trust_any && (config.tls.is_some() || options.get("encrypt").is_some()) {
        warnings.push((
            if config
                .tls
                .as_ref()
                .is_some_and(|t| t.verify == TlsVerify::None)
            {
                "ssl.verify".into()
            } else {
                "options.trust_server_certificate".into()
            },
            "encrypts but trusts any server certificate: use it only for tests".into(),
        ));
    }
    if config
        .tls
        .as_ref()
        .is_some_and(|t| t.verify == TlsVerify::Ca)
    {
        warnings.push((
            "ssl.verify".into(),
            "tiberius always checks the host name as well: `ca` behaves like `full`; set options.hostname_in_certificate when the certificate names another host".into(),
        ));
    }
    if options
        .get("encrypt")
        .and_then(Encryption::parse)
        .is_some_and(|e| e == Encryption::NotSupported)
    {
        warnings.push((
            "options.encrypt".into(),
            "not_supported sends the password and every row unencrypted".into(),
        ));
    }
}

/// Opens one connection: Browser lookup (udp), TCP, TLS and login, bounded by
/// `connect_timeout`. Follows one routing redirect (read-only routing of availability
/// groups, Azure gateways).
pub(crate) async fn open(
    config: &ValidConfig,
    settings: &Settings,
    files: Option<&TlsFiles>,
) -> Result<Connection, Error> {
    let timeout = settings.connect_timeout;
    let deadline = Instant::now() + timeout;
    let attempt = async {
        let port = match &settings.port {
            Port::Fixed(port) => *port,
            Port::Browser { browser_port } => browser::resolve_instance_port(
                &settings.host,
                *browser_port,
                settings.instance.as_deref().unwrap_or_default(),
                deadline,
            )
            .await
            .map_err(|(kind, why)| config.error(kind, why))?,
        };
        let mut host = settings.host.clone();
        let mut port = port;
        for _ in 0..2 {
            let tcp = connect_tcp(config, settings, &host, port).await?;
            let tiberius_config = settings.tiberius_config(&host, port, files);
            match Client::connect(tiberius_config, tcp.compat_write()).await {
                Ok(client) => return Ok(client),
                Err(tiberius::error::Error::Routing {
                    host: new_host,
                    port: new_port,
                }) => {
                    tracing::debug!(connector = %config.name, host = %new_host, port = new_port, "the server routed the connection elsewhere");
                    host = new_host;
                    port = new_port;
                }
                Err(e) => {
                    return Err(map_error(
                        config,
                        &settings.endpoint_text(),
                        Stage::Connect,
                        e,
                    ));
                }
            }
        }
        Err(config.error(
            ErrorKind::Connect,
            format!(
                "the server routed the connection more than once (last to {host}:{port}); giving up"
            ),
        ))
    };
    match tokio::time::timeout_at(deadline, attempt).await {
        Ok(result) => result,
        Err(_) => Err(timeout_error(
            &config.name,
            &format!("connecting to {}", settings.endpoint_text()),
            timeout,
        )),
    }
}

async fn connect_tcp(
    config: &ValidConfig,
    settings: &Settings,
    host: &str,
    port: u16,
) -> Result<TcpStream, Error> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| config.error(ErrorKind::Resolve, format!("cannot resolve `{host}`: {e}")))?
        .collect();
    let connected = if settings.multi_subnet_failover && addrs.len() > 1 {
        futures::future::select_ok(addrs.iter().map(|a| Box::pin(TcpStream::connect(*a))))
            .await
            .map(|(stream, _)| stream)
    } else {
        let mut last = std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("`{host}` has no address"),
        );
        let mut stream = None;
        for addr in &addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        stream.ok_or(last)
    };
    let stream = connected.map_err(|e| {
        config.error(
            ErrorKind::Connect,
            format!("cannot connect to {host}:{port}: {e}"),
        )
    })?;
    // Rows arrive in many small packets; Nagle would delay requests.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::UdpSocket;

    use extdata_core::{ConnectorConfig, DbKind, Protocol, SecretSource, SslConfig};

    // PEM framing only (validation parses the framing, not the DER inside): no real
    // key material is kept in the repository.
    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ0EtZm9yLXRlc3Rz\n-----END CERTIFICATE-----\n";
    const CLIENT_CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUY2xpZW50LWNlcnQ=\n-----END CERTIFICATE-----\n";
    const CLIENT_KEY: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIG5vdC1hLXJlYWwta2V5LWp1c3QtdGVzdHM=\n-----END PRIVATE KEY-----\n";

    fn base() -> ConnectorConfig {
        ConnectorConfig::new("crm", DbKind::MsSql)
            .with_host("db.example")
            .with_database("crm")
            .with_username("reader")
            .with_password("Pw-secret-123")
            .with_connect_timeout(Duration::from_secs(7))
    }

    fn valid(config: ConnectorConfig) -> ValidConfig {
        config
            .validate_with(Some(&crate::SPEC))
            .unwrap_or_else(|p| panic!("{p}"))
    }

    fn settings(config: ConnectorConfig) -> Settings {
        Settings::from_config(&valid(config)).expect("settings")
    }

    fn problems(config: ConnectorConfig) -> String {
        config
            .validate_with(Some(&crate::SPEC))
            .expect_err("invalid")
            .to_string()
    }

    /// tiberius' `Config` keeps its fields private; its derived `Debug` is the only way
    /// to see what the builder recorded (used in tests only: it would print nothing
    /// secret either, the password is a `SecretString`).
    fn tiberius_debug(settings: &Settings) -> String {
        format!("{:?}", settings.tiberius_config(&settings.host, 1433, None))
    }

    #[test]
    fn defaults_map_to_tiberius() {
        let s = settings(base());
        assert_eq!(s.host, "db.example");
        assert_eq!(s.port, Port::Fixed(1433));
        assert_eq!(s.database.as_deref(), Some("crm"));
        assert_eq!(s.username.as_deref(), Some("reader"));
        assert_eq!(s.application_name, "extdata");
        assert!(!s.read_only_intent);
        // No `ssl`: the login is encrypted, the certificate of that handshake unchecked.
        assert_eq!(s.encryption, Encryption::Off);
        assert_eq!(s.trust, Trust::Any);
        assert_eq!(s.packet_size, None);
        assert!(!s.multi_subnet_failover);
        let config = s.tiberius_config("db.example", 1433, None);
        assert_eq!(config.get_addr(), "db.example:1433");
        assert_eq!(config.get_handshake_timeout(), Some(Duration::from_secs(7)));
        assert_eq!(config.get_command_timeout(), None);
        let debug = tiberius_debug(&s);
        for expected in [
            "database: Some(\"crm\")",
            "application_name: Some(\"extdata\")",
            "encryption: Off",
            "bypass: true",
            "readonly: false",
            "user: \"reader\"",
        ] {
            assert!(debug.contains(expected), "{expected} not in {debug}");
        }
        assert!(!debug.contains("Pw-secret-123"), "{debug}");
    }

    #[test]
    fn every_option_reaches_tiberius() {
        let s = settings(base().with_port(14330).with_options(
            "instance=SQLEXPRESS&application_name=crm%20sync&workstation_id=worker-3\
             &application_intent=ReadOnly&packet_size=8192&multi_subnet_failover=true\
             &encrypt=on&hostname_in_certificate=sql.internal",
        ));
        assert_eq!(s.port, Port::Fixed(14330));
        assert_eq!(s.instance.as_deref(), Some("SQLEXPRESS"));
        assert_eq!(s.application_name, "crm sync");
        assert_eq!(s.workstation_id.as_deref(), Some("worker-3"));
        assert!(s.read_only_intent);
        assert_eq!(s.packet_size, Some(8192));
        assert!(s.multi_subnet_failover);
        // `encrypt` without `ssl`: encrypted and verified against the system's roots.
        assert_eq!(s.encryption, Encryption::On);
        assert_eq!(s.trust, Trust::Verify { ca_pem: None });
        let config = s.tiberius_config(&s.host, 14330, None);
        assert_eq!(config.get_addr(), "db.example:14330");
        assert_eq!(config.get_packet_size(), Some(8192));
        assert!(config.get_multi_subnet_failover());
        let debug = tiberius_debug(&s);
        for expected in [
            "instance_name: Some(\"SQLEXPRESS\")",
            "application_name: Some(\"crm sync\")",
            "client_name: Some(\"worker-3\")",
            "readonly: true",
            "encryption: On",
            "bypass: false",
            "hostname_in_certificate: Some(\"sql.internal\")",
        ] {
            assert!(debug.contains(expected), "{expected} not in {debug}");
        }
    }

    #[test]
    fn encrypt_levels_follow_tiberius() {
        for (word, level, debug) in [
            ("off", Encryption::Off, "encryption: Off"),
            ("on", Encryption::On, "encryption: On"),
            ("required", Encryption::Required, "encryption: Required"),
            (
                "not_supported",
                Encryption::NotSupported,
                "encryption: NotSupported",
            ),
            ("strict", Encryption::Strict, "encryption: Strict"),
        ] {
            let s = settings(base().with_option("encrypt", word));
            assert_eq!(s.encryption, level, "{word}");
            assert!(tiberius_debug(&s).contains(debug), "{word}");
        }
        assert!(problems(base().with_option("encrypt", "maybe")).contains("options.encrypt"));
    }

    #[test]
    fn ssl_maps_to_encryption_and_trust() {
        let ssl = |verify: &str| SslConfig {
            ca: Some(CA.into()),
            verify: Some(verify.into()),
            ..Default::default()
        };
        // full (the default): required, verified against our CA (bytes, no file).
        let s = settings(base().with_ssl(ssl("full")));
        assert_eq!(s.encryption, Encryption::Required);
        assert_eq!(
            s.trust,
            Trust::Verify {
                ca_pem: Some(CA.into())
            }
        );
        let debug = tiberius_debug(&s);
        assert!(debug.contains("encryption: Required"), "{debug}");
        assert!(debug.contains("Bundle { len: "), "{debug}");
        assert!(debug.contains("bypass: false"), "{debug}");
        // ca: the same (tiberius always checks the host name), with a warning.
        let v = valid(base().with_ssl(ssl("ca")));
        assert!(
            v.warnings.iter().any(|w| w.field == "ssl.verify"),
            "{:?}",
            v.warnings
        );
        assert_eq!(
            Settings::from_config(&v).unwrap().trust,
            Trust::Verify {
                ca_pem: Some(CA.into())
            }
        );
        // none: trust anything (never together with a CA: tiberius panics on both).
        let v = valid(base().with_ssl(ssl("none")));
        assert!(v.warnings.iter().any(|w| w.field == "ssl.verify"));
        let s = Settings::from_config(&v).unwrap();
        assert_eq!(s.trust, Trust::Any);
        let debug = tiberius_debug(&s);
        assert!(
            debug.contains("bypass: true") && debug.contains("extra_cas: []"),
            "{debug}"
        );
        // ssl + strict (TDS 8.0).
        let s = settings(
            base()
                .with_ssl(ssl("full"))
                .with_option("encrypt", "strict"),
        );
        assert_eq!(s.encryption, Encryption::Strict);
        // ssl with an encrypt level that does not encrypt is a contradiction.
        assert!(
            problems(base().with_ssl(ssl("full")).with_option("encrypt", "off"))
                .contains("options.encrypt")
        );
        // trust_server_certificate without a CA: trust anything, warned.
        let v = valid(
            base()
                .with_ssl(SslConfig::default())
                .with_option("trust_server_certificate", "true"),
        );
        assert_eq!(Settings::from_config(&v).unwrap().trust, Trust::Any);
        assert!(
            v.warnings
                .iter()
                .any(|w| w.field == "options.trust_server_certificate")
        );
        assert!(
            problems(
                base()
                    .with_ssl(ssl("full"))
                    .with_option("trust_server_certificate", "true")
            )
            .contains("contradicts ssl.ca")
        );
    }

    #[test]
    fn client_certificate_goes_to_private_files() {
        let s = settings(base().with_ssl(SslConfig {
            ca: Some(CA.into()),
            cert: Some(CLIENT_CERT.into()),
            key: Some(SecretSource::literal(CLIENT_KEY)),
            ..Default::default()
        }));
        let (cert, key) = s.client_identity.clone().expect("identity");
        let files = TlsFiles::write(&cert, &key).expect("temp files");
        assert_eq!(
            std::fs::read_to_string(files.cert.path()).unwrap(),
            CLIENT_CERT
        );
        assert_eq!(
            std::fs::read_to_string(files.key.path()).unwrap(),
            CLIENT_KEY
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(files.key.path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(
                mode & 0o077,
                0,
                "the key file is readable by others: {mode:o}"
            );
        }
        let debug = format!("{:?}", s.tiberius_config("db.example", 1433, Some(&files)));
        assert!(debug.contains("CertAndKey"), "{debug}");
        assert!(!debug.contains("PRIVATE KEY"), "{debug}");
        let (cert_path, key_path) = (files.cert.path().to_owned(), files.key.path().to_owned());
        drop(files);
        assert!(
            !cert_path.exists() && !key_path.exists(),
            "files outlive the source"
        );
        assert!(!format!("{s:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn read_only_sets_the_intent_and_warns() {
        let v = valid(base().with_read_only(true));
        let warning = v
            .warnings
            .iter()
            .find(|w| w.field == "read_only")
            .expect("read_only warning");
        assert!(
            warning.message.contains("start with SELECT or WITH"),
            "{}",
            warning.message
        );
        assert!(warning.message.contains("login"), "{}", warning.message);
        assert!(Settings::from_config(&v).unwrap().read_only_intent);
        // The option overrides in both directions.
        let s = settings(
            base()
                .with_read_only(true)
                .with_option("application_intent", "ReadWrite"),
        );
        assert!(!s.read_only_intent);
        assert!(valid(base()).warnings.is_empty());
    }

    #[test]
    fn udp_resolves_a_named_instance_through_the_browser() {
        let s = settings(
            base()
                .with_protocol(Protocol::Udp)
                .with_option("instance", "SQLEXPRESS"),
        );
        assert_eq!(s.port, Port::Browser { browser_port: 1434 });
        assert_eq!(
            s.endpoint_text(),
            "db.example\\SQLEXPRESS (SQL Server Browser on UDP 1434)"
        );
        let s = settings(
            base()
                .with_protocol(Protocol::Udp)
                .with_options("instance=A&browser_port=2434"),
        );
        assert_eq!(s.port, Port::Browser { browser_port: 2434 });
        let text = problems(base().with_protocol(Protocol::Udp));
        assert!(text.contains("options.instance"), "{text}");
        let text = problems(
            base()
                .with_protocol(Protocol::Udp)
                .with_port(1500)
                .with_option("instance", "A"),
        );
        assert!(text.contains("comes from the SQL Server Browser"), "{text}");
        assert!(
            problems(base().with_option("browser_port", "1434"))
                .contains("only used with protocol = udp")
        );
    }

    #[test]
    fn unix_sockets_are_refused_with_the_reason() {
        let text = problems(
            base()
                .with_protocol(Protocol::Unix)
                .with_host("/tmp/sql.sock"),
        );
        assert!(text.contains("protocol"), "{text}");
        assert!(text.contains("SQL Server listens on TCP only"), "{text}");
    }

    #[test]
    fn unknown_options_list_the_known_ones() {
        let text = problems(base().with_option("Encrypt2", "on"));
        for key in [
            "instance",
            "encrypt",
            "trust_server_certificate",
            "application_intent",
        ] {
            assert!(text.contains(key), "{key} not in {text}");
        }
    }

    /// A fake SQL Server Browser on 127.0.0.1: checks the request, answers like SQL
    /// Server does.
    #[tokio::test]
    async fn udp_connector_fails_with_the_browser_problem_not_a_panic() {
        let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = silent.local_addr().unwrap().port().to_string();
        let config = valid(
            base()
                .with_host("127.0.0.1")
                .with_protocol(Protocol::Udp)
                .with_options(format!("instance=SQLEXPRESS&browser_port={port}").as_str())
                .with_connect_timeout(Duration::from_millis(700)),
        );
        let s = Settings::from_config(&config).unwrap();
        let err = open(&config, &s, None).await.unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::Connect | ErrorKind::Timeout),
            "{err}"
        );
        assert!(err.to_string().contains("crm"), "{err}");
        assert!(!err.to_string().contains("Pw-secret-123"));
    }

    #[tokio::test]
    async fn refused_tcp_port_is_a_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let config = valid(base().with_host("127.0.0.1").with_port(port));
        let s = Settings::from_config(&config).unwrap();
        let err = open(&config, &s, None).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
        assert!(err.is_temporary());
    }

    #[test]
    fn option_checks() {
        assert!(check_instance("SQLEXPRESS").is_ok());
        assert!(check_instance("MSSQL$X_1#").is_ok());
        assert!(check_instance("").is_err());
        assert!(check_instance("A\\B").is_err());
        assert!(check_instance("seventeen_chars_x").is_err());
        assert!(check_host_name("db.example.com").is_ok());
        assert!(check_host_name("db example").is_err());
        assert!(check_application_name("crm sync").is_ok());
        assert!(check_application_name("a\u{0}b").is_err());
    }
}
