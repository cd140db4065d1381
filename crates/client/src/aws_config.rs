//! The AWS shared config and credentials files (`~/.aws/config`, `~/.aws/credentials`), read
//! the way the AWS SDKs read them, and the settings a tokengate client takes from a profile:
//! long-term credentials, `mfa_serial`, endpoint, region, `duration_seconds`, `ca_bundle`.
//!
//! The file format follows the SDKs' shared profile-file rules (the parser test suite that
//! smithy-rs runs in `aws-runtime/src/env_config/parse.rs` and `normalize.rs`):
//!
//! - Whitespace is space and tab only. A line that starts with `#` or `;` is a comment; so is
//!   the rest of a property line from a `#`/`;` that follows whitespace (`k = v ; note`), and
//!   the rest of a section line from any `#`/`;`.
//! - `[name]` starts a section; `key = value` sets a property (the key is trimmed and
//!   lower-cased, the value trimmed); a line that starts with whitespace continues the
//!   previous property. A property whose value is empty and that is continued holds
//!   sub-properties (`sts =` then `  endpoint_url = …`).
//! - A section seen twice is merged; a key seen twice keeps its last value. Section names are
//!   case-sensitive.
//! - In the config file a profile is `[profile NAME]` or `[default]`; `[profile default]`
//!   replaces `[default]` when both exist; `[services NAME]` holds per-service settings; any
//!   other unprefixed `[NAME]` is ignored. In the credentials file a profile is `[NAME]`, and a
//!   prefixed section is ignored. Names and keys outside `[A-Za-z0-9_\-/.%@:+]+` are ignored.
//! - Anything else (a property before any section, a line without `=`, an unterminated `[`)
//!   is an error with its line number: a config that half-parses is not guessed at.
//!
//! Environment is passed in as a lookup function, so precedence is tested without touching
//! the process environment.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use tokengate_token::secret::Secret;

/// The profile used when neither `--profile` nor `AWS_PROFILE` names one.
pub const DEFAULT_PROFILE: &str = "default";
/// The region used for the SigV4 scope when none is configured (DESIGN.md: AWS defaults).
pub const DEFAULT_REGION: &str = "us-east-1";

/// Profile-file whitespace: space and tab only (the SDK parser's `WHITESPACE`).
const WHITESPACE: &[char] = &[' ', '\t'];
/// Comment characters.
const COMMENT: &[char] = &['#', ';'];
/// `[profile NAME]` in the config file.
const PROFILE_PREFIX: &str = "profile";
/// `[services NAME]` in the config file.
const SERVICES_PREFIX: &str = "services";

/// A lookup in the process environment (`|name| std::env::var(name).ok()` in the binary).
pub trait Env: Fn(&str) -> Option<String> {}
impl<F: Fn(&str) -> Option<String>> Env for F {}

/// An environment variable's value, when it is set and not empty.
pub(crate) fn env_value(env: &impl Env, name: &str) -> Option<String> {
    env(name).filter(|v| !v.is_empty())
}

// ----- Errors ---------------------------------------------------------------------------------

/// A syntax error in a profile file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct IniError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: &'static str,
}

/// Why the profile's settings cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A file exists but cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file does not parse.
    #[error("{}: {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Where and why.
        source: IniError,
    },
    /// Neither file has the profile.
    #[error(
        "profile `{profile}` is not in {} or {}{hint}",
        config.display(),
        credentials.display()
    )]
    NoSuchProfile {
        /// The profile asked for.
        profile: String,
        /// The config file.
        config: PathBuf,
        /// The credentials file.
        credentials: PathBuf,
        /// Extra advice (may be empty).
        hint: String,
    },
    /// The profile has no long-term credentials.
    #[error(
        "profile `{profile}` has no credentials: put aws_access_key_id and \
         aws_secret_access_key in [{profile}] of {} (or in the profile's section of {})",
        credentials.display(),
        config.display()
    )]
    NoCredentials {
        /// The profile.
        profile: String,
        /// The config file.
        config: PathBuf,
        /// The credentials file.
        credentials: PathBuf,
    },
    /// `AWS_ACCESS_KEY_ID` is set in the environment but `AWS_SECRET_ACCESS_KEY` is not
    /// (botocore's `PartialCredentialsError`).
    #[error(
        "AWS_ACCESS_KEY_ID is set in the environment but AWS_SECRET_ACCESS_KEY is not: set \
         both, or unset AWS_ACCESS_KEY_ID to use a profile's keys"
    )]
    PartialEnvironmentCredentials,
    /// The profile has only half of a key pair, or another unusable value.
    #[error("profile `{profile}` in {}: {message}", path.display())]
    Invalid {
        /// The profile.
        profile: String,
        /// The file the value came from.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

// ----- The raw INI layer ----------------------------------------------------------------------

/// Properties of one section: lower-cased keys to values. `Debug` lists the keys only, since
/// values include secret access keys.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Properties(BTreeMap<String, String>);

impl Properties {
    /// Every (key, value), keys sorted.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The value of `key` (give it lower-case), when set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn merge_from(&mut self, other: &Properties) {
        for (key, value) in &other.0 {
            if is_identifier(key) {
                self.0.insert(key.clone(), value.clone());
            }
        }
    }
}

