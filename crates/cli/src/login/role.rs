//! `tokengate login` for a profile with `role_arn`: botocore's AssumeRoleProvider
//! (policy.md §6.1) with aws-vault's MFA session in front (§6.2). The chain itself — which
//! profiles, which parameters, which errors — is tokengate-client's `role_profile`; this
//! module gets the credentials, asks for codes, calls STS and caches (docs/login.md, "Role
//! profiles").

use anyhow::{Context, anyhow, bail};
use time::OffsetDateTime;
use tokengate_bridge::DeviceAddress;
use tokengate_client::credential_cache::{CacheKey, CredentialCache, Lookup, SessionCredentials};
use tokengate_client::credential_chain::{self, Caller, CredentialSource};
use tokengate_client::role_profile::{self, BaseCredentials, RoleChain, RoleHop};
use tokengate_client::{AssumedRoleKey, Env, Profile, StaticCredentials, StsClient};
use tokengate_token::arn::is_security_key_serial;
use zeroize::Zeroizing;

use super::{LoginArgs, SecondFactor, obtain_session, print_process_json, prompt_code_on_tty};
use crate::security_key;

/// The longest AssumeRole session for a caller with session credentials (role chaining,
/// policy.md §8.1; aws-vault `roleChainingMaximumDuration`).
const CHAINED_MAX_SECS: u32 = 3_600;

/// What the first AssumeRole is signed with.
enum FirstSigner<'a> {
    /// The base credentials as they are.
    Base,
    /// An MFA session of the base profile from GetSessionToken (aws-vault's pattern): the
    /// first hop then sends no code.
    MfaSession {
        /// The base profile.
        profile: &'a str,
        /// Its `mfa_serial`.
        serial: &'a str,
        /// Its `duration_seconds`, for the GetSessionToken call.
        duration: Option<u32>,
    },
}

