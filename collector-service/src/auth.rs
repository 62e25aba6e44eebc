//! Only internal callers may deliver runs: a client certificate signed by
//! the configured CA (mTLS), a shared bearer token read from a secret file,
//! or both. Health stays open (Kubernetes probes carry neither).

use std::path::Path;
use std::sync::Arc;

use cudly_core::files::read_file;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use tonic::{Request, Status};

/// How collector-service authenticates its callers.
#[derive(Clone, Debug, Default)]
pub struct InternalAuth {
    /// Require this bearer token.
    pub token: Option<SecretString>,
    /// Serve TLS with this identity and require client certificates signed
    /// by `client_ca`.
    pub tls: Option<ServerTls>,
    /// Accept unauthenticated callers (local runs only).
    pub insecure: bool,
}

/// The collector's TLS material, PEM.
#[derive(Clone, Debug)]
pub struct ServerTls {
    /// Certificate chain.
    pub cert: Vec<u8>,
    /// Private key.
    pub key: SecretString,
    /// CA that signs the clients' certificates.
    pub client_ca: Vec<u8>,
}

impl ServerTls {
    /// Reads the three PEM files; an unreadable one is an error naming it.
    pub fn load(cert: &Path, key: &Path, client_ca: &Path) -> anyhow::Result<Self> {
        Ok(ServerTls {
            cert: read_file(cert)?,
            key: SecretString::from(String::from_utf8(read_file(key)?)?),
            client_ca: read_file(client_ca)?,
        })
    }

    /// The tonic server TLS config: a client certificate, when presented,
    /// must chain to the CA; a call without one is refused with
    /// UNAUTHENTICATED by [`InternalAuth::check`] rather than by a TLS alert,
    /// so health checks over TLS still answer.
    pub fn server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(Identity::from_pem(&self.cert, self.key.expose_secret()))
            .client_ca_root(Certificate::from_pem(&self.client_ca))
            .client_auth_optional(true)
    }
}

impl InternalAuth {
    /// Whether any credential is required.
    pub fn is_configured(&self) -> bool {
        self.token.is_some() || self.tls.is_some()
    }

    /// Checks one call's credentials.
    pub fn check<T>(&self, request: &Request<T>) -> Result<(), Status> {
        if self.tls.is_some() && request.peer_certs().is_none_or(|certs| certs.is_empty()) {
            return Err(Status::unauthenticated("a client certificate signed by the collector's CA is required"));
        }
        if let Some(expected) = &self.token {
            let presented = request
                .metadata()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .ok_or_else(|| Status::unauthenticated("missing credentials: send `authorization: Bearer <token>`"))?;
            if !bool::from(presented.as_bytes().ct_eq(expected.expose_secret().as_bytes())) {
                return Err(Status::unauthenticated("invalid token"));
            }
        }
        if !self.is_configured() && !self.insecure {
            // Build refuses this configuration; never let it through anyway.
            return Err(Status::unauthenticated("no caller authentication is configured"));
        }
        Ok(())
    }

    /// A tonic interceptor enforcing [`InternalAuth::check`].
    pub fn interceptor(self: Arc<Self>) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone {
        move |request| {
            self.check(&request)?;
            Ok(request)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_with(auth: Option<&str>) -> Request<()> {
        let mut request = Request::new(());
        if let Some(value) = auth {
            request.metadata_mut().insert("authorization", value.parse().unwrap());
        }
        request
    }

    #[test]
    fn a_token_is_required_and_compared_exactly() {
        let auth = InternalAuth { token: Some(SecretString::from("s3cret-token")), ..Default::default() };
        assert!(auth.check(&request_with(Some("Bearer s3cret-token"))).is_ok());
        for bad in [None, Some("Bearer s3cret-tokeN"), Some("Bearer s3cret"), Some("s3cret-token")] {
            let status = auth.check(&request_with(bad)).unwrap_err();
            assert_eq!(status.code(), tonic::Code::Unauthenticated, "{bad:?}");
            assert!(!status.message().contains("s3cret"), "{}", status.message());
        }
    }

    #[test]
    fn nothing_configured_refuses_unless_insecure() {
        let status = InternalAuth::default().check(&request_with(None)).unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
        assert!(InternalAuth { insecure: true, ..Default::default() }.check(&request_with(None)).is_ok());
    }
}
