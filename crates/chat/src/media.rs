//! `image` and `voice` messages: the content is written from the upload
//! the sender names, never taken from the client, so dimensions and
//! durations cannot be forged.

use iyagi_protocol::chat::MessageKind;
use iyagi_store::{Attach, MediaRecord, MediaUse};
use uuid::Uuid;

use crate::service::{ChatService, now_ms};
use crate::{ChatError, MediaProblem};

impl ChatService {
    /// Attaches the sender's upload to this message (once: a retry of the
    /// same send gets it again) and returns the message's content.
    pub(crate) async fn media_content(
        &self,
        me: Uuid,
        device: &str,
        room: Uuid,
        client_msg_id: &str,
        kind: MessageKind,
        media_id: Uuid,
    ) -> Result<String, ChatError> {
        // A retry of a send already stored (whatever it held) is answered
        // by the store with that message: attach nothing for it, or an
        // upload would be tied to a message that does not show it.
        if let Some(stored) = self
            .store
            .message_by_client_id(room, me, device, client_msg_id)
            .await?
        {
            return Ok(stored.content);
        }
        let using = MediaUse {
            media_id,
            owner_id: me,
            kind: kind.as_str(),
            room_id: room,
            device_id: device,
            client_msg_id,
            now_ms: now_ms(),
        };
        match self.store.attach_media(&using).await? {
            Attach::Attached(record) => Ok(content(&record)),
            Attach::NotFound => Err(ChatError::Media(MediaProblem::NotFound)),
            Attach::WrongKind => Err(ChatError::Media(MediaProblem::WrongKind)),
            Attach::NotReady => Err(ChatError::Media(MediaProblem::NotReady)),
            Attach::AlreadyUsed => Err(ChatError::Media(MediaProblem::AlreadyUsed)),
        }
    }
}

/// The message content of a ready upload: its id, type and size, and what
/// processing learnt (`details`: width, height, blurhash and thumbnails of
/// an image; duration and waveform of a voice file).
fn content(record: &MediaRecord) -> String {
    let mut object = record
        .details
        .as_deref()
        .and_then(|d| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(d).ok())
        .unwrap_or_default();
    object.insert("media_id".to_owned(), record.id.to_string().into());
    object.insert(
        "mime".to_owned(),
        record.mime.clone().unwrap_or_default().into(),
    );
    object.insert("size".to_owned(), record.size_bytes.into());
    serde_json::Value::Object(object).to_string()
}
