//! `packet-gen`: generate Rust, C# or JavaScript packet code from a PDL.xml schema.
//! Built with `--features cli`; the library does the work.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};

/// Generate Rust, C# or JavaScript packet code from a ServerCore PDL.xml schema.
#[derive(Debug, Parser)]
#[command(name = "packet-gen", version)]
struct Args {
    /// Language to generate: `rust` writes OUT/packets.rs; `csharp` writes OUT/GenPackets.cs,
    /// OUT/ClientPacketManager.cs and OUT/ServerPacketManager.cs; `js` writes OUT/packets.js
    /// (an ES module) and OUT/packets.d.ts (its TypeScript declarations).
    #[arg(long, value_enum)]
    lang: Lang,
    /// PDL.xml schema to read.
    #[arg(long, value_name = "PDL.xml")]
    input: PathBuf,
    /// Directory to write the generated files into (created if missing). Files whose
    /// content is unchanged are not rewritten.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Lang {
    /// Rust module for the server (include! it in a `mod packets { }`).
    Rust,
    /// C# for Unity clients, drop-in for the course generator's output.
    Csharp,
    /// ES module + .d.ts for browser and WebGL clients (64-bit integers are BigInt).
    Js,
}

impl From<Lang> for packet_gen::Lang {
    fn from(lang: Lang) -> Self {
        match lang {
            Lang::Rust => packet_gen::Lang::Rust,
            Lang::Csharp => packet_gen::Lang::CSharp,
            Lang::Js => packet_gen::Lang::Js,
        }
    }
}

fn run(args: &Args) -> Result<(), packet_gen::Error> {
    let schema = packet_gen::read_schema(&args.input)?;
    packet_gen::write_generated(&schema, args.lang.into(), &args.out)?;
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
