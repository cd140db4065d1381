//! `tokengate mfa …`: enrol and manage TOTP MFA devices through the IAM API of a running
//! tokengate (root or a root session with MFA): `enroll` (create, show the otpauth URI and QR
//! code, enable with two consecutive codes), `enable`, `resync`, `import-fob` (a hardware
//! OATH-TOTP fob with its vendor serial and seed file), `list`.
//!
//! Credentials come from the service's `root-credentials.json` (`--root-credentials`, the
//! quickest start), else from the AWS CLI's credential chain (tokengate-client's
//! `credential_chain`: `--profile`, the environment's `AWS_ACCESS_KEY_ID`, `AWS_PROFILE`,
//! `default`), as `tokengate login` reads them.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use tokengate_bridge::tty::Terminal;
use tokengate_token::secret::Secret;
use zeroize::Zeroizing;

use tokengate_client::{
    ProfileChoice, SharedFiles, StaticCredentials, StsClient, credential_chain,
};

/// Default endpoint with `--root-credentials`.
const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:8787";

/// `tokengate mfa`.
#[derive(Debug, clap::Args)]
pub struct MfaArgs {
    #[command(subcommand)]
    command: MfaCommand,
    #[command(flatten)]
    auth: AuthArgs,
}

/// Who calls the IAM API.
#[derive(Debug, clap::Args)]
struct AuthArgs {
    /// AWS profile with the caller's long-term keys [default: AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY when set, else $AWS_PROFILE, else `default`].
    #[arg(
        long,
        global = true,
        value_name = "PROFILE",
        conflicts_with = "root_credentials"
    )]
    profile: Option<String>,
    /// Use the root credentials file the service wrote at first start.
    #[arg(long, global = true, value_name = "FILE")]
    root_credentials: Option<PathBuf>,
    /// The tokengate endpoint [default: the profile's; with --root-credentials,
    /// http://127.0.0.1:8787].
    #[arg(long, global = true, value_name = "URL")]
    endpoint_url: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
