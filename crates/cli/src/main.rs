//! `tokengate`: the command-line entry point. Argument parsing and wiring only; the work is
//! done by the library crates (`tokengate-server`, …).

mod serve;

use clap::{Parser, Subcommand};

/// tokengate — an MFA-gated security token service that speaks AWS STS and IAM.
#[derive(Debug, Parser)]
#[command(name = "tokengate", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service (SQLite store in the data dir; creates everything on first start).
    Serve(serve::ServeArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tokengate: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
