//! The chat rules on their own: over SQLite, the in-memory session store
//! and the local bus (no server, no sockets).

use std::sync::Arc;

use iyagi_bus::{Hub, LocalBus};
use iyagi_chat::{CatchUp, ChatError, ChatLimits, ChatService, RecordingNotifier};
use iyagi_protocol::chat::{MemberRole, MessageKind};
use iyagi_protocol::ws::SyncPosition;
use iyagi_session::MemorySessionStore;
use iyagi_store::{NewUser, Storage};
use iyagi_testkit::TestDb;
use serde_json::json;
use uuid::Uuid;

struct World {
    chat: ChatService,
    store: Arc<dyn Storage>,
    _db: TestDb,
}

async fn world(limits: ChatLimits) -> World {
    let db = TestDb::sqlite();
    let store = db.open().await;
    let bus = Arc::new(LocalBus::new(Arc::new(Hub::new())));
    let chat = ChatService::new(
        store.clone(),
        Arc::new(MemorySessionStore::new()),
        bus,
        Arc::new(RecordingNotifier::default()),
        limits,
    );
    World {
        chat,
        store,
        _db: db,
    }
}

impl World {
    async fn user(&self, name: &str) -> Uuid {
        let id = Uuid::now_v7();
        self.store
            .create_user(&NewUser {
                id,
                username: name.to_owned(),
                password_hash: None,
                external_issuer: None,
                external_subject: None,
                created_at_ms: 1,
            })
            .await
            .unwrap();
        id
    }

    async fn say(&self, me: Uuid, room: Uuid, id: &str) -> i64 {
        self.chat
            .send(
                me,
                "phone",
                room,
                id,
                MessageKind::Text,
                &json!({"text": id}),
            )
            .await
            .unwrap()
            .message
            .seq
    }

    async fn roles(&self, me: Uuid, room: Uuid) -> Vec<(Uuid, MemberRole)> {
        let detail = self.chat.room_detail(me, room).await.unwrap();
        detail.members.iter().map(|m| (m.user.id, m.role)).collect()
    }
}

#[tokio::test]
async fn membership_rules_owner_heir_and_direct_rooms() {
    let w = world(ChatLimits::default()).await;
    let (owner, second, third, outsider) = (
        w.user("owner").await,
        w.user("second").await,
        w.user("third").await,
        w.user("outsider").await,
    );
    let group = w
        .chat
        .create_group(owner, "g", &[second])
        .await
        .unwrap()
        .room
        .id;
    // Any member adds; adding a member again changes nothing.
    assert!(
        w.chat
            .add_member(second, group, third)
            .await
            .unwrap()
            .changed
    );
    assert!(
        !w.chat
            .add_member(owner, group, third)
            .await
            .unwrap()
            .changed
    );
    assert!(matches!(
        w.chat.add_member(outsider, group, outsider).await,
        Err(ChatError::NotAMember)
    ));
    // Only the owner removes others; anyone leaves.
    assert!(matches!(
        w.chat.remove_member(second, group, third).await,
        Err(ChatError::Forbidden(_))
    ));
    assert!(
        w.chat
            .remove_member(third, group, third)
            .await
            .unwrap()
            .changed
    );
    assert!(
        w.chat
            .add_member(owner, group, third)
            .await
            .unwrap()
            .changed
    );
    // The owner leaves: the longest-standing remaining member is the heir.
    assert!(
        w.chat
            .remove_member(owner, group, owner)
            .await
            .unwrap()
            .changed
    );
    assert_eq!(
        w.roles(second, group).await,
        vec![(second, MemberRole::Owner), (third, MemberRole::Member)]
    );
    // Direct rooms never change members.
    let direct = w.chat.open_direct(owner, second).await.unwrap().room.id;
    assert_eq!(
        w.chat.open_direct(second, owner).await.unwrap().room.id,
        direct
    );
    assert!(matches!(
        w.chat.add_member(owner, direct, third).await,
        Err(ChatError::Validation(_))
    ));
    assert!(matches!(
        w.chat.open_direct(owner, owner).await,
        Err(ChatError::Validation(_))
    ));
}

