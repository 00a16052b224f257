//! TCP_NODELAY for PostgreSQL connections, which sqlx 0.9.0 does not set.
//!
//! Why by hand: sqlx 0.9.0 stopped disabling Nagle's algorithm on its
//! sockets (transact-rs/sqlx#4335; the fix, #4336, is merged but not
//! released) and offers no option or socket access to do it. Without it, a
//! statement whose message spans more than one TCP segment (the writer's
//! batch inserts and lookups bind arrays of hundreds of rows) waits for the
//! server's delayed ACK: about 40 ms per such statement, measured as 100 ms
//! per group commit over TCP against 42 ms over a Unix socket. So each new
//! connection looks up its own socket among the process's descriptors, by
//! the server's address, and sets the option. Remove this module once sqlx
//! sets TCP_NODELAY again.

use std::collections::HashSet;
use std::net::SocketAddr;

use sqlx::postgres::PgConnectOptions;

/// The addresses the server's host name resolves to (none when connecting
/// through a Unix socket, which needs no option).
pub(crate) async fn server_addresses(options: &PgConnectOptions) -> HashSet<SocketAddr> {
    if options.get_socket().is_some() {
        return HashSet::new();
    }
    tokio::net::lookup_host((options.get_host(), options.get_port()))
        .await
        .map(|addrs| addrs.collect())
        .unwrap_or_default()
}

/// Sets TCP_NODELAY on this process's TCP sockets connected to one of
/// `servers` that do not have it yet; returns how many it set. It reads
/// every descriptor of the process (tens of thousands on a busy node), so
/// it runs on the blocking pool, once per new database connection.
#[cfg(target_os = "linux")]
pub(crate) fn apply(servers: &HashSet<SocketAddr>) -> usize {
    use std::os::fd::BorrowedFd;

    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    let mut set = 0;
    for entry in entries.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
        if !is_socket {
            continue;
        }
        // SAFETY: `fd` was open a moment ago. Should another thread close
        // it (and the number be reused) meanwhile, the calls below fail or
        // act on a socket that is checked to be a TCP connection to the
        // database server: at worst another such socket gets TCP_NODELAY.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let socket = socket2::SockRef::from(&borrowed);
        let to_server = socket
            .peer_addr()
            .ok()
            .and_then(|peer| peer.as_socket())
            .is_some_and(|peer| servers.contains(&peer));
        if to_server
            && matches!(socket.tcp_nodelay(), Ok(false))
            && socket.set_tcp_nodelay(true).is_ok()
        {
            set += 1;
        }
    }
    set
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn apply(_servers: &HashSet<SocketAddr>) -> usize {
    0
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::collections::HashSet;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn sets_nodelay_on_connections_to_the_server_only() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let other = TcpListener::bind("127.0.0.1:0").unwrap();
        let to_server = TcpStream::connect(server.local_addr().unwrap()).unwrap();
        let to_other = TcpStream::connect(other.local_addr().unwrap()).unwrap();
        let servers = HashSet::from([server.local_addr().unwrap()]);
        assert!(!to_server.nodelay().unwrap());
        assert_eq!(super::apply(&servers), 1);
        assert!(to_server.nodelay().unwrap());
        assert!(!to_other.nodelay().unwrap(), "other sockets are left alone");
        assert_eq!(super::apply(&servers), 0, "already set");
    }

    #[tokio::test]
    async fn a_unix_socket_needs_nothing() {
        let options = |url: &str| url.parse::<sqlx::postgres::PgConnectOptions>().unwrap();
        let unix = options("postgres://u@localhost/db?host=/var/run/postgresql");
        assert!(super::server_addresses(&unix).await.is_empty());
        let tcp = options("postgres://u@127.0.0.1:5432/db");
        assert!(
            super::server_addresses(&tcp)
                .await
                .contains(&"127.0.0.1:5432".parse().unwrap())
        );
    }
}