impl fmt::Debug for Properties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// A profile file as written: raw section names (inside the brackets) in order of first
/// appearance, each with its merged properties.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RawIni {
    sections: Vec<(String, Properties)>,
}

impl RawIni {
    /// The raw sections in file order.
    pub fn sections(&self) -> impl Iterator<Item = (&str, &Properties)> {
        self.sections
            .iter()
            .map(|(name, props)| (name.as_str(), props))
    }

    fn section_index(&mut self, name: &str) -> usize {
        match self.sections.iter().position(|(n, _)| n == name) {
            Some(index) => index,
            None => {
                self.sections.push((name.to_owned(), Properties::default()));
                self.sections.len() - 1
            }
        }
    }
}

/// Where the parser is: in which section, continuing which property.
struct Cursor {
    section: usize,
    property: Option<String>,
    has_sub_properties: bool,
}

/// Parses a profile file (see the module docs for the rules).
pub fn parse_ini(text: &str) -> Result<RawIni, IniError> {
    let mut ini = RawIni::default();
    let mut cursor: Option<Cursor> = None;
    for (index, raw_line) in text.split('\n').enumerate() {
        let line_number = index + 1;
        let error = |message| IniError {
            line: line_number,
            message,
        };
        let line = raw_line.strip_suffix('\r').unwrap_or(raw_line);
        if line.trim_matches(WHITESPACE).is_empty() || line.starts_with(COMMENT) {
            continue;
        }
        if line.starts_with('[') {
            let name = strip_comment(line, false)
                .strip_prefix('[')
                .and_then(|rest| rest.strip_suffix(']'))
                .ok_or(error("a section header must end with `]`"))?;
            cursor = Some(Cursor {
                section: ini.section_index(name),
                property: None,
                has_sub_properties: false,
            });
        } else if line.starts_with(WHITESPACE) {
            let Some(cursor) = cursor.as_ref() else {
                return Err(error("a continuation line before any [section]"));
            };
            let Some(key) = cursor.property.as_ref() else {
                return Err(error("a continuation line without a property to continue"));
            };
            if cursor.has_sub_properties {
                parse_property(line).map_err(error)?;
            }
            let (_, props) = &mut ini.sections[cursor.section]; // index came from section_index
            if let Some(value) = props.0.get_mut(key) {
                value.push('\n');
                value.push_str(line.trim_matches(WHITESPACE));
            }
        } else {
            let Some(cursor) = cursor.as_mut() else {
                return Err(error("a property before any [section]"));
            };
            let (key, value) = parse_property(line).map_err(error)?;
            let (_, props) = &mut ini.sections[cursor.section]; // index came from section_index
            props.0.insert(key.clone(), value.to_owned());
            cursor.has_sub_properties = value.is_empty();
            cursor.property = Some(key);
        }
    }
    Ok(ini)
}

/// `key = value` → (lower-cased key, value), comments and whitespace removed.
fn parse_property(line: &str) -> Result<(String, &str), &'static str> {
    let line = strip_comment(line, true);
    let (key, value) = line
        .split_once('=')
        .ok_or("expected `key = value` (no `=` on this line)")?;
    let key = key.trim_matches(WHITESPACE);
    if key.is_empty() {
        return Err("a property without a name (`= value`)");
    }
    Ok((key.to_ascii_lowercase(), value.trim_matches(WHITESPACE)))
}

/// Trims `line` and cuts it at the first comment character; in property lines that character
/// must follow whitespace (`a=b#c` keeps `b#c`), in section lines it need not.
fn strip_comment(line: &str, needs_whitespace_before: bool) -> &str {
    let line = line.trim_matches(WHITESPACE);
    let mut previous_is_whitespace = false;
    for (index, c) in line.char_indices() {
        if COMMENT.contains(&c) && (previous_is_whitespace || !needs_whitespace_before) {
            return line[..index].trim_matches(WHITESPACE);
        }
        previous_is_whitespace = WHITESPACE.contains(&c);
    }
    line
}

/// `[A-Za-z0-9_\-/.%@:+]+`: the names the SDKs accept for profiles and keys.
fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-/.%@:+".contains(c))
}

/// `prefix name` → (Some(prefix), name); `name` → (None, name); whitespace trimmed.
fn split_section_name(raw: &str) -> (Option<&str>, &str) {
    let raw = raw.trim_matches(WHITESPACE);
    match raw.split_once(WHITESPACE) {
        Some((prefix, name)) => (Some(prefix), name.trim_matches(WHITESPACE)),
        None => (None, raw),
    }
}

/// The sub-properties of a property value (`\nkey = value\n…`). Keys keep their case, as
/// the SDKs keep it.
pub fn sub_properties(value: &str) -> BTreeMap<String, String> {
    value
        .split('\n')
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| {
            (
                k.trim_matches(WHITESPACE).to_owned(),
                v.trim_matches(WHITESPACE).to_owned(),
            )
        })
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

