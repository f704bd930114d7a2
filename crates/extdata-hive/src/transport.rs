//! The async Thrift transport: messages are encoded with the `thrift` crate's binary
//! protocol into memory, and framed and moved with tokio.
//!
//! Framing per authentication mode (checked against HiveServer2 and Spark's Thrift
//! server):
//! - `NOSASL`: a raw socket. Messages follow each other without any length prefix, so
//!   the end of a reply is found by walking its binary-protocol structure
//!   ([`message_len`]).
//! - SASL (`PLAIN`, `GSSAPI`): after the SASL negotiation every message travels in a
//!   frame: a 4-byte big-endian length, then the bytes. Replies are still checked with
//!   [`message_len`], which also validates every length before the thrift decoder
//!   allocates for it.

use std::fmt;
use std::io;

use hive::service::rpc::thrift::TStatus;
use thrift::protocol::{
    TBinaryInputProtocol, TBinaryOutputProtocol, TFieldIdentifier, TInputProtocol,
    TMessageIdentifier, TMessageType, TOutputProtocol, TSerializable, TStructIdentifier, TType,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The byte stream under the Thrift transport: TCP, or TLS over TCP.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// How thrift messages are delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// NOSASL: messages back to back.
    Raw,
    /// After SASL: each message in a 4-byte length frame.
    Sasl,
}

/// What went wrong below the HiveServer2 calls.
#[derive(Debug)]
pub(crate) enum TransportError {
    /// Socket error.
    Io(io::Error),
    /// The server closed the connection. `partial` holds what it sent of a reply.
    Closed { partial: Vec<u8> },
    /// The bytes are not a valid thrift message (or exceed the size bound).
    Protocol(String),
    /// The server answered with a thrift application exception.
    Application(String),
    /// The HTTP transport's request was answered with bytes that are not HTTP.
    NotHttp(String),
    /// The HTTP transport could not make its login, or the server refused it (SPNEGO).
    Auth(String),
    /// The HTTP transport's request was answered with a non-success status.
    Http {
        /// The HTTP status code.
        status: u16,
        /// The start of the server's answer.
        detail: String,
    },
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportError::Io(e) => write!(f, "{e}"),
            TransportError::Closed { .. } => f.write_str("the server closed the connection"),
            TransportError::Protocol(why) => write!(f, "invalid thrift message: {why}"),
            TransportError::Application(why) => write!(f, "server exception: {why}"),
            TransportError::NotHttp(why) => write!(f, "the server's answer is not HTTP ({why})"),
            TransportError::Auth(why) => f.write_str(why),
            TransportError::Http { status, detail } => {
                write!(f, "the server answered HTTP {status}")?;
                if !detail.trim().is_empty() {
                    write!(f, " ({})", detail.trim())?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for TransportError {}

impl From<io::Error> for TransportError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            TransportError::Closed {
                partial: Vec::new(),
            }
        } else {
            TransportError::Io(e)
        }
    }
}

impl From<thrift::Error> for TransportError {
    fn from(e: thrift::Error) -> Self {
        match e {
            thrift::Error::Transport(t) => TransportError::Protocol(t.message),
            thrift::Error::Protocol(p) => TransportError::Protocol(p.message),
            thrift::Error::Application(a) => TransportError::Application(a.message),
            thrift::Error::User(u) => TransportError::Protocol(u.to_string()),
        }
    }
}

/// Largest reply accepted (a FetchResults batch of wide rows stays far below).
pub(crate) const DEFAULT_MAX_MESSAGE: usize = 512 * 1024 * 1024;
const MAX_DEPTH: usize = 64;

