//! HTML sanitising of user text: only `b`, `i`, `em` and `strong` survive, with no attributes.
//! Done with ammonia (html5ever underneath), a maintained, well-tested sanitiser.

use std::collections::HashSet;
use std::sync::LazyLock;

static CLEANER: LazyLock<ammonia::Builder<'static>> = LazyLock::new(|| {
    let mut builder = ammonia::Builder::empty();
    builder
        .tags(HashSet::from(["b", "i", "em", "strong"]))
        .clean_content_tags(HashSet::from(["script", "style"]))
        .strip_comments(true);
    builder
});

/// Returns the text with every tag but `b`, `i`, `em`, `strong` removed and every attribute
/// dropped. Text with no markup characters is returned unchanged without parsing.
pub fn sanitize(text: &str) -> String {
    let plain = !text
        .bytes()
        .any(|b| matches!(b, b'<' | b'>' | b'&' | b'\r' | b'\0' | 0xC2));
    if plain {
        return text.to_owned();
    }
    CLEANER.clean(text).to_string()
}

#[cfg(test)]
mod tests {
    use super::sanitize;

    #[test]
    fn keeps_allowed_tags_without_attributes() {
        assert_eq!(
            sanitize("<b onclick=\"x()\">bold</b> <i>it</i>"),
            "<b>bold</b> <i>it</i>"
        );
        assert_eq!(
            sanitize("<em>e</em><strong>s</strong>"),
            "<em>e</em><strong>s</strong>"
        );
    }

    #[test]
    fn removes_everything_else() {
        assert_eq!(sanitize("<script>alert(1)</script>hi"), "hi");
        assert_eq!(sanitize("<img src=x onerror=alert(1)>"), "");
        assert_eq!(sanitize("<a href=\"javascript:x\">link</a>"), "link");
        assert_eq!(sanitize("1 < 2 & 3"), "1 &lt; 2 &amp; 3");
    }

    #[test]
    fn plain_text_is_untouched() {
        assert_eq!(
            sanitize("hello world 123 ünïcode"),
            "hello world 123 ünïcode"
        );
    }
}
