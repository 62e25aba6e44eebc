//! Minting the tokens api-service verifies, and the key files it reads.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cudly_api::auth::{AuthSettings, IssuerSettings, JwtSettings, KeySource, SubjectPermissions};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

/// The issuer test tokens carry and test settings require.
pub const ISSUER: &str = "https://issuer.test/";
/// The audience test tokens carry and test settings require.
pub const AUDIENCE: &str = "cudly-api";
/// The HS256 secret of [`hs256`] tokens.
pub const SECRET: &str = "a-test-secret-that-is-long-enough-for-hs256";

/// A directory with the key files a test configures; removed on drop.
pub struct KeyDir(pub PathBuf);

impl KeyDir {
    /// A new, empty directory.
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("cudly-keys-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        KeyDir(dir)
    }

    /// Writes `content` to `name` in the directory; returns its path.
    pub fn write(&self, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, content).unwrap();
        path
    }
}

impl Default for KeyDir {
    fn default() -> Self {
        KeyDir::new()
    }
}

impl Drop for KeyDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// JWT authentication with `keys`, [`ISSUER`], [`AUDIENCE`], no leeway,
/// permissions in the `permissions` claim and the default key refresh.
pub fn settings(keys: KeySource) -> AuthSettings {
    let issuer = IssuerSettings {
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        keys,
        subject_permissions: SubjectPermissions::default(),
    };
    issuers(vec![issuer])
}

/// JWT authentication trusting `issuers`, otherwise as [`settings`].
pub fn issuers(issuers: Vec<IssuerSettings>) -> AuthSettings {
    let AuthSettings::Jwt(defaults) = crate::settings::auth_defaults() else { unreachable!("auth is on") };
    AuthSettings::Jwt(JwtSettings { issuers, leeway: Duration::ZERO, ..defaults })
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// A token signed with `key`: these claims over the defaults (issuer,
/// audience, subject `tester`, valid for an hour, `recommendations:view`).
pub fn token(key: &EncodingKey, alg: Algorithm, claims: serde_json::Value) -> String {
    let mut all = serde_json::json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "tester", "exp": now() + 3600, "permissions": ["recommendations:view"],
    });
    for (k, v) in claims.as_object().expect("claims are a JSON object") {
        all[k] = v.clone();
    }
    jsonwebtoken::encode(&Header::new(alg), &all, key).unwrap()
}

/// A token signed with the HS256 [`SECRET`], with these claims over the
/// defaults.
pub fn hs256(claims: serde_json::Value) -> String {
    token(&EncodingKey::from_secret(SECRET.as_bytes()), Algorithm::HS256, claims)
}
