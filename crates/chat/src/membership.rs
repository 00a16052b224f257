//! Membership rules (documented in docs/protocol.md):
//! - Direct rooms have exactly their two members, forever.
//! - In a group, any member may add members; only the owner may remove
//!   others; anyone may leave. When the owner leaves, the longest-standing
//!   remaining member becomes owner.
//! - A group has at most `GROUP_MAX_MEMBERS` members, checked in the
//!   transaction that adds.

use iyagi_protocol::chat::{GROUP_MAX_MEMBERS, MessageKind};
use iyagi_store::{MemberRole, MembershipChange, StoreError};
use serde_json::json;
use uuid::Uuid;

use crate::ChatError;
use crate::service::{ChatService, Membership};

impl ChatService {
    pub async fn add_member(
        &self,
        me: Uuid,
        room: Uuid,
        user: Uuid,
    ) -> Result<Membership, ChatError> {
        self.require_group_member(me, room).await?;
        if self.store.user_by_id(user).await?.is_none() {
            return Err(ChatError::NotFound("no such user"));
        }
        let _guard = self.lock_room_settled(room).await?;
        let message = self
            .store
            .change_membership(&MembershipChange {
                room_id: room,
                user_id: user,
                add_as: Some(MemberRole::Member),
                max_members: Some(GROUP_MAX_MEMBERS as u32),
                promote: None,
                message: self.system_message(
                    room,
                    me,
                    MessageKind::MemberJoined,
                    json!({"user_id": user, "by": me}),
                ),
            })
            .await
            .map_err(|e| match e {
                StoreError::LimitReached => ChatError::Validation(format!(
                    "a group has at most {GROUP_MAX_MEMBERS} members"
                )),
                other => other.into(),
            })?;
        if let Some(message) = &message {
            self.forget_members(room);
            let members = self.cached_members(room).await?;
            self.publish(&members, message);
        }
        Ok(Membership {
            changed: message.is_some(),
        })
    }

    pub async fn remove_member(
        &self,
        me: Uuid,
        room: Uuid,
        user: Uuid,
    ) -> Result<Membership, ChatError> {
        let my_membership = self.require_group_member(me, room).await?;
        if user != me && my_membership.role != MemberRole::Owner {
            return Err(ChatError::Forbidden(
                "only the room's owner may remove other members",
            ));
        }
        let members = self.store.members(room).await?;
        let Some(target) = members.iter().find(|m| m.user_id == user) else {
            return Err(ChatError::NotFound("no such member"));
        };
        // Members come oldest first: the heir is the first one who stays.
        let promote = (target.role == MemberRole::Owner)
            .then(|| {
                members
                    .iter()
                    .find(|m| m.user_id != user)
                    .map(|m| m.user_id)
            })
            .flatten();
        let _guard = self.lock_room_settled(room).await?;
        let message = self
            .store
            .change_membership(&MembershipChange {
                room_id: room,
                user_id: user,
                add_as: None,
                max_members: None,
                promote,
                message: self.system_message(
                    room,
                    me,
                    MessageKind::MemberLeft,
                    json!({"user_id": user, "by": me}),
                ),
            })
            .await?;
        if let Some(message) = &message {
            self.forget_members(room);
            // The removed member learns of it too.
            let recipients: Vec<Uuid> = members.iter().map(|m| m.user_id).collect();
            self.publish(&recipients, message);
        }
        Ok(Membership {
            changed: message.is_some(),
        })
    }
}
