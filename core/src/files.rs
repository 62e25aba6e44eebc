//! Reading files a service is pointed at (secrets, tokens, PEM), with
//! errors that name the file.

use std::path::Path;

use secrecy::{ExposeSecret as _, SecretString};

/// Reads a file (a secret or PEM), naming it when it cannot.
pub fn read_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|err| anyhow::anyhow!("reading {}: {err}", path.display()))
}

/// Reads a secret kept as one line of text (a database URL with its
/// password): the content without the trailing newline, which must not be
/// empty. Errors name the file and never show the content.
pub fn read_secret_line(path: &Path) -> anyhow::Result<SecretString> {
    let raw = String::from_utf8(read_file(path)?).map_err(|_| anyhow::anyhow!("{}: not UTF-8", path.display()))?;
    let line = raw.trim_end_matches(['\n', '\r']);
    anyhow::ensure!(!line.is_empty(), "{}: the file is empty", path.display());
    Ok(SecretString::from(line.to_string()))
}

/// Reads a token file: its content without the trailing newline, which must
/// not be empty and must be printable ASCII without spaces.
pub fn read_token(path: &Path) -> anyhow::Result<SecretString> {
    let token = read_secret_line(path)?;
    anyhow::ensure!(
        token.expose_secret().bytes().all(|b| b.is_ascii_graphic()),
        "{}: the token must be printable ASCII without spaces",
        path.display()
    );
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_files_are_trimmed_and_checked() {
        let dir = std::env::temp_dir().join(format!("cudly-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "abc123\n").unwrap();
        assert_eq!(read_token(&file).unwrap().expose_secret(), "abc123");
        std::fs::write(&file, "\n").unwrap();
        assert!(read_token(&file).unwrap_err().to_string().contains("empty"));
        std::fs::write(&file, "a b").unwrap();
        assert!(read_token(&file).unwrap_err().to_string().contains("printable"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
