//! CBOR (RFC 8949) restricted to what CTAP2 and WebAuthn use, with the CTAP2 canonical
//! encoding.
//!
//! * [`Value`] covers integers, byte and text strings, arrays, maps, booleans and null.
//!   Floats, tags, `undefined` and other simple values are not values here: the decoder
//!   rejects them, each with its own [`CborError`].
//! * The encoder ([`Value::encode`]) always produces the "CTAP2 canonical CBOR encoding
//!   form" (CTAP 2.1 §8 "Message Encoding"): shortest integer and length arguments,
//!   definite lengths only, map keys sorted by major type, then encoded length, then bytes.
//!   [`Map`] keeps its entries in that order at all times, so two equal maps encode alike.
//! * The decoder ([`decode`]) is strict by default ([`DecodeOptions::CTAP2`]): non-minimal
//!   arguments, unsorted or duplicate map keys, indefinite lengths and trailing bytes are
//!   errors, and nesting beyond [`MAX_NESTING_DEPTH`] is refused. A length prefix is checked
//!   against the bytes actually present before anything is allocated, so a hostile prefix
//!   cannot make it reserve memory. [`DecodeOptions::LENIENT`] accepts non-minimal arguments
//!   and unsorted keys (never duplicates) for peers that are not canonical.
//!
//! Reading helpers: [`Map::required`] and [`Map::optional`] fetch and convert a field
//! through [`FromValue`], reporting [`Error::MissingField`] / [`Error::UnexpectedType`] with
//! the field's spec name, which the CTAP2 layer maps to the matching status code.

use std::cmp::Ordering;

use crate::Error;

/// Maximum nesting of arrays and maps in a message: a top-level map counts as 1.
///
/// CTAP 2.1 §8 "Message Encoding" limits CTAP2 messages to a nesting depth of 4 (the text
/// itself was not available when this was written; OpenSK uses the same 4). The deepest
/// structure CTAP2 needs is GetAssertion → extensions → hmac-secret → keyAgreement, which is
/// exactly 4.
pub const MAX_NESTING_DEPTH: usize = 4;

// RFC 8949 §3.1 major types.
const MAJOR_UNSIGNED: u8 = 0;
const MAJOR_NEGATIVE: u8 = 1;
const MAJOR_BYTES: u8 = 2;
const MAJOR_TEXT: u8 = 3;
const MAJOR_ARRAY: u8 = 4;
const MAJOR_MAP: u8 = 5;
const MAJOR_TAG: u8 = 6;
const MAJOR_SIMPLE: u8 = 7;

// RFC 8949 §3.3 simple values.
const SIMPLE_FALSE: u8 = 20;
const SIMPLE_TRUE: u8 = 21;
const SIMPLE_NULL: u8 = 22;

// RFC 8949 §3: additional information values.
const INFO_ONE_BYTE: u8 = 24;
const INFO_TWO_BYTES: u8 = 25;
const INFO_FOUR_BYTES: u8 = 26;
const INFO_EIGHT_BYTES: u8 = 27;
const INFO_INDEFINITE: u8 = 31;

/// A CBOR data item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Major type 0: an unsigned integer.
    Unsigned(u64),
    /// Major type 1: the negative integer `-1 - n` (so `Negative(0)` is -1). This is the
    /// wire argument itself, which covers the full CBOR range down to -2^64.
    Negative(u64),
    /// Major type 2.
    Bytes(Vec<u8>),
    /// Major type 3 (always valid UTF-8).
    Text(String),
    /// Major type 4.
    Array(Vec<Value>),
    /// Major type 5, kept in canonical key order.
    Map(Map),
    /// Simple values 20 and 21.
    Bool(bool),
    /// Simple value 22.
    Null,
}

impl Value {
    /// An integer value from an `i64` (positive or negative).
    pub fn integer(v: i64) -> Self {
        if v >= 0 {
            Self::Unsigned(v.unsigned_abs())
        } else {
            // v < 0, so |v| >= 1 and the subtraction cannot underflow.
            Self::Negative(v.unsigned_abs() - 1)
        }
    }

