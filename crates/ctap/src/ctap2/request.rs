//! CTAP2 requests (CTAP 2.1 §6.1, §6.2, §6.3, §6.4, §6.5, §6.6, §6.8, §6.9).

use super::Command;
use super::entities::{
    PublicKeyCredentialDescriptor, PublicKeyCredentialParameters, PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity, array,
};
use crate::Error;
use crate::attestation::CLIENT_DATA_HASH_LEN;
use crate::auth_data::RP_ID_HASH_LEN;
use crate::cbor::{self, FromValue, Map, Value};
use crate::cose::CoseKey;

/// Extension identifier of credProtect (CTAP 2.1 §12.1).
pub const EXT_CRED_PROTECT: &str = "credProtect";
/// Extension identifier of hmac-secret (CTAP 2.1 §12.5).
pub const EXT_HMAC_SECRET: &str = "hmac-secret";

/// A decoded CTAP2 request: the command byte and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// authenticatorMakeCredential (0x01).
    MakeCredential(MakeCredentialRequest),
    /// authenticatorGetAssertion (0x02).
    GetAssertion(GetAssertionRequest),
    /// authenticatorGetInfo (0x04), no parameters.
    GetInfo,
    /// authenticatorClientPIN (0x06).
    ClientPin(ClientPinRequest),
    /// authenticatorReset (0x07), no parameters.
    Reset,
    /// authenticatorGetNextAssertion (0x08), no parameters.
    GetNextAssertion,
    /// authenticatorCredentialManagement (0x0A).
    CredentialManagement(CredentialManagementRequest),
    /// The FIDO_2_1_PRE prototype of CredentialManagement (0x41), same parameters.
    CredentialManagementPreview(CredentialManagementRequest),
    /// authenticatorSelection (0x0B), no parameters.
    Selection,
}

impl Request {
    /// Parses `command byte ‖ parameters`. Errors map to the CTAP2 status through
    /// [`super::StatusCode::from`]: an empty message or bytes after a parameterless command
    /// → INVALID_LENGTH; an unknown or unsupported command → INVALID_COMMAND; missing
    /// parameters → MISSING_PARAMETER; bad CBOR → INVALID_CBOR; parameters that are not a
    /// map, or a field of the wrong type → CBOR_UNEXPECTED_TYPE.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let (&command, params) = bytes.split_first().ok_or(Error::InvalidLength("command"))?;
        let command = Command::try_from(command)?;
        match command {
            Command::GetInfo | Command::Reset | Command::GetNextAssertion | Command::Selection => {
                if !params.is_empty() {
                    return Err(Error::InvalidLength("parameters"));
                }
                Ok(match command {
                    Command::GetInfo => Self::GetInfo,
                    Command::Reset => Self::Reset,
                    Command::GetNextAssertion => Self::GetNextAssertion,
                    _ => Self::Selection,
                })
            }
            Command::MakeCredential => Ok(Self::MakeCredential(MakeCredentialRequest::from_map(
                &params_map(params)?,
            )?)),
            Command::GetAssertion => Ok(Self::GetAssertion(GetAssertionRequest::from_map(
                &params_map(params)?,
            )?)),
            Command::ClientPin => Ok(Self::ClientPin(ClientPinRequest::from_map(&params_map(
                params,
            )?)?)),
            Command::CredentialManagement => Ok(Self::CredentialManagement(
                CredentialManagementRequest::from_map(&params_map(params)?)?,
            )),
            Command::CredentialManagementPreview => Ok(Self::CredentialManagementPreview(
                CredentialManagementRequest::from_map(&params_map(params)?)?,
            )),
            Command::BioEnrollment
            | Command::BioEnrollmentPreview
            | Command::LargeBlobs
            | Command::Config => Err(Error::UnknownCommand(command.into())),
        }
    }

    /// The command byte.
    pub fn command(&self) -> Command {
        match self {
            Self::MakeCredential(_) => Command::MakeCredential,
            Self::GetAssertion(_) => Command::GetAssertion,
            Self::GetInfo => Command::GetInfo,
            Self::ClientPin(_) => Command::ClientPin,
            Self::Reset => Command::Reset,
            Self::GetNextAssertion => Command::GetNextAssertion,
            Self::CredentialManagement(_) => Command::CredentialManagement,
            Self::CredentialManagementPreview(_) => Command::CredentialManagementPreview,
            Self::Selection => Command::Selection,
        }
    }

    /// Appends `command byte ‖ canonical CBOR parameters`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.command().into());
        let params = match self {
            Self::MakeCredential(r) => r.to_value(),
            Self::GetAssertion(r) => r.to_value(),
            Self::ClientPin(r) => r.to_value(),
            Self::CredentialManagement(r) | Self::CredentialManagementPreview(r) => r.to_value(),
            Self::GetInfo | Self::Reset | Self::GetNextAssertion | Self::Selection => return,
        };
        params.encode(out);
    }

    /// The encoding as a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// The parameter map of a command that takes one.
