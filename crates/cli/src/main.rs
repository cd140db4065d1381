//! `tokengate`: the command-line entry point. Argument parsing, prompts and wiring only; the
//! work is done by the library crates (`tokengate-server` for `serve`, `tokengate-client` for
//! profiles, credentials and STS/IAM calls, `tokengate-bridge` for security keys).

mod keys;
mod login;
mod mfa;
mod security_key;
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
    /// Print temporary credentials for an AWS profile (asks for the MFA code, or a touch of
    /// the security key), as credential_process JSON.
    Login(login::LoginArgs),
    /// The security keys this machine can reach: list, info, wink.
    Keys(keys::KeysArgs),
    /// Enrol and manage MFA devices (virtual devices, hardware fobs, security keys).
    Mfa(mfa::MfaArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Login(args) => login::run(args),
        Command::Keys(args) => keys::run(args),
        Command::Mfa(args) => mfa::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tokengate: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
