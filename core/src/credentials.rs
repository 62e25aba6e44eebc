//! How an account is reached: per provider, a reference to its credentials.
//! The database stores references only (an environment variable or a file
//! name); the process reads the secret behind one when it needs it, and no
//! secret value is ever stored, logged or put in an error message.

use std::path::{Component, Path, PathBuf};

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::quote::quoted;

/// What an environment variable holding an account's secret must be called:
/// a reference may not point at the collector's own settings.
pub const ENV_PREFIX: &str = "CUDLY_CLOUD_SECRET_";

/// Where a secret lives: `env:CUDLY_CLOUD_SECRET_…` or `file:/absolute/path`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum SecretRef {
    /// An environment variable of the collector process.
    Env(String),
    /// A file the collector can read (e.g. a mounted Kubernetes Secret).
    File(PathBuf),
}

impl SecretRef {
    /// Reads the secret; a file only inside one of `dirs`. The error names
    /// the reference, never the value (nor any of the file's content).
    pub fn read(&self, dirs: &SecretFileDirs) -> Result<SecretString, String> {
        let value = match self {
            SecretRef::Env(name) => {
                std::env::var(name).map_err(|_| format!("environment variable {name} is not set"))?
            }
            SecretRef::File(path) => dirs.read(path)?,
        };
        let value = value.trim_end_matches(['\n', '\r']);
        if value.is_empty() {
            return Err(format!("{self} is empty"));
        }
        Ok(SecretString::from(value.to_string()))
    }
}

/// Directories no secret file reference may point into, whatever the
/// collector allows: the kernel's views of processes (`/proc/self/environ`
/// holds the collector's own settings), of the system and of devices.
const NEVER_SECRET_DIRS: [&str; 3] = ["/proc", "/sys", "/dev"];

/// Whether `path` is one of [`NEVER_SECRET_DIRS`] or inside one.
fn in_forbidden_dir(path: &Path) -> bool {
    NEVER_SECRET_DIRS.iter().any(|dir| path.starts_with(dir))
}

/// The largest secret file read: a key or a client secret is a few KiB.
const MAX_SECRET_FILE_BYTES: u64 = 1024 * 1024;

/// The directories `file:` references may be read from (the collector's
/// `--secret-file-dirs`), so that an account cannot point the collector at
/// its own settings or any other file it can read. Each must be absolute
/// and outside `/proc`, `/sys` and `/dev`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretFileDirs(Vec<PathBuf>);

impl SecretFileDirs {
    /// `dirs` as given; the checks are those of [`str::parse`].
    pub fn new(dirs: impl IntoIterator<Item = PathBuf>) -> Result<Self, String> {
        let dirs: Vec<PathBuf> = dirs.into_iter().collect();
        for dir in &dirs {
            let plain =
                dir.is_absolute() && dir.components().all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
            if !plain || dir == Path::new("/") || in_forbidden_dir(dir) {
                return Err(format!(
                    "{}: a secret file directory is an absolute path without . or .., not / and not under /proc, \
                     /sys or /dev",
                    quoted(&dir.display().to_string())
                ));
            }
        }
        Ok(SecretFileDirs(dirs))
    }

