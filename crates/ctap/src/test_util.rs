//! Helpers shared by the unit tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

/// Decodes hex, ignoring whitespace (so vectors can be laid out readably).
pub(crate) fn hex(s: &str) -> Vec<u8> {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    data_encoding::HEXLOWER_PERMISSIVE
        .decode(compact.as_bytes())
        .unwrap()
}
