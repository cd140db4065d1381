//! Console passwords (IAM, API version 2010-05-08; portal.md §3): the account password
//! policy (UpdateAccountPasswordPolicy, GetAccountPasswordPolicy,
//! DeleteAccountPasswordPolicy), login profiles (CreateLoginProfile, GetLoginProfile,
//! UpdateLoginProfile, DeleteLoginProfile) and ChangePassword for the caller.
//!
//! Hashing, the policy's rules and the sign-in check live one floor down, in
//! [`crate::passwords`]. Passwords arrive as secret parameters: validation messages never
//! echo them, and nothing here logs them.

use std::sync::Arc;

use axum::http::StatusCode;
use tokengate_store::{LoginProfile, LoginProfileUpdate, NewPassword, PasswordPolicy, StoreError};
use tokengate_token::Principal;

use crate::action::ResourceInput;
use crate::auth::Caller;
use crate::common::{db, iso8601, no_such_user, not_a_user};
use crate::entities::{invalid_input, no_such_entity};
use crate::error::ApiError;
use crate::params::{self, Params, Pattern, Rule, Validator};
use crate::passwords::{Password, check_new_password};
use crate::state::AppState;
use crate::xml::Xml;

/// `userNameType` (the login-profile operations): 1..64, `[\w+=,.@-]+`.
const USER_NAME: Rule = Rule {
    name: "UserName",
    min: 1,
    max: 64,
    pattern: Some(params::NAME),
};

/// `passwordType`: 1..128, `[\u0009\u000A\u000D\u0020-\u00FF]+` (sensitive).
const PASSWORD_PATTERN: Pattern = Pattern {
    text: r"[\u0009\u000A\u000D\u0020-\u00FF]+",
    allows: |c| matches!(c, '\u{9}' | '\u{a}' | '\u{d}' | '\u{20}'..='\u{ff}'),
    _plus: true,
};

const fn password_rule(name: &'static str) -> Rule {
    Rule {
        name,
        min: 1,
        max: 128,
        pattern: Some(PASSWORD_PATTERN),
    }
}

/// `MaxSigninSessionDuration`: 3600..7776000 seconds.
const SESSION_DURATION: (&str, i64, i64) = ("MaxSigninSessionDuration", 3_600, 7_776_000);

/// ChangePassword's resource: the caller's own user (it has no `UserName` parameter, and
/// one sent anyway must not choose the resource).
pub(crate) fn own_user_resource(input: &ResourceInput<'_>) -> String {
    input.own_user_arn().unwrap_or_else(|_| "*".to_owned())
}

/// 404 for a user without a login profile.
fn no_login_profile(user: &str) -> ApiError {
    no_such_entity(format!("Login Profile for User {user} cannot be found."))
}

/// The user named by an optional `UserName`, else the calling user.
fn user_or_caller(caller: &Caller, name: Option<String>) -> Result<String, ApiError> {
    match (name, &caller.principal) {
        (Some(name), _) => Ok(name),
        (None, Principal::User { name, .. }) => Ok(name.clone()),
        (None, _) => Err(not_a_user()),
    }
}