fn params_map(params: &[u8]) -> Result<Map, Error> {
    if params.is_empty() {
        return Err(Error::MissingField("parameters"));
    }
    match cbor::decode(params)? {
        Value::Map(m) => Ok(m),
        _ => Err(Error::UnexpectedType("parameters")),
    }
}

/// A text-keyed map of booleans, e.g. `options` (CTAP 2.1 §6.1 key 0x07, §6.2 key 0x05).
fn bool_options(value: &Value, field: &'static str) -> Result<Map, Error> {
    value.as_map().cloned().ok_or(Error::UnexpectedType(field))
}

/// MakeCredential parameter keys (CTAP 2.1 §6.1).
mod mc {
    pub const CLIENT_DATA_HASH: i64 = 0x01;
    pub const RP: i64 = 0x02;
    pub const USER: i64 = 0x03;
    pub const PUB_KEY_CRED_PARAMS: i64 = 0x04;
    pub const EXCLUDE_LIST: i64 = 0x05;
    pub const EXTENSIONS: i64 = 0x06;
    pub const OPTIONS: i64 = 0x07;
    pub const PIN_UV_AUTH_PARAM: i64 = 0x08;
    pub const PIN_UV_AUTH_PROTOCOL: i64 = 0x09;
    pub const ENTERPRISE_ATTESTATION: i64 = 0x0A;
}

/// authenticatorMakeCredential parameters (CTAP 2.1 §6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MakeCredentialRequest {
    /// 0x01 clientDataHash.
    pub client_data_hash: [u8; CLIENT_DATA_HASH_LEN],
    /// 0x02 rp.
    pub rp: PublicKeyCredentialRpEntity,
    /// 0x03 user.
    pub user: PublicKeyCredentialUserEntity,
    /// 0x04 pubKeyCredParams, in the RP's order of preference.
    pub pub_key_cred_params: Vec<PublicKeyCredentialParameters>,
    /// 0x05 excludeList; omitted on the wire when empty.
    pub exclude_list: Vec<PublicKeyCredentialDescriptor>,
    /// 0x06 extensions; omitted when none is set.
    pub extensions: MakeCredentialExtensions,
    /// 0x07 options; omitted when none is set.
    pub options: MakeCredentialOptions,
    /// 0x08 pinUvAuthParam (may be empty: a platform's "touch to select" probe).
    pub pin_uv_auth_param: Option<Vec<u8>>,
    /// 0x09 pinUvAuthProtocol.
    pub pin_uv_auth_protocol: Option<u64>,
    /// 0x0A enterpriseAttestation.
    pub enterprise_attestation: Option<u64>,
}

impl MakeCredentialRequest {
    fn from_map(m: &Map) -> Result<Self, Error> {
        Ok(Self {
            client_data_hash: m.required(mc::CLIENT_DATA_HASH, "clientDataHash")?,
            rp: m.required(mc::RP, "rp")?,
            user: m.required(mc::USER, "user")?,
            pub_key_cred_params: m.required(mc::PUB_KEY_CRED_PARAMS, "pubKeyCredParams")?,
            exclude_list: m
                .optional(mc::EXCLUDE_LIST, "excludeList")?
                .unwrap_or_default(),
            extensions: m
                .optional(mc::EXTENSIONS, "extensions")?
                .unwrap_or_default(),
            options: m.optional(mc::OPTIONS, "options")?.unwrap_or_default(),
            pin_uv_auth_param: m.optional(mc::PIN_UV_AUTH_PARAM, "pinUvAuthParam")?,
            pin_uv_auth_protocol: m.optional(mc::PIN_UV_AUTH_PROTOCOL, "pinUvAuthProtocol")?,
            enterprise_attestation: m
                .optional(mc::ENTERPRISE_ATTESTATION, "enterpriseAttestation")?,
        })
    }

    /// The parameter map.
    pub fn to_value(&self) -> Value {
        Value::Map(
            Map::new()
                .with(mc::CLIENT_DATA_HASH, self.client_data_hash)
                .with(mc::RP, self.rp.to_value())
                .with(mc::USER, self.user.to_value())
                .with(
                    mc::PUB_KEY_CRED_PARAMS,
                    array(
                        &self.pub_key_cred_params,
                        PublicKeyCredentialParameters::to_value,
                    ),
                )
                .with_optional(
                    mc::EXCLUDE_LIST,
                    (!self.exclude_list.is_empty()).then(|| {
                        array(&self.exclude_list, PublicKeyCredentialDescriptor::to_value)
                    }),
                )
                .with_optional(mc::EXTENSIONS, self.extensions.to_value())
                .with_optional(mc::OPTIONS, self.options.to_value())
                .with_optional(mc::PIN_UV_AUTH_PARAM, self.pin_uv_auth_param.clone())
                .with_optional(mc::PIN_UV_AUTH_PROTOCOL, self.pin_uv_auth_protocol)
                .with_optional(mc::ENTERPRISE_ATTESTATION, self.enterprise_attestation),
        )
    }
}

