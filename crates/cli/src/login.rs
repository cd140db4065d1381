//! `tokengate login`: long-term credentials from an AWS profile plus a second factor →
//! STS GetSessionToken (with a security key: GetSessionTokenWithSecurityKey, see
//! security_key.rs) → `credential_process` JSON on stdout (docs/login.md).
//!
//! stdout carries only that JSON. The MFA prompt goes to `/dev/tty` (the console on
//! Windows), never stdout or stdin, because the AWS CLI runs a `credential_process` with its
//! stdout captured and its stderr hidden (ecosystem.md §0.3); without a terminal the command
//! fails at once instead of waiting. Sessions are cached (tokengate-client's credential_cache) so the code is asked
//! once per session.

use std::io::{BufRead, BufReader, Write};

use anyhow::{Context, anyhow, bail};
use time::OffsetDateTime;
use tokengate_bridge::tty::{TTY, Terminal};
use tokengate_client::aws_config::ProfileNamedBy;
use tokengate_client::credential_cache::{CacheKey, CredentialCache, Lookup, SessionCredentials};
use tokengate_client::{ProfileChoice, SharedFiles, StsClient, credential_chain, role_profile};
use tokengate_token::arn::is_security_key_serial;
use zeroize::Zeroizing;

mod role;

/// Digits in an STS `TokenCode` (tokenCodeType: exactly 6, `[\d]*`; sts-iam.md §1.1).
const TOKEN_CODE_DIGITS: usize = 6;
/// How often the terminal prompt asks again after a malformed code.
const PROMPT_ATTEMPTS: usize = 3;

/// Options of `tokengate login`.
#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// Profile in the AWS config and credentials files; its keys are used even when
    /// AWS_ACCESS_KEY_ID is set [default: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY when
    /// set, with the settings of $AWS_PROFILE, else of `default`].
    #[arg(long, value_name = "PROFILE")]
    profile: Option<String>,
    /// The 6-digit code of the profile's `mfa_serial` device; without it, login asks on the
    /// terminal (/dev/tty).
    #[arg(long, value_name = "CODE", value_parser = parse_token_code)]
    token_code: Option<String>,
    /// Session length, 900–129600 [default: the profile's `duration_seconds`, else the
    /// service's default, 43200].
    #[arg(long, value_name = "SECONDS")]
    duration_seconds: Option<u32>,
    /// The tokengate endpoint [default: $AWS_ENDPOINT_URL_STS, $AWS_ENDPOINT_URL, then the
    /// profile's `services` section and `endpoint_url`].
    #[arg(long, value_name = "URL")]
    endpoint_url: Option<String>,
    /// Neither read nor write the credential cache (always ask the service).
    #[arg(long)]
    no_cache: bool,
    /// Log in with the security key at this address (udp:HOST:PORT, hid:PATH, auto), even
    /// when `mfa_serial` does not look like a key's [default for a `u2f` serial:
    /// $TOKENGATE_DEVICE, else auto].
    #[arg(long, value_name = "ADDRESS", value_parser = crate::security_key::parse_address)]
    device: Option<tokengate_bridge::DeviceAddress>,
}

