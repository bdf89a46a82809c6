//! `HOST:PORT` as people type it (`localhost:7777`, `0.0.0.0:7777`, `[::1]:7777`), checked
//! when the flag is parsed and resolved when the server starts.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::str::FromStr;

/// An address to listen on: an IP address and port, or a host name and port resolved
/// ([`resolve`](Self::resolve)) when the server starts.
///
/// # Examples
/// ```
/// use game_server::ListenAddr;
///
/// let ip: ListenAddr = "127.0.0.1:0".parse()?;
/// assert_eq!(ip.resolve()?, ["127.0.0.1:0".parse()?]);
///
/// let name: ListenAddr = "localhost:7777".parse()?;
/// assert!(name.resolve()?.iter().all(|a| a.ip().is_loopback()));
///
/// assert!("localhost".parse::<ListenAddr>().is_err()); // no port
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ListenAddr {
    /// A literal address: nothing to resolve.
    Ip(SocketAddr),
    /// A host name, looked up by the system resolver at start.
    Host {
        /// The name as given (`localhost`, `game.example`).
        name: String,
        /// The port.
        port: u16,
    },
}

impl ListenAddr {
    /// The addresses to try: the literal one, or every one the system resolver gives for
    /// the name, in its order (the server binds the first).
    ///
    /// # Errors
    /// The resolver's error.
    pub fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        match self {
            Self::Ip(addr) => Ok(vec![*addr]),
            Self::Host { name, port } => Ok((name.as_str(), *port).to_socket_addrs()?.collect()),
        }
    }
}

impl From<SocketAddr> for ListenAddr {
    fn from(addr: SocketAddr) -> Self {
        Self::Ip(addr)
    }
}

/// Why a text is not a `HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected HOST:PORT (like 127.0.0.1:7777, localhost:7777 or [::1]:7777): {0}")]
pub struct ParseListenAddrError(&'static str);

impl FromStr for ListenAddr {
    type Err = ParseListenAddrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(Self::Ip(addr));
        }
        let (name, port) = s.rsplit_once(':').ok_or(ParseListenAddrError("no port"))?;
        let port = port
            .parse()
            .map_err(|_| ParseListenAddrError("the port is not a number from 0 to 65535"))?;
        // A bracket means an IPv6 literal, and that did not parse above; a colon left in the
        // name means an IPv6 literal without brackets.
        if name.contains(['[', ']', ':']) {
            return Err(ParseListenAddrError(
                "bad IPv6 address (write it as [::1]:PORT)",
            ));
        }
        // RFC 1123 host names: letters, digits, '-' and '.', at most 253 bytes.
        let valid_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
        if name.is_empty() || name.len() > 253 || !name.chars().all(valid_char) {
            return Err(ParseListenAddrError("bad host name"));
        }
        Ok(Self::Host {
            name: name.to_owned(),
            port,
        })
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(addr) => addr.fmt(f),
            Self::Host { name, port } => write!(f, "{name}:{port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_names_and_mistakes() {
        let ok = |s: &str| s.parse::<ListenAddr>().unwrap();
        let bad = |s: &str| s.parse::<ListenAddr>().unwrap_err().to_string();
        assert_eq!(
            ok("0.0.0.0:7777"),
            ListenAddr::Ip("0.0.0.0:7777".parse().unwrap())
        );
        assert_eq!(ok("[::1]:80"), ListenAddr::Ip("[::1]:80".parse().unwrap()));
        assert_eq!(
            ok("game-1.example:9100"),
            ListenAddr::Host {
                name: "game-1.example".into(),
                port: 9100
            }
        );
        assert_eq!(ok("localhost:7777").to_string(), "localhost:7777");
        assert!(bad("localhost").contains("no port"));
        assert!(bad("localhost:").contains("port"));
        assert!(bad("localhost:70000").contains("port"));
        assert!(bad(":7777").contains("host name"));
        assert!(bad("a b:7777").contains("host name"));
        assert!(bad("::1:7777").contains("IPv6"));
        assert!(bad("[::1]x:7777").contains("IPv6"));
    }

    #[test]
    fn localhost_resolves_to_loopback() {
        let addr: ListenAddr = "localhost:0".parse().unwrap();
        let all = addr.resolve().unwrap();
        assert!(!all.is_empty());
        assert!(all.iter().all(|a| a.ip().is_loopback()), "{all:?}");
    }
}