/// MakeCredential extension inputs this crate understands; others are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MakeCredentialExtensions {
    /// `credProtect` policy: 1 userVerificationOptional, 2 …WithCredentialIDList,
    /// 3 userVerificationRequired (CTAP 2.1 §12.1).
    pub cred_protect: Option<u64>,
    /// `hmac-secret`: true to create a credential with an HMAC secret (CTAP 2.1 §12.5).
    pub hmac_secret: Option<bool>,
}

impl MakeCredentialExtensions {
    /// The extension map, or `None` if no extension is set.
    pub fn to_value(&self) -> Option<Value> {
        let m = Map::new()
            .with_optional(EXT_CRED_PROTECT, self.cred_protect)
            .with_optional(EXT_HMAC_SECRET, self.hmac_secret);
        (!m.is_empty()).then_some(Value::Map(m))
    }
}

impl FromValue for MakeCredentialExtensions {
    fn from_value(value: &Value, field: &'static str) -> Result<Self, Error> {
        let m = value.as_map().ok_or(Error::UnexpectedType(field))?;
        Ok(Self {
            cred_protect: m.optional(EXT_CRED_PROTECT, "credProtect")?,
            hmac_secret: m.optional(EXT_HMAC_SECRET, "hmac-secret")?,
        })
    }
}

/// MakeCredential options (CTAP 2.1 §6.1 key 0x07); unknown options are ignored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MakeCredentialOptions {
    /// `rk`: create a discoverable credential.
    pub rk: Option<bool>,
    /// `up`: platforms omit it; `false` is CTAP2_ERR_INVALID_OPTION for the authenticator.
    pub up: Option<bool>,
    /// `uv`: built-in user verification (deprecated in favour of pinUvAuthParam).
    pub uv: Option<bool>,
}

impl MakeCredentialOptions {
    /// The options map, or `None` if no option is set.
    pub fn to_value(&self) -> Option<Value> {
        options_value(&[("rk", self.rk), ("up", self.up), ("uv", self.uv)])
    }
}

impl FromValue for MakeCredentialOptions {
    fn from_value(value: &Value, field: &'static str) -> Result<Self, Error> {
        let m = bool_options(value, field)?;
        Ok(Self {
            rk: m.optional("rk", "rk")?,
            up: m.optional("up", "up")?,
            uv: m.optional("uv", "uv")?,
        })
    }
}

fn options_value(options: &[(&str, Option<bool>)]) -> Option<Value> {
    let m: Map = options
        .iter()
        .filter_map(|&(k, v)| v.map(|v| (k, v)))
        .collect();
    (!m.is_empty()).then_some(Value::Map(m))
}

/// GetAssertion parameter keys (CTAP 2.1 §6.2).
mod ga {
    pub const RP_ID: i64 = 0x01;
    pub const CLIENT_DATA_HASH: i64 = 0x02;
    pub const ALLOW_LIST: i64 = 0x03;
    pub const EXTENSIONS: i64 = 0x04;
    pub const OPTIONS: i64 = 0x05;
    pub const PIN_UV_AUTH_PARAM: i64 = 0x06;
    pub const PIN_UV_AUTH_PROTOCOL: i64 = 0x07;
}

/// authenticatorGetAssertion parameters (CTAP 2.1 §6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetAssertionRequest {
    /// 0x01 rpId.
    pub rp_id: String,
    /// 0x02 clientDataHash.
    pub client_data_hash: [u8; CLIENT_DATA_HASH_LEN],
    /// 0x03 allowList; omitted on the wire when empty.
    pub allow_list: Vec<PublicKeyCredentialDescriptor>,
    /// 0x04 extensions; omitted when none is set.
    pub extensions: GetAssertionExtensions,
    /// 0x05 options; omitted when none is set.
    pub options: GetAssertionOptions,
    /// 0x06 pinUvAuthParam.
    pub pin_uv_auth_param: Option<Vec<u8>>,
    /// 0x07 pinUvAuthProtocol.
    pub pin_uv_auth_protocol: Option<u64>,
}

