//! `tokengate`: the command-line entry point. Argument parsing, prompts and wiring only; the
//! work is done by the library crates (`tokengate-server` for `serve`, `tokengate-client` for
//! profiles, credentials and STS/IAM calls, `tokengate-bridge` for security keys).
//!
//! `serve` exists only with the `server` feature (on by default). Without it this is the
//! client alone, with no server or store code, so it builds for macOS and Windows.

mod keys;
mod login;
mod mfa;
mod security_key;
#[cfg(feature = "server")]
mod serve;

use clap::{Parser, Subcommand};

/// What `--help` says in a build without the `server` feature.
#[cfg(not(feature = "server"))]
const CLIENT_ONLY: &str = "This tokengate is the client alone (built without the `server` \
     feature): `serve` is not included. Run the service from a default build.";

/// tokengate — an MFA-gated security token service that speaks AWS STS and IAM.
///
/// Run the service with `serve`; enrol MFA devices and security keys with `mfa`; get
/// temporary credentials with `login` (as an AWS CLI `credential_process`). Commands that
/// call the service take credentials the way the AWS CLI does: `--profile`, else
/// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, else AWS_PROFILE, else the `default` profile.
#[derive(Debug, Parser)]
#[command(name = "tokengate", version)]
#[cfg_attr(not(feature = "server"), command(after_help = CLIENT_ONLY))]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the token service: STS and IAM query APIs, JWKS, health (SQLite in the data dir,
    /// set up on first start).
    #[cfg(feature = "server")]
    Serve(serve::ServeArgs),
    // A client-only build keeps the name, hidden, to say why instead of clap's
    // "unrecognized subcommand".
    /// Not in this build (the client alone): run the service from a default build.
    #[cfg(not(feature = "server"))]
    #[command(hide = true, disable_help_flag = true)]
    Serve {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        _args: Vec<String>,
    },
    /// Get temporary credentials for a profile with its MFA code or a security-key touch,
    /// printed as credential_process JSON (cached until near expiry).
    Login(login::LoginArgs),
    /// List, inspect and wink the security keys this machine can reach (USB or
    /// firmware-sim).
    Keys(keys::KeysArgs),
    /// Enrol and manage users' MFA devices: virtual TOTP devices, hardware fobs, security
    /// keys.
    Mfa(mfa::MfaArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        #[cfg(feature = "server")]
        Command::Serve(args) => serve::run(args),
        #[cfg(not(feature = "server"))]
        Command::Serve { .. } => Err(anyhow::anyhow!(
            "`serve` is not in this build: it is the client alone (built without the `server` \
             feature); run the service from a default build"
        )),
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
