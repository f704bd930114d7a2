//! [`ValidConfig`] → Oracle connect string and connector settings (the options table,
//! its checks, the connect string, the endpoint for messages).
//!
//! The connect string is built here from validated parts and never logged with the
//! credentials: user name and password go to ODPI-C separately, not inside the string.

use std::time::Duration;

use extdata_core::driver::host_port;
use extdata_core::{Endpoint, OptionCheck, OptionSpec, TlsVerify, ValidConfig};

/// The DSN options this backend understands (see the README's options table).
pub(crate) const OPTIONS: &[OptionSpec] = &[
    OptionSpec::new(
        "service_name",
        OptionCheck::Custom(check_net_name),
        "service name to connect to; default: the connector's `database`",
    ),
    OptionSpec::new(
        "sid",
        OptionCheck::Custom(check_net_name),
        "connect by SID instead of service name (old single-instance databases); a connect descriptor is used",
    ),
    OptionSpec::new(
        "connect_string",
        OptionCheck::Custom(check_connect_string),
        "a full connect descriptor, Easy Connect string or tnsnames.ora alias, used as given instead of host/port/database (host is then only shown in messages)",
    ),
    OptionSpec::new(
        "server",
        OptionCheck::OneOf(&["dedicated", "shared", "pooled"]),
        "server process type: dedicated, shared, or pooled (DRCP); default: the listener's",
    ),
    OptionSpec::new(
        "prefetch_rows",
        OptionCheck::UInt,
        "rows the server sends with the execute round trip; default 2 (ODPI-C's)",
    ),
    OptionSpec::new(
        "fetch_array_size",
        OptionCheck::Range(1, u32::MAX as u64),
        "rows per fetch round trip, also the batch size of streams; default 100",
    ),
    OptionSpec::new(
        "stmt_cache_size",
        OptionCheck::UInt,
        "statements cached per connection; default 20, 0 disables",
    ),
    OptionSpec::new(
        "edition",
        OptionCheck::Custom(check_net_name),
        "edition for edition-based redefinition",
    ),
    OptionSpec::new(
        "module",
        OptionCheck::Custom(check_module),
        "V$SESSION.MODULE of the connector's sessions; default `extdata`",
    ),
    OptionSpec::new(
        "wallet_location",
        OptionCheck::Custom(check_printable),
        "directory of the Oracle wallet holding the CA (and client certificate) for ssl",
    ),
    OptionSpec::new(
        "ssl_server_cert_dn",
        OptionCheck::Custom(check_printable),
        "distinguished name the server certificate must have (ssl); default: match the host name",
    ),
];

fn check_net_name(value: &str) -> Result<(), String> {
    if !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.$#-".contains(&b))
    {
        Ok(())
    } else {
        Err(format!(
            "`{value}` is not an Oracle name (letters, digits and _ . $ # - only)"
        ))
    }
}

fn check_module(value: &str) -> Result<(), String> {
    if value.len() <= 48 && !value.chars().any(char::is_control) {
        Ok(())
    } else {
        Err("must be at most 48 bytes without control characters".to_owned())
    }
}

fn check_printable(value: &str) -> Result<(), String> {
    if value.trim().is_empty() || value.chars().any(char::is_control) {
        Err("must not be empty or contain control characters".to_owned())
    } else {
        Ok(())
    }
}

fn check_connect_string(value: &str) -> Result<(), String> {
    if value.trim().is_empty() || value.chars().any(|c| c.is_control() && c != '\n') {
        Err("must not be empty or contain control characters".to_owned())
    } else {
        Ok(())
    }
}

