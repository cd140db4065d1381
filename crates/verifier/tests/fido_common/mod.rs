//! Helpers shared by the FIDO integration tests: the `[section]` / `name = value` data files
//! under tests/data (each names its source in its header) and a fixed clock.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

/// `[section]` → `name` → value (as written).
pub type Sections = BTreeMap<String, BTreeMap<String, String>>;

/// 2026-05-28T20:26:40Z: inside every test certificate's validity except the U2F example's.
pub const NOW: i64 = 1_780_000_000;

pub fn parse(file: &str) -> Sections {
    let mut out = Sections::new();
    let mut section = String::new();
    for line in file.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let (key, value) = line.split_once(" = ").expect("name = value");
        out.entry(section.clone())
            .or_default()
            .insert(key.to_owned(), value.to_owned());
    }
    out
}

pub fn hex(s: &str) -> Vec<u8> {
    data_encoding::HEXLOWER.decode(s.as_bytes()).expect("hex")
}

pub fn arr32(b: &[u8]) -> [u8; 32] {
    b.try_into().expect("32 bytes")
}

pub fn arr16(b: &[u8]) -> [u8; 16] {
    b.try_into().expect("16 bytes")
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    arr32(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

/// `haystack` with the first occurrence of `from` replaced by `to` (which must occur).
pub fn replace_once(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = haystack
        .windows(from.len())
        .position(|w| w == from)
        .expect("pattern present");
    let mut out = haystack[..at].to_vec();
    out.extend_from_slice(to);
    out.extend_from_slice(&haystack[at + from.len()..]);
    out
}
