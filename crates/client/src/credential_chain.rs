//! The credential chain: which long-term credentials a tokengate command signs with, in the
//! order the AWS CLI uses (botocore `credentials.py`, `create_credential_resolver`):
//!
//! 1. A profile named on the command line (`--profile NAME`) is used as it is: the
//!    environment's keys are not looked at (botocore removes its environment provider when a
//!    profile is given explicitly).
//! 2. Otherwise `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`, or the
//!    legacy `AWS_SECURITY_TOKEN`) from the environment, when both are set.
//!    `AWS_ACCESS_KEY_ID` alone is an error, never silently skipped.
//! 3. Otherwise the keys of the profile `AWS_PROFILE` names, else of `default`, from the
//!    credentials file first, then the config file ([`Profile::credentials`]).
//!
//! A profile that `--profile` or `AWS_PROFILE` names must exist in one of the files (botocore
//! `ProfileNotFound`); `default` may be missing when the environment has the keys. The other
//! settings (endpoint, region, `mfa_serial`) always come from the chosen profile and the
//! environment, whichever step supplied the keys.
//!
//! Commands that also take `--root-credentials FILE` read that file first; that choice is
//! theirs, before this chain.

use std::fmt;

use tokengate_token::secret::Secret;

use crate::aws_config::{
    ConfigError, Env, Profile, ProfileChoice, ProfileNamedBy, SharedFiles, StaticCredentials,
    env_value,
};
use crate::sts_client::StsClient;

