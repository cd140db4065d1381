//! The relying party of security keys: its settings (RP ID, origin, attestation policy,
//! challenge lifetime), fixed at start-up, and the serial form that tells a security key
//! from a TOTP device. Shared by the state, the MFA-device family and the security-key
//! family, one floor below them.

use std::net::SocketAddr;

use tokengate_verifier::fido::{RegistrationPolicy, TrustAnchor, YUBICO_U2F_ROOT_CA_PEM};

use crate::config::{SecurityKeyConfig, parse_aaguid};

/// The relying party and the attestation policy, fixed at start-up from
/// [`SecurityKeyConfig`].
#[derive(Debug, Clone)]
pub struct Settings {
    /// The relying-party ID.
    pub rp_id: String,
    /// The origin in clientDataJSON.
    pub origin: String,
    /// What registrations must satisfy.
    pub policy: RegistrationPolicy,
    /// Challenge lifetime, seconds.
    pub challenge_ttl: i64,
    /// The attestation conveyance the portal asks browsers for.
    pub browser_attestation: crate::config::BrowserAttestation,
}

impl Settings {
    /// Reads the trust anchors and builds the policy, for a service listening on `listen`
    /// (the default origin carries its port).
    pub fn from_config(config: &SecurityKeyConfig, listen: SocketAddr) -> Result<Self, String> {
        let mut anchors = Vec::new();
        if config.yubico_root {
            anchors.extend(
                TrustAnchor::from_pem(YUBICO_U2F_ROOT_CA_PEM)
                    .map_err(|e| format!("the shipped Yubico root: {e}"))?,
            );
        }
        for path in &config.trust_anchors {
            let pem = std::fs::read_to_string(path)
                .map_err(|e| format!("security_keys.trust_anchors: {}: {e}", path.display()))?;
            anchors
                .extend(TrustAnchor::from_pem(&pem).map_err(|e| {
                    format!("security_keys.trust_anchors: {}: {e}", path.display())
                })?);
        }
        let allowed_aaguids = (!config.allowed_aaguids.is_empty())
            .then(|| {
                config
                    .allowed_aaguids
                    .iter()
                    .map(|a| parse_aaguid(a).ok_or_else(|| format!("bad AAGUID {a:?}")))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        Ok(Self {
            rp_id: config.rp_id.clone(),
            origin: config.origin_for(listen),
            policy: RegistrationPolicy {
                trust_anchors: anchors,
                allowed_aaguids,
                allow_none_attestation: config.allow_none_attestation,
                ..RegistrationPolicy::default()
            },
            challenge_ttl: i64::from(config.challenge_ttl_secs),
            browser_attestation: config.browser_attestation,
        })
    }
}

/// Whether `serial` is a security key's: `arn:PARTITION:iam::ACCOUNT:u2f/…` (one rule for
/// the service and its clients, in crates/token).
pub use tokengate_token::arn::is_security_key_serial;

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn settings_load_the_trust_anchors_of_the_configuration() {
        let listen = SocketAddr::from(([127, 0, 0, 1], 8787));
        let config = SecurityKeyConfig::default();
        let settings = Settings::from_config(&config, listen).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(settings.rp_id, "tokengate.localhost");
        assert_eq!(settings.origin, "http://tokengate.localhost:8787");
        assert_eq!(settings.challenge_ttl, 120);
        // The shipped Yubico root, and nothing that vouches for itself.
        assert_eq!(settings.policy.trust_anchors.len(), 1);
        assert!(
            settings.policy.trust_anchors[0]
                .subject()
                .contains("Yubico")
        );
        assert!(!settings.policy.allow_none_attestation);
        assert!(!settings.policy.allow_self_attestation);
        assert_eq!(settings.policy.allowed_aaguids, None);

        let dir = std::env::temp_dir().join(format!("tokengate-anchors-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let two_roots = dir.join("two.pem");
        let pem = format!("{YUBICO_U2F_ROOT_CA_PEM}\n{YUBICO_U2F_ROOT_CA_PEM}");
        std::fs::write(&two_roots, pem).unwrap_or_default();
        let bad = dir.join("bad.pem");
        std::fs::write(&bad, "-----BEGIN PRIVATE KEY-----\n").unwrap_or_default();
        let config = SecurityKeyConfig {
            yubico_root: false,
            trust_anchors: vec![two_roots],
            allowed_aaguids: vec!["2fc0579f-8113-47ea-b116-bb5a8db9202a".into()],
            allow_none_attestation: true,
            ..SecurityKeyConfig::default()
        };
        let settings = Settings::from_config(&config, listen).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(settings.policy.trust_anchors.len(), 2);
        assert!(settings.policy.allow_none_attestation);
        assert_eq!(settings.policy.allowed_aaguids.map(|a| a.len()), Some(1));
        for path in [bad, dir.join("missing.pem")] {
            let config = SecurityKeyConfig {
                trust_anchors: vec![path.clone()],
                ..SecurityKeyConfig::default()
            };
            let e = Settings::from_config(&config, listen)
                .err()
                .unwrap_or_default();
            assert!(e.contains(&path.display().to_string()), "{e}");
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
