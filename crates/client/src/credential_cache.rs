//! Temporary credentials: the `credential_process` JSON they are printed as, and the on-disk
//! cache that lets `credential_process = tokengate login …` ask for the MFA code once per
//! session instead of on every AWS CLI call.
//!
//! Rules (docs/login.md):
//! - Location: `$XDG_CACHE_HOME/tokengate/` (an absolute path, per the XDG base-directory
//!   spec), else `~/.cache/tokengate/`; on Windows `%LOCALAPPDATA%\tokengate\`, else
//!   `~\.cache\tokengate\`.
//! - Owner-only on every OS. On Unix the directory is 0700 and each file 0600, set when they
//!   are created. On Windows there are no mode bits: the cache lives in the user's profile
//!   directory, whose files inherit an ACL that grants access only to the user, SYSTEM and
//!   the Administrators group, so nothing is set explicitly (and no ACL library is needed).
//! - One file per (profile, endpoint, long-term access key id, `mfa_serial`), named by the
//!   SHA-256 of those four, so any profile name is a safe file name.
//! - A file is written to a temporary name and renamed over the old one, so a reader sees the
//!   old or the new credentials, never half of either.
//! - A cached session is reused while more than [`REFRESH_WINDOW`] remains before its
//!   expiration (botocore's advisory refresh window); with exactly that much left it is
//!   refreshed.
//! - A file that cannot be read or parsed, a symlink, or anything else odd is ignored and
//!   replaced on the next write; the cache is never a reason to fail a login.
//! - The file's content is the `credential_process` JSON itself.

use std::fmt;
use std::fs::{DirBuilder, OpenOptions};
use std::io::{Read, Write};
#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokengate_token::secret::Secret;
use zeroize::Zeroizing;

use crate::aws_config::{Env, env_value, home_dir_on};
use crate::sts_client::Reply;

/// Reuse a cached session only while more than this remains (botocore
/// `_DEFAULT_ADVISORY_REFRESH_TIMEOUT`, sts-iam.md §6).
pub const REFRESH_WINDOW: time::Duration = time::Duration::minutes(15);
/// `Version` of the `credential_process` JSON (must be 1; ecosystem.md §2.2).
pub const PROCESS_JSON_VERSION: u32 = 1;
/// A cache file larger than this is not ours; it is ignored.
const MAX_CACHE_FILE_BYTES: u64 = 64 * 1024;
/// Mode of the cache directory (Unix).
#[cfg(unix)]
const DIR_MODE: u32 = 0o700;
/// Mode of each cache file (Unix).
#[cfg(unix)]
const FILE_MODE: u32 = 0o600;
/// Domain separation for the cache file name hash.
const NAME_DOMAIN: &str = "tokengate login cache v1";

/// Temporary credentials from GetSessionToken. No `Debug` derive (secrets); the manual one
/// shows the access key id and expiration only.
pub struct SessionCredentials {
    /// `ASIA…`.
    pub access_key_id: String,
    /// The temporary secret access key.
    pub secret_access_key: Secret,
    /// The session token.
    pub session_token: Secret,
    /// When they stop working.
    pub expiration: OffsetDateTime,
}

impl fmt::Debug for SessionCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("expiration", &self.expiration)
            .finish_non_exhaustive()
    }
}

/// The `credential_process` document, written.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ProcessJsonOut<'a> {
    version: u32,
    access_key_id: &'a str,
    secret_access_key: &'a str,
    session_token: &'a str,
    expiration: String,
}

/// The `credential_process` document, read back from the cache.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ProcessJsonIn {
    version: u32,
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    expiration: String,
}

