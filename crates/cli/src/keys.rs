//! `tokengate keys`: the security keys this machine can reach — `list`, `info`, `wink` —
//! through the hardware-key bridge (tokengate-bridge; docs/bridge.md).
//!
//! Prompts ("Touch your security key…", the PIN) go to `/dev/tty`; Ctrl-C cancels the
//! operation with CTAPHID_CANCEL, a second Ctrl-C exits at once.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use tokengate_bridge::ctap::ctap2::GetInfoResponse;
use tokengate_bridge::ctaphid::{Capabilities, InitResponse};
use tokengate_bridge::{
    Authenticator, CancelToken, DEFAULT_SIMULATOR, DEVICE_ENV, DeviceAddress, Error, HidKey,
    Interaction, tty,
};

/// Options of `tokengate keys`.
#[derive(Debug, clap::Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, clap::Subcommand)]
enum KeysCommand {
    /// Every reachable security key: address, vendor, product, CTAP versions, AAGUID.
    List(DeviceArgs),
    /// What one key says about itself (authenticatorGetInfo), readable.
    Info(DeviceArgs),
    /// Make one key blink, to tell which one it is.
    Wink(DeviceArgs),
}

#[derive(Debug, clap::Args)]
struct DeviceArgs {
    /// The key: udp:HOST:PORT (firmware-sim), hid:PATH (one USB HID device), or auto (the
    /// only key; with several, the one you touch). `list` with auto lists every USB key.
    #[arg(
        long,
        value_name = "ADDRESS",
        env = DEVICE_ENV,
        default_value = "auto",
        value_parser = parse_address
    )]
    device: DeviceAddress,
    /// Seconds to wait for the key, touches included.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..=600)
    )]
    timeout: u64,
}

fn parse_address(s: &str) -> Result<DeviceAddress, String> {
    s.parse().map_err(|e: Error| e.to_string())
}

/// Runs `tokengate keys`.
pub fn run(args: KeysArgs) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let cancel = cancel_on_ctrl_c();
    match args.command {
        KeysCommand::List(device) => list(&device, &cancel, &mut out),
        KeysCommand::Info(device) => {
            let mut key = open(&device, &cancel)?;
            let description = describe(&mut key)?;
            write_info(&mut out, &description)?;
            Ok(())
        }
        KeysCommand::Wink(device) => {
            let mut key = open(&device, &cancel)?;
            key.wink()
                .with_context(|| format!("winking {}", key.address()))?;
            writeln!(out, "{} winked (it blinks now).", key.address())?;
            Ok(())
        }
    }
}

/// The people-and-time settings of a `keys` command: prompts and PIN on /dev/tty, Ctrl-C.
fn interaction(device: &DeviceArgs, cancel: &CancelToken) -> Interaction {
    tty::interaction()
        .timeout(Duration::from_secs(device.timeout))
        .cancel_token(cancel.clone())
}

fn open(device: &DeviceArgs, cancel: &CancelToken) -> anyhow::Result<Authenticator> {
    // The bridge's errors name the address already.
    Ok(tokengate_bridge::open(
        &device.device,
        interaction(device, cancel),
    )?)
}

/// A token that the first Ctrl-C (SIGINT) cancels; the second exits with status 130.
///
/// The signal is watched by a small tokio runtime on its own thread (tokio is already this
/// binary's runtime for `serve`), so no extra dependency is needed and the bridge itself
/// stays free of signal handling.
pub(crate) fn cancel_on_ctrl_c() -> CancelToken {
    let token = CancelToken::new();
    let watched = token.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    if let Ok(runtime) = runtime {
        std::thread::spawn(move || {
            runtime.block_on(async {
                if tokio::signal::ctrl_c().await.is_ok() {
                    watched.cancel();
                }
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            });
        });
    }
    token
}

/// What `list` and `info` show about one key.
struct Description {
    address: DeviceAddress,
    usb: Option<HidKey>,
    init: InitResponse,
    info: Option<GetInfoResponse>,
    u2f_version: Option<String>,
    pin_retries: Option<u64>,
}

