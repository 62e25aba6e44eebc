//! Opaque keyset page tokens. A token carries the last row's sort key and a
//! fingerprint of the filters it was issued for, so a token replayed with
//! other filters is refused instead of silently skipping rows; a checksum
//! refuses a token that was altered or truncated. (Tokens are not secret
//! and not signed: a deliberately forged one can only name another position
//! in rows the caller may list anyway.)

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
    let mut bytes = serde_json::to_vec(&Envelope { f: filters, k: key }).expect("page keys serialize");
    let sum = checksum(&bytes);
    bytes.extend_from_slice(&sum.to_le_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
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
    let (json, sum) = bytes.split_at_checked(bytes.len().saturating_sub(8)).ok_or_else(invalid)?;
    if sum.len() != 8 || checksum(json).to_le_bytes() != sum {
        return Err(invalid());
    }
    let envelope: Envelope<K> = serde_json::from_slice(json).map_err(|_| invalid())?;
    if envelope.f != filters {
        return Err(Error::InvalidArgument(
            "page_token: issued for other filters; repeat the request's filters or start from the first page".into(),
        ));
    }
    Ok(Some(envelope.k))
}

/// A stable fingerprint of a request's filters (FNV-1a over their text).
pub fn fingerprint(parts: &[&str]) -> u64 {
    fnv1a(0xcbf2_9ce4_8422_2325, parts.iter().flat_map(|p| p.bytes().chain(std::iter::once(0x1f))))
}

/// The token checksum: FNV-1a from another offset than the fingerprint's.
fn checksum(bytes: &[u8]) -> u64 {
    fnv1a(0x6c62_272e_07bb_0142, bytes.iter().copied())
}

fn fnv1a(offset: u64, bytes: impl Iterator<Item = u8>) -> u64 {
    bytes.fold(offset, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
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

    // Fuzzing the decoder: whatever arrives, an answer and never a panic.
    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2_000))]

        #[test]
        fn any_string_decodes_to_a_page_or_a_field_error(token in ".{0,300}") {
            match decode::<(u64, uuid::Uuid)>(&token, 7) {
                Ok(None) => proptest::prop_assert!(token.is_empty()),
                Ok(Some(_)) => proptest::prop_assert!(false, "an arbitrary string was taken for a token: {token:?}"),
                Err(Error::InvalidArgument(msg)) => proptest::prop_assert!(msg.starts_with("page_token:")),
                Err(other) => proptest::prop_assert!(false, "{other:?}"),
            }
        }

        #[test]
        fn any_altered_token_is_refused(bits in proptest::prelude::any::<u64>(), at in 0usize..200, to in 0u8..64) {
            let token = encode(7, &(bits, uuid::Uuid::from_u64_pair(bits, !bits)));
            proptest::prop_assert_eq!(decode::<(u64, uuid::Uuid)>(&token, 7).unwrap(), Some((bits, uuid::Uuid::from_u64_pair(bits, !bits))));
            let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let mut altered = token.clone().into_bytes();
            let at = at % altered.len();
            altered[at] = alphabet[usize::from(to)];
            let altered = String::from_utf8(altered).unwrap();
            // The last character may carry only padding bits.
            if altered != token && at + 1 < token.len() {
                proptest::prop_assert!(decode::<(u64, uuid::Uuid)>(&altered, 7).is_err(), "{altered} was accepted");
            }
            let truncated = &token[..at];
            proptest::prop_assert!(decode::<(u64, uuid::Uuid)>(truncated, 7).map_or(true, |page| page.is_none()));
        }
    }
}
