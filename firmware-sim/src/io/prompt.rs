//! The `prompt` touch policy: each wait for user presence asks "Touch? [y/N]" on stderr
//! and reads the answer from stdin on a helper thread, so the CTAPHID loop keeps sending
//! keepalives meanwhile. `y` / `yes` is a touch, any other line declines, end of input
//! declines every later request.
//!
//! What it will not do: share stdin between several prompting simulators in one process
//! (each would start its own reader and they would race for lines).

use std::io::{BufRead, Write};
use std::sync::mpsc::{Receiver, TryRecvError, channel};

use crate::env::{Presence, PresenceReason, PresenceRequest, Timestamp, UserPresence};

/// A button that asks the person at the terminal.
pub struct PromptPresence {
    answers: Receiver<String>,
}

impl PromptPresence {
    /// Starts the stdin reader thread.
    pub fn new() -> Self {
        let (sender, answers) = channel();
        std::thread::spawn(move || {
            let stdin = std::io::stdin();
            for line in stdin.lock().lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Self { answers }
    }
}

impl Default for PromptPresence {
    fn default() -> Self {
        Self::new()
    }
}

impl UserPresence for PromptPresence {
    fn begin(&mut self, _now: Timestamp, request: &PresenceRequest) {
        // Lines typed while nobody asked belong to no request.
        while self.answers.try_recv().is_ok() {}
        let what = match request.reason {
            PresenceReason::MakeCredential => "register a credential",
            PresenceReason::GetAssertion => "sign in",
            PresenceReason::ExcludedCredential => "confirm (already registered)",
            PresenceReason::PinUvAuthSelection | PresenceReason::Selection => "select this key",
            PresenceReason::Reset => "RESET the key (erases all credentials)",
            PresenceReason::U2fRegister => "U2F register",
            PresenceReason::U2fAuthenticate => "U2F sign in",
        };
        let rp = request
            .rp_id
            .as_deref()
            .map(|rp| format!(" at {rp}"))
            .unwrap_or_default();
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "firmware-sim: {what}{rp}. Touch? [y/N] ");
        let _ = stderr.flush();
    }

    fn poll(&mut self, _now: Timestamp) -> Presence {
        match self.answers.try_recv() {
            Ok(answer) => match answer.trim().to_ascii_lowercase().as_str() {
                "y" | "yes" => Presence::Touched,
                _ => Presence::Declined,
            },
            Err(TryRecvError::Empty) => Presence::Waiting,
            Err(TryRecvError::Disconnected) => Presence::Declined,
        }
    }
}
