//! The generated C# committed under `clients/csharp/Generated/` is exactly what packet-gen
//! makes from `game-server/PDL.xml` now, so the C# client never drifts from the server's
//! protocol. Regenerate with `PACKET_GEN_BLESS=1 cargo test -p repo-checks --test
//! csharp_generated`.

#[test]
fn committed_csharp_packets_match_the_generator() {
    let root = repo_checks::workspace_root();
    let pdl = root.join("game-server/PDL.xml");
    let schema =
        packet_gen::read_schema(&pdl).unwrap_or_else(|e| panic!("read {}: {e}", pdl.display()));
    let files = packet_gen::generate_csharp(&schema);
    // Only the client's files: ServerPacketManager.cs declares a second `PacketManager`.
    let generated = [
        ("GenPackets.cs", &files.gen_packets),
        ("ClientPacketManager.cs", &files.client_packet_manager),
    ];

    let bless = std::env::var_os("PACKET_GEN_BLESS").is_some();
    let mut stale = Vec::new();
    for (name, fresh) in generated {
        let path = root.join("clients/csharp/Generated").join(name);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed == *fresh {
            continue;
        }
        if bless {
            std::fs::write(&path, fresh)
                .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        } else {
            stale.push(format!("clients/csharp/Generated/{name}"));
        }
    }
    assert!(
        stale.is_empty(),
        "out of date (not what packet-gen generates from game-server/PDL.xml): {}; regenerate with\n  \
         PACKET_GEN_BLESS=1 cargo test -p repo-checks --test csharp_generated",
        stale.join(" and ")
    );
}