    /// The directories.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.0
    }

    /// Reads `path` when, with every symbolic link resolved at this moment,
    /// it is a regular file inside one of the directories (also resolved).
    /// Errors name the reference and why, never the content.
    fn read(&self, path: &Path) -> Result<String, String> {
        let shown = path.display();
        let resolved = std::fs::canonicalize(path).map_err(|err| format!("reading file:{shown}: {}", err.kind()))?;
        let inside = !in_forbidden_dir(&resolved)
            && self
                .0
                .iter()
                .filter_map(|dir| std::fs::canonicalize(dir).ok())
                .any(|dir| resolved.starts_with(&dir) && resolved != dir);
        if !inside {
            let allowed: Vec<String> = self.0.iter().map(|d| d.display().to_string()).collect();
            return Err(format!(
                "file:{shown} is not inside a directory secret files may be read from ({}; the collector's \
                 --secret-file-dirs, CUDLY_SECRET_FILE_DIRS)",
                if allowed.is_empty() { "none configured".to_string() } else { allowed.join(", ") }
            ));
        }
        let meta = std::fs::metadata(&resolved).map_err(|err| format!("reading file:{shown}: {}", err.kind()))?;
        if !meta.is_file() {
            return Err(format!("file:{shown} is not a regular file"));
        }
        if meta.len() > MAX_SECRET_FILE_BYTES {
            return Err(format!("file:{shown} is larger than a secret ({} bytes)", meta.len()));
        }
        std::fs::read_to_string(&resolved).map_err(|err| format!("reading file:{shown}: {}", err.kind()))
    }
}

impl std::str::FromStr for SecretFileDirs {
    type Err = String;

    /// Comma-separated directories; empty allows none.
    fn from_str(s: &str) -> Result<Self, String> {
        SecretFileDirs::new(s.split(',').map(str::trim).filter(|d| !d.is_empty()).map(PathBuf::from))
    }
}

impl std::fmt::Display for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "env:{name}"),
            SecretRef::File(path) => write!(f, "file:{}", path.display()),
        }
    }
}

impl std::str::FromStr for SecretRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(name) = s.strip_prefix("env:") {
            let valid = name.len() > ENV_PREFIX.len()
                && name.len() <= 128
                && name.starts_with(ENV_PREFIX)
                && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            return if valid {
                Ok(SecretRef::Env(name.to_string()))
            } else {
                Err(format!(
                    "{}: an environment variable reference names a variable {ENV_PREFIX}… of A-Z, 0-9 and _ \
                     (never one of the collector's own settings, such as its database URL)",
                    quoted(s)
                ))
            };
        }
        if let Some(raw) = s.strip_prefix("file:") {
            let path = Path::new(raw);
            let plain = path.is_absolute()
                && raw.len() <= 4096
                && path.components().all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
            // A reference names one file: never a directory (`/`, a trailing
            // `/`), never the kernel's views (`/proc/self/environ` holds the
            // collector's own settings). Which directories are allowed is the
            // collector's to say (`--secret-file-dirs`); it checks again when
            // it reads, with symbolic links resolved.
            return if !plain {
                Err(format!("{}: a file reference needs an absolute path without . or ..", quoted(s)))
            } else if raw.ends_with('/') || path.parent().is_none() {
                Err(format!("{}: a file reference names a file, not a directory", quoted(s)))
            } else if in_forbidden_dir(path) {
                Err(format!("{}: a file reference may not point into /proc, /sys or /dev", quoted(s)))
            } else {
                Ok(SecretRef::File(path.to_path_buf()))
            };
        }
        // The value is not echoed: it may be the secret itself, pasted here.
        Err("not a secret reference: use env:NAME or file:/path (never the secret itself)".to_string())
    }
}

impl TryFrom<String> for SecretRef {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<SecretRef> for String {
    fn from(r: SecretRef) -> String {
        r.to_string()
    }
}

/// How an AWS account is reached.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwsCredentials {
    /// Role to assume in the account; none uses the ambient credentials
    /// (environment, profile, instance or pod role) directly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// The external id the role's trust policy requires, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// The account is an organization's management (payer) account: one
    /// call covers every linked account, split by account in the response.
    #[serde(default)]
    pub organization: bool,
}

/// How an Azure subscription is reached: an Entra ID app registration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AzureCredentials {
    /// Directory (tenant) id.
    pub tenant_id: String,
    /// Application (client) id.
    pub client_id: String,
    /// Where the client secret is.
    pub client_secret: SecretRef,
}

