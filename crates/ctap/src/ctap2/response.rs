//! CTAP2 response payloads: the CBOR map after the status byte (CTAP 2.1 §6.1.2, §6.2.2,
//! §6.4, §6.5.5, §6.8). Unknown keys are ignored, so a CTAP 2.2 authenticator's extra
//! GetInfo fields do not break a 2.1 client. Commands that may answer with no map at all
//! (ClientPIN setPIN, CredentialManagement deleteCredential) decode an empty payload as a
//! response with every field absent, and encode that response as nothing.

use std::collections::BTreeMap;

use super::entities::{
    PublicKeyCredentialDescriptor, PublicKeyCredentialParameters, PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity, array,
};
use crate::Error;
use crate::attestation::AttestationObject;
use crate::auth_data::{AAGUID_LEN, AuthenticatorData, RP_ID_HASH_LEN};
use crate::cbor::{self, FromValue, Map, Value};
use crate::cose::CoseKey;

/// The payload as a map; `what` names the response for the error.
fn payload_map(bytes: &[u8], what: &'static str) -> Result<Map, Error> {
    match cbor::decode(bytes)? {
        Value::Map(m) => Ok(m),
        _ => Err(Error::UnexpectedType(what)),
    }
}

/// Like [`payload_map`], but an empty payload is an empty map.
fn optional_payload_map(bytes: &[u8], what: &'static str) -> Result<Map, Error> {
    if bytes.is_empty() {
        Ok(Map::new())
    } else {
        payload_map(bytes, what)
    }
}

fn text_array(items: &[String]) -> Value {
    Value::Array(items.iter().map(|s| Value::from(s.as_str())).collect())
}

/// GetInfo response keys (CTAP 2.1 §6.4).
mod gi {
    pub const VERSIONS: i64 = 0x01;
    pub const EXTENSIONS: i64 = 0x02;
    pub const AAGUID: i64 = 0x03;
    pub const OPTIONS: i64 = 0x04;
    pub const MAX_MSG_SIZE: i64 = 0x05;
    pub const PIN_UV_AUTH_PROTOCOLS: i64 = 0x06;
    pub const MAX_CREDENTIAL_COUNT_IN_LIST: i64 = 0x07;
    pub const MAX_CREDENTIAL_ID_LENGTH: i64 = 0x08;
    pub const TRANSPORTS: i64 = 0x09;
    pub const ALGORITHMS: i64 = 0x0A;
    pub const MAX_SERIALIZED_LARGE_BLOB_ARRAY: i64 = 0x0B;
    pub const FORCE_PIN_CHANGE: i64 = 0x0C;
    pub const MIN_PIN_LENGTH: i64 = 0x0D;
    pub const FIRMWARE_VERSION: i64 = 0x0E;
    pub const MAX_CRED_BLOB_LENGTH: i64 = 0x0F;
    pub const MAX_RP_IDS_FOR_SET_MIN_PIN_LENGTH: i64 = 0x10;
    pub const PREFERRED_PLATFORM_UV_ATTEMPTS: i64 = 0x11;
    pub const UV_MODALITY: i64 = 0x12;
    pub const CERTIFICATIONS: i64 = 0x13;
    pub const REMAINING_DISCOVERABLE_CREDENTIALS: i64 = 0x14;
    pub const VENDOR_PROTOTYPE_CONFIG_COMMANDS: i64 = 0x15;
}

