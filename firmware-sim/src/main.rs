//! The `firmware-sim` binary: a simulated YubiKey 5 on UDP. Argument parsing over the
//! library's [`firmware_sim::spawn`]; everything else lives in the library.
//!
//! ```text
//! firmware-sim [--listen 127.0.0.1:8111] [--state FILE] [--touch auto|deny|delay:MS|prompt]
//!              [--verbose]
//! firmware-sim export-ca [--state FILE]       # prints the attestation CA (PEM)
//! ```
//!
//! On start it prints `firmware-sim: listening on udp:ADDR …` on stderr (tests read the
//! address from that line when they pass port 0).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use firmware_sim::env::{Env, PolicyPresence};
use firmware_sim::io::SystemClock;
use firmware_sim::io::file::FileStorage;
use firmware_sim::{Authenticator, SimConfig, TouchPolicy};

#[derive(Parser)]
#[command(
    name = "firmware-sim",
    version,
    about = "A simulated YubiKey 5: CTAPHID over UDP, CTAP 2.1 and U2F"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Commands>,
    /// UDP address to listen on; one 64-byte CTAPHID report per datagram.
    #[arg(long, default_value = "127.0.0.1:8111")]
    listen: SocketAddr,
    /// State file (created on first use, mode 0600). Default:
    /// $XDG_DATA_HOME/tokengate/firmware-sim.json, else ~/.local/share/tokengate/….
    #[arg(long, global = true)]
    state: Option<PathBuf>,
    /// How the button behaves: auto, deny, delay:MS (touched MS ms after asking) or prompt
    /// (asks "Touch? [y/N]" on the terminal).
    #[arg(long, default_value = "auto", value_parser = parse_touch)]
    touch: TouchPolicy,
    /// Log each command and its status on stderr.
    #[arg(long)]
    verbose: bool,
}

#[derive(Subcommand)]
enum Commands {
    /// Print the simulator's attestation CA certificate (PEM), creating the state if needed.
    ExportCa,
}

fn parse_touch(value: &str) -> Result<TouchPolicy, String> {
    match value {
        "auto" => Ok(TouchPolicy::Auto),
        "deny" => Ok(TouchPolicy::Deny),
        "prompt" => Ok(TouchPolicy::Prompt),
        other => other
            .strip_prefix("delay:")
            .and_then(|ms| ms.parse::<u64>().ok())
            .map(|ms| TouchPolicy::Delay(Duration::from_millis(ms)))
            .ok_or_else(|| format!("expected auto, deny, prompt or delay:MS, got {other:?}")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("firmware-sim: error: {failure}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    let state = match cli.state {
        Some(path) => path,
        None => FileStorage::default_path().ok_or_else(|| {
            Failure::from("no data directory ($XDG_DATA_HOME or $HOME); pass --state FILE")
        })?,
    };
    match cli.command {
        Some(Commands::ExportCa) => {
            let env = Env {
                clock: Box::new(SystemClock::new()),
                rng: Box::new(ring::rand::SystemRandom::new()),
                presence: Box::new(PolicyPresence::new(TouchPolicy::Deny)),
                storage: Box::new(FileStorage::new(&state)),
            };
            let authenticator = Authenticator::new(env)
                .map_err(|e| Failure::from(format!("{}: {e}", state.display())))?;
            print!("{}", authenticator.ca_pem());
            Ok(())
        }
        None => {
            let touch = cli.touch;
            let sim = firmware_sim::spawn(SimConfig {
                listen: cli.listen,
                state: Some(state.clone()),
                touch,
                verbose: cli.verbose,
            })
            .map_err(|e| Failure::from(format!("{}: {e}", state.display())))?;
            eprintln!(
                "firmware-sim: listening on udp:{} (state {}, touch {touch:?})",
                sim.addr(),
                state.display()
            );
            sim.join().map_err(|e| Failure::from(e.to_string()))
        }
    }
}

/// The binary's error: a message for stderr.
struct Failure(String);

impl From<&str> for Failure {
    fn from(message: &str) -> Self {
        Self(message.to_owned())
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Self(message)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