impl GetAssertionRequest {
    fn from_map(m: &Map) -> Result<Self, Error> {
        Ok(Self {
            rp_id: m.required(ga::RP_ID, "rpId")?,
            client_data_hash: m.required(ga::CLIENT_DATA_HASH, "clientDataHash")?,
            allow_list: m.optional(ga::ALLOW_LIST, "allowList")?.unwrap_or_default(),
            extensions: m
                .optional(ga::EXTENSIONS, "extensions")?
                .unwrap_or_default(),
            options: m.optional(ga::OPTIONS, "options")?.unwrap_or_default(),
            pin_uv_auth_param: m.optional(ga::PIN_UV_AUTH_PARAM, "pinUvAuthParam")?,
            pin_uv_auth_protocol: m.optional(ga::PIN_UV_AUTH_PROTOCOL, "pinUvAuthProtocol")?,
        })
    }

    /// The parameter map.
    pub fn to_value(&self) -> Value {
        Value::Map(
            Map::new()
                .with(ga::RP_ID, self.rp_id.as_str())
                .with(ga::CLIENT_DATA_HASH, self.client_data_hash)
                .with_optional(
                    ga::ALLOW_LIST,
                    (!self.allow_list.is_empty())
                        .then(|| array(&self.allow_list, PublicKeyCredentialDescriptor::to_value)),
                )
                .with_optional(ga::EXTENSIONS, self.extensions.to_value())
                .with_optional(ga::OPTIONS, self.options.to_value())
                .with_optional(ga::PIN_UV_AUTH_PARAM, self.pin_uv_auth_param.clone())
                .with_optional(ga::PIN_UV_AUTH_PROTOCOL, self.pin_uv_auth_protocol),
        )
    }
}

/// GetAssertion extension inputs this crate understands; others are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GetAssertionExtensions {
    /// `hmac-secret` (CTAP 2.1 §12.5).
    pub hmac_secret: Option<HmacSecretInput>,
}

impl GetAssertionExtensions {
    /// The extension map, or `None` if no extension is set.
    pub fn to_value(&self) -> Option<Value> {
        let m = Map::new().with_optional(
            EXT_HMAC_SECRET,
            self.hmac_secret.as_ref().map(HmacSecretInput::to_value),
        );
        (!m.is_empty()).then_some(Value::Map(m))
    }
}

impl FromValue for GetAssertionExtensions {
    fn from_value(value: &Value, field: &'static str) -> Result<Self, Error> {
        let m = value.as_map().ok_or(Error::UnexpectedType(field))?;
        Ok(Self {
            hmac_secret: m.optional(EXT_HMAC_SECRET, "hmac-secret")?,
        })
    }
}

/// hmac-secret GetAssertion input (CTAP 2.1 §12.5): `{1: keyAgreement, 2: saltEnc,
/// 3: saltAuth, 4: pinUvAuthProtocol?}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HmacSecretInput {
    /// 0x01 the platform's key-agreement public key.
    pub key_agreement: CoseKey,
    /// 0x02 the encrypted salt(s).
    pub salt_enc: Vec<u8>,
    /// 0x03 authenticate(sharedSecret, saltEnc).
    pub salt_auth: Vec<u8>,
    /// 0x04 the PIN/UV protocol (1 if absent).
    pub pin_uv_auth_protocol: Option<u64>,
}

impl HmacSecretInput {
    /// The extension input map.
    pub fn to_value(&self) -> Value {
        Value::Map(
            Map::new()
                .with(0x01, self.key_agreement.to_value())
                .with(0x02, self.salt_enc.clone())
                .with(0x03, self.salt_auth.clone())
                .with_optional(0x04, self.pin_uv_auth_protocol),
        )
    }
}

impl FromValue for HmacSecretInput {
    fn from_value(value: &Value, field: &'static str) -> Result<Self, Error> {
        let m = value.as_map().ok_or(Error::UnexpectedType(field))?;
        Ok(Self {
            key_agreement: m.required(0x01, "keyAgreement")?,
            salt_enc: m.required(0x02, "saltEnc")?,
            salt_auth: m.required(0x03, "saltAuth")?,
            pin_uv_auth_protocol: m.optional(0x04, "pinUvAuthProtocol")?,
        })
    }
}

/// GetAssertion options (CTAP 2.1 §6.2 key 0x05); unknown options are ignored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GetAssertionOptions {
    /// `up`: test user presence (default true).
    pub up: Option<bool>,
    /// `uv`: built-in user verification.
    pub uv: Option<bool>,
    /// `rk`: not valid here; kept so the authenticator can answer INVALID_OPTION.
    pub rk: Option<bool>,
}

impl GetAssertionOptions {
    /// The options map, or `None` if no option is set.
    pub fn to_value(&self) -> Option<Value> {
        options_value(&[("rk", self.rk), ("up", self.up), ("uv", self.uv)])
    }
}

