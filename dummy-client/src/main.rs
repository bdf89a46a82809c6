//! `dummy-client`: the load tester binary. See the library docs for what it measures.

use clap::Parser;
use dummy_client::{run_until, Args};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args = Args::parse();

    // First Ctrl-C (or SIGTERM): stop, drain and report. Second: leave at once.
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        if let Err(e) = ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::AcqRel) {
                std::process::exit(130);
            }
        }) {
            log::warn!("cannot install the Ctrl-C handler: {e}");
        }
    }

    match run_until(&args, &stop) {
        Ok(report) => {
            if args.json {
                eprint!("{}", report.to_table());
                println!("{}", report.to_json());
            } else {
                print!("{}", report.to_table());
            }
            match report.failure() {
                None => ExitCode::SUCCESS,
                Some(reason) => {
                    eprintln!("dummy-client: {reason}");
                    ExitCode::from(1)
                }
            }
        }
        Err(e) => {
            eprintln!("dummy-client: {e}");
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}
