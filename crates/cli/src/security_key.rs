//! Security keys from the command line (docs/security-keys.md): `tokengate mfa register-key`
//! and the security-key arm of `tokengate login`. Both run tokengate's ceremony actions with
//! the key reached through the bridge: ask the service for a challenge, build the WebAuthn
//! clientDataJSON for it, have the key sign its hash (CTAP2, or U2F with `--protocol u2f` /
//! a U2F-registered key), send the result back.
//!
//! The touch prompt ("Touch your security key…") goes to /dev/tty (stderr without a
//! terminal) through the bridge's `tty` interaction; Ctrl-C cancels the wait on the key.

use std::time::Duration;

use anyhow::{Context, anyhow};
use tokengate_bridge::{
    AssertionRequest, Authenticator, CredentialRequest, DEVICE_ENV, DeviceAddress, Error,
    Interaction, rp_id_hash, tty,
};
use tokengate_verifier::fido::{Ceremony, client_data_json};

use tokengate_client::{Element, Reply, StsClient};

/// How long to wait for the key, touch included.
pub const KEY_TIMEOUT: Duration = Duration::from_secs(30);

/// Options of `tokengate mfa register-key`.
#[derive(Debug, clap::Args)]
pub struct RegisterKeyArgs {
    /// The IAM user the key is for.
    #[arg(long)]
    user_name: String,
    /// A name for the key (its serial is arn:aws:iam::ACCOUNT:u2f/user/USER/NAME-SUFFIX).
    #[arg(long)]
    name: String,
    /// The key: udp:HOST:PORT (firmware-sim), hid:PATH, or auto (the only USB key; with
    /// several, the one you touch).
    #[arg(
        long,
        value_name = "ADDRESS",
        env = DEVICE_ENV,
        default_value = "auto",
        value_parser = parse_address
    )]
    device: DeviceAddress,
    /// fido2 (CTAP2) or u2f (CTAP1, for keys or policies that want the U2F protocol).
    #[arg(long, value_enum, default_value = "fido2")]
    protocol: KeyProtocol,
}

/// The protocol a key is registered (and later spoken to) with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum KeyProtocol {
    Fido2,
    U2f,
}

impl KeyProtocol {
    fn as_str(self) -> &'static str {
        match self {
            Self::Fido2 => "fido2",
            Self::U2f => "u2f",
        }
    }
}

/// clap parser for `--device`.
pub fn parse_address(s: &str) -> Result<DeviceAddress, String> {
    s.parse().map_err(|e: Error| e.to_string())
}

/// The terminal interaction for a key: prompt on /dev/tty, Ctrl-C cancels, 30 s deadline.
fn interaction() -> Interaction {
    tty::interaction()
        .timeout(KEY_TIMEOUT)
        .cancel_token(crate::keys::cancel_on_ctrl_c())
}

fn open(address: &DeviceAddress) -> anyhow::Result<Authenticator> {
    // The bridge's errors name the address already.
    Ok(tokengate_bridge::open(address, interaction())?)
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
    out
}

fn b64(bytes: &[u8]) -> String {
    data_encoding::BASE64.encode(bytes)
}

/// A text member of a reply's result.
fn text<'a>(reply: &'a Reply, name: &str) -> anyhow::Result<&'a str> {
    reply
        .result
        .text_at(&[name])
        .ok_or_else(|| anyhow!("the service's reply has no {name}"))
}

/// A blob (base64) member of a reply's result.
fn blob(reply: &Reply, name: &str) -> anyhow::Result<Vec<u8>> {
    decode(text(reply, name)?, name)
}

fn decode(text: &str, name: &str) -> anyhow::Result<Vec<u8>> {
    data_encoding::BASE64
        .decode(text.as_bytes())
        .map_err(|_| anyhow!("the service's {name} is not base64"))
}

/// The members of list `name` of a reply's result, decoded.
fn blob_list(reply: &Reply, name: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    reply
        .result
        .child(name)
        .map(Element::children)
        .unwrap_or(&[])
        .iter()
        .map(|member| decode(member.text(), name))
        .collect()
}

/// What a challenge says the client must do.
struct Challenge {
    id: String,
    challenge: Vec<u8>,
    rp_id: String,
    origin: String,
    protocol: String,
}