impl FromValue for GetAssertionOptions {
    fn from_value(value: &Value, field: &'static str) -> Result<Self, Error> {
        let m = bool_options(value, field)?;
        Ok(Self {
            up: m.optional("up", "up")?,
            uv: m.optional("uv", "uv")?,
            rk: m.optional("rk", "rk")?,
        })
    }
}

/// ClientPIN parameter keys (CTAP 2.1 §6.5.5).
mod cp {
    pub const PIN_UV_AUTH_PROTOCOL: i64 = 0x01;
    pub const SUB_COMMAND: i64 = 0x02;
    pub const KEY_AGREEMENT: i64 = 0x03;
    pub const PIN_UV_AUTH_PARAM: i64 = 0x04;
    pub const NEW_PIN_ENC: i64 = 0x05;
    pub const PIN_HASH_ENC: i64 = 0x06;
    pub const PERMISSIONS: i64 = 0x09;
    pub const RP_ID: i64 = 0x0A;
}

/// ClientPIN subcommands (CTAP 2.1 §6.5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ClientPinSubCommand {
    /// getPINRetries.
    GetPinRetries = 0x01,
    /// getKeyAgreement.
    GetKeyAgreement = 0x02,
    /// setPIN.
    SetPin = 0x03,
    /// changePIN.
    ChangePin = 0x04,
    /// getPinToken (superseded, kept for CTAP 2.0 platforms).
    GetPinToken = 0x05,
    /// getPinUvAuthTokenUsingUvWithPermissions.
    GetPinUvAuthTokenUsingUvWithPermissions = 0x06,
    /// getUVRetries.
    GetUvRetries = 0x07,
    /// getPinUvAuthTokenUsingPinWithPermissions.
    GetPinUvAuthTokenUsingPinWithPermissions = 0x09,
}

impl TryFrom<u64> for ClientPinSubCommand {
    type Error = Error;

    fn try_from(v: u64) -> Result<Self, Error> {
        Ok(match v {
            0x01 => Self::GetPinRetries,
            0x02 => Self::GetKeyAgreement,
            0x03 => Self::SetPin,
            0x04 => Self::ChangePin,
            0x05 => Self::GetPinToken,
            0x06 => Self::GetPinUvAuthTokenUsingUvWithPermissions,
            0x07 => Self::GetUvRetries,
            0x09 => Self::GetPinUvAuthTokenUsingPinWithPermissions,
            other => return Err(Error::UnknownSubcommand(other)),
        })
    }
}

/// pinUvAuthToken permission bits (CTAP 2.1 §6.5.5.7).
pub mod permissions {
    /// mc: MakeCredential.
    pub const MAKE_CREDENTIAL: u64 = 0x01;
    /// ga: GetAssertion.
    pub const GET_ASSERTION: u64 = 0x02;
    /// cm: CredentialManagement.
    pub const CREDENTIAL_MANAGEMENT: u64 = 0x04;
    /// be: BioEnrollment.
    pub const BIO_ENROLLMENT: u64 = 0x08;
    /// lbw: LargeBlobWrite.
    pub const LARGE_BLOB_WRITE: u64 = 0x10;
    /// acfg: AuthenticatorConfiguration.
    pub const AUTHENTICATOR_CONFIGURATION: u64 = 0x20;
    /// pcmr: PersistentCredentialManagementReadOnly (CTAP 2.2).
    pub const PERSISTENT_CREDENTIAL_MANAGEMENT_READ_ONLY: u64 = 0x40;
}

/// authenticatorClientPIN parameters (CTAP 2.1 §6.5.5), for both PIN/UV protocols.
///
/// [`Request::decode`] checks that every parameter the subcommand requires is present
/// (CTAP 2.1 §6.5.5.x: "If … is absent, return CTAP2_ERR_MISSING_PARAMETER"); the
/// constructors build exactly those.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientPinRequest {
    /// 0x01 pinUvAuthProtocol (1 or 2); optional only for getPINRetries / getUVRetries.
    pub pin_uv_auth_protocol: Option<u64>,
    /// 0x02 subCommand.
    pub sub_command: ClientPinSubCommand,
    /// 0x03 keyAgreement: the platform's ECDH public key.
    pub key_agreement: Option<CoseKey>,
    /// 0x04 pinUvAuthParam.
    pub pin_uv_auth_param: Option<Vec<u8>>,
    /// 0x05 newPinEnc.
    pub new_pin_enc: Option<Vec<u8>>,
    /// 0x06 pinHashEnc.
    pub pin_hash_enc: Option<Vec<u8>>,
    /// 0x09 permissions ([`permissions`]).
    pub permissions: Option<u64>,
    /// 0x0A rpId (permissions RP ID).
    pub rp_id: Option<String>,
}

