//! RFC 6238 Appendix B vectors (tests/data/rfc6238_appendix_b.txt), and each one tampered.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use tokengate_verifier::totp::{Generator, TotpAlgorithm, TotpParams, TotpState, Verdict, verify};

fn seed(algorithm: TotpAlgorithm) -> &'static [u8] {
    match algorithm {
        TotpAlgorithm::Sha1 => b"12345678901234567890",
        TotpAlgorithm::Sha256 => b"12345678901234567890123456789012",
        TotpAlgorithm::Sha512 => {
            b"1234567890123456789012345678901234567890123456789012345678901234"
        }
    }
}

fn vectors() -> Vec<(i64, TotpAlgorithm, String)> {
    include_str!("data/rfc6238_appendix_b.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[0].parse().unwrap(),
                TotpAlgorithm::parse(f[1]).unwrap(),
                f[2].to_owned(),
            )
        })
        .collect()
}

#[test]
fn appendix_b_codes() {
    let v = vectors();
    assert_eq!(v.len(), 18);
    for (time, algorithm, code) in v {
        let params = TotpParams::new(algorithm, 8, 30).unwrap();
        let generator = Generator::new(seed(algorithm), params);
        assert_eq!(
            generator.code(params.step_at(time)),
            code,
            "{time} {algorithm:?}"
        );
        let verdict = verify(seed(algorithm), &params, &TotpState::default(), &code, time);
        assert_eq!(
            verdict,
            Verdict::Accepted {
                step: params.step_at(time)
            },
            "{time} {algorithm:?}"
        );
    }
}

#[test]
fn appendix_b_tampered() {
    for (time, algorithm, code) in vectors() {
        let params = TotpParams::new(algorithm, 8, 30).unwrap();
        let s = TotpState::default();
        // One digit changed.
        let mut bad = code.clone().into_bytes();
        bad[7] = if bad[7] == b'9' { b'0' } else { bad[7] + 1 };
        let bad = String::from_utf8(bad).unwrap();
        assert!(matches!(
            verify(seed(algorithm), &params, &s, &bad, time),
            Verdict::Refused(_)
        ));
        // Two steps later.
        assert!(matches!(
            verify(seed(algorithm), &params, &s, &code, time + 61),
            Verdict::Refused(_)
        ));
        // Another seed.
        let mut other = seed(algorithm).to_vec();
        other[0] ^= 1;
        assert!(matches!(
            verify(&other, &params, &s, &code, time),
            Verdict::Refused(_)
        ));
        // The wrong algorithm.
        let wrong = match algorithm {
            TotpAlgorithm::Sha1 => TotpAlgorithm::Sha256,
            _ => TotpAlgorithm::Sha1,
        };
        let wrong = TotpParams::new(wrong, 8, 30).unwrap();
        assert!(matches!(
            verify(seed(algorithm), &wrong, &s, &code, time),
            Verdict::Refused(_)
        ));
        // A 6-digit device does not take the 8-digit code, but takes its last six digits.
        let six = TotpParams::new(algorithm, 6, 30).unwrap();
        assert!(matches!(
            verify(seed(algorithm), &six, &s, &code, time),
            Verdict::Refused(_)
        ));
        assert!(matches!(
            verify(seed(algorithm), &six, &s, &code[2..], time),
            Verdict::Accepted { .. }
        ));
    }
}