// ----- The two files, normalised ----------------------------------------------------------------

/// The config file's profiles and `[services …]` sections.
#[derive(Debug, Default)]
pub struct ConfigFile {
    profiles: BTreeMap<String, Properties>,
    services: BTreeMap<String, Properties>,
    /// Unprefixed `[NAME]` sections other than `[default]`, which the SDKs ignore.
    ignored_unprefixed: Vec<String>,
}

impl ConfigFile {
    /// Normalises a parsed config file.
    pub fn from_ini(ini: &RawIni) -> Self {
        let prefixed_default = ini
            .sections()
            .any(|(raw, _)| split_section_name(raw) == (Some(PROFILE_PREFIX), DEFAULT_PROFILE));
        let mut file = Self::default();
        for (raw, props) in ini.sections() {
            match split_section_name(raw) {
                (Some(PROFILE_PREFIX), name) if is_identifier(name) => {
                    file.profiles
                        .entry(name.to_owned())
                        .or_default()
                        .merge_from(props);
                }
                (None, DEFAULT_PROFILE) if !prefixed_default => {
                    file.profiles
                        .entry(DEFAULT_PROFILE.to_owned())
                        .or_default()
                        .merge_from(props);
                }
                (Some(SERVICES_PREFIX), name) if is_identifier(name) => {
                    file.services
                        .entry(name.to_owned())
                        .or_default()
                        .merge_from(props);
                }
                (None, name) if name != DEFAULT_PROFILE => {
                    file.ignored_unprefixed.push(name.to_owned());
                }
                _ => {}
            }
        }
        file
    }

    /// The profile `name`, if the file has it.
    pub fn profile(&self, name: &str) -> Option<&Properties> {
        self.profiles.get(name)
    }

    /// The `[services name]` section, if the file has it.
    pub fn services(&self, name: &str) -> Option<&Properties> {
        self.services.get(name)
    }

    /// The names of the file's profiles, sorted.
    pub fn profile_names(&self) -> impl Iterator<Item = &str> {
        self.profiles.keys().map(String::as_str)
    }
}

/// The credentials file's profiles.
#[derive(Debug, Default)]
pub struct CredentialsFile {
    profiles: BTreeMap<String, Properties>,
}

impl CredentialsFile {
    /// Normalises a parsed credentials file.
    pub fn from_ini(ini: &RawIni) -> Self {
        let mut file = Self::default();
        for (raw, props) in ini.sections() {
            if let (None, name) = split_section_name(raw)
                && is_identifier(name)
            {
                file.profiles
                    .entry(name.to_owned())
                    .or_default()
                    .merge_from(props);
            }
        }
        file
    }

    /// The profile `name`, if the file has it.
    pub fn profile(&self, name: &str) -> Option<&Properties> {
        self.profiles.get(name)
    }

    /// The names of the file's profiles, sorted.
    pub fn profile_names(&self) -> impl Iterator<Item = &str> {
        self.profiles.keys().map(String::as_str)
    }
}

/// Both files, with the paths they were read from (a missing file reads as empty).
#[derive(Debug)]
pub struct SharedFiles {
    config_path: PathBuf,
    credentials_path: PathBuf,
    config: ConfigFile,
    credentials: CredentialsFile,
}

impl SharedFiles {
    /// Reads `AWS_CONFIG_FILE` (else `~/.aws/config`) and `AWS_SHARED_CREDENTIALS_FILE` (else
    /// `~/.aws/credentials`). A file that does not exist is empty; one that cannot be read or
    /// parsed is an error.
    pub fn load(env: &impl Env) -> Result<Self, ConfigError> {
        let config_path = file_path(env, "AWS_CONFIG_FILE", ".aws/config");
        let credentials_path = file_path(env, "AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials");
        let config_text = read_optional(&config_path)?;
        let credentials_text = read_optional(&credentials_path)?;
        Self::from_texts(
            config_path,
            &config_text,
            credentials_path,
            &credentials_text,
        )
    }

    /// Parses file contents already read (tests, and callers with their own I/O).
    pub fn from_texts(
        config_path: PathBuf,
        config_text: &str,
        credentials_path: PathBuf,
        credentials_text: &str,
    ) -> Result<Self, ConfigError> {
        let config = parse_ini(config_text).map_err(|source| ConfigError::Parse {
            path: config_path.clone(),
            source,
        })?;
        let credentials = parse_ini(credentials_text).map_err(|source| ConfigError::Parse {
            path: credentials_path.clone(),
            source,
        })?;
        Ok(Self {
            config: ConfigFile::from_ini(&config),
            credentials: CredentialsFile::from_ini(&credentials),
            config_path,
            credentials_path,
        })
    }

    /// The config file's path.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The credentials file's path.
    pub fn credentials_path(&self) -> &Path {
        &self.credentials_path
    }