/// The length of the complete binary-protocol message at the start of `buf`,
/// `Ok(None)` when more bytes are needed, or an error when the bytes cannot be one.
///
/// Every length on the way is checked (not negative, not beyond `max`), so the thrift
/// decoder that later reads the same bytes never allocates for a bogus size.
pub(crate) fn message_len(buf: &[u8], max: usize) -> Result<Option<usize>, String> {
    let mut cursor = Cursor { buf, pos: 0, max };
    let result = (|| {
        let first = cursor.i32()?;
        if first < 0 {
            // Strict header: version | type, name, sequence id.
            if (first as u32) & 0xffff_0000 != 0x8001_0000 {
                return Err(Scan::Bad(format!("bad protocol version {first:#x}")));
            }
            let name = cursor.len()?;
            cursor.skip(name)?;
            cursor.skip(4)?;
        } else {
            // Old header: name, type, sequence id.
            cursor.check_len(first)?;
            cursor.skip(first as usize)?;
            cursor.skip(1 + 4)?;
        }
        // 12: a struct (the thrift crate's `TType` discriminants are not the wire codes).
        cursor.skip_value(12, 0)?;
        Ok(cursor.pos)
    })();
    match result {
        Ok(len) => Ok(Some(len)),
        Err(Scan::More) => Ok(None),
        Err(Scan::Bad(why)) => Err(why),
    }
}

enum Scan {
    More,
    Bad(String),
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    max: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], Scan> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(Scan::Bad("overflow".into()))?;
        if end > self.max {
            return Err(Scan::Bad(format!(
                "message larger than the limit of {} bytes",
                self.max
            )));
        }
        if end > self.buf.len() {
            return Err(Scan::More);
        }
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn skip(&mut self, n: usize) -> Result<(), Scan> {
        self.take(n).map(|_| ())
    }

    fn u8(&mut self) -> Result<u8, Scan> {
        Ok(self.take(1)?[0])
    }

    fn i32(&mut self) -> Result<i32, Scan> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn check_len(&self, n: i32) -> Result<usize, Scan> {
        if n < 0 {
            return Err(Scan::Bad(format!("negative length {n}")));
        }
        let n = n as usize;
        if n > self.max {
            return Err(Scan::Bad(format!("length {n} beyond the limit")));
        }
        Ok(n)
    }

    fn len(&mut self) -> Result<usize, Scan> {
        let n = self.i32()?;
        self.check_len(n)
    }

    fn skip_value(&mut self, ttype: u8, depth: usize) -> Result<(), Scan> {
        if depth > MAX_DEPTH {
            return Err(Scan::Bad("nested too deeply".into()));
        }
        match ttype {
            // bool, i8
            2 | 3 => self.skip(1),
            // double, i64
            4 | 10 => self.skip(8),
            6 => self.skip(2),
            8 => self.skip(4),
            // string / binary
            11 => {
                let n = self.len()?;
                self.skip(n)
            }
            12 => loop {
                let field_type = self.u8()?;
                if field_type == 0 {
                    return Ok(());
                }
                self.skip(2)?;
                self.skip_value(field_type, depth + 1)?;
            },
            13 => {
                let key = self.u8()?;
                let value = self.u8()?;
                let n = self.len()?;
                for _ in 0..n {
                    self.skip_value(key, depth + 1)?;
                    self.skip_value(value, depth + 1)?;
                }
                Ok(())
            }
            14 | 15 => {
                let element = self.u8()?;
                let n = self.len()?;
                match fixed_size(element) {
                    Some(size) => self.skip(n.checked_mul(size).ok_or(Scan::More)?),
                    None => {
                        for _ in 0..n {
                            self.skip_value(element, depth + 1)?;
                        }
                        Ok(())
                    }
                }
            }
            16 => self.skip(16),
            other => Err(Scan::Bad(format!("unknown field type {other}"))),
        }
    }
}

fn fixed_size(ttype: u8) -> Option<usize> {
    match ttype {
        2 | 3 => Some(1),
        6 => Some(2),
        8 => Some(4),
        4 | 10 => Some(8),
        16 => Some(16),
        _ => None,
    }
}