impl SessionCredentials {
    /// The credentials of a GetSessionToken (or AssumeRole, GetSessionTokenWithSecurityKey)
    /// result: `Credentials/{AccessKeyId, SecretAccessKey, SessionToken}` non-empty and
    /// `Credentials/Expiration` in RFC 3339.
    pub fn from_reply(reply: &Reply) -> Result<Self, crate::Error> {
        let field = |name: &str| {
            reply
                .result
                .text_at(&["Credentials", name])
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    crate::Error::IncompleteReply(format!(
                        "the service's reply has no Credentials/{name}"
                    ))
                })
        };
        let expiration = field("Expiration")?;
        let expiration = parse_expiration(expiration).map_err(|e| {
            crate::Error::IncompleteReply(format!(
                "the service's Expiration `{expiration}` is not usable: {e}"
            ))
        })?;
        Ok(Self {
            access_key_id: field("AccessKeyId")?.to_owned(),
            secret_access_key: Secret::from(field("SecretAccessKey")?.to_owned()),
            session_token: Secret::from(field("SessionToken")?.to_owned()),
            expiration,
        })
    }

    /// The `credential_process` JSON: `{"Version": 1, "AccessKeyId", "SecretAccessKey",
    /// "SessionToken", "Expiration"}`, Expiration in RFC 3339 UTC. Wiped when dropped.
    pub fn to_process_json(&self) -> Result<Zeroizing<String>, CacheError> {
        let expiration = format_expiration(self.expiration)
            .map_err(|e| CacheError::Malformed(format!("expiration: {e}")))?;
        let doc = ProcessJsonOut {
            version: PROCESS_JSON_VERSION,
            access_key_id: &self.access_key_id,
            // Both were built from `String`s, so they are always UTF-8.
            secret_access_key: self.secret_access_key.expose_str().unwrap_or_default(),
            session_token: self.session_token.expose_str().unwrap_or_default(),
            expiration,
        };
        serde_json::to_string(&doc)
            .map(Zeroizing::new)
            .map_err(|e| CacheError::Malformed(e.to_string()))
    }

    /// Parses a `credential_process` JSON document with all five members.
    pub fn from_process_json(text: &str) -> Result<Self, CacheError> {
        // serde_json's own message can quote a value from the file; say only where it broke.
        let doc: ProcessJsonIn = serde_json::from_str(text).map_err(|e| {
            CacheError::Malformed(format!(
                "{:?} error at line {} column {}",
                e.classify(),
                e.line(),
                e.column()
            ))
        })?;
        let doc = Zeroizing::new(doc);
        if doc.version != PROCESS_JSON_VERSION {
            return Err(CacheError::Malformed(format!(
                "Version {} (expected 1)",
                doc.version
            )));
        }
        let expiration = parse_expiration(&doc.expiration)
            .map_err(|e| CacheError::Malformed(format!("Expiration: {e}")))?;
        if doc.access_key_id.is_empty()
            || doc.secret_access_key.is_empty()
            || doc.session_token.is_empty()
        {
            return Err(CacheError::Malformed("an empty member".into()));
        }
        Ok(Self {
            access_key_id: doc.access_key_id.clone(),
            secret_access_key: Secret::from(doc.secret_access_key.clone()),
            session_token: Secret::from(doc.session_token.clone()),
            expiration,
        })
    }

    /// Whether these credentials may be handed out at `now`: strictly more than
    /// [`REFRESH_WINDOW`] before they expire.
    pub fn is_fresh(&self, now: OffsetDateTime) -> bool {
        self.expiration - now > REFRESH_WINDOW
    }
}

/// An RFC 3339 expiration that can be written back as RFC 3339 in UTC, as the
/// `credential_process` JSON needs it. RFC 3339 allows `9999-12-31T23:59:59-01:00` and
/// `0000-01-01T00:00:00+01:00`, whose UTC year (10000, -1) has no RFC 3339 form: refused here,
/// so that a reply or cache file cannot make printing fail (or panic) later.
fn parse_expiration(text: &str) -> Result<OffsetDateTime, String> {
    let parsed = OffsetDateTime::parse(text, &Rfc3339).map_err(|e| e.to_string())?;
    let utc = parsed
        .checked_to_offset(time::UtcOffset::UTC)
        .ok_or("outside the years 0000-9999 in UTC")?;
    format_expiration(utc)?;
    Ok(utc)
}

/// `expiration` in RFC 3339, UTC.
fn format_expiration(expiration: OffsetDateTime) -> Result<String, String> {
    expiration
        .checked_to_offset(time::UtcOffset::UTC)
        .ok_or("outside the years 0000-9999 in UTC")?
        .format(&Rfc3339)
        .map_err(|e| e.to_string())
}

impl zeroize::Zeroize for ProcessJsonIn {
    fn zeroize(&mut self) {
        self.secret_access_key.zeroize();
        self.session_token.zeroize();
    }
}

