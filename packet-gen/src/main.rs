//! `packet-gen`: generate Rust or C# packet code from a PDL.xml schema.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};

/// Generate packet code from a ServerCore PDL.xml schema.
#[derive(Debug, Parser)]
#[command(name = "packet-gen", version, about)]
struct Args {
    /// Language to generate: `rust` writes OUT/packets.rs; `csharp` writes OUT/GenPackets.cs,
    /// OUT/ClientPacketManager.cs and OUT/ServerPacketManager.cs.
    #[arg(long, value_enum)]
    lang: Lang,
    /// PDL.xml schema to read.
    #[arg(long, value_name = "PDL.xml")]
    input: PathBuf,
    /// Directory to write the generated files into (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Lang {
    /// Rust module for the server (include! it in a `mod packets { }`).
    Rust,
    /// C# for Unity clients, drop-in for the course generator's output.
    Csharp,
}

fn run(args: &Args) -> Result<(), packet_gen::Error> {
    let schema = packet_gen::read_schema(&args.input)?;
    std::fs::create_dir_all(&args.out).map_err(|source| packet_gen::Error::Io {
        path: args.out.clone(),
        source,
    })?;
    match args.lang {
        Lang::Rust => {
            let code = packet_gen::generate_rust(&schema);
            packet_gen::write_if_changed(&args.out.join("packets.rs"), &code)?;
        }
        Lang::Csharp => {
            let files = packet_gen::generate_csharp(&schema);
            for (name, content) in [
                ("GenPackets.cs", &files.gen_packets),
                ("ClientPacketManager.cs", &files.client_packet_manager),
                ("ServerPacketManager.cs", &files.server_packet_manager),
            ] {
                packet_gen::write_if_changed(&args.out.join(name), content)?;
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("packet-gen: {e}");
            ExitCode::FAILURE
        }
    }
}