fn bool_text(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

fn login_profile_xml(x: &mut Xml, p: &LoginProfile, always_reset_flag: bool) {
    x.elem("LoginProfile", |x| {
        x.text("UserName", &p.user_name);
        x.text("CreateDate", &iso8601(p.created));
        if always_reset_flag || p.reset_required {
            x.text("PasswordResetRequired", bool_text(p.reset_required));
        }
        if let Some(d) = p.max_session_duration {
            x.text("MaxSigninSessionDuration", &d.to_string());
        }
    });
}

fn session_duration(v: &mut Validator, p: &Params) -> Option<u32> {
    let (name, min, max) = SESSION_DURATION;
    v.integer(p, name, min, max)
        .and_then(|d| u32::try_from(d).ok())
}

// --- The account password policy ------------------------------------------------------

pub(crate) async fn update_account_password_policy(
    state: &Arc<AppState>,
    caller: &Caller,
    p: &Params,
) -> Result<(), ApiError> {
    let mut v = Validator::new();
    // No partial updates: every member left out takes its default (portal.md §3.1).
    let minimum_length = v.integer(p, "MinimumPasswordLength", 6, 128);
    let require_symbols = v.boolean(p, "RequireSymbols");
    let require_numbers = v.boolean(p, "RequireNumbers");
    let require_uppercase = v.boolean(p, "RequireUppercaseCharacters");
    let require_lowercase = v.boolean(p, "RequireLowercaseCharacters");
    let allow_users_to_change = v.boolean(p, "AllowUsersToChangePassword");
    let max_age_days = v.integer(p, "MaxPasswordAge", 1, 1095);
    let reuse_prevention = v.integer(p, "PasswordReusePrevention", 1, 24);
    let hard_expiry = v.boolean(p, "HardExpiry");
    v.finish()?;
    let policy = PasswordPolicy {
        minimum_length: minimum_length
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(6),
        require_symbols: require_symbols.unwrap_or(false),
        require_numbers: require_numbers.unwrap_or(false),
        require_uppercase: require_uppercase.unwrap_or(false),
        require_lowercase: require_lowercase.unwrap_or(false),
        allow_users_to_change: allow_users_to_change.unwrap_or(false),
        max_age_days: max_age_days.and_then(|n| u32::try_from(n).ok()),
        reuse_prevention: reuse_prevention.and_then(|n| u32::try_from(n).ok()),
        hard_expiry,
    };
    db(state, move |s| s.set_password_policy(&policy)).await??;
    tracing::info!(by = %caller.principal.arn(), "updated the account password policy");
    Ok(())
}

pub(crate) async fn get_account_password_policy(
    state: &Arc<AppState>,
    _caller: &Caller,
    _p: &Params,
) -> Result<String, ApiError> {
    let policy = db(state, |s| s.password_policy()).await??.ok_or_else(|| {
        no_such_entity(format!(
            "The Password Policy with domain name {} cannot be found.",
            state.account_id
        ))
    })?;
    let mut x = Xml::fragment();
    x.elem("PasswordPolicy", |x| {
        x.text("MinimumPasswordLength", &policy.minimum_length.to_string());
        x.text("RequireSymbols", bool_text(policy.require_symbols));
        x.text("RequireNumbers", bool_text(policy.require_numbers));
        x.text(
            "RequireUppercaseCharacters",
            bool_text(policy.require_uppercase),
        );
        x.text(
            "RequireLowercaseCharacters",
            bool_text(policy.require_lowercase),
        );
        x.text(
            "AllowUsersToChangePassword",
            bool_text(policy.allow_users_to_change),
        );
        // Derived: true when MaxPasswordAge is above 0 (botocore-iam `ExpirePasswords`).
        x.text(
            "ExpirePasswords",
            bool_text(policy.max_age_days.is_some_and(|d| d > 0)),
        );
        if let Some(days) = policy.max_age_days {
            x.text("MaxPasswordAge", &days.to_string());
        }
        if let Some(n) = policy.reuse_prevention {
            x.text("PasswordReusePrevention", &n.to_string());
        }
        if let Some(hard) = policy.hard_expiry {
            x.text("HardExpiry", bool_text(hard));
        }
    });
    Ok(x.finish())
}

pub(crate) async fn delete_account_password_policy(
    state: &Arc<AppState>,
    caller: &Caller,
    _p: &Params,
) -> Result<(), ApiError> {
    match db(state, |s| s.delete_password_policy()).await? {
        Ok(()) => {
            tracing::info!(by = %caller.principal.arn(), "deleted the account password policy");
            Ok(())
        }
        // moto's text; AWS's is not published (portal.md §3.1).
        Err(StoreError::NotFound(_)) => Err(no_such_entity(
            "The account policy with name PasswordPolicy cannot be found.",
        )),
        Err(e) => Err(e.into()),
    }
}

// --- Login profiles --------------------------------------------------------------------

pub(crate) async fn create_login_profile(
    state: &Arc<AppState>,
    caller: &Caller,
    p: &Params,
) -> Result<String, ApiError> {
    let mut v = Validator::new();
    let name = v.optional(p, USER_NAME);
    let password = v.required_secret(p, password_rule("Password"));
    let reset_required = v.boolean(p, "PasswordResetRequired").unwrap_or(false);
    let max_session = session_duration(&mut v, p);
    v.finish()?;
    let name = user_or_caller(caller, name)?;
    let password = Password::new(password.unwrap_or_default());
    let lookup = name.clone();
    match db(state, move |s| s.login_profile(&lookup)).await? {
        Ok(None) => {}
        Ok(Some(_)) => return Err(already_has_profile(&name)),
        Err(StoreError::NotFound(_)) => return Err(no_such_user(&name)),
        Err(e) => return Err(e.into()),
    }
    check_new_password(state, &name, &password).await?;
    let new = NewPassword {
        hash: state.password_hashing.hash(&state.rng, &password).await?,
        at: state.clock.now().unix_timestamp(),
        expected: None,
    };
    let user = name.clone();
    let profile = match db(state, move |s| {
        s.create_login_profile(&user, &new, reset_required, max_session)
    })
    .await?
    {
        Ok(profile) => profile,
        Err(StoreError::AlreadyExists(_)) => return Err(already_has_profile(&name)),
        Err(StoreError::NotFound(_)) => return Err(no_such_user(&name)),
        Err(e) => return Err(e.into()),
    };
    tracing::info!(user = %name, by = %caller.principal.arn(), "created login profile");
    let mut x = Xml::fragment();
    login_profile_xml(&mut x, &profile, true);
    Ok(x.finish())
}

/// 409 for a second login profile (the text of IAM-compatible services; AWS's is not
/// published).
fn already_has_profile(user: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "EntityAlreadyExists",
        format!("Login Profile for user {user} already exists."),
    )
}

