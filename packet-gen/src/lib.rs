//! `packet-gen` reads the ServerCore course's `PDL.xml` packet schema, unchanged, and
//! generates byte-compatible code for every end of the connection:
//!
//! * Rust for the server (and Rust test clients): [`generate_rust`], or [`build_rust`] from a
//!   `build.rs`;
//! * C# for Unity clients, a drop-in replacement for the course generator's output:
//!   [`generate_csharp`];
//! * JavaScript (an ES module plus TypeScript declarations) for browser and WebGL clients:
//!   [`generate_js`], or [`build_js`] from a `build.rs` to embed it in a server binary.
//!
//! The wire format and the PDL format are described in `docs/protocol.md` of the workspace.
//!
//! As a library (the usual build-dependency) it needs only an XML reader; the
//! `packet-gen` command-line tool is behind the `cli` feature:
//! `cargo run -p packet-gen --features cli -- --lang js --input PDL.xml --out web/`.
//!
//! # Layout
//!
//! The crate reads as schema → model → emitters:
//!
//! * `schema` — the PDL parser ([`parse_pdl`]) and its validation, reporting
//!   [`SchemaError`]s as `file:line:column: message`.
//! * `model` — the validated [`Schema`] every emitter works from.
//! * `emit/` — one emitter per language: `rust` (with the fixed text in `rust_runtime`),
//!   `csharp`, and `js` (whose fixed runtime is JavaScript in `emit/js_runtime/`).
//! * `naming` — `snake_case`, identifier and keyword checks shared by the schema and the
//!   emitters.
//! * `files` — reading a PDL file and writing generated files ([`read_schema`],
//!   [`write_generated`], [`build_rust`], [`build_js`]); `error` — their [`Error`].
//! * `main.rs` — the thin command-line tool (feature `cli`).
//!
//! # Generated Rust
//!
//! One file, meant to be `include!`d into a module (so it has no inner attributes): per
//! packet a struct with `ID`, `NAME`, `encoded_len`, `encode_into` and `encode`; list
//! element structs in a module named after the packet in snake_case; the `Packet` enum
//! with `decode`; `DecodeError` / `EncodeError`; and the `ServerPacketHandler` /
//! `ClientPacketHandler` traits with `dispatch_server` / `dispatch_client`. It needs only
//! `std` and the `bytes` crate.
//!
//! Names: fields are the snake_case of the PDL name (`playerId` → `player_id`), a list
//! field is that plus `s` (`player` → `players`); packet structs keep their PDL name;
//! element structs upper-case the first letter (`player` → `Player`). A snake_case name
//! that is a Rust keyword is written as a raw identifier (`type` → `r#type`); names that
//! cannot be raw identifiers (`self`, `super`, `crate`, `Self`) are rejected.
//!
//! # Generated JavaScript
//!
//! `packets.js` is a dependency-free ES module (ES2022: browsers, WebGL builds' pages,
//! node 16+); `packets.d.ts` types it for TypeScript. Per packet a class with the PDL's
//! field names (a list field is the name plus `s`, holding plain element objects), static
//! `ID`, `NAME` and `decode(frame)`, and `encode()` returning the whole frame as a
//! `Uint8Array`. Besides: `PacketId` (name → id), `decodePacket(frame)`, `splitFrames`
//! and `FrameReader` (cutting a byte stream or WebSocket messages into frames, bounded by
//! a maximum frame size), `PacketDispatcher` (`on(PacketId.S_Chat, handler)`) and
//! `PacketError`, the only error decoding throws (with a `code` such as `"Truncated"`).
//!
//! `long` and `ulong` are `BigInt`; every other number is a `Number`, range-checked when
//! encoding. Strings are JavaScript strings: encoding replaces an unpaired surrogate with
//! U+FFFD (as the generated C# does), decoding rejects one (as the Rust decoder does).
//!
//! # Examples
//!
//! In `build.rs` of a server crate (with `packet-gen` as a build-dependency and `bytes` as a
//! dependency):
//!
//! ```no_run
//! // build.rs: fn main() { ... }
//! if let Err(e) = packet_gen::build_rust("PDL.xml") {
//!     panic!("{e}");
//! }
//! ```
//!
//! and in the crate:
//!
//! ```ignore
//! mod packets {
//!     include!(concat!(env!("OUT_DIR"), "/packets.rs"));
//! }
//! ```
//!
//! Generating in memory:
//!
//! ```
//! let schema = packet_gen::parse_pdl(
//!     r#"<PDL><packet name="S_Chat"><int name="playerId"/><string name="chat"/></packet></PDL>"#,
//!     "PDL.xml",
//! )?;
//! let js = packet_gen::generate_js(&schema);
//! assert!(js.module.contains("export class S_Chat {"));
//! assert!(js.declarations.contains("playerId: number;"));
//! # Ok::<(), packet_gen::SchemaError>(())
//! ```

#![warn(missing_docs)]

mod emit;
mod error;
mod files;
mod model;
mod naming;
mod schema;

pub use emit::{generate_csharp, generate_js, generate_rust, CSharpFiles, JsFiles};
pub use error::Error;
pub use files::{build_js, build_rust, read_schema, write_generated, Lang};
pub use model::{Field, FieldKind, Packet, Scalar, Schema, StringEncoding};
pub use schema::{parse_pdl, SchemaError};