/// Extra validation of an Oracle connector; every problem is reported.
pub(crate) fn check(config: &ValidConfig, problems: &mut Vec<(String, String)>) {
    let mut push = |field: &str, message: String| problems.push((field.to_owned(), message));
    let options = &config.options;
    let custom = options.get("connect_string").is_some();
    if custom {
        for key in [
            "service_name",
            "sid",
            "server",
            "wallet_location",
            "ssl_server_cert_dn",
        ] {
            if options.get(key).is_some() {
                push(
                    &format!("options.{key}"),
                    "cannot be combined with options.connect_string: put it into the connect string"
                        .to_owned(),
                );
            }
        }
        if config.tls.is_some() {
            push(
                "ssl",
                "cannot be combined with options.connect_string: write tcps:// (or PROTOCOL=TCPS) and the wallet into the connect string".to_owned(),
            );
        }
        return;
    }
    if options.get("sid").is_some() && options.get("service_name").is_some() {
        push(
            "options.sid",
            "give either sid or service_name, not both".to_owned(),
        );
    }
    let has_service = config.database.is_some()
        || options.get("service_name").is_some()
        || options.get("sid").is_some();
    if !has_service {
        push(
            "database",
            "must name the service to connect to (or set options.service_name, options.sid or options.connect_string)".to_owned(),
        );
    } else if options.get("service_name").is_none()
        && options.get("sid").is_none()
        && let Some(database) = &config.database
        && let Err(why) = check_net_name(database)
    {
        push("database", format!("{why}; it is used as the service name"));
    }
    if let Endpoint::Unix { path } = &config.endpoint
        && let Err(why) = check_ipc_key(path)
    {
        push("host", why);
    }
    match &config.tls {
        None => {
            for key in ["wallet_location", "ssl_server_cert_dn"] {
                if options.get(key).is_some() {
                    push(
                        &format!("options.{key}"),
                        "is only used with ssl; add an `ssl` section to connect over TCPS"
                            .to_owned(),
                    );
                }
            }
        }
        Some(tls) => {
            if matches!(config.endpoint, Endpoint::Unix { .. }) {
                push(
                    "ssl",
                    "IPC (protocol = unix) is local to the machine and has no TLS; remove the ssl section or use tcp".to_owned(),
                );
            }
            if tls.verify == TlsVerify::None {
                push(
                    "ssl.verify",
                    "Oracle's client always checks the server certificate against the wallet; `none` is not possible (use `ca` to skip only the host name check)".to_owned(),
                );
            }
            if tls.ca_pem.is_some() || tls.cert_pem.is_some() || tls.key_pem.is_some() {
                push(
                    "ssl",
                    "Oracle's client (ODPI-C / Instant Client) reads CA and client certificates only from an Oracle wallet, not from PEM: put them into a wallet (orapki wallet create / add -trusted_cert / -user_cert) and set options.wallet_location to its directory; leave ssl.ca, ssl.cert and ssl.key empty".to_owned(),
                );
            }
        }
    }
}

fn check_ipc_key(key: &str) -> Result<(), String> {
    if !key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    {
        Ok(())
    } else {
        Err(format!(
            "`{key}` is not an IPC key: with protocol = unix, host is the KEY of the listener's (ADDRESS=(PROTOCOL=IPC)(KEY=…)) entry, e.g. EXTPROC1, not a socket path"
        ))
    }
}

/// Warnings: valid, but the administrator should know.
pub(crate) fn warn(config: &ValidConfig, warnings: &mut Vec<(String, String)>) {
    if config.read_only {
        warnings.push((
            "read_only".to_owned(),
            "Oracle has no read-only session setting: each call runs in its own SET TRANSACTION READ ONLY and DDL, PL/SQL and CALL are refused by the connector, but functions with autonomous transactions can still write; for a guarantee, connect as a user that has only SELECT privileges".to_owned(),
        ));
    }
    if config.username.is_none() {
        warnings.push((
            "username".to_owned(),
            "no user name: the connection uses external authentication (an OS account or a wallet with credentials)".to_owned(),
        ));
    }
    if config
        .tls
        .as_ref()
        .is_some_and(|t| t.verify == TlsVerify::Ca)
    {
        warnings.push((
            "ssl.verify".to_owned(),
            "`ca` turns off the host name check (ssl_server_dn_match=off): any certificate from the wallet's CAs is accepted".to_owned(),
        ));
    }
}

/// Quotes a value for a connect descriptor or an Easy Connect parameter when it
/// holds a character with a meaning there (Oracle Net: enclose in double quotes,
/// backslash before `"` and `\`).
pub(crate) fn quote_net_value(value: &str) -> String {
    let special = |c: char| {
        c.is_whitespace()
            || matches!(
                c,
                '(' | ')' | '=' | '\\' | '"' | '\'' | '#' | ',' | '&' | '?'
            )
    };
    if !value.is_empty() && !value.chars().any(special) {
        return value.to_owned();
    }
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

/// Whole seconds for Oracle Net timeouts (at least 1: 0 means "no timeout").
fn net_seconds(timeout: Duration) -> u64 {
    timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0).max(u64::from(timeout.is_zero()))
}

