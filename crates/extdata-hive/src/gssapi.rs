//! SASL GSSAPI (RFC 4752) over a GSS-API security context: Kerberos logins to
//! HiveServer2 with `auth=GSSAPI` on the binary transport. Over `transport=http` the
//! same Kerberos login travels as SPNEGO tokens instead (`SpnegoTokens`, used by
//! `http.rs`).
//!
//! The SASL part (context tokens, then the wrapped security-layer exchange) is written
//! against [`GssContext`] so it is tested with a scripted context; the real context is
//! `libgssapi` behind the `gssapi` cargo feature. Only the "no security layer" choice
//! is offered: the server's `auth` QOP, which HiveServer2 uses by default.

use crate::sasl::Mechanism;

/// The parts of a GSS-API client context the mechanism uses.
pub(crate) trait GssContext: Send {
    /// One context-establishment step; returns the token to send, if any.
    fn step(&mut self, token: Option<&[u8]>) -> Result<Option<Vec<u8>>, String>;
    /// Whether the context is established.
    fn is_established(&self) -> bool;
    /// Integrity-protects `data` for the peer.
    fn wrap(&mut self, data: &[u8]) -> Result<Vec<u8>, String>;
    /// Checks and unwraps a message from the peer.
    fn unwrap(&mut self, data: &[u8]) -> Result<Vec<u8>, String>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Establishing,
    SecurityLayer,
    Done,
}

/// The SASL GSSAPI mechanism.
pub(crate) struct Gssapi<C> {
    context: C,
    phase: Phase,
    /// The initial token, computed ahead by [`Gssapi::prime`].
    primed: Option<Vec<u8>>,
}

// "No security layer" bit of the RFC 4752 security-layer byte.
const LAYER_NONE: u8 = 0x01;

impl<C: GssContext> Gssapi<C> {
    pub(crate) fn new(context: C) -> Self {
        Gssapi {
            context,
            phase: Phase::Establishing,
            primed: None,
        }
    }

    /// Computes the initial token now. With the system's Kerberos this is the call that
    /// may ask the KDC for a service ticket (blocking I/O): the caller runs it on a
    /// blocking thread, and [`Mechanism::initial_response`] then returns its result.
    pub(crate) fn prime(&mut self) -> Result<(), String> {
        let token = self.first_token()?;
        self.primed = Some(token);
        Ok(())
    }

    fn first_token(&mut self) -> Result<Vec<u8>, String> {
        let token = self.context.step(None)?;
        if self.context.is_established() {
            self.phase = Phase::SecurityLayer;
        }
        Ok(token.unwrap_or_default())
    }
}

impl<C: GssContext> Mechanism for Gssapi<C> {
    fn name(&self) -> &'static str {
        "GSSAPI"
    }

    fn initial_response(&mut self) -> Result<Vec<u8>, String> {
        match self.primed.take() {
            Some(token) => Ok(token),
            None => self.first_token(),
        }
    }

    fn step(&mut self, challenge: &[u8]) -> Result<Vec<u8>, String> {
        match self.phase {
            Phase::Establishing => {
                let token = self.context.step(Some(challenge))?;
                if self.context.is_established() {
                    self.phase = Phase::SecurityLayer;
                }
                Ok(token.unwrap_or_default())
            }
            Phase::SecurityLayer => {
                let offer = self.context.unwrap(challenge)?;
                if offer.len() != 4 {
                    return Err(format!(
                        "the server's GSSAPI security-layer offer has {} bytes, not 4",
                        offer.len()
                    ));
                }
                if offer[0] & LAYER_NONE == 0 {
                    return Err("the server requires a GSSAPI integrity or privacy layer \
                         (hive.server2.thrift.sasl.qop other than auth), which is not \
                         supported"
                        .into());
                }
                // No layer, no maximum message size, no authorization identity.
                let answer = self.context.wrap(&[LAYER_NONE, 0, 0, 0])?;
                self.phase = Phase::Done;
                Ok(answer)
            }
            Phase::Done => Err("unexpected GSSAPI challenge after completion".into()),
        }
    }

    fn is_complete(&self) -> bool {
        self.phase == Phase::Done
    }
}