    /// The value as an unsigned integer, if it is one.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Self::Unsigned(n) => Some(n),
            _ => None,
        }
    }

    /// The value as an `i64`, if it is an integer in range.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Self::Unsigned(n) => i64::try_from(n).ok(),
            Self::Negative(n) => i64::try_from(n).ok().map(|n| -1 - n),
            _ => None,
        }
    }

    /// The value as a byte string, if it is one.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Self::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The value as a text string, if it is one.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Text(t) => Some(t),
            _ => None,
        }
    }

    /// The value as an array, if it is one.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Self::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The value as a map, if it is one.
    pub fn as_map(&self) -> Option<&Map> {
        match self {
            Self::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The value as a boolean, if it is one.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Self::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// Appends the CTAP2 canonical encoding of this value.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Unsigned(n) => encode_head(out, MAJOR_UNSIGNED, *n),
            Self::Negative(n) => encode_head(out, MAJOR_NEGATIVE, *n),
            Self::Bytes(b) => {
                encode_head(out, MAJOR_BYTES, len_u64(b.len()));
                out.extend_from_slice(b);
            }
            Self::Text(t) => {
                encode_head(out, MAJOR_TEXT, len_u64(t.len()));
                out.extend_from_slice(t.as_bytes());
            }
            Self::Array(items) => {
                encode_head(out, MAJOR_ARRAY, len_u64(items.len()));
                for item in items {
                    item.encode(out);
                }
            }
            Self::Map(map) => {
                encode_head(out, MAJOR_MAP, len_u64(map.len()));
                for (k, v) in map.iter() {
                    k.encode(out);
                    v.encode(out);
                }
            }
            Self::Bool(false) => out.push(MAJOR_SIMPLE << 5 | SIMPLE_FALSE),
            Self::Bool(true) => out.push(MAJOR_SIMPLE << 5 | SIMPLE_TRUE),
            Self::Null => out.push(MAJOR_SIMPLE << 5 | SIMPLE_NULL),
        }
    }

    /// The CTAP2 canonical encoding of this value as a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// `usize` → `u64` is lossless on every target Rust supports (pointers are at most 64 bits).
fn len_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// RFC 8949 §3: the initial byte plus the argument in its shortest form (§4.2.1 rule 1).
fn encode_head(out: &mut Vec<u8>, major: u8, arg: u64) {
    let m = major << 5;
    if let Ok(small) = u8::try_from(arg) {
        if small < INFO_ONE_BYTE {
            out.push(m | small);
        } else {
            out.extend_from_slice(&[m | INFO_ONE_BYTE, small]);
        }
    } else if let Ok(v) = u16::try_from(arg) {
        out.push(m | INFO_TWO_BYTES);
        out.extend_from_slice(&v.to_be_bytes());
    } else if let Ok(v) = u32::try_from(arg) {
        out.push(m | INFO_FOUR_BYTES);
        out.extend_from_slice(&v.to_be_bytes());
    } else {
        out.push(m | INFO_EIGHT_BYTES);
        out.extend_from_slice(&arg.to_be_bytes());
    }
}

/// The CTAP2 canonical order of two encoded map keys: lower major type first, then the
/// shorter encoding, then bytewise (CTAP 2.1 §8 "CTAP2 canonical CBOR encoding form"; this
/// is RFC 7049 §3.9 "length-first", not RFC 8949 §4.2.1 bytewise order).
fn canonical_order(a: &[u8], b: &[u8]) -> Ordering {
    let major = |e: &[u8]| e.first().map(|b| b >> 5);
    major(a)
        .cmp(&major(b))
        .then(a.len().cmp(&b.len()))
        .then_with(|| a.cmp(b))
}

macro_rules! value_from_unsigned {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Self::Unsigned(u64::from(v))
            }
        }
    )*};
}
value_from_unsigned!(u8, u16, u32, u64);

macro_rules! value_from_signed {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Self::integer(i64::from(v))
            }
        }
    )*};
}
value_from_signed!(i8, i16, i32, i64);

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Self::Text(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Self::Text(v)
    }
}

impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Self::Bytes(v.to_vec())
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Self::Bytes(v)
    }
}