/// The connect string for ODPI-C.
///
/// Easy Connect (`//host:port/service`, `tcps://…` with TLS) when connecting to a
/// service over TCP; a full connect descriptor for a SID or IPC (protocol = unix);
/// `options.connect_string` as given.
pub(crate) fn connect_string(config: &ValidConfig) -> String {
    let options = &config.options;
    if let Some(custom) = options.get("connect_string") {
        return custom.trim().to_owned();
    }
    let timeout = net_seconds(config.connect_timeout);
    let service = options
        .get("service_name")
        .or(config.database.as_deref())
        .unwrap_or_default();
    let server = options.get("server").map(str::to_ascii_uppercase);
    let tls = config.tls.as_ref();
    let dn_match = tls.map(|t| t.verify == TlsVerify::Full);
    let cert_dn = options.get("ssl_server_cert_dn");
    let wallet = options.get("wallet_location");
    let sid = options.get("sid");

    if let (Endpoint::Tcp { host, port }, None) = (&config.endpoint, sid) {
        let scheme = if tls.is_some() { "tcps://" } else { "//" };
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        let mut text = format!("{scheme}{host}:{port}/{service}");
        if let Some(server) = &server {
            text.push(':');
            text.push_str(server);
        }
        let mut params = vec![
            ("connect_timeout", timeout.to_string()),
            ("transport_connect_timeout", timeout.to_string()),
        ];
        if let Some(dn_match) = dn_match {
            params.push((
                "ssl_server_dn_match",
                if dn_match { "on" } else { "off" }.to_owned(),
            ));
        }
        if let Some(dn) = cert_dn {
            params.push(("ssl_server_cert_dn", quote_net_value(dn)));
        }
        if let Some(wallet) = wallet {
            params.push(("wallet_location", quote_net_value(wallet)));
        }
        let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        text.push('?');
        text.push_str(&query.join("&"));
        return text;
    }

    let address = match &config.endpoint {
        Endpoint::Unix { path } => {
            format!("(ADDRESS=(PROTOCOL=IPC)(KEY={}))", quote_net_value(path))
        }
        Endpoint::Tcp { host, port } | Endpoint::Udp { host, port } => format!(
            "(ADDRESS=(PROTOCOL={})(HOST={})(PORT={port}))",
            if tls.is_some() { "TCPS" } else { "TCP" },
            quote_net_value(host)
        ),
        Endpoint::Embedded => String::new(),
    };
    let mut connect_data = match sid {
        Some(sid) => format!("(SID={})", quote_net_value(sid)),
        None => format!("(SERVICE_NAME={})", quote_net_value(service)),
    };
    if let Some(server) = &server {
        connect_data.push_str(&format!("(SERVER={server})"));
    }
    let mut text = format!(
        "(DESCRIPTION=(CONNECT_TIMEOUT={timeout})(TRANSPORT_CONNECT_TIMEOUT={timeout}){address}(CONNECT_DATA={connect_data})"
    );
    if let Some(dn_match) = dn_match {
        text.push_str(&format!(
            "(SECURITY=(SSL_SERVER_DN_MATCH={})",
            if dn_match { "ON" } else { "OFF" }
        ));
        if let Some(dn) = cert_dn {
            text.push_str(&format!("(SSL_SERVER_CERT_DN={})", quote_net_value(dn)));
        }
        if let Some(wallet) = wallet {
            text.push_str(&format!(
                "(MY_WALLET_DIRECTORY={})",
                quote_net_value(wallet)
            ));
        }
        text.push(')');
    }
    text.push(')');
    text
}

