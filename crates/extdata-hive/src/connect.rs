//! [`ValidConfig`] → connection settings, and the HiveServer2 session: TCP connect,
//! authentication, `OpenSession`, and the calls made on an open session.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use extdata_core::{Endpoint, Error, ErrorKind, Result, SecretString, ValidConfig, expose};
use hive::service::rpc::thrift::{
    TCancelOperationReq, TCancelOperationResp, TCloseOperationReq, TCloseOperationResp,
    TCloseSessionReq, TCloseSessionResp, TExecuteStatementReq, TExecuteStatementResp,
    TFetchOrientation, TFetchResultsReq, TFetchResultsResp, TGetInfoReq, TGetInfoResp,
    TGetInfoType, TGetInfoValue, TGetOperationStatusReq, TGetOperationStatusResp,
    TGetResultSetMetadataReq, TGetResultSetMetadataResp, TOpenSessionReq, TOpenSessionResp,
    TOperationHandle, TOperationState, TProtocolVersion, TRowSet, TSessionHandle, TTableSchema,
};
use thrift::protocol::TSerializable;
use tokio::net::TcpStream;
use tokio::time::timeout_at;

use crate::error::{from_server, from_status, from_transport};
use crate::sasl::{self, SaslError};
use crate::transport::{Connection, DEFAULT_MAX_MESSAGE, Framing, TransportError, status_ok};

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

    fn name(self) -> &'static str {
        match self {
            Auth::NoSasl => "NOSASL",
            Auth::Plain => "PLAIN",
            Auth::Gssapi => "GSSAPI",
        }
    }
}