    /// The names of the profiles in either file, sorted, each once.
    pub fn profile_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .config
            .profile_names()
            .chain(self.credentials.profile_names())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// The profile `name`, or a profile without settings when neither file has it (the
    /// `default` profile of a machine without AWS files, with credentials in the environment).
    pub fn profile_or_empty<'a>(&'a self, name: &'a str) -> Profile<'a> {
        Profile {
            name,
            files: self,
            config: self.config.profile(name),
            credentials: self.credentials.profile(name),
        }
    }

    /// The profile `name` as found in either file (or both).
    pub fn profile<'a>(&'a self, name: &'a str) -> Result<Profile<'a>, ConfigError> {
        let config = self.config.profile(name);
        let credentials = self.credentials.profile(name);
        if config.is_none() && credentials.is_none() {
            let hint = if self.config.ignored_unprefixed.iter().any(|n| n == name) {
                format!(
                    " (the config file has [{name}], but there a profile must be written \
                     [profile {name}])"
                )
            } else {
                String::new()
            };
            return Err(ConfigError::NoSuchProfile {
                profile: name.to_owned(),
                config: self.config_path.clone(),
                credentials: self.credentials_path.clone(),
                hint,
            });
        }
        Ok(Profile {
            name,
            files: self,
            config,
            credentials,
        })
    }
}

/// `$VAR` when set (with a leading `~/` expanded), else `~/default`.
fn file_path(env: &impl Env, var: &str, default: &str) -> PathBuf {
    match env_value(env, var) {
        Some(path) => expand_home(env, &path),
        None => match home_dir(env) {
            Some(home) => home.join(default),
            None => PathBuf::from("~").join(default),
        },
    }
}

/// The home directory the shared files live under, as the AWS SDKs find it: `HOME`; on
/// Windows, where `HOME` is usually unset, then `USERPROFILE` (the AWS SDK for Rust's order;
/// the AWS CLI reads `USERPROFILE`, so both find `%USERPROFILE%\.aws\config`).
pub fn home_dir(env: &impl Env) -> Option<PathBuf> {
    home_dir_on(env, cfg!(windows))
}

/// [`home_dir`] as on Windows (`windows`) or elsewhere, so both are tested everywhere.
pub(crate) fn home_dir_on(env: &impl Env, windows: bool) -> Option<PathBuf> {
    env_value(env, "HOME")
        .or_else(|| windows.then(|| env_value(env, "USERPROFILE")).flatten())
        .map(PathBuf::from)
}

/// Expands a leading `~/` (on Windows also `~\`) with the [`home_dir`], as the SDKs do for
/// file paths.
pub fn expand_home(env: &impl Env, path: &str) -> PathBuf {
    expand_home_on(env, path, cfg!(windows))
}

fn expand_home_on(env: &impl Env, path: &str, windows: bool) -> PathBuf {
    let rest = path
        .strip_prefix("~/")
        .or_else(|| windows.then(|| path.strip_prefix("~\\")).flatten());
    match (rest, home_dir_on(env, windows)) {
        (Some(rest), Some(home)) => home.join(rest),
        _ => PathBuf::from(path),
    }
}

fn read_optional(path: &Path) -> Result<String, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(ConfigError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

// ----- One profile's settings -----------------------------------------------------------------

/// Long-term (or, if the file says so, temporary) credentials from a profile. No `Debug`
/// derive: it holds the secret; the manual one shows the access key id only.
pub struct StaticCredentials {
    /// `AKIA…`.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Secret,
    /// `aws_session_token`, if the profile has one.
    pub session_token: Option<Secret>,
}

impl fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// Where an endpoint URL came from, highest precedence first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointSource {
    /// The command line (`--endpoint-url`).
    CommandLine,
    /// `AWS_ENDPOINT_URL_<SERVICE>`.
    ServiceEnv(String),
    /// `AWS_ENDPOINT_URL`.
    GlobalEnv,
    /// `endpoint_url` under the service in the profile's `[services NAME]` section.
    ServicesSection(String),
    /// The profile's own `endpoint_url`.
    Profile,
}

/// An endpoint URL and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The URL as configured.
    pub url: String,
    /// Its source.
    pub source: EndpointSource,
}

/// One profile: its config-file section and credentials-file section, either of which may be
/// missing. Lookups see the credentials file's value first, as the SDKs merge the two.
#[derive(Debug, Clone, Copy)]
pub struct Profile<'a> {
    name: &'a str,
    files: &'a SharedFiles,
    config: Option<&'a Properties>,
    credentials: Option<&'a Properties>,
}

impl<'a> Profile<'a> {
    /// The profile's name.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// Whether either file has a section for this profile.
    pub fn exists(&self) -> bool {
        self.config.is_some() || self.credentials.is_some()
    }

