//! Verification keys: the set one issuer signs with, loaded from a file or
//! from a JWKS document (RFC 7517) fetched from the identity provider.

use std::path::Path;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

use secrecy::{ExposeSecret as _, SecretString};

use super::KeySource;

/// Every algorithm a key may verify (see `signing_algorithm`).
pub(super) const SIGNATURE_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::HS256,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// The shortest HS256 secret accepted: RFC 7518 (3.2) asks for a key at
/// least as long as the hash, 256 bits.
pub const MIN_HS256_SECRET_BYTES: usize = 32;

/// Reads an HS256 shared secret: the file's content without its trailing
/// newline, refused when shorter than [`MIN_HS256_SECRET_BYTES`]. The
/// service verifies with it and `cudlyctl token` signs with it, so both
/// accept the same secrets.
pub fn read_hs256_secret(path: &Path) -> anyhow::Result<SecretString> {
    let secret = String::from_utf8(cudly_core::files::read_file(path)?)
        .map_err(|_| anyhow::anyhow!("{}: not UTF-8 text", path.display()))?;
    let secret = secret.trim_end_matches(['\n', '\r']);
    anyhow::ensure!(
        secret.len() >= MIN_HS256_SECRET_BYTES,
        "{}: an HS256 secret needs at least {MIN_HS256_SECRET_BYTES} bytes, it has {}",
        path.display(),
        secret.len()
    );
    Ok(SecretString::from(secret.to_string()))
}

/// One verification key.
pub(super) struct Key {
    /// The `kid` it is published under, if any.
    pub(super) kid: Option<String>,
    pub(super) key: DecodingKey,
    /// The one algorithm it verifies (never chosen by the token).
    pub(super) algorithm: Algorithm,
}

/// The keys of one issuer.
#[derive(Default)]
pub(super) struct KeySet(Vec<Key>);

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("KeySet").field(&self.kids()).finish()
    }
}

impl KeySet {
    /// Loads a file source; a missing or malformed file is an error naming
    /// it. Fetched sources are not files: see `remote`.
    pub(super) fn from_file(source: &KeySource) -> anyhow::Result<KeySet> {
        let keys = match source {
            KeySource::Hs256SecretFile(path) => {
                let secret = read_hs256_secret(path)?;
                let key = DecodingKey::from_secret(secret.expose_secret().as_bytes());
                vec![Key { kid: None, key, algorithm: Algorithm::HS256 }]
            }
            KeySource::PublicKeyPemFile(path) => {
                let pem = read(path)?;
                let (key, algorithm) = if let Ok(key) = DecodingKey::from_rsa_pem(pem.as_bytes()) {
                    (key, Algorithm::RS256)
                } else if let Ok(key) = DecodingKey::from_ec_pem(pem.as_bytes()) {
                    (key, Algorithm::ES256)
                } else {
                    anyhow::bail!("{}: not an RSA or EC public key in PEM", path.display());
                };
                vec![Key { kid: None, key, algorithm }]
            }
            KeySource::JwksFile(path) => {
                return KeySet::from_jwks(&read(path)?).map_err(|err| anyhow::anyhow!("{}: {err}", path.display()));
            }
            KeySource::Fetched(_) => anyhow::bail!("fetched keys are not read from a file"),
        };
        Ok(KeySet(keys))
    }

    /// The signing keys of a JWKS document. Keys this service cannot use
    /// (encryption keys, symmetric or unknown types, curves other than
    /// P-256 and P-384) are skipped, as a provider may publish them beside
    /// its signing keys; a document with no usable key is an error.
    pub(super) fn from_jwks(text: &str) -> Result<KeySet, String> {
        #[derive(serde::Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let document: Document =
            serde_json::from_str(text).map_err(|err| format!("not a JWKS document (an object with `keys`): {err}"))?;
        let mut keys = Vec::new();
        for value in document.keys {
            // One key in a form this library does not know must not make
            // the provider's other keys unusable.
            let Ok(jwk) = serde_json::from_value::<Jwk>(value) else { continue };
            let Some(algorithm) = signing_algorithm(&jwk) else { continue };
            let key = DecodingKey::from_jwk(&jwk).map_err(|err| {
                format!("key {} does not load: {err}", jwk.common.key_id.as_deref().unwrap_or("without kid"))
            })?;
            keys.push(Key { kid: jwk.common.key_id.clone(), key, algorithm });
        }
        if keys.is_empty() {
            return Err("no RSA or EC (P-256, P-384) signing key in the JWKS".into());
        }
        Ok(KeySet(keys))
    }

