//! Limits on what clients send, checked once at the edge of the service.

use iyagi_protocol::chat::{
    CLIENT_MSG_ID_MAX, CONTENT_MAX_BYTES, EMOJI_MAX_BYTES, MessageKind, PAGE_MAX, TEXT_MAX_CHARS,
    TITLE_MAX_CHARS,
};
use serde_json::Value;

use crate::ChatError;

fn invalid(message: impl Into<String>) -> ChatError {
    ChatError::Validation(message.into())
}

/// Messages or rooms per page when the client does not say.
pub const PAGE_DEFAULT: u32 = 50;

/// A page size: 1 to [`PAGE_MAX`], [`PAGE_DEFAULT`] when absent. One rule
/// for every paginated answer; out of range is refused, not clamped.
pub fn page_limit(limit: Option<i64>) -> Result<u32, ChatError> {
    match limit {
        None => Ok(PAGE_DEFAULT),
        Some(n) if (1..=i64::from(PAGE_MAX)).contains(&n) => Ok(n as u32),
        Some(n) => Err(invalid(format!("limit must be 1 to {PAGE_MAX}, not {n}"))),
    }
}

pub fn client_msg_id(id: &str) -> Result<(), ChatError> {
    let len = id.chars().count();
    if len == 0 || len > CLIENT_MSG_ID_MAX || id.chars().any(char::is_control) {
        return Err(invalid(format!(
            "client_msg_id must be 1 to {CLIENT_MSG_ID_MAX} characters without control characters"
        )));
    }
    Ok(())
}

/// Checks a client-written message and returns its content as JSON text.
pub fn content(kind: MessageKind, content: &Value) -> Result<String, ChatError> {
    match kind {
        MessageKind::Text => {
            let text = content
                .as_object()
                .and_then(|o| o.get("text"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    invalid("a text message's content must be an object with a string field text")
                })?;
            let chars = text.chars().count();
            if chars == 0 || chars > TEXT_MAX_CHARS {
                return Err(invalid(format!(
                    "text must be 1 to {TEXT_MAX_CHARS} characters"
                )));
            }
        }
        MessageKind::Image | MessageKind::Voice => {
            return Err(invalid(
                "image and voice content is written by the server from the upload (see media_id)",
            ));
        }
        other => {
            return Err(invalid(format!(
                "messages of kind {} are written by the server",
                other.as_str()
            )));
        }
    }
    let encoded = content.to_string();
    if encoded.len() > CONTENT_MAX_BYTES {
        return Err(invalid(format!(
            "content must be at most {CONTENT_MAX_BYTES} bytes of JSON"
        )));
    }
    Ok(encoded)
}

/// The upload an `image` or `voice` message names: `{"media_id": "<uuid>"}`.
/// Anything else in the content is ignored: the server writes it.
pub fn media_id(content: &Value) -> Result<uuid::Uuid, ChatError> {
    content
        .as_object()
        .and_then(|o| o.get("media_id"))
        .and_then(Value::as_str)
        .and_then(|id| uuid::Uuid::parse_str(id).ok())
        .ok_or_else(|| {
            invalid("an image or voice message's content must be {\"media_id\": \"<id of your upload>\"}")
        })
}

pub fn emoji(emoji: &str) -> Result<(), ChatError> {
    if emoji.is_empty()
        || emoji.len() > EMOJI_MAX_BYTES
        || emoji.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(invalid(format!(
            "emoji must be 1 to {EMOJI_MAX_BYTES} bytes without spaces"
        )));
    }
    Ok(())
}

/// A group title: 1 to 100 characters, not only whitespace, no control
/// characters; kept as given (what the OpenAPI schema's pattern says).
pub fn title(title: &str) -> Result<String, ChatError> {
    let len = title.chars().count();
    if len == 0
        || len > TITLE_MAX_CHARS
        || title.chars().all(char::is_whitespace)
        || title.chars().any(char::is_control)
    {
        return Err(invalid(format!(
            "title must be 1 to {TITLE_MAX_CHARS} characters, not only whitespace, without control characters"
        )));
    }
    Ok(title.to_owned())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn text_content_rules() {
        assert!(content(MessageKind::Text, &json!({"text": "hi", "mentions": []})).is_ok());
        for bad in [
            json!({}),
            json!({"text": ""}),
            json!({"text": 5}),
            json!("hi"),
            json!({"text": "x".repeat(4001)}),
        ] {
            assert!(content(MessageKind::Text, &bad).is_err(), "{bad}");
        }
        assert!(
            content(MessageKind::Read, &json!({"up_to_seq": 1})).is_err(),
            "markers are server-written"
        );
        assert!(
            content(MessageKind::Image, &json!({"object": "x"})).is_err(),
            "media content is the server's to write"
        );
        assert!(media_id(&json!({"media_id": "0190a0a0-0000-7000-8000-000000000000"})).is_ok());
        assert!(media_id(&json!({"media_id": "nope"})).is_err());
        assert!(media_id(&json!({"width": 1})).is_err());
        let big = json!({"text": "x", "pad": "y".repeat(CONTENT_MAX_BYTES)});
        assert!(content(MessageKind::Text, &big).is_err());
    }

    #[test]
    fn ids_emoji_titles() {
        assert!(client_msg_id("c-1").is_ok());
        assert!(client_msg_id("").is_err());
        assert!(client_msg_id(&"x".repeat(65)).is_err());
        assert!(emoji("👍").is_ok());
        assert!(emoji("").is_err() && emoji("a b").is_err());
        assert_eq!(title("  friends ").unwrap(), "  friends ", "kept as given");
        assert!(title("   ").is_err());
    }
}
