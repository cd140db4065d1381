//! STS AssumeRole's request (policy.md §5.1), shared by the two floors that read it: the
//! chokepoint, which verifies its second factor *before* authorization (the trust policy
//! must see `aws:MultiFactorAuthPresent`), and authorization, which evaluates the role's
//! trust policy; the STS family's handler then mints the role session.
//!
//! Parameters are validated here once, in botocore's terms, before any code is spent:
//! a request that would fail validation never consumes a TOTP step.

use std::sync::Arc;

use axum::http::StatusCode;
use tokengate_policy::{PolicyError, PolicyKind, policy_size};
use tokengate_token::session::{MfaContext, SessionPolicy};

use crate::auth::Caller;
use crate::entities::{DOCUMENT_CHARS, POLICY_ARN, malformed};
use crate::error::ApiError;
use crate::mfa::{
    self, MFA_INVALID_CODE, MFA_INVALID_SERIAL, MFA_REQUIRED, SERIAL_NUMBER, TOKEN_CODE,
};
use crate::params::{Params, Pattern, Rule, Validator};
use crate::principals::RoleAuthz;
use crate::state::AppState;

/// The IAM action AssumeRole is authorized as; its resource policy is the role's trust
/// policy.
pub const ASSUME_ROLE: &str = "sts:AssumeRole";

/// `RoleArn` (arnType): 20..2048.
pub const ROLE_ARN: Rule = Rule {
    name: "RoleArn",
    min: 20,
    max: 2048,
    pattern: None,
};

/// `RoleSessionName` (roleSessionNameType): 2..64, `[\w+=,.@-]*`.
pub const ROLE_SESSION_NAME: Rule = Rule {
    name: "RoleSessionName",
    min: 2,
    max: 64,
    pattern: Some(Pattern {
        text: r"[\w+=,.@-]*",
        allows: |c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c),
        _plus: false,
    }),
};

/// `ExternalId` (externalIdType): 2..1224, `[\w+=,.@:\/-]*`.
pub const EXTERNAL_ID: Rule = Rule {
    name: "ExternalId",
    min: 2,
    max: 1224,
    pattern: Some(Pattern {
        text: r"[\w+=,.@:\/-]*",
        allows: |c| c.is_ascii_alphanumeric() || "_+=,.@:/-".contains(c),
        _plus: false,
    }),
};

/// `Policy` (sessionPolicyDocumentType): at least 1 character; the model sets no maximum
/// (policy.md §8.7), the packed size does.
pub const SESSION_POLICY: Rule = Rule {
    name: "Policy",
    min: 1,
    max: 131_072,
    pattern: Some(DOCUMENT_CHARS),
};

/// DurationSeconds: 900..43200 (roleDurationSecondsType).
pub const ROLE_DURATION_MIN_SECS: i64 = 900;
/// The longest role session AWS grants.
pub const ROLE_DURATION_MAX_SECS: i64 = 43_200;
/// The default role session (policy.md §5.1).
pub const ROLE_DURATION_DEFAULT_SECS: i64 = 3_600;
/// The longest session for a caller using session credentials (role chaining, §8.1).
pub const CHAINED_MAX_SECS: i64 = 3_600;
/// At most this many `PolicyArns` (policy.md §5.1).
pub const MAX_POLICY_ARNS: usize = 10;
/// The plaintext allowance for session policies (inline text plus ARNs), policy.md §5.1.
pub const PACKED_POLICY_ALLOWANCE: usize = 2_048;

/// AWS's text when DurationSeconds exceeds the role's MaxSessionDuration.
pub const EXCEEDS_MAX_SESSION: &str =
    "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.";
/// AWS's text when a caller with session credentials asks for more than an hour.
pub const EXCEEDS_CHAINING_LIMIT: &str = concat!(
    "The requested DurationSeconds exceeds the 1 hour session limit ",
    "for roles assumed by role chaining."
);

/// A validated AssumeRole request. Its `Debug` leaves the token code out.
#[derive(Clone)]
pub struct AssumeRoleRequest {
    /// `RoleArn`.
    pub role_arn: String,
    /// `RoleSessionName`.
    pub session_name: String,
    /// `DurationSeconds`, when given.
    pub duration: Option<i64>,
    /// `ExternalId` (`sts:ExternalId`).
    pub external_id: Option<String>,
    /// `SerialNumber`.
    pub serial: Option<String>,
    /// `TokenCode`.
    pub code: Option<String>,
    /// The session policies, when any were passed.
    pub session_policy: Option<SessionPolicy>,
    /// `PackedPolicySize`, when session policies were passed.
    pub packed_percent: Option<usize>,
}