/// authenticatorGetInfo response (CTAP 2.1 §6.4), every key up to 0x15. Optional fields
/// keep the difference between absent and empty so a device's answer re-encodes exactly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GetInfoResponse {
    /// 0x01 versions, e.g. "U2F_V2", "FIDO_2_0", "FIDO_2_1_PRE", "FIDO_2_1".
    pub versions: Vec<String>,
    /// 0x02 extensions.
    pub extensions: Option<Vec<String>>,
    /// 0x03 aaguid.
    pub aaguid: [u8; AAGUID_LEN],
    /// 0x04 options (rk, up, uv, plat, clientPin, credMgmt, …).
    pub options: Option<BTreeMap<String, bool>>,
    /// 0x05 maxMsgSize.
    pub max_msg_size: Option<u64>,
    /// 0x06 pinUvAuthProtocols, in order of preference.
    pub pin_uv_auth_protocols: Option<Vec<u64>>,
    /// 0x07 maxCredentialCountInList.
    pub max_credential_count_in_list: Option<u64>,
    /// 0x08 maxCredentialIdLength.
    pub max_credential_id_length: Option<u64>,
    /// 0x09 transports.
    pub transports: Option<Vec<String>>,
    /// 0x0A algorithms.
    pub algorithms: Option<Vec<PublicKeyCredentialParameters>>,
    /// 0x0B maxSerializedLargeBlobArray.
    pub max_serialized_large_blob_array: Option<u64>,
    /// 0x0C forcePINChange.
    pub force_pin_change: Option<bool>,
    /// 0x0D minPINLength.
    pub min_pin_length: Option<u64>,
    /// 0x0E firmwareVersion.
    pub firmware_version: Option<u64>,
    /// 0x0F maxCredBlobLength.
    pub max_cred_blob_length: Option<u64>,
    /// 0x10 maxRPIDsForSetMinPINLength.
    pub max_rp_ids_for_set_min_pin_length: Option<u64>,
    /// 0x11 preferredPlatformUvAttempts.
    pub preferred_platform_uv_attempts: Option<u64>,
    /// 0x12 uvModality.
    pub uv_modality: Option<u64>,
    /// 0x13 certifications (name → level).
    pub certifications: Option<BTreeMap<String, u64>>,
    /// 0x14 remainingDiscoverableCredentials.
    pub remaining_discoverable_credentials: Option<u64>,
    /// 0x15 vendorPrototypeConfigCommands.
    pub vendor_prototype_config_commands: Option<Vec<u64>>,
}

fn text_map<T: FromValue>(
    value: &Value,
    field: &'static str,
) -> Result<BTreeMap<String, T>, Error> {
    let m = value.as_map().ok_or(Error::UnexpectedType(field))?;
    m.iter()
        .map(|(k, v)| {
            let k = k.as_text().ok_or(Error::UnexpectedType(field))?;
            Ok((k.to_owned(), T::from_value(v, field)?))
        })
        .collect()
}

