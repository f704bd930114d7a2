//! Thrift over HTTP (`hive.server2.transport.mode=http`): each call is one `POST` of the
//! binary-protocol message to the server's path (`http_path`, default `cliservice`) on
//! a kept-alive HTTP/1.1 connection (hyper, over the same TCP or TLS stream as the
//! binary transport). The cookies the server sets (`hive.server2.auth`, a session
//! cookie behind a gateway) are sent back on the following requests.
//!
//! How a request says who sends it ([`HttpAuth`]):
//! - `NONE`/`PLAIN`/`LDAP`/`CUSTOM`: the user name and password as HTTP Basic
//!   authentication on every request (that is how HiveServer2 checks those logins over
//!   HTTP).
//! - `GSSAPI` (SPNEGO, RFC 4559): `Authorization: Negotiate <token>`, the token being a
//!   fresh SPNEGO initial context token for the server's HTTP principal. HiveServer2
//!   checks it and answers with its signed `hive.server2.auth` cookie, which then
//!   stands for the login: a token is sent only while no such cookie is held (as Hive's
//!   JDBC driver does), and when the server answers a cookie-only request with 401 (it
//!   restarted, or a balancer sent the request to another instance) the cookie is
//!   dropped and the request sent again, once, with a fresh token.

use std::io;
use std::sync::Arc;

use base64::Engine as _;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{self, HeaderValue};
use hyper_util::rt::TokioIo;

use crate::transport::{Exchange, Io, TransportError, message_len};

/// The cookie HiveServer2 signs after checking a login (`ThriftHttpServlet.AUTH_COOKIE`).
const AUTH_COOKIE: &str = "hive.server2.auth";

/// Makes SPNEGO initial context tokens for the server's HTTP principal.
pub(crate) trait NegotiateTokens: Send + Sync + 'static {
    /// A new token. Blocking: the first one may ask the KDC for a service ticket.
    fn token(&self) -> Result<Vec<u8>, String>;
    /// The Kerberos service name the tokens are for (`HTTP@host`), for messages.
    fn target(&self) -> &str;
}

/// How the requests of an [`HttpLink`] authenticate.
pub(crate) enum HttpAuth {
    /// No `Authorization` header.
    None,
    /// HTTP Basic with this user name and password, on every request.
    Basic { user: String, password: String },
    /// SPNEGO: `Negotiate` tokens from `tokens`; `first` is one made ahead (on a
    /// blocking thread, within the connect deadline), used by the first request.
    /// Built by the `gssapi` feature (and the tests).
    #[cfg_attr(not(feature = "gssapi"), allow(dead_code))]
    Negotiate {
        tokens: Arc<dyn NegotiateTokens>,
        first: Option<Vec<u8>>,
    },
}

/// [`HttpAuth`] as the link keeps it.
enum Credentials {
    None,
    /// `Basic …`, marked sensitive (never logged by hyper).
    Basic(HeaderValue),
    Negotiate {
        tokens: Arc<dyn NegotiateTokens>,
        first: Option<Vec<u8>>,
    },
}

/// One HTTP/1.1 connection carrying thrift calls.
pub(crate) struct HttpLink {
    sender: SendRequest<Full<Bytes>>,
    path: String,
    host: HeaderValue,
    credentials: Credentials,
    /// `name=value` of each cookie the server set, in the order first set.
    cookies: Vec<(String, String)>,
    sequence: i32,
    max_message: usize,
}

extdata_core::debug_fields!(HttpLink |link| { path, cookies: link.cookies.len(), .. });

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
        auth: HttpAuth,
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
        let credentials = match auth {
            HttpAuth::None => Credentials::None,
            HttpAuth::Basic { user, password } => {
                let token =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                Credentials::Basic(sensitive(&format!("Basic {token}"), "the login")?)
            }
            HttpAuth::Negotiate { tokens, first } => Credentials::Negotiate { tokens, first },
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
            credentials,
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
        let message = Bytes::from(message);
        let mut retried = false;
        loop {
            let negotiate = self.negotiate_header(retried).await?;
            let sent_token = negotiate.is_some();
            let (status, body) = self.post(message.clone(), negotiate).await?;
            if status == hyper::StatusCode::UNAUTHORIZED
                && let Credentials::Negotiate { tokens, .. } = &self.credentials
            {
                if !sent_token && !retried {
                    // The server no longer takes its cookie (it restarted, or another
                    // instance behind a balancer got the request): log in again.
                    self.cookies.retain(|(name, _)| name != AUTH_COOKIE);
                    retried = true;
                    continue;
                }
                return Err(TransportError::Auth(format!(
                    "the server refused the Kerberos (SPNEGO) ticket for {}: HTTP 401 ({}); \
                     the option principal must name the server's \
                     hive.server2.authentication.spnego.principal (usually HTTP/_HOST@REALM) \
                     or its hive.server2.authentication.kerberos.principal",
                    tokens.target(),
                    short(&body)
                )));
            }
            if !status.is_success() {
                return Err(TransportError::Http {
                    status: status.as_u16(),
                    detail: short(&body),
                });
            }
            return match message_len(&body, self.max_message).map_err(TransportError::Protocol)? {
                Some(len) if len == body.len() => Ok(body.into()),
                _ => Err(TransportError::Protocol(
                    "the HTTP reply is not one whole thrift message".into(),
                )),
            };
        }
    }
}

