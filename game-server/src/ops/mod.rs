//! Running the server in production: the open-file limit, a graceful drain, and the HTTP
//! endpoint for metrics, health and readiness (`--metrics-addr`):
//!
//! * `GET /metrics`: every counter in the Prometheus text format (`metrics.rs`);
//! * `GET /healthz`: `200` while every I/O thread is alive and none has been busy for more
//!   than [`LOOP_BUSY_LIMIT`], `503` with the reason otherwise or once the service stops;
//! * `GET /readyz`: `200` while a new player would be accepted, `503` while draining,
//!   full (`--max-sessions` open), unhealthy or stopping.
//!
//! docs/operations.md explains each metric, the drain and how to watch them.

mod drain;
mod health;
mod http;
mod limits;
mod metrics;

use crate::stats::StatsSource;
use health::{LoopHealth, Readiness};
use http::{HttpServer, Limits, Response, Routes};
use log::info;
use prometheus_client::registry::Registry;
use std::io;
use std::net::SocketAddr;

pub(crate) use drain::Drain;
pub use drain::DrainReport;
pub use health::LOOP_BUSY_LIMIT;
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
}

impl Pages {
    /// Why the service is unhealthy, or `None`.
    fn unhealthy(&self) -> Option<String> {
        if self.source.service.is_stopping() {
            return Some("stopping".to_owned());
        }
        let loops: Vec<LoopHealth> = self.source.loops().iter().map(LoopHealth::from).collect();
        health::unhealthy(&loops, LOOP_BUSY_LIMIT)
    }

    fn readiness(&self) -> Readiness {
        let listener = &self.source.listener;
        Readiness {
            stopping: self.source.service.is_stopping(),
            draining: listener.is_closed(),
            unhealthy: self.unhealthy(),
            players: listener.active_sessions(),
            max_players: listener.max_sessions(),
        }
    }
}

impl Routes for Pages {
    fn get(&self, path: &str) -> Option<Response> {
        Some(match path {
            "/metrics" => match metrics::render(&self.registry) {
                Ok(text) => Response {
                    status: 200,
                    content_type: metrics::CONTENT_TYPE,
                    body: text.into_bytes(),
                },
                Err(_) => Response::text(500, "cannot encode the metrics"),
            },
            "/healthz" => match self.unhealthy() {
                None => Response::text(200, "ok"),
                Some(reason) => Response::text(503, &reason),
            },
            "/readyz" => match health::ready(&self.readiness()) {
                Ok(()) => Response::text(200, "ready"),
                Err(reason) => Response::text(503, &reason),
            },
            _ => return None,
        })
    }
}

/// The running endpoint of a [`GameServer`](crate::GameServer).
pub(crate) struct Endpoint(HttpServer);

impl Endpoint {
    /// Serves the pages for the server behind `source` on `addr`, on a thread of its own.
    pub(crate) fn start(addr: SocketAddr, source: StatsSource) -> io::Result<Self> {
        let registry = metrics::registry(source.clone());
        let pages = Pages { source, registry };
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
