//! Running the server in production: the open-file limit, and the HTTP endpoint for
//! metrics, health and readiness (`--metrics-addr`):
//!
//! * `GET /metrics`: every counter in the Prometheus text format ([`metrics`]);
//! * `GET /healthz`: `200` while the service runs, `503` once it is stopping;
//! * `GET /readyz`: `200` while a new player would be accepted, `503` when
//!   `--max-sessions` are open or the service is stopping.
//!
//! docs/operations.md explains each metric and how to watch them.

mod http;
mod limits;
mod metrics;

use crate::stats::StatsSource;
use http::{HttpServer, Limits, Response, Routes};
use log::info;
use prometheus_client::registry::Registry;
use std::io;
use std::net::SocketAddr;

pub use limits::{
    descriptors_needed, open_file_shortfall, prepare_open_file_limit, raise_open_file_limit,
    OpenFileLimit, RESERVED_DESCRIPTORS,
};

/// Connections the endpoint serves at once (and so descriptors it may hold).
pub const ENDPOINT_CONNECTIONS: usize = 16;

/// The pages of the endpoint.
struct Pages {
    source: StatsSource,
    registry: Registry,
    max_sessions: usize,
}

impl Routes for Pages {
    fn get(&self, path: &str) -> Option<Response> {
        let stopping = self.source.service.is_stopping();
        Some(match path {
            "/metrics" => match metrics::render(&self.registry) {
                Ok(text) => Response {
                    status: 200,
                    content_type: metrics::CONTENT_TYPE,
                    body: text.into_bytes(),
                },
                Err(_) => Response::text(500, "cannot encode the metrics"),
            },
            "/healthz" if stopping => Response::text(503, "stopping"),
            "/healthz" => Response::text(200, "ok"),
            "/readyz" if stopping => Response::text(503, "stopping"),
            "/readyz" if self.source.service.stats().sessions >= self.max_sessions => {
                Response::text(503, "full")
            }
            "/readyz" => Response::text(200, "ready"),
            _ => return None,
        })
    }
}

/// The running endpoint of a [`GameServer`](crate::GameServer).
pub(crate) struct Endpoint(HttpServer);

impl Endpoint {
    /// Serves the pages for the server behind `source` on `addr`, on a thread of its own.
    pub(crate) fn start(
        addr: SocketAddr,
        source: StatsSource,
        max_sessions: usize,
    ) -> io::Result<Self> {
        let registry = metrics::registry(source.clone());
        let pages = Pages {
            source,
            registry,
            max_sessions,
        };
        let limits = Limits {
            max_connections: ENDPOINT_CONNECTIONS,
            ..Limits::default()
        };
        let server = HttpServer::start("game-server-ops", addr, limits, pages)?;
        info!(
            "metrics, health and readiness on {} (/metrics, /healthz, /readyz)",
            server.local_addr()
        );
        Ok(Self(server))
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.0.local_addr()
    }

    pub(crate) fn stop(&mut self) {
        self.0.stop();
    }
}