    /// The keys that may have signed a token with this header: the same
    /// algorithm, and the same `kid` when both name one.
    pub(super) fn candidates<'a>(&'a self, alg: Algorithm, kid: Option<&'a str>) -> impl Iterator<Item = &'a Key> {
        self.0
            .iter()
            .filter(move |k| k.algorithm == alg && (k.kid.is_none() || kid.is_none() || k.kid.as_deref() == kid))
    }

    /// Whether a key is published under `kid`.
    pub(super) fn has_kid(&self, kid: &str) -> bool {
        self.0.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// The key ids, for logs.
    pub(super) fn kids(&self) -> Vec<String> {
        self.0.iter().map(|k| k.kid.clone().unwrap_or_else(|| "-".into())).collect()
    }

    /// How many keys there are.
    pub(super) fn len(&self) -> usize {
        self.0.len()
    }
}

/// The algorithm a published key verifies: its `alg` when it names a
/// signature algorithm that fits the key type (RFC 7518 §3.1), else the
/// default of its type (RS256 for RSA, ES256/ES384 by curve). `None` for
/// keys that are not for signatures.
fn signing_algorithm(jwk: &Jwk) -> Option<Algorithm> {
    if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
        return None;
    }
    match (&jwk.algorithm, jwk.common.key_algorithm) {
        (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Some(Algorithm::RS256),
        (AlgorithmParameters::RSA(_), Some(KeyAlgorithm::RS384)) => Some(Algorithm::RS384),
        (AlgorithmParameters::RSA(_), Some(KeyAlgorithm::RS512)) => Some(Algorithm::RS512),
        (AlgorithmParameters::RSA(_), Some(KeyAlgorithm::PS256)) => Some(Algorithm::PS256),
        (AlgorithmParameters::RSA(_), Some(KeyAlgorithm::PS384)) => Some(Algorithm::PS384),
        (AlgorithmParameters::RSA(_), Some(KeyAlgorithm::PS512)) => Some(Algorithm::PS512),
        (AlgorithmParameters::EllipticCurve(ec), None | Some(KeyAlgorithm::ES256))
            if ec.curve == EllipticCurve::P256 =>
        {
            Some(Algorithm::ES256)
        }
        (AlgorithmParameters::EllipticCurve(ec), None | Some(KeyAlgorithm::ES384))
            if ec.curve == EllipticCurve::P384 =>
        {
            Some(Algorithm::ES384)
        }
        _ => None,
    }
}

fn read(path: &Path) -> anyhow::Result<String> {
    String::from_utf8(cudly_core::files::read_file(path)?)
        .map_err(|_| anyhow::anyhow!("{}: not UTF-8 text", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_keys_are_skipped_and_usable_ones_kept() {
        // An RSA signing key as providers publish it (RFC 7517 appendix A.1
        // shape), beside an encryption key, a symmetric key and a key type
        // this library does not parse.
        let rsa = serde_json::json!({"kty": "RSA", "kid": "sig-1", "use": "sig", "alg": "RS256", "e": "AQAB",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"});
        let encryption = serde_json::json!({"kty": "RSA", "kid": "enc-1", "use": "enc", "e": "AQAB", "n": "0vx7"});
        let symmetric = serde_json::json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"});
        let unknown = serde_json::json!({"kty": "PQC", "kid": "future"});
        let doc = serde_json::json!({"keys": [encryption, symmetric, unknown, rsa]}).to_string();
        let set = KeySet::from_jwks(&doc).unwrap();
        assert_eq!(set.kids(), ["sig-1"]);
        assert_eq!(set.candidates(Algorithm::RS256, Some("sig-1")).count(), 1);
        assert_eq!(set.candidates(Algorithm::RS256, Some("other")).count(), 0);
        assert_eq!(set.candidates(Algorithm::HS256, Some("sig-1")).count(), 0, "the token never picks the algorithm");
        assert!(set.has_kid("sig-1") && !set.has_kid("enc-1"));
    }

    #[test]
    fn documents_without_a_usable_key_are_refused_with_a_reason() {
        assert!(KeySet::from_jwks("[]").unwrap_err().contains("not a JWKS document"));
        assert!(KeySet::from_jwks(r#"{"keys": []}"#).unwrap_err().contains("no RSA or EC"));
        let only_symmetric = r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#;
        assert!(KeySet::from_jwks(only_symmetric).unwrap_err().contains("no RSA or EC"));
    }
}