/// Where a command's credentials came from (for messages: "signing as … from …").
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CredentialSource {
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` in the environment.
    Environment,
    /// The named profile in the shared files.
    Profile(String),
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Environment => f.write_str("the environment (AWS_ACCESS_KEY_ID)"),
            Self::Profile(name) => write!(f, "profile `{name}`"),
        }
    }
}

/// The outcome of the chain: the profile whose settings apply, the credentials to sign
/// with, and where those came from. `Debug` shows the access key id only.
#[derive(Debug)]
pub struct Caller<'a> {
    /// The chosen profile (possibly without any section, see the module docs).
    pub profile: Profile<'a>,
    /// The credentials to sign with.
    pub credentials: StaticCredentials,
    /// Where they came from.
    pub source: CredentialSource,
}

/// Runs the chain for `choice` over `files` and `env` (see the module docs for the order).
pub fn resolve<'a>(
    files: &'a SharedFiles,
    choice: &'a ProfileChoice,
    env: &impl Env,
) -> Result<Caller<'a>, ConfigError> {
    let profile = files.profile_or_empty(&choice.name);
    if choice.named_by != ProfileNamedBy::Default && !profile.exists() {
        // The NoSuchProfile error, with its hint about `[NAME]` in the config file.
        files.profile(&choice.name)?;
    }
    if choice.named_by != ProfileNamedBy::CommandLine
        && let Some(credentials) = environment_credentials(env)?
    {
        return Ok(Caller {
            profile,
            credentials,
            source: CredentialSource::Environment,
        });
    }
    if !profile.exists() {
        return Err(ConfigError::NoSuchProfile {
            profile: choice.name.clone(),
            config: files.config_path().to_owned(),
            credentials: files.credentials_path().to_owned(),
            hint: ", and AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are not set".to_owned(),
        });
    }
    Ok(Caller {
        credentials: profile.credentials()?,
        source: CredentialSource::Profile(choice.name.clone()),
        profile,
    })
}

/// The environment's keys, when `AWS_ACCESS_KEY_ID` is set (empty counts as unset).
pub fn environment_credentials(env: &impl Env) -> Result<Option<StaticCredentials>, ConfigError> {
    let Some(access_key_id) = env_value(env, "AWS_ACCESS_KEY_ID") else {
        return Ok(None);
    };
    let secret = env_value(env, "AWS_SECRET_ACCESS_KEY")
        .ok_or(ConfigError::PartialEnvironmentCredentials)?;
    let session_token =
        env_value(env, "AWS_SESSION_TOKEN").or_else(|| env_value(env, "AWS_SECURITY_TOKEN"));
    Ok(Some(StaticCredentials {
        access_key_id,
        secret_access_key: Secret::from(secret),
        session_token: session_token.map(Secret::from),
    }))
}

impl Caller<'_> {
    /// A client for `service` (`sts`, `iam`) signing with these credentials: the profile's
    /// endpoint for that service (`command_line` first; see [`Profile::endpoint`]), its
    /// region and CA bundle.
    pub fn client(
        self,
        service: &str,
        command_line: Option<&str>,
        env: &impl Env,
    ) -> Result<StsClient, crate::Error> {
        let endpoint = self
            .profile
            .endpoint(service, command_line, env)
            .ok_or_else(|| crate::Error::NoEndpoint {
                profile: self.profile.name().to_owned(),
                config: self.profile.files().config_path().to_owned(),
                service: service.to_owned(),
            })?;
        Ok(StsClient::new(
            &endpoint.url,
            &self.profile.region(env),
            self.credentials,
            self.profile.ca_bundle(env).as_deref(),
        )?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::HashMap;
    use std::path::PathBuf;

    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Env + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name: &str| map.get(name).cloned()
    }

    fn files(credentials: &str) -> SharedFiles {
        SharedFiles::from_texts(
            PathBuf::from("/h/.aws/config"),
            "[profile dev]\nregion = eu-west-1\n[profile bare]\nregion = eu-west-2\n",
            PathBuf::from("/h/.aws/credentials"),
            credentials,
        )
        .unwrap()
    }

    const KEYS: &str = "[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = d\n\
                        [dev]\naws_access_key_id = AKIADEV\naws_secret_access_key = v\n";
    const ENV_KEYS: &[(&str, &str)] = &[
        ("AWS_ACCESS_KEY_ID", "AKIAENV"),
        ("AWS_SECRET_ACCESS_KEY", "e"),
    ];

    fn run(
        files: &SharedFiles,
        flag: Option<&str>,
        env: &[(&str, &str)],
    ) -> Result<(String, String, CredentialSource), ConfigError> {
        let env = env_of(env);
        let choice = ProfileChoice::new(flag, &env);
        let caller = resolve(files, &choice, &env)?;
        Ok((
            caller.profile.name().to_owned(),
            caller.credentials.access_key_id.clone(),
            caller.source,
        ))
    }

    #[test]
    fn environment_keys_come_before_the_default_profile() {
        let files = files(KEYS);
        let (profile, key, source) = run(&files, None, ENV_KEYS).unwrap();
        assert_eq!((profile.as_str(), key.as_str()), ("default", "AKIAENV"));
        assert_eq!(source, CredentialSource::Environment);
        let (_, key, source) = run(&files, None, &[]).unwrap();
        assert_eq!(key, "AKIADEFAULT");
        assert_eq!(source, CredentialSource::Profile("default".into()));
    }

    #[test]
    fn environment_keys_come_before_aws_profile_but_not_before_the_flag() {
        let files = files(KEYS);
        let with_profile = [ENV_KEYS, &[("AWS_PROFILE", "dev")]].concat();
        let (profile, key, _) = run(&files, None, &with_profile).unwrap();
        assert_eq!((profile.as_str(), key.as_str()), ("dev", "AKIAENV"));
        let (profile, key, source) = run(&files, Some("dev"), ENV_KEYS).unwrap();
        assert_eq!((profile.as_str(), key.as_str()), ("dev", "AKIADEV"));
        assert_eq!(source, CredentialSource::Profile("dev".into()));
        let (_, key, _) = run(&files, None, &[("AWS_PROFILE", "dev")]).unwrap();
        assert_eq!(key, "AKIADEV");
    }

    #[test]
    fn environment_keys_need_no_files_and_carry_the_session_token() {
        let files = files("");
        let with_token = [ENV_KEYS, &[("AWS_SESSION_TOKEN", "tok")]].concat();
        let env = env_of(&with_token);
        let choice = ProfileChoice::new(None, &env);
        let caller = resolve(&files, &choice, &env).unwrap();
        assert!(!caller.profile.exists());
        let token = caller.credentials.session_token.as_ref().unwrap();
        assert_eq!(token.expose_str(), Some("tok"));
        let legacy = [ENV_KEYS, &[("AWS_SECURITY_TOKEN", "old")]].concat();
        let env = env_of(&legacy);
        let caller = resolve(&files, &choice, &env).unwrap();
        let token = caller.credentials.session_token.as_ref().unwrap();
        assert_eq!(token.expose_str(), Some("old"));
    }

    #[test]
    fn named_profiles_must_exist_and_missing_keys_say_where_to_put_them() {
        let files = files(KEYS);
        let err = run(&files, Some("nope"), ENV_KEYS).unwrap_err();
        assert!(matches!(err, ConfigError::NoSuchProfile { .. }), "{err}");
        let env_named = [ENV_KEYS, &[("AWS_PROFILE", "nope")]].concat();
        let err = run(&files, None, &env_named).unwrap_err();
        assert!(matches!(err, ConfigError::NoSuchProfile { .. }), "{err}");
        let err = run(&files, Some("bare"), ENV_KEYS).unwrap_err();
        assert!(matches!(err, ConfigError::NoCredentials { .. }), "{err}");

        let empty = self::files("");
        let err = run(&empty, None, &[]).unwrap_err().to_string();
        assert!(err.contains("profile `default` is not in"), "{err}");
        assert!(err.contains("AWS_ACCESS_KEY_ID"), "{err}");
    }

    #[test]
    fn half_of_the_environment_pair_is_an_error() {
        let files = files(KEYS);
        let err = run(&files, None, &[("AWS_ACCESS_KEY_ID", "AKIAENV")]).unwrap_err();
        assert!(
            matches!(err, ConfigError::PartialEnvironmentCredentials),
            "{err}"
        );
        // A secret alone is not a key pair: the profile's keys are used.
        let (_, key, _) = run(&files, None, &[("AWS_SECRET_ACCESS_KEY", "e")]).unwrap();
        assert_eq!(key, "AKIADEFAULT");
        // Empty values count as unset.
        let (_, key, _) = run(
            &files,
            None,
            &[("AWS_ACCESS_KEY_ID", ""), ("AWS_SECRET_ACCESS_KEY", "")],
        )
        .unwrap();
        assert_eq!(key, "AKIADEFAULT");
    }

    #[test]
    fn the_client_uses_the_profile_settings_with_environment_keys() {
        let files = files("");
        let env = env_of(ENV_KEYS);
        let choice = ProfileChoice::new(None, &env);
        let caller = resolve(&files, &choice, &env).unwrap();
        let err = caller.client("iam", None, &env).unwrap_err().to_string();
        assert!(
            err.contains("no tokengate endpoint for profile `default`"),
            "{err}"
        );
        let caller = resolve(&files, &choice, &env).unwrap();
        let client = caller
            .client("iam", Some("http://127.0.0.1:1"), &env)
            .unwrap();
        assert_eq!(client.access_key_id(), "AKIAENV");
    }
}
