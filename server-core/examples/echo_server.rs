//! A PacketSession echo server: every framed packet goes back unchanged.
//!
//! `cargo run -p server-core --example echo_server -- --addr 127.0.0.1:7777`

use bytes::Bytes;
use clap::Parser;
use server_core::{HandlerError, Service, Session, SessionHandler};
use std::net::SocketAddr;

/// Echoes every framed packet ([u16 size][u16 id][body]) back to its sender.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7777")]
    addr: SocketAddr,
}

struct Echo;

impl SessionHandler for Echo {
    fn on_packet(&mut self, session: &Session, frame: &[u8]) -> Result<(), HandlerError> {
        session.send(Bytes::copy_from_slice(frame));
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    let service = Service::builder().build()?;
    let listener = service.listen(args.addr, || Echo)?;
    log::info!("echo server on {} (Ctrl-C to stop)", listener.local_addr());
    loop {
        std::thread::park();
    }
}