impl GetInfoResponse {
    /// Parses the payload after the status byte.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let m = payload_map(bytes, "authenticatorGetInfo response")?;
        Ok(Self {
            versions: m.required(gi::VERSIONS, "versions")?,
            extensions: m.optional(gi::EXTENSIONS, "extensions")?,
            aaguid: m.required(gi::AAGUID, "aaguid")?,
            options: m
                .get(gi::OPTIONS)
                .map(|v| text_map(v, "options"))
                .transpose()?,
            max_msg_size: m.optional(gi::MAX_MSG_SIZE, "maxMsgSize")?,
            pin_uv_auth_protocols: m.optional(gi::PIN_UV_AUTH_PROTOCOLS, "pinUvAuthProtocols")?,
            max_credential_count_in_list: m
                .optional(gi::MAX_CREDENTIAL_COUNT_IN_LIST, "maxCredentialCountInList")?,
            max_credential_id_length: m
                .optional(gi::MAX_CREDENTIAL_ID_LENGTH, "maxCredentialIdLength")?,
            transports: m.optional(gi::TRANSPORTS, "transports")?,
            algorithms: m.optional(gi::ALGORITHMS, "algorithms")?,
            max_serialized_large_blob_array: m.optional(
                gi::MAX_SERIALIZED_LARGE_BLOB_ARRAY,
                "maxSerializedLargeBlobArray",
            )?,
            force_pin_change: m.optional(gi::FORCE_PIN_CHANGE, "forcePINChange")?,
            min_pin_length: m.optional(gi::MIN_PIN_LENGTH, "minPINLength")?,
            firmware_version: m.optional(gi::FIRMWARE_VERSION, "firmwareVersion")?,
            max_cred_blob_length: m.optional(gi::MAX_CRED_BLOB_LENGTH, "maxCredBlobLength")?,
            max_rp_ids_for_set_min_pin_length: m.optional(
                gi::MAX_RP_IDS_FOR_SET_MIN_PIN_LENGTH,
                "maxRPIDsForSetMinPINLength",
            )?,
            preferred_platform_uv_attempts: m.optional(
                gi::PREFERRED_PLATFORM_UV_ATTEMPTS,
                "preferredPlatformUvAttempts",
            )?,
            uv_modality: m.optional(gi::UV_MODALITY, "uvModality")?,
            certifications: m
                .get(gi::CERTIFICATIONS)
                .map(|v| text_map(v, "certifications"))
                .transpose()?,
            remaining_discoverable_credentials: m.optional(
                gi::REMAINING_DISCOVERABLE_CREDENTIALS,
                "remainingDiscoverableCredentials",
            )?,
            vendor_prototype_config_commands: m.optional(
                gi::VENDOR_PROTOTYPE_CONFIG_COMMANDS,
                "vendorPrototypeConfigCommands",
            )?,
        })
    }

    /// The response map.
    pub fn to_value(&self) -> Value {
        let uints = |v: &Vec<u64>| Value::Array(v.iter().map(|&n| Value::from(n)).collect());
        Value::Map(
            Map::new()
                .with(gi::VERSIONS, text_array(&self.versions))
                .with_optional(gi::EXTENSIONS, self.extensions.as_deref().map(text_array))
                .with(gi::AAGUID, self.aaguid)
                .with_optional(
                    gi::OPTIONS,
                    self.options
                        .as_ref()
                        .map(|o| o.iter().map(|(k, &v)| (k.as_str(), v)).collect::<Map>()),
                )
                .with_optional(gi::MAX_MSG_SIZE, self.max_msg_size)
                .with_optional(
                    gi::PIN_UV_AUTH_PROTOCOLS,
                    self.pin_uv_auth_protocols.as_ref().map(uints),
                )
                .with_optional(
                    gi::MAX_CREDENTIAL_COUNT_IN_LIST,
                    self.max_credential_count_in_list,
                )
                .with_optional(gi::MAX_CREDENTIAL_ID_LENGTH, self.max_credential_id_length)
                .with_optional(gi::TRANSPORTS, self.transports.as_deref().map(text_array))
                .with_optional(
                    gi::ALGORITHMS,
                    self.algorithms
                        .as_deref()
                        .map(|a| array(a, PublicKeyCredentialParameters::to_value)),
                )
                .with_optional(
                    gi::MAX_SERIALIZED_LARGE_BLOB_ARRAY,
                    self.max_serialized_large_blob_array,
                )
                .with_optional(gi::FORCE_PIN_CHANGE, self.force_pin_change)
                .with_optional(gi::MIN_PIN_LENGTH, self.min_pin_length)
                .with_optional(gi::FIRMWARE_VERSION, self.firmware_version)
                .with_optional(gi::MAX_CRED_BLOB_LENGTH, self.max_cred_blob_length)
                .with_optional(
                    gi::MAX_RP_IDS_FOR_SET_MIN_PIN_LENGTH,
                    self.max_rp_ids_for_set_min_pin_length,
                )
                .with_optional(
                    gi::PREFERRED_PLATFORM_UV_ATTEMPTS,
                    self.preferred_platform_uv_attempts,
                )
                .with_optional(gi::UV_MODALITY, self.uv_modality)
                .with_optional(
                    gi::CERTIFICATIONS,
                    self.certifications
                        .as_ref()
                        .map(|c| c.iter().map(|(k, &v)| (k.as_str(), v)).collect::<Map>()),
                )
                .with_optional(
                    gi::REMAINING_DISCOVERABLE_CREDENTIALS,
                    self.remaining_discoverable_credentials,
                )
                .with_optional(
                    gi::VENDOR_PROTOTYPE_CONFIG_COMMANDS,
                    self.vendor_prototype_config_commands.as_ref().map(uints),
                ),
        )
    }

    /// Appends the canonical encoding.
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.to_value().encode(out);
    }

    /// The value of option `name`, if the authenticator reports it.
    pub fn option(&self, name: &str) -> Option<bool> {
        self.options.as_ref()?.get(name).copied()
    }
}

/// MakeCredential response keys (CTAP 2.1 §6.1.2).
mod mc {
    pub const FMT: i64 = 0x01;
    pub const AUTH_DATA: i64 = 0x02;
    pub const ATT_STMT: i64 = 0x03;
    pub const EP_ATT: i64 = 0x04;
    pub const LARGE_BLOB_KEY: i64 = 0x05;
    pub const UNSIGNED_EXTENSION_OUTPUTS: i64 = 0x06;
}

/// authenticatorMakeCredential response (CTAP 2.1 §6.1.2): the attestation object under
/// integer keys 1–3, plus the CTAP-only fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MakeCredentialResponse {
    /// 0x01 fmt, 0x02 authData, 0x03 attStmt.
    pub attestation_object: AttestationObject,
    /// 0x04 epAtt.
    pub enterprise_attestation: Option<bool>,
    /// 0x05 largeBlobKey.
    pub large_blob_key: Option<Vec<u8>>,
    /// 0x06 unsignedExtensionOutputs.
    pub unsigned_extension_outputs: Option<Map>,
}