impl<const N: usize> From<[u8; N]> for Value {
    fn from(v: [u8; N]) -> Self {
        Self::Bytes(v.to_vec())
    }
}

impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Self {
        Self::Array(v)
    }
}

impl From<Map> for Value {
    fn from(v: Map) -> Self {
        Self::Map(v)
    }
}

/// A key that can look itself up in a [`Map`] without allocating: integers and text.
pub trait MapKey {
    /// Whether `key` is this key.
    fn matches(&self, key: &Value) -> bool;
}

macro_rules! map_key_int {
    ($($t:ty),*) => {$(
        impl MapKey for $t {
            fn matches(&self, key: &Value) -> bool {
                key.as_i64() == Some(i64::from(*self))
            }
        }
    )*};
}
map_key_int!(i8, i16, i32, i64);

impl MapKey for &str {
    fn matches(&self, key: &Value) -> bool {
        key.as_text() == Some(*self)
    }
}

impl MapKey for &Value {
    fn matches(&self, key: &Value) -> bool {
        *self == key
    }
}

/// A CBOR map whose entries are always unique and in CTAP2 canonical key order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Map {
    entries: Vec<(Value, Value)>,
}

impl Map {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries in canonical key order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&Value, &Value)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    /// The value under `key`.
    pub fn get(&self, key: impl MapKey) -> Option<&Value> {
        self.entries
            .iter()
            .find(|(k, _)| key.matches(k))
            .map(|(_, v)| v)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: impl MapKey) -> bool {
        self.get(key).is_some()
    }

    /// Inserts or replaces an entry, keeping canonical order; returns the old value.
    pub fn insert(&mut self, key: impl Into<Value>, value: impl Into<Value>) -> Option<Value> {
        let key = key.into();
        let encoded = key.to_vec();
        let found = self
            .entries
            .binary_search_by(|(k, _)| canonical_order(&k.to_vec(), &encoded));
        match found {
            Ok(i) => self
                .entries
                .get_mut(i)
                .map(|slot| std::mem::replace(&mut slot.1, value.into())),
            Err(i) => {
                self.entries.insert(i, (key, value.into()));
                None
            }
        }
    }

    /// Removes the entry under `key`, returning its value.
    pub fn remove(&mut self, key: impl MapKey) -> Option<Value> {
        let i = self.entries.iter().position(|(k, _)| key.matches(k))?;
        Some(self.entries.remove(i).1)
    }

    /// Builder form of [`Map::insert`].
    #[must_use]
    pub fn with(mut self, key: impl Into<Value>, value: impl Into<Value>) -> Self {
        self.insert(key, value);
        self
    }

    /// Builder form of [`Map::insert`] that skips `None`.
    #[must_use]
    pub fn with_optional<V: Into<Value>>(self, key: impl Into<Value>, value: Option<V>) -> Self {
        match value {
            Some(v) => self.with(key, v),
            None => self,
        }
    }

    /// The field under `key`, converted; [`Error::MissingField`] if absent.
    pub fn required<T: FromValue>(
        &self,
        key: impl MapKey,
        field: &'static str,
    ) -> Result<T, Error> {
        let value = self.get(key).ok_or(Error::MissingField(field))?;
        T::from_value(value, field)
    }

    /// The field under `key`, converted, or `None` if absent.
    pub fn optional<T: FromValue>(
        &self,
        key: impl MapKey,
        field: &'static str,
    ) -> Result<Option<T>, Error> {
        self.get(key).map(|v| T::from_value(v, field)).transpose()
    }
}

impl<K: Into<Value>, V: Into<Value>> FromIterator<(K, V)> for Map {
    /// Collects entries; a later duplicate key replaces an earlier one.
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut map = Self::new();
        for (k, v) in iter {
            map.insert(k, v);
        }
        map
    }
}

