//! [`ValidConfig`] → connection settings: the options table and its checks, the
//! authentication mode, the Kerberos principal, the session settings sent with
//! `OpenSession` (the session itself is in `session.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use extdata_core::{
    Endpoint, Error, ErrorKind, OptionCheck, OptionSpec, Result, SecretString, ValidConfig,
};

/// How the client authenticates (the `auth` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// `NOSASL`: raw binary Thrift, no authentication.
    NoSasl,
    /// `NONE`, `PLAIN`, `LDAP`, `CUSTOM`: SASL PLAIN with user name and password.
    Plain,
    /// `GSSAPI`, `KERBEROS`: SASL GSSAPI (cargo feature `gssapi`).
    Gssapi,
}

impl Auth {
    /// Parses the `auth` option (validated before).
    pub fn parse(value: &str) -> Option<Auth> {
        Some(match value.trim().to_ascii_uppercase().as_str() {
            "NOSASL" => Auth::NoSasl,
            "NONE" | "PLAIN" | "LDAP" | "CUSTOM" => Auth::Plain,
            "GSSAPI" | "KERBEROS" => Auth::Gssapi,
            _ => return None,
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Auth::NoSasl => "NOSASL",
            Auth::Plain => "PLAIN",
            Auth::Gssapi => "GSSAPI",
        }
    }
}

const LONG_POLLING: &str = "hive.server2.long.polling.timeout";

/// Rows per `FetchResults` when the `fetch_size` option is not given.
pub const DEFAULT_FETCH_SIZE: u64 = 10_000;

/// Everything needed to open a session, built from a [`ValidConfig`].
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) name: String,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) auth: Auth,
    /// `transport=http`: the HTTP path; `None`: the binary transport.
    pub(crate) http_path: Option<String>,
    /// TLS over the TCP connection (`ssl`), verified as `ssl.verify` says.
    pub(crate) tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    pub(crate) username: String,
    pub(crate) password: SecretString,
    pub(crate) database: Option<String>,
    /// OpenSession configuration: `use:database`, `set:hiveconf:<key>`.
    pub(crate) session_conf: BTreeMap<String, String>,
    pub(crate) fetch_size: i64,
    pub(crate) connect_timeout: Duration,
    pub(crate) query_timeout: Duration,
    pub(crate) read_only: bool,
    /// `allow_server_code`: statements that run code on the server are not refused.
    pub(crate) allow_server_code: bool,
    /// The Kerberos service and host asked for (`hive@host`, `HTTP@host`).
    #[cfg_attr(not(feature = "gssapi"), allow(dead_code))]
    pub(crate) kerberos_service: String,
    #[cfg_attr(not(feature = "gssapi"), allow(dead_code))]
    pub(crate) kerberos_host: String,
}

extdata_core::debug_fields!(Settings |settings| {
    name, host, port, auth,
    tls: settings.tls.is_some(),
    http_path, username, database,
    session_conf: settings.session_conf.keys().collect::<Vec<_>>(),
    fetch_size, ..
});

impl Settings {
    /// Reads the validated config (validation already checked every option).
    pub(crate) fn from_config(config: &ValidConfig) -> Result<Settings> {
        let (host, port) = match &config.endpoint {
            Endpoint::Tcp { host, port } => (host.clone(), *port),
            other => {
                return Err(config.error(
                    ErrorKind::Config,
                    format!("hive connectors reach the server over TCP, not {other:?}"),
                ));
            }
        };
        let auth = auth_option(config).unwrap_or(Auth::Plain);
        let mut session_conf = BTreeMap::new();
        if let Some(db) = &config.database {
            session_conf.insert("use:database".to_owned(), db.clone());
        }
        for (key, value) in config.options.iter() {
            if crate::SPEC
                .option_prefixes
                .iter()
                .any(|p| key.starts_with(p))
            {
                session_conf.insert(format!("set:hiveconf:{key}"), value.to_owned());
            }
        }
        // GetOperationStatus long-polls on the server (5 s by default): a short poll
        // keeps the client's deadline between two calls, where it can cancel the
        // statement and keep the session.
        session_conf
            .entry(format!("set:hiveconf:{LONG_POLLING}"))
            .or_insert_with(|| "200ms".to_owned());
        let http = over_http(config);
        let (kerberos_service, kerberos_host) = match config.options.get("principal") {
            Some(principal) => parse_principal(principal, &host),
            None => (
                config
                    .options
                    .get("kerberos_service_name")
                    // SPNEGO's service is HTTP (RFC 4559; HiveServer2's
                    // hive.server2.authentication.spnego.principal, HTTP/_HOST).
                    .unwrap_or(if http { "HTTP" } else { "hive" })
                    .to_owned(),
                host.clone(),
            ),
        };
        let tls = match &config.tls {
            None => None,
            Some(tls) => Some(Arc::new(extdata_core::rustls_client_config(tls).map_err(
                |e| {
                    config.error(
                        ErrorKind::Tls,
                        format!("cannot set up TLS: {}", e.message()),
                    )
                },
            )?)),
        };
        Ok(Settings {
            name: config.name.clone(),
            host,
            port,
            auth,
            http_path: http.then(|| {
                config
                    .options
                    .get("http_path")
                    .unwrap_or("cliservice")
                    .to_owned()
            }),
            tls,
            // HiveServer2 with NONE accepts any user; "anonymous" is what its own
            // clients send when none is given.
            username: config
                .username
                .clone()
                .unwrap_or_else(|| "anonymous".to_owned()),
            password: config
                .password
                .clone()
                .unwrap_or_else(|| SecretString::from(String::new())),
            database: config.database.clone(),
            session_conf,
            fetch_size: config
                .options
                .get_u64("fetch_size")
                .unwrap_or(DEFAULT_FETCH_SIZE)
                .clamp(1, 1_000_000) as i64,
            connect_timeout: config.connect_timeout,
            query_timeout: config.query_timeout,
            read_only: config.read_only,
            allow_server_code: config
                .options
                .get("allow_server_code")
                .and_then(extdata_core::parse_bool)
                .unwrap_or(false),
            kerberos_service,
            kerberos_host,
        })
    }

