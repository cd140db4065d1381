//! The controlling terminal, for command-line tools: the touch prompt and PIN entry on
//! `/dev/tty`, never stdout or stdin. Under `credential_process` stdout carries JSON, stderr
//! is hidden and stdin is often not a terminal (ecosystem.md §0 point 3). On Windows the
//! terminal is the console's input and output buffers (`CONIN$`, `CONOUT$`), which a child
//! of the AWS CLI shares in the same way; PIN entry there is not available yet.
//!
//! PIN entry turns echo, line editing and signals off with termios (rustix: safe calls, no
//! `unsafe` here) and reads byte by byte. With signals off, Ctrl-C arrives as a byte and
//! ends the prompt with [`Error::Cancelled`], so the terminal is always restored by the
//! guard (rpassword leaves echo off when Ctrl-C kills the process mid-prompt).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};

use zeroize::Zeroizing;

use crate::error::Error;
use crate::interaction::{Interaction, Pin, PinPrompt};

/// The controlling terminal, read from (and on Unix written to).
#[cfg(not(windows))]
pub const TTY: &str = "/dev/tty";
/// The console's input buffer (Win32 `CreateFile`, "Console handles").
#[cfg(windows)]
pub const TTY: &str = "CONIN$";
/// Where prompts are written: the controlling terminal.
#[cfg(not(windows))]
pub const TTY_OUT: &str = "/dev/tty";
/// The console's active screen buffer (Win32 `CreateFile`, "Console handles").
#[cfg(windows)]
pub const TTY_OUT: &str = "CONOUT$";
/// Longest line accepted at the PIN prompt, in bytes (a PIN has at most 63).
#[cfg_attr(not(unix), allow(dead_code))] // read by the Unix PIN prompt only
const MAX_PIN_INPUT: usize = 256;

/// The terminal opened for a question (an MFA code): prompts go to `output`, the answer is
/// read from `input`, a line at a time. On Unix both are `/dev/tty`.
#[derive(Debug)]
pub struct Terminal {
    /// Where the answer is typed.
    pub input: File,
    /// Where the prompt is shown.
    pub output: File,
}

impl Terminal {
    /// Opens the controlling terminal ([`TTY`], [`TTY_OUT`]); an error when the process has
    /// none (a service, a CI job, a detached process).
    pub fn open() -> std::io::Result<Self> {
        let input = OpenOptions::new().read(true).write(true).open(TTY)?;
        let output = if TTY_OUT == TTY {
            input.try_clone()?
        } else {
            OpenOptions::new().read(true).write(true).open(TTY_OUT)?
        };
        Ok(Self { input, output })
    }
}

/// An [`Interaction`] for a terminal program: touch prompts and PIN entry on `/dev/tty`.
pub fn interaction() -> Interaction {
    Interaction::new()
        .on_touch(touch_prompt)
        .pin_source(read_pin)
}

/// Shows `message` on the terminal ([`TTY_OUT`]), or on stderr when there is none.
pub fn touch_prompt(message: &str) {
    match OpenOptions::new().write(true).open(TTY_OUT) {
        Ok(mut tty) => {
            let _ = writeln!(tty, "{message}");
        }
        Err(_) => eprintln!("{message}"),
    }
}

/// The prompt line for a PIN request.
pub fn pin_prompt_text(prompt: &PinPrompt) -> String {
    match prompt.retries {
        Some(1) => format!(
            "PIN for the security key at {} (last attempt before it blocks): ",
            prompt.device
        ),
        Some(n) => format!(
            "PIN for the security key at {} ({n} attempts left): ",
            prompt.device
        ),
        None => format!("PIN for the security key at {}: ", prompt.device),
    }
}

/// Asks for the PIN on `/dev/tty` without echo. No terminal is [`Error::PinRequired`];
/// Ctrl-C, or Ctrl-D on an empty line, is [`Error::Cancelled`].
#[cfg(unix)]
pub fn read_pin(prompt: &PinPrompt) -> Result<Pin, Error> {
    use rustix::termios::{self, LocalModes, OptionalActions, SpecialCodeIndex};

    let tty = OpenOptions::new()
        .read(true)
        .write(true)
        .open(TTY)
        .map_err(|_| Error::PinRequired)?;
    let original = termios::tcgetattr(&tty).map_err(|_| Error::PinRequired)?;
    let mut quiet = original.clone();
    quiet
        .local_modes
        .remove(LocalModes::ECHO | LocalModes::ICANON | LocalModes::ISIG | LocalModes::IEXTEN);
    quiet.special_codes[SpecialCodeIndex::VMIN] = 1;
    quiet.special_codes[SpecialCodeIndex::VTIME] = 0;
    (&tty).write_all(pin_prompt_text(prompt).as_bytes())?;
    (&tty).flush()?;
    // TCSAFLUSH: what was typed before the prompt is not taken as the PIN.
    termios::tcsetattr(&tty, OptionalActions::Flush, &quiet).map_err(std::io::Error::from)?;
    let result = {
        let _restore = Restore {
            tty: &tty,
            original,
        };
        read_pin_bytes(&mut &tty)
    };
    let _ = (&tty).write_all(b"\n");
    result
}

