//! Cross-language check: the generated JavaScript (tests/generated/*/packets.js, run by
//! node) and the generated Rust agree byte for byte, on nested lists and on non-ASCII
//! strings (Korean, emoji as surrogate pairs, a leading U+FEFF), in both string encodings.
//!
//! Rust encodes frames; tests/js/roundtrip.mjs decodes them, checks every field against
//! its own copy of the values, re-encodes them (Rust checks the bytes are identical),
//! encodes packets of its own (Rust decodes them), and must reject every malformed frame
//! with a `PacketError`: not a TypeError or RangeError, and without hanging.
//!
//! Without `node` the test fails under `CI=true` and is skipped (with a note) elsewhere.
#![deny(warnings)]

mod all_types {
    include!("generated/all_types/packets.rs");
}
mod utf8 {
    include!("generated/utf8/packets.rs");
}
mod util;

use std::process::Command;
use std::time::Duration;

use all_types::s_inventory::{item::Attribute, Item, Marker};
use all_types::s_type::Loop;
use all_types::{C_AllTypes, C_Empty, S_Inventory, S_Type};
use util::{hex, require_tool, run, temp_dir, unhex};

/// The node side, and the generated modules it loads (the checked-in snapshots), written
/// to a temporary directory as `.mjs` so any node takes them as ES modules.
const SCRIPT: &str = include_str!("js/roundtrip.mjs");
const ALL_TYPES_JS: &str = include_str!("generated/all_types/packets.js");
const UTF8_JS: &str = include_str!("generated/utf8/packets.js");

/// Field-less list elements inside a list: the case where a frame's length alone does
/// not bound how many elements it can claim.
const NESTED_PDL: &str =
    r#"<PDL><packet name="S_Nest"><list name="outer"><list name="inner"/></list></packet></PDL>"#;

/// One frame for the script: its schema and bytes.
struct Frame {
    schema: &'static str,
    bytes: Vec<u8>,
}

