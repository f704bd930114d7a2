//! [`ValidConfig`] → a `clickhouse::Client` over our own HTTP(S) transport.
//!
//! The TLS client is built from the connector's PEM (CA, client certificate and key),
//! never from environment variables or the platform's defaults, and verifies the server
//! fully unless `ssl.verify` says otherwise. Nothing here formats the driver's types:
//! `clickhouse::Client`'s `Debug` would print the password.

use std::sync::Arc;
use std::time::Duration;

use clickhouse::Client;
use extdata_core::{
    Endpoint, Error, ErrorKind, ExposeSecret, Result, TlsSettings, TlsVerify, ValidConfig,
};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

/// ClickHouse closes idle keep-alive connections after 3 s (`keep_alive_timeout`): drop
/// ours sooner, or a request may be sent on a connection the server is closing.
const MAX_IDLE: Duration = Duration::from_secs(2);

/// The base URL (`http://host:port`), without credentials.
pub(crate) fn base_url(config: &ValidConfig) -> Result<String> {
    let Endpoint::Tcp { host, port } = &config.endpoint else {
        return Err(config.error(
            ErrorKind::Config,
            "ClickHouse is reached over TCP (HTTP or HTTPS) only",
        ));
    };
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.clone()
    };
    Ok(format!("{scheme}://{host}:{port}"))
}

fn http_connector(config: &ValidConfig) -> HttpConnector {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(config.connect_timeout));
    connector.set_keepalive(Some(Duration::from_secs(60)));
    connector.set_nodelay(true);
    connector.enforce_http(config.tls.is_none());
    connector
}

/// Builds the client: credentials, database and TLS; no I/O.
pub(crate) fn build_client(config: &ValidConfig) -> Result<Client> {
    let url = base_url(config)?;
    let idle = config
        .pool
        .idle_timeout
        .map_or(MAX_IDLE, |d| d.min(MAX_IDLE));
    let max_idle = config.pool.max_size as usize;
    let connector = http_connector(config);
    let client = match &config.tls {
        None => Client::with_http_client(
            HyperClient::builder(TokioExecutor::new())
                .pool_idle_timeout(idle)
                .pool_max_idle_per_host(max_idle)
                .build(connector),
        ),
        Some(tls) => {
            let tls_config = rustls_config(tls).map_err(|e| {
                config.error(
                    ErrorKind::Tls,
                    format!("cannot set up TLS: {}", e.message()),
                )
            })?;
            let https = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls_config)
                .https_only()
                .enable_http1()
                .wrap_connector(connector);
            Client::with_http_client(
                HyperClient::builder(TokioExecutor::new())
                    .pool_idle_timeout(idle)
                    .pool_max_idle_per_host(max_idle)
                    .build(https),
            )
        }
    };
    let mut client = client
        .with_url(url)
        // 18.x has no RowBinaryWithNamesAndTypes; the backend reads Native anyway.
        .with_validation(false)
        .with_compression(clickhouse::Compression::None);
    if let Some(user) = &config.username {
        client = client.with_user(user.clone());
    }
    if let Some(password) = &config.password {
        client = client.with_password(password.expose_secret().to_owned());
    }
    if let Some(database) = &config.database {
        client = client.with_database(database.clone());
    }
    Ok(client)
}

/// The rustls configuration for `tls`: roots from `ssl.ca` (the bundled Mozilla roots
/// when absent), the client certificate and key when given, the verification mode.
pub(crate) fn rustls_config(tls: &TlsSettings) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    match &tls.ca_pem {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| Error::config(format!("ssl.ca: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| Error::config(format!("ssl.ca: {e}")))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| Error::config(format!("ssl.ca: {e}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = match tls.verify {
        TlsVerify::Full => webpki,
        TlsVerify::Ca => Arc::new(ChainOnly(webpki)),
        TlsVerify::None => Arc::new(NoVerification(provider.clone())),
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::config(format!("ssl: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match (&tls.cert_pem, &tls.key_pem) {
        (Some(cert), Some(key)) => {
            let chain: std::result::Result<Vec<CertificateDer<'static>>, _> =
                CertificateDer::pem_slice_iter(cert.as_bytes()).collect();
            let chain = chain.map_err(|e| Error::config(format!("ssl.cert: {e}")))?;
            // The parser's error is not shown: it could quote part of the key.
            let key = PrivateKeyDer::from_pem_slice(key.expose_secret().as_bytes())
                .map_err(|_| Error::config("ssl.key: is not a PEM private key"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| Error::config(format!("ssl.cert/ssl.key: {e}")))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(config)
}

/// `verify = ca`: the chain must lead to a trusted root; the host name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `verify = none`: encrypts but trusts any certificate (tests only).
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