impl HttpLink {
    /// The `Negotiate …` header the next request carries: with SPNEGO, when no
    /// `hive.server2.auth` cookie stands for the login, or `renew` says the cookie was
    /// refused; `None` otherwise (and for Basic and no authentication).
    async fn negotiate_header(
        &mut self,
        renew: bool,
    ) -> Result<Option<HeaderValue>, TransportError> {
        let Credentials::Negotiate { tokens, first } = &mut self.credentials else {
            return Ok(None);
        };
        if !renew && self.cookies.iter().any(|(name, _)| name == AUTH_COOKIE) {
            return Ok(None);
        }
        let token = match first.take() {
            Some(token) => token,
            None => {
                let tokens = tokens.clone();
                tokio::task::spawn_blocking(move || tokens.token())
                    .await
                    .map_err(|e| TransportError::Auth(format!("the Kerberos step failed: {e}")))?
                    .map_err(TransportError::Auth)?
            }
        };
        let token = base64::engine::general_purpose::STANDARD.encode(token);
        sensitive(&format!("Negotiate {token}"), "the Kerberos token").map(Some)
    }

    /// Sends one `POST` with `body` and returns the status and the whole reply body,
    /// keeping the cookies the server sets.
    async fn post(
        &mut self,
        body: Bytes,
        negotiate: Option<HeaderValue>,
    ) -> Result<(hyper::StatusCode, Bytes), TransportError> {
        let mut builder = hyper::Request::post(self.path.as_str())
            .header(header::HOST, self.host.clone())
            .header(header::CONTENT_TYPE, "application/x-thrift")
            .header(header::ACCEPT, "application/x-thrift")
            .header(header::USER_AGENT, "extdata-hive");
        if let Credentials::Basic(authorization) = &self.credentials {
            builder = builder.header(header::AUTHORIZATION, authorization.clone());
        }
        if let Some(negotiate) = negotiate {
            builder = builder.header(header::AUTHORIZATION, negotiate);
        }
        if !self.cookies.is_empty() {
            let cookies: Vec<String> = self
                .cookies
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect();
            // Sensitive: the auth cookie stands for the login.
            builder = builder.header(header::COOKIE, sensitive(&cookies.join("; "), "a cookie")?);
        }
        let request = builder
            .body(Full::new(body))
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
        Ok((status, body))
    }
}

/// A header value that hyper never logs; `what` names it in the error.
fn sensitive(text: &str, what: &str) -> Result<HeaderValue, TransportError> {
    let mut value = HeaderValue::from_str(text)
        .map_err(|_| TransportError::Protocol(format!("{what} is not a valid header")))?;
    value.set_sensitive(true);
    Ok(value)
}