/// `host:port/service` (or the IPC key) for messages; never credentials.
pub(crate) fn endpoint_text(config: &ValidConfig) -> String {
    if config.options.get("connect_string").is_some() {
        return format!(
            "the connect string of options.connect_string (host {})",
            match &config.endpoint {
                Endpoint::Tcp { host, .. } | Endpoint::Udp { host, .. } => host.as_str(),
                Endpoint::Unix { path } => path.as_str(),
                Endpoint::Embedded => "-",
            }
        );
    }
    let service = config
        .options
        .get("sid")
        .map(|sid| format!("SID {sid}"))
        .or_else(|| config.options.get("service_name").map(str::to_owned))
        .or_else(|| config.database.clone())
        .unwrap_or_default();
    match &config.endpoint {
        Endpoint::Tcp { host, port } | Endpoint::Udp { host, port } => {
            format!("{}/{service}", host_port(host, *port))
        }
        Endpoint::Unix { path } => format!("IPC key {path}/{service}"),
        Endpoint::Embedded => service,
    }
}

/// Per-connection and per-statement settings from the options.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// The connect string (no credentials in it).
    pub(crate) connect_string: String,
    pub(crate) prefetch_rows: Option<u32>,
    pub(crate) fetch_array_size: u32,
    pub(crate) stmt_cache_size: Option<u32>,
    pub(crate) edition: Option<String>,
    pub(crate) module: String,
}

/// Rows per fetch round trip when `fetch_array_size` is not set (ODPI-C's default).
pub(crate) const DEFAULT_FETCH_ARRAY_SIZE: u32 = 100;