impl MakeCredentialResponse {
    /// Parses the payload after the status byte.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let m = payload_map(bytes, "authenticatorMakeCredential response")?;
        let attestation_object = AttestationObject::from_parts(
            &m.required::<String>(mc::FMT, "fmt")?,
            m.get(mc::ATT_STMT).ok_or(Error::MissingField("attStmt"))?,
            &m.required::<Vec<u8>>(mc::AUTH_DATA, "authData")?,
        )?;
        Ok(Self {
            attestation_object,
            enterprise_attestation: m.optional(mc::EP_ATT, "epAtt")?,
            large_blob_key: m.optional(mc::LARGE_BLOB_KEY, "largeBlobKey")?,
            unsigned_extension_outputs: m
                .optional(mc::UNSIGNED_EXTENSION_OUTPUTS, "unsignedExtensionOutputs")?,
        })
    }

    /// The response map.
    pub fn to_value(&self) -> Value {
        let obj = &self.attestation_object;
        Value::Map(
            Map::new()
                .with(mc::FMT, obj.statement.format())
                .with(mc::AUTH_DATA, obj.auth_data.to_vec())
                .with(mc::ATT_STMT, obj.statement.to_value())
                .with_optional(mc::EP_ATT, self.enterprise_attestation)
                .with_optional(mc::LARGE_BLOB_KEY, self.large_blob_key.clone())
                .with_optional(
                    mc::UNSIGNED_EXTENSION_OUTPUTS,
                    self.unsigned_extension_outputs.clone(),
                ),
        )
    }

    /// Appends the canonical encoding.
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.to_value().encode(out);
    }
}

/// GetAssertion / GetNextAssertion response keys (CTAP 2.1 §6.2.2).
mod ga {
    pub const CREDENTIAL: i64 = 0x01;
    pub const AUTH_DATA: i64 = 0x02;
    pub const SIGNATURE: i64 = 0x03;
    pub const USER: i64 = 0x04;
    pub const NUMBER_OF_CREDENTIALS: i64 = 0x05;
    pub const USER_SELECTED: i64 = 0x06;
    pub const LARGE_BLOB_KEY: i64 = 0x07;
}

/// authenticatorGetAssertion / GetNextAssertion response (CTAP 2.1 §6.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetAssertionResponse {
    /// 0x01 credential (may be omitted when the allowList had exactly one entry).
    pub credential: Option<PublicKeyCredentialDescriptor>,
    /// 0x02 authData.
    pub auth_data: AuthenticatorData,
    /// 0x03 signature over `authData ‖ clientDataHash` ([`crate::attestation::signed_data`]).
    pub signature: Vec<u8>,
    /// 0x04 user (discoverable credentials).
    pub user: Option<PublicKeyCredentialUserEntity>,
    /// 0x05 numberOfCredentials (first response only, when more than one).
    pub number_of_credentials: Option<u64>,
    /// 0x06 userSelected.
    pub user_selected: Option<bool>,
    /// 0x07 largeBlobKey.
    pub large_blob_key: Option<Vec<u8>>,
}

impl GetAssertionResponse {
    /// Parses the payload after the status byte.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let m = payload_map(bytes, "authenticatorGetAssertion response")?;
        Ok(Self {
            credential: m.optional(ga::CREDENTIAL, "credential")?,
            auth_data: AuthenticatorData::decode(
                &m.required::<Vec<u8>>(ga::AUTH_DATA, "authData")?,
            )?,
            signature: m.required(ga::SIGNATURE, "signature")?,
            user: m.optional(ga::USER, "user")?,
            number_of_credentials: m.optional(ga::NUMBER_OF_CREDENTIALS, "numberOfCredentials")?,
            user_selected: m.optional(ga::USER_SELECTED, "userSelected")?,
            large_blob_key: m.optional(ga::LARGE_BLOB_KEY, "largeBlobKey")?,
        })
    }

    /// The response map.
    pub fn to_value(&self) -> Value {
        Value::Map(
            Map::new()
                .with_optional(
                    ga::CREDENTIAL,
                    self.credential
                        .as_ref()
                        .map(PublicKeyCredentialDescriptor::to_value),
                )
                .with(ga::AUTH_DATA, self.auth_data.to_vec())
                .with(ga::SIGNATURE, self.signature.clone())
                .with_optional(
                    ga::USER,
                    self.user
                        .as_ref()
                        .map(PublicKeyCredentialUserEntity::to_value),
                )
                .with_optional(ga::NUMBER_OF_CREDENTIALS, self.number_of_credentials)
                .with_optional(ga::USER_SELECTED, self.user_selected)
                .with_optional(ga::LARGE_BLOB_KEY, self.large_blob_key.clone()),
        )
    }

    /// Appends the canonical encoding.
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.to_value().encode(out);
    }
}