impl ClientPinRequest {
    fn bare(protocol: Option<u64>, sub_command: ClientPinSubCommand) -> Self {
        Self {
            pin_uv_auth_protocol: protocol,
            sub_command,
            key_agreement: None,
            pin_uv_auth_param: None,
            new_pin_enc: None,
            pin_hash_enc: None,
            permissions: None,
            rp_id: None,
        }
    }

    /// getPINRetries.
    pub fn get_pin_retries(protocol: Option<u64>) -> Self {
        Self::bare(protocol, ClientPinSubCommand::GetPinRetries)
    }

    /// getUVRetries.
    pub fn get_uv_retries(protocol: Option<u64>) -> Self {
        Self::bare(protocol, ClientPinSubCommand::GetUvRetries)
    }

    /// getKeyAgreement.
    pub fn get_key_agreement(protocol: u64) -> Self {
        Self::bare(Some(protocol), ClientPinSubCommand::GetKeyAgreement)
    }

    /// setPIN: `pin_uv_auth_param = authenticate(shared, newPinEnc)`.
    pub fn set_pin(
        protocol: u64,
        key_agreement: CoseKey,
        new_pin_enc: Vec<u8>,
        pin_uv_auth_param: Vec<u8>,
    ) -> Self {
        Self {
            key_agreement: Some(key_agreement),
            new_pin_enc: Some(new_pin_enc),
            pin_uv_auth_param: Some(pin_uv_auth_param),
            ..Self::bare(Some(protocol), ClientPinSubCommand::SetPin)
        }
    }

    /// changePIN: `pin_uv_auth_param = authenticate(shared, newPinEnc ‖ pinHashEnc)`.
    pub fn change_pin(
        protocol: u64,
        key_agreement: CoseKey,
        pin_hash_enc: Vec<u8>,
        new_pin_enc: Vec<u8>,
        pin_uv_auth_param: Vec<u8>,
    ) -> Self {
        Self {
            key_agreement: Some(key_agreement),
            pin_hash_enc: Some(pin_hash_enc),
            new_pin_enc: Some(new_pin_enc),
            pin_uv_auth_param: Some(pin_uv_auth_param),
            ..Self::bare(Some(protocol), ClientPinSubCommand::ChangePin)
        }
    }

    /// getPinToken (no permissions; CTAP 2.0 style).
    pub fn get_pin_token(protocol: u64, key_agreement: CoseKey, pin_hash_enc: Vec<u8>) -> Self {
        Self {
            key_agreement: Some(key_agreement),
            pin_hash_enc: Some(pin_hash_enc),
            ..Self::bare(Some(protocol), ClientPinSubCommand::GetPinToken)
        }
    }

    /// getPinUvAuthTokenUsingPinWithPermissions.
    pub fn get_pin_uv_auth_token_using_pin(
        protocol: u64,
        key_agreement: CoseKey,
        pin_hash_enc: Vec<u8>,
        permissions: u64,
        rp_id: Option<String>,
    ) -> Self {
        Self {
            key_agreement: Some(key_agreement),
            pin_hash_enc: Some(pin_hash_enc),
            permissions: Some(permissions),
            rp_id,
            ..Self::bare(
                Some(protocol),
                ClientPinSubCommand::GetPinUvAuthTokenUsingPinWithPermissions,
            )
        }
    }

    /// getPinUvAuthTokenUsingUvWithPermissions.
    pub fn get_pin_uv_auth_token_using_uv(
        protocol: u64,
        key_agreement: CoseKey,
        permissions: u64,
        rp_id: Option<String>,
    ) -> Self {
        Self {
            key_agreement: Some(key_agreement),
            permissions: Some(permissions),
            rp_id,
            ..Self::bare(
                Some(protocol),
                ClientPinSubCommand::GetPinUvAuthTokenUsingUvWithPermissions,
            )
        }
    }

    fn from_map(m: &Map) -> Result<Self, Error> {
        let sub_command =
            ClientPinSubCommand::try_from(m.required::<u64>(cp::SUB_COMMAND, "subCommand")?)?;
        let request = Self {
            pin_uv_auth_protocol: m.optional(cp::PIN_UV_AUTH_PROTOCOL, "pinUvAuthProtocol")?,
            sub_command,
            key_agreement: m.optional(cp::KEY_AGREEMENT, "keyAgreement")?,
            pin_uv_auth_param: m.optional(cp::PIN_UV_AUTH_PARAM, "pinUvAuthParam")?,
            new_pin_enc: m.optional(cp::NEW_PIN_ENC, "newPinEnc")?,
            pin_hash_enc: m.optional(cp::PIN_HASH_ENC, "pinHashEnc")?,
            permissions: m.optional(cp::PERMISSIONS, "permissions")?,
            rp_id: m.optional(cp::RP_ID, "rpId")?,
        };
        request.check_required()?;
        Ok(request)
    }