/// Why a cache file was not used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// Not a `credential_process` document we wrote.
    #[error("not a credentials document ({0})")]
    Malformed(String),
    /// Reading or writing failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Not a regular file (a symlink, a directory …).
    #[error("not a regular file")]
    NotAFile,
    /// Larger than any file we write.
    #[error("larger than {MAX_CACHE_FILE_BYTES} bytes")]
    TooLarge,
}

/// What identifies one cached session.
#[derive(Debug, Clone, Copy)]
pub struct CacheKey<'a> {
    /// The profile name.
    pub profile: &'a str,
    /// The endpoint URL the session came from.
    pub endpoint: &'a str,
    /// The long-term access key id that asked for it.
    pub access_key_id: &'a str,
    /// The MFA device, if one was used.
    pub mfa_serial: Option<&'a str>,
    /// The roles assumed on the way, first hop first; empty for a GetSessionToken session.
    pub assumed_roles: &'a [AssumedRoleKey<'a>],
}

/// What identifies one AssumeRole hop of a cached role session: the AssumeRole parameters
/// that shape it, as botocore's cache key does (policy.md §6.1) — the session name only when
/// configured (a generated one changes on every call), never the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AssumedRoleKey<'a> {
    /// `RoleArn`.
    pub role_arn: &'a str,
    /// `RoleSessionName`, when the profile sets `role_session_name`.
    pub role_session_name: Option<&'a str>,
    /// `ExternalId`.
    pub external_id: Option<&'a str>,
    /// `SerialNumber`, when the hop itself sends a code.
    pub mfa_serial: Option<&'a str>,
}

impl CacheKey<'_> {
    /// `<hex SHA-256>.json` over an unambiguous (JSON) encoding of the parts. A session
    /// without roles keeps the name it had before roles existed.
    pub fn file_name(&self) -> String {
        let mut parts = vec![
            serde_json::json!(NAME_DOMAIN),
            serde_json::json!(self.profile),
            serde_json::json!(self.endpoint),
            serde_json::json!(self.access_key_id),
            serde_json::json!(self.mfa_serial),
        ];
        for hop in self.assumed_roles {
            parts.push(serde_json::json!([
                hop.role_arn,
                hop.role_session_name,
                hop.external_id,
                hop.mfa_serial
            ]));
        }
        let encoded = serde_json::Value::Array(parts).to_string();
        let digest = ring::digest::digest(&ring::digest::SHA256, encoded.as_bytes());
        format!("{}.json", data_encoding::HEXLOWER.encode(digest.as_ref()))
    }
}

/// What the cache held for a key.
#[derive(Debug)]
pub enum Lookup {
    /// Usable credentials.
    Fresh(SessionCredentials),
    /// Credentials that expire too soon (or already did).
    Stale,
    /// No file.
    Missing,
    /// A file that could not be used; it will be replaced.
    Unusable(CacheError),
}

/// The cache directory.
#[derive(Debug, Clone)]
pub struct CredentialCache {
    dir: PathBuf,
}

impl CredentialCache {
    /// `$XDG_CACHE_HOME/tokengate` (when absolute), else `$HOME/.cache/tokengate`; on
    /// Windows `%LOCALAPPDATA%\tokengate` (in the user's profile, so owner-only by inherited
    /// ACL), else `.cache\tokengate` in the home directory ([`aws_config::home_dir`]). `None`
    /// when there is nowhere to put it.
    ///
    /// [`aws_config::home_dir`]: crate::aws_config::home_dir
    pub fn locate(env: &impl Env) -> Option<Self> {
        Self::locate_on(env, cfg!(windows))
    }

