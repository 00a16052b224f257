//! The bare relay: the same WebSocket library and the same frame shapes as
//! iyagi, with no authentication, no storage, no sessions. Whatever iyagi
//! costs above this is the price of what it does on top.
//!
//! Frames: `sync {rooms:[{room_id}]}` joins rooms and answers `synced`;
//! `send {ref, room_id, client_msg_id, content}` joins the room, numbers the
//! message per room, delivers a `message` frame to every member (the sender
//! included, as iyagi does) and answers `ack`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::mpsc;

/// A member: connection id and its outbound queue.
type Member = (u64, mpsc::Sender<Arc<str>>);

#[derive(Default)]
struct Rooms {
    members: HashMap<String, Vec<Member>>,
    seq: HashMap<String, i64>,
}

#[derive(Clone, Default)]
struct Relay {
    rooms: Arc<Mutex<Rooms>>,
    next_id: Arc<AtomicU64>,
}

#[derive(Deserialize)]
struct Incoming {
    #[serde(rename = "type")]
    kind: String,
    #[serde(rename = "ref", default)]
    reference: Option<String>,
    #[serde(default)]
    room_id: Option<String>,
    #[serde(default)]
    client_msg_id: Option<String>,
    #[serde(default)]
    content: Option<Box<serde_json::value::RawValue>>,
    #[serde(default)]
    rooms: Vec<SyncRoom>,
}

#[derive(Deserialize)]
struct SyncRoom {
    room_id: String,
}

pub fn router() -> Router {
    Router::new()
        .route("/v1/ws", get(upgrade))
        .with_state(Relay::default())
}

pub async fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    eprintln!("relay listening on {}", listener.local_addr()?);
    // TCP_NODELAY, as iyagi sets it.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router()).await?;
    Ok(())
}

async fn upgrade(State(relay): State<Relay>, upgrade: WebSocketUpgrade) -> Response {
    upgrade
        // The same read buffer as iyagi's default (`ws.read_buffer_bytes`).
        .read_buffer_size(2 * 1024)
        .write_buffer_size(0)
        .on_upgrade(move |socket| connection(relay, socket))
}

async fn connection(relay: Relay, socket: WebSocket) {
    let id = relay.next_id.fetch_add(1, Ordering::Relaxed);
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Arc<str>>(256);
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if sink
                .send(Message::Text(frame.as_ref().into()))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let _ = tx.try_send(Arc::from(r#"{"type":"ready"}"#));
    let mut joined: Vec<String> = Vec::new();
    while let Some(Ok(message)) = stream.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let Ok(frame) = serde_json::from_str::<Incoming>(&text) else {
            continue;
        };
        match frame.kind.as_str() {
            "sync" => {
                for room in frame.rooms {
                    join(&relay, &mut joined, &room.room_id, id, &tx);
                }
                let _ = tx.try_send(Arc::from(r#"{"type":"synced","rooms":[]}"#));
            }
            "send" => {
                let (Some(room), Some(client_id), Some(content)) =
                    (frame.room_id, frame.client_msg_id, frame.content)
                else {
                    continue;
                };
                join(&relay, &mut joined, &room, id, &tx);
                let reference = frame.reference.unwrap_or_default();
                let (seq, members) = {
                    let mut rooms = relay.rooms.lock().unwrap_or_else(|p| p.into_inner());
                    let seq = rooms.seq.entry(room.clone()).or_insert(0);
                    *seq += 1;
                    let seq = *seq;
                    (seq, rooms.members.get(&room).cloned().unwrap_or_default())
                };
                let message = format!(
                    r#"{{"room_id":"{room}","seq":{seq},"client_msg_id":"{client_id}","kind":"text","content":{}}}"#,
                    content.get()
                );
                let frame: Arc<str> =
                    Arc::from(format!(r#"{{"type":"message","message":{message}}}"#));
                for (_, member) in &members {
                    let _ = member.try_send(frame.clone());
                }
                let _ = tx.try_send(Arc::from(format!(
                    r#"{{"type":"ack","ref":"{reference}","duplicate":false,"message":{message}}}"#
                )));
            }
            _ => {}
        }
    }
    {
        let mut rooms = relay.rooms.lock().unwrap_or_else(|p| p.into_inner());
        for room in &joined {
            if let Some(members) = rooms.members.get_mut(room) {
                members.retain(|(member, _)| *member != id);
            }
        }
    }
    drop(tx);
    writer.abort();
}

fn join(relay: &Relay, joined: &mut Vec<String>, room: &str, id: u64, tx: &mpsc::Sender<Arc<str>>) {
    if joined.iter().any(|r| r == room) {
        return;
    }
    joined.push(room.to_owned());
    let mut rooms = relay.rooms.lock().unwrap_or_else(|p| p.into_inner());
    rooms
        .members
        .entry(room.to_owned())
        .or_default()
        .push((id, tx.clone()));
}
