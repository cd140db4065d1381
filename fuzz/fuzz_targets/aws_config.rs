//! Fuzz the AWS shared config/credentials file parser (`tokengate_client::aws_config`), which
//! reads `~/.aws/config` and `~/.aws/credentials` as the AWS SDKs do.
//!
//! The input is the config file, a NUL byte, then the credentials file. Beyond "never
//! panics" it asserts: a parsed file, written back out (`write_ini` below: sections in
//! order, `key=value`, continuation lines indented, CRLF endings), parses to the same
//! sections and properties; parsing is deterministic; the two files load together exactly when
//! each parses alone; every profile name the files hold is retrievable by that name, through
//! `SharedFiles::profile` and through the credential chain with `--profile NAME`, and its
//! settings (credentials, endpoint, region, duration) read without panicking; a profile's
//! credentials, when present, have a non-empty access key id.
#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use tokengate_client::aws_config::{ProfileChoice, RawIni, SharedFiles, parse_ini, sub_properties};
use tokengate_client::credential_chain;

fuzz_target!(|data: &[u8]| {
    let (config, credentials) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let (Ok(config), Ok(credentials)) = (
        std::str::from_utf8(config),
        std::str::from_utf8(credentials),
    ) else {
        return;
    };
    let parsed = (parse_ini(config), parse_ini(credentials));
    for ini in [&parsed.0, &parsed.1].into_iter().flatten() {
        let written = write_ini(ini);
        match parse_ini(&written) {
            Ok(again) => assert_eq!(&again, ini, "written back as {written:?}"),
            Err(e) => panic!("written back as {written:?}, it does not parse: {e}"),
        }
    }
    assert_eq!(
        parsed.0,
        parse_ini(config),
        "config parse is not deterministic"
    );
    assert_eq!(
        parsed.1,
        parse_ini(credentials),
        "credentials parse is not deterministic"
    );
    let loaded = SharedFiles::from_texts(
        PathBuf::from("/home/u/.aws/config"),
        config,
        PathBuf::from("/home/u/.aws/credentials"),
        credentials,
    );
    assert_eq!(
        loaded.is_ok(),
        parsed.0.is_ok() && parsed.1.is_ok(),
        "the files load together iff each parses: {loaded:?}"
    );
    let Ok(files) = loaded else { return };
    let env = |_: &str| None::<String>;
    for name in files.profile_names() {
        let profile = match files.profile(name) {
            Ok(profile) => profile,
            Err(e) => panic!("profile {name:?} is listed but not retrievable: {e}"),
        };
        assert_eq!(profile.name(), name);
        assert!(profile.exists());
        if let Ok(creds) = profile.credentials() {
            assert!(!creds.access_key_id.is_empty());
            let _ = format!("{creds:?}");
        }
        let _ = profile.endpoint("sts", None, &env);
        let _ = profile.endpoint("iam", None, &env);
        let _ = (profile.region(&env), profile.duration_seconds());
        let _ = (profile.mfa_serial(), profile.ca_bundle(&env));
        if let Some(value) = profile.get("sts") {
            let _ = sub_properties(value);
        }
        let choice = ProfileChoice::new(Some(name), &env);
        match credential_chain::resolve(&files, &choice, &env) {
            Ok(caller) => assert_eq!(caller.profile.name(), name),
            Err(e) => assert!(
                profile.credentials().is_err(),
                "the chain refuses {name:?} ({e}) although it has credentials"
            ),
        }
    }
});

/// A profile file that holds `ini`. `key=value` without spaces, so a value that starts with
/// `#` or `;` is not read back as a comment; CRLF, so a value that ends in `\r` keeps it (the
/// parser drops one `\r` per line).
fn write_ini(ini: &RawIni) -> String {
    let mut out = String::new();
    for (name, properties) in ini.sections() {
        out.push('[');
        out.push_str(name);
        out.push_str("]\r\n");
        for (key, value) in properties.iter() {
            let mut lines = value.split('\n');
            out.push_str(key);
            out.push('=');
            out.push_str(lines.next().unwrap_or_default());
            out.push_str("\r\n");
            for line in lines {
                out.push(' ');
                out.push_str(line);
                out.push_str("\r\n");
            }
        }
    }
    out
}