    /// The parameters each subcommand requires (CTAP 2.1 §6.5.5.x).
    fn check_required(&self) -> Result<(), Error> {
        use ClientPinSubCommand as S;
        let need = |present: bool, field| {
            if present {
                Ok(())
            } else {
                Err(Error::MissingField(field))
            }
        };
        if !matches!(self.sub_command, S::GetPinRetries | S::GetUvRetries) {
            need(self.pin_uv_auth_protocol.is_some(), "pinUvAuthProtocol")?;
        }
        let (key_agreement, new_pin, pin_hash, param, permissions) = match self.sub_command {
            S::GetPinRetries | S::GetUvRetries | S::GetKeyAgreement => {
                (false, false, false, false, false)
            }
            S::SetPin => (true, true, false, true, false),
            S::ChangePin => (true, true, true, true, false),
            S::GetPinToken => (true, false, true, false, false),
            S::GetPinUvAuthTokenUsingPinWithPermissions => (true, false, true, false, true),
            S::GetPinUvAuthTokenUsingUvWithPermissions => (true, false, false, false, true),
        };
        if key_agreement {
            need(self.key_agreement.is_some(), "keyAgreement")?;
        }
        if pin_hash {
            need(self.pin_hash_enc.is_some(), "pinHashEnc")?;
        }
        if new_pin {
            need(self.new_pin_enc.is_some(), "newPinEnc")?;
        }
        if param {
            need(self.pin_uv_auth_param.is_some(), "pinUvAuthParam")?;
        }
        if permissions {
            need(self.permissions.is_some(), "permissions")?;
        }
        Ok(())
    }

    /// The parameter map.
    pub fn to_value(&self) -> Value {
        Value::Map(
            Map::new()
                .with_optional(cp::PIN_UV_AUTH_PROTOCOL, self.pin_uv_auth_protocol)
                .with(cp::SUB_COMMAND, self.sub_command as u8)
                .with_optional(
                    cp::KEY_AGREEMENT,
                    self.key_agreement.as_ref().map(CoseKey::to_value),
                )
                .with_optional(cp::PIN_UV_AUTH_PARAM, self.pin_uv_auth_param.clone())
                .with_optional(cp::NEW_PIN_ENC, self.new_pin_enc.clone())
                .with_optional(cp::PIN_HASH_ENC, self.pin_hash_enc.clone())
                .with_optional(cp::PERMISSIONS, self.permissions)
                .with_optional(cp::RP_ID, self.rp_id.clone()),
        )
    }
}

/// CredentialManagement parameter keys (CTAP 2.1 §6.8).
mod cm {
    pub const SUB_COMMAND: i64 = 0x01;
    pub const SUB_COMMAND_PARAMS: i64 = 0x02;
    pub const PIN_UV_AUTH_PROTOCOL: i64 = 0x03;
    pub const PIN_UV_AUTH_PARAM: i64 = 0x04;
    pub const PARAM_RP_ID_HASH: i64 = 0x01;
    pub const PARAM_CREDENTIAL_ID: i64 = 0x02;
    pub const PARAM_USER: i64 = 0x03;
}

/// CredentialManagement subcommands (CTAP 2.1 §6.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum CredentialManagementSubCommand {
    /// getCredsMetadata.
    GetCredsMetadata = 0x01,
    /// enumerateRPsBegin.
    EnumerateRpsBegin = 0x02,
    /// enumerateRPsGetNextRP.
    EnumerateRpsGetNextRp = 0x03,
    /// enumerateCredentialsBegin.
    EnumerateCredentialsBegin = 0x04,
    /// enumerateCredentialsGetNextCredential.
    EnumerateCredentialsGetNextCredential = 0x05,
    /// deleteCredential.
    DeleteCredential = 0x06,
    /// updateUserInformation.
    UpdateUserInformation = 0x07,
}

impl TryFrom<u64> for CredentialManagementSubCommand {
    type Error = Error;

    fn try_from(v: u64) -> Result<Self, Error> {
        Ok(match v {
            0x01 => Self::GetCredsMetadata,
            0x02 => Self::EnumerateRpsBegin,
            0x03 => Self::EnumerateRpsGetNextRp,
            0x04 => Self::EnumerateCredentialsBegin,
            0x05 => Self::EnumerateCredentialsGetNextCredential,
            0x06 => Self::DeleteCredential,
            0x07 => Self::UpdateUserInformation,
            other => return Err(Error::UnknownSubcommand(other)),
        })
    }
}

/// CredentialManagement `subCommandParams` (CTAP 2.1 §6.8).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CredentialManagementParams {
    /// 0x01 rpIDHash (enumerateCredentialsBegin).
    pub rp_id_hash: Option<[u8; RP_ID_HASH_LEN]>,
    /// 0x02 credentialID (deleteCredential, updateUserInformation).
    pub credential_id: Option<PublicKeyCredentialDescriptor>,
    /// 0x03 user (updateUserInformation).
    pub user: Option<PublicKeyCredentialUserEntity>,
}