    /// The files the profile was read from.
    pub fn files(&self) -> &'a SharedFiles {
        self.files
    }

    /// The value of `key` (lower-case), if set and not empty.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        [self.credentials, self.config]
            .into_iter()
            .flatten()
            .find_map(|props| props.get(key))
            .filter(|v| !v.is_empty())
    }

    /// The credentials to sign with: the credentials file's section if it has an access key
    /// id, else the config file's section.
    pub fn credentials(&self) -> Result<StaticCredentials, ConfigError> {
        let sources = [
            (self.credentials, &self.files.credentials_path),
            (self.config, &self.files.config_path),
        ];
        for (props, path) in sources {
            let Some(props) = props else { continue };
            let non_empty = |key| props.get(key).filter(|v| !v.is_empty());
            let Some(access_key_id) = non_empty("aws_access_key_id") else {
                continue;
            };
            let Some(secret) = non_empty("aws_secret_access_key") else {
                return Err(ConfigError::Invalid {
                    profile: self.name.to_owned(),
                    path: path.clone(),
                    message: "aws_access_key_id is set but aws_secret_access_key is not".into(),
                });
            };
            return Ok(StaticCredentials {
                access_key_id: access_key_id.to_owned(),
                secret_access_key: Secret::from(secret.to_owned()),
                session_token: non_empty("aws_session_token").map(|t| Secret::from(t.to_owned())),
            });
        }
        Err(ConfigError::NoCredentials {
            profile: self.name.to_owned(),
            config: self.files.config_path.clone(),
            credentials: self.files.credentials_path.clone(),
        })
    }

    /// `mfa_serial`: the ARN (or hardware serial) of the caller's MFA device.
    pub fn mfa_serial(&self) -> Option<&'a str> {
        self.get("mfa_serial")
    }

    /// `duration_seconds`, when set; an unparseable value is an error.
    pub fn duration_seconds(&self) -> Result<Option<u32>, ConfigError> {
        self.get("duration_seconds")
            .map(|v| {
                v.parse().map_err(|_| ConfigError::Invalid {
                    profile: self.name.to_owned(),
                    path: self.files.config_path.clone(),
                    message: format!("duration_seconds `{v}` is not a number of seconds"),
                })
            })
            .transpose()
    }

    /// The region for the SigV4 scope: `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's
    /// `region`, else `us-east-1`.
    pub fn region(&self, env: &impl Env) -> String {
        env_value(env, "AWS_REGION")
            .or_else(|| env_value(env, "AWS_DEFAULT_REGION"))
            .or_else(|| self.get("region").map(str::to_owned))
            .unwrap_or_else(|| DEFAULT_REGION.to_owned())
    }

    /// A PEM file of trust anchors for `https://` endpoints: `AWS_CA_BUNDLE`, else the
    /// profile's `ca_bundle`.
    pub fn ca_bundle(&self, env: &impl Env) -> Option<PathBuf> {
        env_value(env, "AWS_CA_BUNDLE")
            .or_else(|| self.get("ca_bundle").map(str::to_owned))
            .map(|path| expand_home(env, &path))
    }

    /// The endpoint for `service` (`sts`, `iam`), in the AWS SDKs' order (sdkref
    /// "Service-specific endpoints"): `command_line`, `AWS_ENDPOINT_URL_<SERVICE>`,
    /// `AWS_ENDPOINT_URL`, `endpoint_url` under the service in the profile's
    /// `[services NAME]` section, the profile's `endpoint_url`. All but the first are skipped
    /// when `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` (else the profile's
    /// `ignore_configured_endpoint_urls`) is `true`.
    pub fn endpoint(
        &self,
        service: &str,
        command_line: Option<&str>,
        env: &impl Env,
    ) -> Option<Endpoint> {
        if let Some(url) = command_line.filter(|u| !u.is_empty()) {
            return Some(Endpoint {
                url: url.to_owned(),
                source: EndpointSource::CommandLine,
            });
        }
        let ignore = env_value(env, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
            .or_else(|| {
                self.get("ignore_configured_endpoint_urls")
                    .map(str::to_owned)
            })
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if ignore {
            return None;
        }
        let service_var = service_env_var(service);
        if let Some(url) = env_value(env, &service_var) {
            return Some(Endpoint {
                url,
                source: EndpointSource::ServiceEnv(service_var),
            });
        }
        if let Some(url) = env_value(env, "AWS_ENDPOINT_URL") {
            return Some(Endpoint {
                url,
                source: EndpointSource::GlobalEnv,
            });
        }
        let from_services = self.get("services").and_then(|section| {
            let props = self.files.config.services(section)?;
            let url = sub_properties(props.get(&service.to_ascii_lowercase())?)
                .remove("endpoint_url")
                .filter(|u| !u.is_empty())?;
            Some(Endpoint {
                url,
                source: EndpointSource::ServicesSection(section.to_owned()),
            })
        });
        from_services.or_else(|| {
            self.get("endpoint_url").map(|url| Endpoint {
                url: url.to_owned(),
                source: EndpointSource::Profile,
            })
        })
    }
}