impl std::fmt::Debug for AssumeRoleRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssumeRoleRequest")
            .field("role_arn", &self.role_arn)
            .field("session_name", &self.session_name)
            .field("duration", &self.duration)
            .field("external_id", &self.external_id)
            .field("serial", &self.serial)
            .field("code", &self.code.as_ref().map(|_| "<redacted>"))
            .field("session_policy", &self.session_policy)
            .field("packed_percent", &self.packed_percent)
            .finish()
    }
}

impl AssumeRoleRequest {
    /// Validates AssumeRole's parameters (botocore's constraints, then the session policy:
    /// packed size, then the document as a `Session` policy).
    pub fn parse(params: &Params) -> Result<Self, ApiError> {
        let mut v = Validator::new();
        let role_arn = v.required(params, ROLE_ARN);
        let session_name = v.required(params, ROLE_SESSION_NAME);
        let duration = v.integer(
            params,
            "DurationSeconds",
            ROLE_DURATION_MIN_SECS,
            ROLE_DURATION_MAX_SECS,
        );
        let external_id = v.optional(params, EXTERNAL_ID);
        let serial = v.optional(params, SERIAL_NUMBER);
        let code = v.optional(params, TOKEN_CODE);
        let inline = v.optional(params, SESSION_POLICY);
        let arns = arns_in(params, &mut v);
        v.finish()?;
        let (Some(role_arn), Some(session_name)) = (role_arn, session_name) else {
            // `required` recorded the failure; `finish` answered it.
            return Err(ApiError::validation(
                "RoleArn and RoleSessionName are required",
            ));
        };
        let (session_policy, packed_percent) = if inline.is_none() && arns.is_empty() {
            (None, None)
        } else {
            let packed = inline.as_deref().map_or(0, policy_size)
                + arns.iter().map(|a| a.chars().count()).sum::<usize>();
            let percent = packed_percent(packed);
            if percent > 100 {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "PackedPolicyTooLarge",
                    format!("Packed policy consumes {percent}% of allotted space"),
                ));
            }
            if let Some(text) = &inline {
                tokengate_policy::PolicyDocument::parse(text, PolicyKind::Session)
                    .map_err(|e| session_policy_error(&e))?;
            }
            (Some(SessionPolicy { inline, arns }), Some(percent))
        };
        Ok(Self {
            role_arn,
            session_name,
            duration,
            external_id,
            serial,
            code,
            session_policy,
            packed_percent,
        })
    }
}

/// `PolicyArns.member.N.arn`: each a policy ARN (20..2048), at most
/// [`MAX_POLICY_ARNS`] of them.
fn arns_in(params: &Params, v: &mut Validator) -> Vec<String> {
    let mut arns = Vec::new();
    for i in 1.. {
        let Some(arn) = params.get(&format!("PolicyArns.member.{i}.arn")) else {
            break;
        };
        let len = arn.chars().count();
        if !(POLICY_ARN.min..=POLICY_ARN.max).contains(&len) {
            v.custom(format!(
                "Value '{arn}' at 'policyArns.{i}.member.arn' failed to satisfy constraint: \
                 Member must have length between {} and {}",
                POLICY_ARN.min, POLICY_ARN.max
            ));
        }
        arns.push(arn.to_owned());
    }
    if arns.len() > MAX_POLICY_ARNS {
        v.custom(format!(
            "Value '[{}]' at 'policyArns' failed to satisfy constraint: Member must have \
             length less than or equal to {MAX_POLICY_ARNS}",
            arns.join(", ")
        ));
    }
    arns
}

/// `PackedPolicySize`: the session policies' plaintext — the inline document counted
/// without white space (as every policy quota) plus each ARN's length — as a percentage of
/// [`PACKED_POLICY_ALLOWANCE`], rounded up (ADR 0005). AWS compresses into a binary form
/// whose size it does not document; this is the plaintext rule its documentation states.
pub fn packed_percent(packed_chars: usize) -> usize {
    (packed_chars * 100).div_ceil(PACKED_POLICY_ALLOWANCE)
}

fn session_policy_error(e: &PolicyError) -> ApiError {
    match e {
        PolicyError::TooLarge { .. } => ApiError::new(
            StatusCode::BAD_REQUEST,
            "PackedPolicyTooLarge",
            "Packed policy consumes more than 100% of allotted space",
        ),
        other => malformed(other.to_string()),
    }
}

/// The role that `role_arn` names, if it exists and the ARN is exactly its ARN (path
/// included); `None` otherwise — AWS answers a missing role with the same AccessDenied as a
/// refused one.
pub fn target_role(state: &AppState, role_arn: &str) -> Result<Option<Arc<RoleAuthz>>, ApiError> {
    let prefix = format!("arn:aws:iam::{}:role/", state.account_id);
    let Some(rest) = role_arn.strip_prefix(&prefix) else {
        return Ok(None);
    };
    let name = rest.rsplit('/').next().unwrap_or(rest);
    // A point read, inline on the worker (ADR 0003), then the role's compiled policies.
    let Some(role) = state.store.role(name)? else {
        return Ok(None);
    };
    let arn = tokengate_token::arn::role_arn(&state.account_id, &role.path, &role.name);
    if arn != role_arn {
        return Ok(None);
    }
    state.policies.role(state.store.as_ref(), &role.role_id)
}

