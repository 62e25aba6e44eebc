//! Who may call what: callers send `authorization: Bearer <JWT>`; the token's
//! signature, expiry, issuer and audience are checked, and its permissions
//! claim decides which RPCs it may call. Health (and reflection, when it is
//! on) stays open; every other path needs a token, so an RPC added later is
//! closed until it is given a permission here.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::{ExposeSecret as _, SecretString};
use tonic::Status;

/// A permission a token can carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Permission {
    /// List recommendations, read and watch freshness, refresh.
    ViewRecommendations,
    /// Manage the accounts registry.
    AdminAccounts,
}

impl Permission {
    /// The claim value that grants it.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::ViewRecommendations => "recommendations:view",
            Permission::AdminAccounts => "accounts:admin",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "recommendations:view" => Some(Permission::ViewRecommendations),
            "accounts:admin" => Some(Permission::AdminAccounts),
            _ => None,
        }
    }
}

/// What a gRPC path needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    Open,
    Needs(Permission),
    /// Unknown paths: a valid token, no particular permission (the server
    /// answers UNIMPLEMENTED after that).
    Authenticated,
}

fn access(path: &str, reflection_open: bool) -> Access {
    let service = path.trim_start_matches('/').split('/').next().unwrap_or("");
    match service {
        "grpc.health.v1.Health" => Access::Open,
        "grpc.reflection.v1.ServerReflection" | "grpc.reflection.v1alpha.ServerReflection" if reflection_open => {
            Access::Open
        }
        "cudly.recommendations.v1.RecommendationsService" => Access::Needs(Permission::ViewRecommendations),
        "cudly.recommendations.v1.AccountsService" => Access::Needs(Permission::AdminAccounts),
        _ => Access::Authenticated,
    }
}

/// An authenticated caller, put in the request's extensions for handlers
/// (WatchFreshness ends the stream when the token expires).
#[derive(Clone, Debug)]
pub struct Principal {
    /// The token's `sub`, if any.
    pub subject: String,
    /// When the token stops being accepted (`exp` plus the leeway).
    pub expires_at: SystemTime,
}

/// Where the verification keys come from.
#[derive(Clone, Debug)]
pub enum KeySource {
    /// An HS256 shared secret, read from this file.
    Hs256SecretFile(PathBuf),
    /// An RSA (RS256) or EC P-256 (ES256) public key in PEM.
    PublicKeyPemFile(PathBuf),
    /// A JWKS document (RSA and EC P-256 keys), matched by `kid`.
    JwksFile(PathBuf),
}

