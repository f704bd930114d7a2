//! A HiveServer2 session on its own TCP connection: connect, TLS (rustls, from the
//! connector's PEM material), authenticate (NOSASL, SASL PLAIN or GSSAPI on the binary
//! transport; HTTP Basic or SPNEGO over HTTP), `OpenSession`, and the calls made on an
//! open session, each bounded by its deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use extdata_core::driver::{duration_text, timeout_error};
use extdata_core::{Error, ErrorKind, Result, expose, with_tls_hint};
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
use tokio_rustls::rustls::pki_types::ServerName;

use crate::connect::{Auth, Settings};
use crate::error::{Failure, map_error};
use crate::http::{HttpAuth, HttpLink};
use crate::sasl::{self, SaslError};
use crate::transport::{
    Connection, DEFAULT_MAX_MESSAGE, Exchange, Framing, Io, TransportError, status_ok,
};

/// How long a status call may run past the query deadline.
const STATUS_GRACE: Duration = Duration::from_millis(300);

/// An open HiveServer2 session on its own TCP connection.
///
/// Over the binary transport the server closes a session when its socket closes. Over
/// HTTP a session outlives its connection (each call is a request; the server keeps the
/// session until `CloseSession`, or until `hive.server2.idle.session.timeout`, days by
/// default): a session dropped without [`close`](Session::close) is closed on the
/// server by a task spawned on the current runtime — over its own connection when that
/// is still in sync, else over a new one ([`close_detached`]).
pub(crate) struct Session {
    /// `None` only while [`Drop`] hands it to the closing task.
    connection: Option<Link>,
    handle: TSessionHandle,
    /// HTTP transport: what a new connection needs to close the session on the server
    /// once this one is dropped; `None` over the binary transport or once closed.
    close_on_drop: Option<Arc<Settings>>,
    pub(crate) protocol: i32,
    pub(crate) last_used: Instant,
    /// Set when a call failed midway: the connection's state is unknown.
    pub(crate) broken: bool,
    /// Cleared when a call ran a statement that may change the session (`SET`, `USE`,
    /// `DECLARE`, a temporary view…): the session then serves no other call.
    pub(crate) reusable: bool,
    connector: String,
}

extdata_core::debug_fields!(Session |session| { protocol, broken, .. });

/// How the session's calls travel: thrift messages on the socket (binary transport), or
/// one HTTP request each.
enum Link {
    Socket(Connection<Box<dyn Io>>),
    Http(HttpLink),
}

impl Exchange for Link {
    fn sequence(&mut self) -> &mut i32 {
        match self {
            Link::Socket(connection) => connection.sequence(),
            Link::Http(link) => link.sequence(),
        }
    }

    async fn exchange(&mut self, message: Vec<u8>) -> Result<Vec<u8>, TransportError> {
        match self {
            Link::Socket(connection) => connection.exchange(message).await,
            Link::Http(link) => link.exchange(message).await,
        }
    }
}