/// The start of a server's error page: it may quote the request, never the login.
fn short(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .chars()
        .take(200)
        .collect::<String>()
        .trim()
        .to_owned()
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    use super::*;
    use crate::transport::{Exchange, encode_call};

    /// Tokens `token-0`, `token-1`, … (the first is made ahead, as `Session::open` does).
    struct Counted(AtomicUsize);

    impl NegotiateTokens for Counted {
        fn token(&self) -> Result<Vec<u8>, String> {
            Ok(format!("token-{}", self.0.fetch_add(1, Ordering::SeqCst)).into_bytes())
        }
        fn target(&self) -> &str {
            "HTTP@db.example"
        }
    }

    fn negotiate(token: &str) -> String {
        format!(
            "Negotiate {}",
            base64::engine::general_purpose::STANDARD.encode(token)
        )
    }

    /// Reads one request; returns its `Authorization` and `Cookie` headers.
    async fn read_request(server: &mut DuplexStream) -> (Option<String>, Option<String>) {
        let mut bytes = Vec::new();
        let mut byte = [0u8; 1];
        while !bytes.ends_with(b"\r\n\r\n") {
            server.read_exact(&mut byte).await.unwrap();
            bytes.push(byte[0]);
        }
        let head = String::from_utf8(bytes).unwrap();
        let header = |name: &str| {
            head.lines().find_map(|line| {
                let (key, value) = line.split_once(": ")?;
                key.eq_ignore_ascii_case(name).then(|| value.to_owned())
            })
        };
        let length: usize = header("content-length").unwrap().parse().unwrap();
        let mut body = vec![0u8; length];
        server.read_exact(&mut body).await.unwrap();
        (header("authorization"), header("cookie"))
    }

    async fn reply(server: &mut DuplexStream, status: &str, cookie: Option<&str>, body: &[u8]) {
        let cookie = cookie
            .map(|c| format!("Set-Cookie: {c}; Max-Age=86400; HttpOnly\r\n"))
            .unwrap_or_default();
        let head = format!(
            "HTTP/1.1 {status}\r\n{cookie}Content-Length: {}\r\n\r\n",
            body.len()
        );
        server.write_all(head.as_bytes()).await.unwrap();
        server.write_all(body).await.unwrap();
    }

    /// A thrift message, as the body of a successful reply.
    fn message() -> Vec<u8> {
        let request = hive::service::rpc::thrift::TGetInfoReq::new(
            hive::service::rpc::thrift::TSessionHandle::new(
                hive::service::rpc::thrift::THandleIdentifier::new(vec![1; 16], vec![2; 16]),
            ),
            hive::service::rpc::thrift::TGetInfoType::CLI_DBMS_VER,
        );
        encode_call("GetInfo", 1, &request).unwrap()
    }

    #[tokio::test]
    async fn spnego_sends_a_token_until_the_cookie_and_again_when_it_is_refused() {
        let (client, mut server) = tokio::io::duplex(1 << 16);
        let tokens = Arc::new(Counted(AtomicUsize::new(0)));
        let first = tokens.token().unwrap();
        let mut link = HttpLink::open(
            Box::new(client),
            "db.example",
            10001,
            "cliservice",
            HttpAuth::Negotiate {
                tokens,
                first: Some(first),
            },
            1 << 20,
        )
        .await
        .unwrap();
        let peer = tokio::spawn(async move {
            let mut seen = Vec::new();
            // 1: the token made ahead; the server sets its cookie (and a gateway's).
            seen.push(read_request(&mut server).await);
            reply(
                &mut server,
                "200 OK",
                Some("hive.server2.auth=signed-1"),
                &message(),
            )
            .await;
            seen.push(read_request(&mut server).await);
            reply(&mut server, "200 OK", Some("JSESSIONID=gw"), &message()).await;
            // 3: the cookie alone, refused (a restarted server); 4: the retry.
            seen.push(read_request(&mut server).await);
            reply(
                &mut server,
                "401 Unauthorized",
                None,
                b"Authentication Error",
            )
            .await;
            seen.push(read_request(&mut server).await);
            reply(
                &mut server,
                "200 OK",
                Some("hive.server2.auth=signed-2"),
                &message(),
            )
            .await;
            // 5: the new cookie; 6, 7: refused, then the token of the retry refused too.
            seen.push(read_request(&mut server).await);
            reply(&mut server, "200 OK", None, &message()).await;
            seen.push(read_request(&mut server).await);
            reply(&mut server, "401 Unauthorized", None, b"expired").await;
            seen.push(read_request(&mut server).await);
            reply(
                &mut server,
                "401 Unauthorized",
                None,
                b"Kerberos authentication failed",
            )
            .await;
            seen
        });
        for _ in 0..3 {
            link.exchange(message()).await.unwrap();
        }
        link.exchange(message()).await.unwrap();
        let error = link.exchange(message()).await.unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, TransportError::Auth(_)), "{text}");
        assert!(
            text.contains("HTTP@db.example") && text.contains("principal"),
            "{text}"
        );
        let seen = peer.await.unwrap();
        let cookie = |value: &str| Some(value.to_owned());
        assert_eq!(
            seen,
            vec![
                (Some(negotiate("token-0")), None),
                (None, cookie("hive.server2.auth=signed-1")),
                (None, cookie("hive.server2.auth=signed-1; JSESSIONID=gw")),
                (Some(negotiate("token-1")), cookie("JSESSIONID=gw")),
                (None, cookie("JSESSIONID=gw; hive.server2.auth=signed-2")),
                (None, cookie("JSESSIONID=gw; hive.server2.auth=signed-2")),
                (Some(negotiate("token-2")), cookie("JSESSIONID=gw")),
            ]
        );
    }

    #[tokio::test]
    async fn basic_is_sent_on_every_request() {
        let (client, mut server) = tokio::io::duplex(1 << 16);
        let mut link = HttpLink::open(
            Box::new(client),
            "db.example",
            10001,
            "/cliservice",
            HttpAuth::Basic {
                user: "reader".into(),
                password: "pw".into(),
            },
            1 << 20,
        )
        .await
        .unwrap();
        let peer = tokio::spawn(async move {
            let mut seen = Vec::new();
            for cookie in [Some("hive.server2.auth=signed"), None] {
                seen.push(read_request(&mut server).await);
                reply(&mut server, "200 OK", cookie, &message()).await;
            }
            seen.push(read_request(&mut server).await);
            reply(&mut server, "401 Unauthorized", None, b"bad login").await;
            seen
        });
        link.exchange(message()).await.unwrap();
        link.exchange(message()).await.unwrap();
        let error = link.exchange(message()).await.unwrap_err();
        assert!(
            matches!(error, TransportError::Http { status: 401, .. }),
            "{error}"
        );
        let basic = Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("reader:pw")
        ));
        let cookie = Some("hive.server2.auth=signed".to_owned());
        assert_eq!(
            peer.await.unwrap(),
            vec![
                (basic.clone(), None),
                (basic.clone(), cookie.clone()),
                (basic, cookie)
            ]
        );
    }
}