    fn locate_on(env: &impl Env, windows: bool) -> Option<Self> {
        let base = if windows {
            env_value(env, "LOCALAPPDATA").map(PathBuf::from)
        } else {
            env("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
        };
        let base = base.or_else(|| home_dir_on(env, windows).map(|home| home.join(".cache")))?;
        Some(Self::at(base.join("tokengate")))
    }

    /// A cache in `dir`.
    pub fn at(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file for `key`.
    pub fn path_for(&self, key: &CacheKey<'_>) -> PathBuf {
        self.dir.join(key.file_name())
    }

    /// Looks `key` up at time `now`.
    pub fn load(&self, key: &CacheKey<'_>, now: OffsetDateTime) -> Lookup {
        match read_cache_file(&self.path_for(key)) {
            Ok(None) => Lookup::Missing,
            Ok(Some(creds)) if creds.is_fresh(now) => Lookup::Fresh(creds),
            Ok(Some(_)) => Lookup::Stale,
            Err(e) => Lookup::Unusable(e),
        }
    }

    /// Writes `creds` for `key` atomically (owner-only: a 0600 file in a 0700 directory on
    /// Unix, the profile directory's inherited ACL on Windows); returns the path.
    pub fn store(
        &self,
        key: &CacheKey<'_>,
        creds: &SessionCredentials,
    ) -> Result<PathBuf, CacheError> {
        create_private_dir(&self.dir)?;
        let path = self.path_for(key);
        let json = creds.to_process_json()?;
        let temp = self.dir.join(format!(
            ".{}.{}.{}.tmp",
            key.file_name(),
            std::process::id(),
            OffsetDateTime::now_utc().unix_timestamp_nanos()
        ));
        let written =
            write_new_file(&temp, json.as_bytes()).and_then(|()| std::fs::rename(&temp, &path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temp);
            return Err(e.into());
        }
        Ok(path)
    }
}

/// Creates `dir` (and its parents) for the owner only.
#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    // The directory is ours; tighten it if it was created looser (e.g. by hand).
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE))
}

/// Creates `dir` (and its parents). On Windows it inherits the ACL of the user's profile
/// directory it is created in (the user, SYSTEM, Administrators): owner-only without setting
/// anything, which is why the cache is located there (docs/login.md).
#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    DirBuilder::new().recursive(true).create(dir)
}