    /// Whether the connection runs TLS (`ssl`).
    pub(crate) fn uses_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// An error of `kind` carrying the connector's name.
    pub(crate) fn error(&self, kind: ErrorKind, message: impl Into<String>) -> Error {
        Error::new(kind, message).with_connector(self.name.clone())
    }
}

/// `service/host@REALM` → (`service`, `host`); `_HOST` is the connection's host.
pub(crate) fn parse_principal(principal: &str, connect_host: &str) -> (String, String) {
    let without_realm = principal.split('@').next().unwrap_or(principal);
    let (service, host) = without_realm
        .split_once('/')
        .unwrap_or((without_realm, "_HOST"));
    let host = if host.eq_ignore_ascii_case("_HOST") {
        connect_host
    } else {
        host
    };
    (service.to_owned(), host.to_owned())
}

/// Option keys (besides the `hive.`/`spark.` session settings) a Hive connector knows.
pub(crate) const OPTIONS: &[OptionSpec] = &[
    OptionSpec::new(
        "auth",
        OptionCheck::OneOf(&[
            "NOSASL", "NONE", "PLAIN", "LDAP", "CUSTOM", "GSSAPI", "KERBEROS",
        ]),
        "authentication, matching the server's hive.server2.authentication: NOSASL (raw \
         Thrift), NONE/PLAIN/LDAP/CUSTOM (SASL PLAIN with username and password; the \
         default), GSSAPI/KERBEROS (needs the `gssapi` feature)",
    ),
    OptionSpec::new(
        "transport",
        OptionCheck::OneOf(&["binary", "http"]),
        "how Thrift travels, matching the server's hive.server2.transport.mode: binary (the \
         default) or http (one POST per call to http_path; HTTP Basic authentication, or \
         SPNEGO with auth=GSSAPI)",
    ),
    OptionSpec::new(
        "http_path",
        OptionCheck::Any,
        "the HTTP path of transport=http, the server's hive.server2.thrift.http.path \
         (default cliservice)",
    ),
    OptionSpec::new(
        "allow_server_code",
        OptionCheck::Bool,
        "let statements run code on the server: TRANSFORM/MAP/REDUCE … USING '<command>', \
         reflect/java_method, ADD JAR/FILE, … (default false: refused on every connector; \
         never allowed on a read-only one)",
    ),
    OptionSpec::new(
        "fetch_size",
        OptionCheck::Range(1, 1_000_000),
        "rows per FetchResults call (default 10000, 1 to 1000000)",
    ),
    OptionSpec::new(
        "principal",
        OptionCheck::Custom(check_principal),
        "Kerberos principal of the server, e.g. hive/_HOST@EXAMPLE.COM, or with \
         transport=http its SPNEGO principal, e.g. HTTP/_HOST@EXAMPLE.COM (_HOST: the host \
         connected to)",
    ),
    OptionSpec::new(
        "kerberos_service_name",
        OptionCheck::Any,
        "Kerberos service name when no principal is given (default hive; HTTP with \
         transport=http)",
    ),
];

fn check_principal(value: &str) -> std::result::Result<(), String> {
    let service = value.split(['/', '@']).next().unwrap_or_default();
    if service.is_empty() || value.contains(char::is_whitespace) {
        Err(format!(
            "`{value}` is not a principal like hive/_HOST@EXAMPLE.COM"
        ))
    } else {
        Ok(())
    }
}

/// The `auth` option, when given and known.
fn auth_option(config: &ValidConfig) -> Option<Auth> {
    config.options.get("auth").and_then(Auth::parse)
}