impl Challenge {
    fn from_reply(reply: &Reply) -> anyhow::Result<Self> {
        Ok(Self {
            id: text(reply, "ChallengeId")?.to_owned(),
            challenge: blob(reply, "Challenge")?,
            rp_id: text(reply, "RpId")?.to_owned(),
            origin: text(reply, "Origin")?.to_owned(),
            protocol: text(reply, "Protocol")?.to_owned(),
        })
    }

    /// The clientDataJSON for `ceremony` (WebAuthn L3 §5.8.1.1) and its SHA-256, the hash the
    /// key signs.
    fn client_data(&self, ceremony: Ceremony) -> (Vec<u8>, [u8; 32]) {
        let json = client_data_json(ceremony, &self.challenge, &self.origin);
        let hash = sha256(&json);
        (json, hash)
    }
}

/// `tokengate mfa register-key`: registers a key for a user through `iam` (root).
pub fn register_key(iam: &StsClient, args: &RegisterKeyArgs) -> anyhow::Result<()> {
    let reply = iam.call(
        "iam",
        &[
            ("Action", "CreateSecurityKeyRegistrationChallenge"),
            ("UserName", &args.user_name),
            ("DeviceName", &args.name),
            ("Protocol", args.protocol.as_str()),
        ],
    )?;
    let challenge = Challenge::from_reply(&reply)?;
    let user_id = blob(&reply, "UserId")?;
    let user_name = text(&reply, "UserName")?.to_owned();
    let exclude = blob_list(&reply, "ExcludeCredentials")?;
    let (json, hash) = challenge.client_data(Ceremony::Create);
    let mut key = open(&args.device)?;
    let (parameter, response) = match args.protocol {
        KeyProtocol::Fido2 => {
            let mut request = CredentialRequest::new(hash, &challenge.rp_id, &user_id, &user_name);
            request.exclude_list = exclude;
            let registration = key.register(&request).map_err(|e| match e {
                Error::CredentialExcluded => {
                    anyhow!("this key is registered for {user_name} already")
                }
                other => anyhow!(other).context(format!("registering {}", args.device)),
            })?;
            (
                "AttestationObject",
                registration.attestation_object.to_vec(),
            )
        }
        KeyProtocol::U2f => {
            let response = key
                .u2f_register(&hash, &rp_id_hash(&challenge.rp_id))
                .with_context(|| format!("registering {} over U2F", args.device))?;
            let mut raw = Vec::new();
            response
                .encode(&mut raw)
                .context("encoding the U2F registration")?;
            ("RegistrationData", raw)
        }
    };
    let (response, json) = (b64(&response), b64(&json));
    let reply = iam.call(
        "iam",
        &[
            ("Action", "EnableSecurityKey"),
            ("ChallengeId", &challenge.id),
            ("ClientDataJSON", &json),
            (parameter, &response),
        ],
    )?;
    let serial = text(&reply, "SerialNumber")?;
    println!(
        "Registered {} ({} attestation: {}) for {user_name} as {serial}.",
        text(&reply, "Protocol").unwrap_or(args.protocol.as_str()),
        text(&reply, "AttestationFormat").unwrap_or("?"),
        text(&reply, "AttestationResult").unwrap_or("?"),
    );
    println!("In ~/.aws/config, under the user's profile:\n");
    println!("  mfa_serial = {serial}");
    Ok(())
}

