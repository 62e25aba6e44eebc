//! What cudlyctl prints: tables for people, or each response as its
//! canonical proto3 JSON (lowerCamelCase names, enums by name, 64-bit
//! integers as strings, timestamps in RFC 3339), one object per line.
//!
//! The JSON comes from the messages' descriptors (the API's own descriptor
//! set, the one served for reflection), so every field added to the
//! contract is printed without a change here.

use std::io::Write as _;
use std::sync::LazyLock;

use anyhow::Context as _;
use cudly_core::money::Amount;
use cudly_proto::google::r#type::Money;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};

/// How responses are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// Aligned columns and sentences.
    Table,
    /// One JSON object per response (per message for streams), each on
    /// its own line.
    Json,
}

/// The descriptors of every message cudlyctl prints.
static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
    let mut pool =
        DescriptorPool::decode(cudly_proto::FILE_DESCRIPTOR_SET).expect("the compiled-in descriptor set decodes");
    pool.decode_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET).expect("the health descriptor set decodes");
    pool
});

/// Prints `message` as one line of JSON.
pub(crate) fn json<M: prost::Name>(message: &M) -> anyhow::Result<()> {
    json_named(message, &M::full_name())
}

/// Prints `message`, whose protobuf type is `full_name`, as one line of
/// JSON.
pub(crate) fn json_named(message: &impl prost::Message, full_name: &str) -> anyhow::Result<()> {
    line(&to_json(message, full_name)?)
}

/// The canonical JSON of `message`. Fields with their default values are
/// printed too, so a script finds every field of the type in every object.
pub(crate) fn to_json(message: &impl prost::Message, full_name: &str) -> anyhow::Result<String> {
    let descriptor = POOL.get_message_by_name(full_name).with_context(|| format!("no descriptor for {full_name}"))?;
    let dynamic = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())
        .with_context(|| format!("{full_name} does not transcode"))?;
    let mut out = serde_json::Serializer::new(Vec::new());
    dynamic.serialize_with_options(&mut out, &SerializeOptions::new().skip_default_fields(false))?;
    Ok(String::from_utf8(out.into_inner())?)
}

/// Writes one line to stdout, flushed, so a stream's reader sees each
/// message as it comes; a reader gone away is an error the caller can stop
/// on.
pub(crate) fn line(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}")?;
    stdout.flush()?;
    Ok(())
}

/// A note for the person at the terminal, on stderr so stdout stays data.
pub(crate) fn note(text: &str) {
    eprintln!("{text}");
}

/// An amount rounded to cents for a table (the exact figure is in the API's
/// answer and in the totals).
pub(crate) fn money_rounded(money: Option<&Money>) -> String {
    match money.and_then(|m| Amount::from_units_and_nanos(m.units, i64::from(m.nanos))) {
        Some(amount) => format!("{:.2}", amount.approx_f64()),
        None => String::new(),
    }
}

/// An amount as its exact decimal.
pub(crate) fn money_exact(money: Option<&Money>) -> String {
    money
        .and_then(|m| Amount::from_units_and_nanos(m.units, i64::from(m.nanos)))
        .map(|a| a.to_string())
        .unwrap_or_default()
}

/// A timestamp for a table, to the second in UTC.
pub(crate) fn time(t: Option<&prost_types::Timestamp>) -> String {
    t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0)))
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use cudly_proto::recommendations::v1 as pb;

    use super::*;

    #[test]
    fn json_is_the_canonical_proto3_mapping() {
        let response = pb::DeleteAccountResponse { recommendations_deleted: 7 };
        assert_eq!(
            to_json(&response, "cudly.recommendations.v1.DeleteAccountResponse").unwrap(),
            r#"{"recommendationsDeleted":"7"}"#
        );
        let account = pb::Account {
            provider: pb::Provider::Gcp as i32,
            external_id: "shop-1".into(),
            created_at: Some(prost_types::Timestamp { seconds: 1_700_000_000, nanos: 5_000_000 }),
            ..Default::default()
        };
        let json: serde_json::Value =
            serde_json::from_str(&to_json(&account, "cudly.recommendations.v1.Account").unwrap()).unwrap();
        assert_eq!(json["provider"], "PROVIDER_GCP");
        assert_eq!(json["externalId"], "shop-1");
        assert_eq!(json["displayName"], "", "defaults are printed");
        assert_eq!(json["createdAt"], "2023-11-14T22:13:20.005Z");
    }
}