/// Runs `tokengate login`.
pub fn run(args: LoginArgs) -> anyhow::Result<()> {
    let env = |name: &str| std::env::var(name).ok();
    let files = SharedFiles::load(&env)?;
    let choice = ProfileChoice::new(args.profile.as_deref(), &env);
    // A profile with role_arn assumes its role (botocore's AssumeRoleProvider), unless the
    // environment's keys come first (they do when --profile does not name the profile).
    let environment_first = choice.named_by != ProfileNamedBy::CommandLine
        && credential_chain::environment_credentials(&env)?.is_some();
    if !environment_first {
        let top = files.profile_or_empty(&choice.name);
        if top.exists()
            && let Some(chain) = role_profile::resolve(&files, &choice.name)?
        {
            return role::run(&args, top, chain, &env);
        }
    }
    let caller = credential_chain::resolve(&files, &choice, &env)?;
    let profile_name = choice.name.as_str();
    let profile = caller.profile;
    let mut factor = SecondFactor::of(profile.mfa_serial());
    if args.token_code.is_some() && factor.serial().is_none() {
        bail!(
            "--token-code was given, but profile `{profile_name}` has no mfa_serial \
             (set it to the ARN of your MFA device)"
        );
    }
    if let Some(device) = &args.device {
        let Some(serial) = factor.serial() else {
            bail!(
                "--device {device} was given, but profile `{profile_name}` has no mfa_serial \
                 (set it to the serial of your security key)"
            );
        };
        factor = SecondFactor::SecurityKey { serial };
    }
    if let (Some(_), SecondFactor::SecurityKey { serial }) = (&args.token_code, factor) {
        bail!("--token-code was given, but mfa_serial `{serial}` is a security key: touch it");
    }
    let duration = match args.duration_seconds {
        Some(d) => Some(d),
        None => profile.duration_seconds()?,
    };
    let client = caller.client("sts", args.endpoint_url.as_deref(), &env)?;

    let key = CacheKey {
        profile: profile_name,
        endpoint: client.endpoint(),
        access_key_id: client.access_key_id(),
        mfa_serial: factor.serial(),
        assumed_roles: &[],
    };
    let cache = if args.no_cache {
        None
    } else {
        CredentialCache::locate(&env)
    };
    if let Some(cache) = &cache {
        match cache.load(&key, OffsetDateTime::now_utc()) {
            Lookup::Fresh(creds) => return print_process_json(&creds),
            Lookup::Unusable(e) => eprintln!(
                "tokengate: ignoring the cached session in {} ({e}); asking the service",
                cache.path_for(&key).display()
            ),
            Lookup::Stale | Lookup::Missing => {}
        }
    }

    let creds = obtain_session(
        &client,
        &factor,
        args.token_code.as_deref(),
        args.device.as_ref(),
        duration,
    )?;
    if let Some(cache) = &cache
        && let Err(e) = cache.store(&key, &creds)
    {
        eprintln!(
            "tokengate: could not cache the session in {} ({e})",
            cache.dir().display()
        );
    }
    print_process_json(&creds)
}

/// The second factor a profile's `mfa_serial` names. Each kind has its own way to reach a
/// session in [`obtain_session`]; a new kind is a new variant and a new arm there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SecondFactor<'a> {
    /// No `mfa_serial`: GetSessionToken without MFA (refused when the service requires it).
    None,
    /// A virtual or hardware TOTP device: a 6-digit TokenCode.
    Totp {
        /// `arn:aws:iam::ACCOUNT:mfa/NAME` or a hardware serial.
        serial: &'a str,
    },
    /// A U2F/FIDO2 security key: `arn:aws:iam::ACCOUNT:u2f/…`.
    SecurityKey {
        /// The key's ARN.
        serial: &'a str,
    },
}

impl<'a> SecondFactor<'a> {
    fn of(mfa_serial: Option<&'a str>) -> Self {
        match mfa_serial {
            None => Self::None,
            Some(serial) if is_security_key_serial(serial) => Self::SecurityKey { serial },
            Some(serial) => Self::Totp { serial },
        }
    }

    fn serial(&self) -> Option<&'a str> {
        match *self {
            Self::None => None,
            Self::Totp { serial } | Self::SecurityKey { serial } => Some(serial),
        }
    }
}

/// Gets a session from the service with `factor`.
fn obtain_session(
    client: &StsClient,
    factor: &SecondFactor<'_>,
    token_code: Option<&str>,
    device: Option<&tokengate_bridge::DeviceAddress>,
    duration: Option<u32>,
) -> anyhow::Result<SessionCredentials> {
    let duration = duration.map(|d| d.to_string());
    let mut params = vec![("Action", "GetSessionToken")];
    if let Some(d) = &duration {
        params.push(("DurationSeconds", d));
    }
    let code: Zeroizing<String>;
    match *factor {
        SecondFactor::None => {}
        SecondFactor::Totp { serial } => {
            code = match token_code {
                Some(c) => Zeroizing::new(c.to_owned()),
                None => prompt_code_on_tty(serial)?,
            };
            params.push(("SerialNumber", serial));
            params.push(("TokenCode", &code));
        }
        SecondFactor::SecurityKey { serial } => {
            let reply = crate::security_key::session(client, serial, device, duration.as_deref())?;
            return Ok(SessionCredentials::from_reply(&reply)?);
        }
    }
    let reply = client.call("sts", &params)?;
    Ok(SessionCredentials::from_reply(&reply)?)
}