fn describe(key: &mut Authenticator) -> anyhow::Result<Description> {
    let address = key.address().clone();
    let info = if key.has_ctap2() {
        Some(
            key.info()
                .with_context(|| format!("asking {address} for its info"))?
                .clone(),
        )
    } else {
        None
    };
    let u2f_version = if info.is_none() && key.has_u2f() {
        key.u2f_version().ok()
    } else {
        None
    };
    let pin_set = info
        .as_ref()
        .and_then(|i| i.option("clientPin"))
        .unwrap_or(false);
    let pin_retries = if pin_set {
        key.pin_retries().ok().and_then(|r| r.retries)
    } else {
        None
    };
    Ok(Description {
        address,
        usb: None,
        init: *key.init_response(),
        info,
        u2f_version,
        pin_retries,
    })
}

fn list(device: &DeviceArgs, cancel: &CancelToken, out: &mut impl Write) -> anyhow::Result<()> {
    if device.device != DeviceAddress::Auto {
        let mut key = open(device, cancel)?;
        let description = describe(&mut key)?;
        return write_summary(out, &description);
    }
    let keys = tokengate_bridge::list().context("listing USB HID devices")?;
    if keys.is_empty() {
        writeln!(
            out,
            "No FIDO security keys found over USB HID. For the simulator: tokengate keys list \
             --device {DEFAULT_SIMULATOR}"
        )?;
        return Ok(());
    }
    for (i, usb) in keys.into_iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        match tokengate_bridge::open(&usb.address, interaction(device, cancel)) {
            Ok(mut key) => match describe(&mut key) {
                Ok(mut description) => {
                    description.usb = Some(usb);
                    write_summary(out, &description)?;
                }
                Err(e) => write_unreachable(out, &usb, &format!("{e:#}"))?,
            },
            Err(e) => write_unreachable(out, &usb, &e.to_string())?,
        }
    }
    Ok(())
}

fn write_unreachable(out: &mut impl Write, usb: &HidKey, error: &str) -> anyhow::Result<()> {
    writeln!(out, "{}", usb.address)?;
    writeln!(out, "  vendor:   {}", vendor(Some(usb), None))?;
    writeln!(out, "  product:  {}", product(Some(usb), None, None))?;
    writeln!(out, "  error:    {error}")?;
    Ok(())
}

fn write_summary(out: &mut impl Write, d: &Description) -> anyhow::Result<()> {
    let aaguid = d.info.as_ref().map(|i| i.aaguid);
    writeln!(out, "{}", d.address)?;
    writeln!(out, "  vendor:   {}", vendor(d.usb.as_ref(), aaguid))?;
    writeln!(
        out,
        "  product:  {}",
        product(d.usb.as_ref(), aaguid, Some(&d.init))
    )?;
    writeln!(out, "  versions: {}", versions(d))?;
    writeln!(
        out,
        "  AAGUID:   {}",
        aaguid.map_or("-".to_owned(), |a| aaguid_text(&a))
    )?;
    Ok(())
}

fn write_info(out: &mut impl Write, d: &Description) -> anyhow::Result<()> {
    let v = d.init.device_version;
    writeln!(out, "Device:          {}", d.address)?;
    writeln!(
        out,
        "CTAPHID:         channel {:#010x}, device version {}.{}.{}, capabilities {}",
        d.init.cid,
        v.major,
        v.minor,
        v.build,
        capabilities(d.init.capabilities)
    )?;
    writeln!(out, "Versions:        {}", versions(d))?;
    let Some(info) = &d.info else {
        return Ok(());
    };
    writeln!(out, "AAGUID:          {}", aaguid_text(&info.aaguid))?;
    if let Some(extensions) = &info.extensions {
        writeln!(out, "Extensions:      {}", join(extensions))?;
    }
    if let Some(options) = &info.options {
        let options: Vec<String> = options
            .iter()
            .map(|(name, on)| format!("{name}={}", if *on { "yes" } else { "no" }))
            .collect();
        writeln!(out, "Options:         {}", options.join(", "))?;
    }
    let pin = match (info.option("clientPin"), d.pin_retries) {
        (Some(true), Some(n)) => format!("set, {n} attempts left"),
        (Some(true), None) => "set".to_owned(),
        (Some(false), _) => "not set".to_owned(),
        (None, _) => "not supported".to_owned(),
    };
    writeln!(out, "PIN:             {pin}")?;
    if let Some(protocols) = &info.pin_uv_auth_protocols {
        writeln!(out, "PIN protocols:   {}", join(protocols))?;
    }
    if let Some(min) = info.min_pin_length {
        writeln!(out, "Min PIN length:  {min}")?;
    }
    if let Some(algorithms) = &info.algorithms {
        let names: Vec<String> = algorithms.iter().map(|a| algorithm_name(a.alg)).collect();
        writeln!(out, "Algorithms:      {}", names.join(", "))?;
    }
    if let Some(transports) = &info.transports {
        writeln!(out, "Transports:      {}", join(transports))?;
    }
    if let Some(size) = info.max_msg_size {
        writeln!(out, "Max message:     {size} bytes")?;
    }
    if let Some(n) = info.max_credential_count_in_list {
        writeln!(out, "Max allow list:  {n} credentials")?;
    }
    if let Some(n) = info.max_credential_id_length {
        writeln!(out, "Max cred. ID:    {n} bytes")?;
    }
    if let Some(n) = info.remaining_discoverable_credentials {
        writeln!(out, "Free passkeys:   {n}")?;
    }
    if let Some(firmware) = info.firmware_version {
        writeln!(out, "Firmware:        {firmware} ({firmware:#08x})")?;
    }
    if info.force_pin_change == Some(true) {
        writeln!(out, "Note:            the key asks for a PIN change")?;
    }
    Ok(())
}

