//! Transports: byte codecs in front of the same connection core. A transport turns what
//! the socket carries into the game's frame stream and back; the connection core
//! (`crate::connection`) keeps one [`TransportState`] per connection and the event loop
//! never knows which one it drives.
//!
//! | transport | on the wire | state per connection |
//! |---|---|---|
//! | TCP | the frame stream itself | none |
//! | WebSocket (feature `websocket`) | an HTTP upgrade, then binary messages carrying the frame stream | one box: handshake or decoder, the message being filled, the close handshake |

#[cfg(feature = "websocket")]
pub(crate) mod websocket;

/// How a session reaches its peer, from [`Session::transport`](crate::Session::transport).
/// Handlers rarely need it: the same [`SessionHandler`](crate::SessionHandler) serves every
/// transport, and frames arrive the same way on each.
///
/// # Examples
/// ```
/// use server_core::{testing::DetachedSession, Transport};
///
/// let probe = DetachedSession::new();
/// assert_eq!(probe.session().transport(), Transport::Tcp);
/// assert_eq!(Transport::WebSocket.as_str(), "websocket");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Transport {
    /// Frames straight over TCP ([`Service::listen`](crate::Service::listen),
    /// [`Service::connect`](crate::Service::connect)).
    Tcp,
    /// Frames inside binary WebSocket messages (`Service::listen_ws` and
    /// `Service::connect_ws`, feature `websocket`).
    WebSocket,
}

impl Transport {
    /// `tcp` or `websocket`, for logs and metric labels.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::WebSocket => "websocket",
        }
    }
}

/// One connection's transport state, owned by its `Connection`. TCP needs none; the
/// WebSocket state is boxed so a TCP session pays one pointer for the seam (and nothing
/// without the feature).
#[derive(Debug)]
pub(crate) enum TransportState {
    Tcp,
    #[cfg(feature = "websocket")]
    WebSocket(Box<websocket::WsTransport>),
}

impl TransportState {
    pub(crate) fn kind(&self) -> Transport {
        match self {
            TransportState::Tcp => Transport::Tcp,
            #[cfg(feature = "websocket")]
            TransportState::WebSocket(_) => Transport::WebSocket,
        }
    }
}
