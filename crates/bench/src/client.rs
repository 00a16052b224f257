//! A lean protocol client: connects from a chosen loopback source address,
//! with small socket buffers (tens of thousands of these live in one
//! process), and parses only the fields the scenarios read.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use anyhow::Context;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::setup::Target;

pub type Ws = WebSocketStream<TcpStream>;
pub type Sink = SplitSink<Ws, Message>;
pub type Stream = SplitStream<Ws>;

/// Source addresses 127.0.0.1 ..= 127.0.0.N spread connections so one
/// (source ip, destination) pair never runs out of ephemeral ports.
pub const SOURCE_ADDRESSES: u8 = 50;

pub fn source_for(index: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 1 + (index % SOURCE_ADDRESSES as usize) as u8)
}

pub async fn connect(target: &Target, token: &str, source: Ipv4Addr) -> anyhow::Result<Ws> {
    let url = url::Url::parse(&target.ws)?;
    let host = url.host_str().context("target host")?;
    let port = url.port().context("target port")?;
    let addr: SocketAddr = format!("{host}:{port}").parse()?;
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    let request = format!("{}?access_token={}", target.ws, token);
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (ws, _) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await?;
    Ok(ws)
}

/// The parts of a server frame the scenarios need.
#[derive(Debug, Deserialize)]
pub struct Frame {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(rename = "ref", default)]
    pub reference: Option<String>,
    #[serde(default)]
    pub message: Option<FrameMessage>,
    #[serde(default)]
    pub code: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct FrameMessage {
    pub seq: i64,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub content: Option<Content>,
}

#[derive(Debug, Deserialize)]
pub struct Content {
    /// Send time, nanoseconds since the generator's epoch.
    #[serde(default)]
    pub t: Option<u64>,
    /// Sender index and message number, for loss and duplicate counting.
    #[serde(default)]
    pub s: Option<u64>,
    #[serde(default)]
    pub n: Option<u64>,
}

pub fn parse(text: &str) -> Option<Frame> {
    serde_json::from_str(text).ok()
}

/// Reads frames until one of `kind` arrives.
pub async fn wait_for(stream: &mut Stream, kind: &str) -> anyhow::Result<Frame> {
    while let Some(message) = stream.next().await {
        let Message::Text(text) = message? else {
            continue;
        };
        let Some(frame) = parse(&text) else { continue };
        if frame.kind == kind {
            return Ok(frame);
        }
        if frame.kind == "error" {
            anyhow::bail!("server error while waiting for {kind}: {text}");
        }
    }
    anyhow::bail!("connection closed while waiting for {kind}")
}

/// The next text frame; `None` when the connection closed or failed.
/// Pings (answered by the library while reading) and other control frames
/// are skipped.
pub async fn next_text(stream: &mut Stream) -> Option<String> {
    loop {
        match stream.next().await? {
            Ok(Message::Text(text)) => return Some(text.to_string()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

pub async fn send_text(sink: &mut Sink, text: String) -> anyhow::Result<()> {
    sink.send(Message::Text(text.into())).await?;
    Ok(())
}

/// A `send` frame carrying timing and identity in its content.
pub fn send_frame(room: &str, sender: u64, n: u64, epoch: Instant, pad: &str) -> String {
    let t = epoch.elapsed().as_nanos() as u64;
    format!(
        r#"{{"type":"send","ref":"{n}","room_id":"{room}","client_msg_id":"{sender}-{n}","kind":"text","content":{{"text":"b{pad}","t":{t},"s":{sender},"n":{n}}}}}"#
    )
}

pub fn sync_frame(rooms: &[(String, i64)]) -> String {
    let rooms: Vec<String> = rooms
        .iter()
        .map(|(room, after)| format!(r#"{{"room_id":"{room}","after_seq":{after}}}"#))
        .collect();
    format!(r#"{{"type":"sync","rooms":[{}]}}"#, rooms.join(","))
}