/// Logs in to the role profile `top`, resolved into `chain`.
pub(super) fn run(
    args: &LoginArgs,
    top: Profile<'_>,
    chain: RoleChain<'_>,
    env: &impl Env,
) -> anyhow::Result<()> {
    let RoleChain { base, mut hops } = chain;
    // The requested profile's hop is the last; --duration-seconds is about it.
    if let Some(last) = hops.last_mut()
        && args.duration_seconds.is_some()
    {
        last.duration_seconds = args.duration_seconds;
    }
    let (base_credentials, signer) = base_credentials(base, &hops, env)?;
    if matches!(signer, FirstSigner::MfaSession { .. })
        && let Some(first) = hops.first_mut()
    {
        // The session carries the MFA into the role session (aws-vault `isMfaChained`).
        first.mfa_serial = None;
    }
    // A touch answers a challenge that only long-term keys may ask for: a security key can
    // be the factor of the first AssumeRole signed with the base keys, or of the base
    // profile's own MFA session — not of a later hop, signed with a role session.
    let first_by_base =
        matches!(signer, FirstSigner::Base) && base_credentials.session_token.is_none();
    for (i, hop) in hops.iter().enumerate() {
        if let Some(serial) = hop.mfa_serial.filter(|s| is_security_key_serial(s))
            && (i > 0 || !first_by_base)
        {
            bail!(
                "profile `{}`: mfa_serial `{serial}` is a security key, but this AssumeRole is \
                 signed with session credentials, which cannot ask for a security-key \
                 challenge. Put the key's serial on the profile that holds the long-term keys \
                 (its MFA session then carries into every role), or use a TOTP device here",
                hop.profile.name()
            );
        }
    }
    let touches = match signer {
        FirstSigner::MfaSession { serial, .. } => is_security_key_serial(serial),
        FirstSigner::Base => hops
            .iter()
            .any(|h| h.mfa_serial.is_some_and(is_security_key_serial)),
    };
    if args.device.is_some() && !touches {
        bail!(
            "--device was given, but neither profile `{}` nor the profiles it assumes roles \
             from have a security key's mfa_serial",
            top.name()
        );
    }
    if args.token_code.is_some() && touches {
        bail!(
            "--token-code was given, but the factor of profile `{}` is a security key: touch it",
            top.name()
        );
    }
    let wants_code = matches!(signer, FirstSigner::MfaSession { .. })
        || hops.iter().any(|h| h.mfa_serial.is_some());
    if args.token_code.is_some() && !wants_code {
        bail!(
            "--token-code was given, but neither profile `{}` nor the profiles it assumes \
             roles from have an mfa_serial",
            top.name()
        );
    }

    let base_key_id = base_credentials.access_key_id.clone();
    let client = client(top, base_credentials, args, env)?;
    let endpoint = client.endpoint().to_owned();
    let role_keys: Vec<AssumedRoleKey<'_>> = hops
        .iter()
        .map(|h| AssumedRoleKey {
            role_arn: h.role_arn,
            role_session_name: h.role_session_name,
            external_id: h.external_id,
            mfa_serial: h.mfa_serial,
        })
        .collect();
    let key = CacheKey {
        profile: top.name(),
        endpoint: &endpoint,
        access_key_id: &base_key_id,
        mfa_serial: match signer {
            FirstSigner::MfaSession { serial, .. } => Some(serial),
            FirstSigner::Base => None,
        },
        assumed_roles: &role_keys,
    };
    let cache = if args.no_cache {
        None
    } else {
        CredentialCache::locate(env)
    };
    if let Some(creds) = cache.as_ref().and_then(|c| cached(c, &key)) {
        return print_process_json(&creds);
    }

    let mut token_code = args.token_code.as_deref();
    let mut current = match signer {
        FirstSigner::Base => client,
        FirstSigner::MfaSession {
            profile,
            serial,
            duration,
        } => {
            let session_key = CacheKey {
                profile,
                endpoint: &endpoint,
                access_key_id: &base_key_id,
                mfa_serial: Some(serial),
                assumed_roles: &[],
            };
            let session = match cache.as_ref().and_then(|c| cached(c, &session_key)) {
                Some(session) => session,
                None => {
                    let factor = SecondFactor::of(Some(serial));
                    let session = obtain_session(
                        &client,
                        &factor,
                        token_code.take(),
                        args.device.as_ref(),
                        duration,
                    )?;
                    store(cache.as_ref(), &session_key, &session);
                    session
                }
            };
            signing_with(top, &session, args, env)?
        }
    };
    let mut creds = None;
    for hop in &hops {
        let session = assume_role(&current, hop, &mut token_code, args.device.as_ref())?;
        current = signing_with(top, &session, args, env)?;
        creds = Some(session);
    }
    let creds = creds.ok_or_else(|| anyhow!("profile `{}` names no role", top.name()))?;
    store(cache.as_ref(), &key, &creds);
    print_process_json(&creds)
}

/// The base credentials, and whether aws-vault's MFA session goes in front of the first hop:
/// when the base profile has `mfa_serial`, the first hop's is the same or absent, its
/// duration is within the chaining limit, and the keys are long-term.
fn base_credentials<'a>(
    base: BaseCredentials<'a>,
    hops: &[RoleHop<'a>],
    env: &impl Env,
) -> anyhow::Result<(StaticCredentials, FirstSigner<'a>)> {
    match base {
        BaseCredentials::Environment { profile } => {
            let creds = credential_chain::environment_credentials(env)?.ok_or_else(|| {
                anyhow!(
                    "Error when retrieving credentials from Environment: No credentials found \
                     in credential_source referenced in profile {profile}"
                )
            })?;
            Ok((creds, FirstSigner::Base))
        }
        BaseCredentials::Profile(profile) => {
            let creds = profile.credentials()?;
            let first = hops.first();
            let signer = match (profile.mfa_serial(), first) {
                (Some(serial), Some(first))
                    if creds.session_token.is_none()
                        && first.mfa_serial.is_none_or(|s| s == serial)
                        && first.duration_seconds.unwrap_or(0) <= CHAINED_MAX_SECS =>
                {
                    FirstSigner::MfaSession {
                        profile: profile.name(),
                        serial,
                        duration: profile.duration_seconds()?,
                    }
                }
                _ => FirstSigner::Base,
            };
            Ok((creds, signer))
        }
    }
}

