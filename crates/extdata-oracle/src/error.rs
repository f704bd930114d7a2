//! oracle / ODPI-C errors → [`extdata_core::Error`] with the right [`ErrorKind`].
//!
//! Classified by the `ORA-` code (or the `DPI-` code of ODPI-C itself). Messages are
//! built from the error's text with the password cut out as a last line of defence;
//! the connect string never holds credentials (they are passed separately).

use extdata_core::driver::scrub;
use extdata_core::{Error, ErrorKind, ValidConfig};

/// What the failing call was doing; names the operation in the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Opening a connection (client library, network, TLS, authentication, session).
    Connect,
    /// Running a statement or fetching its rows.
    Statement,
}

/// Where an error code comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Code {
    /// `ORA-nnnnn` from the server or the Oracle client.
    Ora(i32),
    /// `DPI-nnnn` from ODPI-C.
    Dpi(i32),
    /// No code (a conversion or usage error of the oracle crate).
    None,
}

/// ODPI-C: the Oracle Client library cannot be loaded.
pub(crate) const DPI_CLIENT_MISSING: i32 = 1047;
/// ODPI-C: the client library is older than ODPI-C needs.
const DPI_CLIENT_TOO_OLD: i32 = 1072;
/// ODPI-C: the call timeout expired.
const DPI_CALL_TIMEOUT: i32 = 1067;
/// ODPI-C: not connected / connection closed.
const DPI_NOT_CONNECTED: &[i32] = &[1010, 1080];

/// The kind of an error code. `ours_cancelled`: the connector broke the call because
/// its timeout fired, so a "user requested cancel" is that timeout.
pub(crate) fn kind_of(code: Code, ours_cancelled: bool) -> ErrorKind {
    match code {
        Code::Ora(code) => match code {
            // invalid user name/password; account locked; password expired; no
            // CREATE SESSION privilege; proxy not allowed; logon denied.
            1017 | 28000 | 28001 | 1045 | 28150 | 1005 | 28040 | 1004 => ErrorKind::Auth,
            // user requested cancel: ours when our timer broke the call.
            1013 if ours_cancelled => ErrorKind::Timeout,
            1013 => ErrorKind::Query,
            // inbound connect timed out; call timeout; NOWAIT resource timeout;
            // lock wait timed out.
            3136 | 3156 | 30006 | 51 => ErrorKind::Timeout,
            // no listener, unknown service/SID, no handler, TNS resolution and
            // address errors, connect timeouts, end-of-file on channel, not connected,
            // lost contact, session killed, instance shut down, too many sessions.
            12541 | 12514 | 12505 | 12519 | 12520 | 12516 | 12528 | 12537 | 12543 | 12545
            | 12154 | 12162 | 12170 | 12535 | 12560 | 12547 | 12571 | 3113 | 3114 | 3135 | 28
            | 1012 | 1033 | 1034 | 1089 | 1090 | 1092 | 18 | 20 | 2396 | 12518 | 25408 => {
                ErrorKind::Connect
            }
            // SSL/TLS handshake and wallet errors.
            28759 | 28860 | 28862 | 28865 | 28788 | 28791 | 29002 | 29003 | 29019 | 29024
            | 29106 | 29113 | 29248 | 29261 => ErrorKind::Tls,
            // read-only transaction, read-only database, standby, read-only tablespace.
            1456 | 16000 | 16224 | 372 => ErrorKind::ReadOnly,
            // insufficient privileges.
            1031 | 1720 | 1749 | 29532 => ErrorKind::Forbidden,
            _ => ErrorKind::Query,
        },
        Code::Dpi(code) => match code {
            DPI_CLIENT_MISSING | DPI_CLIENT_TOO_OLD => ErrorKind::Connect,
            DPI_CALL_TIMEOUT => ErrorKind::Timeout,
            c if DPI_NOT_CONNECTED.contains(&c) => ErrorKind::Connect,
            _ => ErrorKind::Query,
        },
        Code::None => ErrorKind::Decode,
    }
}

