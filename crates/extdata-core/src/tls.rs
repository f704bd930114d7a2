//! The rustls client configuration of a connector's TLS settings (cargo feature
//! `rustls`), for backends that run TLS themselves (ClickHouse over hyper, Hive's Thrift
//! transport): one place that reads the PEM material and the verification mode.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use secrecy::ExposeSecret;

use crate::{Error, Result, TlsSettings, TlsVerify};

/// The rustls client configuration for `tls`: roots from `ssl.ca` (the bundled Mozilla
/// roots when absent), the client certificate and key when given, the verification mode
/// (`full`: chain and host name; `ca`: chain only; `none`: nothing). Built on the `ring`
/// provider, without touching rustls' process-wide default. Errors are
/// [`ErrorKind::Config`](crate::ErrorKind::Config) errors naming the field; a bad key is
/// reported without any of its text.
pub fn rustls_client_config(tls: &TlsSettings) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = server_verifier(tls, &provider)?;
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

/// The check of the server's certificate that `tls.verify` asks for, trusting `ssl.ca`
/// (the bundled Mozilla roots when absent).
fn server_verifier(
    tls: &TlsSettings,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>> {
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
        TlsVerify::Ca => Arc::new(Relaxed {
            webpki,
            check_chain: true,
        }),
        TlsVerify::None => Arc::new(Relaxed {
            webpki,
            check_chain: false,
        }),
    };
    Ok(verifier)
}

/// `verify = ca` (`check_chain`: the chain must lead to a trusted root; the host name is
/// not checked) and `verify = none` (any certificate is trusted; tests only). Handshake
/// signatures are checked by webpki either way: only the certificate is taken on trust.
#[derive(Debug)]
struct Relaxed {
    webpki: Arc<WebPkiServerVerifier>,
    check_chain: bool,
}

impl ServerCertVerifier for Relaxed {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        if !self.check_chain {
            return Ok(ServerCertVerified::assertion());
        }
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
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
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(verify: TlsVerify) -> TlsSettings {
        TlsSettings {
            verify,
            ca_pem: None,
            cert_pem: None,
            key_pem: None,
        }
    }

    /// What the configured verifier says of a certificate that is not one (the bytes
    /// are no DER), for `example.com`.
    fn verdict(verify: TlsVerify) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = server_verifier(&settings(verify), &provider).unwrap();
        let name = ServerName::try_from("example.com").unwrap();
        verifier.verify_server_cert(
            &CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00]),
            &[],
            &name,
            &[],
            UnixTime::now(),
        )
    }

    #[test]
    fn only_verify_none_accepts_a_certificate_it_cannot_read() {
        for (verify, accepted) in [
            (TlsVerify::Full, false),
            (TlsVerify::Ca, false),
            (TlsVerify::None, true),
        ] {
            let verdict = verdict(verify);
            assert_eq!(
                verdict.is_ok(),
                accepted,
                "verify = {verify:?}: {verdict:?}"
            );
        }
    }
}