/// How long a status call may run past the query deadline.
const STATUS_GRACE: Duration = Duration::from_millis(300);

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
    pub(crate) username: String,
    password: SecretString,
    pub(crate) database: Option<String>,
    /// OpenSession configuration: `use:database`, `set:hiveconf:<key>`.
    pub(crate) session_conf: BTreeMap<String, String>,
    pub(crate) fetch_size: i64,
    pub(crate) connect_timeout: Duration,
    pub(crate) query_timeout: Duration,
    pub(crate) read_only: bool,
    /// `allow_server_code`: statements that run code on the server are not refused.
    pub(crate) allow_server_code: bool,
    #[cfg_attr(not(feature = "gssapi"), allow(dead_code))]
    pub(crate) kerberos_service: String,
    #[cfg_attr(not(feature = "gssapi"), allow(dead_code))]
    pub(crate) kerberos_host: Option<String>,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("name", &self.name)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("auth", &self.auth)
            .field("username", &self.username)
            .field("database", &self.database)
            .field(
                "session_conf",
                &self.session_conf.keys().collect::<Vec<_>>(),
            )
            .field("fetch_size", &self.fetch_size)
            .finish_non_exhaustive()
    }
}

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
        let auth = config
            .options
            .get("auth")
            .and_then(Auth::parse)
            .unwrap_or(Auth::Plain);
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
        let (kerberos_service, kerberos_host) = match config.options.get("principal") {
            Some(principal) => {
                let (service, host) = parse_principal(principal, &host);
                (service, Some(host))
            }
            None => (
                config
                    .options
                    .get("kerberos_service_name")
                    .unwrap_or("hive")
                    .to_owned(),
                None,
            ),
        };
        Ok(Settings {
            name: config.name.clone(),
            host,
            port,
            auth,
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

/// An open HiveServer2 session on its own TCP connection.
pub(crate) struct Session {
    connection: Connection<TcpStream>,
    handle: TSessionHandle,
    pub(crate) protocol: i32,
    pub(crate) last_used: Instant,
    /// Set when a call failed midway: the connection's state is unknown.
    pub(crate) broken: bool,
    /// Cleared when a call ran a statement that may change the session (`SET`, `USE`,
    /// `DECLARE`, a temporary view…): the session then serves no other call.
    pub(crate) reusable: bool,
    connector: String,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("protocol", &self.protocol)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

/// A mode mismatch, said so that the administrator knows what to change.
fn mismatch(settings: &Settings, detail: &str) -> Error {
    let advice = match settings.auth {
        Auth::NoSasl => {
            "the server expects SASL: set the option auth=NONE (SASL PLAIN; also for LDAP \
             and CUSTOM servers) or auth=GSSAPI (Kerberos) to match \
             hive.server2.authentication"
        }
        Auth::Plain | Auth::Gssapi => {
            "the server may not speak SASL: if it runs with \
             hive.server2.authentication=NOSASL, set the option auth=NOSASL"
        }
    };
    settings.error(
        ErrorKind::Connect,
        format!(
            "authentication mode mismatch with {}:{} (client uses {}): {detail}; {advice}",
            settings.host,
            settings.port,
            settings.auth.name()
        ),
    )
}

impl Session {
    /// Connects, authenticates and opens a session, all within the connect timeout and
    /// `limit` (what is left of the call's acquire budget).
    pub(crate) async fn open(settings: &Settings, limit: Duration) -> Result<Session> {
        // Whole milliseconds: the figure appears in messages.
        let limit = Duration::from_millis(u64::try_from(limit.as_millis()).unwrap_or(u64::MAX));
        let timeout = settings.connect_timeout.min(limit);
        let deadline = tokio::time::Instant::now() + timeout;
        // Cut short by the acquire budget, silence proves nothing about the protocol:
        // say which stage was stuck instead of guessing an authentication mismatch.
        let budget = (timeout < settings.connect_timeout).then_some(timeout);
        let timed_out =
            |what: &str| Error::timeout(what, timeout).with_connector(settings.name.clone());
        let address = format!("{}:{}", settings.host, settings.port);
        let stream = match timeout_at(deadline, TcpStream::connect(&address)).await {
            Err(_) => return Err(timed_out(&format!("TCP connect to {address}"))),
            Ok(Err(e)) => {
                let kind = if e.kind() == std::io::ErrorKind::NotFound
                    || e.to_string().contains("failed to lookup")
                {
                    ErrorKind::Resolve
                } else {
                    ErrorKind::Connect
                };
                return Err(settings
                    .error(kind, format!("cannot connect to {address}: {e}"))
                    .with_source(e));
            }
            Ok(Ok(stream)) => stream,
        };
        let _ = stream.set_nodelay(true);
        let mut stream = stream;
        let framing = match settings.auth {
            Auth::NoSasl => Framing::Raw,
            Auth::Plain => {
                let mut plain = sasl::Plain::new(&settings.username, expose(&settings.password));
                sasl_handshake(settings, &mut stream, &mut plain, deadline, budget).await?;
                Framing::Sasl
            }
            Auth::Gssapi => {
                #[cfg(feature = "gssapi")]
                {
                    let host = settings
                        .kerberos_host
                        .clone()
                        .unwrap_or_else(|| settings.host.clone());
                    let service = settings.kerberos_service.clone();
                    // The first step may ask the KDC for a service ticket: blocking I/O,
                    // so it runs on a blocking thread, bounded by the connect deadline.
                    let primed = tokio::task::spawn_blocking(move || {
                        let mut mechanism = crate::gssapi::Gssapi::kerberos(&service, &host)?;
                        mechanism.prime()?;
                        Ok::<_, String>(mechanism)
                    });
                    let mut mechanism = match timeout_at(deadline, primed).await {
                        Ok(Ok(Ok(mechanism))) => mechanism,
                        Ok(Ok(Err(why))) => return Err(settings.error(ErrorKind::Auth, why)),
                        Ok(Err(join)) => {
                            return Err(settings.error(
                                ErrorKind::Internal,
                                format!("the Kerberos step failed: {join}"),
                            ));
                        }
                        Err(_) => {
                            return Err(Error::timeout(
                                "getting a Kerberos service ticket (the KDC did not answer)",
                                settings.connect_timeout,
                            )
                            .with_connector(settings.name.clone()));
                        }
                    };
                    sasl_handshake(settings, &mut stream, &mut mechanism, deadline, budget).await?;
                    Framing::Sasl
                }
                #[cfg(not(feature = "gssapi"))]
                {
                    return Err(settings.error(
                        ErrorKind::Unsupported,
                        "auth=GSSAPI needs the cargo feature `gssapi` of extdata-hive",
                    ));
                }
            }
        };
        let mut connection = Connection::new(stream, framing, DEFAULT_MAX_MESSAGE);
        let request = TOpenSessionReq::new(
            TProtocolVersion::HIVE_CLI_SERVICE_PROTOCOL_V10,
            Some(settings.username.clone()),
            Some(expose(&settings.password).to_owned()),
            Some(settings.session_conf.clone()),
        );
        let response: TOpenSessionResp = match timeout_at(
            deadline,
            connection.call("OpenSession", &request),
        )
        .await
        {
            Err(_) if budget.is_some() => {
                return Err(timed_out(
                    "opening a session: the server accepted TCP but did not answer OpenSession \
                     (silent); the attempt",
                ));
            }
            Err(_) => {
                return Err(match settings.auth {
                    Auth::NoSasl => mismatch(
                        settings,
                        &format!("no answer to OpenSession within {}", humantime(timeout)),
                    ),
                    _ => timed_out("opening a session"),
                });
            }
            Ok(Err(TransportError::Closed { partial })) => {
                let detail = if partial.first().is_some_and(|b| matches!(b, 3 | 4)) {
                    let text =
                        String::from_utf8_lossy(partial.get(5..).unwrap_or_default()).into_owned();
                    format!(
                        "the server answered with a SASL error (`{text}`) and closed the connection"
                    )
                } else {
                    "the server closed the connection on OpenSession".to_owned()
                };
                return Err(match settings.auth {
                    Auth::NoSasl => mismatch(settings, &detail),
                    _ => settings.error(ErrorKind::Connect, detail),
                });
            }
            Ok(Err(e)) => {
                return Err(
                    from_transport(e, "opening a session").with_connector(settings.name.clone())
                );
            }
            Ok(Ok(response)) => response,
        };
        if !status_ok(&response.status) {
            let error = from_status(&response.status, "opening a session");
            let kind = match error.kind() {
                ErrorKind::Query => {
                    let message = error.message().to_ascii_lowercase();
                    if settings.database.is_some()
                        && (message.contains("database") || message.contains("schema"))
                    {
                        ErrorKind::Database
                    } else if message.contains("auth") || message.contains("denied") {
                        ErrorKind::Auth
                    } else {
                        ErrorKind::Connect
                    }
                }
                other => other,
            };
            return Err(
                Error::new(kind, error.message().to_owned()).with_connector(settings.name.clone())
            );
        }
        let handle = response.session_handle.ok_or_else(|| {
            settings.error(ErrorKind::Connect, "OpenSession returned no session handle")
        })?;
        let protocol = response.server_protocol_version.0;
        if protocol < TProtocolVersion::HIVE_CLI_SERVICE_PROTOCOL_V6.0 {
            return Err(settings.error(
                ErrorKind::Unsupported,
                format!(
                    "the server speaks HiveServer2 protocol V{}; columnar results need V6 \
                     (Hive 0.13) or later",
                    protocol + 1
                ),
            ));
        }
        let now = Instant::now();
        Ok(Session {
            connection,
            handle,
            protocol,
            last_used: now,
            broken: false,
            reusable: true,
            connector: settings.name.clone(),
        })
    }

    /// One call with a deadline. Any failure but a server status leaves the
    /// connection in an unknown state: the session is marked broken.
    async fn rpc<Req, Resp>(
        &mut self,
        method: &str,
        request: &Req,
        deadline: tokio::time::Instant,
        operation: &str,
        budget: Duration,
    ) -> Result<Resp>
    where
        Req: TSerializable,
        Resp: TSerializable,
    {
        if self.broken {
            return Err(Error::new(ErrorKind::Connect, "the session is broken")
                .with_connector(self.connector.clone()));
        }
        self.last_used = Instant::now();
        match timeout_at(deadline, self.connection.call(method, request)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => {
                self.broken = true;
                Err(from_transport(e, operation).with_connector(self.connector.clone()))
            }
            Err(_) => {
                self.broken = true;
                Err(Error::timeout(operation, budget).with_connector(self.connector.clone()))
            }
        }
    }

    fn server_error(&self, status: &hive::service::rpc::thrift::TStatus, what: &str) -> Error {
        if status.status_code.0 == 4 {
            // INVALID_HANDLE: the server lost our session.
            let _ = what;
        }
        from_status(status, what).with_connector(self.connector.clone())
    }

    /// Starts `sql` asynchronously; `query_timeout` (whole seconds, 0 = none) is also
    /// enforced by the server where it supports it.
    pub(crate) async fn execute(
        &mut self,
        sql: &str,
        query_timeout_secs: i64,
        deadline: tokio::time::Instant,
        budget: Duration,
    ) -> Result<TOperationHandle> {
        let request = TExecuteStatementReq::new(
            self.handle.clone(),
            sql.to_owned(),
            None,
            Some(true),
            Some(query_timeout_secs),
        );
        let response: TExecuteStatementResp = self
            .rpc(
                "ExecuteStatement",
                &request,
                deadline,
                "running the statement",
                budget,
            )
            .await?;
        if !status_ok(&response.status) {
            if response.status.status_code.0 == 4 {
                self.broken = true;
            }
            return Err(self.server_error(&response.status, "the statement failed"));
        }
        response.operation_handle.ok_or_else(|| {
            Error::new(
                ErrorKind::Internal,
                "ExecuteStatement returned no operation handle",
            )
            .with_connector(self.connector.clone())
        })
    }

    /// Polls the operation until it finished, failed, or the deadline passed
    /// (`Ok(None)`: still running at the deadline; the session is in sync).
    pub(crate) async fn wait(
        &mut self,
        operation: &TOperationHandle,
        deadline: tokio::time::Instant,
        budget: Duration,
    ) -> Result<Option<TGetOperationStatusResp>> {
        let mut pause = Duration::from_millis(5);
        loop {
            // At the deadline the session is in sync: the caller cancels the
            // operation. A status call started now would be cut off midway.
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
            let request = TGetOperationStatusReq::new(operation.clone(), None);
            // A busy server may answer a status call late: a short grace past the
            // deadline keeps the session in sync so the statement can be cancelled
            // on it (cutting the call off would drop the session instead).
            let response: TGetOperationStatusResp = self
                .rpc(
                    "GetOperationStatus",
                    &request,
                    deadline + STATUS_GRACE,
                    "waiting for the statement",
                    budget,
                )
                .await?;
            if !status_ok(&response.status) {
                return Err(self.server_error(&response.status, "the statement failed"));
            }
            let state = response
                .operation_state
                .unwrap_or(TOperationState::RUNNING_STATE);
            match state {
                TOperationState::FINISHED_STATE => return Ok(Some(response)),
                TOperationState::ERROR_STATE => {
                    let message = response
                        .error_message
                        .clone()
                        .unwrap_or_else(|| "the statement failed on the server".to_owned());
                    return Err(from_server(
                        response.sql_state.as_deref(),
                        response.error_code,
                        &message,
                        "the statement failed",
                    )
                    .with_connector(self.connector.clone()));
                }
                TOperationState::TIMEDOUT_STATE => {
                    return Err(
                        Error::timeout("the statement (stopped by the server)", budget)
                            .with_connector(self.connector.clone()),
                    );
                }
                TOperationState::CANCELED_STATE | TOperationState::CLOSED_STATE => {
                    return Err(Error::new(
                        ErrorKind::Query,
                        "the statement was cancelled on the server",
                    )
                    .with_connector(self.connector.clone()));
                }
                _ => {}
            }
            let now = tokio::time::Instant::now();
            tokio::time::sleep_until((now + pause).min(deadline)).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// The result's columns.
    pub(crate) async fn metadata(
        &mut self,
        operation: &TOperationHandle,
        deadline: tokio::time::Instant,
        budget: Duration,
    ) -> Result<TTableSchema> {
        let request = TGetResultSetMetadataReq::new(operation.clone());
        let response: TGetResultSetMetadataResp = self
            .rpc(
                "GetResultSetMetadata",
                &request,
                deadline,
                "reading the result's columns",
                budget,
            )
            .await?;
        if !status_ok(&response.status) {
            return Err(self.server_error(&response.status, "reading the result's columns"));
        }
        response.schema.ok_or_else(|| {
            Error::new(ErrorKind::Decode, "the server sent no result columns")
                .with_connector(self.connector.clone())
        })
    }

    /// The next batch of at most `max_rows` rows.
    pub(crate) async fn fetch(
        &mut self,
        operation: &TOperationHandle,
        max_rows: i64,
        deadline: tokio::time::Instant,
        budget: Duration,
    ) -> Result<TRowSet> {
        let request = TFetchResultsReq::new(
            operation.clone(),
            TFetchOrientation::FETCH_NEXT,
            max_rows,
            0,
        );
        let response: TFetchResultsResp = self
            .rpc("FetchResults", &request, deadline, "fetching rows", budget)
            .await?;
        if !status_ok(&response.status) {
            return Err(self.server_error(&response.status, "fetching rows"));
        }
        Ok(response
            .results
            .unwrap_or_else(|| TRowSet::new(0, Vec::new(), None, None, None)))
    }

    /// Cancels a running operation (errors ignored: it may have finished meanwhile).
    pub(crate) async fn cancel(
        &mut self,
        operation: &TOperationHandle,
        deadline: tokio::time::Instant,
        budget: Duration,
    ) -> Result<()> {
        let request = TCancelOperationReq::new(operation.clone());
        let _: TCancelOperationResp = self
            .rpc(
                "CancelOperation",
                &request,
                deadline,
                "cancelling the statement",
                budget,
            )
            .await?;
        Ok(())
    }

    /// Frees an operation on the server.
    pub(crate) async fn close_operation(
        &mut self,
        operation: &TOperationHandle,
        deadline: tokio::time::Instant,
        budget: Duration,
    ) -> Result<()> {
        let request = TCloseOperationReq::new(operation.clone());
        let _: TCloseOperationResp = self
            .rpc(
                "CloseOperation",
                &request,
                deadline,
                "closing the statement",
                budget,
            )
            .await?;
        Ok(())
    }

    /// A server property as text (`CLI_DBMS_VER`, `CLI_SERVER_NAME`, …).
    pub(crate) async fn info(
        &mut self,
        info: TGetInfoType,
        deadline: tokio::time::Instant,
        budget: Duration,
    ) -> Result<String> {
        let request = TGetInfoReq::new(self.handle.clone(), info);
        let response: TGetInfoResp = self
            .rpc("GetInfo", &request, deadline, "asking the server", budget)
            .await?;
        if !status_ok(&response.status) {
            if response.status.status_code.0 == 4 {
                self.broken = true;
            }
            return Err(self.server_error(&response.status, "asking the server"));
        }
        Ok(match response.info_value {
            TGetInfoValue::StringValue(s) => s,
            TGetInfoValue::SmallIntValue(v) => v.to_string(),
            TGetInfoValue::IntegerBitmask(v)
            | TGetInfoValue::IntegerFlag(v)
            | TGetInfoValue::BinaryValue(v) => v.to_string(),
            TGetInfoValue::LenValue(v) => v.to_string(),
        })
    }

    /// Closes the session on the server and the connection.
    pub(crate) async fn close(mut self, budget: Duration) {
        if !self.broken {
            let deadline = tokio::time::Instant::now() + budget;
            let request = TCloseSessionReq::new(self.handle.clone());
            let _: Result<TCloseSessionResp> = self
                .rpc(
                    "CloseSession",
                    &request,
                    deadline,
                    "closing the session",
                    budget,
                )
                .await;
        }
        use tokio::io::AsyncWriteExt;
        let _ = tokio::time::timeout(budget, self.connection.stream_mut().shutdown()).await;
    }
}

async fn sasl_handshake<M: sasl::Mechanism + ?Sized>(
    settings: &Settings,
    stream: &mut TcpStream,
    mechanism: &mut M,
    deadline: tokio::time::Instant,
    budget: Option<Duration>,
) -> Result<()> {
    match timeout_at(deadline, sasl::negotiate(stream, mechanism)).await {
        Err(_) if let Some(budget) = budget => Err(Error::timeout(
            "the SASL handshake: the server accepted TCP but did not answer it (silent); \
             the attempt",
            budget,
        )
        .with_connector(settings.name.clone())),
        Err(_) => Err(mismatch(
            settings,
            &sasl::silent_server_hint(settings.connect_timeout),
        )),
        Ok(Ok(())) => Ok(()),
        Ok(Err(SaslError::Refused(why))) => Err(settings.error(
            ErrorKind::Auth,
            format!("{} login refused by the server: {why}", mechanism.name()),
        )),
        Ok(Err(SaslError::NotSasl(why))) => Err(mismatch(settings, &why)),
        Ok(Err(SaslError::Mechanism(why))) => Err(settings.error(ErrorKind::Auth, why)),
        Ok(Err(SaslError::Io(e))) => Err(settings
            .error(ErrorKind::Connect, format!("SASL negotiation failed: {e}"))
            .with_source(e)),
    }
}

fn humantime(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
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
