//! The protocol's one pattern language: `*` matches any run of characters (none included) and
//! everything else matches itself. A token's `rooms` claim uses it, and so does the
//! conformance runner's session filter. Linear in the text for each `*` (no backtracking blow-up).

/// Whether `text` matches `pattern`.
pub fn matches(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty(); // no `*` at all
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_match_any_run_and_nothing_else_is_special() {
        assert!(matches("general", "general"));
        assert!(!matches("general", "general2"));
        assert!(matches("team-*", "team-a"));
        assert!(matches("team-*", "team-"));
        assert!(!matches("team-*", "teams"));
        assert!(matches("*", "anything"));
        assert!(matches("a*b*c", "aXXbYYc"));
        assert!(matches("a*b*c", "abc"));
        assert!(!matches("a*b*c", "acb"));
        assert!(!matches("ab*ba", "aba"));
        assert!(matches("*-ops", "dev-ops"));
    }
}
