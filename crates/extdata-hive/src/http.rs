//! Thrift over HTTP (`hive.server2.transport.mode=http`): each call is one `POST` of the
//! binary-protocol message to the server's path (`http_path`, default `cliservice`) on
//! a kept-alive HTTP/1.1 connection (hyper, over the same TCP or TLS stream as the
//! binary transport). The user name and password travel as HTTP Basic authentication
//! on every request (that is how HiveServer2 checks NONE/LDAP/CUSTOM logins over HTTP);
//! the cookies the server sets (`hive.server2.auth`, a session cookie behind a gateway)
//! are sent back on the following requests.

use std::fmt;
use std::io;

use base64::Engine as _;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{self, HeaderValue};
use hyper_util::rt::TokioIo;

use crate::transport::{Exchange, Io, TransportError, message_len};

/// One HTTP/1.1 connection carrying thrift calls.
pub(crate) struct HttpLink {
    sender: SendRequest<Full<Bytes>>,
    path: String,
    host: HeaderValue,
    /// `Basic …`, marked sensitive (never logged by hyper).
    authorization: Option<HeaderValue>,
    /// `name=value` of each cookie the server set, in the order first set.
    cookies: Vec<(String, String)>,
    sequence: i32,
    max_message: usize,
}

impl fmt::Debug for HttpLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpLink")
            .field("path", &self.path)
            .field("cookies", &self.cookies.len())
            .finish_non_exhaustive()
    }
}

fn io_error(e: impl std::error::Error + Send + Sync + 'static) -> TransportError {
    TransportError::Io(io::Error::other(e))
}

impl HttpLink {
    /// Starts HTTP/1.1 on `stream` (its connection task runs until the link is dropped).
    pub(crate) async fn open(
        stream: Box<dyn Io>,
        host: &str,
        port: u16,
        path: &str,
        login: Option<(&str, &str)>,
        max_message: usize,
    ) -> Result<HttpLink, TransportError> {
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(io_error)?;
        tokio::spawn(async move {
            // Ends when the link (its sender) is dropped or the server closes.
            let _ = connection.await;
        });
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let host = HeaderValue::from_str(&host)
            .map_err(|_| TransportError::Protocol("the host is not a valid Host header".into()))?;
        let authorization = match login {
            None => None,
            Some((user, password)) => {
                let token =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                let mut value = HeaderValue::from_str(&format!("Basic {token}")).map_err(|_| {
                    TransportError::Protocol("the login is not a valid header".into())
                })?;
                value.set_sensitive(true);
                Some(value)
            }
        };
        let path = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        Ok(HttpLink {
            sender,
            path,
            host,
            authorization,
            cookies: Vec::new(),
            sequence: 0,
            max_message,
        })
    }
}

impl Exchange for HttpLink {
    fn sequence(&mut self) -> &mut i32 {
        &mut self.sequence
    }

    /// One `POST` of the call; its body is the reply.
    async fn exchange(&mut self, message: Vec<u8>) -> Result<Vec<u8>, TransportError> {
        let mut builder = hyper::Request::post(self.path.as_str())
            .header(header::HOST, self.host.clone())
            .header(header::CONTENT_TYPE, "application/x-thrift")
            .header(header::ACCEPT, "application/x-thrift")
            .header(header::USER_AGENT, "extdata-hive");
        if let Some(authorization) = &self.authorization {
            builder = builder.header(header::AUTHORIZATION, authorization.clone());
        }
        if !self.cookies.is_empty() {
            let cookies: Vec<String> = self
                .cookies
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect();
            builder = builder.header(header::COOKIE, cookies.join("; "));
        }
        let request = builder
            .body(Full::new(Bytes::from(message)))
            .map_err(|e| TransportError::Protocol(e.to_string()))?;
        self.sender.ready().await.map_err(closed_or_io)?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(closed_or_io)?;
        let status = response.status();
        for set in response.headers().get_all(header::SET_COOKIE) {
            if let Some((name, value)) = set
                .to_str()
                .ok()
                .and_then(|s| s.split(';').next())
                .and_then(|pair| pair.split_once('='))
            {
                let (name, value) = (name.trim().to_owned(), value.trim().to_owned());
                match self.cookies.iter_mut().find(|(n, _)| *n == name) {
                    Some(slot) => slot.1 = value,
                    None => self.cookies.push((name, value)),
                }
            }
        }
        let body = Limited::new(response.into_body(), self.max_message)
            .collect()
            .await
            .map_err(|e| TransportError::Protocol(format!("reading the reply: {e}")))?
            .to_bytes();
        if !status.is_success() {
            // The server's page may quote the request, never the login: keep it short.
            let text: String = String::from_utf8_lossy(&body).chars().take(200).collect();
            return Err(TransportError::Http {
                status: status.as_u16(),
                detail: text,
            });
        }
        match message_len(&body, self.max_message).map_err(TransportError::Protocol)? {
            Some(len) if len == body.len() => Ok(body.into()),
            _ => Err(TransportError::Protocol(
                "the HTTP reply is not one whole thrift message".into(),
            )),
        }
    }
}

fn closed_or_io(e: hyper::Error) -> TransportError {
    if e.is_parse() {
        TransportError::NotHttp(e.to_string())
    } else if e.is_closed() || e.is_incomplete_message() || e.is_canceled() {
        TransportError::Closed {
            partial: Vec::new(),
        }
    } else {
        io_error(e)
    }
}
