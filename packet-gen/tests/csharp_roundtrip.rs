//! Cross-language check: the generated C# (compiled with mono's `mcs` against a minimal
//! stand-in for the course's ServerCore) and the generated Rust agree byte for byte.
//!
//! Without `mcs` or `mono` the test fails under `CI=true` and is skipped (with a note on
//! stderr) elsewhere.
#![deny(warnings)]

mod all_types {
    include!("generated/all_types/packets.rs");
}
mod util;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use util::{hex, require_tool, run, temp_dir, unhex};

use all_types::s_inventory::{item::Attribute, Item, Marker};
use all_types::{C_AllTypes, C_Empty, Packet, S_Inventory, S_Type};

const SERVER_CORE_STUB: &str = r#"using System;
namespace ServerCore
{
    public abstract class PacketSession { }

    // Same contract as the course's SendBufferHelper: Open reserves, Close commits.
    public static class SendBufferHelper
    {
        static byte[] _buffer = new byte[65536];
        static int _used = 0;

        public static ArraySegment<byte> Open(int reserveSize)
        {
            if (_buffer.Length - _used < reserveSize)
            {
                _buffer = new byte[65536];
                _used = 0;
            }
            return new ArraySegment<byte>(_buffer, _used, reserveSize);
        }

        public static ArraySegment<byte> Close(int usedSize)
        {
            ArraySegment<byte> segment = new ArraySegment<byte>(_buffer, _used, usedSize);
            _used += usedSize;
            return segment;
        }
    }
}
"#;

const SERVER_MAIN: &str = r#"using System;
using System.Collections.Generic;
using System.IO;
using ServerCore;

class TestSession : PacketSession { }

static class PacketHandler
{
    public static void C_EmptyHandler(PacketSession session, IPacket packet) { Console.WriteLine("HANDLED C_Empty"); }
    public static void C_AllTypesHandler(PacketSession session, IPacket packet) { Console.WriteLine("HANDLED C_AllTypes " + ((C_AllTypes)packet).nickName); }
}

static class Program
{
    static IPacket New(ushort id)
    {
        switch (id)
        {
            case (ushort)PacketID.C_Empty: return new C_Empty();
            case (ushort)PacketID.C_AllTypes: return new C_AllTypes();
            case (ushort)PacketID.S_Inventory: return new S_Inventory();
            case (ushort)PacketID.S_Type: return new S_Type();
            default: return null;
        }
    }

    static string Hex(ArraySegment<byte> s) { return BitConverter.ToString(s.Array, s.Offset, s.Count).Replace("-", ""); }

    static byte[] Unhex(string h)
    {
        byte[] b = new byte[h.Length / 2];
        for (int i = 0; i < b.Length; i++) b[i] = Convert.ToByte(h.Substring(i * 2, 2), 16);
        return b;
    }

    static int Main(string[] args)
    {
        // 1. Frames written by Rust: read, re-write, print.
        foreach (string line in File.ReadAllLines(args[0]))
        {
            byte[] frame = Unhex(line.Trim());
            ushort id = frame.Length >= 4 ? BitConverter.ToUInt16(frame, 2) : (ushort)0;
            IPacket p = New(id);
            if (p == null) { Console.WriteLine("NOPACKET"); continue; }
            try
            {
                p.Read(new ArraySegment<byte>(frame));
                ArraySegment<byte> written = p.Write();
                Console.WriteLine(written.Array == null ? "WRITEFAIL" : "OK " + Hex(written));
            }
            catch (InvalidDataException)
            {
                Console.WriteLine("REJECT");
            }
        }

        // 2. Packets built in C#.
        C_AllTypes all = new C_AllTypes();
        all.flag = true; all.level = 200; all.delta = -100; all.HP = -1234; all.mp = 65000;
        all.playerId = -7; all.gold = 4000000000; all.accountId = -1234567890123L;
        all.sessionKey = 18000000000000000000UL; all.posX = 1.25f; all.exactTime = -2.5;
        all.nickName = "C# \u00e9\ud83d\ude00";
        Console.WriteLine("CS " + Hex(all.Write()));

        S_Inventory inv = new S_Inventory();
        inv.ownerId = 99;
        S_Inventory.Item item = new S_Inventory.Item();
        item.itemId = 5; item.name = "sword";
        S_Inventory.Item.Attribute attr = new S_Inventory.Item.Attribute();
        attr.kind = 3; attr.value = 0.5f;
        item.attributes.Add(attr);
        inv.items.Add(item);
        inv.markers.Add(new S_Inventory.Marker());
        inv.markers.Add(new S_Inventory.Marker());
        inv.note = null; // written as ""
        Console.WriteLine("CS " + Hex(inv.Write()));

        Console.WriteLine("CS " + Hex(new C_Empty().Write()));

        // 3. Write() never goes past the 4096 bytes it opened.
        C_AllTypes big = new C_AllTypes();
        big.nickName = new string('x', 2100);
        Console.WriteLine("BIGNULL " + (big.Write().Array == null));

        // 4. PacketManager: dispatch and dropping malformed frames.
        PacketManager.Instance.OnInvalidPacket = (s, b, e) => Console.WriteLine("INVALID " + e.GetType().Name);
        TestSession session = new TestSession();
        foreach (string line in File.ReadAllLines(args[1]))
            PacketManager.Instance.OnRecvPacket(session, new ArraySegment<byte>(Unhex(line.Trim())));
        PacketManager.Instance.OnRecvPacket(session, new ArraySegment<byte>(Unhex(args[2])), (s, p) => Console.WriteLine("CALLBACK " + p.Protocol));
        return 0;
    }
}
"#;