impl Link {
    async fn shutdown(&mut self) {
        use tokio::io::AsyncWriteExt;
        match self {
            Link::Socket(connection) => {
                let _ = connection.stream_mut().shutdown().await;
            }
            // Dropping the link ends its connection task, which closes the socket.
            Link::Http(_) => {}
        }
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
        Auth::Plain | Auth::Gssapi if settings.tls.is_none() => {
            "the server may not speak SASL: if it runs with \
             hive.server2.authentication=NOSASL, set the option auth=NOSASL; if it runs \
             with hive.server2.use.SSL=true, turn ssl on"
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
    pub(crate) async fn open(settings: &Arc<Settings>, limit: Duration) -> Result<Session> {
        // Whole milliseconds: the figure appears in messages.
        let limit = Duration::from_millis(u64::try_from(limit.as_millis()).unwrap_or(u64::MAX));
        let timeout = settings.connect_timeout.min(limit);
        let deadline = tokio::time::Instant::now() + timeout;
        // Cut short by the acquire budget, silence proves nothing about the protocol:
        // say which stage was stuck instead of guessing an authentication mismatch.
        let budget = (timeout < settings.connect_timeout).then_some(timeout);
        let timed_out = |what: &str| timeout_error(&settings.name, what, timeout);
        let connection = connect(settings, deadline, timeout, budget).await?;
        let request = TOpenSessionReq::new(
            TProtocolVersion::HIVE_CLI_SERVICE_PROTOCOL_V10,
            Some(settings.username.clone()),
            Some(expose(&settings.password).to_owned()),
            Some(settings.session_conf.clone()),
        );
        let (connection, answer) = open_session(connection, request, deadline, settings).await;
        let response: TOpenSessionResp = match answer {
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
                        &format!("no answer to OpenSession within {}", duration_text(timeout)),
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
                return Err(map_error(Failure::Transport(e), "opening a session")
                    .with_connector(settings.name.clone()));
            }
            Ok(Ok(response)) => response,
        };
        if !status_ok(&response.status) {
            let error = map_error(Failure::Status(&response.status), "opening a session");
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
        let connection = connection
            .ok_or_else(|| settings.error(ErrorKind::Connect, "OpenSession lost its connection"))?;
        let close_on_drop = matches!(connection, Link::Http(_)).then(|| settings.clone());
        let session = Session {
            connection: Some(connection),
            handle,
            close_on_drop,
            protocol: response.server_protocol_version.0,
            last_used: Instant::now(),
            broken: false,
            reusable: true,
            connector: settings.name.clone(),
        };
        if session.protocol < TProtocolVersion::HIVE_CLI_SERVICE_PROTOCOL_V6.0 {
            // Dropping the session closes it on the server.
            return Err(settings.error(
                ErrorKind::Unsupported,
                format!(
                    "the server speaks HiveServer2 protocol V{}; columnar results need V6 \
                     (Hive 0.13) or later",
                    session.protocol + 1
                ),
            ));
        }
        Ok(session)
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
        Req: TSerializable + Sync,
        Resp: TSerializable,
    {
        let (false, Some(connection)) = (self.broken, self.connection.as_mut()) else {
            return Err(Error::new(ErrorKind::Connect, "the session is broken")
                .with_connector(self.connector.clone()));
        };
        self.last_used = Instant::now();
        match timeout_at(deadline, connection.call(method, request)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => {
                self.broken = true;
                Err(map_error(Failure::Transport(e), operation)
                    .with_connector(self.connector.clone()))
            }
            Err(_) => {
                self.broken = true;
                Err(timeout_error(&self.connector, operation, budget))
            }
        }
    }

    fn server_error(&self, status: &hive::service::rpc::thrift::TStatus, what: &str) -> Error {
        if status.status_code.0 == 4 {
            // INVALID_HANDLE: the server lost our session.
            let _ = what;
        }
        map_error(Failure::Status(status), what).with_connector(self.connector.clone())
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
                    return Err(map_error(
                        Failure::Server {
                            sql_state: response.sql_state.as_deref(),
                            error_code: response.error_code,
                            message: &message,
                        },
                        "the statement failed",
                    )
                    .with_connector(self.connector.clone()));
                }
                TOperationState::TIMEDOUT_STATE => {
                    return Err(timeout_error(
                        &self.connector,
                        "the statement (stopped by the server)",
                        budget,
                    ));
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

    /// Cancels `operation` and, once that worked, frees it, all within `grace`: for a
    /// statement that ran out of time or whose reader went away.
    pub(crate) async fn abandon(&mut self, operation: &TOperationHandle, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        if self.cancel(operation, deadline, grace).await.is_ok() {
            let _ = self.close_operation(operation, deadline, grace).await;
        }
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

    /// Closes the session on the server and the connection. A session whose
    /// connection broke, or whose `CloseSession` failed, is closed over a new connection
    /// by [`Drop`] where the transport needs it (HTTP).
    pub(crate) async fn close(mut self, budget: Duration) {
        if !self.broken {
            let deadline = tokio::time::Instant::now() + budget;
            let request = TCloseSessionReq::new(self.handle.clone());
            let closed: Result<TCloseSessionResp> = self
                .rpc(
                    "CloseSession",
                    &request,
                    deadline,
                    "closing the session",
                    budget,
                )
                .await;
            if closed.is_ok_and(|response| status_ok(&response.status)) {
                self.close_on_drop = None;
            }
        }
        if let Some(connection) = self.connection.as_mut() {
            let _ = tokio::time::timeout(budget, connection.shutdown()).await;
        }
    }
}

/// Connects, sets up TLS and authenticates (SASL over the binary transport; over HTTP
/// the link sends the login with each request), by `deadline`: the connection a session
/// is opened on, or a dropped HTTP session is closed over. `timeout` is the figure in
/// messages; `budget` is set when the call's acquire budget, not the connect timeout,
/// cut the attempt short.
async fn connect(
    settings: &Settings,
    deadline: tokio::time::Instant,
    timeout: Duration,
    budget: Option<Duration>,
) -> Result<Link> {
    let timed_out = |what: &str| timeout_error(&settings.name, what, timeout);
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
    let mut stream = match &settings.tls {
        None => Box::new(stream) as Box<dyn Io>,
        Some(tls) => {
            let name = ServerName::try_from(settings.host.clone()).map_err(|e| {
                settings.error(
                    ErrorKind::Config,
                    format!("`{}` is not a host name for TLS: {e}", settings.host),
                )
            })?;
            let connector = tokio_rustls::TlsConnector::from(tls.clone());
            match timeout_at(deadline, connector.connect(name, stream)).await {
                Err(_) => {
                    return Err(timed_out(&format!(
                        "the TLS handshake with {address} (is TLS on at the server? \
                         hive.server2.use.SSL)"
                    )));
                }
                Ok(Err(e)) => return Err(tls_failed(settings, &address, e)),
                Ok(Ok(stream)) => Box::new(stream),
            }
        }
    };
    let framing = match settings.auth {
        // Over HTTP the login travels with each request (Basic), not by SASL.
        _ if settings.http_path.is_some() => Framing::Raw,
        Auth::NoSasl => Framing::Raw,
        Auth::Plain => {
            let mut plain = sasl::Plain::new(&settings.username, expose(&settings.password));
            sasl_handshake(settings, &mut stream, &mut plain, deadline, budget).await?;
            Framing::Sasl
        }
        Auth::Gssapi => {
            #[cfg(feature = "gssapi")]
            {
                let service = settings.kerberos_service.clone();
                let host = settings.kerberos_host.clone();
                let mut mechanism = kerberos_step(settings, deadline, move || {
                    let mut mechanism = crate::gssapi::Gssapi::kerberos(&service, &host)?;
                    mechanism.prime()?;
                    Ok(mechanism)
                })
                .await?;
                sasl_handshake(settings, &mut stream, &mut mechanism, deadline, budget).await?;
                Framing::Sasl
            }
            #[cfg(not(feature = "gssapi"))]
            {
                return Err(gssapi_unsupported(settings));
            }
        }
    };
    let connection = match (&settings.http_path, framing) {
        (Some(path), _) => {
            let auth = match settings.auth {
                Auth::NoSasl => HttpAuth::None,
                Auth::Plain => HttpAuth::Basic {
                    user: settings.username.clone(),
                    password: expose(&settings.password).to_owned(),
                },
                Auth::Gssapi => negotiate(settings, deadline).await?,
            };
            match timeout_at(
                deadline,
                HttpLink::open(
                    stream,
                    &settings.host,
                    settings.port,
                    path,
                    auth,
                    DEFAULT_MAX_MESSAGE,
                ),
            )
            .await
            {
                Err(_) => return Err(timed_out("starting HTTP")),
                Ok(Err(e)) => {
                    return Err(map_error(Failure::Transport(e), "starting HTTP")
                        .with_connector(settings.name.clone()));
                }
                Ok(Ok(link)) => Link::Http(link),
            }
        }
        (None, framing) => Link::Socket(Connection::new(stream, framing, DEFAULT_MAX_MESSAGE)),
    };
    Ok(connection)
}

/// The answer to `OpenSession`, or `Err` when `deadline` passed first.
type OpenAnswer = std::result::Result<
    std::result::Result<TOpenSessionResp, TransportError>,
    tokio::time::error::Elapsed,
>;

/// Sends `OpenSession` on `connection` and waits for the answer until `deadline`; hands
/// the connection back with it (`None` when the call did not give it back).
///
/// The call runs in a task of its own. A server may open the session after the client
/// stopped waiting (the deadline passed, or the caller dropped the acquire): over HTTP
/// that session would stay open on the server, since no socket close ends it, so the
/// task then closes it, within the connect timeout.
async fn open_session(
    connection: Link,
    request: TOpenSessionReq,
    deadline: tokio::time::Instant,
    settings: &Settings,
) -> (Option<Link>, OpenAnswer) {
    let (answer_to, answer) = tokio::sync::oneshot::channel();
    let connector = settings.name.clone();
    let close_budget = settings.connect_timeout;
    tokio::spawn(async move {
        let mut connection = connection;
        // Bounded even when nobody waits any more: twice the time the opener had.
        let limit = deadline + close_budget;
        let reply: std::result::Result<TOpenSessionResp, TransportError> =
            match timeout_at(limit, connection.call("OpenSession", &request)).await {
                Ok(reply) => reply,
                // The opener gave up long ago; dropping the connection is all that is left.
                Err(_) => return,
            };
        let Err((mut connection, Ok(response))) = answer_to.send((connection, reply)) else {
            return;
        };
        // The opener is gone and the server opened a session: close it.
        if let Some(handle) = response.session_handle {
            let close_by = tokio::time::Instant::now() + close_budget;
            let request = TCloseSessionReq::new(handle);
            let closed: std::result::Result<std::result::Result<TCloseSessionResp, _>, _> =
                timeout_at(close_by, connection.call("CloseSession", &request)).await;
            tracing::debug!(connector = %connector, closed = matches!(closed, Ok(Ok(_))),
                "closed a session the server opened after its caller stopped waiting");
        }
    });
    match timeout_at(deadline, answer).await {
        Err(elapsed) => (None, Err(elapsed)),
        Ok(Ok((connection, reply))) => (Some(connection), Ok(reply)),
        // The task ended without an answer (it cannot outlive its own bound otherwise).
        Ok(Err(_)) => (
            None,
            Ok(Err(TransportError::Closed {
                partial: Vec::new(),
            })),
        ),
    }
}

/// Closes the session `handle` on the server: over `link` when it is still in sync, else
/// over a new connection; within the connect timeout. The end of a dropped HTTP
/// session (see [`Session`]): nobody waits for it, so failures are only logged.
async fn close_detached(settings: Arc<Settings>, handle: TSessionHandle, link: Option<Link>) {
    let budget = settings.connect_timeout;
    let deadline = tokio::time::Instant::now() + budget;
    let mut link = match link {
        Some(link) => link,
        None => match connect(&settings, deadline, budget, None).await {
            Ok(link) => link,
            Err(e) => {
                tracing::debug!(connector = %settings.name, error = %e,
                    "cannot reach the server to close a dropped session");
                return;
            }
        },
    };
    let request = TCloseSessionReq::new(handle);
    let closed: std::result::Result<std::result::Result<TCloseSessionResp, _>, _> =
        timeout_at(deadline, link.call("CloseSession", &request)).await;
    match closed {
        Ok(Ok(response)) if status_ok(&response.status) => {
            tracing::debug!(connector = %settings.name, "closed a dropped session on the server");
        }
        Ok(Ok(_)) => {
            tracing::debug!(connector = %settings.name, "the server refused to close a dropped session");
        }
        Ok(Err(e)) => {
            tracing::debug!(connector = %settings.name, error = %e,
                "closing a dropped session on the server failed");
        }
        Err(_) => {
            tracing::debug!(connector = %settings.name,
                "closing a dropped session on the server timed out");
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let Some(settings) = self.close_on_drop.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::debug!(connector = %self.connector,
                "no runtime to close a dropped session on the server");
            return;
        };
        let link = if self.broken {
            None
        } else {
            self.connection.take()
        };
        runtime.spawn(close_detached(settings, self.handle.clone(), link));
    }
}

/// The error of `auth=GSSAPI` in a build without the `gssapi` feature (validation
/// says so first).
#[cfg(not(feature = "gssapi"))]
fn gssapi_unsupported(settings: &Settings) -> Error {
    settings.error(
        ErrorKind::Unsupported,
        "auth=GSSAPI needs the cargo feature `gssapi` of extdata-hive",
    )
}

/// Runs `step` of the Kerberos login (it may ask the KDC for a service ticket: blocking
/// I/O) on a blocking thread, bounded by the connect deadline; its failure is an
/// `Auth` error.
#[cfg(feature = "gssapi")]
async fn kerberos_step<T: Send + 'static>(
    settings: &Settings,
    deadline: tokio::time::Instant,
    step: impl FnOnce() -> std::result::Result<T, String> + Send + 'static,
) -> Result<T> {
    match timeout_at(deadline, tokio::task::spawn_blocking(step)).await {
        Ok(Ok(Ok(value))) => Ok(value),
        Ok(Ok(Err(why))) => Err(settings.error(ErrorKind::Auth, why)),
        Ok(Err(join)) => Err(settings.error(
            ErrorKind::Internal,
            format!("the Kerberos step failed: {join}"),
        )),
        Err(_) => Err(timeout_error(
            &settings.name,
            "getting a Kerberos service ticket (the KDC did not answer)",
            settings.connect_timeout,
        )),
    }
}

/// SPNEGO for `auth=GSSAPI` over HTTP: the first token is made here, within the connect
/// deadline, so that a missing ticket or an unknown principal fails the connect.
#[cfg(feature = "gssapi")]
async fn negotiate(settings: &Settings, deadline: tokio::time::Instant) -> Result<HttpAuth> {
    use crate::http::NegotiateTokens as _;
    let tokens = std::sync::Arc::new(crate::gssapi::SpnegoTokens::new(
        &settings.kerberos_service,
        &settings.kerberos_host,
    ));
    let first = {
        let tokens = tokens.clone();
        kerberos_step(settings, deadline, move || tokens.token()).await?
    };
    Ok(HttpAuth::Negotiate {
        tokens,
        first: Some(first),
    })
}

#[cfg(not(feature = "gssapi"))]
async fn negotiate(settings: &Settings, _deadline: tokio::time::Instant) -> Result<HttpAuth> {
    Err(gssapi_unsupported(settings))
}

/// A failed TLS handshake: what to fix (the same hints as every backend), or that the
/// server may not speak TLS.
fn tls_failed(settings: &Settings, address: &str, e: std::io::Error) -> Error {
    let text = e.to_string();
    let message = with_tls_hint(format!("TLS with {address} failed: {text}"), &text);
    let message = if extdata_core::tls_hint(&text).is_none() {
        format!(
            "{message} (if the server does not use TLS — hive.server2.use.SSL=false — turn \
             ssl off)"
        )
    } else {
        message
    };
    settings.error(ErrorKind::Tls, message).with_source(e)
}

async fn sasl_handshake<M: sasl::Mechanism + ?Sized>(
    settings: &Settings,
    stream: &mut Box<dyn Io>,
    mechanism: &mut M,
    deadline: tokio::time::Instant,
    budget: Option<Duration>,
) -> Result<()> {
    match timeout_at(deadline, sasl::negotiate(stream, mechanism)).await {
        Err(_) if let Some(budget) = budget => Err(timeout_error(
            &settings.name,
            "the SASL handshake: the server accepted TCP but did not answer it (silent); \
             the attempt",
            budget,
        )),
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
