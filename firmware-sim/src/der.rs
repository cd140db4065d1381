//! A minimal DER writer (ITU-T X.690 §10) for the two certificates the simulator issues.
//!
//! Only what X.509 v3 certificates with P-256 keys need: definite-length TLVs, positive
//! INTEGERs, OBJECT IDENTIFIERs, strings, BIT/OCTET STRINGs, BOOLEAN, times and explicit
//! context tags. Every function appends to or returns a `Vec<u8>`; nothing here parses, so
//! nothing here sees untrusted input.

/// Universal tags (X.680 §8.6).
pub mod tag {
    pub const BOOLEAN: u8 = 0x01;
    pub const INTEGER: u8 = 0x02;
    pub const BIT_STRING: u8 = 0x03;
    pub const OCTET_STRING: u8 = 0x04;
    pub const OID: u8 = 0x06;
    pub const UTF8_STRING: u8 = 0x0C;
    pub const PRINTABLE_STRING: u8 = 0x13;
    pub const UTC_TIME: u8 = 0x17;
    pub const GENERALIZED_TIME: u8 = 0x18;
    pub const SEQUENCE: u8 = 0x30;
    pub const SET: u8 = 0x31;
}

/// `tag ‖ length ‖ content` with the definite, minimal length form (X.690 §10.1, §8.1.3).
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        let significant = bytes.get(skip..).unwrap_or_default();
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(content);
    out
}

/// A SEQUENCE of already-encoded parts.
pub fn sequence(parts: &[&[u8]]) -> Vec<u8> {
    tlv(tag::SEQUENCE, &parts.concat())
}

/// A SET of already-encoded parts; callers pass a single element (RDNs), so no DER sorting
/// is needed.
pub fn set(parts: &[&[u8]]) -> Vec<u8> {
    tlv(tag::SET, &parts.concat())
}

/// `[n] EXPLICIT` (context-specific, constructed).
pub fn explicit(n: u8, content: &[u8]) -> Vec<u8> {
    tlv(0xA0 | (n & 0x1F), content)
}

/// `[n] IMPLICIT` primitive (context-specific), e.g. AuthorityKeyIdentifier.keyIdentifier.
pub fn implicit_primitive(n: u8, content: &[u8]) -> Vec<u8> {
    tlv(0x80 | (n & 0x1F), content)
}

/// A non-negative INTEGER from big-endian magnitude bytes, minimal (X.690 §8.3.2).
pub fn unsigned_integer(magnitude: &[u8]) -> Vec<u8> {
    let skip = magnitude.iter().take_while(|&&b| b == 0).count();
    let trimmed = magnitude.get(skip..).unwrap_or_default();
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_none_or(|&b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(trimmed);
    tlv(tag::INTEGER, &content)
}

/// A small non-negative INTEGER.
pub fn small_integer(value: u64) -> Vec<u8> {
    unsigned_integer(&value.to_be_bytes())
}

/// An OBJECT IDENTIFIER from its arcs (X.690 §8.19). The first two arcs must be a valid
/// pair (0..=2, and below 40 for 0 and 1); this module only encodes constants.
pub fn oid(arcs: &[u64]) -> Vec<u8> {
    let mut content = Vec::new();
    let (first, rest) = match arcs {
        [a, b, rest @ ..] => (a * 40 + b, rest),
        [a] => (a * 40, &[][..]),
        [] => return tlv(tag::OID, &[]),
    };
    base128(first, &mut content);
    for &arc in rest {
        base128(arc, &mut content);
    }
    tlv(tag::OID, &content)
}

fn base128(mut value: u64, out: &mut Vec<u8>) {
    let mut groups = vec![(value & 0x7F) as u8];
    value >>= 7;
    while value > 0 {
        groups.push(0x80 | (value & 0x7F) as u8);
        value >>= 7;
    }
    out.extend(groups.iter().rev());
}

/// A BOOLEAN (DER: TRUE is 0xFF).
pub fn boolean(value: bool) -> Vec<u8> {
    tlv(tag::BOOLEAN, &[if value { 0xFF } else { 0x00 }])
}

/// A BIT STRING with no unused bits.
pub fn bit_string(bytes: &[u8]) -> Vec<u8> {
    let mut content = Vec::with_capacity(bytes.len() + 1);
    content.push(0);
    content.extend_from_slice(bytes);
    tlv(tag::BIT_STRING, &content)
}

/// An OCTET STRING.
pub fn octet_string(bytes: &[u8]) -> Vec<u8> {
    tlv(tag::OCTET_STRING, bytes)
}

/// A UTF8String.
pub fn utf8_string(text: &str) -> Vec<u8> {
    tlv(tag::UTF8_STRING, text.as_bytes())
}

/// A PrintableString; the caller passes only PrintableString characters (X.680 §41.4).
pub fn printable_string(text: &str) -> Vec<u8> {
    tlv(tag::PRINTABLE_STRING, text.as_bytes())
}

/// A certificate validity time: UTCTime through 2049, GeneralizedTime from 2050
/// (RFC 5280 §4.1.2.5). `ymdhms` is UTC.
pub fn time(year: u16, month: u8, day: u8, hour: u8, minute: u8, second: u8) -> Vec<u8> {
    let tail = format!("{month:02}{day:02}{hour:02}{minute:02}{second:02}Z");
    if (1950..2050).contains(&year) {
        let text = format!("{:02}{tail}", year % 100);
        tlv(tag::UTC_TIME, text.as_bytes())
    } else {
        let text = format!("{year:04}{tail}");
        tlv(tag::GENERALIZED_TIME, text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_minimal() {
        assert_eq!(tlv(0x04, &[1, 2]), [0x04, 0x02, 1, 2]);
        let long = tlv(0x04, &[0; 200]);
        assert_eq!(long[..3], [0x04, 0x81, 200]);
        let longer = tlv(0x04, &[0; 300]);
        assert_eq!(longer[..4], [0x04, 0x82, 0x01, 0x2C]);
    }

    #[test]
    fn integers_are_minimal_and_positive() {
        assert_eq!(small_integer(0), [0x02, 0x01, 0x00]);
        assert_eq!(small_integer(2), [0x02, 0x01, 0x02]);
        assert_eq!(small_integer(128), [0x02, 0x02, 0x00, 0x80]);
        assert_eq!(unsigned_integer(&[0, 0, 0x7F]), [0x02, 0x01, 0x7F]);
        assert_eq!(unsigned_integer(&[0xFF]), [0x02, 0x02, 0x00, 0xFF]);
    }

    #[test]
    fn oids_match_known_encodings() {
        // ecdsa-with-SHA256 and id-fido-gen-ce-aaguid.
        assert_eq!(
            oid(&[1, 2, 840, 10045, 4, 3, 2]),
            [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02]
        );
        assert_eq!(
            oid(&[1, 3, 6, 1, 4, 1, 45724, 1, 1, 4]),
            [
                0x06, 0x0B, 0x2B, 0x06, 0x01, 0x04, 0x01, 0x82, 0xE5, 0x1C, 0x01, 0x01, 0x04
            ]
        );
    }

    #[test]
    fn times_switch_form_at_2050() {
        assert_eq!(time(2024, 1, 2, 3, 4, 5), tlv(0x17, b"240102030405Z"));
        assert_eq!(
            time(9999, 12, 31, 23, 59, 59),
            tlv(0x18, b"99991231235959Z")
        );
        assert_eq!(boolean(true), [0x01, 0x01, 0xFF]);
        assert_eq!(bit_string(&[0x20]), [0x03, 0x02, 0x00, 0x20]);
    }
}
