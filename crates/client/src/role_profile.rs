//! Role profiles: a profile with `role_arn` resolved, as botocore's `AssumeRoleProvider`
//! does (policy.md §6.1), into a plan — where the first credentials come from and which
//! roles to assume, in order, with which parameters.
//!
//! - `source_profile` names the profile whose credentials sign the AssumeRole call. If that
//!   profile has static keys (`aws_access_key_id` / `aws_secret_access_key`) they are used;
//!   otherwise, if it has `role_arn` itself, it is assumed first (a chain).
//! - `credential_source = Environment` takes the keys from the environment. The EC2 and ECS
//!   sources are refused: tokengate has no metadata service.
//! - Both `source_profile` and `credential_source`, neither, a missing source profile, an
//!   unknown credential source, and loops are errors with botocore's texts. A profile may
//!   name itself as its source to use its own static keys.
//! - `duration_seconds` that is not an integer is ignored, as botocore does.
//!
//! Pure functions over the parsed files: no I/O, no prompts, no clock. The caller
//! (`tokengate login`) gets credentials, asks for codes and calls STS.

use crate::aws_config::{Profile, SharedFiles};

/// `credential_source` values botocore knows (`CanonicalNameCredentialSourcer`).
const ENVIRONMENT_SOURCE: &str = "Environment";
/// The metadata-service sources: known to botocore, not available with tokengate.
const METADATA_SOURCES: [&str; 2] = ["Ec2InstanceMetadata", "EcsContainer"];

/// Why a role profile cannot be resolved. The texts are botocore's where botocore has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RoleConfigError {
    /// botocore `InvalidConfigError`.
    #[error("The profile \"{profile}\" contains both source_profile and credential_source.")]
    BothSources {
        /// The role profile.
        profile: String,
    },
    /// botocore `PartialCredentialsError` for `source_profile or credential_source`.
    #[error(
        "Partial credentials found in assume-role, missing: source_profile or \
         credential_source (profile \"{profile}\")"
    )]
    NoSource {
        /// The role profile.
        profile: String,
    },
    /// botocore `InvalidConfigError` from `_validate_source_profile`.
    #[error(
        "The source_profile \"{source_profile}\" referenced in the profile \"{profile}\" does \
         not exist."
    )]
    NoSuchSourceProfile {
        /// The role profile.
        profile: String,
        /// The profile it names.
        source_profile: String,
    },
    /// botocore `InvalidConfigError` from `_validate_credential_source`.
    #[error(
        "The credential source \"{credential_source}\" referenced in profile \"{profile}\" is \
         not valid."
    )]
    InvalidCredentialSource {
        /// The role profile.
        profile: String,
        /// The value.
        credential_source: String,
    },
    /// `Ec2InstanceMetadata` / `EcsContainer`: valid for botocore, but there is no metadata
    /// service to ask.
    #[error(
        "The credential source \"{credential_source}\" referenced in profile \"{profile}\" is \
         not supported by tokengate (it has no instance or container metadata service); use \
         source_profile, or credential_source = Environment"
    )]
    UnsupportedCredentialSource {
        /// The role profile.
        profile: String,
        /// The value.
        credential_source: String,
    },
    /// botocore `InfiniteLoopConfigError`.
    #[error(
        "Infinite loop in credential configuration detected. Attempting to load from profile \
         {source_profile} which has already been visited. Visited profiles: {}",
        python_list(visited)
    )]
    InfiniteLoop {
        /// The profile named a second time.
        source_profile: String,
        /// The profiles visited, in order.
        visited: Vec<String>,
    },
}

/// `['a', 'b']`, as botocore formats its visited-profiles list.
fn python_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("'{i}'")).collect();
    format!("[{}]", quoted.join(", "))
}

/// Where the first credentials of a role chain come from.
#[derive(Debug, Clone, Copy)]
pub enum BaseCredentials<'a> {
    /// The static keys of this profile ([`Profile::credentials`]).
    Profile(Profile<'a>),
    /// `credential_source = Environment`: `AWS_ACCESS_KEY_ID` and friends, named in messages
    /// by the profile that asked for them.
    Environment {
        /// The role profile with the `credential_source`.
        profile: &'a str,
    },
}