/// The second factor of an AssumeRole request, verified before authorization exactly as
/// GetSessionToken verifies it (replay refused, failures counted, AWS's texts): the MFA
/// context it proves, or `None` when none was given. With `mfa.required`, a request without
/// a code whose caller's own session has no MFA is refused with GetSessionToken's text.
pub async fn second_factor(
    state: &Arc<AppState>,
    caller: &Caller,
    request: &AssumeRoleRequest,
) -> Result<Option<MfaContext>, ApiError> {
    match (&request.serial, &request.code) {
        (Some(serial), Some(code)) => {
            Ok(Some(mfa::verify_code(state, caller, serial, code).await?))
        }
        (Some(_), None) => Err(ApiError::access_denied(MFA_INVALID_CODE)),
        (None, Some(_)) => Err(ApiError::access_denied(MFA_INVALID_SERIAL)),
        (None, None) if state.config.mfa.required && !caller.mfa_present() => {
            Err(ApiError::access_denied(MFA_REQUIRED))
        }
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::new(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    const ARN: &str = "arn:aws:iam::000000000000:role/r";

    #[test]
    fn debug_never_shows_the_token_code() {
        let request = AssumeRoleRequest::parse(&params(&[
            ("RoleArn", ARN),
            ("RoleSessionName", "ss"),
            ("SerialNumber", "arn:aws:iam::000000000000:mfa/alice"),
            ("TokenCode", "482913"),
        ]))
        .unwrap();
        let shown = format!("{request:?}");
        assert!(!shown.contains("482913"), "{shown}");
        assert!(
            shown.contains("<redacted>") && shown.contains("mfa/alice"),
            "{shown}"
        );
    }

    #[test]
    fn packed_size_is_a_rounded_up_percentage_of_2048() {
        assert_eq!(packed_percent(0), 0);
        assert_eq!(packed_percent(1), 1);
        assert_eq!(packed_percent(2048), 100);
        assert_eq!(packed_percent(2049), 101);
    }

    #[test]
    fn requests_are_validated_in_botocores_terms() {
        let ok = AssumeRoleRequest::parse(&params(&[
            ("RoleArn", ARN),
            ("RoleSessionName", "s@x.y"),
            (
                "Policy",
                r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iam:Get*","Resource":"*"}}"#,
            ),
            (
                "PolicyArns.member.1.arn",
                "arn:aws:iam::aws:policy/IAMReadOnlyAccess",
            ),
        ]))
        .unwrap();
        let sp = ok.session_policy.unwrap();
        assert_eq!(sp.arns.len(), 1);
        assert!(ok.packed_percent.unwrap() > 0);
        for bad in [
            vec![("RoleArn", ARN), ("RoleSessionName", "has space")],
            vec![("RoleArn", ARN), ("RoleSessionName", "s")],
            vec![
                ("RoleArn", ARN),
                ("RoleSessionName", "ss"),
                ("DurationSeconds", "899"),
            ],
            vec![
                ("RoleArn", ARN),
                ("RoleSessionName", "ss"),
                ("TokenCode", "12345"),
            ],
            vec![
                ("RoleArn", ARN),
                ("RoleSessionName", "ss"),
                ("ExternalId", "x"),
            ],
            vec![("RoleSessionName", "ss")],
        ] {
            let e = AssumeRoleRequest::parse(&params(&bad)).unwrap_err();
            assert_eq!(e.code, "ValidationError", "{bad:?}");
        }
        let many: Vec<(String, String)> = (1..=11)
            .map(|i| {
                (
                    format!("PolicyArns.member.{i}.arn"),
                    "arn:aws:iam::aws:policy/IAMReadOnlyAccess".to_owned(),
                )
            })
            .chain([
                ("RoleArn".to_owned(), ARN.to_owned()),
                ("RoleSessionName".to_owned(), "ss".to_owned()),
            ])
            .collect();
        let e = AssumeRoleRequest::parse(&Params::new(many)).unwrap_err();
        assert_eq!(e.code, "ValidationError");
        let e = AssumeRoleRequest::parse(&params(&[
            ("RoleArn", ARN),
            ("RoleSessionName", "ss"),
            ("Policy", "{}"),
        ]))
        .unwrap_err();
        assert_eq!(e.code, "MalformedPolicyDocument");
    }
}