impl CredentialManagementParams {
    /// The params map.
    pub fn to_value(&self) -> Value {
        Value::Map(
            Map::new()
                .with_optional(cm::PARAM_RP_ID_HASH, self.rp_id_hash)
                .with_optional(
                    cm::PARAM_CREDENTIAL_ID,
                    self.credential_id
                        .as_ref()
                        .map(PublicKeyCredentialDescriptor::to_value),
                )
                .with_optional(
                    cm::PARAM_USER,
                    self.user
                        .as_ref()
                        .map(PublicKeyCredentialUserEntity::to_value),
                ),
        )
    }
}

impl FromValue for CredentialManagementParams {
    fn from_value(value: &Value, field: &'static str) -> Result<Self, Error> {
        let m = value.as_map().ok_or(Error::UnexpectedType(field))?;
        Ok(Self {
            rp_id_hash: m.optional(cm::PARAM_RP_ID_HASH, "rpIDHash")?,
            credential_id: m.optional(cm::PARAM_CREDENTIAL_ID, "credentialID")?,
            user: m.optional(cm::PARAM_USER, "user")?,
        })
    }
}

/// authenticatorCredentialManagement parameters (CTAP 2.1 §6.8).
///
/// [`Request::decode`] checks the `subCommandParams` each subcommand needs
/// (MISSING_PARAMETER). pinUvAuthParam / pinUvAuthProtocol presence is left to the
/// authenticator, because the spec answers their absence with PUAT_REQUIRED or
/// MISSING_PARAMETER depending on the subcommand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialManagementRequest {
    /// 0x01 subCommand.
    pub sub_command: CredentialManagementSubCommand,
    /// 0x02 subCommandParams.
    pub params: Option<CredentialManagementParams>,
    /// 0x03 pinUvAuthProtocol.
    pub pin_uv_auth_protocol: Option<u64>,
    /// 0x04 pinUvAuthParam = authenticate(pinUvAuthToken, [`Self::pin_uv_auth_message`]).
    pub pin_uv_auth_param: Option<Vec<u8>>,
}

impl CredentialManagementRequest {
    /// `subCommand ‖ subCommandParams` (canonical CBOR), the message pinUvAuthParam
    /// authenticates (CTAP 2.1 §6.8.2 onwards). The params are re-encoded canonically; since
    /// requests are decoded strictly this equals the received bytes unless the platform sent
    /// keys this crate does not know, in which case verification fails closed.
    pub fn pin_uv_auth_message(&self) -> Vec<u8> {
        let mut out = vec![self.sub_command as u8];
        if let Some(p) = &self.params {
            p.to_value().encode(&mut out);
        }
        out
    }

    fn from_map(m: &Map) -> Result<Self, Error> {
        use CredentialManagementSubCommand as S;
        let sub_command = S::try_from(m.required::<u64>(cm::SUB_COMMAND, "subCommand")?)?;
        let params: Option<CredentialManagementParams> =
            m.optional(cm::SUB_COMMAND_PARAMS, "subCommandParams")?;
        let p = params.as_ref();
        let missing = match sub_command {
            S::EnumerateCredentialsBegin if p.and_then(|p| p.rp_id_hash).is_none() => {
                Some("rpIDHash")
            }
            S::DeleteCredential | S::UpdateUserInformation
                if p.and_then(|p| p.credential_id.as_ref()).is_none() =>
            {
                Some("credentialID")
            }
            S::UpdateUserInformation if p.and_then(|p| p.user.as_ref()).is_none() => Some("user"),
            _ => None,
        };
        if let Some(field) = missing {
            return Err(Error::MissingField(field));
        }
        Ok(Self {
            sub_command,
            params,
            pin_uv_auth_protocol: m.optional(cm::PIN_UV_AUTH_PROTOCOL, "pinUvAuthProtocol")?,
            pin_uv_auth_param: m.optional(cm::PIN_UV_AUTH_PARAM, "pinUvAuthParam")?,
        })
    }

    /// The parameter map.
    pub fn to_value(&self) -> Value {
        Value::Map(
            Map::new()
                .with(cm::SUB_COMMAND, self.sub_command as u8)
                .with_optional(
                    cm::SUB_COMMAND_PARAMS,
                    self.params
                        .as_ref()
                        .map(CredentialManagementParams::to_value),
                )
                .with_optional(cm::PIN_UV_AUTH_PROTOCOL, self.pin_uv_auth_protocol)
                .with_optional(cm::PIN_UV_AUTH_PARAM, self.pin_uv_auth_param.clone()),
        )
    }
}