impl Settings {
    pub(crate) fn from_config(config: &ValidConfig) -> Self {
        let options = &config.options;
        let u32_of = |key: &str| {
            options
                .get_u64(key)
                .map(|v| u32::try_from(v).unwrap_or(u32::MAX))
        };
        Settings {
            connect_string: connect_string(config),
            prefetch_rows: u32_of("prefetch_rows"),
            fetch_array_size: u32_of("fetch_array_size")
                .filter(|n| *n > 0)
                .unwrap_or(DEFAULT_FETCH_ARRAY_SIZE),
            stmt_cache_size: u32_of("stmt_cache_size"),
            edition: options.get("edition").map(str::to_owned),
            module: options.get("module").unwrap_or("extdata").to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use extdata_core::{ConnectorConfig, DbKind, SslConfig};

    fn valid(config: ConnectorConfig) -> ValidConfig {
        match config.validate_with(Some(&crate::SPEC)) {
            Ok(valid) => valid,
            Err(problems) => panic!("{problems}"),
        }
    }

    fn problems(config: ConnectorConfig) -> String {
        match config.validate_with(Some(&crate::SPEC)) {
            Ok(_) => panic!("expected validation problems"),
            Err(problems) => problems.to_string(),
        }
    }

    fn base() -> ConnectorConfig {
        ConnectorConfig::new("crm", DbKind::Oracle)
            .with_host("db.example.com")
            .with_database("FREEPDB1")
            .with_username("app")
            .with_password("s3cret-Pw")
            .with_connect_timeout(Duration::from_secs(7))
    }

    #[test]
    fn tcp_with_database_is_easy_connect_with_timeouts() {
        let config = valid(base());
        assert_eq!(
            connect_string(&config),
            "//db.example.com:1521/FREEPDB1?connect_timeout=7&transport_connect_timeout=7"
        );
        assert_eq!(endpoint_text(&config), "db.example.com:1521/FREEPDB1");
    }

    #[test]
    fn port_service_name_and_server_type_are_used() {
        let config = valid(
            base()
                .with_port(1600)
                .with_options("service_name=crm.example.com&server=pooled"),
        );
        assert_eq!(
            connect_string(&config),
            "//db.example.com:1600/crm.example.com:POOLED?connect_timeout=7&transport_connect_timeout=7"
        );
    }

    #[test]
    fn ipv6_host_is_bracketed() {
        let config = valid(base().with_host("::1"));
        assert!(
            connect_string(&config).starts_with("//[::1]:1521/FREEPDB1?"),
            "{}",
            connect_string(&config)
        );
    }

    #[test]
    fn sub_second_connect_timeout_rounds_up() {
        let config = valid(base().with_connect_timeout(Duration::from_millis(1500)));
        assert!(connect_string(&config).contains("connect_timeout=2&"));
        let config = valid(base().with_connect_timeout(Duration::from_millis(200)));
        assert!(connect_string(&config).contains("connect_timeout=1&"));
    }

    #[test]
    fn sid_uses_a_connect_descriptor() {
        let config = valid(base().with_options("sid=ORCL"));
        assert_eq!(
            connect_string(&config),
            "(DESCRIPTION=(CONNECT_TIMEOUT=7)(TRANSPORT_CONNECT_TIMEOUT=7)(ADDRESS=(PROTOCOL=TCP)(HOST=db.example.com)(PORT=1521))(CONNECT_DATA=(SID=ORCL)))"
        );
        assert_eq!(endpoint_text(&config), "db.example.com:1521/SID ORCL");
    }

    #[test]
    fn unix_is_ipc_with_the_key_from_host() {
        let config = valid(
            base()
                .with_protocol(extdata_core::Protocol::Unix)
                .with_host("EXTPROC1")
                .with_options("server=dedicated"),
        );
        assert_eq!(
            connect_string(&config),
            "(DESCRIPTION=(CONNECT_TIMEOUT=7)(TRANSPORT_CONNECT_TIMEOUT=7)(ADDRESS=(PROTOCOL=IPC)(KEY=EXTPROC1))(CONNECT_DATA=(SERVICE_NAME=FREEPDB1)(SERVER=DEDICATED)))"
        );
    }

    #[test]
    fn unix_with_a_socket_path_says_host_is_the_key() {
        let text = problems(
            base()
                .with_protocol(extdata_core::Protocol::Unix)
                .with_host("/var/tmp/.oracle/sEXTPROC1"),
        );
        assert!(text.contains("host") && text.contains("IPC key"), "{text}");
    }

    #[test]
    fn udp_is_refused_with_the_reason() {
        let text = problems(base().with_protocol(extdata_core::Protocol::Udp));
        assert!(text.contains("protocol") && text.contains("UDP"), "{text}");
    }

    fn tls(verify: &str) -> SslConfig {
        SslConfig {
            verify: Some(verify.to_owned()),
            ..SslConfig::default()
        }
    }

    #[test]
    fn ssl_is_tcps_with_dn_match_and_wallet() {
        let config = valid(base().with_port(2484).with_ssl(tls("full")).with_options(
            "wallet_location=/etc/oracle/wallet dir&ssl_server_cert_dn=CN=db,O=Example",
        ));
        assert_eq!(
            connect_string(&config),
            "tcps://db.example.com:2484/FREEPDB1?connect_timeout=7&transport_connect_timeout=7&ssl_server_dn_match=on&ssl_server_cert_dn=\"CN=db,O=Example\"&wallet_location=\"/etc/oracle/wallet dir\""
        );
        let config = valid(base().with_ssl(tls("ca")));
        assert!(connect_string(&config).ends_with("&ssl_server_dn_match=off"));
        assert!(config.warnings.iter().any(|w| w.field == "ssl.verify"));
    }

    #[test]
    fn ssl_with_sid_puts_security_into_the_descriptor() {
        let config = valid(
            base()
                .with_ssl(tls("full"))
                .with_options("sid=ORCL&wallet_location=/w"),
        );
        assert_eq!(
            connect_string(&config),
            "(DESCRIPTION=(CONNECT_TIMEOUT=7)(TRANSPORT_CONNECT_TIMEOUT=7)(ADDRESS=(PROTOCOL=TCPS)(HOST=db.example.com)(PORT=1521))(CONNECT_DATA=(SID=ORCL))(SECURITY=(SSL_SERVER_DN_MATCH=ON)(MY_WALLET_DIRECTORY=/w)))"
        );
    }

    #[test]
    fn pem_material_and_verify_none_are_refused_with_the_reason() {
        let mut ssl = tls("none");
        ssl.ca = Some("-----BEGIN CERTIFICATE-----".to_owned());
        let config = base().with_ssl(ssl);
        // The PEM itself is checked by core validation too; our message must be there.
        let text = problems(config);
        assert!(text.contains("ssl.verify"), "{text}");
        assert!(text.contains("wallet"), "{text}");
    }

    #[test]
    fn wallet_without_ssl_and_ssl_over_ipc_are_refused() {
        let text = problems(base().with_options("wallet_location=/w"));
        assert!(text.contains("options.wallet_location"), "{text}");
        let text = problems(
            base()
                .with_protocol(extdata_core::Protocol::Unix)
                .with_host("EXTPROC1")
                .with_ssl(tls("full")),
        );
        assert!(text.contains("IPC"), "{text}");
    }

    #[test]
    fn connect_string_option_is_used_as_given_and_excludes_the_rest() {
        let config = valid(base().with_options(
            "connect_string=(DESCRIPTION=(ADDRESS=(PROTOCOL=TCP)(HOST=h)(PORT=1))(CONNECT_DATA=(SERVICE_NAME=s)))",
        ));
        assert_eq!(
            connect_string(&config),
            "(DESCRIPTION=(ADDRESS=(PROTOCOL=TCP)(HOST=h)(PORT=1))(CONNECT_DATA=(SERVICE_NAME=s)))"
        );
        let text = problems(
            base()
                .with_options("connect_string=crm_alias&sid=X")
                .with_ssl(tls("full")),
        );
        assert!(text.contains("options.sid"), "{text}");
        assert!(text.contains("ssl"), "{text}");
    }

    #[test]
    fn service_is_required_and_names_are_checked() {
        let mut config = base();
        config.database = None;
        let text = problems(config);
        assert!(text.contains("database"), "{text}");
        let text = problems(base().with_database("FREE)(HOST=evil"));
        assert!(text.contains("database"), "{text}");
        let text = problems(base().with_options("sid=ORCL&service_name=X"));
        assert!(text.contains("options.sid"), "{text}");
        let text = problems(base().with_options("service_name=a b"));
        assert!(text.contains("options.service_name"), "{text}");
    }

    #[test]
    fn unknown_option_lists_the_known_ones() {
        let text = problems(base().with_options("prefetch=5"));
        assert!(
            text.contains("prefetch_rows") && text.contains("fetch_array_size"),
            "{text}"
        );
    }

    #[test]
    fn quoting_escapes_every_special_character() {
        assert_eq!(quote_net_value("plain.name_1"), "plain.name_1");
        assert_eq!(quote_net_value(""), "\"\"");
        assert_eq!(quote_net_value("a b"), "\"a b\"");
        assert_eq!(quote_net_value("x)(HOST=evil"), "\"x)(HOST=evil\"");
        assert_eq!(quote_net_value("say \"hi\""), "\"say \\\"hi\\\"\"");
        assert_eq!(quote_net_value("back\\slash"), "\"back\\\\slash\"");
        assert_eq!(quote_net_value("a&b?c#d'e"), "\"a&b?c#d'e\"");
    }

    #[test]
    fn settings_read_the_numeric_options() {
        let config = valid(base().with_options(
            "prefetch_rows=50&fetch_array_size=500&stmt_cache_size=0&edition=E1&module=crm-sync",
        ));
        let settings = Settings::from_config(&config);
        assert_eq!(settings.prefetch_rows, Some(50));
        assert_eq!(settings.fetch_array_size, 500);
        assert_eq!(settings.stmt_cache_size, Some(0));
        assert_eq!(settings.edition.as_deref(), Some("E1"));
        assert_eq!(settings.module, "crm-sync");
        let defaults = Settings::from_config(&valid(base()));
        assert_eq!(defaults.fetch_array_size, DEFAULT_FETCH_ARRAY_SIZE);
        assert_eq!(defaults.prefetch_rows, None);
        assert_eq!(defaults.module, "extdata");
        let text = problems(base().with_options("fetch_array_size=0"));
        assert!(text.contains("options.fetch_array_size"), "{text}");
    }

    #[test]
    fn read_only_and_missing_user_are_warned() {
        let mut config = base().with_read_only(true);
        config.username = None;
        let config = valid(config);
        let fields: Vec<&str> = config.warnings.iter().map(|w| w.field.as_str()).collect();
        assert!(fields.contains(&"read_only"), "{fields:?}");
        assert!(fields.contains(&"username"), "{fields:?}");
        let read_only = &config.warnings[0].message;
        assert!(read_only.contains("SELECT privileges"), "{read_only}");
    }

    #[test]
    fn the_password_is_never_in_the_connect_string() {
        let config = valid(base());
        assert!(!connect_string(&config).contains("s3cret-Pw"));
        assert!(!endpoint_text(&config).contains("s3cret-Pw"));
    }
}