/// Asks for the PIN: not available on this platform yet.
#[cfg(not(unix))]
pub fn read_pin(_prompt: &PinPrompt) -> Result<Pin, Error> {
    Err(Error::Unsupported("PIN entry on this platform's terminal"))
}

#[cfg(unix)]
struct Restore<'a> {
    tty: &'a std::fs::File,
    original: rustix::termios::Termios,
}

#[cfg(unix)]
impl Drop for Restore<'_> {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            self.tty,
            rustix::termios::OptionalActions::Now,
            &self.original,
        );
    }
}

/// Reads a PIN typed with echo and line editing off: Enter ends it, Backspace deletes a
/// character, Ctrl-U the line, Ctrl-C cancels, Ctrl-D cancels an empty line; other control
/// bytes are ignored.
#[cfg_attr(not(unix), allow(dead_code))] // read by the Unix PIN prompt only; tested everywhere
fn read_pin_bytes(input: &mut impl Read) -> Result<Pin, Error> {
    const CTRL_C: u8 = 0x03;
    const CTRL_D: u8 = 0x04;
    const BACKSPACE: u8 = 0x08;
    const CTRL_U: u8 = 0x15;
    const DELETE: u8 = 0x7F;
    let mut line = Zeroizing::new(Vec::with_capacity(MAX_PIN_INPUT));
    let mut byte = [0u8; 1];
    loop {
        if input.read(&mut byte)? == 0 {
            if line.is_empty() {
                return Err(Error::Cancelled);
            }
            break;
        }
        match byte[0] {
            b'\r' | b'\n' => break,
            CTRL_C => return Err(Error::Cancelled),
            CTRL_D if line.is_empty() => return Err(Error::Cancelled),
            CTRL_D => break,
            BACKSPACE | DELETE => {
                // Drop one UTF-8 character: continuation bytes, then its first byte.
                while let Some(b) = line.pop() {
                    if b & 0xC0 != 0x80 {
                        break;
                    }
                }
            }
            CTRL_U => line.clear(),
            b if b < 0x20 => {}
            b if line.len() < MAX_PIN_INPUT => line.push(b),
            _ => {}
        }
    }
    let text = std::str::from_utf8(&line)
        .map_err(|_| Error::PinPolicy("the PIN is not valid UTF-8".into()))?;
    Ok(Pin::new(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(bytes: &[u8]) -> Result<String, Error> {
        read_pin_bytes(&mut &bytes[..]).map(|pin| pin.expose_secret().to_owned())
    }

    #[test]
    fn line_editing() {
        assert_eq!(typed(b"1234\r").unwrap(), "1234");
        assert_eq!(typed(b"1234\n").unwrap(), "1234");
        assert_eq!(typed(b"12x\x7f34\r").unwrap(), "1234");
        assert_eq!(typed(b"99\x159876\r").unwrap(), "9876");
        assert_eq!(typed("pé€\x08\x08n\r".as_bytes()).unwrap(), "pn");
        assert_eq!(typed(b"12\x1b34\r").unwrap(), "1234");
        assert_eq!(typed(b"5678").unwrap(), "5678");
        assert_eq!(typed(b"5678\x04").unwrap(), "5678");
    }

    #[test]
    fn ctrl_c_and_empty_input_cancel() {
        assert!(matches!(typed(b"12\x03"), Err(Error::Cancelled)));
        assert!(matches!(typed(b"\x04"), Err(Error::Cancelled)));
        assert!(matches!(typed(b""), Err(Error::Cancelled)));
        assert!(matches!(typed(b"\xff\xfe\r"), Err(Error::PinPolicy(_))));
    }

    #[test]
    fn prompts_name_the_key_and_the_attempts() {
        let mut prompt = PinPrompt {
            device: "udp:127.0.0.1:8111".into(),
            retries: Some(8),
            min_length: 4,
        };
        assert_eq!(
            pin_prompt_text(&prompt),
            "PIN for the security key at udp:127.0.0.1:8111 (8 attempts left): "
        );
        prompt.retries = Some(1);
        assert!(pin_prompt_text(&prompt).contains("last attempt"));
    }
}