/// Conversion from a decoded [`Value`] into a typed field, naming the field in errors.
pub trait FromValue: Sized {
    /// Converts `value`; `field` is the spec's name for it, used in the error.
    fn from_value(value: &Value, field: &'static str) -> Result<Self, Error>;
}

impl FromValue for Value {
    fn from_value(value: &Value, _field: &'static str) -> Result<Self, Error> {
        Ok(value.clone())
    }
}

impl FromValue for bool {
    fn from_value(value: &Value, field: &'static str) -> Result<Self, Error> {
        value.as_bool().ok_or(Error::UnexpectedType(field))
    }
}

impl FromValue for u64 {
    fn from_value(value: &Value, field: &'static str) -> Result<Self, Error> {
        value.as_u64().ok_or(Error::UnexpectedType(field))
    }
}

impl FromValue for i64 {
    fn from_value(value: &Value, field: &'static str) -> Result<Self, Error> {
        match value {
            Value::Unsigned(_) | Value::Negative(_) => {
                value.as_i64().ok_or(Error::InvalidValue(field))
            }
            _ => Err(Error::UnexpectedType(field)),
        }
    }
}

impl FromValue for String {
    fn from_value(value: &Value, field: &'static str) -> Result<Self, Error> {
        value
            .as_text()
            .map(str::to_owned)
            .ok_or(Error::UnexpectedType(field))
    }
}

/// Byte strings. (Arrays of values use [`Vec<T>`] via [`FromValue::from_value`] on each
/// item; `u8` is deliberately not a [`FromValue`] so that `Vec<u8>` always means bytes.)
impl FromValue for Vec<u8> {
    fn from_value(value: &Value, field: &'static str) -> Result<Self, Error> {
        value
            .as_bytes()
            .map(<[u8]>::to_vec)
            .ok_or(Error::UnexpectedType(field))
    }
}

/// Fixed-length byte strings; a wrong length is [`Error::InvalidLength`].
impl<const N: usize> FromValue for [u8; N] {
    fn from_value(value: &Value, field: &'static str) -> Result<Self, Error> {
        let bytes = value.as_bytes().ok_or(Error::UnexpectedType(field))?;
        bytes.try_into().map_err(|_| Error::InvalidLength(field))
    }
}

impl FromValue for Map {
    fn from_value(value: &Value, field: &'static str) -> Result<Self, Error> {
        value.as_map().cloned().ok_or(Error::UnexpectedType(field))
    }
}

/// Reads an array whose items all convert with `T::from_value`.
pub fn array_of<T: FromValue>(value: &Value, field: &'static str) -> Result<Vec<T>, Error> {
    let items = value.as_array().ok_or(Error::UnexpectedType(field))?;
    items
        .iter()
        .map(|item| T::from_value(item, field))
        .collect()
}

/// Arrays whose items are not plain bytes (text, integers, structures).
impl<T: FromValue + NotByte> FromValue for Vec<T> {
    fn from_value(value: &Value, field: &'static str) -> Result<Self, Error> {
        array_of(value, field)
    }
}

/// Marker for item types allowed in `Vec<T>: FromValue` (everything except `u8`, whose
/// `Vec` is a byte string).
pub trait NotByte {}
impl NotByte for Value {}
impl NotByte for bool {}
impl NotByte for u64 {}
impl NotByte for i64 {}
impl NotByte for String {}
impl NotByte for Map {}
impl NotByte for Vec<u8> {}

/// Why bytes were not accepted as CBOR. Each rejection has its own variant so that logs and
/// tests can tell them apart; on the CTAP2 wire they all become CTAP2_ERR_INVALID_CBOR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CborError {
    /// The input ends inside a data item, or a length points past its end.
    #[error("input ends inside a data item")]
    Truncated,
    /// Bytes follow the single top-level data item.
    #[error("bytes follow the data item")]
    TrailingBytes,
    /// An indefinite-length item or a break code (RFC 8949 §3.2), not allowed in CTAP2.
    #[error("indefinite-length encoding")]
    IndefiniteLength,
    /// Additional information 28–30, reserved by RFC 8949 §3.
    #[error("reserved additional information value {0}")]
    ReservedAdditionalInfo(u8),
    /// An argument not in its shortest form (strict mode; RFC 8949 §4.2.1).
    #[error("integer or length not in its shortest form")]
    NonMinimalEncoding,
    /// Map keys not in CTAP2 canonical order (strict mode).
    #[error("map keys out of canonical order")]
    MapKeysOutOfOrder,
    /// The same key twice in one map.
    #[error("duplicate map key")]
    DuplicateMapKey,
    /// Arrays and maps nested deeper than allowed.
    #[error("nesting deeper than the limit")]
    TooDeep,
    /// A tag (major type 6); CTAP2 uses none.
    #[error("tags are not supported")]
    TagNotSupported,
    /// A half-, single- or double-precision float; CTAP2 uses none.
    #[error("floating-point values are not supported")]
    FloatNotSupported,
    /// A simple value other than false, true and null (includes `undefined`).
    #[error("unsupported simple value {0}")]
    UnsupportedSimpleValue(u8),
    /// A text string that is not valid UTF-8.
    #[error("text string is not valid UTF-8")]
    InvalidUtf8,
}

