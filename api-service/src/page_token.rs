//! Opaque keyset page tokens. A token carries the last row's sort key and a
//! fingerprint of the filters it was issued for, so a token replayed with
//! other filters (or tampered with) is refused instead of silently skipping
//! rows.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Longest token accepted; real ones are far shorter.
const MAX_TOKEN_LEN: usize = 2048;

#[derive(Serialize, Deserialize)]
struct Envelope<K> {
    /// Fingerprint of the filters.
    f: u64,
    /// The last row's key.
    k: K,
}

/// Encodes `key` for the filters fingerprinted by `filters`.
pub fn encode<K: Serialize>(filters: u64, key: &K) -> String {
    let json = serde_json::to_vec(&Envelope { f: filters, k: key }).expect("page keys serialize");
    URL_SAFE_NO_PAD.encode(json)
}

/// Decodes a token; an empty token means the first page.
pub fn decode<K: DeserializeOwned>(token: &str, filters: u64) -> Result<Option<K>, Error> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || Error::InvalidArgument("page_token: not a token this service issued".into());
    if token.len() > MAX_TOKEN_LEN {
        return Err(invalid());
    }
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let envelope: Envelope<K> = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if envelope.f != filters {
        return Err(Error::InvalidArgument(
            "page_token: issued for other filters; repeat the request's filters or start from the first page".into(),
        ));
    }
    Ok(Some(envelope.k))
}

/// A stable fingerprint of a request's filters (FNV-1a over their text).
pub fn fingerprint(parts: &[&str]) -> u64 {
    parts
        .iter()
        .flat_map(|p| p.bytes().chain(std::iter::once(0x1f)))
        .fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_refuse_other_filters_and_garbage() {
        let key = (12.5_f64, "aws/1".to_string());
        let token = encode(7, &key);
        assert_eq!(decode::<(f64, String)>(&token, 7).unwrap(), Some(key));
        assert!(decode::<(f64, String)>(&token, 8).unwrap_err().to_string().contains("other filters"));
        assert!(decode::<(f64, String)>("not base64!", 7).unwrap_err().to_string().starts_with("page_token"));
        assert!(decode::<(f64, String)>(&URL_SAFE_NO_PAD.encode("{}"), 7).is_err());
        assert!(decode::<(f64, String)>(&"A".repeat(5000), 7).is_err());
        assert_eq!(decode::<(f64, String)>("", 7).unwrap(), None);
    }

    #[test]
    fn fingerprints_separate_fields() {
        assert_ne!(fingerprint(&["ab", "c"]), fingerprint(&["a", "bc"]));
    }
}