/// `AWS_ENDPOINT_URL_<SERVICE>`: the service id upper-cased, spaces and dashes as `_`.
fn service_env_var(service: &str) -> String {
    let suffix: String = service
        .chars()
        .map(|c| match c {
            ' ' | '-' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect();
    format!("AWS_ENDPOINT_URL_{suffix}")
}

/// The profile to use: `--profile`, else `AWS_PROFILE`, else `default`.
pub fn profile_name(command_line: Option<&str>, env: &impl Env) -> String {
    ProfileChoice::new(command_line, env).name
}

/// Which profile a command uses, and who chose it (the credential chain treats a profile
/// named on the command line differently from one named by `AWS_PROFILE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileChoice {
    /// The profile name.
    pub name: String,
    /// Who named it.
    pub named_by: ProfileNamedBy,
}

/// Who named the profile of a [`ProfileChoice`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileNamedBy {
    /// `--profile` on the command line.
    CommandLine,
    /// The `AWS_PROFILE` environment variable.
    Environment,
    /// Nobody: it is `default`.
    Default,
}

impl ProfileChoice {
    /// `--profile` (`command_line`), else `AWS_PROFILE`, else `default`; empty values count
    /// as unset.
    pub fn new(command_line: Option<&str>, env: &impl Env) -> Self {
        if let Some(name) = command_line.filter(|p| !p.is_empty()) {
            return Self {
                name: name.to_owned(),
                named_by: ProfileNamedBy::CommandLine,
            };
        }
        match env_value(env, "AWS_PROFILE") {
            Some(name) => Self {
                name,
                named_by: ProfileNamedBy::Environment,
            },
            None => Self {
                name: DEFAULT_PROFILE.to_owned(),
                named_by: ProfileNamedBy::Default,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::HashMap;

    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Env + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k: &str| map.get(k).cloned()
    }

    fn files(config: &str, credentials: &str) -> SharedFiles {
        SharedFiles::from_texts(
            PathBuf::from("/cfg"),
            config,
            PathBuf::from("/creds"),
            credentials,
        )
        .unwrap()
    }

    fn section<'a>(ini: &'a RawIni, name: &str) -> &'a Properties {
        ini.sections().find(|(n, _)| *n == name).unwrap().1
    }

    #[test]
    fn properties_comments_and_whitespace() {
        let ini = parse_ini(
            "# a comment\n; another\n[default]\n  \nRegion = us-west-2  \n\
             aws_access_key_id=AKIA1 ; trailing comment\nurl = http://h/#frag\n\
             tab\t=\tv\t# c\n[profile x] # comment after a header\nk=v\r\n",
        )
        .unwrap();
        let d = section(&ini, "default");
        assert_eq!(d.get("region"), Some("us-west-2"), "keys are lower-cased");
        assert_eq!(d.get("Region"), None);
        assert_eq!(d.get("aws_access_key_id"), Some("AKIA1"));
        assert_eq!(
            d.get("url"),
            Some("http://h/#frag"),
            "# without whitespace is kept"
        );
        assert_eq!(d.get("tab"), Some("v"));
        assert_eq!(
            section(&ini, "profile x").get("k"),
            Some("v"),
            "CRLF line endings"
        );
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let cases = [
            ("k = v\n", 1, "before any [section]"),
            ("[a]\nno equals sign\n", 2, "no `=`"),
            ("[a]\n= v\n", 2, "without a name"),
            ("[a\nk=v\n", 1, "must end with `]`"),
            ("[a]\n  continued\n", 2, "without a property"),
            ("\n  continued\n", 2, "before any [section]"),
            ("[a]\ns =\n  not a sub-property\n", 3, "no `=`"),
        ];
        for (text, line, message) in cases {
            let err = parse_ini(text).unwrap_err();
            assert_eq!(err.line, line, "{text:?}");
            assert!(err.message.contains(message), "{text:?}: {}", err.message);
        }
    }

    #[test]
    fn continuations_and_sub_properties() {
        let ini =
            parse_ini("[a]\nk = one\n  two\ns =\n  endpoint_url = http://x\n\n  z = 1\n").unwrap();
        let a = section(&ini, "a");
        assert_eq!(a.get("k"), Some("one\ntwo"));
        let subs = sub_properties(a.get("s").unwrap());
        assert_eq!(
            subs.get("endpoint_url").map(String::as_str),
            Some("http://x")
        );
        assert_eq!(subs.get("z").map(String::as_str), Some("1"));
    }

    #[test]
    fn repeated_sections_merge_and_the_last_value_wins() {
        let ini = parse_ini("[a]\nk = 1\nj = 1\n[b]\nk = 2\n[a]\nk = 3\nk = 4\n").unwrap();
        assert_eq!(ini.sections().count(), 2);
        assert_eq!(section(&ini, "a").get("k"), Some("4"));
        assert_eq!(section(&ini, "a").get("j"), Some("1"));
    }