/// ClientPIN response keys (CTAP 2.1 §6.5.5).
mod cp {
    pub const KEY_AGREEMENT: i64 = 0x01;
    pub const PIN_UV_AUTH_TOKEN: i64 = 0x02;
    pub const PIN_RETRIES: i64 = 0x03;
    pub const POWER_CYCLE_STATE: i64 = 0x04;
    pub const UV_RETRIES: i64 = 0x05;
}

/// authenticatorClientPIN response (CTAP 2.1 §6.5.5). setPIN and changePIN answer with no
/// map: that is the all-`None` value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientPinResponse {
    /// 0x01 keyAgreement: the authenticator's ECDH public key.
    pub key_agreement: Option<CoseKey>,
    /// 0x02 pinUvAuthToken, encrypted to the shared secret.
    pub pin_uv_auth_token: Option<Vec<u8>>,
    /// 0x03 pinRetries.
    pub pin_retries: Option<u64>,
    /// 0x04 powerCycleState.
    pub power_cycle_state: Option<bool>,
    /// 0x05 uvRetries.
    pub uv_retries: Option<u64>,
}

impl ClientPinResponse {
    /// Parses the payload after the status byte (empty → all fields absent).
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let m = optional_payload_map(bytes, "authenticatorClientPIN response")?;
        Ok(Self {
            key_agreement: m.optional(cp::KEY_AGREEMENT, "keyAgreement")?,
            pin_uv_auth_token: m.optional(cp::PIN_UV_AUTH_TOKEN, "pinUvAuthToken")?,
            pin_retries: m.optional(cp::PIN_RETRIES, "pinRetries")?,
            power_cycle_state: m.optional(cp::POWER_CYCLE_STATE, "powerCycleState")?,
            uv_retries: m.optional(cp::UV_RETRIES, "uvRetries")?,
        })
    }

    /// The response map, or `None` when every field is absent (no payload at all).
    pub fn to_value(&self) -> Option<Value> {
        let m = Map::new()
            .with_optional(
                cp::KEY_AGREEMENT,
                self.key_agreement.as_ref().map(CoseKey::to_value),
            )
            .with_optional(cp::PIN_UV_AUTH_TOKEN, self.pin_uv_auth_token.clone())
            .with_optional(cp::PIN_RETRIES, self.pin_retries)
            .with_optional(cp::POWER_CYCLE_STATE, self.power_cycle_state)
            .with_optional(cp::UV_RETRIES, self.uv_retries);
        (!m.is_empty()).then_some(Value::Map(m))
    }

    /// Appends the canonical encoding (nothing when every field is absent).
    pub fn encode(&self, out: &mut Vec<u8>) {
        if let Some(v) = self.to_value() {
            v.encode(out);
        }
    }
}

/// CredentialManagement response keys (CTAP 2.1 §6.8).
mod cm {
    pub const EXISTING_RESIDENT_CREDENTIALS_COUNT: i64 = 0x01;
    pub const MAX_POSSIBLE_REMAINING_RESIDENT_CREDENTIALS_COUNT: i64 = 0x02;
    pub const RP: i64 = 0x03;
    pub const RP_ID_HASH: i64 = 0x04;
    pub const TOTAL_RPS: i64 = 0x05;
    pub const USER: i64 = 0x06;
    pub const CREDENTIAL_ID: i64 = 0x07;
    pub const PUBLIC_KEY: i64 = 0x08;
    pub const TOTAL_CREDENTIALS: i64 = 0x09;
    pub const CRED_PROTECT: i64 = 0x0A;
    pub const LARGE_BLOB_KEY: i64 = 0x0B;
}

