//! The client side of Thrift's SASL negotiation (as HiveServer2 speaks it).
//!
//! Each negotiation message is a 1-byte status, a 4-byte big-endian length and the
//! payload. The client sends `START` with the mechanism name, then its initial response
//! (`OK`, or `COMPLETE` when the mechanism needs nothing more); the server answers `OK`
//! with a challenge, `COMPLETE` when it is satisfied, or `BAD`/`ERROR` with a reason.

use std::fmt;
use std::time::Duration;

use extdata_core::driver::duration_text;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Negotiation status byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Start = 1,
    Ok = 2,
    Bad = 3,
    Error = 4,
    Complete = 5,
}

impl Status {
    fn from_byte(b: u8) -> Option<Status> {
        Some(match b {
            1 => Status::Start,
            2 => Status::Ok,
            3 => Status::Bad,
            4 => Status::Error,
            5 => Status::Complete,
            _ => return None,
        })
    }
}

/// Why the negotiation failed.
#[derive(Debug)]
pub(crate) enum SaslError {
    /// The server refused: `BAD` or `ERROR` with its reason.
    Refused(String),
    /// The server closed the connection, or sent something that is not a SASL message
    /// (typically: it does not speak SASL at all).
    NotSasl(String),
    /// The mechanism failed on our side (e.g. no Kerberos ticket).
    Mechanism(String),
    /// Socket error.
    Io(std::io::Error),
}

impl fmt::Display for SaslError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SaslError::Refused(why) => write!(f, "the server refused the login: {why}"),
            SaslError::NotSasl(why) => write!(f, "no SASL answer from the server: {why}"),
            SaslError::Mechanism(why) => write!(f, "{why}"),
            SaslError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SaslError {}

/// A SASL mechanism, client side.
pub(crate) trait Mechanism: Send {
    /// The name sent in `START` (`PLAIN`, `GSSAPI`).
    fn name(&self) -> &'static str;
    /// The first response, sent right after `START`.
    fn initial_response(&mut self) -> Result<Vec<u8>, String>;
    /// The answer to a server challenge.
    fn step(&mut self, challenge: &[u8]) -> Result<Vec<u8>, String>;
    /// Whether the mechanism has nothing more to send.
    fn is_complete(&self) -> bool;
}

/// PLAIN (RFC 4616): `authzid NUL authcid NUL password`, with an empty authzid.
pub(crate) struct Plain {
    username: String,
    password: String,
    sent: bool,
}

impl Plain {
    pub(crate) fn new(username: &str, password: &str) -> Self {
        Plain {
            username: username.to_owned(),
            password: password.to_owned(),
            sent: false,
        }
    }
}

extdata_core::debug_fields!(Plain |plain| { username, .. });

impl Mechanism for Plain {
    fn name(&self) -> &'static str {
        "PLAIN"
    }

    fn initial_response(&mut self) -> Result<Vec<u8>, String> {
        if self.username.contains('\0') || self.password.contains('\0') {
            return Err("the user name and password must not contain NUL characters".into());
        }
        self.sent = true;
        let mut out = Vec::with_capacity(self.username.len() + self.password.len() + 2);
        out.push(0);
        out.extend_from_slice(self.username.as_bytes());
        out.push(0);
        out.extend_from_slice(self.password.as_bytes());
        Ok(out)
    }

    fn step(&mut self, _challenge: &[u8]) -> Result<Vec<u8>, String> {
        Err("PLAIN expects no challenge from the server".into())
    }

    fn is_complete(&self) -> bool {
        self.sent
    }
}

// The longest negotiation message we accept (Kerberos tokens are a few KiB).
const MAX_SASL_PAYLOAD: usize = 1 << 20;

async fn send<S: AsyncWrite + Unpin>(
    stream: &mut S,
    status: Status,
    payload: &[u8],
) -> Result<(), SaslError> {
    let mut message = Vec::with_capacity(5 + payload.len());
    message.push(status as u8);
    let len = u32::try_from(payload.len())
        .map_err(|_| SaslError::Mechanism("SASL payload too large".into()))?;
    message.extend_from_slice(&len.to_be_bytes());
    message.extend_from_slice(payload);
    stream.write_all(&message).await.map_err(SaslError::Io)
}

async fn receive<S: AsyncRead + Unpin>(stream: &mut S) -> Result<(Status, Vec<u8>), SaslError> {
    let mut header = [0u8; 5];
    let mut got = 0;
    while got < header.len() {
        let n = stream
            .read(&mut header[got..])
            .await
            .map_err(SaslError::Io)?;
        if n == 0 {
            return Err(SaslError::NotSasl(if got == 0 {
                "the server closed the connection".into()
            } else {
                format!("the server closed the connection after {got} bytes")
            }));
        }
        got += n;
    }
    let status = Status::from_byte(header[0]).ok_or_else(|| {
        SaslError::NotSasl(format!(
            "the first byte of the answer is {:#04x}, not a SASL status",
            header[0]
        ))
    })?;
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if len > MAX_SASL_PAYLOAD {
        return Err(SaslError::NotSasl(format!(
            "a SASL message of {len} bytes is implausible"
        )));
    }
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            SaslError::NotSasl("the server closed the connection mid-message".into())
        } else {
            SaslError::Io(e)
        }
    })?;
    Ok((status, payload))
}

/// Sends the client's next step, `COMPLETE` when its mechanism is done, and flushes.
async fn send_step<S>(stream: &mut S, complete: bool, payload: &[u8]) -> Result<(), SaslError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let status = if complete {
        Status::Complete
    } else {
        Status::Ok
    };
    send(stream, status, payload).await?;
    stream.flush().await.map_err(SaslError::Io)
}