const CLIENT_MAIN: &str = r#"using System;
using ServerCore;

static class PacketHandler
{
    public static void S_InventoryHandler(PacketSession session, IPacket packet) { }
    public static void S_TypeHandler(PacketSession session, IPacket packet) { }
}

static class Program
{
    static int Main() { return PacketManager.Instance == null ? 1 : 0; }
}
"#;

fn compile(dir: &Path, out: &str, sources: &[&str]) {
    let mut cmd = Command::new("mcs");
    cmd.current_dir(dir)
        .arg("-nologo")
        .arg("-warn:0")
        .arg(format!("-out:{out}"));
    cmd.args(sources);
    let (ok, stdout, stderr) = run(cmd, Duration::from_secs(120));
    assert!(ok, "mcs failed:\n{stdout}\n{stderr}");
}

fn rust_samples() -> Vec<Packet> {
    vec![
        C_Empty.into(),
        C_AllTypes {
            flag: true,
            level: 1,
            delta: -1,
            hp: i16::MIN,
            mp: u16::MAX,
            player_id: i32::MIN,
            gold: u32::MAX,
            account_id: i64::MIN,
            session_key: u64::MAX,
            pos_x: f32::MIN_POSITIVE,
            exact_time: std::f64::consts::PI,
            nick_name: "Rust ✓ 😀".into(),
        }
        .into(),
        C_AllTypes::default().into(),
        S_Inventory {
            owner_id: -3,
            items: vec![
                Item {
                    item_id: 1,
                    name: "a".into(),
                    attributes: vec![],
                },
                Item {
                    item_id: 2,
                    name: "한글".into(),
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
            note: "end".into(),
        }
        .into(),
        S_Type {
            r#type: 77,
            loops: vec![
                all_types::s_type::Loop { r#match: 1 },
                all_types::s_type::Loop { r#match: 2 },
            ],
        }
        .into(),
    ]
}

/// Malformed frames C# must reject (and Rust too).
fn bad_frames() -> Vec<Vec<u8>> {
    let inventory = rust_samples()[3].encode().unwrap().to_vec();
    let mut truncated = inventory[..inventory.len() - 1].to_vec();
    let len = u16::try_from(truncated.len()).unwrap();
    truncated[..2].copy_from_slice(&len.to_le_bytes());
    let mut trailing = rust_samples()[0].encode().unwrap().to_vec();
    trailing.push(0);
    trailing[0] = 5;
    vec![
        truncated,
        trailing,
        // C_AllTypes cut right after the header.
        vec![4, 0, 2, 0],
        // S_Inventory with a list count of 60000 items and no bytes for them.
        vec![10, 0, 3, 0, 0, 0, 0, 0, 0x60, 0xEA],
        // Size field larger than the buffer.
        vec![0x40, 0, 1, 0],
    ]
}

#[test]
fn csharp_and_rust_agree_on_bytes() {
    let test = "csharp_and_rust_agree_on_bytes";
    if !require_tool("mcs", test) || !require_tool("mono", test) {
        return;
    }
    let schema = packet_gen::parse_pdl(include_str!("data/all_types.xml"), "all_types.xml")
        .expect("test schema");
    let cs = packet_gen::generate_csharp(&schema);
    let dir = temp_dir("packet-gen-csharp");
    for (name, content) in [
        ("GenPackets.cs", cs.gen_packets.as_str()),
        ("ServerPacketManager.cs", cs.server_packet_manager.as_str()),
        ("ClientPacketManager.cs", cs.client_packet_manager.as_str()),
        ("ServerCore.cs", SERVER_CORE_STUB),
        ("ServerMain.cs", SERVER_MAIN),
        ("ClientMain.cs", CLIENT_MAIN),
    ] {
        std::fs::write(dir.join(name), content).unwrap();
    }
    compile(
        &dir,
        "server.exe",
        &[
            "GenPackets.cs",
            "ServerPacketManager.cs",
            "ServerCore.cs",
            "ServerMain.cs",
        ],
    );
    compile(
        &dir,
        "client.exe",
        &[
            "GenPackets.cs",
            "ClientPacketManager.cs",
            "ServerCore.cs",
            "ClientMain.cs",
        ],
    );

    let samples = rust_samples();
    let bad = bad_frames();
    for frame in &bad {
        assert!(
            Packet::decode(frame).is_err(),
            "Rust accepts {}",
            hex(frame)
        );
    }
    let mut frames: Vec<String> = samples.iter().map(|p| hex(&p.encode().unwrap())).collect();
    frames.extend(bad.iter().map(|f| hex(f)));
    std::fs::write(dir.join("frames.txt"), frames.join("\n")).unwrap();

    let dispatch = [
        hex(&samples[1].encode().unwrap()), // C_AllTypes: server packet, handled
        hex(&samples[0].encode().unwrap()), // C_Empty: handled
        hex(&samples[3].encode().unwrap()), // S_Inventory: not registered on the server
        hex(&bad[2]),                       // truncated C_AllTypes: dropped
    ];
    std::fs::write(dir.join("dispatch.txt"), dispatch.join("\n")).unwrap();

    let mut cmd = Command::new("mono");
    cmd.current_dir(&dir)
        .arg("server.exe")
        .arg("frames.txt")
        .arg("dispatch.txt")
        .arg(hex(&samples[0].encode().unwrap()));
    let (ok, stdout, stderr) = run(cmd, Duration::from_secs(120));
    assert!(ok, "mono failed:\n{stdout}\n{stderr}");
    let mut lines = stdout.lines();

    // 1. Rust-written frames read and re-written identically by C#; bad frames rejected.
    for (packet, frame) in samples.iter().zip(&frames) {
        assert_eq!(
            lines.next(),
            Some(format!("OK {frame}").as_str()),
            "{packet:?}"
        );
    }
    for frame in &bad {
        assert_eq!(lines.next(), Some("REJECT"), "C# accepted {}", hex(frame));
    }

    // 2. C#-written frames decode in Rust to the expected values and re-encode identically.
    let expected: Vec<Packet> = vec![
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
            nick_name: "C# é😀".into(),
        }
        .into(),
        S_Inventory {
            owner_id: 99,
            items: vec![Item {
                item_id: 5,
                name: "sword".into(),
                attributes: vec![Attribute {
                    kind: 3,
                    value: 0.5,
                }],
            }],
            markers: vec![Marker; 2],
            note: String::new(),
        }
        .into(),
        C_Empty.into(),
    ];
    for want in expected {
        let line = lines.next().expect("C# output");
        let bytes = unhex(line.strip_prefix("CS ").expect(line));
        let got = Packet::decode(&bytes).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(got, want);
        assert_eq!(got.encode().unwrap().as_ref(), bytes.as_slice());
    }

    // 3. Oversized write refused instead of overflowing the 4096-byte buffer.
    assert_eq!(lines.next(), Some("BIGNULL True"));

    // 4. PacketManager dispatch.
    assert_eq!(lines.next(), Some("HANDLED C_AllTypes Rust ✓ 😀"));
    assert_eq!(lines.next(), Some("HANDLED C_Empty"));
    assert_eq!(lines.next(), Some("INVALID InvalidDataException"));
    assert_eq!(lines.next(), Some("INVALID InvalidDataException"));
    assert_eq!(lines.next(), Some("CALLBACK 1"));
    assert_eq!(lines.next(), None);

    let _ = std::fs::remove_dir_all(&dir);
}