/// Whether the connection is unusable after this error (it is closed, never pooled).
pub(crate) fn is_fatal(code: Code) -> bool {
    match code {
        Code::Ora(code) => matches!(
            code,
            3113 | 3114
                | 3135
                | 28
                | 1012
                | 1033
                | 1034
                | 1089
                | 1090
                | 1092
                | 2396
                | 12537
                | 12547
                | 12571
                | 3136
                | 3156
                | 1013
        ),
        Code::Dpi(code) => code == DPI_CALL_TIMEOUT || DPI_NOT_CONNECTED.contains(&code),
        Code::None => false,
    }
}

/// The code of an oracle crate error.
pub(crate) fn code_of(err: &oracle::Error) -> Code {
    if let Some(code) = err.oci_code() {
        return Code::Ora(code);
    }
    if let Some(code) = err.dpi_code() {
        return Code::Dpi(code);
    }
    match err.db_error() {
        Some(db) => code_in_message(db.message()),
        None => code_in_message(&err.to_string()),
    }
}

/// `ORA-01017: …` / `DPI-1047: …` at the start of a message.
pub(crate) fn code_in_message(message: &str) -> Code {
    let parse = |rest: &str| -> Option<i32> {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    let message = message.trim_start();
    if let Some(rest) = message.strip_prefix("ORA-")
        && let Some(code) = parse(rest)
    {
        return Code::Ora(code);
    }
    if let Some(rest) = message.strip_prefix("DPI-")
        && let Some(code) = parse(rest)
    {
        return Code::Dpi(code);
    }
    Code::None
}

/// What the user sees when Oracle's client libraries are missing: what is missing,
/// how to install it, and the loader's own reason.
pub(crate) fn missing_client_message(driver_message: &str) -> String {
    // DPI-1047: Cannot locate a 64-bit Oracle Client library: "<loader reason>". See …
    let reason = driver_message
        .split_once(": \"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(reason, _)| reason)
        .filter(|reason| !reason.is_empty());
    let mut message = String::from(
        "Oracle Client libraries not found (DPI-1047): the oracle backend loads Oracle Instant Client \
         (64-bit, 19c or later) at run time and none was found. Install the \"Basic\" or \
         \"Basic Light\" package from https://www.oracle.com/database/technologies/instant-client.html, \
         then make it findable: LD_LIBRARY_PATH=/path/to/instantclient (or `ldconfig` with its directory; \
         on macOS DYLD_LIBRARY_PATH) and restart the process; on Linux it also needs libaio",
    );
    if let Some(reason) = reason {
        message.push_str(&format!(" (loader: {reason})"));
    }
    message
}

/// Converts an oracle crate error into ours.
///
/// `ours_cancelled`: the connector's timer broke the call (ORA-01013 is then a timeout).
pub(crate) fn map_error(
    config: &ValidConfig,
    stage: Stage,
    err: &oracle::Error,
    ours_cancelled: bool,
) -> Error {
    let code = code_of(err);
    let text = scrub(err.to_string().trim(), config.password_text());
    let mut error = build(config, stage, code, &text, ours_cancelled);
    if let Code::Ora(n) = code {
        error = error.with_sql_state(format!("ORA-{n:05}"));
    } else if let Code::Dpi(n) = code {
        error = error.with_sql_state(format!("DPI-{n:04}"));
    }
    error
}

/// The error for a code and its (scrubbed) text; separate from [`map_error`] so that
/// it can be tested without the client library.
pub(crate) fn build(
    config: &ValidConfig,
    stage: Stage,
    code: Code,
    text: &str,
    ours_cancelled: bool,
) -> Error {
    let endpoint = crate::connect::endpoint_text(config);
    let kind = kind_of(code, ours_cancelled);
    let message = match (code, kind) {
        (Code::Dpi(DPI_CLIENT_MISSING), _) => missing_client_message(text),
        (Code::Dpi(DPI_CLIENT_TOO_OLD), _) => format!(
            "the installed Oracle Client library is too old for this backend; install Oracle Instant Client 19c or later: {text}"
        ),
        (_, ErrorKind::Auth) => format!("authentication failed at {endpoint}: {text}"),
        (_, ErrorKind::Connect) if stage == Stage::Connect => {
            format!("cannot connect to {endpoint}: {text}")
        }
        (_, ErrorKind::Connect) => format!("the connection to {endpoint} was lost: {text}"),
        (_, ErrorKind::Tls) => format!("TLS with {endpoint} failed: {text}"),
        (_, ErrorKind::Timeout) => format!("the call was stopped by its timeout: {text}"),
        (_, ErrorKind::ReadOnly) => {
            format!("the connector is read-only; the server refused the write: {text}")
        }
        (_, ErrorKind::Forbidden) => format!("the database user may not do this: {text}"),
        _ if stage == Stage::Connect => format!("setting up the session failed: {text}"),
        _ => text.to_owned(),
    };
    let mut error = config.error(kind, message);
    if code == Code::Dpi(DPI_CLIENT_MISSING) {
        // Installing a library is not something a retry fixes.
        error = error.with_temporary(false);
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;
    use extdata_core::{ConnectorConfig, DbKind};

    fn config() -> ValidConfig {
        ConnectorConfig::new("crm", DbKind::Oracle)
            .with_host("db.example.com")
            .with_database("FREEPDB1")
            .with_username("app")
            .with_password("Secret-Pw-42")
            .validate_with(Some(&crate::SPEC))
            .expect("valid")
    }

    #[test]
    fn codes_are_read_from_messages() {
        assert_eq!(
            code_in_message("ORA-01017: invalid username/password; logon denied"),
            Code::Ora(1017)
        );
        assert_eq!(
            code_in_message("DPI-1047: Cannot locate a 64-bit Oracle Client library"),
            Code::Dpi(1047)
        );
        assert_eq!(code_in_message("  ORA-00942: table"), Code::Ora(942));
        assert_eq!(code_in_message("ORA-: nothing"), Code::None);
        assert_eq!(code_in_message("invalid type conversion"), Code::None);
    }

    #[test]
    fn ora_codes_have_their_kinds() {
        let cases = [
            (1017, ErrorKind::Auth),
            (28000, ErrorKind::Auth),
            (1045, ErrorKind::Auth),
            (12541, ErrorKind::Connect),
            (12514, ErrorKind::Connect),
            (12505, ErrorKind::Connect),
            (12170, ErrorKind::Connect),
            (3113, ErrorKind::Connect),
            (3114, ErrorKind::Connect),
            (942, ErrorKind::Query),
            (904, ErrorKind::Query),
            (933, ErrorKind::Query),
            (1, ErrorKind::Query),
            (1456, ErrorKind::ReadOnly),
            (16000, ErrorKind::ReadOnly),
            (1031, ErrorKind::Forbidden),
            (3136, ErrorKind::Timeout),
            (30006, ErrorKind::Timeout),
            (29024, ErrorKind::Tls),
            (28860, ErrorKind::Tls),
        ];
        for (code, kind) in cases {
            assert_eq!(kind_of(Code::Ora(code), false), kind, "ORA-{code:05}");
        }
    }

    #[test]
    fn user_requested_cancel_is_a_timeout_only_when_ours() {
        assert_eq!(kind_of(Code::Ora(1013), true), ErrorKind::Timeout);
        assert_eq!(kind_of(Code::Ora(1013), false), ErrorKind::Query);
        assert!(is_fatal(Code::Ora(1013)));
    }

    #[test]
    fn dpi_codes_have_their_kinds() {
        assert_eq!(kind_of(Code::Dpi(1047), false), ErrorKind::Connect);
        assert_eq!(kind_of(Code::Dpi(1067), false), ErrorKind::Timeout);
        assert_eq!(kind_of(Code::Dpi(1080), false), ErrorKind::Connect);
        assert_eq!(kind_of(Code::None, false), ErrorKind::Decode);
        assert!(is_fatal(Code::Dpi(1067)));
        assert!(is_fatal(Code::Ora(3113)));
        assert!(!is_fatal(Code::Ora(942)));
        assert!(!is_fatal(Code::Ora(1)));
    }

    #[test]
    fn missing_client_says_what_to_install_and_how() {
        let driver = "DPI-1047: Cannot locate a 64-bit Oracle Client library: \"libclntsh.so: cannot open shared object file: No such file or directory\". See https://oracle.github.io/odpi/doc/installation.html#linux for help";
        let error = build(&config(), Stage::Connect, Code::Dpi(1047), driver, false);
        assert_eq!(error.kind(), ErrorKind::Connect);
        assert!(!error.is_temporary());
        let text = error.to_string();
        assert!(
            text.starts_with("connector `crm`: Oracle Client libraries not found"),
            "{text}"
        );
        assert!(text.contains("Instant Client"), "{text}");
        assert!(text.contains("LD_LIBRARY_PATH"), "{text}");
        assert!(
            text.contains(
                "(loader: libclntsh.so: cannot open shared object file: No such file or directory)"
            ),
            "{text}"
        );
    }

    #[test]
    fn messages_name_the_endpoint_and_never_the_password() {
        let config = config();
        let auth = build(
            &config,
            Stage::Connect,
            Code::Ora(1017),
            &scrub(
                "ORA-01017: invalid credential Secret-Pw-42",
                config.password_text(),
            ),
            false,
        );
        assert_eq!(auth.kind(), ErrorKind::Auth);
        let text = auth.to_string();
        assert!(text.contains("db.example.com:1521/FREEPDB1"), "{text}");
        assert!(!text.contains("Secret-Pw-42"), "{text}");
        assert!(!format!("{auth:?}").contains("Secret-Pw-42"));
        let lost = build(
            &config,
            Stage::Statement,
            Code::Ora(3113),
            "ORA-03113",
            false,
        );
        assert!(lost.to_string().contains("was lost"), "{lost}");
        assert!(lost.is_temporary());
    }

    #[test]
    #[allow(deprecated)] // the enum variants are the crate's only way to make a DbError error
    fn driver_errors_are_mapped_with_their_code() {
        let config = config();
        // (ORA error (else DPI), code, message, ODPI-C function and action, cancelled by
        // the call's timeout, kind, SQLSTATE-like code)
        let cases = [
            (
                true,
                942,
                "ORA-00942: table or view does not exist",
                ("dpiStmt_execute", "execute"),
                false,
                ErrorKind::Query,
                Some("ORA-00942"),
            ),
            (
                false,
                0,
                "DPI-1067: call timeout of 1000 ms exceeded with ORA-3156",
                ("dpiStmt_execute", "execute"),
                false,
                ErrorKind::Timeout,
                Some("DPI-1067"),
            ),
            (
                true,
                1013,
                "ORA-01013: user requested cancel of current operation",
                ("dpiStmt_fetchRows", "fetch"),
                true,
                ErrorKind::Timeout,
                None,
            ),
        ];
        for (ora, code, message, (function, action), timed_out, kind, sql_state) in cases {
            let db = oracle::DbError::new(code, 0, message, function, action);
            let err = if ora {
                oracle::Error::OciError(db)
            } else {
                oracle::Error::DpiError(db)
            };
            let mapped = map_error(&config, Stage::Statement, &err, timed_out);
            assert_eq!(mapped.kind(), kind, "{message}");
            if sql_state.is_some() {
                assert_eq!(mapped.sql_state(), sql_state, "{message}");
            }
            assert_eq!(mapped.connector(), Some("crm"), "{message}");
        }
    }
}