fn print_process_json(creds: &SessionCredentials) -> anyhow::Result<()> {
    let json = creds.to_process_json()?;
    let mut out = std::io::stdout().lock();
    out.write_all(json.as_bytes())
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush())
        .context("writing the credentials to stdout")
}

/// Asks for the code on the controlling terminal; fails at once when there is none.
fn prompt_code_on_tty(serial: &str) -> anyhow::Result<Zeroizing<String>> {
    let tty = Terminal::open().map_err(|e| {
        anyhow!(
            "no terminal to ask for the MFA code for {serial} ({TTY}: {e}); pass \
             --token-code CODE, or run `tokengate login` once in a terminal so that the \
             session is cached"
        )
    })?;
    ask_code(&mut BufReader::new(&tty.input), &mut &tty.output, serial)
}

/// The prompt loop, over any reader and writer (the terminal, or a test's buffers).
fn ask_code(
    input: &mut impl BufRead,
    output: &mut impl Write,
    serial: &str,
) -> anyhow::Result<Zeroizing<String>> {
    for _ in 0..PROMPT_ATTEMPTS {
        write!(output, "Enter MFA code for {serial}: ")?;
        output.flush()?;
        let mut line = Zeroizing::new(String::new());
        if input.read_line(&mut line)? == 0 {
            writeln!(output)?;
            bail!("no MFA code entered (end of input on the terminal)");
        }
        let code = line.trim();
        if is_token_code(code) {
            return Ok(Zeroizing::new(code.to_owned()));
        }
        writeln!(output, "An MFA code is {TOKEN_CODE_DIGITS} digits.")?;
    }
    bail!("no valid {TOKEN_CODE_DIGITS}-digit MFA code entered")
}

fn is_token_code(code: &str) -> bool {
    code.len() == TOKEN_CODE_DIGITS && code.bytes().all(|b| b.is_ascii_digit())
}

/// clap parser for `--token-code`: 6 ASCII digits, checked before anything is sent.
fn parse_token_code(code: &str) -> Result<String, String> {
    if is_token_code(code) {
        Ok(code.to_owned())
    } else {
        Err(format!("an MFA code is {TOKEN_CODE_DIGITS} digits (0-9)"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::io::Cursor;

    use super::*;

    #[test]
    fn token_codes_are_six_ascii_digits() {
        assert!(parse_token_code("012345").is_ok());
        for bad in ["12345", "1234567", "12345a", "١٢٣٤٥٦", " 12345", ""] {
            assert!(parse_token_code(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_serial_picks_the_second_factor() {
        assert_eq!(SecondFactor::of(None), SecondFactor::None);
        let totp = "arn:aws:iam::000000000000:mfa/alice";
        assert_eq!(
            SecondFactor::of(Some(totp)),
            SecondFactor::Totp { serial: totp }
        );
        assert_eq!(
            SecondFactor::of(Some("GAHT12345678")),
            SecondFactor::Totp {
                serial: "GAHT12345678"
            }
        );
        let key = "arn:aws:iam::000000000000:u2f/user/alice/fidosecuritykey-ABC";
        assert_eq!(
            SecondFactor::of(Some(key)),
            SecondFactor::SecurityKey { serial: key }
        );
        assert_eq!(SecondFactor::of(Some(key)).serial(), Some(key));
    }

    #[test]
    fn the_prompt_asks_again_then_gives_up() {
        let mut out = Vec::new();
        let code = ask_code(&mut Cursor::new("12\n 654321 \n"), &mut out, "arn:x").unwrap();
        assert_eq!(code.as_str(), "654321");
        let shown = String::from_utf8(out).unwrap();
        assert_eq!(shown.matches("Enter MFA code for arn:x: ").count(), 2);
        assert!(shown.contains("An MFA code is 6 digits."));

        let err = ask_code(&mut Cursor::new("a\nb\nc\n123456\n"), &mut Vec::new(), "s");
        assert!(err.unwrap_err().to_string().contains("no valid 6-digit"));
        let err = ask_code(&mut Cursor::new(""), &mut Vec::new(), "s").unwrap_err();
        assert!(err.to_string().contains("end of input"), "{err}");
    }
}