/// How strictly to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Maximum nesting of arrays and maps (a top-level container counts as 1).
    pub max_depth: usize,
    /// Require the CTAP2 canonical form: shortest arguments and sorted keys.
    pub canonical: bool,
}

impl DecodeOptions {
    /// CTAP2 messages: canonical form, nesting ≤ [`MAX_NESTING_DEPTH`].
    pub const CTAP2: Self = Self {
        max_depth: MAX_NESTING_DEPTH,
        canonical: true,
    };
    /// Same depth limit, but accepts non-minimal arguments and unsorted (never duplicate)
    /// keys; the decoded [`Map`] is sorted anyway, so re-encoding yields canonical bytes.
    pub const LENIENT: Self = Self {
        max_depth: MAX_NESTING_DEPTH,
        canonical: false,
    };
}

/// Decodes exactly one data item in CTAP2 canonical form ([`DecodeOptions::CTAP2`]).
pub fn decode(input: &[u8]) -> Result<Value, CborError> {
    decode_with(input, DecodeOptions::CTAP2)
}

/// Decodes exactly one data item with the given options; trailing bytes are an error.
pub fn decode_with(input: &[u8], options: DecodeOptions) -> Result<Value, CborError> {
    let (value, used) = decode_prefix(input, options)?;
    if used == input.len() {
        Ok(value)
    } else {
        Err(CborError::TrailingBytes)
    }
}

/// Decodes one data item from the front of `input` and returns it with the number of bytes
/// it took. For structures that embed CBOR followed by more data (authenticatorData).
pub fn decode_prefix(input: &[u8], options: DecodeOptions) -> Result<(Value, usize), CborError> {
    let mut decoder = Decoder {
        input,
        pos: 0,
        options,
    };
    let value = decoder.item(0)?;
    Ok((value, decoder.pos))
}

/// Recursive-descent decoder. Invariant: `pos <= input.len()`.
struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
    options: DecodeOptions,
}

impl<'a> Decoder<'a> {
    fn remaining(&self) -> usize {
        self.input.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], CborError> {
        let n = usize::try_from(n).map_err(|_| CborError::Truncated)?;
        let end = self.pos.checked_add(n).ok_or(CborError::Truncated)?;
        let bytes = self.input.get(self.pos..end).ok_or(CborError::Truncated)?;
        self.pos = end;
        Ok(bytes)
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], CborError> {
        let bytes = self.take(N as u64)?;
        bytes.try_into().map_err(|_| CborError::Truncated)
    }

    /// The argument that follows an initial byte (RFC 8949 §3), minimality checked in
    /// canonical mode (§4.2.1).
    fn argument(&mut self, major: u8, info: u8) -> Result<u64, CborError> {
        let (value, minimum) = match info {
            0..=23 => return Ok(u64::from(info)),
            INFO_ONE_BYTE => (u64::from(u8::from_be_bytes(self.take_array()?)), 24),
            INFO_TWO_BYTES => (u64::from(u16::from_be_bytes(self.take_array()?)), 1 << 8),
            INFO_FOUR_BYTES => (u64::from(u32::from_be_bytes(self.take_array()?)), 1 << 16),
            INFO_EIGHT_BYTES => (u64::from_be_bytes(self.take_array()?), 1 << 32),
            INFO_INDEFINITE if (MAJOR_BYTES..=MAJOR_MAP).contains(&major) => {
                return Err(CborError::IndefiniteLength);
            }
            _ => return Err(CborError::ReservedAdditionalInfo(info)),
        };
        if self.options.canonical && value < minimum {
            return Err(CborError::NonMinimalEncoding);
        }
        Ok(value)
    }

