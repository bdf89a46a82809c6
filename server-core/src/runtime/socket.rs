//! Socket setup: listening sockets with our backlog, options on every connection, and
//! which `accept` errors mean "out of resources".

use crate::config::Config;
use log::debug;
use mio::net::TcpStream;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// A non-blocking listening socket with our backlog (`std` fixes it at 128) and
/// `SO_REUSEADDR`, so a restarted server can bind while old connections sit in TIME_WAIT.
pub(crate) fn bind_listener(addr: SocketAddr, backlog: u32) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Applies the service's socket options; failures are logged, not fatal.
pub(crate) fn configure_socket(stream: &TcpStream, config: &Config) {
    if let Err(e) = stream.set_nodelay(config.nodelay) {
        debug!("set TCP_NODELAY failed: {e}");
    }
    if let Some(idle) = config.keepalive {
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(idle)
            .with_interval(Duration::from_secs(10));
        if let Err(e) = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive) {
            debug!("set TCP keepalive failed: {e}");
        }
    }
}

/// Out of descriptors or kernel memory: errors that retrying at once cannot fix.
pub(crate) fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}
