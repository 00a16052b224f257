//! A real WebSocket client for tests. Its reader runs in the background, so
//! it answers the server's pings like any live client, and frames wait in a
//! channel until the test looks at them.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use crate::helpers::{TestApp, Tokens};

type Sink = futures::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Message,
>;

pub enum Event {
    Frame(Value),
    Closed(Option<CloseFrame>),
}

pub struct WsClient {
    sink: Sink,
    events: mpsc::UnboundedReceiver<Event>,
    /// Frames received but not yet matched by an `expect`, in arrival order.
    pending: std::collections::VecDeque<Value>,
    pub ready: Value,
}

const WAIT: Duration = Duration::from_secs(10);

impl WsClient {
    pub async fn connect(app: &TestApp, tokens: &Tokens) -> WsClient {
        let (stream, _) = tokio_tungstenite::connect_async(app.ws_url(&tokens.access))
            .await
            .expect("ws connect");
        let (sink, mut stream) = stream.split();
        let (tx, events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(message) = stream.next().await {
                let event = match message {
                    Ok(Message::Text(text)) => {
                        Event::Frame(serde_json::from_str(&text).expect("server sends JSON"))
                    }
                    Ok(Message::Close(frame)) => Event::Closed(frame),
                    Ok(_) => continue,
                    Err(_) => Event::Closed(None),
                };
                let closed = matches!(event, Event::Closed(_));
                if tx.send(event).is_err() || closed {
                    // Reading on answers the server's close frame (the
                    // closing handshake), as every client library does.
                    while let Some(Ok(_)) = stream.next().await {}
                    return;
                }
            }
            let _ = tx.send(Event::Closed(None));
        });
        let mut client = WsClient {
            sink,
            events,
            pending: Default::default(),
            ready: Value::Null,
        };
        client.ready = client.expect_type("ready").await;
        client
    }

    /// Connects and starts live delivery with an empty sync.
    pub async fn connect_live(app: &TestApp, tokens: &Tokens) -> WsClient {
        let mut client = WsClient::connect(app, tokens).await;
        client.send(json!({"type": "sync"})).await;
        client.expect_type("synced").await;
        client
    }

    pub async fn send(&mut self, frame: Value) {
        self.sink
            .send(Message::Text(frame.to_string().into()))
            .await
            .expect("ws send");
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.sink.send(message).await.expect("ws send");
    }

    /// The next frame, whatever it is.
    pub async fn next(&mut self) -> Value {
        if let Some(frame) = self.pending.pop_front() {
            return frame;
        }
        match tokio::time::timeout(WAIT, self.events.recv()).await {
            Ok(Some(Event::Frame(frame))) => frame,
            Ok(Some(Event::Closed(frame))) => panic!("connection closed: {frame:?}"),
            Ok(None) => panic!("connection gone"),
            Err(_) => panic!("no frame within {WAIT:?}"),
        }
    }

    /// The first frame (buffered or new) that satisfies `pred`; frames
    /// passed over stay buffered for later calls.
    pub async fn expect(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(index) = self.pending.iter().position(&pred) {
            return self.pending.remove(index).expect("index in range");
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.events.recv()).await {
                Ok(Some(Event::Frame(frame))) if pred(&frame) => return frame,
                Ok(Some(Event::Frame(frame))) => self.pending.push_back(frame),
                Ok(Some(Event::Closed(frame))) => {
                    panic!("closed while waiting for {what}: {frame:?}")
                }
                Ok(None) => panic!("connection gone while waiting for {what}"),
                Err(_) => panic!("no {what} within {WAIT:?}"),
            }
        }
    }

    pub async fn expect_type(&mut self, kind: &str) -> Value {
        self.expect(kind, |f| f["type"] == kind).await
    }

    /// The next `message` frame (skipping acks, presence, typing...).
    pub async fn expect_message(&mut self) -> Value {
        self.expect_type("message").await["message"].clone()
    }

    pub async fn expect_error(&mut self, code: &str) -> Value {
        let frame = self.expect_type("error").await;
        assert_eq!(frame["code"], code, "{frame}");
        frame
    }

    /// Asserts that no frame matching `pred` arrives within `within`.
    pub async fn expect_none(&mut self, within: Duration, pred: impl Fn(&Value) -> bool) {
        if let Some(frame) = self.pending.iter().find(|f| pred(f)) {
            panic!("unexpected frame: {frame}");
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.events.recv()).await {
                Ok(Some(Event::Frame(frame))) => {
                    assert!(!pred(&frame), "unexpected frame: {frame}")
                }
                Ok(Some(Event::Closed(frame))) => panic!("closed: {frame:?}"),
                Ok(None) => panic!("connection gone"),
                Err(_) => return,
            }
        }
    }

    /// Waits for the server to close the connection; returns the close code
    /// (`None` when the socket just dropped).
    pub async fn expect_closed(&mut self) -> Option<u16> {
        loop {
            match tokio::time::timeout(WAIT, self.events.recv()).await {
                Ok(Some(Event::Frame(_))) => continue,
                Ok(Some(Event::Closed(frame))) => return frame.map(|f| u16::from(f.code)),
                Ok(None) => return None,
                Err(_) => panic!("not closed within {WAIT:?}"),
            }
        }
    }

    /// Sends a text message and returns its ack.
    pub async fn say(&mut self, room: &str, client_msg_id: &str, text: &str) -> Value {
        self.send(json!({"type": "send", "ref": client_msg_id, "room_id": room, "client_msg_id": client_msg_id,
                         "kind": "text", "content": {"text": text}}))
            .await;
        let ack = self
            .expect("ack", |f| f["type"] == "ack" && f["ref"] == client_msg_id)
            .await;
        ack["message"].clone()
    }

    pub async fn close(mut self) {
        let _ = self.sink.send(Message::Close(None)).await;
    }
}