    /// One data item; `depth` is the number of containers around it.
    fn item(&mut self, depth: usize) -> Result<Value, CborError> {
        let [initial] = self.take_array::<1>()?;
        let major = initial >> 5;
        let info = initial & 0x1f;
        match major {
            MAJOR_SIMPLE => return self.simple(info),
            MAJOR_TAG => return Err(CborError::TagNotSupported),
            _ => {}
        }
        let arg = self.argument(major, info)?;
        match major {
            MAJOR_UNSIGNED => Ok(Value::Unsigned(arg)),
            MAJOR_NEGATIVE => Ok(Value::Negative(arg)),
            MAJOR_BYTES => Ok(Value::Bytes(self.take(arg)?.to_vec())),
            MAJOR_TEXT => {
                let bytes = self.take(arg)?;
                let text = std::str::from_utf8(bytes).map_err(|_| CborError::InvalidUtf8)?;
                Ok(Value::Text(text.to_owned()))
            }
            MAJOR_ARRAY => self.array(arg, depth + 1),
            // Only MAJOR_MAP is left: major is a 3-bit value and 0–4, 6, 7 are handled.
            _ => self.map(arg, depth + 1),
        }
    }

    fn simple(&mut self, info: u8) -> Result<Value, CborError> {
        match info {
            SIMPLE_FALSE => Ok(Value::Bool(false)),
            SIMPLE_TRUE => Ok(Value::Bool(true)),
            SIMPLE_NULL => Ok(Value::Null),
            INFO_ONE_BYTE => {
                let [v] = self.take_array::<1>()?;
                Err(CborError::UnsupportedSimpleValue(v))
            }
            INFO_TWO_BYTES | INFO_FOUR_BYTES | INFO_EIGHT_BYTES => {
                Err(CborError::FloatNotSupported)
            }
            INFO_INDEFINITE => Err(CborError::IndefiniteLength),
            28..=30 => Err(CborError::ReservedAdditionalInfo(info)),
            _ => Err(CborError::UnsupportedSimpleValue(info)),
        }
    }

    fn array(&mut self, count: u64, depth: usize) -> Result<Value, CborError> {
        if depth > self.options.max_depth {
            return Err(CborError::TooDeep);
        }
        // Every item takes at least one byte: refuse counts the input cannot hold before
        // looping or allocating.
        if count > len_u64(self.remaining()) {
            return Err(CborError::Truncated);
        }
        let mut items = Vec::new();
        for _ in 0..count {
            items.push(self.item(depth)?);
        }
        Ok(Value::Array(items))
    }