    #[test]
    fn config_needs_the_profile_prefix_and_credentials_must_not_have_it() {
        let f = files(
            "[profile dev]\nregion = eu-west-1\n[dev2]\nregion = x\n[default]\nregion = d\n",
            "[dev]\naws_access_key_id = AKIADEV\naws_secret_access_key = s\n\
             [profile prod]\naws_access_key_id = AKIAPROD\naws_secret_access_key = s\n",
        );
        let dev = f.profile("dev").unwrap();
        assert_eq!(dev.get("region"), Some("eu-west-1"));
        assert_eq!(dev.credentials().unwrap().access_key_id, "AKIADEV");
        assert_eq!(f.profile("default").unwrap().get("region"), Some("d"));
        // `[dev2]` in the config file is not a profile; the error says how to write it.
        let err = f.profile("dev2").unwrap_err().to_string();
        assert!(err.contains("[profile dev2]"), "{err}");
        // `[profile prod]` in the credentials file is ignored.
        assert!(matches!(
            f.profile("prod"),
            Err(ConfigError::NoSuchProfile { .. })
        ));
        assert!(f.profile("profile prod").is_err());
    }

    #[test]
    fn profile_default_replaces_default() {
        let f = files(
            "[default]\nregion = a\nmfa_serial = m\n[profile default]\nregion = b\n",
            "",
        );
        let d = f.profile("default").unwrap();
        assert_eq!(d.get("region"), Some("b"));
        assert_eq!(d.mfa_serial(), None, "[default] is dropped entirely");
    }

    #[test]
    fn odd_names_and_keys_are_ignored() {
        let f = files(
            "[profile a b]\nk=v\n[profile ok]\nbad key = 1\ngood = 2\n",
            "",
        );
        assert!(f.profile("a b").is_err());
        let ok = f.profile("ok").unwrap();
        assert_eq!(ok.get("good"), Some("2"));
        assert_eq!(ok.get("bad key"), None);
    }

    #[test]
    fn credentials_file_wins_and_pairs_are_not_mixed() {
        let f = files(
            "[profile p]\naws_access_key_id = AKIACONFIG\naws_secret_access_key = c\n\
             mfa_serial = arn:aws:iam::000000000000:mfa/config\n",
            "[p]\naws_access_key_id = AKIACREDS\naws_secret_access_key = k\n\
             aws_session_token = t\nmfa_serial = arn:aws:iam::000000000000:mfa/creds\n",
        );
        let p = f.profile("p").unwrap();
        let creds = p.credentials().unwrap();
        assert_eq!(creds.access_key_id, "AKIACREDS");
        assert_eq!(creds.secret_access_key.expose(), b"k");
        assert_eq!(creds.session_token.unwrap().expose(), b"t");
        assert_eq!(p.mfa_serial(), Some("arn:aws:iam::000000000000:mfa/creds"));

        let f = files(
            "[profile p]\naws_access_key_id = AKIACONFIG\naws_secret_access_key = c\n",
            "[p]\nregion = r\n",
        );
        let creds = f.profile("p").unwrap().credentials().unwrap();
        assert_eq!(creds.access_key_id, "AKIACONFIG");
    }

    #[test]
    fn missing_or_half_credentials_are_clear_errors() {
        let f = files(
            "[profile p]\nregion = r\n",
            "[q]\naws_access_key_id = AKIA\n",
        );
        let err = f
            .profile("p")
            .unwrap()
            .credentials()
            .unwrap_err()
            .to_string();
        assert!(err.contains("profile `p` has no credentials"), "{err}");
        assert!(err.contains("/cfg") && err.contains("/creds"), "{err}");
        let err = f
            .profile("q")
            .unwrap()
            .credentials()
            .unwrap_err()
            .to_string();
        assert!(err.contains("aws_secret_access_key is not"), "{err}");
        let err = f.profile("nope").unwrap_err().to_string();
        assert!(
            err.contains("profile `nope` is not in /cfg or /creds"),
            "{err}"
        );
    }

    #[test]
    fn debug_never_shows_secrets() {
        let f = files(
            "",
            "[p]\naws_access_key_id = AKIAX\naws_secret_access_key = SEKRIT\n",
        );
        let p = f.profile("p").unwrap();
        let shown = format!("{:?} {:?} {:?}", p, p.credentials().unwrap(), f);
        assert!(!shown.contains("SEKRIT"), "{shown}");
        assert!(shown.contains("AKIAX"));
    }