/// One AssumeRole call, with the parameters its profile sets.
#[derive(Debug, Clone, Copy)]
pub struct RoleHop<'a> {
    /// The profile with `role_arn`.
    pub profile: Profile<'a>,
    /// `RoleArn`.
    pub role_arn: &'a str,
    /// `RoleSessionName`, if configured (else botocore's `botocore-session-<unix seconds>`,
    /// see [`default_session_name`]).
    pub role_session_name: Option<&'a str>,
    /// `ExternalId`.
    pub external_id: Option<&'a str>,
    /// `SerialNumber`: the device whose code this hop sends.
    pub mfa_serial: Option<&'a str>,
    /// `DurationSeconds`, when `duration_seconds` is an integer (else ignored, as botocore).
    pub duration_seconds: Option<u32>,
}

/// A resolved role profile: the base credentials, then each role to assume with the
/// previous step's credentials; the last hop is the profile asked for.
#[derive(Debug, Clone)]
pub struct RoleChain<'a> {
    /// Where the first credentials come from.
    pub base: BaseCredentials<'a>,
    /// The roles, first assumed first.
    pub hops: Vec<RoleHop<'a>>,
}

/// botocore's session name when none is configured: `botocore-session-<unix seconds>`.
pub fn default_session_name(unix_seconds: i64) -> String {
    format!("botocore-session-{unix_seconds}")
}

/// Whether the profile has `role_arn` (and is therefore resolved by [`resolve`]).
pub fn is_role_profile(profile: &Profile<'_>) -> bool {
    profile.get("role_arn").is_some()
}

/// Whether the profile has static keys (botocore `_has_static_credentials`: either key set).
fn has_static_credentials(profile: &Profile<'_>) -> bool {
    profile.get("aws_access_key_id").is_some() || profile.get("aws_secret_access_key").is_some()
}

/// Resolves the role profile `name` (which must exist) into its chain; `None` when it has
/// no `role_arn`.
pub fn resolve<'a>(
    files: &'a SharedFiles,
    name: &'a str,
) -> Result<Option<RoleChain<'a>>, RoleConfigError> {
    let mut current = files.profile_or_empty(name);
    if !is_role_profile(&current) {
        return Ok(None);
    }
    let mut visited = vec![name.to_owned()];
    let mut hops = Vec::new();
    let base = loop {
        hops.push(role_hop(current));
        let source_profile = current.get("source_profile");
        let credential_source = current.get("credential_source");
        let source_profile = match (source_profile, credential_source) {
            (Some(_), Some(_)) => {
                return Err(RoleConfigError::BothSources {
                    profile: current.name().to_owned(),
                });
            }
            (None, None) => {
                return Err(RoleConfigError::NoSource {
                    profile: current.name().to_owned(),
                });
            }
            (None, Some(source)) => break credential_source_base(current.name(), source)?,
            (Some(source_profile), None) => source_profile,
        };
        let source = files.profile_or_empty(source_profile);
        if !source.exists() {
            return Err(RoleConfigError::NoSuchSourceProfile {
                profile: current.name().to_owned(),
                source_profile: source_profile.to_owned(),
            });
        }
        if visited.iter().any(|v| v == source_profile) {
            // A profile may name itself, to use its own static keys (botocore
            // `_validate_source_profile`); anything else seen before is a loop.
            if source_profile != current.name() || !has_static_credentials(&source) {
                return Err(RoleConfigError::InfiniteLoop {
                    source_profile: source_profile.to_owned(),
                    visited,
                });
            }
        }
        visited.push(source_profile.to_owned());
        if has_static_credentials(&source) || !is_role_profile(&source) {
            // Without keys or a role, Profile::credentials says what is missing.
            break BaseCredentials::Profile(source);
        }
        current = source;
    };
    hops.reverse();
    Ok(Some(RoleChain { base, hops }))
}

fn credential_source_base<'a>(
    profile: &'a str,
    source: &str,
) -> Result<BaseCredentials<'a>, RoleConfigError> {
    if source == ENVIRONMENT_SOURCE {
        Ok(BaseCredentials::Environment { profile })
    } else if METADATA_SOURCES.contains(&source) {
        Err(RoleConfigError::UnsupportedCredentialSource {
            profile: profile.to_owned(),
            credential_source: source.to_owned(),
        })
    } else {
        Err(RoleConfigError::InvalidCredentialSource {
            profile: profile.to_owned(),
            credential_source: source.to_owned(),
        })
    }
}