/// Encodes a call of `method` with `request` as its only argument (field 1, as every
/// TCLIService method takes).
pub(crate) fn encode_call<Req: TSerializable>(
    method: &str,
    sequence: i32,
    request: &Req,
) -> Result<Vec<u8>, TransportError> {
    let mut out = Vec::with_capacity(256);
    {
        let mut protocol = TBinaryOutputProtocol::new(&mut out, true);
        protocol.write_message_begin(&TMessageIdentifier::new(
            method,
            TMessageType::Call,
            sequence,
        ))?;
        protocol.write_struct_begin(&TStructIdentifier::new(format!("{method}_args")))?;
        protocol.write_field_begin(&TFieldIdentifier::new("req", TType::Struct, 1))?;
        request.write_to_out_protocol(&mut protocol)?;
        protocol.write_field_end()?;
        protocol.write_field_stop()?;
        protocol.write_struct_end()?;
        protocol.write_message_end()?;
    }
    Ok(out)
}

/// A connection that carries thrift calls: the binary transport's socket
/// ([`Connection`]) or the HTTP transport's link (`http::HttpLink`). Each moves encoded
/// messages its own way; numbering, encoding and decoding are [`call`](Exchange::call)'s.
pub(crate) trait Exchange: Send {
    /// The connection's sequence number of its last call.
    fn sequence(&mut self) -> &mut i32;

    /// Sends one encoded call and returns the bytes of one whole reply message.
    fn exchange(
        &mut self,
        message: Vec<u8>,
    ) -> impl Future<Output = Result<Vec<u8>, TransportError>> + Send;

    /// Sends `request` to `method` and reads its reply. Not cancel-safe: when the
    /// future is dropped midway, the connection must be discarded.
    fn call<Req, Resp>(
        &mut self,
        method: &str,
        request: &Req,
    ) -> impl Future<Output = Result<Resp, TransportError>> + Send
    where
        Req: TSerializable + Sync,
        Resp: TSerializable,
    {
        async move {
            let sequence = self.sequence().wrapping_add(1);
            *self.sequence() = sequence;
            let message = encode_call(method, sequence, request)?;
            let reply = self.exchange(message).await?;
            decode_reply(&reply, method, sequence)
        }
    }
}

/// Decodes the reply to `method`: its `success` field (id 0).
pub(crate) fn decode_reply<Resp: TSerializable>(
    bytes: &[u8],
    method: &str,
    sequence: i32,
) -> Result<Resp, TransportError> {
    let mut protocol = TBinaryInputProtocol::new(bytes, false);
    let header = protocol.read_message_begin()?;
    if header.message_type == TMessageType::Exception {
        let error = thrift::Error::read_application_error_from_in_protocol(&mut protocol)?;
        return Err(TransportError::Application(error.message));
    }
    if header.message_type != TMessageType::Reply {
        return Err(TransportError::Protocol(format!(
            "expected a reply, got {:?}",
            header.message_type
        )));
    }
    if header.name != method || header.sequence_number != sequence {
        return Err(TransportError::Protocol(format!(
            "reply to `{}` #{} while waiting for `{method}` #{sequence}",
            header.name, header.sequence_number
        )));
    }
    protocol.read_struct_begin()?;
    let mut success = None;
    loop {
        let field = protocol.read_field_begin()?;
        if field.field_type == TType::Stop {
            break;
        }
        if field.id == Some(0) && field.field_type == TType::Struct {
            success = Some(Resp::read_from_in_protocol(&mut protocol)?);
        } else {
            protocol.skip(field.field_type)?;
        }
        protocol.read_field_end()?;
    }
    protocol.read_struct_end()?;
    success.ok_or_else(|| TransportError::Protocol(format!("`{method}` reply without a result")))
}

/// One TCP connection speaking thrift messages.
pub(crate) struct Connection<S> {
    stream: S,
    framing: Framing,
    sequence: i32,
    buffer: Vec<u8>,
    max_message: usize,
}

