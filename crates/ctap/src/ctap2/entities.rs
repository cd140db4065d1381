//! The WebAuthn dictionaries CTAP2 carries as CBOR maps with text keys (CTAP 2.1 §6.1.1,
//! WebAuthn L3 §5.4 and §5.8). Unknown keys are ignored, as WebAuthn dictionaries are
//! extensible; unknown credential `type`s are kept so the authenticator can skip them as
//! CTAP 2.1 §6.1.2 requires.

use crate::Error;
use crate::cbor::{FromValue, Map, NotByte, Value};

/// The only credential type (WebAuthn L3 §5.8.2 `PublicKeyCredentialType`).
pub const PUBLIC_KEY_CREDENTIAL_TYPE: &str = "public-key";
/// Longest user handle: "a maximum size of 64 bytes" (WebAuthn L3 §5.4.3 `id`).
pub const MAX_USER_ID_LEN: usize = 64;

/// `PublicKeyCredentialRpEntity` (WebAuthn L3 §5.4.2): `{id, name?}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeyCredentialRpEntity {
    /// The RP ID.
    pub id: String,
    /// Human-palatable name.
    pub name: Option<String>,
}

impl PublicKeyCredentialRpEntity {
    /// The entity as a CBOR map.
    pub fn to_value(&self) -> Value {
        Value::Map(
            Map::new()
                .with("id", self.id.as_str())
                .with_optional("name", self.name.clone()),
        )
    }
}

impl FromValue for PublicKeyCredentialRpEntity {
    fn from_value(value: &Value, field: &'static str) -> Result<Self, Error> {
        let m = value.as_map().ok_or(Error::UnexpectedType(field))?;
        Ok(Self {
            id: m.required("id", "rp.id")?,
            name: m.optional("name", "rp.name")?,
        })
    }
}

/// `PublicKeyCredentialUserEntity` (WebAuthn L3 §5.4.3): `{id, name?, displayName?}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeyCredentialUserEntity {
    /// The user handle, at most [`MAX_USER_ID_LEN`] bytes.
    pub id: Vec<u8>,
    /// Account name.
    pub name: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
}

impl PublicKeyCredentialUserEntity {
    /// The entity as a CBOR map.
    pub fn to_value(&self) -> Value {
        Value::Map(
            Map::new()
                .with("id", self.id.clone())
                .with_optional("name", self.name.clone())
                .with_optional("displayName", self.display_name.clone()),
        )
    }
}

impl FromValue for PublicKeyCredentialUserEntity {
    fn from_value(value: &Value, field: &'static str) -> Result<Self, Error> {
        let m = value.as_map().ok_or(Error::UnexpectedType(field))?;
        let id: Vec<u8> = m.required("id", "user.id")?;
        if id.len() > MAX_USER_ID_LEN {
            return Err(Error::InvalidLength("user.id"));
        }
        Ok(Self {
            id,
            name: m.optional("name", "user.name")?,
            display_name: m.optional("displayName", "user.displayName")?,
        })
    }
}

/// `PublicKeyCredentialParameters` (WebAuthn L3 §5.3): `{type, alg}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeyCredentialParameters {
    /// Credential type; [`PUBLIC_KEY_CREDENTIAL_TYPE`] is the only one defined.
    pub cred_type: String,
    /// COSE algorithm ([`crate::cose::alg`]).
    pub alg: i64,
}

impl PublicKeyCredentialParameters {
    /// A `public-key` entry for `alg`.
    pub fn public_key(alg: i64) -> Self {
        Self {
            cred_type: PUBLIC_KEY_CREDENTIAL_TYPE.to_owned(),
            alg,
        }
    }

    /// The entry as a CBOR map.
    pub fn to_value(&self) -> Value {
        Value::Map(
            Map::new()
                .with("alg", self.alg)
                .with("type", self.cred_type.as_str()),
        )
    }
}

impl FromValue for PublicKeyCredentialParameters {
    fn from_value(value: &Value, field: &'static str) -> Result<Self, Error> {
        let m = value.as_map().ok_or(Error::UnexpectedType(field))?;
        Ok(Self {
            cred_type: m.required("type", "type")?,
            alg: m.required("alg", "alg")?,
        })
    }
}

/// `PublicKeyCredentialDescriptor` (WebAuthn L3 §5.8.3): `{type, id, transports?}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeyCredentialDescriptor {
    /// Credential type; [`PUBLIC_KEY_CREDENTIAL_TYPE`] is the only one defined.
    pub cred_type: String,
    /// The credential ID.
    pub id: Vec<u8>,
    /// Transport hints ("usb", "nfc", ...), if given.
    pub transports: Option<Vec<String>>,
}

impl PublicKeyCredentialDescriptor {
    /// A `public-key` descriptor without transports.
    pub fn public_key(id: Vec<u8>) -> Self {
        Self {
            cred_type: PUBLIC_KEY_CREDENTIAL_TYPE.to_owned(),
            id,
            transports: None,
        }
    }

    /// The descriptor as a CBOR map.
    pub fn to_value(&self) -> Value {
        let transports = self
            .transports
            .as_ref()
            .map(|t| Value::Array(t.iter().map(|s| Value::from(s.as_str())).collect()));
        Value::Map(
            Map::new()
                .with("id", self.id.clone())
                .with("type", self.cred_type.as_str())
                .with_optional("transports", transports),
        )
    }
}

impl FromValue for PublicKeyCredentialDescriptor {
    fn from_value(value: &Value, field: &'static str) -> Result<Self, Error> {
        let m = value.as_map().ok_or(Error::UnexpectedType(field))?;
        Ok(Self {
            cred_type: m.required("type", "type")?,
            id: m.required("id", "id")?,
            transports: m.optional("transports", "transports")?,
        })
    }
}

impl NotByte for PublicKeyCredentialParameters {}
impl NotByte for PublicKeyCredentialDescriptor {}

/// Encodes a list of entities as a CBOR array.
pub(crate) fn array<T>(items: &[T], to_value: impl Fn(&T) -> Value) -> Value {
    Value::Array(items.iter().map(to_value).collect())
}