#[cfg(feature = "gssapi")]
mod system {
    use libgssapi::context::{ClientCtx, CtxFlags, SecurityContext};
    use libgssapi::name::Name;
    use libgssapi::oid::{GSS_MECH_KRB5, GSS_MECH_SPNEGO, GSS_NT_HOSTBASED_SERVICE};

    use super::{GssContext, Gssapi};
    use crate::http::NegotiateTokens;

    /// The system's Kerberos (MIT or Heimdal through libgssapi), with the default
    /// credentials (`kinit` or a keytab named by `KRB5_CLIENT_KTNAME`).
    pub(crate) struct Kerberos {
        context: ClientCtx,
    }

    impl GssContext for Kerberos {
        fn step(&mut self, token: Option<&[u8]>) -> Result<Option<Vec<u8>>, String> {
            self.context
                .step(token, None)
                .map(|token| token.map(|t| t.to_vec()))
                .map_err(|e| format!("Kerberos: {e}"))
        }

        fn is_established(&self) -> bool {
            self.context.is_complete()
        }

        fn wrap(&mut self, data: &[u8]) -> Result<Vec<u8>, String> {
            self.context
                .wrap(false, data)
                .map(|b| b.to_vec())
                .map_err(|e| format!("Kerberos wrap: {e}"))
        }

        fn unwrap(&mut self, data: &[u8]) -> Result<Vec<u8>, String> {
            self.context
                .unwrap(data)
                .map(|b| b.to_vec())
                .map_err(|e| format!("Kerberos unwrap: {e}"))
        }
    }

    impl Gssapi<Kerberos> {
        /// A mechanism for `service@host` (e.g. `hive@db1.example.com`).
        pub(crate) fn kerberos(service: &str, host: &str) -> Result<Self, String> {
            let target = format!("{service}@{host}");
            let name = Name::new(target.as_bytes(), Some(GSS_NT_HOSTBASED_SERVICE))
                .and_then(|n| n.canonicalize(Some(GSS_MECH_KRB5)))
                .map_err(|e| format!("Kerberos service name `{target}`: {e}"))?;
            let context = ClientCtx::new(
                None,
                name,
                CtxFlags::GSS_C_MUTUAL_FLAG | CtxFlags::GSS_C_SEQUENCE_FLAG,
                Some(GSS_MECH_KRB5),
            );
            Ok(Gssapi::new(Kerberos { context }))
        }
    }

    /// SPNEGO (RFC 4559) initial tokens for `service@host` (e.g. `HTTP@db1.example.com`)
    /// with the default credentials, one new security context each. HiveServer2 checks
    /// the token and sends no token back, so the context is never completed and mutual
    /// authentication is not asked for (Hive's JDBC driver does the same): over HTTP it
    /// is TLS that authenticates the server.
    pub(crate) struct SpnegoTokens {
        target: String,
    }

    impl SpnegoTokens {
        pub(crate) fn new(service: &str, host: &str) -> Self {
            SpnegoTokens {
                target: format!("{service}@{host}"),
            }
        }
    }

    impl NegotiateTokens for SpnegoTokens {
        fn token(&self) -> Result<Vec<u8>, String> {
            let name = Name::new(self.target.as_bytes(), Some(GSS_NT_HOSTBASED_SERVICE))
                .map_err(|e| format!("Kerberos service name `{}`: {e}", self.target))?;
            let mut context = ClientCtx::new(None, name, CtxFlags::empty(), Some(GSS_MECH_SPNEGO));
            match context.step(None, None) {
                Ok(Some(token)) => Ok(token.to_vec()),
                Ok(None) => Err(format!(
                    "Kerberos gave no SPNEGO token for `{}`",
                    self.target
                )),
                Err(e) => Err(format!("Kerberos (SPNEGO for `{}`): {e}", self.target)),
            }
        }