extdata_core::debug_fields!(Connection<S> |connection| { framing, sequence, .. });

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Exchange for Connection<S> {
    fn sequence(&mut self) -> &mut i32 {
        &mut self.sequence
    }

    async fn exchange(&mut self, message: Vec<u8>) -> Result<Vec<u8>, TransportError> {
        self.send(&message).await?;
        self.receive().await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Connection<S> {
    /// Wraps a stream whose SASL negotiation (if any) is done.
    pub(crate) fn new(stream: S, framing: Framing, max_message: usize) -> Self {
        Connection {
            stream,
            framing,
            sequence: 0,
            buffer: Vec::new(),
            max_message,
        }
    }

    async fn send(&mut self, message: &[u8]) -> Result<(), TransportError> {
        if self.framing == Framing::Sasl {
            let len = u32::try_from(message.len())
                .map_err(|_| TransportError::Protocol("request too large".into()))?;
            self.stream.write_all(&len.to_be_bytes()).await?;
        }
        self.stream.write_all(message).await?;
        self.stream.flush().await?;
        Ok(())
    }

    async fn receive(&mut self) -> Result<Vec<u8>, TransportError> {
        loop {
            if !self.buffer.is_empty()
                && let Some(len) =
                    message_len(&self.buffer, self.max_message).map_err(TransportError::Protocol)?
            {
                let rest = self.buffer.split_off(len);
                return Ok(std::mem::replace(&mut self.buffer, rest));
            }
            match self.framing {
                Framing::Raw => {
                    // Straight into the buffer: a chunk array here would sit in every
                    // call's future (64 KiB, copied along the stack of nested futures
                    // in debug builds).
                    self.buffer.reserve(64 * 1024);
                    let n = self.stream.read_buf(&mut self.buffer).await?;
                    if n == 0 {
                        return Err(TransportError::Closed {
                            partial: std::mem::take(&mut self.buffer),
                        });
                    }
                }
                Framing::Sasl => {
                    let mut header = [0u8; 4];
                    if let Err(e) = self.stream.read_exact(&mut header).await {
                        return Err(match e.kind() {
                            io::ErrorKind::UnexpectedEof => TransportError::Closed {
                                partial: std::mem::take(&mut self.buffer),
                            },
                            _ => TransportError::Io(e),
                        });
                    }
                    let len = u32::from_be_bytes(header) as usize;
                    if self.buffer.len().saturating_add(len) > self.max_message {
                        return Err(TransportError::Protocol(format!(
                            "frame of {len} bytes beyond the limit of {} bytes",
                            self.max_message
                        )));
                    }
                    let start = self.buffer.len();
                    self.buffer.resize(start + len, 0);
                    self.stream.read_exact(&mut self.buffer[start..]).await?;
                }
            }
        }
    }

    /// The stream, e.g. to shut it down.
    pub(crate) fn stream_mut(&mut self) -> &mut S {
        &mut self.stream
    }
}

/// Whether `status` is a success (`SUCCESS` or `SUCCESS_WITH_INFO`).
pub(crate) fn status_ok(status: &TStatus) -> bool {
    matches!(status.status_code.0, 0 | 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hive::service::rpc::thrift::{
        TCloseSessionReq, TCloseSessionResp, THandleIdentifier, TSessionHandle, TStatusCode,
    };

    fn reply_bytes(method: &str, sequence: i32, response: &TCloseSessionResp) -> Vec<u8> {
        let mut out = Vec::new();
        let mut p = TBinaryOutputProtocol::new(&mut out, true);
        p.write_message_begin(&TMessageIdentifier::new(
            method,
            TMessageType::Reply,
            sequence,
        ))
        .unwrap();
        p.write_struct_begin(&TStructIdentifier::new("r")).unwrap();
        p.write_field_begin(&TFieldIdentifier::new("success", TType::Struct, 0))
            .unwrap();
        response.write_to_out_protocol(&mut p).unwrap();
        p.write_field_end().unwrap();
        p.write_field_stop().unwrap();
        p.write_struct_end().unwrap();
        p.write_message_end().unwrap();
        out
    }

    fn ok_response() -> TCloseSessionResp {
        TCloseSessionResp::new(hive::service::rpc::thrift::TStatus::new(
            TStatusCode::SUCCESS_STATUS,
            None,
            Some("00000".to_owned()),
            None,
            Some("fine".to_owned()),
        ))
    }

    #[test]
    fn message_len_finds_the_end_of_every_prefix() {
        let bytes = reply_bytes("CloseSession", 7, &ok_response());
        for cut in 0..bytes.len() {
            assert_eq!(
                message_len(&bytes[..cut], 1 << 20),
                Ok(None),
                "cut at {cut}"
            );
        }
        let mut longer = bytes.clone();
        longer.extend_from_slice(b"next");
        assert_eq!(message_len(&longer, 1 << 20), Ok(Some(bytes.len())));
    }

    #[test]
    fn message_len_rejects_bad_lengths_and_sizes() {
        let mut bytes = reply_bytes("CloseSession", 7, &ok_response());
        assert!(message_len(&bytes, 10).is_err(), "beyond the limit");
        // The name length (bytes 4..8) made negative.
        bytes[4] = 0xff;
        assert!(message_len(&bytes, 1 << 20).is_err());
        // A SASL error frame read as an old-style header: a 64 MiB name.
        let sasl = b"\x04\x00\x00\x00\x13Invalid status -128";
        assert!(message_len(sasl, 1 << 20).is_err());
        assert_eq!(message_len(sasl, 1 << 30), Ok(None));
    }

    #[test]
    fn calls_round_trip_through_the_codec() {
        let request = TCloseSessionReq::new(TSessionHandle::new(THandleIdentifier::new(
            vec![1; 16],
            vec![2; 16],
        )));
        let bytes = encode_call("CloseSession", 3, &request).unwrap();
        assert_eq!(message_len(&bytes, 1 << 20), Ok(Some(bytes.len())));
        let reply = reply_bytes("CloseSession", 3, &ok_response());
        let decoded: TCloseSessionResp = decode_reply(&reply, "CloseSession", 3).unwrap();
        assert_eq!(decoded, ok_response());
        let wrong: Result<TCloseSessionResp, _> = decode_reply(&reply, "CloseSession", 4);
        assert!(matches!(wrong, Err(TransportError::Protocol(_))));
    }

    #[tokio::test]
    async fn framed_and_raw_connections_exchange_messages() {
        for framing in [Framing::Raw, Framing::Sasl] {
            let (client, mut server) = tokio::io::duplex(1 << 16);
            let mut connection = Connection::new(client, framing, 1 << 20);
            let peer = tokio::spawn(async move {
                let mut head = [0u8; 4];
                if framing == Framing::Sasl {
                    server.read_exact(&mut head).await.unwrap();
                }
                let mut request = vec![0u8; 512];
                let n = server.read(&mut request).await.unwrap();
                assert!(n > 0);
                let reply = reply_bytes("CloseSession", 1, &ok_response());
                // Split the reply to show that partial reads are reassembled.
                let (a, b) = reply.split_at(reply.len() / 2);
                if framing == Framing::Sasl {
                    for part in [a, b] {
                        server
                            .write_all(&(part.len() as u32).to_be_bytes())
                            .await
                            .unwrap();
                        server.write_all(part).await.unwrap();
                    }
                } else {
                    server.write_all(a).await.unwrap();
                    server.flush().await.unwrap();
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    server.write_all(b).await.unwrap();
                }
                server
            });
            let request = TCloseSessionReq::new(TSessionHandle::new(THandleIdentifier::new(
                vec![1; 16],
                vec![2; 16],
            )));
            let response: TCloseSessionResp =
                connection.call("CloseSession", &request).await.unwrap();
            assert_eq!(response, ok_response(), "{framing:?}");
            drop(peer.await.unwrap());
        }
    }
}
