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

/// A request's page size: `default` when unset (0), at most `max` (a
/// larger request gets `max`, AIP-158); negative is INVALID_ARGUMENT.
pub fn page_size(requested: i32, default: i64, max: i64) -> Result<i64, Error> {
    match requested {
        0 => Ok(default),
        n if n < 0 => Err(Error::InvalidArgument(format!("page_size: must be positive, got {n}"))),
        n => Ok(i64::from(n).min(max)),
    }
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

    /// What a mutated token must decode to.
    #[derive(Debug)]
    enum Expect {
        Page,
        NotIssued,
        OtherFilters,
    }

    /// A token for `key` under `filters`, altered one way or another:
    /// each way reaches a different check of the decoder.
    fn mutate(filters: u64, key: (u64, uuid::Uuid), how: u8, at: usize, byte: u8) -> (String, u64, Expect) {
        let envelope = serde_json::to_vec(&Envelope { f: filters, k: key }).unwrap();
        let sealed = |json: &[u8]| {
            let mut bytes = json.to_vec();
            bytes.extend_from_slice(&checksum(json).to_le_bytes());
            URL_SAFE_NO_PAD.encode(bytes)
        };
        match how % 6 {
            // Intact.
            0 => (encode(filters, &key), filters, Expect::Page),
            // One byte of the sealed bytes changed: the checksum refuses it.
            1 => {
                let mut bytes = URL_SAFE_NO_PAD.decode(encode(filters, &key)).unwrap();
                let at = at % bytes.len();
                bytes[at] = if bytes[at] == byte { byte.wrapping_add(1) } else { byte };
                (URL_SAFE_NO_PAD.encode(bytes), filters, Expect::NotIssued)
            }
            // Cut short: too little for a checksum, or the wrong one.
            2 => {
                let bytes = URL_SAFE_NO_PAD.decode(encode(filters, &key)).unwrap();
                (URL_SAFE_NO_PAD.encode(&bytes[..at % bytes.len()]), filters, Expect::NotIssued)
            }
            // A correct checksum over JSON cut short: the JSON check refuses it.
            3 => (sealed(&envelope[..at % envelope.len()]), filters, Expect::NotIssued),
            // A correct checksum over well-formed JSON of another shape.
            4 => (sealed(format!(r#"{{"f":{filters},"k":"{byte}"}}"#).as_bytes()), filters, Expect::NotIssued),
            // Sound, but presented with other filters.
            _ => (encode(filters, &key), filters ^ (u64::from(byte) | 1), Expect::OtherFilters),
        }
    }

    // Fuzzing the decoder: whatever arrives, an answer and never a panic;
    // and tokens built from valid ones reach every check and get its answer.
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
        fn every_altered_token_is_refused_by_the_check_it_reaches(
            filters in proptest::prelude::any::<u64>(),
            bits in proptest::prelude::any::<u64>(),
            how in proptest::prelude::any::<u8>(),
            at in 0usize..256,
            byte in proptest::prelude::any::<u8>(),
        ) {
            let key = (bits, uuid::Uuid::from_u64_pair(bits, !bits));
            let (token, presented, expect) = mutate(filters, key, how, at, byte);
            let got = decode::<(u64, uuid::Uuid)>(&token, presented);
            match (&expect, got) {
                (Expect::Page, Ok(Some(back))) => proptest::prop_assert_eq!(back, key),
                // A cut to nothing is the first page.
                (Expect::NotIssued, Ok(None)) => proptest::prop_assert!(token.is_empty()),
                (Expect::NotIssued, Err(Error::InvalidArgument(msg))) => {
                    proptest::prop_assert_eq!(msg, "page_token: not a token this service issued")
                }
                (Expect::OtherFilters, Err(Error::InvalidArgument(msg))) => {
                    proptest::prop_assert!(msg.contains("issued for other filters"), "{}", msg)
                }
                (expect, got) => proptest::prop_assert!(false, "{expect:?}: got {got:?} for {token:?}"),
            }
        }
    }
}