/// Whether the `transport` option asks for HTTP.
fn over_http(config: &ValidConfig) -> bool {
    config
        .options
        .get("transport")
        .is_some_and(|t| t.eq_ignore_ascii_case("http"))
}

pub(crate) fn check(config: &ValidConfig, problems: &mut Vec<(String, String)>) {
    let auth = auth_option(config);
    let http = over_http(config);
    if auth == Some(Auth::Gssapi) && !cfg!(feature = "gssapi") {
        problems.push((
            "options.auth".to_owned(),
            if http {
                "GSSAPI over transport=http (SPNEGO) needs extdata-hive built with its \
                 `gssapi` cargo feature"
            } else {
                "GSSAPI needs extdata-hive built with its `gssapi` cargo feature"
            }
            .to_owned(),
        ));
    }
    if http && auth == Some(Auth::NoSasl) {
        problems.push((
            "options.auth".to_owned(),
            "transport=http carries the login in each request (HTTP Basic, or SPNEGO for \
             GSSAPI): auth must be NONE, PLAIN, LDAP, CUSTOM or GSSAPI (HiveServer2 has no \
             NOSASL over HTTP)"
                .to_owned(),
        ));
    }
    if !http && config.options.get("http_path").is_some() {
        problems.push((
            "options.http_path".to_owned(),
            "only used with transport=http".to_owned(),
        ));
    }
    if config
        .options
        .get("spark.sql.parser.escapedStringLiterals")
        .and_then(extdata_core::parse_bool)
        == Some(true)
    {
        // Parameters are rendered as escaped literals; this setting would change
        // their meaning.
        problems.push((
            "options.spark.sql.parser.escapedStringLiterals".to_owned(),
            "must stay false: parameters are sent as escaped string literals".to_owned(),
        ));
    }
}

pub(crate) fn warn(config: &ValidConfig, warnings: &mut Vec<(String, String)>) {
    let auth = auth_option(config);
    let http = over_http(config);
    if http && auth == Some(Auth::Gssapi) && config.tls.is_none() {
        warnings.push((
            "ssl".to_owned(),
            "SPNEGO over plain HTTP does not authenticate the server (HiveServer2 sends no \
             mutual-authentication token), and the server's hive.server2.auth cookie, which \
             stands for the Kerberos login, travels unencrypted: turn ssl on if the server \
             has hive.server2.use.SSL=true"
                .to_owned(),
        ));
    }
    if auth != Some(Auth::NoSasl)
        && auth != Some(Auth::Gssapi)
        && config.password.is_some()
        && config.tls.is_none()
    {
        warnings.push((
            "password".to_owned(),
            "SASL PLAIN sends the password unencrypted without TLS: turn ssl on if the \
             server has hive.server2.use.SSL=true"
                .to_owned(),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_names_map_to_three_transports() {
        assert_eq!(Auth::parse("nosasl"), Some(Auth::NoSasl));
        for plain in ["NONE", "plain", "LDAP", "Custom"] {
            assert_eq!(Auth::parse(plain), Some(Auth::Plain), "{plain}");
        }
        assert_eq!(Auth::parse("kerberos"), Some(Auth::Gssapi));
        assert_eq!(Auth::parse("digest"), None);
    }

    #[test]
    fn the_kerberos_service_defaults_to_hive_and_over_http_to_http() {
        let settings = |options: &str| {
            let valid = extdata_core::ConnectorConfig::new("k", extdata_core::DbKind::Hive)
                .with_host("db1.example.com")
                .with_options(options)
                .validate_with(Some(&crate::SPEC))
                .unwrap();
            let settings = Settings::from_config(&valid).unwrap();
            (settings.kerberos_service, settings.kerberos_host)
        };
        let on = |service: &str, host: &str| (service.to_owned(), host.to_owned());
        assert_eq!(settings(""), on("hive", "db1.example.com"));
        assert_eq!(settings("transport=http"), on("HTTP", "db1.example.com"));
        assert_eq!(
            settings("transport=http&kerberos_service_name=knox"),
            on("knox", "db1.example.com")
        );
        assert_eq!(
            settings("transport=http&principal=hive/_HOST@EXAMPLE.COM"),
            on("hive", "db1.example.com")
        );
        assert_eq!(
            settings("principal=HTTP/gw.example.com@EXAMPLE.COM"),
            on("HTTP", "gw.example.com")
        );
    }

    #[test]
    fn principal_host_placeholder_is_the_connection_host() {
        assert_eq!(
            parse_principal("hive/_HOST@EXAMPLE.COM", "db1.example.com"),
            ("hive".to_owned(), "db1.example.com".to_owned())
        );
        assert_eq!(
            parse_principal("spark/thrift.example.com@EXAMPLE.COM", "10.0.0.1"),
            ("spark".to_owned(), "thrift.example.com".to_owned())
        );
    }
}
