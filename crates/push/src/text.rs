//! What a push says. The title is the room's title (groups) or the
//! author's name (direct rooms); the body is the text, shortened, or a
//! placeholder for media. With previews off, both are generic, so the
//! content never reaches Google or Apple.

use iyagi_protocol::chat::MessageKind;

/// Bodies are cut to this many characters (an ellipsis marks the cut).
pub const BODY_MAX_CHARS: usize = 120;

/// The text of a push with previews off.
pub const GENERIC_TITLE: &str = "iyagi";
pub const GENERIC_BODY: &str = "New message";

/// The body for a message of `kind` with `content` (JSON text).
pub fn body(kind: &str, content: &str) -> String {
    match MessageKind::parse(kind) {
        Some(MessageKind::Image) => "Photo".to_owned(),
        Some(MessageKind::Voice) => "Voice message".to_owned(),
        _ => {
            let text = serde_json::from_str::<serde_json::Value>(content)
                .ok()
                .and_then(|v| v.get("text").and_then(|t| t.as_str()).map(str::to_owned))
                .unwrap_or_default();
            shorten(&text, BODY_MAX_CHARS)
        }
    }
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max - 1).collect();
    format!("{}…", cut.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies() {
        assert_eq!(body("text", r#"{"text":"hi"}"#), "hi");
        assert_eq!(body("image", r#"{"object":"x"}"#), "Photo");
        assert_eq!(body("voice", "{}"), "Voice message");
        let long = "가".repeat(300);
        let short = body("text", &serde_json::json!({"text": long}).to_string());
        assert_eq!(short.chars().count(), BODY_MAX_CHARS);
        assert!(short.ends_with('…'));
    }
}