/// `tokengate login` with a security key: STS GetSecurityKeyChallenge, a touch, STS
/// GetSessionTokenWithSecurityKey. `device` defaults to `TOKENGATE_DEVICE`, else `auto`.
pub fn session(
    sts: &StsClient,
    serial: &str,
    device: Option<&DeviceAddress>,
    duration: Option<&str>,
) -> anyhow::Result<Reply> {
    let address = match device {
        Some(address) => address.clone(),
        None => DeviceAddress::from_env()?,
    };
    let reply = sts.call(
        "sts",
        &[
            ("Action", "GetSecurityKeyChallenge"),
            ("SerialNumber", serial),
        ],
    )?;
    let challenge = Challenge::from_reply(&reply)?;
    let allowed = blob_list(&reply, "AllowCredentials")?;
    let (json, hash) = challenge.client_data(Ceremony::Get);
    let mut key = open(&address)?;
    let (credential_id, authenticator_data, signature) = match challenge.protocol.as_str() {
        "u2f" => u2f_sign(&mut key, &challenge.rp_id, &hash, &allowed)?
            .ok_or_else(|| no_credential(&address, serial))?,
        _ => {
            let request = AssertionRequest::new(hash, &challenge.rp_id, allowed);
            let assertion = key.authenticate(&request).map_err(|e| match e {
                Error::NoCredentials => no_credential(&address, serial),
                other => anyhow!(other).context(format!("signing in with {address}")),
            })?;
            (
                assertion.credential_id,
                assertion.auth_data.to_vec(),
                assertion.signature,
            )
        }
    };
    let (credential_id, authenticator_data, json, signature) = (
        b64(&credential_id),
        b64(&authenticator_data),
        b64(&json),
        b64(&signature),
    );
    let mut params = vec![
        ("Action", "GetSessionTokenWithSecurityKey"),
        ("SerialNumber", serial),
        ("ChallengeId", challenge.id.as_str()),
        ("CredentialId", &credential_id),
        ("AuthenticatorData", &authenticator_data),
        ("ClientDataJSON", &json),
        ("Signature", &signature),
    ];
    if let Some(d) = duration {
        params.push(("DurationSeconds", d));
    }
    Ok(sts.call("sts", &params)?)
}

/// What a login sends back: (credential ID, authenticatorData, signature).
type Signed = (Vec<u8>, Vec<u8>, Vec<u8>);

/// U2F AUTHENTICATE with the first allowed key handle this key recognises (the
/// authenticatorData is the 37 bytes the U2F signature starts with), or `None` when it
/// recognises none.
fn u2f_sign(
    key: &mut Authenticator,
    rp_id: &str,
    hash: &[u8; 32],
    allowed: &[Vec<u8>],
) -> anyhow::Result<Option<Signed>> {
    let application = rp_id_hash(rp_id);
    for key_handle in allowed {
        match key.u2f_authenticate(hash, &application, key_handle) {
            Ok(response) => {
                let auth_data = response.to_auth_data(&application).to_vec();
                return Ok(Some((key_handle.clone(), auth_data, response.signature)));
            }
            Err(Error::NoCredentials) => continue,
            Err(e) => return Err(anyhow!(e).context(format!("signing in with {}", key.address()))),
        }
    }
    Ok(None)
}

fn no_credential(address: &DeviceAddress, serial: &str) -> anyhow::Error {
    anyhow!(
        "the security key at {address} does not hold the credential of {serial} (another \
         key? choose it with --device or {DEVICE_ENV})"
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn challenges_parse_from_replies() {
        let reply = Reply {
            status: 200,
            response: "GetSecurityKeyChallengeResponse".into(),
            result: Element::parse(
                "<R><ChallengeId>00ff</ChallengeId><Challenge>AAEC</Challenge>\
                 <RpId>tokengate.localhost</RpId><Origin>https://tokengate.localhost</Origin>\
                 <Protocol>u2f</Protocol><AllowCredentials><member>AQI=</member>\
                 <member>Aw==</member></AllowCredentials></R>",
            )
            .unwrap(),
            request_id: None,
        };
        let c = Challenge::from_reply(&reply).unwrap();
        assert_eq!(c.challenge, vec![0, 1, 2]);
        assert_eq!(c.protocol, "u2f");
        assert_eq!(
            blob_list(&reply, "AllowCredentials").unwrap(),
            vec![vec![1, 2], vec![3]]
        );
        assert!(blob_list(&reply, "ExcludeCredentials").unwrap().is_empty());
        let (json, hash) = c.client_data(Ceremony::Get);
        assert_eq!(hash, sha256(&json));
        assert!(
            String::from_utf8(json)
                .unwrap()
                .contains("\"webauthn.get\"")
        );

        let bad = Reply {
            result: Element::parse("<R><Challenge>not base64</Challenge></R>").unwrap(),
            ..reply
        };
        assert!(blob(&bad, "Challenge").is_err());
        assert!(Challenge::from_reply(&bad).is_err());
    }
}
