//! A new virtual MFA device shown to the person enrolling it: the `otpauth://` Key URI an
//! authenticator app reads (the binary draws it as a QR code in the terminal).
//!
//! The URI is the one the service puts in CreateVirtualMFADevice's `QRCodePNG`
//! (sts-iam.md §3): `otpauth://totp/NAME@ACCOUNT?secret=…`, with no algorithm, digits or
//! period parameters, so apps use SHA-1 / 6 digits / 30 s. Building it here rather than in
//! the server crate keeps the client free of it (a client-only build, docs/login.md).

/// `otpauth://totp/{name}@{account}?secret={base32}` with the label percent-encoded
/// (RFC 3986 unreserved characters and `@` kept).
pub fn uri(device_name: &str, account: &str, base32_seed: &str) -> String {
    let label = format!("{device_name}@{account}");
    let mut encoded = String::with_capacity(label.len());
    for b in label.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("otpauth://totp/{encoded}?secret={base32_seed}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_percent_encodes_the_label() {
        assert_eq!(
            uri("alice phone", "000000000000", "JBSWY3DPEHPK3PXP"),
            "otpauth://totp/alice%20phone@000000000000?secret=JBSWY3DPEHPK3PXP"
        );
        assert_eq!(
            uri("a/b+c", "1", "S"),
            "otpauth://totp/a%2Fb%2Bc@1?secret=S"
        );
    }
}