fn role_hop(profile: Profile<'_>) -> RoleHop<'_> {
    RoleHop {
        profile,
        // Only called for profiles with role_arn; "" would be refused by the service.
        role_arn: profile.get("role_arn").unwrap_or_default(),
        role_session_name: profile.get("role_session_name"),
        external_id: profile.get("external_id"),
        mfa_serial: profile.mfa_serial(),
        duration_seconds: profile
            .get("duration_seconds")
            .and_then(|v| v.trim().parse().ok()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::path::PathBuf;

    use super::*;

    fn files(config: &str, credentials: &str) -> SharedFiles {
        SharedFiles::from_texts(
            PathBuf::from("/h/.aws/config"),
            config,
            PathBuf::from("/h/.aws/credentials"),
            credentials,
        )
        .unwrap()
    }

    const BASE_KEYS: &str = "[base]\naws_access_key_id = AKIABASE\naws_secret_access_key = b\n";

    fn base_name(chain: &RoleChain<'_>) -> String {
        match chain.base {
            BaseCredentials::Profile(p) => p.name().to_owned(),
            BaseCredentials::Environment { profile } => format!("env of {profile}"),
        }
    }

    fn arns<'a>(chain: &RoleChain<'a>) -> Vec<&'a str> {
        chain.hops.iter().map(|h| h.role_arn).collect()
    }

    #[test]
    fn a_profile_without_role_arn_is_not_a_role_profile() {
        let f = files("[profile base]\nregion = x\n", BASE_KEYS);
        assert!(resolve(&f, "base").unwrap().is_none());
        assert!(resolve(&f, "missing").unwrap().is_none());
    }

    #[test]
    fn source_profile_gives_the_keys_and_the_parameters_come_from_the_profile() {
        let f = files(
            "[profile admin]\nrole_arn = arn:aws:iam::000000000000:role/admin\n\
             source_profile = base\nmfa_serial = arn:aws:iam::000000000000:mfa/ann\n\
             external_id = ext\nrole_session_name = me\nduration_seconds = 1800\n",
            BASE_KEYS,
        );
        let chain = resolve(&f, "admin").unwrap().unwrap();
        assert_eq!(base_name(&chain), "base");
        let [hop] = chain.hops.as_slice() else {
            panic!("one hop")
        };
        assert_eq!(hop.profile.name(), "admin");
        assert_eq!(hop.role_arn, "arn:aws:iam::000000000000:role/admin");
        assert_eq!(hop.role_session_name, Some("me"));
        assert_eq!(hop.external_id, Some("ext"));
        assert_eq!(hop.mfa_serial, Some("arn:aws:iam::000000000000:mfa/ann"));
        assert_eq!(hop.duration_seconds, Some(1800));
    }

    #[test]
    fn defaults_and_a_duration_that_is_not_an_integer() {
        let f = files(
            "[profile admin]\nrole_arn = arn:r\nsource_profile = base\n\
             duration_seconds = 1h\n",
            BASE_KEYS,
        );
        let chain = resolve(&f, "admin").unwrap().unwrap();
        let hop = chain.hops[0];
        assert_eq!(
            (
                hop.role_session_name,
                hop.external_id,
                hop.mfa_serial,
                hop.duration_seconds
            ),
            (None, None, None, None)
        );
        assert_eq!(
            default_session_name(1_700_000_000),
            "botocore-session-1700000000"
        );
    }

    #[test]
    fn a_source_profile_with_a_role_is_assumed_first() {
        let f = files(
            "[profile c]\nrole_arn = arn:c\nsource_profile = b\n\
             [profile b]\nrole_arn = arn:b\nsource_profile = a\n\
             [profile a]\nrole_arn = arn:a\nsource_profile = base\n",
            BASE_KEYS,
        );
        let chain = resolve(&f, "c").unwrap().unwrap();
        assert_eq!(base_name(&chain), "base");
        assert_eq!(arns(&chain), ["arn:a", "arn:b", "arn:c"]);
    }

    #[test]
    fn static_keys_win_over_a_role_in_a_source_profile() {
        let f = files(
            "[profile admin]\nrole_arn = arn:admin\nsource_profile = base\n\
             [profile base]\nrole_arn = arn:ignored\nsource_profile = nowhere\n",
            BASE_KEYS,
        );
        let chain = resolve(&f, "admin").unwrap().unwrap();
        assert_eq!(base_name(&chain), "base");
        assert_eq!(arns(&chain), ["arn:admin"]);
    }

    #[test]
    fn a_profile_may_name_itself_for_its_own_keys() {
        let f = files(
            "[profile me]\nrole_arn = arn:me\nsource_profile = me\n",
            "[me]\naws_access_key_id = AKIAME\naws_secret_access_key = m\n",
        );
        let chain = resolve(&f, "me").unwrap().unwrap();
        assert_eq!(base_name(&chain), "me");
        assert_eq!(arns(&chain), ["arn:me"]);
    }

    #[test]
    fn loops_have_botocores_text() {
        let f = files("[profile me]\nrole_arn = arn:me\nsource_profile = me\n", "");
        assert_eq!(
            resolve(&f, "me").unwrap_err().to_string(),
            "Infinite loop in credential configuration detected. Attempting to load from \
             profile me which has already been visited. Visited profiles: ['me']"
        );
        let f = files(
            "[profile a]\nrole_arn = arn:a\nsource_profile = b\n\
             [profile b]\nrole_arn = arn:b\nsource_profile = c\n\
             [profile c]\nrole_arn = arn:c\nsource_profile = a\n",
            "",
        );
        let err = resolve(&f, "a").unwrap_err();
        assert_eq!(
            err,
            RoleConfigError::InfiniteLoop {
                source_profile: "a".into(),
                visited: vec!["a".into(), "b".into(), "c".into()],
            }
        );
        assert!(
            err.to_string().ends_with(
                "profile a which has already been visited. Visited profiles: \
                            ['a', 'b', 'c']"
            ),
            "{err}"
        );
        // Static keys end the walk before the loop closes.
        let f = files(
            "[profile a]\nrole_arn = arn:a\nsource_profile = b\n\
             [profile b]\nrole_arn = arn:b\nsource_profile = a\n",
            "[a]\naws_access_key_id = AKIAA\naws_secret_access_key = a\n",
        );
        assert!(matches!(
            resolve(&f, "b").unwrap(),
            Some(RoleChain {
                base: BaseCredentials::Profile(_),
                ..
            })
        ));
        let f = files(
            "[profile a]\nrole_arn = arn:a\nsource_profile = b\n\
             [profile b]\nrole_arn = arn:b\nsource_profile = a\n",
            "",
        );
        assert!(matches!(
            resolve(&f, "a").unwrap_err(),
            RoleConfigError::InfiniteLoop { .. }
        ));
    }

    #[test]
    fn both_or_neither_source_and_missing_source_profiles() {
        let f = files(
            "[profile x]\nrole_arn = arn:x\nsource_profile = base\n\
             credential_source = Environment\n\
             [profile none]\nrole_arn = arn:n\n\
             [profile lost]\nrole_arn = arn:l\nsource_profile = gone\n",
            BASE_KEYS,
        );
        assert_eq!(
            resolve(&f, "x").unwrap_err().to_string(),
            "The profile \"x\" contains both source_profile and credential_source."
        );
        assert!(
            resolve(&f, "none")
                .unwrap_err()
                .to_string()
                .contains("source_profile or credential_source")
        );
        assert_eq!(
            resolve(&f, "lost").unwrap_err().to_string(),
            "The source_profile \"gone\" referenced in the profile \"lost\" does not exist."
        );
    }

    #[test]
    fn credential_sources() {
        let f = files(
            "[profile env]\nrole_arn = arn:e\ncredential_source = Environment\n\
             [profile ec2]\nrole_arn = arn:e\ncredential_source = Ec2InstanceMetadata\n\
             [profile ecs]\nrole_arn = arn:e\ncredential_source = EcsContainer\n\
             [profile odd]\nrole_arn = arn:e\ncredential_source = environment\n\
             [profile top]\nrole_arn = arn:top\nsource_profile = env\n",
            "",
        );
        let chain = resolve(&f, "env").unwrap().unwrap();
        assert_eq!(base_name(&chain), "env of env");
        let chain = resolve(&f, "top").unwrap().unwrap();
        assert_eq!(base_name(&chain), "env of env");
        assert_eq!(arns(&chain), ["arn:e", "arn:top"]);
        for p in ["ec2", "ecs"] {
            let err = resolve(&f, p).unwrap_err();
            assert!(
                matches!(err, RoleConfigError::UnsupportedCredentialSource { .. }),
                "{err}"
            );
            assert!(
                err.to_string()
                    .contains("no instance or container metadata")
            );
        }
        assert_eq!(
            resolve(&f, "odd").unwrap_err().to_string(),
            "The credential source \"environment\" referenced in profile \"odd\" is not valid."
        );
    }
}