/// One AssumeRole call with the hop's parameters; a code when the hop has `mfa_serial`.
fn assume_role(
    client: &StsClient,
    hop: &RoleHop<'_>,
    token_code: &mut Option<&str>,
    device: Option<&DeviceAddress>,
) -> anyhow::Result<SessionCredentials> {
    let session_name = match hop.role_session_name {
        Some(name) => name.to_owned(),
        None => role_profile::default_session_name(OffsetDateTime::now_utc().unix_timestamp()),
    };
    let duration = hop.duration_seconds.map(|d| d.to_string());
    let mut params = vec![
        ("Action", "AssumeRole"),
        ("RoleArn", hop.role_arn),
        ("RoleSessionName", session_name.as_str()),
    ];
    if let Some(id) = hop.external_id {
        params.push(("ExternalId", id));
    }
    if let Some(d) = &duration {
        params.push(("DurationSeconds", d));
    }
    let code: Zeroizing<String>;
    let touch;
    if let Some(serial) = hop.mfa_serial.filter(|s| is_security_key_serial(s)) {
        // AssumeRoleWithSecurityKey: AssumeRole whose factor is a touch.
        touch = security_key::touch(client, serial, device)?;
        params[0] = ("Action", "AssumeRoleWithSecurityKey");
        params.extend(touch.params());
    } else if let Some(serial) = hop.mfa_serial {
        code = match token_code.take() {
            Some(c) => Zeroizing::new(c.to_owned()),
            None => prompt_code_on_tty(serial)?,
        };
        params.push(("SerialNumber", serial));
        params.push(("TokenCode", &code));
    }
    let reply = client.call("sts", &params).with_context(|| {
        format!(
            "assuming {} (profile `{}`)",
            hop.role_arn,
            hop.profile.name()
        )
    })?;
    Ok(SessionCredentials::from_reply(&reply)?)
}

/// A client at the requested profile's endpoint, region and CA bundle (botocore makes the
/// AssumeRole client from the session's profile), signing with `credentials`.
fn client(
    top: Profile<'_>,
    credentials: StaticCredentials,
    args: &LoginArgs,
    env: &impl Env,
) -> anyhow::Result<StsClient> {
    let caller = Caller {
        profile: top,
        credentials,
        source: CredentialSource::Profile(top.name().to_owned()),
    };
    Ok(caller.client("sts", args.endpoint_url.as_deref(), env)?)
}

fn signing_with(
    top: Profile<'_>,
    session: &SessionCredentials,
    args: &LoginArgs,
    env: &impl Env,
) -> anyhow::Result<StsClient> {
    let credentials = StaticCredentials {
        access_key_id: session.access_key_id.clone(),
        secret_access_key: session.secret_access_key.clone(),
        session_token: Some(session.session_token.clone()),
    };
    client(top, credentials, args, env)
}

fn cached(cache: &CredentialCache, key: &CacheKey<'_>) -> Option<SessionCredentials> {
    match cache.load(key, OffsetDateTime::now_utc()) {
        Lookup::Fresh(creds) => Some(creds),
        Lookup::Unusable(e) => {
            eprintln!(
                "tokengate: ignoring the cached session in {} ({e}); asking the service",
                cache.path_for(key).display()
            );
            None
        }
        Lookup::Stale | Lookup::Missing => None,
    }
}

fn store(cache: Option<&CredentialCache>, key: &CacheKey<'_>, creds: &SessionCredentials) {
    if let Some(cache) = cache
        && let Err(e) = cache.store(key, creds)
    {
        eprintln!(
            "tokengate: could not cache the session in {} ({e})",
            cache.dir().display()
        );
    }
}
