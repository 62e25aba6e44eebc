//! Quoting what a caller sent back in an error message: escaped, and
//! bounded whatever its length, so an error stays small and printable.

/// At most this many characters of a value are quoted.
pub const MAX_QUOTED_CHARS: usize = 80;

/// `text` as a Rust string literal, cut at [`MAX_QUOTED_CHARS`] characters
/// with `…` after the closing quote when cut.
pub fn quoted(text: &str) -> String {
    let head: String = text.chars().take(MAX_QUOTED_CHARS).collect();
    if text.chars().count() > MAX_QUOTED_CHARS { format!("{head:?}…") } else { format!("{head:?}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_escaped_and_bounded() {
        assert_eq!(quoted("a\"b\n"), r#""a\"b\n""#);
        let long = "x".repeat(10_000);
        let q = quoted(&long);
        assert_eq!(q.chars().count(), MAX_QUOTED_CHARS + 3, "two quotes and the ellipsis");
        assert!(q.ends_with("\"…"));
    }
}