/// The frames Rust encodes; roundtrip.mjs holds the same values in `expected`.
fn good_frames() -> Vec<Frame> {
    let all_types: Vec<all_types::Packet> = vec![
        C_Empty.into(),
        C_AllTypes {
            flag: true,
            level: u8::MAX,
            delta: i8::MIN,
            hp: i16::MIN,
            mp: u16::MAX,
            player_id: i32::MIN,
            gold: u32::MAX,
            account_id: i64::MIN,
            session_key: u64::MAX,
            pos_x: f32::MIN_POSITIVE,
            exact_time: std::f64::consts::PI,
            nick_name: "Rust ✓ 😀 한글".into(),
        }
        .into(),
        C_AllTypes::default().into(),
        S_Inventory {
            owner_id: -3,
            items: vec![
                Item {
                    item_id: 1,
                    name: "검".into(),
                    attributes: vec![],
                },
                Item {
                    item_id: 2,
                    name: "⚔ 엑스칼리버 🐉".into(),
                    attributes: vec![
                        Attribute {
                            kind: 7,
                            value: -0.0,
                        },
                        Attribute {
                            kind: 8,
                            value: f32::INFINITY,
                        },
                    ],
                },
            ],
            markers: vec![Marker; 5],
            note: "\u{feff}끝 🎮".into(),
        }
        .into(),
        S_Type {
            r#type: 77,
            loops: vec![
                Loop { r#match: 1 },
                Loop { r#match: 2 },
                Loop { r#match: 255 },
            ],
        }
        .into(),
        // 10,000 UTF-16 units, surrogate pairs across the decoder's 4,096-unit chunks; a
        // frame far larger than the encoder's first buffer.
        C_AllTypes {
            level: 1,
            pos_x: -1.5,
            exact_time: 1e300,
            account_id: 1,
            session_key: 1 << 63,
            nick_name: "가😀".repeat(3333) + "x",
            ..C_AllTypes::default()
        }
        .into(),
    ];
    let utf8: Vec<utf8::Packet> = vec![
        utf8::C_Chat {
            chat: "안녕하세요 👋".into(),
        }
        .into(),
        utf8::S_Chat {
            player_id: -1,
            chat: "\u{feff}BOM stays".into(),
            mentions: ["철수", "🦀", ""]
                .into_iter()
                .map(|nick| utf8::s_chat::Mention { nick: nick.into() })
                .collect(),
        }
        .into(),
        utf8::S_Chat::default().into(),
    ];
    let mut frames: Vec<Frame> = all_types
        .iter()
        .map(|p| Frame {
            schema: "all_types",
            bytes: p.encode().unwrap().to_vec(),
        })
        .collect();
    frames.extend(utf8.iter().map(|p| Frame {
        schema: "utf8",
        bytes: p.encode().unwrap().to_vec(),
    }));
    frames
}

/// Frames both decoders must reject, with the `PacketError` code JS must report.
fn malformed_frames() -> Vec<(Frame, &'static str)> {
    let frame = |schema, bytes: Vec<u8>| Frame { schema, bytes };
    // C_AllTypes up to (excluding) its string: header + 43 bytes of fixed fields.
    let all_types_with_nick = |nick: &[u8], declared: u16| {
        let mut bytes = vec![0, 0, 2, 0];
        bytes.extend([0u8; 43]);
        bytes.extend(declared.to_le_bytes());
        bytes.extend(nick);
        let size = u16::try_from(bytes.len()).unwrap();
        bytes[..2].copy_from_slice(&size.to_le_bytes());
        bytes
    };
    let nick = |units: &[u8]| all_types_with_nick(units, u16::try_from(units.len()).unwrap());
    let utf8_chat = |chat: &[u8]| {
        let mut bytes = vec![0, 0, 1, 0];
        bytes.extend(u16::try_from(chat.len()).unwrap().to_le_bytes());
        bytes.extend(chat);
        let size = u16::try_from(bytes.len()).unwrap();
        bytes[..2].copy_from_slice(&size.to_le_bytes());
        bytes
    };
    let inventory = good_frames().swap_remove(3).bytes;
    let mut truncated = inventory[..inventory.len() - 1].to_vec();
    let len = u16::try_from(truncated.len()).unwrap();
    truncated[..2].copy_from_slice(&len.to_le_bytes());
    vec![
        (frame("all_types", vec![]), "Truncated"),
        (frame("all_types", vec![4, 0, 1]), "Truncated"),
        (frame("all_types", vec![2, 0, 1, 0]), "SizeMismatch"),
        (frame("all_types", vec![0x40, 0, 1, 0]), "SizeMismatch"),
        (frame("all_types", vec![4, 0, 99, 0]), "UnknownId"),
        (frame("all_types", vec![4, 0, 0, 0]), "UnknownId"),
        (frame("all_types", vec![5, 0, 1, 0, 0]), "TrailingBytes"),
        (frame("all_types", vec![4, 0, 2, 0]), "Truncated"),
        (frame("all_types", truncated), "Truncated"),
        // S_Inventory claiming 60,000 items with no bytes for them.
        (
            frame("all_types", vec![10, 0, 3, 0, 0, 0, 0, 0, 0x60, 0xEA]),
            "ListTooLong",
        ),
        // One item whose nested attribute list claims 1,000 elements.
        (
            frame(
                "all_types",
                vec![18, 0, 3, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0xE8, 0x03],
            ),
            "ListTooLong",
        ),
        (frame("all_types", nick(&[0x41, 0, 0x42])), "InvalidString"),
        (
            frame("all_types", nick(&[0x41, 0, 0x00, 0xD8])),
            "InvalidString",
        ),
        (
            frame("all_types", nick(&[0x00, 0xDC, 0x41, 0])),
            "InvalidString",
        ),
        (
            frame("all_types", nick(&[0x00, 0xD8, 0x41, 0])),
            "InvalidString",
        ),
        (
            frame("all_types", all_types_with_nick(&[0x41, 0], 4)),
            "Truncated",
        ),
        (frame("utf8", utf8_chat(&[0xFF])), "InvalidString"),
        (frame("utf8", utf8_chat(&[0xC0, 0x80])), "InvalidString"),
        (
            frame("utf8", utf8_chat(&[0xED, 0xA0, 0x80])),
            "InvalidString",
        ),
        (
            frame("utf8", utf8_chat(&[0x41, 0xE4, 0xB8])),
            "InvalidString",
        ),
    ]
}

/// What roundtrip.mjs encodes (its `built` list), as Rust expects to decode it.
fn js_built() -> Vec<(&'static str, Vec<u8>)> {
    let all_types: Vec<all_types::Packet> = vec![
        C_AllTypes {
            flag: true,
            level: 200,
            delta: -100,
            hp: -1234,
            mp: 65000,
            player_id: -7,
            gold: 4_000_000_000,
            account_id: -1_234_567_890_123,
            session_key: 18_000_000_000_000_000_000,
            pos_x: 1.25,
            exact_time: -2.5,
            // The lone surrogate the script wrote becomes U+FFFD.
            nick_name: "JS é😀 \u{fffd} 한".into(),
        }
        .into(),
        S_Inventory {
            owner_id: 99,
            items: vec![
                Item {
                    item_id: 5,
                    name: "sword".into(),
                    attributes: vec![Attribute {
                        kind: 3,
                        value: 0.5,
                    }],
                },
                Item {
                    item_id: 6,
                    name: "방패".into(),
                    attributes: vec![],
                },
            ],
            markers: vec![Marker; 2],
            note: String::new(),
        }
        .into(),
        C_Empty.into(),
        C_AllTypes {
            account_id: 42,
            ..C_AllTypes::default()
        }
        .into(),
    ];
    let utf8: Vec<utf8::Packet> = vec![
        utf8::S_Chat {
            player_id: 7,
            chat: "lone \u{fffd} low".into(),
            mentions: vec![utf8::s_chat::Mention {
                nick: "영희".into(),
            }],
        }
        .into(),
        utf8::C_Chat {
            chat: "👋".repeat(16_000),
        }
        .into(),
    ];
    let mut out: Vec<(&str, Vec<u8>)> = all_types
        .iter()
        .map(|p| ("all_types", p.encode().unwrap().to_vec()))
        .collect();
    out.extend(utf8.iter().map(|p| ("utf8", p.encode().unwrap().to_vec())));
    out
}

fn rust_rejects(frame: &Frame) -> bool {
    match frame.schema {
        "all_types" => all_types::Packet::decode(&frame.bytes).is_err(),
        _ => utf8::Packet::decode(&frame.bytes).is_err(),
    }
}

const CHECKS: &[&str] = &[
    "frame_reader_reassembles_any_chunking",
    "frame_reader_rejects_bad_sizes_and_stays_failed",
    "split_frames",
    "dispatcher_calls_the_registered_handler",
    "decode_rejects_wrong_input_with_packet_error",
    "encode_checks_values",
    "field_less_elements_are_bounded",
    "mutated_frames_throw_only_packet_errors",
];

#[test]
fn javascript_and_rust_agree_on_bytes() {
    if !require_tool("node", "javascript_and_rust_agree_on_bytes") {
        return;
    }
    let dir = temp_dir("packet-gen-js");
    let nested = packet_gen::parse_pdl(NESTED_PDL, "nested.xml").unwrap();
    let nested_js = packet_gen::generate_js(&nested).module;
    for (name, content) in [
        ("roundtrip.mjs", SCRIPT),
        ("all_types.mjs", ALL_TYPES_JS),
        ("utf8.mjs", UTF8_JS),
        ("nested.mjs", nested_js.as_str()),
    ] {
        std::fs::write(dir.join(name), content).unwrap();
    }

    let good = good_frames();
    let bad = malformed_frames();
    for (frame, _) in &bad {
        assert!(rust_rejects(frame), "Rust accepts {}", hex(&frame.bytes));
    }
    let mut lines: Vec<String> = good
        .iter()
        .map(|f| format!("good {} {}", f.schema, hex(&f.bytes)))
        .collect();
    lines.extend(
        bad.iter()
            .map(|(f, _)| format!("bad {} {}", f.schema, hex(&f.bytes))),
    );
    std::fs::write(dir.join("frames.txt"), lines.join("\n")).unwrap();

    let mut cmd = Command::new("node");
    cmd.arg(dir.join("roundtrip.mjs"))
        .arg(dir.join("all_types.mjs"))
        .arg(dir.join("utf8.mjs"))
        .arg(dir.join("nested.mjs"))
        .arg(dir.join("frames.txt"));
    let (ok, stdout, stderr) = run(cmd, Duration::from_secs(120));
    assert!(ok, "node failed:\n{stdout}\n{stderr}");
    let mut out = stdout.lines();

    // 1. Rust-encoded frames decode to the expected values in JS and re-encode identically.
    for frame in &good {
        let want = format!("OK {}", hex(&frame.bytes));
        assert_eq!(out.next(), Some(want.as_str()), "{}", frame.schema);
    }
    // Malformed frames are rejected with the right PacketError.
    for (frame, code) in &bad {
        let want = format!("REJECT {code}");
        assert_eq!(
            out.next(),
            Some(want.as_str()),
            "{} {}",
            frame.schema,
            hex(&frame.bytes)
        );
    }

    // 2. JS-encoded frames decode in Rust to the expected values and re-encode identically.
    for (schema, want) in js_built() {
        let line = out.next().expect("a JS-encoded frame");
        let prefix = format!("JS {schema} ");
        let bytes = unhex(line.strip_prefix(&prefix).expect(line));
        match schema {
            "all_types" => assert_eq!(
                all_types::Packet::decode(&bytes).unwrap(),
                all_types::Packet::decode(&want).unwrap()
            ),
            _ => assert_eq!(
                utf8::Packet::decode(&bytes).unwrap(),
                utf8::Packet::decode(&want).unwrap()
            ),
        }
        assert_eq!(hex(&bytes), hex(&want), "{schema}");
    }

    // 3. The script's own checks (framing, dispatcher, encode checks, mutation fuzzing).
    for check in CHECKS {
        let line = out.next().unwrap_or_default();
        assert_eq!(line, format!("CHECK {check}"), "\n{stdout}\n{stderr}");
    }
    assert_eq!(out.next(), None, "unexpected output:\n{stdout}");

    let _ = std::fs::remove_dir_all(&dir);
}