#[tokio::test]
async fn group_limits_are_checked_before_anything_is_stored() {
    let w = world(ChatLimits::default()).await;
    let owner = w.user("owner").await;
    for title in ["", "   ", &"x".repeat(101), "tab\there"] {
        assert!(
            matches!(
                w.chat.create_group(owner, title, &[]).await,
                Err(ChatError::Validation(_))
            ),
            "{title:?}"
        );
    }
    let too_many: Vec<Uuid> = (0..1000).map(|_| Uuid::now_v7()).collect();
    assert!(matches!(
        w.chat.create_group(owner, "big", &too_many).await,
        Err(ChatError::Validation(_))
    ));
    assert!(matches!(
        w.chat
            .create_group(owner, "ghosts", &[Uuid::now_v7()])
            .await,
        Err(ChatError::NotFound(_))
    ));
    let list = w.chat.room_list(owner, None, None).await.unwrap();
    assert!(list.rooms.is_empty(), "nothing was stored");
}

#[tokio::test]
async fn catch_up_replays_up_to_max_replay_and_reloads_beyond() {
    let w = world(ChatLimits {
        max_replay: 5,
        ..ChatLimits::default()
    })
    .await;
    let (alice, bob, eve) = (
        w.user("alice").await,
        w.user("bob").await,
        w.user("eve").await,
    );
    let room = w.chat.open_direct(alice, bob).await.unwrap().room.id;
    let mut last = 1;
    for i in 0..8 {
        last = w.say(alice, room, &format!("m{i}")).await;
    }
    let position = |after_seq| SyncPosition {
        room_id: room,
        after_seq,
    };
    assert_eq!(
        w.chat.catch_up(bob, position(1)).await.unwrap(),
        CatchUp::Reload { latest_seq: last },
        "8 missing, more than max_replay"
    );
    let CatchUp::Replay(plan) = w.chat.catch_up(bob, position(last - 5)).await.unwrap() else {
        panic!("5 missing is a replay");
    };
    assert_eq!((plan.from_seq(), plan.latest_seq()), (last - 5, last));
    let page = w.chat.replay_page(&plan, plan.from_seq()).await.unwrap();
    let seqs: Vec<i64> = page.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, ((last - 4)..=last).collect::<Vec<_>>());
    // A position beyond the end counts as the end.
    let CatchUp::Replay(plan) = w.chat.catch_up(bob, position(last + 100)).await.unwrap() else {
        panic!("nothing to replay is a replay of nothing");
    };
    assert_eq!(plan.from_seq(), last);
    assert!(matches!(
        w.chat.catch_up(bob, position(-1)).await,
        Err(ChatError::Validation(_))
    ));
    assert!(matches!(
        w.chat.catch_up(eve, position(0)).await,
        Err(ChatError::NotAMember)
    ));
}

#[tokio::test]
async fn unread_counts_and_the_room_list_cursor() {
    let w = world(ChatLimits::default()).await;
    let (alice, bob) = (w.user("alice").await, w.user("bob").await);
    let room = w.chat.open_direct(alice, bob).await.unwrap().room.id;
    let seq = w.say(alice, room, "hi").await;
    w.say(alice, room, "there").await;
    let states = w.chat.room_states(bob).await.unwrap();
    assert_eq!(states[0].unread, 2);
    let read = w.chat.read(bob, "phone", room, seq).await.unwrap();
    assert_eq!((read.read_seq, read.unread), (seq, 1));
    // A member added to a group starts with nothing unread.
    let carol = w.user("carol").await;
    let group = w
        .chat
        .create_group(alice, "g", &[bob])
        .await
        .unwrap()
        .room
        .id;
    w.say(alice, group, "before carol").await;
    w.chat.add_member(alice, group, carol).await.unwrap();
    let carol_states = w.chat.room_states(carol).await.unwrap();
    assert_eq!(carol_states[0].unread, 0);
    // Room list pages, and only this server's cursors are accepted.
    let first = w.chat.room_list(bob, None, Some(1)).await.unwrap();
    assert_eq!(first.rooms.len(), 1);
    let cursor = first.next_cursor.expect("a second page");
    let second = w.chat.room_list(bob, Some(&cursor), Some(1)).await.unwrap();
    assert_eq!(second.rooms.len(), 1);
    assert_ne!(second.rooms[0].id, first.rooms[0].id);
    assert!(second.next_cursor.is_none());
    assert!(matches!(
        w.chat.room_list(bob, Some("not-a-cursor"), None).await,
        Err(ChatError::BadCursor)
    ));
    assert!(matches!(
        w.chat.room_list(bob, None, Some(0)).await,
        Err(ChatError::Validation(_))
    ));
}
