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
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokengate_bridge::{
    AssertionRequest, Authenticator, CredentialRequest, DEVICE_ENV, DeviceAddress, Error,
    Interaction, rp_id_hash, tty,
};
use tokengate_client::{ApiCallError, Element, Reply, StsClient};
use tokengate_verifier::fido::{
    Ceremony, ClientData, RegistrationInput, RegistrationPolicy, Rejection, TrustAnchor,
    YUBICO_U2F_ROOT_CA_PEM, client_data_json, verify_registration,
};

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
    /// When the service stops accepting an answer, if it said.
    expiration: Option<OffsetDateTime>,
}

impl Challenge {
    fn from_reply(reply: &Reply) -> anyhow::Result<Self> {
        Ok(Self {
            id: text(reply, "ChallengeId")?.to_owned(),
            challenge: blob(reply, "Challenge")?,
            rp_id: text(reply, "RpId")?.to_owned(),
            origin: text(reply, "Origin")?.to_owned(),
            protocol: text(reply, "Protocol")?.to_owned(),
            expiration: reply
                .result
                .text_at(&["Expiration"])
                .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok()),
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
    // (parameter, what is sent, the attestationObject the service verifies)
    let (parameter, sent, attestation_object) = match args.protocol {
        KeyProtocol::Fido2 => {
            let mut request = CredentialRequest::new(hash, &challenge.rp_id, &user_id, &user_name);
            request.exclude_list = exclude;
            let registration = key.register(&request).map_err(|e| match e {
                Error::CredentialExcluded => {
                    anyhow!("this key is registered for {user_name} already")
                }
                other => anyhow!(other).context(format!("registering {}", args.device)),
            })?;
            let object = registration.attestation_object.to_vec();
            ("AttestationObject", object.clone(), object)
        }
        KeyProtocol::U2f => {
            let application = rp_id_hash(&challenge.rp_id);
            let response = key
                .u2f_register(&hash, &application)
                .with_context(|| format!("registering {} over U2F", args.device))?;
            let mut raw = Vec::new();
            response
                .encode(&mut raw)
                .context("encoding the U2F registration")?;
            // What the service verifies a raw U2F registration as (WebAuthn L3 §8.6).
            let object = response.to_attestation_object(&application).to_vec();
            ("RegistrationData", raw, object)
        }
    };
    let (response, encoded_json) = (b64(&sent), b64(&json));
    let reply = iam
        .call(
            "iam",
            &[
                ("Action", "EnableSecurityKey"),
                ("ChallengeId", &challenge.id),
                ("ClientDataJSON", &encoded_json),
                (parameter, &response),
            ],
        )
        .map_err(
            |e| match refusal_advice(&e, &challenge, &attestation_object, &json) {
                Some(advice) => anyhow!(e).context(advice),
                None => anyhow!(e),
            },
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

/// The wire answer to every refused registration (the service's `REGISTRATION_REFUSED`:
/// all MFA failures look the same on the wire, STYLE.md).
const REFUSED_CODE: &str = "InvalidAuthenticationCode";

/// Why the service probably refused a registration, worked out on this side: the service
/// answers every refusal with the same [`REFUSED_CODE`] and keeps the reason in its audit
/// log. The client holds what the service verified (the challenge, clientDataJSON, the
/// attestationObject), so it re-runs the verification with the service's default policy
/// (the shipped Yubico root, no `none` or self attestation) and names the fix for the one
/// check that fails. `None` when the answer is another error or nothing stands out.
fn refusal_advice(
    error: &ApiCallError,
    challenge: &Challenge,
    attestation_object: &[u8],
    client_data_json: &[u8],
) -> Option<String> {
    let ApiCallError::Api { code, .. } = error else {
        return None;
    };
    if code != REFUSED_CODE {
        return None;
    }
    let now = OffsetDateTime::now_utc();
    if challenge.expiration.is_some_and(|expires| now >= expires) {
        return Some(
            "the registration challenge expired before the key answered: run the command \
             again and touch the key when asked"
                .to_owned(),
        );
    }
    let policy = RegistrationPolicy {
        trust_anchors: TrustAnchor::from_pem(YUBICO_U2F_ROOT_CA_PEM).unwrap_or_default(),
        ..RegistrationPolicy::default()
    };
    let input = RegistrationInput {
        attestation_object,
        client_data: ClientData::Json(client_data_json),
        challenge: &challenge.challenge,
        origin: &challenge.origin,
        rp_id: &challenge.rp_id,
        now: now.unix_timestamp(),
    };
    advice_for(verify_registration(&policy, &input).err()?)
}

/// The advice for the check a registration fails under the service's default policy.
fn advice_for(rejection: Rejection) -> Option<String> {
    match rejection {
        Rejection::UntrustedAttestation(_) => Some(
            "the key's attestation certificate does not chain to the Yubico root that the \
             service trusts by default, so most likely the service does not trust the key's \
             attestation CA. Trust that CA by adding its PEM file to \
             `security_keys.trust_anchors` in the service's configuration (or \
             TOKENGATE_SECURITY_KEYS_TRUST_ANCHORS; see docs/configuration.md) and restart the \
             service. For the firmware-sim simulator, \
             `firmware-sim export-ca --state STATE_FILE > sim-ca.pem` prints its CA"
                .to_owned(),
        ),
        Rejection::NoneAttestationNotAllowed => Some(
            "the key sent no attestation (`none`), which the service refuses unless \
             `security_keys.allow_none_attestation = true` (docs/configuration.md)"
                .to_owned(),
        ),
        Rejection::SelfAttestationNotAllowed => Some(
            "the key vouches for itself (self attestation), which the service does not \
             accept: register a key with a vendor attestation certificate"
                .to_owned(),
        ),
        _ => None,
    }
}

/// A touch answering a login challenge: the parameters that every `…WithSecurityKey` STS
/// action takes besides its own (docs/security-keys.md), base64 where the wire wants it.
pub struct Touch {
    serial: String,
    challenge_id: String,
    credential_id: String,
    authenticator_data: String,
    client_data_json: String,
    signature: String,
}

impl Touch {
    /// `SerialNumber`, `ChallengeId`, `CredentialId`, `AuthenticatorData`, `ClientDataJSON`,
    /// `Signature`.
    pub fn params(&self) -> [(&'static str, &str); 6] {
        [
            ("SerialNumber", &self.serial),
            ("ChallengeId", &self.challenge_id),
            ("CredentialId", &self.credential_id),
            ("AuthenticatorData", &self.authenticator_data),
            ("ClientDataJSON", &self.client_data_json),
            ("Signature", &self.signature),
        ]
    }
}

/// STS GetSecurityKeyChallenge for `serial` (signed by `sts`, long-term keys), then the
/// key's answer (a touch). `device` defaults to `TOKENGATE_DEVICE`, else `auto`.
pub fn touch(
    sts: &StsClient,
    serial: &str,
    device: Option<&DeviceAddress>,
) -> anyhow::Result<Touch> {
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
    Ok(Touch {
        serial: serial.to_owned(),
        challenge_id: challenge.id,
        credential_id: b64(&credential_id),
        authenticator_data: b64(&authenticator_data),
        client_data_json: b64(&json),
        signature: b64(&signature),
    })
}

/// `tokengate login` with a security key: a [`touch`], then STS
/// GetSessionTokenWithSecurityKey.
pub fn session(
    sts: &StsClient,
    serial: &str,
    device: Option<&DeviceAddress>,
    duration: Option<&str>,
) -> anyhow::Result<Reply> {
    let touch = touch(sts, serial, device)?;
    let mut params = vec![("Action", "GetSessionTokenWithSecurityKey")];
    params.extend(touch.params());
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

    fn challenge(expiration: Option<OffsetDateTime>) -> Challenge {
        Challenge {
            id: "00ff".into(),
            challenge: vec![7; 32],
            rp_id: "tokengate.localhost".into(),
            origin: "https://tokengate.localhost".into(),
            protocol: "fido2".into(),
            expiration,
        }
    }

    fn refused(code: &str) -> ApiCallError {
        ApiCallError::Api {
            status: 403,
            code: code.into(),
            message: "Authentication code for device is not valid.".into(),
            request_id: None,
        }
    }

    #[test]
    fn an_untrusted_attestation_names_the_fix() {
        let advice = advice_for(Rejection::UntrustedAttestation("no path")).unwrap();
        assert!(advice.contains("security_keys.trust_anchors"), "{advice}");
        assert!(advice.contains("docs/configuration.md"), "{advice}");
        assert!(advice.contains("firmware-sim export-ca"), "{advice}");
        let none = advice_for(Rejection::NoneAttestationNotAllowed).unwrap();
        assert!(none.contains("allow_none_attestation"), "{none}");
        assert!(advice_for(Rejection::BadSignature).is_none());
    }

    #[test]
    fn only_a_refused_registration_gets_advice() {
        let c = challenge(None);
        let other = refused("AccessDenied");
        assert!(refusal_advice(&other, &c, b"", b"{}").is_none());
        let unreachable = ApiCallError::Unreachable {
            url: "http://127.0.0.1:1".into(),
            reason: "refused".into(),
        };
        assert!(refusal_advice(&unreachable, &c, b"", b"{}").is_none());
        // Garbage that fails before the attestation check: nothing to say.
        assert!(refusal_advice(&refused(REFUSED_CODE), &c, b"\xa0", b"{}").is_none());
        let past = OffsetDateTime::now_utc() - time::Duration::minutes(1);
        let expired = refusal_advice(&refused(REFUSED_CODE), &challenge(Some(past)), b"", b"");
        assert!(expired.unwrap().contains("expired"));
    }
}
