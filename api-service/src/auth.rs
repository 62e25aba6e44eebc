//! Who may call what: callers send `authorization: Bearer <JWT>`; the token's
//! signature, expiry, issuer and audience are checked, and its permissions
//! claim decides which RPCs it may call. Health and reflection stay open
//! (reflection, when switched off, answers UNIMPLEMENTED to anyone); every
//! other path needs a token, so an RPC added later is closed until it is
//! given a permission here. Keys come from files or from the identity
//! provider (`remote`); several issuers may be trusted at once (people
//! through an OpenID provider, workloads through their cluster's issuer).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use cudly_core::quote::quoted;
use jsonwebtoken::{Algorithm, Validation};
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::metrics::KeyMetrics;

mod keys;
mod layer;
mod remote;

use keys::{KeySet, SIGNATURE_ALGORITHMS};
pub use keys::{MIN_HS256_SECRET_BYTES, read_hs256_secret};
pub use layer::{AuthLayer, AuthService};
use remote::FetchedKeys;

/// A permission a token can carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Permission {
    /// List recommendations, read and watch freshness, refresh.
    ViewRecommendations,
    /// Manage the accounts registry.
    AdminAccounts,
    /// Manage notification channels, send test notices, read deliveries.
    AdminNotifications,
}

impl Permission {
    /// The claim value that grants it.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::ViewRecommendations => "recommendations:view",
            Permission::AdminAccounts => "accounts:admin",
            Permission::AdminNotifications => "notifications:admin",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "recommendations:view" => Some(Permission::ViewRecommendations),
            "accounts:admin" => Some(Permission::AdminAccounts),
            "notifications:admin" => Some(Permission::AdminNotifications),
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

fn access(path: &str) -> Access {
    let service = path.trim_start_matches('/').split('/').next().unwrap_or("");
    match service {
        "grpc.health.v1.Health" => Access::Open,
        // Open when served; when switched off, open too, so that the
        // caller learns it is not served (UNIMPLEMENTED) rather than that
        // a token is missing.
        "grpc.reflection.v1.ServerReflection" | "grpc.reflection.v1alpha.ServerReflection" => Access::Open,
        "cudly.recommendations.v1.RecommendationsService" => Access::Needs(Permission::ViewRecommendations),
        "cudly.recommendations.v1.AccountsService" => Access::Needs(Permission::AdminAccounts),
        "cudly.recommendations.v1.NotificationsService" => Access::Needs(Permission::AdminNotifications),
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

/// Where an issuer's verification keys come from.
#[derive(Clone, Debug)]
pub enum KeySource {
    /// An HS256 shared secret, read from this file.
    Hs256SecretFile(PathBuf),
    /// An RSA (RS256) or EC P-256 (ES256) public key in PEM.
    PublicKeyPemFile(PathBuf),
    /// A JWKS document (RSA and EC keys), matched by `kid`.
    JwksFile(PathBuf),
    /// Fetched from the identity provider and kept fresh.
    Fetched(FetchSettings),
}

/// Where and how keys are fetched.
#[derive(Clone, Debug, Default)]
pub struct FetchSettings {
    /// The JWKS URL; `None` discovers it from the issuer's
    /// `/.well-known/openid-configuration`.
    pub jwks_url: Option<String>,
    /// A PEM CA trusted besides the public roots (a cluster's API server).
    pub ca_file: Option<PathBuf>,
    /// A bearer token sent with each fetch, read from this file each time
    /// (a Kubernetes API server wants one for its issuer's keys).
    pub token_file: Option<PathBuf>,
}

/// How fetched keys are kept fresh.
#[derive(Clone, Copy, Debug)]
pub struct KeyRefresh {
    /// Refetch this often.
    pub every: Duration,
    /// At most one fetch per this long for tokens naming an unknown `kid`,
    /// and the retry interval while fetching fails.
    pub min_refetch: Duration,
    /// Deadline of one fetch.
    pub timeout: Duration,
}

/// One issuer whose tokens are accepted.
#[derive(Clone, Debug)]
pub struct IssuerSettings {
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud`.
    pub audience: String,
    /// Its verification keys.
    pub keys: KeySource,
    /// Permissions of subjects whose tokens carry no permissions claim
    /// (workloads such as a Kubernetes ServiceAccount), by `sub`.
    pub subject_permissions: SubjectPermissions,
}

/// Permissions granted by subject (`sub`) to tokens without a permissions
/// claim.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubjectPermissions(pub Vec<(String, Vec<Permission>)>);

/// How tokens are checked.
#[derive(Clone, Debug)]
pub struct JwtSettings {
    /// The issuers whose tokens are accepted (a token is checked against
    /// the one its `iss` names).
    pub issuers: Vec<IssuerSettings>,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
    /// The claim holding permissions: an array of strings or one
    /// space-separated string.
    pub permissions_claim: String,
    /// How fetched keys are kept fresh.
    pub key_refresh: KeyRefresh,
}

/// Whether and how callers authenticate.
#[derive(Clone, Debug)]
pub enum AuthSettings {
    /// Everyone may call everything (local runs only).
    Disabled,
    /// Bearer JWTs.
    Jwt(JwtSettings),
}

/// The permissions in a `subject=permission permission;subject=…` list.
pub fn parse_subject_permissions(text: &str) -> Result<SubjectPermissions, String> {
    let mut mapping = Vec::new();
    for entry in text.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let (subject, permissions) =
            entry.split_once('=').ok_or_else(|| format!("{} is not `subject=permission …`", quoted(entry)))?;
        let subject = subject.trim();
        if subject.is_empty() {
            return Err(format!("{} has no subject", quoted(entry)));
        }
        let permissions = permissions
            .split_whitespace()
            .map(|p| Permission::parse(p).ok_or_else(|| format!("{} is not a permission", quoted(p))))
            .collect::<Result<Vec<_>, _>>()?;
        if permissions.is_empty() {
            return Err(format!("{} grants no permission", quoted(subject)));
        }
        mapping.push((subject.to_string(), permissions));
    }
    Ok(SubjectPermissions(mapping))
}

enum Keys {
    Fixed(Arc<KeySet>),
    Fetched(Arc<FetchedKeys>),
}

struct Issuer {
    issuer: String,
    keys: Keys,
    subject_permissions: HashMap<String, Vec<Permission>>,
    /// Its claims' checks, built once per algorithm (the library wants the
    /// one algorithm of the key a token is checked with, never the token's
    /// choice alone).
    validations: Vec<(Algorithm, Validation)>,
}

/// Checks bearer tokens against the configured issuers, keys and claims.
pub struct Authenticator {
    issuers: Vec<Issuer>,
    permissions_claim: String,
    leeway: Duration,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let issuers: Vec<&str> = self.issuers.iter().map(|i| i.issuer.as_str()).collect();
        f.debug_struct("Authenticator").field("issuers", &issuers).finish_non_exhaustive()
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
    /// The issuer's keys were never fetched (its provider has not answered
    /// since start-up): worth retrying.
    KeysUnavailable,
}

impl From<Refusal> for Status {
    fn from(refusal: Refusal) -> Status {
        match refusal {
            Refusal::Missing => Status::unauthenticated("missing credentials: send `authorization: Bearer <JWT>`"),
            Refusal::Expired => Status::unauthenticated("the token has expired"),
            Refusal::Invalid => Status::unauthenticated("invalid token"),
            Refusal::Denied(p) => Status::permission_denied(format!("missing permission {}", p.as_str())),
            Refusal::KeysUnavailable => {
                Status::unavailable("the identity provider's signing keys could not be fetched yet; try again shortly")
            }
        }
    }
}

impl Authenticator {
    /// Loads the keys `settings` names (fetching those that are fetched,
    /// once); a missing or malformed key file is an error naming the file.
    pub async fn load(settings: &JwtSettings, metrics: &KeyMetrics) -> anyhow::Result<Self> {
        anyhow::ensure!(!settings.issuers.is_empty(), "no issuer is configured");
        let mut issuers = Vec::new();
        for issuer in &settings.issuers {
            let keys = match &issuer.keys {
                KeySource::Fetched(fetch) => Keys::Fetched(
                    FetchedKeys::start(&issuer.issuer, fetch, settings.key_refresh, metrics.clone()).await?,
                ),
                file => Keys::Fixed(Arc::new(KeySet::from_file(file)?)),
            };
            let validations = SIGNATURE_ALGORITHMS
                .iter()
                .map(|&algorithm| {
                    let mut validation = Validation::new(algorithm);
                    validation.set_issuer(&[&issuer.issuer]);
                    validation.set_audience(&[&issuer.audience]);
                    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
                    validation.validate_nbf = true;
                    validation.leeway = settings.leeway.as_secs();
                    (algorithm, validation)
                })
                .collect();
            issuers.push(Issuer {
                issuer: issuer.issuer.clone(),
                keys,
                subject_permissions: issuer.subject_permissions.0.iter().cloned().collect(),
                validations,
            });
        }
        Ok(Authenticator { issuers, permissions_claim: settings.permissions_claim.clone(), leeway: settings.leeway })
    }

    /// Keeps fetched keys fresh until `stop`.
    pub fn keep_keys_fresh(&self, stop: &CancellationToken) {
        for issuer in &self.issuers {
            if let Keys::Fetched(keys) = &issuer.keys {
                tokio::spawn(keys.clone().keep_fresh(stop.clone()));
            }
        }
    }

    /// Verifies the bearer token in `authorization` (the header's value).
    pub async fn verify(&self, authorization: Option<&str>) -> Result<(Principal, Vec<Permission>), Refusal> {
        let token = authorization
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(Refusal::Missing)?;
        let header = jsonwebtoken::decode_header(token).map_err(|err| invalid("header", &err.to_string()))?;
        let issuer = self.issuer_of(token)?;
        let keys = issuer.keys_for(header.kid.as_deref()).await?;
        let mut refusal = Refusal::Invalid;
        for key in keys.candidates(header.alg, header.kid.as_deref()) {
            let Some((_, validation)) = issuer.validations.iter().find(|(a, _)| *a == key.algorithm) else {
                continue;
            };
            match jsonwebtoken::decode::<HashMap<String, serde_json::Value>>(token, &key.key, validation) {
                Ok(data) => return Ok(self.principal(issuer, &data.claims)),
                Err(err) if matches!(err.kind(), jsonwebtoken::errors::ErrorKind::ExpiredSignature) => {
                    refusal = Refusal::Expired;
                }
                Err(err) => tracing::debug!(reason = %err, "token refused"),
            }
        }
        Err(refusal)
    }

    /// The issuer the token says it is from (checked again, with the
    /// signature, by the validation); with one issuer, that one.
    fn issuer_of(&self, token: &str) -> Result<&Issuer, Refusal> {
        if let [only] = self.issuers.as_slice() {
            return Ok(only);
        }
        #[derive(serde::Deserialize)]
        struct Claims {
            iss: Option<String>,
        }
        let payload = token.split('.').nth(1).ok_or_else(|| invalid("format", "no payload"))?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|err| invalid("payload", &err.to_string()))?;
        let claims: Claims = serde_json::from_slice(&bytes).map_err(|err| invalid("payload", &err.to_string()))?;
        let iss = claims.iss.ok_or_else(|| invalid("iss", "missing"))?;
        self.issuers.iter().find(|i| i.issuer == iss).ok_or_else(|| invalid("iss", "not a configured issuer"))
    }

    fn principal(&self, issuer: &Issuer, claims: &HashMap<String, serde_json::Value>) -> (Principal, Vec<Permission>) {
        let subject = claims.get("sub").and_then(|v| v.as_str()).unwrap_or("").to_string();
        let permissions = match claims.get(&self.permissions_claim) {
            Some(serde_json::Value::Array(values)) => {
                values.iter().filter_map(|v| v.as_str()).filter_map(Permission::parse).collect()
            }
            Some(serde_json::Value::String(s)) => s.split_whitespace().filter_map(Permission::parse).collect(),
            // No claim at all: what the issuer's mapping grants the subject.
            None => issuer.subject_permissions.get(&subject).cloned().unwrap_or_default(),
            _ => Vec::new(),
        };
        let exp = claims.get("exp").and_then(|v| v.as_u64()).unwrap_or(0);
        let principal = Principal {
            subject,
            // The same leeway the check allowed.
            expires_at: UNIX_EPOCH
                .checked_add(Duration::from_secs(exp) + self.leeway)
                .unwrap_or(UNIX_EPOCH + Duration::from_secs(u64::from(u32::MAX))),
        };
        (principal, permissions)
    }
}

impl Issuer {
    /// The keys to check a token with `kid` against: fetched again first
    /// when the key is not in hand (the provider rotated), within the
    /// refetch limit.
    async fn keys_for(&self, kid: Option<&str>) -> Result<Arc<KeySet>, Refusal> {
        match &self.keys {
            Keys::Fixed(keys) => Ok(keys.clone()),
            Keys::Fetched(fetched) => match (fetched.current(), kid) {
                (Some(keys), Some(kid)) if !keys.has_kid(kid) => {
                    tracing::debug!(issuer = %self.issuer, kid = %quoted(kid), "unknown key id; fetching the keys again");
                    Ok(fetched.refetch().await.unwrap_or(keys))
                }
                (Some(keys), _) => Ok(keys),
                (None, _) => fetched.refetch().await.ok_or(Refusal::KeysUnavailable),
            },
        }
    }
}

fn invalid(what: &str, reason: &str) -> Refusal {
    tracing::debug!(part = what, reason, "token refused");
    Refusal::Invalid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_what_they_need() {
        assert_eq!(access("/grpc.health.v1.Health/Check"), Access::Open);
        assert_eq!(access("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"), Access::Open);
        assert_eq!(
            access("/cudly.recommendations.v1.RecommendationsService/WatchFreshness"),
            Access::Needs(Permission::ViewRecommendations)
        );
        assert_eq!(
            access("/cudly.recommendations.v1.AccountsService/DeleteAccount"),
            Access::Needs(Permission::AdminAccounts)
        );
        assert_eq!(
            access("/cudly.recommendations.v1.NotificationsService/SendTestNotice"),
            Access::Needs(Permission::AdminNotifications)
        );
        assert_eq!(access("/some.Other/Thing"), Access::Authenticated);
    }

    #[tokio::test]
    async fn key_files_that_do_not_load_are_named() {
        let dir = std::env::temp_dir().join(format!("cudly-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let short = dir.join("short");
        std::fs::write(&short, "too short\n").unwrap();
        let settings = |keys| JwtSettings {
            issuers: vec![IssuerSettings {
                issuer: "i".into(),
                audience: "a".into(),
                keys,
                subject_permissions: SubjectPermissions::default(),
            }],
            leeway: Duration::from_secs(30),
            permissions_claim: "permissions".into(),
            key_refresh: KeyRefresh {
                every: Duration::from_secs(600),
                min_refetch: Duration::from_secs(30),
                timeout: Duration::from_secs(5),
            },
        };
        let metrics = KeyMetrics::default();
        let load = |keys| {
            let settings = settings(keys);
            let metrics = metrics.clone();
            async move { Authenticator::load(&settings, &metrics).await.unwrap_err().to_string() }
        };
        let err = load(KeySource::Hs256SecretFile(short.clone())).await;
        assert!(err.contains("at least 32 bytes"), "{err}");
        let err = load(KeySource::PublicKeyPemFile(short.clone())).await;
        assert!(err.contains("not an RSA or EC public key"), "{err}");
        let err = load(KeySource::JwksFile(dir.join("missing"))).await;
        assert!(err.contains("missing"), "{err}");
        let err = load(KeySource::Fetched(FetchSettings {
            jwks_url: Some("https://idp.example.com/keys".into()),
            ca_file: Some(short.clone()),
            token_file: None,
        }))
        .await;
        assert!(err.contains("no PEM certificate"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn subject_permissions_parse_and_bad_ones_are_named() {
        let parsed = parse_subject_permissions(
            "system:serviceaccount:cudly:scheduler=recommendations:view; ops = accounts:admin recommendations:view; \
             oncall=notifications:admin",
        )
        .unwrap();
        assert_eq!(
            parsed.0,
            [
                ("system:serviceaccount:cudly:scheduler".to_string(), vec![Permission::ViewRecommendations]),
                ("ops".to_string(), vec![Permission::AdminAccounts, Permission::ViewRecommendations]),
                ("oncall".to_string(), vec![Permission::AdminNotifications]),
            ]
        );
        for p in [Permission::ViewRecommendations, Permission::AdminAccounts, Permission::AdminNotifications] {
            assert_eq!(Permission::parse(p.as_str()), Some(p), "{p:?} round-trips");
        }
        assert!(parse_subject_permissions("").unwrap().0.is_empty());
        assert!(parse_subject_permissions("no-equals").unwrap_err().contains("not `subject=permission"));
        assert!(parse_subject_permissions("=recommendations:view").unwrap_err().contains("no subject"));
        assert!(parse_subject_permissions("a=").unwrap_err().contains("grants no permission"));
        let err = parse_subject_permissions(&format!("a={}", "x".repeat(10_000))).unwrap_err();
        assert!(err.contains("is not a permission") && err.len() < 200, "{err}");
    }
}
