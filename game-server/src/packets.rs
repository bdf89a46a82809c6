//! The packets of `PDL.xml`, generated at build time by `packet-gen` (see `build.rs`).
//!
//! | id | packet | direction | fields |
//! |---:|---|---|---|
//! | 1 | [`S_BroadcastEnterGame`] | server → client | `player_id: i32, pos_x, pos_y, pos_z: f32` |
//! | 2 | [`C_LeaveGame`] | client → server | — |
//! | 3 | [`S_BroadcastLeaveGame`] | server → client | `player_id: i32` |
//! | 4 | [`S_PlayerList`] | server → client | `players: [{is_self: bool, player_id: i32, pos_x, pos_y, pos_z: f32}]` |
//! | 5 | [`C_Move`] | client → server | `pos_x, pos_y, pos_z: f32` |
//! | 6 | [`S_BroadcastMove`] | server → client | `player_id: i32, pos_x, pos_y, pos_z: f32` |
//! | 7 | [`C_Chat`] | client → server | `chat: string` (UTF-16LE) |
//! | 8 | [`S_Chat`] | server → client | `player_id: i32, chat: string` |

#![allow(
    missing_docs,
    non_camel_case_types,
    unreachable_pub,
    clippy::all,
    clippy::pedantic
)]

include!(concat!(env!("OUT_DIR"), "/packets.rs"));