/// Runs the negotiation on `stream` with `mechanism`; afterwards thrift messages go in
/// 4-byte length frames. `rounds` bounds the number of challenges.
pub(crate) async fn negotiate<S, M>(stream: &mut S, mechanism: &mut M) -> Result<(), SaslError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    M: Mechanism + ?Sized,
{
    const MAX_ROUNDS: usize = 16;
    send(stream, Status::Start, mechanism.name().as_bytes()).await?;
    let initial = mechanism.initial_response().map_err(SaslError::Mechanism)?;
    send_step(stream, mechanism.is_complete(), &initial).await?;
    for _ in 0..MAX_ROUNDS {
        let (status, payload) = receive(stream).await?;
        match status {
            Status::Complete => {
                // Mechanisms whose last step is carried by COMPLETE (none of ours send
                // data there today) would consume it here.
                return Ok(());
            }
            Status::Ok => {
                let answer = mechanism.step(&payload).map_err(SaslError::Mechanism)?;
                send_step(stream, mechanism.is_complete(), &answer).await?;
            }
            Status::Bad | Status::Error => {
                return Err(SaslError::Refused(
                    String::from_utf8_lossy(&payload).into_owned(),
                ));
            }
            Status::Start => {
                return Err(SaslError::NotSasl(
                    "the server sent START, which only a client may send".into(),
                ));
            }
        }
    }
    Err(SaslError::Mechanism(format!(
        "the SASL negotiation did not finish within {MAX_ROUNDS} rounds"
    )))
}

/// How long to wait for a SASL answer before concluding the server does not speak SASL
/// (a NOSASL server reads our `START` as the start of a huge thrift message and waits).
pub(crate) fn silent_server_hint(after: Duration) -> String {
    format!(
        "the server did not answer the SASL handshake within {}",
        duration_text(after)
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A scripted peer's task: it returns the (status, payload) messages it read.
    pub(crate) type Peer = tokio::task::JoinHandle<Vec<(Status, Vec<u8>)>>;

    /// The client's end of a connection to a [`scripted_peer`] that plays `script`, and
    /// the peer's task, which returns what the client sent.
    pub(crate) fn scripted(script: Vec<Step>) -> (tokio::io::DuplexStream, Peer) {
        let (client, server) = tokio::io::duplex(4096);
        (client, tokio::spawn(scripted_peer(server, script)))
    }

    /// A peer that plays `script`: reads the client's (status, payload) messages and
    /// answers them.
    async fn scripted_peer(
        mut server: tokio::io::DuplexStream,
        script: Vec<Step>,
    ) -> Vec<(Status, Vec<u8>)> {
        let mut seen = Vec::new();
        for step in script {
            match step {
                Step::Expect => {
                    let (status, payload) = receive(&mut server).await.unwrap();
                    seen.push((status, payload));
                }
                Step::Send(status, payload) => {
                    send(&mut server, status, &payload).await.unwrap();
                    server.flush().await.unwrap();
                }
                Step::Raw(bytes) => {
                    server.write_all(&bytes).await.unwrap();
                }
                Step::Close => return seen,
            }
        }
        seen
    }

    /// One step of a scripted SASL server.
    pub(crate) enum Step {
        Expect,
        Send(Status, Vec<u8>),
        Raw(Vec<u8>),
        Close,
    }

    #[tokio::test]
    async fn plain_sends_start_and_credentials_and_accepts_complete() {
        let (mut client, peer) = scripted(vec![
            Step::Expect,
            Step::Expect,
            Step::Send(Status::Complete, Vec::new()),
        ]);
        let mut plain = Plain::new("ann", "pw");
        negotiate(&mut client, &mut plain).await.unwrap();
        let seen = peer.await.unwrap();
        assert_eq!(seen[0], (Status::Start, b"PLAIN".to_vec()));
        assert_eq!(seen[1], (Status::Complete, b"\0ann\0pw".to_vec()));
    }

    #[tokio::test]
    async fn refusal_carries_the_server_reason() {
        let (mut client, _peer) = scripted(vec![
            Step::Expect,
            Step::Expect,
            Step::Send(Status::Bad, b"Error validating the login".to_vec()),
        ]);
        let err = negotiate(&mut client, &mut Plain::new("ann", "pw"))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, SaslError::Refused(why) if why.contains("validating")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_closed_socket_or_thrift_bytes_are_not_sasl() {
        let (mut client, _peer) = scripted(vec![Step::Expect, Step::Close]);
        let err = negotiate(&mut client, &mut Plain::new("a", "b"))
            .await
            .unwrap_err();
        assert!(matches!(err, SaslError::NotSasl(_)), "{err}");

        let (mut client, _peer) = scripted(vec![
            Step::Expect,
            Step::Raw(vec![0x80, 1, 0, 3, 0, 0, 0, 0]),
        ]);
        let err = negotiate(&mut client, &mut Plain::new("a", "b"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, SaslError::NotSasl(ref why) if why.contains("0x80")),
            "{err}"
        );
    }

    #[test]
    fn plain_refuses_nul_in_credentials() {
        assert!(Plain::new("a\0b", "pw").initial_response().is_err());
        assert!(Plain::new("a", "p\0w").initial_response().is_err());
    }

    #[test]
    fn plain_debug_has_no_password() {
        let text = format!("{:?}", Plain::new("ann", "hunter2-secret"));
        assert!(!text.contains("hunter2"), "{text}");
    }
}
