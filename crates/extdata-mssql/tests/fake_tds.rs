//! The backend against a fake TDS server on 127.0.0.1: a few hundred lines that speak
//! enough of the protocol (prelogin without encryption, login, SQL batch and RPC
//! requests, ATTENTION) to drive the real tiberius client through the paths a real SQL
//! Server cannot be asked to take here: login refused, rows, a server error, a timeout
//! cancelled with ATTENTION and acknowledged (the connection is reused), a cancel never
//! acknowledged (the connection is closed and its session ended with `KILL` from a
//! fresh connection), a dropped stream.
//!
//! This is not SQL Server: it answers fixed results to recognised requests. It shows
//! that this crate drives tiberius and its pool correctly; the live suite
//! (`conformance.rs`, `mssql.rs`) is what shows the server side.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use extdata_conformance::support::{
    Call, assert_elapsed_below, assert_error_has_no_secret, call_error, expect_kind, timed_out,
};
use extdata_core::{
    ConnectorConfig, DbKind, ErrorKind, ExternalSource, PoolConfig, QueryOptions, Scalar,
    Statement, Value, ValueKind,
};
use extdata_mssql::{MsSqlSource, SPEC};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PASSWORD: &str = "Fake-Server-Pw-77";

/// How the fake server behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Logins succeed; ATTENTION is acknowledged.
    Normal,
    /// Every login fails with error 18456.
    RejectLogin,
    /// Logins succeed; ATTENTION is never acknowledged.
    IgnoreAttention,
    /// Connections are accepted and never answered.
    Silent,
    /// Logins are routed to 127.0.0.1 at this port (availability group read-only
    /// routing, Azure gateways).
    RouteTo(u16),
}

/// What the fake server saw.
#[derive(Debug, Default)]
struct Seen {
    /// The text of the last SQL request (UTF-16 decoded, both alignments).
    last_request: std::sync::Mutex<String>,
    connections: AtomicUsize,
    closed: AtomicUsize,
    attentions: AtomicUsize,
    requests: AtomicUsize,
    /// The text of every request that said `KILL`.
    kills: std::sync::Mutex<Vec<String>>,
}

/// The session every fake connection says it is (`@@SPID`, `login_time`).
const SPID: i32 = 57;
const LOGIN_TIME: &str = "2026-12-02T07:55:01.123";

struct FakeServer {
    port: u16,
    seen: Arc<Seen>,
}

