//! The otpauth URI of a virtual MFA device and its QR code as a PNG, as AWS's
//! CreateVirtualMFADevice returns them (sts-iam.md §3): `otpauth://totp/NAME@ACCOUNT?secret=…`
//! (Key URI format; no algorithm/digits/period, so SHA-1 / 6 / 30).
//!
//! The PNG is written here (8-bit greyscale, stored deflate blocks) rather than through an
//! image library: it is a few dozen lines and keeps the dependency tree small.

use qrcode::{Color, QrCode};

/// Pixels per QR module.
const SCALE: usize = 6;
/// Quiet zone, in modules (ISO/IEC 18004 asks for 4).
const BORDER: usize = 4;

pub use tokengate_verifier::totp::otpauth_uri;

/// The QR code of `text` as PNG bytes.
pub fn png(text: &str) -> Result<Vec<u8>, qrcode::types::QrError> {
    let code = QrCode::new(text.as_bytes())?;
    let modules = code.width();
    let colors = code.to_colors();
    let side = (modules + 2 * BORDER) * SCALE;
    let mut raw = Vec::with_capacity(side * (side + 1));
    for y in 0..side {
        raw.push(0); // filter: none
        let my = (y / SCALE).checked_sub(BORDER);
        for x in 0..side {
            let mx = (x / SCALE).checked_sub(BORDER);
            let dark = match (mx, my) {
                (Some(mx), Some(my)) if mx < modules && my < modules => {
                    colors.get(my * modules + mx) == Some(&Color::Dark)
                }
                _ => false,
            };
            raw.push(if dark { 0 } else { 255 });
        }
    }
    let width = u32::try_from(side).unwrap_or(u32::MAX);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit, greyscale, deflate, filter 0, no interlace
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &zlib_stored(&raw));
    chunk(&mut out, b"IEND", &[]);
    Ok(out)
}

/// The QR code of `text` as an inline SVG element for the portal's enrol page: one
/// `<path>` of unit squares in a view box with the quiet zone, no script, no external
/// reference (so the page's CSP needs no `img-src data:`). The caller gives the label read
/// by screen readers; it is escaped here.
pub fn svg(text: &str, label: &str) -> Result<String, qrcode::types::QrError> {
    use std::fmt::Write as _;
    let code = QrCode::new(text.as_bytes())?;
    let modules = code.width();
    let colors = code.to_colors();
    let side = modules + 2 * BORDER;
    let mut path = String::with_capacity(colors.len() * 8);
    for (i, color) in colors.iter().enumerate() {
        if *color == Color::Dark {
            let (x, y) = (i % modules + BORDER, i / modules + BORDER);
            // Writing to a String cannot fail.
            let _ = write!(path, "M{x} {y}h1v1h-1z");
        }
    }
    let label: String = label
        .chars()
        .map(|c| match c {
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '&' => "&amp;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect();
    Ok(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {side} {side}\" \
         width=\"{px}\" height=\"{px}\" role=\"img\" aria-label=\"{label}\" \
         shape-rendering=\"crispEdges\"><rect width=\"{side}\" height=\"{side}\" \
         fill=\"#fff\"/><path fill=\"#000\" d=\"{path}\"/></svg>",
        px = side * SCALE,
    ))
}

/// The QR code of `text` for a terminal, two modules per character row.
pub fn terminal(text: &str) -> Result<String, qrcode::types::QrError> {
    let code = QrCode::new(text.as_bytes())?;
    Ok(code
        .render::<qrcode::render::unicode::Dense1x2>()
        .dark_color(qrcode::render::unicode::Dense1x2::Light)
        .light_color(qrcode::render::unicode::Dense1x2::Dark)
        .build())
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&u32::try_from(data.len()).unwrap_or(u32::MAX).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// zlib (RFC 1950) around stored deflate blocks (RFC 1951 §3.2.4).
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let mut blocks = data.chunks(0xffff).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(block) = blocks.next() {
        out.push(u8::from(blocks.peek().is_none()));
        let len = u16::try_from(block.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out.extend_from_slice(&adler32(data).to_be_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_match_known_values() {
        assert_eq!(crc32(b"IEND"), 0xae42_6082);
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(adler32(b"Wikipedia"), 0x11e6_0398);
    }

    #[test]
    fn png_is_well_formed() {
        let uri = otpauth_uri("alice phone", "000000000000", "JBSWY3DPEHPK3PXP");
        assert_eq!(
            uri,
            "otpauth://totp/alice%20phone@000000000000?secret=JBSWY3DPEHPK3PXP"
        );
        let png = png(&uri).unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
        assert_eq!(&png[12..16], b"IHDR");
        assert!(png.ends_with(&[0xae, 0x42, 0x60, 0x82]));
        let svg = svg(&uri, "QR <code> & \"x\"").unwrap();
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>"));
        assert!(svg.contains("aria-label=\"QR &lt;code&gt; &amp; &quot;x&quot;\""));
        assert!(!svg.contains("<script") && !svg.contains("href"));
        // Same modules as the PNG: count the dark squares both ways.
        let code = QrCode::new(uri.as_bytes()).unwrap();
        let dark = code
            .to_colors()
            .iter()
            .filter(|c| **c == Color::Dark)
            .count();
        assert_eq!(svg.matches("h1v1h-1z").count(), dark);
        let text = terminal(&uri).unwrap();
        assert!(text.lines().count() > 10);
    }
}