/// authenticatorCredentialManagement response (CTAP 2.1 §6.8); which fields are present
/// depends on the subcommand. deleteCredential answers with no map (all `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CredentialManagementResponse {
    /// 0x01 existingResidentCredentialsCount.
    pub existing_resident_credentials_count: Option<u64>,
    /// 0x02 maxPossibleRemainingResidentCredentialsCount.
    pub max_possible_remaining_resident_credentials_count: Option<u64>,
    /// 0x03 rp.
    pub rp: Option<PublicKeyCredentialRpEntity>,
    /// 0x04 rpIDHash.
    pub rp_id_hash: Option<[u8; RP_ID_HASH_LEN]>,
    /// 0x05 totalRPs.
    pub total_rps: Option<u64>,
    /// 0x06 user.
    pub user: Option<PublicKeyCredentialUserEntity>,
    /// 0x07 credentialID.
    pub credential_id: Option<PublicKeyCredentialDescriptor>,
    /// 0x08 publicKey.
    pub public_key: Option<CoseKey>,
    /// 0x09 totalCredentials.
    pub total_credentials: Option<u64>,
    /// 0x0A credProtect.
    pub cred_protect: Option<u64>,
    /// 0x0B largeBlobKey.
    pub large_blob_key: Option<Vec<u8>>,
}

impl CredentialManagementResponse {
    /// Parses the payload after the status byte (empty → all fields absent).
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let m = optional_payload_map(bytes, "authenticatorCredentialManagement response")?;
        Ok(Self {
            existing_resident_credentials_count: m.optional(
                cm::EXISTING_RESIDENT_CREDENTIALS_COUNT,
                "existingResidentCredentialsCount",
            )?,
            max_possible_remaining_resident_credentials_count: m.optional(
                cm::MAX_POSSIBLE_REMAINING_RESIDENT_CREDENTIALS_COUNT,
                "maxPossibleRemainingResidentCredentialsCount",
            )?,
            rp: m.optional(cm::RP, "rp")?,
            rp_id_hash: m.optional(cm::RP_ID_HASH, "rpIDHash")?,
            total_rps: m.optional(cm::TOTAL_RPS, "totalRPs")?,
            user: m.optional(cm::USER, "user")?,
            credential_id: m.optional(cm::CREDENTIAL_ID, "credentialID")?,
            public_key: m.optional(cm::PUBLIC_KEY, "publicKey")?,
            total_credentials: m.optional(cm::TOTAL_CREDENTIALS, "totalCredentials")?,
            cred_protect: m.optional(cm::CRED_PROTECT, "credProtect")?,
            large_blob_key: m.optional(cm::LARGE_BLOB_KEY, "largeBlobKey")?,
        })
    }

    /// The response map, or `None` when every field is absent (no payload at all).
    pub fn to_value(&self) -> Option<Value> {
        let m = Map::new()
            .with_optional(
                cm::EXISTING_RESIDENT_CREDENTIALS_COUNT,
                self.existing_resident_credentials_count,
            )
            .with_optional(
                cm::MAX_POSSIBLE_REMAINING_RESIDENT_CREDENTIALS_COUNT,
                self.max_possible_remaining_resident_credentials_count,
            )
            .with_optional(
                cm::RP,
                self.rp.as_ref().map(PublicKeyCredentialRpEntity::to_value),
            )
            .with_optional(cm::RP_ID_HASH, self.rp_id_hash)
            .with_optional(cm::TOTAL_RPS, self.total_rps)
            .with_optional(
                cm::USER,
                self.user
                    .as_ref()
                    .map(PublicKeyCredentialUserEntity::to_value),
            )
            .with_optional(
                cm::CREDENTIAL_ID,
                self.credential_id
                    .as_ref()
                    .map(PublicKeyCredentialDescriptor::to_value),
            )
            .with_optional(
                cm::PUBLIC_KEY,
                self.public_key.as_ref().map(CoseKey::to_value),
            )
            .with_optional(cm::TOTAL_CREDENTIALS, self.total_credentials)
            .with_optional(cm::CRED_PROTECT, self.cred_protect)
            .with_optional(cm::LARGE_BLOB_KEY, self.large_blob_key.clone());
        (!m.is_empty()).then_some(Value::Map(m))
    }

    /// Appends the canonical encoding (nothing when every field is absent).
    pub fn encode(&self, out: &mut Vec<u8>) {
        if let Some(v) = self.to_value() {
            v.encode(out);
        }
    }
}
