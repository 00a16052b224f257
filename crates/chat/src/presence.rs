//! Presence: who of a room's members is online and viewing it, and telling
//! a user's contacts when they come online or go offline.

use iyagi_bus::Delivery;
use iyagi_protocol::chat::{MemberPresence, RoomPresence};
use iyagi_protocol::ws::ServerFrame;
use uuid::Uuid;

use crate::ChatError;
use crate::gate::encode;
use crate::service::ChatService;

impl ChatService {
    /// Who of the room's members is online and who is viewing it.
    pub async fn presence(&self, me: Uuid, room: Uuid) -> Result<RoomPresence, ChatError> {
        self.require_member(me, room).await?;
        let members = self.cached_members(room).await?;
        let online = self.sessions.online_many(&members).await?;
        let in_room = self.sessions.in_room_many(&members, room).await?;
        Ok(RoomPresence {
            room_id: room,
            members: members
                .iter()
                .zip(online.iter().zip(in_room))
                .map(|(user_id, (online, in_room))| MemberPresence {
                    user_id: *user_id,
                    online: *online,
                    in_room,
                })
                .collect(),
        })
    }

    /// Tells `user`'s direct peers, and the members of their groups up to
    /// `presence_max_group_members`, that they came online or went offline.
    /// Larger groups are left out: each of N members connecting would
    /// otherwise reach the other N (N² frames and rows whenever a node
    /// restarts); their members ask with `presence` when they open the room.
    pub async fn announce_presence(&self, user: Uuid, online: bool) -> Result<(), ChatError> {
        let contacts = self
            .store
            .contacts(user, self.limits.presence_max_group_members)
            .await?;
        let frame = encode(&ServerFrame::Presence {
            user_id: user,
            online,
        });
        self.bus.deliver(&contacts, Delivery::Frame(frame));
        Ok(())
    }
}