/// Creates `path`, which must not exist, owner-only (0600 on Unix; the directory's inherited
/// ACL on Windows), and writes `bytes` to disk.
fn write_new_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(FILE_MODE);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// `Ok(None)` when there is no file.
fn read_cache_file(path: &Path) -> Result<Option<SessionCredentials>, CacheError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if !meta.file_type().is_file() {
        return Err(CacheError::NotAFile);
    }
    if meta.len() > MAX_CACHE_FILE_BYTES {
        return Err(CacheError::TooLarge);
    }
    let mut text = Zeroizing::new(String::new());
    std::fs::File::open(path)?
        .take(MAX_CACHE_FILE_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => CacheError::Malformed("not UTF-8".into()),
            _ => CacheError::Io(e),
        })?;
    SessionCredentials::from_process_json(&text).map(Some)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn creds(id: &str, expiration: OffsetDateTime) -> SessionCredentials {
        SessionCredentials {
            access_key_id: id.to_owned(),
            secret_access_key: Secret::from("SECRET/KEY+x".to_owned()),
            session_token: Secret::from("token.jwt.sig".to_owned()),
            expiration,
        }
    }

    const ROLE: AssumedRoleKey<'static> = AssumedRoleKey {
        role_arn: "arn:aws:iam::000000000000:role/admin",
        role_session_name: None,
        external_id: None,
        mfa_serial: None,
    };

    fn key(profile: &str) -> CacheKey<'_> {
        CacheKey {
            profile,
            endpoint: "http://127.0.0.1:8787",
            access_key_id: "AKIAEXAMPLE",
            mfa_serial: Some("arn:aws:iam::000000000000:mfa/alice"),
            assumed_roles: &[],
        }
    }

    #[cfg(unix)] // modes and symlinks
    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn process_json_has_the_five_members_and_round_trips() {
        let exp = OffsetDateTime::parse("2030-01-02T03:04:05Z", &Rfc3339).unwrap();
        let json = creds("ASIAX", exp).to_process_json().unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["Version"], 1);
        assert_eq!(v["AccessKeyId"], "ASIAX");
        assert_eq!(v["SecretAccessKey"], "SECRET/KEY+x");
        assert_eq!(v["SessionToken"], "token.jwt.sig");
        assert_eq!(v["Expiration"], "2030-01-02T03:04:05Z");
        assert_eq!(v.as_object().unwrap().len(), 5);
        let back = SessionCredentials::from_process_json(&json).unwrap();
        assert_eq!(back.access_key_id, "ASIAX");
        assert_eq!(back.expiration, exp);
        assert_eq!(back.session_token.expose(), b"token.jwt.sig");
        // Debug never shows the secret or the token.
        let shown = format!("{back:?}");
        assert!(
            !shown.contains("SECRET") && !shown.contains("token.jwt"),
            "{shown}"
        );
    }

    #[test]
    fn freshness_window_edges() {
        let now = OffsetDateTime::parse("2030-01-01T00:00:00Z", &Rfc3339).unwrap();
        let at = |secs| creds("ASIA", now + time::Duration::seconds(secs));
        assert!(
            !at(15 * 60).is_fresh(now),
            "exactly 15 minutes left: refresh"
        );
        assert!(at(15 * 60 + 1).is_fresh(now), "more than 15 minutes: reuse");
        assert!(!at(15 * 60 - 1).is_fresh(now));
        assert!(!at(-10).is_fresh(now), "expired");
        let nanos = creds(
            "ASIA",
            now + REFRESH_WINDOW + time::Duration::nanoseconds(1),
        );
        assert!(nanos.is_fresh(now));
    }

    #[cfg(unix)] // modes and symlinks
    #[test]
    fn store_then_load_with_private_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = CredentialCache::at(tmp.path().join("nested/tokengate"));
        let now = OffsetDateTime::now_utc();
        let path = cache
            .store(&key("dev"), &creds("ASIA1", now + time::Duration::hours(1)))
            .unwrap();
        assert_eq!(mode(cache.dir()), 0o700);
        assert_eq!(mode(&path), 0o600);
        assert_eq!(path, cache.path_for(&key("dev")));
        match cache.load(&key("dev"), now) {
            Lookup::Fresh(c) => assert_eq!(c.access_key_id, "ASIA1"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(cache.load(&key("other"), now), Lookup::Missing));
        // Later than the window: stale.
        let later = now + time::Duration::minutes(46);
        assert!(matches!(cache.load(&key("dev"), later), Lookup::Stale));
        // A rewrite replaces it; no temporary files are left behind.
        cache
            .store(&key("dev"), &creds("ASIA2", now + time::Duration::hours(2)))
            .unwrap();
        match cache.load(&key("dev"), later) {
            Lookup::Fresh(c) => assert_eq!(c.access_key_id, "ASIA2"),
            other => panic!("{other:?}"),
        }
        let names: Vec<_> = std::fs::read_dir(cache.dir()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[cfg(unix)] // modes and symlinks
    #[test]
    fn a_loose_existing_directory_is_tightened() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("tokengate");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let cache = CredentialCache::at(dir.clone());
        let exp = OffsetDateTime::now_utc() + time::Duration::hours(1);
        cache.store(&key("p"), &creds("ASIA", exp)).unwrap();
        assert_eq!(mode(&dir), 0o700);
    }

    #[cfg(unix)] // modes and symlinks
    #[test]
    fn corrupt_or_odd_files_are_ignored_and_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = CredentialCache::at(tmp.path().to_owned());
        let now = OffsetDateTime::now_utc();
        let path = cache.path_for(&key("p"));
        let doc = |version: u32, id: &str, expiration: &str| {
            format!(r#"{{"Version":{version},"AccessKeyId":"{id}","SecretAccessKey":"b","#)
                + &format!(r#""SessionToken":"c","Expiration":"{expiration}"}}"#)
        };
        let bad: Vec<Vec<u8>> = vec![
            b"{not json".to_vec(),
            b"\xff\xfe".to_vec(),
            doc(2, "a", "2999-01-01T00:00:00Z").into_bytes(),
            doc(1, "a", "soon").into_bytes(),
            doc(1, "", "2999-01-01T00:00:00Z").into_bytes(),
        ];
        // The same document with Version 1 is accepted, so each case fails for its own reason.
        std::fs::write(&path, doc(1, "a", "2999-01-01T00:00:00Z")).unwrap();
        assert!(matches!(cache.load(&key("p"), now), Lookup::Fresh(_)));
        // The reason never quotes the file (which holds secrets).
        std::fs::write(&path, r#"{"Version":"SEKRIT"}"#).unwrap();
        match cache.load(&key("p"), now) {
            Lookup::Unusable(e) => assert!(!e.to_string().contains("SEKRIT"), "{e}"),
            other => panic!("{other:?}"),
        }
        for content in &bad {
            std::fs::write(&path, content).unwrap();
            assert!(
                matches!(cache.load(&key("p"), now), Lookup::Unusable(_)),
                "{}",
                String::from_utf8_lossy(content)
            );
        }
        std::fs::write(&path, vec![b' '; 70 * 1024]).unwrap();
        assert!(matches!(
            cache.load(&key("p"), now),
            Lookup::Unusable(CacheError::TooLarge)
        ));
        // A symlink is not followed, and the next store replaces it (not its target).
        std::fs::remove_file(&path).unwrap();
        let target = tmp.path().join("elsewhere");
        std::fs::write(&target, "keep").unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        assert!(matches!(
            cache.load(&key("p"), now),
            Lookup::Unusable(CacheError::NotAFile)
        ));
        cache
            .store(&key("p"), &creds("ASIAOK", now + time::Duration::hours(1)))
            .unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        assert!(matches!(cache.load(&key("p"), now), Lookup::Fresh(_)));
        // A directory in the way makes storing fail, which the caller only reports.
        let blocked = key("blocked");
        std::fs::create_dir(cache.path_for(&blocked)).unwrap();
        assert!(matches!(cache.load(&blocked, now), Lookup::Unusable(_)));
        assert!(cache.store(&blocked, &creds("ASIA", now)).is_err());
        let leftovers = std::fs::read_dir(cache.dir())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".tmp")
            })
            .count();
        assert_eq!(leftovers, 0, "a failed store removes its temporary file");
    }

    #[test]
    fn file_names_are_hashes_that_separate_every_part() {
        let base = key("a");
        let name = base.file_name();
        assert_eq!(name.len(), 64 + ".json".len());
        assert!(
            name.trim_end_matches(".json")
                .bytes()
                .all(|b| b.is_ascii_hexdigit())
        );
        let odd = key("../../etc/passwd [x]");
        assert!(!odd.file_name().contains('/'));
        let variants = [
            CacheKey {
                profile: "b",
                ..base
            },
            CacheKey {
                endpoint: "http://other",
                ..base
            },
            CacheKey {
                access_key_id: "AKIAOTHER",
                ..base
            },
            CacheKey {
                mfa_serial: None,
                ..base
            },
            CacheKey {
                mfa_serial: Some(""),
                ..base
            },
            CacheKey {
                assumed_roles: &[ROLE],
                ..base
            },
            CacheKey {
                assumed_roles: &[AssumedRoleKey {
                    role_session_name: Some("s"),
                    ..ROLE
                }],
                ..base
            },
            CacheKey {
                assumed_roles: &[AssumedRoleKey {
                    external_id: Some("x"),
                    ..ROLE
                }],
                ..base
            },
            CacheKey {
                assumed_roles: &[AssumedRoleKey {
                    mfa_serial: Some("arn:aws:iam::000000000000:mfa/alice"),
                    ..ROLE
                }],
                ..base
            },
            CacheKey {
                assumed_roles: &[ROLE, ROLE],
                ..base
            },
        ];
        let mut names: Vec<String> = variants.iter().map(CacheKey::file_name).collect();
        names.push(name);
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 11);
    }

    #[test]
    fn location_follows_xdg_then_home() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let c = CredentialCache::locate(&env(&[("XDG_CACHE_HOME", "/x"), ("HOME", "/h")]));
        assert_eq!(c.unwrap().dir(), Path::new("/x/tokengate"));
        let c = CredentialCache::locate(&env(&[("XDG_CACHE_HOME", "rel"), ("HOME", "/h")]));
        assert_eq!(c.unwrap().dir(), Path::new("/h/.cache/tokengate"));
        assert!(CredentialCache::locate(&env(&[])).is_none());
    }

    #[test]
    fn location_on_windows_is_local_app_data_then_the_profile() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        const LOCAL: &[(&str, &str)] =
            &[("LOCALAPPDATA", "/u/AppData/Local"), ("USERPROFILE", "/u")];
        let c = CredentialCache::locate_on(&env(LOCAL), true).unwrap();
        assert_eq!(c.dir(), Path::new("/u/AppData/Local/tokengate"));
        let c = CredentialCache::locate_on(&env(&[("USERPROFILE", "/u")]), true).unwrap();
        assert_eq!(c.dir(), Path::new("/u/.cache/tokengate"));
        // XDG is a Unix convention; Windows does not read it.
        const XDG: &[(&str, &str)] = &[("XDG_CACHE_HOME", "/x"), ("USERPROFILE", "/u")];
        let c = CredentialCache::locate_on(&env(XDG), true).unwrap();
        assert_eq!(c.dir(), Path::new("/u/.cache/tokengate"));
        assert!(CredentialCache::locate_on(&env(&[]), true).is_none());
    }

    fn reply_with(xml: &str) -> Reply {
        Reply {
            status: 200,
            response: "GetSessionTokenResponse".into(),
            result: crate::sts_client::Element::parse(xml).unwrap(),
            request_id: None,
        }
    }

    #[test]
    fn session_credentials_come_from_the_result() {
        let reply = reply_with(
            "<GetSessionTokenResult><Credentials><AccessKeyId>ASIA1</AccessKeyId>\
             <SecretAccessKey>s</SecretAccessKey><SessionToken>t</SessionToken>\
             <Expiration>2030-01-01T00:00:00.5Z</Expiration></Credentials>\
             </GetSessionTokenResult>",
        );
        let creds = SessionCredentials::from_reply(&reply).unwrap();
        assert_eq!(creds.access_key_id, "ASIA1");
        assert_eq!(creds.expiration.millisecond(), 500);

        let missing = reply_with(
            "<GetSessionTokenResult><Credentials><AccessKeyId>ASIA1</AccessKeyId>\
             <Expiration>2030-01-01T00:00:00Z</Expiration></Credentials></GetSessionTokenResult>",
        );
        let err = SessionCredentials::from_reply(&missing)
            .unwrap_err()
            .to_string();
        assert!(err.contains("Credentials/SecretAccessKey"), "{err}");
        let bad_time = reply_with(
            "<R><Credentials><AccessKeyId>A</AccessKeyId><SecretAccessKey>s</SecretAccessKey>\
             <SessionToken>t</SessionToken><Expiration>tomorrow</Expiration></Credentials></R>",
        );
        assert!(SessionCredentials::from_reply(&bad_time).is_err());
    }

    /// Found by the `sts_reply` fuzz target: RFC 3339 times whose UTC form has no RFC 3339
    /// form made printing the credential_process JSON panic (year 10000) or fail (year -1).
    #[test]
    fn expirations_outside_the_rfc3339_years_in_utc_are_refused() {
        for (expiration, ok) in [
            ("9999-12-31T23:59:59-01:00", false),
            ("0000-01-01T00:00:00+01:00", false),
            ("9999-12-31T22:59:59-01:00", true),
            ("0000-01-01T01:00:00+01:00", true),
        ] {
            let reply = reply_with(&format!(
                "<R><Credentials><AccessKeyId>A</AccessKeyId><SecretAccessKey>s\
                 </SecretAccessKey><SessionToken>t</SessionToken><Expiration>{expiration}\
                 </Expiration></Credentials></R>"
            ));
            match SessionCredentials::from_reply(&reply) {
                Ok(creds) => {
                    assert!(ok, "{expiration} accepted");
                    let json = creds.to_process_json().unwrap();
                    let back = SessionCredentials::from_process_json(&json).unwrap();
                    assert_eq!(back.expiration, creds.expiration);
                }
                Err(e) => assert!(!ok, "{expiration}: {e}"),
            }
            let json = serde_json::json!({
                "Version": 1,
                "AccessKeyId": "A",
                "SecretAccessKey": "s",
                "SessionToken": "t",
                "Expiration": expiration,
            })
            .to_string();
            assert_eq!(SessionCredentials::from_process_json(&json).is_ok(), ok);
        }
        let far = SessionCredentials {
            access_key_id: "A".into(),
            secret_access_key: Secret::from("s".to_owned()),
            session_token: Secret::from("t".to_owned()),
            expiration: time::macros::datetime!(9999-12-31 23:59:59 -1),
        };
        assert!(far.to_process_json().is_err());
    }
}