/// How tokens are checked.
#[derive(Clone, Debug)]
pub struct JwtSettings {
    /// The verification keys.
    pub keys: KeySource,
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud`.
    pub audience: String,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
    /// The claim holding permissions: an array of strings or one
    /// space-separated string.
    pub permissions_claim: String,
}

/// Whether and how callers authenticate.
#[derive(Clone, Debug)]
pub enum AuthSettings {
    /// Everyone may call everything (local runs only).
    Disabled,
    /// Bearer JWTs.
    Jwt(JwtSettings),
}

struct Key {
    kid: Option<String>,
    key: DecodingKey,
    validation: Validation,
}

/// Checks bearer tokens against the configured keys and claims.
pub struct Authenticator {
    keys: Vec<Key>,
    permissions_claim: String,
    leeway: Duration,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").field("keys", &self.keys.len()).finish_non_exhaustive()
    }
}

/// Why a token was refused. Only the kind reaches the caller; the detail
/// goes to the debug log.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No `authorization: Bearer` header.
    Missing,
    /// Past `exp`.
    Expired,
    /// Anything else: signature, issuer, audience, `nbf`, format.
    Invalid,
    /// Valid, but without the permission.
    Denied(Permission),
}

impl From<Refusal> for Status {
    fn from(refusal: Refusal) -> Status {
        match refusal {
            Refusal::Missing => Status::unauthenticated("missing credentials: send `authorization: Bearer <JWT>`"),
            Refusal::Expired => Status::unauthenticated("the token has expired"),
            Refusal::Invalid => Status::unauthenticated("invalid token"),
            Refusal::Denied(p) => Status::permission_denied(format!("missing permission {}", p.as_str())),
        }
    }
}

impl Authenticator {
    /// Loads the keys `settings` names; a missing or malformed key file is
    /// an error naming the file.
    pub fn load(settings: &JwtSettings) -> anyhow::Result<Self> {
        let keys = match &settings.keys {
            KeySource::Hs256SecretFile(path) => {
                let secret = read_hs256_secret(path)?;
                vec![(None, DecodingKey::from_secret(secret.expose_secret().as_bytes()), Algorithm::HS256)]
            }
            KeySource::PublicKeyPemFile(path) => {
                let pem = read(path)?;
                let parsed = if let Ok(key) = DecodingKey::from_rsa_pem(pem.as_bytes()) {
                    (key, Algorithm::RS256)
                } else if let Ok(key) = DecodingKey::from_ec_pem(pem.as_bytes()) {
                    (key, Algorithm::ES256)
                } else {
                    anyhow::bail!("{}: not an RSA or EC public key in PEM", path.display());
                };
                vec![(None, parsed.0, parsed.1)]
            }
            KeySource::JwksFile(path) => {
                let set: JwkSet = serde_json::from_str(&read(path)?)
                    .map_err(|err| anyhow::anyhow!("{}: not a JWKS document: {err}", path.display()))?;
                let mut keys = Vec::new();
                for jwk in &set.keys {
                    let algorithm = match &jwk.algorithm {
                        AlgorithmParameters::RSA(_) => Algorithm::RS256,
                        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => Algorithm::ES256,
                        // Other key types are not ours to use; skip them.
                        _ => continue,
                    };
                    let key = DecodingKey::from_jwk(jwk)
                        .map_err(|err| anyhow::anyhow!("{}: a key does not load: {err}", path.display()))?;
                    keys.push((jwk.common.key_id.clone(), key, algorithm));
                }
                anyhow::ensure!(!keys.is_empty(), "{}: no RSA or P-256 key in the JWKS", path.display());
                keys
            }
        };
        let keys = keys
            .into_iter()
            .map(|(kid, key, algorithm)| {
                let mut validation = Validation::new(algorithm);
                validation.set_issuer(&[&settings.issuer]);
                validation.set_audience(&[&settings.audience]);
                validation.set_required_spec_claims(&["exp", "iss", "aud"]);
                validation.validate_nbf = true;
                validation.leeway = settings.leeway.as_secs();
                Key { kid, key, validation }
            })
            .collect();
        Ok(Authenticator { keys, permissions_claim: settings.permissions_claim.clone(), leeway: settings.leeway })
    }

    /// Verifies the bearer token in `authorization` (the header's value).
    pub fn verify(&self, authorization: Option<&str>) -> Result<(Principal, Vec<Permission>), Refusal> {
        let token = authorization
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(Refusal::Missing)?;
        let header = jsonwebtoken::decode_header(token).map_err(|err| invalid("header", &err))?;
        let candidates = self.keys.iter().filter(|k| {
            k.validation.algorithms.contains(&header.alg)
                && (k.kid.is_none() || header.kid.is_none() || k.kid == header.kid)
        });
        let mut refusal = Refusal::Invalid;
        for key in candidates {
            match jsonwebtoken::decode::<HashMap<String, serde_json::Value>>(token, &key.key, &key.validation) {
                Ok(data) => return Ok(self.principal(&data.claims)),
                Err(err) if matches!(err.kind(), jsonwebtoken::errors::ErrorKind::ExpiredSignature) => {
                    refusal = Refusal::Expired;
                }
                Err(err) => tracing::debug!(reason = %err, "token refused"),
            }
        }
        Err(refusal)
    }

    fn principal(&self, claims: &HashMap<String, serde_json::Value>) -> (Principal, Vec<Permission>) {
        let permissions = match claims.get(&self.permissions_claim) {
            Some(serde_json::Value::Array(values)) => {
                values.iter().filter_map(|v| v.as_str()).filter_map(Permission::parse).collect()
            }
            Some(serde_json::Value::String(s)) => s.split_whitespace().filter_map(Permission::parse).collect(),
            _ => Vec::new(),
        };
        let exp = claims.get("exp").and_then(|v| v.as_u64()).unwrap_or(0);
        let principal = Principal {
            subject: claims.get("sub").and_then(|v| v.as_str()).unwrap_or("").to_string(),
            // The same leeway the check allowed.
            expires_at: UNIX_EPOCH
                .checked_add(Duration::from_secs(exp) + self.leeway)
                .unwrap_or(UNIX_EPOCH + Duration::from_secs(u64::from(u32::MAX))),
        };
        (principal, permissions)
    }
}

fn invalid(what: &str, err: &jsonwebtoken::errors::Error) -> Refusal {
    tracing::debug!(part = what, reason = %err, "token refused");
    Refusal::Invalid
}

/// The shortest HS256 secret accepted: RFC 7518 (3.2) asks for a key at
/// least as long as the hash, 256 bits.
pub const MIN_HS256_SECRET_BYTES: usize = 32;

/// Reads an HS256 shared secret: the file's content without its trailing
/// newline, refused when shorter than [`MIN_HS256_SECRET_BYTES`]. The
/// service verifies with it and `cudlyctl token` signs with it, so both
/// accept the same secrets.
pub fn read_hs256_secret(path: &Path) -> anyhow::Result<SecretString> {
    let secret = read(path)?;
    let secret = secret.trim_end_matches(['\n', '\r']);
    anyhow::ensure!(
        secret.len() >= MIN_HS256_SECRET_BYTES,
        "{}: an HS256 secret needs at least {MIN_HS256_SECRET_BYTES} bytes, it has {}",
        path.display(),
        secret.len()
    );
    Ok(SecretString::from(secret.to_string()))
}

fn read(path: &Path) -> anyhow::Result<String> {
    String::from_utf8(cudly_core::files::read_file(path)?)
        .map_err(|_| anyhow::anyhow!("{}: not UTF-8 text", path.display()))
}

/// A tower layer that authenticates and authorizes every gRPC call before
/// it reaches a service. Sits inside the gRPC-web layer, so browsers get
/// the same answers.
#[derive(Clone, Debug)]
pub struct AuthLayer {
    authenticator: Option<Arc<Authenticator>>,
    reflection_open: bool,
}

impl AuthLayer {
    /// `None` lets every call through (auth disabled).
    pub fn new(authenticator: Option<Arc<Authenticator>>, reflection_open: bool) -> Self {
        AuthLayer { authenticator, reflection_open }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService { inner, layer: self.clone() }
    }
}

/// See [`AuthLayer`].
#[derive(Clone, Debug)]
pub struct AuthService<S> {
    inner: S,
    layer: AuthLayer,
}

impl<S, B> tower::Service<http::Request<B>> for AuthService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        match self.layer.check(&request) {
            Ok(principal) => {
                if let Some(principal) = principal {
                    request.extensions_mut().insert(principal);
                }
                Box::pin(self.inner.call(request))
            }
            Err(status) => Box::pin(async move { Ok(status.into_http()) }),
        }
    }
}

impl AuthLayer {
    fn check<B>(&self, request: &http::Request<B>) -> Result<Option<Principal>, Status> {
        let Some(authenticator) = &self.authenticator else {
            return Ok(None);
        };
        let needs = match access(request.uri().path(), self.reflection_open) {
            Access::Open => return Ok(None),
            Access::Needs(p) => Some(p),
            Access::Authenticated => None,
        };
        let header = request.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let (principal, permissions) = authenticator.verify(header)?;
        if let Some(needed) = needs
            && !permissions.contains(&needed)
        {
            tracing::info!(subject = %principal.subject, path = request.uri().path(), permission = needed.as_str(), "permission denied");
            return Err(Refusal::Denied(needed).into());
        }
        Ok(Some(principal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_what_they_need() {
        assert_eq!(access("/grpc.health.v1.Health/Check", false), Access::Open);
        assert_eq!(access("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", true), Access::Open);
        assert_eq!(access("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", false), Access::Authenticated);
        assert_eq!(
            access("/cudly.recommendations.v1.RecommendationsService/WatchFreshness", true),
            Access::Needs(Permission::ViewRecommendations)
        );
        assert_eq!(
            access("/cudly.recommendations.v1.AccountsService/DeleteAccount", true),
            Access::Needs(Permission::AdminAccounts)
        );
        assert_eq!(access("/some.Other/Thing", true), Access::Authenticated);
    }

    #[test]
    fn key_files_that_do_not_load_are_named() {
        let dir = std::env::temp_dir().join(format!("cudly-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let short = dir.join("short");
        std::fs::write(&short, "too short\n").unwrap();
        let settings = |keys| JwtSettings {
            keys,
            issuer: "i".into(),
            audience: "a".into(),
            leeway: Duration::from_secs(30),
            permissions_claim: "permissions".into(),
        };
        let err = Authenticator::load(&settings(KeySource::Hs256SecretFile(short.clone()))).unwrap_err();
        assert!(err.to_string().contains("at least 32 bytes"), "{err}");
        let err = Authenticator::load(&settings(KeySource::PublicKeyPemFile(short.clone()))).unwrap_err();
        assert!(err.to_string().contains("not an RSA or EC public key"), "{err}");
        let err = Authenticator::load(&settings(KeySource::JwksFile(dir.join("missing")))).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