impl FakeServer {
    async fn start(mode: Mode) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let seen = Arc::new(Seen::default());
        let counters = seen.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                counters.connections.fetch_add(1, Ordering::SeqCst);
                let counters = counters.clone();
                tokio::spawn(async move {
                    let _ = serve(socket, mode, &counters).await;
                    counters.closed.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        FakeServer { port, seen }
    }

    fn config(&self) -> ConnectorConfig {
        ConnectorConfig::new("fake-mssql", DbKind::MsSql)
            .with_host("127.0.0.1")
            .with_port(self.port)
            .with_username("sa")
            .with_password(PASSWORD)
            // The fake speaks no TLS: nothing is encrypted, not even the login.
            .with_option("encrypt", "not_supported")
            .with_connect_timeout(Duration::from_secs(5))
            .with_pool(PoolConfig {
                max_size: Some(Scalar::Int(1)),
                ..Default::default()
            })
    }

    fn source(&self, config: ConnectorConfig) -> MsSqlSource {
        MsSqlSource::build(config.validate_with(Some(&SPEC)).expect("valid")).expect("build")
    }

    /// A server in `mode` and a source of its [`config`](Self::config).
    async fn with_source(mode: Mode) -> (FakeServer, MsSqlSource) {
        let server = FakeServer::start(mode).await;
        let source = server.source(server.config());
        (server, source)
    }
}

/// One request: its packet type and payload.
async fn read_message(socket: &mut TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
    let mut payload = Vec::new();
    loop {
        let mut header = [0u8; 8];
        socket.read_exact(&mut header).await?;
        let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
        let mut body = vec![0u8; length.saturating_sub(8)];
        socket.read_exact(&mut body).await?;
        payload.extend_from_slice(&body);
        if header[1] & 0x01 != 0 {
            return Ok((header[0], payload));
        }
    }
}

/// Sends a tabular response (packet type 0x04), split into 4 KiB packets.
async fn reply(socket: &mut TcpStream, payload: &[u8]) -> std::io::Result<()> {
    send(socket, payload, true).await
}

/// Sends part of a response; `end` marks its last packet (EOM).
async fn send(socket: &mut TcpStream, payload: &[u8], end: bool) -> std::io::Result<()> {
    let chunks: Vec<&[u8]> = if payload.is_empty() {
        vec![payload]
    } else {
        payload.chunks(4096 - 8).collect()
    };
    let last = chunks.len() - 1;
    for (i, chunk) in chunks.into_iter().enumerate() {
        let mut packet = vec![
            0x04,
            u8::from(end && i == last),
            0,
            0,
            0,
            0,
            (i + 1) as u8,
            0,
        ];
        packet[2..4].copy_from_slice(&((chunk.len() + 8) as u16).to_be_bytes());
        packet.extend_from_slice(chunk);
        socket.write_all(&packet).await?;
    }
    socket.flush().await
}

fn utf16(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// `text` as UTF-16 after its length in bytes (a 2-byte prefix: an NVARCHAR value).
fn nvarchar(text: &str) -> Vec<u8> {
    let bytes = utf16(text);
    let mut out = (bytes.len() as u16).to_le_bytes().to_vec();
    out.extend(bytes);
    out
}

fn b_varchar(text: &str) -> Vec<u8> {
    let mut out = vec![text.encode_utf16().count() as u8];
    out.extend(utf16(text));
    out
}

fn done(status: u16, rows: u64) -> Vec<u8> {
    let mut out = vec![0xFD];
    out.extend(status.to_le_bytes());
    out.extend(0xC1_u16.to_le_bytes());
    out.extend(rows.to_le_bytes());
    out
}

fn error_token(number: i32, class: u8, message: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend(number.to_le_bytes());
    body.push(1); // state
    body.push(class);
    body.extend((message.encode_utf16().count() as u16).to_le_bytes());
    body.extend(utf16(message));
    body.extend(b_varchar("FAKE"));
    body.extend(b_varchar(""));
    body.extend(1_i32.to_le_bytes());
    let mut out = vec![0xAA];
    out.extend((body.len() as u16).to_le_bytes());
    out.extend(body);
    out
}

/// COLMETADATA for `columns` of (name, INTN width 4 or 8, 1 for BITN, or 0 for
/// NVARCHAR(4000)).
fn columns(columns: &[(&str, u8)]) -> Vec<u8> {
    let mut out = vec![0x81];
    out.extend((columns.len() as u16).to_le_bytes());
    for (name, width) in columns {
        out.extend(0_u32.to_le_bytes()); // user type
        out.extend(0x0001_u16.to_le_bytes()); // nullable
        if *width == 0 {
            out.push(0xE7);
            out.extend(8000_u16.to_le_bytes());
            out.extend([0x09, 0x04, 0xD0, 0x00, 0x34]); // collation
        } else if *width == 1 {
            out.extend([0x68, 1]);
        } else {
            out.extend([0x26, *width]);
        }
        out.extend(b_varchar(name));
    }
    out
}

fn int_row(value: i64, width: u8) -> Vec<u8> {
    let mut out = vec![0xD1, width];
    out.extend(&value.to_le_bytes()[..usize::from(width)]);
    out
}

fn text_row(text: &str) -> Vec<u8> {
    let mut out = vec![0xD1];
    out.extend(nvarchar(text));
    out
}

/// The request's SQL, found by decoding the payload as UTF-16 at both alignments.
fn request_text(payload: &[u8]) -> String {
    let decode = |bytes: &[u8]| {
        String::from_utf16_lossy(
            &bytes
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect::<Vec<_>>(),
        )
    };
    format!(
        "{} {}",
        decode(payload),
        decode(payload.get(1..).unwrap_or_default())
    )
}

async fn serve(mut socket: TcpStream, mode: Mode, seen: &Seen) -> std::io::Result<()> {
    if mode == Mode::Silent {
        let mut sink = Vec::new();
        socket.read_to_end(&mut sink).await?;
        return Ok(());
    }
    loop {
        let (kind, payload) = read_message(&mut socket).await?;
        match kind {
            // PRELOGIN: version 16.0, encryption not supported.
            0x12 => {
                let mut out = vec![0x00, 0, 11, 0, 6, 0x01, 0, 17, 0, 1, 0xFF];
                out.extend([16, 0, 0x0F, 0xA0, 0, 0]);
                out.push(0x02);
                reply(&mut socket, &out).await?;
            }
            // LOGIN7
            0x10 => {
                if mode == Mode::RejectLogin {
                    let mut out = error_token(18456, 14, "Login failed for user 'sa'.");
                    out.extend(done(0x0002, 0));
                    reply(&mut socket, &out).await?;
                } else if let Mode::RouteTo(port) = mode {
                    let host = utf16("127.0.0.1");
                    let mut value = vec![0x00];
                    value.extend(port.to_le_bytes());
                    value.extend(9_u16.to_le_bytes());
                    value.extend(host);
                    let mut body = vec![20];
                    body.extend((value.len() as u16).to_le_bytes());
                    body.extend(value);
                    body.extend([0, 0]);
                    let mut out = vec![0xE3];
                    out.extend((body.len() as u16).to_le_bytes());
                    out.extend(body);
                    out.extend(done(0, 0));
                    reply(&mut socket, &out).await?;
                } else {
                    reply(&mut socket, &done(0, 0)).await?;
                }
            }
            // ATTENTION outside a request: acknowledge.
            0x06 => {
                seen.attentions.fetch_add(1, Ordering::SeqCst);
                if mode != Mode::IgnoreAttention {
                    reply(&mut socket, &done(0x0020, 0)).await?;
                }
            }
            // SQL batch (0x01) or RPC (0x03).
            _ => {
                seen.requests.fetch_add(1, Ordering::SeqCst);
                let text = request_text(&payload);
                *seen.last_request.lock().expect("lock") = text.clone();
                if text.contains("WAITFOR") {
                    // Run "forever": only an ATTENTION ends it.
                    attention(&mut socket, mode, seen, "WAITFOR").await?;
                } else if text.contains("sp_describe_first_result_set") {
                    // is_hidden, column_ordinal, name, is_nullable, system_type_name
                    let mut out = columns(&[
                        ("is_hidden", 1),
                        ("column_ordinal", 4),
                        ("name", 0),
                        ("is_nullable", 1),
                        ("system_type_name", 0),
                    ]);
                    for (hidden, ordinal, name, nullable, type_name) in [
                        (0, 1, Some("d"), 1, "decimal(38,10)"),
                        (0, 2, None, 0, "int"),
                        (1, 3, Some("browse_key"), 1, "int"),
                    ] {
                        out.extend([0xD1, 1, hidden]);
                        out.extend([4]);
                        out.extend(i32::to_le_bytes(ordinal));
                        match name {
                            Some(name) => out.extend(nvarchar(name)),
                            None => out.extend(0xFFFF_u16.to_le_bytes()),
                        }
                        out.extend([1, nullable]);
                        out.extend(nvarchar(type_name));
                    }
                    out.extend(done(0x0010, 3));
                    reply(&mut socket, &out).await?;
                } else if text.contains("@@SPID") {
                    let mut out = columns(&[("spid", 4), ("login_time", 0)]);
                    out.extend([0xD1, 4]);
                    out.extend(SPID.to_le_bytes());
                    out.extend(nvarchar(LOGIN_TIME));
                    out.extend(done(0x0010, 1));
                    reply(&mut socket, &out).await?;
                } else if text.contains("KILL") {
                    seen.kills.lock().expect("lock").push(text);
                    reply(&mut socket, &done(0, 0)).await?;
                } else if text.contains("@@VERSION") {
                    let mut out = columns(&[("", 0)]);
                    out.extend(text_row("Microsoft SQL Server 2022 (fake TDS)\n\tline two"));
                    out.extend(done(0x0010, 1));
                    reply(&mut socket, &out).await?;
                } else if text.contains("no_such_table") {
                    let mut out = error_token(208, 16, "Invalid object name 'no_such_table'.");
                    out.extend(done(0x0002, 0));
                    reply(&mut socket, &out).await?;
                } else if text.contains("endless_rows") {
                    // Rows keep coming (the message is not ended) until an ATTENTION;
                    // its acknowledgement ends the message, as SQL Server does.
                    let mut out = columns(&[("n", 8)]);
                    for n in 1..=10 {
                        out.extend(int_row(n, 8));
                    }
                    send(&mut socket, &out, false).await?;
                    attention(&mut socket, mode, seen, "endless_rows").await?;
                } else if text.contains("many_rows") {
                    let mut out = columns(&[("n", 8)]);
                    for n in 1..=2_000 {
                        out.extend(int_row(n, 8));
                    }
                    out.extend(done(0x0010, 2_000));
                    reply(&mut socket, &out).await?;
                } else {
                    // `SELECT 1` (the pool's check) and anything else: one int.
                    let mut out = columns(&[("", 4)]);
                    out.extend(int_row(1, 4));
                    out.extend(done(0x0010, 1));
                    reply(&mut socket, &out).await?;
                }
            }
        }
    }
}

/// Reads the ATTENTION the client must send during `during` and counts it; acknowledges
/// it unless the server ignores attentions.
async fn attention(
    socket: &mut TcpStream,
    mode: Mode,
    seen: &Seen,
    during: &str,
) -> std::io::Result<()> {
    let (kind, _) = read_message(socket).await?;
    assert_eq!(kind, 0x06, "expected an ATTENTION during {during}");
    seen.attentions.fetch_add(1, Ordering::SeqCst);
    if mode != Mode::IgnoreAttention {
        reply(socket, &done(0x0020, 0)).await?;
    }
    Ok(())
}

/// Whether `counter` reaches `expected` within `within` (checked every 20 ms).
async fn eventually_counts(counter: &AtomicUsize, expected: usize, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if counter.load(Ordering::SeqCst) == expected {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    counter.load(Ordering::SeqCst) == expected
}

#[tokio::test]
async fn refused_login_is_an_auth_error_without_the_password() {
    let (_server, source) = FakeServer::with_source(Mode::RejectLogin).await;
    let err = expect_kind(source.ping().await, ErrorKind::Auth, "login refused");
    assert_eq!(err.sql_state(), Some("18456"));
    assert!(!err.is_temporary());
    assert_eq!(err.connector(), Some("fake-mssql"));
    assert!(err.message().contains("Login failed"), "{err}");
    assert_error_has_no_secret(&err, PASSWORD, "login error");
    assert!(!format!("{source:?}").contains(PASSWORD));
}

#[tokio::test]
async fn ping_and_rows_over_a_real_tds_exchange() {
    let (server, source) = FakeServer::with_source(Mode::Normal).await;
    let info = source.ping().await.expect("ping");
    assert_eq!(info.version, "Microsoft SQL Server 2022 (fake TDS)");
    let result = source
        .query(
            &Statement::new("SELECT n FROM many_rows WHERE n > :min").bind("min", 0_i64),
            &QueryOptions::default().with_max_rows(5),
        )
        .await
        .expect("query");
    assert_eq!(result.columns[0].name, "n");
    let values: Vec<Value> = result.rows.iter().map(|r| r.values()[0].clone()).collect();
    assert_eq!(values, (1..=5).map(Value::I64).collect::<Vec<_>>());
    assert!(result.truncated);
    // One connection did all of it: the rows past `max_rows` were read and dropped
    // (they had all arrived), and the next call reused the connection.
    assert_eq!(
        source
            .query(&Statement::new("SELECT 1"), &QueryOptions::default())
            .await
            .expect("select")
            .rows[0]
            .values()[0],
        Value::I32(1)
    );
    assert_eq!(server.seen.connections.load(Ordering::SeqCst), 1);
    assert_eq!(server.seen.attentions.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn server_error_is_a_query_error_and_keeps_the_connection() {
    let (server, source) = FakeServer::with_source(Mode::Normal).await;
    for (call, sql) in [
        (Call::Query, "SELECT * FROM no_such_table"),
        (Call::Execute, "DELETE FROM no_such_table"),
    ] {
        let err = call_error(&source, call, sql, ErrorKind::Query).await;
        assert_eq!(err.sql_state(), Some("208"), "{sql}");
    }
    source.ping().await.expect("still serving");
    assert_eq!(server.seen.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn timeout_sends_attention_and_reuses_the_acknowledged_connection() {
    let (server, source) = FakeServer::with_source(Mode::Normal).await;
    source.ping().await.expect("ping");
    for call in ["query", "execute", "describe"] {
        let statement = Statement::new("WAITFOR DELAY '00:00:30'");
        let options = QueryOptions::default().with_timeout(Duration::from_millis(300));
        let started = Instant::now();
        let result = match call {
            "query" => source.query(&statement, &options).await.map(|_| ()),
            "execute" => source.execute(&statement, &options).await.map(|_| ()),
            _ => source.describe(&statement, &options).await.map(|_| ()),
        };
        let err = expect_kind(result, ErrorKind::Timeout, call);
        assert!(err.is_temporary());
        let elapsed = started.elapsed();
        assert!(
            elapsed < Duration::from_millis(1_300),
            "{call}: {elapsed:?}"
        );
    }
    assert_eq!(server.seen.attentions.load(Ordering::SeqCst), 3);
    source.ping().await.expect("serving after three cancels");
    // Every call ran on the one connection: each cancel was acknowledged.
    assert_eq!(server.seen.connections.load(Ordering::SeqCst), 1);
    assert_eq!(server.seen.closed.load(Ordering::SeqCst), 0);
    assert!(
        server.seen.kills.lock().expect("lock").is_empty(),
        "an acknowledged cancel needs no KILL"
    );
}

#[tokio::test]
async fn unacknowledged_cancel_closes_the_connection_and_kills_its_session() {
    let server = FakeServer::start(Mode::IgnoreAttention).await;
    let source = server.source(server.config().with_pool(PoolConfig {
        max_size: Some(Scalar::Int(2)),
        ..Default::default()
    }));
    source.ping().await.expect("ping");
    let started = Instant::now();
    let wait = "WAITFOR DELAY '00:00:30'";
    timed_out(&source, Call::Query, wait, Duration::from_millis(300)).await;
    // The caller waits at most a second for the acknowledgement.
    assert_elapsed_below(started, Duration::from_millis(1_600), "the timed-out query");
    // A second connection serves meanwhile; the silent one is closed, not pooled.
    source.ping().await.expect("ping on another connection");
    assert_eq!(server.seen.connections.load(Ordering::SeqCst), 2);
    // Then its session is ended from a third, fresh connection, which is closed too.
    assert!(
        eventually_counts(&server.seen.closed, 2, Duration::from_secs(8)).await,
        "the connection whose cancel was not acknowledged, and the one that sent KILL, \
         were not closed"
    );
    assert_eq!(server.seen.connections.load(Ordering::SeqCst), 3);
    let kills = server.seen.kills.lock().expect("lock").clone();
    assert_eq!(kills.len(), 1, "{kills:?}");
    assert!(kills[0].contains(&format!("KILL {SPID}")), "{}", kills[0]);
    assert!(
        kills[0].contains(LOGIN_TIME),
        "KILL is guarded by the session's login time: {}",
        kills[0]
    );
    source.ping().await.expect("still serving");
    assert_eq!(server.seen.connections.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn dropped_stream_is_cancelled_and_the_connection_reused() {
    let (server, source) = FakeServer::with_source(Mode::Normal).await;
    let mut stream = source
        .stream(
            &Statement::new("SELECT n FROM endless_rows"),
            &QueryOptions::default(),
        )
        .await
        .expect("stream");
    for expected in 1..=3 {
        let row = stream.next().await.expect("a row").expect("no error");
        assert_eq!(row.values()[0], Value::I64(expected));
    }
    drop(stream);
    assert!(
        eventually_counts(&server.seen.attentions, 1, Duration::from_secs(3)).await,
        "no ATTENTION after the stream was dropped"
    );
    source
        .ping()
        .await
        .expect("serving after the dropped stream");
    assert_eq!(server.seen.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn closed_source_refuses_calls_and_closes_the_pool() {
    let (_server, source) = FakeServer::with_source(Mode::Normal).await;
    source.ping().await.expect("ping");
    source.close().await;
    expect_kind(source.ping().await, ErrorKind::Closed, "ping after close");
    expect_kind(
        source
            .query(&Statement::new("SELECT 1"), &QueryOptions::default())
            .await,
        ErrorKind::Closed,
        "query after close",
    );
}

#[tokio::test]
async fn a_routed_login_follows_the_redirect_once() {
    let replica = FakeServer::start(Mode::Normal).await;
    let listener = FakeServer::start(Mode::RouteTo(replica.port)).await;
    let source = listener.source(listener.config().with_read_only(true));
    let info = source.ping().await.expect("ping through the redirect");
    assert!(info.version.contains("fake TDS"));
    assert_eq!(listener.seen.connections.load(Ordering::SeqCst), 1);
    assert_eq!(replica.seen.connections.load(Ordering::SeqCst), 1);
    assert_eq!(listener.seen.requests.load(Ordering::SeqCst), 0);

    // A redirect to a server that redirects again is not followed.
    let third = FakeServer::start(Mode::Normal).await;
    let second = FakeServer::start(Mode::RouteTo(third.port)).await;
    let first = FakeServer::start(Mode::RouteTo(second.port)).await;
    let err = expect_kind(
        first.source(first.config()).ping().await,
        ErrorKind::Connect,
        "routed twice",
    );
    assert!(err.message().contains("more than once"), "{err}");
    assert_eq!(third.seen.connections.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_server_that_never_answers_is_a_timeout_within_connect_timeout() {
    let server = FakeServer::start(Mode::Silent).await;
    let source = server.source(
        server
            .config()
            .with_connect_timeout(Duration::from_millis(500)),
    );
    let started = Instant::now();
    let err = expect_kind(source.ping().await, ErrorKind::Timeout, "silent server");
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_millis(1_500), "{elapsed:?}");
    assert!(err.is_temporary());
    assert_eq!(err.connector(), Some("fake-mssql"));
}

#[tokio::test]
async fn udp_protocol_asks_the_browser_then_connects_over_tcp() {
    let server = FakeServer::start(Mode::Normal).await;
    // A fake SQL Server Browser that knows one instance, on the fake server's port.
    let browser = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let browser_port = browser.local_addr().expect("addr").port();
    let tds_port = server.port;
    let answered = tokio::spawn(async move {
        let mut buffer = [0u8; 256];
        let (len, from) = browser.recv_from(&mut buffer).await.expect("request");
        let text = format!(
            "ServerName;FAKE;InstanceName;SQLEXPRESS;IsClustered;No;Version;16.0.1000.6;tcp;{tds_port};;"
        );
        let mut reply = vec![0x05];
        reply.extend((text.len() as u16).to_le_bytes());
        reply.extend(text.as_bytes());
        browser.send_to(&reply, from).await.expect("reply");
        buffer[..len].to_vec()
    });
    let mut config = server
        .config()
        .with_protocol(extdata_core::Protocol::Udp)
        .with_options(
            format!("encrypt=not_supported&instance=SQLEXPRESS&browser_port={browser_port}")
                .as_str(),
        );
    config.port = None;
    let source = server.source(config);
    assert!(format!("{source:?}").contains("SQL Server Browser on UDP"));
    source.ping().await.expect("ping through the Browser");
    assert_eq!(answered.await.expect("browser"), b"\x04SQLEXPRESS\x00");
    assert_eq!(server.seen.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn describe_reads_sp_describe_first_result_set() {
    let (server, source) = FakeServer::with_source(Mode::Normal).await;
    let columns = source
        .describe(
            &Statement::new("SELECT CAST(1 AS decimal(38,10)) AS d, :p + 1").bind("p", 5_i64),
            &QueryOptions::default(),
        )
        .await
        .expect("describe");
    let seen: Vec<(&str, &str, ValueKind, Option<bool>)> = columns
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                c.database_type.as_str(),
                c.value_kind,
                c.nullable,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("d", "decimal(38,10)", ValueKind::Decimal, Some(true)),
            ("", "int", ValueKind::I32, Some(false)),
        ]
    );
    // The statement and its parameter declarations went as parameters, not spliced.
    let request = server.seen.last_request.lock().expect("lock").clone();
    assert!(
        request.contains("SELECT CAST(1 AS decimal(38,10)) AS d, @P1 + 1"),
        "{request}"
    );
    assert!(request.contains("@P1 bigint"), "{request}");
}
