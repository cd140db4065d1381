//! The client side of tokengate, as a library: what a command needs to call a tokengate
//! service the way the AWS CLI calls AWS.
//!
//! - [`aws_config`]: the shared config and credentials files (`~/.aws/config`,
//!   `~/.aws/credentials`) and a profile's settings (endpoint, region, `mfa_serial`, …).
//! - [`credential_chain`]: which credentials a command signs with (environment, `--profile`,
//!   `AWS_PROFILE`, `default`), in the AWS CLI's order, in one place.
//! - [`sts_client`]: SigV4-signed STS and IAM query calls, and their XML replies and AWS
//!   error documents parsed ([`sts_client::parse_reply`]).
//! - [`role_profile`]: a profile with `role_arn` resolved into its chain of AssumeRole calls,
//!   with botocore's rules and error texts.
//! - [`credential_cache`]: temporary credentials, their `credential_process` JSON, and the
//!   on-disk cache that asks for the MFA code once per session.
//!
//! What it will not do: prompt (the binary owns the terminal and `/dev/tty`), talk to
//! security keys (that is `tokengate-bridge`), serve, or start an async runtime — calls are
//! blocking. It reads the process environment only through the [`aws_config::Env`] lookup the
//! caller passes in, and the wall clock only to sign a request and to name a cache temp file.

pub mod aws_config;
pub mod credential_cache;
pub mod credential_chain;
pub mod role_profile;
pub mod sts_client;

use std::path::PathBuf;

pub use aws_config::{ConfigError, Env, Profile, ProfileChoice, SharedFiles, StaticCredentials};
pub use credential_cache::{AssumedRoleKey, CacheError, CredentialCache, SessionCredentials};
pub use credential_chain::{Caller, CredentialSource};
pub use sts_client::{ApiCallError, Element, Reply, StsClient};

/// Why a client operation failed, grouped by cause.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The local configuration (files, environment, profile) cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// No endpoint is configured for the service: caller misuse, with the fix in the text.
    #[error(
        "no tokengate endpoint for profile `{profile}`: set endpoint_url in its section of {}, \
         or AWS_ENDPOINT_URL_{} / AWS_ENDPOINT_URL, or pass --endpoint-url",
        config.display(),
        service.to_ascii_uppercase()
    )]
    NoEndpoint {
        /// The profile.
        profile: String,
        /// The config file.
        config: PathBuf,
        /// The service (`sts`, `iam`).
        service: String,
    },
    /// A call failed: unreachable, refused by the service, or answered with a malformed
    /// document.
    #[error(transparent)]
    Api(#[from] ApiCallError),
    /// A well-formed reply lacks what the action promises (malformed input from the peer).
    #[error("{0}")]
    IncompleteReply(String),
    /// The credential cache or the `credential_process` document cannot be used.
    #[error(transparent)]
    Cache(#[from] CacheError),
}
