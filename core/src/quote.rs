//! Bounding what is quoted back in an error or shown in a table: whatever
//! a caller or a cloud sent, the message stays small (and, quoted,
//! printable).

/// At most this many characters of a value are quoted by [`quoted`].
pub const MAX_QUOTED_CHARS: usize = 80;

/// `text` as a Rust string literal, cut at [`MAX_QUOTED_CHARS`] characters
/// with `…` after the closing quote when cut.
pub fn quoted(text: &str) -> String {
    quoted_at_most(text, MAX_QUOTED_CHARS)
}

/// `text` as a Rust string literal, cut at `max` characters with `…` after
/// the closing quote when cut.
pub fn quoted_at_most(text: &str, max: usize) -> String {
    let head: String = text.chars().take(max).collect();
    if text.chars().count() > max { format!("{head:?}…") } else { format!("{head:?}") }
}

/// `text` as it is when it has at most `max` characters; else its first
/// `max - 1` and `…`, so it never takes more than `max`.
pub fn at_most(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        text.chars().take(max.saturating_sub(1)).chain(['…']).collect()
    }
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
        assert_eq!(quoted_at_most("abcdef", 3), "\"abc\"…");
    }

    #[test]
    fn cut_text_never_exceeds_its_bound() {
        assert_eq!(at_most("short", 10), "short");
        assert_eq!(at_most("exactly10!", 10), "exactly10!");
        assert_eq!(at_most("one character too long", 10), "one chara…");
        assert_eq!(at_most("ééééé", 3).chars().count(), 3, "characters, not bytes");
    }
}