/// How a GCP project is reached.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcpCredentials {
    /// A service-account key (JSON) behind this reference; none uses the
    /// metadata server (the workload's own service account).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_key: Option<SecretRef>,
    /// The billing account whose spend-based commitment recommendations
    /// (Cloud SQL, Memorystore) belong to this project, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing_account_id: Option<String>,
}

/// An account's credentials reference, by provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "provider", rename_all = "lowercase")]
pub enum Credentials {
    /// AWS.
    Aws(AwsCredentials),
    /// Azure.
    Azure(AzureCredentials),
    /// GCP.
    Gcp(GcpCredentials),
}

/// Shapes of the providers' ids, checked wherever an account is written.
pub mod validate {
    use crate::quote::quoted;

    /// An AWS account id: 12 digits.
    pub fn aws_account_id(s: &str) -> Result<(), String> {
        if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(())
        } else {
            Err(format!("{} is not an AWS account id (12 digits)", quoted(s)))
        }
    }

    /// `arn:aws:iam::<12 digits>:role/<path/name>` (any AWS partition).
    pub fn role_arn(s: &str) -> Result<(), String> {
        let err = || format!("{} is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)", quoted(s));
        let rest = s.strip_prefix("arn:").ok_or_else(err)?;
        let (partition, rest) = rest.split_once(':').ok_or_else(err)?;
        if !matches!(partition, "aws" | "aws-cn" | "aws-us-gov") {
            return Err(err());
        }
        let rest = rest.strip_prefix("iam::").ok_or_else(err)?;
        let (account, role) = rest.split_once(':').ok_or_else(err)?;
        aws_account_id(account).map_err(|_| err())?;
        let name = role.strip_prefix("role/").ok_or_else(err)?;
        let valid_char = |c: char| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c);
        if name.is_empty() || name.len() > 512 || !name.chars().all(valid_char) || name.ends_with('/') {
            return Err(err());
        }
        Ok(())
    }

    /// An STS external id: 2–1224 characters of `[\w+=,.@:/-]`.
    pub fn external_id(s: &str) -> Result<(), String> {
        let valid_char = |c: char| c.is_ascii_alphanumeric() || "_+=,.@:/-".contains(c);
        if (2..=1224).contains(&s.len()) && s.chars().all(valid_char) {
            Ok(())
        } else {
            Err("an external id is 2 to 1224 letters, digits or _+=,.@:/-".to_string())
        }
    }

    /// A UUID in its canonical hyphenated form (Azure tenant, client and
    /// subscription ids).
    pub fn azure_id(what: &str, s: &str) -> Result<(), String> {
        let canonical = uuid::Uuid::parse_str(s).ok().filter(|u| u.hyphenated().to_string() == s.to_ascii_lowercase());
        match canonical {
            Some(_) if s.len() == 36 => Ok(()),
            _ => {
                Err(format!("{} is not an Azure {what} (a UUID like 00000000-0000-0000-0000-000000000000)", quoted(s)))
            }
        }
    }

    /// A GCP project id: 6–30 characters, lower-case letters, digits and
    /// hyphens, starting with a letter, not ending with a hyphen.
    pub fn gcp_project_id(s: &str) -> Result<(), String> {
        let valid = (6..=30).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && !s.ends_with('-')
            && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if valid { Ok(()) } else { Err(format!("{} is not a GCP project id (6-30 of a-z, 0-9, -)", quoted(s))) }
    }

    /// A GCP billing account id: `XXXXXX-XXXXXX-XXXXXX` (hex, upper case).
    pub fn gcp_billing_account_id(s: &str) -> Result<(), String> {
        let parts: Vec<&str> = s.split('-').collect();
        let valid = parts.len() == 3
            && parts.iter().all(|p| p.len() == 6 && p.chars().all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c)));
        if valid {
            Ok(())
        } else {
            Err(format!("{} is not a GCP billing account id (XXXXXX-XXXXXX-XXXXXX)", quoted(s)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::validate::*;
    use super::*;

    #[test]
    fn secret_refs_are_references_never_values() {
        assert_eq!(
            "env:CUDLY_CLOUD_SECRET_AZURE_1".parse::<SecretRef>().unwrap(),
            SecretRef::Env("CUDLY_CLOUD_SECRET_AZURE_1".into())
        );
        assert_eq!("file:/var/run/s".parse::<SecretRef>().unwrap(), SecretRef::File("/var/run/s".into()));
        let env_rule = "an environment variable reference names a variable CUDLY_CLOUD_SECRET_";
        let file_rule = "a file reference needs an absolute path without . or ..";
        let not_a_reference = "not a secret reference: use env:NAME or file:/path";
        for (bad, why) in [
            ("s3cr3t-value", not_a_reference),
            ("env:CUDLY_CLOUD_SECRET_lower", env_rule),
            ("env:", env_rule),
            ("env:DATABASE_URL", env_rule),
            ("env:CUDLY_CLOUD_SECRET_", env_rule),
            ("file:relative", file_rule),
            ("file:/var/run/secrets/../../etc/shadow", file_rule),
            ("", not_a_reference),
        ] {
            let err = bad.parse::<SecretRef>().unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
            if why == not_a_reference {
                assert!(bad.is_empty() || !err.contains(bad), "the value is never echoed: {err}");
            }
        }
        let long = format!("env:CUDLY_CLOUD_SECRET_{}", "x".repeat(60_000));
        assert!(long.parse::<SecretRef>().unwrap_err().len() < 400, "the reference is quoted short");
        let err = "hunter2".parse::<SecretRef>().unwrap_err();
        assert!(err.contains("never the secret itself"), "{err}");
        let none = SecretFileDirs::new([]).unwrap();
        let missing = SecretRef::Env("CUDLY_TEST_SURELY_UNSET_VARIABLE".into()).read(&none).unwrap_err();
        assert!(missing.contains("CUDLY_TEST_SURELY_UNSET_VARIABLE is not set"), "{missing}");
    }

    #[test]
    fn a_file_reference_names_one_file_outside_the_kernels_views() {
        let directory = "a file reference names a file, not a directory";
        let kernel = "may not point into /proc, /sys or /dev";
        let dots = "a file reference needs an absolute path without . or ..";
        for (bad, why) in [
            ("file:/proc/self/environ", kernel),
            ("file:/proc", kernel),
            ("file:/sys/kernel/mm/x", kernel),
            ("file:/dev/zero", kernel),
            ("file:/", directory),
            ("file:/var/run/secrets/cudly/clouds/", directory),
            ("file:secrets/key", dots),
            ("file:", dots),
            ("file:/var/run/secrets/cudly/clouds/../../../../etc/shadow", dots),
        ] {
            let err = bad.parse::<SecretRef>().unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        assert!("file:/processes/key".parse::<SecretRef>().is_ok(), "a prefix of a name is not the directory");
        assert!("file:/etc/shadow".parse::<SecretRef>().is_ok(), "which directories are allowed, the collector says");
    }

    #[test]
    fn a_secret_file_is_read_only_inside_the_allowed_directories_with_links_resolved() {
        let root = std::env::temp_dir().join(format!("cudly-secret-dirs-{}", uuid::Uuid::new_v4()));
        let (allowed, outside) = (root.join("allowed"), root.join("outside"));
        std::fs::create_dir_all(allowed.join("sub")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(allowed.join("sub/key"), "s3cret-inside\n").unwrap();
        std::fs::write(outside.join("key"), "s3cret-outside\n").unwrap();
        std::os::unix::fs::symlink(outside.join("key"), allowed.join("escape")).unwrap();
        std::os::unix::fs::symlink("sub/key", allowed.join("inner-link")).unwrap();
        std::os::unix::fs::symlink("/proc/self/environ", allowed.join("environ")).unwrap();
        let dirs = SecretFileDirs::new([allowed.clone()]).unwrap();
        let read = |path: PathBuf| SecretRef::File(path).read(&dirs);

        use secrecy::ExposeSecret as _;
        assert_eq!(read(allowed.join("sub/key")).unwrap().expose_secret(), "s3cret-inside");
        assert_eq!(
            read(allowed.join("inner-link")).unwrap().expose_secret(),
            "s3cret-inside",
            "links inside stay inside"
        );
        for (path, why) in [
            (outside.join("key"), "is not inside a directory secret files may be read from"),
            (allowed.join("escape"), "is not inside a directory secret files may be read from"),
            (allowed.join("environ"), "is not inside a directory secret files may be read from"),
            (allowed.join("sub"), "is not a regular file"),
            (allowed.clone(), "is not inside"),
            (allowed.join("missing"), "not found"),
        ] {
            let err = read(path.clone()).unwrap_err();
            assert!(err.contains(why), "{}: {err}", path.display());
            assert!(!err.contains("s3cret"), "no content in a message: {err}");
        }
        let none = SecretFileDirs::new([]).unwrap();
        let err = SecretRef::File(allowed.join("sub/key")).read(&none).unwrap_err();
        assert!(err.contains("none configured"), "{err}");
        std::fs::remove_dir_all(&root).unwrap();

        for bad in ["relative", "/", "/proc", "/dev/shm", "/a/../b"] {
            assert!(bad.parse::<SecretFileDirs>().is_err(), "{bad}");
        }
        let parsed: SecretFileDirs = "/var/run/secrets/cudly/clouds, /etc/cudly".parse().unwrap();
        assert_eq!(parsed.dirs(), [PathBuf::from("/var/run/secrets/cudly/clouds"), PathBuf::from("/etc/cudly")]);
    }

    #[test]
    fn credentials_round_trip_through_their_stored_json() {
        let azure = Credentials::Azure(AzureCredentials {
            tenant_id: "a".into(),
            client_id: "b".into(),
            client_secret: SecretRef::Env("CUDLY_CLOUD_SECRET_X".into()),
        });
        let json = serde_json::to_value(&azure).unwrap();
        assert_eq!(json["provider"], "azure");
        assert_eq!(json["client_secret"], "env:CUDLY_CLOUD_SECRET_X");
        assert_eq!(serde_json::from_value::<Credentials>(json).unwrap(), azure);
        let aws: Credentials = serde_json::from_str(r#"{"provider": "aws"}"#).unwrap();
        assert_eq!(aws, Credentials::Aws(AwsCredentials::default()));
    }

    #[test]
    fn provider_ids_are_checked_for_shape() {
        assert!(aws_account_id("123456789012").is_ok());
        assert!(aws_account_id("12345678901").is_err() && aws_account_id("12345678901a").is_err());
        assert!(role_arn("arn:aws:iam::123456789012:role/cudly/ReadCostExplorer").is_ok());
        for bad in ["arn:aws:iam::123:role/x", "arn:aws:s3:::bucket", "arn:aws:iam::123456789012:user/x", "role/x"] {
            assert!(role_arn(bad).is_err(), "{bad}");
        }
        assert!(external_id("cudly-7f3a").is_ok() && external_id("x").is_err() && external_id("a b").is_err());
        assert!(azure_id("subscription id", "0b1f6471-1bf0-4dda-aec3-cb9272f09590").is_ok());
        assert!(azure_id("subscription id", "0b1f64711bf04ddaaec3cb9272f09590").is_err());
        assert!(gcp_project_id("my-project-123").is_ok());
        for bad in ["My-Project", "short", "1project", "project-", "a".repeat(31).as_str()] {
            assert!(gcp_project_id(bad).is_err(), "{bad}");
        }
        assert!(gcp_billing_account_id("01A2B3-C4D5E6-F7A8B9").is_ok() && gcp_billing_account_id("01A2B3").is_err());
    }
}
