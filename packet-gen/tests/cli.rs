//! The `packet-gen` command-line tool (feature `cli`): writes every language's files and
//! reports schema errors on one line.

use std::path::Path;

#[test]
fn cli_writes_files_and_reports_errors_on_one_line() {
    let exe = env!("CARGO_BIN_EXE_packet-gen");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::env::temp_dir().join(format!("packet-gen-cli-{}", std::process::id()));
    for (lang, files) in [
        (
            "csharp",
            &[
                "GenPackets.cs",
                "ClientPacketManager.cs",
                "ServerPacketManager.cs",
            ][..],
        ),
        ("rust", &["packets.rs"][..]),
        ("js", &["packets.js", "packets.d.ts"][..]),
    ] {
        let status = std::process::Command::new(exe)
            .args(["--lang", lang, "--input"])
            .arg(root.join("tests/data/game.xml"))
            .arg("--out")
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success(), "{lang}");
        for f in files {
            // The same bytes as the library's (snapshotted) output.
            let written = std::fs::read_to_string(out.join(f)).unwrap();
            let snapshot = std::fs::read_to_string(root.join("tests/generated/game").join(f));
            assert_eq!(Some(written), snapshot.ok(), "{f}");
        }
    }

    let bad = out.join("bad.xml");
    std::fs::write(
        &bad,
        "<PDL>\n  <packet name=\"A\"><integer name=\"x\"/></packet>\n</PDL>\n",
    )
    .unwrap();
    let output = std::process::Command::new(exe)
        .args(["--lang", "rust", "--input"])
        .arg(&bad)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("bad.xml:2:20: unknown element <integer>"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&out);
}
