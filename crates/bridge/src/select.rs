//! Opening a key by address, and `auto`: the only key, or the one the person touches when
//! several are plugged in (CTAP 2.1 §6.9 authenticatorSelection; python-fido2 and libfido2
//! send the touch request to every key and cancel the others once one answers).

use std::sync::OnceLock;

use crate::address::DeviceAddress;
use crate::device::Authenticator;
use crate::error::Error;
use crate::hid::{self, HidTransport};
use crate::interaction::{Interaction, SELECT_PROMPT};
use crate::transport::UdpTransport;

/// Opens the key at `address` and allocates a CTAPHID channel on it. `auto` with several
/// keys calls the touch callback with [`SELECT_PROMPT`] and keeps the key touched first.
pub fn open(address: &DeviceAddress, interaction: Interaction) -> Result<Authenticator, Error> {
    match address {
        DeviceAddress::Udp(host_port) => Authenticator::connect(
            Box::new(UdpTransport::connect(host_port)?),
            address.clone(),
            interaction,
        ),
        DeviceAddress::Hid(path) => Authenticator::connect(
            Box::new(HidTransport::open(path)?),
            address.clone(),
            interaction,
        ),
        DeviceAddress::Auto => {
            let keys = hid::list()?;
            match keys.as_slice() {
                [] => Err(Error::NoDevice),
                [only] => open(&only.address, interaction),
                several => {
                    let mut candidates = Vec::new();
                    let mut first_error = None;
                    for key in several {
                        match open(&key.address, interaction.clone()) {
                            Ok(candidate) => candidates.push(candidate),
                            Err(e) => {
                                first_error.get_or_insert(e);
                            }
                        }
                    }
                    match (candidates.is_empty(), first_error) {
                        (true, Some(e)) => Err(e),
                        _ => select_by_touch(candidates, interaction),
                    }
                }
            }
        }
    }
}

/// Asks the person to touch one of `candidates` ([`Authenticator::wait_for_touch`] on all
/// of them at once) and returns that one; the others are cancelled and dropped. One
/// candidate is returned without a touch.
pub fn select_by_touch(
    candidates: Vec<Authenticator>,
    interaction: Interaction,
) -> Result<Authenticator, Error> {
    let mut candidates = candidates;
    if candidates.len() <= 1 {
        return candidates.pop().ok_or(Error::NoDevice);
    }
    (interaction.on_touch)(SELECT_PROMPT);
    let stop = interaction.cancel.child();
    let winner: OnceLock<usize> = OnceLock::new();
    let finished: Vec<(Authenticator, Result<(), Error>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = candidates
            .into_iter()
            .enumerate()
            .map(|(index, mut candidate)| {
                let quiet = interaction
                    .clone()
                    .cancel_token(stop.clone())
                    .on_touch(|_: &str| {});
                let (stop, winner) = (&stop, &winner);
                scope.spawn(move || {
                    candidate.set_interaction(quiet);
                    let result = candidate.wait_for_touch();
                    if result.is_ok() && winner.set(index).is_ok() {
                        stop.cancel();
                    }
                    (candidate, result)
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|handle| handle.join().ok())
            .collect()
    });
    let mut errors = Vec::new();
    let mut chosen = None;
    for (index, (candidate, result)) in finished.into_iter().enumerate() {
        if winner.get() == Some(&index) {
            chosen = Some(candidate);
        } else if let Err(e) = result {
            errors.push(e);
        }
    }
    if let Some(mut chosen) = chosen {
        chosen.set_interaction(interaction);
        return Ok(chosen);
    }
    if interaction.cancel.is_cancelled() {
        return Err(Error::Cancelled);
    }
    // Prefer the error that says most: a timeout over per-key failures.
    let timed_out = errors
        .iter()
        .position(|e| matches!(e, Error::TimedOut { .. }));
    match timed_out {
        Some(i) => Err(errors.swap_remove(i)),
        None => Err(errors.into_iter().next().unwrap_or(Error::NoDevice)),
    }
}