    fn map(&mut self, count: u64, depth: usize) -> Result<Value, CborError> {
        if depth > self.options.max_depth {
            return Err(CborError::TooDeep);
        }
        // Every entry takes at least two bytes.
        if count.saturating_mul(2) > len_u64(self.remaining()) {
            return Err(CborError::Truncated);
        }
        if self.options.canonical {
            let mut entries = Vec::new();
            let mut previous: Option<&'a [u8]> = None;
            for _ in 0..count {
                let start = self.pos;
                let key = self.item(depth)?;
                let encoded = self.input.get(start..self.pos).unwrap_or_default();
                if let Some(prev) = previous {
                    match canonical_order(prev, encoded) {
                        Ordering::Less => {}
                        Ordering::Equal => return Err(CborError::DuplicateMapKey),
                        Ordering::Greater => return Err(CborError::MapKeysOutOfOrder),
                    }
                }
                previous = Some(encoded);
                entries.push((key, self.item(depth)?));
            }
            Ok(Value::Map(Map { entries }))
        } else {
            let mut entries = Vec::new();
            for _ in 0..count {
                let key = self.item(depth)?;
                let value = self.item(depth)?;
                entries.push((key.to_vec(), key, value));
            }
            entries.sort_by(|a, b| canonical_order(&a.0, &b.0));
            if entries
                .windows(2)
                .any(|w| matches!(w, [a, b] if a.0 == b.0))
            {
                return Err(CborError::DuplicateMapKey);
            }
            let entries = entries.into_iter().map(|(_, k, v)| (k, v)).collect();
            Ok(Value::Map(Map { entries }))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;
    use crate::test_util::hex;

    #[test]
    fn integers_use_the_shortest_form() {
        // RFC 8949 Appendix A.
        let cases: &[(i64, &str)] = &[
            (0, "00"),
            (23, "17"),
            (24, "1818"),
            (255, "18ff"),
            (256, "190100"),
            (65535, "19ffff"),
            (65536, "1a00010000"),
            (4_294_967_296, "1b0000000100000000"),
            (-1, "20"),
            (-24, "37"),
            (-25, "3818"),
            (-1000, "3903e7"),
            (i64::MIN, "3b7fffffffffffffff"),
        ];
        for &(n, h) in cases {
            assert_eq!(Value::integer(n).to_vec(), hex(h), "{n}");
            assert_eq!(decode(&hex(h)).unwrap().as_i64(), Some(n), "{n}");
        }
        assert_eq!(
            decode(&hex("3bffffffffffffffff")),
            Ok(Value::Negative(u64::MAX))
        );
        assert_eq!(Value::Negative(u64::MAX).as_i64(), None);
    }

    #[test]
    fn map_keys_sort_length_first() {
        // CTAP 2.1 §8 example order: integers before text, shorter text first.
        let map = Map::new()
            .with("aa", 1)
            .with("b", 2)
            .with(-1, 3)
            .with(10, 4)
            .with(1000, 5)
            .with(1, 6);
        let keys: Vec<Value> = map.iter().map(|(k, _)| k.clone()).collect();
        let expected = vec![
            Value::from(1),
            Value::from(10),
            Value::from(1000),
            Value::from(-1),
            Value::from("b"),
            Value::from("aa"),
        ];
        assert_eq!(keys, expected);
        let bytes = Value::Map(map.clone()).to_vec();
        assert_eq!(decode(&bytes), Ok(Value::Map(map)));
    }

    #[test]
    fn insert_replaces_and_remove_works() {
        let mut map = Map::new().with(1, "a");
        assert_eq!(map.insert(1, "b"), Some(Value::from("a")));
        assert_eq!(map.get(1), Some(&Value::from("b")));
        assert_eq!(map.remove(1), Some(Value::from("b")));
        assert!(map.is_empty());
    }

    #[test]
    fn typed_field_helpers() {
        let map = Map::new().with(1, vec![7u8; 32]).with(2, "x").with(3, true);
        let hash: [u8; 32] = map.required(1, "clientDataHash").unwrap();
        assert_eq!(hash, [7; 32]);
        assert_eq!(map.required::<String>(2, "rpId").unwrap(), "x");
        assert_eq!(map.optional::<bool>(3, "up").unwrap(), Some(true));
        assert_eq!(map.optional::<bool>(4, "uv").unwrap(), None);
        assert_eq!(
            map.required::<bool>(4, "uv"),
            Err(Error::MissingField("uv"))
        );
        assert_eq!(
            map.required::<bool>(2, "uv"),
            Err(Error::UnexpectedType("uv"))
        );
        assert_eq!(
            map.required::<[u8; 16]>(1, "aaguid"),
            Err(Error::InvalidLength("aaguid"))
        );
    }

    #[test]
    fn distinct_errors() {
        let cases: &[(&str, CborError)] = &[
            ("", CborError::Truncated),
            ("18", CborError::Truncated),
            ("5a ffffffff 00", CborError::Truncated),
            ("9b ffffffffffffffff", CborError::Truncated),
            ("bb ffffffffffffffff", CborError::Truncated),
            ("0000", CborError::TrailingBytes),
            ("5f 41 00 ff", CborError::IndefiniteLength),
            ("9f ff", CborError::IndefiniteLength),
            ("ff", CborError::IndefiniteLength),
            ("1c", CborError::ReservedAdditionalInfo(28)),
            ("1817", CborError::NonMinimalEncoding),
            ("190017", CborError::NonMinimalEncoding),
            ("1a0000ffff", CborError::NonMinimalEncoding),
            ("1b00000000ffffffff", CborError::NonMinimalEncoding),
            ("5800", CborError::NonMinimalEncoding),
            ("a2 02 00 01 00", CborError::MapKeysOutOfOrder),
            ("a2 61 62 00 01 00", CborError::MapKeysOutOfOrder),
            ("a2 62 6161 00 61 62 00", CborError::MapKeysOutOfOrder),
            ("a2 01 00 01 00", CborError::DuplicateMapKey),
            ("c0 00", CborError::TagNotSupported),
            ("f93c00", CborError::FloatNotSupported),
            ("fa3f800000", CborError::FloatNotSupported),
            ("fb3ff0000000000000", CborError::FloatNotSupported),
            ("f7", CborError::UnsupportedSimpleValue(23)),
            ("f0", CborError::UnsupportedSimpleValue(16)),
            ("f820", CborError::UnsupportedSimpleValue(32)),
            ("62 c328", CborError::InvalidUtf8),
            ("81 81 81 81 81 00", CborError::TooDeep),
            ("a1 01 a1 01 a1 01 a1 01 a1 01 00", CborError::TooDeep),
        ];
        for (h, err) in cases {
            assert_eq!(decode(&hex(h)), Err(*err), "{h}");
        }
        // Four levels are fine.
        assert!(decode(&hex("81 81 81 81 00")).is_ok());
    }

    #[test]
    fn lenient_mode_sorts_but_rejects_duplicates() {
        let bytes = hex("a2 1802 00 01 00");
        assert_eq!(decode(&bytes), Err(CborError::NonMinimalEncoding));
        let value = decode_with(&bytes, DecodeOptions::LENIENT).unwrap();
        assert_eq!(value.to_vec(), hex("a2 01 00 02 00"));
        let dup = hex("a2 01 00 1801 00");
        assert_eq!(
            decode_with(&dup, DecodeOptions::LENIENT),
            Err(CborError::DuplicateMapKey)
        );
        assert_eq!(
            decode_with(&hex("5f ff"), DecodeOptions::LENIENT),
            Err(CborError::IndefiniteLength)
        );
    }

    #[test]
    fn prefix_decoding_reports_the_length() {
        let (value, used) = decode_prefix(&hex("a1 01 02 ffff"), DecodeOptions::CTAP2).unwrap();
        assert_eq!(value, Value::Map(Map::new().with(1, 2)));
        assert_eq!(used, 3);
    }

    /// Values nested at most `MAX_NESTING_DEPTH` containers deep.
    pub(crate) fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<u64>().prop_map(Value::Unsigned),
            any::<u64>().prop_map(Value::Negative),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::Bytes),
            ".{0,20}".prop_map(Value::Text),
            any::<bool>().prop_map(Value::Bool),
            Just(Value::Null),
        ];
        leaf.prop_recursive(MAX_NESTING_DEPTH as u32, 64, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec((inner.clone(), inner), 0..6)
                    .prop_map(|entries| Value::Map(entries.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn decode_encode_round_trips(value in arb_value()) {
            let bytes = value.to_vec();
            prop_assert_eq!(decode(&bytes), Ok(value.clone()));
            prop_assert_eq!(decode_with(&bytes, DecodeOptions::LENIENT), Ok(value));
        }

        #[test]
        fn canonical_input_re_encodes_identically(bytes in vec(any::<u8>(), 0..64)) {
            if let Ok(value) = decode(&bytes) {
                prop_assert_eq!(value.to_vec(), bytes);
            }
        }

        #[test]
        fn lenient_decoding_is_idempotent(bytes in vec(any::<u8>(), 0..64)) {
            if let Ok(value) = decode_with(&bytes, DecodeOptions::LENIENT) {
                prop_assert_eq!(decode(&value.to_vec()), Ok(value));
            }
        }
    }
}