enum MfaCommand {
    /// Create a virtual MFA device for a user, show its QR code, and enable it.
    Enroll {
        /// The IAM user.
        #[arg(long)]
        user_name: String,
        /// The device name (its serial is arn:aws:iam::ACCOUNT:mfa/NAME).
        #[arg(long)]
        name: String,
        /// Two consecutive codes; without them, enroll asks on the terminal.
        #[arg(long, requires = "code2")]
        code1: Option<String>,
        /// The code after code1.
        #[arg(long, requires = "code1")]
        code2: Option<String>,
    },
    /// Enable an existing device (virtual or imported fob) for a user.
    Enable {
        /// The IAM user.
        #[arg(long)]
        user_name: String,
        /// The device serial number.
        #[arg(long)]
        serial: String,
        /// A code from the device.
        #[arg(long)]
        code1: String,
        /// The next code.
        #[arg(long)]
        code2: String,
    },
    /// Resynchronise a device whose clock drifted (two consecutive codes).
    Resync {
        /// The IAM user.
        #[arg(long)]
        user_name: String,
        /// The device serial number.
        #[arg(long)]
        serial: String,
        /// A code from the device.
        #[arg(long)]
        code1: String,
        /// The next code.
        #[arg(long)]
        code2: String,
    },
    /// Register a hardware OATH-TOTP fob under its vendor serial (then `mfa enable`).
    ImportFob {
        /// The vendor serial, e.g. GAHT12345678.
        #[arg(long)]
        serial: String,
        /// File with the seed (base32, or hex with --seed-format hex).
        #[arg(long)]
        seed_file: PathBuf,
        /// How the seed file writes the seed.
        #[arg(long, value_enum, default_value = "base32")]
        seed_format: SeedFormat,
        /// HMAC algorithm.
        #[arg(long, default_value = "SHA1", value_parser = ["SHA1", "SHA256", "SHA512"])]
        algorithm: String,
        /// Code length.
        #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u8).range(6..=8))]
        digits: u8,
        /// Step length in seconds.
        #[arg(long, default_value_t = 30)]
        period: u32,
    },
    /// Register a U2F/FIDO2 security key for a user (touch it when asked).
    RegisterKey(crate::security_key::RegisterKeyArgs),
    /// List a user's MFA devices.
    List {
        /// The IAM user [default: the caller].
        #[arg(long)]
        user_name: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SeedFormat {
    Base32,
    Hex,
}

/// Runs `tokengate mfa …`.
pub fn run(args: MfaArgs) -> anyhow::Result<()> {
    let iam = client(&args.auth)?;
    match args.command {
        MfaCommand::Enroll {
            user_name,
            name,
            code1,
            code2,
        } => enroll(&iam, &user_name, &name, code1.zip(code2)),
        MfaCommand::Enable {
            user_name,
            serial,
            code1,
            code2,
        } => {
            two_codes(&iam, "EnableMFADevice", &user_name, &serial, &code1, &code2)?;
            println!("Enabled {serial} for {user_name}.");
            Ok(())
        }
        MfaCommand::Resync {
            user_name,
            serial,
            code1,
            code2,
        } => {
            two_codes(&iam, "ResyncMFADevice", &user_name, &serial, &code1, &code2)?;
            println!("Resynchronised {serial}.");
            Ok(())
        }
        MfaCommand::ImportFob {
            serial,
            seed_file,
            seed_format,
            algorithm,
            digits,
            period,
        } => {
            let seed = read_seed(&seed_file, seed_format)?;
            let base32 = Zeroizing::new(data_encoding::BASE32_NOPAD.encode(seed.expose()));
            let (digits, period) = (digits.to_string(), period.to_string());
            iam.call(
                "iam",
                &[
                    ("Action", "ImportHardwareMFADevice"),
                    ("SerialNumber", &serial),
                    ("Base32StringSeed", &base32),
                    ("Algorithm", &algorithm),
                    ("Digits", &digits),
                    ("Period", &period),
                ],
            )?;
            println!(
                "Imported {serial}. Enable it for a user with two consecutive codes:\n  \
                 tokengate mfa enable --user-name USER --serial {serial} --code1 … --code2 …"
            );
            Ok(())
        }
        MfaCommand::RegisterKey(key) => crate::security_key::register_key(&iam, &key),
        MfaCommand::List { user_name } => {
            let mut params = vec![("Action", "ListMFADevices")];
            if let Some(u) = &user_name {
                params.push(("UserName", u));
            }
            let reply = iam.call("iam", &params)?;
            let devices = reply
                .result
                .child("MFADevices")
                .map(|d| d.children())
                .unwrap_or(&[]);
            if devices.is_empty() {
                println!("No MFA devices.");
            }
            for d in devices {
                println!(
                    "{}\t{}\tenabled {}",
                    d.text_at(&["UserName"]).unwrap_or(""),
                    d.text_at(&["SerialNumber"]).unwrap_or(""),
                    d.text_at(&["EnableDate"]).unwrap_or("-")
                );
            }
            Ok(())
        }
    }
}

fn client(auth: &AuthArgs) -> anyhow::Result<StsClient> {
    if let Some(path) = &auth.root_credentials {
        let text = Zeroizing::new(
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        );
        let v: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let field = |k: &str| {
            v.get(k)
                .and_then(|x| x.as_str())
                .map(str::to_owned)
                .ok_or_else(|| anyhow!("{} has no {k}", path.display()))
        };
        let credentials = StaticCredentials {
            access_key_id: field("AccessKeyId")?,
            secret_access_key: Secret::from(field("SecretAccessKey")?),
            session_token: None,
        };
        let endpoint = auth.endpoint_url.as_deref().unwrap_or(DEFAULT_ENDPOINT);
        return Ok(StsClient::new(endpoint, "us-east-1", credentials, None)?);
    }
    let env = |name: &str| std::env::var(name).ok();
    let files = SharedFiles::load(&env)?;
    let choice = ProfileChoice::new(auth.profile.as_deref(), &env);
    let caller = credential_chain::resolve(&files, &choice, &env)?;
    Ok(caller.client("iam", auth.endpoint_url.as_deref(), &env)?)
}

fn two_codes(
    iam: &StsClient,
    action: &str,
    user: &str,
    serial: &str,
    code1: &str,
    code2: &str,
) -> anyhow::Result<()> {
    iam.call(
        "iam",
        &[
            ("Action", action),
            ("UserName", user),
            ("SerialNumber", serial),
            ("AuthenticationCode1", code1),
            ("AuthenticationCode2", code2),
        ],
    )?;
    Ok(())
}

fn enroll(
    iam: &StsClient,
    user: &str,
    name: &str,
    codes: Option<(String, String)>,
) -> anyhow::Result<()> {
    // Without codes on the command line we must ask: make sure we can before creating.
    let tty = match codes {
        Some(_) => None,
        None => Some(open_tty()?),
    };
    let reply = iam.call(
        "iam",
        &[
            ("Action", "CreateVirtualMFADevice"),
            ("VirtualMFADeviceName", name),
        ],
    )?;
    let device = reply
        .result
        .child("VirtualMFADevice")
        .context("no VirtualMFADevice in reply")?;
    let serial = device
        .text_at(&["SerialNumber"])
        .context("no SerialNumber")?
        .to_owned();
    let seed_blob = device
        .text_at(&["Base32StringSeed"])
        .context("no Base32StringSeed")?;
    let base32 = Zeroizing::new(
        String::from_utf8(data_encoding::BASE64.decode(seed_blob.as_bytes())?)
            .context("Base32StringSeed is not text")?,
    );
    let account = serial.split(':').nth(4).unwrap_or("");
    let uri = Zeroizing::new(tokengate_verifier::totp::otpauth_uri(
        name, account, &base32,
    ));
    println!("Created {serial}.\n");
    println!("Scan this with an authenticator app (Google Authenticator, Authy, 1Password…):\n");
    println!("{}", terminal_qr(&uri)?);
    println!("or enter the key by hand: {}\n", base32.as_str());
    let (code1, code2) = match (codes, tty) {
        (Some(codes), _) => codes,
        (None, Some(tty)) => ask_two_codes(tty)?,
        (None, None) => bail!("no codes and no terminal"),
    };
    two_codes(iam, "EnableMFADevice", user, &serial, &code1, &code2)?;
    println!("Enabled for {user}. In ~/.aws/config, under the user's profile:\n");
    println!("  mfa_serial = {serial}");
    Ok(())
}

/// The QR code of `text` for a terminal: two modules per character row, light on dark so that
/// it scans on the usual dark terminal background.
fn terminal_qr(text: &str) -> Result<String, qrcode::types::QrError> {
    use qrcode::render::unicode::Dense1x2;
    Ok(qrcode::QrCode::new(text.as_bytes())?
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .build())
}

fn open_tty() -> anyhow::Result<Terminal> {
    Terminal::open()
        .map_err(|e| anyhow!("no terminal to ask for the codes ({e}); pass --code1 and --code2"))
}

fn ask_two_codes(tty: Terminal) -> anyhow::Result<(String, String)> {
    let mut out = tty.output;
    let mut lines = BufReader::new(tty.input).lines();
    let mut ask = |prompt: &str| -> anyhow::Result<String> {
        write!(out, "{prompt}")?;
        out.flush()?;
        let line = lines.next().context("no answer on the terminal")??;
        let code = line.trim().to_owned();
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            bail!("a code is 6 digits");
        }
        Ok(code)
    };
    let first = ask("First code from the app: ")?;
    let second = ask("Wait for the next code, then enter it: ")?;
    Ok((first, second))
}

fn read_seed(path: &PathBuf, format: SeedFormat) -> anyhow::Result<Secret> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
    );
    let compact: Zeroizing<String> = Zeroizing::new(
        text.chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect(),
    );
    let bytes = match format {
        SeedFormat::Base32 => data_encoding::BASE32_NOPAD
            .decode(
                compact
                    .trim_end_matches('=')
                    .to_ascii_uppercase()
                    .as_bytes(),
            )
            .map_err(|_| anyhow!("{} does not hold a base32 seed", path.display()))?,
        SeedFormat::Hex => data_encoding::HEXLOWER_PERMISSIVE
            .decode(compact.as_bytes())
            .map_err(|_| anyhow!("{} does not hold a hex seed", path.display()))?,
    };
    if bytes.len() < 10 {
        bail!("the seed in {} is shorter than 80 bits", path.display());
    }
    Ok(Secret::new(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_qr_draws_rows() {
        let uri =
            tokengate_verifier::totp::otpauth_uri("alice", "000000000000", "JBSWY3DPEHPK3PXP");
        let text = terminal_qr(&uri).unwrap_or_else(|e| panic!("{e}"));
        assert!(text.lines().count() > 10);
    }
}