fn versions(d: &Description) -> String {
    match (&d.info, &d.u2f_version) {
        (Some(info), _) => join(&info.versions),
        (None, Some(u2f)) => format!("{u2f} (U2F only)"),
        (None, None) => "-".to_owned(),
    }
}

fn join<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn capabilities(caps: Capabilities) -> String {
    let mut names = Vec::new();
    if caps.contains(Capabilities::WINK) {
        names.push("WINK");
    }
    if caps.contains(Capabilities::LOCK) {
        names.push("LOCK");
    }
    if caps.contains(Capabilities::CBOR) {
        names.push("CBOR");
    }
    if caps.contains(Capabilities::NMSG) {
        names.push("NMSG (no U2F)");
    } else {
        names.push("MSG (U2F)");
    }
    names.join(" ")
}

fn algorithm_name(alg: i64) -> String {
    match alg {
        -7 => "ES256 (-7)".to_owned(),
        -8 => "EdDSA (-8)".to_owned(),
        -35 => "ES384 (-35)".to_owned(),
        -257 => "RS256 (-257)".to_owned(),
        other => other.to_string(),
    }
}

/// 8-4-4-4-12 hex.
fn uuid(aaguid: &[u8; 16]) -> String {
    let hex: String = aaguid.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The UUID, with the model when it is a known Yubico AAGUID.
fn aaguid_text(aaguid: &[u8; 16]) -> String {
    let uuid = uuid(aaguid);
    match known_model(&uuid) {
        Some((_, model)) => format!("{uuid} ({model})"),
        None => uuid,
    }
}

/// Vendor and model of the AAGUIDs this command recognises: Yubico's "YubiKey Hardware FIDO2
/// AAGUIDs" (fido.md §4), and firmware-sim's own (`firmware_sim::AAGUID`).
fn known_model(uuid: &str) -> Option<(&'static str, &'static str)> {
    const YUBICO: &str = "Yubico";
    Some(match uuid {
        "cb69481e-8ff7-4039-93ec-0a2729a154a8" => {
            (YUBICO, "YubiKey 5 / 5 Nano / 5C / 5C Nano, fw 5.1")
        }
        "ee882879-721c-4913-9775-3dfcce97072a" => {
            (YUBICO, "YubiKey 5 / 5 Nano / 5C / 5C Nano, fw 5.2–5.4")
        }
        "fa2b99dc-9e39-4257-8f92-4a30d23c4118" => (YUBICO, "YubiKey 5 NFC, fw 5.1"),
        "2fc0579f-8113-47ea-b116-bb5a8db9202a" => (YUBICO, "YubiKey 5 NFC / 5C NFC, fw 5.2–5.4"),
        "c5ef55ff-ad9a-4b9f-b580-adebafe026d0" => (YUBICO, "YubiKey 5Ci, fw 5.2–5.4"),
        "73bb0cd4-e502-49b8-9c6f-b59445bf720b" => (YUBICO, "YubiKey 5 FIPS Series, fw 5.4"),
        "c1f9a0bc-1dd2-404a-b27f-8e29047a43fd" => (YUBICO, "YubiKey 5 NFC / 5C NFC FIPS, fw 5.4"),
        "a25342c0-3cdc-4414-8e46-f4807fca511c" | "d7781e5d-e353-46aa-afe2-3ca49f13332a" => {
            (YUBICO, "YubiKey 5 NFC, fw 5.7")
        }
        "7f6c3a1e-2b9d-4c58-9e0a-5d3b8f1c2a47" => {
            ("tokengate", "firmware-sim, a simulated YubiKey 5")
        }
        _ => return None,
    })
}

/// USB manufacturer string, else what the AAGUID tells.
fn vendor(usb: Option<&HidKey>, aaguid: Option<[u8; 16]>) -> String {
    match (usb, aaguid.and_then(|a| known_model(&uuid(&a)))) {
        (Some(usb), _) => format!(
            "{} ({:04x})",
            usb.manufacturer.as_deref().unwrap_or("unknown"),
            usb.vendor_id
        ),
        (None, Some((vendor, _))) => format!("{vendor} (by AAGUID; no USB descriptor over UDP)"),
        (None, None) => "unknown (no USB descriptor over UDP)".to_owned(),
    }
}

/// USB product string, else what the AAGUID tells, else the CTAPHID device version.
fn product(usb: Option<&HidKey>, aaguid: Option<[u8; 16]>, init: Option<&InitResponse>) -> String {
    match (usb, aaguid.and_then(|a| known_model(&uuid(&a)))) {
        (Some(usb), _) => format!(
            "{} ({:04x})",
            usb.product.as_deref().unwrap_or("unknown"),
            usb.product_id
        ),
        (None, Some((_, model))) => format!("{model} (by AAGUID)"),
        (None, None) => match init {
            Some(init) => {
                let v = init.device_version;
                format!(
                    "unknown (device version {}.{}.{})",
                    v.major, v.minor, v.build
                )
            }
            None => "unknown".to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use tokengate_bridge::ctap::ctap2::PublicKeyCredentialParameters;
    use tokengate_bridge::ctaphid::DeviceVersion;

    use super::*;

    fn description(info: Option<GetInfoResponse>) -> Description {
        Description {
            address: "udp:127.0.0.1:8111".parse().unwrap(),
            usb: None,
            init: InitResponse {
                nonce: [0; 8],
                cid: 7,
                protocol_version: 2,
                device_version: DeviceVersion {
                    major: 5,
                    minor: 2,
                    build: 1,
                },
                capabilities: Capabilities::YUBIKEY_5,
            },
            info,
            u2f_version: None,
            pin_retries: Some(8),
        }
    }

    fn yubikey_info() -> GetInfoResponse {
        GetInfoResponse {
            versions: vec!["U2F_V2".into(), "FIDO_2_0".into(), "FIDO_2_1_PRE".into()],
            extensions: Some(vec!["credProtect".into(), "hmac-secret".into()]),
            aaguid: [
                0x2f, 0xc0, 0x57, 0x9f, 0x81, 0x13, 0x47, 0xea, 0xb1, 0x16, 0xbb, 0x5a, 0x8d, 0xb9,
                0x20, 0x2a,
            ],
            options: Some(BTreeMap::from([
                ("clientPin".to_owned(), true),
                ("rk".to_owned(), true),
            ])),
            max_msg_size: Some(1200),
            pin_uv_auth_protocols: Some(vec![1]),
            algorithms: Some(vec![
                PublicKeyCredentialParameters::public_key(-7),
                PublicKeyCredentialParameters::public_key(-8),
            ]),
            ..Default::default()
        }
    }

    #[test]
    fn summary_names_versions_and_model() {
        let mut out = Vec::new();
        write_summary(&mut out, &description(Some(yubikey_info()))).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("udp:127.0.0.1:8111\n"), "{text}");
        assert!(
            text.contains("versions: U2F_V2, FIDO_2_0, FIDO_2_1_PRE"),
            "{text}"
        );
        assert!(
            text.contains("AAGUID:   2fc0579f-8113-47ea-b116-bb5a8db9202a (YubiKey 5 NFC"),
            "{text}"
        );
        assert!(text.contains("vendor:   Yubico (by AAGUID"), "{text}");
    }

    #[test]
    fn info_is_readable() {
        let mut out = Vec::new();
        write_info(&mut out, &description(Some(yubikey_info()))).unwrap();
        let text = String::from_utf8(out).unwrap();
        for line in [
            "CTAPHID:         channel 0x00000007, device version 5.2.1, capabilities WINK CBOR",
            "Options:         clientPin=yes, rk=yes",
            "PIN:             set, 8 attempts left",
            "Algorithms:      ES256 (-7), EdDSA (-8)",
            "Max message:     1200 bytes",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn u2f_only_keys_say_so() {
        let mut d = description(None);
        d.u2f_version = Some("U2F_V2".into());
        let mut out = Vec::new();
        write_summary(&mut out, &d).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("versions: U2F_V2 (U2F only)"), "{text}");
        assert!(text.contains("AAGUID:   -"), "{text}");
    }

    fn args(device: &str) -> DeviceArgs {
        DeviceArgs {
            device: device.parse().unwrap(),
            timeout: 5,
        }
    }

    #[test]
    fn list_without_keys_says_so() {
        if !tokengate_bridge::list().unwrap().is_empty() {
            return; // A machine with a key plugged in.
        }
        let mut out = Vec::new();
        list(&args("auto"), &CancelToken::new(), &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "No FIDO security keys found over USB HID. For the simulator: tokengate keys list \
             --device udp:127.0.0.1:8111\n"
        );
    }

    #[test]
    fn list_shows_a_udp_device() {
        let device = responder::spawn();
        let mut out = Vec::new();
        list(&args(&device), &CancelToken::new(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with(&format!("{device}\n")), "{text}");
        assert!(
            text.contains("versions: U2F_V2, FIDO_2_0, FIDO_2_1"),
            "{text}"
        );
        assert!(
            text.contains("(firmware-sim, a simulated YubiKey 5)"),
            "{text}"
        );
    }

    #[test]
    fn a_missing_simulator_is_a_clear_error() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let device = format!("udp:{}", socket.local_addr().unwrap());
        drop(socket);
        let err = list(&args(&device), &CancelToken::new(), &mut Vec::new()).unwrap_err();
        assert!(
            format!("{err:#}").contains("is firmware-sim running"),
            "{err:#}"
        );
    }

    /// A CTAPHID device on a UDP socket that answers GetInfo like firmware-sim.
    mod responder {
        use tokengate_bridge::ctaphid::{
            Device, DeviceConfig, DeviceVersion, Event, SequentialCids, Timestamp,
        };

        use super::*;

        pub fn spawn() -> String {
            let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let address = format!("udp:{}", socket.local_addr().unwrap());
            let version = DeviceVersion {
                major: 5,
                minor: 7,
                build: 1,
            };
            let mut device = Device::new(
                DeviceConfig::new(version, Capabilities::YUBIKEY_5),
                SequentialCids::new(),
            );
            let mut info = yubikey_info();
            info.versions = vec!["U2F_V2".into(), "FIDO_2_0".into(), "FIDO_2_1".into()];
            info.aaguid = [
                0x7f, 0x6c, 0x3a, 0x1e, 0x2b, 0x9d, 0x4c, 0x58, 0x9e, 0x0a, 0x5d, 0x3b, 0x8f, 0x1c,
                0x2a, 0x47,
            ];
            let mut reply = vec![0x00];
            info.encode(&mut reply);
            std::thread::spawn(move || {
                let mut buf = [0u8; 64];
                while let Ok((64, from)) = socket.recv_from(&mut buf) {
                    let out = device.handle_report(Timestamp::ZERO, &buf);
                    let mut reports = out.reports;
                    if let Some(Event::Request(request)) = out.event {
                        reports.extend(device.respond(request.cid, &reply).unwrap());
                    }
                    for report in reports {
                        socket.send_to(&report, from).unwrap();
                    }
                }
            });
            address
        }
    }

    #[test]
    fn addresses_are_checked_by_clap() {
        assert!(parse_address("udp:127.0.0.1:8111").is_ok());
        let err = parse_address("usb").unwrap_err();
        assert!(err.contains("udp:HOST:PORT"), "{err}");
    }
}
