//! Accepting connections, with the limits that keep one client from
//! holding the server's sockets.
//!
//! `axum::serve` keeps a connection as long as its client wants: one that
//! never finishes its request headers (slowloris), or sends nothing at all,
//! stays open for good. This loop does what it does (HTTP/1.1 with
//! upgrades, graceful shutdown) plus:
//! - request headers must arrive within `server.header_read_timeout_ms`,
//!   which hyper also applies to an idle keep-alive connection waiting for
//!   its next request;
//! - at most `server.max_connections` connections at once, WebSockets
//!   included (by default the process's open-file limit less a reserve for
//!   storage and the rest);
//! - at most `server.max_unauthenticated_per_address` connections per
//!   client address that are not (yet) an authenticated WebSocket: plain
//!   HTTP connections and upgrades in progress. An authenticated WebSocket
//!   stops counting (its own caps are per user and device, in `ws`).
//!
//! A connection over a cap is answered with a short canned response (when
//! the socket takes it at once) and closed, without reading its request.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::Service as _;

/// The caps and timeouts of the listener.
#[derive(Debug, Clone, Copy)]
pub struct ListenLimits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    /// 0: no per-address cap.
    pub max_unauthenticated_per_address: usize,
}

/// Connections per client address that are not an authenticated WebSocket.
#[derive(Default)]
struct PerAddress {
    // std Mutex: map operations only, never across an await.
    counts: Mutex<HashMap<IpAddr, usize>>,
}

impl PerAddress {
    fn try_add(&self, ip: IpAddr, max: usize) -> bool {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(ip).or_default();
        if max > 0 && *count >= max {
            return false;
        }
        *count += 1;
        true
    }

    fn remove(&self, ip: IpAddr) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = counts.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&ip);
            }
        }
    }
}

/// A connection's place under `server.max_connections`. Requests carry it
/// (as an extension): an upgraded WebSocket keeps it for its whole life,
/// after hyper's part of the connection has ended.
#[derive(Clone)]
pub struct ConnectionPermit(#[allow(dead_code)] Arc<tokio::sync::OwnedSemaphorePermit>);

/// A connection's place in its address's count of unauthenticated
/// connections. Requests carry it (as an extension) so that the WebSocket
/// upgrade can give it up once the client has authenticated.
#[derive(Clone)]
pub struct AddressSlot(Arc<SlotInner>);

struct SlotInner {
    ip: IpAddr,
    released: AtomicBool,
    per_address: Arc<PerAddress>,
}

impl AddressSlot {
    /// This connection no longer counts against its address's cap.
    pub fn release(&self) {
        if !self.0.released.swap(true, Ordering::AcqRel) {
            self.0.per_address.remove(self.0.ip);
        }
    }
}

impl Drop for SlotInner {
    fn drop(&mut self) {
        if !self.released.swap(true, Ordering::AcqRel) {
            self.per_address.remove(self.ip);
        }
    }
}

/// Serves `router` on `listener` until `shutdown` turns true, then lets
/// open HTTP connections finish their requests (graceful shutdown) and
/// returns once all have closed. Upgraded WebSocket connections live on in
/// their own tasks (the gateway closes them).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ListenLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let per_address = Arc::new(PerAddress::default());
    let open = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    // Every connection task holds a clone; closed when all have ended.
    let (alive, mut all_done) = tokio::sync::mpsc::channel::<()>(1);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, most likely: wait for some to close.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            refuse(tcp, peer, Refusal::ServerFull);
            continue;
        };
        if !per_address.try_add(peer.ip(), limits.max_unauthenticated_per_address) {
            refuse(tcp, peer, Refusal::AddressFull);
            continue;
        }
        let slot = AddressSlot(Arc::new(SlotInner {
            ip: peer.ip(),
            released: AtomicBool::new(false),
            per_address: per_address.clone(),
        }));
        // Chat frames are small and latency-bound; Nagle's algorithm would
        // hold a frame back until the previous one is acknowledged.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        let router = router.clone();
        let shutdown = shutdown.clone();
        let alive = alive.clone();
        tokio::spawn(async move {
            let permit = ConnectionPermit(Arc::new(permit));
            serve_connection(tcp, peer, slot, permit, router, limits, shutdown).await;
            drop(alive);
        });
    }
    drop(alive);
    let _ = all_done.recv().await;
}

async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    slot: AddressSlot,
    permit: ConnectionPermit,
    router: Router,
    limits: ListenLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        request.extensions_mut().insert(slot.clone());
        request.extensions_mut().insert(permit.clone());
        // A router is always ready; cloning one is cloning an `Arc`.
        let mut router = router.clone();
        router.call(request.map(axum::body::Body::new))
    });
    // HTTP/1.1 only, on hyper's own connection type: telling HTTP/2's
    // preface apart (hyper-util's `auto`) waits for the first bytes with no
    // deadline at all, before the header timer starts. Clients speak
    // HTTP/1.1 and WebSocket; a proxy in front terminates HTTP/2 and TLS.
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .serve_connection(TokioIo::new(tcp), service)
        .with_upgrades();
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            return;
        }
        _ = shutdown.wait_for(|stop| *stop) => {}
    }
    connection.as_mut().graceful_shutdown();
    if let Err(e) = connection.await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

enum Refusal {
    ServerFull,
    AddressFull,
}

/// Answers a connection over a cap with a canned response, if its socket
/// takes it at once (a refusal must cost no waiting), and closes it.
fn refuse(tcp: TcpStream, peer: SocketAddr, why: Refusal) {
    let (status, code, message) = match why {
        Refusal::ServerFull => (
            "503 Service Unavailable",
            "unavailable",
            "the server is at its connection limit; retry later",
        ),
        Refusal::AddressFull => (
            "429 Too Many Requests",
            "too_many_connections",
            "too many connections from this address",
        ),
    };
    tracing::warn!(%peer, code, "connection refused");
    let body = format!(r#"{{"code":"{code}","message":"{message}"}}"#);
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tcp.try_write(response.as_bytes());
}

/// The connection limit when none is configured: the process's open-file
/// limit, less a reserve for the database pool, log files and the rest.
pub fn default_max_connections() -> usize {
    const RESERVE: usize = 512;
    open_file_limit()
        .map(|limit| limit.saturating_sub(RESERVE).max(64))
        .unwrap_or(10_000)
}

/// The soft `RLIMIT_NOFILE`, read from `/proc` (std has no getrlimit).
fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_connection_limit_leaves_room_for_other_files() {
        let limit = super::open_file_limit().expect("linux /proc/self/limits");
        let default = super::default_max_connections();
        assert!(default < limit && default >= 64, "{default} of {limit}");
    }
}