    #[test]
    fn endpoint_precedence() {
        let f = files(
            "[profile p]\nendpoint_url = http://profile\nservices = svc\n\
             [services svc]\nsts =\n  endpoint_url = http://services-sts\n\
             iam =\n  endpoint_url = http://services-iam\n\
             [profile q]\nendpoint_url = http://q\n\
             [profile r]\nendpoint_url = http://r\nignore_configured_endpoint_urls = true\n",
            "",
        );
        let p = f.profile("p").unwrap();
        let all = [
            ("AWS_ENDPOINT_URL_STS", "http://env-sts"),
            ("AWS_ENDPOINT_URL", "http://env-global"),
        ];
        let url = |cli: Option<&str>, env: &[(&str, &str)]| {
            p.endpoint("sts", cli, &env_of(env)).map(|e| e.url)
        };
        assert_eq!(url(Some("http://cli"), &all).unwrap(), "http://cli");
        assert_eq!(url(None, &all).unwrap(), "http://env-sts");
        assert_eq!(url(None, &all[1..]).unwrap(), "http://env-global");
        assert_eq!(url(None, &[]).unwrap(), "http://services-sts");
        assert_eq!(
            p.endpoint(
                "iam",
                None,
                &env_of(&[("AWS_ENDPOINT_URL_STS", "http://x")])
            )
            .unwrap()
            .url,
            "http://services-iam",
            "the STS variable does not apply to IAM"
        );
        assert_eq!(
            p.endpoint("sts", None, &env_of(&[])).unwrap().source,
            EndpointSource::ServicesSection("svc".into())
        );
        let q = f.profile("q").unwrap();
        let e = q.endpoint("sts", None, &env_of(&[])).unwrap();
        assert_eq!(
            (e.url.as_str(), e.source),
            ("http://q", EndpointSource::Profile)
        );
        // Empty variables count as unset.
        let e = q
            .endpoint("sts", None, &env_of(&[("AWS_ENDPOINT_URL_STS", "")]))
            .unwrap();
        assert_eq!(e.url, "http://q");
        // Ignoring configured endpoints leaves only the command line.
        let r = f.profile("r").unwrap();
        assert_eq!(r.endpoint("sts", None, &env_of(&all)), None);
        assert_eq!(
            r.endpoint("sts", Some("http://cli"), &env_of(&all))
                .unwrap()
                .url,
            "http://cli"
        );
        let ignore = [("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "TRUE")];
        assert_eq!(q.endpoint("sts", None, &env_of(&ignore)), None);
    }

    #[test]
    fn region_precedence() {
        let f = files("[profile p]\nregion = eu-central-1\n[profile none]\n", "");
        let p = f.profile("p").unwrap();
        let both = [("AWS_REGION", "r1"), ("AWS_DEFAULT_REGION", "r2")];
        assert_eq!(p.region(&env_of(&both)), "r1");
        assert_eq!(p.region(&env_of(&both[1..])), "r2");
        assert_eq!(p.region(&env_of(&[])), "eu-central-1");
        assert_eq!(f.profile("none").unwrap().region(&env_of(&[])), "us-east-1");
    }

    #[test]
    fn profile_name_and_file_paths() {
        let env = env_of(&[("AWS_PROFILE", "envp"), ("HOME", "/home/u")]);
        assert_eq!(profile_name(Some("cli"), &env), "cli");
        assert_eq!(profile_name(None, &env), "envp");
        assert_eq!(profile_name(None, &env_of(&[])), "default");
        assert_eq!(
            file_path(&env, "AWS_CONFIG_FILE", ".aws/config"),
            PathBuf::from("/home/u/.aws/config")
        );
        let env = env_of(&[("AWS_CONFIG_FILE", "~/c"), ("HOME", "/home/u")]);
        assert_eq!(
            file_path(&env, "AWS_CONFIG_FILE", ".aws/config"),
            PathBuf::from("/home/u/c")
        );
    }

    #[test]
    fn home_is_home_then_userprofile_on_windows() {
        let profile = env_of(&[("USERPROFILE", "/users/u")]);
        assert_eq!(home_dir_on(&profile, false), None);
        assert_eq!(home_dir_on(&profile, true), Some(PathBuf::from("/users/u")));
        let both = env_of(&[("HOME", "/home/u"), ("USERPROFILE", "/users/u")]);
        assert_eq!(home_dir_on(&both, true), Some(PathBuf::from("/home/u")));
        assert_eq!(
            expand_home_on(&profile, "~\\c", true),
            PathBuf::from("/users/u").join("c")
        );
        assert_eq!(
            expand_home_on(&profile, "~\\c", false),
            PathBuf::from("~\\c")
        );
        assert_eq!(expand_home_on(&profile, "~/c", false), PathBuf::from("~/c"));
    }

    #[test]
    fn duration_seconds_is_checked() {
        let f = files(
            "[profile a]\nduration_seconds = 900\n[profile b]\nduration_seconds = 1h\n",
            "",
        );
        assert_eq!(
            f.profile("a").unwrap().duration_seconds().unwrap(),
            Some(900)
        );
        assert!(f.profile("b").unwrap().duration_seconds().is_err());
    }

    #[test]
    fn missing_files_are_empty_and_load_reads_the_variables() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::write(&config, "[profile x]\nregion = r\n").unwrap();
        let config_str = config.to_str().unwrap().to_owned();
        let missing = dir.path().join("nope").to_str().unwrap().to_owned();
        let env = env_of(&[
            ("AWS_CONFIG_FILE", &config_str),
            ("AWS_SHARED_CREDENTIALS_FILE", &missing),
        ]);
        let f = SharedFiles::load(&env).unwrap();
        assert_eq!(f.profile("x").unwrap().get("region"), Some("r"));
        let err = f.profile("nope").unwrap_err().to_string();
        assert!(err.contains(&format!("{config_str} or {missing}")), "{err}");
        std::fs::write(&config, "[x\n").unwrap();
        let err = SharedFiles::load(&env).unwrap_err().to_string();
        assert!(err.contains(&config_str) && err.contains("line 1"), "{err}");
    }
}