        fn target(&self) -> &str {
            &self.target
        }
    }
}

#[cfg(feature = "gssapi")]
pub(crate) use system::SpnegoTokens;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sasl::tests::{Step, scripted};
    use crate::sasl::{SaslError, Status, negotiate};

    /// A context that needs `rounds` server tokens; wrapping prefixes `W`.
    struct Scripted {
        rounds: usize,
        seen: Vec<Vec<u8>>,
    }

    fn mechanism(rounds: usize) -> Gssapi<Scripted> {
        Gssapi::new(Scripted {
            rounds,
            seen: Vec::new(),
        })
    }

    /// A server that takes START and the first token, answers with its token, takes the
    /// empty answer, offers `offer` (wrapped) and takes what the client chooses; then
    /// `end`.
    fn kerberos_server(offer: &[u8], end: Option<Step>) -> Vec<Step> {
        let mut steps = vec![
            Step::Expect,
            Step::Expect,
            Step::Send(Status::Ok, b"server-token".to_vec()),
            Step::Expect,
            Step::Send(Status::Ok, [b"W".as_slice(), offer].concat()),
            Step::Expect,
        ];
        steps.extend(end);
        steps
    }

    impl GssContext for Scripted {
        fn step(&mut self, token: Option<&[u8]>) -> Result<Option<Vec<u8>>, String> {
            if let Some(t) = token {
                self.seen.push(t.to_vec());
            }
            Ok((self.seen.len() < self.rounds || token.is_none())
                .then(|| format!("client-token-{}", self.seen.len()).into_bytes()))
        }
        fn is_established(&self) -> bool {
            self.seen.len() >= self.rounds
        }
        fn wrap(&mut self, data: &[u8]) -> Result<Vec<u8>, String> {
            Ok([b"W".as_slice(), data].concat())
        }
        fn unwrap(&mut self, data: &[u8]) -> Result<Vec<u8>, String> {
            data.strip_prefix(b"W")
                .map(<[u8]>::to_vec)
                .ok_or_else(|| "bad wrap".to_owned())
        }
    }

    #[tokio::test]
    async fn negotiates_context_then_no_security_layer() {
        // Primed: the first token was computed ahead (on a blocking thread in `connect`).
        for primed in [false, true] {
            // Offer: no layer (bit 0) or integrity (bit 1), max size 64 KiB.
            let (mut client, peer) = scripted(kerberos_server(
                b"\x03\x01\x00\x00",
                Some(Step::Send(Status::Complete, Vec::new())),
            ));
            let mut mechanism = mechanism(1);
            if primed {
                mechanism.prime().unwrap();
            }
            negotiate(&mut client, &mut mechanism).await.unwrap();
            let seen = peer.await.unwrap();
            assert_eq!(seen[0], (Status::Start, b"GSSAPI".to_vec()));
            assert_eq!(seen[1], (Status::Ok, b"client-token-0".to_vec()));
            // The context completed on the server token: an empty answer.
            assert_eq!(seen[2], (Status::Ok, Vec::new()));
            assert_eq!(seen[3], (Status::Complete, b"W\x01\x00\x00\x00".to_vec()));
            assert!(mechanism.is_complete());
        }
    }

    #[tokio::test]
    async fn refuses_a_server_that_requires_a_security_layer() {
        // Offer: privacy only.
        let (mut client, _peer) = scripted(kerberos_server(b"\x04\x01\x00\x00", None));
        let mut mechanism = mechanism(1);
        let err = negotiate(&mut client, &mut mechanism).await.unwrap_err();
        assert!(
            matches!(&err, SaslError::Mechanism(why) if why.contains("privacy")),
            "{err}"
        );
    }

    #[test]
    fn a_malformed_offer_is_an_error() {
        let mut mechanism = mechanism(0);
        mechanism.initial_response().unwrap();
        assert!(mechanism.step(b"W\x01").is_err());
        assert!(mechanism.step(b"no-wrap").is_err());
    }
}