/// The login profile of `name`, or the NoSuchEntity answer for the user or the profile.
async fn profile_of(state: &Arc<AppState>, name: &str) -> Result<LoginProfile, ApiError> {
    let lookup = name.to_owned();
    match db(state, move |s| s.login_profile(&lookup)).await? {
        Ok(Some(profile)) => Ok(profile),
        Ok(None) => Err(no_login_profile(name)),
        Err(StoreError::NotFound(_)) => Err(no_such_user(name)),
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn get_login_profile(
    state: &Arc<AppState>,
    caller: &Caller,
    p: &Params,
) -> Result<String, ApiError> {
    let mut v = Validator::new();
    let name = v.optional(p, USER_NAME);
    v.finish()?;
    let name = user_or_caller(caller, name)?;
    let profile = profile_of(state, &name).await?;
    let mut x = Xml::fragment();
    login_profile_xml(&mut x, &profile, false);
    Ok(x.finish())
}

pub(crate) async fn update_login_profile(
    state: &Arc<AppState>,
    caller: &Caller,
    p: &Params,
) -> Result<(), ApiError> {
    let mut v = Validator::new();
    let name = v.required(p, USER_NAME);
    let password = p
        .get("Password")
        .is_some()
        .then(|| v.required_secret(p, password_rule("Password")))
        .flatten();
    let reset_required = v.boolean(p, "PasswordResetRequired");
    let max_session = session_duration(&mut v, p);
    let reset_session = v.boolean(p, "ResetMaxSigninSessionDuration");
    v.finish()?;
    if max_session.is_some() && reset_session == Some(true) {
        return Err(invalid_input(
            "You cannot specify MaxSigninSessionDuration and set \
             ResetMaxSigninSessionDuration to true in the same request.",
        ));
    }
    let name = name.unwrap_or_default();
    // The profile must exist before a password is checked and hashed.
    profile_of(state, &name).await?;
    let password = match password {
        Some(text) => {
            let password = Password::new(text);
            check_new_password(state, &name, &password).await?;
            Some(NewPassword {
                hash: state.password_hashing.hash(&state.rng, &password).await?,
                at: state.clock.now().unix_timestamp(),
                expected: None,
            })
        }
        None => None,
    };
    let update = LoginProfileUpdate {
        password,
        reset_required,
        max_session_duration: match (max_session, reset_session) {
            (Some(d), _) => Some(Some(d)),
            (None, Some(true)) => Some(None),
            _ => None,
        },
    };
    let user = name.clone();
    match db(state, move |s| s.update_login_profile(&user, &update)).await? {
        Ok(()) => {
            tracing::info!(user = %name, by = %caller.principal.arn(), "updated login profile");
            Ok(())
        }
        Err(StoreError::NotFound(tokengate_store::Entity::LoginProfile)) => {
            Err(no_login_profile(&name))
        }
        Err(StoreError::NotFound(_)) => Err(no_such_user(&name)),
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn delete_login_profile(
    state: &Arc<AppState>,
    caller: &Caller,
    p: &Params,
) -> Result<(), ApiError> {
    let mut v = Validator::new();
    let name = v.optional(p, USER_NAME);
    v.finish()?;
    let name = user_or_caller(caller, name)?;
    let user = name.clone();
    match db(state, move |s| s.delete_login_profile(&user)).await? {
        Ok(()) => {
            tracing::info!(user = %name, by = %caller.principal.arn(), "deleted login profile");
            Ok(())
        }
        Err(StoreError::NotFound(tokengate_store::Entity::LoginProfile)) => {
            Err(no_login_profile(&name))
        }
        Err(StoreError::NotFound(_)) => Err(no_such_user(&name)),
        Err(e) => Err(e.into()),
    }
}

// --- ChangePassword --------------------------------------------------------------------

pub(crate) async fn change_password(
    state: &Arc<AppState>,
    caller: &Caller,
    p: &Params,
) -> Result<(), ApiError> {
    let mut v = Validator::new();
    let old = v.required_secret(p, password_rule("OldPassword"));
    let new = v.required_secret(p, password_rule("NewPassword"));
    v.finish()?;
    // Only an IAM user has a password to change (botocore-iam InvalidUserType).
    let Principal::User { name, .. } = &caller.principal else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidUserType",
            "The request was rejected because the type of user for the transaction was \
             incorrect.",
        ));
    };
    let old = Password::new(old.unwrap_or_default());
    let new = Password::new(new.unwrap_or_default());
    let profile = profile_of(state, name).await?;
    let verified = state
        .password_hashing
        .verify(&old, &profile.password_hash)
        .await?;
    if !verified.matches {
        tracing::info!(user = %name, "ChangePassword refused: wrong old password");
        // The text of IAM-compatible services; AWS's is not published.
        return Err(ApiError::access_denied("The old password was incorrect."));
    }
    // An expired password may be changed through the API, even with HardExpiry (the
    // botocore-iam HardExpiry doc): the caller holds working access keys.
    check_new_password(state, name, &new).await?;
    let update = LoginProfileUpdate {
        password: Some(NewPassword {
            hash: state.password_hashing.hash(&state.rng, &new).await?,
            at: state.clock.now().unix_timestamp(),
            expected: Some(profile.password_hash),
        }),
        // A changed password is the new one the reset asked for.
        reset_required: Some(false),
        max_session_duration: None,
    };
    let user = name.clone();
    match db(state, move |s| s.update_login_profile(&user, &update)).await? {
        Ok(()) => {
            tracing::info!(user = %name, "changed own password");
            Ok(())
        }
        // Another change won the race since the old password was verified.
        Err(StoreError::Changed(_)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "EntityTemporarilyUnmodifiable",
            format!(
                "Login Profile for User {name} cannot be modified while another change to \
                 it is in progress. Try again."
            ),
        )),
        Err(StoreError::NotFound(_)) => Err(no_login_profile(name)),
        Err(e) => Err(e.into()),
    }
}
